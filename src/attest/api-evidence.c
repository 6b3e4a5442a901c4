/* The attested control API's evidence (api-evidence.h): conkerd's RA-TLS server identity, the
 * nonce- and connection-bound evidence it gives on request, and the client's verification of
 * both. The claims format and its encoder are RA-TLS's (ratls-cbor.c); the verifier rebuilds
 * the exact claims it expects and compares bytes instead of parsing what the peer sent. */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api-evidence.h"
#include "ratls-internal.h"
#include "ssl.h"

_Static_assert(ATTEST_API_EKM_LEN == ATTEST_RATLS_EXPORTER_LEN, "the exporter claim has one size");

static int key_spki_sha256(EVP_PKEY *key, uint8_t ret[32])
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

/* The claims an API identity (nonce == NULL) or fresh evidence carries for a key. */
static int expected_claims(EVP_PKEY *key, const uint8_t *nonce, size_t nonce_len, const uint8_t *ekm,
                           uint8_t **ret, size_t *ret_len, struct ck_error **reterr)
{
        uint8_t pkh[32];
        struct attest_ratls_claims c = {
                .app_id = (const uint8_t *)ATTEST_API_APP_ID,
                .app_id_len = strlen(ATTEST_API_APP_ID),
                .ctx = ATTEST_API_CTX,
        };

        if (nonce) {
                if (nonce_len < ATTEST_API_NONCE_MIN || nonce_len > ATTEST_API_NONCE_MAX || !ekm)
                        return ck_error_set(reterr, -EINVAL,
                                            "API attestation: the nonce must be %u..%u bytes",
                                            ATTEST_API_NONCE_MIN, ATTEST_API_NONCE_MAX);
                c.nonce = nonce;
                c.nonce_len = nonce_len;
                c.tls_exporter = ekm;
        }
        if (key_spki_sha256(key, pkh) < 0)
                return ck_ssl_error(reterr, -EIO, "API attestation: cannot hash the certificate key");
        if (ratls_claims_encode(pkh, &c, ret, ret_len) < 0)
                return ck_error_set(reterr, -ENOMEM, "API attestation: cannot encode the claims");
        return 0;
}

int attest_api_identity_make(struct attest_tee *tee, EVP_PKEY **ret_key, X509 **ret_cert,
                             struct ck_error **reterr)
{
        struct attest_ratls_claims c = {
                .app_id = (const uint8_t *)ATTEST_API_APP_ID,
                .app_id_len = strlen(ATTEST_API_APP_ID),
                .ctx = ATTEST_API_CTX,
        };

        return attest_ratls_make_identity(tee, &c, ATTEST_API_CERT_VALIDITY, ret_key, ret_cert, reterr);
}

int attest_api_evidence_make(struct attest_tee *tee, X509 *cert, const uint8_t *nonce, size_t nonce_len,
                             const uint8_t ekm[ATTEST_API_EKM_LEN], uint8_t **ret, size_t *ret_len,
                             struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *claims = NULL, *quote = NULL, *ev = NULL;
        size_t clen = 0, qlen = 0, elen = 0;
        uint8_t rd[64] = {0};
        EVP_PKEY *key; /* borrowed from cert */
        int r;

        if (!tee || !cert || !nonce || !ekm)
                return ck_error_set(reterr, -EINVAL, "API attestation: missing TEE, certificate or nonce");
        key = X509_get0_pubkey(cert);
        r = expected_claims(key, nonce, nonce_len, ekm, &claims, &clen, reterr);
        if (r < 0)
                return r;
        if (ck_sha256(claims, clen, rd) < 0)
                return ck_error_set(reterr, -EIO, "SHA-256 failed");
        r = attest_tee_quote(tee, rd, &quote, &qlen, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "API attestation: quote");
        if (ratls_evidence_encode(quote, qlen, claims, clen, &ev, &elen) < 0)
                return ck_error_set(reterr, -ENOMEM, "API attestation: cannot encode the evidence");
        *ret = TAKE_PTR(ev);
        *ret_len = elen;
        return 0;
}

/* ---- verifying ---- */

/* evidence = 60000([quote, claims]) whose claims must be want; then the quote and REPORTDATA. */
static int evidence_check(const uint8_t *evidence, size_t len, const uint8_t *want, size_t want_len,
                          const char *what, const char *bound_to, attest_api_collateral_fn get_collateral,
                          void *userdata, const struct attest_verify_opts *opts, struct attest_result **ret,
                          struct ck_error **reterr)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *col = NULL;
        _cleanup_(attest_result_freep) struct attest_result *res = NULL;
        const uint8_t *quote = NULL, *claims = NULL;
        size_t qlen = 0, clen = 0;
        uint8_t rd[32], zero[32] = {0};
        int r;

        r = attest_ratls_parse_extension(evidence, len, &quote, &qlen, &claims, &clen, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, -EKEYREJECTED, "%s", what);
        if (clen != want_len || memcmp(claims, want, want_len) != 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "%s: the claims are not conkerd's API claims (ctx \"" ATTEST_API_CTX
                                    "\") for %s",
                                    what, bound_to);
        r = get_collateral(userdata, quote, qlen, &col, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "%s: collateral", what);
        r = attest_verify_quote(quote, qlen, col, opts, &res, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "%s: quote", what);
        if (ck_sha256(claims, clen, rd) < 0)
                return ck_error_set(reterr, -EIO, "SHA-256 failed");
        if (CRYPTO_memcmp(res->m.report_data, rd, 32) != 0 || memcmp(res->m.report_data + 32, zero, 32) != 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "%s: REPORTDATA is not SHA-256(claims) || 0^32 (the quote is not over "
                                    "these claims)",
                                    what);
        *ret = TAKE_PTR(res);
        return 0;
}

int attest_api_cert_verify(X509 *cert, attest_api_collateral_fn get_collateral, void *userdata,
                           const struct attest_verify_opts *opts, struct attest_result **ret,
                           struct ck_error **reterr)
{
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj(RATLS_EXT_OID, 1);
        _cleanup_free_ uint8_t *want = NULL;
        const ASN1_OCTET_STRING *data;
        EVP_PKEY *key;
        size_t want_len = 0;
        int idx, r;

        if (!cert || !get_collateral || !opts || !oid)
                return ck_error_set(reterr, -EINVAL, "API attestation: missing certificate or options");
        idx = X509_get_ext_by_OBJ(cert, oid, -1);
        if (idx < 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "server certificate: no attestation evidence (is conkerd running with "
                                    "tls-cert = auto?)");
        if (X509_get_ext_by_OBJ(cert, oid, idx) >= 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "server certificate: more than one evidence extension");
        key = X509_get0_pubkey(cert);
        if (!key || X509_verify(cert, key) != 1)
                return ck_ssl_error(reterr, -EKEYREJECTED, "server certificate: self-signature is invalid");
        r = expected_claims(key, NULL, 0, NULL, &want, &want_len, reterr);
        if (r < 0)
                return r;
        data = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
        return evidence_check(ASN1_STRING_get0_data(data), (size_t)ASN1_STRING_length(data), want, want_len,
                              "server certificate", "this certificate's key", get_collateral, userdata, opts,
                              ret, reterr);
}

int attest_api_evidence_verify(const uint8_t *evidence, size_t len, X509 *cert, const uint8_t *nonce,
                               size_t nonce_len, const uint8_t ekm[ATTEST_API_EKM_LEN],
                               attest_api_collateral_fn get_collateral, void *userdata,
                               const struct attest_verify_opts *opts, struct attest_result **ret,
                               struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *want = NULL;
        size_t want_len = 0;
        int r;

        if (!evidence || !cert || !nonce || !ekm || !get_collateral || !opts)
                return ck_error_set(reterr, -EINVAL,
                                    "API attestation: missing evidence, certificate or nonce");
        if (len > ATTEST_API_EVIDENCE_MAX)
                return ck_error_set(reterr, -EFBIG, "fresh evidence: %zu bytes exceeds %u", len,
                                    ATTEST_API_EVIDENCE_MAX);
        r = expected_claims(X509_get0_pubkey(cert), nonce, nonce_len, ekm, &want, &want_len, reterr);
        if (r < 0)
                return r;
        return evidence_check(evidence, len, want, want_len, "fresh evidence",
                              "this certificate's key, this nonce and this TLS connection", get_collateral,
                              userdata, opts, ret, reterr);
}
