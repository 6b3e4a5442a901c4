/* Unit tests for the simulated TD's PKI and quotes, checked independently of the DCAP
 * verifier: certificate chain and CRL signatures, the SGX extension, collateral signatures
 * over the exact text, and every length field, signature and binding of a sim quote. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "json.h"
#include "parse.h"
#include "sim-internal.h"
#include "sim.h"
#include "ssl.h"
#include "tee.h"

static char tmp[64];
static char simdir[128];

static int setup(void **state)
{
        struct attest_sim_init_opts o = {.now = 1767225600 /* 2026-01-01 */, .validity_days = 90};
        _cleanup_error_ struct ck_error *e = NULL;
        int r;

        snprintf(tmp, sizeof(tmp), "/tmp/ck-test-sim-XXXXXX");
        if (!mkdtemp(tmp))
                return -1;
        snprintf(simdir, sizeof(simdir), "%s/sim", tmp);
        r = attest_sim_init(simdir, &o, &e);
        if (r < 0)
                fprintf(stderr, "sim init: %s\n", ck_error_message(e, r));
        return r;
}

static int teardown(void **state)
{
        return ck_rm_rf_at(AT_FDCWD, tmp);
}

static STACK_OF(X509) * read_chain(const char *text, size_t len)
{
        BIO *b = BIO_new_mem_buf(text, (int)len);
        STACK_OF(X509) *sk = sk_X509_new_null();
        X509 *x;

        assert_non_null(b);
        while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
                sk_X509_push(sk, x);
        ERR_clear_error();
        BIO_free(b);
        return sk;
}

static STACK_OF(X509) * read_chain_file(const char *name)
{
        _cleanup_free_ uint8_t *d = NULL;
        char p[256];
        size_t n = 0;

        snprintf(p, sizeof(p), "%s/%s", simdir, name);
        assert_int_equal(ck_read_file(p, 1 << 20, &d, &n, NULL), 0);
        return read_chain((const char *)d, n);
}

static bool cn_contains(X509 *x, const char *s)
{
        char buf[256];

        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf));
        return strstr(buf, s) != NULL;
}

static bool verify_raw_key(EVP_PKEY *k, const uint8_t *data, size_t len, const uint8_t sig[64])
{
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *s = ECDSA_SIG_new();
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char *der = NULL;
        int n, ok;

        ECDSA_SIG_set0(s, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        n = i2d_ECDSA_SIG(s, &der);
        ok = n > 0 && EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, k, NULL) == 1 &&
             EVP_DigestVerify(ctx, der, (size_t)n, data, len) == 1;
        OPENSSL_free(der);
        return ok;
}

static EVP_PKEY *key_from_xy(const uint8_t xy[64])
{
        uint8_t pt[65] = {0x04};
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        OSSL_PARAM params[3];
        EVP_PKEY *k = NULL;

        memcpy(pt + 1, xy, 64);
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"P-256", 0);
        params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt));
        params[2] = OSSL_PARAM_construct_end();
        assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
        assert_int_equal(EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params), 1);
        return k;
}

static void test_pki_shape(void **state)
{
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *chain = read_chain_file("pck-chain.pem");
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *root = read_chain_file("root-ca.pem");
        X509 *leaf, *ca, *r;
        char p[256];
        struct stat st;

        assert_int_equal(sk_X509_num(chain), 3);
        assert_int_equal(sk_X509_num(root), 1);
        leaf = sk_X509_value(chain, 0);
        ca = sk_X509_value(chain, 1);
        r = sk_X509_value(chain, 2);
        assert_int_equal(X509_cmp(r, sk_X509_value(root, 0)), 0);
        assert_true(cn_contains(r, "Conker SIMULATED SGX Root CA"));
        assert_true(cn_contains(ca, "Conker SIMULATED SGX PCK Platform CA"));
        assert_true(cn_contains(leaf, "SGX PCK Certificate"));
        assert_true(cn_contains(leaf, "SIMULATED"));

        /* Chain verification with OpenSSL at "now" = init time + 1 day. */
        {
                _cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
                _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
                _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *untrusted = sk_X509_new_null();
                X509_up_ref(ca);
                sk_X509_push(untrusted, ca);
                X509_STORE_add_cert(store, r);
                X509_STORE_CTX_init(ctx, store, leaf, untrusted);
                X509_STORE_CTX_set_time(ctx, 0, 1767225600 + 86400);
                assert_int_equal(X509_verify_cert(ctx), 1);
        }
        /* The SGX extension is present, non-critical, and carries the sim FMSPC. */
        {
                _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
                int idx = X509_get_ext_by_OBJ(leaf, oid, -1);
                X509_EXTENSION *ext;
                const ASN1_OCTET_STRING *d;
                const unsigned char *q;
                STACK_OF(ASN1_TYPE) * seq;
                bool found_fmspc = false;

                assert_true(idx >= 0);
                ext = X509_get_ext(leaf, idx);
                assert_int_equal(X509_EXTENSION_get_critical(ext), 0);
                d = X509_EXTENSION_get_data(ext);
                q = ASN1_STRING_get0_data(d);
                seq = d2i_ASN1_SEQUENCE_ANY(NULL, &q, ASN1_STRING_length(d));
                assert_non_null(seq);
                assert_int_equal(sk_ASN1_TYPE_num(seq), 7);
                for (int i = 0; i < sk_ASN1_TYPE_num(seq); i++) {
                        ASN1_TYPE *t = sk_ASN1_TYPE_value(seq, i);
                        const unsigned char *pp;
                        STACK_OF(ASN1_TYPE) * pair;
                        char oidtxt[64];
                        assert_int_equal(t->type, V_ASN1_SEQUENCE);
                        pp = t->value.sequence->data;
                        pair = d2i_ASN1_SEQUENCE_ANY(NULL, &pp, t->value.sequence->length);
                        assert_non_null(pair);
                        assert_int_equal(sk_ASN1_TYPE_num(pair), 2);
                        OBJ_obj2txt(oidtxt, sizeof(oidtxt), sk_ASN1_TYPE_value(pair, 0)->value.object, 1);
                        if (strcmp(oidtxt, "1.2.840.113741.1.13.1.4") == 0) {
                                ASN1_TYPE *v = sk_ASN1_TYPE_value(pair, 1);
                                assert_int_equal(v->type, V_ASN1_OCTET_STRING);
                                assert_int_equal(v->value.octet_string->length, 6);
                                assert_memory_equal(v->value.octet_string->data, sim_fmspc, 6);
                                found_fmspc = true;
                        }
                        if (strcmp(oidtxt, "1.2.840.113741.1.13.1.5") == 0)
                                assert_int_equal(sk_ASN1_TYPE_value(pair, 1)->type, V_ASN1_ENUMERATED);
                        if (strcmp(oidtxt, "1.2.840.113741.1.13.1.2") == 0) {
                                ASN1_TYPE *v = sk_ASN1_TYPE_value(pair, 1);
                                const unsigned char *tp = v->value.sequence->data;
                                STACK_OF(ASN1_TYPE) *tcb =
                                        d2i_ASN1_SEQUENCE_ANY(NULL, &tp, v->value.sequence->length);
                                assert_int_equal(sk_ASN1_TYPE_num(tcb), 18);
                                sk_ASN1_TYPE_pop_free(tcb, ASN1_TYPE_free);
                        }
                        sk_ASN1_TYPE_pop_free(pair, ASN1_TYPE_free);
                }
                sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
                assert_true(found_fmspc);
        }
        snprintf(p, sizeof(p), "%s/pck-key.pem", simdir);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        snprintf(p, sizeof(p), "%s/qe-ak-key.pem", simdir);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_collateral_signed(void **state)
{
        _cleanup_free_ uint8_t *d = NULL;
        _cleanup_json_ json_t *j = NULL;
        char p[256];
        size_t n = 0;
        const char *items[][2] = {{"tcb_info", "tcb_info_signature"},
                                  {"qe_identity", "qe_identity_signature"}};

        snprintf(p, sizeof(p), "%s/collateral.json", simdir);
        assert_int_equal(ck_read_file(p, 1 << 20, &d, &n, NULL), 0);
        assert_int_equal(ck_json_loadb(d, n, 1 << 20, &j, NULL), 0);
        for (size_t i = 0; i < 2; i++) {
                const char *text = json_string_value(json_object_get(j, items[i][0]));
                const char *sighex = json_string_value(json_object_get(j, items[i][1]));
                const char *chain = json_string_value(json_object_get(j, "tcb_info_issuer_chain"));
                _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *sk = read_chain(chain, strlen(chain));
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = X509_get_pubkey(sk_X509_value(sk, 0));
                uint8_t sig[64];
                assert_non_null(text);
                assert_int_equal(ck_hex_decode(sighex, strlen(sighex), sig, 64), 0);
                assert_true(cn_contains(sk_X509_value(sk, 0), "TCB Signing"));
                assert_true(verify_raw_key(k, (const uint8_t *)text, strlen(text), sig));
                sig[5] ^= 1;
                assert_false(verify_raw_key(k, (const uint8_t *)text, strlen(text), sig));
        }
        /* CRLs: hex DER, signed by their issuers. */
        {
                const char *hex = json_string_value(json_object_get(j, "pck_crl"));
                const char *chain = json_string_value(json_object_get(j, "pck_crl_issuer_chain"));
                _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *sk = read_chain(chain, strlen(chain));
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = X509_get_pubkey(sk_X509_value(sk, 0));
                _cleanup_free_ uint8_t *der = NULL;
                size_t dl = 0;
                const unsigned char *q;
                X509_CRL *crl;
                assert_int_equal(ck_hex_decode_alloc(hex, strlen(hex), 1 << 16, &der, &dl), 0);
                q = der;
                crl = d2i_X509_CRL(NULL, &q, (long)dl);
                assert_non_null(crl);
                assert_int_equal(X509_CRL_verify(crl, k), 1);
                assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 2);
                X509_CRL_free(crl);
        }
        assert_non_null(strstr(json_string_value(json_object_get(j, "tcb_info")), "\"id\":\"TDX\""));
        assert_non_null(strstr(json_string_value(json_object_get(j, "qe_identity")), "\"id\":\"TD_QE\""));
}

static void test_sim_quote_layout(void **state)
{
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *chain = read_chain_file("pck-chain.pem");
        _cleanup_(attest_tee_freep) struct attest_tee *t = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pck = NULL, *ak = NULL;
        _cleanup_free_ uint8_t *q = NULL;
        struct attest_measurements m;
        char statedir[256];
        uint8_t rd[64], bind[96], h[32];
        size_t n = 0, off;
        uint32_t sig_len, cert6;
        uint16_t auth_len;

        snprintf(statedir, sizeof(statedir), "%s/state", tmp);
        struct attest_tee_config cfg = {
                .kind = ATTEST_TEE_KIND_SIM, .sim_dir = simdir, .sim_state_dir = statedir};
        assert_int_equal(attest_tee_open(&cfg, &t, NULL), 0);
        for (int i = 0; i < 64; i++)
                rd[i] = (uint8_t)(i * 3);
        assert_int_equal(attest_tee_quote(t, rd, &q, &n, NULL), 0);
        assert_int_equal(attest_tee_measurements(t, &m, NULL), 0);

        assert_int_equal(ck_le16(q), 4);
        assert_int_equal(ck_le16(q + 2), 2);
        assert_int_equal(ck_le32(q + 4), 0x81);
        assert_memory_equal(q + 12, sim_qe_vendor_id, 16);
        assert_memory_equal(q + 28, "CONKER-SIMULATED", 16);
        assert_memory_equal(q + 48, m.tee_tcb_svn, 16);
        assert_memory_equal(q + 48 + 136, m.mr_td, 48);
        assert_memory_equal(q + 48 + 328, m.rtmr, 4 * 48);
        assert_memory_equal(q + 48 + 520, rd, 64);
        sig_len = ck_le32(q + 632);
        assert_int_equal(636 + sig_len, n);
        ak = key_from_xy(q + 636 + 64);
        assert_true(verify_raw_key(ak, q, 632, q + 636));
        off = 636 + 128;
        assert_int_equal(ck_le16(q + off), 6);
        cert6 = ck_le32(q + off + 2);
        assert_int_equal(off + 6 + cert6, n);
        off += 6;
        pck = X509_get_pubkey(sk_X509_value(chain, 0));
        assert_true(verify_raw_key(pck, q + off, 384, q + off + 384));
        auth_len = ck_le16(q + off + 448);
        assert_int_equal(auth_len, 32);
        memcpy(bind, q + 636 + 64, 64);
        memcpy(bind + 64, q + off + 450, 32);
        assert_int_equal(ck_sha256(bind, 96, h), 0);
        assert_memory_equal(q + off + 320, h, 32);
        for (int i = 32; i < 64; i++)
                assert_int_equal(q[off + 320 + i], 0);
        assert_int_equal(q[off + 48], 0x11); /* QE attributes: not DEBUG */
        assert_int_equal(ck_le16(q + off + 256), 2);
        assert_int_equal(ck_le16(q + off + 258), 4);
        off += 450 + 32;
        assert_int_equal(ck_le16(q + off), 5);
        assert_int_equal(ck_le32(q + off + 2), n - off - 6);
        assert_memory_equal(q + off + 6, "-----BEGIN CERTIFICATE-----", 27);

        /* A flipped body byte breaks the quote signature. */
        q[48 + 200] ^= 1;
        assert_false(verify_raw_key(ak, q, 632, q + 636));
}

static void test_init_options(void **state)
{
        char p[256];
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ uint8_t *d = NULL;
        size_t n = 0;
        struct attest_sim_init_opts o = {.now = 1767225600,
                                         .validity_days = 10,
                                         .profile_json = "{\"rtmr1\":\""
                                                         "00112233445566778899aabbccddeeff"
                                                         "00112233445566778899aabbccddeeff"
                                                         "00112233445566778899aabbccddeeff\"}"};

        snprintf(p, sizeof(p), "%s/sim-b", tmp);
        assert_int_equal(attest_sim_init(p, &o, NULL), 0);
        snprintf(p, sizeof(p), "%s/sim-b/profile.json", tmp);
        assert_int_equal(ck_read_file(p, 1 << 16, &d, &n, NULL), 0);
        assert_non_null(strstr((char *)d, "00112233445566778899aabbccddeeff00112233"));
        o.profile_json = "{\"rtmr9\":\"00\"}";
        snprintf(p, sizeof(p), "%s/sim-c", tmp);
        assert_int_equal(attest_sim_init(p, &o, &e), -EBADMSG);
        o.profile_json = NULL;
        o.validity_days = 100000;
        assert_int_equal(attest_sim_init(p, &o, NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pki_shape),
                cmocka_unit_test(test_collateral_signed),
                cmocka_unit_test(test_sim_quote_layout),
                cmocka_unit_test(test_init_options),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
