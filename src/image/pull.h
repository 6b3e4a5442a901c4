/* Pulling an image: resolve the reference (mirrors applied), fetch the manifest (index ->
 * linux/amd64), fetch the config and the layers (3 in parallel) into the store with digest and
 * size verification, unpack each layer with its diff_id checked, and record the image.
 *
 * Contract header (owned by the image module). */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "secret.h"
#include "store.h"

struct registry_keep;

/* Progress: called from the pulling threads; must be cheap and thread-safe. */
struct image_pull_progress {
        const char *phase;    /* "resolving", "downloading", "unpacking", "done" */
        uint64_t done_bytes;  /* downloaded so far, all layers */
        uint64_t total_bytes; /* sum of layer and config sizes once known */
        unsigned layers_done, layers_total;
};
typedef void (*image_pull_progress_fn)(void *userdata, const struct image_pull_progress *p);

struct image_mirror {
        const char *domain;   /* e.g. "docker.io" */
        const char *endpoint; /* e.g. "127.0.0.1:5000" (served instead) */
};

struct image_pull_opts {
        const char *ref;
        const char *username;
        const struct ck_secret *password;
        const char *ca_file;
        const struct image_mirror *mirrors;
        size_t n_mirrors;
        const char *const *insecure_registries; /* plain HTTP allowed for these hosts; NULL-terminated.
                                                 * Matched against the host contacted: a mirror's
                                                 * endpoint when a mirror applies. */
        atomic_int *cancel;
        image_pull_progress_fn progress;
        void *progress_userdata;
        struct registry_keep *keep; /* NULL, or connections and auth schemes kept between pulls
                                     * of this process (registry.h) */
        /* With s NULL: how image_pull gets the store, which the caller opens (creates) on another
         * thread meanwhile. Called once, on the calling thread, when the first manifest document
         * has arrived and before anything touches the store; a failure fails the pull. */
        int (*store_wait)(void *userdata, struct image_store **ret, struct ck_error **reterr);
        void *store_userdata;
};

/* s may be NULL when o->store_wait is set (above). On success ret (may be NULL) receives the stored record;
 * ret_config (may be NULL) the parsed image config.
 *
 * The manifest is fetched from the registry, and its digest computed, on every call. When the
 * first document the reference names (manifest or index) has the digest the store already
 * records under that name, and that record is complete (its config blob stored, every layer
 * ready), the pull ends there: the record stands as it is (its `created` time is not renewed),
 * nothing is written and nothing is synced. That is safe because a record is committed only
 * after everything it references was synced (image_store_put()), and the same digest means the
 * same bytes, hence the same platform manifest, config and layers. */
int image_pull(struct image_store *s, const struct image_pull_opts *o, struct image_record *ret,
               struct image_config *ret_config, struct ck_error **reterr);

/* The pull's metric (docs/metrics.md): bytes actually transferred, so a layer reused by digest
 * adds nothing. Declared by programs that export metrics (conkerd); otherwise pulls count
 * nowhere. */
#define IMAGE_METRIC_PULLED_BYTES "conker_image_pulled_bytes_total"
int image_metrics_declare(void);
