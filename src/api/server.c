/* The HTTP(S) server: listener, limits, TLS with optional client certificates, the connection
 * limit, authentication and the routing table of /sw/api/v1. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "api-internal.h"
#include "errors.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "parse.h"
#include "ssl.h"

#define API_PREFIX "/sw/api/v1"
/* evhttp refuses bodies above this itself (with its own 413 page) before reading them; below
 * it, the handler enforces max_body_size with an enveloped 413. It bounds memory per request. */
#define API_BODY_HARD_FACTOR 4

void api_reply(struct evhttp_request *req, int status, const char *message, json_t *data)
{
        _cleanup_json_ json_t *env = json_pack("{s:i,s:s,s:o}", "code", status, "message", message, "data",
                                               data ? data : json_null());
        _cleanup_free_ char *body = env ? ck_json_dump(env) : NULL;
        struct evbuffer *out = evhttp_request_get_output_buffer(req);
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);

        evhttp_remove_header(h, "Content-Type");
        evhttp_add_header(h, "Content-Type", "application/json");
        if (body) {
                evbuffer_add(out, body, strlen(body));
                evbuffer_add(out, "\n", 1);
        } else {
                static const char oom[] = "{\"code\":500,\"message\":\"out of memory\",\"data\":null}\n";
                status = 500;
                evbuffer_add(out, oom, sizeof(oom) - 1);
        }
        evhttp_send_reply(req, status, api_status_reason(status), NULL);
}

void api_reply_error(struct evhttp_request *req, int code, const struct ck_error *err, const char *what)
{
        struct api_error_view v = api_error_map(code, err, what);
        api_reply(req, v.status, v.message, NULL);
}

/* ---- authentication ---- */

static bool authorized(struct api_server *s, struct evhttp_request *req)
{
        const char *h;
        size_t n;

        if (!s->cfg.auth)
                return true;
        /* With a client CA the TLS handshake already required a verified certificate. */
        if (s->cfg.tls_client_ca && *s->cfg.tls_client_ca)
                return true;
        h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
        if (!h || strncasecmp(h, "Bearer ", 7) != 0)
                return false;
        h += 7;
        while (*h == ' ')
                h++;
        n = strlen(h);
        while (n > 0 && h[n - 1] == ' ')
                n--;
        return ck_secret_equal(s->cfg.token, h, n);
}

/* ---- routing ---- */

enum route_id {
        R_HEALTH,
        R_ATTEST,     /* /pub/attest?nonce=HEX (tls-cert = auto) */
        R_CONTAINER,  /* /container: POST create, GET newest, DELETE newest */
        R_CANCEL,     /* /container/cancel */
        R_CONTAINERS, /* /containers */
        R_ONE,        /* /container/{id} */
        R_ONE_CANCEL, /* /container/{id}/cancel */
        R_ONE_LOGS,   /* /container/{id}/logs */
        R_ONE_EVENTS, /* /container/{id}/events */
        R_METRICS,    /* /metrics (Prometheus; outside the API prefix, as scrapers expect) */
        _R_MAX,
};

static const struct {
        unsigned methods;
        const char *allow;
} route_methods[] = {
        [R_HEALTH] = {EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD"},
        [R_ATTEST] = {EVHTTP_REQ_GET, "GET"},
        [R_CONTAINER] = {EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE, "GET, POST, DELETE"},
        [R_CANCEL] = {EVHTTP_REQ_POST, "POST"},
        [R_CONTAINERS] = {EVHTTP_REQ_GET, "GET"},
        [R_ONE] = {EVHTTP_REQ_GET | EVHTTP_REQ_DELETE, "GET, DELETE"},
        [R_ONE_CANCEL] = {EVHTTP_REQ_POST, "POST"},
        [R_ONE_LOGS] = {EVHTTP_REQ_GET, "GET"},
        [R_ONE_EVENTS] = {EVHTTP_REQ_GET, "GET"},
        [R_METRICS] = {EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD"},
};
_Static_assert(ELEMENTSOF(route_methods) == _R_MAX, "every route has its methods");

/* Matches path (without query) to a route; ref receives the {id} segment. -ENOENT if none. */
static int route_match(const char *path, enum route_id *ret, char *ref, size_t ref_size)
{
        const char *p, *slash;
        size_t n;

        if (strcmp(path, API_PREFIX "/pub/health") == 0)
                return *ret = R_HEALTH, 0;
        if (strcmp(path, API_PREFIX "/pub/attest") == 0)
                return *ret = R_ATTEST, 0;
        if (strcmp(path, "/metrics") == 0)
                return *ret = R_METRICS, 0;
        if (strcmp(path, API_PREFIX "/containers") == 0)
                return *ret = R_CONTAINERS, 0;
        if (strcmp(path, API_PREFIX "/container") == 0)
                return *ret = R_CONTAINER, 0;
        if (strcmp(path, API_PREFIX "/container/cancel") == 0)
                return *ret = R_CANCEL, 0;
        if (!ck_startswith(path, API_PREFIX "/container/"))
                return -ENOENT;
        p = path + strlen(API_PREFIX "/container/");
        slash = strchr(p, '/');
        n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || n >= ref_size)
                return -ENOENT;
        memcpy(ref, p, n);
        ref[n] = 0;
        if (!slash)
                return *ret = R_ONE, 0;
        if (strcmp(slash, "/cancel") == 0)
                return *ret = R_ONE_CANCEL, 0;
        if (strcmp(slash, "/logs") == 0)
                return *ret = R_ONE_LOGS, 0;
        if (strcmp(slash, "/events") == 0)
                return *ret = R_ONE_EVENTS, 0;
        return -ENOENT;
}

static struct api_conn *conn_track(struct api_server *s, struct evhttp_request *req);

static const char *method_name(enum evhttp_cmd_type m)
{
        switch (m) {
        case EVHTTP_REQ_GET:
                return "GET";
        case EVHTTP_REQ_POST:
                return "POST";
        case EVHTTP_REQ_DELETE:
                return "DELETE";
        case EVHTTP_REQ_HEAD:
                return "HEAD";
        case EVHTTP_REQ_PUT:
                return "PUT";
        default:
                return "other";
        }
}

/* The Prometheus exposition: plain text, not the JSON envelope, because scrapers parse it as
 * the text format. Authentication is the API's own (a scraper sends the bearer token). */
static void reply_metrics(struct evhttp_request *req)
{
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        struct ck_buf b;
        uint8_t *text;
        size_t n;

        ck_buf_init(&b, 4u << 20);
        if (ck_metrics_render(&b) < 0) {
                ck_buf_free(&b);
                api_reply(req, 500, "cannot render metrics", NULL);
                return;
        }
        text = ck_buf_take(&b, &n);
        evhttp_add_header(h, "Content-Type", CK_METRICS_CONTENT_TYPE);
        evbuffer_add(evhttp_request_get_output_buffer(req), text, n);
        free(text);
        evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_request(struct evhttp_request *req, void *arg)
{
        struct api_server *s = arg;
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        enum evhttp_cmd_type method = evhttp_request_get_command(req);
        _cleanup_free_ char *path = NULL;
        char ref[256];
        enum route_id route;

        /* The connection limit: a connection over it gets one answer and is closed. */
        if (!conn_track(s, req) || s->connections > s->cfg.max_connections) {
                evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
                api_reply(req, 503, "too many connections; try again later", NULL);
                return;
        }
        if (!uri || !evhttp_uri_get_path(uri)) {
                api_reply(req, 400, "malformed request URI", NULL);
                return;
        }
        path = evhttp_uridecode(evhttp_uri_get_path(uri), 0, NULL);
        if (!path || strlen(path) > 1024) {
                api_reply(req, 400, "malformed request path", NULL);
                return;
        }

        /* Method, path and whether a credential came with it (never the credential): what an
         * operator needs to see which requests reached the API, e.g. that an attesting client
         * stopped after /pub/attest. */
        log_debug("API request: %s %.256s (%s)", method_name(method), evhttp_uri_get_path(uri),
                  evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization")
                          ? "with Authorization"
                          : "no Authorization");
        if (route_match(path, &route, ref, sizeof(ref)) < 0) {
                if (!authorized(s, req)) {
                        api_reply(req, 401, "missing or invalid API token (Authorization: Bearer <token>)",
                                  NULL);
                        return;
                }
                api_reply(req, 404, "no such route", NULL);
                return;
        }
        /* /pub/ routes answer without a token: health, and the evidence a client checks before
         * it trusts conkerd with one. */
        if (route != R_HEALTH && route != R_ATTEST && !authorized(s, req)) {
                evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
                api_reply(req, 401, "missing or invalid API token (Authorization: Bearer <token>)", NULL);
                return;
        }
        if (!(route_methods[route].methods & method)) {
                evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                                  route_methods[route].allow);
                api_reply(req, 405, "method not allowed on this route", NULL);
                return;
        }

        /* Bodies are only meaningful for create; the cap is enforced here so the client gets
         * the envelope (evhttp's own limit is API_BODY_HARD_FACTOR times higher). */
        if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > s->cfg.max_body_size) {
                api_reply(req, 413, "request body is larger than max-body-size", NULL);
                return;
        }

        switch (route) {
        case R_HEALTH:
                api_reply(req, 200, "ok",
                          json_pack("{s:s,s:s}", "Status", "healthy", "Version", s->cfg.version));
                return;
        case R_ATTEST:
                api_route_attest(s, req);
                return;
        case R_CONTAINER:
                if (method == EVHTTP_REQ_POST)
                        api_route_create(s, req);
                else if (method == EVHTTP_REQ_GET)
                        api_route_get(s, req, NULL);
                else
                        api_route_delete(s, req, NULL);
                return;
        case R_CANCEL:
                api_route_cancel(s, req, NULL);
                return;
        case R_CONTAINERS:
                api_route_list(s, req);
                return;
        case R_ONE:
                if (method == EVHTTP_REQ_GET)
                        api_route_get(s, req, ref);
                else
                        api_route_delete(s, req, ref);
                return;
        case R_ONE_CANCEL:
                api_route_cancel(s, req, ref);
                return;
        case R_ONE_LOGS:
                api_route_logs(s, req, ref);
                return;
        case R_ONE_EVENTS:
                api_route_events(s, req, ref);
                return;
        case R_METRICS:
                reply_metrics(req);
                return;
        case _R_MAX:
                break;
        }
        api_reply(req, 404, "no such route", NULL);
}

/* ---- connections ----
 *
 * libevent 2.1 has no connection limit and no hook when an accepted connection goes away, so
 * connections are tracked from their first request (closecb), and a request on a connection
 * over the limit is answered 503 and the connection closed. A connection that never sends a
 * request is closed by http-timeout. The tracker also owns the connection's close callback for
 * log streams (there is only one per connection). */

struct api_conn {
        struct api_conn *next;
        struct api_server *s;
        struct evhttp_connection *evcon;
        void (*on_close)(void *userdata);
        void *userdata;
};

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
        struct api_conn *c = arg, **pp;

        for (pp = &c->s->conns; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
        c->s->connections--;
        if (c->on_close)
                c->on_close(c->userdata);
        free(c);
}

static struct api_conn *conn_track(struct api_server *s, struct evhttp_request *req)
{
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct api_conn *c;

        if (!evcon)
                return NULL;
        for (c = s->conns; c; c = c->next)
                if (c->evcon == evcon)
                        return c;
        c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->s = s;
        c->evcon = evcon;
        c->next = s->conns;
        s->conns = c;
        s->connections++;
        evhttp_connection_set_closecb(evcon, on_conn_close, c);
        return c;
}

void api_conn_set_close_hook(struct api_server *s, struct evhttp_request *req, void (*fn)(void *),
                             void *userdata)
{
        struct api_conn *c = conn_track(s, req);

        if (c) {
                c->on_close = fn;
                c->userdata = userdata;
        }
}

static struct bufferevent *on_new_connection(struct event_base *base, void *arg)
{
        struct api_server *s = arg;
        SSL *ssl = SSL_new(s->ssl_ctx);
        struct bufferevent *bev;

        if (!ssl)
                return NULL;
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!bev)
                SSL_free(ssl);
        return bev;
}

static int tls_setup(struct api_server *s, struct ck_error **reterr)
{
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

        if (!ctx)
                return ck_ssl_error(reterr, -ENOMEM, "TLS context");
        s->ssl_ctx = ctx;
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        /* CLEANSE_PLAINTEXT: OpenSSL wipes its copies of the records (tokens, registry passwords). */
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                         SSL_OP_CLEANSE_PLAINTEXT);
        if (s->cfg.tls_auto) {
                int r = api_attest_tls_setup(s, ctx, reterr);
                if (r < 0)
                        return r;
        } else if (SSL_CTX_use_certificate_chain_file(ctx, s->cfg.tls_cert) != 1)
                return ck_ssl_error(reterr, -EINVAL, "cannot load tls-cert %s", s->cfg.tls_cert);
        else if (SSL_CTX_use_PrivateKey_file(ctx, s->cfg.tls_key, SSL_FILETYPE_PEM) != 1)
                return ck_ssl_error(reterr, -EINVAL, "cannot load tls-key %s", s->cfg.tls_key);
        else if (SSL_CTX_check_private_key(ctx) != 1)
                return ck_ssl_error(reterr, -EINVAL, "tls-key does not match tls-cert");
        if (s->cfg.tls_client_ca && *s->cfg.tls_client_ca) {
                if (SSL_CTX_load_verify_locations(ctx, s->cfg.tls_client_ca, NULL) != 1)
                        return ck_ssl_error(reterr, -EINVAL, "cannot load tls-client-ca %s",
                                            s->cfg.tls_client_ca);
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        }
        return 0;
}

/* "host:port" / "[v6]:port" -> host (brackets removed) and port. */
static int split_listen(const char *listen, char *host, size_t host_size, uint16_t *port,
                        struct ck_error **reterr)
{
        const char *colon = strrchr(listen, ':');
        const char *h = listen;
        size_t n;
        uint64_t p;

        if (!colon || ck_parse_uint(colon + 1, 65535, &p) < 0)
                return ck_error_set(reterr, -EINVAL, "listen address \"%s\" is not HOST:PORT", listen);
        n = (size_t)(colon - listen);
        if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
                h++;
                n -= 2;
        }
        if (n == 0 || n >= host_size)
                return ck_error_set(reterr, -EINVAL, "listen address \"%s\" has a bad host", listen);
        memcpy(host, h, n);
        host[n] = 0;
        *port = (uint16_t)p;
        return 0;
}

int api_server_new(struct event_base *base, const struct api_config *cfg, struct task_manager *m,
                   struct api_server **ret, struct ck_error **reterr)
{
        struct api_server *s;
        char host[256];
        uint16_t port = 0;
        int r;

        if (cfg->auth && !cfg->token && !(cfg->tls_client_ca && *cfg->tls_client_ca))
                return ck_error_set(reterr, -EINVAL, "auth is on but there is no token");
        r = split_listen(cfg->listen, host, sizeof(host), &port, reterr);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->cfg = *cfg;
        s->base = base;
        s->m = m;
        r = api_jobs_init(s);
        if (r < 0)
                goto fail;
        if (cfg->tls_auto) {
                r = api_attest_new(s, reterr);
                if (r < 0)
                        goto fail;
        }
        if (cfg->tls_auto || (cfg->tls_cert && *cfg->tls_cert)) {
                r = tls_setup(s, reterr);
                if (r < 0)
                        goto fail;
        }
        s->http = evhttp_new(base);
        if (!s->http) {
                r = -ENOMEM;
                goto fail;
        }
        evhttp_set_max_body_size(s->http, (ev_ssize_t)(cfg->max_body_size * API_BODY_HARD_FACTOR));
        evhttp_set_max_headers_size(s->http, (ev_ssize_t)cfg->max_header_size);
        evhttp_set_timeout(s->http, (int)cfg->timeout_s);
        evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
                                                    EVHTTP_REQ_PUT | EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH |
                                                    EVHTTP_REQ_OPTIONS);
        evhttp_set_default_content_type(s->http, "application/json");
        if (s->ssl_ctx)
                evhttp_set_bevcb(s->http, on_new_connection, s);
        evhttp_set_gencb(s->http, on_request, s);

        s->bound = evhttp_bind_socket_with_handle(s->http, host, port);
        if (!s->bound) {
                r = ck_error_errno(reterr, errno ? -errno : -EADDRINUSE, "cannot listen on %s", cfg->listen);
                goto fail;
        }
        {
                struct sockaddr_storage ss = {0};
                socklen_t len = sizeof(ss);
                evutil_socket_t fd = evhttp_bound_socket_get_fd(s->bound);
                if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
                        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                                 : ((struct sockaddr_in *)&ss)->sin_port);
        }
        log_info("API listening on %s port %u (%s%s)", host, s->port,
                 s->attest    ? "HTTPS, attested certificate (tls-cert = auto)"
                 : s->ssl_ctx ? "HTTPS"
                              : "HTTP",
                 !cfg->auth ? ", AUTH DISABLED" : "");
        *ret = s;
        return 0;
fail:
        api_server_free(s);
        return r;
}

uint16_t api_server_port(const struct api_server *s)
{
        return s->port;
}

void api_server_free(struct api_server *s)
{
        if (!s)
                return;
        api_jobs_shutdown(s);
        api_follows_shutdown(s);
        api_attest_free(s);
        if (s->http)
                evhttp_free(s->http);
        if (s->jobs_event)
                event_free(s->jobs_event);
        if (s->ssl_ctx)
                SSL_CTX_free(s->ssl_ctx);
        pthread_mutex_destroy(&s->jobs_lock);
        pthread_cond_destroy(&s->jobs_cond);
        free(s);
}
