/* Quote parsing: every vector's documented fields, hex files, and malformed input (every
 * truncation, lying length fields, unsupported versions and types). Run under ASan, the
 * truncation and length-lie cases prove that no read goes past the buffer: every case is copied
 * into an allocation of exactly its length. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "attest-vectors.h"
#include "parse.h"

static int parse_exact(const uint8_t *src, size_t len, struct attest_quote *q, struct ck_error **e)
{
        /* A private copy of exactly len bytes, so that ASan catches any over-read. */
        uint8_t *copy = malloc(len ? len : 1);
        int r;

        assert_non_null(copy);
        memcpy(copy, src, len);
        r = attest_quote_parse(copy, len, q, e);
        free(copy);
        return r;
}

static void test_tdx_quote_fields(void **state)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *b = vec_quote("dcap-qvl/tdx_quote", &len);
        struct attest_quote q;

        assert_int_equal(len, 5006);
        assert_int_equal(attest_quote_parse(b, len, &q, NULL), 0);
        assert_int_equal(q.version, 4);
        assert_int_equal(q.att_key_type, 2);
        assert_int_equal(q.tee_type, ATTEST_TEE_TDX);
        assert_int_equal(q.body_type, 2);
        assert_int_equal(q.signed_len, 632);
        assert_ptr_equal(q.signature, b + 636);
        assert_ptr_equal(q.attest_key, b + 700);
        assert_ptr_equal(q.qe_report, b + 770);
        assert_ptr_equal(q.qe_report_sig, b + 1154);
        assert_int_equal(q.qe_auth_len, 32);
        assert_int_equal(q.cert_type, 5);
        assert_ptr_equal(q.cert_data, b + 1258);
        assert_true(q.cert_len <= 3678 && q.cert_len > 3600);
        assert_true(hex_eq(q.qe_vendor_id, 16, "939a7233f79c4ca9940a0db3957f0607"));
        assert_true(hex_eq(q.m.tee_tcb_svn, 16, "06010300000000000000000000000000"));
        assert_true(hex_eq(q.m.mr_td, 48,
                           "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27"
                           "428b2538873118b7"));
        assert_false(q.m.has_v15);
        /* QE report fields: ISVPRODID 2, ISVSVN 6, MRSIGNER dc9e2a7c…54a8c5. */
        assert_int_equal(ck_le16(q.qe_report + 256), 2);
        assert_int_equal(ck_le16(q.qe_report + 258), 6);
        assert_int_equal(q.qe_report[128], 0xdc);
        assert_int_equal(q.qe_report[159], 0xc5);
}

static void test_outdated_v5_fields(void **state)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *b = vec_quote("dcap-qvl/tdx_quote_outdated", &len);
        struct attest_quote q;

        assert_int_equal(attest_quote_parse(b, len, &q, NULL), 0);
        assert_int_equal(q.version, 5);
        assert_int_equal(q.body_type, 3);
        assert_int_equal(q.signed_len, 54 + 648);
        assert_true(q.m.has_v15);
        assert_true(hex_eq(q.m.tee_tcb_svn, 16, "07010300000000000000000000000000"));
        assert_true(hex_eq(q.m.tee_tcb_svn2, 16, "0d010300000000000000000000000000"));
        assert_true(hex_eq(q.m.td_attributes, 8, "0000001000000000"));
        assert_true(hex_eq(q.m.xfam, 8, "e718060000000000"));
        assert_true(hex_eq(q.m.mr_seam, 48,
                           "49b66faa451d19ebbdbe89371b8daf2b65aa3984ec90110343e9e2eec116af08850fa20e3b1aa9a8"
                           "74d77a65380ee7e6"));
        assert_true(hex_eq(q.m.mr_td, 48,
                           "273828c46252fcbdd8ad2dd907130222b03466d52a2911d70c1a5950895d6bd1ae451d382d5a9b1b"
                           "4c0ed0e5ae9a3dbd"));
        assert_true(hex_eq(q.m.report_data, 64,
                           "d2142b643598eb5fae2bc8529dd79a558b29f868ccbb6531cb28dab9dce477280000000000000000"
                           "000000000000000000000000000000000000000000000000"));
        for (size_t i = 0; i < 48; i++)
                assert_int_equal(q.m.mr_service_td[i] | q.m.rtmr[0][i] | q.m.rtmr[3][i], 0);
        assert_int_equal(ck_le16(q.qe_report + 258), 7);
}

static void test_sgx_v3_fields(void **state)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *b = vec_quote("dcap-qvl/sgx_quote", &len);
        struct attest_quote q;

        assert_int_equal(attest_quote_parse(b, len, &q, NULL), 0);
        assert_int_equal(q.version, 3);
        assert_int_equal(q.tee_type, ATTEST_TEE_SGX);
        assert_int_equal(q.body_type, 1);
        assert_int_equal(q.signed_len, 432);
        assert_int_equal(ck_le16(b + 8), 10);  /* QE SVN */
        assert_int_equal(ck_le16(b + 10), 15); /* PCE SVN */
        assert_true(hex_eq(q.m.sgx_attributes, 16, "0500000000000000e700000000000000"));
        assert_int_equal(q.m.mr_enclave[0], 0x33);
        assert_int_equal(q.m.mr_signer[0], 0x81);
        assert_int_equal(q.cert_type, 5);
}

static void test_spr_and_cos_fields(void **state)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *b = vec_quote("go-tdx-guest/tdx_prod_quote_SPR_E4.dat", &len);
        struct attest_quote q;

        assert_int_equal(len, 4974);
        assert_int_equal(attest_quote_parse(b, len, &q, NULL), 0);
        assert_int_equal(ck_le32(b + 632), 4299);
        assert_true(hex_eq(q.m.td_attributes, 8, "0000004000000000"));
        assert_true(hex_eq(q.m.tee_tcb_svn, 16, "03000400000000000000000000000000"));
        assert_true(hex_eq(q.m.xfam, 8, "e71a060000000000"));
        assert_true(hex_eq(q.m.mr_seam, 48,
                           "2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60f"
                           "be9d0c5a5363c656"));
        assert_true(hex_eq(q.m.mr_td, 48,
                           "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc"
                           "10d5e119d7215cbb"));
        assert_true(hex_eq(q.m.rtmr[0], 48,
                           "2927da70461cd63266f43230cc1849c03ef25ebe490062a801d8fcc80af42976823adf08f833c1e5"
                           "0b51779c6593f32a"));
        assert_true(hex_eq(q.m.rtmr[1], 48,
                           "2c700b8ba9b85783f8be9fb9443647bdc0bb3c50747f06297cc6538c25a5f589c4b56d035c59107c"
                           "6bc5800db2cacb61"));
        assert_true(hex_eq(q.m.rtmr[2], 48,
                           "8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7"
                           "c3bf5c924eb4424e"));
        assert_true(hex_eq(q.m.report_data, 64,
                           "6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed31"
                           "3b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113"));
        assert_true(q.cert_len <= 3677 && q.cert_len > 3600);

        _cleanup_free_ uint8_t *c = vec_quote("go-tdx-guest/ccel/cos-113-tdx-quote.dat", &len);
        assert_int_equal(len, 8000);
        assert_int_equal(attest_quote_parse(c, len, &q, NULL), 0);
        assert_true(hex_eq(q.m.mr_td, 48,
                           "dae67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89734a45d8954dba41394c7717cb273"
                           "5396c1d04231f94a"));
        assert_true(hex_eq(q.m.rtmr[0], 48,
                           "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e"
                           "1edece752afd17f6"));
        assert_true(hex_eq(q.m.tee_tcb_svn, 16, "04010700000000000000000000000000"));
        for (size_t i = 0; i < 64; i++)
                assert_int_equal(q.m.report_data[i], 0);
}

static void test_hex_files(void **state)
{
        size_t len = 0;
        struct attest_quote q;
        _cleanup_free_ uint8_t *a = vec_quote("dcap-qvl/tdx-quote.hex", &len);

        assert_int_equal(len, 5006);
        assert_int_equal(attest_quote_parse(a, len, &q, NULL), 0);
        assert_int_equal(q.version, 4);
        assert_true(hex_eq(q.m.tee_tcb_svn, 16, "05010200000000000000000000000000"));
        assert_true(hex_eq(q.m.mr_td, 48,
                           "7ba9e262ce6979087e34632603f354dd8f8a870f5947d116af8114db6c9d0d74c48bec4280e5b4f4"
                           "a37025a10905bb29"));
        assert_true(hex_eq(q.m.rtmr[0], 48,
                           "4574c098915caf3e82057817dbd135c1ed0ee1b39ac300c921479e2f5ebf5726a13ee0c8745ac891"
                           "b6aee7c4f9664610"));
        assert_true(hex_eq(q.m.rtmr[3], 48,
                           "547fcba4630bfb981169a8a1903b79c244933413409dd0387acbd8e3b985bcc9164cf52735cd31f6"
                           "0bf2c5d1220c113f"));
        assert_true(hex_eq(q.m.report_data, 64,
                           "7148f47ef58b475fce69b386e2d6b4c964a9533cc328ea8e544db66612a5174698d006951cefa8fd"
                           "4450e884300638e567e22f9a012ef5754aa6a9d9564fcd8a"));
        assert_int_equal(ck_le16(q.qe_report + 258), 6);

        _cleanup_free_ uint8_t *b = vec_quote("dcap-qvl/quote-from-tappd.hex", &len);
        assert_int_equal(len, 5006);
        assert_int_equal(attest_quote_parse(b, len, &q, NULL), 0);
        assert_true(hex_eq(q.m.mr_td, 48,
                           "c68518a0ebb42136c12b2275164f8c72f25fa9a34392228687ed6e9caeb9c0f1dbd895e9cf475121"
                           "c029dc47e70e91fd"));
        assert_true(hex_eq(q.m.rtmr[0], 48,
                           "274c2344116db7c663470693b5ba62b8621eac28cb41d2f816ddf188f9f423f900a1c44d32386fd3"
                           "c993dc814e62af9d"));
        assert_true(hex_eq(q.m.rtmr[1], 48,
                           "918fbd97108e05450afa6aca140c6363ab913578b66cc312e3e8542ce5ade455a30c8d9e4d53a5e4"
                           "3d81955f76140279"));
        assert_true(hex_eq(q.m.rtmr[3], 48,
                           "a2d25bc888a93009af5b70eadb410e9071d18387e4db39aae20fe767f5c4279d95e6519c5d797938"
                           "a90694599c5bea7a"));
        assert_true(hex_eq(q.m.report_data, 64,
                           "7668c6b4eafb62301c72714ecc7d90ce9a0e04b52dc117720df2047b0a59f1dbd937243eef1410a3"
                           "cdc524aad66d4554b4f18b54da2fc0608dac40d6dea5f1d4"));
        for (size_t i = 0; i < 48; i++)
                assert_int_equal(q.m.rtmr[2][i], 0);

        /* The binary and the hex form of a quote read the same. */
        _cleanup_free_ uint8_t *bin = vec_quote("dcap-qvl/tdx_quote", &len);
        char tmpl[] = "/tmp/ck-test-quote-XXXXXX";
        int fd = mkstemp(tmpl);
        _cleanup_free_ char *hex = ck_hex_encode_alloc(bin, len);
        uint8_t *back = NULL;
        size_t back_len = 0;

        assert_true(fd >= 0);
        dprintf(fd, "  0x");
        for (size_t i = 0; i < strlen(hex); i += 64)
                dprintf(fd, "%.64s\n", hex + i);
        close(fd);
        assert_int_equal(attest_quote_read_file(tmpl, &back, &back_len, NULL), 0);
        assert_int_equal(back_len, len);
        assert_memory_equal(back, bin, len);
        free(back);
        fd = open(tmpl, O_WRONLY | O_TRUNC | O_CLOEXEC);
        dprintf(fd, "abc\n");
        close(fd);
        assert_int_equal(attest_quote_read_file(tmpl, &back, &back_len, NULL), -EBADMSG);
        unlink(tmpl);
}

static void test_every_truncation(void **state)
{
        static const char *const files[] = {"dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_outdated",
                                            "dcap-qvl/sgx_quote", "go-tdx-guest/tdx_prod_quote_SPR_E4.dat"};

        for (size_t f = 0; f < ELEMENTSOF(files); f++) {
                size_t len = 0, need;
                _cleanup_free_ uint8_t *b = vec_quote(files[f], &len);
                struct attest_quote q;

                assert_int_equal(attest_quote_parse(b, len, &q, NULL), 0);
                need = q.signed_len + 4 + ck_le32(b + q.signed_len);
                for (size_t n = 0; n <= len; n++) {
                        _cleanup_error_ struct ck_error *e = NULL;
                        int r = parse_exact(b, n, &q, &e);

                        if (n < need) {
                                assert_int_equal(r, -EBADMSG);
                                assert_non_null(e);
                                assert_non_null(strstr(e->msg, "quote:"));
                        } else
                                assert_int_equal(r, 0);
                }
        }
}

static void put32(uint8_t *p, uint32_t v)
{
        ck_put_le32(p, v);
}

static void test_length_lies(void **state)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *orig = vec_quote("dcap-qvl/tdx_quote", &len);
        const uint32_t lies32[] = {0,   1,    63,   64,   128,  133,        134,
                                   517, 4299, 4301, 4370, 4371, 0x7fffffff, 0xffffffff};
        const uint16_t lies16[] = {0, 1, 31, 33, 4000, 0xffff};
        struct attest_quote q;

        /* signature data length @632, outer cert size @766, auth size @1218, inner cert size @1254 */
        for (size_t i = 0; i < ELEMENTSOF(lies32); i++) {
                static const size_t offs[] = {632, 766, 1254};
                for (size_t o = 0; o < ELEMENTSOF(offs); o++) {
                        _cleanup_free_ uint8_t *b = malloc(len);
                        memcpy(b, orig, len);
                        put32(b + offs[o], lies32[i]);
                        if (ck_le32(orig + offs[o]) == lies32[i])
                                continue;
                        assert_int_equal(parse_exact(b, len, &q, NULL), -EBADMSG);
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(lies16); i++) {
                _cleanup_free_ uint8_t *b = malloc(len);
                memcpy(b, orig, len);
                ck_put_le16(b + 1218, lies16[i]);
                assert_int_equal(parse_exact(b, len, &q, NULL), -EBADMSG);
        }

        /* v5 body size and body type lies. */
        _cleanup_free_ uint8_t *v5 = vec_quote("dcap-qvl/tdx_quote_outdated", &len);
        const uint32_t sizes[] = {0, 384, 584, 647, 649, 885, 0xffffffff};
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                _cleanup_free_ uint8_t *b = malloc(len);
                memcpy(b, v5, len);
                put32(b + 50, sizes[i]);
                assert_int_equal(parse_exact(b, len, &q, NULL), -EBADMSG);
        }
        /* A TD body (type 3, its size right) under an SGX header. */
        {
                _cleanup_free_ uint8_t *b = malloc(len);
                memcpy(b, v5, len);
                put32(b + 4, 0);
                assert_int_equal(parse_exact(b, len, &q, NULL), -EBADMSG);
        }
        const uint16_t types[] = {1, 2, 4, 0, 0xffff};
        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                _cleanup_free_ uint8_t *b = malloc(len);
                memcpy(b, v5, len);
                ck_put_le16(b + 48, types[i]);
                assert_true(parse_exact(b, len, &q, NULL) < 0);
        }
}

static void test_unsupported_header(void **state)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *orig = vec_quote("dcap-qvl/tdx_quote", &len);
        struct {
                size_t off;
                uint8_t val;
                int err;
                const char *msg;
        } cases[] = {
                {0, 2, -EOPNOTSUPP, "version 2"},
                {0, 6, -EOPNOTSUPP, "version 6"},
                {0, 3, -EBADMSG, "version 3"},
                {2, 3, -EOPNOTSUPP, "attestation key type 3"},
                {4, 0x80, -EOPNOTSUPP, "TEE type"},
                {12, 0x94, -EBADMSG, "vendor"},
                {764, 5, -EBADMSG, "certification data type 5"},
                {1252, 4, -EOPNOTSUPP, "type 4"},
                {1252, 9, -EBADMSG, "type 9"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ uint8_t *b = malloc(len);
                _cleanup_error_ struct ck_error *e = NULL;
                struct attest_quote q;

                memcpy(b, orig, len);
                b[cases[i].off] = cases[i].val;
                assert_int_equal(parse_exact(b, len, &q, &e), cases[i].err);
                if (!strstr(e->msg, cases[i].msg))
                        fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e->msg, cases[i].msg);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tdx_quote_fields), cmocka_unit_test(test_outdated_v5_fields),
                cmocka_unit_test(test_sgx_v3_fields),    cmocka_unit_test(test_spr_and_cos_fields),
                cmocka_unit_test(test_hex_files),        cmocka_unit_test(test_every_truncation),
                cmocka_unit_test(test_length_lies),      cmocka_unit_test(test_unsupported_header),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
