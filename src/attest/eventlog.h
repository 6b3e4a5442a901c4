/* Event logs that explain RTMR values: the firmware's CCEL (TCG2 crypto-agile, RTMR0-2) and
 * Conker's own RTMR3 runtime log (format in docs/rtmr3-event-log.md).
 *
 * Contract header (owned by the attest module). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct attest_rtmrs {
        uint8_t rtmr[4][48];
};

/* Replays a CCEL event-log area (ACPI table data; trailing 0xFF fill allowed) into RTMR0-3.
 * ret_events (may be NULL) receives the number of measured events. */
int attest_ccel_replay(const uint8_t *log, size_t len, struct attest_rtmrs *ret, size_t *ret_events,
                       struct ck_error **reterr);

/* One RTMR3 runtime event: what was measured and the 48-byte value extended. */
struct attest_rt_event {
        char *name;         /* e.g. "image-digest" */
        char *payload;      /* e.g. "sha256:…" */
        uint8_t digest[48]; /* SHA-384 of the canonical event encoding; what RTMR3 was extended with */
};

struct attest_rt_log {
        struct attest_rt_event *events;
        size_t n;
};

/* Computes the digest an event extends RTMR3 with. */
int attest_rt_event_digest(const char *name, const char *payload, uint8_t ret[48]);
/* Parses a runtime log (JSON lines, max 1 MiB, max 4096 events). */
int attest_rt_log_parse(const uint8_t *buf, size_t len, struct attest_rt_log *ret, struct ck_error **reterr);
/* Replays the log from 48 zero bytes; compare the result with a quote's RTMR3. */
int attest_rt_log_replay(const struct attest_rt_log *log, uint8_t ret_rtmr3[48]);
void attest_rt_log_clear(struct attest_rt_log *log);
