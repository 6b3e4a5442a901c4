/* Append-only JSON-lines audit log of releases and refusals. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "fs.h"
#include "json.h"
#include "parse.h"
#include "policy.h"

/* Distinct reasons one summary line can count; any further ones are counted as "other". The
 * broker's reasons are a short fixed list, so this is never reached in practice. */
#define AUDIT_REASONS_MAX 32
#define AUDIT_REASON_LEN  48

struct refusal_count {
        char reason[AUDIT_REASON_LEN];
        uint64_t n;
};

/* Group commit: every line is written under the lock (one write() each), and then waits until
 * an fdatasync() that started after its write has completed. One thread syncs at a time; lines
 * written meanwhile are covered by the next sync, so concurrent releases share fsyncs instead of
 * queueing one each. */
struct broker_audit {
        pthread_mutex_t lock;
        pthread_cond_t synced_cond;
        int fd;
        enum broker_audit_fsync fsync_policy;
        uint64_t written; /* lines written */
        uint64_t synced;  /* lines known to be on disk */
        bool syncing;

        /* Refusals counted since the last summary line (broker_audit_count_refusal()), under
         * count_lock, which is never held across I/O. */
        pthread_mutex_t count_lock;
        struct refusal_count counts[AUDIT_REASONS_MAX];
        size_t n_counts;
        uint64_t total;
        struct timespec first, last;
};

static const char *const fsync_names[_BROKER_AUDIT_FSYNC_MAX] = {
        [BROKER_AUDIT_FSYNC_ALWAYS] = "always",
        [BROKER_AUDIT_FSYNC_NEVER] = "never",
};

const char *broker_audit_fsync_to_string(enum broker_audit_fsync f)
{
        return (unsigned)f < _BROKER_AUDIT_FSYNC_MAX ? fsync_names[f] : "unknown";
}

int broker_audit_fsync_from_string(const char *s)
{
        for (size_t i = 0; i < _BROKER_AUDIT_FSYNC_MAX; i++)
                if (s && strcmp(s, fsync_names[i]) == 0)
                        return (int)i;
        return -EINVAL;
}

int broker_audit_open(const char *path, enum broker_audit_fsync fsync_policy, struct broker_audit **ret,
                      struct ck_error **reterr)
{
        struct broker_audit *a;
        const char *slash = strrchr(path, '/');
        int fd;

        if (slash && slash != path) {
                _cleanup_free_ char *dir = strndup(path, (size_t)(slash - path));
                int r;

                if (!dir)
                        return -ENOMEM;
                r = ck_mkdir_p(dir, 0700);
                if (r < 0)
                        return ck_error_errno(reterr, r, "audit log directory %s", dir);
        }
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0600);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "audit log %s", path);
        a = calloc(1, sizeof(*a));
        if (!a) {
                close(fd);
                return -ENOMEM;
        }
        pthread_mutex_init(&a->lock, NULL);
        pthread_mutex_init(&a->count_lock, NULL);
        pthread_cond_init(&a->synced_cond, NULL);
        a->fd = fd;
        a->fsync_policy = fsync_policy;
        *ret = a;
        return 0;
}

void broker_audit_close(struct broker_audit *a)
{
        if (!a)
                return;
        if (a->fd >= 0)
                fdatasync(a->fd);
        safe_close(a->fd);
        pthread_cond_destroy(&a->synced_cond);
        pthread_mutex_destroy(&a->count_lock);
        pthread_mutex_destroy(&a->lock);
        free(a);
}

static int set_hex(json_t *o, const char *key, const uint8_t *v, size_t len)
{
        char hex[2 * 64 + 1];

        if (len > 64)
                return -EINVAL;
        ck_hex_encode(v, len, hex);
        return json_object_set_new(o, key, json_string(hex));
}

/* The appId claim comes from the peer: printed as text only when it is short printable ASCII,
 * otherwise as hex of at most its first 64 bytes. */
static int set_app_id(json_t *o, const uint8_t *v, size_t len)
{
        char hex[2 * 64 + 5];

        if (len <= 128 && ck_is_printable((const char *)v, len))
                return json_object_set_new(o, "appId", json_stringn((const char *)v, len));
        memcpy(hex, "hex:", 4);
        ck_hex_encode(v, len > 64 ? 64 : len, hex + 4);
        return json_object_set_new(o, "appId", json_string(hex));
}

char *broker_audit_format(const struct broker_audit_entry *e)
{
        _cleanup_json_ json_t *o = json_object();
        char ts[48];
        struct tm tm;
        size_t n;

        if (!o)
                return NULL;
        gmtime_r(&e->time.tv_sec, &tm);
        n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", e->time.tv_nsec / 1000000);
        json_object_set_new(o, "time", json_string(ts));
        json_object_set_new(o, "peer", json_string(e->peer ? e->peer : "-"));
        json_object_set_new(o, "decision", json_string(e->release ? "release" : "refuse"));
        if (!e->release)
                json_object_set_new(o, "reason", json_string(e->reason ? e->reason : "unknown"));
        if (e->secret_id)
                json_object_set_new(o, "secretId", json_string(e->secret_id));
        if (e->result) {
                json_t *pinned = json_array();
                for (unsigned b = 0; pinned && broker_pin_name(b); b++)
                        if (e->pinned & (1u << b))
                                json_array_append_new(pinned, json_string(broker_pin_name(b)));
                json_object_set_new(o, "pinned", pinned);
        }
        if (e->task_config_digest && *e->task_config_digest)
                json_object_set_new(o, "taskConfigDigest", json_string(e->task_config_digest));
        if (e->result) {
                const struct attest_result *r = e->result;
                static const char *const rtmr_keys[4] = {"rtmr0", "rtmr1", "rtmr2", "rtmr3"};

                json_object_set_new(o, "tee", json_string(r->tee_type == ATTEST_TEE_TDX ? "tdx" : "sgx"));
                json_object_set_new(o, "simulated", json_boolean(r->simulated));
                json_object_set_new(o, "tcbStatus", json_string(attest_tcb_status_to_string(r->status)));
                json_object_set_new(o, "tcbEvaluationNumber", json_integer(r->tcb_eval_number));
                json_object_set_new(o, "fmspc", json_stringn(r->fmspc, strnlen(r->fmspc, sizeof(r->fmspc))));
                set_hex(o, "mrtd", r->m.mr_td, 48);
                for (unsigned k = 0; k < 4; k++)
                        set_hex(o, rtmr_keys[k], r->m.rtmr[k], 48);
                set_hex(o, "tdAttributes", r->m.td_attributes, 8);
        }
        if (e->app_id)
                set_app_id(o, e->app_id, e->app_id_len);
        return json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

/* Writes line (its NUL at line[len] is replaced by a newline) and, with fsync "always", waits
 * until it is on disk. */
static int append_line(struct broker_audit *a, char *line, size_t len)
{
        uint64_t seq;
        int rc = 0;

        line[len] = '\n'; /* replaces the NUL; the buffer is written by length */
        pthread_mutex_lock(&a->lock);
        rc = ck_write_all(a->fd, line, len + 1);
        if (rc < 0 || a->fsync_policy != BROKER_AUDIT_FSYNC_ALWAYS) {
                pthread_mutex_unlock(&a->lock);
                return rc;
        }
        seq = ++a->written;
        while (a->synced < seq) {
                uint64_t target;
                int r;

                if (a->syncing) {
                        pthread_cond_wait(&a->synced_cond, &a->lock);
                        continue;
                }
                a->syncing = true;
                target = a->written;
                pthread_mutex_unlock(&a->lock);
                r = fdatasync(a->fd) < 0 ? -errno : 0;
                pthread_mutex_lock(&a->lock);
                a->syncing = false;
                if (r == 0)
                        a->synced = target;
                pthread_cond_broadcast(&a->synced_cond);
                if (r < 0) {
                        rc = r;
                        break;
                }
        }
        pthread_mutex_unlock(&a->lock);
        return rc;
}

int broker_audit_append(struct broker_audit *a, const struct broker_audit_entry *e)
{
        _cleanup_free_ char *line = broker_audit_format(e);

        if (!line)
                return -ENOMEM;
        return append_line(a, line, strlen(line));
}

void broker_audit_count_refusal(struct broker_audit *a, const char *reason)
{
        struct timespec now;
        size_t i;

        clock_gettime(CLOCK_REALTIME, &now);
        if (!reason || strlen(reason) >= AUDIT_REASON_LEN)
                reason = "other";
        pthread_mutex_lock(&a->count_lock);
        for (i = 0; i < a->n_counts; i++)
                if (strcmp(a->counts[i].reason, reason) == 0)
                        break;
        if (i == a->n_counts) {
                if (a->n_counts == AUDIT_REASONS_MAX) {
                        reason = "other";
                        for (i = 0; i < a->n_counts; i++)
                                if (strcmp(a->counts[i].reason, reason) == 0)
                                        break;
                        if (i == a->n_counts)
                                i = a->n_counts - 1; /* the last slot absorbs the rest */
                } else {
                        snprintf(a->counts[i].reason, AUDIT_REASON_LEN, "%s", reason);
                        a->counts[i].n = 0;
                        a->n_counts++;
                }
        }
        a->counts[i].n++;
        if (a->total++ == 0)
                a->first = now;
        a->last = now;
        pthread_mutex_unlock(&a->count_lock);
}

static void format_time(const struct timespec *t, char ts[48])
{
        struct tm tm;
        size_t n;

        gmtime_r(&t->tv_sec, &tm);
        n = strftime(ts, 48, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ts + n, 48 - n, ".%03ldZ", t->tv_nsec / 1000000);
}

char *broker_audit_format_summary(const struct broker_audit_summary *sum)
{
        _cleanup_json_ json_t *o = json_object();
        json_t *reasons = json_object();
        char ts[48];

        if (!o || !reasons || json_object_set_new(o, "time", json_null()) < 0) {
                json_decref(reasons);
                return NULL;
        }
        format_time(&sum->time, ts);
        json_object_set_new(o, "time", json_string(ts));
        json_object_set_new(o, "decision", json_string("refuse-summary"));
        format_time(&sum->first, ts);
        json_object_set_new(o, "from", json_string(ts));
        format_time(&sum->last, ts);
        json_object_set_new(o, "to", json_string(ts));
        json_object_set_new(o, "refusals", json_integer((json_int_t)sum->total));
        for (size_t i = 0; i < sum->n_reasons; i++)
                json_object_set_new(reasons, sum->reasons[i], json_integer((json_int_t)sum->counts[i]));
        json_object_set_new(o, "reasons", reasons);
        return json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

int broker_audit_flush_refusals(struct broker_audit *a)
{
        struct refusal_count counts[AUDIT_REASONS_MAX];
        const char *names[AUDIT_REASONS_MAX];
        uint64_t values[AUDIT_REASONS_MAX];
        struct broker_audit_summary sum = {.reasons = names, .counts = values};
        _cleanup_free_ char *line = NULL;

        pthread_mutex_lock(&a->count_lock);
        if (a->total == 0) {
                pthread_mutex_unlock(&a->count_lock);
                return 0;
        }
        memcpy(counts, a->counts, a->n_counts * sizeof(counts[0]));
        sum.n_reasons = a->n_counts;
        sum.total = a->total;
        sum.first = a->first;
        sum.last = a->last;
        a->n_counts = 0;
        a->total = 0;
        pthread_mutex_unlock(&a->count_lock);

        for (size_t i = 0; i < sum.n_reasons; i++) {
                names[i] = counts[i].reason;
                values[i] = counts[i].n;
        }
        clock_gettime(CLOCK_REALTIME, &sum.time);
        line = broker_audit_format_summary(&sum);
        if (!line)
                return -ENOMEM;
        return append_line(a, line, strlen(line));
}
