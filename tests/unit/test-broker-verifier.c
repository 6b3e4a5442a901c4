/* Unit tests for the broker's verifier of session-bound evidence on a simulated TD: verified
 * evidence, the quote cache (hit, expiry) that never caches the binding (a cached quote on
 * another session or key is refused), and the refusal reasons (untrusted root, malformed
 * evidence, the old unbound form, expired certificate). */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
static const char app_id[] = "sha256:abababababababababababababababababababababababababababababababab";

static int setup(void **state)
{
        struct attest_sim_init_opts o = {.now = time(NULL), .validity_days = 30};

        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-verifier-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(simdir, sizeof(simdir), "%s/sim", tmpdir);
        snprintf(statedir, sizeof(statedir), "%s/state", tmpdir);
        return attest_sim_init(simdir, &o, NULL) < 0 || ck_mkdir_p(statedir, 0700) < 0 ? -1 : 0;
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

static void fixture_open(struct fixture *f)
{
        struct attest_tee_config cfg = {
                .kind = ATTEST_TEE_KIND_SIM, .sim_dir = simdir, .sim_state_dir = statedir};
        char p[200];

        assert_int_equal(attest_tee_open(&cfg, &f->tee, NULL), 0);
        snprintf(p, sizeof(p), "%s/collateral.json", simdir);
        assert_int_equal(attest_collateral_load_file(p, &f->col, NULL), 0);
        snprintf(p, sizeof(p), "%s/root-ca.pem", simdir);
        assert_int_equal(attest_root_load_file(p, &f->root, NULL), 0);
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

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_verify_and_cache),
                cmocka_unit_test(test_log_and_task_config_carried),
                cmocka_unit_test(test_refusals),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
