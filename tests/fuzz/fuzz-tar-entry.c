/* Fuzz target for the layer writers: the input is an uncompressed tar stream, unpacked into a
 * fresh root below a fresh temp dir (directory format), then written as an EROFS image into a
 * memfd. Whatever the input, nothing may appear next to the root: the process aborts if the
 * temp dir holds anything but `root` afterwards; an EROFS image that was written must carry
 * its superblock. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "manifest.h"
#include "store-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_only_root(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                abort();
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "root")) {
                        fprintf(stderr, "fuzz-tar-entry: %s/%s written outside the root\n", dir, de->d_name);
                        abort();
                }
        closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char tmp[] = "/tmp/ck-fuzz-tar-XXXXXX";
        struct image_limits lim;
        _cleanup_close_ int blob = -1, dfd = -1, root = -1;

        if (size > (1u << 20))
                return 0;
        if (!mkdtemp(tmp))
                abort();
        dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || mkdirat(dfd, "root", 0755) < 0)
                abort();
        root = openat(dfd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        blob = memfd_create("layer", MFD_CLOEXEC);
        if (root < 0 || blob < 0 || ck_write_all(blob, data, size) < 0 || lseek(blob, 0, SEEK_SET) != 0)
                abort();

        image_limits_default(&lim);
        lim.max_layer_unpacked = 64u << 20;
        lim.max_layer_entries = 10000;
        struct image_unpack_opts o = {.lim = &lim, .blob_size = size, .kind = IMAGE_MEDIA_LAYER_TAR};
        struct ck_error *e = NULL;
        (void)image_unpack_fd(blob, root, &o, &e);
        ck_error_free(e);

        check_only_root(tmp);
        (void)ck_rm_rf_at(AT_FDCWD, tmp);

        {
                _cleanup_close_ int img = memfd_create("erofs", MFD_CLOEXEC);
                uint8_t magic[4];
                if (img < 0 || lseek(blob, 0, SEEK_SET) != 0)
                        abort();
                o.format = IMAGE_LAYER_EROFS;
                e = NULL;
                if (image_unpack_fd(blob, img, &o, &e) == 0 &&
                    (pread(img, magic, sizeof(magic), 1024) != (ssize_t)sizeof(magic) ||
                     memcmp(magic, "\xe2\xe1\xf5\xe0", 4) != 0)) {
                        fprintf(stderr, "fuzz-tar-entry: EROFS image without a superblock\n");
                        abort();
                }
                ck_error_free(e);
        }
        return 0;
}
