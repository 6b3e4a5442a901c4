/* The API bearer token file: created at first start with 32 random bytes (as 64 hex digits),
 * mode 0600, and refused unless it is a regular file owned by the daemon's user that no one else
 * can read. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "fs.h"
#include "parse.h"
#include "ssl.h"

#define TOKEN_MAX 4096

static int token_create(const char *path, struct ck_error **reterr)
{
        _cleanup_(ck_secret_freep) struct ck_secret *raw = NULL;
        _cleanup_close_ int fd = -1;
        char hex[65];
        int r;

        r = ck_secret_random(32, &raw);
        if (r < 0)
                return ck_error_set(reterr, r, "cannot generate a token");
        ck_hex_encode(raw->data, raw->len, hex);
        hex[64] = '\n';
        /* O_EXCL: two daemons starting at once never overwrite each other's token. */
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                OPENSSL_cleanse(hex, sizeof(hex));
                return errno == EEXIST ? 0
                                       : ck_error_errno(reterr, -errno, "cannot create token file %s", path);
        }
        r = ck_write_all(fd, hex, sizeof(hex));
        OPENSSL_cleanse(hex, sizeof(hex));
        if (r < 0 || fsync(fd) < 0) {
                (void)unlink(path);
                return ck_error_errno(reterr, r < 0 ? r : -errno, "cannot write token file %s", path);
        }
        return 0;
}

int api_token_load_or_create(const char *path, struct ck_secret **ret, struct ck_error **reterr)
{
        _cleanup_close_ int fd = -1;
        uint8_t *data = NULL;
        size_t len = 0, read_len;
        struct stat st;
        struct ck_secret *s;
        char *dir, *slash;
        int r;

        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = 0;
                (void)ck_mkdir_p(dir, 0700);
        }
        free(dir);

        r = token_create(path, reterr);
        if (r < 0)
                return r;
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open token file %s", path);
        if (fstat(fd, &st) < 0)
                return ck_error_errno(reterr, -errno, "cannot stat token file %s", path);
        if (!S_ISREG(st.st_mode))
                return ck_error_set(reterr, -EINVAL, "token file %s is not a regular file", path);
        if (st.st_uid != geteuid())
                return ck_error_set(reterr, -EPERM,
                                    "token file %s is owned by uid %u, not by this daemon's uid %u: whoever "
                                    "owns it can read and replace the token",
                                    path, (unsigned)st.st_uid, (unsigned)geteuid());
        if (st.st_mode & 077)
                return ck_error_set(reterr, -EPERM,
                                    "token file %s is accessible to others (mode %03o); chmod 600 it", path,
                                    st.st_mode & 0777);
        r = ck_read_fd(fd, TOKEN_MAX, &data, &len);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read token file %s", path);
        read_len = len;
        while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
                len--;
        if (len < 16) {
                OPENSSL_cleanse(data, read_len);
                free(data);
                return ck_error_set(reterr, -EINVAL, "token file %s holds fewer than 16 characters", path);
        }
        s = ck_secret_new(data, len);
        OPENSSL_cleanse(data, read_len);
        free(data);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
