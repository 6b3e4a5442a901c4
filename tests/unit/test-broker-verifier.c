/* Unit tests for the broker's verifier of session-bound evidence on a simulated TD: verified
 * evidence, the quote cache (hit, expiry) that never caches the binding (a cached quote on
 * another session or key is refused), and the refusal reasons (untrusted root, malformed
 * evidence, the old unbound form, expired certificate). */
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

/* A fresh client identity and evidence bound to (its key, exporter). */
static void make_bound(struct fixture *f, const uint8_t exporter[32], EVP_PKEY **key, X509 **cert,
                       uint8_t **body, size_t *len)
{
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)app_id, .app_id_len = strlen(app_id)};

        assert_int_equal(attest_ratls_make_key_cert(600, key, cert, NULL), 0);
        assert_int_equal(attest_ratls_make_evidence(f->tee, &c, *cert, exporter, body, len, NULL), 0);
}

static void test_verify_and_cache(void **state)
{
        _cleanup_(broker_verifier_freep) struct broker_verifier *v = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *other_key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL, *other = NULL;
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_(broker_attested_clear) struct broker_attested a = {0};
        struct attest_measurements m;
        const char *reason = NULL;
        struct fixture f = {0};
        time_t now = time(NULL);
        uint8_t exporter[32], replayed[32];
        size_t len = 0;

        fixture_open(&f);
        assert_int_equal(broker_verifier_new(&(struct broker_verifier_config){.collateral = f.col,
                                                                              .root = f.root,
                                                                              .cache_ttl_secs = 60},
                                             &v, NULL),
                         0);
        memset(exporter, 0x11, sizeof(exporter));
        memset(replayed, 0x22, sizeof(replayed));
        make_bound(&f, exporter, &key, &cert, &body, &len);
        assert_int_equal(attest_tee_measurements(f.tee, &m, NULL), 0);

        assert_int_equal(broker_verifier_check(v, body, len, cert, exporter, now, &a, &reason, NULL), 0);
        assert_false(a.cached);
        assert_true(a.result.simulated);
        assert_int_equal(a.result.status, ATTEST_TCB_UP_TO_DATE);
        assert_memory_equal(a.result.m.rtmr[1], m.rtmr[1], 48);
        assert_int_equal(a.app_id_len, strlen(app_id));
        assert_memory_equal(a.app_id, app_id, a.app_id_len);
        broker_attested_clear(&a);

        /* The same quote again: its verification comes from the cache... */
        assert_int_equal(broker_verifier_check(v, body, len, cert, exporter, now + 1, &a, &reason, NULL), 0);
        assert_true(a.cached);
        broker_attested_clear(&a);
        /* ...but the binding does not: on another session (another exporter value) it is refused. */
        assert_true(broker_verifier_check(v, body, len, cert, replayed, now + 1, &a, &reason, NULL) < 0);
        assert_string_equal(reason, "exporter_mismatch");
        /* Nor with another key authenticating the session. */
        assert_int_equal(attest_ratls_make_key_cert(600, &other_key, &other, NULL), 0);
        assert_true(broker_verifier_check(v, body, len, other, exporter, now + 1, &a, &reason, NULL) < 0);
        assert_string_equal(reason, "binding_invalid");

        /* Past the TTL the quote is verified again. */
        assert_int_equal(broker_verifier_check(v, body, len, cert, exporter, now + 61, &a, &reason, NULL),
                         0);
        assert_false(a.cached);
        broker_attested_clear(&a);

        /* Outside the client certificate's validity. */
        assert_int_equal(
                broker_verifier_check(v, body, len, cert, exporter, now + 601 + 3600, &a, &reason, NULL),
                -EKEYEXPIRED);
        assert_string_equal(reason, "cert_expired");
        fixture_close(&f);
}

/* An appId longer than the broker keeps (256 bytes) but within what RA-TLS carries (1024) is
 * refused, not cut or copied past its buffer. */
static void test_long_app_id_refused(void **state)
{
        _cleanup_(broker_verifier_freep) struct broker_verifier *v = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_(broker_attested_clear) struct broker_attested a = {0};
        static char long_id[301];
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)long_id, .app_id_len = 300};
        const char *reason = NULL;
        struct fixture f = {0};
        uint8_t exporter[32];
        size_t len = 0;

        memset(long_id, 'a', 300);
        fixture_open(&f);
        assert_int_equal(
                broker_verifier_new(&(struct broker_verifier_config){.collateral = f.col, .root = f.root},
                                    &v, NULL),
                0);
        memset(exporter, 0x44, sizeof(exporter));
        assert_int_equal(attest_ratls_make_key_cert(600, &key, &cert, NULL), 0);
        assert_int_equal(attest_ratls_make_evidence(f.tee, &c, cert, exporter, &body, &len, NULL), 0);
        assert_int_equal(broker_verifier_check(v, body, len, cert, exporter, time(NULL), &a, &reason, NULL),
                         -EBADMSG);
        assert_string_equal(reason, "image_mismatch");
        fixture_close(&f);
}

/* A cached verification does not outlive the collateral it was made with: however long the TTL,
 * past the collateral's nextUpdate the quote is verified again (and now fails). */
static void test_cache_bounded_by_collateral(void **state)
{
        _cleanup_(broker_verifier_freep) struct broker_verifier *v = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_(broker_attested_clear) struct broker_attested a = {0};
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)app_id, .app_id_len = strlen(app_id)};
        /* Collateral issued a day ago, so that it expires a day before the client certificate. */
        struct attest_sim_init_opts o = {.now = time(NULL) - 86400, .validity_days = 30};
        const char *reason = NULL;
        struct fixture f = {0};
        time_t now = time(NULL), after;
        uint8_t exporter[32];
        char dir[200];
        size_t len = 0;

        snprintf(dir, sizeof(dir), "%s/early-sim", tmpdir);
        assert_int_equal(attest_sim_init(dir, &o, NULL), 0);
        fixture_open_dir(&f, dir);
        assert_int_equal(broker_verifier_new(&(struct broker_verifier_config){.collateral = f.col,
                                                                              .root = f.root,
                                                                              .cache_ttl_secs = 60 * 86400},
                                             &v, NULL),
                         0);
        memset(exporter, 0x33, sizeof(exporter));
        assert_int_equal(attest_ratls_make_key_cert(30 * 86400, &key, &cert, NULL), 0);
        assert_int_equal(attest_ratls_make_evidence(f.tee, &c, cert, exporter, &body, &len, NULL), 0);

        assert_int_equal(broker_verifier_check(v, body, len, cert, exporter, now, &a, &reason, NULL), 0);
        assert_false(a.cached);
        broker_attested_clear(&a);
        after = attest_collateral_next_update(f.col) + 1;
        assert_true(after < now + 30 * 86400 - 60); /* the client certificate is still valid */
        assert_true(broker_verifier_check(v, body, len, cert, exporter, after, &a, &reason, NULL) < 0);
        assert_string_equal(reason, "quote_invalid");
        fixture_close(&f);
}

/* The RTMR3 log and the task-config claim reach the policy, from a fresh verification and when
 * the quote's verification comes from the cache alike (the policy judges the image and the task's
 * configuration from them). */
static void test_log_and_task_config_carried(void **state)
{
        _cleanup_(broker_verifier_freep) struct broker_verifier *v = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_(broker_attested_clear) struct broker_attested a = {0}, b = {0};
        static const char tc[] = "{\"image\":\"x\",\"imageId\":\"sha256:abab\",\"version\":1}";
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)app_id,
                                        .app_id_len = strlen(app_id),
                                        .rtmr3_log_from_tee = true,
                                        .task_config = (const uint8_t *)tc,
                                        .task_config_len = strlen(tc)};
        const char *reason = NULL;
        struct fixture f = {0};
        time_t now = time(NULL);
        uint8_t exporter[32];
        size_t len = 0;

        fixture_open(&f);
        memset(exporter, 0x33, sizeof(exporter));
        assert_int_equal(attest_tee_measure(f.tee, "image-digest", app_id, NULL), 0);
        assert_int_equal(broker_verifier_new(&(struct broker_verifier_config){.collateral = f.col,
                                                                              .root = f.root,
                                                                              .cache_ttl_secs = 60},
                                             &v, NULL),
                         0);
        assert_int_equal(attest_ratls_make_key_cert(600, &key, &cert, NULL), 0);
        assert_int_equal(attest_ratls_make_evidence(f.tee, &c, cert, exporter, &body, &len, NULL), 0);
        assert_int_equal(broker_verifier_check(v, body, len, cert, exporter, now, &a, &reason, NULL), 0);
        assert_non_null(a.rtmr3_log);
        assert_non_null(memmem(a.rtmr3_log, a.rtmr3_log_len, app_id, strlen(app_id)));
        assert_int_equal(a.task_config_len, strlen(tc));
        assert_memory_equal(a.task_config, tc, strlen(tc));
        assert_int_equal(broker_verifier_check(v, body, len, cert, exporter, now + 1, &b, &reason, NULL), 0);
        assert_true(b.cached);
        assert_int_equal(b.rtmr3_log_len, a.rtmr3_log_len);
        assert_memory_equal(b.rtmr3_log, a.rtmr3_log, a.rtmr3_log_len);
        assert_memory_equal(b.task_config, tc, strlen(tc));
        fixture_close(&f);
}

static void test_refusals(void **state)
{
        _cleanup_(broker_verifier_freep) struct broker_verifier *intel = NULL, *sim = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *old_key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL, *old = NULL;
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_(broker_attested_clear) struct broker_attested a = {0};
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)app_id, .app_id_len = strlen(app_id)};
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj("2.23.133.5.4.9", 1);
        const ASN1_OCTET_STRING *d;
        const char *reason = NULL;
        struct fixture f = {0};
        uint8_t exporter[32] = {1};
        size_t len = 0;

        fixture_open(&f);
        /* Without the sim root, the Intel root is the anchor: the sim quote does not verify. */
        assert_int_equal(broker_verifier_new(
                                 &(struct broker_verifier_config){.collateral = f.col, .cache_ttl_secs = 60},
                                 &intel, NULL),
                         0);
        make_bound(&f, exporter, &key, &cert, &body, &len);
        assert_true(broker_verifier_check(intel, body, len, cert, exporter, time(NULL), &a, &reason, &err) <
                    0);
        assert_string_equal(reason, "quote_invalid");

        /* Not CBOR evidence. */
        assert_true(broker_verifier_check(intel, (const uint8_t *)"{}", 2, cert, exporter, time(NULL), &a,
                                          &reason, NULL) < 0);
        assert_string_equal(reason, "evidence_malformed");

        /* The old form's evidence (bound to a key only), even posted on a session of that key. */
        assert_int_equal(broker_verifier_new(&(struct broker_verifier_config){.collateral = f.col,
                                                                              .root = f.root,
                                                                              .cache_ttl_secs = 60},
                                             &sim, NULL),
                         0);
        assert_int_equal(attest_ratls_make_identity(f.tee, &c, 600, &old_key, &old, NULL), 0);
        d = X509_EXTENSION_get_data(X509_get_ext(old, X509_get_ext_by_OBJ(old, oid, -1)));
        assert_true(broker_verifier_check(sim, ASN1_STRING_get0_data(d), (size_t)ASN1_STRING_length(d), old,
                                          exporter, time(NULL), &a, &reason, NULL) < 0);
        assert_string_equal(reason, "evidence_not_bound");
        fixture_close(&f);
}

/* A client's session for the fetch tests: a key, its certificate, and evidence bound to them
 * and to a fixed exporter value. */
struct session {
        EVP_PKEY *key;
        X509 *cert;
        uint8_t *body;
        size_t len;
};

static const uint8_t session_exporter[32] = {0x11};

static void session_make(struct fixture *f, struct session *s)
{
        make_bound(f, session_exporter, &s->key, &s->cert, &s->body, &s->len);
}

static void session_free(struct session *s)
{
        EVP_PKEY_free(s->key);
        X509_free(s->cert);
        free(s->body);
}

/* The check of s at now; only failures are expected here. */
static int session_check(struct broker_verifier *v, const struct session *s, time_t now, const char **reason,
                         struct ck_error **err)
{
        _cleanup_(broker_attested_clear) struct broker_attested a = {0};

        return broker_verifier_check(v, s->body, s->len, s->cert, session_exporter, now, &a, reason, err);
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
        struct session s1 = {0}, s2 = {0}, forged = {0};
        struct counting_pcs pcs;
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
        session_make(&other, &forged);
        for (int i = 0; i < 3; i++) {
                _cleanup_error_ struct ck_error *err = NULL;
                const char *reason = NULL;

                assert_true(session_check(v, &forged, now, &reason, &err) < 0);
                assert_string_equal(reason, "quote_invalid");
                assert_non_null(strstr(ck_error_message(err, -1), "not the trusted root"));
        }
        assert_int_equal(atomic_load(&pcs.connections), 0);

        /* The genuine chain: one fetch, which fails ... */
        session_make(&f, &s1);
        {
                _cleanup_error_ struct ck_error *err = NULL;
                const char *reason = NULL;

                assert_true(session_check(v, &s1, now, &reason, &err) < 0);
                assert_string_equal(reason, "collateral_unavailable");
        }
        assert_int_equal(atomic_load(&pcs.connections), 1);
        /* ... and is remembered, for this certificate and any other of the platform ... */
        session_make(&f, &s2);
        for (int i = 0; i < 3; i++) {
                _cleanup_error_ struct ck_error *err = NULL;
                const char *reason = NULL;

                assert_true(session_check(v, i % 2 ? &s1 : &s2, now + 29, &reason, &err) < 0);
                assert_string_equal(reason, "collateral_unavailable");
                assert_non_null(strstr(ck_error_message(err, -1), "the last fetch failed"));
        }
        assert_int_equal(atomic_load(&pcs.connections), 1);
        /* ... until the TTL has passed. */
        {
                const char *reason = NULL;

                assert_true(session_check(v, &s2, now + 30, &reason, NULL) < 0);
                assert_string_equal(reason, "collateral_unavailable");
        }
        assert_int_equal(atomic_load(&pcs.connections), 2);

        counting_pcs_stop(&pcs);
        session_free(&s1);
        session_free(&s2);
        session_free(&forged);
        fixture_close(&other);
        fixture_close(&f);
}

struct check_thread {
        pthread_t thread;
        struct broker_verifier *v;
        const struct session *session;
        time_t now;
        int rc;
        const char *reason;
};

static void *check_main(void *arg)
{
        struct check_thread *t = arg;

        t->rc = session_check(t->v, t->session, t->now, &t->reason, NULL);
        return NULL;
}

/* While a fetch hangs: requests for the same key wait for it instead of fetching again, and
 * requests that need no fetch are not held up by it (no lock is held across the network I/O). */
static void test_fetch_shared_and_unlocked(void **state)
{
        _cleanup_(broker_verifier_freep) struct broker_verifier *v = NULL;
        struct session sessions[4] = {0}, forged = {0};
        struct check_thread t[4];
        struct broker_verifier_fetch_stats st = {0};
        struct counting_pcs pcs;
        struct fixture f = {0}, other = {0};
        const char *reason = NULL;
        time_t now = time(NULL);

        fixture_open(&f);
        fixture_open_dir(&other, othersimdir);
        session_make(&other, &forged);
        counting_pcs_start(&pcs);
        atomic_store(&pcs.hold, true);
        assert_int_equal(
                broker_verifier_new(&(struct broker_verifier_config){.pcs_url = pcs.url, .root = f.root}, &v,
                                    NULL),
                0);
        for (int i = 0; i < 4; i++) {
                session_make(&f, &sessions[i]);
                t[i] = (struct check_thread){.v = v, .session = &sessions[i], .now = now};
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
        assert_true(session_check(v, &forged, now, &reason, NULL) < 0);
        assert_string_equal(reason, "quote_invalid");

        atomic_store(&pcs.release, true);
        for (int i = 0; i < 4; i++) {
                pthread_join(t[i].thread, NULL);
                assert_true(t[i].rc < 0);
                assert_string_equal(t[i].reason, "collateral_unavailable");
                session_free(&sessions[i]);
        }
        broker_verifier_fetch_stats(v, &st);
        assert_int_equal(st.started, 1);
        assert_int_equal(st.failed, 1);
        assert_int_equal(st.in_flight, 0);
        assert_int_equal(st.waiting, 0);
        assert_int_equal(atomic_load(&pcs.connections), 1);

        counting_pcs_stop(&pcs);
        session_free(&forged);
        fixture_close(&other);
        fixture_close(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_verify_and_cache),
                cmocka_unit_test(test_cache_bounded_by_collateral),
                cmocka_unit_test(test_long_app_id_refused),
                cmocka_unit_test(test_log_and_task_config_carried),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_fetch_gated_and_failures_cached),
                cmocka_unit_test(test_fetch_shared_and_unlocked),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
