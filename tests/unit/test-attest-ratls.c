/* Unit tests for RA-TLS certificates with the simulated TD and the real DCAP verifier: a good
 * certificate verifies; every broken binding (key, claims, ctx, trust anchor, RTMR3 log,
 * malformed extension) is rejected. */
#include "cmocka-wrap.h"

#include <cbor.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eventlog.h"
#include "fs.h"
#include "ratls.h"
#include "sim.h"
#include "ssl.h"

#define APP_ID "sha256:4e1bcd3b4c7a1cc6a9bd4b1c1e4f6a3f0fd1cd1a5c9e4a3b2d1c0f9e8d7c6b5a"

static char tmp[64], simdir[128], statedir[128];
static struct attest_collateral *col;
static X509 *sim_root;
static struct attest_tee *the_tee;

static int setup(void **state)
{
        struct attest_sim_init_opts o = {.validity_days = 30};
        struct attest_tee_config cfg = {.kind = ATTEST_TEE_KIND_SIM};
        char p[256];

        snprintf(tmp, sizeof(tmp), "/tmp/ck-test-ratls-XXXXXX");
        if (!mkdtemp(tmp))
                return -1;
        snprintf(simdir, sizeof(simdir), "%s/sim", tmp);
        snprintf(statedir, sizeof(statedir), "%s/state", tmp);
        cfg.sim_dir = simdir;
        cfg.sim_state_dir = statedir;
        if (attest_sim_init(simdir, &o, NULL) < 0 || attest_tee_open(&cfg, &the_tee, NULL) < 0)
                return -1;
        snprintf(p, sizeof(p), "%s/collateral.json", simdir);
        if (attest_collateral_load_file(p, &col, NULL) < 0)
                return -1;
        snprintf(p, sizeof(p), "%s/root-ca.pem", simdir);
        return attest_root_load_file(p, &sim_root, NULL);
}

static int teardown(void **state)
{
        attest_tee_free(the_tee);
        attest_collateral_free(col);
        X509_free(sim_root);
        return ck_rm_rf_at(AT_FDCWD, tmp);
}

static struct attest_verify_opts sim_opts(void)
{
        return (struct attest_verify_opts){.now = time(NULL), .root = sim_root};
}

static const ASN1_OCTET_STRING *ext_data(X509 *cert)
{
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj("2.23.133.5.4.9", 1);
        int idx = X509_get_ext_by_OBJ(cert, oid, -1);

        assert_true(idx >= 0);
        return X509_EXTENSION_get_data(X509_get_ext(cert, idx));
}

/* A self-signed certificate for key carrying ext (raw extension value). */
static X509 *cert_with_ext(EVP_PKEY *key, const uint8_t *ext, size_t len)
{
        X509 *cert = X509_new();
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj("2.23.133.5.4.9", 1);
        _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *val = ASN1_OCTET_STRING_new();
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *e = NULL;
        X509_NAME *name = X509_get_subject_name(cert);

        X509_set_version(cert, X509_VERSION_3);
        ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test", -1, -1, 0);
        X509_set_issuer_name(cert, name);
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
        X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
        X509_set_pubkey(cert, key);
        ASN1_OCTET_STRING_set(val, ext, (int)len);
        e = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, val);
        X509_add_ext(cert, e, -1);
        assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
        return cert;
}

static uint8_t *serialize(cbor_item_t *item, size_t *len)
{
        unsigned char *buf = NULL;
        size_t cap = 0;

        *len = cbor_serialize_alloc(item, &buf, &cap);
        assert_true(*len > 0);
        cbor_decref(&item);
        return buf;
}

static void map_put(cbor_item_t *map, const char *k, const void *v, size_t n)
{
        cbor_item_t *key = cbor_build_string(k), *val = cbor_build_bytestring(v, n);
        assert_true(cbor_map_add(map, (struct cbor_pair){.key = key, .value = val}));
        cbor_decref(&key);
        cbor_decref(&val);
}

/* Claims for key with a chosen ctx, encoded like the production encoder would. */
static uint8_t *claims_for(EVP_PKEY *key, const char *ctx, const char *app_id, size_t *len)
{
        unsigned char *spki = NULL;
        int n = i2d_PUBKEY(key, &spki);
        uint8_t h[32];
        cbor_item_t *ph = cbor_new_definite_array(2), *map = cbor_new_definite_map(3), *a, *d;
        uint8_t *phb;
        size_t phl;

        assert_int_equal(ck_sha256(spki, (size_t)n, h), 0);
        OPENSSL_free(spki);
        a = cbor_build_uint8(1);
        d = cbor_build_bytestring(h, 32);
        cbor_array_push(ph, a);
        cbor_array_push(ph, d);
        cbor_decref(&a);
        cbor_decref(&d);
        phb = serialize(ph, &phl);
        map_put(map, "pubkey-hash", phb, phl);
        free(phb);
        map_put(map, "appId", app_id, strlen(app_id));
        map_put(map, "ctx", ctx, strlen(ctx));
        return serialize(map, len);
}

static uint8_t *ext_for(const uint8_t *quote, size_t qlen, const uint8_t *claims, size_t clen, size_t *len)
{
        cbor_item_t *tag = cbor_new_tag(60000), *arr = cbor_new_definite_array(2);
        cbor_item_t *q = cbor_build_bytestring(quote, qlen), *c = cbor_build_bytestring(claims, clen);

        cbor_array_push(arr, q);
        cbor_array_push(arr, c);
        cbor_tag_set_item(tag, arr);
        cbor_decref(&q);
        cbor_decref(&c);
        cbor_decref(&arr);
        return serialize(tag, len);
}

static uint8_t *quote_over(const uint8_t *claims, size_t clen, size_t *qlen)
{
        uint8_t rd[64] = {0}, *q = NULL;

        assert_int_equal(ck_sha256(claims, clen, rd), 0);
        assert_int_equal(attest_tee_quote(the_tee, rd, &q, qlen, NULL), 0);
        return q;
}

static int verify(X509 *cert, const struct attest_verify_opts *o, const char *expect_in_error)
{
        _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        int r = attest_ratls_verify_cert(cert, col, o, &ev, &e);

        if (expect_in_error) {
                assert_true(r < 0);
                assert_null(ev);
                if (!strstr(ck_error_message(e, r), expect_in_error))
                        fail_msg("error \"%s\" does not mention \"%s\"", ck_error_message(e, r),
                                 expect_in_error);
        } else if (r < 0)
                fail_msg("verify: %s", ck_error_message(e, r));
        return r;
}

static void test_good_identity(void **state)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev = NULL;
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)APP_ID,
                                        .app_id_len = strlen(APP_ID),
                                        .nonce = (const uint8_t *)"n0nce",
                                        .nonce_len = 5};
        struct attest_verify_opts o = sim_opts();
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj("2.23.133.5.4.9", 1);

        assert_int_equal(attest_ratls_make_identity(the_tee, &c, 600, &key, &cert, NULL), 0);
        assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(cert, X509_get_ext_by_OBJ(cert, oid, -1))),
                         0);
        assert_int_equal(attest_ratls_verify_cert(cert, col, &o, &ev, NULL), 0);
        assert_non_null(ev->result);
        assert_true(ev->result->simulated);
        assert_int_equal(ev->result->status, ATTEST_TCB_UP_TO_DATE);
        assert_int_equal(ev->app_id_len, strlen(APP_ID));
        assert_memory_equal(ev->app_id, APP_ID, strlen(APP_ID));
        assert_int_equal(ev->nonce_len, 5);
        assert_null(ev->rtmr3_log);
        /* The certificate must match its key: X509_check_private_key. */
        assert_int_equal(X509_check_private_key(cert, key), 1);
}

static void test_intel_root_rejects_sim(void **state)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)APP_ID, .app_id_len = strlen(APP_ID)};
        struct attest_verify_opts o = {.now = time(NULL), .root = NULL};

        assert_int_equal(attest_ratls_make_identity(the_tee, &c, 600, &key, &cert, NULL), 0);
        verify(cert, &o, "RA-TLS: quote");
}

static void test_evidence_moved_to_other_key(void **state)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *other = EVP_EC_gen("P-256");
        _cleanup_(X509_freep) X509 *cert = NULL, *moved = NULL;
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)APP_ID, .app_id_len = strlen(APP_ID)};
        struct attest_verify_opts o = sim_opts();
        const ASN1_OCTET_STRING *d;

        assert_int_equal(attest_ratls_make_identity(the_tee, &c, 600, &key, &cert, NULL), 0);
        d = ext_data(cert);
        moved = cert_with_ext(other, ASN1_STRING_get0_data(d), (size_t)ASN1_STRING_length(d));
        verify(moved, &o, "pubkey-hash does not match");
}

static void test_claims_altered_after_quoting(void **state)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ uint8_t *claims = NULL, *claims2 = NULL, *quote = NULL, *ext = NULL;
        struct attest_verify_opts o = sim_opts();
        size_t cl = 0, cl2 = 0, ql = 0, el = 0;

        claims = claims_for(key, ATTEST_RATLS_CTX, APP_ID, &cl);
        quote = quote_over(claims, cl, &ql);
        /* Same key, same ctx, another image: the quote no longer covers these claims. */
        claims2 = claims_for(key, ATTEST_RATLS_CTX, "sha256:evil", &cl2);
        ext = ext_for(quote, ql, claims2, cl2, &el);
        cert = cert_with_ext(key, ext, el);
        verify(cert, &o, "REPORTDATA");

        /* Sanity: the untampered pieces do verify through the same helpers. */
        free(ext);
        X509_free(cert);
        ext = ext_for(quote, ql, claims, cl, &el);
        cert = cert_with_ext(key, ext, el);
        verify(cert, &o, NULL);
}

/* REPORTDATA is SHA-256(claims) followed by 32 zero bytes: a quote whose second half is not
 * zero is refused even though its first half matches. */
static void test_report_data_second_half(void **state)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ uint8_t *claims = NULL, *quote = NULL, *ext = NULL;
        struct attest_verify_opts o = sim_opts();
        uint8_t rd[64] = {0};
        size_t cl = 0, ql = 0, el = 0;

        claims = claims_for(key, ATTEST_RATLS_CTX, APP_ID, &cl);
        assert_int_equal(ck_sha256(claims, cl, rd), 0);
        rd[63] = 1;
        assert_int_equal(attest_tee_quote(the_tee, rd, &quote, &ql, NULL), 0);
        ext = ext_for(quote, ql, claims, cl, &el);
        cert = cert_with_ext(key, ext, el);
        verify(cert, &o, "REPORTDATA");
}

/* The certificate is one consistent object: a valid evidence extension in a certificate whose
 * signature is not by its own key, or next to a second evidence extension, is refused. */
static void test_cert_self_signature_and_single_extension(void **state)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
        _cleanup_(X509_freep) X509 *cert = NULL, *twice = NULL;
        _cleanup_free_ uint8_t *claims = NULL, *quote = NULL, *ext = NULL;
        struct attest_verify_opts o = sim_opts();
        size_t cl = 0, ql = 0, el = 0;

        claims = claims_for(key, ATTEST_RATLS_CTX, APP_ID, &cl);
        quote = quote_over(claims, cl, &ql);
        ext = ext_for(quote, ql, claims, cl, &el);
        cert = cert_with_ext(key, ext, el);
        verify(cert, &o, NULL);
        /* Same certificate, signed by another key. */
        assert_true(X509_sign(cert, other, EVP_sha256()) > 0);
        verify(cert, &o, "self-signature");

        /* Two copies of the same (valid) extension, signed by the certificate's key. */
        twice = cert_with_ext(key, ext, el);
        assert_true(X509_add_ext(twice, X509_get_ext(twice, X509_get_ext_count(twice) - 1), -1) == 1);
        assert_true(X509_sign(twice, key, EVP_sha256()) > 0);
        verify(twice, &o, "more than one evidence extension");
}

static void test_wrong_ctx(void **state)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ uint8_t *claims = NULL, *quote = NULL, *ext = NULL;
        struct attest_verify_opts o = sim_opts();
        size_t cl = 0, ql = 0, el = 0;

        claims = claims_for(key, "other-protocol/v1", APP_ID, &cl);
        quote = quote_over(claims, cl, &ql);
        ext = ext_for(quote, ql, claims, cl, &el);
        cert = cert_with_ext(key, ext, el);
        verify(cert, &o, "ctx");
}

static void test_rtmr3_log(void **state)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *key2 = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL, *cert2 = NULL;
        _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev = NULL;
        _cleanup_free_ uint8_t *log = NULL;
        _cleanup_free_ char *fake = NULL;
        struct attest_verify_opts o = sim_opts();
        uint8_t d[48];
        size_t n = 0;

        assert_int_equal(attest_tee_measure(the_tee, "image-digest", APP_ID, NULL), 0);
        assert_int_equal(attest_tee_rt_log_read(the_tee, &log, &n, NULL), 0);
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)APP_ID,
                                        .app_id_len = strlen(APP_ID),
                                        .rtmr3_log = log,
                                        .rtmr3_log_len = n};
        assert_int_equal(attest_ratls_make_identity(the_tee, &c, 600, &key, &cert, NULL), 0);
        assert_int_equal(attest_ratls_verify_cert(cert, col, &o, &ev, NULL), 0);
        assert_int_equal(ev->rtmr3_log_len, n);

        /* A log that claims another image does not replay to the quote's RTMR3. */
        assert_int_equal(attest_rt_event_digest("image-digest", "sha256:other", d), 0);
        assert_int_equal(attest_rt_event_format("image-digest", "sha256:other", d, &fake), 0);
        c.rtmr3_log = (const uint8_t *)fake;
        c.rtmr3_log_len = strlen(fake);
        assert_int_equal(attest_ratls_make_identity(the_tee, &c, 600, &key2, &cert2, NULL), 0);
        verify(cert2, &o, "does not replay");

        /* Taken from the TEE under its lock: always consistent with the quote. */
        {
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key3 = NULL;
                _cleanup_(X509_freep) X509 *cert3 = NULL;
                _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev3 = NULL;
                struct attest_ratls_claims c3 = {.app_id = (const uint8_t *)APP_ID,
                                                 .app_id_len = strlen(APP_ID),
                                                 .rtmr3_log_from_tee = true};
                assert_int_equal(attest_tee_measure(the_tee, "request-digest", APP_ID, NULL), 0);
                assert_int_equal(attest_ratls_make_identity(the_tee, &c3, 600, &key3, &cert3, NULL), 0);
                assert_int_equal(attest_ratls_verify_cert(cert3, col, &o, &ev3, NULL), 0);
                assert_non_null(ev3->rtmr3_log);
                assert_non_null(strstr((const char *)ev3->rtmr3_log, "request-digest"));
                /* Both at once is a caller error. */
                c3.rtmr3_log = log;
                c3.rtmr3_log_len = n;
                assert_int_equal(attest_ratls_make_identity(the_tee, &c3, 600, &key3, &cert3, NULL),
                                 -EINVAL);
        }
}

static void test_malformed_extension(void **state)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)APP_ID, .app_id_len = strlen(APP_ID)};
        struct attest_verify_opts o = sim_opts();
        const ASN1_OCTET_STRING *d;
        const uint8_t *ext, *q, *cl;
        size_t len, ql, cll;
        _cleanup_free_ uint8_t *copy = NULL;

        assert_int_equal(attest_ratls_make_identity(the_tee, &c, 600, &key, &cert, NULL), 0);
        d = ext_data(cert);
        ext = ASN1_STRING_get0_data(d);
        len = (size_t)ASN1_STRING_length(d);
        assert_int_equal(attest_ratls_parse_extension(ext, len, &q, &ql, &cl, &cll, NULL), 0);
        /* Every truncation fails. */
        for (size_t cut = 0; cut < len; cut += (cut < 64 ? 1 : 97))
                assert_int_equal(attest_ratls_parse_extension(ext, cut, &q, &ql, &cl, &cll, NULL), -EBADMSG);
        /* Trailing bytes fail. */
        copy = malloc(len + 1);
        memcpy(copy, ext, len);
        copy[len] = 0;
        assert_int_equal(attest_ratls_parse_extension(copy, len + 1, &q, &ql, &cl, &cll, NULL), -EBADMSG);
        /* Another tag fails. */
        copy[2] ^= 1; /* d9 ea 60 -> d9 ea 61 */
        assert_int_equal(attest_ratls_parse_extension(copy, len, &q, &ql, &cl, &cll, NULL), -EBADMSG);
        /* Indefinite-length array: [_ h'00', h'00'] */
        {
                static const uint8_t indef[] = {0xd9, 0xea, 0x60, 0x9f, 0x41, 0x00, 0x41, 0x00, 0xff};
                static const uint8_t huge[] = {0xd9, 0xea, 0x60, 0x9b, 0x7f, 0xff,
                                               0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
                static const uint8_t deep[] = {0x81, 0x81, 0x81, 0x81, 0x81, 0x81,
                                               0x81, 0x81, 0x81, 0x81, 0x00};
                assert_int_equal(
                        attest_ratls_parse_extension(indef, sizeof(indef), &q, &ql, &cl, &cll, NULL),
                        -EBADMSG);
                assert_int_equal(attest_ratls_parse_extension(huge, sizeof(huge), &q, &ql, &cl, &cll, NULL),
                                 -EBADMSG);
                assert_int_equal(attest_ratls_parse_extension(deep, sizeof(deep), &q, &ql, &cl, &cll, NULL),
                                 -EBADMSG);
        }
        /* A certificate with garbage in the extension is rejected before any quote work. */
        {
                static const uint8_t garbage[] = {0xde, 0xad, 0xbe, 0xef};
                _cleanup_(X509_freep) X509 *bad = cert_with_ext(key, garbage, sizeof(garbage));
                verify(bad, &o, "RA-TLS extension");
        }
        /* No extension at all. */
        {
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = EVP_EC_gen("P-256");
                _cleanup_(X509_freep) X509 *plain = X509_new();
                X509_set_pubkey(plain, k);
                X509_sign(plain, k, EVP_sha256());
                verify(plain, &o, "no evidence extension");
        }
}

static void test_claims_parser(void **state)
{
        struct attest_ratls_evidence ev = {0};
        uint8_t pkh[32];
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
        _cleanup_free_ uint8_t *claims = NULL;
        size_t cl = 0;

        claims = claims_for(key, ATTEST_RATLS_CTX, APP_ID, &cl);
        assert_int_equal(attest_ratls_parse_claims(claims, cl, &ev, pkh, NULL), 0);
        assert_int_equal(ev.app_id_len, strlen(APP_ID));
        free(ev.app_id);
        /* Duplicate key: {"ctx": h'', "ctx": h''} */
        {
                static const uint8_t dup[] = {0xa2, 0x63, 'c', 't', 'x', 0x40, 0x63, 'c', 't', 'x', 0x40};
                static const uint8_t dup2[] = {0xa2, 0x61, 'x', 0x40, 0x61, 'x', 0x40};
                static const uint8_t indef_map[] = {0xbf, 0x63, 'c', 't', 'x', 0x40, 0xff};
                static const uint8_t not_bstr[] = {0xa1, 0x63, 'c', 't', 'x', 0x01};
                assert_int_equal(attest_ratls_parse_claims(dup, sizeof(dup), &ev, pkh, NULL), -EBADMSG);
                assert_int_equal(attest_ratls_parse_claims(dup2, sizeof(dup2), &ev, pkh, NULL), -EBADMSG);
                assert_int_equal(attest_ratls_parse_claims(indef_map, sizeof(indef_map), &ev, pkh, NULL),
                                 -EBADMSG);
                assert_int_equal(attest_ratls_parse_claims(not_bstr, sizeof(not_bstr), &ev, pkh, NULL),
                                 -EBADMSG);
        }
        /* Missing pubkey-hash. */
        {
                static const uint8_t only_ctx[] = {0xa1, 0x63, 'c', 't', 'x', 0x50, 'c', 'o', 'n', 'k', 'e',
                                                   'r',  '/',  'r', 'a', '-', 't',  'l', 's', '/', 'v', '1'};
                _cleanup_error_ struct ck_error *e = NULL;
                assert_int_equal(attest_ratls_parse_claims(only_ctx, sizeof(only_ctx), &ev, pkh, &e),
                                 -EBADMSG);
                assert_non_null(strstr(e->msg, "pubkey-hash"));
        }
        /* Missing pubkey-hash, with appId and ctx present. */
        {
                static const uint8_t no_pkh[] = {0xa2, 0x65, 'a', 'p',  'p', 'I', 'd', 0x41, 'a', 0x63,
                                                 'c',  't',  'x', 0x50, 'c', 'o', 'n', 'k',  'e', 'r',
                                                 '/',  'r',  'a', '-',  't', 'l', 's', '/',  'v', '1'};
                _cleanup_error_ struct ck_error *e = NULL;
                assert_int_equal(attest_ratls_parse_claims(no_pkh, sizeof(no_pkh), &ev, pkh, &e), -EBADMSG);
                assert_non_null(strstr(e->msg, "pubkey-hash"));
        }
}

/* Evidence bound to a session: made for one (key, exporter value), it verifies for exactly that
 * pair, carries the task-config document, and is refused for another session's exporter value
 * (a replay), another key, or when it carries no exporter at all (the old form). */
static void test_bound_evidence(void **state)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *key2 = NULL, *old_key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL, *cert2 = NULL, *old = NULL;
        _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev = NULL;
        _cleanup_free_ uint8_t *body = NULL, *big = NULL;
        static const char config[] = "{\"version\":1}";
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)APP_ID,
                                        .app_id_len = strlen(APP_ID),
                                        .task_config = (const uint8_t *)config,
                                        .task_config_len = strlen(config)};
        struct attest_verify_opts o = sim_opts();
        uint8_t exporter[32], other[32];
        const ASN1_OCTET_STRING *d;
        const char *reason = NULL;
        size_t len = 0;

        memset(exporter, 0x5a, sizeof(exporter));
        memset(other, 0x5a, sizeof(other));
        other[31] ^= 1;
        assert_int_equal(attest_ratls_make_key_cert(600, &key, &cert, NULL), 0);
        assert_int_equal(attest_ratls_make_key_cert(600, &key2, &cert2, NULL), 0);
        /* No evidence in the session's certificate: it only names the key. */
        {
                _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj("2.23.133.5.4.9", 1);
                assert_true(X509_get_ext_by_OBJ(cert, oid, -1) < 0);
                assert_int_equal(X509_check_private_key(cert, key), 1);
        }
        assert_int_equal(attest_ratls_make_evidence(the_tee, &c, cert, exporter, &body, &len, NULL), 0);
        assert_true(len <= ATTEST_RATLS_EVIDENCE_MAX);

        assert_int_equal(
                attest_ratls_verify_evidence(body, len, cert, exporter, col, &o, &ev, &reason, NULL), 0);
        assert_true(ev->has_tls_exporter);
        assert_memory_equal(ev->tls_exporter, exporter, 32);
        assert_int_equal(ev->task_config_len, strlen(config));
        assert_memory_equal(ev->task_config, config, strlen(config));
        assert_true(ev->result->simulated);
        attest_ratls_evidence_free(TAKE_PTR(ev));

        /* Another session (a replay or a relay): its exporter value differs. */
        assert_true(attest_ratls_verify_evidence(body, len, cert, other, col, &o, &ev, &reason, NULL) < 0);
        assert_string_equal(reason, "exporter_mismatch");
        /* Another key authenticated the session. */
        assert_true(attest_ratls_verify_evidence(body, len, cert2, exporter, col, &o, &ev, &reason, NULL) <
                    0);
        assert_string_equal(reason, "binding_invalid");
        /* Untrusted root. */
        o.root = NULL;
        assert_true(attest_ratls_verify_evidence(body, len, cert, exporter, col, &o, &ev, &reason, NULL) <
                    0);
        assert_string_equal(reason, "quote_invalid");
        o = sim_opts();
        /* Truncated body. */
        assert_true(attest_ratls_verify_evidence(body, len - 1, cert, exporter, col, &o, &ev, &reason,
                                                 NULL) < 0);
        assert_string_equal(reason, "evidence_malformed");

        /* The old form: evidence from a certificate, without an exporter claim. */
        assert_int_equal(attest_ratls_make_identity(the_tee, &c, 600, &old_key, &old, NULL), 0);
        d = ext_data(old);
        assert_true(attest_ratls_verify_evidence(ASN1_STRING_get0_data(d), (size_t)ASN1_STRING_length(d),
                                                 old, exporter, col, &o, &ev, &reason, NULL) < 0);
        assert_string_equal(reason, "evidence_not_bound");

        /* Limits and arguments. */
        big = calloc(1, ATTEST_RATLS_TASK_CONFIG_MAX + 1);
        assert_non_null(big);
        c.task_config = big;
        c.task_config_len = ATTEST_RATLS_TASK_CONFIG_MAX + 1;
        free(TAKE_PTR(body));
        assert_int_equal(attest_ratls_make_evidence(the_tee, &c, cert, exporter, &body, &len, NULL),
                         -EINVAL);
        c.task_config_len = ATTEST_RATLS_TASK_CONFIG_MAX;
        assert_int_equal(attest_ratls_make_evidence(the_tee, &c, cert, exporter, &body, &len, NULL), 0);
        assert_int_equal(
                attest_ratls_verify_evidence(body, len, cert, exporter, col, &o, &ev, &reason, NULL), 0);
        assert_int_equal(ev->task_config_len, ATTEST_RATLS_TASK_CONFIG_MAX);
        c.task_config = NULL;
        c.tls_exporter = exporter; /* taken from the argument, never from the claims */
        assert_int_equal(attest_ratls_make_evidence(the_tee, &c, cert, exporter, &body, &len, NULL),
                         -EINVAL);
}

/* The claims parser knows the new keys: tls-exporter must be exactly 32 bytes. */
static void test_claims_exporter_size(void **state)
{
        /* {"pubkey-hash": ..., } is not needed to reach the size check: keys are checked in order. */
        static const uint8_t short_exporter[] = {0xa1, 0x6c, 't', 'l', 's', '-', 'e',  'x',
                                                 'p',  'o',  'r', 't', 'e', 'r', 0x41, 0x00};
        struct attest_ratls_evidence ev = {0};
        _cleanup_error_ struct ck_error *e = NULL;
        uint8_t pkh[32];

        assert_int_equal(attest_ratls_parse_claims(short_exporter, sizeof(short_exporter), &ev, pkh, &e),
                         -EBADMSG);
        assert_non_null(strstr(e->msg, "tls-exporter"));

        /* One byte too long is refused too (not cut to 32). */
        uint8_t long_exporter[ATTEST_RATLS_EXPORTER_LEN + 1] = {0};
        _cleanup_free_ uint8_t *claims = NULL;
        _cleanup_error_ struct ck_error *e2 = NULL;
        cbor_item_t *map = cbor_new_definite_map(1);
        size_t cl = 0;

        map_put(map, "tls-exporter", long_exporter, sizeof(long_exporter));
        claims = serialize(map, &cl);
        assert_int_equal(attest_ratls_parse_claims(claims, cl, &ev, pkh, &e2), -EBADMSG);
        assert_non_null(strstr(e2->msg, "tls-exporter"));
}

/* The nonce claim is bounded (1024 bytes) on its own, below the claims' overall limit. */
static void test_claims_nonce_bound(void **state)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
        static uint8_t nonce[1025];

        for (size_t n = 1024; n <= 1025; n++) {
                _cleanup_free_ uint8_t *base = NULL, *claims = NULL;
                struct attest_ratls_evidence ev = {0};
                struct cbor_load_result res;
                cbor_item_t *map, *loaded;
                size_t bl = 0, cl = 0;
                uint8_t pkh[32];
                int r;

                base = claims_for(key, ATTEST_RATLS_CTX, APP_ID, &bl);
                loaded = cbor_load(base, bl, &res);
                assert_non_null(loaded);
                map = cbor_new_definite_map(cbor_map_size(loaded) + 1);
                for (size_t i = 0; i < cbor_map_size(loaded); i++)
                        assert_true(cbor_map_add(map, cbor_map_handle(loaded)[i]));
                cbor_decref(&loaded);
                map_put(map, "nonce", nonce, n);
                claims = serialize(map, &cl);
                r = attest_ratls_parse_claims(claims, cl, &ev, pkh, NULL);
                assert_int_equal(r, n <= 1024 ? 0 : -EBADMSG);
                if (r == 0) {
                        assert_int_equal(ev.nonce_len, n);
                        free(ev.app_id);
                        free(ev.nonce);
                }
        }
}

/* A profile whose TDX module SVN is below the sim TCB Info's UpToDate level verifies as
 * OutOfDate: the sim collateral has real TCB levels, not a rubber stamp. */
static void test_sim_outdated_module(void **state)
{
        char dir[256], st[256], p[300];
        struct attest_sim_init_opts o = {.validity_days = 30,
                                         .profile_json =
                                                 "{\"tee_tcb_svn\":\"03010300000000000000000000000000\"}"};
        struct attest_tee_config cfg = {.kind = ATTEST_TEE_KIND_SIM, .sim_dir = dir, .sim_state_dir = st};
        _cleanup_(attest_tee_freep) struct attest_tee *t = NULL;
        _cleanup_(attest_collateral_freep) struct attest_collateral *c = NULL;
        _cleanup_(attest_result_freep) struct attest_result *res = NULL;
        _cleanup_(X509_freep) X509 *root = NULL;
        _cleanup_free_ uint8_t *q = NULL;
        uint8_t rd[64] = {0};
        size_t n = 0;

        snprintf(dir, sizeof(dir), "%s/sim-old", tmp);
        snprintf(st, sizeof(st), "%s/state-old", tmp);
        assert_int_equal(attest_sim_init(dir, &o, NULL), 0);
        assert_int_equal(attest_tee_open(&cfg, &t, NULL), 0);
        assert_int_equal(attest_tee_quote(t, rd, &q, &n, NULL), 0);
        snprintf(p, sizeof(p), "%s/collateral.json", dir);
        assert_int_equal(attest_collateral_load_file(p, &c, NULL), 0);
        snprintf(p, sizeof(p), "%s/root-ca.pem", dir);
        assert_int_equal(attest_root_load_file(p, &root, NULL), 0);
        struct attest_verify_opts vo = {.now = time(NULL), .root = root};
        assert_int_equal(attest_verify_quote(q, n, c, &vo, &res, NULL), 0);
        assert_int_equal(res->status, ATTEST_TCB_OUT_OF_DATE);
        assert_true(res->simulated);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good_identity),
                cmocka_unit_test(test_intel_root_rejects_sim),
                cmocka_unit_test(test_evidence_moved_to_other_key),
                cmocka_unit_test(test_report_data_second_half),
                cmocka_unit_test(test_cert_self_signature_and_single_extension),
                cmocka_unit_test(test_claims_altered_after_quoting),
                cmocka_unit_test(test_wrong_ctx),
                cmocka_unit_test(test_rtmr3_log),
                cmocka_unit_test(test_malformed_extension),
                cmocka_unit_test(test_claims_parser),
                cmocka_unit_test(test_sim_outdated_module),
                cmocka_unit_test(test_bound_evidence),
                cmocka_unit_test(test_claims_exporter_size),
                cmocka_unit_test(test_claims_nonce_bound),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
