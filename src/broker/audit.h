/* The broker's audit log: append-only JSON lines. A release, and a refusal given after the
 * client's quote verified (a TD the policy turned away, or genuine evidence presented on the
 * wrong session), is one line each; refusals before that (no certificate, malformed evidence, a
 * quote that does not verify: anyone can send these) are counted and written as one summary line
 * per interval (broker_audit_flush_refusals()), so that a flood of them costs one write and one
 * fsync per interval instead of one each.
 *
 * A decision line: {"time","peer","decision":"release"|"refuse","reason","secretId","pinned",
 * "taskConfigDigest","tee","simulated","tcbStatus","tcbEvaluationNumber","fmspc","mrtd",
 * "rtmr0".."rtmr3","appId"} (fields the broker did not learn, e.g. measurements of a quote that
 * did not verify, are omitted). "pinned" lists what the deciding rule pinned (policy.h
 * broker_pin_name(): "mrtd", "rtmr1", "image", ...), so a reader sees how strong a release was. The
 * secret itself never appears. A summary line:
 * {"time","decision":"refuse-summary","from","to","refusals":N,"reasons":{"<reason>":n,...}}
 * (from/to: the first and last refusal counted). The file is opened O_APPEND and every line is
 * one write(), so concurrent writers and readers never see interleaved or partial lines.
 *
 * fsync policy: "always" (the default) fdatasync()s after each line, so an acknowledged release
 * is on disk before the secret leaves the broker; "never" leaves it to the kernel (benchmarks,
 * tmpfs). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"
#include "verify.h"

#define BROKER_AUDIT_DEFAULT_PATH "/var/log/conker-broker/audit.jsonl"
/* How often the summary of unauthenticated refusals is written (when there were any). */
#define BROKER_AUDIT_SUMMARY_DEFAULT_SECS 60u

enum broker_audit_fsync {
        BROKER_AUDIT_FSYNC_ALWAYS,
        BROKER_AUDIT_FSYNC_NEVER,
        _BROKER_AUDIT_FSYNC_MAX,
};
const char *broker_audit_fsync_to_string(enum broker_audit_fsync f);
int broker_audit_fsync_from_string(const char *s);

struct broker_audit; /* opaque */

struct broker_audit_entry {
        struct timespec time;
        const char *peer; /* "addr:port" */
        bool release;
        const char *reason;                 /* refusals: the reason code */
        const char *secret_id;              /* releases: the secret released */
        const struct attest_result *result; /* may be NULL (nothing verified) */
        const uint8_t *app_id;              /* may be NULL */
        size_t app_id_len;
        unsigned pinned;                /* BROKER_PIN_* bits; written when result is set */
        const char *task_config_digest; /* "sha256:<hex>"; NULL or "" when none */
};

/* Opens (creating with mode 0600, parent directories 0700) path for appending. */
int broker_audit_open(const char *path, enum broker_audit_fsync fsync_policy, struct broker_audit **ret,
                      struct ck_error **reterr);
/* Appends one line; thread-safe. */
int broker_audit_append(struct broker_audit *a, const struct broker_audit_entry *e);
/* The line for e, without the trailing newline (malloc'd; NULL on OOM). */
char *broker_audit_format(const struct broker_audit_entry *e);

/* Counts one refusal of an unauthenticated client under reason (a short code); nothing is
 * written until broker_audit_flush_refusals(). Thread-safe, no I/O. */
void broker_audit_count_refusal(struct broker_audit *a, const char *reason);
/* Writes one summary line of the refusals counted since the last call (nothing when there were
 * none) and resets the counts. Thread-safe. */
int broker_audit_flush_refusals(struct broker_audit *a);

struct broker_audit_summary {
        struct timespec time, first, last;
        uint64_t total;
        const char *const *reasons; /* n_reasons codes and their counts, in first-seen order */
        const uint64_t *counts;
        size_t n_reasons;
};
/* The summary line, without the trailing newline (malloc'd; NULL on OOM). */
char *broker_audit_format_summary(const struct broker_audit_summary *sum);
void broker_audit_close(struct broker_audit *a);
DEFINE_POINTER_CLEANUP(struct broker_audit, broker_audit_close, broker_audit_close)
