/* Prometheus metrics: one process-wide registry of counters, gauges and histograms, and the
 * text exposition format (version 0.0.4) that /metrics serves.
 *
 * A family is declared once with its type, help text and label names; a series (one set of
 * label values) is looked up once and then updated without locks (atomics), so hot paths such
 * as the pull's byte counter cost one atomic add. Label values may come from outside (a
 * broker's refusal reason): they are escaped on output, and each family holds at most
 * CK_METRICS_MAX_SERIES series; past that, lookups return NULL and updates through NULL are
 * no-ops, so a hostile peer cannot grow the registry.
 *
 * Names follow Prometheus conventions: `conker_…_total` for counters, `_seconds` and `_bytes`
 * for units. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define CK_METRICS_MAX_LABELS  3u
#define CK_METRICS_MAX_SERIES  128u
#define CK_METRICS_MAX_BUCKETS 16u
#define CK_METRICS_LABEL_MAX   64u /* longer label values are cut */

enum ck_metric_type {
        CK_METRIC_COUNTER,
        CK_METRIC_GAUGE,
        CK_METRIC_HISTOGRAM,
};

struct ck_metric;

/* Declares a family. label_names: up to CK_METRICS_MAX_LABELS names, NULL-terminated (or NULL
 * for none). buckets: the histogram's upper bounds in increasing order (+Inf is implicit).
 * Declaring the same name again is a no-op returning 0 (so modules may declare what they use
 * without ordering); -EINVAL for a bad name or arguments, -ENOSPC when the registry is full. */
int ck_metrics_declare(const char *name, enum ck_metric_type type, const char *help,
                       const char *const *label_names, const double *buckets, size_t n_buckets);

/* The series of name with these label values (as many as the family has names; NULL for
 * none), created on first use. NULL when the family is unknown, full, or memory runs out. */
struct ck_metric *ck_metric_get(const char *name, const char *const *label_values);

void ck_metric_add(struct ck_metric *m, uint64_t n);   /* counters (and gauges, as a count) */
void ck_metric_set(struct ck_metric *m, double v);     /* gauges */
void ck_metric_observe(struct ck_metric *m, double v); /* histograms */
/* A counter's value (0 for NULL): how a helper process reports what it counted. */
uint64_t ck_metric_count(struct ck_metric *m);

/* Shorthands: get + update. Up to three label values; unused ones NULL. */
void ck_metrics_inc(const char *name, const char *l1, const char *l2);
void ck_metrics_gauge(const char *name, const char *l1, double v);

/* A function called at the start of every render, to set gauges that are read on demand
 * (tasks by status, collateral age). At most 4; -ENOSPC past that. */
int ck_metrics_add_collector(void (*fn)(void *userdata), void *userdata);

/* Appends the exposition of every family (sorted by name) to out. */
int ck_metrics_render(struct ck_buf *out);

/* Content-Type of the exposition. */
#define CK_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Forgets every family and collector (tests only). */
void ck_metrics_reset(void);
