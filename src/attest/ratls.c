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

static int spki_sha256(EVP_PKEY *key, uint8_t ret[32])
{
        unsigned char *der = NULL;
        int n = i2d_PUBKEY(key, &der);
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

int attest_ratls_make_identity(struct attest_tee *tee, const struct attest_ratls_claims *claims,
                               unsigned validity_secs, EVP_PKEY **ret_key, X509 **ret_cert,
                               struct ck_error **reterr)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_(X509_NAME_freep) X509_NAME *name = NULL;
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = NULL;
        _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *val = NULL;
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;
        _cleanup_(BN_freep) BIGNUM *serial = NULL;
        _cleanup_free_ uint8_t *cbuf = NULL, *quote = NULL, *ebuf = NULL, *log = NULL;
        _cleanup_close_ int log_lock = -1;
        struct attest_ratls_claims with_log;
        size_t log_len = 0;
        uint8_t pkh[32], rd[64] = {0};
        size_t clen = 0, qlen = 0, elen = 0;
        time_t now = time(NULL);
        int r;

        if (!tee || !claims || !claims->app_id || claims->app_id_len == 0 ||
            claims->app_id_len > RATLS_APPID_MAX || claims->nonce_len > RATLS_NONCE_MAX ||
            claims->rtmr3_log_len > ATTEST_RT_LOG_MAX ||
            claims->task_config_len > ATTEST_RATLS_TASK_CONFIG_MAX ||
            (claims->rtmr3_log_from_tee && claims->rtmr3_log))
                return ck_error_set(reterr, -EINVAL, "RA-TLS: invalid claims");
        if (validity_secs == 0 || validity_secs > 30u * 86400u)
                return ck_error_set(reterr, -EINVAL, "RA-TLS: validity must be 1 s .. 30 days");
        key = EVP_EC_gen("P-256");
        if (!key)
                return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot generate a key");
        if (spki_sha256(key, pkh) < 0)
                return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot hash the public key");
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
        if (ratls_evidence_encode(quote, qlen, cbuf, clen, &ebuf, &elen) < 0)
                return ck_error_set(reterr, -ENOMEM, "RA-TLS: cannot encode the evidence");

        cert = X509_new();
        name = X509_NAME_new();
        serial = BN_new();
        oid = OBJ_txt2obj(RATLS_EXT_OID, 1);
        val = ASN1_OCTET_STRING_new();
        if (!cert || !name || !serial || !oid || !val)
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
            cert_add_ext_conf(cert, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
            ASN1_OCTET_STRING_set(val, ebuf, (int)elen) != 1 ||
            !(ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0 /* non-critical */, val)) ||
            X509_add_ext(cert, ext, -1) != 1)
                return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot build the certificate");
        if (X509_sign(cert, key, EVP_sha256()) <= 0)
                return ck_ssl_error(reterr, -EIO, "RA-TLS: cannot sign the certificate");
        *ret_key = TAKE_PTR(key);
        *ret_cert = TAKE_PTR(cert);
        return 0;
}

/* ---- verifying ---- */

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
        uint8_t pkh[32], cert_pkh[32], want[32], zero[32] = {0};
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
        if (spki_sha256(key, cert_pkh) < 0)
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
