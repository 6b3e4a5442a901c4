/* Internals of the image store shared by its files (store.c, content.c, locks.c, snapshot.c,
 * layer-*.c, metadata.c, gc.c, unpack*.c, erofs-*.c, rootfs.c). Not a public interface: other
 * modules use store.h and rootfs.h only.
 *
 * Layout under the data dir (docs/design.md §7):
 *   blobs/<algo>/<hex>     verified content (manifests, configs, compressed layers)
 *   ingest/                temp files and per-digest lock files; emptied on recovery
 *   layers/<n>             one layer per diff_id: a directory (layer-format dir) or an EROFS
 *                          image file (erofs); <n> is a short number from the `layers` table
 *                          so that overlay mount data stays under one page
 *   layers/<n>.tmp         a layer being written; renamed to <n> once its diff_id matched
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
/* Layers and blobs start their writeback (sync_file_range) every this many bytes. */
#define IMAGE_WRITEBACK_CHUNK (UINT64_C(8) << 20)

struct image_busy {
        char *key; /* "blob:<digest>" or "layer:<diff_id>" */
        struct image_busy *next;
};

struct image_store {
        char *dir;
        int dir_fd, blobs_fd, ingest_fd, layers_fd;
        int lock_fd; /* shared flock on <dir>/store.lock while open (dropped by image_store_release()) */
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
        int layer_format; /* resolved from lim.layer_format on first use (under mutex), 0 before */
};

/* Splits "sha256:<hex>" / "sha512:<hex>" (lower hex of the right length) into algo and hex.
 * Returns 0, or -EINVAL for anything else. The pointers point into digest. */
int image_digest_split(const char *digest, const char **ret_algo, size_t *ret_algo_len,
                       const char **ret_hex);

/* True for a well-formed digest (image_digest_split() accepts it). */
bool image_digest_ok(const char *digest);
/* "sha256/<hex>": the path of a blob below blobs/ (content.c). */
int image_blob_relpath(const char *digest, char *buf, size_t bufsz);

/* Sets reterr from the connection's last SQLite error; returns -EIO. */
int image_store_db_error(struct image_store *s, struct ck_error **reterr);

/* snapshot.c: 1 and the layer number when diff_id has a ready layer, 0 when it has none. */
int image_layer_lookup(struct image_store *s, const char *diff_id, int64_t *ret_n, struct ck_error **reterr);

/* metadata.c: reference counting over the records, and a small string vector. */
int image_store_count_refs(struct image_store *s, const char *sql, const char *arg);
/* > 0 when an image record uses digest (as config, manifest or layer), 0 when none, -EIO. */
int image_store_blob_referenced(struct image_store *s, const char *digest);
int image_store_exec_bind(struct image_store *s, const char *sql, const char *arg);
struct image_strv {
        char **v;
        size_t n, cap;
};
int image_strv_push(struct image_strv *a, const char *s);
void image_strv_clear(struct image_strv *a);

/* gc.c: both called with the exclusive store lock (no other process has the store open).
 * recover removes what a crash left (temp files, unfinished layers); prune_locked removes the
 * blobs and layers no record references and returns how many. */
int image_gc_recover(struct image_store *s, struct ck_error **reterr);
int image_gc_prune_locked(struct image_store *s, struct ck_error **reterr);

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

/* A layer format (containerd's snapshotter): how a layer is created, written from its tar
 * stream and lent to the rootfs overlay. layer-dir.c (a directory tree) and layer-erofs.c (one
 * EROFS image file) implement it; a committed layer's format is its file type on disk. */
struct archive;
struct archive_entry;
struct image_layer_backend {
        enum image_layer_format format;
        /* Creates layers_fd/name (empty) and opens what the writer writes into. */
        int (*create)(int layers_fd, const char *name, int *ret_fd);
        /* The writer: one tar member at a time (entry reads the member's data from a), then
         * finish once the stream ended. free takes any state, finished or not. */
        int (*writer_new)(int out_fd, const struct image_limits *lim, void **ret);
        int (*writer_entry)(void *w, struct archive *a, struct archive_entry *e, struct ck_error **reterr);
        int (*writer_finish)(void *w, struct ck_error **reterr);
        void (*writer_free)(void *w);
        /* For the rootfs overlay: a mount fd of the committed layer at path, or -1 (pass the
         * path itself as lowerdir). */
        int (*open_lower)(const char *path, int *ret_fd, struct ck_error **reterr);
};
extern const struct image_layer_backend image_layer_dir, image_layer_erofs;
/* The backend of a format (auto means dir here: resolve it with image_store_layer_format()). */
const struct image_layer_backend *image_layer_backend(enum image_layer_format f);

/* 0 when this kernel mounts a file-backed EROFS image (written as a temporary file in dirfd)
 * and overlayfs takes lower layers by file descriptor (fsconfig FSCONFIG_SET_FD "lowerdir+",
 * Linux 6.13), else -errno. */
int image_erofs_probe(int dirfd);
/* Mounts the EROFS image at path read-only as a detached mount (nothing appears in any mount
 * table until overlayfs holds it as a lower layer). Returns the mount fd. */
int image_erofs_mount(const char *path, int *ret_fd, struct ck_error **reterr);

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
        int kind;   /* enum image_media_kind: LAYER_TAR, LAYER_GZIP or LAYER_ZSTD */
        int format; /* enum image_layer_format: DIR (out_fd is the layer root directory) or
                     * EROFS (out_fd is the empty image file, written from offset 0) */
};
int image_unpack_fd(int blob_fd, int out_fd, const struct image_unpack_opts *o, struct ck_error **reterr);
/* The same, reading the compressed bytes from source as they arrive from the network; o->digest
 * must be NULL: the blob writer that receives the same bytes verifies them, and the source
 * reports the end of the input only once that writer committed the blob. */
int image_unpack_source(image_decomp_source_fn source, void *userdata, int out_fd,
                        const struct image_unpack_opts *o, struct ck_error **reterr);

/* ---- the per-entry writer (unpack-entry.c) ---------------------------------------------- */

struct archive;
struct archive_entry;

struct unpack_dir_time {
        char *path; /* normalised, relative to the layer root */
        dev_t dev;  /* the directory the member made: a path that leads elsewhere by the end */
        ino_t ino;  /* (its directory replaced, a parent now a symlink) is not dated */
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

/* The layer xattrs that are applied: security.capability and user.* but not user.overlay.*
 * (overlayfs trusts trusted.overlay.* and user.overlay.*, which a layer must not forge). */
bool unpack_xattr_allowed(const char *name);

/* Normalises a member name: strips leading "/" and "./", drops "." components and empty
 * ones, rejects ".." components and names longer than max. Returns 0 with a malloc'd path, 1
 * when the name is the root itself, or -EINVAL. */
int unpack_path_normalise(const char *name, size_t max, char **ret);

/* What a member's base name says about whiteouts (the OCI layer rules): not one; ".wh..wh..opq"
 * (the parent directory is opaque); other ".wh..wh." metadata (ignored); ".wh.<victim>" (victim
 * deleted; *ret_victim points into base); or invalid (".wh.", ".wh..", ".wh...": refused). */
enum unpack_whiteout {
        UNPACK_NOT_WHITEOUT,
        UNPACK_WHITEOUT_OPAQUE,
        UNPACK_WHITEOUT_META,
        UNPACK_WHITEOUT_FILE,
        UNPACK_WHITEOUT_INVALID,
};
enum unpack_whiteout unpack_whiteout_classify(const char *base, const char **ret_victim);

/* A printable copy of a member name for error messages (names are attacker-chosen bytes). */
const char *unpack_shown(const char *name, char buf[static 200]);

/* The rules every layer format applies to a member before its type is looked at: a usable
 * name, the entry-count and size limits (*entries counts the members seen), and the
 * normalised path. Returns 0 with *ret_path (malloc'd), 1 for the layer root itself ("./",
 * which keeps its own attributes), or a negative errno with reterr set. */
int unpack_member_admit(struct archive_entry *e, const struct image_limits *lim, uint64_t *entries,
                        char **ret_path, struct ck_error **reterr);
