/* OpenSSL glue. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "secret.h"
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

#define KEY_FILE_MAX (64u << 10)

int ck_ssl_key_load_at(int dirfd, const char *path, EVP_PKEY **ret, struct ck_error **reterr)
{
        _cleanup_(BIO_free_allp) BIO *b = NULL;
        uint8_t *buf = NULL;
        size_t len = 0;
        unsigned mode = 0;
        EVP_PKEY *k;
        int r;

        r = ck_secret_file_read_at(dirfd, path, KEY_FILE_MAX, &buf, &len, &mode, reterr);
        if (r < 0)
                return r;
        if (len == 0) {
                free(buf);
                return ck_error_set(reterr, -EBADMSG, "%s: not a PEM private key (size 0)", path);
        }
        if (mode & 077)
                log_warn("private key %s is accessible to group or others (mode %03o)", path, mode & 0777);
        b = BIO_new_mem_buf(buf, (int)len);
        k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        OPENSSL_cleanse(buf, len);
        free(buf);
        if (!k)
                return ck_ssl_error(reterr, -EBADMSG, "%s: not a PEM private key", path);
        *ret = k;
        return 0;
}
