/* The image store: content-addressed blobs, unpacked layers and image records under one data
 * directory (docs/design.md §7: blobs/sha256/…, layers/, and the images tables of conker.db).
 *
 * Contract header (owned by the image module). Every blob is verified by size and digest before
 * it becomes visible (written to a temp file, renamed on success); concurrent writers of the same
 * digest are serialised so a blob is fetched once; each layer is unpacked once, and its
 * uncompressed digest is checked against the config's diff_id before it is committed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "manifest.h"

struct image_limits {
        uint64_t max_blob_size;      /* default 4 GiB */
        uint64_t max_layer_unpacked; /* default 16 GiB */
        uint64_t max_layer_entries;  /* default 1,000,000 */
        uint64_t max_ratio;          /* uncompressed/compressed, default 100 (past 1 MiB) */
        size_t max_name_len;         /* default 4096 */
        int layer_format;            /* not a limit: enum image_layer_format, default auto */
};
void image_limits_default(struct image_limits *l);

struct image_store;

/* How a layer is stored (config key layer-format): an EROFS image file mounted as an overlay
 * lower layer, or an unpacked directory; auto takes EROFS when the kernel mounts file-backed
 * EROFS images and takes overlay layers by file descriptor (checked once per store). */
enum image_layer_format {
        IMAGE_LAYER_AUTO,
        IMAGE_LAYER_DIR,
        IMAGE_LAYER_EROFS,
};
int image_layer_format_from_string(const char *s);
const char *image_layer_format_to_string(enum image_layer_format f);

/* Opens or creates the store under dir (mode 0700), recovering from a crash: temp files and
 * half-unpacked layers are removed, and so are blobs and layers no image references. Recovery
 * runs only when no other process has the store open (see image_store_prune()). */
int image_store_open(const char *dir, const struct image_limits *lim, struct image_store **ret,
                     struct ck_error **reterr);
void image_store_free(struct image_store *s);

/* For a process that keeps a store open between uses (conker-fetch between pulls): release()
 * drops the shared lock on store.lock that image_store_open() took, so that an idle holder does
 * not keep another process's recovery or prune out; hold() takes it again before the next use
 * (it waits while someone has the store exclusively). Nothing may be written through s while
 * it is released. */
int image_store_release(struct image_store *s, struct ck_error **reterr);
int image_store_hold(struct image_store *s, struct ck_error **reterr);
/* New limits (and layer format) for the next writes; only while nothing is written through s. */
void image_store_set_limits(struct image_store *s, const struct image_limits *lim);

/* The format new layers are written in: the configured one, or for auto the result of the
 * EROFS probe (a file-backed EROFS mount on the layers' file system, overlay lower layers by
 * fd), made once per store; never IMAGE_LAYER_AUTO. */
enum image_layer_format image_store_layer_format(struct image_store *s);

/* Blob writing. begin() returns 0 and a writer, or 1 when the blob is already present (no
 * writer); if another thread is writing the same digest it waits for it. */
struct image_blob_writer;
int image_blob_begin(struct image_store *s, const char *digest, uint64_t size,
                     struct image_blob_writer **ret, struct ck_error **reterr);
int image_blob_write(struct image_blob_writer *w, const uint8_t *data, size_t len, struct ck_error **reterr);
/* Verifies size and digest, then makes the blob visible. Frees w in all cases. */
int image_blob_commit(struct image_blob_writer *w, struct ck_error **reterr);
void image_blob_abort(struct image_blob_writer *w);

bool image_store_has_blob(struct image_store *s, const char *digest);
/* Reads a blob (max bytes) and re-verifies its digest. */
int image_store_read_blob(struct image_store *s, const char *digest, size_t max, uint8_t **ret,
                          size_t *ret_len, struct ck_error **reterr);

/* Writes a stored layer blob (gzip, zstd or plain tar) as a layer in the store's format (an
 * EROFS image, or a directory with the confined writer), checking the diff_id. Idempotent. */
int image_store_unpack_layer(struct image_store *s, const struct image_descriptor *layer,
                             const char *diff_id, struct ck_error **reterr);

/* The same, streaming: reads the layer's compressed bytes from source while they are being
 * downloaded (pull.c feeds the same bytes to the blob's writer) instead of from the stored
 * blob. source hands out the next bytes (> 0, *ret_buf valid until the next call), or fails
 * (-errno); it must report the end (0) only after the blob writer committed the blob (size and
 * digest verified). The layer is committed only after that end and a matching diff_id;
 * otherwise its temporary file or directory is removed. Returns 0 also when the layer was already unpacked,
 * in which case source may not have been read at all. */
int image_store_unpack_layer_from(struct image_store *s, const struct image_descriptor *layer,
                                  const char *diff_id,
                                  ssize_t (*source)(void *userdata, const uint8_t **ret_buf), void *userdata,
                                  struct ck_error **reterr);

/* An image record: the name it was pulled as, its manifest digest, its ID (config digest)
 * and its layers (bottom first). */
struct image_record {
        char *name; /* normalised reference */
        char *manifest_digest;
        char *id;      /* config digest = image ID */
        char **layers; /* layer (compressed) digests, bottom first */
        char **diff_ids;
        size_t n_layers;
        uint64_t size;   /* sum of blob sizes */
        int64_t created; /* unix time it was stored */
};
void image_record_clear(struct image_record *r);

int image_store_put(struct image_store *s, const struct image_record *r, struct ck_error **reterr);
/* 1 when everything record r references is in the store: its config blob, each layer's blob
 * and its ready layer (a record read back with image_store_get() normally is: put() commits it
 * only after all of that was synced; a removal of another image or a damaged store may have
 * taken something away since). 0 when something is missing, -errno when the store cannot say. */
int image_store_record_complete(struct image_store *s, const struct image_record *r,
                                struct ck_error **reterr);
/* Looks up by name, by ID or by unique ID prefix (>= 12 hex). -ENOENT when absent. */
int image_store_get(struct image_store *s, const char *name_or_id, struct image_record *ret,
                    struct ck_error **reterr);
int image_store_list(struct image_store *s, struct image_record **ret, size_t *ret_n,
                     struct ck_error **reterr);
/* Removes the record and frees the blobs and layers no other image uses. -EBUSY while a
 * rootfs of it is mounted (see rootfs.h). */
int image_store_remove(struct image_store *s, const char *name_or_id, struct ck_error **reterr);

/* Removes every blob and unpacked layer that no image record references: what a failed or
 * interrupted pull leaves behind. Only safe when nothing else is writing to the store, so it
 * refuses with -EBUSY unless this handle is the store's only user (no other process has it
 * open) and no blob or layer is being written through it. Returns the number of blobs and
 * layers removed. Recovery in image_store_open() does the same. */
int image_store_prune(struct image_store *s, struct ck_error **reterr);

/* Forgets what a failed pull fetched, for a store shared by concurrent pulls (conkerd): each
 * listed blob, and any layer unpacked from it, is deleted unless an image record uses it.
 * Blobs being written or layers being unpacked right now are waited for first. A concurrent
 * pull that shares one of them fails cleanly (its put() sees the layer missing) rather than
 * recording an incomplete image. */
int image_store_discard(struct image_store *s, char *const *digests, size_t n, struct ck_error **reterr);

/* Path of a stored layer, malloc'd: a directory (layer-format dir) or an EROFS image file
 * (erofs), which rootfs.c mounts for the overlay; NULL when diff_id has no ready layer. */
char *image_store_layer_dir(struct image_store *s, const char *diff_id);
