/* The image store: opens the data directory (blobs/, ingest/, layers/, conker.db), creates
 * the tables and runs recovery. The store is split the way containerd splits its own:
 * content.c (blobs by digest), snapshot.c with layer-dir.c and layer-erofs.c (layers, by
 * format), metadata.c (image records), gc.c (recovery, prune, discard), locks.c (per-key
 * locks); see store-internal.h for the layout. */
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

int image_store_db_error(struct image_store *s, struct ck_error **reterr)
{
        return ck_error_set(reterr, -EIO, "database: %s", sqlite3_errmsg(s->db));
}

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
        /* One transaction: on a new store that is one synced commit instead of one per table
         * and index (synchronous=FULL), ~3 ms off the start of a first pull. Should it fail
         * (another process creating the same store at the same moment), the statements run
         * again one by one, as they always could. */
        if (ck_sqlite_exec(s->db, "BEGIN", NULL) < 0 || ck_sqlite_exec(s->db, image_schema, NULL) < 0 ||
            ck_sqlite_exec(s->db, "COMMIT", NULL) < 0) {
                (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                r = ck_sqlite_exec(s->db, image_schema, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "cannot create the image tables");
        }

        s->lock_fd = openat(s->dir_fd, "store.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (s->lock_fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s/store.lock", s->dir);
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0) {
                r = image_gc_recover(s, reterr);
                if (r >= 0)
                        r = image_gc_prune_locked(s, reterr);
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

int image_store_release(struct image_store *s, struct ck_error **reterr)
{
        if (flock(s->lock_fd, LOCK_UN) < 0)
                return ck_error_errno(reterr, -errno, "cannot unlock %s/store.lock", s->dir);
        return 0;
}

int image_store_hold(struct image_store *s, struct ck_error **reterr)
{
        while (flock(s->lock_fd, LOCK_SH) < 0)
                if (errno != EINTR)
                        return ck_error_errno(reterr, -errno, "cannot lock %s/store.lock", s->dir);
        return 0;
}

void image_store_set_limits(struct image_store *s, const struct image_limits *lim)
{
        pthread_mutex_lock(&s->mutex);
        if (lim->layer_format != s->lim.layer_format)
                s->layer_format = 0; /* resolved again at the next write */
        s->lim = *lim;
        pthread_mutex_unlock(&s->mutex);
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
