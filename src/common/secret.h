/* Secret bytes: keys, tokens, passwords and released secrets.
 *
 * A ck_secret is wiped with OPENSSL_cleanse before it is freed and has no printing helper on
 * purpose. Compare with ck_secret_equal(), which is constant-time. Its bytes live in pages of
 * their own, locked in memory (never swapped, where RLIMIT_MEMLOCK or CAP_IPC_LOCK allows; a
 * warning is logged once otherwise) and left out of core dumps; so a secret costs at least a
 * page. Only ck_secret_new/ck_secret_random make one and only ck_secret_free frees it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"

/* Largest secret (a released secret is at most 1 MiB; this leaves room). */
#define CK_SECRET_MAX (16u << 20)

struct ck_secret {
        size_t len;
        uint8_t data[]; /* NUL-terminated (not counted in len) for text secrets */
};

/* A new secret of len zero bytes (NUL-terminated), for callers that fill it in place; NULL on
 * OOM or when len > CK_SECRET_MAX. Never allocate a struct ck_secret any other way. */
struct ck_secret *ck_secret_alloc(size_t len);
/* Copies len bytes into a new secret; NULL on OOM. */
struct ck_secret *ck_secret_new(const void *data, size_t len);
/* len random bytes from the kernel's CSPRNG (getrandom(2)). */
int ck_secret_random(size_t len, struct ck_secret **ret);
bool ck_secret_equal(const struct ck_secret *a, const void *b, size_t blen);
void ck_secret_free(struct ck_secret *s);
/* Wipes and frees a malloc'd C string (e.g. a password that came from JSON). */
void ck_secret_str_free(char *s);

struct ck_error;
/* Reads a secret-bearing file (relative to dirfd) into one allocation of its exact size, so no
 * growing buffer leaves unwiped copies behind. Only regular files of at most max bytes, opened
 * non-blocking so that a FIFO put in its place cannot stall a daemon's loop; a file that changes
 * size while it is read fails with -EAGAIN. *ret_mode (if not NULL) gets the file's mode. The
 * caller wipes and frees *ret (OPENSSL_cleanse + free, or ck_free_wiped()). */
int ck_secret_file_read_at(int dirfd, const char *path, size_t max, uint8_t **ret, size_t *ret_len,
                           unsigned *ret_mode, struct ck_error **reterr);

/* free() and realloc() that wipe the whole old block first. Daemons that parse secrets with
 * third-party libraries install them as those libraries' allocators (json_set_alloc_funcs(),
 * event_set_mem_functions()), so that request bodies, headers and parser scratch buffers holding a
 * password or token are not left in freed memory. realloc never grows in place: it copies. */
void ck_free_wiped(void *p);
void *ck_realloc_wiped(void *p, size_t len);

DEFINE_POINTER_CLEANUP(struct ck_secret, ck_secret_free, ck_secret_free)
#define _cleanup_secret_ _cleanup_(ck_secret_freep)
static inline void ck_secret_str_freep(char **p)
{
        ck_secret_str_free(*p);
}
#define _cleanup_secret_str_ _cleanup_(ck_secret_str_freep)
