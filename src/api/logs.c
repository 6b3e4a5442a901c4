/* GET /container/{id}/logs[?tail=N][&follow=1]: the container's output as plain text (the
 * "log" field of each JSON line the shim writes), chunked. The log as it is when the request
 * arrives (from the start of its last `tail` lines, found by scanning backwards) is streamed in
 * LOG_CHUNK pieces, the next one read only when the connection has written the previous one out,
 * so a request holds a bounded amount of memory however large the log (up to log-max-bytes,
 * 1 GiB) and however slow the client. With follow the stream then stays open and new lines are
 * sent every 250 ms until the task is deleted or the client goes away; rotation is followed by
 * noticing that the path names a new file. Reads are bounded per tick so the loop stays
 * responsive. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api-internal.h"
#include "buf.h"
#include "fs.h"
#include "json.h"
#include "log.h"
#include "parse.h"
#include "task.h"

#define LOG_LINE_MAX      (1u << 20)
#define LOG_READ_PER_TICK (1u << 20)
#define LOG_CHUNK         (256u << 10) /* one piece of the existing log read and sent */
#define LOG_BACKLOG_MAX   (4u << 20)   /* unsent follow output before we stop reading */
#define LOG_TAIL_MAX      1000000

struct api_follow {
        struct api_follow *next;
        struct api_server *s;
        struct evhttp_request *req;
        char *id;
        char *path;
        int fd;
        ino_t ino;
        struct ck_buf partial;  /* an incomplete last line */
        bool skipping;          /* inside a line longer than LOG_LINE_MAX */
        bool follow;            /* keep polling once the existing log is sent */
        bool caught_up;         /* the existing log is sent */
        uint8_t *chunk;         /* LOG_CHUNK bytes while the existing log is sent */
        off_t pos, catchup_end; /* the existing log still to send */
        struct event *pump;     /* resumes sending the existing log */
        struct event *timer;
};

static void on_catchup_sent(struct evhttp_connection *evcon, void *arg);

/* Appends the text of one JSON log line (or the raw line if it is not one) to out. */
static void render_line(const char *line, size_t len, struct evbuffer *out)
{
        _cleanup_json_ json_t *j = NULL;
        json_t *log;

        if (ck_json_loadb(line, len, LOG_LINE_MAX, &j, NULL) == 0 && (log = json_object_get(j, "log")) &&
            json_is_string(log)) {
                evbuffer_add(out, json_string_value(log), json_string_length(log));
                return;
        }
        evbuffer_add(out, line, len);
        evbuffer_add(out, "\n", 1);
}

/* Feeds log bytes to the line splitter: each complete line is rendered to out, an incomplete
 * last line is kept in f->partial until its newline arrives. A line longer than LOG_LINE_MAX is
 * dropped whole (the rest of it is skipped up to its newline) so it cannot grow the buffer. */
static void log_feed(struct api_follow *f, const uint8_t *data, size_t len, struct evbuffer *out)
{
        while (len > 0) {
                const uint8_t *nl = memchr(data, '\n', len);
                size_t n = nl ? (size_t)(nl - data) + 1 : len;

                if (f->skipping) {
                        f->skipping = !nl;
                } else if (ck_buf_append(&f->partial, data, n) < 0) {
                        ck_buf_reset(&f->partial);
                        f->skipping = !nl;
                } else if (nl) {
                        if (f->partial.len > 1)
                                render_line((const char *)f->partial.data, f->partial.len - 1, out);
                        ck_buf_reset(&f->partial);
                }
                data += n;
                len -= n;
        }
}

/* Forgets a partial line, e.g. when the follower switches to a rotated file. */
static void log_feed_reset(struct api_follow *f)
{
        ck_buf_reset(&f->partial);
        f->skipping = false;
}

static void follow_free(struct api_follow *f)
{
        struct api_follow **pp;

        for (pp = &f->s->follows; *pp; pp = &(*pp)->next)
                if (*pp == f) {
                        *pp = f->next;
                        break;
                }
        if (f->timer)
                event_free(f->timer);
        if (f->pump)
                event_free(f->pump);
        free(f->chunk);
        if (f->fd >= 0)
                close(f->fd);
        ck_buf_free(&f->partial);
        free(f->id);
        free(f->path);
        free(f);
}

static void follow_end(struct api_follow *f)
{
        if (f->req) {
                api_conn_set_close_hook(f->s, f->req, NULL, NULL);
                evhttp_send_reply_end(f->req);
        }
        follow_free(f);
}

static void on_follow_close(void *arg)
{
        struct api_follow *f = arg;

        /* When the client went away (EOF, timeout) evhttp has already detached the unfinished
         * request from the connection and leaves it to us: ending the reply frees it. Still
         * attached, it is freed with the connection. */
        if (f->req && !evhttp_request_get_connection(f->req))
                evhttp_send_reply_end(f->req);
        f->req = NULL;
        follow_free(f);
}

/* Reads what was appended since the last tick (bounded) and sends the complete lines. */
static void follow_read(struct api_follow *f, struct evbuffer *out)
{
        uint8_t chunk[65536];
        size_t total = 0;

        while (total < LOG_READ_PER_TICK) {
                ssize_t n = read(f->fd, chunk, sizeof(chunk));
                if (n <= 0)
                        break;
                total += (size_t)n;
                log_feed(f, chunk, (size_t)n, out);
        }
}

/* A client that does not read must not make us hold its log in memory: while the connection
 * has LOG_BACKLOG_MAX bytes unsent, the rest stays in the file (our offset keeps its place). */
static bool follow_backlogged(struct api_follow *f)
{
        struct evhttp_connection *evcon = evhttp_request_get_connection(f->req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

        return bev && evbuffer_get_length(bufferevent_get_output(bev)) >= LOG_BACKLOG_MAX;
}

static void on_follow_tick(evutil_socket_t fd, short what, void *arg)
{
        struct api_follow *f = arg;
        struct evbuffer *out = evbuffer_new();
        struct stat st;

        if (!out)
                return;
        if (f->fd < 0 && f->path) {
                f->fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (f->fd >= 0 && fstat(f->fd, &st) == 0)
                        f->ino = st.st_ino;
        }
        if (f->fd >= 0 && !follow_backlogged(f)) {
                follow_read(f, out);
                /* Rotated: the path now names another file; finish the old one and switch. */
                if (stat(f->path, &st) == 0 && st.st_ino != f->ino) {
                        follow_read(f, out);
                        close(f->fd);
                        f->fd = -1;
                        log_feed_reset(f);
                }
        }
        if (evbuffer_get_length(out))
                evhttp_send_reply_chunk(f->req, out);
        evbuffer_free(out);
        if (!task_manager_exists(f->s->m, f->id))
                follow_end(f);
}

void api_follows_shutdown(struct api_server *s)
{
        while (s->follows)
                follow_end(s->follows);
}

static int query_params(struct evhttp_request *req, bool *follow, long *tail)
{
        const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
        struct evkeyvalq params;
        const char *v;
        uint64_t n;
        int r = 0;

        *follow = false;
        *tail = -1;
        if (!q)
                return 0;
        TAILQ_INIT(&params);
        if (evhttp_parse_query_str(q, &params) < 0)
                return -EINVAL;
        v = evhttp_find_header(&params, "follow");
        if (v)
                *follow = strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
        v = evhttp_find_header(&params, "tail");
        if (v && strcmp(v, "all") != 0) {
                if (ck_parse_uint(v, LOG_TAIL_MAX, &n) < 0)
                        r = -EINVAL;
                else
                        *tail = (long)n;
        }
        evhttp_clear_headers(&params);
        return r;
}

/* The offset where the last `tail` complete lines of the first `size` bytes of fd start (tail < 0:
 * the whole file), found by reading backwards in LOG_CHUNK blocks: just past the (tail+1)-th
 * newline from the end. An incomplete last line is not counted (it is not sent either). */
static int log_tail_start(int fd, off_t size, long tail, uint8_t *block, off_t *ret)
{
        off_t end = size;
        long seen = 0;

        if (tail < 0) {
                *ret = 0;
                return 0;
        }
        while (end > 0) {
                size_t want = end > (off_t)LOG_CHUNK ? LOG_CHUNK : (size_t)end;
                off_t from = end - (off_t)want;
                ssize_t n = pread(fd, block, want, from);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if ((size_t)n < want)
                        return -EIO; /* truncated under us */
                for (size_t i = want; i > 0; i--)
                        if (block[i - 1] == '\n' && ++seen > tail) {
                                *ret = from + (off_t)i;
                                return 0;
                        }
                end = from;
        }
        *ret = 0;
        return 0;
}

size_t api_logs_peak_queued;

/* Queues out on the connection; the previous piece has been written out by now, so what is queued
 * is about one piece. Records the largest amount for the tests. */
static void catchup_send(struct api_follow *f, struct evbuffer *out)
{
        struct evhttp_connection *evcon = evhttp_request_get_connection(f->req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        size_t queued;

        evhttp_send_reply_chunk_with_cb(f->req, out, on_catchup_sent, f);
        queued = bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
        if (queued > api_logs_peak_queued)
                api_logs_peak_queued = queued;
}

/* The existing log is done: a plain request ends, a follower starts polling from there. */
static void catchup_done(struct api_follow *f)
{
        f->caught_up = true;
        free(f->chunk);
        f->chunk = NULL;
        if (!f->follow) {
                follow_end(f);
                return;
        }
        if (f->fd >= 0)
                (void)lseek(f->fd, f->pos, SEEK_SET);
        event_add(f->timer, &(struct timeval){0, 250000});
}

/* Sends the next piece of the existing log [pos, catchup_end). It runs again once the connection
 * has written that piece out (evhttp_send_reply_chunk_with_cb), so a request holds one piece of
 * LOG_CHUNK bytes, its rendering and at most one partial line, however large the log and however
 * slow the client. Pieces that render to nothing (inside an overlong line) are read on, at most
 * LOG_READ_PER_TICK per callback before yielding to the loop. */
static void catchup_pump(struct api_follow *f)
{
        struct evbuffer *out = evbuffer_new();
        size_t total = 0;

        if (!out) {
                follow_end(f);
                return;
        }
        while (evbuffer_get_length(out) == 0 && f->pos < f->catchup_end) {
                off_t left = f->catchup_end - f->pos;
                size_t want = left > (off_t)LOG_CHUNK ? LOG_CHUNK : (size_t)left;
                ssize_t n;

                if (total >= LOG_READ_PER_TICK) {
                        evbuffer_free(out);
                        event_active(f->pump, EV_TIMEOUT, 1);
                        return;
                }
                n = pread(f->fd, f->chunk, want, f->pos);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        /* Truncated or unreadable: send what there was. */
                        f->catchup_end = f->pos;
                        break;
                }
                f->pos += n;
                total += (size_t)n;
                log_feed(f, f->chunk, (size_t)n, out);
        }
        if (evbuffer_get_length(out)) {
                catchup_send(f, out);
                evbuffer_free(out);
                return;
        }
        evbuffer_free(out);
        catchup_done(f);
}

/* evhttp keeps this as the connection's write callback until the next chunk replaces it, so it
 * may run again after the catch-up ended: then there is nothing to do. */
static void on_catchup_sent(struct evhttp_connection *evcon, void *arg)
{
        struct api_follow *f = arg;

        if (!f->caught_up)
                catchup_pump(f);
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
        catchup_pump(arg);
}

void api_route_logs(struct api_server *s, struct evhttp_request *req, const char *ref)
{
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *id = NULL, *path = NULL;
        _cleanup_free_ uint8_t *chunk = NULL;
        _cleanup_close_ int fd = -1;
        struct api_follow *f;
        struct stat st = {0};
        off_t start = 0;
        bool follow;
        long tail;
        int r;

        if (query_params(req, &follow, &tail) < 0) {
                api_reply(req, 400, "tail must be a number or \"all\"", NULL);
                return;
        }
        r = task_manager_log_path(s->m, ref, &id, &path, &e);
        if (r < 0) {
                api_reply_error(req, r, e, "logs");
                return;
        }
        if (path)
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) {
                chunk = malloc(LOG_CHUNK);
                if (!chunk) {
                        api_reply(req, 500, "out of memory", NULL);
                        return;
                }
                if (fstat(fd, &st) < 0 || log_tail_start(fd, st.st_size, tail, chunk, &start) < 0) {
                        api_reply(req, 500, "cannot read the container log", NULL);
                        return;
                }
        }

        f = calloc(1, sizeof(*f));
        if (!f) {
                api_reply(req, 500, "out of memory", NULL);
                return;
        }
        f->s = s;
        f->req = req;
        f->follow = follow;
        f->id = TAKE_PTR(id);
        f->path = TAKE_PTR(path);
        f->fd = TAKE_FD(fd);
        f->ino = st.st_ino;
        f->chunk = TAKE_PTR(chunk);
        f->pos = start;
        f->catchup_end = st.st_size;
        ck_buf_init(&f->partial, LOG_LINE_MAX);
        f->pump = event_new(s->base, -1, 0, on_pump, f);
        if (follow)
                f->timer = event_new(s->base, -1, EV_PERSIST, on_follow_tick, f);
        f->next = s->follows;
        s->follows = f;
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; charset=utf-8");
        evhttp_send_reply_start(req, 200, "OK");
        if (!f->pump || (follow && !f->timer)) {
                follow_end(f);
                return;
        }
        api_conn_set_close_hook(s, req, on_follow_close, f);
        catchup_pump(f);
}
