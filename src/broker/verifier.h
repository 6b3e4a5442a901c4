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

struct broker_verifier; /* opaque */

struct broker_verifier_config {
        /* Collateral: either fixed (a file, borrowed; must outlive the verifier), or fetched per
         * FMSPC from a PCS/PCCS base URL and kept until its earliest nextUpdate. */
        struct attest_collateral *collateral;
        const char *pcs_url;
        const char *pcs_cache_dir; /* may be NULL: memory only */
        const char *pcs_ca_file;   /* extra HTTPS trust anchors for a PCCS; may be NULL */
        X509 *root;                /* borrowed; NULL = the pinned Intel root */
        unsigned cache_ttl_secs;   /* 0 = no cache */
        size_t cache_max;          /* entries; default 4096 */
};

/* Evidence larger than this (RTMR3 log plus task-config) is verified every time rather than
 * cached, so that the cache's memory stays bounded by cache_max times this. */
#define BROKER_CACHE_EVIDENCE_MAX (64u * 1024u)

/* What a verified client certificate established. Owns rtmr3_log and task_config: release with
 * broker_attested_clear(). */
struct broker_attested {
        struct attest_result result; /* advisory_ids is always NULL here */
        uint8_t app_id[BROKER_APP_ID_MAX];
        size_t app_id_len;
        bool has_app_id;
        bool cached;        /* served from the cache */
        uint8_t *rtmr3_log; /* the rtmr3-log claim (already replayed to the quote's RTMR3); NULL: none */
        size_t rtmr3_log_len;
        uint8_t *task_config; /* the task-config claim; NULL: none */
        size_t task_config_len;
};
void broker_attested_clear(struct broker_attested *a);

int broker_verifier_new(const struct broker_verifier_config *cfg, struct broker_verifier **ret,
                        struct ck_error **reterr);
/* Verifies cert at now. On success *ret is filled (clear it with broker_attested_clear()). On failure
 * returns -errno, sets *ret_reason to a short reason code
 * ("no_evidence", "quote_invalid", "binding_invalid", "cert_expired", ...) and reterr to the
 * detail (for the broker's log, not for the client). Thread-safe. */
int broker_verifier_check(struct broker_verifier *v, X509 *cert, time_t now, struct broker_attested *ret,
                          const char **ret_reason, struct ck_error **reterr);
void broker_verifier_free(struct broker_verifier *v);
DEFINE_POINTER_CLEANUP(struct broker_verifier, broker_verifier_free, broker_verifier_free)
