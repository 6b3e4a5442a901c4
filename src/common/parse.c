/* Cursor, hex and number parsing over untrusted input, all bounded. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

const uint8_t *ck_cursor_take(struct ck_cursor *c, size_t n)
{
        const uint8_t *p;

        if (c->err)
                return NULL;
        if (n > ck_cursor_left(c)) {
                c->err = -EBADMSG;
                return NULL;
        }
        p = c->p + c->off;
        c->off += n;
        return p;
}

uint8_t ck_cursor_u8(struct ck_cursor *c)
{
        const uint8_t *p = ck_cursor_take(c, 1);
        return p ? p[0] : 0;
}

uint16_t ck_cursor_u16le(struct ck_cursor *c)
{
        const uint8_t *p = ck_cursor_take(c, 2);
        return p ? ck_le16(p) : 0;
}

uint32_t ck_cursor_u32le(struct ck_cursor *c)
{
        const uint8_t *p = ck_cursor_take(c, 4);
        return p ? ck_le32(p) : 0;
}

uint64_t ck_cursor_u64le(struct ck_cursor *c)
{
        const uint8_t *p = ck_cursor_take(c, 8);
        return p ? (uint64_t)ck_le32(p) | (uint64_t)ck_le32(p + 4) << 32 : 0;
}

void ck_cursor_copy(struct ck_cursor *c, void *dst, size_t n)
{
        const uint8_t *p = ck_cursor_take(c, n);
        if (p)
                memcpy(dst, p, n);
}

void ck_hex_encode(const uint8_t *in, size_t len, char *out)
{
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < len; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 15];
        }
        out[2 * len] = 0;
}

char *ck_hex_encode_alloc(const uint8_t *in, size_t len)
{
        char *s;

        if (len > (SIZE_MAX - 1) / 2)
                return NULL;
        s = malloc(2 * len + 1);
        if (s)
                ck_hex_encode(in, len, s);
        return s;
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int ck_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen)
{
        if (outlen > SIZE_MAX / 2 || inlen != 2 * outlen)
                return -EINVAL;
        for (size_t i = 0; i < outlen; i++) {
                int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
}

static bool is_space(char c)
{
        return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

int ck_hex_decode_alloc(const char *in, size_t inlen, size_t max, uint8_t **ret, size_t *ret_len)
{
        uint8_t *out;
        size_t n;
        int r;

        while (inlen && is_space(*in))
                in++, inlen--;
        while (inlen && is_space(in[inlen - 1]))
                inlen--;
        if (inlen >= 2 && in[0] == '0' && (in[1] == 'x' || in[1] == 'X'))
                in += 2, inlen -= 2;
        if (inlen % 2)
                return -EINVAL;
        n = inlen / 2;
        if (n > max)
                return -E2BIG;
        out = malloc(n ? n : 1);
        if (!out)
                return -ENOMEM;
        r = ck_hex_decode(in, inlen, out, n);
        if (r < 0) {
                free(out);
                return r;
        }
        *ret = out;
        *ret_len = n;
        return 0;
}

int ck_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *ret)
{
        uint64_t v = 0;

        if (len == 0 || len > 20)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                unsigned d;
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                d = (unsigned)(s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int ck_parse_uint(const char *s, uint64_t max, uint64_t *ret)
{
        return ck_parse_u64(s, strlen(s), max, ret);
}

bool ck_is_printable(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
                        return false;
        return true;
}

size_t ck_utf8_char_len(const unsigned char *s, size_t left)
{
        unsigned char lo = 0x80, hi = 0xbf;
        size_t n;

        if (left == 0)
                return 0;
        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                n = 2;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                n = 3;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                n = 4;
        else
                return 0; /* a continuation byte, an overlong lead (C0, C1) or past U+10FFFF */
        /* The second byte's range excludes overlong forms (E0, F0), surrogates (ED) and code
         * points past U+10FFFF (F4). */
        if (s[0] == 0xe0)
                lo = 0xa0;
        else if (s[0] == 0xed)
                hi = 0x9f;
        else if (s[0] == 0xf0)
                lo = 0x90;
        else if (s[0] == 0xf4)
                hi = 0x8f;
        if (left < n || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
        return n;
}

char *ck_strndup_utf8(const char *s, size_t max)
{
        size_t n = strnlen(s, max);

        if (n == max && s[n] != 0)
                while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
                        n--;
        return strndup(s, n);
}

bool ck_startswith(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}
