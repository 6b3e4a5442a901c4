/* The directory layer format: each layer unpacked into its own directory tree by the confined
 * per-entry writer (unpack-entry.c) and given to overlayfs by path. The fallback for kernels
 * that cannot mount file-backed EROFS images (layer-format = dir, or auto there). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store-internal.h"

static int dir_create(int layers_fd, const char *name, int *ret_fd)
{
        int fd;

        if (mkdirat(layers_fd, name, 0755) < 0)
                return -errno;
        fd = openat(layers_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

static int dir_new(int out_fd, const struct image_limits *lim, void **ret)
{
        struct unpack_writer *w = malloc(sizeof(*w));

        if (!w)
                return -ENOMEM;
        unpack_writer_init(w, out_fd, lim);
        *ret = w;
        return 0;
}

static int dir_entry(void *w, struct archive *a, struct archive_entry *e, struct ck_error **reterr)
{
        return unpack_writer_entry(w, a, e, reterr);
}

static int dir_finish(void *w, struct ck_error **reterr)
{
        return unpack_writer_finish(w, reterr);
}

static void dir_free(void *w)
{
        if (!w)
                return;
        unpack_writer_clear(w);
        free(w);
}

static int dir_open_lower(const char *path, int *ret_fd, struct ck_error **reterr)
{
        (void)path;
        (void)reterr;
        *ret_fd = -1;
        return 0;
}

const struct image_layer_backend image_layer_dir = {
        .format = IMAGE_LAYER_DIR,
        .create = dir_create,
        .writer_new = dir_new,
        .writer_entry = dir_entry,
        .writer_finish = dir_finish,
        .writer_free = dir_free,
        .open_lower = dir_open_lower,
};
