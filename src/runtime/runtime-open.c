/* Opening and closing the runtime: which container runtime (runc or crun, against its version
 * floor), the host's cgroup layout, the directories, the bridge and the nft table (net.c), the
 * shims that survived a restart of conkerd adopted, a spare shim started; freed by runtime_free. */
#include <errno.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>

#include "exec.h"
#include "fs.h"
#include "log.h"
#include "parse.h"
#include "runtime-internal.h"
#include "shim-spare.h"

/* CVE-2024-21626 is fixed in 1.1.12; older 1.1.x still runs (with WorkingDir checks) but warns. */
#define RUNC_MIN_MAJOR  1
#define RUNC_MIN_MINOR  1
#define RUNC_WARN_PATCH 12

void runtime_free(struct runtime *rt)
{
        if (!rt)
                return;
        shim_spare_free(rt->spare);
        free(rt->runtime_path);
        free(rt->shim_path);
        free(rt->data_dir);
        free(rt->run_dir);
        free(rt->shims_dir);
        free(rt->runc_root);
        free(rt->resolv_conf);
        free(rt->bridge);
        free(rt->subnet);
        free(rt->netns_dir);
        free(rt->netns_prefix);
        free(rt->nft_table);
        free(rt->net_dir);
        free(rt->runtime_version);
        free(rt->seccomp_dir);
        while (rt->prepared) {
                struct prepared_net *p = rt->prepared;
                rt->prepared = p->next;
                runtime_prepared_free(p);
        }
        pthread_mutex_destroy(&rt->prepared_lock);
        net_nft_free(rt->net.nft);
        free(rt);
}
DEFINE_POINTER_CLEANUP(struct runtime, runtime_free, runtime_free)

/* Parses "runc version 1.1.5+ds1" / "crun version 1.8" (first line), which is kept. */
static int runtime_version_check(struct runtime *rt, struct ck_error **reterr)
{
        const char *path = rt->runtime_path;
        char *argv[] = {(char *)path, "--version", NULL};
        _cleanup_free_ char *out = NULL;
        unsigned v[3] = {0};
        const char *p;
        int r;

        r = ck_exec(argv, NULL, &out, NULL, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "cannot run the container runtime");
        p = strstr(out, " version ");
        if (!p)
                return ck_error_set(reterr, -EPROTO, "%s --version: unrecognised output", path);
        rt->runtime_version = strndup(out, strcspn(out, "\n"));
        if (!rt->runtime_version)
                return -ENOMEM;
        p += 9;
        for (int i = 0; i < 3; i++) {
                size_t n = 0;
                uint64_t x;
                while (p[n] >= '0' && p[n] <= '9')
                        n++;
                if (n == 0 || ck_parse_u64(p, n, 100000, &x) < 0)
                        break;
                v[i] = (unsigned)x;
                p += n;
                if (*p != '.')
                        break;
                p++;
        }
        if (ck_startswith(out, "crun")) {
                if (v[0] < 1 || (v[0] == 1 && v[1] < 8))
                        return ck_error_set(reterr, -EPROTONOSUPPORT, "crun %u.%u is older than 1.8", v[0],
                                            v[1]);
                rt->crun = true;
                return 0;
        }
        if (v[0] < RUNC_MIN_MAJOR || (v[0] == RUNC_MIN_MAJOR && v[1] < RUNC_MIN_MINOR))
                return ck_error_set(reterr, -EPROTONOSUPPORT,
                                    "runc %u.%u.%u is older than the supported %d.%d", v[0], v[1], v[2],
                                    RUNC_MIN_MAJOR, RUNC_MIN_MINOR);
        if (v[0] == 1 && v[1] == 1 && v[2] < RUNC_WARN_PATCH)
                log_warn("runc %u.%u.%u is older than 1.1.%d (CVE-2024-21626); upgrade it", v[0], v[1], v[2],
                         RUNC_WARN_PATCH);
        return 0;
}

static void runtime_forget(struct runtime *rt)
{
        free(rt->runtime_path);
        free(rt->runtime_version);
        rt->runtime_path = rt->runtime_version = NULL;
        rt->crun = false;
}

/* One named runtime (a name looked up in PATH or a path), checked against its version floor. */
static int runtime_use(struct runtime *rt, const char *name, struct ck_error **reterr)
{
        int r = ck_exec_find(name, &rt->runtime_path);

        if (r < 0)
                return ck_error_errno(reterr, r, "container runtime %s not found", name);
        return runtime_version_check(rt, reterr);
}

/* "auto": crun when it is in PATH, answers --version as crun and passes its floor (1.8), else
 * runc. Anything else names the runtime; it must work or conkerd does not start. */
static int runtime_choose(struct runtime *rt, const char *want, struct ck_error **reterr)
{
        _cleanup_error_ struct ck_error *e = NULL;
        int r;

        if (strcmp(want, "auto") != 0) {
                r = runtime_use(rt, want, reterr);
                if (r >= 0)
                        log_info("container runtime: %s (%s)", rt->runtime_version, rt->runtime_path);
                return r;
        }
        r = runtime_use(rt, "crun", &e);
        if (r >= 0 && rt->crun) {
                log_info("container runtime: %s (%s), chosen by runtime = auto", rt->runtime_version,
                         rt->runtime_path);
                return 0;
        }
        if (r >= 0)
                log_info("runtime = auto: %s (%s) is not crun; using runc", rt->runtime_version,
                         rt->runtime_path);
        else if (r == -ENOENT)
                log_info("runtime = auto: crun is not in PATH; using runc");
        else
                log_warn("runtime = auto: crun is not usable (%s); using runc", ck_error_message(e, r));
        runtime_forget(rt);
        r = runtime_use(rt, "runc", reterr);
        if (r >= 0)
                log_info("container runtime: %s (%s), chosen by runtime = auto", rt->runtime_version,
                         rt->runtime_path);
        return r;
}

const char *runtime_name(const struct runtime *rt)
{
        return rt->crun ? "crun" : "runc";
}

static char *dup_or(const char *s, const char *def)
{
        return strdup(s && *s ? s : def);
}

#define CGROUP2_HYBRID_PATH "/sys/fs/cgroup/unified"

/* A hybrid host (v1 hierarchies under a tmpfs /sys/fs/cgroup, v2 at /sys/fs/cgroup/unified) whose
 * v2 hierarchy holds a controller (here hugetlb, which nothing mounts as v1): crun refuses to
 * start a container there ("cgroups in hybrid mode not supported"), even with
 * --cgroup-manager=disabled. The shim then runs `crun run` in a private mount namespace where an
 * empty tmpfs covers the v2 mount, so crun sees a v1-only host and puts the container
 * in the v1 hierarchies, where every limit we set lives on such a host (pids, memory, devices):
 * what runc does here too, less the v2 membership that carries no limit. */
static bool cgroup_hybrid_with_v2_controllers(void)
{
        struct statfs fs;
        _cleanup_free_ uint8_t *ctl = NULL;
        size_t len = 0;

        if (statfs("/sys/fs/cgroup", &fs) < 0 || fs.f_type != TMPFS_MAGIC)
                return false;
        if (statfs(CGROUP2_HYBRID_PATH, &fs) < 0 || fs.f_type != CGROUP2_SUPER_MAGIC)
                return false;
        if (ck_read_file(CGROUP2_HYBRID_PATH "/cgroup.controllers", 4096, &ctl, &len, NULL) < 0)
                return false;
        return len > 0 && strspn((char *)ctl, " \n") < len;
}

int runtime_open(const struct runtime_config *cfg, struct runtime **ret, struct ck_error **reterr)
{
        _cleanup_(runtime_freep) struct runtime *rt = calloc(1, sizeof(*rt));
        char **ids = NULL;
        size_t n = 0;
        int r;

        if (!rt)
                return -ENOMEM;
        pthread_mutex_init(&rt->prepared_lock, NULL);
        r = ck_exec_find(cfg->shim_path && *cfg->shim_path ? cfg->shim_path : "conker-shim", &rt->shim_path);
        if (r < 0)
                return ck_error_errno(reterr, r, "conker-shim not found");
        rt->data_dir = dup_or(cfg->data_dir, "/var/lib/conker");
        rt->run_dir = dup_or(cfg->run_dir, "/run/conker");
        rt->bridge = dup_or(cfg->bridge, "conker0");
        rt->subnet = dup_or(cfg->subnet, "10.88.0.0/16");
        rt->netns_dir = dup_or(cfg->netns_dir, "/run/netns");
        rt->netns_prefix = dup_or(cfg->netns_prefix, "conker-");
        rt->nft_table = dup_or(cfg->nft_table, "conker");
        rt->resolv_conf = dup_or(cfg->resolv_conf, "/etc/resolv.conf");
        if (!rt->data_dir || !rt->run_dir || !rt->bridge || !rt->subnet || !rt->netns_dir ||
            !rt->netns_prefix || !rt->nft_table || !rt->resolv_conf)
                return -ENOMEM;
        rt->shims_dir = runtime_path_join(rt->run_dir, "shims");
        rt->runc_root = runtime_path_join(rt->run_dir, "runc");
        rt->net_dir = runtime_path_join(rt->run_dir, "net");
        if (!rt->shims_dir || !rt->runc_root || !rt->net_dir)
                return -ENOMEM;
        rt->stop_timeout_s = cfg->stop_timeout_s ? cfg->stop_timeout_s : 10;
        rt->pids_limit = cfg->pids_limit;
        rt->memory_limit = cfg->memory_limit;
        rt->log_max_bytes = cfg->log_max_bytes ? cfg->log_max_bytes : 20u << 20;
        rt->log_max_files = cfg->log_max_files ? cfg->log_max_files : 5;
        rt->start_timeout_s = cfg->start_timeout_s ? cfg->start_timeout_s : 120;
        if (rt->log_max_bytes < 4096 || rt->log_max_files > 100)
                return ck_error_set(reterr, -EINVAL,
                                    "log_max_bytes must be >= 4096 and log_max_files <= 100");
        rt->net = (struct net_config){.bridge = rt->bridge,
                                      .subnet = rt->subnet,
                                      .netns_dir = rt->netns_dir,
                                      .netns_prefix = rt->netns_prefix,
                                      .nft_table = rt->nft_table,
                                      .state_dir = rt->net_dir,
                                      .nft = net_nft_new()};
        if (!rt->net.nft)
                return ck_error_set(reterr, -ENOMEM, "cannot create an nftables context");
        if (strchr(rt->netns_prefix, '/') || strlen(rt->netns_prefix) > 32)
                return ck_error_set(reterr, -EINVAL, "invalid netns prefix");

        r = runtime_choose(rt, cfg->runtime_path && *cfg->runtime_path ? cfg->runtime_path : "runc", reterr);
        if (r < 0)
                return r;
        if (rt->crun) {
                rt->seccomp_dir = runtime_path_join(rt->run_dir, "seccomp");
                if (!rt->seccomp_dir)
                        return -ENOMEM;
                rt->hide_cgroup2 = cgroup_hybrid_with_v2_controllers();
                if (rt->hide_cgroup2)
                        log_info("cgroups are hybrid with controllers in v2 (%s): crun runs with the v1 "
                                 "hierarchies only",
                                 CGROUP2_HYBRID_PATH);
        }
        if (ck_mkdir_p(rt->shims_dir, 0700) < 0 || ck_mkdir_p(rt->runc_root, 0700) < 0)
                return ck_error_errno(reterr, -errno, "cannot create %s", rt->run_dir);
        {
                _cleanup_free_ char *c = runtime_path_join(rt->data_dir, "containers");
                if (!c)
                        return -ENOMEM;
                if (ck_mkdir_p(c, 0700) < 0)
                        return ck_error_errno(reterr, -errno, "cannot create %s", c);
        }
        r = net_bridge_setup(&rt->net, reterr);
        if (r < 0)
                return r;
        /* The table is rebuilt from the state files: rules of surviving containers come back even
         * if someone flushed the ruleset while conkerd was down. */
        r = net_apply(&rt->net, reterr);
        if (r < 0)
                return r;
        if (runtime_list(rt, &ids, &n, NULL) >= 0) {
                for (size_t i = 0; i < n; i++) {
                        log_info("adopted container %s", ids[i]);
                        free(ids[i]);
                }
                free(ids);
        }
        /* Last, once the runtime and the directories are known good. Not fatal: without a spare
         * each start execs its shim. */
        if (cfg->spare_shim &&
            (r = shim_spare_new(rt->shim_path, rt->crun ? rt->runtime_path : NULL, &rt->spare)) < 0)
                log_warn("no spare conker-shim: %s", strerror(-r));
        *ret = TAKE_PTR(rt);
        return 0;
}

int runtime_teardown(struct runtime *rt, struct ck_error **reterr)
{
        return net_teardown(&rt->net, reterr);
}
