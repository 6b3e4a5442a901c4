/* Collateral: raw PCS parts, the exact-span extraction of signed JSON values, serialisation
 * round trips, nextUpdate, and malformed documents. */
#include "cmocka-wrap.h"

#include <errno.h>

#include "attest-vectors.h"
#include "buf.h"
#include "json.h"
#include "parse.h"

#define T_TDX 1752919234
#define T_SPR 1688173200

static int verify_with(struct attest_collateral *c, const char *quote, time_t now, struct ck_error **e)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *q = vec_quote(quote, &len);
        _cleanup_(attest_result_freep) struct attest_result *r = NULL;
        struct attest_verify_opts o = {.now = now};

        return attest_verify_quote(q, len, c, &o, &r, e);
}

static void test_json_round_trip(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c =
                vec_collateral("dcap-qvl/tdx_quote_collateral.json");
        _cleanup_(attest_collateral_freep) struct attest_collateral *c2 = NULL;
        _cleanup_free_ char *s = NULL, *s2 = NULL;

        /* dcap-qvl's tests verify at min(nextUpdate) - 1. */
        assert_int_equal(attest_collateral_next_update(c), T_TDX + 1);
        assert_int_equal(attest_collateral_to_json(c, &s, NULL), 0);
        assert_int_equal(attest_collateral_from_json((const uint8_t *)s, strlen(s), &c2, NULL), 0);
        assert_int_equal(verify_with(c2, "dcap-qvl/tdx_quote", T_TDX, NULL), 0);
        assert_int_equal(attest_collateral_to_json(c2, &s2, NULL), 0);
        assert_string_equal(s, s2);
}

static void test_parts_round_trip(void **state)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c = vec_collateral_go();
        _cleanup_(attest_collateral_freep) struct attest_collateral *c2 = NULL;
        _cleanup_error_ struct ck_error *e = NULL, *e2 = NULL;
        _cleanup_free_ char *s = NULL;

        assert_int_equal(verify_with(c, "go-tdx-guest/tdx_prod_quote_SPR_E4.dat", T_SPR, &e), -ENOENT);
        assert_non_null(strstr(e->msg, "TCB level"));
        /* nextUpdate: QE Identity 2023-07-08T07:24:59Z is the earliest. */
        assert_int_equal(attest_collateral_next_update(c), 1688801099);
        assert_int_equal(attest_collateral_to_json(c, &s, NULL), 0);
        assert_int_equal(attest_collateral_from_json((const uint8_t *)s, strlen(s), &c2, NULL), 0);
        assert_int_equal(verify_with(c2, "go-tdx-guest/tdx_prod_quote_SPR_E4.dat", T_SPR, &e2), -ENOENT);
        assert_string_equal(e->msg, e2->msg);
}

/* Builds the go-tdx-guest collateral with a different TCB Info response body. */
static int go_with_tcb_body(const char *body, struct attest_collateral **ret, struct ck_error **e)
{
        size_t lq = 0, lc = 0, lp = 0, lr = 0, lpc = 0;
        _cleanup_free_ uint8_t *qe = vec_read("go-tdx-guest/sample_qeIdentity_response", &lq);
        _cleanup_free_ uint8_t *chain = vec_read("go-tdx-guest/tcb_signing_chain.pem", &lc);
        _cleanup_free_ uint8_t *pck = vec_read("go-tdx-guest/pckcrl", &lp);
        _cleanup_free_ uint8_t *pckchain = vec_read("go-tdx-guest/pck_crl_issuer_chain.pem", &lpc);
        _cleanup_free_ uint8_t *root = vec_read("go-tdx-guest/rootcrl.der", &lr);
        struct attest_collateral_parts parts = {
                .tcb_info_body = (const uint8_t *)body,
                .tcb_info_len = strlen(body),
                .qe_identity_body = qe,
                .qe_identity_len = lq,
                .tcb_issuer_chain_pem = (const char *)chain,
                .pck_crl_der = pck,
                .pck_crl_len = lp,
                .pck_crl_issuer_chain_pem = (const char *)pckchain,
                .root_crl_der = root,
                .root_crl_len = lr,
        };
        return attest_collateral_from_parts(&parts, ret, e);
}

/* Replaces every @V with v and @S with sig. */
static char *fill(const char *fmt, const char *v, const char *sig)
{
        struct ck_buf b;

        ck_buf_init(&b, 1 << 20);
        for (const char *p = fmt; *p; p++) {
                if (p[0] == '@' && p[1] == 'V') {
                        assert_int_equal(ck_buf_append_str(&b, v), 0);
                        p++;
                } else if (p[0] == '@' && p[1] == 'S') {
                        assert_int_equal(ck_buf_append_str(&b, sig), 0);
                        p++;
                } else
                        assert_int_equal(ck_buf_append(&b, p, 1), 0);
        }
        return (char *)ck_buf_take(&b, NULL);
}

static void test_signed_value_span(void **state)
{
        size_t len = 0;
        _cleanup_free_ uint8_t *raw = vec_read("go-tdx-guest/sample_tcbInfo_response", &len);
        _cleanup_free_ char *text = strndup((const char *)raw, len);
        const char *start = strstr(text, "{\"tcbInfo\":") ? text + strlen("{\"tcbInfo\":") : NULL;
        const char *sig = strstr(text, ",\"signature\":\"");
        _cleanup_free_ char *value = NULL, *sigval = NULL;

        assert_non_null(start);
        assert_non_null(sig);
        value = strndup(start, (size_t)(sig - start));
        sigval = strndup(sig + strlen(",\"signature\":\""), 128);

        struct {
                const char *fmt;
                int load; /* expected from_parts result */
                int verify;
        } cases[] = {
                /* reordered, extra whitespace and members around: same signed bytes */
                {" {\n \"signature\" : \"@S\" ,\n\t\"tcbInfo\" :  @V , \"x\":[\"}\",{\"a\":\"\\\"{\"}]\n}\n",
                 0, -ENOENT},
                {"{\"tcbInfo\":@V,\"signature\":\"@S\"}", 0, -ENOENT},
                /* one byte of whitespace inside the value: different bytes, signature fails */
                {"{\"tcbInfo\":@V ,\"signature\":\"@S\"}", 0, -ENOENT},
                /* duplicate member, escaped key, missing member, trailing garbage, not an object */
                {"{\"tcbInfo\":@V,\"tcbInfo\":@V,\"signature\":\"@S\"}", -EBADMSG, 0},
                {"{\"tcb\\u0049nfo\":@V,\"signature\":\"@S\"}", -EBADMSG, 0},
                {"{\"signature\":\"@S\"}", -EBADMSG, 0},
                {"{\"tcbInfo\":@V,\"signature\":\"@S\"}x", -EBADMSG, 0},
                {"[{\"tcbInfo\":@V,\"signature\":\"@S\"}]", -EBADMSG, 0},
                {"{\"tcbInfo\":@V,\"signature\":\"@S00\"}", -EBADMSG, 0},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *body = NULL;
                _cleanup_(attest_collateral_freep) struct attest_collateral *c = NULL;
                _cleanup_error_ struct ck_error *e = NULL;
                int r;

                body = fill(cases[i].fmt, value, sigval);
                r = go_with_tcb_body(body, &c, &e);
                if (r != cases[i].load)
                        fail_msg("case %zu: load %d (%s)", i, r, e ? e->msg : "");
                if (r < 0)
                        continue;
                r = verify_with(c, "go-tdx-guest/tdx_prod_quote_SPR_E4.dat", T_SPR, NULL);
                assert_int_equal(r, cases[i].verify);
        }

        /* Whitespace inside the signed value changes the bytes: TCB Info signature fails. */
        _cleanup_free_ char *body = NULL;
        _cleanup_free_ char *spaced = strdup(value);
        _cleanup_(attest_collateral_freep) struct attest_collateral *c = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        char *comma = strchr(spaced, ',');
        assert_non_null(comma);
        *comma = ' '; /* keep the length: ',' -> ' ' then re-add the comma below */
        assert_true(asprintf(&body, "{\"tcbInfo\":%.*s, %s,\"signature\":\"%s\"}", (int)(comma - spaced),
                             spaced, comma + 1, sigval) > 0);
        assert_int_equal(go_with_tcb_body(body, &c, NULL), 0);
        assert_int_equal(verify_with(c, "go-tdx-guest/tdx_prod_quote_SPR_E4.dat", T_SPR, &e), -EKEYREJECTED);
        assert_non_null(strstr(e->msg, "TCB Info: signature verification failed"));
}

static void test_malformed_json(void **state)
{
        static const char *const docs[] = {
                "",
                "{}",
                "[]",
                "{\"tcb_info\":1}",
                "{\"pck_crl_issuer_chain\":\"x\",\"root_ca_crl\":\"00\",\"pck_crl\":\"00\",\"tcb_info_"
                "issuer_chain\":\"x\","
                "\"tcb_info\":\"{}\",\"tcb_info_signature\":\"00\",\"qe_identity_issuer_chain\":\"x\",\"qe_"
                "identity\":\"{}\","
                "\"qe_identity_signature\":\"00\"}",
        };
        for (size_t i = 0; i < ELEMENTSOF(docs); i++) {
                struct attest_collateral *c = NULL;
                _cleanup_error_ struct ck_error *e = NULL;

                assert_int_equal(
                        attest_collateral_from_json((const uint8_t *)docs[i], strlen(docs[i]), &c, &e),
                        -EBADMSG);
                assert_null(c);
                assert_non_null(e);
        }
}

/* Each key of the dcap-qvl layout is required. */
static void test_missing_keys(void **state)
{
        static const char *const keys[] = {
                "pck_crl_issuer_chain",     "root_ca_crl", "pck_crl",
                "tcb_info_issuer_chain",    "tcb_info",    "tcb_info_signature",
                "qe_identity_issuer_chain", "qe_identity", "qe_identity_signature"};
        size_t len = 0;
        _cleanup_free_ uint8_t *raw = vec_read("dcap-qvl/tdx_quote_collateral.json", &len);

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                _cleanup_json_ json_t *j = NULL;
                _cleanup_free_ char *s = NULL;
                _cleanup_error_ struct ck_error *e = NULL;
                struct attest_collateral *c = NULL;

                assert_int_equal(ck_json_loadb(raw, len, 1 << 20, &j, NULL), 0);
                json_object_del(j, keys[i]);
                s = json_dumps(j, 0);
                assert_int_equal(attest_collateral_from_json((const uint8_t *)s, strlen(s), &c, &e),
                                 -EBADMSG);
                assert_non_null(strstr(e->msg, keys[i]));
        }
}

static void test_time_parse(void **state)
{
        time_t t = 0;

        assert_int_equal(attest_time_parse("1752919234", &t), 0);
        assert_int_equal(t, 1752919234);
        assert_int_equal(attest_time_parse("2025-07-19T10:00:34Z", &t), 0);
        assert_int_equal(t, 1752919234);
        assert_int_equal(attest_time_parse("2025-07-19T10:00:34.500Z", &t), 0);
        assert_int_equal(t, 1752919234);
        assert_int_equal(attest_time_parse("2025-07-19T12:00:34+02:00", &t), 0);
        assert_int_equal(t, 1752919234);
        assert_int_equal(attest_time_parse("2025-07-19T05:30:34-04:30", &t), 0);
        assert_int_equal(t, 1752919234);
        assert_int_equal(attest_time_parse("2025-07-19T10:00:34+2:00", &t), -EINVAL);
        assert_int_equal(attest_time_parse("2025-07-19 10:00:34", &t), -EINVAL);
        assert_int_equal(attest_time_parse("-5", &t), -EINVAL);
        assert_int_equal(attest_time_parse("", &t), -EINVAL);
        assert_int_equal(attest_time_parse("2025-13-19T10:00:34Z", &t), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_json_round_trip),   cmocka_unit_test(test_parts_round_trip),
                cmocka_unit_test(test_signed_value_span), cmocka_unit_test(test_malformed_json),
                cmocka_unit_test(test_missing_keys),      cmocka_unit_test(test_time_parse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
