/* RA-TLS: X.509 certificates that carry a quote in the TCG DICE tagged-evidence extension
 * (OID 2.23.133.5.4.9, non-critical; CBOR tag 60000 over [bstr quote, bstr claims]).
 *
 * Contract header (owned by the attest module). claims is a definite-length CBOR map with text
 * keys, in this order: "pubkey-hash" -> bstr(CBOR [1, SHA-256(SPKI DER)]), "appId" -> bstr,
 * "ctx" -> bstr("conker/ra-tls/v1"), and optionally "nonce" -> bstr, "rtmr3-log" -> bstr
 * (the runtime event log, so the verifier can replay RTMR3) and "task-config" -> bstr (the
 * canonical task-config document whose SHA-256 is a "task-config" event of that log).
 * REPORTDATA = SHA-256(claims bytes as transported) || 32 zero bytes. */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collateral.h"
#include "error.h"
#include "tee.h"
#include "verify.h"

#define ATTEST_RATLS_CTX "conker/ra-tls/v1"
/* Largest task-config claim (the document is at most 64 KiB). */
#define ATTEST_RATLS_TASK_CONFIG_MAX (64u << 10)

struct attest_ratls_claims {
        const uint8_t *app_id; /* the image ID (config digest) as text "sha256:<hex>" */
        size_t app_id_len;
        const uint8_t *nonce; /* optional */
        size_t nonce_len;
        const uint8_t *rtmr3_log; /* optional: the RTMR3 runtime log (eventlog.h format) */
        size_t rtmr3_log_len;
        /* Instead of rtmr3_log: include the TEE's current runtime log, read under a lock held
         * until the quote is made, so that the log always replays to the quote's RTMR3 even
         * while other tasks measure. */
        bool rtmr3_log_from_tee;
        const uint8_t *task_config; /* optional: the task-config document */
        size_t task_config_len;
};

/* Makes a fresh P-256 key and a self-signed certificate (valid from now-1h for validity_secs)
 * whose extension carries a quote from tee over the claims. */
int attest_ratls_make_identity(struct attest_tee *tee, const struct attest_ratls_claims *claims,
                               unsigned validity_secs, EVP_PKEY **ret_key, X509 **ret_cert,
                               struct ck_error **reterr);

struct attest_ratls_evidence {
        struct attest_result *result; /* quote verification result (measurements, status) */
        uint8_t *app_id;
        size_t app_id_len;
        uint8_t *nonce;
        size_t nonce_len;
        uint8_t *rtmr3_log;
        size_t rtmr3_log_len;
        uint8_t *task_config; /* NULL when the claim is absent */
        size_t task_config_len;
};

/* Verifies a peer's RA-TLS certificate: extracts the evidence, verifies the quote with the
 * collateral, checks REPORTDATA = SHA-256(claims) || 0^32, the ctx claim, and that pubkey-hash
 * matches the certificate's own key; when an RTMR3 log is present it must replay to the
 * quote's RTMR3. Fails closed with a reason on any doubt. */
int attest_ratls_verify_cert(X509 *cert, const struct attest_collateral *col,
                             const struct attest_verify_opts *opts, struct attest_ratls_evidence **ret,
                             struct ck_error **reterr);
void attest_ratls_evidence_free(struct attest_ratls_evidence *e);
DEFINE_POINTER_CLEANUP(struct attest_ratls_evidence, attest_ratls_evidence_free, attest_ratls_evidence_free)

/* CBOR helpers exposed for fuzzing: parse the extension value / the claims map. */
int attest_ratls_parse_extension(const uint8_t *buf, size_t len, const uint8_t **ret_quote,
                                 size_t *ret_quote_len, const uint8_t **ret_claims, size_t *ret_claims_len,
                                 struct ck_error **reterr);
int attest_ratls_parse_claims(const uint8_t *buf, size_t len, struct attest_ratls_evidence *ret,
                              uint8_t ret_pubkey_hash[32], struct ck_error **reterr);
