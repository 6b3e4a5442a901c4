/* Internals of the image store shared by store.c, unpack*.c and rootfs.c. Not a public
 * interface: other modules use store.h and rootfs.h only.
 *
 * Layout under the data dir (docs/design.md §7):
 *   blobs/<algo>/<hex>     verified content (manifests, configs, compressed layers)
 *   ingest/                temp files and per-digest lock files; emptied on recovery
 *   layers/<n>/            one unpacked layer per diff_id; <n> is a short number from the
 *                          `layers` table so that overlay mount data stays under one page
 *   layers/<n>.tmp/        a layer being unpacked; renamed to <n> once its diff_id matched
 *   conker.db              SQLite; this module owns the tables images, image_layers, layers
 *                          and mounts */
#pragma once

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"
#include "decompress.h"
#include "error.h"
#include "store.h"

#define IMAGE_DIGEST_MAX 136 /* "sha512:" + 128 hex + NUL, rounded */

struct image_busy {
        char *key; /* "blob:<digest>" or "layer:<diff_id>" */
        struct image_busy *next;
};

struct image_store {
        char *dir;
        int dir_fd, blobs_fd, ingest_fd, layers_fd;
        int lock_fd; /* shared flock on <dir>/store.lock for the store's lifetime */
        sqlite3 *db;
        struct image_limits lim;

        /* One SQLite connection is shared by all threads: every multi-statement use of it
         * (transactions above all) runs under this recursive lock, so one thread's ROLLBACK
         * never takes another thread's statements with it. */
        pthread_mutex_t db_lock;

        /* Keys being written in this process; writers of the same key wait on `cond`. */
        pthread_mutex_t mutex;
        pthread_cond_t cond;
        struct image_busy *busy;
};

/* Splits "sha256:<hex>" / "sha512:<hex>" (lower hex of the right length) into algo and hex.
 * Returns 0, or -EINVAL for anything else. The pointers point into digest. */
int image_digest_split(const char *digest, const char **ret_algo, size_t *ret_algo_len,
                       const char **ret_hex);

DEFINE_POINTER_CLEANUP(struct image_store, image_store_free, image_store_free)

/* Takes the DB lock; released by the cleanup of the returned guard. */
static inline struct image_store *image_store_db_lock(struct image_store *s)
{
        pthread_mutex_lock(&s->db_lock);
        return s;
}
static inline void image_store_db_unlockp(struct image_store **s)
{
        if (*s)
                pthread_mutex_unlock(&(*s)->db_lock);
}
#define _cleanup_db_lock_ _cleanup_(image_store_db_unlockp) __attribute__((unused))

/* True when target is still a mount point of an overlay (rootfs.c); a `mounts` row whose
 * mount is gone is stale. */
bool image_store_mount_alive(const char *target);

/* In-process and cross-process serialisation of one key: waits while another thread holds it,
 * then takes an exclusive flock on ingest/<name>.lock. Returns the lock fd. */
int image_store_lock_key(struct image_store *s, const char *key, const char *lock_name, int *ret_fd,
                         struct ck_error **reterr);
void image_store_unlock_key(struct image_store *s, const char *key, const char *lock_name, int fd);

/* Unpacks the tar stream read from blob_fd (compressed as kind says) into the directory
 * root_fd, confined to it. While reading, hashes the compressed bytes (checked against
 * digest) and the uncompressed stream (checked against diff_id). blob_size is the stored blob
 * size, for the ratio cap. */
struct image_unpack_opts {
        const struct image_limits *lim;
        const char *digest;  /* compressed digest, NULL to skip that check */
        const char *diff_id; /* expected uncompressed digest, NULL to skip */
        uint64_t blob_size;
        int kind; /* enum image_media_kind: LAYER_TAR, LAYER_GZIP or LAYER_ZSTD */
};
int image_unpack_fd(int blob_fd, int root_fd, const struct image_unpack_opts *o, struct ck_error **reterr);
/* The same, reading the compressed bytes from source as they arrive from the network; o->digest
 * must be NULL: the blob writer that receives the same bytes verifies them, and the source
 * reports the end of the input only once that writer committed the blob. */
int image_unpack_source(image_decomp_source_fn source, void *userdata, int root_fd,
                        const struct image_unpack_opts *o, struct ck_error **reterr);

/* ---- the per-entry writer (unpack-entry.c) ---------------------------------------------- */

struct archive;
struct archive_entry;

struct unpack_dir_time {
        char *path; /* normalised, relative to the layer root */
        struct timespec ts[2];
};

struct unpack_writer {
        int root_fd; /* the layer root; everything is created below it */
        const struct image_limits *lim;
        uint64_t entries;
        struct unpack_dir_time *dirs; /* directory times, applied by finish() */
        size_t n_dirs, cap_dirs;
        char *parent_path; /* cache of the last parent directory opened */
        int parent_fd;
};

void unpack_writer_init(struct unpack_writer *w, int root_fd, const struct image_limits *lim);
/* Creates the object the current header of `a` describes (reading its data from `a`). */
int unpack_writer_entry(struct unpack_writer *w, struct archive *a, struct archive_entry *e,
                        struct ck_error **reterr);
/* Applies the deferred directory times. */
int unpack_writer_finish(struct unpack_writer *w, struct ck_error **reterr);
void unpack_writer_clear(struct unpack_writer *w);

/* Normalises a member name: strips leading "/" and "./", drops "." components and empty
 * ones, rejects ".." components and names longer than max. Returns 0 with a malloc'd path, 1
 * when the name is the root itself, or -EINVAL. */
int unpack_path_normalise(const char *name, size_t max, char **ret);
