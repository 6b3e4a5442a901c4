/* Conker's RTMR3 runtime event log: one JSON object per line,
 * {"name":"image-digest","payload":"sha256:…","digest":"<96 hex>"}, and the canonical digest
 * each event extends RTMR3 with. Format and rationale: docs/rtmr3-event-log.md.
 *
 * The digest is SHA-384("conker/rtmr3/v1" NUL name NUL payload). Names are restricted to
 * [a-z0-9.-] and neither field may contain NUL, so the encoding is injective; the version
 * prefix keeps these events apart from anything else that may extend RTMR3. The recorded
 * digest is redundant on purpose: a parser recomputes it and rejects a line where it differs,
 * so a log cannot say one thing to a human and replay to another. */
#include <errno.h>
#include <string.h>

#include "eventlog.h"
#include "json.h"
#include "parse.h"
#include "ssl.h"

#define RT_DOMAIN "conker/rtmr3/v1"

bool attest_rt_event_name_valid(const char *name)
{
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > ATTEST_RT_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = name[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
                        return false;
        }
        return true;
}

bool attest_rt_event_payload_valid(const char *payload, size_t len)
{
        if (!payload || len > ATTEST_RT_PAYLOAD_MAX)
                return false;
        /* No control characters (so no NUL and no newline); UTF-8 validity is jansson's job. */
        for (size_t i = 0; i < len; i++)
                if ((uint8_t)payload[i] < 0x20 || payload[i] == 0x7f)
                        return false;
        return true;
}

int attest_rt_event_digest(const char *name, const char *payload, uint8_t ret[48])
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        size_t plen = payload ? strlen(payload) : 0;

        if (!attest_rt_event_name_valid(name) || !attest_rt_event_payload_valid(payload, plen))
                return -EINVAL;
        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(ctx, EVP_sha384(), NULL) != 1 ||
            EVP_DigestUpdate(ctx, RT_DOMAIN, sizeof(RT_DOMAIN)) != 1 || /* includes the NUL */
            EVP_DigestUpdate(ctx, name, strlen(name) + 1) != 1 ||
            EVP_DigestUpdate(ctx, payload, plen) != 1 || EVP_DigestFinal_ex(ctx, ret, NULL) != 1)
                return -EIO;
        return 0;
}

static int rt_event_from_json(json_t *o, size_t line, struct attest_rt_event *ret, struct ck_error **reterr)
{
        json_t *jn = json_object_get(o, "name"), *jp = json_object_get(o, "payload"),
               *jd = json_object_get(o, "digest");
        uint8_t digest[48], want[48];
        int r;

        if (!json_is_object(o) || json_object_size(o) != 3 || !json_is_string(jn) || !json_is_string(jp) ||
            !json_is_string(jd))
                return ck_error_set(
                        reterr, -EBADMSG,
                        "RTMR3 log line %zu: expected exactly {\"name\",\"payload\",\"digest\"} strings",
                        line);
        if (json_string_length(jn) != strlen(json_string_value(jn)) ||
            !attest_rt_event_name_valid(json_string_value(jn)))
                return ck_error_set(reterr, -EBADMSG, "RTMR3 log line %zu: invalid event name", line);
        if (json_string_length(jp) != strlen(json_string_value(jp)) ||
            !attest_rt_event_payload_valid(json_string_value(jp), json_string_length(jp)))
                return ck_error_set(reterr, -EBADMSG, "RTMR3 log line %zu: invalid payload", line);
        if (ck_hex_decode(json_string_value(jd), json_string_length(jd), digest, sizeof(digest)) < 0)
                return ck_error_set(reterr, -EBADMSG, "RTMR3 log line %zu: digest is not 96 hex digits",
                                    line);
        r = attest_rt_event_digest(json_string_value(jn), json_string_value(jp), want);
        if (r < 0)
                return ck_error_set(reterr, r, "RTMR3 log line %zu: cannot compute the digest", line);
        if (memcmp(want, digest, sizeof(want)) != 0)
                return ck_error_set(reterr, -EBADMSG,
                                    "RTMR3 log line %zu: recorded digest does not match the event", line);
        ret->name = strdup(json_string_value(jn));
        ret->payload = strdup(json_string_value(jp));
        if (!ret->name || !ret->payload) {
                free(ret->name);
                free(ret->payload);
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        memcpy(ret->digest, digest, sizeof(digest));
        return 0;
}

int attest_rt_log_parse(const uint8_t *buf, size_t len, struct attest_rt_log *ret, struct ck_error **reterr)
{
        _cleanup_(attest_rt_log_clear) struct attest_rt_log log = {0};
        size_t off = 0, line = 0;
        int r;

        if (len > ATTEST_RT_LOG_MAX)
                return ck_error_set(reterr, -EFBIG, "RTMR3 log of %zu bytes exceeds %u", len,
                                    ATTEST_RT_LOG_MAX);
        if (len > 0 && !buf)
                return ck_error_set(reterr, -EINVAL, "RTMR3 log: no buffer");
        while (off < len) {
                const uint8_t *nl = memchr(buf + off, '\n', len - off);
                _cleanup_json_ json_t *o = NULL;
                struct attest_rt_event *ev;
                size_t n;

                line++;
                /* Every event ends with a newline: an unterminated line is a torn append. */
                if (!nl)
                        return ck_error_set(reterr, -EBADMSG, "RTMR3 log line %zu: no terminating newline",
                                            line);
                n = (size_t)(nl - (buf + off));
                if (log.n >= ATTEST_RT_LOG_MAX_EVENTS)
                        return ck_error_set(reterr, -E2BIG, "RTMR3 log: more than %u events",
                                            ATTEST_RT_LOG_MAX_EVENTS);
                r = ck_json_loadb(buf + off, n, ATTEST_RT_LINE_MAX, &o, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, -EBADMSG, "RTMR3 log line %zu", line);
                if (log.n % 16 == 0) {
                        ev = reallocarray(log.events, log.n + 16, sizeof(*ev));
                        if (!ev)
                                return ck_error_set(reterr, -ENOMEM, "out of memory");
                        log.events = ev;
                }
                r = rt_event_from_json(o, line, &log.events[log.n], reterr);
                if (r < 0)
                        return r;
                log.n++;
                off += n + 1;
        }
        *ret = log;
        log = (struct attest_rt_log){0};
        return 0;
}

int attest_rt_log_replay(const struct attest_rt_log *log, uint8_t ret_rtmr3[48])
{
        uint8_t rtmr[48] = {0}, buf[96];

        for (size_t i = 0; log && i < log->n; i++) {
                memcpy(buf, rtmr, 48);
                memcpy(buf + 48, log->events[i].digest, 48);
                if (ck_sha384(buf, sizeof(buf), rtmr) < 0)
                        return -EIO;
        }
        memcpy(ret_rtmr3, rtmr, 48);
        return 0;
}

void attest_rt_log_clear(struct attest_rt_log *log)
{
        if (!log)
                return;
        for (size_t i = 0; i < log->n; i++) {
                free(log->events[i].name);
                free(log->events[i].payload);
        }
        free(log->events);
        *log = (struct attest_rt_log){0};
}

int attest_rt_event_format(const char *name, const char *payload, const uint8_t digest[48], char **ret)
{
        _cleanup_json_ json_t *o = NULL;
        char hex[97];
        char *s, *line;
        size_t n;

        ck_hex_encode(digest, 48, hex);
        o = json_pack("{s:s, s:s, s:s}", "name", name, "payload", payload, "digest", hex);
        if (!o)
                return -EINVAL;
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        if (!s)
                return -ENOMEM;
        n = strlen(s);
        line = realloc(s, n + 2);
        if (!line) {
                free(s);
                return -ENOMEM;
        }
        line[n] = '\n';
        line[n + 1] = 0;
        *ret = line;
        return 0;
}
