/* Unit tests for the broker's client-certificate verifier on a simulated TD: a verified
 * identity, the cache (hit, bound to the exact certificate bytes, expiry), and the refusal
 * reasons (no evidence, untrusted root, evidence moved to another key, expired certificate). */
#include "cmocka-wrap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "collateral.h"
#include "fs.h"
#include "ratls.h"
#include "server.h"
#include "sim.h"
#include "ssl.h"
#include "tee.h"
#include "verifier.h"

static char tmpdir[64];
static char simdir[128];
static char statedir[128];
static char othersimdir[128];
static const char app_id[] = "sha256:abababababababababababababababababababababababababababababababab";

static int setup(void **state)
{
        struct attest_sim_init_opts o = {.now = time(NULL), .validity_days = 30};

        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-verifier-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(simdir, sizeof(simdir), "%s/sim", tmpdir);
        snprintf(statedir, sizeof(statedir), "%s/state", tmpdir);
        snprintf(othersimdir, sizeof(othersimdir), "%s/other-sim", tmpdir);
        return attest_sim_init(simdir, &o, NULL) < 0 || attest_sim_init(othersimdir, &o, NULL) < 0 ||
                               ck_mkdir_p(statedir, 0700) < 0
                       ? -1
                       : 0;
}

static int teardown(void **state)
{
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

struct fixture {
        struct attest_tee *tee;
        struct attest_collateral *col;
        X509 *root;
};

static void fixture_open_dir(struct fixture *f, const char *dir)
{
        struct attest_tee_config cfg = {
                .kind = ATTEST_TEE_KIND_SIM, .sim_dir = dir, .sim_state_dir = statedir};
        char p[200];

        assert_int_equal(attest_tee_open(&cfg, &f->tee, NULL), 0);
        snprintf(p, sizeof(p), "%s/collateral.json", dir);
        assert_int_equal(attest_collateral_load_file(p, &f->col, NULL), 0);
        snprintf(p, sizeof(p), "%s/root-ca.pem", dir);
        assert_int_equal(attest_root_load_file(p, &f->root, NULL), 0);
}

static void fixture_open(struct fixture *f)
{
        fixture_open_dir(f, simdir);
}

static void fixture_close(struct fixture *f)
{
        attest_tee_free(f->tee);
        attest_collateral_free(f->col);
        X509_free(f->root);
}

static void make_identity(struct fixture *f, EVP_PKEY **key, X509 **cert)
{
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)app_id, .app_id_len = strlen(app_id)};

        assert_int_equal(attest_ratls_make_identity(f->tee, &c, 600, key, cert, NULL), 0);
}

static void test_verify_and_cache(void **state)
{
        _cleanup_(broker_verifier_freep) struct broker_verifier *v = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *other = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL, *moved = NULL;
        struct broker_attested a;
        struct attest_measurements m;
        const char *reason = NULL;
        struct fixture f = {0};
        time_t now = time(NULL);

        fixture_open(&f);
        assert_int_equal(broker_verifier_new(&(struct broker_verifier_config){.collateral = f.col,
                                                                              .root = f.root,
                                                                              .cache_ttl_secs = 60},
                                             &v, NULL),
                         0);
        make_identity(&f, &key, &cert);
        assert_int_equal(attest_tee_measurements(f.tee, &m, NULL), 0);

        assert_int_equal(broker_verifier_check(v, cert, now, &a, &reason, NULL), 0);
        assert_false(a.cached);
        assert_true(a.result.simulated);
        assert_int_equal(a.result.status, ATTEST_TCB_UP_TO_DATE);
        assert_memory_equal(a.result.m.rtmr[1], m.rtmr[1], 48);
        assert_int_equal(a.app_id_len, strlen(app_id));
        assert_memory_equal(a.app_id, app_id, a.app_id_len);

        assert_int_equal(broker_verifier_check(v, cert, now + 1, &a, &reason, NULL), 0);
        assert_true(a.cached);
        /* Past the TTL the quote is verified again. */
        assert_int_equal(broker_verifier_check(v, cert, now + 61, &a, &reason, NULL), 0);
        assert_false(a.cached);

        /* The same evidence in a certificate with another key: not the cached bytes, and not bound. */
        moved = X509_dup(cert);
        other = EVP_EC_gen("P-256");
        assert_non_null(moved);
        assert_non_null(other);
        assert_int_equal(X509_set_pubkey(moved, other), 1);
        assert_true(X509_sign(moved, other, EVP_sha256()) > 0);
        assert_true(broker_verifier_check(v, moved, now, &a, &reason, NULL) < 0);
        assert_string_equal(reason, "binding_invalid");

        /* Outside the certificate's validity, even when cached. */
        assert_int_equal(broker_verifier_check(v, cert, now + 601 + 3600, &a, &reason, NULL), -EKEYEXPIRED);
        assert_string_equal(reason, "cert_expired");
        fixture_close(&f);
}

static void test_refusals(void **state)
{
        _cleanup_(broker_verifier_freep) struct broker_verifier *intel = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *plain_key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL, *plain = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        struct broker_attested a;
        const char *reason = NULL;
        struct fixture f = {0};

        fixture_open(&f);
        /* Without the sim root, the Intel root is the anchor: the sim quote does not verify. */
        assert_int_equal(broker_verifier_new(
                                 &(struct broker_verifier_config){.collateral = f.col, .cache_ttl_secs = 60},
                                 &intel, NULL),
                         0);
        make_identity(&f, &key, &cert);
        assert_true(broker_verifier_check(intel, cert, time(NULL), &a, &reason, &err) < 0);
        assert_string_equal(reason, "quote_invalid");

        /* An ordinary certificate carries no evidence. */
        assert_int_equal(broker_identity_generate(&plain_key, &plain, NULL), 0);
        assert_true(broker_verifier_check(intel, plain, time(NULL), &a, &reason, NULL) < 0);
        assert_string_equal(reason, "no_evidence");
        fixture_close(&f);
}

/* A "PCS" that accepts TCP connections, counts them and closes them at once: every fetch from it
 * fails quickly, and the count says how many were tried. */
struct counting_pcs {
        int fd;
        atomic_int connections;
        atomic_bool stop;
        /* hold: keep accepted connections open (a PCS that does not answer) until release. */
        atomic_bool hold, release;
        int held[16];
        int n_held;
        pthread_t thread;
        char url[64];
};

static void *counting_pcs_main(void *arg)
{
        struct counting_pcs *p = arg;

        while (!atomic_load(&p->stop)) {
                struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
                int c;

                if (atomic_load(&p->release)) {
                        for (int i = 0; i < p->n_held; i++)
                                close(p->held[i]);
                        p->n_held = 0;
                }
                if (poll(&pfd, 1, 20) <= 0)
                        continue;
                c = accept4(p->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                atomic_fetch_add(&p->connections, 1);
                if (atomic_load(&p->hold) && !atomic_load(&p->release) && p->n_held < 16)
                        p->held[p->n_held++] = c;
                else
                        close(c);
        }
        for (int i = 0; i < p->n_held; i++)
                close(p->held[i]);
        return NULL;
}

static void counting_pcs_start(struct counting_pcs *p)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);

        p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(p->fd >= 0);
        assert_int_equal(bind(p->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(p->fd, 16), 0);
        assert_int_equal(getsockname(p->fd, (struct sockaddr *)&sa, &sl), 0);
        snprintf(p->url, sizeof(p->url), "https://127.0.0.1:%u", ntohs(sa.sin_port));
        atomic_init(&p->connections, 0);
        atomic_init(&p->stop, false);
        atomic_init(&p->hold, false);
        atomic_init(&p->release, false);
        p->n_held = 0;
        assert_int_equal(pthread_create(&p->thread, NULL, counting_pcs_main, p), 0);
}

static void counting_pcs_stop(struct counting_pcs *p)
{
        atomic_store(&p->stop, true);
        pthread_join(p->thread, NULL);
        close(p->fd);
}

/* Collateral from a PCS: a chain that does not verify to the trusted root causes no request; a
 * failed fetch is not retried for the same FMSPC until the failure TTL has passed. */
static void test_fetch_gated_and_failures_cached(void **state)
{
        _cleanup_(broker_verifier_freep) struct broker_verifier *v = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *key2 = NULL, *forged_key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL, *cert2 = NULL, *forged = NULL;
        struct counting_pcs pcs;
        struct broker_attested a;
        struct fixture f = {0}, other = {0};
        time_t now = time(NULL);

        fixture_open(&f);
        fixture_open_dir(&other, othersimdir);
        counting_pcs_start(&pcs);
        assert_int_equal(broker_verifier_new(&(struct broker_verifier_config){.pcs_url = pcs.url,
                                                                              .root = f.root,
                                                                              .fetch_failure_ttl_secs = 30},
                                             &v, NULL),
                         0);

        /* Another PKI (same FMSPC, another root): refused before any request. */
        make_identity(&other, &forged_key, &forged);
        for (int i = 0; i < 3; i++) {
                _cleanup_error_ struct ck_error *err = NULL;
                const char *reason = NULL;

                assert_true(broker_verifier_check(v, forged, now, &a, &reason, &err) < 0);
                assert_string_equal(reason, "quote_invalid");
                assert_non_null(strstr(ck_error_message(err, -1), "not the trusted root"));
        }
        assert_int_equal(atomic_load(&pcs.connections), 0);

        /* The genuine chain: one fetch, which fails ... */
        make_identity(&f, &key, &cert);
        {
                _cleanup_error_ struct ck_error *err = NULL;
                const char *reason = NULL;

                assert_true(broker_verifier_check(v, cert, now, &a, &reason, &err) < 0);
                assert_string_equal(reason, "collateral_unavailable");
        }
        assert_int_equal(atomic_load(&pcs.connections), 1);
        /* ... and is remembered, for this certificate and any other of the platform ... */
        make_identity(&f, &key2, &cert2);
        for (int i = 0; i < 3; i++) {
                _cleanup_error_ struct ck_error *err = NULL;
                const char *reason = NULL;

                assert_true(broker_verifier_check(v, i % 2 ? cert : cert2, now + 29, &a, &reason, &err) < 0);
                assert_string_equal(reason, "collateral_unavailable");
                assert_non_null(strstr(ck_error_message(err, -1), "the last fetch failed"));
        }
        assert_int_equal(atomic_load(&pcs.connections), 1);
        /* ... until the TTL has passed. */
        {
                const char *reason = NULL;

                assert_true(broker_verifier_check(v, cert2, now + 30, &a, &reason, NULL) < 0);
                assert_string_equal(reason, "collateral_unavailable");
        }
        assert_int_equal(atomic_load(&pcs.connections), 2);

        counting_pcs_stop(&pcs);
        fixture_close(&other);
        fixture_close(&f);
}

struct check_thread {
        pthread_t thread;
        struct broker_verifier *v;
        X509 *cert;
        time_t now;
        int rc;
        const char *reason;
};

static void *check_main(void *arg)
{
        struct check_thread *t = arg;
        struct broker_attested a;

        t->rc = broker_verifier_check(t->v, t->cert, t->now, &a, &t->reason, NULL);
        return NULL;
}

/* While a fetch hangs: requests for the same key wait for it instead of fetching again, and
 * requests that need no fetch are not held up by it (no lock is held across the network I/O). */
static void test_fetch_shared_and_unlocked(void **state)
{
        _cleanup_(broker_verifier_freep) struct broker_verifier *v = NULL;
        EVP_PKEY *keys[4] = {0};
        X509 *certs[4] = {0};
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *forged_key = NULL;
        _cleanup_(X509_freep) X509 *forged = NULL;
        struct check_thread t[4];
        struct broker_verifier_fetch_stats st = {0};
        struct counting_pcs pcs;
        struct broker_attested a;
        struct fixture f = {0}, other = {0};
        const char *reason = NULL;
        time_t now = time(NULL);

        fixture_open(&f);
        fixture_open_dir(&other, othersimdir);
        make_identity(&other, &forged_key, &forged);
        counting_pcs_start(&pcs);
        atomic_store(&pcs.hold, true);
        assert_int_equal(
                broker_verifier_new(&(struct broker_verifier_config){.pcs_url = pcs.url, .root = f.root}, &v,
                                    NULL),
                0);
        for (int i = 0; i < 4; i++) {
                make_identity(&f, &keys[i], &certs[i]);
                t[i] = (struct check_thread){.v = v, .cert = certs[i], .now = now};
                assert_int_equal(pthread_create(&t[i].thread, NULL, check_main, &t[i]), 0);
        }
        /* Bounded wait (10 s) for one fetch under way and three threads waiting for it. */
        for (int i = 0; i < 1000; i++) {
                broker_verifier_fetch_stats(v, &st);
                if (st.in_flight == 1 && st.waiting == 3 && atomic_load(&pcs.connections) == 1)
                        break;
                usleep(10000);
        }
        assert_int_equal(st.in_flight, 1);
        assert_int_equal(st.waiting, 3);
        assert_int_equal(atomic_load(&pcs.connections), 1);
        /* Meanwhile a request that needs no fetch is answered at once. */
        assert_true(broker_verifier_check(v, forged, now, &a, &reason, NULL) < 0);
        assert_string_equal(reason, "quote_invalid");

        atomic_store(&pcs.release, true);
        for (int i = 0; i < 4; i++) {
                pthread_join(t[i].thread, NULL);
                assert_true(t[i].rc < 0);
                assert_string_equal(t[i].reason, "collateral_unavailable");
                X509_free(certs[i]);
                EVP_PKEY_free(keys[i]);
        }
        broker_verifier_fetch_stats(v, &st);
        assert_int_equal(st.started, 1);
        assert_int_equal(st.failed, 1);
        assert_int_equal(st.in_flight, 0);
        assert_int_equal(st.waiting, 0);
        assert_int_equal(atomic_load(&pcs.connections), 1);

        counting_pcs_stop(&pcs);
        fixture_close(&other);
        fixture_close(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_verify_and_cache),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_fetch_gated_and_failures_cached),
                cmocka_unit_test(test_fetch_shared_and_unlocked),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
