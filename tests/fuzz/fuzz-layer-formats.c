/* Fuzz target comparing the two layer formats. The input describes up to 32 tar members (names
 * from a small alphabet that includes whiteouts and opaque markers, every entry type, modes
 * with the special bits, owners, sizes around block edges, hard and symbolic links, xattrs),
 * which are built into a valid tar, so that the fuzzing reaches the writers rather than
 * libarchive's header checks. The tar is unpacked in the directory format and written as an
 * EROFS image. Both must accept it or both refuse it; when they accept it, the mounted image
 * must show the tree the directory holds: types, permission bits, owners, sizes and bytes, link
 * targets, device numbers, link counts, xattrs and modification times (not of whiteouts and of
 * directories no member names, which the directory format dates when it makes them).
 *
 * Needs root (owners) and a kernel that mounts file-backed EROFS images: without either it
 * exits 77 on its first input. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../unit/image-tar-helper.h"
#include "fs.h"
#include "manifest.h"
#include "store-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEMBERS_MAX 32
#define MEMBER_LEN  6 /* input bytes per member */
#define PATH_LEN    4096

static const char *const names[] = {"a", "b", "c", "d", ".wh.a", ".wh.b", ".wh..wh..opq", "e"};
/* With bit 3 of a name byte: the odd ones (a name of NAME_MAX bytes and one over, filled in on
 * the first input). */
static const char *names_odd[] = {".", "", NULL, NULL, "...", ".wh.", "a b", " "};
static char name_max[NAME_MAX + 1], name_over[NAME_MAX + 2];
static const size_t edge_sizes[] = {0, 1, 511, 512, 4095, 4096, 4097, 8193};

struct built {
        size_t n;
        struct tar_member m[MEMBERS_MAX];
        char path[MEMBERS_MAX][3 * (NAME_MAX + 2)];
        char link[MEMBERS_MAX][64];
        char data[MEMBERS_MAX][8200];
};

/* One member from six bytes: type, two name bytes, mode, size/time, and a byte for the rest. */
static void member_decode(struct built *b, size_t k, const uint8_t in[MEMBER_LEN])
{
        struct tar_member *m = &b->m[k];
        uint8_t op = in[0], n1 = in[1], n2 = in[2], mode = in[3], len = in[4], x = in[5];
        unsigned kind = op % 10, depth = 1 + (n1 >> 6) % 3;
        size_t size, off = 0;

        for (unsigned j = 0; j < depth; j++) { /* at most 3 names of NAME_MAX + 1 bytes: fits */
                uint8_t c = j == 0 ? n1 : j == 1 ? n2 : (uint8_t)(n1 ^ n2);
                off += (size_t)snprintf(b->path[k] + off, sizeof(b->path[k]) - off, "%s%s", j ? "/" : "",
                                        (c & 8) ? names_odd[c & 7] : names[c & 7]);
        }
        /* No trailing slash on a member that is not a directory: tar readers take such a file for
         * a directory and its data (zeros here) for the end of the archive. */
        while (off > 0 && b->path[k][off - 1] == '/' && kind != 2 && kind != 8)
                b->path[k][--off] = 0;
        m->path = b->path[k];
        m->perm = (mode & 1) ? (mode_t)((((unsigned)mode << 4) | (x & 0xf)) & 07777) : 0;
        m->uid = (x & 0x10) ? x : 0;
        m->gid = (x & 0x20) ? mode : 0;
        m->mtime = 1600000000 + (long)len * 1000;

        switch (kind) {
        case 1:
                if (x & 0x80) { /* blocks of zeros, up to ~260 KiB */
                        m->zeros = (size_t)len * 1021 + 1;
                        break;
                }
                _fallthrough_;
        case 0:
                size = (x & 0x40) ? edge_sizes[len & 7] : (size_t)len * 37 % (sizeof(b->data[k]) - 1);
                for (size_t i = 0; i < size; i++)
                        b->data[k][i] = (char)('A' + (i * 7 + op) % 26);
                b->data[k][size] = 0;
                m->data = b->data[k];
                break;
        case 2:
                m->type = AE_IFDIR;
                break;
        case 3:
                m->type = AE_IFLNK;
                snprintf(b->link[k], sizeof(b->link[k]), "%s%s",
                         (x & 1)   ? "/"
                         : (x & 2) ? "../"
                                   : "",
                         names[(x >> 2) & 7]);
                m->link = b->link[k];
                break;
        case 4:
                if (k == 0)
                        m->type = AE_IFDIR;
                else
                        m->hardlink = b->path[x % k];
                break;
        case 5:
                m->type = AE_IFCHR; /* 0/0: an overlay whiteout in either format */
                if (x & 0x40) {     /* a device */
                        m->type = (x & 0x80) ? AE_IFBLK : AE_IFCHR;
                        m->dev_major = len;
                        m->dev_minor = (unsigned)mode << 4 | (x & 0xf);
                }
                break;
        case 6:
                m->type = AE_IFIFO;
                break;
        case 7:
                m->data = "";
                m->xattr_name = (x & 1)   ? "user.x"
                                : (x & 2) ? "trusted.overlay.opaque"
                                          : "security.capability";
                m->xattr_value = (x & 4) ? "y" : "some value";
                break;
        case 8:
                m->type = AE_IFDIR;
                m->xattr_name = "trusted.overlay.opaque";
                m->xattr_value = "y";
                break;
        case 9: {
                /* A well-formed v2 capability (effective, CAP_NET_BIND_SERVICE). */
                static const char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x04};
                m->data = "\x7f"
                          "ELF";
                m->xattr_name = "security.capability";
                m->xattr_value = cap;
                m->xattr_len = sizeof(cap);
                break;
        }
        }
}

static struct built layer;

/* Whether the last member at rel is a directory: the times of directories made only for a
 * member's path are not the layer's (the directory format dates them when it makes them).
 * Whiteout names are markers, not entries. */
static bool explicit_dir(const char *rel)
{
        for (size_t k = layer.n; k > 0; k--) {
                const char *path = layer.m[k - 1].path, *slash = strrchr(path, '/');
                if (strncmp(slash ? slash + 1 : path, ".wh.", 4) == 0)
                        continue;
                if (strcmp(path, rel) == 0)
                        return layer.m[k - 1].type == AE_IFDIR && !layer.m[k - 1].hardlink;
        }
        return false;
}

static void differ(const char *rel, const char *what)
{
        fprintf(stderr, "fuzz-layer-formats: /%s: %s differs between the formats\n", rel, what);
        abort();
}

static void same_xattrs(const char *a, const char *b, const char *rel)
{
        char la[4096], lb[4096], va[4096], vb[4096];
        ssize_t na = llistxattr(a, la, sizeof(la)), nb = llistxattr(b, lb, sizeof(lb));

        if (na < 0 || nb < 0)
                differ(rel, "the xattr list (unreadable)");
        for (ssize_t i = 0; i < na; i += (ssize_t)strlen(la + i) + 1) {
                ssize_t xa = lgetxattr(a, la + i, va, sizeof(va)), xb = lgetxattr(b, la + i, vb, sizeof(vb));
                if (xa != xb || (xa > 0 && memcmp(va, vb, (size_t)xa) != 0))
                        differ(rel, la + i);
        }
        for (ssize_t i = 0; i < nb; i += (ssize_t)strlen(lb + i) + 1)
                if (lgetxattr(a, lb + i, va, sizeof(va)) < 0)
                        differ(rel, lb + i);
}

static void same_bytes(const char *a, const char *b, const char *rel)
{
        _cleanup_close_ int fa = open(a, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int fb = open(b, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_free_ uint8_t *da = NULL, *db = NULL;
        size_t la = 0, lb = 0;

        if (fa < 0 || fb < 0 || ck_read_fd(fa, 1u << 20, &da, &la) < 0 ||
            ck_read_fd(fb, 1u << 20, &db, &lb) < 0)
                differ(rel, "readability");
        if (la != lb || (la && memcmp(da, db, la) != 0))
                differ(rel, "the content");
}

static void same_tree(const char *a, const char *b, const char *rel);

static void same_entries(const char *a, const char *b, const char *rel)
{
        DIR *da = opendir(a), *db = opendir(b);
        struct dirent *de;
        size_t ca = 0, cb = 0;

        if (!da || !db)
                differ(rel, "openability");
        while ((de = readdir(da))) {
                char pa[PATH_LEN], pb[PATH_LEN], pr[PATH_LEN];
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                ca++;
                snprintf(pa, sizeof(pa), "%s/%s", a, de->d_name);
                snprintf(pb, sizeof(pb), "%s/%s", b, de->d_name);
                snprintf(pr, sizeof(pr), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
                same_tree(pa, pb, pr);
        }
        while ((de = readdir(db)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        cb++;
        if (ca != cb)
                differ(rel, "the number of entries");
        closedir(da);
        closedir(db);
}

/* a: the directory format's tree, b: the mounted image's. */
static void same_tree(const char *a, const char *b, const char *rel)
{
        struct stat sa, sb;
        bool whiteout;

        if (lstat(a, &sa) < 0 || lstat(b, &sb) < 0)
                differ(rel, "existence");
        if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT))
                differ(rel, "the type");
        whiteout = S_ISCHR(sa.st_mode) && sa.st_rdev == 0;
        if (*rel) { /* the layer root keeps the attributes of whatever it is mounted on */
                if ((sa.st_mode & 07777) != (sb.st_mode & 07777))
                        differ(rel, "the mode");
                if (sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid)
                        differ(rel, "the owner");
                if (!whiteout && (!S_ISDIR(sa.st_mode) || explicit_dir(rel)) && sa.st_mtime != sb.st_mtime) {
                        fprintf(stderr,
                                "fuzz-layer-formats: mtime %lld in the directory, %lld in the image\n",
                                (long long)sa.st_mtime, (long long)sb.st_mtime);
                        differ(rel, "the mtime");
                }
                same_xattrs(a, b, rel);
        }
        if (!S_ISDIR(sa.st_mode) && sa.st_nlink != sb.st_nlink)
                differ(rel, "the link count");
        if ((S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode)) && sa.st_rdev != sb.st_rdev)
                differ(rel, "the device number");
        if (S_ISLNK(sa.st_mode)) {
                char ta[PATH_LEN], tb[PATH_LEN];
                ssize_t na = readlink(a, ta, sizeof(ta)), nb = readlink(b, tb, sizeof(tb));
                if (na < 0 || na != nb || memcmp(ta, tb, (size_t)na) != 0)
                        differ(rel, "the link target");
        } else if (S_ISREG(sa.st_mode)) {
                if (sa.st_size != sb.st_size)
                        differ(rel, "the size");
                same_bytes(a, b, rel);
        } else if (S_ISDIR(sa.st_mode)) {
                same_entries(a, b, rel);
        }
}

static int unpack_as(int blob, int target_fd, size_t size, int format)
{
        struct image_limits lim;
        struct ck_error *e = NULL;
        int r;

        image_limits_default(&lim);
        lim.max_layer_unpacked = 16u << 20;
        struct image_unpack_opts o = {
                .lim = &lim, .blob_size = size, .kind = IMAGE_MEDIA_LAYER_TAR, .format = format};
        if (lseek(blob, 0, SEEK_SET) != 0)
                abort();
        r = image_unpack_fd(blob, target_fd, &o, &e);
        ck_error_free(e);
        return r;
}

static void check_can_run(int dirfd)
{
        static int checked;

        if (checked)
                return;
        checked = 1;
        if (geteuid() != 0) {
                fprintf(stderr, "fuzz-layer-formats: needs root (the layers' owners), skipping\n");
                exit(77);
        }
        if (image_erofs_probe(dirfd) < 0) {
                fprintf(stderr,
                        "fuzz-layer-formats: this kernel does not mount file-backed EROFS, skipping\n");
                exit(77);
        }
        umask(077); /* conkerd's: no mode in the layer may come from it */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char tmp[] = "/tmp/ck-fuzz-formats-XXXXXX", img[64], root[64], mnt[64];
        _cleanup_close_ int dfd = -1, root_fd = -1, blob = -1, img_fd = -1, mount_fd = -1;
        _cleanup_free_ uint8_t *tar = NULL;
        size_t n = 0, len = 0;
        int r_dir, r_erofs;

        if (!names_odd[2]) {
                memset(name_max, 'n', NAME_MAX);
                memset(name_over, 'o', NAME_MAX + 1);
                names_odd[2] = name_max;
                names_odd[3] = name_over;
        }
        memset(&layer.m, 0, sizeof(layer.m));
        for (; n < MEMBERS_MAX && (n + 1) * MEMBER_LEN <= size; n++)
                member_decode(&layer, n, data + n * MEMBER_LEN);
        if (n == 0)
                return 0;
        layer.n = n;
        tar = tar_build(layer.m, n, 0, &len);

        if (!mkdtemp(tmp))
                abort();
        dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                abort();
        check_can_run(dfd);
        snprintf(root, sizeof(root), "%s/root", tmp);
        snprintf(img, sizeof(img), "%s/layer.erofs", tmp);
        blob = memfd_create("layer", MFD_CLOEXEC);
        if (mkdir(root, 0755) < 0 || blob < 0 || ck_write_all(blob, tar, len) < 0)
                abort();
        root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        img_fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (root_fd < 0 || img_fd < 0)
                abort();

        r_dir = unpack_as(blob, root_fd, len, IMAGE_LAYER_DIR);
        r_erofs = unpack_as(blob, img_fd, len, IMAGE_LAYER_EROFS);
        if ((r_dir < 0) != (r_erofs < 0)) {
                fprintf(stderr, "fuzz-layer-formats: the directory format says %d, EROFS %d\n", r_dir,
                        r_erofs);
                abort();
        }
        if (r_dir == 0) {
                if (image_erofs_mount(img, &mount_fd, NULL) < 0) {
                        fprintf(stderr, "fuzz-layer-formats: the kernel refuses the EROFS image\n");
                        abort();
                }
                snprintf(mnt, sizeof(mnt), "/proc/self/fd/%d/.", mount_fd);
                same_tree(root, mnt, "");
        }
        mount_fd = safe_close(mount_fd);
        (void)ck_rm_rf_at(AT_FDCWD, tmp);
        return 0;
}
