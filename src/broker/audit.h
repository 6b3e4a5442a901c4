/* The broker's audit log: one JSON line per release or refusal, append-only.
 *
 * Each line: {"time","peer","decision":"release"|"refuse","reason","secretId","pinned",
 * "taskConfigDigest","tee","simulated","tcbStatus","tcbEvaluationNumber","fmspc","mrtd",
 * "rtmr0".."rtmr3","appId"} (fields the broker did not learn, e.g. measurements of a quote that
 * did not verify, are omitted). "pinned" lists what the deciding rule pinned (policy.h
 * broker_pin_name(): "mrtd", "rtmr1", "image", ...), so a reader sees how strong a release was. The
 * secret itself never appears. The file is opened O_APPEND and every line is one write(), so
 * concurrent writers and readers never see interleaved or partial lines.
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
void broker_audit_close(struct broker_audit *a);
DEFINE_POINTER_CLEANUP(struct broker_audit, broker_audit_close, broker_audit_close)
