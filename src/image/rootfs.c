/* Rootfs assembly: an overlay of an image's unpacked layers (top first) with a per-container
 * upper and work dir, and the `mounts` rows that keep image_store_remove() from freeing the
 * layers of a mounted rootfs.
 *
 * Lower dirs are <data>/layers/<n> (short numbers), so that mount(2)'s one-page data holds
 * well over a hundred layers; past a page, or when a path holds a character that the option
 * syntax reserves, the layers are passed one by one with fsconfig("lowerdir+") (Linux 6.8).
 * A layer stored as an EROFS image (layers/<n> is a file) is mounted detached and passed to
 * fsconfig("lowerdir+") by its mount fd (Linux 6.13); the overlay then holds the only
 * reference to that mount, so unmounting the rootfs releases it and nothing else is mounted.
 * The row is written before the mount and removed after the umount, so a crash leaves at
 * worst a stale row, which image_store_mount_alive() recognises. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fs.h"
#include "log.h"
#include "rootfs.h"
#include "sqlite.h"
#include "store-internal.h"

#define MOUNT_DATA_MAX 4095

bool image_store_mount_alive(const char *target)
{
        struct statfs sfs;
        struct statx stx;

        if (statfs(target, &sfs) < 0 || sfs.f_type != OVERLAYFS_SUPER_MAGIC)
                return false;
        if (statx(AT_FDCWD, target, AT_SYMLINK_NOFOLLOW, 0, &stx) < 0)
                return false;
        return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
               (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

static int make_dir_at(int dirfd, const char *name, mode_t mode)
{
        if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static bool option_safe(const char *p)
{
        return !strpbrk(p, ",:\\\n");
}

/* Mounts with the new mount API, one lowerdir+ per layer: no page limit, no escaping. A layer
 * with a mount fd (an EROFS image, see layer-erofs.c) is passed by that fd. */
static int mount_fsconfig(char **lowers, const int *lower_fds, size_t n, const char *upper, const char *work,
                          const char *target)
{
        _cleanup_close_ int fsfd = -1, mfd = -1;

        fsfd = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
        if (fsfd < 0)
                return -errno;
        for (size_t i = 0; i < n; i++) {
                long k = lower_fds[i] >= 0 ? syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FD, "lowerdir+", NULL,
                                                     lower_fds[i])
                                           : syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "lowerdir+",
                                                     lowers[i], 0);
                if (k < 0)
                        return -errno;
        }
        if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0 ||
            syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "workdir", work, 0) < 0 ||
            syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return -errno;
        mfd = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, 0);
        if (mfd < 0)
                return -errno;
        if (syscall(SYS_move_mount, mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return -errno;
        return 0;
}

static int do_mount(char **lowers, const int *lower_fds, size_t n, const char *upper, const char *work,
                    const char *target, struct ck_error **reterr)
{
        _cleanup_buf_ struct ck_buf data;
        bool fits = option_safe(upper) && option_safe(work);
        int r;

        for (size_t i = 0; i < n; i++)
                if (lower_fds[i] >= 0)
                        fits = false;
        ck_buf_init(&data, MOUNT_DATA_MAX);
        r = ck_buf_append_str(&data, "lowerdir=");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (!option_safe(lowers[i]))
                        fits = false;
                if (i)
                        r = ck_buf_append_str(&data, ":");
                if (r >= 0)
                        r = ck_buf_append_str(&data, lowers[i]);
        }
        if (r >= 0)
                r = ck_buf_printf(&data, ",upperdir=%s,workdir=%s", upper, work);
        if (r == -ENOMEM)
                return ck_error_set(reterr, r, "out of memory");
        if (r < 0)
                fits = false;

        if (fits) {
                if (mount("overlay", target, "overlay", 0, (const char *)data.data) < 0)
                        return ck_error_errno(reterr, -errno, "cannot mount the rootfs overlay at %s",
                                              target);
                return 0;
        }
        r = mount_fsconfig(lowers, lower_fds, n, upper, work, target);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot mount the rootfs overlay (%zu layers) at %s", n,
                                      target);
        return 0;
}

static int mounts_exec(struct image_store *s, const char *sql, const char *a, const char *b, const char *c)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        if (a)
                sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
        if (b)
                sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
        if (c)
                sqlite3_bind_text(st, 3, c, -1, SQLITE_STATIC);
        if (sqlite3_bind_parameter_count(st) >= 4)
                sqlite3_bind_int64(st, 4, (int64_t)time(NULL));
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

static void strv_free_n(char **v, size_t n)
{
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

static void fds_close_n(int *v, size_t n)
{
        for (size_t i = 0; v && i < n; i++)
                safe_close(v[i]);
        free(v);
}

/* The layer's format is its file type: an EROFS image file gets a detached mount, a directory
 * is used by its path. */
static int lower_open(const char *path, int *ret_fd, struct ck_error **reterr)
{
        struct stat st;

        if (lstat(path, &st) < 0)
                return ck_error_errno(reterr, -errno, "cannot stat layer %s", path);
        if (S_ISREG(st.st_mode))
                return image_erofs_mount(path, ret_fd, reterr);
        *ret_fd = -1; /* a directory: overlayfs takes its path */
        return 0;
}

int image_rootfs_mount(struct image_store *s, const char *id, const char *state_dir, const char *target,
                       struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        _cleanup_(image_record_clear) struct image_record rec = {0};
        _cleanup_free_ char *state = NULL, *tgt = NULL, *upper = NULL, *work = NULL, *empty = NULL;
        _cleanup_close_ int sfd = -1;
        char **lowers = NULL;
        int *lower_fds = NULL;
        size_t n_lowers = 0;
        int r;

        r = ck_mkdir_p(state_dir, 0700);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot create state directory %s", state_dir);
        state = realpath(state_dir, NULL);
        tgt = realpath(target, NULL);
        if (!state || !tgt)
                return ck_error_errno(reterr, -errno, "cannot resolve %s", !state ? state_dir : target);
        sfd = open(state, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0 || fchmod(sfd, 0700) < 0)
                return ck_error_errno(reterr, -errno, "cannot open state directory %s", state);
        if (make_dir_at(sfd, "upper", 0755) < 0 || make_dir_at(sfd, "work", 0700) < 0)
                return ck_error_errno(reterr, -errno, "cannot create upper/work in %s", state);
        if (asprintf(&upper, "%s/upper", state) < 0 || asprintf(&work, "%s/work", state) < 0)
                return ck_error_set(reterr, -ENOMEM, "out of memory");

        r = ck_sqlite_exec(s->db, "BEGIN IMMEDIATE", reterr);
        if (r < 0)
                return r;
        r = image_store_get(s, id, &rec, reterr);
        if (r < 0)
                goto rollback;
        if (image_store_mount_alive(tgt)) {
                r = ck_error_set(reterr, -EBUSY, "%s is already a mount point of an overlay", tgt);
                goto rollback;
        }

        lowers = calloc(rec.n_layers ? rec.n_layers : 1, sizeof(char *));
        lower_fds = malloc((rec.n_layers ? rec.n_layers : 1) * sizeof(int));
        if (!lowers || !lower_fds) {
                r = ck_error_set(reterr, -ENOMEM, "out of memory");
                goto rollback;
        }
        for (size_t i = rec.n_layers; i > 0; i--) {
                lowers[n_lowers] = image_store_layer_dir(s, rec.diff_ids[i - 1]);
                if (!lowers[n_lowers]) {
                        r = ck_error_set(reterr, -ENOENT, "image %s: layer %s is not unpacked", rec.id,
                                         rec.layers[i - 1]);
                        goto rollback;
                }
                lower_fds[n_lowers] = -1;
                n_lowers++;
                r = lower_open(lowers[n_lowers - 1], &lower_fds[n_lowers - 1], reterr);
                if (r < 0)
                        goto rollback;
        }
        if (n_lowers == 0) { /* an image without layers: overlay still wants one lower */
                if (make_dir_at(sfd, "empty", 0755) < 0 || asprintf(&empty, "%s/empty", state) < 0) {
                        r = ck_error_errno(reterr, -errno, "cannot create %s/empty", state);
                        goto rollback;
                }
                lower_fds[n_lowers] = -1;
                lowers[n_lowers++] = TAKE_PTR(empty);
        }

        if (mounts_exec(s,
                        "INSERT OR REPLACE INTO mounts (target, image_id, state_dir, created) VALUES (?, ?, "
                        "?, ?)",
                        tgt, rec.id, state) < 0) {
                r = ck_error_set(reterr, -EIO, "database: %s", sqlite3_errmsg(s->db));
                goto rollback;
        }
        r = ck_sqlite_exec(s->db, "COMMIT", reterr);
        if (r < 0)
                goto rollback;

        r = do_mount(lowers, lower_fds, n_lowers, upper, work, tgt, reterr);
        if (r < 0)
                (void)mounts_exec(s, "DELETE FROM mounts WHERE target = ?", tgt, NULL, NULL);
        strv_free_n(lowers, n_lowers);
        fds_close_n(lower_fds, n_lowers);
        return r;
rollback:
        (void)ck_sqlite_exec(s->db, "ROLLBACK", NULL);
        strv_free_n(lowers, n_lowers);
        fds_close_n(lower_fds, n_lowers);
        return r;
}

int image_rootfs_umount(struct image_store *s, const char *id, const char *state_dir, const char *target,
                        bool remove_state, struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        _cleanup_free_ char *tgt = realpath(target, NULL);
        const char *t = tgt ? tgt : target;

        if (image_store_mount_alive(t)) {
                if (umount2(t, UMOUNT_NOFOLLOW) < 0) {
                        if (errno != EBUSY)
                                return ck_error_errno(reterr, -errno, "cannot unmount %s", t);
                        log_warn("rootfs %s is busy; detaching it lazily", t);
                        if (umount2(t, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                                return ck_error_errno(reterr, -errno, "cannot unmount %s", t);
                }
        }
        if (mounts_exec(s, "DELETE FROM mounts WHERE target = ?", t, NULL, NULL) < 0)
                return ck_error_set(reterr, -EIO, "database: %s", sqlite3_errmsg(s->db));
        (void)id;

        if (remove_state && state_dir) {
                _cleanup_close_ int sfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sfd < 0 && errno != ENOENT)
                        return ck_error_errno(reterr, -errno, "cannot open state directory %s", state_dir);
                if (sfd >= 0) {
                        static const char *const names[] = {"upper", "work", "empty"};
                        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                                int r = ck_rm_rf_at(sfd, names[i]);
                                if (r < 0)
                                        return ck_error_errno(reterr, r, "cannot remove %s/%s", state_dir,
                                                              names[i]);
                        }
                }
        }
        return 0;
}
