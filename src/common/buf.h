/* Growable byte buffer with a hard maximum (in the manner of curl's dynbuf).
 *
 * Every buffer that holds input from outside has a cap set at init; appends that would pass it
 * fail with -E2BIG and leave the buffer unchanged. The data is always NUL-terminated (the NUL is
 * not counted in len), so text can be handed to C string functions after a length check. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ck_buf {
        uint8_t *data;
        size_t len;
        size_t cap; /* allocated, including the terminating NUL */
        size_t max; /* largest allowed len */
        bool wipe;  /* holds a secret: growth copies and wipes, free wipes */
};

void ck_buf_init(struct ck_buf *b, size_t max);
/* For a buffer that will hold a secret (a released secret, a token): it never leaves an unwiped
 * copy behind, neither when it grows nor when it is freed (ck_buf_free() wipes it too). Data
 * handed out by ck_buf_take() is the caller's to wipe. */
void ck_buf_init_secret(struct ck_buf *b, size_t max);
int ck_buf_append(struct ck_buf *b, const void *data, size_t len);
int ck_buf_append_str(struct ck_buf *b, const char *s);
int ck_buf_printf(struct ck_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ck_buf_reset(struct ck_buf *b);
/* Hands the data to the caller (free() it) and reinitialises the buffer with the same max. */
uint8_t *ck_buf_take(struct ck_buf *b, size_t *ret_len);
void ck_buf_free(struct ck_buf *b);
/* Like ck_buf_free() but wipes the contents first, for a buffer not made with
 * ck_buf_init_secret() that came to hold a secret after its last growth. */
void ck_buf_free_wiped(struct ck_buf *b);

#define _cleanup_buf_ __attribute__((cleanup(ck_buf_free)))
