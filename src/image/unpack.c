/* Layer unpacking: one streaming pass over a stored layer blob, with libarchive as the reader
 * only and our own confined writer (unpack-entry.c).
 *
 * Two libarchive readers are chained so that both digests come from the same pass:
 *
 *   blob fd --read--> [raw reader: gzip/zstd filter + "raw" format] --archive_read_data-->
 *   [tar reader: no filter, tar format] --> entries --> unpack_writer
 *
 * The raw reader's read callback hashes the compressed bytes (checked against the layer
 * digest: the blob on disk is re-verified, the disk being untrusted); the tar reader's read
 * callback hashes the uncompressed bytes it pulls from the raw reader (checked against the
 * diff_id) and enforces the size and ratio caps before a byte is written. After the tar
 * end-of-archive the rest of both streams is drained through the hashes, so padding and
 * trailing bytes are covered too. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "manifest.h"
#include "parse.h"
#include "ssl.h"
#include "store-internal.h"

#define UNPACK_READ_BUF (1u << 20)
#define RATIO_FLOOR     (UINT64_C(1) << 20)

struct unpack_stream {
        int blob_fd;
        const struct image_limits *lim;
        uint64_t blob_size;
        EVP_MD_CTX *cmd, *umd;
        uint8_t *cbuf, *ubuf;
        struct archive *raw;
        uint64_t compressed, uncompressed;
        int err;       /* first failure seen inside a callback */
        char why[160]; /* and what it was */
};

static ssize_t raw_read(struct archive *a, void *userdata, const void **buf)
{
        struct unpack_stream *u = userdata;
        ssize_t n;

        do
                n = read(u->blob_fd, u->cbuf, UNPACK_READ_BUF);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                u->err = -errno;
                archive_set_error(a, errno, "read error");
                return -1;
        }
        if (u->cmd && EVP_DigestUpdate(u->cmd, u->cbuf, (size_t)n) != 1) {
                u->err = -EIO;
                return -1;
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

/* Pulls decompressed bytes from the raw reader, hashes and counts them. */
static ssize_t pull_uncompressed(struct unpack_stream *u)
{
        la_ssize_t n = archive_read_data(u->raw, u->ubuf, UNPACK_READ_BUF);

        if (n < 0) {
                if (!u->err) {
                        u->err = -EBADMSG;
                        snprintf(u->why, sizeof(u->why), "cannot decompress: %.120s",
                                 archive_error_string(u->raw) ?: "unknown error");
                }
                return -1;
        }
        if (EVP_DigestUpdate(u->umd, u->ubuf, (size_t)n) != 1) {
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
        ssize_t n = pull_uncompressed(u);

        if (n < 0) {
                archive_set_error(a, EIO, "%s", u->why[0] ? u->why : "read error");
                return -1;
        }
        *buf = u->ubuf;
        return n;
}

static int stream_open_raw(struct unpack_stream *u, int kind, struct ck_error **reterr)
{
        struct archive_entry *e;
        int r;

        u->raw = archive_read_new();
        if (!u->raw)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        /* Only the compression the media type names, and never an external program. */
        if (kind == IMAGE_MEDIA_LAYER_GZIP)
                r = archive_read_support_filter_gzip(u->raw);
        else if (kind == IMAGE_MEDIA_LAYER_ZSTD)
                r = archive_read_support_filter_zstd(u->raw);
        else
                r = archive_read_support_filter_none(u->raw);
        if (r != ARCHIVE_OK)
                return ck_error_set(reterr, -EOPNOTSUPP,
                                    "this libarchive cannot decompress the layer natively");
        if (archive_read_support_format_raw(u->raw) != ARCHIVE_OK)
                return ck_error_set(reterr, -EOPNOTSUPP, "libarchive: raw format unavailable");
        if (archive_read_open2(u->raw, u, NULL, raw_read, NULL, NULL) != ARCHIVE_OK)
                goto fail;
        if (archive_read_next_header(u->raw, &e) != ARCHIVE_OK)
                goto fail;
        return 0;
fail:
        if (u->err && u->err != -EBADMSG)
                return ck_error_errno(reterr, u->err, "cannot read layer blob");
        return ck_error_set(reterr, -EBADMSG, "cannot read layer: %.120s",
                            archive_error_string(u->raw) ?: "not a valid stream");
}

static int finish_digest(EVP_MD_CTX *md, const char *want, const char *what, struct ck_error **reterr)
{
        uint8_t h[EVP_MAX_MD_SIZE];
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        unsigned hl = 0;
        const char *colon = strchr(want, ':');

        if (!colon)
                return ck_error_set(reterr, -EINVAL, "invalid %s '%.80s'", what, want);
        if (EVP_DigestFinal_ex(md, h, &hl) != 1)
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

int image_unpack_fd(int blob_fd, int root_fd, const struct image_unpack_opts *o, struct ck_error **reterr)
{
        struct unpack_stream u = {.blob_fd = blob_fd, .lim = o->lim, .blob_size = o->blob_size};
        struct unpack_writer w;
        struct archive *tar = NULL;
        struct archive_entry *e;
        int r;

        unpack_writer_init(&w, root_fd, o->lim);
        u.cbuf = malloc(UNPACK_READ_BUF);
        u.ubuf = malloc(UNPACK_READ_BUF);
        u.umd = EVP_MD_CTX_new();
        if (o->digest)
                u.cmd = EVP_MD_CTX_new();
        if (!u.cbuf || !u.ubuf || !u.umd || (o->digest && !u.cmd)) {
                r = ck_error_set(reterr, -ENOMEM, "out of memory");
                goto out;
        }
        if (EVP_DigestInit_ex(u.umd, EVP_sha256(), NULL) != 1 ||
            (u.cmd && EVP_DigestInit_ex(u.cmd, md_for(o->digest), NULL) != 1)) {
                r = ck_ssl_error(reterr, -EIO, "digest init");
                goto out;
        }

        r = stream_open_raw(&u, o->kind, reterr);
        if (r < 0)
                goto out;

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
                r = unpack_writer_entry(&w, tar, e, reterr);
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
                ssize_t n = pull_uncompressed(&u);
                if (n < 0) {
                        r = u.err ? u.err : -EBADMSG;
                        goto archive_fail;
                }
                if (n == 0)
                        break;
        }
        for (;;) {
                const void *buf;
                ssize_t n = raw_read(u.raw, &u, &buf);
                if (n < 0) {
                        r = ck_error_errno(reterr, u.err, "cannot read layer blob");
                        goto out;
                }
                if (n == 0)
                        break;
        }

        if (u.cmd) {
                r = finish_digest(u.cmd, o->digest, "digest", reterr);
                if (r < 0)
                        goto out;
        }
        if (o->diff_id) {
                r = finish_digest(u.umd, o->diff_id, "diff_id", reterr);
                if (r < 0)
                        goto out;
        }
        r = unpack_writer_finish(&w, reterr);
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
        unpack_writer_clear(&w);
        if (tar)
                archive_read_free(tar);
        if (u.raw)
                archive_read_free(u.raw);
        EVP_MD_CTX_free(u.cmd);
        EVP_MD_CTX_free(u.umd);
        free(u.cbuf);
        free(u.ubuf);
        return r;
}
