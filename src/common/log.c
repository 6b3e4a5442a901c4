/* Line-oriented logging with a level filter; thread-safe through a single write per line. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "parse.h"

static enum ck_log_level log_level = CK_LOG_INFO;
static const char *log_ident = "conker";
static int log_json;

static const char *const level_names[_CK_LOG_LEVEL_MAX] = {
        [CK_LOG_ERROR] = "error",
        [CK_LOG_WARN] = "warn",
        [CK_LOG_INFO] = "info",
        [CK_LOG_DEBUG] = "debug",
};

const char *ck_log_level_to_string(enum ck_log_level l)
{
        return l < _CK_LOG_LEVEL_MAX ? level_names[l] : "unknown";
}

int ck_log_level_from_string(const char *s)
{
        for (size_t i = 0; i < _CK_LOG_LEVEL_MAX; i++)
                if (s && strcmp(s, level_names[i]) == 0)
                        return (int)i;
        return -EINVAL;
}

void ck_log_set_level(enum ck_log_level l)
{
        log_level = l;
}

enum ck_log_level ck_log_get_level(void)
{
        return log_level;
}

void ck_log_set_ident(const char *ident)
{
        log_ident = ident;
}

void ck_log_set_json(int on)
{
        log_json = !!on;
}

/* The length of the character at p that a log line carries as it is: well-formed UTF-8 and not a
 * control character (a newline would start a forged line, an escape sequence would rewrite the
 * terminal). 0 when the byte at p must be escaped. */
static size_t plain_len(const unsigned char *p, size_t left)
{
        size_t n = ck_utf8_char_len(p, left);

        return n == 0 || p[0] < 0x20 || p[0] == 0x7f ? 0 : n;
}

/* msg as one line of text, every byte plain_len() refuses as \xNN (a JSON line could not carry
 * bytes that are not UTF-8, and would be lost). NULL when msg needs nothing; without memory for
 * the longer copy, such bytes are replaced by '?' in msg itself, and NULL too. */
static char *escaped(char *msg)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *)msg;
        size_t len = strlen(msg), i = 0, o = 0, n = 0;
        char *out;

        while (i < len && (n = plain_len(p + i, len - i)) > 0)
                i += n;
        if (i == len)
                return NULL;
        out = len < SIZE_MAX / 4 ? malloc(len * 4 + 1) : NULL;
        if (!out) {
                for (; i < len; i += n ? n : 1)
                        if ((n = plain_len(p + i, len - i)) == 0)
                                msg[i] = '?';
                return NULL;
        }
        for (i = 0; i < len; i += n) {
                n = plain_len(p + i, len - i);
                if (n > 0) {
                        memcpy(out + o, p + i, n);
                        o += n;
                        continue;
                }
                out[o++] = '\\';
                out[o++] = 'x';
                out[o++] = hex[p[i] >> 4];
                out[o++] = hex[p[i] & 15];
                n = 1;
        }
        out[o] = 0;
        return out;
}

void ck_logv(enum ck_log_level l, const char *fmt, va_list ap)
{
        _cleanup_free_ char *msg = NULL, *line = NULL, *clean = NULL;
        char ts[32];
        struct timespec now;
        struct tm tm;
        int saved = errno, n;

        if (l > log_level)
                return;
        if (vasprintf(&msg, fmt, ap) < 0)
                goto out;
        clean = escaped(msg);
        if (clean) {
                free(msg);
                msg = TAKE_PTR(clean);
        }

        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        n = (int)strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ts + n, sizeof(ts) - (size_t)n, ".%03ldZ", now.tv_nsec / 1000000);

        if (log_json) {
                json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level", ck_log_level_to_string(l),
                                      "ident", log_ident, "msg", msg);
                char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
                json_decref(o);
                if (!s)
                        goto out;
                n = asprintf(&line, "%s\n", s);
                free(s);
        } else {
                n = asprintf(&line, "%s %s[%d] %s: %s\n", ts, log_ident, (int)getpid(),
                             ck_log_level_to_string(l), msg);
        }
        if (n > 0)
                (void)!write(STDERR_FILENO, line, (size_t)n);
out:
        errno = saved;
}

void ck_log(enum ck_log_level l, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        ck_logv(l, fmt, ap);
        va_end(ap);
}
