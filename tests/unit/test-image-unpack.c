/* Unit tests for the confined layer unpacker on tars built in the test: attributes, links,
 * whiteouts and opaque dirs, the xattr allow-list, hostile names and links, and the caps.
 * Every test runs against both layer formats: a directory tree, and an EROFS image that is
 * then mounted (file-backed) on the same root so that the same assertions read it. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs.h"
#include "image-tar-helper.h"
#include "manifest.h"
#include "store-internal.h"

static char tmpdir[64];
static int root_fd = -1;
static int format = IMAGE_LAYER_DIR; /* the layer format of the group being run */
static int erofs_ok = -1;            /* image_erofs_probe() result, in the EROFS group */
static bool root_mounted;

static int setup(void **state)
{
        char p[128];

        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-unpack-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(p, sizeof(p), "%s/root", tmpdir);
        if (mkdir(p, 0755) < 0)
                return -1;
        snprintf(p, sizeof(p), "%s/canary", tmpdir);
        {
                _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                if (fd < 0 || write(fd, "canary", 6) != 6)
                        return -1;
        }
        snprintf(p, sizeof(p), "%s/root", tmpdir);
        root_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return root_fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
        char p[128];

        root_fd = safe_close(root_fd);
        if (root_mounted) {
                snprintf(p, sizeof(p), "%s/root", tmpdir);
                if (umount2(p, MNT_DETACH) < 0)
                        return -1;
                root_mounted = false;
        }
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

/* Writes the layer (for the EROFS format into tmpdir/layer.erofs, then mounted on the root). */
static int unpack_into_root(int blob_fd, struct image_unpack_opts *o, struct ck_error **e)
{
        char img[128], root[128];
        _cleanup_close_ int fd = -1;
        int r;

        o->format = format;
        if (format == IMAGE_LAYER_DIR)
                return image_unpack_fd(blob_fd, root_fd, o, e);
        if (erofs_ok != 0)
                skip();
        snprintf(img, sizeof(img), "%s/layer.erofs", tmpdir);
        snprintf(root, sizeof(root), "%s/root", tmpdir);
        fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        r = image_unpack_fd(blob_fd, fd, o, e);
        if (r < 0)
                return r;
        root_fd = safe_close(root_fd);
        if (root_mounted)
                assert_int_equal(umount2(root, MNT_DETACH), 0);
        assert_int_equal(mount(img, root, "erofs", MS_RDONLY, NULL), 0);
        root_mounted = true;
        root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(root_fd >= 0);
        return 0;
}

static void canary_intact(void)
{
        char p[128];
        _cleanup_free_ uint8_t *d = NULL;
        size_t n = 0;
        struct stat st;

        snprintf(p, sizeof(p), "%s/canary", tmpdir);
        assert_int_equal(ck_read_file(p, 100, &d, &n, NULL), 0);
        assert_int_equal(n, 6);
        assert_memory_equal(d, "canary", 6);
        /* Nothing new next to the root either. */
        snprintf(p, sizeof(p), "%s/etc", tmpdir);
        assert_int_equal(lstat(p, &st), -1);
        snprintf(p, sizeof(p), "%s/evil", tmpdir);
        assert_int_equal(lstat(p, &st), -1);
}

/* Unpacks members (compressed or not) with the given limits; returns the result. */
static int unpack(const struct tar_member *m, size_t n, int compress, const struct image_limits *lim,
                  struct ck_error **e)
{
        struct image_limits def;
        _cleanup_free_ uint8_t *tar = NULL;
        _cleanup_close_ int fd = memfd_create("layer", MFD_CLOEXEC);
        char diff_id[72];
        size_t len = 0;

        if (!lim) {
                image_limits_default(&def);
                lim = &def;
        }
        tar = tar_build(m, n, compress, &len);
        assert_int_equal(ck_write_all(fd, tar, len), 0);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        if (compress) {
                /* diff_id is the digest of the uncompressed stream: build that too. */
                _cleanup_free_ uint8_t *plain = NULL;
                size_t pl = 0;
                plain = tar_build(m, n, 0, &pl);
                tar_digest(plain, pl, diff_id);
        } else {
                tar_digest(tar, len, diff_id);
        }
        struct image_unpack_opts o = {
                .lim = lim,
                .diff_id = diff_id,
                .blob_size = len,
                .kind = compress == 2   ? IMAGE_MEDIA_LAYER_ZSTD
                        : compress == 1 ? IMAGE_MEDIA_LAYER_GZIP
                                        : IMAGE_MEDIA_LAYER_TAR,
        };
        int r = unpack_into_root(fd, &o, e);
        if (r < 0 && e && *e)
                print_message("unpack: %s\n", (*e)->msg);
        return r;
}

static void test_tree_attributes(void **state)
{
        const struct tar_member m[] = {
                {.path = "./", .type = AE_IFDIR, .perm = 0700},
                {.path = "usr/", .type = AE_IFDIR, .perm = 0755, .mtime = 1600000000},
                {.path = "usr/bin/", .type = AE_IFDIR, .perm = 0755, .mtime = 1600000001},
                {.path = "usr/bin/tool", .perm = 04755, .uid = 1000, .gid = 1000, .data = "#!/bin/sh\n"},
                {.path = "usr/bin/alias", .hardlink = "usr/bin/tool"},
                {.path = "usr/bin/sh", .type = AE_IFLNK, .link = "/bin/busybox"},
                {.path = "/abs/file", .data = "absolute names land in the root"},
                {.path = "./dot/./file", .data = "dots"},
                {.path = "deep/implicit/parent/file", .data = "parents made"},
                {.path = "fifo", .type = AE_IFIFO, .perm = 0600},
                {.path = "usr/bin/tool2", .data = "x", .uid = 7, .gid = 8, .perm = 02750},
        };
        _cleanup_error_ struct ck_error *e = NULL;
        struct stat a, b;
        char link[64] = {0};

        assert_int_equal(unpack(m, ELEMENTSOF(m), 1, NULL, &e), 0);
        assert_int_equal(fstatat(root_fd, "usr/bin/tool", &a, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(a.st_mode & 07777, 04755); /* setuid survives the chown */
        assert_int_equal(a.st_uid, 1000);
        assert_int_equal(a.st_gid, 1000);
        assert_int_equal(a.st_size, 10);
        assert_int_equal(fstatat(root_fd, "usr/bin/alias", &b, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(a.st_ino, b.st_ino);
        assert_int_equal(a.st_nlink, 2);
        assert_true(readlinkat(root_fd, "usr/bin/sh", link, sizeof(link) - 1) > 0);
        assert_string_equal(link, "/bin/busybox");
        assert_int_equal(fstatat(root_fd, "abs/file", &a, 0), 0);
        assert_int_equal(fstatat(root_fd, "dot/file", &a, 0), 0);
        assert_int_equal(fstatat(root_fd, "deep/implicit/parent/file", &a, 0), 0);
        assert_int_equal(fstatat(root_fd, "fifo", &a, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISFIFO(a.st_mode));
        assert_int_equal(fstatat(root_fd, "usr/bin/tool2", &a, 0), 0);
        assert_int_equal(a.st_mode & 07777, 02750);
        assert_int_equal(a.st_uid, 7);
        /* Directory times are set after their children were written. */
        assert_int_equal(fstatat(root_fd, "usr", &a, 0), 0);
        assert_int_equal(a.st_mtime, 1600000000);
        assert_int_equal(fstatat(root_fd, "usr/bin", &a, 0), 0);
        assert_int_equal(a.st_mtime, 1600000001);
        canary_intact();
}

static void test_whiteouts_and_opaque(void **state)
{
        /* The opaque marker comes before its directory's own entry: order must not matter. */
        const struct tar_member m[] = {
                {.path = "etc/.wh..wh..opq"},
                {.path = "etc/", .type = AE_IFDIR, .perm = 0755},
                {.path = "etc/passwd", .data = "root:x:0:0::/root:/bin/sh\n"},
                {.path = "bin/.wh.removed"},
                {.path = ".wh.gone-dir"},
                {.path = ".wh..wh.plnk"},
        };
        _cleanup_error_ struct ck_error *e = NULL;
        struct stat st;
        char v[8] = {0};

        assert_int_equal(unpack(m, ELEMENTSOF(m), 0, NULL, &e), 0);
        assert_int_equal(fstatat(root_fd, "bin/removed", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISCHR(st.st_mode));
        assert_int_equal(st.st_rdev, makedev(0, 0));
        assert_int_equal(fstatat(root_fd, "gone-dir", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISCHR(st.st_mode));
        assert_int_equal(fstatat(root_fd, "bin/.wh.removed", &st, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(fstatat(root_fd, ".wh..wh.plnk", &st, AT_SYMLINK_NOFOLLOW), -1);
        {
                _cleanup_close_ int fd = openat(root_fd, "etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                assert_int_equal(fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v)), 1);
                assert_int_equal(v[0], 'y');
        }
        assert_int_equal(fstatat(root_fd, "etc/passwd", &st, 0), 0);
        assert_int_equal(fstatat(root_fd, "etc/.wh..wh..opq", &st, AT_SYMLINK_NOFOLLOW), -1);
}

static void test_bad_whiteouts_rejected(void **state)
{
        static const char *const bad[] = {".wh.", "a/.wh..", "a/.wh..."};

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                const struct tar_member m[] = {{.path = bad[i]}};
                _cleanup_error_ struct ck_error *e = NULL;
                assert_int_equal(unpack(m, 1, 0, NULL, &e), -EINVAL);
                assert_non_null(strstr(e->msg, "whiteout"));
        }
        canary_intact();
}

static void test_xattr_allow_list(void **state)
{
        const struct tar_member m[] = {
                {.path = "keep", .data = "1", .xattr_name = "user.note", .xattr_value = "kept"},
                {.path = "ovl", .data = "2", .xattr_name = "user.overlay.redirect", .xattr_value = "/x"},
                {.path = "trusted", .data = "3", .xattr_name = "trusted.overlay.opaque", .xattr_value = "y"},
                {.path = "selinux", .data = "4", .xattr_name = "security.selinux", .xattr_value = "x"},
                {.path = "dir/",
                 .type = AE_IFDIR,
                 .xattr_name = "trusted.overlay.opaque",
                 .xattr_value = "y"},
        };
        _cleanup_error_ struct ck_error *e = NULL;
        char v[16] = {0};

        assert_int_equal(unpack(m, ELEMENTSOF(m), 0, NULL, &e), 0);
        {
                _cleanup_close_ int fd = openat(root_fd, "keep", O_RDONLY | O_CLOEXEC);
                assert_int_equal(fgetxattr(fd, "user.note", v, sizeof(v)), 4);
        }
        {
                _cleanup_close_ int fd = openat(root_fd, "ovl", O_RDONLY | O_CLOEXEC);
                assert_int_equal(fgetxattr(fd, "user.overlay.redirect", v, sizeof(v)), -1);
        }
        {
                _cleanup_close_ int fd = openat(root_fd, "trusted", O_RDONLY | O_CLOEXEC);
                assert_int_equal(fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v)), -1);
        }
        {
                _cleanup_close_ int fd = openat(root_fd, "dir", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                assert_int_equal(fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v)), -1);
        }
}

static void test_hostile_names_and_links(void **state)
{
        {
                const struct tar_member m[] = {{.path = "../evil", .data = "x"}};
                _cleanup_error_ struct ck_error *e = NULL;
                assert_int_equal(unpack(m, 1, 0, NULL, &e), -EINVAL);
        }
        {
                const struct tar_member m[] = {{.path = "a/../../evil", .data = "x"}};
                _cleanup_error_ struct ck_error *e = NULL;
                assert_int_equal(unpack(m, 1, 0, NULL, &e), -EINVAL);
        }
        {
                /* A symlink to the root's parent, then a write through it: resolved in the root
                 * it lands inside; resolved as a plain path it would replace the canary. */
                const struct tar_member m[] = {
                        {.path = "parent", .type = AE_IFLNK, .link = ".."},
                        {.path = "parent/canary", .data = "overwritten"},
                };
                _cleanup_error_ struct ck_error *e = NULL;
                struct stat st;
                if (unpack(m, ELEMENTSOF(m), 0, NULL, &e) == 0)
                        assert_int_equal(fstatat(root_fd, "canary", &st, 0), 0);
        }
        canary_intact();
        {
                /* Symlinks out of the root, then writes through them: they land inside. "up"
                 * climbs past the host's / and comes back down to tmpdir, so that an escape
                 * replaces the canary (and writes nowhere else on the host). */
                char target[128], up[160];
                snprintf(target, sizeof(target), "%s", tmpdir);
                snprintf(up, sizeof(up), "../../../../../..%s", tmpdir);
                const struct tar_member m[] = {
                        {.path = "up", .type = AE_IFLNK, .link = up},
                        {.path = "abs", .type = AE_IFLNK, .link = target},
                        {.path = "up/canary", .data = "overwritten"},
                        {.path = "abs/canary", .data = "overwritten"},
                        {.path = "abs/evil", .data = "x"},
                };
                _cleanup_error_ struct ck_error *e = NULL;
                struct stat st;
                int r = unpack(m, ELEMENTSOF(m), 0, NULL, &e);
                /* Confined (written under the root) or rejected: both keep the host safe. */
                if (r == 0) {
                        assert_int_equal(fstatat(root_fd, "canary", &st, 0), 0);
                }
        }
        canary_intact();
        {
                const struct tar_member m[] = {{.path = "link", .hardlink = "../canary"}};
                _cleanup_error_ struct ck_error *e = NULL;
                assert_int_equal(unpack(m, 1, 0, NULL, &e), -EINVAL);
        }
        {
                char abs[128];
                snprintf(abs, sizeof(abs), "%s/canary", tmpdir);
                const struct tar_member m[] = {{.path = "link2", .hardlink = abs}};
                _cleanup_error_ struct ck_error *e = NULL;
                /* Resolved in the root, where it does not exist. */
                assert_int_equal(unpack(m, 1, 0, NULL, &e), -ENOENT);
        }
        {
                /* A hard link through an in-layer symlink pointing outside. */
                const struct tar_member m[] = {
                        {.path = "out", .type = AE_IFLNK, .link = "../.."},
                        {.path = "link3", .hardlink = "out/canary"},
                };
                _cleanup_error_ struct ck_error *e = NULL;
                int r = unpack(m, ELEMENTSOF(m), 0, NULL, &e);
                struct stat st;
                if (r == 0) { /* then it linked the in-root canary written above */
                        assert_int_equal(fstatat(root_fd, "link3", &st, 0), 0);
                        assert_int_equal(st.st_nlink, 2);
                }
        }
        canary_intact();
}

static void test_replacements_in_one_layer(void **state)
{
        const struct tar_member m[] = {
                {.path = "x/", .type = AE_IFDIR},
                {.path = "x/y", .data = "under the dir"},
                {.path = "x", .data = "now a file"}, /* file over dir */
                {.path = "x/", .type = AE_IFDIR},    /* dir over file */
                {.path = "x/z", .data = "z"},
                {.path = "dup", .data = "first"},
                {.path = "dup", .data = "second"}, /* last one wins */
                {.path = "ln", .type = AE_IFLNK, .link = "dup"},
                {.path = "ln", .data = "file over symlink"},
                {.path = "keep", .data = "a member of this layer"},
                {.path = ".wh.keep"}, /* whiteouts only hide lower layers */
                {.path = ".wh.later"},
                {.path = "later", .data = "file after its whiteout"},
                {.path = "sl", .type = AE_IFLNK, .link = "/nowhere"},
                {.path = "hl-to-symlink", .hardlink = "sl"},
        };
        _cleanup_error_ struct ck_error *e = NULL;
        struct stat st, st2;
        char buf[64] = {0};

        assert_int_equal(unpack(m, ELEMENTSOF(m), 0, NULL, &e), 0);
        assert_null(e); /* the dir-over-file retry leaves no error behind */
        assert_int_equal(fstatat(root_fd, "x", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(fstatat(root_fd, "x/y", &st, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(fstatat(root_fd, "x/z", &st, AT_SYMLINK_NOFOLLOW), 0);
        {
                _cleanup_close_ int fd = openat(root_fd, "dup", O_RDONLY | O_CLOEXEC);
                assert_int_equal(read(fd, buf, sizeof(buf) - 1), 6);
                assert_string_equal(buf, "second");
        }
        assert_int_equal(fstatat(root_fd, "ln", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(fstatat(root_fd, "keep", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(fstatat(root_fd, "later", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(fstatat(root_fd, "sl", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(fstatat(root_fd, "hl-to-symlink", &st2, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISLNK(st2.st_mode));
        assert_int_equal(st.st_ino, st2.st_ino);
}

/* A layer that fails after a member was applied on the second try (a directory replaced under
 * the cached parent) reports the member that failed, not the retried one. */
static void test_failure_after_a_retried_member_names_the_failure(void **state)
{
        const struct tar_member m[] = {
                {.path = "x/", .type = AE_IFDIR},
                {.path = "x/y", .data = "under the dir"},
                {.path = "x", .data = "now a file"},
                {.path = "x/", .type = AE_IFDIR}, /* applied on the second try in the dir format */
                {.path = "x/z", .data = "z"},
                {.path = "../evil", .data = "x"},
        };
        _cleanup_error_ struct ck_error *e = NULL;

        (void)state;
        assert_int_equal(unpack(m, ELEMENTSOF(m), 0, NULL, &e), -EINVAL);
        assert_non_null(e);
        assert_non_null(strstr(e->msg, "../evil"));
        assert_null(strstr(e->msg, "cannot create"));
        canary_intact();
}

static void test_capability_survives_chown(void **state)
{
        /* VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_BIND_SERVICE. */
        static const char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x04};
        const struct tar_member m[] = {
                {.path = "ping",
                 .data = "\x7f"
                         "ELF",
                 .uid = 1000,
                 .gid = 1000,
                 .perm = 0755,
                 .xattr_name = "security.capability",
                 .xattr_value = cap,
                 .xattr_len = sizeof(cap)},
        };
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_close_ int fd = -1;
        char got[32];
        struct stat st;

        assert_int_equal(unpack(m, ELEMENTSOF(m), 0, NULL, &e), 0);
        fd = openat(root_fd, "ping", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(st.st_uid, 1000);
        assert_int_equal(fgetxattr(fd, "security.capability", got, sizeof(got)), (ssize_t)sizeof(cap));
        assert_memory_equal(got, cap, sizeof(cap));
}

/* A security.capability the kernel's setxattr() would refuse is refused in both formats (an
 * EROFS image would carry it as written); v2 and v3 headers pass. */
static void test_invalid_capability_refused(void **state)
{
        static const char v1[12] = {0x00, 0x00, 0x00, 0x01, 0x00, 0x04};       /* revision 1 */
        static const char v3_short[20] = {0x01, 0x00, 0x00, 0x03, 0x00, 0x04}; /* v3 magic, v2 size */
        static const char v2_flags[20] = {0x03, 0x00, 0x00, 0x02, 0x00, 0x04}; /* unknown flag */
        static const char v3[24] = {0x01, 0x00, 0x00, 0x03, 0x00, 0x04};       /* rootid 0 */
        const struct {
                const char *value;
                size_t len;
        } bad[] = {{"some value", 10},
                   {v1, sizeof(v1)},
                   {v3_short, sizeof(v3_short)},
                   {v2_flags, sizeof(v2_flags)}};

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                const struct tar_member m[] = {
                        {.path = "bin/tool",
                         .data = "x",
                         .xattr_name = "security.capability",
                         .xattr_value = bad[i].value,
                         .xattr_len = bad[i].len},
                };
                _cleanup_error_ struct ck_error *e = NULL;

                assert_int_equal(unpack(m, ELEMENTSOF(m), 0, NULL, &e), -EINVAL);
                assert_non_null(strstr(e->msg, "bin/tool: invalid security.capability xattr"));
        }
        {
                const struct tar_member m[] = {
                        {.path = "tool",
                         .data = "x",
                         .xattr_name = "security.capability",
                         .xattr_value = v3,
                         .xattr_len = sizeof(v3)},
                };
                _cleanup_error_ struct ck_error *e = NULL;
                struct stat st;

                assert_int_equal(unpack(m, ELEMENTSOF(m), 0, NULL, &e), 0);
                assert_int_equal(fstatat(root_fd, "tool", &st, 0), 0);
        }
        canary_intact();
}

/* A directory created for a member's path is 0755 whatever the umask, and inside a
 * set-group-ID directory it gets that directory's group and the bit (as mkdir() does), in both
 * formats. */
static void test_implicit_dir_mode_and_group(void **state)
{
        const struct tar_member m[] = {
                {.path = "shared/", .type = AE_IFDIR, .perm = 02775, .gid = 105},
                {.path = "shared/sub/file", .data = "x", .gid = 7},
                {.path = "plain/sub/file", .data = "y"},
        };
        _cleanup_error_ struct ck_error *e = NULL;
        struct stat st;

        mode_t old_umask = umask(077); /* conkerd's: it must not reach the layer */
        int r;

        (void)state;
        r = unpack(m, ELEMENTSOF(m), 0, NULL, &e);
        umask(old_umask);
        assert_int_equal(r, 0);
        assert_int_equal(fstatat(root_fd, "shared/sub", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_mode & 07777, 02755);
        assert_int_equal(st.st_gid, 105);
        assert_int_equal(st.st_uid, 0);
        assert_int_equal(fstatat(root_fd, "shared/sub/file", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_gid, 7); /* a member's own group stands */
        assert_int_equal(fstatat(root_fd, "plain/sub", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        assert_int_equal(st.st_gid, 0);
}

/* A hard link that replaces a directory holding its own target finds no target (the directory
 * goes first, with what is under it), in both formats; one beside it replaces the directory. */
static void test_hard_link_over_the_directory_of_its_target(void **state)
{
        (void)state;
        {
                const struct tar_member m[] = {
                        {.path = "d/d/a", .data = "target"},
                        {.path = "d", .hardlink = "d/d/a"},
                };
                _cleanup_error_ struct ck_error *e = NULL;

                assert_int_equal(unpack(m, ELEMENTSOF(m), 0, NULL, &e), -ENOENT);
                assert_non_null(strstr(e->msg, "d: cannot create hard link"));
        }
        {
                const struct tar_member m[] = {
                        {.path = "t", .data = "target"},
                        {.path = "d/x", .data = "x"},
                        {.path = "d", .hardlink = "t"},
                };
                _cleanup_error_ struct ck_error *e = NULL;
                struct stat st;

                assert_int_equal(unpack(m, ELEMENTSOF(m), 0, NULL, &e), 0);
                assert_int_equal(fstatat(root_fd, "d", &st, AT_SYMLINK_NOFOLLOW), 0);
                assert_true(S_ISREG(st.st_mode));
                assert_int_equal(st.st_nlink, 2);
        }
}

/* Directory times: a directory named twice keeps the later member's; a directory whose path
 * leads elsewhere by the end of the layer (a parent replaced by a symlink) dates nothing. Both
 * formats. */
static void test_directory_times(void **state)
{
        const struct tar_member m[] = {
                {.path = "b/", .type = AE_IFDIR, .mtime = 1600000100},
                {.path = "b/x", .data = "x"},
                {.path = "b/", .type = AE_IFDIR, .mtime = 1600000200},
                {.path = "a/b/", .type = AE_IFDIR, .mtime = 1600000300},
                {.path = "a", .type = AE_IFLNK, .link = "c"},
                {.path = "c/b/", .type = AE_IFDIR, .mtime = 1600000400},
        };
        _cleanup_error_ struct ck_error *e = NULL;
        struct stat st;

        (void)state;
        assert_int_equal(unpack(m, ELEMENTSOF(m), 0, NULL, &e), 0);
        assert_int_equal(fstatat(root_fd, "b", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_mtime, 1600000200);
        assert_int_equal(fstatat(root_fd, "c/b", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_mtime, 1600000400);
}

static void test_zstd_layer(void **state)
{
        const struct tar_member m[] = {
                {.path = "etc/os-release", .data = "ID=conker\n"},
                {.path = "big", .zeros = 512 << 10}, /* under the ratio floor */
        };
        _cleanup_error_ struct ck_error *e = NULL;
        struct stat st;

        assert_int_equal(unpack(m, ELEMENTSOF(m), 2, NULL, &e), 0);
        assert_int_equal(fstatat(root_fd, "etc/os-release", &st, 0), 0);
        assert_int_equal(st.st_size, 10);
        assert_int_equal(fstatat(root_fd, "big", &st, 0), 0);
        assert_int_equal(st.st_size, 512 << 10);
}

static void test_caps(void **state)
{
        struct image_limits lim;

        image_limits_default(&lim);
        {
                const struct tar_member m[] = {
                        {.path = "a", .data = "1"}, {.path = "b", .data = "2"}, {.path = "c", .data = "3"}};
                _cleanup_error_ struct ck_error *e = NULL;
                lim.max_layer_entries = 2;
                assert_int_equal(unpack(m, ELEMENTSOF(m), 0, &lim, &e), -E2BIG);
                lim.max_layer_entries = 1000;
        }
        {
                /* A gzip of zeros: tiny on the wire, huge unpacked. */
                const struct tar_member m[] = {{.path = "bomb", .zeros = 8 << 20}};
                _cleanup_error_ struct ck_error *e = NULL;
                lim.max_ratio = 10;
                assert_int_equal(unpack(m, 1, 1, &lim, &e), -EFBIG);
                assert_non_null(strstr(e->msg, "ratio"));
                lim.max_ratio = 100000;
        }
        {
                const struct tar_member m[] = {{.path = "big", .zeros = 4 << 20}};
                _cleanup_error_ struct ck_error *e = NULL;
                lim.max_layer_unpacked = 2 << 20;
                assert_int_equal(unpack(m, 1, 1, &lim, &e), -EFBIG);
                lim.max_layer_unpacked = UINT64_C(1) << 40;
        }
        {
                /* Members each under the cap whose sum is over it, in a plain tar (no decompressor to
                 * count): the layer's total counts. */
                const struct tar_member m[] = {{.path = "p1", .zeros = 1 << 20},
                                               {.path = "p2", .zeros = 1 << 20},
                                               {.path = "p3", .zeros = 1 << 20}};
                _cleanup_error_ struct ck_error *e = NULL;
                lim.max_layer_unpacked = 2 << 20;
                assert_int_equal(unpack(m, ELEMENTSOF(m), 0, &lim, &e), -EFBIG);
                assert_non_null(strstr(e->msg, "size is over the limit"));
                lim.max_layer_unpacked = UINT64_C(1) << 40;
        }
        {
                /* A sparse member: a few bytes in the stream, a size over the cap once unpacked. */
                const struct tar_member m[] = {{.path = "sparse", .data = "tail", .sparse_size = 8 << 20}};
                _cleanup_error_ struct ck_error *e = NULL;
                lim.max_layer_unpacked = 2 << 20;
                assert_int_equal(unpack(m, 1, 0, &lim, &e), -EFBIG);
                assert_non_null(strstr(e->msg, "larger than the unpacked layer limit"));
                lim.max_layer_unpacked = UINT64_C(1) << 40;
        }
        {
                char longname[300];
                memset(longname, 'n', sizeof(longname) - 1);
                longname[sizeof(longname) - 1] = 0;
                const struct tar_member m[] = {{.path = longname, .data = "x"}};
                _cleanup_error_ struct ck_error *e = NULL;
                assert_int_equal(unpack(m, 1, 0, &lim, &e), -ENAMETOOLONG);
                lim.max_name_len = 20;
                const struct tar_member m2[] = {{.path = "0123456789/0123456789/x", .data = "x"}};
                assert_int_equal(unpack(m2, 1, 0, &lim, NULL), -ENAMETOOLONG);
        }
}

static char *pattern(size_t len, char seed)
{
        char *s = malloc(len + 1);

        assert_non_null(s);
        for (size_t i = 0; i < len; i++)
                s[i] = (char)('a' + (seed + i * 7 + i / 4093) % 26);
        s[len] = 0;
        return s;
}

static void assert_content(const char *path, const char *want)
{
        _cleanup_close_ int fd = openat(root_fd, path, O_RDONLY | O_CLOEXEC);
        size_t len = strlen(want), got = 0;
        _cleanup_free_ char *buf = malloc(len + 2);

        assert_true(fd >= 0);
        for (;;) {
                ssize_t n = read(fd, buf + got, len + 1 - got);
                assert_true(n >= 0);
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        assert_int_equal(got, len);
        assert_memory_equal(buf, want, len);
}

/* With EROFS, checks the image with fsck.erofs when it is installed (a test dependency). */
static void erofs_fsck(void)
{
        char img[128];
        pid_t pid;
        int status = 0;

        if (format != IMAGE_LAYER_EROFS || access("/usr/bin/fsck.erofs", X_OK) < 0)
                return;
        snprintf(img, sizeof(img), "%s/layer.erofs", tmpdir);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (devnull >= 0)
                        dup2(devnull, STDOUT_FILENO);
                execl("/usr/bin/fsck.erofs", "fsck.erofs", img, (char *)NULL);
                _exit(127);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* Layouts at the edges of the EROFS writer (block-sized and block-crossing files, directories
 * over several blocks, names that sort before ".", long symlinks, big owners, xattrs that
 * push a tail out of its inode's block), checked through the same file API for both formats. */
static void test_layer_shapes(void **state)
{
        enum { MANY = 600 };
        _cleanup_free_ char *f4095 = pattern(4095, 1), *f4096 = pattern(4096, 2), *f4097 = pattern(4097, 3),
                            *f12289 = pattern(12289, 4), *tail = pattern(3000, 5), *lnk = pattern(4000, 6),
                            *xval = pattern(1500, 7);
        struct tar_member *m = calloc(MANY + 32, sizeof(*m));
        char(*names)[160] = calloc(MANY, sizeof(*names));
        _cleanup_error_ struct ck_error *e = NULL;
        char buf[4100];
        struct stat st;
        size_t n = 0, seen = 0;

        assert_non_null(m);
        assert_non_null(names);
        for (size_t i = 0; i < MANY; i++) {
                snprintf(names[i], sizeof(names[i]), "many/%03zu-%s", (i * 7919) % MANY,
                         "a-rather-long-name-so-that-the-directory-needs-several-blocks-of-dirents-"
                         "xxxxxxxxxxxxx");
                m[n++] = (struct tar_member){.path = names[i], .data = names[i]};
        }
        m[n++] = (struct tar_member){.path = "f4095", .data = f4095};
        m[n++] = (struct tar_member){.path = "f4096", .data = f4096};
        m[n++] = (struct tar_member){.path = "f4097", .data = f4097, .mtime = 1600000123};
        m[n++] = (struct tar_member){.path = "f12289", .data = f12289, .uid = 100000, .gid = 70000};
        m[n++] = (struct tar_member){.path = "empty", .data = ""};
        m[n++] = (struct tar_member){.path = "-dash", .data = "sorts before the dot"};
        m[n++] = (struct tar_member){.path = "+plus", .data = "and so does this"};
        m[n++] = (struct tar_member){.path = "UPPER", .data = "upper case sorts before lower"};
        m[n++] = (struct tar_member){.path = "~tilde", .data = "high bytes sort last"};
        m[n++] = (struct tar_member){.path = "long-link", .type = AE_IFLNK, .link = lnk};
        m[n++] = (struct tar_member){.path = "h1", .data = "linked"};
        m[n++] = (struct tar_member){.path = "many/h2", .hardlink = "h1"};
        m[n++] = (struct tar_member){.path = "deep/h3", .hardlink = "h1"};
        m[n++] = (struct tar_member){
                .path = "xtail", .data = tail, .xattr_name = "user.big", .xattr_value = xval};
        assert_int_equal(unpack(m, n, 1, NULL, &e), 0);
        erofs_fsck();

        {
                DIR *d = fdopendir(openat(root_fd, "many", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
                struct dirent *de;
                assert_non_null(d);
                while ((de = readdir(d)))
                        seen++;
                closedir(d);
                assert_int_equal(seen, MANY + 3); /* ".", "..", h2 */
        }
        for (size_t i = 0; i < MANY; i += 37)
                assert_content(names[i], names[i]);
        assert_content("f4095", f4095);
        assert_content("f4096", f4096);
        assert_content("f4097", f4097);
        assert_content("f12289", f12289);
        assert_content("empty", "");
        assert_content("-dash", "sorts before the dot");
        assert_content("+plus", "and so does this");
        assert_content("UPPER", "upper case sorts before lower");
        assert_content("~tilde", "high bytes sort last");
        assert_content("xtail", tail);
        assert_int_equal(fstatat(root_fd, "f12289", &st, 0), 0);
        assert_int_equal(st.st_uid, 100000);
        assert_int_equal(st.st_gid, 70000);
        assert_int_equal(fstatat(root_fd, "f4097", &st, 0), 0);
        assert_int_equal(st.st_mtime, 1600000123);
        assert_int_equal(fstatat(root_fd, "deep/h3", &st, 0), 0);
        assert_int_equal(st.st_nlink, 3);
        assert_int_equal(readlinkat(root_fd, "long-link", buf, sizeof(buf)), 4000);
        assert_memory_equal(buf, lnk, 4000);
        {
                _cleanup_close_ int fd = openat(root_fd, "xtail", O_RDONLY | O_CLOEXEC);
                char v[1600];
                assert_int_equal(fgetxattr(fd, "user.big", v, sizeof(v)), 1500);
                assert_memory_equal(v, xval, 1500);
        }
        free(names);
        free(m);
}

static void test_normalise(void **state)
{
        static const struct {
                const char *in, *out;
                int r;
        } cases[] = {
                {"a/b", "a/b", 0},     {"./a//b/", "a/b", 0}, {"/a/./b", "a/b", 0},
                {"///", NULL, 1},      {".", NULL, 1},        {"a/../b", NULL, -EINVAL},
                {"..", NULL, -EINVAL}, {"a/..b", "a/..b", 0}, {"...", "...", 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *out = NULL;
                int r = unpack_path_normalise(cases[i].in, 4096, &out);
                assert_int_equal(r, cases[i].r);
                if (cases[i].out)
                        assert_string_equal(out, cases[i].out);
        }
}

static void test_diff_id_checked(void **state)
{
        const struct tar_member m[] = {{.path = "f", .data = "x"}};
        struct image_limits lim;
        _cleanup_free_ uint8_t *tar = NULL;
        _cleanup_close_ int fd = memfd_create("layer", MFD_CLOEXEC);
        _cleanup_error_ struct ck_error *e = NULL;
        size_t len = 0;
        char wrong[72];

        image_limits_default(&lim);
        tar = tar_build(m, 1, 0, &len);
        assert_int_equal(ck_write_all(fd, tar, len), 0);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        tar_digest((const uint8_t *)"not it", 6, wrong);
        struct image_unpack_opts o = {
                .lim = &lim, .diff_id = wrong, .blob_size = len, .kind = IMAGE_MEDIA_LAYER_TAR};
        assert_int_equal(unpack_into_root(fd, &o, &e), -EBADMSG);
        assert_non_null(strstr(e->msg, "diff_id mismatch"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_normalise),
                cmocka_unit_test_setup_teardown(test_tree_attributes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_whiteouts_and_opaque, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_whiteouts_rejected, setup, teardown),
                cmocka_unit_test_setup_teardown(test_xattr_allow_list, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_names_and_links, setup, teardown),
                cmocka_unit_test_setup_teardown(test_replacements_in_one_layer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failure_after_a_retried_member_names_the_failure, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_capability_survives_chown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_invalid_capability_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_implicit_dir_mode_and_group, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hard_link_over_the_directory_of_its_target, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_directory_times, setup, teardown),
                cmocka_unit_test_setup_teardown(test_zstd_layer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
                cmocka_unit_test_setup_teardown(test_diff_id_checked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_layer_shapes, setup, teardown),
        };

        int failed;

        if (geteuid() != 0) {
                fprintf(stderr,
                        "test-image-unpack: needs root (chown, mknod, trusted.* xattrs); skipping\n");
                return 77;
        }
        format = IMAGE_LAYER_DIR;
        failed = cmocka_run_group_tests_name("directory layers", tests, NULL, NULL);
        format = IMAGE_LAYER_EROFS;
        {
                _cleanup_close_ int tmp_fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                erofs_ok = tmp_fd < 0 ? -errno : image_erofs_probe(tmp_fd);
        }
        if (erofs_ok != 0)
                fprintf(stderr,
                        "test-image-unpack: this kernel cannot mount EROFS layers (%s); skipping them\n",
                        strerror(-erofs_ok));
        failed += cmocka_run_group_tests_name("EROFS layers", tests, NULL, NULL);
        return ck_group_result(failed);
}
