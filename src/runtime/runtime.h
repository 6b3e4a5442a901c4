/* The container runtime driver: OCI bundles with Docker's defaults, runc (or crun) driven
 * through one conker-shim per container, networking with published ports, restart policy.
 *
 * Contract header (owned by the runtime module). conkerd holds one struct runtime; every
 * operation is keyed by the task ID and is idempotent, so a crash at any point can be
 * completed or cleaned up by repeating it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "manifest.h" /* struct image_config */

struct runtime_config {
        const char *runtime_path; /* "runc"/"crun" (PATH), a path, or "auto" (crun if usable); NULL: runc */
        const char *shim_path;    /* conker-shim */
        const char *data_dir;     /* /var/lib/conker: containers/<id>/ (bundle, upper) */
        const char *run_dir;      /* /run/conker: shims/<id>/ */
        const char *bridge;       /* default "conker0" */
        const char *subnet;       /* default "10.88.0.0/16"; containers get addresses from it */
        const char *netns_dir;    /* default /run/netns */
        unsigned stop_timeout_s;  /* default 10 */
        uint64_t log_max_bytes;   /* per file before rotation, default 20 MiB */
        unsigned log_max_files;   /* default 5 */
        /* Extensions (NULL/0 = default); tests set them to keep host-global names unique. */
        const char *nft_table;    /* default "conker": table "inet <nft_table>", owned by conkerd */
        const char *netns_prefix; /* default "conker-": <netns_dir>/<prefix><id[0..12)> */
        const char *resolv_conf;  /* host resolver file, default /etc/resolv.conf */
        unsigned start_timeout_s; /* shim start (runc create + start), default 120 */
        /* Limits of every container (linux.resources), 0: none. */
        uint64_t pids_limit;   /* processes and threads */
        uint64_t memory_limit; /* bytes */
        /* Keep one conker-shim started ahead for the next start (shim-spare.h); conkerd sets it,
         * one-shot users of the library (runtime-driver) do not. */
        bool spare_shim;
};

struct runtime_port {
        uint16_t target;    /* container port */
        uint16_t published; /* host port (30000-65534 by default; validated by the caller) */
        bool udp;
};

struct runtime_mount {
        const char *source; /* host directory (e.g. an unlocked encrypted volume) */
        const char *target; /* absolute path in the container */
        bool read_only;
};

enum runtime_restart { RUNTIME_RESTART_NO, RUNTIME_RESTART_ALWAYS };

struct runtime_spec {
        const char *id;     /* task ID: [a-z0-9]{12,64} */
        const char *name;   /* container name (hostname defaults to it) */
        const char *rootfs; /* mounted rootfs (image/rootfs.h) */
        const struct image_config *image;
        char *const *env; /* request env "K=V", overrides the image's */
        const struct runtime_port *ports;
        size_t n_ports;
        const struct runtime_mount *mounts;
        size_t n_mounts;
        const char *secret_dir; /* bound read-only at /secret; NULL for none */
        enum runtime_restart restart;
};

enum runtime_status {
        RUNTIME_CREATED,
        RUNTIME_RUNNING,
        RUNTIME_RESTARTING, /* exited; waiting out the backoff before the next start */
        RUNTIME_EXITED,
        RUNTIME_UNKNOWN,
        _RUNTIME_STATUS_MAX,
};
const char *runtime_status_to_string(enum runtime_status s);

struct runtime_state {
        enum runtime_status status;
        pid_t pid;     /* container init, 0 when not running */
        int exit_code; /* last exit code, -1 if none yet */
        bool oom_killed;
        unsigned restart_count;
        int64_t started_at_ns;  /* unix time in ns of the last start, 0 if never */
        int64_t finished_at_ns; /* of the last exit, 0 if none */
        char ip[46];            /* container address on the bridge */
};

struct runtime;

/* Checks the runtime binary (and its version floor), creates the bridge and the nftables table,
 * and re-adopts shims that survived a previous conkerd. */
int runtime_open(const struct runtime_config *cfg, struct runtime **ret, struct ck_error **reterr);
void runtime_free(struct runtime *rt);
/* The kind of runtime in use: "crun" or "runc" (its version is logged at runtime_open). */
const char *runtime_name(const struct runtime *rt);

/* Writes the bundle, sets up the network namespace and port rules, starts the shim, which
 * creates and starts the container and applies the restart policy. */
int runtime_run(struct runtime *rt, const struct runtime_spec *spec, struct ck_error **reterr);
/* The network part of runtime_run ahead of it (netns, veth, lease, port rules), so that it can
 * run while the image is being checked: a runtime_run with the same ID and the same ports then
 * uses it instead of setting it up. runtime_delete removes it like any container's network.
 * Thread-safe; on failure nothing is kept and runtime_run sets the network up itself. */
int runtime_prepare_network(struct runtime *rt, const char *id, const struct runtime_port *ports,
                            size_t n_ports, struct ck_error **reterr);
/* SIGTERM (or the image's StopSignal), grace, SIGKILL; suppresses restarts. */
int runtime_stop(struct runtime *rt, const char *id, unsigned timeout_s, struct ck_error **reterr);
/* Stops if needed and removes everything: shim, runc state, bundle, netns, veth, port rules. */
int runtime_delete(struct runtime *rt, const char *id, struct ck_error **reterr);
int runtime_state(struct runtime *rt, const char *id, struct runtime_state *ret, struct ck_error **reterr);
/* IDs of containers whose shims are alive (after runtime_open: the adopted ones). */
int runtime_list(struct runtime *rt, char ***ret_ids, size_t *ret_n, struct ck_error **reterr);
/* Path of the current JSON-lines log file of a container ({"ts","stream","log"} per line);
 * rotated files are <path>.1 … <path>.N. malloc'd. */
char *runtime_log_path(struct runtime *rt, const char *id);
/* Removes the nftables table and the bridge when no container has network state left
 * (explicit teardown, e.g. at uninstall or at the end of a test). */
int runtime_teardown(struct runtime *rt, struct ck_error **reterr);
