/* TDVF metadata parsing and MRTD on synthetic firmware images: the GUID-table walk, the page
 * order of both QEMU generations, PAGE.AUG and EXTENDMR, and rejection of damaged metadata.
 * The real-firmware vectors are in test-predict-ovmf.c. */
#include "cmocka-wrap.h"

#include <errno.h>

#include <openssl/evp.h>

#include "predict-testdata.h"
#include "predict.h"
#include "ssl.h"

#define FW_LEN   0x10000u
#define DESC_OFF 0x100u

static const uint8_t footer_guid[16] = {0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45,
                                        0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d};
static const uint8_t meta_guid[16] = {0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47,
                                      0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2};
static const uint8_t other_guid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void put64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static void put_section(uint8_t *fw, unsigned i, uint32_t off, uint32_t raw, uint64_t gpa, uint64_t mem,
                        uint32_t type, uint32_t attr)
{
        uint8_t *p = fw + DESC_OFF + 16 + 32 * i;

        ck_put_le32(p, off);
        ck_put_le32(p + 4, raw);
        put64(p + 8, gpa);
        put64(p + 16, mem);
        ck_put_le32(p + 24, type);
        ck_put_le32(p + 28, attr);
}

/* A 64 KiB image: BFV (2 pages at 0x4000, EXTENDMR), CFV (1 page at 0x2000), TD_HOB, TEMP_MEM;
 * GUID table with an unrelated entry before the metadata entry. */
static uint8_t *make_fw(void)
{
        uint8_t *fw = calloc(1, FW_LEN), *p;
        size_t end = FW_LEN - 0x20;

        assert_non_null(fw);
        for (size_t i = 0; i < FW_LEN; i++)
                fw[i] = (uint8_t)(i * 7 + (i >> 8));
        memset(fw + DESC_OFF, 0, 16 + 32 * 4);
        memcpy(fw + DESC_OFF, "TDVF", 4);
        ck_put_le32(fw + DESC_OFF + 4, 16 + 32 * 4);
        ck_put_le32(fw + DESC_OFF + 8, 1);
        ck_put_le32(fw + DESC_OFF + 12, 4);
        put_section(fw, 0, 0x4000, 0x2000, 0xfffe0000, 0x2000, PREDICT_TDVF_BFV, PREDICT_TDVF_ATTR_EXTENDMR);
        put_section(fw, 1, 0x2000, 0x1000, 0xfffd0000, 0x1000, PREDICT_TDVF_CFV, 0);
        put_section(fw, 2, 0, 0, 0x809000, 0x2000, PREDICT_TDVF_TD_HOB, 0);
        put_section(fw, 3, 0, 0, 0x800000, 0x6000, PREDICT_TDVF_TEMP_MEM, 0);

        /* Table: [other entry: 4 data + 18][metadata: 4 + 18][footer: 2 + 16]. */
        p = fw + end - 18 - 22 - 22;
        memset(p, 0xaa, 4);
        ck_put_le16(p + 4, 22);
        memcpy(p + 6, other_guid, 16);
        p += 22;
        ck_put_le32(p, FW_LEN - DESC_OFF);
        ck_put_le16(p + 4, 22);
        memcpy(p + 6, meta_guid, 16);
        p += 22;
        ck_put_le16(p, 18 + 22 + 22);
        memcpy(p + 2, footer_guid, 16);
        return fw;
}

/* MRTD written out the long way for one EXTENDMR page, as the TDX module defines it. */
static void reference_one_page(const uint8_t *data, uint64_t gpa, uint8_t out[48])
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t b[128];
        unsigned int n = 0;

        assert_non_null(ctx);
        assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha384(), NULL), 1);
        memset(b, 0, sizeof(b));
        memcpy(b, "MEM.PAGE.ADD", 12);
        put64(b + 16, gpa);
        EVP_DigestUpdate(ctx, b, 128);
        for (int k = 0; k < 16; k++) {
                memset(b, 0, sizeof(b));
                memcpy(b, "MR.EXTEND", 9);
                put64(b + 16, gpa + 256u * k);
                EVP_DigestUpdate(ctx, b, 128);
                EVP_DigestUpdate(ctx, data + 256 * k, 256);
        }
        EVP_DigestFinal_ex(ctx, out, &n);
        EVP_MD_CTX_free(ctx);
}

static void test_parse(void **state)
{
        _cleanup_free_ uint8_t *fw = make_fw();
        struct predict_tdvf t;

        assert_int_equal(predict_tdvf_parse(fw, FW_LEN, &t, NULL), 0);
        assert_int_equal(t.n, 4);
        assert_int_equal(t.s[0].data_off, 0x4000);
        assert_int_equal(t.s[0].gpa, 0xfffe0000);
        assert_int_equal(t.s[0].attr, PREDICT_TDVF_ATTR_EXTENDMR);
        assert_int_equal(t.s[1].type, PREDICT_TDVF_CFV);
        assert_int_equal(t.s[2].type, PREDICT_TDVF_TD_HOB);
        assert_int_equal(t.s[3].mem_size, 0x6000);
}

static void test_mrtd_orders(void **state)
{
        _cleanup_free_ uint8_t *fw = make_fw();
        struct predict_tdvf t, one;
        uint8_t single[48], two[48], again[48], ref[48], cfv[48], want_cfv[48];

        assert_int_equal(predict_tdvf_parse(fw, FW_LEN, &t, NULL), 0);
        assert_int_equal(predict_tdvf_mrtd(fw, FW_LEN, &t, PREDICT_MRTD_SINGLE_PASS, single, NULL), 0);
        assert_int_equal(predict_tdvf_mrtd(fw, FW_LEN, &t, PREDICT_MRTD_TWO_PASS, two, NULL), 0);
        assert_memory_not_equal(single, two, 48);

        /* With one page per section both orders are the same byte stream. */
        one = t;
        one.n = 1;
        one.s[0].mem_size = one.s[0].raw_size = 0x1000;
        assert_int_equal(predict_tdvf_mrtd(fw, FW_LEN, &one, PREDICT_MRTD_SINGLE_PASS, single, NULL), 0);
        assert_int_equal(predict_tdvf_mrtd(fw, FW_LEN, &one, PREDICT_MRTD_TWO_PASS, two, NULL), 0);
        assert_memory_equal(single, two, 48);
        reference_one_page(fw + 0x4000, 0xfffe0000, ref);
        assert_memory_equal(single, ref, 48);

        /* A page past the raw data is extended as zeros. */
        one.s[0].raw_size = 0;
        assert_int_equal(predict_tdvf_mrtd(fw, FW_LEN, &one, PREDICT_MRTD_SINGLE_PASS, single, NULL), 0);
        {
                static const uint8_t zero[0x1000];
                reference_one_page(zero, 0xfffe0000, ref);
        }
        assert_memory_equal(single, ref, 48);

        /* Raw data that ends inside a 256-byte chunk: the rest of that chunk is zeros, not the
         * firmware bytes that follow the section's data in the file. */
        one.s[0].raw_size = 0x100 + 100;
        assert_int_equal(predict_tdvf_mrtd(fw, FW_LEN, &one, PREDICT_MRTD_SINGLE_PASS, single, NULL), 0);
        {
                static uint8_t page[0x1000];
                memcpy(page, fw + 0x4000, 0x100 + 100);
                reference_one_page(page, 0xfffe0000, ref);
        }
        assert_memory_equal(single, ref, 48);

        /* PAGE.AUG sections are not measured at all. */
        assert_int_equal(predict_tdvf_mrtd(fw, FW_LEN, &t, PREDICT_MRTD_SINGLE_PASS, single, NULL), 0);
        t.s[t.n] = t.s[3];
        t.s[t.n].attr = PREDICT_TDVF_ATTR_PAGE_AUG;
        t.s[t.n].gpa = 0x900000;
        t.n++;
        assert_int_equal(predict_tdvf_mrtd(fw, FW_LEN, &t, PREDICT_MRTD_SINGLE_PASS, again, NULL), 0);
        assert_memory_equal(single, again, 48);
        t.n--;

        /* CFV data is added, not extended: changing it leaves MRTD alone; BFV data does not. */
        fw[0x2000] ^= 1;
        assert_int_equal(predict_tdvf_mrtd(fw, FW_LEN, &t, PREDICT_MRTD_SINGLE_PASS, again, NULL), 0);
        assert_memory_equal(single, again, 48);
        fw[0x4000 + 0x1fff] ^= 1;
        assert_int_equal(predict_tdvf_mrtd(fw, FW_LEN, &t, PREDICT_MRTD_SINGLE_PASS, again, NULL), 0);
        assert_memory_not_equal(single, again, 48);

        assert_int_equal(predict_tdvf_cfv_digest(fw, FW_LEN, &t, cfv, NULL), 0);
        assert_int_equal(ck_sha384(fw + 0x2000, 0x1000, want_cfv), 0);
        assert_memory_equal(cfv, want_cfv, 48);
        t.s[1].type = PREDICT_TDVF_TEMP_MEM;
        assert_int_equal(predict_tdvf_cfv_digest(fw, FW_LEN, &t, cfv, NULL), -ENOENT);
}

static void expect_reject(uint8_t *fw, size_t len, int code)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct predict_tdvf t;

        assert_int_equal(predict_tdvf_parse(fw, len, &t, &e), code);
        assert_non_null(e);
}

static void test_rejects_damage(void **state)
{
        _cleanup_free_ uint8_t *fw = make_fw();
        uint8_t *desc = fw + DESC_OFF, *footer_len = fw + FW_LEN - 0x20 - 18,
                *meta = fw + FW_LEN - 0x20 - 18 - 22;
        struct predict_tdvf t;

        expect_reject(fw, 40, -EBADMSG);
        /* Footer GUID. */
        footer_len[2] ^= 1;
        expect_reject(fw, FW_LEN, -EBADMSG);
        footer_len[2] ^= 1;
        /* Table longer than the image, entry length running past the table start. */
        ck_put_le16(footer_len, 0xffff);
        expect_reject(fw, FW_LEN, -EBADMSG);
        ck_put_le16(footer_len, 18 + 22 + 22);
        ck_put_le16(meta + 4, 200);
        expect_reject(fw, FW_LEN, -EBADMSG);
        ck_put_le16(meta + 4, 22);
        /* Metadata GUID missing. */
        meta[6] ^= 1;
        expect_reject(fw, FW_LEN, -ENOENT);
        meta[6] ^= 1;
        /* Descriptor offset outside the image. */
        ck_put_le32(meta, FW_LEN + 1);
        expect_reject(fw, FW_LEN, -EBADMSG);
        ck_put_le32(meta, 8);
        expect_reject(fw, FW_LEN, -EBADMSG);
        ck_put_le32(meta, FW_LEN - DESC_OFF);
        /* Signature, version, section count, length. */
        desc[0] = 'X';
        expect_reject(fw, FW_LEN, -EBADMSG);
        desc[0] = 'T';
        ck_put_le32(desc + 8, 2);
        expect_reject(fw, FW_LEN, -EOPNOTSUPP);
        ck_put_le32(desc + 8, 1);
        ck_put_le32(desc + 12, 1000);
        expect_reject(fw, FW_LEN, -EBADMSG);
        ck_put_le32(desc + 12, 4);
        ck_put_le32(desc + 4, 16);
        expect_reject(fw, FW_LEN, -EBADMSG);
        ck_put_le32(desc + 4, 16 + 32 * 4);
        /* Sections: raw data past the end, raw larger than memory, misaligned, overflow. */
        put_section(fw, 0, 0xf000, 0x2000, 0xfffe0000, 0x2000, 0, 1);
        expect_reject(fw, FW_LEN, -EBADMSG);
        put_section(fw, 0, 0x4000, 0x3000, 0xfffe0000, 0x2000, 0, 1);
        expect_reject(fw, FW_LEN, -EBADMSG);
        put_section(fw, 0, 0x4000, 0x2000, 0xfffe0800, 0x2000, 0, 1);
        expect_reject(fw, FW_LEN, -EBADMSG);
        put_section(fw, 0, 0x4000, 0x2000, UINT64_MAX - 0xfff, 0x2000, 0, 1);
        expect_reject(fw, FW_LEN, -EBADMSG);
        put_section(fw, 0, 0x4000, 0x2000, 0x100000000ull, 0x40001000ull, 0, 1); /* > 1 GiB */
        expect_reject(fw, FW_LEN, -EBADMSG);
        put_section(fw, 0, 0x4000, 0x2000, 0xfffe0000, 0x2000, 9, 1);
        expect_reject(fw, FW_LEN, -EBADMSG);
        put_section(fw, 0, 0x4000, 0x2000, 0xfffe0000, 0x2000, 0, 4);
        expect_reject(fw, FW_LEN, -EBADMSG);
        put_section(fw, 0, 0x4000, 0x2000, 0xfffe0000, 0x2000, 0, 1);
        assert_int_equal(predict_tdvf_parse(fw, FW_LEN, &t, NULL), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_mrtd_orders),
                cmocka_unit_test(test_rejects_damage),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
