/* conker-shim: running the OCI runtime (runc or crun) and the container's life. `run --detach`
 * (for crun on a hybrid cgroup host in a private mount namespace without the v2 mount), the init
 * pid, signals to it, the exit status with its OOM flag, reaping, restart=always with exponential
 * backoff, the kill timer after a stop and the bounded wait for the init after a delete's
 * SIGKILL. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "exec.h"
#include "fs.h"
#include "json.h"
#include "log.h"
#include "monotonic.h"
#include "parse.h"
#include "shim.h"

#define DELETE_KILL_WAIT_MS 10000

/* Wall-clock time, for the state's started/finished times only: durations and deadlines use the
 * monotonic clock, which no clock step moves. */
static int64_t wall_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int runc(struct shim *s, char *const *args, size_t n, struct ck_error **reterr)
{
        char log_arg[4096];
        char *argv[16] = {(char *)s->runtime, "--root", (char *)s->root, "--log", log_arg,
                          "--log-format",     "json"};
        size_t k = 7;

        if (n > ELEMENTSOF(argv) - 1 - k)
                return ck_error_set(reterr, -E2BIG, "runtime: %zu arguments, at most %zu", n,
                                    ELEMENTSOF(argv) - 1 - k);
        if ((size_t)snprintf(log_arg, sizeof(log_arg), "%s/runc.log", s->state_dir) >= sizeof(log_arg))
                return ck_error_set(reterr, -ENAMETOOLONG,
                                    "runtime: the state directory's path is too long");
        for (size_t i = 0; i < n; i++)
                argv[k++] = args[i];
        argv[k] = NULL;
        return ck_exec(argv, NULL, NULL, NULL, reterr);
}

/* The last "msg" from runc's JSON log, the most precise reason for a failed run. */
static void runc_last_error(struct shim *s, char *out, size_t outlen)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        char *line, *last = NULL;

        out[0] = 0;
        if (ck_read_file_at(s->state_dfd, "runc.log", 1u << 20, &buf, &len, NULL) < 0)
                return;
        for (line = (char *)buf; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                if (strstr(line, "\"error\""))
                        last = line;
                line = nl ? nl + 1 : NULL;
        }
        if (last) {
                _cleanup_json_ json_t *j = json_loads(last, 0, NULL);
                const char *m = json_string_value(json_object_get(j, "msg"));
                if (m)
                        snprintf(out, outlen, "%s", m);
        }
}

/* conkerd asks for this with crun on a hybrid host whose v2 hierarchy holds a controller, where
 * crun refuses to start anything: in the runtime's own (forked) process only, a private mount
 * namespace in which an empty tmpfs covers /sys/fs/cgroup/unified. crun then sees a
 * v1-only host and uses the v1 hierarchies, where all of the container's limits live on such a
 * host. The namespace ends with the runtime process; the container gets its own from it. */
static int hide_cgroup2(void)
{
        if (unshare(CLONE_NEWNS) < 0)
                return -errno;
        if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
                return -errno;
        /* Writable: crun (v1 mode) still makes its directory for the unnamed hierarchy line of
         * /proc/self/cgroup there; it is discarded with the namespace. */
        if (mount("conker-no-cgroup2", "/sys/fs/cgroup/unified", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=64k,nr_inodes=256,mode=0700") < 0)
                return -errno;
        return 0;
}

/* `runc run --detach`: create and start in one runc process (each runc start-up costs tens of
 * milliseconds). The container init inherits the stdio pipes and, once runc has exited, is our
 * child (we are its subreaper); if it already exited it waits for us as a zombie. */
static int runc_run_detached(struct shim *s, struct ck_error **reterr)
{
        _cleanup_free_ char *prog = NULL;
        char log_arg[4096], pid_arg[4096];
        char *argv[] = {NULL,
                        "--root",
                        (char *)s->root,
                        "--log",
                        log_arg,
                        "--log-format",
                        "json",
                        "run",
                        "--detach",
                        "--bundle",
                        (char *)s->bundle,
                        "--pid-file",
                        pid_arg,
                        (char *)s->id,
                        NULL};
        int status, r;
        pid_t pid;

        r = ck_exec_find(s->runtime, &prog);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot find %s", s->runtime);
        argv[0] = prog;
        snprintf(log_arg, sizeof(log_arg), "%s/runc.log", s->state_dir);
        snprintf(pid_arg, sizeof(pid_arg), "%s/init.pid", s->state_dir);
        (void)unlinkat(s->state_dfd, "init.pid", 0);
        (void)unlinkat(s->state_dfd, "runc.log", 0);

        pid = fork();
        if (pid < 0)
                return ck_error_errno(reterr, -errno, "fork");
        if (pid == 0) {
                sigset_t none;
                int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (s->hide_cgroup2 && (r = hide_cgroup2()) < 0) {
                        /* Read back by runc_last_error() like the runtime's own errors. */
                        int fd = open(log_arg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
                        if (fd >= 0)
                                dprintf(fd,
                                        "{\"level\":\"error\",\"msg\":\"cannot hide the cgroup v2 mount "
                                        "from the runtime: %s\"}\n",
                                        strerror(-r));
                        _exit(125);
                }
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                /* The container inherits these: the pipes, never a terminal. */
                if (nullfd < 0 || dup2(nullfd, 0) < 0 || dup2(s->out_w, 1) < 0 || dup2(s->err_w, 2) < 0)
                        _exit(126);
                if (s->runtime_fd >= 0) /* falls through to the path if the copy cannot run */
                        syscall(SYS_execveat, s->runtime_fd, "", argv, environ, AT_EMPTY_PATH);
                execv(prog, argv);
                _exit(127);
        }
        /* Restarts run the binary on disk again (crun then makes its own sealed copy). */
        s->runtime_fd = safe_close(s->runtime_fd);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return ck_error_errno(reterr, -errno, "waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                char msg[1024];
                runc_last_error(s, msg, sizeof(msg));
                return ck_error_set(reterr, -EIO, "%s", msg[0] ? msg : "runc run failed");
        }
        return 0;
}

static int read_init_pid(struct shim *s, pid_t *ret, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        uint64_t v;
        int r;

        r = ck_read_file_at(s->state_dfd, "init.pid", 64, &buf, &len, reterr);
        if (r < 0)
                return r;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
                len--;
        r = ck_parse_u64((const char *)buf, len, INT32_MAX, &v);
        if (r < 0 || v < 2)
                return ck_error_set(reterr, -EBADMSG, "bad pid file from runc");
        *ret = (pid_t)v;
        return 0;
}

void set_timer(int fd, uint64_t ms)
{
        struct itimerspec its = {
                .it_value = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000}};
        if (ms == 0)
                its.it_value.tv_nsec = 1;           /* 0 would disarm */
        if (timerfd_settime(fd, 0, &its, NULL) < 0) /* only with a bad fd or value: a bug */
                log_error("cannot arm a timer: %s", strerror(errno));
}

void clear_timer(int fd)
{
        struct itimerspec its = {0};
        if (timerfd_settime(fd, 0, &its, NULL) < 0)
                log_error("cannot disarm a timer: %s", strerror(errno));
}

/* runc keeps one directory per container under its --root. */
static bool runc_has_state(struct shim *s)
{
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", s->root, s->id);
        return access(p, F_OK) == 0;
}

int container_start(struct shim *s, struct ck_error **reterr)
{
        char *del[] = {"delete", "--force", (char *)s->id};
        pid_t pid = 0;
        int r;

        /* Before a restart the old container is still in runc's state; before the first start
         * there may be one left by a shim that died (it has no stdio holder any more). */
        if (runc_has_state(s))
                (void)runc(s, del, ELEMENTSOF(del), NULL);
        r = runc_run_detached(s, reterr);
        if (r < 0)
                return r;
        r = read_init_pid(s, &pid, reterr);
        if (r < 0) {
                (void)runc(s, del, ELEMENTSOF(del), NULL);
                return r;
        }
        s->pidfd = safe_close(s->pidfd);
        s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        s->st.st.pid = pid;
        s->st.st.status = RUNTIME_RUNNING;
        s->st.st.started_at_ns = wall_ns();
        s->started_mono_us = ck_now_us();
        state_write(s);
        return 0;
}

void send_signal(struct shim *s, int sig)
{
        if (s->st.st.pid <= 0)
                return;
        if (s->pidfd >= 0 && syscall(SYS_pidfd_send_signal, s->pidfd, sig, NULL, 0) == 0)
                return;
        if (s->pidfd < 0)
                kill(s->st.st.pid, sig);
}

/* The kernel counts OOM kills per memory cgroup (v2 memory.events, v1 memory.oom_control); the
 * cgroup lives until `runc delete`, so it still has the count of the run that just ended. */
static bool cgroup_oom_killed(struct shim *s)
{
        if (!s->cgroup)
                return false;
        for (int v1 = 0; v1 < 2; v1++) {
                _cleanup_free_ uint8_t *buf = NULL;
                char path[4096];
                uint64_t n;
                size_t len;

                if (v1)
                        snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%s/memory.oom_control",
                                 s->cgroup);
                else
                        snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.events", s->cgroup);
                if (ck_read_file(path, 65536, &buf, &len, NULL) == 0 &&
                    shim_parse_oom_kill((const char *)buf, len, &n) == 0)
                        return n > 0;
        }
        return false;
}

static void on_exit_status(struct shim *s, int status)
{
        int64_t ran;

        pipe_drain(s, s->out_r, &s->out_lb);
        pipe_drain(s, s->err_r, &s->err_lb);
        linebuf_flush(s, &s->out_lb);
        linebuf_flush(s, &s->err_lb);

        s->st.st.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        s->st.st.finished_at_ns = wall_ns();
        s->st.st.oom_killed = cgroup_oom_killed(s);
        s->st.st.pid = 0;
        s->pidfd = safe_close(s->pidfd);
        clear_timer(s->kill_fd);
        ran = (ck_now_us() - s->started_mono_us) * 1000;
        exit_write(s);

        if (s->restart_always && !s->stopping) {
                if (ran >= BACKOFF_RESET_NS)
                        s->backoff_ms = BACKOFF_START_MS;
                s->st.st.status = RUNTIME_RESTARTING;
                set_timer(s->backoff_fd, s->backoff_ms);
                log_info("container %s exited with %d, restarting in %llu ms", s->id, s->st.st.exit_code,
                         (unsigned long long)s->backoff_ms);
                s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
        } else {
                s->st.st.status = RUNTIME_EXITED;
        }
        state_write(s);
}

void reap(struct shim *s)
{
        for (;;) {
                int status;
                pid_t p = waitpid(-1, &status, WNOHANG);
                if (p <= 0)
                        return;
                if (p == s->st.st.pid)
                        on_exit_status(s, status);
        }
}

/* Waits (bounded) for the init to die after SIGKILL, for delete. */
void wait_init_gone(struct shim *s)
{
        int64_t deadline = ck_now_ms() + DELETE_KILL_WAIT_MS;
        while (s->st.st.pid > 0 && ck_now_ms() < deadline) {
                struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
                if (s->pidfd >= 0)
                        (void)poll(&p, 1, 100);
                else
                        usleep(50000);
                reap(s);
        }
}

void on_backoff(struct shim *s)
{
        _cleanup_error_ struct ck_error *err = NULL;
        uint64_t ticks;

        if (read(s->backoff_fd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN)
                return;
        if (s->st.st.status != RUNTIME_RESTARTING || s->stopping)
                return;
        s->st.st.restart_count++;
        if (container_start(s, &err) < 0) {
                const char *m = ck_error_message(err, -EIO);
                log_error("restart of %s failed: %s", s->id, m);
                log_line(s, "stderr", (const uint8_t *)m, strlen(m));
                s->st.st.finished_at_ns = wall_ns();
                s->st.st.started_at_ns = s->st.st.finished_at_ns;
                s->st.st.pid = 0;
                set_timer(s->backoff_fd, s->backoff_ms);
                s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
                state_write(s);
        }
}

void on_kill_timer(struct shim *s)
{
        uint64_t ticks;
        if (read(s->kill_fd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN)
                return;
        if (s->st.st.status == RUNTIME_RUNNING)
                send_signal(s, SIGKILL);
}
