/* Wiped-on-free secret buffers, in locked pages of their own. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "secret.h"

/* Each secret has pages of its own (mmap), so that locking and unlocking them never touches
 * anything else: mlock'd so that they are never written to swap, and MADV_DONTDUMP so that a
 * core dump leaves them out. A process without CAP_IPC_LOCK has RLIMIT_MEMLOCK (often 64 KiB or
 * 8 MiB); past it the secret stays usable but unlocked, and this is said once. */
static size_t secret_map_size(size_t len)
{
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        size_t n = offsetof(struct ck_secret, data) + len + 1;

        return (n + page - 1) / page * page;
}

static struct ck_secret *secret_alloc(size_t len)
{
        static atomic_bool warned;
        struct ck_secret *s;
        size_t size;
        void *p;

        if (len > CK_SECRET_MAX)
                return NULL;
        size = secret_map_size(len);
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return NULL;
        (void)madvise(p, size, MADV_DONTDUMP);
        if (mlock(p, size) < 0 && !atomic_exchange(&warned, true))
                log_warn("cannot lock secret memory (%s; RLIMIT_MEMLOCK or CAP_IPC_LOCK): secrets may be "
                         "swapped",
                         strerror(errno));
        s = p;
        s->len = len;
        s->data[len] = 0;
        return s;
}

struct ck_secret *ck_secret_alloc(size_t len)
{
        /* Anonymous pages are zero already. */
        return secret_alloc(len);
}

struct ck_secret *ck_secret_new(const void *data, size_t len)
{
        struct ck_secret *s = secret_alloc(len);

        if (!s)
                return NULL;
        if (len)
                memcpy(s->data, data, len);
        return s;
}

int ck_secret_random(size_t len, struct ck_secret **ret)
{
        struct ck_secret *s;

        if (len > 1024 * 1024)
                return -E2BIG;
        s = secret_alloc(len);
        if (!s)
                return -ENOMEM;
        /* Straight from the kernel's CSPRNG (what OpenSSL's DRBG seeds from): a daemon that only
         * makes its API token at start does not initialise OpenSSL for it. getrandom() blocks
         * until the pool is initialised and returns at most 32 MiB - 1 per call. */
        for (size_t off = 0; off < len;) {
                ssize_t n = getrandom(s->data + off, len - off, 0);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        ck_secret_free(s);
                        return -EIO;
                }
                off += (size_t)n;
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
        size_t size;

        if (!s)
                return;
        size = secret_map_size(s->len);
        OPENSSL_cleanse(s, size);
        /* munmap releases the lock with the pages. */
        (void)munmap(s, size);
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

int ck_secret_file_read_at(int dirfd, const char *path, size_t max, uint8_t **ret, size_t *ret_len,
                           unsigned *ret_mode, struct ck_error **reterr)
{
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        struct stat st;
        uint8_t *buf;
        size_t len = 0, size;

        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", path);
        if (fstat(fd, &st) < 0)
                return ck_error_errno(reterr, -errno, "cannot stat %s", path);
        if (!S_ISREG(st.st_mode))
                return ck_error_set(reterr, -EINVAL, "%s is not a regular file", path);
        if (st.st_size < 0 || (uint64_t)st.st_size > max)
                return ck_error_set(reterr, -EFBIG, "%s is larger than %zu bytes", path, max);
        size = (size_t)st.st_size;
        buf = malloc(size + 1);
        if (!buf)
                return -ENOMEM;
        /* One byte more than the size: a file that grows while being read is caught. */
        while (len <= size) {
                ssize_t n = read(fd, buf + len, size + 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = -errno;
                        OPENSSL_cleanse(buf, len);
                        free(buf);
                        return ck_error_errno(reterr, r, "cannot read %s", path);
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (len != size) {
                OPENSSL_cleanse(buf, len);
                free(buf);
                return ck_error_set(reterr, -EAGAIN, "%s changed while it was read", path);
        }
        if (ret_mode)
                *ret_mode = (unsigned)st.st_mode;
        *ret = buf;
        *ret_len = len;
        return 0;
}
