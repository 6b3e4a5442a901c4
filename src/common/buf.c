/* Bounded growable buffer. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "secret.h"

void ck_buf_init(struct ck_buf *b, size_t max)
{
        *b = (struct ck_buf){.max = max};
}

void ck_buf_init_secret(struct ck_buf *b, size_t max)
{
        *b = (struct ck_buf){.max = max, .wipe = true};
}

/* Empty again, keeping the cap and the kind. */
static void buf_reinit(struct ck_buf *b)
{
        *b = (struct ck_buf){.max = b->max, .wipe = b->wipe};
}

static int buf_reserve(struct ck_buf *b, size_t add)
{
        size_t need, ncap;
        uint8_t *n;

        if (add > b->max || b->len > b->max - add)
                return -E2BIG;
        need = b->len + add + 1;
        if (need <= b->cap)
                return 0;
        ncap = b->cap ? b->cap : 64;
        while (ncap < need)
                ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
        n = b->wipe ? ck_realloc_wiped(b->data, ncap) : realloc(b->data, ncap);
        if (!n)
                return -ENOMEM;
        b->data = n;
        b->cap = ncap;
        return 0;
}

int ck_buf_append(struct ck_buf *b, const void *data, size_t len)
{
        int r = buf_reserve(b, len);

        if (r < 0)
                return r;
        if (len)
                memcpy(b->data + b->len, data, len);
        b->len += len;
        b->data[b->len] = 0;
        return 0;
}

int ck_buf_append_str(struct ck_buf *b, const char *s)
{
        return ck_buf_append(b, s, strlen(s));
}

int ck_buf_printf(struct ck_buf *b, const char *fmt, ...)
{
        va_list ap;
        int n, r;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        r = buf_reserve(b, (size_t)n);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
}

void ck_buf_reset(struct ck_buf *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = 0;
}

uint8_t *ck_buf_take(struct ck_buf *b, size_t *ret_len)
{
        uint8_t *d = b->data;

        if (!d)
                d = calloc(1, 1);
        if (ret_len)
                *ret_len = b->len;
        buf_reinit(b);
        return d;
}

void ck_buf_free(struct ck_buf *b)
{
        if (b->wipe)
                ck_free_wiped(b->data);
        else
                free(b->data);
        buf_reinit(b);
}

void ck_buf_free_wiped(struct ck_buf *b)
{
        if (b->data)
                OPENSSL_cleanse(b->data, b->cap);
        ck_buf_free(b);
}
