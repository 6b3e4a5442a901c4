/* conker-broker-load: secret releases per second against a broker.
 *
 *   conker-broker-load --endpoint 127.0.0.1:PORT --sim-dir DIR --sim-state-dir DIR --app-id ID
 *                      [--plain] [--clients C] [--seconds T]
 *
 * Runs C client threads for T seconds. Every connection uses a fresh identity (a new P-256 key
 * and self-signed certificate), makes a full TLS 1.3 handshake with it and reads the whole
 * response, which must be a 200. By default it speaks the bound protocol (docs/protocol.md):
 * after the handshake it computes the exporter value, makes evidence with the simulated TD for
 * that session and key, and sends it as POST /v1/secret: against conker-broker this measures
 * attested releases, including the TD's quote. With --plain it sends GET /v1/secret with no
 * evidence: against conker-broker-plain (same server code, no attestation) this measures plain
 * mutual-TLS exchanges with the same fresh keys and cipher. Prints one JSON line. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "client.h"
#include "exporter.h"
#include "parse.h"
#include "ratls.h"
#include "ssl.h"
#include "tee.h"

#define MAX_SAMPLES (1u << 20)

struct shared {
        struct sockaddr_in addr;
        struct attest_tee *tee;
        pthread_mutex_t tee_lock; /* the TD quotes one at a time, as in conkerd */
        struct attest_ratls_claims claims;
        bool plain;
        double stop_at;
        atomic_uint errors;
};

struct worker {
        struct shared *sh;
        unsigned id;
        pthread_t thread;
        double *lat_ms;
        size_t n;
};

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int send_all(SSL *ssl, const void *buf, size_t len)
{
        size_t n;

        return SSL_write_ex(ssl, buf, len, &n) == 1 && n == len ? 0 : -EPIPE;
}

/* One connection with a fresh identity: handshake, request (with evidence for this session
 * unless plain), whole response. Returns 0 on a 200. */
static int one_exchange(struct shared *sh)
{
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_(SSL_freep) SSL *ssl = NULL;
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_close_ int fd = -1;
        uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN];
        char buf[4096], head[256];
        size_t got = 0, n, body_len = 0;
        int one = 1, ok, r;

        if (attest_ratls_make_key_cert(600, &key, &cert, NULL) < 0)
                return -EIO;
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
            SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
                return -EIO;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sh->addr, sizeof(sh->addr)) < 0)
                return -errno;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ssl = SSL_new(ctx);
        if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1)
                return -EPROTO;
        if (sh->plain) {
                static const char req[] = "GET /v1/secret HTTP/1.1\r\nHost: broker\r\n\r\n";
                if (send_all(ssl, req, sizeof(req) - 1) < 0)
                        return -EPIPE;
        } else {
                if (broker_tls_exporter(ssl, exporter) < 0)
                        return -EPROTO;
                pthread_mutex_lock(&sh->tee_lock);
                r = attest_ratls_make_evidence(sh->tee, &sh->claims, cert, exporter, &body, &body_len, NULL);
                pthread_mutex_unlock(&sh->tee_lock);
                if (r < 0)
                        return r;
                n = (size_t)snprintf(
                        head, sizeof(head),
                        "POST /v1/secret HTTP/1.1\r\nHost: broker\r\nContent-Type: application/cbor\r\n"
                        "Content-Length: %zu\r\n\r\n",
                        body_len);
                if (send_all(ssl, head, n) < 0 || send_all(ssl, body, body_len) < 0)
                        return -EPIPE;
        }
        while (SSL_read_ex(ssl, buf + got, sizeof(buf) - 1 - got, &n) == 1) {
                got += n;
                if (got >= sizeof(buf) - 1)
                        break;
        }
        buf[got] = 0;
        ok = ck_startswith(buf, "HTTP/1.1 200 ");
        SSL_shutdown(ssl);
        return ok ? 0 : -EACCES;
}

static void *worker_main(void *arg)
{
        struct worker *w = arg;

        while (now_s() < w->sh->stop_at) {
                double t0 = now_s();
                int r = one_exchange(w->sh);
                if (r < 0) {
                        atomic_fetch_add(&w->sh->errors, 1);
                        ERR_clear_error();
                        continue;
                }
                if (w->n < MAX_SAMPLES)
                        w->lat_ms[w->n++] = (now_s() - t0) * 1000.0;
        }
        ERR_clear_error();
        return NULL;
}

/* CPU seconds (user + system) of this process so far: the client side's cost. */
static double cpu_s(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
               (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"endpoint", required_argument, NULL, 'e'},
                {"sim-dir", required_argument, NULL, 'S'},
                {"sim-state-dir", required_argument, NULL, 's'},
                {"app-id", required_argument, NULL, 'a'},
                {"plain", no_argument, NULL, 'p'},
                {"clients", required_argument, NULL, 'c'},
                {"seconds", required_argument, NULL, 't'},
                {},
        };
        struct attest_tee_config cfg = {.kind = ATTEST_TEE_KIND_SIM};
        _cleanup_(attest_tee_freep) struct attest_tee *tee = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        struct shared sh = {.addr = {.sin_family = AF_INET}};
        struct broker_endpoint ep;
        const char *endpoint = NULL,
                   *app_id = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        uint64_t clients = 8, seconds = 3;
        struct worker *w;
        double *all, t0, elapsed, cpu0, cpu;
        size_t total = 0;
        char tc[256], tc_event[7 + 64 + 1];
        uint8_t d[32];
        int c, r;

        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (c) {
                case 'e':
                        endpoint = optarg;
                        break;
                case 'S':
                        cfg.sim_dir = optarg;
                        break;
                case 's':
                        cfg.sim_state_dir = optarg;
                        break;
                case 'a':
                        app_id = optarg;
                        break;
                case 'p':
                        sh.plain = true;
                        break;
                case 'c':
                        if (ck_parse_uint(optarg, 1024, &clients) < 0 || clients == 0)
                                return 2;
                        break;
                case 't':
                        if (ck_parse_uint(optarg, 3600, &seconds) < 0 || seconds == 0)
                                return 2;
                        break;
                default:
                        return 2;
                }
        }
        if (!endpoint || broker_endpoint_parse(endpoint, &ep, &err) < 0 ||
            inet_pton(AF_INET, ep.host, &sh.addr.sin_addr) != 1) {
                fprintf(stderr, "conker-broker-load: --endpoint IPv4:PORT is required\n");
                return 2;
        }
        sh.addr.sin_port = htons((uint16_t)ep.port);
        r = attest_tee_open(&cfg, &tee, &err);
        if (r < 0) {
                fprintf(stderr, "conker-broker-load: %s\n", ck_error_message(err, r));
                return 1;
        }

        /* What conkerd does before attesting: the image and the task-config go into RTMR3, and
         * the identities carry the log and the document (the broker's policy requires both). */
        snprintf(tc, sizeof(tc),
                 "{\"env\":[],\"image\":\"bench.test/app:latest\",\"imageId\":\"%s\",\"kmsEndpoints\":[],"
                 "\"mounts\":[],\"ports\":[],\"version\":1}",
                 app_id);
        memcpy(tc_event, "sha256:", 7);
        if (ck_sha256(tc, strlen(tc), d) < 0)
                return 1;
        ck_hex_encode(d, sizeof(d), tc_event + 7);
        r = attest_tee_measure(tee, "image-digest", app_id, &err);
        if (r >= 0)
                r = attest_tee_measure(tee, "task-config", tc_event, &err);
        if (r < 0) {
                fprintf(stderr, "conker-broker-load: measuring: %s\n", ck_error_message(err, r));
                return 1;
        }

        sh.tee = tee;
        sh.claims = (struct attest_ratls_claims){.app_id = (const uint8_t *)app_id,
                                                 .app_id_len = strlen(app_id),
                                                 .rtmr3_log_from_tee = true,
                                                 .task_config = (const uint8_t *)tc,
                                                 .task_config_len = strlen(tc)};
        pthread_mutex_init(&sh.tee_lock, NULL);

        w = calloc(clients, sizeof(*w));
        if (!w)
                return 1;
        cpu0 = cpu_s();
        t0 = now_s();
        sh.stop_at = t0 + (double)seconds;
        for (unsigned i = 0; i < clients; i++) {
                w[i] = (struct worker){.sh = &sh, .id = i, .lat_ms = malloc(MAX_SAMPLES * sizeof(double))};
                if (!w[i].lat_ms || pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
                        return 1;
        }
        for (unsigned i = 0; i < clients; i++) {
                pthread_join(w[i].thread, NULL);
                total += w[i].n;
        }
        elapsed = now_s() - t0;
        cpu = cpu_s() - cpu0;

        all = malloc((total ? total : 1) * sizeof(double));
        if (!all)
                return 1;
        total = 0;
        for (unsigned i = 0; i < clients; i++) {
                memcpy(all + total, w[i].lat_ms, w[i].n * sizeof(double));
                total += w[i].n;
                free(w[i].lat_ms);
        }
        qsort(all, total, sizeof(double), cmp_double);
        printf("{\"clients\":%llu,\"mode\":\"%s\",\"seconds\":%.2f,\"ok\":%zu,\"errors\":%u,\"per_"
               "second\":%.1f,"
               "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"cpu_s\":%.3f}\n",
               (unsigned long long)clients, sh.plain ? "plain" : "bound", elapsed, total,
               atomic_load(&sh.errors), (double)total / elapsed, total ? all[total / 2] : 0.0,
               total ? all[(size_t)((double)total * 0.99)] : 0.0, cpu);
        free(all);
        free(w);
        pthread_mutex_destroy(&sh.tee_lock);
        return 0;
}
