/* Unit tests for the broker policy: exact full-length matches, startup errors for malformed
 * values (prefixes above all), case-insensitive hex, defaults that fail closed, and every
 * reason code. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

#define RTMR1_HEX                                                                                           \
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define IMAGE_HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A verified production TD matching the seed policy: TDX, UpToDate, DEBUG=0, SEPT_VE_DISABLE=1. */
static void good_result(struct attest_result *r)
{
        *r = (struct attest_result){.status = ATTEST_TCB_UP_TO_DATE,
                                    .tee_type = ATTEST_TEE_TDX,
                                    .quote_version = 4,
                                    .tcb_eval_number = 17};
        memcpy(r->fmspc, "00806f050000", 13);
        for (int i = 0; i < 48; i++)
                r->m.rtmr[1][i] = (uint8_t)((i % 16) * 0x11);
        r->m.td_attributes[3] = 0x10; /* bit 28 */
}

static const char *decide(const struct broker_policy *p, const struct attest_result *r, const char *app_id)
{
        struct broker_evidence ev = {
                .result = r, .app_id = (const uint8_t *)app_id, .app_id_len = app_id ? strlen(app_id) : 0};
        struct broker_decision d;

        broker_policy_decide(p, &ev, &d);
        return d.allow ? d.secret_id : d.reason;
}

static void test_flags_exact_match(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct attest_result r;

        assert_int_equal(
                broker_policy_from_flags("/secret/secret.json", RTMR1_HEX, IMAGE_HEX, false, &p, NULL), 0);
        good_result(&r);
        assert_string_equal(decide(p, &r, "sha256:" IMAGE_HEX), "default");
        /* The claim may be bare hex or upper case; it is normalised like the flag. */
        assert_string_equal(decide(p, &r, IMAGE_HEX), "default");
        assert_string_equal(
                decide(p, &r, "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"),
                "default");
        r.m.rtmr[1][47] ^= 1;
        assert_string_equal(decide(p, &r, "sha256:" IMAGE_HEX), "rtmr1_mismatch");
        r.m.rtmr[1][47] ^= 1;
        assert_string_equal(
                decide(p, &r, "sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                "image_mismatch");
        assert_string_equal(decide(p, &r, "sha256:" IMAGE_HEX "00"), "image_mismatch");
        assert_string_equal(decide(p, &r, "sha256:0123"), "image_mismatch");
        assert_string_equal(decide(p, &r, NULL), "image_mismatch");
}

static void test_flags_case_insensitive_and_prefixed_image(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        char upper[97];
        struct attest_result r;

        for (int i = 0; i < 96; i++)
                upper[i] = (char)((RTMR1_HEX[i] >= 'a' && RTMR1_HEX[i] <= 'f') ? RTMR1_HEX[i] - 32
                                                                               : RTMR1_HEX[i]);
        upper[96] = 0;
        assert_int_equal(broker_policy_from_flags("s.json", upper, "sha256:" IMAGE_HEX, false, &p, NULL), 0);
        good_result(&r);
        assert_string_equal(decide(p, &r, "sha256:" IMAGE_HEX), "default");
}

static void test_flags_malformed_rejected_at_load(void **state)
{
        struct broker_policy *p = NULL;
        _cleanup_error_ struct ck_error *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL, *e5 = NULL;
        char prefix[49];

        /* A prefix of the right RTMR1 is a startup error, never a prefix match. */
        memcpy(prefix, RTMR1_HEX, 48);
        prefix[48] = 0;
        assert_int_equal(broker_policy_from_flags("s.json", prefix, IMAGE_HEX, false, &p, &e1), -EINVAL);
        assert_non_null(strstr(e1->msg, "exactly 96 hex digits"));
        assert_non_null(strstr(e1->msg, "got 48"));
        assert_non_null(strstr(e1->msg, "-w"));
        assert_int_equal(broker_policy_from_flags("s.json", RTMR1_HEX "00", IMAGE_HEX, false, &p, &e2),
                         -EINVAL);
        assert_non_null(strstr(e2->msg, "got 98"));
        assert_int_equal(
                broker_policy_from_flags("s.json",
                                         "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0"
                                         "0112233445566778899aabbccddeeff",
                                         IMAGE_HEX, false, &p, &e3),
                -EINVAL);
        assert_non_null(strstr(e3->msg, "character 1 is not a hex digit"));
        assert_int_equal(broker_policy_from_flags("s.json", RTMR1_HEX, "sha256:abcd", false, &p, &e4),
                         -EINVAL);
        assert_non_null(strstr(e4->msg, "-d"));
        assert_int_equal(broker_policy_from_flags("s.json", "", IMAGE_HEX, false, &p, &e5), -EINVAL);
        assert_null(p);
}

static void test_reason_codes(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct attest_result r;
        const char *img = "sha256:" IMAGE_HEX;

        assert_int_equal(broker_policy_from_flags("s.json", RTMR1_HEX, IMAGE_HEX, false, &p, NULL), 0);

        good_result(&r);
        r.status = ATTEST_TCB_OUT_OF_DATE;
        assert_string_equal(decide(p, &r, img), "tcb_status");
        r.status = ATTEST_TCB_REVOKED;
        assert_string_equal(decide(p, &r, img), "tcb_status");

        good_result(&r);
        r.m.td_attributes[0] = 0x01; /* DEBUG */
        assert_string_equal(decide(p, &r, img), "debug_td");
        r.m.td_attributes[0] = 0x80; /* another TUD bit */
        assert_string_equal(decide(p, &r, img), "debug_td");

        good_result(&r);
        r.m.td_attributes[3] = 0;
        assert_string_equal(decide(p, &r, img), "sept_ve_not_disabled");

        good_result(&r);
        r.simulated = true;
        assert_string_equal(decide(p, &r, img), "simulated_td");

        good_result(&r);
        r.tee_type = ATTEST_TEE_SGX;
        assert_string_equal(decide(p, &r, img), "not_tdx");
}

static void test_flags_simulated_when_trusted(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct attest_result r;

        assert_int_equal(broker_policy_from_flags("s.json", RTMR1_HEX, IMAGE_HEX, true, &p, NULL), 0);
        good_result(&r);
        r.simulated = true;
        assert_string_equal(decide(p, &r, "sha256:" IMAGE_HEX), "default");
}

static const char policy_json[] =
        "{\"secrets\":["
        " {\"id\":\"db\",\"file\":\"/s/db.json\",\"rules\":["
        "   {\"mrtd\":\"" RTMR1_HEX "\",\"rtmr1\":\"" RTMR1_HEX "\",\"imageIds\":[\"sha256:" IMAGE_HEX "\"],"
        "    \"tcbStatuses\":[\"UpToDate\",\"SWHardeningNeeded\"],\"minTcbEvaluationNumber\":17}]},"
        " {\"id\":\"old\",\"file\":\"/s/old.json\",\"rules\":["
        "   {\"imageIds\":[\"" IMAGE_HEX "\"],\"tcbStatuses\":[\"OutOfDate\"],\"allowDebug\":true,"
        "    \"requireSeptVeDisable\":false}]}"
        "]}";

static void test_json_policy(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct attest_result r;
        const char *img = "sha256:" IMAGE_HEX;

        assert_int_equal(
                broker_policy_from_json((const uint8_t *)policy_json, strlen(policy_json), false, &p, NULL),
                0);
        assert_int_equal(p->n_secrets, 2);
        good_result(&r);
        memcpy(r.m.mr_td, r.m.rtmr[1], 48);
        assert_string_equal(decide(p, &r, img), "db");
        r.status = ATTEST_TCB_SW_HARDENING_NEEDED;
        assert_string_equal(decide(p, &r, img), "db");
        r.tcb_eval_number = 16;
        assert_string_equal(decide(p, &r, img), "tcb_eval_too_old");
        r.tcb_eval_number = 17;
        r.m.mr_td[0] ^= 0xff;
        assert_string_equal(decide(p, &r, img), "mrtd_mismatch");
        /* The second secret accepts OutOfDate and debug TDs, with no measurement pinned. */
        r.status = ATTEST_TCB_OUT_OF_DATE;
        r.m.td_attributes[0] = 1;
        assert_string_equal(decide(p, &r, img), "old");
        /* The furthest-reaching rule names the reason. */
        r.status = ATTEST_TCB_UP_TO_DATE;
        r.m.td_attributes[0] = 0;
        memcpy(r.m.mr_td, r.m.rtmr[1], 48);
        r.m.rtmr[1][0] ^= 1;
        assert_string_equal(decide(p, &r, img), "rtmr1_mismatch");
}

static void expect_json_error(const char *json, bool trust_sim, const char *needle)
{
        struct broker_policy *p = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        int rc = broker_policy_from_json((const uint8_t *)json, strlen(json), trust_sim, &p, &e);

        if (rc >= 0 || !e || !strstr(e->msg, needle))
                fail_msg("policy %s: expected an error containing \"%s\", got %d %s", json, needle, rc,
                         e ? e->msg : "(none)");
        assert_null(p);
}

static void test_json_policy_errors(void **state)
{
        expect_json_error("[]", false, "must be a JSON object");
        expect_json_error("{\"secrets\":[]}", false, "1 to");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"imageIds\":[\"" IMAGE_HEX
                          "\"],\"rtmr1\":\"0011\"}]}]}",
                          false, "secrets[0].rules[0].rtmr1: expected exactly 96 hex digits");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"imageIds\":[\"" IMAGE_HEX
                          "\"],\"rtmr_1\":\"" RTMR1_HEX "\"}]}]}",
                          false, "unknown key \"rtmr_1\"");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{}]}]}", false,
                          "\"imageIds\" is required");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"imageIds\":[\"" IMAGE_HEX
                          "\"],\"tcbStatuses\":[\"Fine\"]}]}]}",
                          false, "not a TCB status");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"imageIds\":[\"" IMAGE_HEX
                          "\"],\"tcbStatuses\":[\"Revoked\"]}]}]}",
                          false, "Revoked can never be accepted");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"imageIds\":[\"" IMAGE_HEX
                          "\"],\"allowSimulated\":true}]}]}",
                          false, "--trust-sim-root");
        expect_json_error(
                "{\"secrets\":[{\"id\":\"a b\",\"file\":\"f\",\"rules\":[{\"imageIds\":[\"" IMAGE_HEX
                "\"]}]}]}",
                false, "\"id\" must be");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"imageIds\":[\"" IMAGE_HEX
                          "\"]}]},{\"id\":\"a\",\"file\":\"g\",\"rules\":[{\"imageIds\":[\"" IMAGE_HEX
                          "\"]}]}]}",
                          false, "duplicate id");
        expect_json_error(
                "{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"imageIds\":[\"sha256:12\"]}]}]}",
                false, "is not an image ID");
        expect_json_error("{\"secrets\":[]} x", false, "malformed JSON");
}

static void test_json_allow_simulated_with_trust(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        const char *json =
                "{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"imageIds\":[\"" IMAGE_HEX
                "\"],\"allowSimulated\":true}]}]}";
        struct attest_result r;

        assert_int_equal(broker_policy_from_json((const uint8_t *)json, strlen(json), true, &p, NULL), 0);
        good_result(&r);
        r.simulated = true;
        assert_string_equal(decide(p, &r, IMAGE_HEX), "a");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_flags_exact_match),
                cmocka_unit_test(test_flags_case_insensitive_and_prefixed_image),
                cmocka_unit_test(test_flags_malformed_rejected_at_load),
                cmocka_unit_test(test_reason_codes),
                cmocka_unit_test(test_flags_simulated_when_trusted),
                cmocka_unit_test(test_json_policy),
                cmocka_unit_test(test_json_policy_errors),
                cmocka_unit_test(test_json_allow_simulated_with_trust),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
