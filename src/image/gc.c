/* Garbage collection of the image store: crash recovery when the store is opened by its only
 * user, pruning of what no image record references, and discarding what a failed pull fetched.
 *
 * Durability: everything an image record references is synced before the record is committed
 * (metadata.c); what no record references may be torn by a power loss, and recovery prunes
 * exactly that. Recovery runs only when no other process has the store open (exclusive flock
 * on store.lock), so it never deletes another process's work in progress. */
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
#include "ssl.h"
#include "store-internal.h"

static bool is_layer_number(const char *name, int64_t *ret)
{
        uint64_t v;

        if (ck_parse_uint(name, INT64_MAX, &v) < 0)
                return false;
        *ret = (int64_t)v;
        return true;
}

static bool layer_row_ready(struct image_store *s, int64_t n)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM layers WHERE n = ? AND ready = 1", -1, &st, NULL) !=
            SQLITE_OK)
                return true; /* when in doubt, keep the directory */
        sqlite3_bind_int64(st, 1, n);
        return sqlite3_step(st) != SQLITE_DONE;
}

/* Removes everything a crash can leave behind. Called only with the exclusive store lock. */
int image_gc_recover(struct image_store *s, struct ck_error **reterr)
{
        DIR *d;
        struct dirent *de;
        int r;

        /* ingest/: partial blobs and lock files. */
        d = ck_opendir_at(s->ingest_fd, ".");
        if (!d)
                return ck_error_errno(reterr, -errno, "cannot read ingest/");
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' ||
                    (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)) {
                        log_debug("store recovery: removing ingest/%s", de->d_name);
                        (void)ck_rm_rf_at(s->ingest_fd, de->d_name);
                }
        closedir(d);

        /* Unfinished layers: their rows, and any directory that is not a ready layer. */
        r = ck_sqlite_exec(s->db, "DELETE FROM layers WHERE ready = 0", reterr);
        if (r < 0)
                return r;
        d = ck_opendir_at(s->layers_fd, ".");
        if (!d)
                return ck_error_errno(reterr, -errno, "cannot read layers/");
        while ((de = readdir(d))) {
                int64_t n;
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (is_layer_number(de->d_name, &n) && layer_row_ready(s, n))
                        continue;
                log_info("store recovery: removing unfinished layer directory layers/%s", de->d_name);
                r = ck_rm_rf_at(s->layers_fd, de->d_name);
                if (r < 0)
                        log_warn("store recovery: cannot remove layers/%s: %s", de->d_name, strerror(-r));
        }
        closedir(d);

        /* Ready rows whose directory vanished are forgotten, so the layer is unpacked again. */
        {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                if (sqlite3_prepare_v2(s->db, "SELECT n FROM layers", -1, &st, NULL) != SQLITE_OK)
                        return ck_error_set(reterr, -EIO, "database: %s", sqlite3_errmsg(s->db));
                while (sqlite3_step(st) == SQLITE_ROW) {
                        char name[32];
                        struct stat sb;
                        int64_t n = sqlite3_column_int64(st, 0);
                        snprintf(name, sizeof(name), "%" PRId64, n);
                        if (fstatat(s->layers_fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
                                _cleanup_stmt_ sqlite3_stmt *del = NULL;
                                if (sqlite3_prepare_v2(s->db, "DELETE FROM layers WHERE n = ?", -1, &del,
                                                       NULL) == SQLITE_OK) {
                                        sqlite3_bind_int64(del, 1, n);
                                        (void)sqlite3_step(del);
                                }
                        }
                }
        }
        return 0;
}

/* Deletes unreferenced blobs and layers. Caller holds the exclusive store lock. */
int image_gc_prune_locked(struct image_store *s, struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        static const char *const algos[] = {"sha256", "sha512"};
        int removed = 0;

        for (size_t a = 0; a < ELEMENTSOF(algos); a++) {
                DIR *d = ck_opendir_at(s->blobs_fd, algos[a]);
                struct dirent *de;

                if (!d && errno == ENOENT)
                        continue;
                if (!d)
                        return ck_error_errno(reterr, -errno, "cannot read blobs/%s", algos[a]);
                while ((de = readdir(d))) {
                        char digest[IMAGE_DIGEST_MAX];
                        int k;
                        if (de->d_name[0] == '.' || strlen(de->d_name) > 128)
                                continue;
                        snprintf(digest, sizeof(digest), "%s:%.128s", algos[a], de->d_name);
                        k = image_store_blob_referenced(s, digest);
                        if (k != 0)
                                continue; /* referenced, or the database is unsure: keep */
                        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
                                removed++;
                }
                closedir(d);
        }

        {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                if (sqlite3_prepare_v2(
                            s->db,
                            "SELECT n FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM image_layers)",
                            -1, &st, NULL) != SQLITE_OK)
                        return image_store_db_error(s, reterr);
                while (sqlite3_step(st) == SQLITE_ROW) {
                        char name[32];
                        int64_t n = sqlite3_column_int64(st, 0);
                        snprintf(name, sizeof(name), "%" PRId64, n);
                        if (ck_rm_rf_at(s->layers_fd, name) == 0)
                                removed++;
                }
        }
        if (ck_sqlite_exec(s->db,
                           "DELETE FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM image_layers)",
                           reterr) < 0)
                return -EIO;
        return removed;
}

/* Deletes layer n (diff_id) unless an image uses it. Called with the layer's key lock. */
static void discard_layer(struct image_store *s, const char *diff_id)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char name[32];

        if (image_store_count_refs(s, "SELECT COUNT(*) FROM image_layers WHERE diff_id = ?", diff_id) != 0)
                return;
        if (sqlite3_prepare_v2(s->db, "SELECT n FROM layers WHERE diff_id = ?", -1, &st, NULL) != SQLITE_OK)
                return;
        sqlite3_bind_text(st, 1, diff_id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
                return;
        snprintf(name, sizeof(name), "%" PRId64, (int64_t)sqlite3_column_int64(st, 0));
        sqlite3_finalize(TAKE_PTR(st));
        if (image_store_exec_bind(s, "DELETE FROM layers WHERE diff_id = ?", diff_id) == 0)
                (void)ck_rm_rf_at(s->layers_fd, name);
}

int image_store_discard(struct image_store *s, char *const *digests, size_t n, struct ck_error **reterr)
{
        for (size_t i = 0; i < n; i++) {
                _cleanup_(image_strv_clear) struct image_strv diff_ids = {0};
                const char *algo, *hex;
                size_t algo_len;
                char key[IMAGE_DIGEST_MAX + 8], lock_name[IMAGE_DIGEST_MAX + 16], rel[IMAGE_DIGEST_MAX];
                int fd = -1, r;

                if (image_digest_split(digests[i], &algo, &algo_len, &hex) < 0)
                        return ck_error_set(reterr, -EINVAL, "invalid digest '%.80s'", digests[i]);

                /* Layers unpacked from this blob: each under its own key lock. */
                {
                        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
                        _cleanup_stmt_ sqlite3_stmt *st = NULL;
                        if (sqlite3_prepare_v2(s->db, "SELECT diff_id FROM layers WHERE digest = ?", -1, &st,
                                               NULL) != SQLITE_OK)
                                return image_store_db_error(s, reterr);
                        sqlite3_bind_text(st, 1, digests[i], -1, SQLITE_STATIC);
                        while (sqlite3_step(st) == SQLITE_ROW)
                                if (image_strv_push(&diff_ids, (const char *)sqlite3_column_text(st, 0)) < 0)
                                        return ck_error_set(reterr, -ENOMEM, "out of memory");
                }
                for (size_t k = 0; k < diff_ids.n; k++) {
                        const char *la, *lh;
                        size_t ll;
                        if (image_digest_split(diff_ids.v[k], &la, &ll, &lh) < 0)
                                continue;
                        snprintf(key, sizeof(key), "layer:%s", diff_ids.v[k]);
                        snprintf(lock_name, sizeof(lock_name), "layer-%s.lock", lh);
                        r = image_store_lock_key(s, key, lock_name, &fd, reterr);
                        if (r < 0)
                                return r;
                        discard_layer(s, diff_ids.v[k]);
                        image_store_unlock_key(s, key, lock_name, fd);
                }

                snprintf(key, sizeof(key), "blob:%s", digests[i]);
                snprintf(lock_name, sizeof(lock_name), "%.*s-%s.lock", (int)algo_len, algo, hex);
                r = image_store_lock_key(s, key, lock_name, &fd, reterr);
                if (r < 0)
                        return r;
                {
                        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
                        if (image_store_blob_referenced(s, digests[i]) == 0 &&
                            image_blob_relpath(digests[i], rel, sizeof(rel)) == 0)
                                (void)unlinkat(s->blobs_fd, rel, 0);
                }
                image_store_unlock_key(s, key, lock_name, fd);
        }
        return 0;
}

int image_store_prune(struct image_store *s, struct ck_error **reterr)
{
        bool idle;
        int r;

        pthread_mutex_lock(&s->mutex);
        idle = !s->busy;
        pthread_mutex_unlock(&s->mutex);
        if (!idle)
                return ck_error_set(reterr, -EBUSY,
                                    "cannot prune the store while this process writes to it");
        /* From shared to exclusive only succeeds when no other process holds the store. */
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return ck_error_set(reterr, -EBUSY,
                                            "cannot prune the store: another process uses it");
                return ck_error_errno(reterr, -errno, "cannot lock the store");
        }
        r = image_gc_prune_locked(s, reterr);
        if (flock(s->lock_fd, LOCK_SH) < 0 && r >= 0)
                r = ck_error_errno(reterr, -errno, "cannot lock the store");
        return r;
}
