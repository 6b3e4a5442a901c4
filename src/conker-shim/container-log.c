/* conker-shim: the container's log. The container's stdout and stderr, read from the pipes the
 * shim holds, are cut into lines (a line longer than LINE_MAX_BYTES is split) and written to the
 * log file as JSON lines {"ts","stream","log"}, rotated by size: path → path.1 → … */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fs.h"
#include "json.h"
#include "log.h"
#include "shim.h"

int log_open(struct shim *s)
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

void log_line(struct shim *s, const char *stream, const uint8_t *p, size_t n)
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

void linebuf_flush(struct shim *s, struct linebuf *lb)
{
        if (lb->len) {
                log_line(s, lb->stream, lb->data, lb->len);
                lb->len = 0;
        }
}

/* Logs what is available on one pipe now: it returns at EOF and when nothing is left to read
 * (the pipe is non-blocking); the caller learns of the end from the exit, not from here. */
void pipe_drain(struct shim *s, int fd, struct linebuf *lb)
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
