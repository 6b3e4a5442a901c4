/* The attesting side of the broker protocol: what conkerd's Attesting step calls for each KMS
 * endpoint of a container.
 *
 * Endpoint syntax: "host:port" or "host:port#sha256:<64 hex>", where host is a DNS name, an IPv4
 * address or a bracketed IPv6 address. With a pin, the broker's certificate must hash (SHA-256
 * of its DER) to it or the connection is dropped before anything is sent; without one the
 * broker is not authenticated (the seed's behaviour) and a warning is logged. */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>

#include "error.h"
#include "ratls.h"
#include "secret.h"
#include "tee.h"

/* Largest secret accepted from a broker. */
#define BROKER_CLIENT_MAX_SECRET (1024u * 1024u)
/* Validity of the per-connection RA-TLS certificate. */
#define BROKER_CLIENT_CERT_VALIDITY_SECS 600u

struct broker_endpoint {
        char host[256]; /* without brackets */
        unsigned port;
        bool has_pin;
        uint8_t pin[32];
};

/* Parses an endpoint (see above). -EINVAL with a message on anything else. */
int broker_endpoint_parse(const char *s, struct broker_endpoint *ret, struct ck_error **reterr);

/* Makes a fresh RA-TLS identity from tee over claims, connects to endpoint with TLS 1.3
 * presenting it, checks the pin, sends GET /v1/secret and returns the secret (validated as
 * JSON; free with ck_secret_free()). A 403 becomes -EACCES with "broker <endpoint> refused:
 * <reason>"; other failures name the endpoint too. timeout_ms bounds the whole exchange. */
int broker_fetch_secret(const char *endpoint, struct attest_tee *tee,
                        const struct attest_ratls_claims *claims, unsigned timeout_ms,
                        struct ck_secret **ret, struct ck_error **reterr);

/* The same exchange with an identity the caller made (tests, benchmarks). */
int broker_fetch_secret_with_identity(const char *endpoint, EVP_PKEY *key, X509 *cert, unsigned timeout_ms,
                                      struct ck_secret **ret, struct ck_error **reterr);
