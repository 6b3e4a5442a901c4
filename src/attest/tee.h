/* TEE providers: where quotes and RTMR extensions come from inside a TD.
 *
 * Contract header (owned by the attest module). `tdx` uses configfs-tsm for quotes and the
 * tdx_guest measurements sysfs for RTMRs (both paths overridable so unit tests can point them at
 * fake trees); `sim` is the simulated TD of sim.h. `auto` picks tdx when its files exist and
 * otherwise fails, naming --tee sim: a simulated TEE is never chosen silently. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "quote.h"

enum attest_tee_kind {
        ATTEST_TEE_AUTO,
        ATTEST_TEE_KIND_TDX,
        ATTEST_TEE_KIND_SIM,
        _ATTEST_TEE_KIND_MAX,
};
const char *attest_tee_kind_to_string(enum attest_tee_kind k);
int attest_tee_kind_from_string(const char *s);

struct attest_tee_config {
        enum attest_tee_kind kind;
        /* tdx: defaults /sys/kernel/config/tsm/report and
         * /sys/class/misc/tdx_guest/measurements when NULL. */
        const char *tsm_report_dir;
        const char *measurements_dir;
        /* sim: the directory made by `conker tdx-sim init` (keys, profile) and the state
         * directory under /run that keeps RTMRs across restarts until "reboot". */
        const char *sim_dir;
        const char *sim_state_dir; /* default /run/conker/tdx-sim/<hash of sim_dir's real path> */
        /* The RTMR3 runtime event log (eventlog.h). Defaults: tdx /run/conker/rtmr3.log, sim
         * <sim_state_dir>/rtmr3.log; both live under /run so that they vanish with the RTMRs. */
        const char *rt_log_path;
};

struct attest_tee; /* opaque */

int attest_tee_open(const struct attest_tee_config *cfg, struct attest_tee **ret, struct ck_error **reterr);
enum attest_tee_kind attest_tee_kind(const struct attest_tee *t);
/* A quote over report_data; malloc'd bytes. */
int attest_tee_quote(struct attest_tee *t, const uint8_t report_data[64], uint8_t **ret, size_t *ret_len,
                     struct ck_error **reterr);
/* RTMR[index] = SHA-384(RTMR[index] || data). Only index 3 is allowed for applications. */
int attest_tee_extend(struct attest_tee *t, unsigned index, const uint8_t data[48],
                      struct ck_error **reterr);
/* Current MRTD/RTMR/MRCONFIGID... as far as the provider can tell without a quote. */
int attest_tee_measurements(struct attest_tee *t, struct attest_measurements *ret, struct ck_error **reterr);
/* Measures a runtime event: checks that the runtime log replays to the current RTMR3, extends
 * RTMR3 with attest_rt_event_digest(name, payload) and appends the event to the log, under a
 * lock on the log so that concurrent measurers cannot interleave. */
int attest_tee_measure(struct attest_tee *t, const char *name, const char *payload,
                       struct ck_error **reterr);
/* The same, except that an event whose name and payload are already in the log (since boot) is
 * not extended again: *ret_added (may be NULL) says whether it was. This keeps RTMR3's log one
 * event per distinct measurement however many tasks repeat it. A full log is -ENOSPC with a
 * message that says the TD must reboot; a log that does not replay to RTMR3 is -EUCLEAN. */
int attest_tee_measure_once(struct attest_tee *t, const char *name, const char *payload, bool *ret_added,
                            struct ck_error **reterr);
/* 0 when the log can still take n_events more events of n_bytes in all; -ENOSPC (the log is full
 * until the TD reboots) otherwise. For refusing work early; the measure itself checks again. */
int attest_tee_rt_log_check_room(struct attest_tee *t, size_t n_events, size_t n_bytes,
                                 struct ck_error **reterr);
/* The runtime log path in use and its current content (empty when nothing was measured yet;
 * malloc'd, at most ATTEST_RT_LOG_MAX bytes). */
const char *attest_tee_rt_log_path(const struct attest_tee *t);
int attest_tee_rt_log_read(struct attest_tee *t, uint8_t **ret, size_t *ret_len, struct ck_error **reterr);
void attest_tee_free(struct attest_tee *t);
DEFINE_POINTER_CLEANUP(struct attest_tee, attest_tee_free, attest_tee_free)
