/* Reference values: the expected boot measurements of a TD (MRTD and RTMR0-2), as a data owner
 * pins them in a broker policy, `conker --attest` checks them against conkerd's API certificate,
 * and `conker tdx predict` writes them.
 *
 * File format (docs/broker-policy.md#reference-values): one JSON object with the optional keys
 * "mrtd", "rtmr0", "rtmr1", "rtmr2" (each exactly 96 hex digits, either case) and an optional
 * informational "source" string. Any other key is an error, and at least one value is required.
 *
 * Contract header (owned by the attest module). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "quote.h"

/* Largest reference-values document accepted. */
#define ATTEST_REFVALUES_MAX_BYTES (16u * 1024u)

struct attest_refvalues {
        bool has_mrtd;
        uint8_t mrtd[48];
        bool has_rtmr[3]; /* RTMR0, RTMR1, RTMR2 */
        uint8_t rtmr[3][48];
};

/* Parses buf[0..len). On failure the error names the key and what is wrong with it. */
int attest_refvalues_parse(const uint8_t *buf, size_t len, struct attest_refvalues *ret,
                           struct ck_error **reterr);
/* Reads and parses a file (at most ATTEST_REFVALUES_MAX_BYTES). */
int attest_refvalues_load(const char *path, struct attest_refvalues *ret, struct ck_error **reterr);
/* NULL when every pinned value equals the measurement; otherwise a static reason code:
 * "mrtd_mismatch", "rtmr0_mismatch", "rtmr1_mismatch" or "rtmr2_mismatch" (the first that
 * differs, in that order). */
const char *attest_refvalues_check(const struct attest_refvalues *rv, const struct attest_measurements *m);
