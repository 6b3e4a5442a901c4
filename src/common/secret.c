/* Wiped-on-free secret buffers. */
#include <errno.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

struct ck_secret *ck_secret_new(const void *data, size_t len)
{
        struct ck_secret *s;

        if (len > SIZE_MAX - sizeof(*s) - 1)
                return NULL;
        s = malloc(sizeof(*s) + len + 1);
        if (!s)
                return NULL;
        s->len = len;
        if (len)
                memcpy(s->data, data, len);
        s->data[len] = 0;
        return s;
}

int ck_secret_random(size_t len, struct ck_secret **ret)
{
        struct ck_secret *s;

        if (len > 1024 * 1024)
                return -E2BIG;
        s = malloc(sizeof(*s) + len + 1);
        if (!s)
                return -ENOMEM;
        s->len = len;
        s->data[len] = 0;
        if (RAND_bytes(s->data, (int)len) != 1) {
                ck_secret_free(s);
                return -EIO;
        }
        *ret = s;
        return 0;
}

bool ck_secret_equal(const struct ck_secret *a, const void *b, size_t blen)
{
        if (!a || a->len != blen)
                return false;
        return CRYPTO_memcmp(a->data, b, blen) == 0;
}

void ck_secret_free(struct ck_secret *s)
{
        if (!s)
                return;
        OPENSSL_cleanse(s, sizeof(*s) + s->len + 1);
        free(s);
}

void ck_secret_str_free(char *s)
{
        if (!s)
                return;
        OPENSSL_cleanse(s, strlen(s));
        free(s);
}

void ck_free_wiped(void *p)
{
        if (!p)
                return;
        OPENSSL_cleanse(p, malloc_usable_size(p));
        free(p);
}

void *ck_realloc_wiped(void *p, size_t len)
{
        size_t old;
        void *q;

        if (!p)
                return malloc(len);
        if (len == 0) {
                ck_free_wiped(p);
                return NULL;
        }
        q = malloc(len);
        if (!q)
                return NULL;
        old = malloc_usable_size(p);
        memcpy(q, p, old < len ? old : len);
        ck_free_wiped(p);
        return q;
}
