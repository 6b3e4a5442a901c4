/* The task pipeline's view of the rest of the engine: images, rootfs, volumes, the secret
 * tmpfs and the container runtime, as one table of operations.
 *
 * The pipeline (pipeline.c) only talks to these; task-backend.c implements them with the real
 * image, runtime and volume modules, and the unit tests implement them with a scripted backend
 * that records calls and injects failures. Every operation is keyed by the task ID and must be
 * idempotent (repeating it after a crash completes or undoes it). */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "runtime.h" /* struct runtime_state (a plain struct; no runtime code is linked by the task module) */
#include "secret.h"

struct task_port;
struct task_mount;

/* What the task keeps of a pulled image: its ID and the config fields the container and
 * ContainerInspect need. Persisted in the store as JSON. */
struct task_image {
        char *id;                                                    /* "sha256:…" config digest */
        char *name;                                                  /* normalised reference */
        char **entrypoint, **cmd, **env, **exposed_ports, **volumes; /* NULL-terminated or NULL */
        char *working_dir, *user, *stop_signal;
        uint64_t size;
        unsigned n_layers;
};
void task_image_clear(struct task_image *i);

struct task_pull_progress {
        const char *phase;
        uint64_t done_bytes, total_bytes;
        unsigned layers_done, layers_total;
};

struct task_pull_request {
        const char *ref;
        const char *username;
        const struct ck_secret *password;
        atomic_int *cancel;
        void (*progress)(void *userdata, const struct task_pull_progress *p);
        void *progress_userdata;
};

/* A volume mount resolved to its host directory. */
struct task_run_mount {
        const char *host_path;
        const char *target;
        bool rw;
};

struct task_run_spec {
        const char *id;
        const char *name;
        const char *rootfs;
        const struct task_image *image;
        char *const *env;
        const struct task_port *ports;
        size_t n_ports;
        const struct task_run_mount *mounts;
        size_t n_mounts;
        const char *secret_dir;
};

struct task_backend {
        void *userdata;

        /* Parses and normalises an image reference ("busybox" -> docker.io/library/busybox:latest). */
        int (*image_ref_normalize)(void *ud, const char *ref, char **ret, struct ck_error **reterr);
        /* Pulls (or finds cached) and unpacks the image; -ECANCELED when *cancel became non-zero. */
        int (*image_pull)(void *ud, const struct task_pull_request *r, struct task_image *ret,
                          struct ck_error **reterr);
        /* Optional (NULL: not offered): the ID of the image the store holds under this
         * (normalised) reference now, without asking the registry (malloc'd); -ENOENT when none.
         * The pipeline mounts that image's rootfs while the pull confirms or replaces it. */
        int (*image_cached_id)(void *ud, const char *ref, char **ret_id, struct ck_error **reterr);
        /* Removes the image and what only it used; -ENOENT is fine. */
        int (*image_remove)(void *ud, const char *image_id, struct ck_error **reterr);

        /* Mounts the overlay rootfs of the task; returns its path (malloc'd). */
        int (*rootfs_mount)(void *ud, const char *task_id, const char *image_id, char **ret_path,
                            struct ck_error **reterr);
        /* Unmounts it and removes the upper layer; safe to repeat, also when never mounted. */
        int (*rootfs_umount)(void *ud, const char *task_id, const char *image_id, struct ck_error **reterr);

        int (*volume_create)(void *ud, const char *task_id, const char *name, char **ret_path,
                             struct ck_error **reterr);
        /* Crypto-erases (key first), then removes the files; safe to repeat. */
        int (*volume_delete)(void *ud, const char *task_id, const char *name, struct ck_error **reterr);

        /* Mounts the task's secret tmpfs (mode 0700) and returns its path (malloc'd). */
        int (*secret_dir_create)(void *ud, const char *task_id, char **ret_path, struct ck_error **reterr);
        /* Unmounts it (its contents vanish with it) and removes the directory; safe to repeat. */
        int (*secret_dir_remove)(void *ud, const char *task_id, struct ck_error **reterr);

        /* Optional (NULL: not offered): the container's network ahead of container_run, made
         * while the image is pulled; a failure is not the task's (container_run sets it up
         * itself and reports). container_delete removes it. */
        int (*container_prepare_network)(void *ud, const char *task_id, const struct task_port *ports,
                                         size_t n_ports, struct ck_error **reterr);
        int (*container_run)(void *ud, const struct task_run_spec *spec, struct ck_error **reterr);
        int (*container_stop)(void *ud, const char *task_id, unsigned timeout_s, struct ck_error **reterr);
        /* Removes the container and its shim, bundle, netns and port rules; safe to repeat. */
        int (*container_delete)(void *ud, const char *task_id, struct ck_error **reterr);
        /* -ENOENT when the runtime does not know the container. */
        int (*container_state)(void *ud, const char *task_id, struct runtime_state *ret,
                               struct ck_error **reterr);
        /* Path of the container's JSON-lines log (malloc'd), NULL if unknown. */
        char *(*container_log_path)(void *ud, const char *task_id);

        /* True when something on the host already listens on the TCP port. */
        bool (*host_port_in_use)(void *ud, uint16_t port);
};
