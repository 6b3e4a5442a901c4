/* The EROFS layer format, writing side: the probe that decides the format new layers are
 * written in (it writes an empty image), the backend table unpack.c writes layers through (one
 * image file per layer, written sequentially by erofs-tree.c), and the choice of backend. Apart
 * from layer-erofs.c (format names and mounting) so that a program that only mounts layers
 * (conkerd, which asks conker-fetch to probe) does not link the writer and libarchive. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

#include "erofs-internal.h"
#include "store-internal.h"

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
        r = image_erofs_mount(source, &mfd, NULL);
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
