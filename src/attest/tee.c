/* The TEE front end: provider selection (auto never falls back to the simulator), the RTMR3
 * index rule, and runtime-event measurement (log + extend under one lock). */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "eventlog.h"
#include "fs.h"
#include "tee-internal.h"

static const char *const tee_kind_names[_ATTEST_TEE_KIND_MAX] = {
        [ATTEST_TEE_AUTO] = "auto",
        [ATTEST_TEE_KIND_TDX] = "tdx",
        [ATTEST_TEE_KIND_SIM] = "sim",
};

const char *attest_tee_kind_to_string(enum attest_tee_kind k)
{
        return (unsigned)k < _ATTEST_TEE_KIND_MAX ? tee_kind_names[k] : NULL;
}

int attest_tee_kind_from_string(const char *s)
{
        for (int i = 0; s && i < _ATTEST_TEE_KIND_MAX; i++)
                if (strcmp(s, tee_kind_names[i]) == 0)
                        return i;
        return -EINVAL;
}

int attest_tee_open(const struct attest_tee_config *cfg, struct attest_tee **ret, struct ck_error **reterr)
{
        _cleanup_(attest_tee_freep) struct attest_tee *t = NULL;
        enum attest_tee_kind kind;
        int r;

        if (!cfg)
                return ck_error_set(reterr, -EINVAL, "no TEE configuration");
        kind = cfg->kind;
        if (kind == ATTEST_TEE_AUTO) {
                _cleanup_error_ struct ck_error *why = NULL;
                r = attest_tee_tdx_probe(cfg, &why);
                if (r < 0)
                        return ck_error_set(reterr, -ENODEV,
                                            "no TDX guest support found (%s); to run with a simulated TD, "
                                            "pass --tee sim explicitly",
                                            ck_error_message(why, r));
                kind = ATTEST_TEE_KIND_TDX;
        }
        t = calloc(1, sizeof(*t));
        if (!t)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        t->kind = kind;
        if (cfg->rt_log_path) {
                t->rt_log_path = strdup(cfg->rt_log_path);
                if (!t->rt_log_path)
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        switch (kind) {
        case ATTEST_TEE_KIND_TDX:
                r = attest_tee_tdx_open(cfg, t, reterr);
                break;
        case ATTEST_TEE_KIND_SIM:
                r = attest_tee_sim_open(cfg, t, reterr);
                break;
        default:
                r = ck_error_set(reterr, -EINVAL, "unknown TEE kind %d", (int)kind);
        }
        if (r < 0)
                return r;
        assert(t->ops && t->rt_log_path);
        *ret = TAKE_PTR(t);
        return 0;
}

enum attest_tee_kind attest_tee_kind(const struct attest_tee *t)
{
        return t->kind;
}

int attest_tee_quote(struct attest_tee *t, const uint8_t report_data[64], uint8_t **ret, size_t *ret_len,
                     struct ck_error **reterr)
{
        return t->ops->quote(t, report_data, ret, ret_len, reterr);
}

int attest_tee_extend(struct attest_tee *t, unsigned index, const uint8_t data[48], struct ck_error **reterr)
{
        /* RTMR0-2 belong to firmware and boot loader; extending them from user space would make
         * the boot measurements unverifiable. */
        if (index != 3)
                return ck_error_set(reterr, -EPERM,
                                    "only RTMR3 may be extended by applications (asked for RTMR%u)", index);
        return t->ops->extend(t, index, data, reterr);
}

int attest_tee_measurements(struct attest_tee *t, struct attest_measurements *ret, struct ck_error **reterr)
{
        return t->ops->measurements(t, ret, reterr);
}

const char *attest_tee_rt_log_path(const struct attest_tee *t)
{
        return t->rt_log_path;
}

static int tee_log_dir_ensure(const char *path)
{
        _cleanup_free_ char *copy = strdup(path);

        if (!copy)
                return -ENOMEM;
        return ck_mkdir_p(dirname(copy), 0700);
}

/* Opens the RTMR3 log (creating it and its directory if missing, so that there is always
 * something to lock), takes the lock, reads the measurements and then the whole log. The
 * measurements come first: for the simulator that is where a "reboot" is noticed and the log of
 * the previous boot emptied. */
static int rt_log_open_read(struct attest_tee *t, int lock, int *ret_fd, struct attest_measurements *ret_m,
                            uint8_t **ret, size_t *ret_len, struct ck_error **reterr)
{
        _cleanup_close_ int fd = -1;
        struct attest_measurements m;
        uint8_t *data = NULL;
        size_t len = 0;
        int r;

        r = tee_log_dir_ensure(t->rt_log_path);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot create the directory of %s", t->rt_log_path);
        fd = open(t->rt_log_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open RTMR3 log %s", t->rt_log_path);
        if (flock(fd, lock) < 0)
                return ck_error_errno(reterr, -errno, "cannot lock RTMR3 log %s", t->rt_log_path);
        r = t->ops->measurements(t, &m, reterr);
        if (r < 0)
                return r;
        r = ck_read_fd(fd, ATTEST_RT_LOG_MAX, &data, &len);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read RTMR3 log %s", t->rt_log_path);
        *ret_fd = TAKE_FD(fd);
        *ret_m = m;
        *ret = data;
        *ret_len = len;
        return 0;
}

int attest_tee_rt_log_lock_read(struct attest_tee *t, int *ret_lock_fd, uint8_t **ret, size_t *ret_len,
                                struct ck_error **reterr)
{
        struct attest_measurements m;

        /* Shared: a measure that starts after us waits until the caller has made its quote. */
        return rt_log_open_read(t, LOCK_SH, ret_lock_fd, &m, ret, ret_len, reterr);
}

int attest_tee_rt_log_read(struct attest_tee *t, uint8_t **ret, size_t *ret_len, struct ck_error **reterr)
{
        _cleanup_close_ int fd = -1;

        return attest_tee_rt_log_lock_read(t, &fd, ret, ret_len, reterr);
}

static bool rt_log_has_event(const struct attest_rt_log *log, const char *name, const char *payload)
{
        for (size_t i = 0; i < log->n; i++)
                if (strcmp(log->events[i].name, name) == 0 && strcmp(log->events[i].payload, payload) == 0)
                        return true;
        return false;
}

static int rt_log_full_error(const struct attest_tee *t, struct ck_error **reterr)
{
        return ck_error_set(reterr, -ENOSPC,
                            "the RTMR3 event log %s is full (at most %u events and %u bytes): this TD "
                            "cannot measure another task until it reboots",
                            t->rt_log_path, ATTEST_RT_LOG_MAX_EVENTS, ATTEST_RT_LOG_MAX);
}

/* The one measuring path. With once, an event whose name and payload are already in the log is
 * not extended again (ret_added false): RTMR3 and its log then grow with the number of distinct
 * events, not with the number of tasks. The check runs under the same exclusive lock as the
 * extension, so two measurers of one event cannot both extend it. */
static int rt_measure(struct attest_tee *t, const char *name, const char *payload, bool once,
                      bool *ret_added, struct ck_error **reterr)
{
        _cleanup_(attest_rt_log_clear) struct attest_rt_log log = {0};
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *line = NULL;
        _cleanup_close_ int fd = -1;
        struct attest_measurements m;
        uint8_t digest[48], replayed[48];
        size_t len = 0;
        int r;

        r = attest_rt_event_digest(name, payload, digest);
        if (r < 0)
                return ck_error_set(
                        reterr, r,
                        "invalid runtime event: the name must be 1-%u characters of [a-z0-9.-] and "
                        "the payload at most %u bytes without control characters",
                        ATTEST_RT_NAME_MAX, ATTEST_RT_PAYLOAD_MAX);
        r = attest_rt_event_format(name, payload, digest, &line);
        if (r < 0)
                return ck_error_set(reterr, r, "cannot format the runtime event");

        r = rt_log_open_read(t, LOCK_EX, &fd, &m, &data, &len, reterr);
        if (r < 0)
                return r;
        /* The log must explain RTMR3 before we add to both (or rely on it for deduplication);
         * otherwise the new event would be recorded in a log that can never replay (someone
         * extended RTMR3 without logging). */
        r = attest_rt_log_parse(data, len, &log, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "%s", t->rt_log_path);
        r = attest_rt_log_replay(&log, replayed);
        if (r < 0)
                return ck_error_set(reterr, r, "cannot replay the RTMR3 log");
        if (memcmp(m.rtmr[3], replayed, 48) != 0)
                return ck_error_set(
                        reterr, -EUCLEAN,
                        "RTMR3 does not match its event log %s (RTMR3 was extended without logging, "
                        "or the log was lost); only a reboot of the TD can repair this",
                        t->rt_log_path);
        if (once && rt_log_has_event(&log, name, payload)) {
                if (ret_added)
                        *ret_added = false;
                return 0;
        }
        if (log.n >= ATTEST_RT_LOG_MAX_EVENTS || len + strlen(line) > ATTEST_RT_LOG_MAX)
                return rt_log_full_error(t, reterr);

        r = attest_tee_extend(t, 3, digest, reterr);
        if (r < 0)
                return r;
        /* RTMR3 now includes the event; a failure to log it is reported loudly because every
         * later attestation will fail to replay. */
        r = ck_write_all(fd, line, strlen(line));
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0)
                return ck_error_errno(reterr, r,
                                      "RTMR3 was extended but the event could not be appended to %s",
                                      t->rt_log_path);
        if (ret_added)
                *ret_added = true;
        return 0;
}

int attest_tee_measure(struct attest_tee *t, const char *name, const char *payload, struct ck_error **reterr)
{
        return rt_measure(t, name, payload, false, NULL, reterr);
}

int attest_tee_measure_once(struct attest_tee *t, const char *name, const char *payload, bool *ret_added,
                            struct ck_error **reterr)
{
        return rt_measure(t, name, payload, true, ret_added, reterr);
}

int attest_tee_rt_log_check_room(struct attest_tee *t, size_t n_events, size_t n_bytes,
                                 struct ck_error **reterr)
{
        _cleanup_(attest_rt_log_clear) struct attest_rt_log log = {0};
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_close_ int fd = -1;
        struct attest_measurements m;
        size_t len = 0;
        int r;

        r = rt_log_open_read(t, LOCK_SH, &fd, &m, &data, &len, reterr);
        if (r < 0)
                return r;
        r = attest_rt_log_parse(data, len, &log, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "%s", t->rt_log_path);
        if (n_events > ATTEST_RT_LOG_MAX_EVENTS - log.n || n_bytes > ATTEST_RT_LOG_MAX - len)
                return rt_log_full_error(t, reterr);
        return 0;
}

void attest_tee_free(struct attest_tee *t)
{
        if (!t)
                return;
        if (t->ops && t->ops->free)
                t->ops->free(t->priv);
        free(t->rt_log_path);
        free(t);
}
