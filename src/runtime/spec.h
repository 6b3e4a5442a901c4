/* OCI runtime spec (config.json) generation with Docker's defaults, and the helpers it is built
 * from: environment merging, in-root user resolution, the generated /etc files.
 *
 * Internal to the runtime module (and its unit tests). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "runtime.h"

#define SPEC_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SPEC_ENV_MAX      4096       /* entries */
#define SPEC_ENV_LEN_MAX  (1u << 20) /* bytes, all entries together */
#define SPEC_USERDB_MAX   (4u << 20) /* /etc/passwd and /etc/group */
#define SPEC_GROUPS_MAX   64         /* additional gids */

struct spec_input {
        const struct runtime_spec *spec;
        const char *bundle_dir;   /* holds hosts, hostname, resolv.conf */
        const char *netns_path;   /* NULL: no network namespace join (new one) */
        const char *cgroups_path; /* NULL: runc's default */
        int oom_score_adj;
        uint64_t pids_limit;   /* linux.resources.pids.limit; 0: none */
        uint64_t memory_limit; /* linux.resources.memory.limit in bytes; 0: none */
};

struct spec_user {
        uint32_t uid, gid;
        uint32_t gids[SPEC_GROUPS_MAX]; /* primary gid first */
        size_t n_gids;
        char home[256];
};

/* config.json for in. rootfd is the container's root (for passwd/group lookups). */
int spec_build(const struct spec_input *in, int rootfd, json_t **ret, struct ck_error **reterr);

/* image env, then request env overriding by key, PATH defaulted. NULL-terminated, malloc'd
 * (free with spec_strv_free). Entries must be "KEY=value" with a non-empty key. */
int spec_env_merge(char *const *image_env, char *const *request_env, char ***ret, struct ck_error **reterr);
void spec_strv_free(char **v);
/* "user|uid[:group|gid]" (empty = root) resolved against rootfd's /etc/passwd and /etc/group. */
int spec_user_resolve(int rootfd, const char *user, struct spec_user *ret, struct ck_error **reterr);
/* The same over buffers (either may be NULL: file absent); what the fuzzer drives. */
int spec_user_resolve_db(const char *passwd, size_t passwd_len, const char *group, size_t group_len,
                         const char *user, struct spec_user *ret, struct ck_error **reterr);
/* true for an absolute, clean path (no ".", "..", "//", trailing "/") outside /proc. */
bool spec_cwd_valid(const char *p);
/* The host's resolv.conf minus loopback nameservers; fallback servers when none is left. */
int spec_resolv_filter(const char *buf, size_t len, char **ret);
/* Hostname for the container: name when it is a valid hostname, else the first 12 ID chars. */
void spec_hostname(const struct runtime_spec *spec, char ret[64]);
/* Writes hostname, hosts, resolv.conf into the bundle dir. */
int spec_write_etc(int bundlefd, const char *hostname, const char *ip, const char *host_resolv_path,
                   struct ck_error **reterr);

/* Gives the secret directory and the files in it (regular files only; anything else is refused
 * with -ELOOP/-EINVAL) to uid:gid, so that a container running as that user can read them. */
int spec_secret_dir_chown(const char *dir, uint32_t uid, uint32_t gid, struct ck_error **reterr);

/* The default seccomp profile (seccomp-default.c). */
json_t *spec_seccomp_default(void);
extern const char *const spec_seccomp_allowed[];
extern const size_t spec_seccomp_n_allowed;
