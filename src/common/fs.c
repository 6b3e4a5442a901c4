/* Bounded file IO, atomic replacement and root-confined opens. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buf.h"
#include "fs.h"

int ck_read_fd(int fd, size_t max, uint8_t **ret, size_t *ret_len)
{
        _cleanup_buf_ struct ck_buf b;
        uint8_t chunk[16384];

        ck_buf_init(&b, max);
        for (;;) {
                ssize_t n = read(fd, chunk, sizeof(chunk));
                int r;
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                r = ck_buf_append(&b, chunk, (size_t)n);
                if (r < 0)
                        return r == -E2BIG ? -EFBIG : r;
        }
        *ret = ck_buf_take(&b, ret_len);
        return *ret ? 0 : -ENOMEM;
}

int ck_read_file_at(int dirfd, const char *path, size_t max, uint8_t **ret, size_t *ret_len,
                    struct ck_error **reterr)
{
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        int r;

        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", path);
        r = ck_read_fd(fd, max, ret, ret_len);
        if (r == -EFBIG)
                return ck_error_set(reterr, r, "%s is larger than %zu bytes", path, max);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read %s", path);
        return 0;
}

int ck_write_all(int fd, const void *buf, size_t len)
{
        const uint8_t *p = buf;

        while (len) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int ck_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
        const uint8_t *p = buf;

        while (len) {
                ssize_t n = pwrite(fd, p, len, (off_t)off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t)n;
                off += (uint64_t)n;
        }
        return 0;
}

static int write_file_renamed(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                              bool sync, struct ck_error **reterr)
{
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        if (strchr(name, '/'))
                return ck_error_set(reterr, -EINVAL, "%s: expected a file name, not a path", name);
        if (asprintf(&tmp, ".%s.tmp.%d", name, (int)getpid()) < 0)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot create %s", tmp);
        r = ck_write_all(fd, data, len);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && sync && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dirfd, tmp, 0);
                return ck_error_errno(reterr, r, "cannot write %s", name);
        }
        return 0;
}

int ck_write_file_atomic(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                         struct ck_error **reterr)
{
        return write_file_renamed(dirfd, name, data, len, mode, true, reterr);
}

int ck_write_file_replace(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                          struct ck_error **reterr)
{
        return write_file_renamed(dirfd, name, data, len, mode, false, reterr);
}

int ck_mkdir_p(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);
        size_t n;

        if (!p)
                return -ENOMEM;
        n = strlen(p);
        for (size_t i = 1; i <= n; i++) {
                if (p[i] != '/' && p[i] != 0)
                        continue;
                p[i] = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                if (i < n)
                        p[i] = '/';
        }
        return 0;
}

static int rm_rf_children(int fd, dev_t dev)
{
        DIR *d = fdopendir(fd);
        struct dirent *de;
        int r = 0;

        if (!d) {
                safe_close(fd);
                return -errno;
        }
        while ((de = readdir(d))) {
                struct stat st;
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT)
                                r = -errno;
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        int sub;
                        if (st.st_dev != dev) {
                                r = -EBUSY; /* a mount point: never descend */
                                continue;
                        }
                        sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0) {
                                r = -errno;
                                continue;
                        }
                        int k = rm_rf_children(sub, dev);
                        if (k < 0)
                                r = k;
                        if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                                r = -errno;
                } else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
                        r = -errno;
                }
        }
        closedir(d);
        return r;
}

DIR *ck_opendir_at(int dirfd, const char *path)
{
        int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d;

        if (fd < 0)
                return NULL;
        d = fdopendir(fd);
        if (!d) {
                int e = errno;
                close(fd);
                errno = e;
        }
        return d;
}

int ck_rm_rf_at(int dirfd, const char *name)
{
        struct stat st;
        int fd, r;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode))
                return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = rm_rf_children(fd, st.st_dev);
        if (r < 0)
                return r;
        return unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -errno : 0;
}

int ck_openat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve)
{
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC),
                .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
                .resolve = resolve,
        };
        long fd;

        do
                fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        while (fd < 0 && errno == EAGAIN);
        return fd < 0 ? -errno : (int)fd;
}

int ck_open_in_root(int rootfd, const char *path, int flags, mode_t mode)
{
        return ck_openat2(rootfd, path, flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}
