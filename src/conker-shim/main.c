/* conker-shim: one per container. Started by conkerd (setsid + double fork) so that it outlives
 * it, or started ahead as conkerd's spare and handed its command line later (spare_wait()). It
 * is the subreaper of the container, runs `runc run --detach` with stdio pipes it holds (never
 * a terminal), writes the container's output as JSON lines with rotation, records
 * state.json/exit.json atomically, applies restart=always with exponential backoff, and answers
 * state/stop/delete on its control socket (protocol in src/runtime/shim-proto.h).
 *
 * This file: the command line, the setup before the container starts, the main loop and
 * main(). The rest is in container-log.c, state-files.c, runtime-run.c, control.c and
 * spare.c, sharing shim.h. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "cleanup.h"
#include "fs.h"
#include "log.h"
#include "parse.h"
#include "shim.h"

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
        /* The names made from these (runc.log, the rotated log.N) must fit their buffers. */
        if (strlen(s->state_dir) > SHIM_PATH_MAX || strlen(s->log_path) > SHIM_PATH_MAX)
                return -ENAMETOOLONG;
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
