/* The content store (containerd's "content"): blobs by digest under blobs/<algo>/<hex>,
 * written through ingest/.
 *
 * Invariant: a file under blobs/ has the digest its name says: it is written to ingest/,
 * hashed while written, checked for size and digest and only then renamed into place (and
 * whoever reads it hashes it again). One writer per digest at a time (locks.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "manifest.h"
#include "parse.h"
#include "sqlite.h"
#include "seqwrite.h"
#include "ssl.h"
#include "store-internal.h"

int image_digest_split(const char *digest, const char **ret_algo, size_t *ret_algo_len, const char **ret_hex)
{
        const char *colon, *hex;
        size_t want;

        if (!digest)
                return -EINVAL;
        colon = strchr(digest, ':');
        if (!colon)
                return -EINVAL;
        if ((size_t)(colon - digest) == 6 && memcmp(digest, "sha256", 6) == 0)
                want = 64;
        else if ((size_t)(colon - digest) == 6 && memcmp(digest, "sha512", 6) == 0)
                want = 128;
        else
                return -EINVAL;
        hex = colon + 1;
        if (strlen(hex) != want)
                return -EINVAL;
        for (size_t i = 0; i < want; i++)
                if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
                        return -EINVAL;
        *ret_algo = digest;
        *ret_algo_len = (size_t)(colon - digest);
        *ret_hex = hex;
        return 0;
}

bool image_digest_ok(const char *digest)
{
        const char *algo, *hex;
        size_t algo_len;

        return image_digest_split(digest, &algo, &algo_len, &hex) == 0;
}

/* "sha256/<hex>": the path of a blob below blobs/. */
int image_blob_relpath(const char *digest, char *buf, size_t bufsz)
{
        const char *algo, *hex;
        size_t algo_len;
        int r = image_digest_split(digest, &algo, &algo_len, &hex);

        if (r < 0)
                return r;
        r = snprintf(buf, bufsz, "%.*s/%s", (int)algo_len, algo, hex);
        return r < 0 || (size_t)r >= bufsz ? -ENAMETOOLONG : 0;
}

/* ---- blobs ------------------------------------------------------------------------------ */

struct image_blob_writer {
        struct image_store *s;
        char *digest;
        char key[IMAGE_DIGEST_MAX + 8];
        char lock_name[IMAGE_DIGEST_MAX + 8];
        char tmp_name[IMAGE_DIGEST_MAX + 16];
        char relpath[IMAGE_DIGEST_MAX];
        int lock_fd, fd;
        EVP_MD_CTX *md;
        uint64_t size, written;
        /* O_DIRECT where the file system takes it (seqwrite.h): a layer blob is written once
         * and read back at most once, so it gains nothing from the page cache, and the sync
         * before the image record then finds it on disk already. */
        struct image_seqw out;
};

static void blob_writer_free(struct image_blob_writer *w, bool remove_tmp)
{
        if (!w)
                return;
        if (w->fd >= 0) {
                close(w->fd);
                if (remove_tmp)
                        (void)unlinkat(w->s->ingest_fd, w->tmp_name, 0);
        }
        if (w->lock_fd >= 0)
                image_store_unlock_key(w->s, w->key, w->lock_name, w->lock_fd);
        EVP_MD_CTX_free(w->md);
        image_seqw_clear(&w->out);
        free(w->digest);
        free(w);
}

bool image_store_has_blob(struct image_store *s, const char *digest)
{
        char rel[IMAGE_DIGEST_MAX];
        struct stat st;

        if (image_blob_relpath(digest, rel, sizeof(rel)) < 0)
                return false;
        return fstatat(s->blobs_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static const EVP_MD *digest_md(const char *digest)
{
        return ck_startswith(digest, "sha512:") ? EVP_sha512() : EVP_sha256();
}

int image_blob_begin(struct image_store *s, const char *digest, uint64_t size,
                     struct image_blob_writer **ret, struct ck_error **reterr)
{
        struct image_blob_writer *w = NULL;
        const char *algo, *hex;
        size_t algo_len;
        int r;

        r = image_digest_split(digest, &algo, &algo_len, &hex);
        if (r < 0)
                return ck_error_set(reterr, -EINVAL, "invalid digest '%.80s'", digest ? digest : "");
        if (size > s->lim.max_blob_size)
                return ck_error_set(reterr, -EFBIG,
                                    "blob %s: size %" PRIu64 " is over the limit of %" PRIu64, digest, size,
                                    s->lim.max_blob_size);
        if (image_store_has_blob(s, digest))
                return 1;

        w = calloc(1, sizeof(*w));
        if (!w)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        w->s = s;
        w->fd = w->lock_fd = -1;
        w->size = size;
        snprintf(w->key, sizeof(w->key), "blob:%s", digest);
        snprintf(w->lock_name, sizeof(w->lock_name), "%.*s-%s.lock", (int)algo_len, algo, hex);
        snprintf(w->tmp_name, sizeof(w->tmp_name), "%.*s-%s.partial", (int)algo_len, algo, hex);
        snprintf(w->relpath, sizeof(w->relpath), "%.*s/%s", (int)algo_len, algo, hex);
        w->digest = strdup(digest);
        w->md = EVP_MD_CTX_new();
        if (!w->digest || !w->md) {
                blob_writer_free(w, false);
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        if (EVP_DigestInit_ex(w->md, digest_md(digest), NULL) != 1) {
                blob_writer_free(w, false);
                return ck_ssl_error(reterr, -EIO, "digest init");
        }

        r = image_store_lock_key(s, w->key, w->lock_name, &w->lock_fd, reterr);
        if (r < 0) {
                w->lock_fd = -1;
                blob_writer_free(w, false);
                return r;
        }
        /* Another thread or process may have committed it while we waited. */
        if (image_store_has_blob(s, digest)) {
                blob_writer_free(w, false);
                return 1;
        }
        w->fd = openat(s->ingest_fd, w->tmp_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                       0600);
        if (w->fd < 0) {
                r = -errno;
                blob_writer_free(w, false);
                return ck_error_errno(reterr, r, "cannot create ingest/%s", w->tmp_name);
        }
        if (image_seqw_init(&w->out, w->fd, 0) < 0) {
                blob_writer_free(w, true);
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        *ret = w;
        return 0;
}

int image_blob_write(struct image_blob_writer *w, const uint8_t *data, size_t len, struct ck_error **reterr)
{
        int r;

        if (len > w->size - w->written)
                return ck_error_set(reterr, -EMSGSIZE,
                                    "blob %s: more data than the declared %" PRIu64 " bytes", w->digest,
                                    w->size);
        if (EVP_DigestUpdate(w->md, data, len) != 1)
                return ck_ssl_error(reterr, -EIO, "digest update");
        r = image_seqw_write(&w->out, w->written, data, len);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot write blob %s", w->digest);
        w->written += len;
        return 0;
}

/* Compares the final hash of md with the hex part of digest. On mismatch *got receives the
 * computed digest as text. */
static int digest_check(EVP_MD_CTX *md, const char *digest, char got[IMAGE_DIGEST_MAX])
{
        uint8_t h[EVP_MAX_MD_SIZE];
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        unsigned hl = 0;
        const char *colon = strchr(digest, ':');

        if (EVP_DigestFinal_ex(md, h, &hl) != 1)
                return -EIO;
        ck_hex_encode(h, hl, hex);
        snprintf(got, IMAGE_DIGEST_MAX, "%.*s:%s", (int)(colon - digest), digest, hex);
        return CRYPTO_memcmp(hex, colon + 1, 2 * (size_t)hl) == 0 && strlen(colon + 1) == 2 * (size_t)hl
                       ? 0
                       : -EBADMSG;
}

int image_blob_commit(struct image_blob_writer *w, struct ck_error **reterr)
{
        char got[IMAGE_DIGEST_MAX];
        int r;

        /* The last block goes out padded; the file is cut back to the blob's size. */
        r = image_seqw_finish(&w->out);
        if (r >= 0 && ftruncate(w->fd, (off_t)w->written) < 0)
                r = -errno;
        if (r < 0) {
                r = ck_error_errno(reterr, r, "cannot write blob %s", w->digest);
                goto fail;
        }
        if (w->written != w->size) {
                r = ck_error_set(reterr, -EBADMSG,
                                 "blob %s: size mismatch: got %" PRIu64 " bytes, expected %" PRIu64,
                                 w->digest, w->written, w->size);
                goto fail;
        }
        r = digest_check(w->md, w->digest, got);
        if (r < 0) {
                r = ck_error_set(reterr, r, "blob %s: digest mismatch (content hashes to %s)", w->digest,
                                 got);
                goto fail;
        }
        /* No fsync here: image_store_put() syncs the filesystem once before a record can
         * reference the blob (see the invariants at the top). */
        if (renameat(w->s->ingest_fd, w->tmp_name, w->s->blobs_fd, w->relpath) < 0) {
                r = ck_error_errno(reterr, -errno, "cannot store blob %s", w->digest);
                goto fail;
        }
        close(w->fd);
        w->fd = -1;
        blob_writer_free(w, false);
        return 0;
fail:
        blob_writer_free(w, true);
        return r;
}

void image_blob_abort(struct image_blob_writer *w)
{
        blob_writer_free(w, true);
}

int image_store_read_blob(struct image_store *s, const char *digest, size_t max, uint8_t **ret,
                          size_t *ret_len, struct ck_error **reterr)
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_close_ int fd = -1;
        char rel[IMAGE_DIGEST_MAX], got[IMAGE_DIGEST_MAX];
        size_t len = 0;
        int r;

        if (image_blob_relpath(digest, rel, sizeof(rel)) < 0)
                return ck_error_set(reterr, -EINVAL, "invalid digest '%.80s'", digest ? digest : "");
        fd = openat(s->blobs_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "blob %s", digest);
        r = ck_read_fd(fd, max, &data, &len);
        if (r == -EFBIG)
                return ck_error_set(reterr, r, "blob %s is larger than %zu bytes", digest, max);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read blob %s", digest);
        md = EVP_MD_CTX_new();
        if (!md || EVP_DigestInit_ex(md, digest_md(digest), NULL) != 1 ||
            EVP_DigestUpdate(md, data, len) != 1)
                return ck_ssl_error(reterr, -EIO, "digest");
        r = digest_check(md, digest, got);
        if (r == -EBADMSG)
                return ck_error_set(reterr, r, "stored blob %s is corrupt (content hashes to %s)", digest,
                                    got);
        if (r < 0)
                return ck_ssl_error(reterr, r, "digest");
        *ret = TAKE_PTR(data);
        *ret_len = len;
        return 0;
}
