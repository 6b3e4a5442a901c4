/* The broker's RA-TLS server: mutual TLS 1.3, one `POST /v1/secret` per connection carrying
 * evidence bound to that session (docs/protocol.md).
 *
 * A few I/O threads (reader.h) accept connections, run the TLS handshake and read the request
 * (head and evidence body) on event loops, under deadlines; connections beyond max_clients (being
 * read, queued or served) are closed at once. Complete requests go through a bounded queue to a
 * fixed pool of worker threads, which verify the evidence against the session (verifier.h),
 * evaluate the policy, audit the decision and answer 200 with the secret or 403 with a reason
 * code. The caller's thread, in broker_server_run(), reloads secrets on inotify events, writes
 * the audit log's periodic summary of refusals, and stops cleanly on SIGTERM/SIGINT (stop
 * accepting, finish what was accepted, return). */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "error.h"
#include "policy.h"
#include "secret-store.h"
#include "verifier.h"

/* Request-size cap and the limit on header lines; tight because nothing is authenticated yet. */
#define BROKER_REQUEST_MAX_BYTES   4096u
#define BROKER_REQUEST_MAX_HEADERS 32u
/* Largest client certificate list: the client's certificate carries no evidence (it comes in the
 * body), so a quote plus a small claims map is plenty; more fails the handshake. */
#define BROKER_MAX_CLIENT_CERT_LIST (128u << 10)

struct broker_server_config {
        const char *address; /* numeric IPv4/IPv6 */
        uint16_t port;       /* 0 = any; see broker_server_port() */
        unsigned workers;
        unsigned max_clients;
        unsigned handshake_timeout_ms;
        unsigned request_timeout_ms;
        size_t max_request_bytes;    /* request head */
        size_t max_body_bytes;       /* the evidence body; 0 = ATTEST_RATLS_EVIDENCE_MAX */
        unsigned io_threads;         /* 0: one per CPU, at most 4 */
        unsigned audit_summary_secs; /* how often refusals are summarised; 0: the default */

        EVP_PKEY *key; /* the broker's own identity; borrowed */
        X509 *cert;

        const struct broker_policy *policy;  /* borrowed */
        struct broker_secret_store *secrets; /* borrowed */
        struct broker_audit *audit;          /* borrowed */
        struct broker_verifier *verifier;    /* borrowed */

        /* Benchmarks only (bench/broker-plain.c): release the first secret to any client that
         * completes the mutual-TLS handshake, without attestation, policy or audit, to measure
         * the cost of attestation against plain mTLS. Not reachable from conker-broker's flags. */
        bool bench_skip_attestation;
};

struct broker_server; /* opaque */

/* Binds and listens, builds the TLS context and starts the workers. Signals SIGTERM, SIGINT
 * and SIGHUP must already be blocked in the calling thread (so that the workers inherit the
 * mask); broker_server_run() receives them through a signalfd. */
int broker_server_new(const struct broker_server_config *cfg, struct broker_server **ret,
                      struct ck_error **reterr);
uint16_t broker_server_port(const struct broker_server *s);
/* Runs until SIGTERM/SIGINT or broker_server_stop(); SIGHUP reloads every secret. Returns 0 after
 * a clean stop. */
int broker_server_run(struct broker_server *s, struct ck_error **reterr);
/* Asks broker_server_run() to stop (async-signal-safe, any thread). */
void broker_server_stop(struct broker_server *s);
/* Joins the workers (after run() returned) and frees everything. */
void broker_server_free(struct broker_server *s);
DEFINE_POINTER_CLEANUP(struct broker_server, broker_server_free, broker_server_free)

/* A request the broker recognises (docs/protocol.md): `POST /v1/secret` with the evidence as
 * its body (Content-Type application/cbor, Content-Length 1..max_body), or the old form
 * `GET /v1/secret` without a body, which is answered with the refusal "evidence_not_bound". */
struct broker_request {
        bool post;
        size_t content_length;
        bool content_type_cbor;
};

/* Parses a complete request head (request line and headers up to and including the empty line,
 * nothing after it) of at most max bytes: one of the two request lines, printable "Name: value"
 * headers, at most BROKER_REQUEST_MAX_HEADERS, no Transfer-Encoding, at most one Content-Length
 * and Content-Type. -EBADMSG when malformed, -E2BIG when the head is over a limit, -EFBIG when
 * the announced body is larger than max_body. Exposed for unit tests and fuzzing. */
int broker_request_parse(const uint8_t *buf, size_t len, size_t max, size_t max_body,
                         struct broker_request *ret);

/* The broker's own certificate: a fresh P-256 key and a self-signed certificate (CN
 * conker-broker, valid one year), or both loaded from PEM files. */
int broker_identity_generate(EVP_PKEY **ret_key, X509 **ret_cert, struct ck_error **reterr);
int broker_identity_load(const char *cert_path, const char *key_path, EVP_PKEY **ret_key, X509 **ret_cert,
                         struct ck_error **reterr);
/* "sha256:<hex>" of the DER certificate: what an endpoint's #pin carries. buf holds 72 bytes. */
int broker_cert_fingerprint(X509 *cert, char buf[72]);
