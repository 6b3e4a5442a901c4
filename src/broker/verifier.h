/* The broker's attestation check of a client: the evidence body of `POST /v1/secret` verified
 * against the collateral and trust root, and bound to the TLS session it arrived on (the
 * "tls-exporter" claim is the session's exporter value, "pubkey-hash" the key the client
 * authenticated the session with; docs/protocol.md).
 *
 * The cache holds quote verification results (signatures, chain, CRLs, TCB status and the
 * measurements), keyed by SHA-256 of the exact quote bytes: that result is a function of those
 * bytes, the collateral and the time, so an entry lives until the earlier of the collateral's
 * nextUpdate and a TTL. The binding is never cached: REPORTDATA against the claims, the key and
 * the exporter value are checked on every connection, so a cached quote replayed on another
 * session is refused like an uncached one. The policy is evaluated on every request. */
#pragma once

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "collateral.h"
#include "error.h"
#include "ratls.h"
#include "verify.h"

#define BROKER_APP_ID_MAX 256

/* Collateral fetches running at once (each may take up to 30 s), and how long a failed fetch is
 * remembered before the same FMSPC is tried again. */
#define BROKER_FETCH_MAX_DEFAULT         4u
#define BROKER_FETCH_FAILURE_TTL_DEFAULT 60u

struct broker_verifier; /* opaque */

struct broker_verifier_config {
        /* Collateral: either fixed (a file, borrowed; must outlive the verifier), or fetched per
         * FMSPC from a PCS/PCCS base URL and kept until its earliest nextUpdate. */
        struct attest_collateral *collateral;
        const char *pcs_url;
        const char *pcs_cache_dir;       /* may be NULL: memory only */
        const char *pcs_ca_file;         /* extra HTTPS trust anchors for a PCCS; may be NULL */
        X509 *root;                      /* borrowed; NULL = the pinned Intel root */
        unsigned cache_ttl_secs;         /* 0 = no cache */
        unsigned max_fetches;            /* concurrent fetches; 0 = BROKER_FETCH_MAX_DEFAULT */
        unsigned fetch_failure_ttl_secs; /* no new fetch for a key that failed; 0 = the default */
        size_t cache_max;                /* entries; default 4096 */
};

/* What verified, session-bound evidence established. */
struct broker_attested {
        struct attest_result result; /* advisory_ids is always NULL here */
        uint8_t app_id[BROKER_APP_ID_MAX];
        size_t app_id_len;
        bool has_app_id;
        uint8_t *task_config; /* the "task-config" claim (owned); NULL when absent */
        size_t task_config_len;
        uint8_t *rtmr3_log; /* the "rtmr3-log" claim (owned), replayed to result.m.rtmr[3]; NULL when absent
                             */
        size_t rtmr3_log_len;
        bool cached; /* the quote's verification came from the cache */
};
/* Frees what a broker_attested owns and zeroes it. */
void broker_attested_clear(struct broker_attested *a);

int broker_verifier_new(const struct broker_verifier_config *cfg, struct broker_verifier **ret,
                        struct ck_error **reterr);
/* Verifies the evidence body evidence[0..len) received on a session whose client certificate is
 * cert and whose exporter value is exporter, at now. On failure returns -errno, sets *ret_reason
 * to a short reason code ("evidence_malformed", "quote_invalid", "binding_invalid",
 * "evidence_not_bound", "exporter_mismatch", "cert_expired", "collateral_unavailable", ...) and
 * reterr to the detail (for the broker's log, not for the client). On success ret is filled (free
 * with broker_attested_clear()). Thread-safe. */
int broker_verifier_check(struct broker_verifier *v, const uint8_t *evidence, size_t len, X509 *cert,
                          const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN], time_t now,
                          struct broker_attested *ret, const char **ret_reason, struct ck_error **reterr);
/* Whether a refusal reason of broker_verifier_check() is given after the quote verified to the
 * trust root, i.e. the client presented genuine hardware evidence that is not bound to this
 * session or key (a replay, a stolen quote): binding_invalid, evidence_not_bound,
 * exporter_mismatch, image_mismatch. Every other reason comes before the quote verified, from
 * evidence anyone can make. The broker audits the former one line each and only counts the
 * latter (audit.h). */
bool broker_verifier_reason_after_quote(const char *reason);

/* Collateral fetches so far (for logs, metrics and tests). */
struct broker_verifier_fetch_stats {
        uint64_t started;   /* fetches begun */
        uint64_t failed;    /* of those, failed */
        uint64_t skipped;   /* refusals from the memory of a failed fetch, without a request */
        unsigned in_flight; /* running now */
        unsigned waiting;   /* threads waiting for a fetch of their key or for a free slot */
};
void broker_verifier_fetch_stats(struct broker_verifier *v, struct broker_verifier_fetch_stats *ret);

void broker_verifier_free(struct broker_verifier *v);
DEFINE_POINTER_CLEANUP(struct broker_verifier, broker_verifier_free, broker_verifier_free)
