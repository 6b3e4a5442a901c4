/* The attested control API (docs/API.md "Attested TLS"): conkerd's RA-TLS server identity and
 * the fresh, connection-bound evidence a client asks for before it sends a credential.
 *
 * Server identity (`tls-cert = auto`): an RA-TLS certificate (ratls.h) made at start with a
 * fresh P-256 key; its claims are exactly
 *   {"pubkey-hash": [1, SHA-256(SPKI)], "appId": "conkerd-api", "ctx": "conker/api/v1"}
 * (no nonce, no RTMR3 log). The ctx differs from the KMS client's "conker/ra-tls/v1", so a
 * broker never accepts the API certificate as a TD client and `conker --attest` never accepts
 * a task's KMS client certificate as conkerd.
 *
 * Fresh evidence (GET /sw/api/v1/pub/attest?nonce=HEX): the same tag-60000 evidence
 * [bstr quote, bstr claims] with claims
 *   {"pubkey-hash": <the server certificate's key>, "appId": "conkerd-api",
 *    "ctx": "conker/api/v1", "nonce": client nonce, "tls-exporter": EKM}
 * where EKM = TLS exporter (RFC 8446 §7.5, RFC 5705) of the connection the request came on,
 * label ATTEST_API_EXPORTER_LABEL, no context, 32 bytes. REPORTDATA = SHA-256(claims) || 0^32.
 * A verifier builds the claims it expects with this module's encoder and compares bytes, so
 * any other content, key order or encoding is refused.
 *
 * Whoever holds a recorded certificate (even with its private key) cannot answer a new nonce
 * for a new TLS session without a live TD of the same measurements that holds that key. */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "collateral.h"
#include "error.h"
#include "tee.h"
#include "verify.h"

#define ATTEST_API_CTX            "conker/api/v1"
#define ATTEST_API_APP_ID         "conkerd-api"
#define ATTEST_API_EXPORTER_LABEL "EXPORTER-conker-api-v1"
#define ATTEST_API_EKM_LEN        32u
#define ATTEST_API_NONCE_MIN      16u
#define ATTEST_API_NONCE_MAX      64u
/* The server certificate's validity. Its dates are signed by its own key and prove nothing;
 * a verifier's freshness comes from the nonce. The cap is RA-TLS's (30 days). */
#define ATTEST_API_CERT_VALIDITY (30u * 86400u)
/* Largest evidence (a quote plus the small claims map) a client accepts. */
#define ATTEST_API_EVIDENCE_MAX (64u << 10)

/* conkerd's API identity: a fresh key and its RA-TLS certificate, quoted by tee. */
int attest_api_identity_make(struct attest_tee *tee, EVP_PKEY **ret_key, X509 **ret_cert,
                             struct ck_error **reterr);

/* Fresh evidence for a client's nonce (ATTEST_API_NONCE_MIN..MAX bytes) on the connection whose
 * exporter is ekm, bound to the key of cert (the server's own certificate). *ret is malloc'd. */
int attest_api_evidence_make(struct attest_tee *tee, X509 *cert, const uint8_t *nonce, size_t nonce_len,
                             const uint8_t ekm[ATTEST_API_EKM_LEN], uint8_t **ret, size_t *ret_len,
                             struct ck_error **reterr);

/* Collateral for one quote (a file, or fetched by the quote's FMSPC): the verifier asks for it
 * once it holds a well-formed evidence and before it verifies the quote. */
typedef int (*attest_api_collateral_fn)(void *userdata, const uint8_t *quote, size_t quote_len,
                                        struct attest_collateral **ret, struct ck_error **reterr);

/* Verifies the server certificate of a conkerd with `tls-cert = auto`: one evidence extension,
 * a valid self-signature, claims byte-identical to those of an API identity for the
 * certificate's key, the quote (DCAP, at opts->now) and REPORTDATA. The result (measurements,
 * TCB status) is the caller's to judge. Fails closed with a reason. */
int attest_api_cert_verify(X509 *cert, attest_api_collateral_fn get_collateral, void *userdata,
                           const struct attest_verify_opts *opts, struct attest_result **ret,
                           struct ck_error **reterr);

/* Verifies fresh evidence (len <= ATTEST_API_EVIDENCE_MAX) against the certificate seen on the
 * connection, the nonce the client sent and the client's own exporter value for that
 * connection. */
int attest_api_evidence_verify(const uint8_t *evidence, size_t len, X509 *cert, const uint8_t *nonce,
                               size_t nonce_len, const uint8_t ekm[ATTEST_API_EKM_LEN],
                               attest_api_collateral_fn get_collateral, void *userdata,
                               const struct attest_verify_opts *opts, struct attest_result **ret,
                               struct ck_error **reterr);
