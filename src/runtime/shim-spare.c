/* The spare conker-shim (shim-spare.h): a thread starts `conker-shim --spare` with one end of a
 * SOCK_SEQPACKET socketpair on its fd 3, the same way shim_spawn() starts a shim (new session,
 * double fork, so that it is nobody's child and outlives conkerd once it has a container). An
 * unassigned spare only waits on that socket: conkerd's end closes with conkerd (exit, crash,
 * SIGKILL) and the spare exits on EOF, so no spare outlives the conkerd that made it. A spare that
 * died (killed, failed exec) is seen at assignment (hang-up) and the start falls back to its own
 * exec; the next one is started when asked for, SPARE_REFILL_DELAY_MS after the start that asked. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "monotonic.h"
#include "shim-exec.h"
#include "shim-proto.h"
#include "shim-spare.h"

#define SPARE_RETRY_S 2 /* after a spawn that failed or a spare found dead */
/* A refill waits this long, so that its fork and exec do not compete for the CPU with the end of
 * the start that asked for it (the ready answer → the task's Running commit → the client). */
#define SPARE_REFILL_DELAY_MS 50

struct shim_spare {
        char *shim_path, *runtime_copy;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int fd;      /* our end of the ready spare's socket, -1 when none */
        pid_t pgid;  /* the ready spare's process group (shim-exec.h) */
        bool wanted; /* start one when fd < 0 */
        bool failed; /* the last one did not come up: wait SPARE_RETRY_S first */
        bool delay;  /* asked for by a start: wait SPARE_REFILL_DELAY_MS first */
        bool stop;
};

/* Starts one spare; returns our end of its socket, and its process group in *ret_pgid. */
static int spare_spawn(const char *shim_path, const char *runtime_copy, pid_t *ret_pgid)
{
        char *argv[] = {(char *)shim_path, "--spare", runtime_copy ? "--runtime-copy" : NULL,
                        (char *)runtime_copy, NULL};
        int sp[2];
        pid_t pgid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
                return -errno;
        pgid = shim_exec_detached(argv, -1, sp[1]); /* stdout/stderr: shim.log at assignment */
        close(sp[1]);
        if (pgid < 0) {
                close(sp[0]);
                return (int)pgid;
        }
        *ret_pgid = pgid;
        return sp[0];
}

static void *spare_thread(void *arg)
{
        struct shim_spare *sp = arg;

        pthread_mutex_lock(&sp->lock);
        while (!sp->stop) {
                pid_t pgid = 0;
                int fd;

                if (sp->fd >= 0 || !sp->wanted) {
                        pthread_cond_wait(&sp->cond, &sp->lock);
                        continue;
                }
                if (sp->failed || sp->delay) {
                        struct timespec until = ck_deadline_ns(
                                CLOCK_MONOTONIC, sp->failed ? SPARE_RETRY_S * 1000000000LL
                                                            : SPARE_REFILL_DELAY_MS * 1000000LL);
                        sp->failed = sp->delay = false;
                        /* Until then, or until shim_spare_free() (stop is checked above). */
                        while (!sp->stop && pthread_cond_timedwait(&sp->cond, &sp->lock, &until) == 0)
                                ;
                        continue;
                }
                pthread_mutex_unlock(&sp->lock);
                fd = spare_spawn(sp->shim_path, sp->runtime_copy, &pgid);
                pthread_mutex_lock(&sp->lock);
                if (fd < 0) {
                        log_warn("cannot start a spare conker-shim: %s", strerror(-fd));
                        sp->failed = true;
                        continue;
                }
                sp->wanted = false;
                if (sp->stop) {
                        close(fd);
                } else {
                        sp->fd = fd;
                        sp->pgid = pgid;
                }
        }
        pthread_mutex_unlock(&sp->lock);
        return NULL;
}

int shim_spare_new(const char *shim_path, const char *runtime_copy, struct shim_spare **ret)
{
        struct shim_spare *sp = calloc(1, sizeof(*sp));
        int r;

        if (!sp || !(sp->shim_path = strdup(shim_path)) ||
            (runtime_copy && !(sp->runtime_copy = strdup(runtime_copy)))) {
                if (sp)
                        free(sp->shim_path);
                free(sp);
                return -ENOMEM;
        }
        sp->fd = -1;
        sp->wanted = true;
        pthread_mutex_init(&sp->lock, NULL);
        ck_cond_init_monotonic(&sp->cond);
        r = pthread_create(&sp->thread, NULL, spare_thread, sp);
        if (r != 0) {
                pthread_cond_destroy(&sp->cond);
                pthread_mutex_destroy(&sp->lock);
                free(sp->shim_path);
                free(sp->runtime_copy);
                free(sp);
                return -r;
        }
        *ret = sp;
        return 0;
}

void shim_spare_free(struct shim_spare *sp)
{
        if (!sp)
                return;
        pthread_mutex_lock(&sp->lock);
        sp->stop = true;
        pthread_cond_signal(&sp->cond);
        pthread_mutex_unlock(&sp->lock);
        pthread_join(sp->thread, NULL);
        safe_close(sp->fd);
        pthread_cond_destroy(&sp->cond);
        pthread_mutex_destroy(&sp->lock);
        free(sp->shim_path);
        free(sp->runtime_copy);
        free(sp);
}

/* One message, the log fd attached; the spare's end is SOCK_SEQPACKET, so it gets all or none. */
static int spare_send(int fd, const uint8_t *msg, size_t len, int logfd)
{
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } ctl;
        struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
        struct cmsghdr *c;
        ssize_t n;

        memset(&ctl, 0, sizeof(ctl));
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &logfd, sizeof(int));
        do
                n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EIO;
}

int shim_spare_assign(struct shim_spare *sp, char *const *argv, size_t n, int logfd, pid_t *ret_pgid)
{
        _cleanup_free_ uint8_t *msg = NULL;
        _cleanup_close_ int fd = -1;
        struct pollfd pfd;
        size_t len;
        int r;

        r = shim_assign_format(argv, n, &msg, &len);
        if (r < 0)
                return r;
        pthread_mutex_lock(&sp->lock);
        fd = sp->fd;
        *ret_pgid = sp->pgid;
        sp->fd = -1;
        pthread_mutex_unlock(&sp->lock);
        if (fd < 0)
                return -EAGAIN;
        /* A spare that died (killed, or its exec failed) has hung up: start the shim the old way. */
        pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, 0) < 0 || (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) ||
            spare_send(fd, msg, len, logfd) < 0) {
                pthread_mutex_lock(&sp->lock);
                sp->failed = true;
                pthread_mutex_unlock(&sp->lock);
                return -EAGAIN;
        }
        return TAKE_FD(fd);
}

void shim_spare_refill(struct shim_spare *sp)
{
        if (!sp)
                return;
        pthread_mutex_lock(&sp->lock);
        if (sp->fd < 0 && !sp->wanted) {
                sp->wanted = true;
                sp->delay = true;
                pthread_cond_signal(&sp->cond);
        }
        pthread_mutex_unlock(&sp->lock);
}
