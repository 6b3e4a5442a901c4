/* The attesting side of the broker protocol (docs/protocol.md): what conkerd's Attesting step
 * calls for each KMS endpoint of a container.
 *
 * Endpoint syntax: "host:port" or "host:port#sha256:<64 hex>", where host is a DNS name, an IPv4
 * address or a bracketed IPv6 address. With a pin, the broker's certificate must hash (SHA-256
 * of its DER) to it or the connection is dropped before anything is sent. Without one the
 * broker is not authenticated, and the exchange is refused unless the caller allows it
 * explicitly (conkerd's `kms-allow-unpinned`).
 *
 * The exchange: TLS 1.3 presenting a fresh self-signed P-256 certificate, then the session's
 * exporter value (ATTEST_RATLS_EXPORTER_LABEL), then evidence made for that value and that key,
 * sent as `POST /v1/secret` (application/cbor); the answer is the secret (200) or a reason. */
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>

#include "error.h"
#include "peer.h"
#include "ratls.h"
#include "secret.h"
#include "tee.h"

/* Largest secret accepted from a broker. */
#define BROKER_CLIENT_MAX_SECRET (1024u * 1024u)
/* Validity of the per-connection client certificate. */
#define BROKER_CLIENT_CERT_VALIDITY_SECS 600u
/* Largest certificate list accepted from a broker: an RA-TLS server certificate carries
 * evidence (ratls.h) plus the rest of the certificate. */
#define BROKER_CLIENT_MAX_CERT_LIST (ATTEST_RATLS_EVIDENCE_MAX + (16u << 10))

struct broker_endpoint {
        char host[256]; /* without brackets */
        unsigned port;
        bool has_pin;
        uint8_t pin[32];
};

/* Parses an endpoint (see above). -EINVAL with a message on anything else. */
int broker_endpoint_parse(const char *s, struct broker_endpoint *ret, struct ck_error **reterr);

struct broker_client_opts {
        unsigned timeout_ms; /* bounds the whole exchange; 0 = 30 s */
        /* Accept an endpoint without a #sha256: pin (the broker is then not authenticated). */
        bool allow_unpinned;
        /* Mutual attestation: the broker must present an RA-TLS certificate that meets this
         * (peer.h), checked in the handshake before anything is sent. It authenticates the
         * broker, so an endpoint without a pin is accepted; a pin, when given, must match too. */
        const struct broker_peer_policy *broker_attestation;
};

/* Makes the evidence body for one session: cert is the client certificate presented in it,
 * exporter its exporter value. */
typedef int (*broker_evidence_fn)(void *userdata, X509 *cert,
                                  const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN], uint8_t **ret,
                                  size_t *ret_len, struct ck_error **reterr);

/* Makes a fresh client identity, connects to endpoint, makes the evidence from tee over claims
 * for that session, posts it and returns the secret (validated as JSON; free with
 * ck_secret_free()). A 403 becomes -EACCES with "broker <endpoint> refused: <reason>"; an
 * unpinned endpoint without opts->allow_unpinned or opts->broker_attestation -EPERM before any
 * connection; a broker whose attestation fails -EKEYREJECTED "broker <endpoint>: the broker's
 * attestation failed: <reason>: ..."; other failures name the endpoint too. */
int broker_fetch_secret(const char *endpoint, struct attest_tee *tee,
                        const struct attest_ratls_claims *claims, const struct broker_client_opts *opts,
                        struct ck_secret **ret, struct ck_error **reterr);

/* The same exchange with the identity (key, cert) the caller made and evidence from fn (the
 * Attesting step, which serialises its use of the TEE; tests; benchmarks). */
int broker_fetch_secret_with(const char *endpoint, const struct broker_client_opts *opts, EVP_PKEY *key,
                             X509 *cert, broker_evidence_fn fn, void *userdata, struct ck_secret **ret,
                             struct ck_error **reterr);
