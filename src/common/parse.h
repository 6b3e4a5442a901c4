/* Bounded parsing helpers: a cursor over untrusted bytes, hex, and numbers.
 *
 * Every reader checks the remaining length first and fails with -EBADMSG without moving the
 * cursor, so a parser can read a whole structure and check cursor.err once at the end
 * (the first failure sticks). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ck_cursor {
        const uint8_t *p;
        size_t len;
        size_t off;
        int err; /* first failure, 0 if none */
};

static inline struct ck_cursor ck_cursor_make(const void *p, size_t len)
{
        return (struct ck_cursor){.p = p, .len = len};
}

static inline size_t ck_cursor_left(const struct ck_cursor *c)
{
        return c->len - c->off;
}

/* Returns a pointer to the next n bytes and advances, or NULL (and sets err) if fewer are left. */
const uint8_t *ck_cursor_take(struct ck_cursor *c, size_t n);
uint8_t ck_cursor_u8(struct ck_cursor *c);
uint16_t ck_cursor_u16le(struct ck_cursor *c);
uint32_t ck_cursor_u32le(struct ck_cursor *c);
uint64_t ck_cursor_u64le(struct ck_cursor *c);
/* Copies n bytes into dst (left untouched on failure). */
void ck_cursor_copy(struct ck_cursor *c, void *dst, size_t n);

static inline uint16_t ck_le16(const uint8_t *p)
{
        return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t ck_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void ck_put_le16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}
static inline void ck_put_le32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void ck_hex_encode(const uint8_t *in, size_t len, char *out);
/* Allocating variant; NULL on OOM. */
char *ck_hex_encode_alloc(const uint8_t *in, size_t len);
/* Decodes exactly 2*outlen hex digits (either case) from in[0..inlen). -EINVAL on a bad digit
 * or a length that is not exactly 2*outlen. */
int ck_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen);
/* Decodes a hex string of any even length up to 2*max bytes into a malloc'd buffer. An
 * optional "0x" prefix and surrounding whitespace are accepted. */
int ck_hex_decode_alloc(const char *in, size_t inlen, size_t max, uint8_t **ret, size_t *ret_len);

/* Strict unsigned decimal: digits only, no sign, no whitespace, <= max. */
int ck_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *ret);
/* NUL-terminated convenience form. */
int ck_parse_uint(const char *s, uint64_t max, uint64_t *ret);

/* True when s[0..len) is printable ASCII with no control characters. */
bool ck_is_printable(const char *s, size_t len);
/* The length (1-4) of the well-formed UTF-8 character at s[0..left) (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 when there is none there. */
size_t ck_utf8_char_len(const unsigned char *s, size_t left);
/* strndup() that never cuts a UTF-8 sequence: when s is longer than max bytes, the cut moves back
 * over continuation bytes to the start of the character that would not fit whole. For messages
 * that go on into JSON, where a split character would make the whole document invalid. */
char *ck_strndup_utf8(const char *s, size_t max);
/* Constant-time-irrelevant helpers for text. */
bool ck_startswith(const char *s, const char *prefix);
