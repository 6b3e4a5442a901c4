/* Image metadata (containerd's "metadata"): image records and their references to blobs and
 * layers, in the SQLite tables images and image_layers; removal frees the blobs and layers no
 * other record uses, and refuses while a rootfs of the image is mounted.
 *
 * Durability: everything a record references is on disk before the record is committed: with
 * EROFS layers an fdatasync() of each referenced file (their writeback started while they
 * were written) and of the two directories; with directory layers one syncfs() in
 * image_store_put(), not an fsync per file and a syncfs per layer: on a busy host those cost
 * more than the unpacking. */
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

/* ---- image records ---------------------------------------------------------------------- */

void image_record_clear(struct image_record *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n_layers; i++) {
                if (r->layers)
                        free(r->layers[i]);
                if (r->diff_ids)
                        free(r->diff_ids[i]);
        }
        free(r->layers);
        free(r->diff_ids);
        free(r->name);
        free(r->manifest_digest);
        free(r->id);
        *r = (struct image_record){0};
}

static int db_begin(struct image_store *s, struct ck_error **reterr)
{
        return ck_sqlite_exec(s->db, "BEGIN IMMEDIATE", reterr);
}

static void db_rollback(struct image_store *s)
{
        (void)ck_sqlite_exec(s->db, "ROLLBACK", NULL);
}

struct sync_set {
        int fds[2 * IMAGE_LAYERS_MAX + 2];
        size_t n;
};

static void sync_set_clear(struct sync_set *set)
{
        for (size_t i = 0; i < set->n; i++)
                safe_close(set->fds[i]);
        set->n = 0;
}

/* Opens dirfd/rel and starts the writeback of what is still dirty in it. */
static int sync_set_add(struct sync_set *set, int dirfd, const char *rel)
{
        int fd;

        if (set->n == ELEMENTSOF(set->fds))
                return -E2BIG;
        fd = openat(dirfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno; /* a blob the record names but never stored */
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        set->fds[set->n++] = fd;
        return 0;
}

/* The record's blobs and EROFS layers, then the directories their names were renamed into.
 * Writeback of every file is started first and waited for after, so the device sees all of
 * it at once. Returns 1 when a layer is a directory (then only a syncfs() is worth it). */
static int sync_record_files(struct image_store *s, const struct image_record *r)
{
        static const char *const algos[] = {"sha256", "sha512"};
        _cleanup_(sync_set_clear) struct sync_set set = {.n = 0};
        char rel[IMAGE_DIGEST_MAX], name[32];
        struct stat st;
        int k = 0;

        for (size_t i = 0; i < r->n_layers; i++) {
                int64_t n = 0;
                if (image_layer_lookup(s, r->diff_ids[i], &n, NULL) <= 0)
                        continue; /* put() refuses the record below */
                snprintf(name, sizeof(name), "%" PRId64, n);
                if (fstatat(s->layers_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (!S_ISREG(st.st_mode))
                        return 1;
                k = sync_set_add(&set, s->layers_fd, name);
                if (k >= 0 && image_blob_relpath(r->layers[i], rel, sizeof(rel)) == 0)
                        k = sync_set_add(&set, s->blobs_fd, rel);
                if (k < 0)
                        return k;
        }
        for (const char *d = r->id; d; d = d == r->id ? r->manifest_digest : NULL)
                if (image_blob_relpath(d, rel, sizeof(rel)) == 0 &&
                    (k = sync_set_add(&set, s->blobs_fd, rel)) < 0)
                        return k;
        for (size_t i = 0; i < set.n; i++)
                if (fdatasync(set.fds[i]) < 0)
                        return -errno;
        if (fsync(s->layers_fd) < 0)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(algos); i++) {
                _cleanup_close_ int fd = openat(s->blobs_fd, algos[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd >= 0 && fsync(fd) < 0)
                        return -errno;
        }
        return 0;
}

/* Makes what the record references durable. EROFS layers are single files whose writeback
 * started while they were written: fdatasync() of exactly those files and blobs, then of the
 * directories they were renamed into. Directory layers are thousands of files: one syncfs()
 * for all (which also waits for everyone else's dirty pages on that file system). */
static int store_sync(struct image_store *s, const struct image_record *rec, struct ck_error **reterr)
{
        struct stat a, b;
        int k = sync_record_files(s, rec);

        if (k < 0)
                return ck_error_errno(reterr, k, "cannot sync the image store");
        if (k == 0)
                return 0;
        if (syncfs(s->layers_fd) < 0)
                return ck_error_errno(reterr, -errno, "cannot sync the image store");
        if (fstat(s->layers_fd, &a) == 0 && fstat(s->blobs_fd, &b) == 0 && a.st_dev != b.st_dev &&
            syncfs(s->blobs_fd) < 0)
                return ck_error_errno(reterr, -errno, "cannot sync the image store");
        return 0;
}

int image_store_put(struct image_store *s, const struct image_record *r, struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int k;

        if (!r->name || !*r->name || !image_digest_ok(r->id) || !image_digest_ok(r->manifest_digest))
                return ck_error_set(reterr, -EINVAL, "invalid image record");
        if (r->n_layers > IMAGE_LAYERS_MAX)
                return ck_error_set(reterr, -E2BIG, "image has %zu layers, more than %d", r->n_layers,
                                    IMAGE_LAYERS_MAX);
        for (size_t i = 0; i < r->n_layers; i++)
                if (!image_digest_ok(r->layers[i]) || !image_digest_ok(r->diff_ids[i]))
                        return ck_error_set(reterr, -EINVAL, "invalid image record: layer %zu", i);

        /* Before the record exists, everything it references must be on disk (outside the DB
         * lock: a sync can take a while on a busy host). */
        k = store_sync(s, r, reterr);
        if (k < 0)
                return k;
        db_guard = image_store_db_lock(s);
        k = db_begin(s, reterr);
        if (k < 0)
                return k;
        /* A concurrent removal of another image may have freed a layer this one shares after it
         * was unpacked for us; refuse to record an image whose layers are not all there. */
        for (size_t i = 0; i < r->n_layers; i++) {
                int64_t n = 0;
                k = image_layer_lookup(s, r->diff_ids[i], &n, reterr);
                if (k <= 0) {
                        db_rollback(s);
                        return k < 0 ? k
                                     : ck_error_set(reterr, -ENOENT, "layer %s is not unpacked in the store",
                                                    r->layers[i]);
                }
        }
        if (sqlite3_prepare_v2(s->db, "DELETE FROM image_layers WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
                goto dberr;
        sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                goto dberr;
        sqlite3_finalize(TAKE_PTR(st));

        if (sqlite3_prepare_v2(s->db,
                               "INSERT OR REPLACE INTO images (name, id, manifest_digest, size, created)"
                               " VALUES (?, ?, ?, ?, ?)",
                               -1, &st, NULL) != SQLITE_OK)
                goto dberr;
        sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, r->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->manifest_digest, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (int64_t)r->size);
        sqlite3_bind_int64(st, 5, r->created ? r->created : (int64_t)time(NULL));
        if (sqlite3_step(st) != SQLITE_DONE)
                goto dberr;
        sqlite3_finalize(TAKE_PTR(st));

        if (sqlite3_prepare_v2(s->db,
                               "INSERT INTO image_layers (name, idx, digest, diff_id) VALUES (?, ?, ?, ?)",
                               -1, &st, NULL) != SQLITE_OK)
                goto dberr;
        for (size_t i = 0; i < r->n_layers; i++) {
                sqlite3_reset(st);
                sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, (int64_t)i);
                sqlite3_bind_text(st, 3, r->layers[i], -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, r->diff_ids[i], -1, SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_DONE)
                        goto dberr;
        }
        sqlite3_finalize(TAKE_PTR(st));
        return ck_sqlite_exec(s->db, "COMMIT", reterr);
dberr:
        k = image_store_db_error(s, reterr);
        db_rollback(s);
        return k;
}

int image_store_record_complete(struct image_store *s, const struct image_record *r,
                                struct ck_error **reterr)
{
        char name[32];
        struct stat st;

        if (!r->id || !image_store_has_blob(s, r->id))
                return 0;
        for (size_t i = 0; i < r->n_layers; i++) {
                int64_t n = 0;
                int k;

                if (!image_store_has_blob(s, r->layers[i]))
                        return 0;
                k = image_layer_lookup(s, r->diff_ids[i], &n, reterr);
                if (k <= 0)
                        return k;
                snprintf(name, sizeof(name), "%" PRId64, n);
                if (fstatat(s->layers_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return 0;
        }
        return 1;
}

static char *column_strdup(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);
        return strdup(t ? (const char *)t : "");
}

static int record_load(struct image_store *s, const char *name, struct image_record *ret,
                       struct ck_error **reterr)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        struct image_record r = {0};
        size_t cap = 0;
        int rc;

        if (sqlite3_prepare_v2(s->db,
                               "SELECT name, id, manifest_digest, size, created FROM images WHERE name = ?",
                               -1, &st, NULL) != SQLITE_OK)
                return image_store_db_error(s, reterr);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return ck_error_set(reterr, -ENOENT, "no such image: %s", name);
        if (rc != SQLITE_ROW)
                return image_store_db_error(s, reterr);
        r.name = column_strdup(st, 0);
        r.id = column_strdup(st, 1);
        r.manifest_digest = column_strdup(st, 2);
        r.size = (uint64_t)sqlite3_column_int64(st, 3);
        r.created = sqlite3_column_int64(st, 4);
        sqlite3_finalize(TAKE_PTR(st));
        if (!r.name || !r.id || !r.manifest_digest)
                goto oom;

        if (sqlite3_prepare_v2(s->db, "SELECT digest, diff_id FROM image_layers WHERE name = ? ORDER BY idx",
                               -1, &st, NULL) != SQLITE_OK) {
                image_record_clear(&r);
                return image_store_db_error(s, reterr);
        }
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (r.n_layers == cap) {
                        size_t ncap = cap ? 2 * cap : 8;
                        char **a = reallocarray(r.layers, ncap, sizeof(char *));
                        if (!a)
                                goto oom;
                        r.layers = a;
                        a = reallocarray(r.diff_ids, ncap, sizeof(char *));
                        if (!a)
                                goto oom;
                        r.diff_ids = a;
                        cap = ncap;
                }
                r.layers[r.n_layers] = column_strdup(st, 0);
                r.diff_ids[r.n_layers] = column_strdup(st, 1);
                r.n_layers++;
                if (!r.layers[r.n_layers - 1] || !r.diff_ids[r.n_layers - 1])
                        goto oom;
        }
        if (rc != SQLITE_DONE) {
                image_record_clear(&r);
                return image_store_db_error(s, reterr);
        }
        *ret = r;
        return 0;
oom:
        image_record_clear(&r);
        return ck_error_set(reterr, -ENOMEM, "out of memory");
}

static bool is_hex(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

/* Resolves name_or_id to the image ID and, when it named one image by name, that name. */
static int store_resolve(struct image_store *s, const char *name_or_id, char **ret_id, char **ret_name,
                         struct ck_error **reterr)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *pattern = NULL, *id = NULL;
        const char *hex = name_or_id;
        int rc;

        if (sqlite3_prepare_v2(s->db, "SELECT id FROM images WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
                return image_store_db_error(s, reterr);
        sqlite3_bind_text(st, 1, name_or_id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
                char *n = strdup(name_or_id);
                id = column_strdup(st, 0);
                if (!n || !id) {
                        free(n);
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
                }
                *ret_id = TAKE_PTR(id);
                *ret_name = n;
                return 0;
        }
        sqlite3_finalize(TAKE_PTR(st));

        if (ck_startswith(name_or_id, "sha256:"))
                hex = name_or_id + 7;
        if (!is_hex(hex) || strlen(hex) > 64 || (hex == name_or_id && strlen(hex) < 12))
                return ck_error_set(reterr, -ENOENT, "no such image: %.300s", name_or_id);
        if (asprintf(&pattern, "sha256:%s*", hex) < 0)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        if (sqlite3_prepare_v2(s->db, "SELECT DISTINCT id FROM images WHERE id GLOB ?", -1, &st, NULL) !=
            SQLITE_OK)
                return image_store_db_error(s, reterr);
        sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (id)
                        return ck_error_set(reterr, -EINVAL, "image ID prefix %s is ambiguous", hex);
                id = column_strdup(st, 0);
                if (!id)
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        if (rc != SQLITE_DONE)
                return image_store_db_error(s, reterr);
        if (!id)
                return ck_error_set(reterr, -ENOENT, "no such image: %.300s", name_or_id);
        *ret_id = TAKE_PTR(id);
        *ret_name = NULL;
        return 0;
}

/* The most recently stored name of image `id`. */
static int name_of_id(struct image_store *s, const char *id, char **ret, struct ck_error **reterr)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char *n;

        if (sqlite3_prepare_v2(s->db,
                               "SELECT name FROM images WHERE id = ? ORDER BY created DESC, name LIMIT 1",
                               -1, &st, NULL) != SQLITE_OK)
                return image_store_db_error(s, reterr);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
                return ck_error_set(reterr, -ENOENT, "no such image: %s", id);
        n = column_strdup(st, 0);
        if (!n)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        *ret = n;
        return 0;
}

int image_store_get(struct image_store *s, const char *name_or_id, struct image_record *ret,
                    struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        _cleanup_free_ char *id = NULL, *name = NULL;
        int r;

        if (!name_or_id || !*name_or_id)
                return ck_error_set(reterr, -EINVAL, "empty image name");
        r = store_resolve(s, name_or_id, &id, &name, reterr);
        if (r < 0)
                return r;
        if (!name) {
                r = name_of_id(s, id, &name, reterr);
                if (r < 0)
                        return r;
        }
        return record_load(s, name, ret, reterr);
}

int image_store_list(struct image_store *s, struct image_record **ret, size_t *ret_n,
                     struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        struct image_record *v = NULL;
        size_t n = 0, cap = 0;
        int rc, r;

        if (sqlite3_prepare_v2(s->db, "SELECT name FROM images ORDER BY created DESC, name", -1, &st,
                               NULL) != SQLITE_OK)
                return image_store_db_error(s, reterr);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *name = (const char *)sqlite3_column_text(st, 0);
                if (n == cap) {
                        size_t ncap = cap ? 2 * cap : 8;
                        struct image_record *nv = reallocarray(v, ncap, sizeof(*v));
                        if (!nv) {
                                r = ck_error_set(reterr, -ENOMEM, "out of memory");
                                goto fail;
                        }
                        v = nv;
                        cap = ncap;
                }
                r = record_load(s, name ? name : "", &v[n], reterr);
                if (r < 0)
                        goto fail;
                n++;
        }
        if (rc != SQLITE_DONE) {
                r = image_store_db_error(s, reterr);
                goto fail;
        }
        *ret = v;
        *ret_n = n;
        return 0;
fail:
        for (size_t i = 0; i < n; i++)
                image_record_clear(&v[i]);
        free(v);
        return r;
}

/* Returns 1 with the mount target when a live rootfs of image id is recorded. Stale rows are
 * dropped on the way. */
static int id_mounted(struct image_store *s, const char *id, char **ret_target, struct ck_error **reterr)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(s->db, "SELECT target FROM mounts WHERE image_id = ?", -1, &st, NULL) !=
            SQLITE_OK)
                return image_store_db_error(s, reterr);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *t = (const char *)sqlite3_column_text(st, 0);
                if (t && image_store_mount_alive(t)) {
                        *ret_target = strdup(t);
                        return *ret_target ? 1 : ck_error_set(reterr, -ENOMEM, "out of memory");
                }
        }
        return 0;
}

int image_store_count_refs(struct image_store *s, const char *sql, const char *arg)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        for (int i = 1; i <= sqlite3_bind_parameter_count(st); i++)
                sqlite3_bind_text(st, i, arg, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
                return -EIO;
        return sqlite3_column_int(st, 0);
}

int image_store_blob_referenced(struct image_store *s, const char *digest)
{
        return image_store_count_refs(
                s,
                "SELECT (SELECT COUNT(*) FROM images WHERE id = ?1 OR manifest_digest = ?1)"
                " + (SELECT COUNT(*) FROM image_layers WHERE digest = ?1)",
                digest);
}

int image_store_exec_bind(struct image_store *s, const char *sql, const char *arg)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

int image_strv_push(struct image_strv *a, const char *s)
{
        if (a->n == a->cap) {
                size_t ncap = a->cap ? 2 * a->cap : 16;
                char **nv = reallocarray(a->v, ncap, sizeof(char *));
                if (!nv)
                        return -ENOMEM;
                a->v = nv;
                a->cap = ncap;
        }
        a->v[a->n] = s ? strdup(s) : NULL; /* NULL: SQLite could not allocate the text */
        if (!a->v[a->n])
                return -ENOMEM;
        a->n++;
        return 0;
}

void image_strv_clear(struct image_strv *a)
{
        for (size_t i = 0; i < a->n; i++)
                free(a->v[i]);
        free(a->v);
        *a = (struct image_strv){0};
}

int image_store_remove(struct image_store *s, const char *name_or_id, struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        _cleanup_free_ char *id = NULL, *name = NULL, *target = NULL;
        _cleanup_(image_strv_clear) struct image_strv names = {0}, blobs = {0}, dead_blobs = {0},
                                                      diff_ids = {0}, dead_layers = {0};
        int r;

        if (!name_or_id || !*name_or_id)
                return ck_error_set(reterr, -EINVAL, "empty image name");
        r = db_begin(s, reterr);
        if (r < 0)
                return r;
        r = store_resolve(s, name_or_id, &id, &name, reterr);
        if (r < 0)
                goto rollback;

        /* The names to drop: the one given, or every name of the ID. */
        if (name) {
                r = image_strv_push(&names, name);
        } else {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                if (sqlite3_prepare_v2(s->db, "SELECT name FROM images WHERE id = ?", -1, &st, NULL) !=
                    SQLITE_OK) {
                        r = image_store_db_error(s, reterr);
                        goto rollback;
                }
                sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
                while (r >= 0 && sqlite3_step(st) == SQLITE_ROW)
                        r = image_strv_push(&names, (const char *)sqlite3_column_text(st, 0));
        }
        if (r < 0) {
                r = ck_error_set(reterr, r, "out of memory");
                goto rollback;
        }

        /* Everything these names reference is a candidate for freeing. */
        r = image_strv_push(&blobs, id);
        for (size_t i = 0; r >= 0 && i < names.n; i++) {
                struct image_record rec = {0};
                r = record_load(s, names.v[i], &rec, reterr);
                if (r < 0)
                        goto rollback;
                r = image_strv_push(&blobs, rec.manifest_digest);
                for (size_t k = 0; r >= 0 && k < rec.n_layers; k++) {
                        r = image_strv_push(&blobs, rec.layers[k]);
                        if (r >= 0)
                                r = image_strv_push(&diff_ids, rec.diff_ids[k]);
                }
                image_record_clear(&rec);
        }
        if (r < 0) {
                r = ck_error_set(reterr, r, "out of memory");
                goto rollback;
        }

        for (size_t i = 0; i < names.n; i++)
                if (image_store_exec_bind(s, "DELETE FROM images WHERE name = ?", names.v[i]) < 0 ||
                    image_store_exec_bind(s, "DELETE FROM image_layers WHERE name = ?", names.v[i]) < 0) {
                        r = image_store_db_error(s, reterr);
                        goto rollback;
                }

        /* A mounted rootfs needs the layers: refuse when this removes the ID's last name. */
        if (image_store_count_refs(s, "SELECT COUNT(*) FROM images WHERE id = ?", id) == 0) {
                r = id_mounted(s, id, &target, reterr);
                if (r < 0)
                        goto rollback;
                if (r > 0) {
                        r = ck_error_set(reterr, -EBUSY, "image %s is in use: a rootfs is mounted at %s", id,
                                         target);
                        goto rollback;
                }
                (void)image_store_exec_bind(s, "DELETE FROM mounts WHERE image_id = ?", id);
        }

        for (size_t i = 0; i < blobs.n; i++) {
                r = image_store_blob_referenced(s, blobs.v[i]);
                if (r < 0) {
                        r = image_store_db_error(s, reterr);
                        goto rollback;
                }
                if (r == 0 && image_strv_push(&dead_blobs, blobs.v[i]) < 0) {
                        r = ck_error_set(reterr, -ENOMEM, "out of memory");
                        goto rollback;
                }
        }
        for (size_t i = 0; i < diff_ids.n; i++) {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                r = image_store_count_refs(s, "SELECT COUNT(*) FROM image_layers WHERE diff_id = ?",
                                           diff_ids.v[i]);
                if (r < 0) {
                        r = image_store_db_error(s, reterr);
                        goto rollback;
                }
                if (r > 0)
                        continue;
                if (sqlite3_prepare_v2(s->db, "SELECT n FROM layers WHERE diff_id = ?", -1, &st, NULL) !=
                    SQLITE_OK) {
                        r = image_store_db_error(s, reterr);
                        goto rollback;
                }
                sqlite3_bind_text(st, 1, diff_ids.v[i], -1, SQLITE_STATIC);
                if (sqlite3_step(st) == SQLITE_ROW) {
                        char num[32];
                        snprintf(num, sizeof(num), "%" PRId64, (int64_t)sqlite3_column_int64(st, 0));
                        if (image_strv_push(&dead_layers, num) < 0) {
                                r = ck_error_set(reterr, -ENOMEM, "out of memory");
                                goto rollback;
                        }
                }
                if (image_store_exec_bind(s, "DELETE FROM layers WHERE diff_id = ?", diff_ids.v[i]) < 0) {
                        r = image_store_db_error(s, reterr);
                        goto rollback;
                }
        }
        r = ck_sqlite_exec(s->db, "COMMIT", reterr);
        if (r < 0)
                goto rollback;

        /* The records are gone; files left by a crash from here on are found by recovery
         * (layers) or are unreferenced blobs that a later removal pass cannot see, so delete now. */
        for (size_t i = 0; i < dead_layers.n; i++) {
                int k = ck_rm_rf_at(s->layers_fd, dead_layers.v[i]);
                if (k < 0)
                        log_warn("cannot remove layers/%s: %s", dead_layers.v[i], strerror(-k));
        }
        for (size_t i = 0; i < dead_blobs.n; i++) {
                char rel[IMAGE_DIGEST_MAX];
                if (image_blob_relpath(dead_blobs.v[i], rel, sizeof(rel)) == 0 &&
                    unlinkat(s->blobs_fd, rel, 0) < 0 && errno != ENOENT)
                        log_warn("cannot remove blob %s: %s", dead_blobs.v[i], strerror(errno));
        }
        return 0;
rollback:
        db_rollback(s);
        return r;
}
