/* Mutual attestation: conkerd's check of a broker that runs in a TD and presents an RA-TLS
 * server certificate (conker-broker -a tdx). The certificate's quote must verify (DCAP, with
 * the given collateral and trust anchor), be bound to the certificate's key, come from a
 * production TD (no debug attribute bits) with an acceptable TCB status, and match the
 * reference values (MRTD, RTMR0-2). */
#pragma once

#include <openssl/x509.h>
#include <stdbool.h>
#include <time.h>

#include "collateral.h"
#include "error.h"
#include "refvalues.h"

struct broker_peer_policy {
        struct attest_refvalues refvalues;
        const struct attest_collateral *collateral; /* borrowed */
        X509 *root; /* borrowed; NULL = the pinned Intel root. Another root accepts simulated TDs. */
};

/* Checks cert at now. On failure returns -errno, *ret_reason a short code ("no_evidence",
 * "quote_invalid", "binding_invalid", "debug_td", "tcb_status", "mrtd_mismatch",
 * "rtmr0_mismatch" .. "rtmr2_mismatch") and reterr the detail. */
int broker_peer_check(const struct broker_peer_policy *p, X509 *cert, time_t now, const char **ret_reason,
                      struct ck_error **reterr);
