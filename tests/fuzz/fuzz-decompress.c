/* Fuzz target for the layer decompressor (src/image/decompress.c). The first input byte picks
 * the kind (gzip, zstd, plain) and the chunk size the rest is fed in; the rest is the
 * compressed stream. Invariants (abort otherwise): the output never passes the cap, the
 * counter matches what was handed out, and a failed stream stays failed. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "decompress.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CAP (8u << 20)

struct feed {
        const uint8_t *data;
        size_t len, pos, chunk;
};

static ssize_t feed_read(void *userdata, const uint8_t **ret_buf)
{
        struct feed *f = userdata;
        size_t n = f->len - f->pos;

        if (n > f->chunk)
                n = f->chunk;
        *ret_buf = f->data + f->pos;
        f->pos += n;
        return (ssize_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const int kinds[] = {IMAGE_MEDIA_LAYER_GZIP, IMAGE_MEDIA_LAYER_ZSTD, IMAGE_MEDIA_LAYER_TAR};
        static const size_t chunks[] = {1, 3, 64, 4096, 1u << 20};
        struct image_decomp *d = NULL;
        struct feed f;
        uint64_t total = 0;
        ssize_t n;

        if (size < 1)
                return 0;
        f = (struct feed){.data = data + 1, .len = size - 1, .chunk = chunks[(data[0] >> 2) % 5]};
        if (image_decomp_new(kinds[(data[0] & 3) % 3], FUZZ_CAP, feed_read, &f, &d, NULL) < 0)
                abort();
        do {
                const uint8_t *buf = NULL;

                n = image_decomp_read(d, &buf, NULL);
                if (n > 0) {
                        total += (uint64_t)n;
                        /* Touch the output so ASan sees a bad pointer or length. */
                        if (buf[0] == 0x5a && buf[n - 1] == 0xa5)
                                total += 0;
                }
        } while (n > 0);
        if (total > FUZZ_CAP || total != image_decomp_total_out(d))
                abort();
        if (n < 0) {
                const uint8_t *buf;
                if (n != -EBADMSG && n != -EFBIG)
                        abort();
                if (image_decomp_read(d, &buf, NULL) >= 0)
                        abort();
        }
        image_decomp_free(d);
        return 0;
}
