/* The runtime driver behind runtime.h: checks runc, owns the bridge and the nft table through
 * net.c, writes bundles (spec.c), starts one conker-shim per container and talks to it over its
 * control socket (shim-proto.c), and re-adopts shims after a restart of conkerd.
 *
 * Layout: <data_dir>/containers/<id>/bundle/ (config.json, hosts, hostname, resolv.conf),
 * <data_dir>/containers/<id>/log/container.log[.N], <run_dir>/shims/<id>/ (shim.sock,
 * state.json, exit.json, runc.log, shim.log), <run_dir>/runc/ (runc --root), <run_dir>/net/. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "fs.h"
#include "json.h"
#include "log.h"
#include "monotonic.h"
#include "net.h"
#include "parse.h"
#include "runtime.h"
#include "seccomp-cache.h"
#include "shim-exec.h"
#include "shim-proto.h"
#include "shim-spare.h"
#include "spec.h"

/* CVE-2024-21626 is fixed in 1.1.12; older 1.1.x still runs (with WorkingDir checks) but warns. */
#define RUNC_MIN_MAJOR  1
#define RUNC_MIN_MINOR  1
#define RUNC_WARN_PATCH 12

struct prepared_net {
        struct prepared_net *next;
        char id[65], ip[16];
        char *netns_path;
        struct runtime_port *ports;
        size_t n_ports;
};

static void prepared_free(struct prepared_net *p)
{
        if (p) {
                free(p->netns_path);
                free(p->ports);
                free(p);
        }
}

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

static bool id_valid(const char *id)
{
        size_t n = id ? strlen(id) : 0;
        if (n < 12 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9')))
                        return false;
        return true;
}

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
                prepared_free(p);
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

static char *path_join(const char *a, const char *b)
{
        char *p = NULL;
        return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

static char *dup_or(const char *s, const char *def)
{
        return strdup(s && *s ? s : def);
}

static char *shim_dir(struct runtime *rt, const char *id)
{
        return path_join(rt->shims_dir, id);
}

static int shim_request(struct runtime *rt, const char *id, enum shim_op op, unsigned timeout_s,
                        unsigned io_timeout_s, struct shim_state *ret, struct ck_error **reterr)
{
        _cleanup_free_ char *dir = shim_dir(rt, id), *sock = NULL;
        struct shim_request req = {.op = op, .timeout_s = timeout_s};

        if (!dir || !(sock = path_join(dir, SHIM_SOCK_NAME)))
                return -ENOMEM;
        return shim_call(sock, &req, io_timeout_s, ret, reterr);
}

/* state.json of a shim that does not answer. */
static int shim_state_file(struct runtime *rt, const char *id, struct shim_state *ret,
                           struct ck_error **reterr)
{
        _cleanup_free_ char *dir = shim_dir(rt, id);
        _cleanup_close_ int dfd = -1;

        if (!dir)
                return -ENOMEM;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return ck_error_errno(reterr, -errno, "no container %s", id);
        return shim_state_read(dfd, ret, reterr);
}

/* True when pid is a live (not zombie) conker-shim: /proc/<pid>/stat is "pid (comm) S ...". */
static bool shim_pid_alive(pid_t pid)
{
        char p[64], stat[512] = {0};
        _cleanup_close_ int fd = -1;
        const char *open_paren, *close_paren;
        ssize_t n;

        if (pid <= 0)
                return false;
        snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
        fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        n = read(fd, stat, sizeof(stat) - 1);
        if (n <= 0)
                return false;
        open_paren = strchr(stat, '(');
        close_paren = strrchr(stat, ')');
        if (!open_paren || !close_paren || close_paren[1] != ' ' || !close_paren[2])
                return false;
        if (strncmp(open_paren + 1, "conker-shim", 11) != 0)
                return false;
        return close_paren[2] != 'Z' && close_paren[2] != 'X';
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
        rt->shims_dir = path_join(rt->run_dir, "shims");
        rt->runc_root = path_join(rt->run_dir, "runc");
        rt->net_dir = path_join(rt->run_dir, "net");
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
                rt->seccomp_dir = path_join(rt->run_dir, "seccomp");
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
                _cleanup_free_ char *c = path_join(rt->data_dir, "containers");
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

/* seccomp_key: set (64 hex digits) when crun should compile the profile and its filter be kept
 * afterwards; empty when there is no cache (runc) or the cached filter was used. */
static int write_config(struct runtime *rt, const struct runtime_spec *spec, const char *bundle,
                        int bundlefd, const char *netns_path, char seccomp_key[65], struct ck_error **reterr)
{
        _cleanup_close_ int rootfd = open(spec->rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_json_ json_t *cfg = NULL;
        _cleanup_free_ char *txt = NULL, *cgpath = NULL;
        struct spec_input in = {.spec = spec,
                                .bundle_dir = bundle,
                                .netns_path = netns_path,
                                .oom_score_adj = 0,
                                .pids_limit = rt->pids_limit,
                                .memory_limit = rt->memory_limit};
        int r;

        if (rootfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open rootfs %s", spec->rootfs);
        if (asprintf(&cgpath, "/conker/%s", spec->id) < 0)
                return -ENOMEM;
        in.cgroups_path = cgpath;
        r = spec_build(&in, rootfd, &cfg, reterr);
        if (r < 0)
                return r;
        if (spec->secret_dir) {
                /* The secrets are 0400 in a 0700 tmpfs and there is no user namespace: they must
                 * belong to the user the image runs as, or a non-root process cannot read them. */
                json_t *user = json_object_get(json_object_get(cfg, "process"), "user");
                json_int_t uid = json_integer_value(json_object_get(user, "uid"));
                json_int_t gid = json_integer_value(json_object_get(user, "gid"));

                if (uid != 0 || gid != 0) {
                        r = spec_secret_dir_chown(spec->secret_dir, (uint32_t)uid, (uint32_t)gid, reterr);
                        if (r < 0)
                                return r;
                }
        }
        seccomp_key[0] = 0;
        if (rt->crun && seccomp_cache_key(cfg, rt->runtime_version, seccomp_key) == 0) {
                r = seccomp_cache_annotate(rt->seccomp_dir, seccomp_key, cfg, reterr);
                if (r < 0)
                        return r;
                if (r > 0)
                        seccomp_key[0] = 0;
        }
        txt = json_dumps(cfg, JSON_INDENT(2));
        if (!txt)
                return -ENOMEM;
        /* No fsync: the bundle is written anew before every run (a reboot ends the container). */
        return ck_write_file_replace(bundlefd, "config.json", txt, strlen(txt), 0600, reterr);
}

static int shim_spawn(struct runtime *rt, const struct runtime_spec *spec, const char *bundle,
                      const char *log_path, const char *sdir, bool *ret_spare, struct ck_error **reterr)
{
        _cleanup_free_ char *shim_log = path_join(sdir, "shim.log");
        _cleanup_close_ int logfd = -1, rd = -1;
        char max_bytes[32], max_files[16], buf[1200], cgroup[128];
        const char *stop_signal =
                spec->image && spec->image->stop_signal ? spec->image->stop_signal : "SIGTERM";
        char *argv[] = {rt->shim_path,
                        "--id",
                        (char *)spec->id,
                        "--bundle",
                        (char *)bundle,
                        "--state-dir",
                        (char *)sdir,
                        "--runtime",
                        rt->runtime_path,
                        "--runtime-root",
                        rt->runc_root,
                        "--log",
                        (char *)log_path,
                        "--log-max-bytes",
                        max_bytes,
                        "--log-max-files",
                        max_files,
                        "--restart",
                        spec->restart == RUNTIME_RESTART_ALWAYS ? "always" : "no",
                        "--stop-signal",
                        (char *)stop_signal,
                        "--ready-fd",
                        "3",
                        "--cgroup",
                        cgroup,
                        rt->hide_cgroup2 ? "--hide-cgroup2" : NULL,
                        NULL};
        int p[2], r;
        size_t got = 0;
        struct timespec t0, t1;

        if (!shim_log)
                return -ENOMEM;
        snprintf(max_bytes, sizeof(max_bytes), "%llu", (unsigned long long)rt->log_max_bytes);
        snprintf(max_files, sizeof(max_files), "%u", rt->log_max_files);
        snprintf(cgroup, sizeof(cgroup), "/conker/%s", spec->id);
        logfd = open(shim_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (logfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", shim_log);
        /* The spare, when one is ready, gets the same command line; it answers on its socket. */
        *ret_spare = false;
        if (rt->spare) {
                size_t n = 1;
                int fd;

                while (argv[n])
                        n++;
                fd = shim_spare_assign(rt->spare, argv + 1, n - 1, logfd);
                if (fd >= 0) {
                        rd = fd;
                        *ret_spare = true;
                        goto wait_ready;
                }
        }
        if (pipe2(p, O_CLOEXEC) < 0)
                return ck_error_errno(reterr, -errno, "pipe");
        rd = p[0];
        r = shim_exec_detached(argv, logfd, p[1]);
        close(p[1]);
        if (r < 0)
                return ck_error_errno(reterr, r, "fork");

wait_ready:
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
                struct pollfd pfd = {.fd = rd, .events = POLLIN};
                int64_t left;
                ssize_t n;

                clock_gettime(CLOCK_MONOTONIC, &t1);
                left = (int64_t)rt->start_timeout_s * 1000 -
                       ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
                if (left <= 0)
                        return ck_error_set(reterr, -ETIMEDOUT, "container %s did not start within %u s",
                                            spec->id, rt->start_timeout_s);
                if (poll(&pfd, 1, (int)left) < 0) {
                        if (errno == EINTR)
                                continue;
                        return ck_error_errno(reterr, -errno, "poll");
                }
                n = read(rd, buf + got, sizeof(buf) - 1 - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
                if (got == sizeof(buf) - 1)
                        break;
        }
        buf[got] = 0;
        if (strcmp(buf, "ok\n") == 0)
                return 0;
        if (ck_startswith(buf, "error: ")) {
                size_t l = strlen(buf);
                if (l && buf[l - 1] == '\n')
                        buf[l - 1] = 0;
                return ck_error_set(reterr, -EIO, "container %s: %s", spec->id, buf + 7);
        }
        return ck_error_set(reterr, -EIO, "conker-shim for %s exited before reporting (see %s)", spec->id,
                            shim_log);
}

static char *container_dir(struct runtime *rt, const char *id, const char *sub)
{
        char *p = NULL;
        if (asprintf(&p, "%s/containers/%s%s%s", rt->data_dir, id, sub ? "/" : "", sub ? sub : "") < 0)
                return NULL;
        return p;
}

/* Removes and returns the prepared network of id, if any. */
static struct prepared_net *prepared_take(struct runtime *rt, const char *id)
{
        struct prepared_net **pp, *p = NULL;

        pthread_mutex_lock(&rt->prepared_lock);
        for (pp = &rt->prepared; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->id, id) == 0) {
                        p = *pp;
                        *pp = p->next;
                        break;
                }
        pthread_mutex_unlock(&rt->prepared_lock);
        return p;
}

static bool ports_equal(const struct runtime_port *a, size_t na, const struct runtime_port *b, size_t nb)
{
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (a[i].target != b[i].target || a[i].published != b[i].published || a[i].udp != b[i].udp)
                        return false;
        return true;
}

int runtime_prepare_network(struct runtime *rt, const char *id, const struct runtime_port *ports,
                            size_t n_ports, struct ck_error **reterr)
{
        struct prepared_net *p;
        struct shim_state st;
        int r;

        if (!id_valid(id))
                return ck_error_set(reterr, -EINVAL, "invalid container ID (want [a-z0-9]{12,64})");
        /* The same refusals as runtime_run, before anything is made. */
        if (shim_request(rt, id, SHIM_OP_STATE, 0, 2, &st, NULL) >= 0 ||
            (shim_state_file(rt, id, &st, NULL) >= 0 && shim_pid_alive(st.shim_pid)))
                return ck_error_set(reterr, -EEXIST, "container %s already exists", id);
        /* A failure below cleans up by ID, which must not touch another container's interface. */
        r = net_check_conflicts(&rt->net, id, ports, n_ports, reterr);
        if (r < 0)
                return r;
        p = calloc(1, sizeof(*p));
        if (!p || !(p->ports = calloc(n_ports + 1, sizeof(*ports)))) {
                prepared_free(p);
                return -ENOMEM;
        }
        snprintf(p->id, sizeof(p->id), "%s", id);
        memcpy(p->ports, ports, n_ports * sizeof(*ports));
        p->n_ports = n_ports;
        prepared_free(prepared_take(rt, id));
        r = net_container_setup(&rt->net, id, ports, n_ports, p->ip, &p->netns_path, reterr);
        if (r < 0) {
                prepared_free(p);
                (void)runtime_delete(rt, id, NULL);
                return r;
        }
        pthread_mutex_lock(&rt->prepared_lock);
        p->next = rt->prepared;
        rt->prepared = p;
        pthread_mutex_unlock(&rt->prepared_lock);
        return 0;
}

int runtime_run(struct runtime *rt, const struct runtime_spec *spec, struct ck_error **reterr)
{
        _cleanup_free_ char *bundle = NULL, *logdir = NULL, *log_path = NULL, *sdir = NULL, *netns = NULL;
        _cleanup_close_ int bundlefd = -1;
        struct shim_state st;
        char ip[16], hostname[64], seccomp_key[65];
        struct prepared_net *prep;
        bool spare = false;
        int64_t t[5];
        int r;

        t[0] = ck_now_us();
        if (!spec || !id_valid(spec->id))
                return ck_error_set(reterr, -EINVAL, "invalid container ID (want [a-z0-9]{12,64})");
        if (!spec->rootfs || spec->rootfs[0] != '/')
                return ck_error_set(reterr, -EINVAL, "rootfs must be an absolute path");
        if (shim_request(rt, spec->id, SHIM_OP_STATE, 0, 2, &st, NULL) >= 0)
                return ck_error_set(reterr, -EEXIST, "container %s already exists", spec->id);
        /* A shim that lives but does not answer still owns the container. */
        if (shim_state_file(rt, spec->id, &st, NULL) >= 0 && shim_pid_alive(st.shim_pid))
                return ck_error_set(reterr, -EEXIST,
                                    "container %s already exists (its shim does not answer)", spec->id);

        /* Before anything is made: a failure below cleans up by ID, which must not touch
         * another container's interface. */
        r = net_check_conflicts(&rt->net, spec->id, spec->ports, spec->n_ports, reterr);
        if (r < 0)
                return r;

        bundle = container_dir(rt, spec->id, "bundle");
        logdir = container_dir(rt, spec->id, "log");
        sdir = shim_dir(rt, spec->id);
        if (!bundle || !logdir || !sdir || !(log_path = path_join(logdir, "container.log")))
                return -ENOMEM;
        if (ck_mkdir_p(bundle, 0700) < 0 || ck_mkdir_p(logdir, 0700) < 0 || ck_mkdir_p(sdir, 0700) < 0)
                return ck_error_errno(reterr, -errno, "cannot create the directories of %s", spec->id);
        bundlefd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (bundlefd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", bundle);

        t[1] = ck_now_us();
        prep = prepared_take(rt, spec->id);
        if (prep && ports_equal(prep->ports, prep->n_ports, spec->ports, spec->n_ports)) {
                memcpy(ip, prep->ip, sizeof(ip));
                netns = TAKE_PTR(prep->netns_path);
        }
        prepared_free(prep);
        if (!netns) {
                /* Set up here (one prepared with other ports is replaced: the names are the same). */
                r = net_container_setup(&rt->net, spec->id, spec->ports, spec->n_ports, ip, &netns, reterr);
                if (r < 0)
                        goto fail;
        }
        t[2] = ck_now_us();
        spec_hostname(spec, hostname);
        r = spec_write_etc(bundlefd, hostname, ip, rt->resolv_conf, reterr);
        if (r < 0)
                goto fail;
        r = write_config(rt, spec, bundle, bundlefd, netns, seccomp_key, reterr);
        if (r < 0)
                goto fail;
        t[3] = ck_now_us();
        r = shim_spawn(rt, spec, bundle, log_path, sdir, &spare, reterr);
        /* The next spare, made a little after this start's end (shim-spare.c). */
        shim_spare_refill(rt->spare);
        if (r < 0)
                goto fail;
        t[4] = ck_now_us();
        if (seccomp_key[0]) {
                _cleanup_error_ struct ck_error *err = NULL;
                /* Not fatal: the next start compiles the profile again. */
                if (seccomp_cache_store(rt->seccomp_dir, seccomp_key, rt->runc_root, spec->id, &err) < 0)
                        log_warn("cannot keep the seccomp filter of %s: %s", spec->id,
                                 ck_error_message(err, -EIO));
        }
        log_debug("container %s started in %.1f ms: checks %.1f, network %.1f, bundle %.1f, %s + runc %.1f",
                  spec->id, (double)(t[4] - t[0]) / 1000, (double)(t[1] - t[0]) / 1000,
                  (double)(t[2] - t[1]) / 1000, (double)(t[3] - t[2]) / 1000, spare ? "spare shim" : "shim",
                  (double)(t[4] - t[3]) / 1000);
        return 0;
fail:
        /* Leave nothing half-made behind; the caller may still call runtime_delete(). */
        (void)runtime_delete(rt, spec->id, NULL);
        return r;
}

static void state_fill(struct runtime *rt, const char *id, const struct shim_state *s,
                       struct runtime_state *ret)
{
        *ret = s->st;
        net_container_ip(&rt->net, id, ret->ip);
}

int runtime_state(struct runtime *rt, const char *id, struct runtime_state *ret, struct ck_error **reterr)
{
        struct shim_state s;
        int r;

        if (!id_valid(id))
                return ck_error_set(reterr, -EINVAL, "invalid container ID");
        r = shim_request(rt, id, SHIM_OP_STATE, 0, 5, &s, NULL);
        if (r < 0) {
                r = shim_state_file(rt, id, &s, reterr);
                if (r < 0)
                        return r;
                /* The shim is gone but the state says the container lives: nobody holds its stdio
                 * or will record its exit, so the state is unknown until it is deleted. */
                if (!shim_pid_alive(s.shim_pid) && s.st.status != RUNTIME_EXITED) {
                        s.st.status = RUNTIME_UNKNOWN;
                        s.st.pid = 0;
                }
        }
        state_fill(rt, id, &s, ret);
        return 0;
}

int runtime_stop(struct runtime *rt, const char *id, unsigned timeout_s, struct ck_error **reterr)
{
        struct shim_state s;
        struct timespec t0, t1;
        int r;

        if (!id_valid(id))
                return ck_error_set(reterr, -EINVAL, "invalid container ID");
        r = shim_request(rt, id, SHIM_OP_STOP, timeout_s, 5, &s, NULL);
        if (r < 0) {
                /* No shim: nothing holds the container's stdio or would restart it; make sure it
                 * is not running (a hung shim keeps its claim: delete handles that). */
                char *argv[] = {rt->runtime_path, "--root", rt->runc_root, "kill", (char *)id, "KILL", NULL};

                r = shim_state_file(rt, id, &s, reterr);
                if (r < 0)
                        return r;
                if (shim_pid_alive(s.shim_pid))
                        return ck_error_set(reterr, -ETIMEDOUT, "the shim of %s does not answer", id);
                (void)ck_exec(argv, NULL, NULL, NULL, NULL);
                return 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
                if (s.st.status != RUNTIME_RUNNING && s.st.status != RUNTIME_CREATED)
                        return 0;
                clock_gettime(CLOCK_MONOTONIC, &t1);
                if (t1.tv_sec - t0.tv_sec > (time_t)timeout_s + 10)
                        return ck_error_set(reterr, -ETIMEDOUT, "container %s did not stop", id);
                usleep(50 * 1000);
                r = shim_request(rt, id, SHIM_OP_STATE, 0, 5, &s, reterr);
                if (r < 0)
                        return r;
        }
}

int runtime_delete(struct runtime *rt, const char *id, struct ck_error **reterr)
{
        _cleanup_free_ char *sdir = NULL, *bundle = NULL, *logdir = NULL, *cdir = NULL;
        struct shim_state s;
        int r;

        if (!id_valid(id))
                return ck_error_set(reterr, -EINVAL, "invalid container ID");
        prepared_free(prepared_take(rt, id));
        sdir = shim_dir(rt, id);
        bundle = container_dir(rt, id, "bundle");
        logdir = container_dir(rt, id, "log");
        cdir = container_dir(rt, id, NULL);
        if (!sdir || !bundle || !logdir || !cdir)
                return -ENOMEM;

        r = shim_request(rt, id, SHIM_OP_DELETE, 0, 20, &s, NULL);
        if (r < 0) {
                /* No shim answering: kill a hung one, then clean up runc's state ourselves. */
                char *argv[] = {rt->runtime_path, "--root",   rt->runc_root, "delete",
                                "--force",        (char *)id, NULL};
                _cleanup_error_ struct ck_error *e = NULL;
                if (shim_state_file(rt, id, &s, NULL) >= 0 && shim_pid_alive(s.shim_pid))
                        kill(s.shim_pid, SIGKILL);
                r = ck_exec(argv, NULL, NULL, NULL, &e);
                if (r < 0 && !strstr(ck_error_message(e, r), "not exist"))
                        log_debug("runc delete %s: %s", id, ck_error_message(e, r));
        }
        r = net_container_teardown(&rt->net, id, reterr);
        if (r < 0)
                return r;
        r = ck_rm_rf_at(AT_FDCWD, sdir);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot remove %s", sdir);
        r = ck_rm_rf_at(AT_FDCWD, bundle);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot remove %s", bundle);
        r = ck_rm_rf_at(AT_FDCWD, logdir);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot remove %s", logdir);
        /* The image module may still have the rootfs mounted below it; it removes the rest. */
        (void)rmdir(cdir);
        /* With the last container gone the table goes too (net_apply wrote an empty one). */
        return 0;
}

int runtime_list(struct runtime *rt, char ***ret_ids, size_t *ret_n, struct ck_error **reterr)
{
        DIR *d = opendir(rt->shims_dir);
        char **ids = NULL;
        size_t n = 0;
        struct dirent *de;

        if (!d)
                return ck_error_errno(reterr, -errno, "cannot open %s", rt->shims_dir);
        while ((de = readdir(d))) {
                struct shim_state s;
                char **nv;

                if (!id_valid(de->d_name))
                        continue;
                if (shim_request(rt, de->d_name, SHIM_OP_STATE, 0, 2, &s, NULL) < 0)
                        continue;
                nv = realloc(ids, (n + 2) * sizeof(char *));
                if (!nv)
                        goto oom;
                ids = nv;
                ids[n] = strdup(de->d_name);
                if (!ids[n])
                        goto oom;
                ids[++n] = NULL;
        }
        closedir(d);
        *ret_ids = ids;
        *ret_n = n;
        return 0;
oom:
        closedir(d);
        for (size_t i = 0; i < n; i++)
                free(ids[i]);
        free(ids);
        return -ENOMEM;
}

char *runtime_log_path(struct runtime *rt, const char *id)
{
        _cleanup_free_ char *logdir = NULL;
        if (!id_valid(id))
                return NULL;
        logdir = container_dir(rt, id, "log");
        return logdir ? path_join(logdir, "container.log") : NULL;
}

int runtime_teardown(struct runtime *rt, struct ck_error **reterr)
{
        return net_teardown(&rt->net, reterr);
}
