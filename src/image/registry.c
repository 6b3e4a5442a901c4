/* Registry client (OCI distribution spec) on libcurl easy handles.
 *
 * One client serves one registry and may be used from several threads at once (the pull runs
 * three blob downloads in parallel): each request takes an easy+multi handle pair from a small
 * pool (so connections are reused per pair), DNS and TLS sessions are shared through a CURLSH
 * (registry-conns.c, which may hand both on to the next client through a registry_keep), and the
 * auth state (challenge, token cache) is behind locks.
 *
 * Security rules kept here:
 *  - TLS verification is always on; plain HTTP only when the caller says the registry is
 *    insecure. Redirects: at most 10, https only (unless insecure).
 *  - Credentials go in an Authorization header we build per request; libcurl drops custom
 *    Authorization headers when a redirect changes host, port or scheme, and we never set
 *    CURLOPT_UNRESTRICTED_AUTH, so a blob redirect to a CDN carries no credentials.
 *  - Credentials are sent only after the registry challenged us (never preemptively; the
 *    challenge may be one the same registry sent an earlier client of this process), and
 *    the header strings are wiped after each request. Passwords and tokens never appear in
 *    an error message or a log line; curl's verbose mode is never enabled.
 *  - Every response body is capped in the write callback; a blob may not exceed the size its
 *    descriptor announced. Manifest digests are computed over the bytes received.
 *  - A 401 is retried once with fresh credentials, never more: no loops.
 *  - Transient failures (connection errors, 408/429/5xx) are retried with exponential backoff,
 *    honouring Retry-After, a bounded number of times; an interrupted blob resumes with a
 *    Range request (a 200 reply to it is handled by skipping what we already have).
 *  - Cancel: each transfer runs in a multi loop that polls at most 100 ms at a time and checks
 *    the cancel flag between polls (also while the peer sends nothing); the progress and write
 *    callbacks and the backoff sleeps (100 ms slices) check it too. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "buf.h"
#include "curl.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "monotonic.h"
#include "parse.h"
#include "registry-conns.h"
#include "registry.h"

#define POLL_INTERVAL_MS   100
#define ERROR_BODY_MAX     (64u << 10)
#define HEADER_LINE_MAX    8192
#define BACKOFF_BASE_MS    250
#define BACKOFF_MAX_MS     8000
#define RETRY_AFTER_MAX_S  60
#define LOW_SPEED_LIMIT    1024 /* bytes/s ... */
#define RECV_BUFFER        (512L << 10)
#define LOW_SPEED_TIME     30 /* ... for this many seconds, then give up on the transfer */
#define DEFAULT_CONNECT_MS 10000
#define DEFAULT_RETRIES    4
#define REGISTRY_MSG_MAX   200

static const char manifest_accept[] =
        "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
        "application/vnd.docker.distribution.manifest.list.v2+json, "
        "application/vnd.docker.distribution.manifest.v2+json";

struct registry_client {
        char *domain;   /* as given, used in messages and as the token cache key */
        char *base_url; /* "https://host[:port]" */
        char *username;
        struct ck_secret *basic; /* "Basic ..." when a username is set */
        char *ca_file;
        bool plain_http;
        long connect_timeout_ms;
        unsigned retries;
        atomic_int *cancel, *cancel_also;

        struct registry_conns *conns;
        struct registry_keep *keep; /* where conns go back to, or NULL */

        pthread_mutex_t lock; /* guards pinged, inherited, answered, challenge */
        bool pinged;
        bool inherited; /* challenge came from the keep and no request confirmed it yet */
        bool answered;  /* the registry answered a request of ours with 2xx */
        struct registry_challenge challenge;

        struct registry_token_cache *tokens;
};

/* What a request is for: decides how errors are worded. */
enum req_kind {
        REQ_PING,
        REQ_MANIFEST,
        REQ_BLOB,
        REQ_TOKEN,
};

struct xfer {
        struct registry_client *c;
        /* Response state of the last response seen (reset at each status line, so redirect
         * hops do not leak into the final one). */
        long status;
        char content_type[256];
        char retry_after[64];
        bool have_length, have_range;
        uint64_t content_length, range_start;
        struct ck_buf www_auth;
        /* Body handling. */
        struct ck_buf *body;   /* manifest or token reply, capped */
        registry_sink_fn sink; /* blob */
        void *userdata;
        uint64_t *delivered; /* blob bytes given to sink over all attempts */
        uint64_t max_total;  /* blob size */
        uint64_t skip;       /* bytes of a 200 reply we already have (Range ignored) */
        bool body_started;
        bool sink_failed; /* x->err came from the sink, which keeps its own error */
        struct ck_buf errbody;
        int err;          /* set by a callback that aborted the transfer */
        bool auth_failed; /* request() could not get credentials (the token step failed) */
};

static bool cancelled(const struct registry_client *c)
{
        return (c->cancel && atomic_load(c->cancel) != 0) ||
               (c->cancel_also && atomic_load(c->cancel_also) != 0);
}

/* -- construction ------------------------------------------------------------------------ */
int registry_client_new(const struct registry_opts *o, struct registry_client **ret,
                        struct ck_error **reterr)
{
        struct registry_client *c;
        const char *host;
        int r;

        if (!o || !o->domain || !*o->domain)
                return ck_error_set(reterr, -EINVAL, "registry client: no registry domain");
        for (const char *p = o->domain; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      strchr(".-:[]", *p)))
                        return ck_error_set(reterr, -EINVAL,
                                            "registry client: invalid registry host \"%.100s\"", o->domain);
        if (!!o->username != !!o->password)
                return ck_error_set(reterr, -EINVAL,
                                    "registry client: a user name needs a password and vice versa");
        r = ck_curl_global_init();
        if (r < 0)
                return ck_error_set(reterr, r, "cannot initialise libcurl");

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        c->plain_http = o->plain_http;
        c->connect_timeout_ms = o->connect_timeout_ms ? (long)o->connect_timeout_ms : DEFAULT_CONNECT_MS;
        c->retries = o->retries ? o->retries : DEFAULT_RETRIES;
        c->cancel = o->cancel;
        c->cancel_also = o->cancel_also;
        /* Docker Hub's API lives on registry-1.docker.io. */
        host = strcmp(o->domain, "docker.io") == 0 ? "registry-1.docker.io" : o->domain;
        c->domain = strdup(o->domain);
        if (asprintf(&c->base_url, "%s://%s", c->plain_http ? "http" : "https", host) < 0)
                c->base_url = NULL;
        if (!c->domain || !c->base_url)
                goto oom;
        if (o->ca_file) {
                c->ca_file = strdup(o->ca_file);
                if (!c->ca_file)
                        goto oom;
        }
        if (o->username) {
                c->username = strdup(o->username);
                if (!c->username)
                        goto oom;
                r = registry_basic_credentials(o->username, o->password, &c->basic, reterr);
                if (r < 0) {
                        registry_client_free(c);
                        return r;
                }
        }
        if (registry_token_cache_new(&c->tokens) < 0)
                goto oom;
        if (registry_conns_take(o->keep, c->base_url, c->ca_file, &c->conns) < 0)
                goto oom;
        c->keep = o->keep;
        if (c->conns->learned) {
                /* What this registry answered an earlier client: try it without asking again
                 * (registry_get_manifest() asks again when the registry refuses). */
                c->challenge = c->conns->challenge;
                c->conns->challenge = (struct registry_challenge){0};
                c->conns->learned = false;
                c->pinged = c->inherited = true;
        }
        *ret = c;
        return 0;
oom:
        registry_client_free(c);
        return ck_error_set(reterr, -ENOMEM, "out of memory");
}

void registry_client_free(struct registry_client *c)
{
        if (!c)
                return;
        if (c->conns && c->answered && c->pinged && !c->inherited) {
                /* The registry answered us under this scheme: the next client may start from it.
                 * After a failure nothing is kept: the next client asks the registry again. */
                c->conns->challenge = c->challenge;
                c->challenge = (struct registry_challenge){0};
                c->conns->learned = true;
                registry_conns_give(c->keep, c->conns);
        } else {
                registry_conns_free(c->conns);
        }
        registry_token_cache_free(c->tokens);
        registry_challenge_clear(&c->challenge);
        ck_secret_free(c->basic);
        free(c->username);
        free(c->ca_file);
        free(c->base_url);
        free(c->domain);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

/* -- callbacks ---------------------------------------------------------------------------- */
static bool header_is(const char *line, size_t len, const char *name, const char **ret_value,
                      size_t *ret_len)
{
        size_t n = strlen(name);
        const char *v, *end;

        if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
                return false;
        v = line + n + 1;
        end = line + len;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
        *ret_value = v;
        *ret_len = (size_t)(end - v);
        return true;
}

static void copy_header(char *dst, size_t dst_size, const char *v, size_t len)
{
        if (len >= dst_size)
                len = dst_size - 1;
        memcpy(dst, v, len);
        dst[len] = 0;
}

static void xfer_reset_response(struct xfer *x)
{
        x->status = 0;
        x->content_type[0] = 0;
        x->retry_after[0] = 0;
        x->have_length = x->have_range = false;
        x->content_length = x->range_start = 0;
        ck_buf_reset(&x->www_auth);
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
        struct xfer *x = userdata;
        size_t len = size * nitems;
        const char *v;
        size_t vlen;

        if (len > HEADER_LINE_MAX)
                return len; /* ignore absurd lines rather than keep them */
        if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
                const char *sp = memchr(buf, ' ', len);
                uint64_t code = 0;

                xfer_reset_response(x);
                if (sp && (size_t)(sp - buf) + 4 <= len && ck_parse_u64(sp + 1, 3, 999, &code) == 0)
                        x->status = (long)code;
                return len;
        }
        if (header_is(buf, len, "content-type", &v, &vlen)) {
                copy_header(x->content_type, sizeof(x->content_type), v, vlen);
        } else if (header_is(buf, len, "retry-after", &v, &vlen)) {
                copy_header(x->retry_after, sizeof(x->retry_after), v, vlen);
        } else if (header_is(buf, len, "www-authenticate", &v, &vlen)) {
                /* Several challenge lines are one list. Overlong ones are dropped whole. */
                if (x->www_auth.len > 0)
                        (void)ck_buf_append(&x->www_auth, ", ", 2);
                (void)ck_buf_append(&x->www_auth, v, vlen);
        } else if (header_is(buf, len, "content-length", &v, &vlen)) {
                x->have_length = ck_parse_u64(v, vlen, UINT64_MAX, &x->content_length) == 0;
        } else if (header_is(buf, len, "content-range", &v, &vlen)) {
                /* "bytes START-END/TOTAL": only START matters. */
                if (vlen > 6 && strncasecmp(v, "bytes ", 6) == 0) {
                        const char *dash = memchr(v + 6, '-', vlen - 6);

                        x->have_range = dash && ck_parse_u64(v + 6, (size_t)(dash - v - 6), UINT64_MAX,
                                                             &x->range_start) == 0;
                }
        }
        return len;
}

static bool status_ok(long s)
{
        return s == 200 || s == 206;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
        struct xfer *x = userdata;
        size_t len = size * nmemb;

        if (cancelled(x->c)) {
                x->err = -ECANCELED;
                return CURL_WRITEFUNC_ERROR;
        }
        if (!status_ok(x->status)) {
                /* An error document: keep the start of it for the message. */
                size_t room = ERROR_BODY_MAX - x->errbody.len;

                (void)ck_buf_append(&x->errbody, data, len < room ? len : room);
                return len;
        }
        if (x->body) {
                if (!x->body_started) {
                        x->body_started = true;
                        if (x->have_length && x->content_length > x->body->max) {
                                x->err = -EMSGSIZE;
                                return CURL_WRITEFUNC_ERROR;
                        }
                }
                if (ck_buf_append(x->body, data, len) < 0) {
                        x->err = -EMSGSIZE;
                        return CURL_WRITEFUNC_ERROR;
                }
                return len;
        }

        /* A blob. */
        if (!x->body_started) {
                x->body_started = true;
                if (x->status == 206) {
                        if (!x->have_range || x->range_start != *x->delivered) {
                                x->err = -EPROTO;
                                return CURL_WRITEFUNC_ERROR;
                        }
                } else {
                        x->skip = *x->delivered;
                }
                if (x->have_length &&
                    x->content_length > x->max_total - (x->status == 206 ? *x->delivered : 0)) {
                        x->err = -EMSGSIZE;
                        return CURL_WRITEFUNC_ERROR;
                }
        }
        if (x->skip > 0) {
                size_t drop = x->skip < len ? (size_t)x->skip : len;

                x->skip -= drop;
                data += drop;
                len -= drop;
                if (len == 0)
                        return size * nmemb;
        }
        if (len > x->max_total - *x->delivered) {
                x->err = -EMSGSIZE;
                return CURL_WRITEFUNC_ERROR;
        }
        {
                int r = x->sink(x->userdata, (const uint8_t *)data, len);

                if (r < 0) {
                        x->err = r;
                        x->sink_failed = true;
                        return CURL_WRITEFUNC_ERROR;
                }
        }
        *x->delivered += len;
        return size * nmemb;
}

static int xferinfo_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
        struct xfer *x = userdata;

        if (cancelled(x->c)) {
                x->err = -ECANCELED;
                return 1;
        }
        return 0;
}

/* -- one HTTP exchange -------------------------------------------------------------------- */
static void slist_free_wiped(struct curl_slist *l)
{
        for (struct curl_slist *p = l; p; p = p->next)
                OPENSSL_cleanse(p->data, strlen(p->data));
        curl_slist_free_all(l);
}

/* Performs one GET of url with the given extra headers. Returns 0 when a response arrived
 * (whatever its status), or a -errno for transport failures (x->err wins when a callback
 * aborted); *ret_transient says whether retrying may help. */
static int xfer_perform(struct registry_client *c, const char *url, struct curl_slist *headers,
                        struct xfer *x, bool *ret_transient, char *errbuf)
{
        const char *protos = c->plain_http ? "http,https" : "https";
        CURLcode cc = CURLE_FAILED_INIT;
        struct registry_conn k = {0};
        CURL *h;
        int r;

        *ret_transient = false;
        r = registry_conn_get(c->conns, &k);
        if (r < 0)
                return r;
        h = k.easy;
        xfer_reset_response(x);
        x->body_started = false;
        x->skip = 0;
        x->err = 0;
        x->sink_failed = false;
        ck_buf_reset(&x->errbody);
        if (x->body)
                ck_buf_reset(x->body);
        errbuf[0] = 0;

        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_SHARE, c->conns->share);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protos);
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, protos);
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
        curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        if (c->ca_file)
                curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)LOW_SPEED_LIMIT);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)LOW_SPEED_TIME);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "conker");
        /* Larger receive chunks than curl's 16 KiB: fewer recv()s, write()s and digest updates
         * per blob (and bigger bites for the streamed unpacker). */
        curl_easy_setopt(h, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

        if (curl_multi_add_handle(k.multi, h) != CURLM_OK) {
                registry_conn_free(&k);
                return -ENOMEM;
        }
        for (;;) {
                int running = 0;

                if (curl_multi_perform(k.multi, &running) != CURLM_OK)
                        break;
                if (!running) {
                        CURLMsg *msg;
                        int left;

                        while ((msg = curl_multi_info_read(k.multi, &left)))
                                if (msg->msg == CURLMSG_DONE && msg->easy_handle == h)
                                        cc = msg->data.result;
                        break;
                }
                if (cancelled(c)) {
                        x->err = -ECANCELED;
                        break;
                }
                if (curl_multi_poll(k.multi, NULL, 0, POLL_INTERVAL_MS, NULL) != CURLM_OK)
                        break;
        }
        curl_multi_remove_handle(k.multi, h);
        registry_conn_put(c->conns, &k);

        if (x->err)
                return x->err;
        if (cancelled(c))
                return -ECANCELED;
        switch (cc) {
        case CURLE_OK:
                return 0;
        case CURLE_COULDNT_CONNECT:
                r = -ECONNREFUSED;
                *ret_transient = true;
                break;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                r = -EHOSTUNREACH;
                *ret_transient = true;
                break;
        case CURLE_OPERATION_TIMEDOUT:
                r = -ETIMEDOUT;
                *ret_transient = true;
                break;
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                r = -ECONNRESET;
                *ret_transient = true;
                break;
        case CURLE_TOO_MANY_REDIRECTS:
                r = -ELOOP;
                break;
        case CURLE_UNSUPPORTED_PROTOCOL:
                r = -EPROTONOSUPPORT;
                break;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
                r = -EPROTO;
                break;
        case CURLE_OUT_OF_MEMORY:
                r = -ENOMEM;
                break;
        default:
                r = -EIO;
                break;
        }
        if (!errbuf[0])
                snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(cc));
        return r;
}

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

struct req {
        enum req_kind kind;
        const char *repo;      /* NULL for ping and token */
        const char *reference; /* tag or digest */
        const char *url;
        const char *accept; /* full "Accept: ..." line or NULL */
};

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

static int status_error(struct registry_client *c, const struct req *q, const struct xfer *x,
                        struct ck_error **reterr)
{
        char code[64], msg[REGISTRY_MSG_MAX], what[600];

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
                                c->domain, c->username, q->repo ? q->repo : "the registry",
                                msg[0] ? ": " : "", msg);
                return ck_error_set(
                        reterr, -EACCES,
                        "registry %s requires authentication for %s (pull access denied%s%s); give a "
                        "user name and password",
                        c->domain, q->repo ? q->repo : "the registry", msg[0] ? ": " : "", msg);
        case 403:
                return ck_error_set(reterr, -EACCES, "registry %s denied access to %s%s%s", c->domain,
                                    q->repo ? q->repo : "the registry", msg[0] ? ": " : "", msg);
        case 404:
                if (q->kind == REQ_PING)
                        return ck_error_set(reterr, -EPROTO,
                                            "%s does not serve the registry API (/v2/ not found)",
                                            c->domain);
                if (strcmp(code, "NAME_UNKNOWN") == 0)
                        return ck_error_set(reterr, -ENOENT, "repository unknown: %s (registry %s)", q->repo,
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

static int transport_error(struct registry_client *c, const struct req *q, int r, const char *errbuf,
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
static int sleep_cancellable(struct registry_client *c, unsigned ms)
{
        while (ms > 0) {
                unsigned slice = ms < 100 ? ms : 100;
                struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice * 1000000L};

                if (cancelled(c))
                        return -ECANCELED;
                nanosleep(&ts, NULL);
                ms -= slice;
        }
        return cancelled(c) ? -ECANCELED : 0;
}

/* Delay before retry number `attempt` (0-based): Retry-After when the server gave one (seconds
 * or an HTTP date, capped), else exponential backoff. */
static unsigned retry_delay_ms(const struct xfer *x, unsigned attempt)
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

static bool status_transient(long s)
{
        return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

/* -- auth --------------------------------------------------------------------------------- */
static int append_header(struct curl_slist **l, const char *line)
{
        struct curl_slist *n = curl_slist_append(*l, line);

        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static int url_escape(const char *s, char **ret)
{
        char *e = curl_easy_escape(NULL, s, 0), *copy;

        if (!e)
                return -ENOMEM;
        copy = strdup(e);
        curl_free(e);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static int fetch_token(struct registry_client *c, const struct registry_challenge *ch, const char *scope,
                       struct ck_secret **ret, uint64_t *ret_expires, struct ck_error **reterr);

/* "Authorization: <prefix><credential>" as a secret (the caller wipes it with ck_secret_free). */
static struct ck_secret *authz_line(const char *prefix, const struct ck_secret *cred)
{
        static const char head[] = "Authorization: ";
        size_t hl = strlen(head), pl = strlen(prefix), n;
        struct ck_secret *line;

        if (cred->len > SIZE_MAX / 2)
                return NULL;
        n = hl + pl + cred->len;
        line = ck_secret_alloc(n);
        if (!line)
                return NULL;
        memcpy(line->data, head, hl);
        memcpy(line->data + hl, prefix, pl);
        memcpy(line->data + hl + pl, cred->data, cred->len);
        line->data[n] = 0;
        return line;
}

static int scope_for(const char *repo, char **ret)
{
        if (asprintf(ret, "repository:%s:pull", repo) < 0)
                return -ENOMEM;
        return 0;
}

/* The Authorization header line for a request to repo, or NULL (*ret untouched) when the
 * registry did not ask for credentials. ret_token receives the bearer token used (to drop it
 * from the cache if it is rejected). */
static int auth_header(struct registry_client *c, const char *repo, struct ck_secret **ret,
                       struct ck_secret **ret_token, struct ck_error **reterr)
{
        _cleanup_(registry_challenge_clear) struct registry_challenge ch = {0};
        _cleanup_secret_ struct ck_secret *token = NULL;
        _cleanup_free_ char *scope = NULL;
        enum registry_auth_scheme scheme;
        struct ck_secret *line;
        uint64_t expires = 0;
        int r;

        pthread_mutex_lock(&c->lock);
        scheme = c->challenge.scheme;
        if (scheme == REGISTRY_AUTH_BEARER) {
                ch.scheme = scheme;
                ch.realm = strdup(c->challenge.realm);
                ch.service = c->challenge.service ? strdup(c->challenge.service) : NULL;
                if (!ch.realm || (c->challenge.service && !ch.service))
                        scheme = _REGISTRY_AUTH_SCHEME_MAX; /* OOM marker */
        }
        pthread_mutex_unlock(&c->lock);
        if (scheme == _REGISTRY_AUTH_SCHEME_MAX)
                return -ENOMEM;

        if (scheme == REGISTRY_AUTH_NONE)
                return 0;
        if (scheme == REGISTRY_AUTH_BASIC) {
                if (!c->basic)
                        return 0; /* anonymous: let the 401 say authentication is needed */
                line = authz_line("", c->basic);
                if (!line)
                        return -ENOMEM;
                *ret = line;
                return 0;
        }

        /* Bearer. */
        if (repo)
                r = scope_for(repo, &scope);
        else
                r = (scope = strdup("")) ? 0 : -ENOMEM;
        if (r < 0)
                return r;
        r = registry_token_cache_get(c->tokens, c->domain, scope, (uint64_t)ck_now_us(), &token);
        if (r == -ENOENT) {
                r = fetch_token(c, &ch, repo ? scope : NULL, &token, &expires, reterr);
                if (r < 0)
                        return r;
                r = registry_token_cache_put(c->tokens, c->domain, scope, token, expires,
                                             (uint64_t)ck_now_us());
        }
        if (r < 0)
                return r;
        line = authz_line("Bearer ", token);
        if (!line)
                return -ENOMEM;
        *ret = line;
        if (ret_token)
                *ret_token = TAKE_PTR(token);
        return 0;
}

/* Learns the challenge of a 401 reply. Returns true when there is something new to try. */
static bool learn_challenge(struct registry_client *c, const struct xfer *x)
{
        struct registry_challenge ch = {0};
        bool changed = false;

        if (x->www_auth.len == 0 ||
            registry_challenge_parse((const char *)x->www_auth.data, x->www_auth.len, &ch, NULL) < 0)
                return false;
        if (ch.scheme == REGISTRY_AUTH_NONE) {
                registry_challenge_clear(&ch);
                return false;
        }
        pthread_mutex_lock(&c->lock);
        if (c->challenge.scheme != ch.scheme ||
            (ch.realm && (!c->challenge.realm || strcmp(ch.realm, c->challenge.realm) != 0))) {
                registry_challenge_clear(&c->challenge);
                c->challenge = ch;
                ch = (struct registry_challenge){0};
                changed = true;
        }
        pthread_mutex_unlock(&c->lock);
        registry_challenge_clear(&ch);
        return changed;
}

/* GET with auth and retries. On success x holds a 2xx response. */
static int request(struct registry_client *c, const struct req *q, struct xfer *x, struct ck_error **reterr)
{
        char errbuf[CURL_ERROR_SIZE];
        bool auth_retried = false;
        unsigned attempt = 0;
        int r;

        for (;;) {
                _cleanup_secret_ struct ck_secret *authz = NULL, *token = NULL;
                struct curl_slist *headers = NULL;
                bool transient = false, sent_auth;
                char range[64];

                if (cancelled(c))
                        return transport_error(c, q, -ECANCELED, "", reterr);
                if (q->kind != REQ_PING && q->kind != REQ_TOKEN) {
                        r = auth_header(c, q->repo, &authz, &token, reterr);
                        if (r < 0) {
                                x->auth_failed = true;
                                return r;
                        }
                }
                sent_auth = authz != NULL;
                r = 0;
                if (authz)
                        r = append_header(&headers, (const char *)authz->data);
                if (r >= 0 && q->accept)
                        r = append_header(&headers, q->accept);
                if (r >= 0 && q->kind == REQ_BLOB && *x->delivered > 0) {
                        snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-", *x->delivered);
                        r = append_header(&headers, range);
                }
                if (r < 0) {
                        slist_free_wiped(headers);
                        return r;
                }
                r = xfer_perform(c, q->url, headers, x, &transient, errbuf);
                slist_free_wiped(headers);
                if (r < 0 && x->sink_failed)
                        return r;

                if (r < 0 && r != -ECANCELED && r != -EMSGSIZE && transient && attempt < c->retries) {
                        log_debug("registry %s: %s; retrying", c->domain, errbuf);
                        r = sleep_cancellable(c, retry_delay_ms(x, attempt++));
                        if (r < 0)
                                return transport_error(c, q, r, "", reterr);
                        continue;
                }
                if (r < 0)
                        return transport_error(c, q, r, errbuf, reterr);

                if (status_ok(x->status)) {
                        /* A blob that ended early without a transport error: resume it. */
                        if (q->kind == REQ_BLOB && *x->delivered < x->max_total && attempt < c->retries) {
                                r = sleep_cancellable(c, retry_delay_ms(x, attempt++));
                                if (r < 0)
                                        return transport_error(c, q, r, "", reterr);
                                continue;
                        }
                        if (q->kind == REQ_MANIFEST || q->kind == REQ_BLOB) {
                                /* The scheme we hold got us an answer: worth keeping. */
                                pthread_mutex_lock(&c->lock);
                                c->answered = true;
                                c->inherited = false;
                                pthread_mutex_unlock(&c->lock);
                        }
                        return 0;
                }
                if (x->status == 401 && q->kind != REQ_TOKEN && q->kind != REQ_PING && !auth_retried) {
                        /* Once: with credentials if we sent none, with a fresh token if ours was
                         * refused. Never a second time. */
                        bool changed = learn_challenge(c, x), can_auth;

                        pthread_mutex_lock(&c->lock);
                        can_auth = c->challenge.scheme == REGISTRY_AUTH_BEARER ||
                                   (c->challenge.scheme == REGISTRY_AUTH_BASIC && c->basic);
                        pthread_mutex_unlock(&c->lock);
                        auth_retried = true;
                        if (token) {
                                _cleanup_free_ char *scope = NULL;

                                if (scope_for(q->repo, &scope) < 0)
                                        return -ENOMEM;
                                registry_token_cache_drop(c->tokens, c->domain, scope, token);
                                continue;
                        }
                        if (!sent_auth && changed && can_auth)
                                continue;
                }
                if (status_transient(x->status) && attempt < c->retries) {
                        log_debug("registry %s: HTTP %ld; retrying", c->domain, x->status);
                        r = sleep_cancellable(c, retry_delay_ms(x, attempt++));
                        if (r < 0)
                                return transport_error(c, q, r, "", reterr);
                        continue;
                }
                return status_error(c, q, x, reterr);
        }
}

static int fetch_token(struct registry_client *c, const struct registry_challenge *ch, const char *scope,
                       struct ck_secret **ret, uint64_t *ret_expires, struct ck_error **reterr)
{
        _cleanup_free_ char *url = NULL, *esc_service = NULL, *esc_scope = NULL;
        struct ck_buf body = {0};
        struct curl_slist *headers = NULL;
        char errbuf[CURL_ERROR_SIZE];
        struct xfer x = {.c = c};
        unsigned attempt = 0;
        bool transient;
        int r;

        if (!(ck_startswith(ch->realm, "https://") ||
              (c->plain_http && ck_startswith(ch->realm, "http://"))))
                return ck_error_set(reterr, -EPROTO, "registry %s: token realm must be an https:// URL",
                                    c->domain);
        for (const char *p = ch->realm; *p; p++)
                if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
                        return ck_error_set(reterr, -EPROTO, "registry %s: token realm is not a clean URL",
                                            c->domain);
        if ((ch->service && url_escape(ch->service, &esc_service) < 0) ||
            (scope && url_escape(scope, &esc_scope) < 0))
                return -ENOMEM;
        if (asprintf(&url, "%s%s%s%s%s%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?",
                     esc_service ? "service=" : "", esc_service ? esc_service : "",
                     esc_scope ? (esc_service ? "&scope=" : "scope=") : "",
                     esc_scope ? esc_scope : "") < 0) {
                url = NULL;
                return -ENOMEM;
        }

        ck_buf_init_secret(&body, REGISTRY_TOKEN_BODY_MAX); /* the token */
        ck_buf_init(&x.errbody, ERROR_BODY_MAX);
        ck_buf_init(&x.www_auth, REGISTRY_CHALLENGE_MAX);
        x.body = &body;
        for (;;) {
                headers = NULL;
                if (c->basic) {
                        /* The realm is where the registry sent us to log in: credentials go there. */
                        _cleanup_secret_ struct ck_secret *line = authz_line("", c->basic);

                        if (!line) {
                                r = -ENOMEM;
                                goto out;
                        }
                        r = append_header(&headers, (const char *)line->data);
                        if (r < 0)
                                goto out;
                }
                r = xfer_perform(c, url, headers, &x, &transient, errbuf);
                slist_free_wiped(headers);
                headers = NULL;
                if ((r < 0 && transient && attempt < c->retries) ||
                    (r == 0 && status_transient(x.status) && attempt < c->retries)) {
                        r = sleep_cancellable(c, retry_delay_ms(&x, attempt++));
                        if (r < 0)
                                break;
                        continue;
                }
                break;
        }
        if (r < 0) {
                struct req q = {.kind = REQ_TOKEN, .repo = NULL};

                r = transport_error(c, &q, r, errbuf, reterr);
                goto out;
        }
        if (x.status != 200) {
                struct req q = {.kind = REQ_TOKEN, .repo = NULL};

                r = status_error(c, &q, &x, reterr);
                goto out;
        }
        r = registry_token_parse(body.data, body.len, ret, ret_expires, reterr);
        if (r < 0)
                r = ck_error_prefix(reterr, r, "registry %s", c->domain);
out:
        ck_buf_free(&body);
        ck_buf_free(&x.errbody);
        ck_buf_free(&x.www_auth);
        return r;
}

/* GET /v2/ once per client, to learn how the registry wants us to authenticate. */
static int ping(struct registry_client *c, struct ck_error **reterr)
{
        _cleanup_free_ char *url = NULL;
        struct xfer x = {.c = c};
        struct req q = {.kind = REQ_PING};
        struct ck_error *err = NULL;
        struct ck_buf discard;
        bool done;
        int r;

        pthread_mutex_lock(&c->lock);
        done = c->pinged;
        pthread_mutex_unlock(&c->lock);
        if (done)
                return 0;
        if (asprintf(&url, "%s/v2/", c->base_url) < 0)
                return -ENOMEM;
        q.url = url;
        ck_buf_init(&discard, 64 << 10);
        ck_buf_init(&x.errbody, ERROR_BODY_MAX);
        ck_buf_init(&x.www_auth, REGISTRY_CHALLENGE_MAX);
        x.body = &discard;
        r = request(c, &q, &x, &err);
        if (r < 0 && x.status == 401) {
                struct registry_challenge ch = {0};

                /* Expected: the challenge tells us the scheme and, for Bearer, where tokens are. */
                ck_error_free(TAKE_PTR(err));
                r = registry_challenge_parse((const char *)x.www_auth.data, x.www_auth.len, &ch, &err);
                if (r < 0)
                        r = ck_error_prefix(&err, -EPROTO, "registry %s", c->domain);
                else if (ch.scheme == REGISTRY_AUTH_NONE)
                        r = ck_error_set(
                                &err, -EPROTO,
                                "registry %s asks for an authentication scheme other than Basic or Bearer",
                                c->domain);
                if (r >= 0) {
                        pthread_mutex_lock(&c->lock);
                        registry_challenge_clear(&c->challenge);
                        c->challenge = ch;
                        c->pinged = true;
                        pthread_mutex_unlock(&c->lock);
                } else {
                        registry_challenge_clear(&ch);
                }
        } else if (r >= 0) {
                pthread_mutex_lock(&c->lock);
                c->pinged = true;
                pthread_mutex_unlock(&c->lock);
        }
        ck_buf_free(&discard);
        ck_buf_free(&x.errbody);
        ck_buf_free(&x.www_auth);
        if (r < 0 && err && reterr && !*reterr)
                *reterr = TAKE_PTR(err);
        ck_error_free(err);
        return r;
}

/* True when the client's scheme came from a keep and no request confirmed it: it is then
 * forgotten, so that the next ping() asks the registry. */
static bool forget_inherited(struct registry_client *c)
{
        bool was;

        pthread_mutex_lock(&c->lock);
        was = c->inherited;
        if (was) {
                c->inherited = c->pinged = false;
                registry_challenge_clear(&c->challenge);
        }
        pthread_mutex_unlock(&c->lock);
        return was;
}

/* Repository names and references go into URLs: accept only their grammar's characters. */
static bool repo_valid(const char *s)
{
        size_t n = 0;

        if (!s || !*s)
                return false;
        for (; *s; s++, n++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr("._-/", *s)))
                        return false;
        return n <= 255;
}

static bool reference_valid(const char *s)
{
        size_t n = 0;

        if (!s || !*s)
                return false;
        if (image_digest_valid(s))
                return true;
        for (; *s; s++, n++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr("._-", *s)))
                        return false;
        return n <= 128;
}

static const EVP_MD *digest_md(const char *digest)
{
        return ck_startswith(digest, "sha512:") ? EVP_sha512() : EVP_sha256();
}

static int digest_of(const EVP_MD *md, const uint8_t *data, size_t len, char **ret)
{
        uint8_t out[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];

        if (EVP_Digest(data, len, out, &n, md, NULL) != 1)
                return -EIO;
        ck_hex_encode(out, n, hex);
        if (asprintf(ret, "%s:%s", md == EVP_sha512() ? "sha512" : "sha256", hex) < 0)
                return -ENOMEM;
        return 0;
}

int registry_get_manifest(struct registry_client *c, const char *repo, const char *reference,
                          uint8_t **ret_body, size_t *ret_len, char **ret_media_type, char **ret_digest,
                          struct ck_error **reterr)
{
        _cleanup_free_ char *url = NULL, *digest = NULL, *media_type = NULL;
        _cleanup_buf_ struct ck_buf body = {0};
        struct ck_error *err = NULL;
        struct xfer x = {.c = c};
        struct req q = {
                .kind = REQ_MANIFEST, .repo = repo, .reference = reference, .accept = manifest_accept};
        const EVP_MD *md;
        size_t mlen;
        int r;

        if (!repo_valid(repo))
                return ck_error_set(reterr, -EINVAL, "invalid repository name \"%.100s\"", repo ? repo : "");
        if (!reference_valid(reference))
                return ck_error_set(reterr, -EINVAL, "invalid tag or digest \"%.140s\"",
                                    reference ? reference : "");
        r = ping(c, reterr);
        if (r < 0)
                return r;
        if (asprintf(&url, "%s/v2/%s/manifests/%s", c->base_url, repo, reference) < 0)
                return -ENOMEM;
        q.url = url;
        ck_buf_init(&body, IMAGE_MANIFEST_MAX);
        ck_buf_init(&x.errbody, ERROR_BODY_MAX);
        ck_buf_init(&x.www_auth, REGISTRY_CHALLENGE_MAX);
        x.body = &body;
        r = request(c, &q, &x, &err);
        if (r < 0 && r != -ECANCELED && (x.status != 0 || x.auth_failed) && forget_inherited(c)) {
                /* The scheme kept from an earlier client may be stale (the registry changed
                 * its authentication, or the token realm moved): learn it again, as a new
                 * client would, and try once more. Not when the registry could not be reached
                 * at all: asking /v2/ would only repeat the retries. */
                log_debug("registry %s: %s; asking /v2/ again", c->domain, ck_error_message(err, r));
                ck_error_free(TAKE_PTR(err));
                r = ping(c, &err);
                if (r >= 0)
                        r = request(c, &q, &x, &err);
        }
        ck_buf_free(&x.errbody);
        ck_buf_free(&x.www_auth);
        if (r < 0) {
                if (err && reterr && !*reterr)
                        *reterr = TAKE_PTR(err);
                ck_error_free(err);
                return r;
        }

        md = image_digest_valid(reference) ? digest_md(reference) : EVP_sha256();
        r = digest_of(md, body.data, body.len, &digest);
        if (r < 0)
                return ck_error_set(reterr, r, "cannot hash the manifest");
        if (image_digest_valid(reference) && strcmp(digest, reference) != 0)
                return ck_error_set(reterr, -EBADMSG,
                                    "manifest %s@%s: digest mismatch (received content hashes to %s)", repo,
                                    reference, digest);
        mlen = strcspn(x.content_type, "; \t");
        media_type = strndup(x.content_type, mlen);
        if (!media_type)
                return -ENOMEM;
        *ret_len = body.len;
        *ret_body = ck_buf_take(&body, NULL);
        *ret_media_type = TAKE_PTR(media_type);
        *ret_digest = TAKE_PTR(digest);
        return 0;
}

int registry_get_blob(struct registry_client *c, const char *repo, const char *digest,
                      uint64_t expected_size, registry_sink_fn sink, void *userdata,
                      struct ck_error **reterr)
{
        _cleanup_free_ char *url = NULL;
        struct xfer x = {.c = c, .sink = sink, .userdata = userdata, .max_total = expected_size};
        struct req q = {.kind = REQ_BLOB, .repo = repo, .reference = digest};
        uint64_t delivered = 0;
        int r;

        if (!repo_valid(repo))
                return ck_error_set(reterr, -EINVAL, "invalid repository name \"%.100s\"", repo ? repo : "");
        if (!image_digest_valid(digest))
                return ck_error_set(reterr, -EINVAL, "invalid blob digest \"%.140s\"", digest ? digest : "");
        if (!sink)
                return ck_error_set(reterr, -EINVAL, "registry_get_blob: no sink");
        r = ping(c, reterr);
        if (r < 0)
                return r;
        if (asprintf(&url, "%s/v2/%s/blobs/%s", c->base_url, repo, digest) < 0)
                return -ENOMEM;
        q.url = url;
        x.delivered = &delivered;
        ck_buf_init(&x.errbody, ERROR_BODY_MAX);
        ck_buf_init(&x.www_auth, REGISTRY_CHALLENGE_MAX);
        r = request(c, &q, &x, reterr);
        ck_buf_free(&x.errbody);
        ck_buf_free(&x.www_auth);
        if (r < 0) {
                /* A failing sink has said why in its own error; do not mask it. */
                return r;
        }
        if (delivered != expected_size)
                return ck_error_set(reterr, -EBADMSG,
                                    "blob %s@%s: received %" PRIu64 " bytes, expected %" PRIu64, repo,
                                    digest, delivered, expected_size);
        return 0;
}
