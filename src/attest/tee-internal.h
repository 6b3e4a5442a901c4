/* Internal interface between the TEE front end (tee.c) and its providers (tee-tdx.c,
 * tee-sim.c). Not for use outside the attest module, except by its unit tests. */
#pragma once

#include "tee.h"

struct attest_tee_ops {
        int (*quote)(struct attest_tee *t, const uint8_t report_data[64], uint8_t **ret, size_t *ret_len,
                     struct ck_error **reterr);
        /* index is already checked to be 3. */
        int (*extend)(struct attest_tee *t, unsigned index, const uint8_t data[48],
                      struct ck_error **reterr);
        int (*measurements)(struct attest_tee *t, struct attest_measurements *ret, struct ck_error **reterr);
        void (*free)(void *priv);
};

struct attest_tee {
        enum attest_tee_kind kind;
        const struct attest_tee_ops *ops;
        char *rt_log_path;
        void *priv;
};

#define ATTEST_TSM_REPORT_DIR  "/sys/kernel/config/tsm/report"
#define ATTEST_TDX_MEASURE_DIR "/sys/class/misc/tdx_guest/measurements"
#define ATTEST_TDX_RT_LOG      "/run/conker/rtmr3.log"
#define ATTEST_SIM_STATE_ROOT  "/run/conker/tdx-sim"

/* Reads the runtime log under a shared lock and hands the locked fd to the caller, who keeps
 * it until its quote is made: no measurement can land between reading the log and quoting. */
int attest_tee_rt_log_lock_read(struct attest_tee *t, int *ret_lock_fd, uint8_t **ret, size_t *ret_len,
                                struct ck_error **reterr);

/* Each provider fills t->ops, t->priv and, when cfg->rt_log_path is NULL, t->rt_log_path. */
int attest_tee_tdx_open(const struct attest_tee_config *cfg, struct attest_tee *t, struct ck_error **reterr);
int attest_tee_sim_open(const struct attest_tee_config *cfg, struct attest_tee *t, struct ck_error **reterr);
/* 0 when tsm_report_dir and measurements_dir exist and a probe entry reports the tdx_guest
 * provider; a negative errno with the reason otherwise. */
int attest_tee_tdx_probe(const struct attest_tee_config *cfg, struct ck_error **reterr);

/* One configfs-tsm request inside an existing report entry (entry_fd): check the provider,
 * write REPORTDATA to inblob, read outblob, and retry when generation shows that another
 * writer interfered. Exposed so that unit tests can drive it against a fake entry. */
int attest_tdx_quote_entry(int entry_fd, const uint8_t report_data[64], uint8_t **ret, size_t *ret_len,
                           struct ck_error **reterr);
