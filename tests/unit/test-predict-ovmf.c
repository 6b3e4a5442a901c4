/* MRTD of Debian 12's OVMF.fd (ovmf 2022.11-6+deb12u2, /usr/share/ovmf/OVMF.fd) in both page
 * orders, its TDVF sections, CFV digest and TD HOB. The firmware is not shipped in the
 * repository: the test exits 77 (skipped) unless that exact file is installed. */
#include "cmocka-wrap.h"

#include <errno.h>

#include "predict-testdata.h"
#include "predict.h"
#include "ssl.h"

#define OVMF_PATH   "/usr/share/ovmf/OVMF.fd"
#define OVMF_SHA256 "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773"

static uint8_t *fw;
static size_t fw_len;

static void test_sections(void **state)
{
        struct predict_tdvf t;

        assert_int_equal(predict_tdvf_parse(fw, fw_len, &t, NULL), 0);
        assert_int_equal(t.n, 6);
        assert_int_equal(t.s[0].type, PREDICT_TDVF_BFV);
        assert_int_equal(t.s[0].data_off, 0x20000);
        assert_int_equal(t.s[0].raw_size, 0x1e0000);
        assert_int_equal(t.s[0].gpa, 0xffe20000);
        assert_int_equal(t.s[0].attr, PREDICT_TDVF_ATTR_EXTENDMR);
        assert_int_equal(t.s[1].type, PREDICT_TDVF_CFV);
        assert_int_equal(t.s[1].gpa, 0xffe00000);
        assert_int_equal(t.s[1].attr, 0);
        assert_int_equal(t.s[4].type, PREDICT_TDVF_TD_HOB);
        assert_int_equal(t.s[4].gpa, 0x809000);
}

static void test_mrtd(void **state)
{
        struct predict_tdvf t;
        uint8_t d[48];

        assert_int_equal(predict_tdvf_parse(fw, fw_len, &t, NULL), 0);
        assert_int_equal(predict_tdvf_mrtd(fw, fw_len, &t, PREDICT_MRTD_SINGLE_PASS, d, NULL), 0);
        assert_digest_hex(
                d, "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967"
                   "fb231c47");
        assert_int_equal(predict_tdvf_mrtd(fw, fw_len, &t, PREDICT_MRTD_TWO_PASS, d, NULL), 0);
        assert_digest_hex(
                d, "acccbcc870a381adab0d3919d90a7f268ac3b0364771f202ed4bb4e892d045b33db3b32e6924cba830a724ee"
                   "d443f7e1");
        assert_int_equal(predict_tdvf_cfv_digest(fw, fw_len, &t, d, NULL), 0);
        assert_digest_hex(
                d, "f87302177b059d54a2cf0c5f13340dbabf5c9dd60dc3f996c68b776fbe4de959769443a3d8ef6538b97d7e15"
                   "1c8298e8");
}

static void test_hob_is_layout_a(void **state)
{
        struct predict_tdvf t, a;
        uint8_t *h1 = NULL, *h2 = NULL;
        size_t l1 = 0, l2 = 0;

        assert_int_equal(predict_tdvf_parse(fw, fw_len, &t, NULL), 0);
        assert_int_equal(predict_tdvf_layout("a", &a), 0);
        assert_int_equal(predict_tdhob_build(&t, 8192ull << 20, &h1, &l1, NULL), 0);
        assert_int_equal(predict_tdhob_build(&a, 8192ull << 20, &h2, &l2, NULL), 0);
        assert_int_equal(l1, l2);
        assert_memory_equal(h1, h2, l1);
        free(h1);
        free(h2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sections),
                cmocka_unit_test(test_mrtd),
                cmocka_unit_test(test_hob_is_layout_a),
        };
        uint8_t sha[32];
        char hex[65];
        int r;

        if (ck_read_file(OVMF_PATH, PREDICT_FIRMWARE_MAX, &fw, &fw_len, NULL) < 0) {
                printf("SKIP: %s is not installed (Debian package ovmf, scripts/deps.sh)\n", OVMF_PATH);
                return 77;
        }
        assert_int_equal(ck_sha256(fw, fw_len, sha), 0);
        ck_hex_encode(sha, sizeof(sha), hex);
        if (strcmp(hex, OVMF_SHA256) != 0) {
                printf("SKIP: %s has sha256 %s, not the vector's %s (ovmf 2022.11-6+deb12u2)\n", OVMF_PATH,
                       hex, OVMF_SHA256);
                free(fw);
                return 77;
        }
        r = cmocka_run_group_tests(tests, NULL, NULL);
        free(fw);
        return r;
}
