/* The registry client against a scripted plain-HTTP server (libevent evhttp on 127.0.0.1, in a
 * thread): the error paths that a real registry will not produce on demand. The happy paths,
 * TLS, Bearer and redirects across hosts are covered end to end (tests/e2e/test_image_registry.py). */
#include "cmocka-wrap.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry.h"

enum mode {
        MODE_OK,
        MODE_PING_404,
        MODE_BASIC_ONLY,
        MODE_REDIRECT_LOOP,
        MODE_RETRY_DATE,
        MODE_BIG_MANIFEST,
        MODE_BAD_TOKEN,
        MODE_BAD_REALM,
        MODE_TOKEN_NAME_UNKNOWN, /* the token server answers 404 NAME_UNKNOWN */
        MODE_ERROR_JSON,
        MODE_SHORT_BLOB,
        MODE_KEEP_OPEN,         /* no authentication */
        MODE_KEEP_BASIC,        /* Basic, user "u" password "p" */
        MODE_KEEP_BEARER,       /* Bearer, tokens from /token for u:p */
        MODE_KEEP_BEARER_MOVED, /* the same with the realm moved to /token2 (/token is gone) */
};

static struct {
        struct event_base *base;
        struct evhttp *http;
        pthread_t thread;
        int port;
        atomic_int mode;
        atomic_int hits;
        atomic_int manifest_hits;
        atomic_llong first_ms, second_ms;
        atomic_int pings;
        atomic_int last_port; /* the client port of the last request */
} srv;

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reply(struct evhttp_request *req, int code, const char *ctype, const char *body, size_t len)
{
        struct evbuffer *b = evbuffer_new();

        if (ctype)
                evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
        evbuffer_add(b, body, len);
        evhttp_send_reply(req, code, "x", b);
        evbuffer_free(b);
}

static void reply_s(struct evhttp_request *req, int code, const char *ctype, const char *body)
{
        reply(req, code, ctype, body, strlen(body));
}

static void handler(struct evhttp_request *req, void *arg)
{
        const char *uri = evhttp_request_get_uri(req);
        struct evkeyvalq *out = evhttp_request_get_output_headers(req);
        char loc[128];

        atomic_fetch_add(&srv.hits, 1);
        if (strcmp(uri, "/v2/") == 0)
                atomic_fetch_add(&srv.pings, 1);
        {
                char *addr = NULL;
                ev_uint16_t port = 0;

                evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
                atomic_store(&srv.last_port, port);
        }
        if (atomic_load(&srv.mode) == MODE_KEEP_BASIC) {
                const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

                if (!a || strcmp(a, "Basic dTpw") != 0) { /* base64("u:p") */
                        evhttp_add_header(out, "WWW-Authenticate", "Basic realm=\"test\"");
                        return reply_s(req, 401, "application/json", "{}");
                }
        }
        if (atomic_load(&srv.mode) == MODE_KEEP_BEARER || atomic_load(&srv.mode) == MODE_KEEP_BEARER_MOVED) {
                bool moved = atomic_load(&srv.mode) == MODE_KEEP_BEARER_MOVED;
                const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

                if (strncmp(uri, moved ? "/token2?" : "/token?", moved ? 8 : 7) == 0) {
                        if (!a || strcmp(a, "Basic dTpw") != 0)
                                return reply_s(req, 401, "application/json", "{}");
                        return reply_s(req, 200, "application/json", "{\"token\":\"tok\"}");
                }
                if (strncmp(uri, "/token", 6) == 0)
                        return reply_s(req, 404, "text/plain", "no");
                if (!a || strcmp(a, "Bearer tok") != 0) {
                        snprintf(loc, sizeof(loc), "Bearer realm=\"http://127.0.0.1:%d/%s\",service=\"t\"",
                                 srv.port, moved ? "token2" : "token");
                        evhttp_add_header(out, "WWW-Authenticate", loc);
                        return reply_s(req, 401, "application/json", "{}");
                }
                return reply_s(req, 200, "application/vnd.oci.image.manifest.v1+json",
                               "{\"schemaVersion\":2}");
        }
        switch (atomic_load(&srv.mode)) {
        case MODE_KEEP_BASIC:
        case MODE_KEEP_OPEN:
                if (strcmp(uri, "/v2/") == 0)
                        return reply_s(req, 200, "application/json", "{}");
                return reply_s(req, 200, "application/vnd.oci.image.manifest.v1+json",
                               "{\"schemaVersion\":2}");
        case MODE_PING_404:
                return reply_s(req, 404, "text/plain", "no");
        case MODE_BASIC_ONLY:
                evhttp_add_header(out, "WWW-Authenticate", "Basic realm=\"test\"");
                return reply_s(req, 401, "application/json",
                               "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication "
                               "required\"}]}");
        case MODE_REDIRECT_LOOP:
                if (strcmp(uri, "/v2/") == 0)
                        return reply_s(req, 200, "application/json", "{}");
                snprintf(loc, sizeof(loc), "http://127.0.0.1:%d/v2/loop/manifests/x%d", srv.port,
                         atomic_load(&srv.hits));
                evhttp_add_header(out, "Location", loc);
                return reply_s(req, 307, NULL, "");
        case MODE_RETRY_DATE:
                if (strcmp(uri, "/v2/") == 0)
                        return reply_s(req, 200, "application/json", "{}");
                if (atomic_fetch_add(&srv.manifest_hits, 1) == 0) {
                        char date[64];
                        time_t t = time(NULL) + 2;
                        struct tm tm;

                        gmtime_r(&t, &tm);
                        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
                        atomic_store(&srv.first_ms, now_ms());
                        evhttp_add_header(out, "Retry-After", date);
                        return reply_s(req, 503, "application/json", "{}");
                }
                atomic_store(&srv.second_ms, now_ms());
                return reply_s(req, 200, "application/vnd.oci.image.manifest.v1+json",
                               "{\"schemaVersion\":2}");
        case MODE_BIG_MANIFEST: {
                size_t n = (4u << 20) + 1;
                char *big = malloc(n);

                if (strcmp(uri, "/v2/") == 0) {
                        free(big);
                        return reply_s(req, 200, "application/json", "{}");
                }
                memset(big, ' ', n);
                reply(req, 200, "application/vnd.oci.image.manifest.v1+json", big, n);
                free(big);
                return;
        }
        case MODE_BAD_TOKEN:
        case MODE_BAD_REALM:
                if (strncmp(uri, "/token", 6) == 0)
                        return reply_s(req, 200, "application/json", "{\"token\":\"abc\\r\\nX-Evil: 1\"}");
                snprintf(loc, sizeof(loc), "Bearer realm=\"%s://127.0.0.1:%d/token\",service=\"t\"",
                         atomic_load(&srv.mode) == MODE_BAD_REALM ? "ftp" : "http", srv.port);
                evhttp_add_header(out, "WWW-Authenticate", loc);
                return reply_s(req, 401, "application/json", "{}");
        case MODE_TOKEN_NAME_UNKNOWN:
                if (strncmp(uri, "/token", 6) == 0)
                        return reply_s(req, 404, "application/json",
                                       "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":\"no\"}]}");
                snprintf(loc, sizeof(loc), "Bearer realm=\"http://127.0.0.1:%d/token\",service=\"t\"",
                         srv.port);
                evhttp_add_header(out, "WWW-Authenticate", loc);
                return reply_s(req, 401, "application/json", "{}");
        case MODE_ERROR_JSON:
                if (strcmp(uri, "/v2/") == 0)
                        return reply_s(req, 200, "application/json", "{}");
                return reply_s(req, 500, "application/json",
                               "{\"errors\":[{\"code\":\"X\",\"message\":\"bad\\u001b[31mthing\\nhere\"}]}");
        case MODE_SHORT_BLOB:
                if (strcmp(uri, "/v2/") == 0)
                        return reply_s(req, 200, "application/json", "{}");
                return reply_s(req, 200, "application/octet-stream", "0123456789");
        default:
                return reply_s(req, 200, "application/json", "{}");
        }
}

static sem_t server_running;

static void server_started(evutil_socket_t fd, short what, void *arg)
{
        sem_post(&server_running);
}

static void *server_main(void *arg)
{
        event_base_dispatch(srv.base);
        return NULL;
}

static int setup(void **state)
{
        struct evhttp_bound_socket *bs;
        struct sockaddr_in sin;
        socklen_t sl = sizeof(sin);

        evthread_use_pthreads();
        srv.base = event_base_new();
        srv.http = evhttp_new(srv.base);
        assert_non_null(srv.http);
        evhttp_set_gencb(srv.http, handler, NULL);
        evhttp_set_max_body_size(srv.http, 1 << 20);
        bs = evhttp_bind_socket_with_handle(srv.http, "127.0.0.1", 0);
        assert_non_null(bs);
        assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &sl), 0);
        srv.port = ntohs(sin.sin_port);
        /* Wait for the loop to run: a loopbreak that comes before it would be forgotten. */
        assert_int_equal(sem_init(&server_running, 0, 0), 0);
        assert_int_equal(event_base_once(srv.base, -1, EV_TIMEOUT, server_started, NULL, NULL), 0);
        assert_int_equal(pthread_create(&srv.thread, NULL, server_main, NULL), 0);
        while (sem_wait(&server_running) < 0)
                assert_int_equal(errno, EINTR);
        return 0;
}

static int teardown(void **state)
{
        event_base_loopbreak(srv.base);
        pthread_join(srv.thread, NULL);
        evhttp_free(srv.http);
        event_base_free(srv.base);
        return 0;
}

static struct registry_client *client(atomic_int *cancel, unsigned retries)
{
        char domain[64];
        struct registry_client *c = NULL;
        struct registry_opts o = {
                .domain = domain,
                .plain_http = 1,
                .retries = retries,
                .connect_timeout_ms = 2000,
                .cancel = cancel,
        };

        snprintf(domain, sizeof(domain), "127.0.0.1:%d", srv.port);
        assert_int_equal(registry_client_new(&o, &c, NULL), 0);
        return c;
}

static int get_manifest(struct registry_client *c, const char *repo, const char *ref, struct ck_error **err)
{
        uint8_t *body = NULL;
        size_t len = 0;
        char *mt = NULL, *dg = NULL;
        int r = registry_get_manifest(c, repo, ref, &body, &len, &mt, &dg, err);

        if (r >= 0) {
                free(body);
                free(mt);
                free(dg);
        }
        return r;
}

static void start(enum mode m)
{
        atomic_store(&srv.mode, m);
        atomic_store(&srv.hits, 0);
        atomic_store(&srv.manifest_hits, 0);
        atomic_store(&srv.pings, 0);
}

static void test_ping_404(void **state)
{
        struct registry_client *c = client(NULL, 1);
        _cleanup_error_ struct ck_error *err = NULL;

        start(MODE_PING_404);
        assert_int_equal(get_manifest(c, "a/b", "latest", &err), -EPROTO);
        assert_non_null(strstr(err->msg, "does not serve the registry API"));
        registry_client_free(c);
}

static void test_basic_needed(void **state)
{
        struct registry_client *c = client(NULL, 1);
        _cleanup_error_ struct ck_error *err = NULL;

        start(MODE_BASIC_ONLY);
        assert_int_equal(get_manifest(c, "a/b", "latest", &err), -EACCES);
        assert_non_null(strstr(err->msg, "requires authentication"));
        /* Ping, then one request: no credentials to offer, so no second try. */
        assert_int_equal(atomic_load(&srv.hits), 2);
        registry_client_free(c);
}

static void test_redirect_loop(void **state)
{
        struct registry_client *c = client(NULL, 1);
        _cleanup_error_ struct ck_error *err = NULL;

        start(MODE_REDIRECT_LOOP);
        assert_int_equal(get_manifest(c, "loop", "x", &err), -ELOOP);
        assert_int_equal(atomic_load(&srv.hits), 1 + 11); /* ping + the request and 10 redirects */
        registry_client_free(c);
}

static void test_retry_after_date(void **state)
{
        struct registry_client *c = client(NULL, 2);
        _cleanup_error_ struct ck_error *err = NULL;
        int r;

        start(MODE_RETRY_DATE);
        r = get_manifest(c, "a", "t", &err);
        if (r < 0)
                fail_msg("%s", ck_error_message(err, r));
        /* An HTTP date 2 s ahead (1 s resolution): at least ~1 s of waiting. */
        assert_true(atomic_load(&srv.second_ms) - atomic_load(&srv.first_ms) >= 900);
        registry_client_free(c);
}

static void test_big_manifest(void **state)
{
        struct registry_client *c = client(NULL, 1);
        _cleanup_error_ struct ck_error *err = NULL;

        start(MODE_BIG_MANIFEST);
        assert_int_equal(get_manifest(c, "a", "t", &err), -EMSGSIZE);
        assert_non_null(strstr(err->msg, "larger than allowed"));
        registry_client_free(c);
}

static void test_bad_token_and_realm(void **state)
{
        struct registry_client *c = client(NULL, 1);
        _cleanup_error_ struct ck_error *err = NULL, *err2 = NULL;

        start(MODE_BAD_TOKEN);
        assert_int_equal(get_manifest(c, "a", "t", &err), -EBADMSG);
        assert_non_null(strstr(err->msg, "non-printable"));
        assert_null(strstr(err->msg, "Evil"));
        registry_client_free(c);

        c = client(NULL, 1);
        start(MODE_BAD_REALM);
        assert_int_equal(get_manifest(c, "a", "t", &err2), -EPROTO);
        assert_non_null(strstr(err2->msg, "realm"));
        registry_client_free(c);
}

/* A token server that says 404 NAME_UNKNOWN: the token request names no repository, so the
 * message names the registry (it used to print a NULL repository). */
static void test_token_name_unknown(void **state)
{
        struct registry_client *c = client(NULL, 1);
        _cleanup_error_ struct ck_error *err = NULL;

        (void)state;
        start(MODE_TOKEN_NAME_UNKNOWN);
        assert_int_equal(get_manifest(c, "a", "t", &err), -ENOENT);
        assert_non_null(strstr(err->msg, "repository unknown: the registry"));
        assert_null(strstr(err->msg, "(null)"));
        registry_client_free(c);
}

static void test_error_message_sanitised(void **state)
{
        struct registry_client *c = client(NULL, 1);
        _cleanup_error_ struct ck_error *err = NULL;

        start(MODE_ERROR_JSON);
        assert_int_equal(get_manifest(c, "a", "t", &err), -EPROTO);
        assert_non_null(strstr(err->msg, "HTTP 500"));
        assert_non_null(strstr(err->msg, "bad?[31mthing?here"));
        /* 500 is transient: 1 + 1 retry. */
        assert_int_equal(atomic_load(&srv.hits), 1 + 2);
        registry_client_free(c);
}

static int count_sink(void *userdata, const uint8_t *data, size_t len)
{
        *(size_t *)userdata += len;
        return 0;
}

static void test_blob_sizes(void **state)
{
        struct registry_client *c = client(NULL, 1);
        _cleanup_error_ struct ck_error *err = NULL, *err2 = NULL;
        const char *d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        size_t got = 0;

        start(MODE_SHORT_BLOB);
        /* The server sends 10 bytes: more than announced is refused... */
        assert_int_equal(registry_get_blob(c, "a", d, 4, count_sink, &got, &err), -EMSGSIZE);
        assert_true(got <= 4);
        /* ...fewer is retried (a resume), then refused. */
        got = 0;
        assert_int_equal(registry_get_blob(c, "a", d, 20, count_sink, &got, &err2), -EBADMSG);
        assert_non_null(strstr(err2->msg, "expected 20"));
        /* Exactly right is fine. */
        got = 0;
        assert_int_equal(registry_get_blob(c, "a", d, 10, count_sink, &got, NULL), 0);
        assert_int_equal(got, 10);
        registry_client_free(c);
}

static void test_bad_arguments_and_cancel(void **state)
{
        atomic_int cancel = 1;
        struct registry_client *c = client(&cancel, 1);
        struct registry_client *c2 = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        size_t got = 0;
        struct registry_opts o = {.domain = "bad host/x"};

        start(MODE_OK);
        assert_int_equal(get_manifest(c, "A/B", "t", NULL), -EINVAL);
        assert_int_equal(get_manifest(c, "a/../b?x", "t", NULL), -EINVAL);
        assert_int_equal(get_manifest(c, "a", "t/../../x", NULL), -EINVAL);
        assert_int_equal(registry_get_blob(c, "a", "sha256:abc", 1, count_sink, &got, NULL), -EINVAL);
        assert_int_equal(get_manifest(c, "a", "t", &err), -ECANCELED);
        assert_int_equal(atomic_load(&srv.hits), 0);
        registry_client_free(c);
        assert_int_equal(registry_client_new(&o, &c2, NULL), -EINVAL);
}

static struct registry_client *kept_client(struct registry_keep *keep, const char *user, const char *pw)
{
        _cleanup_(ck_secret_freep) struct ck_secret *secret = pw ? ck_secret_new(pw, strlen(pw)) : NULL;
        struct registry_client *c = NULL;
        char domain[64];
        struct registry_opts o = {
                .domain = domain,
                .username = user,
                .password = secret,
                .plain_http = 1,
                .retries = 1,
                .connect_timeout_ms = 2000,
                .keep = keep,
        };

        snprintf(domain, sizeof(domain), "127.0.0.1:%d", srv.port);
        assert_int_equal(registry_client_new(&o, &c, NULL), 0);
        return c;
}

/* A keep: the next client skips /v2/ and reuses the connection; a registry that starts asking for
 * Basic is answered through the 401; wrong credentials still fail, after asking /v2/ again, and
 * leave nothing kept. */
static void test_keep(void **state)
{
        struct registry_keep *keep = NULL;
        struct registry_client *c;
        _cleanup_error_ struct ck_error *err = NULL;
        int port;

        assert_int_equal(registry_keep_new(&keep), 0);
        start(MODE_KEEP_OPEN);
        c = kept_client(keep, NULL, NULL);
        assert_int_equal(get_manifest(c, "a/b", "t", NULL), 0);
        assert_int_equal(atomic_load(&srv.pings), 1);
        port = atomic_load(&srv.last_port);
        registry_client_free(c);

        start(MODE_KEEP_OPEN);
        c = kept_client(keep, NULL, NULL);
        assert_int_equal(get_manifest(c, "a/b", "t", NULL), 0);
        assert_int_equal(atomic_load(&srv.pings), 0);
        assert_int_equal(atomic_load(&srv.hits), 1);
        assert_int_equal(atomic_load(&srv.last_port), port); /* the same connection */
        registry_client_free(c);

        /* The registry now wants Basic: the 401 teaches it, no /v2/ needed. */
        start(MODE_KEEP_BASIC);
        c = kept_client(keep, "u", "p");
        assert_int_equal(get_manifest(c, "a/b", "t", NULL), 0);
        assert_int_equal(atomic_load(&srv.pings), 0);
        assert_int_equal(atomic_load(&srv.hits), 2);
        registry_client_free(c);

        /* Wrong password: refused under the kept scheme, then /v2/ again and refused again. */
        start(MODE_KEEP_BASIC);
        c = kept_client(keep, "u", "wrong");
        assert_int_equal(get_manifest(c, "a/b", "t", &err), -EACCES);
        assert_non_null(strstr(err->msg, "rejected the credentials for user u"));
        assert_int_equal(atomic_load(&srv.pings), 1);
        registry_client_free(c);

        /* The failed client kept nothing: the next one asks /v2/ first. */
        start(MODE_KEEP_BASIC);
        c = kept_client(keep, "u", "p");
        assert_int_equal(get_manifest(c, "a/b", "t", NULL), 0);
        assert_int_equal(atomic_load(&srv.pings), 1);
        assert_int_equal(atomic_load(&srv.hits), 2); /* ping, then the manifest with credentials */
        registry_client_free(c);

        /* Back to no authentication: the kept Basic is offered, the registry does not mind. */
        start(MODE_KEEP_OPEN);
        c = kept_client(keep, "u", "p");
        assert_int_equal(get_manifest(c, "a/b", "t", NULL), 0);
        assert_int_equal(atomic_load(&srv.hits), 1);
        registry_client_free(c);
        registry_keep_free(keep);
}

/* Bearer: a kept realm spares the ping (the token is fetched again: none is kept); a realm that
 * moved fails the token request, and the client asks /v2/ again and gets through. */
static void test_keep_bearer(void **state)
{
        struct registry_keep *keep = NULL;
        struct registry_client *c;

        assert_int_equal(registry_keep_new(&keep), 0);
        start(MODE_KEEP_BEARER);
        c = kept_client(keep, "u", "p");
        assert_int_equal(get_manifest(c, "a/b", "t", NULL), 0);
        assert_int_equal(atomic_load(&srv.pings), 1);
        assert_int_equal(atomic_load(&srv.hits), 3); /* ping, token, manifest */
        registry_client_free(c);

        start(MODE_KEEP_BEARER);
        c = kept_client(keep, "u", "p");
        assert_int_equal(get_manifest(c, "a/b", "t", NULL), 0);
        assert_int_equal(atomic_load(&srv.pings), 0);
        assert_int_equal(atomic_load(&srv.hits), 2); /* token, manifest */
        registry_client_free(c);

        start(MODE_KEEP_BEARER_MOVED);
        c = kept_client(keep, "u", "p");
        assert_int_equal(get_manifest(c, "a/b", "t", NULL), 0);
        assert_int_equal(atomic_load(&srv.pings), 1);
        assert_int_equal(atomic_load(&srv.hits), 4); /* old token realm 404, ping, new token, manifest */
        registry_client_free(c);
        registry_keep_free(keep);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ping_404),
                cmocka_unit_test(test_token_name_unknown),
                cmocka_unit_test(test_basic_needed),
                cmocka_unit_test(test_redirect_loop),
                cmocka_unit_test(test_retry_after_date),
                cmocka_unit_test(test_big_manifest),
                cmocka_unit_test(test_bad_token_and_realm),
                cmocka_unit_test(test_error_message_sanitised),
                cmocka_unit_test(test_blob_sizes),
                cmocka_unit_test(test_bad_arguments_and_cancel),
                cmocka_unit_test(test_keep),
                cmocka_unit_test(test_keep_bearer),
        };

        /* The scripted server writes with plain write(): a reply to a client that already gave up
         * (the oversized manifest) would otherwise kill the test with SIGPIPE, as conkerd, which
         * uses the same libevent server, ignores it too. */
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, setup, teardown);
}
