/* Unit tests for the attested API evidence (api-evidence.h) with the simulated TD and the real
 * DCAP verifier: conkerd's identity and fresh evidence verify; evidence for another key, nonce
 * or TLS connection, evidence made for the KMS protocol, a tampered quote and an untrusted root
 * are refused. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api-evidence.h"
#include "fs.h"
#include "ratls-internal.h"
#include "ratls.h"
#include "sim-td-fixture.h"
#include "ssl.h"

static struct sim_td td;
static unsigned collateral_calls;

static int setup(void **state)
{
        return sim_td_setup(&td, "ck-test-apiev");
}

static int teardown(void **state)
{
        return sim_td_teardown(&td);
}

static int get_collateral(void *userdata, const uint8_t *quote, size_t len, struct attest_collateral **ret,
                          struct ck_error **reterr)
{
        collateral_calls++;
        return attest_collateral_load_file(td.colpath, ret, reterr);
}

static struct attest_verify_opts sim_opts(void)
{
        return (struct attest_verify_opts){.now = time(NULL), .root = td.root};
}

struct identity {
        EVP_PKEY *key;
        X509 *cert;
};

static struct identity identity_make(void)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct identity id = {0};
        int r = attest_api_identity_make(td.tee, &id.key, &id.cert, &e);

        if (r < 0)
                fail_msg("identity: %s", ck_error_message(e, r));
        return id;
}

static void identity_clear(struct identity *id)
{
        EVP_PKEY_free(id->key);
        X509_free(id->cert);
}

static const uint8_t nonce[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t ekm[32] = {0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee,
                                0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee,
                                0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0x01};

static void test_identity_verifies(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_(attest_result_freep) struct attest_result *res = NULL;
        struct attest_verify_opts opts = sim_opts();
        struct attest_measurements m;
        struct identity id = identity_make();
        int r;

        r = attest_api_cert_verify(id.cert, get_collateral, NULL, &opts, &res, &e);
        if (r < 0)
                fail_msg("%s", ck_error_message(e, r));
        assert_true(res->simulated);
        assert_int_equal(attest_tee_measurements(td.tee, &m, NULL), 0);
        assert_memory_equal(res->m.mr_td, m.mr_td, 48);
        identity_clear(&id);
}

static void test_identity_needs_trusted_root(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_result *res = NULL;
        struct attest_verify_opts opts = {.now = time(NULL)}; /* Intel's root: a simulated TD fails */
        struct identity id = identity_make();

        assert_true(attest_api_cert_verify(id.cert, get_collateral, NULL, &opts, &res, &e) < 0);
        assert_null(res);
        assert_non_null(strstr(ck_error_message(e, -1), "quote"));
        identity_clear(&id);
}

/* The KMS client certificate (ctx conker/ra-tls/v1) is not conkerd's API identity, and the API
 * certificate is not a KMS client identity: neither protocol accepts the other's evidence. */
static void test_domain_separation(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL, *e2 = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        struct attest_ratls_evidence *ev = NULL;
        struct attest_result *res = NULL;
        struct attest_verify_opts opts = sim_opts();
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)ATTEST_API_APP_ID,
                                        .app_id_len = strlen(ATTEST_API_APP_ID)};
        struct identity id = identity_make();
        _cleanup_(attest_collateral_freep) struct attest_collateral *col = NULL;

        assert_int_equal(attest_ratls_make_identity(td.tee, &c, 3600, &key, &cert, NULL), 0);
        assert_true(attest_api_cert_verify(cert, get_collateral, NULL, &opts, &res, &e) < 0);
        assert_non_null(strstr(ck_error_message(e, -1), "conker/api/v1"));

        assert_int_equal(attest_collateral_load_file(td.colpath, &col, NULL), 0);
        assert_true(attest_ratls_verify_cert(id.cert, col, &opts, &ev, &e2) < 0);
        assert_null(ev);
        assert_non_null(strstr(ck_error_message(e2, -1), "ctx"));
        identity_clear(&id);
}

static void test_fresh_evidence(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_(attest_result_freep) struct attest_result *res = NULL;
        _cleanup_free_ uint8_t *ev = NULL;
        struct attest_verify_opts opts = sim_opts();
        struct identity id = identity_make();
        size_t len = 0;
        int r;

        r = attest_api_evidence_make(td.tee, id.cert, nonce, sizeof(nonce), ekm, &ev, &len, &e);
        if (r < 0)
                fail_msg("%s", ck_error_message(e, r));
        r = attest_api_evidence_verify(ev, len, id.cert, nonce, sizeof(nonce), ekm, get_collateral, NULL,
                                       &opts, &res, &e);
        if (r < 0)
                fail_msg("%s", ck_error_message(e, r));
        assert_true(res->simulated);
        identity_clear(&id);
}

/* Evidence recorded once is worthless for another nonce, another TLS connection (exporter) or
 * another server key. */
static void test_fresh_evidence_replay(void **state)
{
        _cleanup_free_ uint8_t *ev = NULL;
        struct attest_verify_opts opts = sim_opts();
        struct identity id = identity_make(), other = identity_make();
        uint8_t nonce2[32], ekm2[32];
        size_t len = 0;

        memcpy(nonce2, nonce, 32);
        nonce2[0] ^= 1;
        memcpy(ekm2, ekm, 32);
        ekm2[31] ^= 0x80;
        assert_int_equal(
                attest_api_evidence_make(td.tee, id.cert, nonce, sizeof(nonce), ekm, &ev, &len, NULL), 0);
        {
                _cleanup_error_ struct ck_error *e = NULL;
                struct attest_result *res = NULL;
                assert_int_equal(attest_api_evidence_verify(ev, len, id.cert, nonce2, 32, ekm,
                                                            get_collateral, NULL, &opts, &res, &e),
                                 -EKEYREJECTED);
                assert_non_null(strstr(ck_error_message(e, -1), "this nonce"));
        }
        {
                _cleanup_error_ struct ck_error *e = NULL;
                struct attest_result *res = NULL;
                assert_int_equal(attest_api_evidence_verify(ev, len, id.cert, nonce, 32, ekm2,
                                                            get_collateral, NULL, &opts, &res, &e),
                                 -EKEYREJECTED);
        }
        {
                _cleanup_error_ struct ck_error *e = NULL;
                struct attest_result *res = NULL;
                assert_int_equal(attest_api_evidence_verify(ev, len, other.cert, nonce, 32, ekm,
                                                            get_collateral, NULL, &opts, &res, &e),
                                 -EKEYREJECTED);
        }
        identity_clear(&id);
        identity_clear(&other);
}

/* A byte of the quote changed: the claims still match, the quote signature does not. */
static void test_fresh_evidence_tampered(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ uint8_t *ev = NULL;
        struct attest_result *res = NULL;
        struct attest_verify_opts opts = sim_opts();
        struct identity id = identity_make();
        size_t len = 0;

        assert_int_equal(
                attest_api_evidence_make(td.tee, id.cert, nonce, sizeof(nonce), ekm, &ev, &len, NULL), 0);
        ev[64] ^= 0x01; /* inside the quote's header/body, after the CBOR framing */
        collateral_calls = 0;
        assert_true(attest_api_evidence_verify(ev, len, id.cert, nonce, 32, ekm, get_collateral, NULL, &opts,
                                               &res, &e) < 0);
        assert_null(res);
        assert_int_equal(collateral_calls, 1);
        identity_clear(&id);
}

/* The expected claims next to a genuine quote of the same TD made over other claims (another
 * nonce): the claims match byte for byte and the quote verifies, but REPORTDATA does not cover
 * these claims. */
static void test_fresh_evidence_quote_swapped(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ uint8_t *ev = NULL, *ev2 = NULL, *mixed = NULL;
        struct attest_result *res = NULL;
        struct attest_verify_opts opts = sim_opts();
        struct identity id = identity_make();
        const uint8_t *q1, *c1, *q2, *c2;
        size_t len = 0, len2 = 0, ql1 = 0, cl1 = 0, ql2 = 0, cl2 = 0, mlen = 0;
        uint8_t nonce2[32];

        memcpy(nonce2, nonce, 32);
        nonce2[5] ^= 0x40;
        assert_int_equal(
                attest_api_evidence_make(td.tee, id.cert, nonce, sizeof(nonce), ekm, &ev, &len, NULL), 0);
        assert_int_equal(attest_api_evidence_make(td.tee, id.cert, nonce2, 32, ekm, &ev2, &len2, NULL), 0);
        assert_int_equal(attest_ratls_parse_extension(ev, len, &q1, &ql1, &c1, &cl1, NULL), 0);
        assert_int_equal(attest_ratls_parse_extension(ev2, len2, &q2, &ql2, &c2, &cl2, NULL), 0);
        assert_int_equal(ratls_evidence_encode(q2, ql2, c1, cl1, &mixed, &mlen), 0);
        assert_int_equal(attest_api_evidence_verify(mixed, mlen, id.cert, nonce, 32, ekm, get_collateral,
                                                    NULL, &opts, &res, &e),
                         -EKEYREJECTED);
        assert_null(res);
        assert_non_null(strstr(ck_error_message(e, -1), "REPORTDATA"));
        identity_clear(&id);
}

/* conkerd's identity certificate re-signed by another key is refused, evidence intact. */
static void test_identity_self_signature(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *other = EVP_EC_gen("P-256");
        struct attest_result *res = NULL;
        struct attest_verify_opts opts = sim_opts();
        struct identity id = identity_make();

        assert_true(X509_sign(id.cert, other, EVP_sha256()) > 0);
        assert_int_equal(attest_api_cert_verify(id.cert, get_collateral, NULL, &opts, &res, &e),
                         -EKEYREJECTED);
        assert_null(res);
        assert_non_null(strstr(ck_error_message(e, -1), "self-signature"));
        identity_clear(&id);
}

static void test_nonce_bounds(void **state)
{
        uint8_t big[ATTEST_API_NONCE_MAX + 1] = {0};
        uint8_t *ev = NULL;
        size_t len = 0;
        struct identity id = identity_make();

        assert_int_equal(attest_api_evidence_make(td.tee, id.cert, big, ATTEST_API_NONCE_MIN - 1, ekm, &ev,
                                                  &len, NULL),
                         -EINVAL);
        assert_int_equal(attest_api_evidence_make(td.tee, id.cert, big, sizeof(big), ekm, &ev, &len, NULL),
                         -EINVAL);
        assert_null(ev);
        identity_clear(&id);
}

/* Garbage and oversized evidence fail before any collateral is looked up. */
static void test_evidence_malformed(void **state)
{
        static const uint8_t junk[] = {0xd9, 0xea, 0x60, 0x82, 0x41, 0x00};
        struct attest_verify_opts opts = sim_opts();
        struct attest_result *res = NULL;
        struct identity id = identity_make();
        _cleanup_free_ uint8_t *huge = calloc(1, ATTEST_API_EVIDENCE_MAX + 1);

        collateral_calls = 0;
        assert_true(attest_api_evidence_verify(junk, sizeof(junk), id.cert, nonce, 32, ekm, get_collateral,
                                               NULL, &opts, &res, NULL) < 0);
        assert_int_equal(attest_api_evidence_verify(huge, ATTEST_API_EVIDENCE_MAX + 1, id.cert, nonce, 32,
                                                    ekm, get_collateral, NULL, &opts, &res, NULL),
                         -EFBIG);
        assert_int_equal(collateral_calls, 0);
        assert_null(res);
        identity_clear(&id);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_identity_verifies),
                cmocka_unit_test(test_identity_needs_trusted_root),
                cmocka_unit_test(test_domain_separation),
                cmocka_unit_test(test_fresh_evidence),
                cmocka_unit_test(test_fresh_evidence_replay),
                cmocka_unit_test(test_fresh_evidence_tampered),
                cmocka_unit_test(test_fresh_evidence_quote_swapped),
                cmocka_unit_test(test_identity_self_signature),
                cmocka_unit_test(test_nonce_bounds),
                cmocka_unit_test(test_evidence_malformed),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
