/* Reference values: the measurements a TD is expected to have (MRTD, RTMR0-RTMR2), as one small
 * JSON file written by whoever knows them (an operator, or a measurement-prediction tool) and
 * read by every party that checks a quote (the broker's policy, `conker --attest`, conkerd's
 * broker check).
 *
 * Format: a JSON object with optional keys "mrtd", "rtmr0", "rtmr1", "rtmr2" (each exactly 96 hex
 * digits, either case) and an optional informational "source" string; any other key is an
 * error, and at least one value must be present. RTMR3 is not a reference value: it holds the
 * runtime events, which are judged from the event log.
 *
 * Contract header (owned by the attest module). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "quote.h"

/* Largest reference-values document (a few hundred bytes in practice). */
#define ATTEST_REFVALUES_MAX_BYTES (16u * 1024u)

struct attest_refvalues {
        bool has_mrtd;
        uint8_t mrtd[48];
        bool has_rtmr[3];
        uint8_t rtmr[3][48];
};

/* Parses buf[0..len). ret is written only on success. */
int attest_refvalues_parse(const uint8_t *buf, size_t len, struct attest_refvalues *ret,
                           struct ck_error **reterr);
/* Reads and parses the file at path (at most ATTEST_REFVALUES_MAX_BYTES). */
int attest_refvalues_load(const char *path, struct attest_refvalues *ret, struct ck_error **reterr);
/* NULL when every pinned value equals the measurement; otherwise the static reason of the first
 * that differs, in the order "mrtd_mismatch", "rtmr0_mismatch", "rtmr1_mismatch",
 * "rtmr2_mismatch". */
const char *attest_refvalues_check(const struct attest_refvalues *rv, const struct attest_measurements *m);
