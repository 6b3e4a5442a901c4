/* The confined per-entry writer of the layer unpacker: turns one tar member (as read by
 * libarchive) into a file, directory, link, device or overlay whiteout below the layer root.
 *
 * Confinement: every parent directory is opened relative to the layer root with
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), so ".." and symlinks
 * (absolute or relative) cannot leave the root; the last component is always created with an
 * *at() call on that parent fd and never followed (O_EXCL | O_NOFOLLOW, AT_SYMLINK_NOFOLLOW).
 * Member names with ".." components are rejected outright; hard-link targets are resolved the
 * same way and so always name a file of this layer.
 *
 * Attributes: chown before chmod (chown clears setuid/setgid) and before xattrs (chown
 * clears security.capability); directory times last, in finish(), in member order, and only
 * on the directory the member made. Only security.capability and user.* (not user.overlay.*)
 * xattrs are applied: overlayfs trusts trusted.overlay.* and user.overlay.* (redirect,
 * metacopy, opaque), which a layer must not forge. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <endian.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "parse.h"
#include "store-internal.h"

#define RESOLVE_LAYER   (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
#define WHITEOUT_PREFIX ".wh."
#define WHITEOUT_META   ".wh..wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"

void unpack_writer_init(struct unpack_writer *w, int root_fd, const struct image_limits *lim)
{
        *w = (struct unpack_writer){.root_fd = root_fd, .lim = lim, .parent_fd = -1};
}

void unpack_writer_clear(struct unpack_writer *w)
{
        for (size_t i = 0; i < w->n_dirs; i++)
                free(w->dirs[i].path);
        free(w->dirs);
        free(w->parent_path);
        safe_close(w->parent_fd);
        w->dirs = NULL;
        w->n_dirs = w->cap_dirs = 0;
        w->parent_path = NULL;
        w->parent_fd = -1;
}

int unpack_path_normalise(const char *name, size_t max, char **ret)
{
        _cleanup_free_ char *out = NULL;
        size_t len = 0, n = strlen(name);
        const char *p = name, *end = name + n;

        if (n > max)
                return -ENAMETOOLONG;
        out = malloc(n + 1);
        if (!out)
                return -ENOMEM;
        while (p < end) {
                const char *slash = memchr(p, '/', (size_t)(end - p));
                size_t clen = slash ? (size_t)(slash - p) : (size_t)(end - p);

                if (clen == 0 || (clen == 1 && p[0] == '.')) {
                        /* empty (leading or doubled "/") or "." */
                } else if (clen == 2 && p[0] == '.' && p[1] == '.') {
                        return -EINVAL;
                } else if (clen > NAME_MAX) {
                        return -ENAMETOOLONG;
                } else {
                        if (len)
                                out[len++] = '/';
                        memcpy(out + len, p, clen);
                        len += clen;
                }
                p += clen + 1;
        }
        out[len] = 0;
        if (len == 0)
                return 1;
        *ret = TAKE_PTR(out);
        return 0;
}

enum unpack_whiteout unpack_whiteout_classify(const char *base, const char **ret_victim)
{
        const char *victim;

        if (!ck_startswith(base, WHITEOUT_PREFIX))
                return UNPACK_NOT_WHITEOUT;
        if (strcmp(base, WHITEOUT_OPAQUE) == 0)
                return UNPACK_WHITEOUT_OPAQUE;
        if (ck_startswith(base, WHITEOUT_META))
                return UNPACK_WHITEOUT_META;
        victim = base + strlen(WHITEOUT_PREFIX);
        if (!*victim || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
                return UNPACK_WHITEOUT_INVALID;
        *ret_victim = victim;
        return UNPACK_WHITEOUT_FILE;
}

const char *unpack_shown(const char *name, char buf[static 200])
{
        size_t i = 0;

        for (; i < 199 && name[i]; i++)
                buf[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
        buf[i] = 0;
        return buf;
}

/* A security.capability value the kernel's setxattr() takes: a v2 (20 bytes) or v3 (24 bytes,
 * with the namespace's root uid) header, with no flag but "effective". The directory format
 * got this check from ext4's setxattr; an EROFS image is read as written, and the kernel's
 * exec() would refuse a file with anything else (v1, a bad size) in it. */
static bool capability_valid(const void *value, size_t size)
{
        uint32_t magic;

        if (size != XATTR_CAPS_SZ_2 && size != XATTR_CAPS_SZ_3)
                return false;
        memcpy(&magic, value, sizeof(magic));
        magic = le32toh(magic) & ~(uint32_t)VFS_CAP_FLAGS_EFFECTIVE;
        return size == XATTR_CAPS_SZ_2 ? magic == VFS_CAP_REVISION_2 : magic == VFS_CAP_REVISION_3;
}

static int xattrs_admit(struct archive_entry *e, const char *shown, struct ck_error **reterr)
{
        const char *name;
        const void *value;
        size_t size;

        if (archive_entry_xattr_reset(e) == 0)
                return 0;
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK)
                if (name && strcmp(name, "security.capability") == 0 && !capability_valid(value, size))
                        return ck_error_set(reterr, -EINVAL, "%s: invalid security.capability xattr", shown);
        return 0;
}

int unpack_member_admit(struct archive_entry *e, const struct image_limits *lim, uint64_t *entries,
                        char **ret_path, struct ck_error **reterr)
{
        const char *name = archive_entry_pathname(e);
        char sb[200];
        int r;

        if (!name)
                name = archive_entry_pathname_utf8(e);
        if (!name)
                return ck_error_set(reterr, -EINVAL, "layer member without a usable name");
        if (++*entries > lim->max_layer_entries)
                return ck_error_set(reterr, -E2BIG, "layer has more than %" PRIu64 " entries",
                                    lim->max_layer_entries);
        if (archive_entry_size_is_set(e) && archive_entry_size(e) < 0)
                return ck_error_set(reterr, -EINVAL, "%s: invalid size", unpack_shown(name, sb));
        if (archive_entry_size_is_set(e) && (uint64_t)archive_entry_size(e) > lim->max_layer_unpacked)
                return ck_error_set(reterr, -EFBIG, "%s: larger than the unpacked layer limit",
                                    unpack_shown(name, sb));

        r = xattrs_admit(e, unpack_shown(name, sb), reterr);
        if (r < 0)
                return r;

        r = unpack_path_normalise(name, lim->max_name_len, ret_path);
        if (r == -ENAMETOOLONG)
                return ck_error_set(reterr, r, "%s: name too long", unpack_shown(name, sb));
        if (r < 0)
                return ck_error_set(reterr, r == -ENOMEM ? r : -EINVAL,
                                    "%s: invalid member name (\"..\" components are not allowed)",
                                    unpack_shown(name, sb));
        return r;
}

static int open_in_layer(struct unpack_writer *w, const char *path, int flags)
{
        return ck_openat2(w->root_fd, path, flags, 0, RESOLVE_LAYER);
}

static void parent_cache_drop(struct unpack_writer *w)
{
        free(w->parent_path);
        w->parent_path = NULL;
        w->parent_fd = safe_close(w->parent_fd);
}

/* Opens directory `path` (relative to the root, "" = the root) as an O_PATH fd, creating
 * missing components with mode 0755 as tar extractors do. */
static int ensure_dir(struct unpack_writer *w, const char *path, int *ret_fd)
{
        _cleanup_free_ char *parent = NULL;
        _cleanup_close_ int pfd = -1;
        const char *slash, *base;
        int fd, r;

        fd = open_in_layer(w, *path ? path : ".", O_PATH | O_DIRECTORY);
        if (fd >= 0 || fd != -ENOENT) {
                if (fd >= 0)
                        *ret_fd = fd;
                return fd < 0 ? fd : 0;
        }
        slash = strrchr(path, '/');
        parent = strndup(path, slash ? (size_t)(slash - path) : 0);
        if (!parent)
                return -ENOMEM;
        base = slash ? slash + 1 : path;
        r = ensure_dir(w, parent, &pfd);
        if (r < 0)
                return r;
        if (mkdirat(pfd, base, 0755) == 0) {
                struct stat st;
                mode_t want;

                /* 0755 whatever the process's umask (conkerd's is 077), keeping the set-group-ID
                 * bit mkdir() gives a directory made in a set-group-ID one. */
                if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                want = 0755 | (st.st_mode & S_ISGID);
                if ((st.st_mode & 07777) != want && fchmodat(pfd, base, want, 0) < 0)
                        return -errno;
        } else if (errno != EEXIST) {
                return -errno;
        }
        fd = open_in_layer(w, path, O_PATH | O_DIRECTORY);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}

/* The parent directory of the entry, cached across consecutive entries. Borrowed fd. */
static int parent_open(struct unpack_writer *w, const char *parent, int *ret_fd)
{
        int fd = -1, r;

        if (w->parent_path && strcmp(w->parent_path, parent) == 0) {
                *ret_fd = w->parent_fd;
                return 0;
        }
        parent_cache_drop(w);
        r = ensure_dir(w, parent, &fd);
        if (r < 0)
                return r;
        w->parent_path = strdup(parent);
        if (!w->parent_path) {
                close(fd);
                return -ENOMEM;
        }
        w->parent_fd = fd;
        *ret_fd = fd;
        return 0;
}

/* Removes what is at pfd/base so that a new entry can take its place. A directory is kept
 * when the new entry is a directory too (attributes merge). */
static int remove_existing(struct unpack_writer *w, int pfd, const char *base, bool keep_dir)
{
        struct stat st;
        int r;

        if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (S_ISDIR(st.st_mode)) {
                if (keep_dir)
                        return 0;
                /* The parent cache may point into the tree we remove. */
                r = ck_rm_rf_at(pfd, base);
                parent_cache_drop(w);
                return r < 0 ? r : 1;
        }
        if (unlinkat(pfd, base, 0) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

bool unpack_xattr_allowed(const char *name)
{
        if (strcmp(name, "security.capability") == 0)
                return true;
        return ck_startswith(name, "user.") && !ck_startswith(name, "user.overlay.");
}

static int apply_xattrs(int fd, struct archive_entry *e)
{
        const char *name;
        const void *value;
        size_t size;

        if (archive_entry_xattr_reset(e) == 0)
                return 0;
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
                if (!name || !unpack_xattr_allowed(name)) {
                        log_debug("layer: dropping xattr %.100s", name ? name : "(null)");
                        continue;
                }
                if (fsetxattr(fd, name, value, size, 0) < 0) {
                        if (errno == EOPNOTSUPP)
                                continue;
                        return -errno;
                }
        }
        return 0;
}

static int entry_owner(struct archive_entry *e, uid_t *uid, gid_t *gid)
{
        int64_t u = archive_entry_uid(e), g = archive_entry_gid(e);

        if (u < 0 || g < 0 || u >= (int64_t)UINT32_MAX || g >= (int64_t)UINT32_MAX)
                return -EINVAL;
        *uid = (uid_t)u;
        *gid = (gid_t)g;
        return 0;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
        long mn = archive_entry_mtime_nsec(e), an = archive_entry_atime_nsec(e);

        ts[1].tv_sec = archive_entry_mtime(e);
        ts[1].tv_nsec = mn >= 0 && mn < 1000000000 ? mn : 0;
        if (archive_entry_atime_is_set(e)) {
                ts[0].tv_sec = archive_entry_atime(e);
                ts[0].tv_nsec = an >= 0 && an < 1000000000 ? an : 0;
        } else {
                ts[0] = ts[1];
        }
}

/* chown, chmod, xattrs (in that order) on an open file or directory. */
static int apply_attrs_fd(int fd, struct archive_entry *e, uid_t uid, gid_t gid)
{
        if (fchown(fd, uid, gid) < 0)
                return -errno;
        if (fchmod(fd, archive_entry_perm(e) & 07777) < 0)
                return -errno;
        return apply_xattrs(fd, e);
}

static int write_file(struct unpack_writer *w, struct archive *a, struct archive_entry *e, int pfd,
                      const char *base, uid_t uid, gid_t gid)
{
        _cleanup_close_ int fd = -1;
        struct timespec ts[2];
        const void *buf;
        size_t size;
        la_int64_t offset;
        uint64_t end = 0;
        int r;

        for (int attempt = 0;; attempt++) {
                fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd >= 0)
                        break;
                if (errno != EEXIST || attempt > 0)
                        return -errno;
                r = remove_existing(w, pfd, base, false);
                if (r < 0)
                        return r;
                if (r > 0) { /* a directory went away and took the cached parent with it */
                        return -EAGAIN;
                }
        }
        for (;;) {
                r = archive_read_data_block(a, &buf, &size, &offset);
                if (r == ARCHIVE_EOF)
                        break;
                if (r != ARCHIVE_OK)
                        return -EIO;
                if (offset < 0)
                        return -EINVAL;
                for (size_t done = 0; done < size;) {
                        ssize_t n = pwrite(fd, (const uint8_t *)buf + done, size - done,
                                           (off_t)offset + (off_t)done);
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                return -errno;
                        }
                        done += (size_t)n;
                }
                if ((uint64_t)offset + size > end)
                        end = (uint64_t)offset + size;
        }
        /* Sparse files may end in a hole. */
        if (archive_entry_size_is_set(e) && (uint64_t)archive_entry_size(e) > end &&
            ftruncate(fd, (off_t)archive_entry_size(e)) < 0)
                return -errno;
        r = apply_attrs_fd(fd, e, uid, gid);
        if (r < 0)
                return r;
        entry_times(e, ts);
        if (futimens(fd, ts) < 0)
                return -errno;
        return 0;
}

static int push_dir_time(struct unpack_writer *w, const char *path, int fd, struct archive_entry *e)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (w->n_dirs == w->cap_dirs) {
                size_t ncap = w->cap_dirs ? 2 * w->cap_dirs : 64;
                struct unpack_dir_time *nd = reallocarray(w->dirs, ncap, sizeof(*nd));
                if (!nd)
                        return -ENOMEM;
                w->dirs = nd;
                w->cap_dirs = ncap;
        }
        w->dirs[w->n_dirs].path = strdup(path);
        if (!w->dirs[w->n_dirs].path)
                return -ENOMEM;
        w->dirs[w->n_dirs].dev = st.st_dev;
        w->dirs[w->n_dirs].ino = st.st_ino;
        entry_times(e, w->dirs[w->n_dirs].ts);
        w->n_dirs++;
        return 0;
}

static int write_dir(struct unpack_writer *w, struct archive_entry *e, int pfd, const char *base,
                     const char *path, uid_t uid, gid_t gid)
{
        _cleanup_close_ int fd = -1;
        int r;

        if (mkdirat(pfd, base, 0700) < 0) {
                if (errno != EEXIST)
                        return -errno;
                r = remove_existing(w, pfd, base, true);
                if (r < 0)
                        return r;
                if (mkdirat(pfd, base, 0700) < 0 && errno != EEXIST)
                        return -errno;
        }
        fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = apply_attrs_fd(fd, e, uid, gid);
        if (r < 0)
                return r;
        return push_dir_time(w, path, fd, e);
}

static int write_symlink(struct unpack_writer *w, struct archive_entry *e, int pfd, const char *base,
                         uid_t uid, gid_t gid)
{
        const char *target = archive_entry_symlink(e);
        struct timespec ts[2];
        int r;

        if (!target)
                target = archive_entry_symlink_utf8(e);
        if (!target || !*target || strlen(target) >= PATH_MAX)
                return -EINVAL;
        r = remove_existing(w, pfd, base, false);
        if (r < 0)
                return r;
        if (r > 0)
                return -EAGAIN;
        /* The target is stored verbatim: the writer never follows it (parents are resolved in
         * root, leaves are never followed), and in the container it resolves in its root. */
        if (symlinkat(target, pfd, base) < 0)
                return -errno;
        if (fchownat(pfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        entry_times(e, ts);
        if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        return 0;
}

static int write_hardlink(struct unpack_writer *w, struct archive_entry *e, int pfd, const char *base)
{
        _cleanup_free_ char *target = NULL;
        _cleanup_close_ int tfd = -1;
        const char *raw = archive_entry_hardlink(e);
        struct stat ts, cur;
        char proc[64];
        int r;

        if (!raw)
                raw = archive_entry_hardlink_utf8(e);
        if (!raw)
                return -EINVAL;
        r = unpack_path_normalise(raw, w->lim->max_name_len, &target);
        if (r != 0)
                return r < 0 ? r : -EINVAL; /* a link to the root itself */
        /* In-root resolution: the target is always a file of this layer. */
        tfd = open_in_layer(w, target, O_PATH | O_NOFOLLOW);
        if (tfd < 0)
                return tfd;
        if (fstat(tfd, &ts) < 0)
                return -errno;
        if (S_ISDIR(ts.st_mode))
                return -EPERM;
        if (fstatat(pfd, base, &cur, AT_SYMLINK_NOFOLLOW) == 0 && cur.st_ino == ts.st_ino &&
            cur.st_dev == ts.st_dev)
                return 0;
        r = remove_existing(w, pfd, base, false);
        if (r < 0)
                return r;
        if (r > 0)
                return -EAGAIN;
        if (linkat(tfd, "", pfd, base, AT_EMPTY_PATH) == 0)
                return 0;
        if (errno != ENOENT && errno != EPERM)
                return -errno;
        /* Without CAP_DAC_READ_SEARCH AT_EMPTY_PATH is refused; the fd's proc link is not. */
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", tfd);
        if (linkat(AT_FDCWD, proc, pfd, base, AT_SYMLINK_FOLLOW) < 0)
                return -errno;
        return 0;
}

static int write_node(struct unpack_writer *w, struct archive_entry *e, int pfd, const char *base,
                      mode_t type, uid_t uid, gid_t gid)
{
        struct timespec ts[2];
        dev_t dev = 0;
        int r;

        if (type == S_IFCHR || type == S_IFBLK)
                dev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
        r = remove_existing(w, pfd, base, false);
        if (r < 0)
                return r;
        if (r > 0)
                return -EAGAIN;
        if (mknodat(pfd, base, type | 0600, dev) < 0)
                return -errno;
        if (fchownat(pfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        /* The node was just created by us in a directory only we write to: not a symlink. */
        if (fchmodat(pfd, base, archive_entry_perm(e) & 07777, 0) < 0)
                return -errno;
        entry_times(e, ts);
        if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        return 0;
}

/* .wh.<name>: an overlay whiteout (char 0/0) hiding <name> of the lower layers. A member of
 * this same layer with that name wins: whiteouts only apply to lower layers. */
static int write_whiteout(struct unpack_writer *w, const char *name, int pfd, uid_t uid, gid_t gid)
{
        struct stat st;

        if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return 0;
        if (mknodat(pfd, name, S_IFCHR | 0000, makedev(0, 0)) < 0)
                return -errno;
        if (fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        return 0;
}

/* .wh..wh..opq: the directory hides all lower children, whatever the tar order. */
static int write_opaque(struct unpack_writer *w, const char *parent)
{
        _cleanup_close_ int fd = open_in_layer(w, *parent ? parent : ".", O_RDONLY | O_DIRECTORY);

        if (fd < 0)
                return fd;
        if (fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) < 0)
                return -errno;
        return 0;
}

static int entry_apply(struct unpack_writer *w, struct archive *a, struct archive_entry *e, const char *path,
                       struct ck_error **reterr)
{
        _cleanup_free_ char *parent = NULL;
        const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path, *victim = NULL;
        mode_t type = archive_entry_filetype(e);
        char sb[200];
        uid_t uid;
        gid_t gid;
        int pfd, r;

        if (entry_owner(e, &uid, &gid) < 0)
                return ck_error_set(reterr, -EINVAL, "%s: invalid owner", unpack_shown(path, sb));
        parent = strndup(path, slash ? (size_t)(slash - path) : 0);
        if (!parent)
                return ck_error_set(reterr, -ENOMEM, "out of memory");

        switch (unpack_whiteout_classify(base, &victim)) {
        case UNPACK_WHITEOUT_OPAQUE:
                r = parent_open(w, parent, &pfd);
                if (r >= 0)
                        r = write_opaque(w, parent);
                if (r < 0)
                        return ck_error_errno(reterr, r, "%s: cannot mark directory opaque",
                                              unpack_shown(path, sb));
                return 0;
        case UNPACK_WHITEOUT_META:
                log_debug("layer: ignoring whiteout metadata %s", unpack_shown(path, sb));
                return 0;
        case UNPACK_WHITEOUT_INVALID:
                return ck_error_set(reterr, -EINVAL, "%s: invalid whiteout name", unpack_shown(path, sb));
        case UNPACK_WHITEOUT_FILE:
                r = parent_open(w, parent, &pfd);
                if (r >= 0)
                        r = write_whiteout(w, victim, pfd, uid, gid);
                if (r < 0)
                        return ck_error_errno(reterr, r, "%s: cannot create whiteout",
                                              unpack_shown(path, sb));
                return 0;
        case UNPACK_NOT_WHITEOUT:
                break;
        }

        r = parent_open(w, parent, &pfd);
        if (r < 0)
                return ck_error_errno(reterr, r, "%s: cannot open parent directory", unpack_shown(path, sb));

        if (archive_entry_hardlink(e) || archive_entry_hardlink_utf8(e)) {
                r = write_hardlink(w, e, pfd, base);
                if (r < 0)
                        return ck_error_errno(reterr, r, "%s: cannot create hard link",
                                              unpack_shown(path, sb));
                return 0;
        }
        switch (type) {
        case AE_IFREG:
                r = write_file(w, a, e, pfd, base, uid, gid);
                break;
        case AE_IFDIR:
                r = write_dir(w, e, pfd, base, path, uid, gid);
                break;
        case AE_IFLNK:
                r = write_symlink(w, e, pfd, base, uid, gid);
                break;
        case AE_IFCHR:
        case AE_IFBLK:
        case AE_IFIFO:
                r = write_node(w, e, pfd, base, type, uid, gid);
                break;
        case AE_IFSOCK:
                log_debug("layer: skipping socket %s", unpack_shown(path, sb));
                return 0;
        default:
                return ck_error_set(reterr, -EINVAL, "%s: unsupported entry type 0%o",
                                    unpack_shown(path, sb), (unsigned)type);
        }
        if (r < 0)
                return ck_error_errno(reterr, r, "%s: cannot create", unpack_shown(path, sb));
        return 0;
}

int unpack_writer_entry(struct unpack_writer *w, struct archive *a, struct archive_entry *e,
                        struct ck_error **reterr)
{
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = unpack_member_admit(e, w->lim, &w->entries, &path, reterr);
        if (r < 0)
                return r;
        if (r > 0)
                return 0; /* "./": the layer root keeps its own attributes */

        r = entry_apply(w, a, e, path, &err);
        if (r == -EAGAIN) { /* a directory was replaced under the cached parent: once more */
                ck_error_free(TAKE_PTR(err)); /* else it would stand for this member, or the next failure */
                r = entry_apply(w, a, e, path, &err);
        }
        if (r < 0 && reterr && !*reterr)
                *reterr = TAKE_PTR(err);
        return r;
}

int unpack_writer_finish(struct unpack_writer *w, struct ck_error **reterr)
{
        char sb[200];

        parent_cache_drop(w);
        /* In member order, so that a directory named twice gets the later member's times. */
        for (size_t i = 0; i < w->n_dirs; i++) {
                struct unpack_dir_time *d = &w->dirs[i];
                _cleanup_close_ int fd = ck_openat2(w->root_fd, d->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                                                    0, RESOLVE_LAYER);
                struct stat st;

                if (fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP)
                        continue; /* replaced by a later member */
                if (fd < 0)
                        return ck_error_errno(reterr, fd, "%s: cannot open directory",
                                              unpack_shown(d->path, sb));
                if (fstat(fd, &st) < 0)
                        return ck_error_errno(reterr, -errno, "%s: cannot stat directory",
                                              unpack_shown(d->path, sb));
                if (st.st_dev != d->dev || st.st_ino != d->ino)
                        continue; /* the path leads to another directory now */
                if (futimens(fd, d->ts) < 0)
                        return ck_error_errno(reterr, -errno, "%s: cannot set times",
                                              unpack_shown(d->path, sb));
        }
        return 0;
}
