/* The runtime driver behind runtime.h: one conker-shim per container, talked to over its
 * control socket (shim-proto.c), and what a container's shim answers for once it runs: state,
 * stop, delete, the list of containers, the log's path. runtime-open.c opens the runtime (runc or
 * crun, bridge and table through net.c, adoption after a restart of conkerd), runtime-start.c
 * starts a container (network, bundle, shim spawn).
 *
 * Layout: <data_dir>/containers/<id>/bundle/ (config.json, hosts, hostname, resolv.conf),
 * <data_dir>/containers/<id>/log/container.log[.N], <run_dir>/shims/<id>/ (shim.sock,
 * state.json, exit.json, runc.log, shim.log), <run_dir>/runc/ (runc --root), <run_dir>/net/. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "fs.h"
#include "log.h"
#include "runtime-internal.h"

bool runtime_id_valid(const char *id)
{
        size_t n = id ? strlen(id) : 0;
        if (n < 12 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9')))
                        return false;
        return true;
}

char *runtime_path_join(const char *a, const char *b)
{
        char *p = NULL;
        return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

char *runtime_shim_dir(struct runtime *rt, const char *id)
{
        return runtime_path_join(rt->shims_dir, id);
}

int runtime_shim_request(struct runtime *rt, const char *id, enum shim_op op, unsigned timeout_s,
                         unsigned io_timeout_s, struct shim_state *ret, struct ck_error **reterr)
{
        _cleanup_free_ char *dir = runtime_shim_dir(rt, id), *sock = NULL;
        struct shim_request req = {.op = op, .timeout_s = timeout_s};

        if (!dir || !(sock = runtime_path_join(dir, SHIM_SOCK_NAME)))
                return -ENOMEM;
        return shim_call(sock, &req, io_timeout_s, ret, reterr);
}

/* state.json of a shim that does not answer. */
int runtime_shim_state_file(struct runtime *rt, const char *id, struct shim_state *ret,
                            struct ck_error **reterr)
{
        _cleanup_free_ char *dir = runtime_shim_dir(rt, id);
        _cleanup_close_ int dfd = -1;

        if (!dir)
                return -ENOMEM;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return ck_error_errno(reterr, -errno, "no container %s", id);
        return shim_state_read(dfd, ret, reterr);
}

/* True when pid is a live (not zombie) conker-shim: /proc/<pid>/stat is "pid (comm) S ...". */
bool runtime_shim_pid_alive(pid_t pid)
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

char *runtime_container_dir(struct runtime *rt, const char *id, const char *sub)
{
        char *p = NULL;
        if (asprintf(&p, "%s/containers/%s%s%s", rt->data_dir, id, sub ? "/" : "", sub ? sub : "") < 0)
                return NULL;
        return p;
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

        if (!runtime_id_valid(id))
                return ck_error_set(reterr, -EINVAL, "invalid container ID");
        r = runtime_shim_request(rt, id, SHIM_OP_STATE, 0, 5, &s, NULL);
        if (r < 0) {
                r = runtime_shim_state_file(rt, id, &s, reterr);
                if (r < 0)
                        return r;
                /* The shim is gone but the state says the container lives: nobody holds its stdio
                 * or will record its exit, so the state is unknown until it is deleted. */
                if (!runtime_shim_pid_alive(s.shim_pid) && s.st.status != RUNTIME_EXITED) {
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

        if (!runtime_id_valid(id))
                return ck_error_set(reterr, -EINVAL, "invalid container ID");
        r = runtime_shim_request(rt, id, SHIM_OP_STOP, timeout_s, 5, &s, NULL);
        if (r < 0) {
                /* No shim: nothing holds the container's stdio or would restart it; make sure it
                 * is not running (a hung shim keeps its claim: delete handles that). */
                char *argv[] = {rt->runtime_path, "--root", rt->runc_root, "kill", (char *)id, "KILL", NULL};

                r = runtime_shim_state_file(rt, id, &s, reterr);
                if (r < 0)
                        return r;
                if (runtime_shim_pid_alive(s.shim_pid))
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
                r = runtime_shim_request(rt, id, SHIM_OP_STATE, 0, 5, &s, reterr);
                if (r < 0)
                        return r;
        }
}

int runtime_delete(struct runtime *rt, const char *id, struct ck_error **reterr)
{
        _cleanup_free_ char *sdir = NULL, *bundle = NULL, *logdir = NULL, *cdir = NULL;
        struct shim_state s;
        int r;

        if (!runtime_id_valid(id))
                return ck_error_set(reterr, -EINVAL, "invalid container ID");
        runtime_prepared_free(runtime_prepared_take(rt, id));
        sdir = runtime_shim_dir(rt, id);
        bundle = runtime_container_dir(rt, id, "bundle");
        logdir = runtime_container_dir(rt, id, "log");
        cdir = runtime_container_dir(rt, id, NULL);
        if (!sdir || !bundle || !logdir || !cdir)
                return -ENOMEM;

        r = runtime_shim_request(rt, id, SHIM_OP_DELETE, 0, 20, &s, NULL);
        if (r < 0) {
                /* No shim answering: kill a hung one, then clean up runc's state ourselves. */
                char *argv[] = {rt->runtime_path, "--root",   rt->runc_root, "delete",
                                "--force",        (char *)id, NULL};
                _cleanup_error_ struct ck_error *e = NULL;
                if (runtime_shim_state_file(rt, id, &s, NULL) >= 0 && runtime_shim_pid_alive(s.shim_pid))
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

                if (!runtime_id_valid(de->d_name))
                        continue;
                if (runtime_shim_request(rt, de->d_name, SHIM_OP_STATE, 0, 2, &s, NULL) < 0)
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
        if (!runtime_id_valid(id))
                return NULL;
        logdir = runtime_container_dir(rt, id, "log");
        return logdir ? runtime_path_join(logdir, "container.log") : NULL;
}
