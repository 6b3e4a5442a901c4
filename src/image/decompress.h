/* Streaming decompression of layer blobs: gzip with ISA-L's igzip (several times faster than
 * zlib), zstd with libzstd, and plain tar passed through. libarchive stays the tar reader; it
 * is handed the output of this decompressor (unpack.c), so the diff_id is hashed over exactly
 * what the decompressor produced.
 *
 * Internal to the image module (store/unpack side). Pull model: the decompressor asks its
 * source for compressed bytes as it needs them. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* Hands out the next compressed bytes: > 0 with *ret_buf set (valid until the next call), 0 at
 * the end of the input, or -errno. */
typedef ssize_t (*image_decomp_source_fn)(void *userdata, const uint8_t **ret_buf);

struct image_decomp;

/* kind: IMAGE_MEDIA_LAYER_GZIP, IMAGE_MEDIA_LAYER_ZSTD or IMAGE_MEDIA_LAYER_TAR (manifest.h).
 * max_out caps the total output (decompression bombs): past it, read() fails with -EFBIG.
 * Free with image_decomp_free(). */
int image_decomp_new(int kind, uint64_t max_out, image_decomp_source_fn source, void *userdata,
                     struct image_decomp **ret, struct ck_error **reterr);

/* Output buffers used in turn by a gzip or zstd stream. */
#define IMAGE_DECOMP_RING 4

/* Returns > 0 bytes of output at *ret_buf, 0 at the clean end of
 * the stream, or -errno: -EBADMSG for a corrupt or truncated stream or trailing bytes that are
 * not another gzip member / zstd frame, -EFBIG past max_out, or what the source returned.
 * Concatenated gzip members and zstd frames are one stream, as gzip(1) and zstd(1) treat them.
 * After a failure every further call fails. An output stays unchanged until the call that
 * produces the image_decomp_ring()-th output after it: a reader may let another thread read
 * up to ring - 1 earlier outputs while it asks for the next. */
ssize_t image_decomp_read(struct image_decomp *d, const uint8_t **ret_buf, struct ck_error **reterr);

/* IMAGE_DECOMP_RING for gzip and zstd; 1 for plain tar (its output is the source's buffer,
 * valid until the next call). */
size_t image_decomp_ring(const struct image_decomp *d);

/* Total bytes produced so far. */
uint64_t image_decomp_total_out(const struct image_decomp *d);

void image_decomp_free(struct image_decomp *d);
