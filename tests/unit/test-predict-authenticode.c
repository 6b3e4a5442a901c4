/* PE parsing and the Authenticode SHA-384, checked against osslsigncode's "Calculated message
 * digest" for small PE32+ images (unsigned and signed with a throwaway certificate: the
 * certificate table and its directory entry must not change the hash), plus rejection of damaged
 * headers and QEMU's bzImage setup-header edits. */
#include "cmocka-wrap.h"

#include <errno.h>

#include "predict-testdata.h"
#include "predict.h"

/* osslsigncode 2.9 `sign -h sha384` then `verify`: "Calculated message digest". */
#define DIGEST_A                                                                                            \
        "c56811a05871687f9a8ecd7ae9fda9a594e6e2078ea7b5e9efc19f2296d6de160d73c73b1a413daa4f39ae2ee6d7f8a1"
#define DIGEST_B                                                                                            \
        "13dc6cb67b0da853db74110b3339bb58781e5ab763d6524ce1d4a0fec284880ecf72bad319142a159cf63c3d1451c07d"

static void check_file(const char *rel, const char *want)
{
        size_t len = 0;
        uint8_t *pe = predict_test_read(rel, &len), d[48];

        assert_int_equal(predict_pe_authenticode(pe, len, d, NULL), 0);
        assert_digest_hex(d, want);
        free(pe);
}

static void test_osslsigncode_vectors(void **state)
{
        check_file("pe/a.efi", DIGEST_A);
        check_file("pe/a.signed.efi", DIGEST_A);
        /* b: section table not in file order, 512 bytes of trailing data. */
        check_file("pe/b.efi", DIGEST_B);
        check_file("pe/b.signed.efi", DIGEST_B);
}

static void test_parse_and_sections(void **state)
{
        size_t len = 0, n = 0;
        _cleanup_free_ uint8_t *pe = predict_test_read("pe/b.signed.efi", &len);
        _cleanup_free_ struct predict_pe *p = calloc(1, sizeof(*p));
        const uint8_t *sec = NULL;

        assert_non_null(p);
        assert_int_equal(predict_pe_parse(pe, len, p, NULL), 0);
        assert_int_equal(p->n_sections, 3);
        assert_string_equal(p->s[0].name, ".linux");
        assert_true(p->cert_size > 0);
        assert_int_equal(p->cert_off + p->cert_size, len);
        assert_int_equal(predict_pe_section(pe, len, p, ".linux", &sec, &n, NULL), 0);
        assert_int_equal(n, 0x200);
        assert_ptr_equal(sec, pe + 0xa00);
        assert_int_equal(predict_pe_section(pe, len, p, ".cmdline", &sec, &n, NULL), -ENOENT);
}

static void expect_bad(uint8_t *pe, size_t len)
{
        _cleanup_error_ struct ck_error *e = NULL;
        uint8_t d[48];

        assert_int_equal(predict_pe_authenticode(pe, len, d, &e), -EBADMSG);
        assert_non_null(e);
}

static void test_rejects_damage(void **state)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *pe = predict_test_read("pe/a.signed.efi", &len);
        const size_t opt = 0x80 + 24, sec0 = opt + 240, certdir = opt + 112 + 32;
        uint8_t d[48];

        expect_bad(pe, 0x3f);
        pe[0] = 'X';
        expect_bad(pe, len);
        pe[0] = 'M';
        ck_put_le32(pe + 0x3c, (uint32_t)len);
        expect_bad(pe, len);
        ck_put_le32(pe + 0x3c, 0x80);
        pe[0x80 + 6] = 200; /* section count */
        expect_bad(pe, len);
        pe[0x80 + 6] = 3;
        ck_put_le16(pe + opt, 0x107); /* magic */
        expect_bad(pe, len);
        ck_put_le16(pe + opt, 0x20b);
        ck_put_le32(pe + opt + 108, 17); /* NumberOfRvaAndSizes */
        expect_bad(pe, len);
        ck_put_le32(pe + opt + 108, 16);
        ck_put_le32(pe + opt + 60, 0x100); /* SizeOfHeaders below the section table */
        expect_bad(pe, len);
        ck_put_le32(pe + opt + 60, 0x400);
        ck_put_le32(pe + sec0 + 20, (uint32_t)len - 0x100); /* raw data past the end */
        expect_bad(pe, len);
        ck_put_le32(pe + sec0 + 20, 0x400);
        ck_put_le32(pe + certdir + 4, (uint32_t)len); /* certificate table past the end */
        expect_bad(pe, len);
        ck_put_le32(pe + certdir + 4, (uint32_t)(len - ck_le32(pe + certdir)));
        assert_int_equal(predict_pe_authenticode(pe, len, d, NULL), 0);
        assert_digest_hex(d, DIGEST_A);
}

/* A minimal bzImage header: boot protocol 2.15, loaded high, initrd may go above 4 GiB. */
static uint8_t *make_bzimage(uint16_t protocol, uint16_t xlf)
{
        uint8_t *k = calloc(1, 0x2000);

        assert_non_null(k);
        k[0x1f1] = 3;
        ck_put_le32(k + 0x202, 0x53726448);
        ck_put_le16(k + 0x206, protocol);
        k[0x211] = 0x01;
        ck_put_le32(k + 0x22c, 0x7fffffff);
        ck_put_le16(k + 0x236, xlf);
        return k;
}

static void test_linux_patch(void **state)
{
        _cleanup_free_ uint8_t *k = make_bzimage(0x20f, 0x40);
        _cleanup_free_ uint8_t *old = make_bzimage(0x20b, 0);
        uint8_t *pe = NULL;
        size_t pe_len = 0;

        /* 2 GiB: below_4g = 2 GiB, initrd_max = 2 GiB - 0x28000 - 1. */
        assert_int_equal(predict_linux_patch(k, 0x2000, 2048ull << 20, 0x123456, "console=ttyS0", NULL), 0);
        assert_int_equal(k[0x210], 0xb0);
        assert_int_equal(k[0x211], 0x81);
        assert_int_equal(ck_le16(k + 0x224), 0xfe00);
        assert_int_equal(ck_le32(k + 0x228), 0x20000);
        assert_int_equal(ck_le32(k + 0x218), (0x80000000u - 0x28000u - 1u - 0x123456u) & ~4095u);
        assert_int_equal(ck_le32(k + 0x21c), 0x123456);
        assert_int_equal(ck_le16(k + 0x1fa), 0);
        /* 8 GiB: low RAM is still 2 GiB, same address; 1 GiB: lower. */
        assert_int_equal(predict_linux_patch(k, 0x2000, 8192ull << 20, 0x123456, "", NULL), 0);
        assert_int_equal(ck_le32(k + 0x218), (0x80000000u - 0x28000u - 1u - 0x123456u) & ~4095u);
        assert_int_equal(predict_linux_patch(k, 0x2000, 1024ull << 20, 0x123456, "", NULL), 0);
        assert_int_equal(ck_le32(k + 0x218), (0x40000000u - 0x28000u - 1u - 0x123456u) & ~4095u);
        /* 2.75 GiB (>= 0xB0000000): 2 GiB low. */
        assert_int_equal(predict_linux_patch(k, 0x2000, 0xb0000000ull, 0x1000, "", NULL), 0);
        assert_int_equal(ck_le32(k + 0x218), (0x80000000u - 0x28000u - 1u - 0x1000u) & ~4095u);
        /* vga= as QEMU parses it. */
        assert_int_equal(predict_linux_patch(k, 0x2000, 1024ull << 20, 0, "quiet vga=0x317 ro", NULL), 0);
        assert_int_equal(ck_le16(k + 0x1fa), 0x317);
        assert_int_equal(predict_linux_patch(k, 0x2000, 1024ull << 20, 0, "vga=ask", NULL), 0);
        assert_int_equal(ck_le16(k + 0x1fa), 0xfffd);
        assert_int_equal(predict_linux_patch(k, 0x2000, 1024ull << 20, 0, "vga=12x", NULL), -EINVAL);
        /* Without XLF_CAN_BE_LOADED_ABOVE_4G the header's initrd_addr_max applies. */
        assert_int_equal(predict_linux_patch(old, 0x2000, 4096ull << 20, 0x1000, "", NULL), 0);
        assert_int_equal(ck_le32(old + 0x218), (0x7fffffffu - 0x28000u - 0x1000u) & ~4095u);
        ck_put_le32(old + 0x22c, 0x37ffffff);
        assert_int_equal(predict_linux_patch(old, 0x2000, 4096ull << 20, 0x1000, "", NULL), 0);
        assert_int_equal(ck_le32(old + 0x218), (0x37ffffffu - 0x1000u) & ~4095u);
        /* Too large an initrd, too small a file. */
        assert_int_equal(predict_linux_patch(old, 0x2000, 4096ull << 20, 0x40000000, "", NULL), -EFBIG);
        assert_int_equal(predict_linux_patch(old, 0x200, 4096ull << 20, 0, "", NULL), -EBADMSG);
        assert_int_equal(predict_linux_patch(old, 0x7ff, 4096ull << 20, 0, "", NULL),
                         -EBADMSG); /* setup 2 KiB */
        /* A PE without a Linux header (a UKI) is handed over unchanged, and takes no initrd. */
        pe = predict_test_read("pe/a.efi", &pe_len);
        memset(k, 0, 0x2000);
        memcpy(k, pe, pe_len);
        assert_int_equal(predict_linux_patch(k, 0x2000, 1024ull << 20, 0, "", NULL), 0);
        assert_memory_equal(k, pe, pe_len);
        assert_int_equal(predict_linux_patch(k, 0x2000, 1024ull << 20, 10, "", NULL), -EINVAL);
        free(pe);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_osslsigncode_vectors),
                cmocka_unit_test(test_parse_and_sections),
                cmocka_unit_test(test_rejects_damage),
                cmocka_unit_test(test_linux_patch),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
