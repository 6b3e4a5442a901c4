/* GET /container/{id}/logs[?tail=N][&follow=1]: the container's output as plain text (the
 * "log" field of each JSON line the shim writes), chunked. With follow the stream stays open
 * and new lines are sent every 250 ms until the task is deleted or the client goes away;
 * rotation is followed by noticing that the path names a new file. Reads are bounded per tick so
 * the loop stays responsive. */
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
#define LOG_INITIAL_MAX   (64u << 20)
#define LOG_BACKLOG_MAX   (4u << 20) /* unsent follow output before we stop reading */
#define LOG_TAIL_MAX      1000000

struct api_follow {
        struct api_follow *next;
        struct api_server *s;
        struct evhttp_request *req;
        char *id;
        char *path;
        int fd;
        ino_t ino;
        struct ck_buf partial; /* an incomplete last line */
        struct event *timer;
};

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

/* Renders the complete lines of data[0..len), starting with the last `tail` of them
 * (tail < 0: all). Returns the number of bytes consumed (up to the last newline). */
static size_t render_lines(const char *data, size_t len, long tail, struct evbuffer *out)
{
        const char *end, *start = data, *p;
        size_t consumed;

        p = memrchr(data, '\n', len);
        if (!p)
                return 0;
        consumed = (size_t)(p - data) + 1;
        end = data + consumed;
        if (tail >= 0) {
                /* Walk back over `tail` lines: each ends with the newline just before start. */
                start = end;
                for (long n = 0; n < tail && start > data; n++) {
                        const char *b = memrchr(data, '\n', (size_t)(start - 1 - data));
                        start = b ? b + 1 : data;
                }
        }
        for (p = start; p < end;) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                if (nl > p)
                        render_line(p, (size_t)(nl - p), out);
                p = nl + 1;
        }
        return consumed;
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
                size_t used;
                if (n <= 0)
                        break;
                total += (size_t)n;
                if (ck_buf_append(&f->partial, chunk, (size_t)n) < 0) {
                        /* A line longer than the cap: drop what we have. */
                        ck_buf_reset(&f->partial);
                        continue;
                }
                used = render_lines((const char *)f->partial.data, f->partial.len, -1, out);
                if (used) {
                        memmove(f->partial.data, f->partial.data + used, f->partial.len - used);
                        f->partial.len -= used;
                        f->partial.data[f->partial.len] = 0;
                }
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
                        ck_buf_reset(&f->partial);
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

/* The newest part of the log, at most LOG_INITIAL_MAX bytes (a log may be up to log-max-bytes,
 * 1 GiB): read from size - LOG_INITIAL_MAX to what was the end at fstat() time, the cut-off first
 * line dropped. *ret_end is the file offset just past the data, where a follower continues. */
static int log_read_newest(int fd, off_t size, uint8_t **ret, size_t *ret_len, off_t *ret_end)
{
        off_t from = size > (off_t)LOG_INITIAL_MAX ? size - (off_t)LOG_INITIAL_MAX : 0;
        size_t want = (size_t)(size - from), len = 0, skip = 0;
        uint8_t *buf = malloc(want ? want : 1);

        if (!buf)
                return -ENOMEM;
        while (len < want) {
                ssize_t n = pread(fd, buf + len, want - len, from + (off_t)len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        free(buf);
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (from > 0) {
                const uint8_t *nl = memchr(buf, '\n', len);
                skip = nl ? (size_t)(nl - buf) + 1 : len;
                memmove(buf, buf + skip, len - skip);
        }
        *ret = buf;
        *ret_len = len - skip;
        *ret_end = from + (off_t)len;
        return 0;
}

void api_route_logs(struct api_server *s, struct evhttp_request *req, const char *ref)
{
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *id = NULL, *path = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_close_ int fd = -1;
        struct api_follow *f;
        struct evbuffer *out;
        size_t len = 0, used = 0;
        struct stat st = {0};
        off_t end = 0;
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
        if (path) {
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd >= 0) {
                        if (fstat(fd, &st) < 0 || log_read_newest(fd, st.st_size, &data, &len, &end) < 0) {
                                api_reply(req, 500, "cannot read the container log", NULL);
                                return;
                        }
                }
        }

        out = evbuffer_new();
        if (!out) {
                api_reply(req, 500, "out of memory", NULL);
                return;
        }
        if (data)
                used = render_lines((const char *)data, len, tail, out);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; charset=utf-8");
        if (!follow) {
                evhttp_send_reply(req, 200, "OK", out);
                evbuffer_free(out);
                return;
        }

        f = calloc(1, sizeof(*f));
        if (!f) {
                evbuffer_free(out);
                api_reply(req, 500, "out of memory", NULL);
                return;
        }
        f->s = s;
        f->req = req;
        f->id = TAKE_PTR(id);
        f->path = TAKE_PTR(path);
        f->fd = TAKE_FD(fd);
        f->ino = st.st_ino;
        ck_buf_init(&f->partial, LOG_LINE_MAX);
        if (data && used < len)
                (void)ck_buf_append(&f->partial, data + used, len - used);
        if (f->fd >= 0)
                (void)lseek(f->fd, end, SEEK_SET);
        f->timer = event_new(s->base, -1, EV_PERSIST, on_follow_tick, f);
        f->next = s->follows;
        s->follows = f;
        evhttp_send_reply_start(req, 200, "OK");
        if (evbuffer_get_length(out))
                evhttp_send_reply_chunk(req, out);
        evbuffer_free(out);
        if (!f->timer) {
                follow_end(f);
                return;
        }
        api_conn_set_close_hook(s, req, on_follow_close, f);
        event_add(f->timer, &(struct timeval){0, 250000});
}
