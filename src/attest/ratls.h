/* RA-TLS: TCG DICE tagged evidence (CBOR tag 60000 over [bstr quote, bstr claims]), carried
 * either in an X.509 extension (OID 2.23.133.5.4.9, non-critical: a broker's server certificate,
 * the old client form) or, bound to one TLS session, as the body of `POST /v1/secret`
 * (docs/protocol.md).
 *
 * Contract header (owned by the attest module). claims is a definite-length CBOR map with text
 * keys, in this order: "pubkey-hash" -> bstr(CBOR [1, SHA-256(SPKI DER)]), "appId" -> bstr,
 * "ctx" -> bstr("conker/ra-tls/v1"; another protocol reusing the format names itself, e.g. the
 * attested API's "conker/api/v1", api-evidence.h), and optionally "nonce" -> bstr, "tls-exporter" ->
 * bstr(32) (the session's exporter value, see ATTEST_RATLS_EXPORTER_LABEL), "task-config" -> bstr (the
 * canonical task-config document, at most 64 KiB) and "rtmr3-log" -> bstr (the runtime event
 * log, so the verifier can replay RTMR3).
 * REPORTDATA = SHA-256(claims bytes as transported) || 32 zero bytes. */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collateral.h"
#include "error.h"
#include "eventlog.h"
#include "tee.h"
#include "verify.h"

#define ATTEST_RATLS_CTX "conker/ra-tls/v1"
/* RFC 8446 §7.5 exporter: label, no context, 32 bytes. Both ends of the broker protocol compute
 * it after the handshake; the evidence's "tls-exporter" claim must equal it. */
#define ATTEST_RATLS_EXPORTER_LABEL  "EXPORTER-conker-evidence-v1"
#define ATTEST_RATLS_EXPORTER_LEN    32u
#define ATTEST_RATLS_TASK_CONFIG_MAX (64u << 10)
/* The largest tagged evidence accepted anywhere (quote, claims with the largest RTMR3 log and
 * task-config, CBOR framing): the bound on a POST body and, with room for the rest of a
 * certificate, on a peer certificate list that may carry evidence. */
#define ATTEST_RATLS_EVIDENCE_MAX                                                                           \
        ((64u << 10) + ATTEST_RT_LOG_MAX + ATTEST_RATLS_TASK_CONFIG_MAX + (16u << 10) + 64u)

struct attest_ratls_claims {
        const uint8_t *app_id; /* the image ID (config digest) as text "sha256:<hex>" */
        size_t app_id_len;
        const uint8_t *nonce; /* optional */
        size_t nonce_len;
        const uint8_t *rtmr3_log; /* optional: the RTMR3 runtime log (eventlog.h format) */
        size_t rtmr3_log_len;
        const uint8_t *task_config; /* optional: the canonical task-config document */
        size_t task_config_len;
        /* Set by attest_ratls_make_evidence(); ignored in a certificate made without a session. */
        const uint8_t *tls_exporter; /* optional: ATTEST_RATLS_EXPORTER_LEN bytes */
        /* Instead of rtmr3_log: include the TEE's current runtime log, read under a lock held
         * until the quote is made, so that the log always replays to the quote's RTMR3 even
         * while other tasks measure. */
        bool rtmr3_log_from_tee;
        /* The "ctx" claim; NULL means ATTEST_RATLS_CTX. Another protocol that reuses these
         * certificates (the attested API, api-evidence.h) names itself here, so that evidence
         * made for one is never accepted by the other. */
        const char *ctx;
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
        bool has_tls_exporter;
        uint8_t tls_exporter[ATTEST_RATLS_EXPORTER_LEN];
};

/* Verifies a peer's RA-TLS certificate: extracts the evidence, verifies the quote with the
 * collateral, checks REPORTDATA = SHA-256(claims) || 0^32, the ctx claim, and that pubkey-hash
 * matches the certificate's own key; when an RTMR3 log is present it must replay to the
 * quote's RTMR3. Fails closed with a reason on any doubt. */
int attest_ratls_verify_cert(X509 *cert, const struct attest_collateral *col,
                             const struct attest_verify_opts *opts, struct attest_ratls_evidence **ret,
                             struct ck_error **reterr);
/* ---- evidence bound to a TLS session (docs/protocol.md) ---- */

/* A fresh P-256 key and a self-signed certificate for it without any evidence (valid from now-1h
 * for validity_secs): the client identity of one broker connection. */
int attest_ratls_make_key_cert(unsigned validity_secs, EVP_PKEY **ret_key, X509 **ret_cert,
                               struct ck_error **reterr);

/* The evidence body for one TLS session: claims with "pubkey-hash" of cert's key (the
 * certificate the session was authenticated with) and "tls-exporter" = exporter (the session's
 * exporter value), a quote from tee over them, encoded as 60000([quote, claims]).
 * claims->tls_exporter must be NULL (it is taken from exporter). */
int attest_ratls_make_evidence(struct attest_tee *tee, const struct attest_ratls_claims *claims, X509 *cert,
                               const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN], uint8_t **ret,
                               size_t *ret_len, struct ck_error **reterr);

/* Splits an evidence body (at most ATTEST_RATLS_EVIDENCE_MAX bytes) into pointers into buf. */
int attest_ratls_parse_evidence(const uint8_t *buf, size_t len, const uint8_t **ret_quote,
                                size_t *ret_quote_len, const uint8_t **ret_claims, size_t *ret_claims_len,
                                struct ck_error **reterr);

/* The session checks, given the verified quote's result: REPORTDATA = SHA-256(claims) || 0^32,
 * the claims parse, "pubkey-hash" is the peer certificate's key, "tls-exporter" is present and
 * equals exporter (constant time), and a present RTMR3 log replays to the quote's RTMR3. On
 * failure *ret_reason (when not NULL) is "evidence_not_bound" (no tls-exporter claim),
 * "exporter_mismatch" (evidence made for another session: a replay) or "binding_invalid".
 * ret->result is left NULL: the caller owns the result. */
int attest_ratls_check_binding(const struct attest_result *res, const uint8_t *claims, size_t claims_len,
                               X509 *peer_cert, const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN],
                               struct attest_ratls_evidence **ret, const char **ret_reason,
                               struct ck_error **reterr);

/* Everything at once: parse, verify the quote with col, check the binding. */
int attest_ratls_verify_evidence(const uint8_t *buf, size_t len, X509 *peer_cert,
                                 const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN],
                                 const struct attest_collateral *col, const struct attest_verify_opts *opts,
                                 struct attest_ratls_evidence **ret, const char **ret_reason,
                                 struct ck_error **reterr);

void attest_ratls_evidence_free(struct attest_ratls_evidence *e);
DEFINE_POINTER_CLEANUP(struct attest_ratls_evidence, attest_ratls_evidence_free, attest_ratls_evidence_free)

/* CBOR helpers exposed for fuzzing: parse the extension value / the claims map. */
int attest_ratls_parse_extension(const uint8_t *buf, size_t len, const uint8_t **ret_quote,
                                 size_t *ret_quote_len, const uint8_t **ret_claims, size_t *ret_claims_len,
                                 struct ck_error **reterr);
int attest_ratls_parse_claims(const uint8_t *buf, size_t len, struct attest_ratls_evidence *ret,
                              uint8_t ret_pubkey_hash[32], struct ck_error **reterr);
