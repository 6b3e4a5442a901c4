/* Verification against a non-Intel trust anchor (the simulated TD's case) with a test PKI built
 * on the fly, and the checks that Intel-signed vectors cannot reach: each case breaks one thing
 * (a revocation, a forged signature, a wrong name, an expired or undated document, a QE identity
 * field, a TCB component below its level, the TDX module identity) and names the check that must
 * refuse it, so that dropping any one check fails here even where a later one would also refuse.
 * The verification caches are checked against the windows they must not outlive. */
#include "cmocka-wrap.h"

#include <errno.h>

#include "attest-testpki.h"
#include "pck.h"
#include "quote.h"
#include "verify.h"

#define NOW 1760000000

static int run(const struct testpki_opts *o, bool with_root, struct attest_result **ret, struct ck_error **e)
{
        struct testpki t;
        int r;

        testpki_build(&t, o);
        struct attest_verify_opts vo = {.now = o->now, .root = with_root ? t.root : NULL};
        r = attest_verify_quote(t.quote, t.quote_len, t.col, &vo, ret, e);
        testpki_done(&t);
        return r;
}

static void test_sim_root_accepted_only_when_given(void **state)
{
        struct testpki_opts o = {.now = NOW, .td_attr3 = 0x10};
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;
        _cleanup_error_ struct ck_error *e = NULL, *e2 = NULL;
        int ret = run(&o, true, &r, &e);

        if (ret < 0)
                fail_msg("%s", e->msg);
        assert_true(r->simulated);
        assert_int_equal(r->status, ATTEST_TCB_UP_TO_DATE);
        assert_int_equal(r->tcb_eval_number, 99);
        assert_int_equal(r->m.mr_td[0], 0x7d);
        attest_result_free(TAKE_PTR(r));

        /* Without the root named explicitly, the pinned Intel root rejects it. */
        assert_int_equal(run(&o, false, &r, &e2), -EKEYREJECTED);
        assert_null(r);
        assert_non_null(strstr(e2->msg, "root"));
}

static void test_sim_negative(void **state)
{
        static const struct {
                struct testpki_opts o;
                int err;
                const char *msg;
        } cases[] = {
                {{.now = NOW, .revoke_leaf = true}, -EKEYREVOKED, "PCK chain: PCK certificate"},
                {{.now = NOW, .qe_binding_high = true}, -EKEYREJECTED, "QE binding"},
                {{.now = NOW, .two_cert_chain = true}, -EKEYREJECTED, "expected exactly 3"},
                {{.now = NOW, .tcb_fmspc = "00906ED50001"}, -ENOENT, "FMSPC"},
                {{.now = NOW, .qe_mrsigner_xor = 1}, -EKEYREJECTED, "QE identity: MRSIGNER"},
                {{.now = NOW, .level_status = "Revoked"}, -EKEYREVOKED, "revoked"},
                {{.now = NOW, .level_status = "OutOfDate"}, 0, NULL},
                {{.now = NOW, .qe_status = "OutOfDate"}, 0, NULL},
                /* Certificates and CRLs. */
                {{.now = NOW, .revoke_ca = true}, -EKEYREVOKED, "revoked"},
                {{.now = NOW, .revoke_root = true}, -EKEYREVOKED, "the root certificate is revoked"},
                {{.now = NOW, .root_crl_forged = true}, -EKEYREJECTED, "root CA CRL: signature"},
                {{.now = NOW, .pck_crl_forged = true}, -EKEYREJECTED, "PCK CRL: signature"},
                {{.now = NOW, .root_crl_no_next = true}, -EKEYEXPIRED, "root CA CRL: no nextUpdate"},
                {{.now = NOW, .pck_crl_no_next = true}, -EKEYEXPIRED, "PCK CRL: no nextUpdate"},
                {{.now = NOW, .root_crl_expired = true}, -EKEYEXPIRED, "root CA CRL: expired"},
                {{.now = NOW, .pck_crl_expired = true}, -EKEYEXPIRED, "PCK CRL: expired"},
                {{.now = NOW, .leaf_forged = true}, -EKEYREJECTED, "PCK chain: PCK certificate"},
                {{.now = NOW, .leaf_not_after = NOW - 3600}, -EKEYEXPIRED, "PCK chain: PCK certificate"},
                {{.now = NOW, .leaf_cn = "Test SIMULATED SGX PCK Other"}, -EKEYREJECTED, "leaf CN"},
                {{.now = NOW, .ca_cn = "Test SIMULATED SGX Other CA"},
                 -EKEYREJECTED,
                 "CN is not an SGX PCK CA"},
                {{.now = NOW, .tcb_signer_cn = "Test SIMULATED SGX Other"}, -EKEYREJECTED, "TCB Signing"},
                {{.now = NOW, .sgx_ext_no_fmspc = true}, -EBADMSG, "lacks TCB, PCE-ID or FMSPC"},
                {{.now = NOW, .sgx_ext_no_comp16 = true}, -EBADMSG, "TCB is incomplete"},
                /* TCB Info and QE Identity. */
                {{.now = NOW, .tcb_next = NOW - 3600}, -EKEYEXPIRED, "TCB Info: expired"},
                {{.now = NOW, .tcb_issue = NOW + 3600}, -EKEYEXPIRED, "TCB Info: issue date"},
                {{.now = NOW, .qe_next = NOW - 3600}, -EKEYEXPIRED, "QE Identity: expired"},
                {{.now = NOW, .tcb_id = "SGX"}, -EBADMSG, "is not TDX"},
                {{.now = NOW, .tcb_pceid = "0001"}, -ENOENT, "PCE-ID"},
                {{.now = NOW, .qe_id = "QE"}, -EBADMSG, "not TD_QE"},
                {{.now = NOW, .qe_status = "Revoked"}, -EKEYREVOKED, "QE TCB level is revoked"},
                /* The QE report against the QE Identity. */
                {{.now = NOW, .qe_prodid_xor = 1}, -EKEYREJECTED, "ISVPRODID"},
                {{.now = NOW, .qe_misc = 1}, -EKEYREJECTED, "MISCSELECT"},
                {{.now = NOW, .qe_attr_or = 0x02}, -EKEYREJECTED, "ATTRIBUTES"},
                {{.now = NOW, .qe_isvsvn_low = true}, -ENOENT, "no QE TCB level"},
                /* TCB levels and the TDX module. */
                {{.now = NOW, .pcesvn_low = true}, -ENOENT, "no matching TCB level"},
                {{.now = NOW, .sgx_svn_low = true}, -ENOENT, "no matching TCB level"},
                {{.now = NOW, .tdx_svn_low = true}, -ENOENT, "no matching TCB level"},
                {{.now = NOW, .tdx_svn0_low = true}, -ENOENT, "no matching TCB level"},
                {{.now = NOW, .seam_signer_xor = 1}, -EKEYREJECTED, "MRSIGNERSEAM"},
                {{.now = NOW, .seam_attr = 1}, -EKEYREJECTED, "SEAMATTRIBUTES is not zero"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(attest_result_freep) struct attest_result *r = NULL;
                _cleanup_error_ struct ck_error *e = NULL;
                int ret = run(&cases[i].o, true, &r, &e);

                if (ret != cases[i].err)
                        fail_msg("case %zu: %d %s", i, ret, e ? e->msg : "");
                if (cases[i].msg && !strstr(e->msg, cases[i].msg))
                        fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e->msg, cases[i].msg);
                if (ret == 0)
                        assert_int_equal(r->status, ATTEST_TCB_OUT_OF_DATE);
        }
}

/* Time windows of the simulated collateral: before issue and after nextUpdate. */
static void test_sim_times(void **state)
{
        struct testpki t;
        struct testpki_opts o = {.now = NOW};
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;

        testpki_build(&t, &o);
        struct attest_verify_opts vo = {.now = NOW, .root = t.root};
        assert_int_equal(attest_verify_quote(t.quote, t.quote_len, t.col, &vo, &r, NULL), 0);
        attest_result_free(TAKE_PTR(r));
        vo.now = NOW + 31 * 86400;
        assert_int_equal(attest_verify_quote(t.quote, t.quote_len, t.col, &vo, &r, NULL), -EKEYEXPIRED);
        vo.now = NOW - 2 * 86400;
        assert_int_equal(attest_verify_quote(t.quote, t.quote_len, t.col, &vo, &r, NULL), -EKEYEXPIRED);
        vo.now = NOW;
        assert_int_equal(attest_verify_quote(t.quote, t.quote_len, t.col, &vo, &r, NULL), 0);
        testpki_done(&t);
}

/* A verdict cached at one time is not reused past the window of what it checked: TCB Info that
 * expires tomorrow (the collateral-wide cache), a PCK leaf that expires tomorrow (the PCK chain
 * cache). */
static void test_sim_cache_windows(void **state)
{
        static const struct {
                struct testpki_opts o;
                const char *msg;
        } cases[] = {
                {{.now = NOW, .tcb_next = NOW + 86400}, "TCB Info: expired"},
                {{.now = NOW, .leaf_not_after = NOW + 86400}, "PCK certificate"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(attest_result_freep) struct attest_result *r = NULL;
                _cleanup_error_ struct ck_error *e = NULL;
                struct testpki t;
                int ret;

                testpki_build(&t, &cases[i].o);
                struct attest_verify_opts vo = {.now = NOW, .root = t.root};
                assert_int_equal(attest_verify_quote(t.quote, t.quote_len, t.col, &vo, &r, NULL), 0);
                attest_result_free(TAKE_PTR(r));
                vo.now = NOW + 2 * 86400;
                ret = attest_verify_quote(t.quote, t.quote_len, t.col, &vo, &r, &e);
                if (ret != -EKEYEXPIRED || !strstr(e->msg, cases[i].msg))
                        fail_msg("case %zu: %d %s", i, ret, e ? e->msg : "");
                testpki_done(&t);
        }
}

/* The check that gates a collateral fetch: the chain must verify, not just end at the root. */
static void test_sim_pck_identity_verified(void **state)
{
        for (int forged = 0; forged < 2; forged++) {
                _cleanup_error_ struct ck_error *e = NULL;
                struct testpki_opts o = {.now = NOW, .leaf_forged = forged};
                struct attest_quote q;
                const char *ca_type = NULL;
                char fmspc[13] = "";
                struct testpki t;
                int ret;

                testpki_build(&t, &o);
                assert_int_equal(attest_quote_parse(t.quote, t.quote_len, &q, NULL), 0);
                ret = attest_quote_pck_identity_verified(&q, t.root, NOW, fmspc, &ca_type, &e);
                if (forged) {
                        assert_int_equal(ret, -EKEYREJECTED);
                } else {
                        if (ret < 0)
                                fail_msg("%s", e->msg);
                        assert_string_equal(fmspc, "00906ed50000");
                        assert_string_equal(ca_type, "platform");
                }
                testpki_done(&t);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sim_root_accepted_only_when_given),
                cmocka_unit_test(test_sim_negative),
                cmocka_unit_test(test_sim_times),
                cmocka_unit_test(test_sim_cache_windows),
                cmocka_unit_test(test_sim_pck_identity_verified),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
