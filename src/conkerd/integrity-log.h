/* Has the state disk failed an authentication check since boot? With LUKS2 authenticated
 * encryption (cryptsetup --integrity hmac-sha256) dm-crypt verifies each sector's tag, returns
 * an I/O error for a sector the host altered and says so in the kernel log ("device-mapper:
 * crypt: dm-0: INTEGRITY AEAD ERROR, sector N"); nothing else counts it: dm-integrity's own
 * mismatch counter only moves when it computes the tags itself (internal hash), which this
 * layout does not. So conkerd reads /dev/kmsg and counts those lines for the devices of its
 * data dir (storage-check.h). The rule and its limits: docs/conkerd.md "A tampered state disk". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CONKERD_KMSG_RECORD_MAX 8192u /* the kernel's records are at most ~1 KiB */

/* Is the /dev/kmsg record (buf, len) ("<prio>,<seq>,<usec>,<flags>[,…];<message>\n[ KEY=…\n]") a
 * kernel message (facility 0) reporting an authentication failure of one of the devices in devs
 * (NULL-terminated names)? dm-crypt's
 * "INTEGRITY AEAD ERROR" (with the device name, or without one as older kernels print it) and
 * dm-integrity's "Checksum failed" count. Bounded; anything malformed is no. */
bool conkerd_kmsg_is_integrity_failure(const char *buf, size_t len, char *const *devs);

struct conkerd_integrity_log;

/* Opens path ("/dev/kmsg") at its end (what the kernel logs from now on) and copies devs. */
int conkerd_integrity_log_open(const char *path, char *const *devs, struct conkerd_integrity_log **ret,
                               struct ck_error **reterr);
/* Reads the records logged since the last call (without blocking) and returns the number of
 * failures seen since open. Records the kernel overwrote before they were read are skipped.
 * Thread-safe. */
int conkerd_integrity_log_count(struct conkerd_integrity_log *l, uint64_t *ret, struct ck_error **reterr);
void conkerd_integrity_log_free(struct conkerd_integrity_log *l);
