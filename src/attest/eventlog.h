/* Event logs that explain RTMR values: the firmware's CCEL (TCG2 crypto-agile, RTMR0-2) and
 * Conker's own RTMR3 runtime log (format in docs/rtmr3-event-log.md).
 *
 * Contract header (owned by the attest module). */
#pragma once

#include <stdbool.h>
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

/* Limits of the runtime log (docs/rtmr3-event-log.md). */
#define ATTEST_RT_LOG_MAX        (1u << 20)
#define ATTEST_RT_LOG_MAX_EVENTS 4096u
#define ATTEST_RT_LINE_MAX       8192u
#define ATTEST_RT_NAME_MAX       64u
#define ATTEST_RT_PAYLOAD_MAX    4096u

/* Names are 1..64 characters of [a-z0-9.-]; payloads at most 4096 bytes without control
 * characters. */
bool attest_rt_event_name_valid(const char *name);
bool attest_rt_event_payload_valid(const char *payload, size_t len);
/* Computes the digest an event extends RTMR3 with:
 * SHA-384("conker/rtmr3/v1" NUL name NUL payload). -EINVAL for an invalid name or payload. */
int attest_rt_event_digest(const char *name, const char *payload, uint8_t ret[48]);
/* One log line, newline included (malloc'd). */
int attest_rt_event_format(const char *name, const char *payload, const uint8_t digest[48], char **ret);
/* Parses a runtime log (JSON lines, max 1 MiB, max 4096 events). */
int attest_rt_log_parse(const uint8_t *buf, size_t len, struct attest_rt_log *ret, struct ck_error **reterr);
/* Replays the log from 48 zero bytes; compare the result with a quote's RTMR3. */
int attest_rt_log_replay(const struct attest_rt_log *log, uint8_t ret_rtmr3[48]);
void attest_rt_log_clear(struct attest_rt_log *log);
