/* One HTTP exchange of the registry client (registry_xfer_perform): the options of every
 * request (TLS verification on, redirects at most 10 and https only unless insecure,
 * CURLOPT_UNRESTRICTED_AUTH off, verbose off), the multi loop that checks the cancel flag
 * every 100 ms, the header callback that keeps the last response's status and headers, and
 * the write callback that caps every body (a blob at its announced size, skipping what a 200
 * reply to a Range request repeats). */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "parse.h"
#include "registry-internal.h"

#define POLL_INTERVAL_MS 100
#define HEADER_LINE_MAX  8192
#define LOW_SPEED_LIMIT  1024 /* bytes/s ... */
#define RECV_BUFFER      (512L << 10)
#define LOW_SPEED_TIME   30 /* ... for this many seconds, then give up on the transfer */

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

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
        struct xfer *x = userdata;
        size_t len = size * nmemb;

        if (registry_cancelled(x->c)) {
                x->err = -ECANCELED;
                return CURL_WRITEFUNC_ERROR;
        }
        if (!registry_status_ok(x->status)) {
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

        if (registry_cancelled(x->c)) {
                x->err = -ECANCELED;
                return 1;
        }
        return 0;
}

/* -- one HTTP exchange -------------------------------------------------------------------- */
void registry_slist_free_wiped(struct curl_slist *l)
{
        for (struct curl_slist *p = l; p; p = p->next)
                OPENSSL_cleanse(p->data, strlen(p->data));
        curl_slist_free_all(l);
}

/* Performs one GET of url with the given extra headers. Returns 0 when a response arrived
 * (whatever its status), or a -errno for transport failures (x->err wins when a callback
 * aborted); *ret_transient says whether retrying may help. */
int registry_xfer_perform(struct registry_client *c, const char *url, struct curl_slist *headers,
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
                if (registry_cancelled(c)) {
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
        if (registry_cancelled(c))
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
