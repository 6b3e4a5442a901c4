/* The EROFS layer format: choosing it, and mounting a layer image for the rootfs overlay.
 *
 * A layer image is never mounted where anyone can see it: fsopen("erofs") with the image file
 * as source gives a detached read-only mount, which is handed to overlayfs by file descriptor
 * (fsconfig FSCONFIG_SET_FD "lowerdir+") and closed; the EROFS mount then lives exactly as
 * long as the overlay that uses it, and nothing is left to clean up on a crash. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "erofs-internal.h"
#include "log.h"
#include "store-internal.h"

static const char *const format_names[] = {
        [IMAGE_LAYER_AUTO] = "auto",
        [IMAGE_LAYER_DIR] = "dir",
        [IMAGE_LAYER_EROFS] = "erofs",
};

int image_layer_format_from_string(const char *s)
{
        for (size_t i = 0; s && i < ELEMENTSOF(format_names); i++)
                if (strcmp(s, format_names[i]) == 0)
                        return (int)i;
        return -EINVAL;
}

const char *image_layer_format_to_string(enum image_layer_format f)
{
        return (size_t)f < ELEMENTSOF(format_names) ? format_names[f] : "unknown";
}

static int erofs_mount_source(const char *source, int *ret_fd)
{
        _cleanup_close_ int fsfd = -1;
        int mfd;

        fsfd = (int)syscall(SYS_fsopen, "erofs", FSOPEN_CLOEXEC);
        if (fsfd < 0)
                return -errno;
        if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "source", source, 0) < 0 ||
            syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 ||
            syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return -errno;
        /* Not nodev: overlayfs opens a lower device node through the lower mount, and a layer's
         * device nodes must behave as they do in a directory layer (the device cgroup decides). */
        mfd = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
        if (mfd < 0)
                return -errno;
        *ret_fd = mfd;
        return 0;
}

int image_erofs_mount(const char *path, int *ret_fd, struct ck_error **reterr)
{
        int r = erofs_mount_source(path, ret_fd);

        if (r < 0)
                return ck_error_errno(reterr, r, "cannot mount the EROFS layer %s", path);
        return 0;
}

int image_erofs_probe(int dirfd)
{
        _cleanup_close_ int img = -1, mfd = -1, ovl = -1;
        char source[64];
        int r;

        /* On the file system the layers will live on: EROFS reads its image through the page
         * cache of that file system, which some (tmpfs) do not offer. */
        img = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (img < 0)
                return -errno;
        r = erofs_write_empty(img);
        if (r < 0)
                return r;
        snprintf(source, sizeof(source), "/proc/self/fd/%d", img);
        r = erofs_mount_source(source, &mfd);
        if (r < 0)
                return r;
        ovl = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
        if (ovl < 0)
                return -errno;
        if (syscall(SYS_fsconfig, ovl, FSCONFIG_SET_FD, "lowerdir+", NULL, mfd) < 0)
                return -errno;
        return 0;
}

enum image_layer_format image_store_layer_format(struct image_store *s)
{
        int f;

        pthread_mutex_lock(&s->mutex);
        f = s->layer_format;
        if (!f) {
                f = s->lim.layer_format;
                if (f == IMAGE_LAYER_AUTO) {
                        int r = image_erofs_probe(s->layers_fd);
                        f = r == 0 ? IMAGE_LAYER_EROFS : IMAGE_LAYER_DIR;
                        log_debug("layers: %s (EROFS probe: %s)", image_layer_format_to_string(f),
                                  r == 0 ? "ok" : strerror(-r));
                }
                s->layer_format = f;
        }
        pthread_mutex_unlock(&s->mutex);
        return f;
}

static int erofs_create(int layers_fd, const char *name, int *ret_fd)
{
        /* One image file, written sequentially: no file per entry. */
        int fd = openat(layers_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

static int erofs_new(int out_fd, const struct image_limits *lim, void **ret)
{
        struct erofs_writer *w = malloc(sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        r = erofs_writer_init(w, out_fd, lim);
        if (r < 0) {
                erofs_writer_clear(w);
                free(w);
                return r;
        }
        *ret = w;
        return 0;
}

static int erofs_entry(void *w, struct archive *a, struct archive_entry *e, struct ck_error **reterr)
{
        return erofs_writer_entry(w, a, e, reterr);
}

static int erofs_finish(void *w, struct ck_error **reterr)
{
        return erofs_format_finish(w, reterr);
}

static void erofs_free(void *w)
{
        if (!w)
                return;
        erofs_writer_clear(w);
        free(w);
}

const struct image_layer_backend image_layer_erofs = {
        .format = IMAGE_LAYER_EROFS,
        .create = erofs_create,
        .writer_new = erofs_new,
        .writer_entry = erofs_entry,
        .writer_finish = erofs_finish,
        .writer_free = erofs_free,
        .open_lower = image_erofs_mount,
};

const struct image_layer_backend *image_layer_backend(enum image_layer_format f)
{
        return f == IMAGE_LAYER_EROFS ? &image_layer_erofs : &image_layer_dir;
}
