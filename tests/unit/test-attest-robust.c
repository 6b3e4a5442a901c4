/* Robustness of verification: a changed byte anywhere that matters must make verification fail.
 * Quote: every byte of the signed region, of the signature/key/QE report/QE signature/auth data
 * and of the length fields, and every 7th byte of the PEM chain. Collateral: bytes of the signed
 * TCB Info and QE Identity texts, of both CRLs and of the signatures. */
#include "cmocka-wrap.h"

#include <errno.h>

#include "attest-vectors.h"
#include "json.h"
#include "parse.h"

#define T_TDX 1752919234

static void test_quote_byte_flips(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c =
                vec_collateral("dcap-qvl/tdx_quote_collateral.json");
        size_t len = 0, checked = 0;
        _cleanup_free_ uint8_t *orig = vec_quote("dcap-qvl/tdx_quote", &len);
        struct attest_verify_opts o = {.now = T_TDX};
        struct attest_quote q;
        size_t pem_start, pem_end;

        assert_int_equal(attest_quote_parse(orig, len, &q, NULL), 0);
        pem_start = (size_t)(q.cert_data - orig);
        pem_end = pem_start + q.cert_len;
        {
                struct attest_result *r = NULL;
                assert_int_equal(attest_verify_quote(orig, len, c, &o, &r, NULL), 0);
                attest_result_free(r);
        }
        for (size_t i = 0; i < pem_end; i++) {
                if (i >= pem_start && (i - pem_start) % 7 != 0)
                        continue;
                for (unsigned m = 0; m < 2; m++) {
                        _cleanup_free_ uint8_t *b = malloc(len);
                        _cleanup_(attest_result_freep) struct attest_result *r = NULL;
                        int ret;

                        memcpy(b, orig, len);
                        b[i] ^= m ? 0x80 : 0x01;
                        ret = attest_verify_quote(b, len, c, &o, &r, NULL);
                        if (ret >= 0)
                                fail_msg("byte %zu ^ 0x%02x was accepted", i, m ? 0x80 : 0x01);
                        assert_null(r);
                        checked++;
                }
        }
        assert_true(checked > 2 * 1200);
}

/* Re-serialises the dcap-qvl collateral with one field replaced. */
static struct attest_collateral *collateral_with(json_t *base, const char *key, const char *val,
                                                 size_t val_len, int *ret)
{
        _cleanup_json_ json_t *j = json_deep_copy(base);
        _cleanup_free_ char *s = NULL;
        struct attest_collateral *c = NULL;

        json_object_set_new(j, key, json_stringn(val, val_len));
        s = json_dumps(j, 0);
        *ret = attest_collateral_from_json((const uint8_t *)s, strlen(s), &c, NULL);
        return c;
}

static void flip_field(json_t *base, const char *key, size_t step, bool hex_field, const char *quote_file,
                       time_t now)
{
        const char *orig = json_string_value(json_object_get(base, key));
        size_t n = strlen(orig), qlen = 0, rejected_at_load = 0, rejected_at_verify = 0;
        _cleanup_free_ char *buf = strdup(orig);
        _cleanup_free_ uint8_t *quote = vec_quote(quote_file, &qlen);
        struct attest_verify_opts o = {.now = now};

        for (size_t i = 0; i < n; i += step) {
                _cleanup_(attest_collateral_freep) struct attest_collateral *c = NULL;
                _cleanup_(attest_result_freep) struct attest_result *r = NULL;
                char saved = buf[i];
                int ret = 0;

                if (hex_field) /* another valid hex digit */
                        buf[i] = saved == '0' ? '1' : '0';
                else
                        buf[i] ^= 0x01;
                c = collateral_with(base, key, buf, n, &ret);
                buf[i] = saved;
                if (!c) {
                        assert_true(ret < 0);
                        rejected_at_load++;
                        continue;
                }
                ret = attest_verify_quote(quote, qlen, c, &o, &r, NULL);
                if (ret >= 0)
                        fail_msg("%s: change at %zu accepted", key, i);
                rejected_at_verify++;
        }
        /* Most flips must survive parsing and be caught by a signature. */
        assert_true(rejected_at_verify > 0);
        (void)rejected_at_load;
}

static void test_collateral_flips(void **state)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *raw = vec_read("dcap-qvl/tdx_quote_collateral.json", &len);
        _cleanup_json_ json_t *base = NULL;

        assert_int_equal(ck_json_loadb(raw, len, 1 << 20, &base, NULL), 0);
        flip_field(base, "tcb_info", 11, false, "dcap-qvl/tdx_quote", T_TDX);
        flip_field(base, "qe_identity", 2, false, "dcap-qvl/tdx_quote", T_TDX);
        flip_field(base, "tcb_info_signature", 1, true, "dcap-qvl/tdx_quote", T_TDX);
        flip_field(base, "qe_identity_signature", 1, true, "dcap-qvl/tdx_quote", T_TDX);
        flip_field(base, "root_ca_crl", 2, true, "dcap-qvl/tdx_quote", T_TDX);
        flip_field(base, "pck_crl", 7, true, "dcap-qvl/tdx_quote", T_TDX);
}

/* Signed JSON texts with insignificant whitespace added are still different bytes: the
 * signature covers the exact text. */
static void test_signed_text_exactness(void **state)
{
        size_t len = 0, qlen = 0;
        _cleanup_free_ uint8_t *raw = vec_read("dcap-qvl/tdx_quote_collateral.json", &len);
        _cleanup_free_ uint8_t *quote = vec_quote("dcap-qvl/tdx_quote", &qlen);
        _cleanup_json_ json_t *base = NULL;
        struct attest_verify_opts o = {.now = T_TDX};
        const char *keys[] = {"tcb_info", "qe_identity"};

        assert_int_equal(ck_json_loadb(raw, len, 1 << 20, &base, NULL), 0);
        for (size_t k = 0; k < 2; k++) {
                const char *t = json_string_value(json_object_get(base, keys[k]));
                _cleanup_free_ char *spaced = NULL;
                _cleanup_(attest_collateral_freep) struct attest_collateral *c = NULL;
                _cleanup_(attest_result_freep) struct attest_result *r = NULL;
                _cleanup_error_ struct ck_error *e = NULL;
                int ret = 0;

                assert_true(asprintf(&spaced, " %s", t) > 0);
                c = collateral_with(base, keys[k], spaced, strlen(spaced), &ret);
                assert_non_null(c);
                assert_int_equal(attest_verify_quote(quote, qlen, c, &o, &r, &e), -EKEYREJECTED);
                assert_non_null(strstr(e->msg, "signature verification failed"));
        }
}

/* Collateral for one FMSPC must not verify a quote of another. */
static void test_collateral_mismatch(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c =
                vec_collateral("dcap-qvl/tdx_quote_collateral.json");
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        size_t len = 0;
        _cleanup_free_ uint8_t *q = vec_quote("dcap-qvl/sgx_quote", &len);
        struct attest_verify_opts o = {.now = T_TDX};

        assert_true(attest_verify_quote(q, len, c, &o, &r, &e) < 0);
        assert_null(r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_quote_byte_flips),
                cmocka_unit_test(test_collateral_flips),
                cmocka_unit_test(test_signed_text_exactness),
                cmocka_unit_test(test_collateral_mismatch),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
