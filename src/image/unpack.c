/* Layer unpacking: one streaming pass over a stored layer blob, with our own decompressor
 * (decompress.c: igzip, libzstd), libarchive as the tar reader only, and our own confined
 * writer (unpack-entry.c):
 *
 *   blob fd --read, hash--> [image_decomp: gzip/zstd/plain] --hash, caps--> [libarchive tar
 *   reader: no filter, tar format] --> entries --> the layer format's writer (layer-dir.c:
 *                                                  a directory tree; layer-erofs.c: one EROFS
 *                                                  image file)
 *
 * The read callback hashes the compressed bytes (checked against the layer digest: the blob
 * on disk is re-verified, the disk being untrusted); the tar reader's read callback hands the
 * uncompressed bytes, as they come out of the decompressor, to a digest thread (hashq.h: the
 * diff_id, hashed while this thread inflates and writes the next buffers) and enforces the size and ratio
 * caps before a byte is written. After the tar end-of-archive the rest of both streams is drained through
 * the hashes, so padding and trailing bytes are covered too, and the decompressor rejects trailing bytes
 * that are not another gzip member or zstd frame. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decompress.h"
#include "hashq.h"
#include "log.h"
#include "manifest.h"
#include "parse.h"
#include "ssl.h"
#include "store-internal.h"

#define UNPACK_READ_BUF (1u << 20)
#define RATIO_FLOOR     (UINT64_C(1) << 20)

struct unpack_stream {
        int blob_fd;                   /* read from this, or (blob_fd < 0) from source */
        image_decomp_source_fn source; /* the bytes as they arrive (pull.c), already verified */
        void *source_userdata;
        const struct image_limits *lim;
        uint64_t blob_size;
        EVP_MD_CTX *cmd, *umd;  /* umd: the diff_id when the output is not a ring (plain tar) */
        struct image_hashq *hq; /* the diff_id, on its own thread (gzip, zstd) */
        size_t ring;
        uint8_t *cbuf;
        struct image_decomp *dec;
        uint64_t compressed, uncompressed;
        int err;       /* first failure seen inside a callback */
        char why[160]; /* and what it was */
};

/* The decompressor's source: the next chunk of the blob, hashed. */
static ssize_t blob_read(void *userdata, const uint8_t **buf)
{
        struct unpack_stream *u = userdata;
        ssize_t n;

        if (u->blob_fd < 0) {
                n = u->source(u->source_userdata, buf);
                if (n < 0)
                        u->err = (int)n;
                else
                        u->compressed += (uint64_t)n;
                return n;
        }
        do
                n = read(u->blob_fd, u->cbuf, UNPACK_READ_BUF);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                u->err = -errno;
                return u->err;
        }
        if (u->cmd && EVP_DigestUpdate(u->cmd, u->cbuf, (size_t)n) != 1) {
                u->err = -EIO;
                return -EIO;
        }
        u->compressed += (uint64_t)n;
        *buf = u->cbuf;
        return n;
}

static int check_caps(struct unpack_stream *u)
{
        const struct image_limits *l = u->lim;

        if (u->uncompressed > l->max_layer_unpacked) {
                u->err = -EFBIG;
                snprintf(u->why, sizeof(u->why), "unpacked size is over the limit of %" PRIu64 " bytes",
                         l->max_layer_unpacked);
                return -1;
        }
        if (l->max_ratio && u->uncompressed > RATIO_FLOOR && u->blob_size <= UINT64_MAX / l->max_ratio &&
            u->uncompressed > u->blob_size * l->max_ratio) {
                u->err = -EFBIG;
                snprintf(u->why, sizeof(u->why),
                         "decompression ratio is over the limit of %" PRIu64
                         " (possible decompression bomb)",
                         l->max_ratio);
                return -1;
        }
        return 0;
}

/* Pulls decompressed bytes from the decompressor, hashes and counts them. */
static ssize_t pull_uncompressed(struct unpack_stream *u, const uint8_t **ret_buf)
{
        struct ck_error *e = NULL;
        ssize_t n;

        /* The buffer the decompressor fills next must be hashed by now. */
        if (u->hq)
                image_hashq_wait(u->hq, u->ring - 1);
        n = image_decomp_read(u->dec, ret_buf, &e);

        if (n < 0) {
                if (!u->err) {
                        u->err = (int)n;
                        snprintf(u->why, sizeof(u->why), "%s%.140s",
                                 n == -EFBIG ? "" : "cannot decompress: ", e ? e->msg : "unknown error");
                }
                ck_error_free(e);
                return -1;
        }
        if (n > 0 && u->hq)
                image_hashq_push(u->hq, *ret_buf, (size_t)n);
        else if (n > 0 && u->umd && EVP_DigestUpdate(u->umd, *ret_buf, (size_t)n) != 1) {
                u->err = -EIO;
                return -1;
        }
        u->uncompressed += (uint64_t)n;
        if (check_caps(u) < 0)
                return -1;
        return n;
}

static ssize_t tar_read(struct archive *a, void *userdata, const void **buf)
{
        struct unpack_stream *u = userdata;
        const uint8_t *p = NULL;
        ssize_t n = pull_uncompressed(u, &p);

        if (n < 0) {
                archive_set_error(a, EIO, "%s", u->why[0] ? u->why : "read error");
                return -1;
        }
        *buf = p;
        return n;
}

/* Compares a finished digest (md, or the queue's when md is NULL) with want. */
static int finish_digest(EVP_MD_CTX *md, struct image_hashq *hq, const char *want, const char *what,
                         struct ck_error **reterr)
{
        uint8_t h[EVP_MAX_MD_SIZE];
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        unsigned hl = 0;
        const char *colon = strchr(want, ':');

        if (!colon)
                return ck_error_set(reterr, -EINVAL, "invalid %s '%.80s'", what, want);
        if (md ? EVP_DigestFinal_ex(md, h, &hl) != 1 : image_hashq_final(hq, h, &hl) < 0)
                return ck_ssl_error(reterr, -EIO, "digest");
        ck_hex_encode(h, hl, hex);
        if (strlen(colon + 1) != 2 * (size_t)hl || CRYPTO_memcmp(hex, colon + 1, 2 * (size_t)hl) != 0)
                return ck_error_set(reterr, -EBADMSG, "%s mismatch: expected %s, got %.*s:%s", what, want,
                                    (int)(colon - want), want, hex);
        return 0;
}

static const EVP_MD *md_for(const char *digest)
{
        return ck_startswith(digest, "sha512:") ? EVP_sha512() : EVP_sha256();
}

static int unpack_run(struct unpack_stream *up, int root_fd, const struct image_unpack_opts *o,
                      struct ck_error **reterr);

int image_unpack_fd(int blob_fd, int root_fd, const struct image_unpack_opts *o, struct ck_error **reterr)
{
        struct unpack_stream u = {.blob_fd = blob_fd, .lim = o->lim, .blob_size = o->blob_size};

        if (blob_fd < 0)
                return ck_error_set(reterr, -EBADF, "no layer blob");
        return unpack_run(&u, root_fd, o, reterr);
}

int image_unpack_source(image_decomp_source_fn source, void *userdata, int root_fd,
                        const struct image_unpack_opts *o, struct ck_error **reterr)
{
        struct unpack_stream u = {
                .blob_fd = -1,
                .source = source,
                .source_userdata = userdata,
                .lim = o->lim,
                .blob_size = o->blob_size,
        };

        if (o->digest)
                return ck_error_set(reterr, -EINVAL, "a streamed layer is verified by its blob writer");
        return unpack_run(&u, root_fd, o, reterr);
}

static int unpack_run(struct unpack_stream *up, int root_fd, const struct image_unpack_opts *o,
                      struct ck_error **reterr)
{
        struct unpack_stream u = *up;
        const struct image_layer_backend *backend = image_layer_backend(o->format);
        void *w = NULL;
        struct archive *tar = NULL;
        struct archive_entry *e;
        int r;

        r = backend->writer_new(root_fd, o->lim, &w);
        if (r < 0)
                return ck_error_set(reterr, r, "out of memory");
        if (u.blob_fd >= 0)
                u.cbuf = malloc(UNPACK_READ_BUF);
        if (o->digest)
                u.cmd = EVP_MD_CTX_new();
        if ((u.blob_fd >= 0 && !u.cbuf) || (o->digest && !u.cmd)) {
                r = ck_error_set(reterr, -ENOMEM, "out of memory");
                goto out;
        }
        if (u.cmd && EVP_DigestInit_ex(u.cmd, md_for(o->digest), NULL) != 1) {
                r = ck_ssl_error(reterr, -EIO, "digest init");
                goto out;
        }

        /* Only the compression the media type names, and never an external program. */
        r = image_decomp_new(o->kind, o->lim->max_layer_unpacked, blob_read, &u, &u.dec, reterr);
        if (r < 0)
                goto out;
        /* The diff_id (always SHA-256) on its own thread where the decompressor's output
         * buffers rotate; in line for plain tar, whose output is the source's buffer. */
        u.ring = image_decomp_ring(u.dec);
        if (o->diff_id && u.ring > 1) {
                r = image_hashq_new(EVP_sha256(), &u.hq);
                if (r < 0) {
                        r = ck_error_errno(reterr, r, "cannot start the diff_id digest");
                        goto out;
                }
        } else if (o->diff_id) {
                u.umd = EVP_MD_CTX_new();
                if (!u.umd || EVP_DigestInit_ex(u.umd, EVP_sha256(), NULL) != 1) {
                        r = ck_ssl_error(reterr, -EIO, "digest init");
                        goto out;
                }
        }

        tar = archive_read_new();
        if (!tar) {
                r = ck_error_set(reterr, -ENOMEM, "out of memory");
                goto out;
        }
        archive_read_support_filter_none(tar);
        archive_read_support_format_tar(tar);
        if (archive_read_open2(tar, &u, NULL, tar_read, NULL, NULL) != ARCHIVE_OK) {
                r = -EBADMSG;
                goto archive_fail;
        }

        for (;;) {
                r = archive_read_next_header(tar, &e);
                if (r == ARCHIVE_EOF)
                        break;
                if (r == ARCHIVE_WARN)
                        log_debug("layer: %s", archive_error_string(tar) ?: "warning");
                else if (r != ARCHIVE_OK) {
                        r = -EBADMSG;
                        goto archive_fail;
                }
                r = backend->writer_entry(w, tar, e, reterr);
                if (r < 0) {
                        if (u.err) { /* a cap tripped while the entry's data was read */
                                ck_error_free(reterr ? *reterr : NULL);
                                if (reterr)
                                        *reterr = NULL;
                                r = u.err;
                                goto archive_fail;
                        }
                        goto out;
                }
        }

        /* Drain what the tar reader did not need (end-of-archive padding) and the rest of the
         * blob, so both digests cover whole streams. */
        for (;;) {
                const uint8_t *p;
                ssize_t n = pull_uncompressed(&u, &p);
                if (n < 0) {
                        r = u.err ? u.err : -EBADMSG;
                        goto archive_fail;
                }
                if (n == 0)
                        break;
        }
        for (;;) {
                const uint8_t *buf;
                ssize_t n = blob_read(&u, &buf);
                if (n < 0) {
                        r = ck_error_errno(reterr, u.err, "cannot read layer blob");
                        goto out;
                }
                if (n == 0)
                        break;
        }

        if (u.cmd) {
                r = finish_digest(u.cmd, NULL, o->digest, "digest", reterr);
                if (r < 0)
                        goto out;
        }
        if (o->diff_id) {
                r = finish_digest(u.umd, u.hq, o->diff_id, "diff_id", reterr);
                if (r < 0)
                        goto out;
        }
        r = backend->writer_finish(w, reterr);
        goto out;

archive_fail:
        if (u.err && u.why[0])
                r = ck_error_set(reterr, u.err, "%s", u.why);
        else if (u.err)
                r = ck_error_errno(reterr, u.err, "cannot read layer");
        else
                r = ck_error_set(reterr, r < 0 ? r : -EBADMSG, "invalid tar stream: %.160s",
                                 archive_error_string(tar) ?: "unknown error");
out:
        backend->writer_free(w);
        if (tar)
                archive_read_free(tar);
        image_hashq_free(u.hq); /* before the buffers it may be reading go */
        image_decomp_free(u.dec);
        EVP_MD_CTX_free(u.cmd);
        EVP_MD_CTX_free(u.umd);
        free(u.cbuf);
        return r;
}
