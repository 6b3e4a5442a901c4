/* The broker's connection reader: epoll loops that accept, handshake and read one request per
 * connection under deadlines, then hand complete requests to the worker pool (reader.h).
 *
 * Each I/O thread has its own epoll instance with the shared listening socket (EPOLLEXCLUSIVE,
 * so that one thread wakes per new connection) and the connections it accepted. A connection is
 * in one of two phases, each with its own deadline: the handshake (handshake_timeout_ms from
 * accept) and the request (request_timeout_ms from the end of the handshake). Every connection in
 * a phase got the same timeout, so appending to a per-phase list keeps it sorted by deadline: the
 * next deadline is at the head of one of two lists, and expiry is O(1) per connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "monotonic.h"
#include "reader.h"
#include "ssl.h"

enum { PHASE_HANDSHAKE, PHASE_REQUEST, _PHASE_MAX };

struct phase_list {
        struct broker_conn *head, *tail;
};

struct broker_reader_loop {
        struct broker_reader *r;
        pthread_t thread;
        bool started;
        int epfd;
        struct phase_list lists[_PHASE_MAX];
        size_t n_conns;
        /* Closed over admit() since the last log line (one line per second at most). */
        uint64_t refused;
        time_t refused_logged_at;
};

struct broker_reader {
        struct broker_reader_config cfg;
        int stop_fd; /* eventfd, never read: once written, every loop sees it readable */
        struct broker_reader_loop *loops;
        unsigned n_loops;
        /* Loops that have stopped accepting (after stop_fd), under lock. */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned n_not_accepting;
        bool stopped_accepting, drained;
};

/* epoll_data.ptr values for the two shared descriptors; connections use their own address. */
static char tag_listen, tag_stop;

void broker_conn_free(struct broker_conn *c)
{
        if (!c)
                return;
        SSL_free(c->ssl);
        safe_close(c->fd);
        ck_buf_free(&c->head);
        ck_buf_free(&c->body);
        free(c);
}

static void list_append(struct phase_list *l, struct broker_conn *c)
{
        c->next = NULL;
        c->prev = l->tail;
        if (l->tail)
                l->tail->next = c;
        else
                l->head = c;
        l->tail = c;
}

static void list_remove(struct phase_list *l, struct broker_conn *c)
{
        if (c->prev)
                c->prev->next = c->next;
        else
                l->head = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                l->tail = c->prev;
        c->prev = c->next = NULL;
}

static void peer_name(int fd, char *buf, size_t len)
{
        struct sockaddr_storage sa = {0};
        socklen_t sl = sizeof(sa);
        char host[INET6_ADDRSTRLEN] = "?";

        if (getpeername(fd, (struct sockaddr *)&sa, &sl) < 0) {
                snprintf(buf, len, "unknown");
                return;
        }
        if (sa.ss_family == AF_INET6) {
                const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&sa;
                inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
                snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
        } else {
                const struct sockaddr_in *s4 = (const struct sockaddr_in *)&sa;
                inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
                snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
        }
}

/* The reader gives up on c: closed without a response. */
static void conn_drop(struct broker_reader_loop *l, struct broker_conn *c, const char *why)
{
        log_debug("%s: %s", c->peer, why);
        list_remove(&l->lists[c->phase], c);
        l->n_conns--;
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        broker_conn_free(c);
        ERR_clear_error();
        l->r->cfg.released(l->r->cfg.userdata);
}

/* A complete request (or one that cannot be read as one): the worker takes over. */
static void conn_dispatch(struct broker_reader_loop *l, struct broker_conn *c)
{
        list_remove(&l->lists[c->phase], c);
        l->n_conns--;
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        ERR_clear_error();
        l->r->cfg.dispatch(l->r->cfg.userdata, c);
}

static void conn_wait(struct broker_reader_loop *l, struct broker_conn *c, int ssl_err)
{
        struct epoll_event ev = {.events = ssl_err == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN,
                                 .data.ptr = c};

        epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* After bytes were added to the head: once it is complete, parse it and move what came after
 * it to the body. 1: the request is complete (or c->error is set), 0: not yet. */
static int head_complete(struct broker_reader *r, struct broker_conn *c)
{
        const uint8_t *end = c->head.len >= 4 ? memmem(c->head.data, c->head.len, "\r\n\r\n", 4) : NULL;
        size_t head_len, extra;
        int rc;

        if (!end) {
                if (c->head.len >= r->cfg.max_head) {
                        c->error = -E2BIG; /* max bytes and still no end of the head */
                        return 1;
                }
                return 0;
        }
        head_len = (size_t)(end - c->head.data) + 4;
        rc = broker_request_parse(c->head.data, head_len, r->cfg.max_head, r->cfg.max_body, &c->request);
        if (rc < 0) {
                c->error = rc;
                return 1;
        }
        c->head_done = true;
        /* What came with the head is the start of the body. */
        extra = c->head.len - head_len;
        if (extra > c->request.content_length) {
                c->error = -EBADMSG;
                return 1;
        }
        if (ck_buf_append(&c->body, c->head.data + head_len, extra) < 0) {
                c->error = -EFBIG;
                return 1;
        }
        return c->body.len == c->request.content_length;
}

/* Drives c as far as it goes without blocking. */
static void conn_advance(struct broker_reader_loop *l, struct broker_conn *c)
{
        struct broker_reader *r = l->r;

        if (c->phase == PHASE_HANDSHAKE) {
                int rc = SSL_accept(c->ssl), e;
                unsigned long ee;
                const char *what;
                char why[160];

                if (rc != 1) {
                        e = SSL_get_error(c->ssl, rc);
                        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                                conn_wait(l, c, e);
                                return;
                        }
                        ee = ERR_peek_error();
                        what = ee ? ERR_reason_error_string(ee) : NULL;
                        snprintf(why, sizeof(why), "TLS handshake failed: %s",
                                 what ? what : "connection closed");
                        conn_drop(l, c, why);
                        return;
                }
                list_remove(&l->lists[PHASE_HANDSHAKE], c);
                c->phase = PHASE_REQUEST;
                c->deadline = ck_now_ms() + r->cfg.request_timeout_ms;
                list_append(&l->lists[PHASE_REQUEST], c);
        }

        for (;;) {
                uint8_t chunk[4096];
                size_t n = 0, want;
                int rc, e;

                /* Never more than the head may still take, or than the body still lacks: what
                 * follows the request is never read. */
                want = c->head_done ? c->request.content_length - c->body.len
                                    : r->cfg.max_head - c->head.len;
                if (want > sizeof(chunk))
                        want = sizeof(chunk);
                rc = SSL_read_ex(c->ssl, chunk, want, &n);
                if (rc == 1) {
                        if (ck_buf_append(c->head_done ? &c->body : &c->head, chunk, n) < 0) {
                                c->error = c->head_done ? -EFBIG : -E2BIG;
                                conn_dispatch(l, c);
                                return;
                        }
                        if (c->head_done ? c->body.len == c->request.content_length : head_complete(r, c)) {
                                conn_dispatch(l, c);
                                return;
                        }
                        continue;
                }
                e = SSL_get_error(c->ssl, rc);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                        conn_wait(l, c, e);
                        return;
                }
                conn_drop(l, c,
                          e == SSL_ERROR_ZERO_RETURN ? "closed before a complete request"
                                                     : "reading the request failed");
                return;
        }
}

/* At most this many accepts per wakeup, so that a burst of connections does not starve the
 * connections this loop already has (the listening socket is level-triggered: the rest come
 * with the next wakeup). */
#define ACCEPT_BURST 64

static void accept_pending(struct broker_reader_loop *l)
{
        struct broker_reader *r = l->r;

        for (unsigned burst = 0; burst < ACCEPT_BURST; burst++) {
                int fd = accept4(r->cfg.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), one = 1;
                struct broker_conn *c;
                struct epoll_event ev = {.events = EPOLLIN};

                if (fd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warn("accept: %s", strerror(errno));
                        return;
                }
                if (!r->cfg.admit(r->cfg.userdata)) {
                        /* At most one line per second, so that a flood cannot flood the log too. */
                        time_t now = time(NULL);
                        l->refused++;
                        if (now != l->refused_logged_at) {
                                log_warn("too many clients (--max-clients): %llu connection(s) closed "
                                         "unserved",
                                         (unsigned long long)l->refused);
                                l->refused_logged_at = now;
                                l->refused = 0;
                        }
                        close(fd);
                        continue;
                }
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                c = calloc(1, sizeof(*c));
                if (c) {
                        c->fd = fd;
                        ck_buf_init(&c->head, r->cfg.max_head);
                        ck_buf_init(&c->body, r->cfg.max_body);
                        c->ssl = SSL_new(r->cfg.ctx);
                }
                if (!c || !c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
                        log_error("accept: out of memory");
                        if (c)
                                broker_conn_free(c);
                        else
                                close(fd);
                        ERR_clear_error();
                        r->cfg.released(r->cfg.userdata);
                        continue;
                }
                peer_name(fd, c->peer, sizeof(c->peer));
                c->phase = PHASE_HANDSHAKE;
                c->deadline = ck_now_ms() + r->cfg.handshake_timeout_ms;
                ev.data.ptr = c;
                if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        log_error("epoll: %s", strerror(errno));
                        broker_conn_free(c);
                        r->cfg.released(r->cfg.userdata);
                        continue;
                }
                list_append(&l->lists[PHASE_HANDSHAKE], c);
                l->n_conns++;
        }
}

/* Milliseconds until the earliest deadline (-1: none), dropping what is past it. */
static int expire(struct broker_reader_loop *l)
{
        static const char *const why[_PHASE_MAX] = {"TLS handshake timed out", "request timed out"};
        int64_t now = ck_now_ms(), next = -1;

        for (int p = 0; p < _PHASE_MAX; p++) {
                struct broker_conn *c;

                while ((c = l->lists[p].head) && c->deadline <= now)
                        conn_drop(l, c, why[p]);
                if (c && (next < 0 || c->deadline < next))
                        next = c->deadline;
        }
        if (next < 0)
                return -1;
        return next - now > 60000 ? 60000 : (int)(next - now) + 1;
}

/* Once per loop: no more accepting, and broker_reader_stop_accepting() is told so. */
static void loop_stop_accepting(struct broker_reader_loop *l, bool *stopping)
{
        if (*stopping)
                return;
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->r->cfg.listen_fd, NULL);
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->r->stop_fd, NULL);
        *stopping = true;
        pthread_mutex_lock(&l->r->lock);
        l->r->n_not_accepting++;
        pthread_cond_broadcast(&l->r->cond);
        pthread_mutex_unlock(&l->r->lock);
}

static void *loop_main(void *arg)
{
        struct broker_reader_loop *l = arg;
        bool stopping = false;

        for (;;) {
                struct epoll_event evs[64];
                int timeout = expire(l), n;

                if (stopping && l->n_conns == 0)
                        break;
                n = epoll_wait(l->epfd, evs, (int)ELEMENTSOF(evs), timeout);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error("epoll_wait: %s", strerror(errno));
                        break;
                }
                for (int i = 0; i < n; i++) {
                        void *p = evs[i].data.ptr;

                        if (p == &tag_stop) {
                                /* Stop accepting; finish what was accepted. */
                                loop_stop_accepting(l, &stopping);
                        } else if (p == &tag_listen) {
                                if (!stopping)
                                        accept_pending(l);
                        } else {
                                conn_advance(l, p);
                        }
                }
        }
        loop_stop_accepting(l, &stopping);
        /* Only after a failure of epoll itself can connections remain. */
        for (int p = 0; p < _PHASE_MAX; p++)
                while (l->lists[p].head)
                        conn_drop(l, l->lists[p].head, "stopping");
        return NULL;
}

int broker_reader_start(const struct broker_reader_config *cfg, struct broker_reader **ret,
                        struct ck_error **reterr)
{
        _cleanup_(broker_reader_freep) struct broker_reader *r = NULL;
        unsigned n = cfg->threads ? cfg->threads : 1;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->cfg = *cfg;
        pthread_mutex_init(&r->lock, NULL);
        pthread_cond_init(&r->cond, NULL);
        r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (r->stop_fd < 0)
                return ck_error_errno(reterr, -errno, "eventfd");
        r->loops = calloc(n, sizeof(*r->loops));
        if (!r->loops)
                return -ENOMEM;
        r->n_loops = n;
        for (unsigned i = 0; i < n; i++)
                r->loops[i] = (struct broker_reader_loop){.r = r, .epfd = -1};
        for (unsigned i = 0; i < n; i++) {
                struct broker_reader_loop *l = &r->loops[i];
                struct epoll_event ev_listen = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &tag_listen};
                struct epoll_event ev_stop = {.events = EPOLLIN, .data.ptr = &tag_stop};
                int rc;

                l->epfd = epoll_create1(EPOLL_CLOEXEC);
                if (l->epfd < 0)
                        return ck_error_errno(reterr, -errno, "epoll_create1");
                if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, cfg->listen_fd, &ev_listen) < 0 ||
                    epoll_ctl(l->epfd, EPOLL_CTL_ADD, r->stop_fd, &ev_stop) < 0)
                        return ck_error_errno(reterr, -errno, "epoll_ctl");
                rc = pthread_create(&l->thread, NULL, loop_main, l);
                if (rc != 0)
                        return ck_error_errno(reterr, -rc, "starting I/O thread %u", i);
                l->started = true;
        }
        *ret = TAKE_PTR(r);
        return 0;
}

void broker_reader_stop_accepting(struct broker_reader *r)
{
        unsigned started = 0;
        uint64_t one = 1;
        ssize_t w;

        if (r->stopped_accepting)
                return;
        w = write(r->stop_fd, &one, sizeof(one));
        (void)w;
        for (unsigned i = 0; i < r->n_loops; i++)
                started += r->loops[i].started;
        pthread_mutex_lock(&r->lock);
        while (r->n_not_accepting < started)
                pthread_cond_wait(&r->cond, &r->lock);
        pthread_mutex_unlock(&r->lock);
        r->stopped_accepting = true;
}

void broker_reader_drain(struct broker_reader *r)
{
        if (r->drained)
                return;
        broker_reader_stop_accepting(r);
        for (unsigned i = 0; i < r->n_loops; i++)
                if (r->loops[i].started) {
                        pthread_join(r->loops[i].thread, NULL);
                        r->loops[i].started = false;
                }
        r->drained = true;
}

void broker_reader_free(struct broker_reader *r)
{
        if (!r)
                return;
        if (r->stop_fd >= 0)
                broker_reader_drain(r);
        for (unsigned i = 0; r->loops && i < r->n_loops; i++)
                safe_close(r->loops[i].epfd);
        free(r->loops);
        safe_close(r->stop_fd);
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r);
}
