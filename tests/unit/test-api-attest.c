/* The attested API in-process: an evhttp server with tls_auto over a simulated TD, driven by a
 * plain OpenSSL client. The served certificate verifies as conkerd's API identity; the fresh
 * evidence of GET /pub/attest verifies with the exporter of the connection it was asked on and
 * not with another connection's; TLS 1.2 is refused; nonces out of bounds get 400; a server
 * without tls_auto answers 404. */
#include "cmocka-wrap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api-evidence.h"
#include "api-internal.h"
#include "api.h"
#include "buf.h"
#include "fs.h"
#include "json.h"
#include "parse.h"
#include "sim-td-fixture.h"
#include "ssl.h"

static struct sim_td td;
static struct event_base *base;
static struct api_server *api;
static pthread_t loop_thread;
static sem_t loop_running;
static struct ck_secret *tok;

static void loop_started(evutil_socket_t fd, short what, void *arg)
{
        sem_post(&loop_running);
}

static void *loop_main(void *arg)
{
        event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
        return NULL;
}

static int server_start(bool tls_auto)
{
        struct api_config ac = {.listen = "127.0.0.1:0",
                                .auth = true,
                                .token = tok,
                                .tls_auto = tls_auto,
                                .tee = td.tee,
                                .max_body_size = 4096,
                                .max_header_size = 8192,
                                .max_connections = 16,
                                .timeout_s = 10,
                                .version = "test"};
        _cleanup_error_ struct ck_error *e = NULL;
        int r;

        base = event_base_new();
        /* The route needs no task manager. */
        r = api_server_new(base, &ac, NULL, &api, &e);
        if (r < 0)
                fail_msg("api: %s", ck_error_message(e, r));
        if (sem_init(&loop_running, 0, 0) < 0 ||
            event_base_once(base, -1, EV_TIMEOUT, loop_started, NULL, NULL) < 0 ||
            pthread_create(&loop_thread, NULL, loop_main, NULL) != 0)
                return -1;
        while (sem_wait(&loop_running) < 0)
                if (errno != EINTR)
                        return -1;
        return 0;
}

/* Waits (bounded) until the server has seen every client connection close: TLS connections
 * still open when the server is freed are libevent's to tear down, which it does not fully do
 * once the loop has stopped. */
static void wait_connections_closed(void)
{
        for (int i = 0; i < 1000 && __atomic_load_n(&api->connections, __ATOMIC_RELAXED) > 0; i++)
                usleep(10000);
        assert_int_equal(__atomic_load_n(&api->connections, __ATOMIC_RELAXED), 0);
}

static void server_stop(void)
{
        wait_connections_closed();
        event_base_loopbreak(base);
        pthread_join(loop_thread, NULL);
        api_server_free(api);
        event_base_free(base);
        api = NULL;
        base = NULL;
}

static int setup(void **state)
{
        if (evthread_use_pthreads() < 0)
                return -1;
        tok = ck_secret_new("0123456789abcdef", 16);
        if (!tok)
                return -1;
        return sim_td_setup(&td, "ck-test-apiatt");
}

static int teardown(void **state)
{
        ck_secret_free(tok);
        return sim_td_teardown(&td);
}

static int get_collateral(void *userdata, const uint8_t *quote, size_t len, struct attest_collateral **ret,
                          struct ck_error **reterr)
{
        return attest_collateral_load_file(td.colpath, ret, reterr);
}

struct conn {
        int fd;
        SSL_CTX *ctx;
        SSL *ssl;
};

static void conn_close(struct conn *c)
{
        if (c->ssl)
                SSL_free(c->ssl);
        if (c->ctx)
                SSL_CTX_free(c->ctx);
        if (c->fd >= 0)
                close(c->fd);
        *c = (struct conn){.fd = -1};
}

/* A TLS connection to the server (max_version: TLS1_3_VERSION or TLS1_2_VERSION); returns
 * whether the handshake succeeded. No certificate check: the tests check the evidence. */
static bool conn_open(struct conn *c, int max_version)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(api_server_port(api))};

        *c = (struct conn){.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_true(c->fd >= 0);
        assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        c->ctx = SSL_CTX_new(TLS_client_method());
        assert_non_null(c->ctx);
        SSL_CTX_set_max_proto_version(c->ctx, max_version);
        c->ssl = SSL_new(c->ctx);
        assert_non_null(c->ssl);
        SSL_set_fd(c->ssl, c->fd);
        return SSL_connect(c->ssl) == 1;
}

static void conn_ekm(struct conn *c, uint8_t ekm[ATTEST_API_EKM_LEN])
{
        assert_int_equal(SSL_export_keying_material(c->ssl, ekm, ATTEST_API_EKM_LEN,
                                                    ATTEST_API_EXPORTER_LABEL,
                                                    strlen(ATTEST_API_EXPORTER_LABEL), NULL, 0, 0),
                         1);
}

/* GET path on the connection (keep-alive); returns the status and the envelope. */
static long conn_get(struct conn *c, const char *path, json_t **ret_env)
{
        char req[512], buf[65536];
        size_t len = 0;
        const char *hdr_end = NULL, *cl;
        long status = 0;
        size_t body_len = 0;

        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
        assert_int_equal(SSL_write(c->ssl, req, (int)strlen(req)), (int)strlen(req));
        for (;;) {
                int n = SSL_read(c->ssl, buf + len, (int)(sizeof(buf) - 1 - len));
                assert_true(n > 0);
                len += (size_t)n;
                buf[len] = 0;
                hdr_end = strstr(buf, "\r\n\r\n");
                if (!hdr_end)
                        continue;
                cl = strcasestr(buf, "Content-Length:");
                assert_non_null(cl);
                body_len = strtoul(cl + 15, NULL, 10);
                if (len >= (size_t)(hdr_end + 4 - buf) + body_len)
                        break;
        }
        assert_int_equal(sscanf(buf, "HTTP/1.1 %ld", &status), 1);
        assert_int_equal(ck_json_loadb((const uint8_t *)hdr_end + 4, body_len, sizeof(buf), ret_env, NULL),
                         0);
        return status;
}

#define NONCE_HEX_LIT "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
static const char NONCE_HEX[] = NONCE_HEX_LIT;

static void test_served_identity_and_fresh_evidence(void **state)
{
        _cleanup_(attest_result_freep) struct attest_result *cert_res = NULL, *res = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ uint8_t *ev = NULL;
        struct attest_verify_opts opts = {.now = time(NULL), .root = td.root};
        struct conn c1, c2;
        uint8_t ekm1[32], ekm2[32], nonce[32];
        json_t *env = NULL;
        const char *hex;
        X509 *peer;
        size_t ev_len = 0;
        int r;

        assert_int_equal(server_start(true), 0);
        assert_true(conn_open(&c1, TLS1_3_VERSION));
        assert_true(conn_open(&c2, TLS1_3_VERSION));
        peer = SSL_get0_peer_certificate(c1.ssl);
        assert_non_null(peer);
        r = attest_api_cert_verify(peer, get_collateral, NULL, &opts, &cert_res, &e);
        if (r < 0)
                fail_msg("certificate: %s", ck_error_message(e, r));

        assert_int_equal(conn_get(&c1, "/sw/api/v1/pub/attest?nonce=" NONCE_HEX_LIT, &env), 200);
        hex = json_string_value(json_object_get(json_object_get(env, "data"), "Evidence"));
        assert_non_null(hex);
        assert_int_equal(ck_hex_decode_alloc(hex, strlen(hex), ATTEST_API_EVIDENCE_MAX, &ev, &ev_len), 0);
        json_decref(env);
        assert_int_equal(ck_hex_decode(NONCE_HEX, 64, nonce, 32), 0);
        /* A request on the second connection too, so that the server tracks it (and the test
         * can wait for its close). */
        assert_int_equal(conn_get(&c2, "/sw/api/v1/pub/health", &env), 200);
        json_decref(env);
        conn_ekm(&c1, ekm1);
        conn_ekm(&c2, ekm2);
        assert_memory_not_equal(ekm1, ekm2, 32);

        r = attest_api_evidence_verify(ev, ev_len, peer, nonce, 32, ekm1, get_collateral, NULL, &opts, &res,
                                       &e);
        if (r < 0)
                fail_msg("fresh evidence: %s", ck_error_message(e, r));
        /* The same evidence relayed to another connection (another exporter) is refused. */
        {
                struct attest_result *res2 = NULL;
                assert_int_equal(attest_api_evidence_verify(ev, ev_len, SSL_get0_peer_certificate(c2.ssl),
                                                            nonce, 32, ekm2, get_collateral, NULL, &opts,
                                                            &res2, NULL),
                                 -EKEYREJECTED);
                assert_null(res2);
        }
        conn_close(&c1);
        conn_close(&c2);
        server_stop();
}

static void test_nonce_bounds_and_tls12(void **state)
{
        static const char *const bad[] = {
                "/sw/api/v1/pub/attest",
                "/sw/api/v1/pub/attest?nonce=",
                "/sw/api/v1/pub/attest?nonce=00112233445566778899aabbccddee",   /* 15 bytes */
                "/sw/api/v1/pub/attest?nonce=0011223344556677889",              /* odd */
                "/sw/api/v1/pub/attest?nonce=zz112233445566778899aabbccddeeff", /* not hex */
                /* 65 bytes: one over ATTEST_API_NONCE_MAX, the size of the buffer it goes in */
                "/sw/api/v1/pub/attest?nonce="
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00",
        };
        struct conn c;

        assert_int_equal(server_start(true), 0);
        /* TLS 1.2 has no exporter bound to the whole handshake: refused. */
        assert_false(conn_open(&c, TLS1_2_VERSION));
        conn_close(&c);
        assert_true(conn_open(&c, TLS1_3_VERSION));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_t *env = NULL;
                if (conn_get(&c, bad[i], &env) != 400)
                        fail_msg("%s was not refused with 400", bad[i]);
                json_decref(env);
        }
        conn_close(&c);
        server_stop();
}

/* Without tls-cert = auto there is nothing to attest: 404 (over plain HTTP here). */
static void test_no_identity_404(void **state)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        static const char req[] =
                "GET /sw/api/v1/pub/attest?nonce=00112233445566778899aabbccddeeff HTTP/1.0\r\n\r\n";
        char buf[4096] = {0};
        size_t len = 0;
        ssize_t n;
        int fd;

        assert_int_equal(server_start(false), 0);
        sa.sin_port = htons(api_server_port(api));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
        while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
                len += (size_t)n;
        close(fd);
        assert_non_null(strstr(buf, "HTTP/1.0 404"));
        assert_non_null(strstr(buf, "tls-cert is not auto"));
        server_stop();
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_served_identity_and_fresh_evidence),
                cmocka_unit_test(test_nonce_bounds_and_tls12),
                cmocka_unit_test(test_no_identity_404),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
