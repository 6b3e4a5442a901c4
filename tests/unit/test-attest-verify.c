/* DCAP verification against the real vectors of tests/data/tdx (README there lists the expected
 * results): statuses, advisories, measurements, time-window rejections and the documented
 * single-byte corruptions of go-tdx-guest's SPR quote. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>

#include "attest-vectors.h"
#include "parse.h"

#define T_TDX      1752919234
#define T_OUTDATED 1774003274
#define T_SGX      1752919277
#define T_SPR      1688173200
#define T_2053     2635030800 /* 2053-07-01T01:00:00Z */

static int verify(const char *quote, struct attest_collateral *c, time_t now, struct attest_result **ret,
                  struct ck_error **err)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *q = vec_quote(quote, &len);
        struct attest_verify_opts o = {.now = now};

        return attest_verify_quote(q, len, c, &o, ret, err);
}

static void test_tdx_quote_up_to_date(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c =
                vec_collateral("dcap-qvl/tdx_quote_collateral.json");
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        int ret = verify("dcap-qvl/tdx_quote", c, T_TDX, &r, &e);

        if (ret < 0)
                fail_msg("%s", ck_error_message(e, ret));
        assert_string_equal(attest_tcb_status_to_string(r->status), "UpToDate");
        assert_int_equal(r->n_advisory_ids, 0);
        assert_null(r->advisory_ids[0]);
        assert_false(r->simulated);
        assert_int_equal(r->quote_version, 4);
        assert_int_equal(r->tee_type, ATTEST_TEE_TDX);
        assert_int_equal(r->tcb_eval_number, 17);
        assert_string_equal(r->fmspc, "b0c06f000000");
        assert_true(hex_eq(r->m.mr_td, 48,
                           "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27"
                           "428b2538873118b7"));
        assert_true(hex_eq(r->m.rtmr[0], 48,
                           "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6"
                           "a540cf994b9bc9c0"));
        assert_true(hex_eq(r->m.rtmr[1], 48,
                           "0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b"
                           "3093d54e579e9378"));
        assert_true(hex_eq(r->m.rtmr[2], 48,
                           "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d73307"
                           "33642e01d48c3132"));
        assert_true(hex_eq(r->m.rtmr[3], 48,
                           "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
                           "0000000000000000"));
        assert_true(hex_eq(r->m.mr_seam, 48,
                           "5b38e33a6487958b72c3c12a938eaa5e3fd4510c51aeeab58c7d5ecee41d7c436489d6c8e4f92f16"
                           "0b7cad34207b00c1"));
        assert_true(hex_eq(r->m.report_data, 64,
                           "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c"
                           "163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20"));
        assert_true(hex_eq(r->m.td_attributes, 8, "0000001000000000"));
        assert_true(hex_eq(r->m.xfam, 8, "e702060000000000"));
        assert_true(hex_eq(r->m.tee_tcb_svn, 16, "06010300000000000000000000000000"));

        /* A second verification hits the caches and must give the same answer. */
        attest_result_free(TAKE_PTR(r));
        assert_int_equal(verify("dcap-qvl/tdx_quote", c, T_TDX, &r, NULL), 0);
        assert_int_equal(r->status, ATTEST_TCB_UP_TO_DATE);

        json_t *j = attest_result_to_json(r);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "UpToDate");
        json_decref(j);
}

static void test_tdx_quote_outdated_not_supported(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c =
                vec_collateral("dcap-qvl/tdx_quote_outdated_collateral.json");
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        int ret = verify("dcap-qvl/tdx_quote_outdated", c, T_OUTDATED, &r, &e);

        assert_int_equal(ret, -ENOENT);
        assert_non_null(strstr(e->msg, "TCB level"));
        assert_non_null(strstr(e->msg, "not supported"));
}

static void test_sgx_quote(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c =
                vec_collateral("dcap-qvl/sgx_quote_collateral.json");
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        int ret = verify("dcap-qvl/sgx_quote", c, T_SGX, &r, &e);

        if (ret < 0)
                fail_msg("%s", ck_error_message(e, ret));
        assert_string_equal(attest_tcb_status_to_string(r->status), "ConfigurationAndSWHardeningNeeded");
        assert_int_equal(r->n_advisory_ids, 2);
        assert_string_equal(r->advisory_ids[0], "INTEL-SA-00289");
        assert_string_equal(r->advisory_ids[1], "INTEL-SA-00615");
        assert_null(r->advisory_ids[2]);
        assert_int_equal(r->quote_version, 3);
        assert_int_equal(r->tee_type, ATTEST_TEE_SGX);
        assert_string_equal(r->fmspc, "00a067110000");
        assert_true(hex_eq(r->m.sgx_attributes, 16, "0500000000000000e700000000000000"));
}

static void test_v5_sample_with_outdated_collateral(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c =
                vec_collateral("dcap-qvl/tdx_quote_outdated_collateral.json");
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        int ret = verify("go-tdx-guest/quote_v5_sample.dat", c, T_OUTDATED, &r, &e);

        if (ret < 0)
                fail_msg("%s", ck_error_message(e, ret));
        assert_int_equal(r->status, ATTEST_TCB_UP_TO_DATE);
        assert_int_equal(r->n_advisory_ids, 0);
        assert_int_equal(r->quote_version, 5);
        assert_true(r->m.has_v15);
        assert_true(hex_eq(r->m.tee_tcb_svn2, 16, "0d010400000000000000000000000000"));
        assert_true(hex_eq(r->m.mr_td, 48,
                           "7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747d"
                           "da8f750c3bc8f876"));
        assert_true(hex_eq(r->m.rtmr[0], 48,
                           "5c8daf76063a71ac8fcef4067564661fc682ed7944c7a5d21dbbced02f61ceff4ba0678c6aef3bda"
                           "e8cbc614cec24619"));
        assert_true(hex_eq(r->m.rtmr[1], 48,
                           "463acaace1b6e97c76e92e41fe312aa66f3fd4dad60ec7acf169859db0343e3d1e591646795cdc80"
                           "fbc0ca5f7041d253"));
        assert_true(hex_eq(r->m.rtmr[2], 48,
                           "6369b9c9a3b791ebcbdc5a0bb9536cfb57f50df2b393b33c8b29616d3568baa61f4b59dc6092e31e"
                           "a8764bcbdfc69f20"));
        assert_true(hex_eq(r->m.mr_seam, 48,
                           "7bf063280e94fb051f5dd7b1fc59ce9aac42bb961df8d44b709c9b0ff87a7b4df648657ba6d11895"
                           "89feab1d5a3c9a9d"));
        assert_true(hex_eq(r->m.report_data, 64,
                           "945eaacf5abc1f719d8666a942fda03d1edcb4490277396093dc5a5289ab9f1e094aed63060cd4a4"
                           "933a4dd537ed1255c9c79ecb3ed82cd1b486233e31c25c3a"));
}

static void test_spr_quote_go_collateral(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c = vec_collateral_go();
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        int ret = verify("go-tdx-guest/tdx_prod_quote_SPR_E4.dat", c, T_SPR, &r, &e);

        /* Every signature, chain and CRL is valid; only the TCB level matching fails. */
        assert_int_equal(ret, -ENOENT);
        assert_non_null(strstr(e->msg, "TCB level: no matching TCB level"));
}

static void test_rejected_times(void **state)
{
        static const struct {
                const char *quote, *col;
                time_t t;
        } cases[] = {
                {"dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json", 1750320802},
                {"dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json", T_2053},
                {"dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json", T_TDX + 2},
                {"dcap-qvl/sgx_quote", "dcap-qvl/sgx_quote_collateral.json", 1750320802},
                {"dcap-qvl/sgx_quote", "dcap-qvl/sgx_quote_collateral.json", T_2053},
                {"go-tdx-guest/quote_v5_sample.dat", "dcap-qvl/tdx_quote_outdated_collateral.json",
                 1750320802},
                {"go-tdx-guest/quote_v5_sample.dat", "dcap-qvl/tdx_quote_outdated_collateral.json", T_2053},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(attest_collateral_freep) struct attest_collateral *c =
                        vec_collateral(cases[i].col);
                _cleanup_(attest_result_freep) struct attest_result *r = NULL;
                _cleanup_error_ struct ck_error *e = NULL;
                int ret = verify(cases[i].quote, c, cases[i].t, &r, &e);

                assert_int_equal(ret, -EKEYEXPIRED);
                assert_null(r);
                assert_true(strstr(e->msg, "future") || strstr(e->msg, "expired") ||
                            strstr(e->msg, "not yet valid"));
        }
        /* The collateral of go-tdx-guest at 2053: expired. */
        _cleanup_(attest_collateral_freep) struct attest_collateral *c = vec_collateral_go();
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;
        assert_int_equal(verify("go-tdx-guest/tdx_prod_quote_SPR_E4.dat", c, T_2053, &r, NULL),
                         -EKEYEXPIRED);
}

/* The exact time window matters: the caches must not carry a verdict to a later time. */
static void test_cache_respects_time(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c =
                vec_collateral("dcap-qvl/tdx_quote_collateral.json");
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;

        assert_int_equal(verify("dcap-qvl/tdx_quote", c, T_TDX, &r, NULL), 0);
        attest_result_free(TAKE_PTR(r));
        assert_int_equal(verify("dcap-qvl/tdx_quote", c, T_2053, &r, NULL), -EKEYEXPIRED);
        assert_int_equal(verify("dcap-qvl/tdx_quote", c, 1750320802, &r, NULL), -EKEYEXPIRED);
        assert_int_equal(verify("dcap-qvl/tdx_quote", c, T_TDX, &r, NULL), 0);
}

/* go-tdx-guest TestNegativeVerification: one byte changed, the named check fails. */
static void test_spr_corruptions(void **state)
{
        static const struct {
                size_t off;
                uint8_t val;
                const char *expect;
        } cases[] = {
                {0x00, 3, "quote: version 3 quote with TEE type"},
                {0x278, 0x10, "quote:"},
                {0x1343, 0x32, "PCK chain"},
                {0x1329, 0x32, "PCK chain: root certificate"},
                {0xF5F, 0x32, "PCK chain: intermediate certificate"},
                {0xB77, 0x32, "PCK chain: PCK certificate"},
                {0x1E, 0x32, "quote signature: verification failed"},
                {0x3C, 0x32, "quote signature: verification failed"},
        };
        _cleanup_(attest_collateral_freep) struct attest_collateral *c = vec_collateral_go();
        size_t len = 0;
        _cleanup_free_ uint8_t *orig = vec_quote("go-tdx-guest/tdx_prod_quote_SPR_E4.dat", &len);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ uint8_t *q = malloc(len);
                _cleanup_(attest_result_freep) struct attest_result *r = NULL;
                _cleanup_error_ struct ck_error *e = NULL;
                struct attest_verify_opts o = {.now = T_SPR};
                int ret;

                memcpy(q, orig, len);
                assert_true(cases[i].off < len);
                q[cases[i].off] = cases[i].val;
                ret = attest_verify_quote(q, len, c, &o, &r, &e);
                assert_true(ret < 0);
                assert_non_null(e);
                if (!strstr(e->msg, cases[i].expect))
                        fail_msg("offset 0x%zx: got \"%s\", expected \"%s\"", cases[i].off, e->msg,
                                 cases[i].expect);
        }
}

static void test_intel_root(void **state)
{
        _cleanup_(X509_freep) X509 *root = attest_intel_root_ca();
        _cleanup_(X509_freep) X509 *pem = NULL, *der = NULL;
        _cleanup_free_ char *p1 = vec_path("intel_sgx_root_ca.pem"), *p2 = vec_path("intel_sgx_root_ca.der");

        assert_non_null(root);
        assert_int_equal(attest_root_load_file(p1, &pem, NULL), 0);
        assert_int_equal(attest_root_load_file(p2, &der, NULL), 0);
        assert_int_equal(X509_cmp(root, pem), 0);
        assert_int_equal(X509_cmp(root, der), 0);
}

/* Naming the Intel root explicitly is the same as the default (not simulated); any other root
 * makes the Intel-signed chain fail. */
static void test_explicit_root(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c =
                vec_collateral("dcap-qvl/tdx_quote_collateral.json");
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;
        _cleanup_(X509_freep) X509 *intel = attest_intel_root_ca();
        _cleanup_(X509_freep) X509 *other = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = EVP_EC_gen("P-256");
        size_t len = 0;
        _cleanup_free_ uint8_t *q = vec_quote("dcap-qvl/tdx_quote", &len);
        struct attest_verify_opts o = {.now = T_TDX, .root = intel};

        assert_int_equal(attest_verify_quote(q, len, c, &o, &r, NULL), 0);
        assert_false(r->simulated);
        attest_result_free(TAKE_PTR(r));

        other = X509_new();
        assert_non_null(other);
        X509_set_version(other, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(other), 1);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(other), "CN", MBSTRING_ASC,
                                   (const unsigned char *)"Intel SGX Root CA", -1, -1, 0);
        X509_set_issuer_name(other, X509_get_subject_name(other));
        X509_time_adj_ex(X509_getm_notBefore(other), -20000, 0, NULL);
        X509_time_adj_ex(X509_getm_notAfter(other), 20000, 0, NULL);
        X509_set_pubkey(other, k);
        X509_sign(other, k, EVP_sha256());
        o.root = other;
        _cleanup_error_ struct ck_error *e = NULL;
        assert_true(attest_verify_quote(q, len, c, &o, &r, &e) < 0);
        assert_null(r);
}

/* Many threads verifying against one collateral object: the caches fill concurrently. */
struct thread_arg {
        struct attest_collateral *c;
        const uint8_t *q;
        size_t len;
        int failures;
};

static void *verify_thread(void *p)
{
        struct thread_arg *a = p;
        struct attest_verify_opts o = {.now = T_TDX};

        for (int i = 0; i < 40; i++) {
                struct attest_result *r = NULL;
                if (attest_verify_quote(a->q, a->len, a->c, &o, &r, NULL) < 0 ||
                    r->status != ATTEST_TCB_UP_TO_DATE)
                        a->failures++;
                attest_result_free(r);
        }
        return NULL;
}

static void test_concurrent(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c =
                vec_collateral("dcap-qvl/tdx_quote_collateral.json");
        size_t len = 0;
        _cleanup_free_ uint8_t *q = vec_quote("dcap-qvl/tdx_quote", &len);
        pthread_t th[4];
        struct thread_arg args[4];

        for (size_t i = 0; i < 4; i++) {
                args[i] = (struct thread_arg){.c = c, .q = q, .len = len};
                assert_int_equal(pthread_create(&th[i], NULL, verify_thread, &args[i]), 0);
        }
        for (size_t i = 0; i < 4; i++) {
                pthread_join(th[i], NULL);
                assert_int_equal(args[i].failures, 0);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tdx_quote_up_to_date),
                cmocka_unit_test(test_tdx_quote_outdated_not_supported),
                cmocka_unit_test(test_sgx_quote),
                cmocka_unit_test(test_v5_sample_with_outdated_collateral),
                cmocka_unit_test(test_spr_quote_go_collateral),
                cmocka_unit_test(test_rejected_times),
                cmocka_unit_test(test_cache_respects_time),
                cmocka_unit_test(test_spr_corruptions),
                cmocka_unit_test(test_intel_root),
                cmocka_unit_test(test_explicit_root),
                cmocka_unit_test(test_concurrent),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
