/* RA-TLS certificates (ratls.h): the attesting side makes a fresh key and a self-signed
 * certificate whose TCG DICE tagged-evidence extension carries a quote over the claims; the
 * verifying side takes such a certificate apart and checks every binding, failing closed.
 * The CBOR encoding and parsing live in ratls-cbor.c. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "eventlog.h"
#include "ratls-internal.h"
#include "ssl.h"
#include "tee-internal.h"

int attest_key_spki_sha256(EVP_PKEY *key, uint8_t ret[32])
{
        unsigned char *der = NULL;
        int n = key ? i2d_PUBKEY(key, &der) : -1;
        int r;

        if (n <= 0)
                return -EIO;
        r = ck_sha256(der, (size_t)n, ret);
        OPENSSL_free(der);
        return r;
}

/* Encodes the certificate's parsed SubjectPublicKeyInfo directly: without a round trip through
 * an EVP_PKEY and the provider encoders, which are slow in OpenSSL 3. */
int attest_cert_spki_sha256(X509 *cert, uint8_t ret[32])
{
        unsigned char *der = NULL;
        int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
        int r;

        if (n <= 0)
                return -EIO;
        r = ck_sha256(der, (size_t)n, ret);
        OPENSSL_free(der);
        return r;
}

static int cert_add_ext_conf(X509 *cert, int nid, const char *value)
{
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;
        X509V3_CTX ctx;

        X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        return ext && X509_add_ext(cert, ext, -1) == 1 ? 0 : -EIO;
}

static bool claims_valid(const struct attest_ratls_claims *c)
{
        return c && c->app_id && c->app_id_len > 0 && c->app_id_len <= RATLS_APPID_MAX &&
               c->nonce_len <= RATLS_NONCE_MAX && c->rtmr3_log_len <= ATTEST_RT_LOG_MAX &&
               !(c->rtmr3_log_from_tee && c->rtmr3_log) &&
               c->task_config_len <= ATTEST_RATLS_TASK_CONFIG_MAX &&
               (c->task_config || c->task_config_len == 0);
}

/* Claims for the key hashing to pkh, a quote over them, and the tagged evidence. */
static int make_evidence(struct attest_tee *tee, const struct attest_ratls_claims *claims,
                         const uint8_t pkh[32], uint8_t **ret, size_t *ret_len, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *cbuf = NULL, *quote = NULL, *log = NULL;
        _cleanup_close_ int log_lock = -1;
        struct attest_ratls_claims with_log;
        size_t log_len = 0, clen = 0, qlen = 0;
        uint8_t rd[64] = {0};
        int r;

        if (claims->rtmr3_log_from_tee) {
                r = attest_tee_rt_log_lock_read(tee, &log_lock, &log, &log_len, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "RA-TLS");
                with_log = *claims;
                with_log.rtmr3_log = log;
                with_log.rtmr3_log_len = log_len;
                claims = &with_log;
        }
        if (ratls_claims_encode(pkh, claims, &cbuf, &clen) < 0)
                return ck_error_set(reterr, -ENOMEM, "RA-TLS: cannot encode the claims");
        /* REPORTDATA = SHA-256(claims) || 0^32 */
        if (ck_sha256(cbuf, clen, rd) < 0)
                return ck_error_set(reterr, -EIO, "SHA-256 failed");
        r = attest_tee_quote(tee, rd, &quote, &qlen, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "RA-TLS: quote");
        log_lock = safe_close(log_lock); /* the quote now holds RTMR3: measuring may go on */
        if (ratls_evidence_encode(quote, qlen, cbuf, clen, ret, ret_len) < 0)
                return ck_error_set(reterr, -ENOMEM, "RA-TLS: cannot encode the evidence");
        return 0;
}

/* A fresh P-256 key and its self-signed certificate, with the evidence extension when ebuf. */
static int make_cert(unsigned validity_secs, const uint8_t *ebuf, size_t elen, EVP_PKEY *key, X509 **ret,
                     struct ck_error **reterr)
{
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_(X509_NAME_freep) X509_NAME *name = NULL;
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = NULL;
        _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *val = NULL;
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;
        _cleanup_(BN_freep) BIGNUM *serial = NULL;
        time_t now = time(NULL);

        cert = X509_new();
        name = X509_NAME_new();
        serial = BN_new();
        if (!cert || !name || !serial)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"Conker RA-TLS", -1,
                                       -1, 0) != 1 ||
            X509_set_version(cert, X509_VERSION_3) != 1 ||
            BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
            !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) ||
            X509_set_subject_name(cert, name) != 1 || X509_set_issuer_name(cert, name) != 1 ||
            !ASN1_TIME_set(X509_getm_notBefore(cert), now - 3600) ||
            !ASN1_TIME_set(X509_getm_notAfter(cert), now + (time_t)validity_secs) ||
            X509_set_pubkey(cert, key) != 1 ||
            cert_add_ext_conf(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
            cert_add_ext_conf(cert, NID_key_usage, "critical,digitalSignature") < 0 ||
            cert_add_ext_conf(cert, NID_ext_key_usage, "serverAuth,clientAuth") < 0)
                return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot build the certificate");
        if (ebuf) {
                oid = OBJ_txt2obj(RATLS_EXT_OID, 1);
                val = ASN1_OCTET_STRING_new();
                if (!oid || !val)
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
                if (ASN1_OCTET_STRING_set(val, ebuf, (int)elen) != 1 ||
                    !(ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0 /* non-critical */, val)) ||
                    X509_add_ext(cert, ext, -1) != 1)
                        return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot add the evidence extension");
        }
        if (X509_sign(cert, key, EVP_sha256()) <= 0)
                return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot sign the certificate");
        *ret = TAKE_PTR(cert);
        return 0;
}

int attest_ratls_make_identity(struct attest_tee *tee, const struct attest_ratls_claims *claims,
                               unsigned validity_secs, EVP_PKEY **ret_key, X509 **ret_cert,
                               struct ck_error **reterr)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ uint8_t *ebuf = NULL;
        uint8_t pkh[32];
        size_t elen = 0;
        int r;

        if (!tee || !claims_valid(claims))
                return ck_error_set(reterr, -EINVAL, "RA-TLS: invalid claims");
        if (validity_secs == 0 || validity_secs > 30u * 86400u)
                return ck_error_set(reterr, -EINVAL, "RA-TLS: validity must be 1 s .. 30 days");
        key = EVP_EC_gen("P-256");
        if (!key)
                return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot generate a key");
        if (attest_key_spki_sha256(key, pkh) < 0)
                return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot hash the public key");
        r = make_evidence(tee, claims, pkh, &ebuf, &elen, reterr);
        if (r < 0)
                return r;
        r = make_cert(validity_secs, ebuf, elen, key, &cert, reterr);
        if (r < 0)
                return r;
        *ret_key = TAKE_PTR(key);
        *ret_cert = TAKE_PTR(cert);
        return 0;
}

int attest_ratls_make_key_cert(unsigned validity_secs, EVP_PKEY **ret_key, X509 **ret_cert,
                               struct ck_error **reterr)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        int r;

        if (validity_secs == 0 || validity_secs > 30u * 86400u)
                return ck_error_set(reterr, -EINVAL, "RA-TLS: validity must be 1 s .. 30 days");
        key = EVP_EC_gen("P-256");
        if (!key)
                return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot generate a key");
        r = make_cert(validity_secs, NULL, 0, key, &cert, reterr);
        if (r < 0)
                return r;
        *ret_key = TAKE_PTR(key);
        *ret_cert = TAKE_PTR(cert);
        return 0;
}

int attest_ratls_make_evidence(struct attest_tee *tee, const struct attest_ratls_claims *claims, X509 *cert,
                               const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN], uint8_t **ret,
                               size_t *ret_len, struct ck_error **reterr)
{
        struct attest_ratls_claims c;
        uint8_t pkh[32];

        if (!tee || !cert || !exporter || !claims_valid(claims) || claims->tls_exporter)
                return ck_error_set(reterr, -EINVAL, "RA-TLS: invalid claims");
        if (attest_cert_spki_sha256(cert, pkh) < 0)
                return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot hash the public key");
        c = *claims;
        c.tls_exporter = exporter;
        return make_evidence(tee, &c, pkh, ret, ret_len, reterr);
}

/* ---- verifying ---- */

/* REPORTDATA = SHA-256(claims) || 0^32, the claims parse, pubkey-hash names key, and a
 * present RTMR3 log replays to the quote's RTMR3. */
static int check_claims(const struct attest_result *res, const uint8_t *claims, size_t clen, X509 *cert,
                        struct attest_ratls_evidence **ret, struct ck_error **reterr)
{
        _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev = NULL;
        uint8_t pkh[32], cert_pkh[32], want[32], zero[32] = {0};
        int r;

        if (ck_sha256(claims, clen, want) < 0)
                return ck_error_set(reterr, -EIO, "SHA-256 failed");
        if (CRYPTO_memcmp(res->m.report_data, want, 32) != 0 ||
            memcmp(res->m.report_data + 32, zero, 32) != 0)
                return ck_error_set(
                        reterr, -EKEYREJECTED,
                        "RA-TLS: REPORTDATA is not SHA-256(claims) || 0^32 (claims were altered)");

        ev = calloc(1, sizeof(*ev));
        if (!ev)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        r = attest_ratls_parse_claims(claims, clen, ev, pkh, reterr);
        if (r < 0)
                return r;
        if (attest_cert_spki_sha256(cert, cert_pkh) < 0)
                return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot hash the certificate key");
        if (CRYPTO_memcmp(pkh, cert_pkh, 32) != 0)
                return ck_error_set(
                        reterr, -EKEYREJECTED,
                        "RA-TLS: pubkey-hash does not match the certificate's key (evidence replayed "
                        "into another certificate)");
        if (ev->rtmr3_log) {
                _cleanup_(attest_rt_log_clear) struct attest_rt_log log = {0};
                uint8_t rtmr3[48];
                r = attest_rt_log_parse(ev->rtmr3_log, ev->rtmr3_log_len, &log, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, -EKEYREJECTED, "RA-TLS: rtmr3-log");
                r = attest_rt_log_replay(&log, rtmr3);
                if (r < 0)
                        return ck_error_set(reterr, r, "RA-TLS: cannot replay the RTMR3 log");
                if (memcmp(rtmr3, res->m.rtmr[3], 48) != 0)
                        return ck_error_set(reterr, -EKEYREJECTED,
                                            "RA-TLS: the RTMR3 log does not replay to the quote's RTMR3");
        }
        *ret = TAKE_PTR(ev);
        return 0;
}

int attest_ratls_verify_cert(X509 *cert, const struct attest_collateral *col,
                             const struct attest_verify_opts *opts, struct attest_ratls_evidence **ret,
                             struct ck_error **reterr)
{
        _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev = NULL;
        _cleanup_(attest_result_freep) struct attest_result *res = NULL;
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj(RATLS_EXT_OID, 1);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        const ASN1_OCTET_STRING *data;
        const uint8_t *quote, *claims;
        size_t qlen = 0, clen = 0;
        int idx, r;

        if (!cert || !col || !opts || !oid)
                return ck_error_set(reterr, -EINVAL, "RA-TLS: missing certificate, collateral or options");
        idx = X509_get_ext_by_OBJ(cert, oid, -1);
        if (idx < 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "RA-TLS: the certificate carries no evidence extension");
        if (X509_get_ext_by_OBJ(cert, oid, idx) >= 0)
                return ck_error_set(reterr, -EKEYREJECTED, "RA-TLS: more than one evidence extension");
        data = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
        r = attest_ratls_parse_extension(ASN1_STRING_get0_data(data), (size_t)ASN1_STRING_length(data),
                                         &quote, &qlen, &claims, &clen, reterr);
        if (r < 0)
                return r;

        /* The key in the certificate must have signed it: the TLS handshake proves possession
         * for the connection, this keeps a certificate a consistent object on its own. */
        key = X509_get_pubkey(cert);
        if (!key || X509_verify(cert, key) != 1)
                return ck_ssl_error(reterr, -EKEYREJECTED, "RA-TLS: certificate self-signature is invalid");

        r = attest_verify_quote(quote, qlen, col, opts, &res, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "RA-TLS: quote");
        r = check_claims(res, claims, clen, cert, &ev, reterr);
        if (r < 0)
                return r;
        ev->result = TAKE_PTR(res);
        *ret = TAKE_PTR(ev);
        return 0;
}

int attest_ratls_parse_evidence(const uint8_t *buf, size_t len, const uint8_t **ret_quote,
                                size_t *ret_quote_len, const uint8_t **ret_claims, size_t *ret_claims_len,
                                struct ck_error **reterr)
{
        /* The body and the extension value are the same CBOR item. */
        return attest_ratls_parse_extension(buf, len, ret_quote, ret_quote_len, ret_claims, ret_claims_len,
                                            reterr);
}

static void set_reason(const char **ret_reason, const char *reason)
{
        if (ret_reason)
                *ret_reason = reason;
}

int attest_ratls_check_binding(const struct attest_result *res, const uint8_t *claims, size_t claims_len,
                               X509 *peer_cert, const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN],
                               struct attest_ratls_evidence **ret, const char **ret_reason,
                               struct ck_error **reterr)
{
        _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev = NULL;
        int r;

        set_reason(ret_reason, "binding_invalid");
        if (!res || !claims || !peer_cert || !exporter)
                return ck_error_set(reterr, -EINVAL,
                                    "RA-TLS: missing result, claims, certificate or exporter");
        /* The handshake proved possession of this certificate's key for this session; the
         * certificate's own signature adds nothing here. */
        r = check_claims(res, claims, claims_len, peer_cert, &ev, reterr);
        if (r < 0)
                return r;
        if (!ev->has_tls_exporter) {
                set_reason(ret_reason, "evidence_not_bound");
                return ck_error_set(
                        reterr, -EKEYREJECTED,
                        "RA-TLS: the evidence has no \"tls-exporter\" claim (not bound to a session)");
        }
        if (CRYPTO_memcmp(ev->tls_exporter, exporter, ATTEST_RATLS_EXPORTER_LEN) != 0) {
                set_reason(ret_reason, "exporter_mismatch");
                return ck_error_set(
                        reterr, -EKEYREJECTED,
                        "RA-TLS: \"tls-exporter\" is not this session's exporter value (evidence "
                        "made for another TLS session: replayed or relayed)");
        }
        *ret = TAKE_PTR(ev);
        return 0;
}

int attest_ratls_verify_evidence(const uint8_t *buf, size_t len, X509 *peer_cert,
                                 const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN],
                                 const struct attest_collateral *col, const struct attest_verify_opts *opts,
                                 struct attest_ratls_evidence **ret, const char **ret_reason,
                                 struct ck_error **reterr)
{
        _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev = NULL;
        _cleanup_(attest_result_freep) struct attest_result *res = NULL;
        const uint8_t *quote, *claims;
        size_t qlen = 0, clen = 0;
        int r;

        set_reason(ret_reason, "evidence_malformed");
        if (!buf || !col || !opts)
                return ck_error_set(reterr, -EINVAL, "RA-TLS: missing evidence, collateral or options");
        r = attest_ratls_parse_evidence(buf, len, &quote, &qlen, &claims, &clen, reterr);
        if (r < 0)
                return r;
        set_reason(ret_reason, "quote_invalid");
        r = attest_verify_quote(quote, qlen, col, opts, &res, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "RA-TLS: quote");
        r = attest_ratls_check_binding(res, claims, clen, peer_cert, exporter, &ev, ret_reason, reterr);
        if (r < 0)
                return r;
        ev->result = TAKE_PTR(res);
        *ret = TAKE_PTR(ev);
        return 0;
}

void attest_ratls_evidence_free(struct attest_ratls_evidence *e)
{
        if (!e)
                return;
        attest_result_free(e->result);
        free(e->app_id);
        free(e->nonce);
        free(e->rtmr3_log);
        free(e->task_config);
        free(e);
}
