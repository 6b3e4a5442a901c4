/* The real task backend: struct task_backend implemented with the image store and puller,
 * the runtime driver and the volume manager, plus the per-task secret tmpfs. conkerd uses
 * this one; only unit tests use another.
 *
 * Layout it owns: <data>/containers/<id>/rootfs (overlay mount point) and .../overlay
 * (upper/work), <run>/tasks/<id>/secret (tmpfs, 0700). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "error.h"

/* When a task's image is fetched from the registry (config key pull-policy). */
enum task_pull_policy {
        /* The seed's: every task resolves its reference at the registry with its own credentials
         * (one manifest request when nothing changed; blobs in the store are reused by digest),
         * so no task runs an image it could not pull itself. */
        TASK_PULL_ALWAYS,
        /* Docker's default: an image stored under the same reference is used without asking. */
        TASK_PULL_MISSING,
        /* Only the store: a task whose image is not there fails at Pulling. */
        TASK_PULL_NEVER,
};

struct task_backend_config {
        const char *data_dir;
        const char *run_dir;
        const char *runtime; /* runc or crun */
        const char *shim;    /* conker-shim path */
        const char *fetch;   /* conker-fetch path (the pull helper); NULL or empty: PATH */
        const char *bridge;
        const char *subnet;
        const char *nft_table;
        const char *netns_dir;
        const char *netns_prefix;
        unsigned stop_timeout_s;
        uint64_t container_pids_limit;   /* per container; 0: none */
        uint64_t container_memory_limit; /* bytes per container; 0: none */
        uint64_t log_max_bytes;
        unsigned log_max_files;
        uint64_t volume_backing_size;
        char *const *registry_mirrors;    /* "domain=host:port", NULL-terminated or NULL */
        char *const *insecure_registries; /* NULL-terminated or NULL */
        const char *registry_ca_file;     /* NULL or empty: system store */
        enum task_pull_policy pull_policy;
        /* Image store caps; 0 keeps the image module's default. */
        uint64_t image_max_blob_size;
        uint64_t image_max_layer_size;
        uint64_t image_max_layer_entries;
        uint64_t image_max_ratio;
        const char *layer_format; /* "auto", "erofs" or "dir"; NULL: auto */
};

/* Opens the image store, the runtime (which re-adopts surviving shims) and the volume
 * manager. *ret is freed with task_backend_real_free(). */
int task_backend_real_new(const struct task_backend_config *cfg, struct task_backend **ret,
                          struct ck_error **reterr);
void task_backend_real_free(struct task_backend *be);
/* The container runtime in use: "crun" or "runc". */
const char *task_backend_real_runtime(const struct task_backend *be);
