/* Verification against a non-Intel trust anchor (the simulated TD's case) with a test PKI built
 * on the fly, and the checks that Intel-signed vectors cannot reach: revoked PCK, QE binding,
 * QE identity mismatch, FMSPC mismatch, chain length, revoked TCB level. */
#include "cmocka-wrap.h"

#include <errno.h>

#include "attest-testpki.h"
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

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sim_root_accepted_only_when_given),
                cmocka_unit_test(test_sim_negative),
                cmocka_unit_test(test_sim_times),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
