/* RTMR0 prediction: the TD HOB per memory size (both TDVF layouts, three confirmed by hardware
 * logs), the fixed UEFI event digests seen in real logs, the two virtee/fortanix tdx-measure
 * RTMR0 fixtures from their ACPI tables event by event, and the td-shim parameter vector. */
#include "cmocka-wrap.h"

#include <errno.h>

#include "predict-testdata.h"
#include "predict.h"
#include "ssl.h"

static void test_td_hob_vectors(void **state)
{
        json_t *v = predict_test_vectors(), *hobs = json_object_get(v, "td_hob"), *h;
        size_t i;

        assert_int_equal(json_array_size(hobs), 5);
        json_array_foreach(hobs, i, h)
        {
                const char *layout = json_string_value(json_object_get(h, "layout"));
                const char *bytes = json_string_value(json_object_get(h, "hob_bytes_hex"));
                uint64_t mib = (uint64_t)json_integer_value(json_object_get(h, "memory_mib"));
                struct predict_tdvf t;
                uint8_t *hob = NULL, d[48];
                char *hex;
                size_t len = 0;

                assert_int_equal(predict_tdvf_layout(layout, &t), 0);
                assert_int_equal(predict_tdhob_build(&t, mib << 20, &hob, &len, NULL), 0);
                hex = ck_hex_encode_alloc(hob, len);
                assert_string_equal(hex, bytes);
                assert_int_equal(ck_sha384(hob, len, d), 0);
                assert_digest_hex(d, json_string_value(json_object_get(h, "sha384")));
                free(hex);
                free(hob);
        }
        json_decref(v);
}

/* q35's RAM split (hw/i386/pc_q35.c): below 0xB0000000 all RAM is low; from there on 2 GiB are
 * low and the rest starts at 4 GiB. The resource HOBs cover the RAM exactly either way. */
static void test_td_hob_q35_split(void **state)
{
        static const struct {
                uint64_t mib, high;
        } cases[] = {{2815, 0}, {2816, 2816 - 2048}, {3071, 3071 - 2048}};
        struct predict_tdvf t;

        assert_int_equal(predict_tdvf_layout("a", &t), 0);
        for (size_t c = 0; c < ELEMENTSOF(cases); c++) {
                uint64_t total = 0, high = 0, low_end = 0;
                uint8_t *hob = NULL;
                size_t len = 0;

                assert_int_equal(predict_tdhob_build(&t, cases[c].mib << 20, &hob, &len, NULL), 0);
                assert_true(len > 0x38 && (len - 0x38) % 0x30 == 0);
                for (size_t off = 0x38; off < len; off += 0x30) {
                        uint64_t start = 0, n = 0;

                        for (int i = 7; i >= 0; i--) {
                                start = start << 8 | hob[off + 32 + i];
                                n = n << 8 | hob[off + 40 + i];
                        }
                        assert_int_equal(hob[off], 3);
                        total += n;
                        if (start >= 0x100000000ull)
                                high += n;
                        else if (start + n > low_end)
                                low_end = start + n;
                }
                assert_int_equal(total, cases[c].mib << 20);
                assert_int_equal(high, cases[c].high << 20);
                assert_int_equal(low_end, (cases[c].mib - cases[c].high) << 20);
                free(hob);
        }
}

static void test_td_hob_rejects(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct predict_tdvf t;
        uint8_t *hob = NULL;
        size_t len = 0;

        assert_int_equal(predict_tdvf_layout("c", &t), -EINVAL);
        assert_int_equal(predict_tdvf_layout("a", &t), 0);
        /* Memory too small to hold the sections, or not page-granular. */
        assert_int_equal(predict_tdhob_build(&t, 4u << 20, &hob, &len, NULL), -EINVAL);
        assert_int_equal(predict_tdhob_build(&t, (1024u << 20) + 1, &hob, &len, NULL), -EINVAL);
        /* Two sections overlapping. */
        t.s[2].gpa = t.s[1].gpa;
        assert_int_equal(predict_tdhob_build(&t, 1024u << 20, &hob, &len, &e), -EBADMSG);
        assert_non_null(e);
        /* No TD_HOB section. */
        assert_int_equal(predict_tdvf_layout("a", &t), 0);
        t.s[1].type = PREDICT_TDVF_TEMP_MEM;
        assert_int_equal(predict_tdhob_build(&t, 1024u << 20, &hob, &len, NULL), -EBADMSG);
        assert_null(hob);
}

static void test_fixed_event_digests(void **state)
{
        json_t *v = predict_test_vectors();
        json_t *ev = json_object_get(
                json_object_get(json_object_get(v, "virtee_rtmr0_breakdown"), "canonical-defaults"),
                "events");
        static const char *const names[] = {"SecureBoot", "PK", "KEK", "db", "dbx"};
        uint8_t g[16], d[48], fv[16];
        uint8_t *opt = NULL;
        size_t len = 0;

        for (size_t i = 0; i < 5; i++) {
                assert_int_equal(predict_guid_parse(i < 3 ? "8be4df61-93ca-11d2-aa0d-00e098032b8c"
                                                          : "D719B2CB-3D3A-4596-A3BC-DAD00E67656F",
                                                    g),
                                 0);
                assert_int_equal(predict_digest_variable(g, names[i], NULL, 0, d), 0);
                assert_digest_hex(d, json_string_value(json_object_get(ev, names[i])));
        }
        predict_digest_separator(d);
        assert_digest_hex(d, json_string_value(json_object_get(ev, "separator")));
        assert_int_equal(ck_sha384("\0\0", 2, d), 0);
        assert_digest_hex(d, json_string_value(json_object_get(ev, "BootOrder")));
        assert_int_equal(predict_guid_parse("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1", fv), 0);
        assert_int_equal(predict_uiapp_load_option(fv, &opt, &len), 0);
        assert_int_equal(len, 62);
        assert_int_equal(ck_sha384(opt, len, d), 0);
        assert_digest_hex(d, json_string_value(json_object_get(ev, "Boot0000")));
        free(opt);

        /* The three EFI actions of RTMR1, as in the dstack and Intel hardware logs. */
        predict_digest_action("Calling EFI Application from Boot Option", d);
        assert_digest_hex(d, "77a0dab2312b4e1e57a84d865a21e5b2ee8d677a21012ada"
                             "819d0a98988078d3d740f6346bfe0abaa938ca20439a8d71");
        predict_digest_action("Exit Boot Services Invocation", d);
        assert_digest_hex(d, "214b0bef1379756011344877743fdc2a5382bac6e70362d6"
                             "24ccf3f654407c1b4badf7d8f9295dd3dabdef65b27677e0");
        predict_digest_action("Exit Boot Services Returned with Success", d);
        assert_digest_hex(d, "0a2e01c85deae718a530ad8c6d20a84009babe6c8989269e"
                             "950d8cf440c6e997695e64d455c4174a652cd080f6230b74");

        /* Malformed GUIDs. */
        assert_int_equal(predict_guid_parse("8be4df61-93ca-11d2-aa0d-00e098032b8", g), -EINVAL);
        assert_int_equal(predict_guid_parse("8be4df61+93ca-11d2-aa0d-00e098032b8c", g), -EINVAL);
        assert_int_equal(predict_guid_parse("8be4df61-93ca-11d2-aa0d-00e098032b8g", g), -EINVAL);
        json_decref(v);
}

static void test_cfv_digest_of_debian_vars(void **state)
{
        size_t len = 0;
        uint8_t *vars = predict_test_read("debian-ovmf/OVMF_VARS_4M.fd", &len), d[48];

        assert_int_equal(ck_sha384(vars, len, d), 0);
        assert_digest_hex(
                d,
                "344bc51c980ba621aaa00da3ed7436f7d6e549197dfe699515dfa2c6583d95e6412af21c097d473155875ffd5"
                "61d6790");
        free(vars);
}

static void check_virtee(const char *name, bool derive_loader)
{
        json_t *v = predict_test_vectors();
        json_t *fx = json_object_get(json_object_get(v, "virtee_rtmr0_breakdown"), name);
        json_t *ev = json_object_get(fx, "events");
        const char *rsdp_hex = json_string_value(json_object_get(fx, "rsdp_bytes_hex"));
        struct predict_input in = {.tdvf_layout = "b"};
        struct predict_result res;
        uint8_t rsdp[20], *tables = NULL;
        size_t tlen = 0;
        char rel[128];
        static const char *const order[] = {"td_hob",
                                            "cfv",
                                            "SecureBoot",
                                            "PK",
                                            "KEK",
                                            "db",
                                            "dbx",
                                            "separator",
                                            "etc/table-loader",
                                            "etc/acpi/rsdp",
                                            "etc/acpi/tables",
                                            "BootOrder",
                                            "Boot0000"};

        snprintf(rel, sizeof(rel), "virtee-tdx-measure/%s/acpi_tables.bin", name);
        tables = predict_test_read(rel, &tlen);
        assert_int_equal(tlen, 131072);
        predict_test_unhex(rsdp_hex, rsdp, sizeof(rsdp));
        in.mem_size = (uint64_t)json_integer_value(json_object_get(fx, "memory_mib")) << 20;
        in.has_cfv = true;
        predict_test_unhex(json_string_value(json_object_get(ev, "cfv")), in.cfv, 48);
        /* The loader blob is not part of the fixture, only its digest. */
        in.has_loader_digest = true;
        predict_test_unhex(json_string_value(json_object_get(fx, "table_loader_sha384")), in.loader_digest,
                           48);
        in.acpi_rsdp = rsdp;
        in.acpi_rsdp_len = sizeof(rsdp);
        in.acpi_tables = tables;
        in.acpi_tables_len = tlen;

        assert_int_equal(predict_run(&in, &res, NULL), 0);
        assert_false(res.has_mrtd);
        assert_true(res.has_rtmr[0]);
        assert_false(res.has_rtmr[1]);
        assert_int_equal(res.log.n, ELEMENTSOF(order));
        for (size_t i = 0; i < res.log.n; i++) {
                assert_int_equal(res.log.ev[i].rtmr, 0);
                assert_digest_hex(res.log.ev[i].digest, json_string_value(json_object_get(ev, order[i])));
        }
        assert_digest_hex(res.rtmr[0], json_string_value(json_object_get(fx, "rtmr0")));
        free(tables);
        json_decref(v);
}

static void test_virtee_canonical_defaults(void **state)
{
        check_virtee("canonical-defaults", false);
        check_virtee("canonical-defaults", true);
}

static void test_virtee_q35_with_hpet(void **state)
{
        check_virtee("q35-with-hpet", false);
        check_virtee("q35-with-hpet", true);
}

static void test_acpi_loader(void **state)
{
        _cleanup_free_ uint8_t *tables = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        json_t *v = predict_test_vectors();
        json_t *fx = json_object_get(json_object_get(v, "virtee_rtmr0_breakdown"), "q35-with-hpet");
        uint8_t rsdp[20], rsdp2[36] = {0}, d[48], *loader = NULL;
        size_t tlen = 0, len = 0;

        tables = predict_test_read("virtee-tdx-measure/q35-with-hpet/acpi_tables.bin", &tlen);
        predict_test_unhex(json_string_value(json_object_get(fx, "rsdp_bytes_hex")), rsdp, sizeof(rsdp));
        assert_int_equal(predict_acpi_loader_build(tables, tlen, rsdp, sizeof(rsdp), &loader, &len, NULL),
                         0);
        assert_int_equal(len, 4096);
        /* ALLOCATE rsdp (FSEG), ALLOCATE tables (HIGH), then the first table's checksum (DSDT). */
        assert_int_equal(ck_le32(loader), 1);
        assert_string_equal((const char *)loader + 4, "etc/acpi/rsdp");
        assert_int_equal(loader[64], 2);
        assert_string_equal((const char *)loader + 128 + 4, "etc/acpi/tables");
        assert_int_equal(ck_le32(loader + 256), 3);
        assert_int_equal(ck_sha384(loader, len, d), 0);
        assert_digest_hex(d, json_string_value(json_object_get(fx, "table_loader_sha384")));
        free(loader);
        loader = NULL;

        /* Not modelled: a revision 2 RSDP, a table whose builder adds commands; damaged input. */
        memcpy(rsdp2, rsdp, 20);
        rsdp2[15] = 2;
        assert_int_equal(predict_acpi_loader_build(tables, tlen, rsdp2, sizeof(rsdp2), &loader, &len, NULL),
                         -EOPNOTSUPP);
        memcpy(tables + 9427, "TPM2", 4); /* the HPET table's place */
        assert_int_equal(predict_acpi_loader_build(tables, tlen, rsdp, sizeof(rsdp), &loader, &len, &e),
                         -EOPNOTSUPP);
        assert_non_null(strstr(e->msg, "TPM2"));
        memcpy(tables + 9427, "HPET", 4);
        ck_put_le32(tables + 9427 + 4, 0x7fffffff);
        assert_int_equal(predict_acpi_loader_build(tables, tlen, rsdp, sizeof(rsdp), &loader, &len, NULL),
                         -EBADMSG);
        ck_put_le32(tables + 9427 + 4, 56);
        ck_put_le32(rsdp + 16, 64); /* RSDP pointing at the DSDT */
        assert_int_equal(predict_acpi_loader_build(tables, tlen, rsdp, sizeof(rsdp), &loader, &len, NULL),
                         -EBADMSG);
        assert_null(loader);
        json_decref(v);
}

static void test_tdshim_param(void **state)
{
        static const char p[] = "root=/dev/vda1 console=hvc0 rw";
        uint8_t d[48], big[4097] = {0};

        assert_int_equal(predict_digest_tdshim_param((const uint8_t *)p, strlen(p), d), 0);
        assert_digest_hex(
                d, "64ed1e5a47e8632f80faf428465bd987af3e8e4ceb10a5a9f387b6302e30f4993bded2331f0691c4a38ad34e"
                   "4cbbc627");
        assert_int_equal(predict_digest_tdshim_param(big, sizeof(big), d), -E2BIG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_td_hob_vectors),
                cmocka_unit_test(test_td_hob_q35_split),
                cmocka_unit_test(test_td_hob_rejects),
                cmocka_unit_test(test_fixed_event_digests),
                cmocka_unit_test(test_cfv_digest_of_debian_vars),
                cmocka_unit_test(test_virtee_canonical_defaults),
                cmocka_unit_test(test_virtee_q35_with_hpet),
                cmocka_unit_test(test_acpi_loader),
                cmocka_unit_test(test_tdshim_param),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
