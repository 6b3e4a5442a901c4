/* fork/exec of helper programs with captured output; see exec.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "exec.h"
#include "monotonic.h"

int ck_exec_find(const char *name, char **ret)
{
        const char *path = getenv("PATH");
        const char *p;

        if (!name || !*name)
                return -EINVAL;
        if (strchr(name, '/')) {
                if (access(name, X_OK) < 0)
                        return -errno;
                *ret = strdup(name);
                return *ret ? 0 : -ENOMEM;
        }
        if (!path || !*path)
                path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        for (p = path; *p;) {
                size_t n = strcspn(p, ":");
                _cleanup_free_ char *cand = NULL;
                struct stat st;

                if (n > 0 && asprintf(&cand, "%.*s/%s", (int)n, p, name) < 0)
                        return -ENOMEM;
                if (cand && stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) {
                        *ret = TAKE_PTR(cand);
                        return 0;
                }
                p += n;
                if (*p == ':')
                        p++;
        }
        return -ENOENT;
}

/* Keeps the first line(s) of a program's stderr short enough for an error message. */
static void trim_for_message(char *s, size_t max)
{
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
                s[--n] = 0;
        if (n > max)
                s[max] = 0;
        for (char *c = s; *c; c++)
                if (*c == '\n' || (unsigned char)*c < 0x20)
                        *c = ' ';
}

static void close_pipes(int in_p[2], int out_p[2], int err_p[2])
{
        for (int i = 0; i < 2; i++) {
                safe_close(in_p[i]);
                safe_close(out_p[i]);
                safe_close(err_p[i]);
        }
}

/* The forked child: only async-signal-safe calls until exec. */
_Noreturn static void exec_child(const char *prog, char *const argv[], const struct ck_exec_opts *o,
                                 int in_fd, int out_fd, int err_fd)
{
        sigset_t all;

        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (in_fd < 0)
                in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (in_fd < 0 || dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
                _exit(126);
        if (o->netns_fd >= 0 && setns(o->netns_fd, CLONE_NEWNET) < 0)
                _exit(125);
        execv(prog, argv);
        _exit(127);
}

/* Feeds stdin and drains stdout/stderr (each capped, excess dropped so the child never blocks)
 * until all three are closed or the deadline passes; takes ownership of the three fds. */
static int exec_pump(const struct ck_exec_opts *o, int in_w, int out_r, int err_r, struct ck_buf *out,
                     struct ck_buf *err)
{
        int64_t deadline = ck_now_ms() + (int64_t)(o->timeout_s ? o->timeout_s : 60) * 1000;
        size_t in_off = 0;
        int r = 0;

        if (in_w >= 0)
                fcntl(in_w, F_SETFL, O_NONBLOCK);
        while (out_r >= 0 || err_r >= 0 || in_w >= 0) {
                struct pollfd pfd[3] = {{.fd = out_r, .events = POLLIN},
                                        {.fd = err_r, .events = POLLIN},
                                        {.fd = in_w, .events = POLLOUT}};
                int64_t left = deadline - ck_now_ms();
                uint8_t chunk[4096];

                if (left <= 0) {
                        r = -ETIMEDOUT;
                        break;
                }
                if (poll(pfd, 3, (int)left) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                for (int i = 0; i < 2; i++) {
                        int *fd = i == 0 ? &out_r : &err_r;
                        struct ck_buf *b = i == 0 ? out : err;
                        ssize_t n;

                        if (*fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        n = read(*fd, chunk, sizeof(chunk));
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0) {
                                *fd = safe_close(*fd);
                                continue;
                        }
                        if (b->len + (size_t)n <= b->max)
                                (void)ck_buf_append(b, chunk, (size_t)n);
                }
                if (in_w >= 0 && (pfd[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
                        ssize_t n =
                                write(in_w, (const uint8_t *)o->stdin_data + in_off, o->stdin_len - in_off);
                        if (n < 0 && errno != EAGAIN && errno != EINTR)
                                in_w = safe_close(in_w);
                        else if (n > 0)
                                in_off += (size_t)n;
                        if (in_off >= o->stdin_len)
                                in_w = safe_close(in_w);
                }
        }
        safe_close(in_w);
        safe_close(out_r);
        safe_close(err_r);
        return r;
}

int ck_exec(char *const argv[], const struct ck_exec_opts *opts, char **ret_out, char **ret_err,
            struct ck_error **reterr)
{
        struct ck_exec_opts o = opts ? *opts : CK_EXEC_OPTS_DEFAULT;
        _cleanup_free_ char *prog = NULL;
        _cleanup_buf_ struct ck_buf out, err;
        int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
        int status = 0, r;
        pid_t pid;

        ck_buf_init(&out, o.out_max ? o.out_max : 65536);
        ck_buf_init(&err, o.out_max ? o.out_max : 65536);
        r = ck_exec_find(argv[0], &prog);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot find %s", argv[0]);

        if ((o.stdin_data && pipe2(in_p, O_CLOEXEC) < 0) || pipe2(out_p, O_CLOEXEC) < 0 ||
            pipe2(err_p, O_CLOEXEC) < 0) {
                r = -errno;
                close_pipes(in_p, out_p, err_p);
                return ck_error_errno(reterr, r, "pipe");
        }

        pid = fork();
        if (pid < 0) {
                r = -errno;
                close_pipes(in_p, out_p, err_p);
                return ck_error_errno(reterr, r, "fork");
        }
        if (pid == 0)
                exec_child(prog, argv, &o, in_p[0], out_p[1], err_p[1]);

        safe_close(in_p[0]);
        safe_close(out_p[1]);
        safe_close(err_p[1]);
        r = exec_pump(&o, in_p[1], out_p[0], err_p[0], &out, &err);
        if (r < 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                if (r == -ETIMEDOUT)
                        return ck_error_set(reterr, r, "%s: timed out", argv[0]);
                return ck_error_errno(reterr, r, "poll");
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return ck_error_errno(reterr, -errno, "waitpid");

        if (ret_out) {
                *ret_out = (char *)ck_buf_take(&out, NULL);
                if (!*ret_out)
                        *ret_out = strdup("");
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                _cleanup_free_ char *msg = (char *)ck_buf_take(&err, NULL);
                if (msg)
                        trim_for_message(msg, 512);
                if (ret_err)
                        *ret_err = msg ? strdup(msg) : strdup("");
                if (WIFEXITED(status))
                        return ck_error_set(reterr, -EIO, "%s%s%s: exited %d%s%s", argv[0],
                                            argv[1] ? " " : "", argv[1] ? argv[1] : "", WEXITSTATUS(status),
                                            msg && *msg ? ": " : "", msg ? msg : "");
                return ck_error_set(reterr, -EIO, "%s: killed by signal %d", argv[0],
                                    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        }
        if (ret_err) {
                *ret_err = (char *)ck_buf_take(&err, NULL);
                if (!*ret_err)
                        *ret_err = strdup("");
        }
        return 0;
}
