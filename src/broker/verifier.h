/* The broker's attestation check of a client certificate: RA-TLS evidence verified against the
 * collateral and trust root, with a cache keyed by the exact certificate bytes.
 *
 * The cache is safe because the evidence binds the quote to the certificate's own key
 * (pubkey-hash claim) and every TLS handshake proves possession of that key again: the same
 * certificate bytes always verify to the same measurements. An entry lives until the earliest of
 * the certificate's notAfter, the collateral's nextUpdate and a TTL, and the certificate's
 * validity is checked on every use. The policy is evaluated on every request, cached or not. */
#pragma once

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "collateral.h"
#include "error.h"
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

/* What a verified client certificate established. */
struct broker_attested {
        struct attest_result result; /* advisory_ids is always NULL here */
        uint8_t app_id[BROKER_APP_ID_MAX];
        size_t app_id_len;
        bool has_app_id;
        bool cached; /* served from the cache */
};

int broker_verifier_new(const struct broker_verifier_config *cfg, struct broker_verifier **ret,
                        struct ck_error **reterr);
/* Verifies cert at now. On failure returns -errno, sets *ret_reason to a short reason code
 * ("no_evidence", "quote_invalid", "binding_invalid", "cert_expired", ...) and reterr to the
 * detail (for the broker's log, not for the client). Thread-safe. */
int broker_verifier_check(struct broker_verifier *v, X509 *cert, time_t now, struct broker_attested *ret,
                          const char **ret_reason, struct ck_error **reterr);
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
