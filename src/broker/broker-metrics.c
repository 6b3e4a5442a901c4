/* The broker's metrics (docs/metrics.md): releases and refusals by reason, verification-cache
 * results, collateral age and secret reloads; and the small HTTP listener that serves them
 * (--metrics-listen), on its own thread and event base so a scraper never competes with the
 * RA-TLS workers. Plain HTTP: the exposition carries counts and reason codes, never a secret,
 * and the operator chooses where it listens (loopback by default in the unit). */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "parse.h"
#include "policy.h"
#include "broker-metrics.h"

int broker_metrics_declare(void)
{
        static const char *const secret[] = {"secret", NULL};
        static const char *const reason[] = {"reason", NULL};
        static const char *const result[] = {"result", NULL};
        int r = 0;

        r = r
                    ?: ck_metrics_declare("conker_broker_releases_total", CK_METRIC_COUNTER,
                                          "Secrets released to attested TDs, by secret ID.", secret, NULL,
                                          0);
        r = r
                    ?: ck_metrics_declare("conker_broker_refusals_total", CK_METRIC_COUNTER,
                                          "Requests refused, by reason code (the code the client and the "
                                          "audit log get).",
                                          reason, NULL, 0);
        r = r
                    ?: ck_metrics_declare("conker_broker_verification_cache_total", CK_METRIC_COUNTER,
                                          "Evidence verifications answered from the cache (hit) or verified "
                                          "in full (miss).",
                                          result, NULL, 0);
        r = r
                    ?: ck_metrics_declare("conker_broker_collateral_fetches_total", CK_METRIC_COUNTER,
                                          "Collateral fetches from the PCS/PCCS: ok, failed, or skipped "
                                          "(refused without a request: a fetch for that FMSPC failed "
                                          "within --pcs-failure-ttl).",
                                          result, NULL, 0);
        r = r
                    ?: ck_metrics_declare("conker_broker_collateral_age_seconds", CK_METRIC_GAUGE,
                                          "Age of the DCAP collateral (newest issueDate of TCB Info and QE "
                                          "Identity) used by "
                                          "the last full verification.",
                                          NULL, NULL, 0);
        r = r
                    ?: ck_metrics_declare(
                               "conker_broker_secret_reload_failures_total", CK_METRIC_COUNTER,
                               "Secret files that could not be reloaded (the last good value was kept).",
                               secret, NULL, 0);
        return r;
}

void broker_metrics_decision(const struct broker_decision *d)
{
        if (d->allow)
                ck_metrics_inc("conker_broker_releases_total", d->secret_id, NULL);
        else
                ck_metrics_inc("conker_broker_refusals_total", d->reason ? d->reason : "unknown", NULL);
}

struct broker_metrics_server {
        struct event_base *base;
        struct evhttp *http;
        pthread_t thread;
        bool running;
};

static void on_request(struct evhttp_request *req, void *arg)
{
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
        struct ck_buf b;
        uint8_t *text;
        size_t n;

        if (!path || strcmp(path, "/metrics") != 0) {
                evhttp_send_error(req, 404, "only /metrics is served here");
                return;
        }
        if (!(evhttp_request_get_command(req) & (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD))) {
                evhttp_send_error(req, 405, "GET only");
                return;
        }
        ck_buf_init(&b, 4u << 20);
        if (ck_metrics_render(&b) < 0) {
                ck_buf_free(&b);
                evhttp_send_error(req, 500, "cannot render metrics");
                return;
        }
        text = ck_buf_take(&b, &n);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", CK_METRICS_CONTENT_TYPE);
        evbuffer_add(evhttp_request_get_output_buffer(req), text, n);
        free(text);
        evhttp_send_reply(req, 200, "OK", NULL);
}

static void *serve(void *arg)
{
        struct broker_metrics_server *s = arg;

        event_base_dispatch(s->base);
        return NULL;
}

/* "HOST:PORT" or "[V6]:PORT" into its parts (host in buf). */
static int split_listen(const char *listen, char *host, size_t host_size, uint16_t *ret_port,
                        struct ck_error **reterr)
{
        const char *colon = strrchr(listen, ':');
        const char *h = listen;
        size_t hl;
        uint64_t port;

        if (!colon)
                return ck_error_set(reterr, -EINVAL, "--metrics-listen: expected HOST:PORT");
        hl = (size_t)(colon - listen);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
                h++;
                hl -= 2;
        }
        if (hl == 0 || hl >= host_size || ck_parse_uint(colon + 1, 65535, &port) < 0)
                return ck_error_set(reterr, -EINVAL, "--metrics-listen: expected HOST:PORT");
        memcpy(host, h, hl);
        host[hl] = 0;
        *ret_port = (uint16_t)port;
        return 0;
}

void broker_metrics_server_free(struct broker_metrics_server *s)
{
        if (!s)
                return;
        if (s->running) {
                event_base_loopbreak(s->base);
                pthread_join(s->thread, NULL);
        }
        if (s->http)
                evhttp_free(s->http);
        if (s->base)
                event_base_free(s->base);
        free(s);
}

int broker_metrics_server_new(const char *listen, struct broker_metrics_server **ret, uint16_t *ret_port,
                              struct ck_error **reterr)
{
        struct broker_metrics_server *s;
        struct evhttp_bound_socket *sock;
        char host[64];
        uint16_t port = 0;
        int r;

        r = split_listen(listen, host, sizeof(host), &port, reterr);
        if (r < 0)
                return r;
        if (evthread_use_pthreads() < 0)
                return ck_error_set(reterr, -EIO, "libevent threading support is missing");
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->base = event_base_new();
        s->http = s->base ? evhttp_new(s->base) : NULL;
        if (!s->http) {
                broker_metrics_server_free(s);
                return ck_error_set(reterr, -ENOMEM, "cannot create the metrics listener");
        }
        evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
        evhttp_set_max_headers_size(s->http, 8192);
        evhttp_set_max_body_size(s->http, 0);
        evhttp_set_timeout(s->http, 10);
        evhttp_set_gencb(s->http, on_request, s);
        sock = evhttp_bind_socket_with_handle(s->http, host, port);
        if (!sock) {
                broker_metrics_server_free(s);
                return ck_error_set(reterr, -EADDRNOTAVAIL, "--metrics-listen %s: cannot listen there",
                                    listen);
        }
        if (ret_port) {
                struct sockaddr_storage sa;
                socklen_t sl = sizeof(sa);
                evutil_socket_t fd = evhttp_bound_socket_get_fd(sock);

                if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
                        *ret_port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                                                   : ((struct sockaddr_in *)&sa)->sin_port);
        }
        r = pthread_create(&s->thread, NULL, serve, s);
        if (r != 0) {
                broker_metrics_server_free(s);
                return ck_error_set(reterr, -r, "cannot start the metrics thread");
        }
        s->running = true;
        log_info("metrics on http://%s/metrics", listen);
        *ret = s;
        return 0;
}
