/* Streaming layer decompression (see decompress.h): igzip for gzip, libzstd for zstd, a
 * pass-through for plain tar. IMAGE_DECOMP_RING output buffers of DECOMP_OUT bytes per stream,
 * used in turn (so the digest thread can hash one while the next is filled), bound the
 * memory; zstd's window is bounded by libzstd's default limit (2^27) for streaming. */
#include <errno.h>
#include <inttypes.h>
#include <isa-l/igzip_lib.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "cleanup.h"
#include "decompress.h"
#include "hugebuf.h"
#include "manifest.h"

#define DECOMP_OUT (512u << 10)

struct image_decomp {
        int kind;
        uint64_t max_out, total_out;
        image_decomp_source_fn source;
        void *userdata;
        int err; /* sticky failure */

        const uint8_t *in; /* compressed bytes not consumed yet */
        size_t in_len;
        bool eof;  /* the source said end of input */
        bool done; /* zstd: the last frame ended (gzip: gz_phase) */

        uint8_t *ring; /* IMAGE_DECOMP_RING buffers of DECOMP_OUT bytes, one after another */
        uint8_t *outs[IMAGE_DECOMP_RING];
        uint8_t *out; /* outs[next], where the next output goes */
        size_t next;
        struct inflate_state *gz;
        enum { GZ_START, GZ_HEADER, GZ_DATA, GZ_TRAILER } gz_phase;
        uint8_t trailer[8]; /* CRC32 (not checked, see gzip_read()) and ISIZE */
        size_t trailer_len;
        uint64_t members; /* complete members so far */
        ZSTD_DStream *zs;
};

static int decomp_fail(struct image_decomp *d, int code, struct ck_error **reterr, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int decomp_fail(struct image_decomp *d, int code, struct ck_error **reterr, const char *fmt, ...)
{
        char msg[200];
        va_list ap;

        d->err = code;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return ck_error_set(reterr, code, "%s", msg);
}

/* Refills the input when it is used up. Returns 0, or -errno from the source. */
static int decomp_fill(struct image_decomp *d, struct ck_error **reterr)
{
        const uint8_t *buf = NULL;
        ssize_t n;

        if (d->in_len > 0 || d->eof)
                return 0;
        n = d->source(d->userdata, &buf);
        if (n < 0) {
                d->err = (int)n;
                return ck_error_errno(reterr, (int)n, "cannot read layer blob");
        }
        if (n == 0)
                d->eof = true;
        d->in = buf;
        d->in_len = (size_t)n;
        return 0;
}

static ssize_t decomp_produced(struct image_decomp *d, size_t n, const uint8_t *buf, const uint8_t **ret_buf,
                               struct ck_error **reterr)
{
        if (n > d->max_out - d->total_out)
                return decomp_fail(d, -EFBIG, reterr,
                                   "decompressed size is over the limit of %" PRIu64 " bytes", d->max_out);
        d->total_out += n;
        *ret_buf = buf;
        if (buf == d->out) { /* the next output goes to the next buffer of the ring */
                d->next = (d->next + 1) % IMAGE_DECOMP_RING;
                d->out = d->outs[d->next];
        }
        return (ssize_t)n;
}

/* gzip framing, parsed here around ISA-L's raw inflate: the member header (ISA-L's bounded
 * parser, resumable across reads), the deflate data, the 8-byte trailer. The trailer's ISIZE
 * is checked (free); its CRC32 is not computed, which was a pass over every inflated byte
 * (~1.4 % of a pull's CPU). It guards nothing the digests do not: a layer is committed only
 * when the blob's SHA-256 (every compressed byte, trailer included) and the diff_id (SHA-256
 * of every inflated byte) both match, and a corrupt deflate stream that inflates to other
 * bytes fails the diff_id; a stream ISA-L cannot decode fails here. */
static ssize_t gzip_read(struct image_decomp *d, const uint8_t **ret_buf, struct ck_error **reterr)
{
        for (;;) {
                size_t in_before;
                uint32_t produced;
                int r;

                r = decomp_fill(d, reterr);
                if (r < 0)
                        return r;
                if (d->gz_phase == GZ_START) {
                        /* A member ended (or none began): the stream ends here, or a member follows. */
                        if (d->in_len == 0)
                                return d->members > 0
                                               ? 0
                                               : decomp_fail(d, -EBADMSG, reterr, "gzip: truncated stream");
                        isal_inflate_reset(d->gz);
                        d->gz->crc_flag = ISAL_DEFLATE;
                        d->gz_phase = GZ_HEADER;
                }
                /* The inflater may still hold input and output of its own: only the framing
                 * around it is truncated by the end of the input. */
                if (d->in_len == 0 && d->eof && d->gz_phase != GZ_DATA)
                        return decomp_fail(d, -EBADMSG, reterr, "gzip: truncated stream");
                if (d->gz_phase == GZ_TRAILER) {
                        size_t n = 8 - d->trailer_len < d->in_len ? 8 - d->trailer_len : d->in_len;

                        memcpy(d->trailer + d->trailer_len, d->in, n);
                        d->trailer_len += n;
                        d->in += n;
                        d->in_len -= n;
                        if (d->trailer_len < 8)
                                continue;
                        uint32_t isize = (uint32_t)d->trailer[4] | (uint32_t)d->trailer[5] << 8 |
                                         (uint32_t)d->trailer[6] << 16 | (uint32_t)d->trailer[7] << 24;
                        if (isize != d->gz->total_out)
                                return decomp_fail(d, -EBADMSG, reterr, "gzip: length mismatch");
                        d->members++;
                        d->gz_phase = GZ_START;
                        continue;
                }
                in_before = d->in_len;
                d->gz->next_in = (uint8_t *)d->in;
                d->gz->avail_in = (uint32_t)(d->in_len > UINT32_MAX ? UINT32_MAX : d->in_len);
                if (d->gz_phase == GZ_HEADER) {
                        struct isal_gzip_header hdr;

                        isal_gzip_header_init(&hdr); /* no buffers: name, comment, extra skipped */
                        r = isal_read_gzip_header(d->gz, &hdr);
                        d->in_len -= (size_t)(d->gz->next_in - d->in);
                        d->in = d->gz->next_in;
                        if (r == ISAL_DECOMP_OK)
                                d->gz_phase = GZ_DATA;
                        else if (r != ISAL_END_INPUT || d->in_len == in_before)
                                return decomp_fail(d, -EBADMSG, reterr, "gzip: bad header (igzip error %d)",
                                                   r);
                        continue;
                }
                d->gz->next_out = d->out;
                d->gz->avail_out = DECOMP_OUT;
                r = isal_inflate(d->gz);
                if (r < 0 || r == ISAL_NEED_DICT)
                        return decomp_fail(d, -EBADMSG, reterr, "gzip: corrupt stream (igzip error %d)", r);
                d->in_len -= (size_t)(d->gz->next_in - d->in);
                d->in = d->gz->next_in;
                produced = DECOMP_OUT - d->gz->avail_out;
                if (d->gz->block_state == ISAL_BLOCK_FINISH) {
                        /* The inflater reads ahead 64 bits at a time: the first trailer bytes
                         * may be in its bit buffer (least significant first, after the pad
                         * bits of the last byte), the rest are still in the input. */
                        int32_t bits = d->gz->read_in_length;
                        uint64_t v;

                        if (bits < 0 || bits > 64)
                                return decomp_fail(d, -EBADMSG, reterr, "gzip: corrupt stream end");
                        v = d->gz->read_in >> (bits % 8);
                        d->trailer_len = (size_t)bits / 8;
                        for (size_t k = 0; k < d->trailer_len; k++)
                                d->trailer[k] = (uint8_t)(v >> (8 * k));
                        d->gz_phase = GZ_TRAILER;
                }
                if (produced > 0)
                        return decomp_produced(d, produced, d->out, ret_buf, reterr);
                if (d->gz_phase == GZ_TRAILER)
                        continue;
                if (d->in_len == 0 && d->eof)
                        return decomp_fail(d, -EBADMSG, reterr, "gzip: truncated stream");
                if (d->in_len > 0 && d->in_len == in_before)
                        return decomp_fail(d, -EBADMSG, reterr, "gzip: stream makes no progress");
        }
}

static ssize_t zstd_read(struct image_decomp *d, const uint8_t **ret_buf, struct ck_error **reterr)
{
        for (;;) {
                ZSTD_inBuffer in;
                ZSTD_outBuffer out = {.dst = d->out, .size = DECOMP_OUT, .pos = 0};
                size_t r;
                int k;

                k = decomp_fill(d, reterr);
                if (k < 0)
                        return k;
                in = (ZSTD_inBuffer){.src = d->in, .size = d->in_len, .pos = 0};
                if (in.size == 0 && d->eof) {
                        /* The stream must end at a frame boundary (after at least one frame);
                         * before that, flush what the decoder still holds. */
                        if (d->done)
                                return 0;
                        r = ZSTD_decompressStream(d->zs, &out, &in);
                        if (ZSTD_isError(r))
                                return decomp_fail(d, -EBADMSG, reterr, "zstd: %s", ZSTD_getErrorName(r));
                        d->done = r == 0;
                        if (out.pos > 0)
                                return decomp_produced(d, out.pos, d->out, ret_buf, reterr);
                        if (!d->done)
                                return decomp_fail(d, -EBADMSG, reterr, "zstd: truncated stream");
                        return 0;
                }
                r = ZSTD_decompressStream(d->zs, &out, &in);
                if (ZSTD_isError(r))
                        return decomp_fail(d, -EBADMSG, reterr, "zstd: %s", ZSTD_getErrorName(r));
                d->in += in.pos;
                d->in_len -= in.pos;
                d->done = r == 0;
                if (out.pos > 0)
                        return decomp_produced(d, out.pos, d->out, ret_buf, reterr);
        }
}

static ssize_t plain_read(struct image_decomp *d, const uint8_t **ret_buf, struct ck_error **reterr)
{
        const uint8_t *buf;
        size_t n;
        int r;

        r = decomp_fill(d, reterr);
        if (r < 0)
                return r;
        if (d->in_len == 0)
                return 0;
        buf = d->in;
        n = d->in_len;
        d->in_len = 0;
        return decomp_produced(d, n, buf, ret_buf, reterr);
}

ssize_t image_decomp_read(struct image_decomp *d, const uint8_t **ret_buf, struct ck_error **reterr)
{
        if (d->err)
                return ck_error_set(reterr, d->err, "decompression already failed");
        switch (d->kind) {
        case IMAGE_MEDIA_LAYER_GZIP:
                return gzip_read(d, ret_buf, reterr);
        case IMAGE_MEDIA_LAYER_ZSTD:
                return zstd_read(d, ret_buf, reterr);
        default:
                return plain_read(d, ret_buf, reterr);
        }
}

size_t image_decomp_ring(const struct image_decomp *d)
{
        return d->kind == IMAGE_MEDIA_LAYER_TAR ? 1 : IMAGE_DECOMP_RING;
}

uint64_t image_decomp_total_out(const struct image_decomp *d)
{
        return d->total_out;
}

void image_decomp_free(struct image_decomp *d)
{
        if (!d)
                return;
        free(d->gz);
        ZSTD_freeDStream(d->zs);
        image_hugebuf_free(d->ring, (size_t)IMAGE_DECOMP_RING * DECOMP_OUT);
        free(d);
}

DEFINE_POINTER_CLEANUP(struct image_decomp, image_decomp_free, image_decomp_free)

int image_decomp_new(int kind, uint64_t max_out, image_decomp_source_fn source, void *userdata,
                     struct image_decomp **ret, struct ck_error **reterr)
{
        _cleanup_(image_decomp_freep) struct image_decomp *d = NULL;

        if (kind != IMAGE_MEDIA_LAYER_GZIP && kind != IMAGE_MEDIA_LAYER_ZSTD &&
            kind != IMAGE_MEDIA_LAYER_TAR)
                return ck_error_set(reterr, -EOPNOTSUPP, "unsupported layer compression");
        d = calloc(1, sizeof(*d));
        if (!d)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        d->kind = kind;
        d->max_out = max_out;
        d->source = source;
        d->userdata = userdata;
        if (kind == IMAGE_MEDIA_LAYER_GZIP) {
                d->gz = malloc(sizeof(*d->gz));
                if (!d->gz)
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
                isal_inflate_init(d->gz);
        } else if (kind == IMAGE_MEDIA_LAYER_ZSTD) {
                d->zs = ZSTD_createDStream();
                if (!d->zs)
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
                ZSTD_initDStream(d->zs);
        }
        if (kind != IMAGE_MEDIA_LAYER_TAR) {
                /* One mapping for the ring (hugebuf.h: huge pages, not 1,024 page faults). */
                d->ring = image_hugebuf_alloc((size_t)IMAGE_DECOMP_RING * DECOMP_OUT);
                if (!d->ring)
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
                for (size_t i = 0; i < IMAGE_DECOMP_RING; i++)
                        d->outs[i] = d->ring + i * DECOMP_OUT;
                d->out = d->outs[0];
        }
        *ret = TAKE_PTR(d);
        return 0;
}
