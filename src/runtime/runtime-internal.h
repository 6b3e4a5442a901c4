/* Internals of the runtime driver shared by its files: the runtime itself, a network prepared
 * ahead of its start, and the functions one file offers the others.
 *
 *   runtime-open.c   runtime_open and runtime_free: runc or crun, the directories, bridge and
 *                    table, adoption of the shims that survived; runtime_teardown
 *   runtime-start.c  runtime_prepare_network and runtime_run: network, bundle, shim spawn
 *   runtime.c        a container's shim: talking to it, state, stop, delete, list, log path
 *
 * Not a public interface: the rest of the tree uses runtime.h. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "net.h"
#include "runtime.h"
#include "shim-proto.h"

struct prepared_net {
        struct prepared_net *next;
        char id[65], ip[16];
        char *netns_path;
        struct runtime_port *ports;
        size_t n_ports;
};

struct runtime {
        char *runtime_path, *shim_path, *data_dir, *run_dir, *shims_dir, *runc_root, *resolv_conf;
        char *bridge, *subnet, *netns_dir, *netns_prefix, *nft_table, *net_dir;
        char *runtime_version, *seccomp_dir; /* first line of --version; crun's filter cache */
        bool crun;
        bool hide_cgroup2; /* crun on a hybrid host: see cgroup_hybrid_with_v2_controllers() */
        struct net_config net;
        pthread_mutex_t prepared_lock;
        struct prepared_net *prepared; /* runtime_prepare_network(), not yet taken by a run */
        unsigned stop_timeout_s, log_max_files, start_timeout_s;
        uint64_t log_max_bytes;
        uint64_t pids_limit, memory_limit;
        struct shim_spare *spare; /* NULL unless cfg->spare_shim */
};

/* runtime.c */
/* [a-z0-9]{12,64} */
bool runtime_id_valid(const char *id);
/* "a/b", malloc'd; NULL when out of memory. */
char *runtime_path_join(const char *a, const char *b);
/* <run_dir>/shims/<id>, malloc'd. */
char *runtime_shim_dir(struct runtime *rt, const char *id);
/* <data_dir>/containers/<id>[/<sub>], malloc'd. */
char *runtime_container_dir(struct runtime *rt, const char *id, const char *sub);
/* One request to id's shim over its socket (shim_call). */
int runtime_shim_request(struct runtime *rt, const char *id, enum shim_op op, unsigned timeout_s,
                         unsigned io_timeout_s, struct shim_state *ret, struct ck_error **reterr);
/* state.json of a shim that does not answer. */
int runtime_shim_state_file(struct runtime *rt, const char *id, struct shim_state *ret,
                            struct ck_error **reterr);
/* True when pid is a live (not zombie) conker-shim. */
bool runtime_shim_pid_alive(pid_t pid);

/* runtime-start.c */
void runtime_prepared_free(struct prepared_net *p);
/* Removes and returns the prepared network of id, if any (the caller frees it). */
struct prepared_net *runtime_prepared_take(struct runtime *rt, const char *id);
