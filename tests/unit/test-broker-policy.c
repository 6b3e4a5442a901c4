/* Unit tests for the broker policy: exact full-length matches, startup errors for malformed
 * values (prefixes above all) and for rules that leave the firmware open, case-insensitive hex,
 * defaults that fail closed, the image and task-config taken from the RTMR3 log, and every
 * reason code. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parse.h"
#include "policy.h"

#define RTMR1_HEX                                                                                           \
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define MRTD_HEX                                                                                            \
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
#define IMAGE_HEX  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define IMAGE2_HEX "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

#define TC_DOC(image_hex)                                                                                   \
        "{\"env\":[\"DB_HOST=db\",\"MODE=prod\"],\"image\":\"docker.io/reckey/conker-example-app:latest\"," \
        "\"imageId\":\"sha256:" image_hex "\",\"kmsEndpoints\":[\"127.0.0.1:3333\"],"                       \
        "\"mounts\":[{\"rw\":true,\"source\":\"test-api\",\"target\":\"/inner1\",\"type\":\"volume\"}],"    \
        "\"ports\":[{\"published\":30001,\"target\":8080}],\"version\":1}"

/* A verified production TD matching the seed policy: TDX, UpToDate, DEBUG=0, SEPT_VE_DISABLE=1. */
static void good_result(struct attest_result *r)
{
        *r = (struct attest_result){.status = ATTEST_TCB_UP_TO_DATE,
                                    .tee_type = ATTEST_TEE_TDX,
                                    .quote_version = 4,
                                    .tcb_eval_number = 17};
        memcpy(r->fmspc, "00806f050000", 13);
        for (int i = 0; i < 48; i++) {
                r->m.rtmr[1][i] = (uint8_t)((i % 16) * 0x11);
                r->m.mr_td[i] = (uint8_t)(0xa0 + i);
        }
        r->m.td_attributes[3] = 0x10; /* bit 28 */
}

/* What one simulated TD presents: the quote's result, its RTMR3 log, and the claims. */
struct td {
        struct attest_result r;
        struct attest_rt_log log;
        bool with_log;
        const char *app_id;
        const char *tc; /* task-config claim; NULL: none */
};

static void td_clear(struct td *t)
{
        attest_rt_log_clear(&t->log);
}

/* Rebuilds the log from name/payload pairs and sets RTMR3 to its replay. */
static void td_set_log(struct td *t, const char *const *ev, size_t n)
{
        char *text = calloc(1, 1);
        size_t len = 0;

        assert_non_null(text);
        for (size_t i = 0; i < n; i++) {
                char *line = NULL;
                uint8_t d[48];

                assert_int_equal(attest_rt_event_digest(ev[2 * i], ev[2 * i + 1], d), 0);
                assert_int_equal(attest_rt_event_format(ev[2 * i], ev[2 * i + 1], d, &line), 0);
                text = realloc(text, len + strlen(line) + 1);
                assert_non_null(text);
                memcpy(text + len, line, strlen(line) + 1);
                len += strlen(line);
                free(line);
        }
        attest_rt_log_clear(&t->log);
        assert_int_equal(attest_rt_log_parse((const uint8_t *)text, len, &t->log, NULL), 0);
        assert_int_equal(attest_rt_log_replay(&t->log, t->r.m.rtmr[3]), 0);
        t->with_log = true;
        free(text);
}

static void tc_digest(const char *doc, char out[72])
{
        assert_int_equal(broker_task_config_digest((const uint8_t *)doc, strlen(doc), out), 0);
}

/* A TD that ran IMAGE with TC_DOC(IMAGE) and says so truthfully. */
static void td_good(struct td *t)
{
        static char digest[72];
        static const char tc[] = TC_DOC(IMAGE_HEX);
        const char *ev[4] = {"image-digest", "sha256:" IMAGE_HEX, "task-config", digest};

        *t = (struct td){.app_id = "sha256:" IMAGE_HEX, .tc = tc};
        good_result(&t->r);
        tc_digest(tc, digest);
        td_set_log(t, ev, 2);
}

static const char *td_decide_full(const struct broker_policy *p, const struct td *t,
                                  struct broker_decision *d)
{
        struct broker_evidence ev = {.result = &t->r,
                                     .app_id = (const uint8_t *)t->app_id,
                                     .app_id_len = t->app_id ? strlen(t->app_id) : 0,
                                     .rtmr3_log = t->with_log ? &t->log : NULL,
                                     .task_config = (const uint8_t *)t->tc,
                                     .task_config_len = t->tc ? strlen(t->tc) : 0};

        broker_policy_decide(p, &ev, d);
        return d->allow ? d->secret_id : d->reason;
}

static const char *td_decide(const struct broker_policy *p, const struct td *t)
{
        static struct broker_decision d;

        return td_decide_full(p, t, &d);
}

/* The result r presented with the good log and claims, appId app_id. */
static const char *decide(const struct broker_policy *p, const struct attest_result *r, const char *app_id)
{
        struct td t;
        uint8_t rtmr3[48];
        const char *ret;

        td_good(&t);
        memcpy(rtmr3, t.r.m.rtmr[3], 48);
        t.r = *r;
        memcpy(t.r.m.rtmr[3], rtmr3, 48);
        t.app_id = app_id;
        ret = td_decide(p, &t);
        td_clear(&t);
        return ret;
}

static int flags(const char *rtmr1, const char *image, bool sim, struct broker_policy **p,
                 struct ck_error **e)
{
        return broker_policy_from_flags(&(struct broker_policy_flags){.secret_path = "/secret/secret.json",
                                                                      .mrtd = MRTD_HEX,
                                                                      .rtmr1 = rtmr1,
                                                                      .image_id = image,
                                                                      .allow_simulated = sim},
                                        p, e);
}

static void test_flags_exact_match(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct attest_result r;

        assert_int_equal(flags(RTMR1_HEX, IMAGE_HEX, false, &p, NULL), 0);
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
        assert_int_equal(flags(upper, "sha256:" IMAGE_HEX, false, &p, NULL), 0);
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
        assert_int_equal(flags(prefix, IMAGE_HEX, false, &p, &e1), -EINVAL);
        assert_non_null(strstr(e1->msg, "exactly 96 hex digits"));
        assert_non_null(strstr(e1->msg, "got 48"));
        assert_non_null(strstr(e1->msg, "-w"));
        assert_int_equal(flags(RTMR1_HEX "00", IMAGE_HEX, false, &p, &e2), -EINVAL);
        assert_non_null(strstr(e2->msg, "got 98"));
        assert_int_equal(flags("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0"
                               "0112233445566778899aabbccddeeff",
                               IMAGE_HEX, false, &p, &e3),
                         -EINVAL);
        assert_non_null(strstr(e3->msg, "character 1 is not a hex digit"));
        assert_int_equal(flags(RTMR1_HEX, "sha256:abcd", false, &p, &e4), -EINVAL);
        assert_non_null(strstr(e4->msg, "-d"));
        assert_int_equal(flags("", IMAGE_HEX, false, &p, &e5), -EINVAL);
        assert_null(p);
}

static void test_reason_codes(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct attest_result r;
        const char *img = "sha256:" IMAGE_HEX;

        assert_int_equal(flags(RTMR1_HEX, IMAGE_HEX, false, &p, NULL), 0);

        /* The default accepts UpToDate only. */
        good_result(&r);
        for (int s = 0; s < _ATTEST_TCB_STATUS_MAX; s++) {
                r.status = (enum attest_tcb_status)s;
                assert_string_equal(decide(p, &r, img),
                                    s == ATTEST_TCB_UP_TO_DATE ? "default" : "tcb_status");
        }

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

        assert_int_equal(flags(RTMR1_HEX, IMAGE_HEX, true, &p, NULL), 0);
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
        "   {\"firmware\":\"any\",\"imageIds\":[\"" IMAGE_HEX
        "\"],\"tcbStatuses\":[\"OutOfDate\"],\"allowDebug\":true,"
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
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"firmware\":\"any\","
                          "\"imageIds\":[\"" IMAGE_HEX "\"],\"rtmr1\":\"0011\"}]}]}",
                          false, "secrets[0].rules[0].rtmr1: expected exactly 96 hex digits");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"firmware\":\"any\","
                          "\"imageIds\":[\"" IMAGE_HEX "\"],\"rtmr_1\":\"" RTMR1_HEX "\"}]}]}",
                          false, "unknown key \"rtmr_1\"");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"firmware\":\"any\"}]}]}",
                          false, "\"imageIds\" is required");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"firmware\":\"any\","
                          "\"imageIds\":[\"" IMAGE_HEX "\"],\"tcbStatuses\":[\"Fine\"]}]}]}",
                          false, "not a TCB status");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"firmware\":\"any\","
                          "\"imageIds\":[\"" IMAGE_HEX "\"],\"tcbStatuses\":[\"Revoked\"]}]}]}",
                          false, "Revoked can never be accepted");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"firmware\":\"any\","
                          "\"imageIds\":[\"" IMAGE_HEX "\"],\"allowSimulated\":true}]}]}",
                          false, "--trust-sim-root");
        expect_json_error("{\"secrets\":[{\"id\":\"a "
                          "b\",\"file\":\"f\",\"rules\":[{\"firmware\":\"any\",\"imageIds\":[\"" IMAGE_HEX
                          "\"]}]}]}",
                          false, "\"id\" must be");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"firmware\":\"any\","
                          "\"imageIds\":[\"" IMAGE_HEX "\"]}]},{\"id\":\"a\",\"file\":\"g\",\"rules\":[{"
                          "\"firmware\":\"any\",\"imageIds\":[\"" IMAGE_HEX "\"]}]}]}",
                          false, "duplicate id");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"firmware\":\"any\","
                          "\"imageIds\":[\"sha256:12\"]}]}]}",
                          false, "is not a digest");
        expect_json_error("{\"secrets\":[]} x", false, "malformed JSON");
}

static void test_json_allow_simulated_with_trust(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        const char *json = "{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"firmware\":\"any\","
                           "\"imageIds\":[\"" IMAGE_HEX "\"],\"allowSimulated\":true}]}]}";
        struct attest_result r;

        assert_int_equal(broker_policy_from_json((const uint8_t *)json, strlen(json), true, &p, NULL), 0);
        good_result(&r);
        r.simulated = true;
        assert_string_equal(decide(p, &r, IMAGE_HEX), "a");
}

/* Finding 1: the seed's RTMR1-only line is refused with the one line that names the fix. */
static void test_seed_rtmr1_only_refused(void **state)
{
        struct broker_policy *p = NULL;
        _cleanup_error_ struct ck_error *e = NULL, *e2 = NULL;

        assert_int_equal(
                broker_policy_from_flags(&(struct broker_policy_flags){.secret_path = "/secret/s.json",
                                                                       .rtmr1 = RTMR1_HEX,
                                                                       .image_id = IMAGE_HEX},
                                         &p, &e),
                -EINVAL);
        assert_null(p);
        assert_string_equal(
                ck_error_message(e, -EINVAL),
                "-w pins RTMR1 only, which a host-supplied firmware can forge: add --mrtd <MRTD hex> "
                "(or --firmware any to accept any firmware)");
        /* Nothing pinned at all: the same fix, worded for that case. */
        assert_int_equal(broker_policy_from_flags(
                                 &(struct broker_policy_flags){.secret_path = "/secret/s.json"}, &p, &e2),
                         -EINVAL);
        assert_non_null(strstr(e2->msg, "--mrtd"));
        assert_non_null(strstr(e2->msg, "--firmware any"));
}

static void test_flags_firmware_any(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct broker_policy *q = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_result r;

        assert_int_equal(broker_policy_from_flags(&(struct broker_policy_flags){.secret_path = "s.json",
                                                                                .rtmr1 = RTMR1_HEX,
                                                                                .firmware_any = true,
                                                                                .image_id = IMAGE_HEX},
                                                  &p, NULL),
                         0);
        good_result(&r);
        r.m.mr_td[0] ^= 1; /* any firmware */
        assert_string_equal(decide(p, &r, "sha256:" IMAGE_HEX), "default");
        assert_int_equal(broker_policy_from_flags(&(struct broker_policy_flags){.secret_path = "s.json",
                                                                                .mrtd = MRTD_HEX,
                                                                                .firmware_any = true},
                                                  &q, &e),
                         -EINVAL);
        assert_non_null(strstr(e->msg, "contradicts"));
}

/* Finding 1: a TD whose MRTD differs (another firmware extending the expected RTMR1) is refused. */
static void test_mrtd_differs_refused(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct td t;
        struct broker_decision d;

        assert_int_equal(flags(RTMR1_HEX, IMAGE_HEX, false, &p, NULL), 0);
        td_good(&t);
        assert_string_equal(td_decide_full(p, &t, &d), "default");
        assert_int_equal(d.pinned, BROKER_PIN_MRTD | (BROKER_PIN_RTMR0 << 1) | BROKER_PIN_IMAGE);
        t.r.m.mr_td[47] ^= 1;
        assert_string_equal(td_decide(p, &t), "mrtd_mismatch");
        td_clear(&t);
}

/* Each RTMR pin is compared in full, RTMR3 included: a TD whose RTMR differs from the pin is
 * refused with that RTMR's reason, even with a log that replays. */
static void test_rtmr_pins(void **state)
{
        struct td t;

        td_good(&t);
        for (unsigned k = 0; k < 4; k++) {
                _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
                _cleanup_error_ struct ck_error *e = NULL;
                char json[1024], hex[97], reason[32];
                uint8_t pin[48];

                memcpy(pin, t.r.m.rtmr[k], 48);
                pin[47] ^= 1;
                ck_hex_encode(pin, 48, hex);
                snprintf(
                        json, sizeof(json),
                        "{\"secrets\":[{\"id\":\"s\",\"file\":\"/s/s.json\",\"rules\":[{\"mrtd\":\"" MRTD_HEX
                        "\",\"rtmr%u\":\"%s\",\"imageIds\":[\"sha256:" IMAGE_HEX "\"]}]}]}",
                        k, hex);
                if (broker_policy_from_json((const uint8_t *)json, strlen(json), false, &p, &e) < 0)
                        fail_msg("%s", e->msg);
                snprintf(reason, sizeof(reason), "rtmr%u_mismatch", k);
                assert_string_equal(td_decide(p, &t), reason);
                /* The pin equal to the TD's value is accepted. */
                broker_policy_free(TAKE_PTR(p));
                ck_hex_encode(t.r.m.rtmr[k], 48, hex);
                snprintf(
                        json, sizeof(json),
                        "{\"secrets\":[{\"id\":\"s\",\"file\":\"/s/s.json\",\"rules\":[{\"mrtd\":\"" MRTD_HEX
                        "\",\"rtmr%u\":\"%s\",\"imageIds\":[\"sha256:" IMAGE_HEX "\"]}]}]}",
                        k, hex);
                assert_int_equal(
                        broker_policy_from_json((const uint8_t *)json, strlen(json), false, &p, NULL), 0);
                assert_string_equal(td_decide(p, &t), "s");
        }
        td_clear(&t);
}

static void test_flags_reference_values(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct broker_policy *q = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        char path[] = "/tmp/test-policy-rv-XXXXXX";
        const char doc[] = "{\"mrtd\":\"" MRTD_HEX "\",\"rtmr2\":\"" RTMR1_HEX "\",\"source\":\"test\"}";
        int fd = mkstemp(path);
        struct td t;

        assert_true(fd >= 0);
        assert_int_equal(write(fd, doc, sizeof(doc) - 1), (ssize_t)(sizeof(doc) - 1));
        close(fd);
        assert_int_equal(broker_policy_from_flags(&(struct broker_policy_flags){.secret_path = "s.json",
                                                                                .reference_values = path,
                                                                                .rtmr1 = RTMR1_HEX,
                                                                                .image_id = IMAGE_HEX},
                                                  &p, NULL),
                         0);
        td_good(&t);
        assert_string_equal(td_decide(p, &t), "rtmr2_mismatch");
        memcpy(t.r.m.rtmr[2], t.r.m.rtmr[1], 48);
        assert_string_equal(td_decide(p, &t), "default");
        td_clear(&t);
        /* The same register from the file and a flag is ambiguous: refused. */
        assert_int_equal(broker_policy_from_flags(&(struct broker_policy_flags){.secret_path = "s.json",
                                                                                .reference_values = path,
                                                                                .mrtd = MRTD_HEX},
                                                  &q, &e),
                         -EINVAL);
        assert_non_null(strstr(e->msg, "pinned twice"));
        unlink(path);
}

/* Finding 2: the image comes from a replaying RTMR3 log, not from the appId claim. */
static void test_log_missing_or_not_replaying_refused(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct td t;

        assert_int_equal(flags(RTMR1_HEX, IMAGE_HEX, false, &p, NULL), 0);
        td_good(&t);
        t.with_log = false;
        assert_string_equal(td_decide(p, &t), "rtmr3_log_missing");
        t.with_log = true;
        t.r.m.rtmr[3][0] ^= 1;
        assert_string_equal(td_decide(p, &t), "rtmr3_log_mismatch");
        td_clear(&t);
}

static void test_image_not_in_log_refused(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL, *any = NULL;
        char digest[72], digest2[72];
        static const char tc2[] = TC_DOC(IMAGE2_HEX);
        struct td t;

        assert_int_equal(flags(RTMR1_HEX, IMAGE_HEX, false, &p, NULL), 0);
        assert_int_equal(flags(RTMR1_HEX, NULL, false, &any, NULL), 0);
        td_good(&t);
        tc_digest(t.tc, digest);
        tc_digest(tc2, digest2);
        {
                /* The TD ran IMAGE2 only but claims IMAGE (and IMAGE's task-config). */
                const char *ev[4] = {"image-digest", "sha256:" IMAGE2_HEX, "task-config", digest2};
                td_set_log(&t, ev, 2);
        }
        assert_string_equal(td_decide(p, &t), "image_not_in_log");
        /* The seed's form without -d: any image, but still only one that is in the log. */
        assert_string_equal(td_decide(any, &t), "image_not_in_log");
        t.app_id = "sha256:" IMAGE2_HEX;
        t.tc = tc2;
        assert_string_equal(td_decide(p, &t), "image_mismatch");
        assert_string_equal(td_decide(any, &t), "default");
        {
                /* Two tasks since boot: both images are in the log, each with its own config. */
                const char *ev[8] = {"image-digest", "sha256:" IMAGE_HEX,  "task-config", digest,
                                     "image-digest", "sha256:" IMAGE2_HEX, "task-config", digest2};
                td_set_log(&t, ev, 4);
        }
        t.app_id = "sha256:" IMAGE_HEX;
        t.tc = NULL;
        assert_string_equal(td_decide(p, &t), "task_config_missing");
        /* IMAGE2's config with IMAGE's appId: the config is not for this image. */
        t.tc = tc2;
        assert_string_equal(td_decide(p, &t), "task_config_image_mismatch");
        td_clear(&t);
}

static void test_log_image_allowlist(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct broker_policy *q = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        char digest[72];
        struct td t;
        struct broker_decision d;

        assert_int_equal(broker_policy_from_flags(
                                 &(struct broker_policy_flags){.secret_path = "s.json",
                                                               .mrtd = MRTD_HEX,
                                                               .image_id = IMAGE_HEX,
                                                               .image_allowlist = IMAGE_HEX "," IMAGE_HEX},
                                 &p, NULL),
                         0);
        td_good(&t);
        assert_string_equal(td_decide_full(p, &t, &d), "default");
        assert_true(d.pinned & BROKER_PIN_LOG_IMAGES);
        tc_digest(t.tc, digest);
        {
                const char *ev[6] = {"image-digest",      "sha256:" IMAGE2_HEX, "image-digest",
                                     "sha256:" IMAGE_HEX, "task-config",        digest};
                td_set_log(&t, ev, 3);
        }
        assert_string_equal(td_decide(p, &t), "log_image_not_allowed");
        td_clear(&t);
        assert_int_equal(
                broker_policy_from_flags(&(struct broker_policy_flags){.secret_path = "s.json",
                                                                       .mrtd = MRTD_HEX,
                                                                       .image_allowlist = "sha256:00,"},
                                         &q, &e),
                -EINVAL);
}

static void test_task_config_binding(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        static const char other[] = "{\"env\":[],\"image\":\"x\",\"imageId\":\"sha256:" IMAGE_HEX
                                    "\",\"kmsEndpoints\":[],\"mounts\":[],\"ports\":[],\"version\":1}";
        struct td t;
        struct broker_decision d;
        char want[72];

        assert_int_equal(flags(RTMR1_HEX, IMAGE_HEX, false, &p, NULL), 0);
        td_good(&t);
        assert_string_equal(td_decide_full(p, &t, &d), "default");
        tc_digest(t.tc, want);
        assert_string_equal(d.task_config_digest, want);
        /* The host changed the Env after measuring: the claim no longer matches the log. */
        t.tc = other;
        assert_string_equal(td_decide_full(p, &t, &d), "task_config_mismatch");
        t.tc = "{\"version\":2}";
        assert_string_equal(td_decide(p, &t), "task_config_invalid");
        t.tc = NULL;
        assert_string_equal(td_decide_full(p, &t, &d), "task_config_missing");
        assert_string_equal(d.task_config_digest, "");
        td_clear(&t);
}

static const char *json_decide(const char *rule, const struct td *t)
{
        static char buf[4096], ret[64];
        struct broker_policy *p = NULL;
        _cleanup_error_ struct ck_error *e = NULL;

        snprintf(buf, sizeof(buf),
                 "{\"secrets\":[{\"id\":\"s\",\"file\":\"f\",\"rules\":[{\"mrtd\":\"" MRTD_HEX
                 "\",\"imageIds\":[\"" IMAGE_HEX "\"]%s}]}]}",
                 rule);
        if (broker_policy_from_json((const uint8_t *)buf, strlen(buf), false, &p, &e) < 0)
                fail_msg("policy %s: %s", buf, e->msg);
        snprintf(ret, sizeof(ret), "%s", td_decide(p, t)); /* the secret id dies with p */
        broker_policy_free(p);
        return ret;
}

/* Issue 9 "the request measured": a config digest or field outside the policy is refused. */
static void test_task_config_outside_policy_refused(void **state)
{
        char digest[72], rule[256];
        struct td t;

        td_good(&t);
        tc_digest(t.tc, digest);
        snprintf(rule, sizeof(rule), ",\"taskConfigDigests\":[\"%s\"]", digest);
        assert_string_equal(json_decide(rule, &t), "s");
        assert_string_equal(json_decide(",\"taskConfigDigests\":[\"sha256:" IMAGE2_HEX "\"]", &t),
                            "task_config_not_allowed");

        assert_string_equal(json_decide(",\"taskConfig\":{\"envKeys\":[\"DB_HOST\",\"MODE\"]}", &t), "s");
        assert_string_equal(
                json_decide(",\"taskConfig\":{\"envKeys\":[\"DB_HOST\"],\"env\":[\"MODE=prod\"]}", &t), "s");
        assert_string_equal(
                json_decide(",\"taskConfig\":{\"envKeys\":[\"DB_HOST\"],\"env\":[\"MODE=dev\"]}", &t),
                "task_config_env_not_allowed");
        assert_string_equal(json_decide(",\"taskConfig\":{\"env\":[]}", &t), "task_config_env_not_allowed");
        assert_string_equal(
                json_decide(",\"taskConfig\":{\"ports\":[{\"published\":30001,\"target\":8080}]}", &t), "s");
        assert_string_equal(
                json_decide(",\"taskConfig\":{\"ports\":[{\"published\":30002,\"target\":8080}]}", &t),
                "task_config_ports_not_allowed");
        assert_string_equal(
                json_decide(",\"taskConfig\":{\"mounts\":[{\"type\":\"volume\",\"source\":\"test-api\","
                            "\"target\":\"/inner1\",\"rw\":true}]}",
                            &t),
                "s");
        /* The rule allows the volume read-only; the task mounts it read-write. */
        assert_string_equal(
                json_decide(",\"taskConfig\":{\"mounts\":[{\"type\":\"volume\",\"source\":\"test-api\","
                            "\"target\":\"/inner1\"}]}",
                            &t),
                "task_config_mounts_not_allowed");
        assert_string_equal(json_decide(",\"taskConfig\":{\"kmsEndpoints\":[\"127.0.0.1:3333\"]}", &t), "s");
        assert_string_equal(json_decide(",\"taskConfig\":{\"kmsEndpoints\":[\"10.0.0.1:3333\"]}", &t),
                            "task_config_kms_not_allowed");
        td_clear(&t);
}

static void test_json_firmware_and_reference_values(void **state)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        const char *inline_rv = "{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"referenceValues\":"
                                "{\"mrtd\":\"" MRTD_HEX "\"},\"imageIds\":[\"" IMAGE_HEX "\"]}]}]}";
        struct td t;

        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"rtmr1\":\"" RTMR1_HEX
                          "\",\"imageIds\":[\"" IMAGE_HEX "\"]}]}]}",
                          false, "pins no MRTD, and a host-supplied firmware can forge RTMR0-2");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"firmware\":\"ovmf\","
                          "\"imageIds\":[\"" IMAGE_HEX "\"]}]}]}",
                          false, "can only be \"any\"");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"referenceValues\":{"
                          "\"mrtd\":\"00\"},"
                          "\"imageIds\":[\"" IMAGE_HEX "\"]}]}]}",
                          false, "referenceValues");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"mrtd\":\"" MRTD_HEX
                          "\",\"imageIds\":[\"" IMAGE_HEX "\"],\"taskConfig\":{\"envKeys\":[\"A=B\"]}}]}]}",
                          false, "a key has no '='");
        expect_json_error("{\"secrets\":[{\"id\":\"a\",\"file\":\"f\",\"rules\":[{\"mrtd\":\"" MRTD_HEX
                          "\",\"imageIds\":[\"" IMAGE_HEX "\"],\"taskConfig\":{\"volumes\":[]}}]}]}",
                          false, "unknown key \"volumes\"");
        assert_int_equal(
                broker_policy_from_json((const uint8_t *)inline_rv, strlen(inline_rv), false, &p, NULL), 0);
        td_good(&t);
        assert_string_equal(td_decide(p, &t), "a");
        t.r.m.mr_td[0] ^= 1;
        assert_string_equal(td_decide(p, &t), "mrtd_mismatch");
        td_clear(&t);
}

static void test_pin_names(void **state)
{
        assert_string_equal(broker_pin_name(0), "mrtd");
        assert_string_equal(broker_pin_name(2), "rtmr1");
        assert_string_equal(broker_pin_name(5), "image");
        assert_null(broker_pin_name(_BROKER_PIN_BITS));
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
                cmocka_unit_test(test_seed_rtmr1_only_refused),
                cmocka_unit_test(test_flags_firmware_any),
                cmocka_unit_test(test_mrtd_differs_refused),
                cmocka_unit_test(test_rtmr_pins),
                cmocka_unit_test(test_flags_reference_values),
                cmocka_unit_test(test_log_missing_or_not_replaying_refused),
                cmocka_unit_test(test_image_not_in_log_refused),
                cmocka_unit_test(test_log_image_allowlist),
                cmocka_unit_test(test_task_config_binding),
                cmocka_unit_test(test_task_config_outside_policy_refused),
                cmocka_unit_test(test_json_firmware_and_reference_values),
                cmocka_unit_test(test_pin_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
