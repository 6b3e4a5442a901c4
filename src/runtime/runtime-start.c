/* Starting a container: its network prepared ahead (runtime_prepare_network) or made on the
 * way, the bundle written (the /etc files and config.json from spec.c, the seccomp filter from
 * seccomp-cache.c), its conker-shim spawned (or the spare handed the command line) and waited
 * for until it reports the container running. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "json.h"
#include "log.h"
#include "monotonic.h"
#include "parse.h"
#include "runtime-internal.h"
#include "seccomp-cache.h"
#include "shim-exec.h"
#include "shim-spare.h"
#include "spec.h"

void runtime_prepared_free(struct prepared_net *p)
{
        if (p) {
                free(p->netns_path);
                free(p->ports);
                free(p);
        }
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
        _cleanup_free_ char *shim_log = runtime_path_join(sdir, "shim.log");
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
        pid_t pgid = 0;
        int64_t deadline;

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
                fd = shim_spare_assign(rt->spare, argv + 1, n - 1, logfd, &pgid);
                if (fd >= 0) {
                        rd = fd;
                        *ret_spare = true;
                        goto wait_ready;
                }
        }
        if (pipe2(p, O_CLOEXEC) < 0)
                return ck_error_errno(reterr, -errno, "pipe");
        rd = p[0];
        pgid = shim_exec_detached(argv, logfd, p[1]);
        close(p[1]);
        if (pgid < 0)
                return ck_error_errno(reterr, (int)pgid, "fork");

wait_ready:
        deadline = ck_now_ms() + (int64_t)rt->start_timeout_s * 1000;
        for (;;) {
                struct pollfd pfd = {.fd = rd, .events = POLLIN};
                int64_t left = deadline - ck_now_ms();
                ssize_t n;

                if (left <= 0) {
                        /* The shim still holds its end (no EOF yet), so it lives and the group is
                         * still its own. Left running, it could start the container after this
                         * start failed and was cleaned up: it goes, with the runtime it runs. */
                        if (pgid > 0)
                                (void)kill(-pgid, SIGKILL);
                        return ck_error_set(reterr, -ETIMEDOUT, "container %s did not start within %u s",
                                            spec->id, rt->start_timeout_s);
                }
                r = poll(&pfd, 1, (int)left);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return ck_error_errno(reterr, -errno, "poll");
                }
                /* Nothing yet: a read would block past the deadline, which the top checks. */
                if (r == 0)
                        continue;
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

/* Removes and returns the prepared network of id, if any. */
struct prepared_net *runtime_prepared_take(struct runtime *rt, const char *id)
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

        if (!runtime_id_valid(id))
                return ck_error_set(reterr, -EINVAL, "invalid container ID (want [a-z0-9]{12,64})");
        /* The same refusals as runtime_run, before anything is made. */
        if (runtime_shim_request(rt, id, SHIM_OP_STATE, 0, 2, &st, NULL) >= 0 ||
            (runtime_shim_state_file(rt, id, &st, NULL) >= 0 && runtime_shim_pid_alive(st.shim_pid)))
                return ck_error_set(reterr, -EEXIST, "container %s already exists", id);
        /* A failure below cleans up by ID, which must not touch another container's interface. */
        r = net_check_conflicts(&rt->net, id, ports, n_ports, reterr);
        if (r < 0)
                return r;
        p = calloc(1, sizeof(*p));
        if (!p || !(p->ports = calloc(n_ports + 1, sizeof(*ports)))) {
                runtime_prepared_free(p);
                return -ENOMEM;
        }
        snprintf(p->id, sizeof(p->id), "%s", id);
        memcpy(p->ports, ports, n_ports * sizeof(*ports));
        p->n_ports = n_ports;
        runtime_prepared_free(runtime_prepared_take(rt, id));
        r = net_container_setup(&rt->net, id, ports, n_ports, p->ip, &p->netns_path, reterr);
        if (r < 0) {
                runtime_prepared_free(p);
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
        if (!spec || !runtime_id_valid(spec->id))
                return ck_error_set(reterr, -EINVAL, "invalid container ID (want [a-z0-9]{12,64})");
        if (!spec->rootfs || spec->rootfs[0] != '/')
                return ck_error_set(reterr, -EINVAL, "rootfs must be an absolute path");
        if (runtime_shim_request(rt, spec->id, SHIM_OP_STATE, 0, 2, &st, NULL) >= 0)
                return ck_error_set(reterr, -EEXIST, "container %s already exists", spec->id);
        /* A shim that lives but does not answer still owns the container. */
        if (runtime_shim_state_file(rt, spec->id, &st, NULL) >= 0 && runtime_shim_pid_alive(st.shim_pid))
                return ck_error_set(reterr, -EEXIST,
                                    "container %s already exists (its shim does not answer)", spec->id);

        /* Before anything is made: a failure below cleans up by ID, which must not touch
         * another container's interface. */
        r = net_check_conflicts(&rt->net, spec->id, spec->ports, spec->n_ports, reterr);
        if (r < 0)
                return r;

        bundle = runtime_container_dir(rt, spec->id, "bundle");
        logdir = runtime_container_dir(rt, spec->id, "log");
        sdir = runtime_shim_dir(rt, spec->id);
        if (!bundle || !logdir || !sdir || !(log_path = runtime_path_join(logdir, "container.log")))
                return -ENOMEM;
        if (ck_mkdir_p(bundle, 0700) < 0 || ck_mkdir_p(logdir, 0700) < 0 || ck_mkdir_p(sdir, 0700) < 0)
                return ck_error_errno(reterr, -errno, "cannot create the directories of %s", spec->id);
        bundlefd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (bundlefd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", bundle);

        t[1] = ck_now_us();
        prep = runtime_prepared_take(rt, spec->id);
        if (prep && ports_equal(prep->ports, prep->n_ports, spec->ports, spec->n_ports)) {
                memcpy(ip, prep->ip, sizeof(ip));
                netns = TAKE_PTR(prep->netns_path);
        }
        runtime_prepared_free(prep);
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
