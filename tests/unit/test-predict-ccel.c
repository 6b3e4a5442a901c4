/* Hardware event logs explained: the dstack and Intel CCEL logs and the GCE COS-113 log replay to
 * the same RTMRs as the attest module's replay (and to the quoted ones where a quote is public),
 * and every event whose digest is a function of known input is re-derived: from the event's own
 * data (separators, actions, variables, GPT, GRUB commands) and from the predictor (TD HOB per
 * memory size, CFV, Secure Boot variables, boot options). The dstack hardware quote's RTMR0 and
 * RTMR1 are rebuilt from predicted events plus the digests of the blobs that are not public. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "eventlog.h"
#include "predict-testdata.h"
#include "parse.h"
#include "predict.h"

#define CFV_4M                                                                                              \
        "344bc51c980ba621aaa00da3ed7436f7d6e549197dfe699515dfa2c6583d95e6412af21c097d473155875ffd561d6790"

static void check_log(const char *rel, const char *layout, uint64_t mib, size_t want_events,
                      size_t want_rederived, const char *const want_rtmr[3])
{
        size_t len = 0, hob_len = 0, n = 0;
        _cleanup_free_ uint8_t *log = predict_test_read(rel, &len);
        _cleanup_free_ uint8_t *hob = NULL;
        struct predict_ccel_check chk;
        struct attest_rtmrs rt;
        struct predict_tdvf t;

        if (layout) {
                assert_int_equal(predict_tdvf_layout(layout, &t), 0);
                assert_int_equal(predict_tdhob_build(&t, mib << 20, &hob, &hob_len, NULL), 0);
        }
        assert_int_equal(predict_ccel_check(log, len, hob, hob_len, &chk, NULL), 0);
        assert_int_equal(chk.events, want_events);
        assert_int_equal(chk.rederived, want_rederived);
        assert_int_equal(chk.rederived + chk.opaque, chk.events);
        assert_int_equal(attest_ccel_replay(log, len, &rt, &n, NULL), 0);
        assert_int_equal(n, chk.events);
        assert_memory_equal(rt.rtmr, chk.rtmr, sizeof(rt.rtmr));
        for (int i = 0; i < 3 && want_rtmr; i++)
                assert_digest_hex(chk.rtmr[i], want_rtmr[i]);
}

static void test_dstack_sample(void **state)
{
        /* 1 GiB TD, TDVF layout b: 18 events; opaque are the CFV blob, the three ACPI blobs and
         * the kernel image. */
        check_log("dstack/cc-eventlog-samples-ccel.bin", "b", 1024, 18, 13, NULL);
}

static void test_intel_ccel(void **state)
{
        /* 8 GiB TD, layout a; the LOADED_IMAGE::LoadOptions tag covers a command line not in
         * the log. */
        check_log("go-eventlog/CCEL_unpadded.data.bin", "a", 8192, 19, 13, NULL);
}

static void test_cos_113(void **state)
{
        static const char *const rtmr[3] = {
                "a4de2df23e9611299123ba4359c42a5e578b0f8488bf1bba8ef5606d9ea5d81c97c064b482a5eac537d166bd0f0"
                "f752d",
                "0ee9366c928a77092f55e9e114c7394181fd264699155f0df77d23577618d5f650568a17d379355a07bd846e552"
                "f4e20",
                "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6f"
                "be7c1",
        };

        /* GCE's firmware: a different HOB (not checked), keys enrolled, shim and GRUB. */
        check_log("go-eventlog/cos-113-intel-tdx-dupe-separator-unpadded.bin", NULL, 0, 43, 31, rtmr);
}

/* Appends one event with a SHA-384 digest (of nothing) and no data. */
static size_t put_event(uint8_t *p, uint32_t mr, uint32_t type)
{
        ck_put_le32(p, mr);
        ck_put_le32(p + 4, type);
        ck_put_le32(p + 8, 1);
        ck_put_le16(p + 12, 0x000c);
        memset(p + 14, 0x5a, 48);
        ck_put_le32(p + 62, 0);
        return 66;
}

/* Crafted logs after the sample's Spec ID event: the MR index is 1..4 (RTMR0-3; 5 would index
 * past them), and the event count is bounded. */
static void test_hostile_headers(void **state)
{
        size_t len = 0, first, n, cap = (size_t)70000 * 66 + 4096;
        _cleanup_free_ uint8_t *sample = predict_test_read("dstack/cc-eventlog-samples-ccel.bin", &len);
        _cleanup_free_ uint8_t *log = malloc(cap);
        struct predict_ccel_check chk;

        assert_non_null(log);
        first = 32 + ck_le32(sample + 28);
        assert_true(first < len);
        memcpy(log, sample, first);

        n = first + put_event(log + first, 4, 0x0000000d);
        memset(log + n, 0xff, 16);
        assert_int_equal(predict_ccel_check(log, n + 16, NULL, 0, &chk, NULL), 0);
        assert_int_equal(chk.events, 1);
        for (uint32_t mr = 0; mr <= 5; mr += 5) {
                n = first + put_event(log + first, mr, 0x0000000d);
                memset(log + n, 0xff, 16);
                assert_int_equal(predict_ccel_check(log, n + 16, NULL, 0, &chk, NULL), -EBADMSG);
        }

        n = first;
        for (size_t i = 0; i < 65536; i++)
                n += put_event(log + n, 1, 0x00000003);
        memset(log + n, 0xff, 66 + 16);
        assert_int_equal(predict_ccel_check(log, n + 16, NULL, 0, &chk, NULL), 0);
        n += put_event(log + n, 1, 0x00000003);
        assert_int_equal(predict_ccel_check(log, n, NULL, 0, &chk, NULL), -E2BIG);
}

static void test_rederivation_catches_damage(void **state)
{
        size_t len = 0, hob_len = 0;
        _cleanup_free_ uint8_t *log = predict_test_read("dstack/cc-eventlog-samples-ccel.bin", &len);
        _cleanup_free_ uint8_t *hob = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        struct predict_ccel_check chk;
        struct attest_rtmrs rt;
        struct predict_tdvf t;
        uint8_t *p;

        /* The wrong memory size: the TD HOB no longer matches. */
        assert_int_equal(predict_tdvf_layout("b", &t), 0);
        assert_int_equal(predict_tdhob_build(&t, 2048ull << 20, &hob, &hob_len, NULL), 0);
        assert_int_equal(predict_ccel_check(log, len, hob, hob_len, &chk, &e), -EBADMSG);
        assert_non_null(strstr(e->msg, "type 0x8000000b"));
        /* A variable's logged data changed: the replay still works, the check does not. */
        p = memmem(log, len, "S\0e\0c\0u\0r\0e\0B\0o\0o\0t\0", 20);
        assert_non_null(p);
        p[0] = 's';
        assert_int_equal(attest_ccel_replay(log, len, &rt, NULL, NULL), 0);
        assert_int_equal(predict_ccel_check(log, len, NULL, 0, &chk, NULL), -EBADMSG);
        p[0] = 'S';
        assert_int_equal(predict_ccel_check(log, len, NULL, 0, &chk, NULL), 0);
        /* Garbage in the fill and truncation. */
        log[len - 5] = 0;
        assert_int_equal(predict_ccel_check(log, len, NULL, 0, &chk, NULL), -EBADMSG);
        assert_int_equal(predict_ccel_check(log, 1500, NULL, 0, &chk, NULL), -EBADMSG);
        assert_int_equal(predict_ccel_check(log, 20, NULL, 0, &chk, NULL), -EBADMSG);
}

/* The dstack hardware quote (QEMU 8.2.2, 2 GiB, TDVF layout a): MRTD and RTMR0-2 from its
 * event log, with every event the predictor can know predicted. */
static void test_dstack_quote(void **state)
{
        size_t len = 0, qlen = 0, i;
        _cleanup_free_ uint8_t *raw =
                predict_test_read("dstack/verifier-fixtures-tdx-lite-getquote.json", &len);
        json_t *doc = json_loadb((const char *)raw, len, 0, NULL), *events, *ev;
        const char *quote_hex;
        _cleanup_free_ uint8_t *quote = NULL;
        struct predict_log logged = {0}, mixed = {0};
        struct predict_input in = {.tdvf_layout = "a", .mem_size = 2048ull << 20, .has_cfv = true};
        struct predict_result res;
        uint8_t regs[3][48], dummy = 0;
        static const char *const mrtd_two_pass = "fd685522ce791dfef67414614eb07d03fc07a32c5a66f36288b329dab9"
                                                 "2b724b1564c73d436ffb9ea84488c51ac5a1c5";

        assert_non_null(doc);
        events = json_loads(json_string_value(json_object_get(doc, "event_log")), 0, NULL);
        assert_non_null(events);
        quote_hex = json_string_value(json_object_get(doc, "quote"));
        assert_int_equal(ck_hex_decode_alloc(quote_hex, strlen(quote_hex), 16384, &quote, &qlen), 0);
        assert_true(qlen > 48 + 584);
        assert_digest_hex(quote + 48 + 136, mrtd_two_pass);

        json_array_foreach(events, i, ev)
        {
                json_int_t imr = json_integer_value(json_object_get(ev, "imr"));
                uint8_t d[48];

                if (imr > 2)
                        continue; /* RTMR3: dstack's runtime events */
                predict_test_unhex(json_string_value(json_object_get(ev, "digest")), d, 48);
                assert_int_equal(
                        predict_log_add(&logged, (unsigned)imr,
                                        (uint32_t)json_integer_value(json_object_get(ev, "event_type")), "",
                                        d),
                        0);
        }
        assert_int_equal(logged.n, 20);
        predict_log_replay(&logged, regs);
        for (int r = 0; r < 3; r++)
                assert_memory_equal(regs[r], quote + 48 + 328 + 48 * r, 48);

        /* RTMR0 predicted: the ACPI blobs of that VM are not public, so their three digests come
         * from the log; everything else is computed. */
        predict_test_unhex(CFV_4M, in.cfv, 48);
        in.has_loader_digest = true;
        memcpy(in.loader_digest, logged.ev[8].digest, 48);
        in.acpi_rsdp = in.acpi_tables = &dummy;
        in.acpi_rsdp_len = in.acpi_tables_len = 1;
        assert_int_equal(predict_run(&in, &res, NULL), 0);
        assert_int_equal(res.log.n, 13);
        memcpy(res.log.ev[9].digest, logged.ev[9].digest, 48);
        memcpy(res.log.ev[10].digest, logged.ev[10].digest, 48);
        for (size_t k = 0; k < 11; k++)
                assert_memory_equal(res.log.ev[k].digest, logged.ev[k].digest, 48);
        /* In time order the kernel image event (RTMR1) sits between the ACPI blobs and BootOrder. */
        assert_memory_equal(res.log.ev[11].digest, logged.ev[12].digest, 48);
        assert_memory_equal(res.log.ev[12].digest, logged.ev[13].digest, 48);
        mixed = res.log;

        /* RTMR1: the kernel's Authenticode from the log (the kernel is not public), then the
         * predicted actions and separator. */
        {
                uint8_t d[48];

                assert_int_equal(predict_log_add(&mixed, 1, PREDICT_EV_EFI_BOOT_SERVICES_APPLICATION,
                                                 "kernel", logged.ev[11].digest),
                                 0);
                predict_digest_action("Calling EFI Application from Boot Option", d);
                assert_int_equal(predict_log_add(&mixed, 1, PREDICT_EV_EFI_ACTION, "", d), 0);
                predict_digest_separator(d);
                assert_int_equal(predict_log_add(&mixed, 1, PREDICT_EV_SEPARATOR, "", d), 0);
                predict_digest_action("Exit Boot Services Invocation", d);
                assert_int_equal(predict_log_add(&mixed, 1, PREDICT_EV_EFI_ACTION, "", d), 0);
                predict_digest_action("Exit Boot Services Returned with Success", d);
                assert_int_equal(predict_log_add(&mixed, 1, PREDICT_EV_EFI_ACTION, "", d), 0);
        }
        predict_log_replay(&mixed, regs);
        assert_memory_equal(regs[0], quote + 48 + 328, 48);
        assert_memory_equal(regs[1], quote + 48 + 328 + 48, 48);

        json_decref(events);
        json_decref(doc);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dstack_sample),   cmocka_unit_test(test_intel_ccel),
                cmocka_unit_test(test_cos_113),         cmocka_unit_test(test_rederivation_catches_damage),
                cmocka_unit_test(test_hostile_headers), cmocka_unit_test(test_dstack_quote),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
