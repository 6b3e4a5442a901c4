/* conker-shim: one per container. Started by conkerd (setsid + double fork) so that it outlives
 * it, or started ahead as conkerd's spare and handed its command line later (spare_wait()). It
 * is the subreaper of the container, runs `runc run --detach` with stdio pipes it holds (never
 * a terminal), writes the container's output as JSON lines with rotation, records
 * state.json/exit.json atomically, applies restart=always with exponential backoff, and answers
 * state/stop/delete on its control socket (protocol in src/runtime/shim-proto.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "exec.h"
#include "fs.h"
#include "json.h"
#include "log.h"
#include "parse.h"
#include "shim-proto.h"

#define LINE_MAX_BYTES      16384
#define BACKOFF_START_MS    100
#define BACKOFF_MAX_MS      60000
#define BACKOFF_RESET_NS    (10LL * 1000000000LL)
#define DELETE_KILL_WAIT_MS 10000

struct linebuf {
        const char *stream;
        uint8_t data[LINE_MAX_BYTES];
        size_t len;
};

struct shim {
        const char *id, *bundle, *runtime, *root, *log_path, *state_dir, *cgroup;
        uint64_t log_max;
        unsigned log_files;
        bool restart_always;
        bool hide_cgroup2; /* crun on a hybrid cgroup host: see hide_cgroup2() */
        int stop_signal;
        int state_dfd;
        int out_r, out_w, err_r, err_w;
        int listen_fd, sig_fd, backoff_fd, kill_fd, pidfd;
        int runtime_fd; /* a spare's sealed copy of the runtime, for the first run only */
        int log_fd;
        uint64_t log_size;
        struct linebuf out_lb, err_lb;
        struct shim_state st;
        bool stopping, deleting;
        uint64_t backoff_ms;
};

static int64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- log ---- */

static int log_open(struct shim *s)
{
        struct stat st;
        s->log_fd = safe_close(s->log_fd);
        s->log_fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (s->log_fd < 0)
                return -errno;
        s->log_size = fstat(s->log_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
        return 0;
}

/* path → path.1 → … → path.(files-1); the oldest is dropped. Disk use stays ≤ files × max. */
static void log_rotate(struct shim *s)
{
        char from[4096], to[4096];

        if (s->log_files <= 1) {
                if (s->log_fd >= 0 && ftruncate(s->log_fd, 0) == 0)
                        s->log_size = 0;
                return;
        }
        snprintf(to, sizeof(to), "%s.%u", s->log_path, s->log_files - 1);
        (void)unlink(to);
        for (unsigned i = s->log_files - 1; i > 1; i--) {
                snprintf(from, sizeof(from), "%s.%u", s->log_path, i - 1);
                snprintf(to, sizeof(to), "%s.%u", s->log_path, i);
                (void)rename(from, to);
        }
        snprintf(to, sizeof(to), "%s.1", s->log_path);
        (void)rename(s->log_path, to);
        if (log_open(s) < 0)
                log_error("cannot reopen log %s: %m", s->log_path);
}

static json_t *json_text(const uint8_t *p, size_t n)
{
        json_t *j = json_stringn((const char *)p, n);
        _cleanup_free_ char *copy = NULL;

        if (j)
                return j;
        /* Not UTF-8 (or a NUL): keep the line readable rather than dropping it. */
        copy = malloc(n ? n : 1);
        if (!copy)
                return NULL;
        for (size_t i = 0; i < n; i++)
                copy[i] = (p[i] >= 0x80 || p[i] == 0) ? '?' : (char)p[i];
        return json_stringn(copy, n);
}

static void log_line(struct shim *s, const char *stream, const uint8_t *p, size_t n)
{
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *line = NULL;
        char ts[64];
        struct timespec now;
        struct tm tm;
        size_t len;

        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        len = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ts + len, sizeof(ts) - len, ".%09ldZ", now.tv_nsec);
        j = json_pack("{s:s,s:s,s:o}", "ts", ts, "stream", stream, "log", json_text(p, n));
        if (!j)
                return;
        line = json_dumps(j, JSON_COMPACT);
        if (!line)
                return;
        len = strlen(line);
        if (s->log_size > 0 && s->log_size + len + 1 > s->log_max)
                log_rotate(s);
        if (s->log_fd < 0)
                return;
        line[len] = '\n'; /* replaces the NUL; written with its length */
        if (ck_write_all(s->log_fd, line, len + 1) == 0)
                s->log_size += len + 1;
}

static void linebuf_feed(struct shim *s, struct linebuf *lb, const uint8_t *p, size_t n)
{
        while (n > 0) {
                size_t take = LINE_MAX_BYTES - lb->len < n ? LINE_MAX_BYTES - lb->len : n;
                uint8_t *nl;

                memcpy(lb->data + lb->len, p, take);
                lb->len += take;
                p += take;
                n -= take;
                while ((nl = memchr(lb->data, '\n', lb->len))) {
                        size_t l = (size_t)(nl - lb->data) + 1;
                        log_line(s, lb->stream, lb->data, l);
                        memmove(lb->data, lb->data + l, lb->len - l);
                        lb->len -= l;
                }
                if (lb->len == LINE_MAX_BYTES) { /* a line longer than the cap is split */
                        log_line(s, lb->stream, lb->data, lb->len);
                        lb->len = 0;
                }
        }
}

static void linebuf_flush(struct shim *s, struct linebuf *lb)
{
        if (lb->len) {
                log_line(s, lb->stream, lb->data, lb->len);
                lb->len = 0;
        }
}

/* Reads what is available on one pipe; returns false at EOF. */
static void pipe_drain(struct shim *s, int fd, struct linebuf *lb)
{
        uint8_t buf[8192];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                linebuf_feed(s, lb, buf, (size_t)n);
        }
}

/* ---- state ---- */

static void state_write(struct shim *s)
{
        _cleanup_json_ json_t *j = shim_state_to_json(&s->st);
        _cleanup_free_ char *txt = j ? ck_json_dump(j) : NULL;
        _cleanup_error_ struct ck_error *err = NULL;

        /* The state dir is under the run dir (tmpfs): atomic against our own crash is what
         * matters, an fsync would buy nothing. */
        if (!txt || ck_write_file_replace(s->state_dfd, SHIM_STATE_NAME, txt, strlen(txt), 0600, &err) < 0)
                log_error("cannot write state: %s", ck_error_message(err, -ENOMEM));
}

static void exit_write(struct shim *s)
{
        _cleanup_json_ json_t *j =
                json_pack("{s:i,s:I,s:b,s:i}", "exit_code", s->st.st.exit_code, "finished_at",
                          (json_int_t)s->st.st.finished_at_ns, "oom_killed", s->st.st.oom_killed,
                          "restart_count", (int)s->st.st.restart_count);
        _cleanup_free_ char *txt = j ? ck_json_dump(j) : NULL;
        _cleanup_error_ struct ck_error *err = NULL;

        if (!txt || ck_write_file_replace(s->state_dfd, SHIM_EXIT_NAME, txt, strlen(txt), 0600, &err) < 0)
                log_error("cannot write exit status: %s", ck_error_message(err, -ENOMEM));
}

/* ---- runc ---- */

static int runc(struct shim *s, char *const *args, size_t n, struct ck_error **reterr)
{
        char log_arg[4096];
        char *argv[16] = {(char *)s->runtime, "--root", (char *)s->root, "--log", log_arg,
                          "--log-format",     "json"};
        size_t k = 7;

        snprintf(log_arg, sizeof(log_arg), "%s/runc.log", s->state_dir);
        for (size_t i = 0; i < n && k < ELEMENTSOF(argv) - 1; i++)
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

static void set_timer(int fd, uint64_t ms)
{
        struct itimerspec its = {
                .it_value = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000}};
        if (ms == 0)
                its.it_value.tv_nsec = 1; /* 0 would disarm */
        timerfd_settime(fd, 0, &its, NULL);
}

static void clear_timer(int fd)
{
        struct itimerspec its = {0};
        timerfd_settime(fd, 0, &its, NULL);
}

/* runc keeps one directory per container under its --root. */
static bool runc_has_state(struct shim *s)
{
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", s->root, s->id);
        return access(p, F_OK) == 0;
}

static int container_start(struct shim *s, struct ck_error **reterr)
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
        s->st.st.started_at_ns = now_ns();
        state_write(s);
        return 0;
}

static void send_signal(struct shim *s, int sig)
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
        s->st.st.finished_at_ns = now_ns();
        s->st.st.oom_killed = cgroup_oom_killed(s);
        s->st.st.pid = 0;
        s->pidfd = safe_close(s->pidfd);
        clear_timer(s->kill_fd);
        ran = s->st.st.finished_at_ns - s->st.st.started_at_ns;
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

static void reap(struct shim *s)
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
static void wait_init_gone(struct shim *s)
{
        int64_t deadline = now_ns() + (int64_t)DELETE_KILL_WAIT_MS * 1000000;
        while (s->st.st.pid > 0 && now_ns() < deadline) {
                struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
                if (s->pidfd >= 0)
                        (void)poll(&p, 1, 100);
                else
                        usleep(50000);
                reap(s);
        }
}

static void on_backoff(struct shim *s)
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
                s->st.st.finished_at_ns = now_ns();
                s->st.st.started_at_ns = s->st.st.finished_at_ns;
                s->st.st.pid = 0;
                set_timer(s->backoff_fd, s->backoff_ms);
                s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
                state_write(s);
        }
}

static void on_kill_timer(struct shim *s)
{
        uint64_t ticks;
        if (read(s->kill_fd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN)
                return;
        if (s->st.st.status == RUNTIME_RUNNING)
                send_signal(s, SIGKILL);
}

/* ---- control socket ---- */

static void reply(int fd, struct shim *s, int code, const char *msg)
{
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *txt = NULL;

        if (code < 0)
                j = json_pack("{s:b,s:s,s:i}", "ok", 0, "error", msg ? msg : "error", "errno", -code);
        else
                j = json_pack("{s:b,s:o}", "ok", 1, "state", shim_state_to_json(&s->st));
        txt = j ? ck_json_dump(j) : NULL;
        if (txt)
                (void)shim_frame_write(fd, txt, strlen(txt));
}

static void do_stop(struct shim *s, unsigned timeout_s)
{
        s->stopping = true;
        if (s->st.st.status == RUNTIME_RESTARTING) {
                clear_timer(s->backoff_fd);
                s->st.st.status = RUNTIME_EXITED;
                state_write(s);
        } else if (s->st.st.status == RUNTIME_RUNNING) {
                send_signal(s, s->stop_signal);
                set_timer(s->kill_fd, (uint64_t)timeout_s * 1000);
        }
}

/* Returns true when the shim should exit after replying. */
static bool on_client(struct shim *s)
{
        _cleanup_close_ int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ uint8_t *msg = NULL;
        struct timeval tv = {.tv_sec = 2};
        struct shim_request req;
        size_t len;
        int r;

        if (fd < 0)
                return false;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        r = shim_frame_read(fd, &msg, &len);
        if (r < 0) {
                reply(fd, s, r, "bad frame");
                return false;
        }
        r = shim_request_parse(msg, len, &req, &err);
        if (r < 0) {
                reply(fd, s, r, ck_error_message(err, r));
                return false;
        }
        switch (req.op) {
        case SHIM_OP_STATE:
                break;
        case SHIM_OP_STOP:
                do_stop(s, req.timeout_s);
                break;
        case SHIM_OP_DELETE: {
                char *del[] = {"delete", "--force", (char *)s->id};
                s->stopping = true;
                clear_timer(s->backoff_fd);
                if (s->st.st.status == RUNTIME_RUNNING) {
                        send_signal(s, SIGKILL);
                        wait_init_gone(s);
                }
                if (s->st.st.pid > 0) {
                        reply(fd, s, -EBUSY, "container did not die after SIGKILL");
                        return false;
                }
                r = runc(s, del, ELEMENTSOF(del), &err);
                if (r < 0)
                        log_warn("runc delete: %s", ck_error_message(err, r));
                s->st.st.status = RUNTIME_EXITED;
                state_write(s);
                (void)unlinkat(s->state_dfd, SHIM_SOCK_NAME, 0);
                reply(fd, s, 0, NULL);
                return true;
        }
        default:
                break;
        }
        reply(fd, s, 0, NULL);
        return false;
}

static int listen_socket(struct shim *s)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd, n;
        mode_t old;

        n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", s->state_dir, SHIM_SOCK_NAME);
        if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void)unlink(sa.sun_path);
        old = umask(0077);
        n = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (n < 0 || chmod(sa.sun_path, 0600) < 0 || listen(fd, 16) < 0) {
                n = -errno;
                close(fd);
                return n;
        }
        return fd;
}

static int parse_signal(const char *s)
{
        static const struct {
                const char *name;
                int sig;
        } sigs[] = {{"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"QUIT", SIGQUIT},
                    {"HUP", SIGHUP},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}};
        uint64_t v;

        if (!s || !*s)
                return SIGTERM;
        if (ck_parse_uint(s, 64, &v) == 0 && v > 0)
                return (int)v;
        if (ck_startswith(s, "SIG"))
                s += 3;
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                if (strcmp(s, sigs[i].name) == 0)
                        return sigs[i].sig;
        return -EINVAL;
}

static void ready(int *fd, const char *msg)
{
        if (*fd >= 0) {
                (void)ck_write_all(*fd, msg, strlen(msg));
                *fd = safe_close(*fd);
        }
}

/* crun (like runc 1.1) re-executes itself from a sealed copy of its binary before it touches a
 * container (CVE-2019-5736: a container must never reach a writable host runtime through
 * /proc/self/exe), and skips that step when /proc/self/exe already is a memfd sealed with
 * exactly these seals. A spare makes that copy while it waits, so the start does not pay crun's
 * bind mount, detach and second exec. */
#define RUNTIME_COPY_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
#define RUNTIME_COPY_MAX   (256u << 20)

static int runtime_copy_sealed(const char *path, struct stat *ret_st)
{
        _cleanup_close_ int in = open(path, O_RDONLY | O_CLOEXEC), out = -1;
        struct stat st;
        off_t off = 0;

        if (in < 0 || fstat(in, &st) < 0)
                return -errno;
        *ret_st = st;
        if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > RUNTIME_COPY_MAX)
                return -EINVAL;
        out = memfd_create("conker-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (out < 0)
                return -errno;
        while (off < st.st_size) {
                ssize_t n = sendfile(out, in, &off, (size_t)(st.st_size - off));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
        }
        if (fcntl(out, F_ADD_SEALS, RUNTIME_COPY_SEALS) < 0)
                return -errno;
        return TAKE_FD(out);
}

/* Whether path is still the file a spare copied (st, from runtime_copy_sealed()): a spare may
 * wait for minutes, and a runtime upgraded meanwhile (a package replaces the file, a new inode;
 * an in-place write changes size, mtime and ctime) must not run its old, possibly vulnerable
 * code even once. */
static bool runtime_copy_current(const char *path, const struct stat *st)
{
        struct stat now;

        return stat(path, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino &&
               now.st_size == st->st_size && now.st_mtim.tv_sec == st->st_mtim.tv_sec &&
               now.st_mtim.tv_nsec == st->st_mtim.tv_nsec && now.st_ctim.tv_sec == st->st_ctim.tv_sec &&
               now.st_ctim.tv_nsec == st->st_ctim.tv_nsec;
}

/* `--spare`: started ahead by conkerd (shim-spare.c) with its socket on fd 3. Waits for the
 * assignment (shim-proto.h), makes the log fd that came with it stdout and stderr, and returns
 * the command line in *ret_argv (pointing into *ret_buf, which the caller keeps). 0 on EOF: conkerd
 * is gone or shut down, nothing to do. */
static int spare_wait(uint8_t **ret_buf, char *ret_argv[SHIM_ASSIGN_ARGS_MAX + 2], int *ret_argc)
{
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } ctl;
        _cleanup_free_ uint8_t *buf = malloc(SHIM_MSG_MAX + 1);
        struct iovec iov = {.iov_base = buf, .iov_len = SHIM_MSG_MAX + 1};
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
        struct cmsghdr *c;
        int logfd = -1, r;
        ssize_t n;

        if (!buf)
                return -ENOMEM;
        do
                n = recvmsg(3, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        c = CMSG_FIRSTHDR(&mh);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int)))
                memcpy(&logfd, CMSG_DATA(c), sizeof(int));
        if (n == 0 && logfd < 0)
                return 0;
        if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || logfd < 0 || (c && CMSG_NXTHDR(&mh, c))) {
                safe_close(logfd);
                return -EBADMSG;
        }
        r = dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0 ? -errno : 0;
        if (logfd > 2) /* always: 0-3 are taken */
                safe_close(logfd);
        if (r < 0)
                return r;
        r = shim_assign_parse(buf, (size_t)n, "conker-shim", ret_argv, ret_argc);
        if (r < 0)
                return r;
        *ret_buf = TAKE_PTR(buf);
        return 1;
}

static void usage(void)
{
        fprintf(stderr,
                "usage: conker-shim --id ID --bundle DIR --state-dir DIR --runtime RUNC --runtime-root DIR "
                "--log FILE [--log-max-bytes N] [--log-max-files N] [--restart no|always] "
                "[--stop-signal SIG] [--ready-fd FD] [--cgroup PATH] [--hide-cgroup2]\n"
                "       conker-shim --spare   (conkerd's spare: the same options come later over fd 3)\n");
}

/* Fills s and *ready_fd from the command line; -EINVAL on anything unknown, malformed or missing. */
static int shim_parse_args(struct shim *s, int argc, char **argv, int *ready_fd)
{
        static const struct option opts[] = {
                {"id", required_argument, NULL, 'i'},
                {"bundle", required_argument, NULL, 'b'},
                {"state-dir", required_argument, NULL, 's'},
                {"runtime", required_argument, NULL, 'r'},
                {"runtime-root", required_argument, NULL, 'R'},
                {"log", required_argument, NULL, 'l'},
                {"log-max-bytes", required_argument, NULL, 'm'},
                {"log-max-files", required_argument, NULL, 'n'},
                {"restart", required_argument, NULL, 'p'},
                {"stop-signal", required_argument, NULL, 'k'},
                {"ready-fd", required_argument, NULL, 'f'},
                {"cgroup", required_argument, NULL, 'c'},
                {"hide-cgroup2", no_argument, NULL, 'H'},
                {0},
        };
        uint64_t v;
        int c;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        s->cgroup = optarg;
                        break;
                case 'H':
                        s->hide_cgroup2 = true;
                        break;
                case 'i':
                        s->id = optarg;
                        break;
                case 'b':
                        s->bundle = optarg;
                        break;
                case 's':
                        s->state_dir = optarg;
                        break;
                case 'r':
                        s->runtime = optarg;
                        break;
                case 'R':
                        s->root = optarg;
                        break;
                case 'l':
                        s->log_path = optarg;
                        break;
                case 'm':
                        if (ck_parse_uint(optarg, UINT64_MAX, &s->log_max) < 0 || s->log_max < 4096)
                                return -EINVAL;
                        break;
                case 'n':
                        if (ck_parse_uint(optarg, 100, &v) < 0 || v < 1)
                                return -EINVAL;
                        s->log_files = (unsigned)v;
                        break;
                case 'p':
                        if (strcmp(optarg, "always") != 0 && strcmp(optarg, "no") != 0)
                                return -EINVAL;
                        s->restart_always = strcmp(optarg, "always") == 0;
                        break;
                case 'k':
                        s->stop_signal = parse_signal(optarg);
                        if (s->stop_signal < 0)
                                return -EINVAL;
                        break;
                case 'f':
                        if (ck_parse_uint(optarg, INT32_MAX, &v) < 0)
                                return -EINVAL;
                        *ready_fd = (int)v;
                        fcntl(*ready_fd, F_SETFD, FD_CLOEXEC);
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (!s->id || !s->bundle || !s->state_dir || !s->runtime || !s->root || !s->log_path ||
            optind != argc)
                return -EINVAL;
        return 0;
}

/* Everything before the container starts: signals, subreaper, the state file, the stdio pipes,
 * the signal and timer fds, the log and the control socket. */
static int shim_setup(struct shim *s, struct ck_error **reterr)
{
        sigset_t mask;
        int r, p[2];

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        /* Orphaned container processes come to us, not to PID 1, so they are reaped here. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
                r = -errno;
                ck_error_errno(reterr, r, "PR_SET_CHILD_SUBREAPER");
                return r;
        }
        s->state_dfd = open(s->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->state_dfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", s->state_dir);
        s->st.shim_pid = getpid();
        s->st.st.status = RUNTIME_CREATED;
        s->st.st.exit_code = -1;
        state_write(s);
        if (pipe2(p, O_CLOEXEC) < 0)
                return ck_error_errno(reterr, -errno, "pipe");
        s->out_r = p[0];
        s->out_w = p[1];
        if (pipe2(p, O_CLOEXEC) < 0)
                return ck_error_errno(reterr, -errno, "pipe");
        s->err_r = p[0];
        s->err_w = p[1];
        fcntl(s->out_r, F_SETFL, O_NONBLOCK);
        fcntl(s->err_r, F_SETFL, O_NONBLOCK);
        s->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        s->backoff_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        s->kill_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (s->sig_fd < 0 || s->backoff_fd < 0 || s->kill_fd < 0)
                return ck_error_errno(reterr, -errno, "signalfd/timerfd");
        r = log_open(s);
        if (r < 0) {
                ck_error_errno(reterr, r, "cannot open log %s", s->log_path);
                return r;
        }
        s->listen_fd = listen_socket(s);
        if (s->listen_fd < 0)
                return ck_error_errno(reterr, s->listen_fd, "control socket");
        return 0;
}

/* Starts the container; on failure the half-created one and the control socket are removed. */
static int shim_start(struct shim *s, struct ck_error **reterr)
{
        int r = container_start(s, reterr);

        if (r < 0) {
                char *del[] = {"delete", "--force", (char *)s->id};
                (void)runc(s, del, ELEMENTSOF(del), NULL);
                (void)unlinkat(s->state_dfd, SHIM_SOCK_NAME, 0);
        }
        return r;
}

/* Serves the container until a client tells us to go: returns the exit status. */
static int shim_run(struct shim *s)
{
        for (;;) {
                struct pollfd pfd[6] = {
                        {.fd = s->sig_fd, .events = POLLIN},     {.fd = s->listen_fd, .events = POLLIN},
                        {.fd = s->out_r, .events = POLLIN},      {.fd = s->err_r, .events = POLLIN},
                        {.fd = s->backoff_fd, .events = POLLIN}, {.fd = s->kill_fd, .events = POLLIN},
                };
                if (poll(pfd, ELEMENTSOF(pfd), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error("poll: %m");
                        return 1;
                }
                /* Output first, so that lines written just before an exit precede the exit. */
                if (pfd[2].revents)
                        pipe_drain(s, s->out_r, &s->out_lb);
                if (pfd[3].revents)
                        pipe_drain(s, s->err_r, &s->err_lb);
                if (pfd[0].revents) {
                        struct signalfd_siginfo si;
                        while (read(s->sig_fd, &si, sizeof(si)) == sizeof(si))
                                ;
                        reap(s);
                }
                if (pfd[5].revents)
                        on_kill_timer(s);
                if (pfd[4].revents)
                        on_backoff(s);
                if (pfd[1].revents && on_client(s))
                        return 0;
        }
}

/* Setup or start failed: the state says exited and conkerd, waiting on the ready fd, gets the
 * error. Returns the exit status. */
static int shim_fail(struct shim *s, int *ready_fd, const struct ck_error *err, int r)
{
        const char *m = ck_error_message(err, r);
        char line[1100];

        log_error("%s", m);
        s->st.st.status = RUNTIME_EXITED;
        if (s->state_dfd >= 0)
                state_write(s);
        snprintf(line, sizeof(line), "error: %.1024s\n", m);
        ready(ready_fd, line);
        return 1;
}

int main(int argc, char **argv)
{
        struct shim s = {.log_max = 20u << 20,
                         .log_files = 5,
                         .stop_signal = SIGTERM,
                         .state_dfd = -1,
                         .out_r = -1,
                         .out_w = -1,
                         .err_r = -1,
                         .err_w = -1,
                         .listen_fd = -1,
                         .sig_fd = -1,
                         .backoff_fd = -1,
                         .kill_fd = -1,
                         .pidfd = -1,
                         .runtime_fd = -1,
                         .log_fd = -1,
                         .backoff_ms = BACKOFF_START_MS,
                         .out_lb = {.stream = "stdout"},
                         .err_lb = {.stream = "stderr"}};
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ uint8_t *assignment = NULL;
        char *assigned_argv[SHIM_ASSIGN_ARGS_MAX + 2];
        const char *runtime_copy = NULL;
        struct stat copied = {0};
        int ready_fd = -1, r;

        ck_log_set_ident("conker-shim");
        if (argc >= 2 && strcmp(argv[1], "--spare") == 0) {
                /* --spare [--runtime-copy PATH]: PATH is crun's, copied and sealed ahead. */
                runtime_copy = argc == 4 && strcmp(argv[2], "--runtime-copy") == 0 ? argv[3] : NULL;
                if (argc != 2 && !runtime_copy) {
                        usage();
                        return 2;
                }
                if (runtime_copy && (s.runtime_fd = runtime_copy_sealed(runtime_copy, &copied)) < 0)
                        s.runtime_fd = -1; /* crun copies itself, as without a spare */
                r = spare_wait(&assignment, assigned_argv, &argc);
                if (r <= 0) {
                        if (r < 0)
                                log_error("spare: bad assignment: %s", strerror(-r));
                        return r < 0 ? 2 : 0;
                }
                argv = assigned_argv;
        }
        /* conkerd.service is Type=notify: the service manager's socket is in our environment.
         * runc must not see it: `runc run --detach` would hand it to the container and wait for
         * the container's READY=1 (forever, for an app that never sends one), and the container
         * could talk to the service manager. */
        unsetenv("NOTIFY_SOCKET");
        if (shim_parse_args(&s, argc, argv, &ready_fd) < 0) {
                usage();
                return 2;
        }
        /* The copy is of the runtime this container is to run, as it is on disk now, or it is not
         * used: crun then copies itself from the file, as without a spare. */
        if (s.runtime_fd >= 0 && strcmp(s.runtime, runtime_copy) != 0)
                s.runtime_fd = safe_close(s.runtime_fd);
        if (s.runtime_fd >= 0 && !runtime_copy_current(runtime_copy, &copied)) {
                log_info("%s changed since this spare copied it: running the file, not the copy",
                         runtime_copy);
                s.runtime_fd = safe_close(s.runtime_fd);
        }
        r = shim_setup(&s, &err);
        if (r >= 0)
                r = shim_start(&s, &err);
        if (r < 0)
                return shim_fail(&s, &ready_fd, err, r);
        ready(&ready_fd, "ok\n");
        return shim_run(&s);
}
