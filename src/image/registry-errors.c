/* Error messages and retries of the registry client: the message for a non-2xx response (with
 * the registry's own error code and text, sanitised to printable ASCII and capped) or a
 * transport failure, never a credential; the backoff between retries (exponential, or the
 * server's Retry-After, capped) and sleeps that a cancel interrupts. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "parse.h"
#include "registry-internal.h"

#define BACKOFF_BASE_MS   250
#define BACKOFF_MAX_MS    8000
#define RETRY_AFTER_MAX_S 60
#define REGISTRY_MSG_MAX  200

/* -- messages ----------------------------------------------------------------------------- */

/* The first {"errors":[{"code","message"}]} entry of an error body, as printable ASCII. */
static void registry_error_text(const struct ck_buf *body, char *code, size_t code_size, char *msg,
                                size_t msg_size)
{
        _cleanup_json_ json_t *root = NULL;
        json_t *errors, *e;
        const char *s;

        code[0] = msg[0] = 0;
        if (body->len == 0 || ck_json_loadb(body->data, body->len, ERROR_BODY_MAX, &root, NULL) < 0)
                return;
        errors = json_object_get(root, "errors");
        e = json_array_get(errors, 0);
        s = json_string_value(json_object_get(e, "code"));
        if (s)
                snprintf(code, code_size, "%s", s);
        s = json_string_value(json_object_get(e, "message"));
        if (s)
                snprintf(msg, msg_size, "%s", s);
        for (char *p = code; *p; p++)
                if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                        *p = '?';
        for (char *p = msg; *p; p++)
                if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                        *p = '?';
}

static void req_what(const struct req *q, char *buf, size_t size)
{
        switch (q->kind) {
        case REQ_PING:
                snprintf(buf, size, "API check");
                break;
        case REQ_MANIFEST:
                snprintf(buf, size, "%s%s%s", q->repo, strchr(q->reference, ':') ? "@" : ":", q->reference);
                break;
        case REQ_BLOB:
                snprintf(buf, size, "%s@%s", q->repo, q->reference);
                break;
        case REQ_TOKEN:
                snprintf(buf, size, "token for %s", q->repo ? q->repo : "the registry");
                break;
        }
}

int registry_status_error(struct registry_client *c, const struct req *q, const struct xfer *x,
                          struct ck_error **reterr)
{
        char code[64], msg[REGISTRY_MSG_MAX], what[600];
        /* A token request names no repository. */
        const char *repo = q->repo ? q->repo : "the registry";

        registry_error_text(&x->errbody, code, sizeof(code), msg, sizeof(msg));
        req_what(q, what, sizeof(what));

        switch (x->status) {
        case 401:
                if (q->kind == REQ_TOKEN && c->username)
                        return ck_error_set(reterr, -EACCES,
                                            "registry %s rejected the credentials for user %s", c->domain,
                                            c->username);
                if (c->username)
                        return ck_error_set(
                                reterr, -EACCES,
                                "registry %s rejected the credentials for user %s (pull access to %s "
                                "denied%s%s)",
                                c->domain, c->username, repo, msg[0] ? ": " : "", msg);
                return ck_error_set(
                        reterr, -EACCES,
                        "registry %s requires authentication for %s (pull access denied%s%s); give a "
                        "user name and password",
                        c->domain, repo, msg[0] ? ": " : "", msg);
        case 403:
                return ck_error_set(reterr, -EACCES, "registry %s denied access to %s%s%s", c->domain, repo,
                                    msg[0] ? ": " : "", msg);
        case 404:
                if (q->kind == REQ_PING)
                        return ck_error_set(reterr, -EPROTO,
                                            "%s does not serve the registry API (/v2/ not found)",
                                            c->domain);
                if (strcmp(code, "NAME_UNKNOWN") == 0)
                        return ck_error_set(reterr, -ENOENT, "repository unknown: %s (registry %s)", repo,
                                            c->domain);
                if (q->kind == REQ_MANIFEST)
                        return ck_error_set(reterr, -ENOENT, "manifest unknown: %s (registry %s)", what,
                                            c->domain);
                if (q->kind == REQ_BLOB)
                        return ck_error_set(reterr, -ENOENT, "blob unknown: %s (registry %s)", what,
                                            c->domain);
                return ck_error_set(reterr, -ENOENT, "not found: %s", what);
        case 429:
                return ck_error_set(reterr, -EAGAIN,
                                    "registry %s is rate limiting requests (HTTP 429%s%s); try again later",
                                    c->domain, msg[0] ? ": " : "", msg);
        default:
                return ck_error_set(reterr, -EPROTO, "registry %s answered HTTP %ld for %s%s%s", c->domain,
                                    x->status, what, msg[0] ? ": " : "", msg);
        }
}

int registry_transport_error(struct registry_client *c, const struct req *q, int r, const char *errbuf,
                             struct ck_error **reterr)
{
        char what[600];

        req_what(q, what, sizeof(what));
        switch (r) {
        case -ECANCELED:
                return ck_error_set(reterr, r, "cancelled while fetching %s", what);
        case -EMSGSIZE:
                return ck_error_set(reterr, r, "%s from registry %s is larger than allowed", what,
                                    c->domain);
        case -ELOOP:
                return ck_error_set(reterr, r, "too many redirects fetching %s", what);
        case -EPROTONOSUPPORT:
                return ck_error_set(reterr, r, "refused a redirect to a non-HTTPS URL while fetching %s",
                                    what);
        default:
                return ck_error_set(reterr, r, "fetching %s from registry %s: %s", what, c->domain, errbuf);
        }
}

/* -- retries ------------------------------------------------------------------------------ */
int registry_sleep_cancellable(struct registry_client *c, unsigned ms)
{
        while (ms > 0) {
                unsigned slice = ms < 100 ? ms : 100;
                struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice * 1000000L};

                if (registry_cancelled(c))
                        return -ECANCELED;
                nanosleep(&ts, NULL);
                ms -= slice;
        }
        return registry_cancelled(c) ? -ECANCELED : 0;
}

/* Delay before retry number `attempt` (0-based): Retry-After when the server gave one (seconds
 * or an HTTP date, capped), else exponential backoff. */
unsigned registry_retry_delay_ms(const struct xfer *x, unsigned attempt)
{
        uint64_t secs;
        unsigned ms = BACKOFF_BASE_MS << (attempt < 6 ? attempt : 6);

        if (ms > BACKOFF_MAX_MS)
                ms = BACKOFF_MAX_MS;
        if (x->retry_after[0]) {
                if (ck_parse_uint(x->retry_after, UINT32_MAX, &secs) == 0) {
                        return (unsigned)(secs > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : secs) * 1000;
                } else {
                        time_t when = curl_getdate(x->retry_after, NULL), now = time(NULL);

                        if (when > now)
                                return (unsigned)(when - now > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S
                                                                                 : when - now) *
                                       1000;
                        if (when > 0)
                                return 0;
                }
        }
        return ms;
}

bool registry_status_transient(long s)
{
        return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}
