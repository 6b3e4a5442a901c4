/* OpenSSL glue. */
#include <errno.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>

#include "ssl.h"

int ck_ssl_error(struct ck_error **reterr, int code, const char *fmt, ...)
{
        _cleanup_free_ char *head = NULL;
        unsigned long e = ERR_peek_error();
        char detail[256] = "";
        va_list ap;
        int r;

        if (e)
                ERR_error_string_n(e, detail, sizeof(detail));
        ERR_clear_error();
        va_start(ap, fmt);
        r = vasprintf(&head, fmt, ap);
        va_end(ap);
        if (r < 0)
                return ck_error_set(reterr, code, "crypto failure");
        if (detail[0])
                return ck_error_set(reterr, code, "%s: %s", head, detail);
        return ck_error_set(reterr, code, "%s", head);
}

static int digest(const char *md, const void *data, size_t len, uint8_t *out)
{
        unsigned int n = 0;

        if (EVP_Digest(data, len, out, &n, EVP_get_digestbyname(md), NULL) != 1)
                return -EIO;
        return 0;
}

int ck_sha256(const void *data, size_t len, uint8_t out[32])
{
        return digest("SHA256", data, len, out);
}

int ck_sha384(const void *data, size_t len, uint8_t out[48])
{
        return digest("SHA384", data, len, out);
}
