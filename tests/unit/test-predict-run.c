/* The assembled event log for a direct kernel boot and for a UKI: every event in order, the
 * kernel measured as QEMU patches it (checked against osslsigncode's digest of a copy patched
 * independently by pe/genpe.py), the registers equal to the log's replay, and the JSON outputs
 * accepted by the broker's reference-values parser. */
#include "cmocka-wrap.h"

#include <errno.h>

#include "predict-testdata.h"
#include "predict.h"
#include "refvalues.h"
#include "ssl.h"

/* osslsigncode 2.9 "Calculated message digest" of pe/bz.patched.efi, pe/uki.efi, pe/a.efi. */
#define DIGEST_BZ_PATCHED                                                                                   \
        "c1c38c2d295e5464ebfa225bfc9865cb45a02285a9736f045b7ce904a5386a8119f3845467967f19f8243ec4832727c4"
#define DIGEST_UKI                                                                                          \
        "31b679f1afc2f545c37f09c39cf7c812bc57c6bdc50be7a9c981b886bd8bc225e695c5564aabdb597d88bcab7f1b4cfe"
#define DIGEST_A                                                                                            \
        "c56811a05871687f9a8ecd7ae9fda9a594e6e2078ea7b5e9efc19f2296d6de160d73c73b1a413daa4f39ae2ee6d7f8a1"

static void expect_event(const struct predict_event *e, unsigned rtmr, uint32_t type, const uint8_t *digest)
{
        assert_int_equal(e->rtmr, rtmr);
        assert_int_equal(e->type, type);
        assert_memory_equal(e->digest, digest, 48);
}

static void expect_action(const struct predict_event *e, const char *s)
{
        uint8_t d[48];

        predict_digest_action(s, d);
        expect_event(e, 1, PREDICT_EV_EFI_ACTION, d);
        assert_string_equal(e->what, s);
}

static void expect_separator(const struct predict_event *e, unsigned rtmr)
{
        uint8_t d[48];

        predict_digest_separator(d);
        expect_event(e, rtmr, PREDICT_EV_SEPARATOR, d);
}

static void check_outputs(const struct predict_result *res)
{
        _cleanup_free_ char *json = NULL, *events = NULL;
        struct attest_refvalues rv;
        uint8_t regs[3][48];
        json_t *a;

        predict_log_replay(&res->log, regs);
        for (int i = 0; i < 3; i++)
                if (res->has_rtmr[i])
                        assert_memory_equal(res->rtmr[i], regs[i], 48);

        assert_int_equal(predict_refvalues_json(res, "test", &json), 0);
        assert_int_equal(attest_refvalues_parse((const uint8_t *)json, strlen(json), &rv, NULL), 0);
        assert_int_equal(rv.has_mrtd, res->has_mrtd);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(rv.has_rtmr[i], res->has_rtmr[i]);
                if (rv.has_rtmr[i])
                        assert_memory_equal(rv.rtmr[i], res->rtmr[i], 48);
        }
        assert_int_equal(predict_events_json(res, &events), 0);
        a = json_loads(events, 0, NULL);
        assert_non_null(a);
        assert_int_equal(json_array_size(a), res->log.n);
        for (size_t i = 0; i < res->log.n; i++) {
                json_t *o = json_array_get(a, i);
                char hex[97];

                ck_hex_encode(res->log.ev[i].digest, 48, hex);
                assert_int_equal(json_integer_value(json_object_get(o, "rtmr")), res->log.ev[i].rtmr);
                assert_string_equal(json_string_value(json_object_get(o, "digest")), hex);
                assert_string_equal(json_string_value(json_object_get(o, "what")), res->log.ev[i].what);
        }
        json_decref(a);
}

static void test_direct_boot(void **state)
{
        size_t klen = 0;
        _cleanup_free_ uint8_t *kernel = predict_test_read("pe/bz.efi", &klen);
        _cleanup_free_ struct predict_result *res = calloc(1, sizeof(*res));
        uint8_t initrd[4096], d[48];
        struct predict_input in = {
                .kernel = kernel,
                .kernel_len = klen,
                .initrd = initrd,
                .initrd_len = sizeof(initrd),
                .cmdline = "console=ttyS0",
                .mem_size = 2048ull << 20,
        };

        assert_non_null(res);
        for (size_t i = 0; i < sizeof(initrd); i++)
                initrd[i] = (uint8_t)(i * 13);
        assert_int_equal(predict_run(&in, res, NULL), 0);
        assert_false(res->has_mrtd);
        assert_false(res->has_rtmr[0]);
        assert_true(res->has_rtmr[1] && res->has_rtmr[2]);
        assert_int_equal(res->log.n, 7);
        predict_test_unhex(DIGEST_BZ_PATCHED, d, 48);
        expect_event(&res->log.ev[0], 1, PREDICT_EV_EFI_BOOT_SERVICES_APPLICATION, d);
        expect_action(&res->log.ev[1], "Calling EFI Application from Boot Option");
        expect_separator(&res->log.ev[2], 1);
        assert_int_equal(predict_digest_utf16("console=ttyS0 initrd=initrd", 27, d), 0);
        expect_event(&res->log.ev[3], 2, PREDICT_EV_EVENT_TAG, d);
        assert_int_equal(ck_sha384(initrd, sizeof(initrd), d), 0);
        expect_event(&res->log.ev[4], 2, PREDICT_EV_EVENT_TAG, d);
        expect_action(&res->log.ev[5], "Exit Boot Services Invocation");
        expect_action(&res->log.ev[6], "Exit Boot Services Returned with Success");
        /* The input buffer itself is not patched. */
        assert_int_equal(kernel[0x210], 0);
        check_outputs(res);

        /* A one-byte change of the command line changes RTMR2 only. */
        {
                _cleanup_free_ struct predict_result *other = calloc(1, sizeof(*other));

                assert_non_null(other);
                in.cmdline = "console=ttyS1";
                assert_int_equal(predict_run(&in, other, NULL), 0);
                assert_memory_equal(other->rtmr[1], res->rtmr[1], 48);
                assert_memory_not_equal(other->rtmr[2], res->rtmr[2], 48);
        }
}

static void expect_sha(const struct predict_event *e, unsigned rtmr, uint32_t type, const void *data,
                       size_t len)
{
        uint8_t d[48];

        assert_int_equal(ck_sha384(data, len, d), 0);
        expect_event(e, rtmr, type, d);
}

static void test_uki(void **state)
{
        size_t len = 0, alen = 0;
        _cleanup_free_ uint8_t *uki = predict_test_read("pe/uki.efi", &len);
        _cleanup_free_ uint8_t *a = predict_test_read("pe/a.efi", &alen);
        _cleanup_free_ struct predict_result *res = calloc(1, sizeof(*res));
        struct predict_input in = {.uki = uki, .uki_len = len};
        static const char cmdline[] = "console=ttyS0 root=/dev/vda\n";
        uint8_t d[48], initrd[0x300];
        size_t k;

        assert_non_null(res);
        for (size_t i = 0; i < sizeof(initrd); i++)
                initrd[i] = (uint8_t)(i * 31 + 4 * 7);
        assert_int_equal(predict_run(&in, res, NULL), 0);
        assert_int_equal(res->log.n, 16);
        predict_test_unhex(DIGEST_UKI, d, 48);
        expect_event(&res->log.ev[0], 1, PREDICT_EV_EFI_BOOT_SERVICES_APPLICATION, d);
        expect_action(&res->log.ev[1], "Calling EFI Application from Boot Option");
        expect_separator(&res->log.ev[2], 1);
        /* systemd-stub: name (with NUL) and content of each section, in the UKI order. */
        expect_sha(&res->log.ev[3], 2, PREDICT_EV_IPL, ".linux", 7);
        expect_sha(&res->log.ev[4], 2, PREDICT_EV_IPL, a, alen);
        expect_sha(&res->log.ev[5], 2, PREDICT_EV_IPL, ".osrel", 7);
        expect_sha(&res->log.ev[6], 2, PREDICT_EV_IPL, "ID=conker\n", 10);
        expect_sha(&res->log.ev[7], 2, PREDICT_EV_IPL, ".cmdline", 9);
        expect_sha(&res->log.ev[8], 2, PREDICT_EV_IPL, cmdline, sizeof(cmdline) - 1);
        expect_sha(&res->log.ev[9], 2, PREDICT_EV_IPL, ".initrd", 8);
        expect_sha(&res->log.ev[10], 2, PREDICT_EV_IPL, initrd, sizeof(initrd));
        k = 11;
        predict_test_unhex(DIGEST_A, d, 48);
        expect_event(&res->log.ev[k++], 1, PREDICT_EV_EFI_BOOT_SERVICES_APPLICATION, d);
        /* The kernel's stub: .cmdline as systemd-stub passes it (no trailing newline), UTF-16
         * with NUL, then the initrd. */
        assert_int_equal(predict_digest_utf16("console=ttyS0 root=/dev/vda", 27, d), 0);
        expect_event(&res->log.ev[k++], 2, PREDICT_EV_EVENT_TAG, d);
        expect_sha(&res->log.ev[k++], 2, PREDICT_EV_EVENT_TAG, initrd, sizeof(initrd));
        expect_action(&res->log.ev[k++], "Exit Boot Services Invocation");
        expect_action(&res->log.ev[k++], "Exit Boot Services Returned with Success");
        check_outputs(res);

        /* A stub that measures no sections: RTMR1 unchanged, RTMR2 only the kernel's events. */
        {
                _cleanup_free_ struct predict_result *plain = calloc(1, sizeof(*plain));

                assert_non_null(plain);
                in.uki_no_stub_sections = true;
                assert_int_equal(predict_run(&in, plain, NULL), 0);
                assert_int_equal(plain->log.n, 8);
                assert_memory_equal(plain->rtmr[1], res->rtmr[1], 48);
                assert_memory_not_equal(plain->rtmr[2], res->rtmr[2], 48);
                check_outputs(plain);
        }
}

static void test_rejects(void **state)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *uki = predict_test_read("pe/uki.efi", &len);
        _cleanup_free_ struct predict_result *res = calloc(1, sizeof(*res));
        uint8_t b = 0;
        struct predict_input in = {0};

        assert_non_null(res);
        assert_int_equal(predict_run(&in, res, NULL), -EINVAL);
        in = (struct predict_input){.uki = uki, .uki_len = len, .kernel = uki, .kernel_len = len};
        assert_int_equal(predict_run(&in, res, NULL), -EINVAL);
        in = (struct predict_input){.uki = uki, .uki_len = len, .initrd = &b, .initrd_len = 1};
        assert_int_equal(predict_run(&in, res, NULL), -EINVAL);
        in = (struct predict_input){.uki = uki, .uki_len = len, .cmdline = "quiet"};
        assert_int_equal(predict_run(&in, res, NULL), -EINVAL);
        /* An empty initrd. */
        in = (struct predict_input){
                .kernel = uki, .kernel_len = len, .initrd = &b, .initrd_len = 0, .mem_size = 1u << 30};
        assert_int_equal(predict_run(&in, res, NULL), -EINVAL);
        /* An initrd with no memory size cannot be placed. */
        in = (struct predict_input){.kernel = uki, .kernel_len = len, .initrd = &b, .initrd_len = 1};
        assert_int_equal(predict_run(&in, res, NULL), -EINVAL);
        /* A command line that is not 7-bit ASCII. */
        in = (struct predict_input){.kernel = uki, .kernel_len = len, .cmdline = "caf\xc3\xa9"};
        assert_int_equal(predict_run(&in, res, NULL), -EINVAL);
        /* A UKI without .linux. */
        memcpy(memmem(uki, 0x400, ".linux", 6), ".linuy", 6);
        in = (struct predict_input){.uki = uki, .uki_len = len};
        assert_int_equal(predict_run(&in, res, NULL), -ENOENT);
        assert_int_equal(predict_tdvf_layout("b", &(struct predict_tdvf){0}), 0);
        in = (struct predict_input){.tdvf_layout = "z", .mem_size = 1u << 30};
        assert_int_equal(predict_run(&in, res, NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_direct_boot),
                cmocka_unit_test(test_uki),
                cmocka_unit_test(test_rejects),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
