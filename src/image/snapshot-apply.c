/* Snapshots, the writing side: reserving a layer number for a diff_id, unpacking a layer blob
 * into layers/<n>.tmp through the store's format backend (unpack.c), and making it visible only
 * once its digests were checked (the invariant is in snapshot.c). A file of its own so that a
 * program that only reads and mounts layers (conkerd, whose pulls run in conker-fetch) does not
 * link the unpacker and libarchive. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "manifest.h"
#include "parse.h"
#include "sqlite.h"
#include "store-internal.h"

static int layer_kind(const char *media_type)
{
        static const struct {
                const char *type;
                enum image_media_kind kind;
        } table[] = {
                {"application/vnd.oci.image.layer.v1.tar", IMAGE_MEDIA_LAYER_TAR},
                {"application/vnd.oci.image.layer.v1.tar+gzip", IMAGE_MEDIA_LAYER_GZIP},
                {"application/vnd.oci.image.layer.v1.tar+zstd", IMAGE_MEDIA_LAYER_ZSTD},
                {"application/vnd.oci.image.layer.nondistributable.v1.tar", IMAGE_MEDIA_LAYER_TAR},
                {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", IMAGE_MEDIA_LAYER_GZIP},
                {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", IMAGE_MEDIA_LAYER_ZSTD},
                {"application/vnd.docker.image.rootfs.diff.tar", IMAGE_MEDIA_LAYER_TAR},
                {"application/vnd.docker.image.rootfs.diff.tar.gzip", IMAGE_MEDIA_LAYER_GZIP},
                {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", IMAGE_MEDIA_LAYER_GZIP},
        };

        if (!media_type)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcmp(media_type, table[i].type) == 0)
                        return table[i].kind;
        return -EOPNOTSUPP;
}

static int layer_delete_row(struct image_store *s, int64_t n)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(s->db, "DELETE FROM layers WHERE n = ?", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, n);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

/* Runs one statement on a `layers` row without the WAL fsync of synchronous=FULL. A layer row
 * need not be durable on its own: the image record that makes the layer matter is committed
 * later with synchronous=FULL, and that WAL sync covers every frame before it; after a power
 * loss without it, recovery removes the layer. This keeps a disk flush (tens of ms on a busy
 * disk, under the DB lock every layer thread needs) off each layer's critical path. Called
 * with the DB lock held. */
static int layer_row_step(struct image_store *s, sqlite3_stmt *st)
{
        int rc;

        (void)ck_sqlite_exec(s->db, "PRAGMA synchronous=NORMAL", NULL);
        rc = sqlite3_step(st);
        (void)ck_sqlite_exec(s->db, "PRAGMA synchronous=FULL", NULL);
        return rc;
}

/* Returns 1 when diff_id already has a complete layer, else 0 with a fresh unready row whose
 * number is *ret_n. Runs under the DB lock: last_insert_rowid() is per connection. */
static int layer_reserve(struct image_store *s, const struct image_descriptor *layer, const char *diff_id,
                         int64_t *ret_n, struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char name[32], tmp[40];
        struct stat sb;
        int64_t n = 0;
        int r;

        r = image_layer_lookup(s, diff_id, &n, reterr);
        if (r < 0)
                return r;
        if (r > 0) {
                snprintf(name, sizeof(name), "%" PRId64, n);
                if (fstatat(s->layers_fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                    (S_ISDIR(sb.st_mode) || S_ISREG(sb.st_mode)))
                        return 1;
                (void)layer_delete_row(s, n); /* the directory vanished: unpack again */
        }
        /* A row left unready by a crashed process that did not get to recovery. */
        if (sqlite3_prepare_v2(s->db, "SELECT n FROM layers WHERE diff_id = ?", -1, &st, NULL) != SQLITE_OK)
                return image_store_db_error(s, reterr);
        sqlite3_bind_text(st, 1, diff_id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
                n = sqlite3_column_int64(st, 0);
                snprintf(tmp, sizeof(tmp), "%" PRId64 ".tmp", n);
                (void)ck_rm_rf_at(s->layers_fd, tmp);
                (void)layer_delete_row(s, n);
        }
        sqlite3_finalize(TAKE_PTR(st));

        if (sqlite3_prepare_v2(s->db, "INSERT INTO layers (diff_id, digest, ready) VALUES (?, ?, 0)", -1,
                               &st, NULL) != SQLITE_OK)
                return image_store_db_error(s, reterr);
        sqlite3_bind_text(st, 1, diff_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, layer->digest, -1, SQLITE_STATIC);
        if (layer_row_step(s, st) != SQLITE_DONE)
                return image_store_db_error(s, reterr);
        *ret_n = sqlite3_last_insert_rowid(s->db);
        return 0;
}

/* Unpacks layer from its stored blob, or (source != NULL) from the bytes its download hands
 * out. */
static int layer_unpack_locked(struct image_store *s, const struct image_descriptor *layer,
                               const char *diff_id, int kind, image_decomp_source_fn source, void *userdata,
                               struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = NULL; /* taken for the final update only */
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_close_ int blob_fd = -1, root_fd = -1;
        char rel[IMAGE_DIGEST_MAX], name[32], tmp[40];
        struct stat sb;
        int64_t n = 0;
        int r, format;

        r = layer_reserve(s, layer, diff_id, &n, reterr);
        if (r != 0)
                return r < 0 ? r : 0;
        snprintf(name, sizeof(name), "%" PRId64, n);
        snprintf(tmp, sizeof(tmp), "%" PRId64 ".tmp", n);

        if (image_blob_relpath(layer->digest, rel, sizeof(rel)) < 0) {
                r = ck_error_set(reterr, -EINVAL, "invalid layer digest");
                goto fail;
        }
        if (source) {
                sb.st_size = (off_t)layer->size;
        } else {
                blob_fd = openat(s->blobs_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (blob_fd < 0 || fstat(blob_fd, &sb) < 0) {
                        r = ck_error_errno(reterr, -errno, "layer blob %s", layer->digest);
                        goto fail;
                }
        }
        format = image_store_layer_format(s);
        (void)ck_rm_rf_at(s->layers_fd, tmp);
        r = image_layer_backend(format)->create(s->layers_fd, tmp, &root_fd);
        if (r < 0) {
                r = ck_error_errno(reterr, r, "cannot create layers/%s", tmp);
                goto fail;
        }

        struct image_unpack_opts o = {
                .lim = &s->lim,
                .digest = source ? NULL : layer->digest,
                .diff_id = diff_id,
                .blob_size = (uint64_t)sb.st_size,
                .kind = kind,
                .format = format,
        };
        if (source)
                r = image_unpack_source(source, userdata, root_fd, &o, reterr);
        else
                r = image_unpack_fd(blob_fd, root_fd, &o, reterr);
        if (r < 0)
                goto fail; /* the caller names the layer */
        /* Visibility comes from the rename of the whole layer; durability from the sync in
         * image_store_put() before any record references it. No per-file fsync. */
        if (renameat(s->layers_fd, tmp, s->layers_fd, name) < 0) {
                r = ck_error_errno(reterr, -errno, "cannot commit layer %s", layer->digest);
                goto fail;
        }

        sqlite3_finalize(TAKE_PTR(st));
        /* On the shared connection, never inside another thread's transaction. */
        db_guard = image_store_db_lock(s);
        if (sqlite3_prepare_v2(s->db, "UPDATE layers SET ready = 1 WHERE n = ?", -1, &st, NULL) !=
            SQLITE_OK) {
                r = image_store_db_error(s, reterr);
                (void)ck_rm_rf_at(s->layers_fd, name);
                goto fail;
        }
        sqlite3_bind_int64(st, 1, n);
        if (layer_row_step(s, st) != SQLITE_DONE) {
                r = image_store_db_error(s, reterr);
                (void)ck_rm_rf_at(s->layers_fd, name);
                goto fail;
        }
        return 0;
fail:
        (void)ck_rm_rf_at(s->layers_fd, tmp);
        (void)layer_delete_row(s, n);
        return r;
}

static int layer_unpack(struct image_store *s, const struct image_descriptor *layer, const char *diff_id,
                        image_decomp_source_fn source, void *userdata, struct ck_error **reterr)
{
        const char *algo, *hex;
        size_t algo_len;
        char key[IMAGE_DIGEST_MAX + 8], lock_name[IMAGE_DIGEST_MAX + 16];
        int kind, r, lock_fd = -1;

        if (!layer || image_digest_split(layer->digest, &algo, &algo_len, &hex) < 0)
                return ck_error_set(reterr, -EINVAL, "invalid layer digest");
        if (image_digest_split(diff_id, &algo, &algo_len, &hex) < 0 || algo_len != 6 ||
            memcmp(algo, "sha256", 6) != 0)
                return ck_error_set(reterr, -EINVAL, "layer %s: invalid diff_id '%.80s'", layer->digest,
                                    diff_id ? diff_id : "");
        kind = layer_kind(layer->media_type);
        if (kind < 0)
                return ck_error_set(reterr, -EOPNOTSUPP, "layer %s: unsupported media type '%.100s'",
                                    layer->digest, layer->media_type ? layer->media_type : "");

        snprintf(key, sizeof(key), "layer:%s", diff_id);
        snprintf(lock_name, sizeof(lock_name), "layer-%s.lock", hex);
        r = image_store_lock_key(s, key, lock_name, &lock_fd, reterr);
        if (r < 0)
                return r;
        r = layer_unpack_locked(s, layer, diff_id, kind, source, userdata, reterr);
        image_store_unlock_key(s, key, lock_name, lock_fd);
        return r;
}

int image_store_unpack_layer(struct image_store *s, const struct image_descriptor *layer,
                             const char *diff_id, struct ck_error **reterr)
{
        return layer_unpack(s, layer, diff_id, NULL, NULL, reterr);
}

int image_store_unpack_layer_from(struct image_store *s, const struct image_descriptor *layer,
                                  const char *diff_id,
                                  ssize_t (*source)(void *userdata, const uint8_t **ret_buf), void *userdata,
                                  struct ck_error **reterr)
{
        if (!source)
                return ck_error_set(reterr, -EINVAL, "image_store_unpack_layer_from: no source");
        return layer_unpack(s, layer, diff_id, source, userdata, reterr);
}
