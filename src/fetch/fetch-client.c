/* Running conker-fetch for one pull (fetch-client.h): a SOCK_SEQPACKET socketpair whose far end
 * is the helper's fd 3, the request and the password sent at once, then progress relayed until
 * the result. The cancel flag is polled every POLL_MS; after a cancel the helper has
 * FETCH_CANCEL_GRACE_MS to report before it is killed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fetch-client.h"
#include "log.h"
#include "monotonic.h"
#include "secret.h"

#define POLL_MS 50

extern char **environ;

/* conkerd's environment plus GNUTLS_NO_IMPLICIT_INIT=1: libcurl's dependency chain brings
 * GnuTLS (through librtmp), whose constructor would otherwise load its configuration at every
 * start of the helper (a few ms per pull); the helper never uses GnuTLS (libcurl is built on
 * OpenSSL). The strings are borrowed; free() the array. */
static char **helper_env(void)
{
        static char gnutls[] = "GNUTLS_NO_IMPLICIT_INIT=1";
        size_t n = 0, k = 0;
        char **env;

        while (environ && environ[n])
                n++;
        env = calloc(n + 2, sizeof(char *));
        if (!env)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (strncmp(environ[i], "GNUTLS_NO_IMPLICIT_INIT=", 24) != 0)
                        env[k++] = environ[i];
        env[k] = gnutls;
        return env;
}

/* Starts helper with sock as its fd 3 and default signal handling. */
static int spawn_helper(const char *helper, int sock, pid_t *ret_pid)
{
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, dfl;
        char *argv[] = {(char *)helper, NULL};
        char **env = helper_env();
        int r;

        sigemptyset(&none);
        sigemptyset(&dfl);
        sigaddset(&dfl, SIGPIPE);
        sigaddset(&dfl, SIGTERM);
        sigaddset(&dfl, SIGINT);
        sigaddset(&dfl, SIGHUP);
        sigaddset(&dfl, SIGCHLD);
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&attr);
        posix_spawn_file_actions_adddup2(&fa, sock, 3);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &dfl);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        r = env ? posix_spawn(ret_pid, helper, &fa, &attr, argv, env) : ENOMEM;
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        free(env);
        return -r;
}

/* Waits for the helper (killing it first when kill is set) and describes how it ended. */
static void reap(pid_t pid, bool kill_it, char *desc, size_t n)
{
        int status = 0;

        if (kill_it)
                kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (WIFSIGNALED(status))
                snprintf(desc, n, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
                snprintf(desc, n, "exited with status %d", WEXITSTATUS(status));
}

/* ---- the pool of idle helpers ---- */

struct idle_helper {
        pid_t pid;
        int fd;
        int64_t since;
};

struct fetch_pool {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t reaper;
        bool stopping;
        unsigned idle_ms;
        struct idle_helper idle[FETCH_POOL_MAX];
        size_t n_idle;
};

/* Closes an idle helper's socket (it exits at the end of the stream) and waits for it. */
static void end_helper(pid_t pid, int fd, bool kill_it)
{
        char how[128];

        safe_close(fd);
        reap(pid, kill_it, how, sizeof(how));
}

static void *pool_reaper(void *arg)
{
        struct fetch_pool *p = arg;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                struct idle_helper gone[FETCH_POOL_MAX];
                size_t n_gone = 0;
                int64_t now = ck_now_ms(), next = -1;

                for (size_t i = 0; i < p->n_idle;) {
                        int64_t until = p->idle[i].since + p->idle_ms;

                        if (p->stopping || now >= until) {
                                gone[n_gone++] = p->idle[i];
                                p->idle[i] = p->idle[--p->n_idle];
                                continue;
                        }
                        if (next < 0 || until < next)
                                next = until;
                        i++;
                }
                if (n_gone > 0) {
                        pthread_mutex_unlock(&p->lock);
                        for (size_t i = 0; i < n_gone; i++)
                                end_helper(gone[i].pid, gone[i].fd, false);
                        pthread_mutex_lock(&p->lock);
                        continue;
                }
                if (p->stopping)
                        break;
                if (next < 0) {
                        pthread_cond_wait(&p->cond, &p->lock);
                } else {
                        struct timespec ts = {.tv_sec = next / 1000, .tv_nsec = (next % 1000) * 1000000};
                        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
                }
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int fetch_pool_new(unsigned idle_ms, struct fetch_pool **ret)
{
        struct fetch_pool *p = calloc(1, sizeof(*p));

        if (!p)
                return -ENOMEM;
        p->idle_ms = idle_ms;
        pthread_mutex_init(&p->lock, NULL);
        ck_cond_init_monotonic(&p->cond);
        if (pthread_create(&p->reaper, NULL, pool_reaper, p) != 0) {
                pthread_cond_destroy(&p->cond);
                pthread_mutex_destroy(&p->lock);
                free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

void fetch_pool_free(struct fetch_pool *p)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->reaper, NULL);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
}

/* The most recently idle helper, if any. */
static bool pool_take(struct fetch_pool *p, pid_t *ret_pid, int *ret_fd)
{
        bool found = false;

        pthread_mutex_lock(&p->lock);
        if (p->n_idle > 0 && !p->stopping) {
                size_t i = p->n_idle - 1;

                *ret_pid = p->idle[i].pid;
                *ret_fd = p->idle[i].fd;
                p->n_idle--;
                found = true;
        }
        pthread_mutex_unlock(&p->lock);
        return found;
}

/* Keeps a helper that answered for the next pull, or ends it when the pool is full. */
static void pool_put(struct fetch_pool *p, pid_t pid, int fd)
{
        pthread_mutex_lock(&p->lock);
        if (!p->stopping && p->n_idle < FETCH_POOL_MAX) {
                p->idle[p->n_idle++] = (struct idle_helper){pid, fd, ck_now_ms()};
                pthread_cond_signal(&p->cond);
                pthread_mutex_unlock(&p->lock);
                return;
        }
        pthread_mutex_unlock(&p->lock);
        end_helper(pid, fd, false);
}

/* ---- one exchange ---- */

struct session {
        const struct fetch_pull_opts *o;
        int fd;
        bool cancel_sent;
        int64_t cancel_deadline;
        struct fetch_result res;
        bool have_result;
        const char *format; /* a probe's answer */
        bool probe;         /* the request was a probe: a format answer is expected */
        bool heard;         /* any message from the helper */
};

/* Handles one message; 1 once the result is in. */
static int on_message(struct session *s, char type, const uint8_t *p, size_t len, struct ck_error **reterr)
{
        struct fetch_progress pr;
        int q;

        s->heard = true;
        switch (type) {
        case FETCH_MSG_PROGRESS:
                q = fetch_progress_decode(p, len, &pr, reterr);
                if (q < 0)
                        return q;
                if (s->o->progress)
                        s->o->progress(s->o->progress_userdata, &pr);
                return 0;
        case FETCH_MSG_RESULT:
                q = fetch_result_decode(p, len, &s->res, reterr);
                if (q < 0)
                        return q;
                s->have_result = true;
                return 1;
        case FETCH_MSG_FORMAT:
                /* Only a probe's answer: to a pull it would end the exchange without a result
                 * and return a helper that does not follow the protocol to the pool. */
                if (!s->probe)
                        break;
                q = fetch_format_decode(p, len, &s->format, reterr);
                return q < 0 ? q : 1;
        default:
                break;
        }
        return ck_error_set(reterr, -EPROTO, "unexpected message type 0x%02x", (unsigned char)type);
}

/* Reads messages until the result or the end of the stream; forwards a cancel. 0 at the end of
 * the stream without a result, 1 with one, -ETIMEDOUT when the grace after a cancel ran out. */
static int relay(struct session *s, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *buf = malloc(FETCH_MSG_MAX);

        if (!buf)
                return -ENOMEM;
        for (;;) {
                struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
                size_t len = 0;
                char type = 0;
                int q;

                if (!s->cancel_sent && s->o->cancel && atomic_load(s->o->cancel)) {
                        (void)fetch_msg_send(s->fd, FETCH_MSG_CANCEL, NULL, 0);
                        s->cancel_sent = true;
                        s->cancel_deadline = ck_now_ms() + (s->o->cancel_grace_ms ? s->o->cancel_grace_ms
                                                                                  : FETCH_CANCEL_GRACE_MS);
                }
                if (s->cancel_sent && ck_now_ms() > s->cancel_deadline)
                        return -ETIMEDOUT;
                q = poll(&pfd, 1, POLL_MS);
                if (q < 0 && errno != EINTR)
                        return ck_error_errno(reterr, -errno, "poll");
                if (q <= 0)
                        continue;
                q = fetch_msg_recv(s->fd, buf, &type, &len);
                /* ECONNRESET: the helper exited without reading all we sent (reported once);
                 * what it wrote before is still queued. */
                if (q == -EINTR || q == -EAGAIN || q == -ECONNRESET)
                        continue;
                if (q == -EMSGSIZE)
                        return ck_error_set(reterr, -EPROTO, "oversized message");
                if (q < 0 || (q == 0 && type == 0))
                        return 0; /* gone */
                q = on_message(s, type, buf, len, reterr);
                if (q != 0)
                        return q;
        }
}

/* A new helper: its pid and our end of its socket. */
static int start_helper(const char *helper, pid_t *ret_pid, int *ret_fd, struct ck_error **reterr)
{
        int sv[2], q, child;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return ck_error_errno(reterr, -errno, "socketpair");
        /* Keep the child's end off fd 3, so that dup2 onto 3 clears its close-on-exec. */
        child = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
        close(sv[1]);
        if (child < 0) {
                close(sv[0]);
                return ck_error_errno(reterr, -errno, "fcntl");
        }
        q = spawn_helper(helper, child, ret_pid);
        close(child);
        if (q < 0) {
                close(sv[0]);
                return ck_error_errno(reterr, q, "cannot start the image pull helper %s", helper);
        }
        *ret_fd = sv[0];
        return 0;
}

/* Sends msg, and the password after a request. */
static int send_request(int fd, const struct fetch_pull_opts *o, const uint8_t *msg, size_t len)
{
        int q = fetch_msg_send(fd, (char)msg[0], msg + 1, len - 1);

        if (q == 0 && msg[0] == FETCH_MSG_REQUEST)
                q = fetch_msg_send(fd, FETCH_MSG_PASSWORD, o->password ? o->password->data : NULL,
                                   o->password ? o->password->len : 0);
        return q;
}

/* Takes an idle helper from the pool or starts one, sends msg (and the password after a
 * request), relays until the helper's answer (in s) or its end. A helper that answered goes back
 * to the pool (or is ended); any other is killed. */
static int run_helper(struct session *s, const uint8_t *msg, size_t len, struct ck_error **reterr)
{
        const struct fetch_pull_opts *o = s->o;
        _cleanup_error_ struct ck_error *perr = NULL;
        char how[128];
        pid_t pid = 0;
        int fd = -1, q;

        /* An idle helper may have gone meanwhile: its socket then refuses the request, or it
         * closes without a word; either way the request goes to a new helper. */
        while (o->pool && pool_take(o->pool, &pid, &fd)) {
                if (send_request(fd, o, msg, len) == 0) {
                        s->fd = fd;
                        q = relay(s, &perr);
                        if (q != 0 || s->heard || s->cancel_sent)
                                goto answered;
                }
                end_helper(pid, fd, true);
        }
        q = start_helper(o->helper, &pid, &fd, reterr);
        if (q < 0)
                return q;
        /* A helper that fails early closes its end: the sends then fail and relay() reports it. */
        (void)send_request(fd, o, msg, len);
        s->fd = fd;
        q = relay(s, &perr);
answered:
        if (q == 1 && o->pool) {
                pool_put(o->pool, pid, fd);
                return 0;
        }
        /* Closed first: a helper that answered waits for its next request until then. */
        safe_close(fd);
        reap(pid, q != 1, how, sizeof(how));
        if (q != 1 && s->cancel_sent)
                return ck_error_set(reterr, -ECANCELED, "cancelled");
        if (q == -ETIMEDOUT || q == 0)
                return ck_error_set(reterr, -EIO, "image pull helper %s died before reporting: %s",
                                    o->helper, how);
        if (q < 0)
                return ck_error_set(reterr, -EIO, "image pull helper %s: %s", o->helper,
                                    ck_error_message(perr, q));
        return 0;
}

int fetch_pull(const struct fetch_pull_opts *o, char **ret_name, uint64_t *ret_pulled,
               struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *req = NULL;
        struct session s = {.o = o};
        size_t req_len = 0;
        int q;

        q = fetch_request_encode(o->req, &req, &req_len);
        if (q < 0)
                return ck_error_errno(reterr, q, "image pull request");
        q = run_helper(&s, req, req_len, reterr);
        if (q < 0)
                return q;
        if (!s.have_result)
                return ck_error_set(reterr, -EIO, "image pull helper %s: no result", o->helper);
        if (ret_pulled)
                *ret_pulled = s.res.pulled_bytes;
        if (s.res.err < 0) {
                q = ck_error_set(reterr, s.res.err, "%s", s.res.message);
                fetch_result_clear(&s.res);
                return q;
        }
        *ret_name = TAKE_PTR(s.res.name);
        fetch_result_clear(&s.res);
        return 0;
}

int fetch_probe(const char *helper, const char *data_dir, const char **ret_format, struct ck_error **reterr)
{
        struct fetch_pull_opts o = {.helper = helper};
        _cleanup_free_ uint8_t *msg = NULL;
        struct session s = {.o = &o, .probe = true};
        size_t len = 0;
        int q;

        q = fetch_probe_encode(data_dir, &msg, &len);
        if (q < 0)
                return ck_error_errno(reterr, q, "probe request");
        q = run_helper(&s, msg, len, reterr);
        if (q < 0)
                return q;
        if (s.have_result) {
                q = ck_error_set(reterr, s.res.err < 0 ? s.res.err : -EPROTO, "%s",
                                 s.res.message ? s.res.message : "probe: unexpected result");
                fetch_result_clear(&s.res);
                return q;
        }
        *ret_format = s.format;
        return 0;
}
