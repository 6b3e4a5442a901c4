/* The image store: verified blobs by digest, unpacked layers by diff_id, image records in
 * SQLite, and crash recovery (see store-internal.h for the layout).
 *
 * Invariants:
 * - a file under blobs/ has the digest its name says: it is written to ingest/, hashed while
 *   written, checked for size and digest and only then renamed into place (and whoever reads
 *   it hashes it again);
 * - a directory layers/<n>/ with a ready row in `layers` is a complete layer whose
 *   uncompressed stream had the recorded diff_id (unpack.c writes into <n>.tmp and the rename
 *   happens after the check);
 * - durability: everything an image record references is on disk before the record is
 *   committed (one syncfs() in image_store_put(), not an fsync per blob and a syncfs per
 *   layer: on a busy host those cost more than the unpacking). What no record references may
 *   be torn by a power loss, and recovery prunes exactly that;
 * - one writer per blob digest and per diff_id at a time, across threads (busy list + condvar)
 *   and across processes (flock on ingest/<key>.lock);
 * - recovery runs only when no other process has the store open (exclusive flock on
 *   store.lock), so it never deletes another process's work in progress. */
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

#define BLOB_WRITE_BUF (256u << 10)

static const char image_schema[] =
        "CREATE TABLE IF NOT EXISTS images ("
        " name TEXT PRIMARY KEY,"
        " id TEXT NOT NULL,"
        " manifest_digest TEXT NOT NULL,"
        " size INTEGER NOT NULL,"
        " created INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS images_id ON images(id);"
        "CREATE TABLE IF NOT EXISTS image_layers ("
        " name TEXT NOT NULL,"
        " idx INTEGER NOT NULL,"
        " digest TEXT NOT NULL,"
        " diff_id TEXT NOT NULL,"
        " PRIMARY KEY (name, idx));"
        "CREATE INDEX IF NOT EXISTS image_layers_digest ON image_layers(digest);"
        "CREATE INDEX IF NOT EXISTS image_layers_diff_id ON image_layers(diff_id);"
        "CREATE TABLE IF NOT EXISTS layers ("
        " n INTEGER PRIMARY KEY AUTOINCREMENT,"
        " diff_id TEXT NOT NULL UNIQUE,"
        " digest TEXT NOT NULL,"
        " ready INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS mounts ("
        " target TEXT PRIMARY KEY,"
        " image_id TEXT NOT NULL,"
        " state_dir TEXT NOT NULL,"
        " created INTEGER NOT NULL);";

void image_limits_default(struct image_limits *l)
{
        *l = (struct image_limits){
                .max_blob_size = UINT64_C(4) << 30,
                .max_layer_unpacked = UINT64_C(16) << 30,
                .max_layer_entries = 1000000,
                .max_ratio = 100,
                .max_name_len = 4096,
        };
}

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

static bool image_digest_split_ok(const char *digest)
{
        const char *algo, *hex;
        size_t algo_len;

        return image_digest_split(digest, &algo, &algo_len, &hex) == 0;
}

/* "sha256/<hex>": the path of a blob below blobs/. */
static int blob_relpath(const char *digest, char *buf, size_t bufsz)
{
        const char *algo, *hex;
        size_t algo_len;
        int r = image_digest_split(digest, &algo, &algo_len, &hex);

        if (r < 0)
                return r;
        r = snprintf(buf, bufsz, "%.*s/%s", (int)algo_len, algo, hex);
        return r < 0 || (size_t)r >= bufsz ? -ENAMETOOLONG : 0;
}

/* ---- per-key locks ---------------------------------------------------------------------- */

static bool busy_has(struct image_store *s, const char *key)
{
        for (struct image_busy *b = s->busy; b; b = b->next)
                if (strcmp(b->key, key) == 0)
                        return true;
        return false;
}

int image_store_lock_key(struct image_store *s, const char *key, const char *lock_name, int *ret_fd,
                         struct ck_error **reterr)
{
        struct image_busy *b = calloc(1, sizeof(*b));

        if (!b || !(b->key = strdup(key))) {
                free(b);
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        pthread_mutex_lock(&s->mutex);
        while (busy_has(s, key))
                pthread_cond_wait(&s->cond, &s->mutex);
        b->next = s->busy;
        s->busy = b;
        pthread_mutex_unlock(&s->mutex);

        /* Across processes: flock the lock file, then make sure it is still the file at that
         * name (the previous holder unlinks it when done). */
        for (;;) {
                _cleanup_close_ int fd =
                        openat(s->ingest_fd, lock_name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                struct stat a, b2;
                int r;

                if (fd < 0) {
                        r = -errno;
                        image_store_unlock_key(s, key, NULL, -1);
                        return ck_error_errno(reterr, r, "cannot create lock file %s", lock_name);
                }
                while (flock(fd, LOCK_EX) < 0)
                        if (errno != EINTR) {
                                r = -errno;
                                image_store_unlock_key(s, key, NULL, -1);
                                return ck_error_errno(reterr, r, "cannot lock %s", lock_name);
                        }
                if (fstat(fd, &a) == 0 && fstatat(s->ingest_fd, lock_name, &b2, AT_SYMLINK_NOFOLLOW) == 0 &&
                    a.st_dev == b2.st_dev && a.st_ino == b2.st_ino) {
                        *ret_fd = TAKE_FD(fd);
                        return 0;
                }
        }
}

void image_store_unlock_key(struct image_store *s, const char *key, const char *lock_name, int fd)
{
        struct image_busy **pp;

        if (fd >= 0) {
                if (lock_name)
                        (void)unlinkat(s->ingest_fd, lock_name, 0);
                close(fd);
        }
        pthread_mutex_lock(&s->mutex);
        for (pp = &s->busy; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->key, key) == 0) {
                        struct image_busy *b = *pp;
                        *pp = b->next;
                        free(b->key);
                        free(b);
                        break;
                }
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mutex);
}

static int store_prune_locked(struct image_store *s, struct ck_error **reterr);

/* ---- open and recovery ------------------------------------------------------------------ */

static int open_subdir(int dirfd, const char *name, int *ret, struct ck_error **reterr)
{
        int fd;

        if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
                return ck_error_errno(reterr, -errno, "cannot create %s", name);
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", name);
        *ret = fd;
        return 0;
}

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
static int store_recover(struct image_store *s, struct ck_error **reterr)
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

int image_store_open(const char *dir, const struct image_limits *lim, struct image_store **ret,
                     struct ck_error **reterr)
{
        _cleanup_(image_store_freep) struct image_store *s = NULL;
        _cleanup_free_ char *dbpath = NULL;
        int r, fd;

        s = calloc(1, sizeof(*s));
        if (!s)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        s->dir_fd = s->blobs_fd = s->ingest_fd = s->layers_fd = s->lock_fd = -1;
        pthread_mutex_init(&s->mutex, NULL);
        {
                pthread_mutexattr_t a;
                pthread_mutexattr_init(&a);
                pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
                pthread_mutex_init(&s->db_lock, &a);
                pthread_mutexattr_destroy(&a);
        }
        pthread_cond_init(&s->cond, NULL);
        if (lim)
                s->lim = *lim;
        else
                image_limits_default(&s->lim);

        r = ck_mkdir_p(dir, 0700);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot create data directory %s", dir);
        s->dir = realpath(dir, NULL);
        if (!s->dir)
                return ck_error_errno(reterr, -errno, "cannot resolve data directory %s", dir);
        s->dir_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->dir_fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open data directory %s", s->dir);

        r = open_subdir(s->dir_fd, "blobs", &s->blobs_fd, reterr);
        if (r < 0)
                return r;
        for (const char *a = "sha256"; a; a = strcmp(a, "sha256") == 0 ? "sha512" : NULL) {
                r = open_subdir(s->blobs_fd, a, &fd, reterr);
                if (r < 0)
                        return r;
                close(fd);
        }
        r = open_subdir(s->dir_fd, "ingest", &s->ingest_fd, reterr);
        if (r < 0)
                return r;
        r = open_subdir(s->dir_fd, "layers", &s->layers_fd, reterr);
        if (r < 0)
                return r;

        if (asprintf(&dbpath, "%s/conker.db", s->dir) < 0)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        r = ck_sqlite_open(dbpath, &s->db, reterr);
        if (r < 0)
                return r;
        r = ck_sqlite_exec(s->db, image_schema, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "cannot create the image tables");

        s->lock_fd = openat(s->dir_fd, "store.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (s->lock_fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s/store.lock", s->dir);
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0) {
                r = store_recover(s, reterr);
                if (r >= 0)
                        r = store_prune_locked(s, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "store recovery");
                if (r > 0)
                        log_info("store recovery: removed %d unreferenced blobs and layers", r);
        } else if (errno != EWOULDBLOCK) {
                return ck_error_errno(reterr, -errno, "cannot lock %s/store.lock", s->dir);
        }
        if (flock(s->lock_fd, LOCK_SH) < 0)
                return ck_error_errno(reterr, -errno, "cannot lock %s/store.lock", s->dir);

        *ret = TAKE_PTR(s);
        return 0;
}

void image_store_free(struct image_store *s)
{
        if (!s)
                return;
        while (s->busy) {
                struct image_busy *b = s->busy;
                s->busy = b->next;
                free(b->key);
                free(b);
        }
        sqlite3_close_v2(s->db);
        safe_close(s->lock_fd);
        safe_close(s->layers_fd);
        safe_close(s->ingest_fd);
        safe_close(s->blobs_fd);
        safe_close(s->dir_fd);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->mutex);
        pthread_mutex_destroy(&s->db_lock);
        free(s->dir);
        free(s);
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
        uint8_t *buf;
        size_t buf_len;
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
        free(w->buf);
        free(w->digest);
        free(w);
}

bool image_store_has_blob(struct image_store *s, const char *digest)
{
        char rel[IMAGE_DIGEST_MAX];
        struct stat st;

        if (blob_relpath(digest, rel, sizeof(rel)) < 0)
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
        w->buf = malloc(BLOB_WRITE_BUF);
        w->md = EVP_MD_CTX_new();
        if (!w->digest || !w->buf || !w->md) {
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
        *ret = w;
        return 0;
}

static int blob_flush(struct image_blob_writer *w)
{
        int r;

        if (w->buf_len == 0)
                return 0;
        r = ck_write_all(w->fd, w->buf, w->buf_len);
        w->buf_len = 0;
        return r;
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
        w->written += len;
        if (len >= BLOB_WRITE_BUF) {
                r = blob_flush(w);
                if (r >= 0)
                        r = ck_write_all(w->fd, data, len);
        } else {
                if (len > BLOB_WRITE_BUF - w->buf_len) {
                        r = blob_flush(w);
                        if (r < 0)
                                return ck_error_errno(reterr, r, "cannot write blob %s", w->digest);
                }
                memcpy(w->buf + w->buf_len, data, len);
                w->buf_len += len;
                r = 0;
        }
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot write blob %s", w->digest);
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

        r = blob_flush(w);
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

        if (blob_relpath(digest, rel, sizeof(rel)) < 0)
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

/* ---- layers ----------------------------------------------------------------------------- */

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

static int db_error(struct image_store *s, struct ck_error **reterr)
{
        return ck_error_set(reterr, -EIO, "database: %s", sqlite3_errmsg(s->db));
}

/* Returns 1 and the number when diff_id has a ready layer, 0 when it has none. */
static int layer_lookup(struct image_store *s, const char *diff_id, int64_t *ret_n, struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc;

        if (sqlite3_prepare_v2(s->db, "SELECT n FROM layers WHERE diff_id = ? AND ready = 1", -1, &st,
                               NULL) != SQLITE_OK)
                return db_error(s, reterr);
        sqlite3_bind_text(st, 1, diff_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return 0;
        if (rc != SQLITE_ROW)
                return db_error(s, reterr);
        *ret_n = sqlite3_column_int64(st, 0);
        return 1;
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

        r = layer_lookup(s, diff_id, &n, reterr);
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
                return db_error(s, reterr);
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
                return db_error(s, reterr);
        sqlite3_bind_text(st, 1, diff_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, layer->digest, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                return db_error(s, reterr);
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

        if (blob_relpath(layer->digest, rel, sizeof(rel)) < 0) {
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
        if (format == IMAGE_LAYER_EROFS) {
                /* One image file, written sequentially: no file per entry. */
                (void)ck_rm_rf_at(s->layers_fd, tmp);
                root_fd =
                        openat(s->layers_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        } else {
                if (mkdirat(s->layers_fd, tmp, 0755) < 0 && errno != EEXIST) {
                        r = ck_error_errno(reterr, -errno, "cannot create layers/%s", tmp);
                        goto fail;
                }
                root_fd = openat(s->layers_fd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (root_fd < 0) {
                r = ck_error_errno(reterr, -errno, "cannot open layers/%s", tmp);
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
        /* Visibility comes from the rename of the whole layer; durability from the syncfs()
         * in image_store_put() before any record references it. No per-file fsync. */
        if (renameat(s->layers_fd, tmp, s->layers_fd, name) < 0) {
                r = ck_error_errno(reterr, -errno, "cannot commit layer %s", layer->digest);
                goto fail;
        }

        sqlite3_finalize(TAKE_PTR(st));
        if (sqlite3_prepare_v2(s->db, "UPDATE layers SET ready = 1 WHERE n = ?", -1, &st, NULL) !=
            SQLITE_OK) {
                r = db_error(s, reterr);
                (void)ck_rm_rf_at(s->layers_fd, name);
                goto fail;
        }
        sqlite3_bind_int64(st, 1, n);
        if (sqlite3_step(st) != SQLITE_DONE) {
                r = db_error(s, reterr);
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

char *image_store_layer_dir(struct image_store *s, const char *diff_id)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        char *p = NULL;
        int64_t n = 0;

        if (layer_lookup(s, diff_id, &n, NULL) <= 0)
                return NULL;
        if (asprintf(&p, "%s/layers/%" PRId64, s->dir, n) < 0)
                return NULL;
        return p;
}

/* ---- pruning ------------------------------------------------------------------------ */

static int blob_referenced(struct image_store *s, const char *digest);
static int count_refs(struct image_store *s, const char *sql, const char *arg);
static int exec_bind(struct image_store *s, const char *sql, const char *arg);
struct strv {
        char **v;
        size_t n, cap;
};
static int strv_push(struct strv *a, const char *s);
static void strv_clear(struct strv *a);

/* Deletes unreferenced blobs and layers. Caller holds the exclusive store lock. */
static int store_prune_locked(struct image_store *s, struct ck_error **reterr)
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
                        k = blob_referenced(s, digest);
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
                        return db_error(s, reterr);
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

        if (count_refs(s, "SELECT COUNT(*) FROM image_layers WHERE diff_id = ?", diff_id) != 0)
                return;
        if (sqlite3_prepare_v2(s->db, "SELECT n FROM layers WHERE diff_id = ?", -1, &st, NULL) != SQLITE_OK)
                return;
        sqlite3_bind_text(st, 1, diff_id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
                return;
        snprintf(name, sizeof(name), "%" PRId64, (int64_t)sqlite3_column_int64(st, 0));
        sqlite3_finalize(TAKE_PTR(st));
        if (exec_bind(s, "DELETE FROM layers WHERE diff_id = ?", diff_id) == 0)
                (void)ck_rm_rf_at(s->layers_fd, name);
}

int image_store_discard(struct image_store *s, char *const *digests, size_t n, struct ck_error **reterr)
{
        for (size_t i = 0; i < n; i++) {
                _cleanup_(strv_clear) struct strv diff_ids = {0};
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
                                return db_error(s, reterr);
                        sqlite3_bind_text(st, 1, digests[i], -1, SQLITE_STATIC);
                        while (sqlite3_step(st) == SQLITE_ROW)
                                if (strv_push(&diff_ids, (const char *)sqlite3_column_text(st, 0)) < 0)
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
                        if (blob_referenced(s, digests[i]) == 0 &&
                            blob_relpath(digests[i], rel, sizeof(rel)) == 0)
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
        r = store_prune_locked(s, reterr);
        if (flock(s->lock_fd, LOCK_SH) < 0 && r >= 0)
                r = ck_error_errno(reterr, -errno, "cannot lock the store");
        return r;
}

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

/* Makes everything written to blobs/ and layers/ so far durable: the one sync of a pull. */
static int store_sync(struct image_store *s, struct ck_error **reterr)
{
        struct stat a, b;

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

        if (!r->name || !*r->name || !image_digest_split_ok(r->id) ||
            !image_digest_split_ok(r->manifest_digest))
                return ck_error_set(reterr, -EINVAL, "invalid image record");
        if (r->n_layers > IMAGE_LAYERS_MAX)
                return ck_error_set(reterr, -E2BIG, "image has %zu layers, more than %d", r->n_layers,
                                    IMAGE_LAYERS_MAX);
        for (size_t i = 0; i < r->n_layers; i++)
                if (!image_digest_split_ok(r->layers[i]) || !image_digest_split_ok(r->diff_ids[i]))
                        return ck_error_set(reterr, -EINVAL, "invalid image record: layer %zu", i);

        /* Before the record exists, everything it references must be on disk (outside the DB
         * lock: a sync can take a while on a busy host). */
        k = store_sync(s, reterr);
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
                k = layer_lookup(s, r->diff_ids[i], &n, reterr);
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
        k = db_error(s, reterr);
        db_rollback(s);
        return k;
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
                return db_error(s, reterr);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return ck_error_set(reterr, -ENOENT, "no such image: %s", name);
        if (rc != SQLITE_ROW)
                return db_error(s, reterr);
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
                return db_error(s, reterr);
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
                return db_error(s, reterr);
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
                return db_error(s, reterr);
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
                return db_error(s, reterr);
        sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (id)
                        return ck_error_set(reterr, -EINVAL, "image ID prefix %s is ambiguous", hex);
                id = column_strdup(st, 0);
                if (!id)
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        if (rc != SQLITE_DONE)
                return db_error(s, reterr);
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
                return db_error(s, reterr);
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
                return db_error(s, reterr);
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
                r = db_error(s, reterr);
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
                return db_error(s, reterr);
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

static int count_refs(struct image_store *s, const char *sql, const char *arg)
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

static int blob_referenced(struct image_store *s, const char *digest)
{
        return count_refs(s,
                          "SELECT (SELECT COUNT(*) FROM images WHERE id = ?1 OR manifest_digest = ?1)"
                          " + (SELECT COUNT(*) FROM image_layers WHERE digest = ?1)",
                          digest);
}

static int exec_bind(struct image_store *s, const char *sql, const char *arg)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

static int strv_push(struct strv *a, const char *s)
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

static void strv_clear(struct strv *a)
{
        for (size_t i = 0; i < a->n; i++)
                free(a->v[i]);
        free(a->v);
        *a = (struct strv){0};
}

int image_store_remove(struct image_store *s, const char *name_or_id, struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        _cleanup_free_ char *id = NULL, *name = NULL, *target = NULL;
        _cleanup_(strv_clear) struct strv names = {0}, blobs = {0}, dead_blobs = {0}, diff_ids = {0},
                                          dead_layers = {0};
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
                r = strv_push(&names, name);
        } else {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                if (sqlite3_prepare_v2(s->db, "SELECT name FROM images WHERE id = ?", -1, &st, NULL) !=
                    SQLITE_OK) {
                        r = db_error(s, reterr);
                        goto rollback;
                }
                sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
                while (r >= 0 && sqlite3_step(st) == SQLITE_ROW)
                        r = strv_push(&names, (const char *)sqlite3_column_text(st, 0));
        }
        if (r < 0) {
                r = ck_error_set(reterr, r, "out of memory");
                goto rollback;
        }

        /* Everything these names reference is a candidate for freeing. */
        r = strv_push(&blobs, id);
        for (size_t i = 0; r >= 0 && i < names.n; i++) {
                struct image_record rec = {0};
                r = record_load(s, names.v[i], &rec, reterr);
                if (r < 0)
                        goto rollback;
                r = strv_push(&blobs, rec.manifest_digest);
                for (size_t k = 0; r >= 0 && k < rec.n_layers; k++) {
                        r = strv_push(&blobs, rec.layers[k]);
                        if (r >= 0)
                                r = strv_push(&diff_ids, rec.diff_ids[k]);
                }
                image_record_clear(&rec);
        }
        if (r < 0) {
                r = ck_error_set(reterr, r, "out of memory");
                goto rollback;
        }

        for (size_t i = 0; i < names.n; i++)
                if (exec_bind(s, "DELETE FROM images WHERE name = ?", names.v[i]) < 0 ||
                    exec_bind(s, "DELETE FROM image_layers WHERE name = ?", names.v[i]) < 0) {
                        r = db_error(s, reterr);
                        goto rollback;
                }

        /* A mounted rootfs needs the layers: refuse when this removes the ID's last name. */
        if (count_refs(s, "SELECT COUNT(*) FROM images WHERE id = ?", id) == 0) {
                r = id_mounted(s, id, &target, reterr);
                if (r < 0)
                        goto rollback;
                if (r > 0) {
                        r = ck_error_set(reterr, -EBUSY, "image %s is in use: a rootfs is mounted at %s", id,
                                         target);
                        goto rollback;
                }
                (void)exec_bind(s, "DELETE FROM mounts WHERE image_id = ?", id);
        }

        for (size_t i = 0; i < blobs.n; i++) {
                r = blob_referenced(s, blobs.v[i]);
                if (r < 0) {
                        r = db_error(s, reterr);
                        goto rollback;
                }
                if (r == 0 && strv_push(&dead_blobs, blobs.v[i]) < 0) {
                        r = ck_error_set(reterr, -ENOMEM, "out of memory");
                        goto rollback;
                }
        }
        for (size_t i = 0; i < diff_ids.n; i++) {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                r = count_refs(s, "SELECT COUNT(*) FROM image_layers WHERE diff_id = ?", diff_ids.v[i]);
                if (r < 0) {
                        r = db_error(s, reterr);
                        goto rollback;
                }
                if (r > 0)
                        continue;
                if (sqlite3_prepare_v2(s->db, "SELECT n FROM layers WHERE diff_id = ?", -1, &st, NULL) !=
                    SQLITE_OK) {
                        r = db_error(s, reterr);
                        goto rollback;
                }
                sqlite3_bind_text(st, 1, diff_ids.v[i], -1, SQLITE_STATIC);
                if (sqlite3_step(st) == SQLITE_ROW) {
                        char num[32];
                        snprintf(num, sizeof(num), "%" PRId64, (int64_t)sqlite3_column_int64(st, 0));
                        if (strv_push(&dead_layers, num) < 0) {
                                r = ck_error_set(reterr, -ENOMEM, "out of memory");
                                goto rollback;
                        }
                }
                if (exec_bind(s, "DELETE FROM layers WHERE diff_id = ?", diff_ids.v[i]) < 0) {
                        r = db_error(s, reterr);
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
                if (blob_relpath(dead_blobs.v[i], rel, sizeof(rel)) == 0 &&
                    unlinkat(s->blobs_fd, rel, 0) < 0 && errno != ENOENT)
                        log_warn("cannot remove blob %s: %s", dead_blobs.v[i], strerror(errno));
        }
        return 0;
rollback:
        db_rollback(s);
        return r;
}
