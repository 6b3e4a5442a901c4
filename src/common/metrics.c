/* The process-wide Prometheus registry and its text exposition. The registry is a fixed array
 * of families guarded by one mutex for declaration, lookup and rendering; series values are
 * atomics, so updates through a held struct ck_metric never lock. Series are never freed while
 * the process runs (their number is bounded), which is what lets callers keep the pointers. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define MAX_FAMILIES   64u
#define MAX_COLLECTORS 4u

struct ck_metric {
        struct family *fam;
        char *labels[CK_METRICS_MAX_LABELS];
        _Atomic uint64_t value; /* counter: count; gauge: double bits */
        _Atomic uint64_t sum;   /* histogram: double bits */
        _Atomic uint64_t count; /* histogram */
        _Atomic uint64_t buckets[CK_METRICS_MAX_BUCKETS];
};

struct family {
        char *name, *help;
        enum ck_metric_type type;
        char *label_names[CK_METRICS_MAX_LABELS];
        size_t n_labels;
        double bounds[CK_METRICS_MAX_BUCKETS];
        size_t n_buckets;
        struct ck_metric *series[CK_METRICS_MAX_SERIES];
        size_t n_series;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct family *families[MAX_FAMILIES];
static size_t n_families;
static struct {
        void (*fn)(void *);
        void *userdata;
} collectors[MAX_COLLECTORS];
static size_t n_collectors;

static bool name_valid(const char *s)
{
        if (!s || !*s || strlen(s) > 128)
                return false;
        for (const char *p = s; *p; p++) {
                bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
                if (!alpha && !(p != s && *p >= '0' && *p <= '9'))
                        return false;
        }
        return true;
}

static struct family *find_locked(const char *name)
{
        for (size_t i = 0; i < n_families; i++)
                if (strcmp(families[i]->name, name) == 0)
                        return families[i];
        return NULL;
}

static void family_free(struct family *f)
{
        if (!f)
                return;
        for (size_t i = 0; i < f->n_series; i++) {
                for (size_t j = 0; j < f->n_labels; j++)
                        free(f->series[i]->labels[j]);
                free(f->series[i]);
        }
        for (size_t j = 0; j < f->n_labels; j++)
                free(f->label_names[j]);
        free(f->name);
        free(f->help);
        free(f);
}

int ck_metrics_declare(const char *name, enum ck_metric_type type, const char *help,
                       const char *const *label_names, const double *buckets, size_t n_buckets)
{
        struct family *f;
        int r = 0;

        if (!name_valid(name) || !help || n_buckets > CK_METRICS_MAX_BUCKETS ||
            (type == CK_METRIC_HISTOGRAM) != (n_buckets > 0))
                return -EINVAL;
        for (size_t i = 1; i < n_buckets; i++)
                if (!(buckets[i] > buckets[i - 1]))
                        return -EINVAL;
        pthread_mutex_lock(&lock);
        if (find_locked(name))
                goto out;
        if (n_families >= MAX_FAMILIES) {
                r = -ENOSPC;
                goto out;
        }
        f = calloc(1, sizeof(*f));
        if (!f) {
                r = -ENOMEM;
                goto out;
        }
        f->type = type;
        f->name = strdup(name);
        f->help = strdup(help);
        r = f->name && f->help ? 0 : -ENOMEM;
        for (size_t i = 0; r == 0 && label_names && label_names[i]; i++) {
                if (i >= CK_METRICS_MAX_LABELS || !name_valid(label_names[i])) {
                        r = -EINVAL;
                        break;
                }
                f->label_names[i] = strdup(label_names[i]);
                f->n_labels = i + 1;
                if (!f->label_names[i])
                        r = -ENOMEM;
        }
        if (r < 0) {
                family_free(f);
                goto out;
        }
        if (n_buckets) /* buckets may be NULL then, and memcpy() must not see NULL */
                memcpy(f->bounds, buckets, n_buckets * sizeof(double));
        f->n_buckets = n_buckets;
        families[n_families++] = f;
out:
        pthread_mutex_unlock(&lock);
        return r;
}

static bool labels_equal(const struct ck_metric *m, const char *const *values, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                const char *v = values[i] ? values[i] : "";

                /* Stored values are cut at CK_METRICS_LABEL_MAX; compare the same cut. */
                if (strncmp(m->labels[i], v, CK_METRICS_LABEL_MAX) != 0 ||
                    strlen(m->labels[i]) != strnlen(v, CK_METRICS_LABEL_MAX))
                        return false;
        }
        return true;
}

struct ck_metric *ck_metric_get(const char *name, const char *const *label_values)
{
        struct ck_metric *m = NULL;
        struct family *f;

        if (!name)
                return NULL;
        pthread_mutex_lock(&lock);
        f = find_locked(name);
        if (!f || (f->n_labels > 0 && !label_values))
                goto out;
        for (size_t i = 0; i < f->n_series; i++)
                if (labels_equal(f->series[i], label_values, f->n_labels)) {
                        m = f->series[i];
                        goto out;
                }
        if (f->n_series >= CK_METRICS_MAX_SERIES)
                goto out;
        m = calloc(1, sizeof(*m));
        if (!m)
                goto out;
        m->fam = f;
        for (size_t i = 0; i < f->n_labels; i++) {
                m->labels[i] = strndup(label_values[i] ? label_values[i] : "", CK_METRICS_LABEL_MAX);
                if (!m->labels[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(m->labels[j]);
                        free(m);
                        m = NULL;
                        goto out;
                }
        }
        f->series[f->n_series++] = m;
out:
        pthread_mutex_unlock(&lock);
        return m;
}

static uint64_t dbits(double v)
{
        uint64_t u;

        memcpy(&u, &v, sizeof(u));
        return u;
}

static double bitsd(uint64_t u)
{
        double v;

        memcpy(&v, &u, sizeof(v));
        return v;
}

uint64_t ck_metric_count(struct ck_metric *m)
{
        return m && m->fam->type == CK_METRIC_COUNTER ? atomic_load(&m->value) : 0;
}

void ck_metric_add(struct ck_metric *m, uint64_t n)
{
        if (!m)
                return;
        if (m->fam->type == CK_METRIC_GAUGE) {
                uint64_t old = atomic_load(&m->value);
                while (!atomic_compare_exchange_weak(&m->value, &old, dbits(bitsd(old) + (double)n)))
                        ;
                return;
        }
        atomic_fetch_add(&m->value, n);
}

void ck_metric_set(struct ck_metric *m, double v)
{
        if (m && m->fam->type == CK_METRIC_GAUGE)
                atomic_store(&m->value, dbits(v));
}

void ck_metric_observe(struct ck_metric *m, double v)
{
        uint64_t old;

        if (!m || m->fam->type != CK_METRIC_HISTOGRAM || isnan(v))
                return;
        for (size_t i = 0; i < m->fam->n_buckets; i++)
                if (v <= m->fam->bounds[i]) {
                        atomic_fetch_add(&m->buckets[i], 1);
                        break;
                }
        old = atomic_load(&m->sum);
        while (!atomic_compare_exchange_weak(&m->sum, &old, dbits(bitsd(old) + v)))
                ;
        atomic_fetch_add(&m->count, 1);
}

void ck_metrics_inc(const char *name, const char *l1, const char *l2)
{
        const char *v[] = {l1, l2, NULL};

        ck_metric_add(ck_metric_get(name, v), 1);
}

void ck_metrics_gauge(const char *name, const char *l1, double v)
{
        const char *vals[] = {l1, NULL};

        ck_metric_set(ck_metric_get(name, vals), v);
}

int ck_metrics_add_collector(void (*fn)(void *userdata), void *userdata)
{
        int r = 0;

        pthread_mutex_lock(&lock);
        if (n_collectors >= MAX_COLLECTORS)
                r = -ENOSPC;
        else
                collectors[n_collectors++] = (typeof(collectors[0])){fn, userdata};
        pthread_mutex_unlock(&lock);
        return r;
}

/* Label values and help text escaped as the text format requires. */
static int append_escaped(struct ck_buf *out, const char *s, bool quote)
{
        int r = 0;

        for (; *s && r == 0; s++) {
                if (*s == '\\')
                        r = ck_buf_append_str(out, "\\\\");
                else if (*s == '\n')
                        r = ck_buf_append_str(out, "\\n");
                else if (*s == '"' && quote)
                        r = ck_buf_append_str(out, "\\\"");
                else
                        r = ck_buf_append(out, s, 1);
        }
        return r;
}

/* {a="x",b="y"} plus an optional extra pair (le for buckets); nothing when there are none. */
static int append_labels(struct ck_buf *out, const struct ck_metric *m, const char *extra_name,
                         const char *extra)
{
        const struct family *f = m->fam;
        int r = 0;

        if (f->n_labels == 0 && !extra_name)
                return 0;
        r = ck_buf_append_str(out, "{");
        for (size_t i = 0; i < f->n_labels && r == 0; i++) {
                r = ck_buf_printf(out, "%s%s=\"", i ? "," : "", f->label_names[i]);
                if (r == 0)
                        r = append_escaped(out, m->labels[i], true);
                if (r == 0)
                        r = ck_buf_append_str(out, "\"");
        }
        if (r == 0 && extra_name)
                r = ck_buf_printf(out, "%s%s=\"%s\"", f->n_labels ? "," : "", extra_name, extra);
        if (r == 0)
                r = ck_buf_append_str(out, "}");
        return r;
}

/* The shortest of %.15g and %.17g that reads back as v (0.1 rather than 0.10000000000000001). */
static void format_double(char *buf, size_t size, double v)
{
        snprintf(buf, size, "%.15g", v);
        if (strtod(buf, NULL) != v)
                snprintf(buf, size, "%.17g", v);
}

static int render_series(struct ck_buf *out, const struct ck_metric *m)
{
        const struct family *f = m->fam;
        uint64_t cum = 0;
        char le[32], num[32];
        int r;

        if (f->type == CK_METRIC_COUNTER || f->type == CK_METRIC_GAUGE) {
                r = ck_buf_append_str(out, f->name);
                if (r == 0)
                        r = append_labels(out, m, NULL, NULL);
                if (r == 0 && f->type == CK_METRIC_COUNTER)
                        r = ck_buf_printf(out, " %llu\n", (unsigned long long)atomic_load(&m->value));
                else if (r == 0) {
                        format_double(num, sizeof(num), bitsd(atomic_load(&m->value)));
                        r = ck_buf_printf(out, " %s\n", num);
                }
                return r;
        }
        r = 0;
        for (size_t i = 0; i <= f->n_buckets && r == 0; i++) {
                if (i < f->n_buckets) {
                        cum += atomic_load(&m->buckets[i]);
                        format_double(le, sizeof(le), f->bounds[i]);
                } else {
                        cum = atomic_load(&m->count);
                        snprintf(le, sizeof(le), "+Inf");
                }
                r = ck_buf_printf(out, "%s_bucket", f->name);
                if (r == 0)
                        r = append_labels(out, m, "le", le);
                if (r == 0)
                        r = ck_buf_printf(out, " %llu\n", (unsigned long long)cum);
        }
        if (r == 0)
                r = ck_buf_printf(out, "%s_sum", f->name);
        if (r == 0)
                r = append_labels(out, m, NULL, NULL);
        format_double(num, sizeof(num), bitsd(atomic_load(&m->sum)));
        if (r == 0)
                r = ck_buf_printf(out, " %s\n%s_count", num, f->name);
        if (r == 0)
                r = append_labels(out, m, NULL, NULL);
        if (r == 0)
                r = ck_buf_printf(out, " %llu\n", (unsigned long long)atomic_load(&m->count));
        return r;
}

static int cmp_family(const void *a, const void *b)
{
        return strcmp((*(struct family *const *)a)->name, (*(struct family *const *)b)->name);
}

int ck_metrics_render(struct ck_buf *out)
{
        static const char *const type_names[] = {"counter", "gauge", "histogram"};
        struct family *sorted[MAX_FAMILIES];
        size_t n, nc;
        int r = 0;

        /* Collectors take their own locks (a task list, say) and then set gauges: they run
         * before ours is taken. */
        pthread_mutex_lock(&lock);
        nc = n_collectors;
        pthread_mutex_unlock(&lock);
        for (size_t i = 0; i < nc; i++)
                collectors[i].fn(collectors[i].userdata);

        pthread_mutex_lock(&lock);
        n = n_families;
        memcpy(sorted, families, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), cmp_family);
        for (size_t i = 0; i < n && r == 0; i++) {
                const struct family *f = sorted[i];

                r = ck_buf_printf(out, "# HELP %s ", f->name);
                if (r == 0)
                        r = append_escaped(out, f->help, false);
                if (r == 0)
                        r = ck_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
                for (size_t j = 0; j < f->n_series && r == 0; j++)
                        r = render_series(out, f->series[j]);
        }
        pthread_mutex_unlock(&lock);
        return r;
}

void ck_metrics_reset(void)
{
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < n_families; i++)
                family_free(families[i]);
        n_families = 0;
        n_collectors = 0;
        pthread_mutex_unlock(&lock);
}
