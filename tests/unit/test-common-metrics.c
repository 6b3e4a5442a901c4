/* Unit tests for the Prometheus registry: exact exposition text, escaping, histogram buckets,
 * the series cap and collectors. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "metrics.h"

static char *render(void)
{
        struct ck_buf b;
        uint8_t *d;
        size_t n;

        ck_buf_init(&b, 1 << 20);
        assert_int_equal(ck_metrics_render(&b), 0);
        assert_int_equal(ck_buf_append(&b, "", 1), 0);
        d = ck_buf_take(&b, &n);
        return (char *)d;
}

static int teardown(void **state)
{
        (void)state;
        ck_metrics_reset();
        return 0;
}

static void test_counter_and_gauge_text(void **state)
{
        const char *const labels[] = {"reason", NULL};
        _cleanup_free_ char *text = NULL;

        (void)state;
        assert_int_equal(ck_metrics_declare("conker_b_total", CK_METRIC_COUNTER, "Bs.", labels, NULL, 0), 0);
        assert_int_equal(
                ck_metrics_declare("conker_a", CK_METRIC_GAUGE, "As\nwith \\ newline.", NULL, NULL, 0), 0);
        /* A second declaration is a no-op. */
        assert_int_equal(ck_metrics_declare("conker_a", CK_METRIC_GAUGE, "other", NULL, NULL, 0), 0);
        ck_metrics_inc("conker_b_total", "x\"y\\z\n", NULL);
        ck_metrics_inc("conker_b_total", "x\"y\\z\n", NULL);
        ck_metrics_inc("conker_b_total", "plain", NULL);
        ck_metric_set(ck_metric_get("conker_a", NULL), 2.5);
        ck_metrics_inc("conker_unknown_total", NULL, NULL); /* ignored */

        text = render();
        assert_string_equal(text, "# HELP conker_a As\\nwith \\\\ newline.\n"
                                  "# TYPE conker_a gauge\n"
                                  "conker_a 2.5\n"
                                  "# HELP conker_b_total Bs.\n"
                                  "# TYPE conker_b_total counter\n"
                                  "conker_b_total{reason=\"x\\\"y\\\\z\\n\"} 2\n"
                                  "conker_b_total{reason=\"plain\"} 1\n");
}

static void test_histogram(void **state)
{
        const double buckets[] = {0.1, 1, 10};
        const char *const labels[] = {"step", NULL};
        const char *const v[] = {"pull", NULL};
        _cleanup_free_ char *text = NULL;
        struct ck_metric *m;

        (void)state;
        assert_int_equal(
                ck_metrics_declare("conker_h_seconds", CK_METRIC_HISTOGRAM, "H.", labels, buckets, 3), 0);
        m = ck_metric_get("conker_h_seconds", v);
        assert_non_null(m);
        ck_metric_observe(m, 0.05);
        ck_metric_observe(m, 0.5);
        ck_metric_observe(m, 0.5);
        ck_metric_observe(m, 100);
        text = render();
        assert_string_equal(text, "# HELP conker_h_seconds H.\n"
                                  "# TYPE conker_h_seconds histogram\n"
                                  "conker_h_seconds_bucket{step=\"pull\",le=\"0.1\"} 1\n"
                                  "conker_h_seconds_bucket{step=\"pull\",le=\"1\"} 3\n"
                                  "conker_h_seconds_bucket{step=\"pull\",le=\"10\"} 3\n"
                                  "conker_h_seconds_bucket{step=\"pull\",le=\"+Inf\"} 4\n"
                                  "conker_h_seconds_sum{step=\"pull\"} 101.05\n"
                                  "conker_h_seconds_count{step=\"pull\"} 4\n");
}

static void test_bad_declarations(void **state)
{
        const double unsorted[] = {1, 0.5};
        const char *const bad_label[] = {"1x", NULL};

        (void)state;
        assert_int_equal(ck_metrics_declare("1bad", CK_METRIC_COUNTER, "x", NULL, NULL, 0), -EINVAL);
        assert_int_equal(ck_metrics_declare("bad-name", CK_METRIC_COUNTER, "x", NULL, NULL, 0), -EINVAL);
        assert_int_equal(ck_metrics_declare("h", CK_METRIC_HISTOGRAM, "x", NULL, unsorted, 2), -EINVAL);
        assert_int_equal(ck_metrics_declare("h", CK_METRIC_HISTOGRAM, "x", NULL, NULL, 0), -EINVAL);
        assert_int_equal(ck_metrics_declare("c", CK_METRIC_COUNTER, "x", bad_label, NULL, 0), -EINVAL);
}

static void test_series_cap(void **state)
{
        const char *const labels[] = {"reason", NULL};
        char reason[32];
        char long_value[200];

        (void)state;
        assert_int_equal(ck_metrics_declare("conker_r_total", CK_METRIC_COUNTER, "R.", labels, NULL, 0), 0);
        /* A hostile peer choosing label values cannot grow the registry past the cap. */
        for (unsigned i = 0; i < CK_METRICS_MAX_SERIES + 50; i++) {
                const char *v[] = {reason, NULL};
                snprintf(reason, sizeof(reason), "r%u", i);
                if (i < CK_METRICS_MAX_SERIES)
                        assert_non_null(ck_metric_get("conker_r_total", v));
                else
                        assert_null(ck_metric_get("conker_r_total", v));
        }
        ck_metrics_reset();
        assert_int_equal(ck_metrics_declare("conker_r_total", CK_METRIC_COUNTER, "R.", labels, NULL, 0), 0);
        /* Over-long values are cut, and the same long value finds the same series. */
        memset(long_value, 'a', sizeof(long_value) - 1);
        long_value[sizeof(long_value) - 1] = 0;
        {
                const char *v[] = {long_value, NULL};
                struct ck_metric *a = ck_metric_get("conker_r_total", v);
                assert_non_null(a);
                assert_ptr_equal(ck_metric_get("conker_r_total", v), a);
        }
}

static void collect(void *userdata)
{
        ck_metrics_gauge("conker_tasks", "Running", (double)*(int *)userdata);
}

static void test_collector(void **state)
{
        const char *const labels[] = {"status", NULL};
        _cleanup_free_ char *text = NULL;
        int running = 7;

        (void)state;
        assert_int_equal(ck_metrics_declare("conker_tasks", CK_METRIC_GAUGE, "Tasks.", labels, NULL, 0), 0);
        assert_int_equal(ck_metrics_add_collector(collect, &running), 0);
        text = render();
        assert_non_null(strstr(text, "conker_tasks{status=\"Running\"} 7\n"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_counter_and_gauge_text, teardown),
                cmocka_unit_test_teardown(test_histogram, teardown),
                cmocka_unit_test_teardown(test_bad_declarations, teardown),
                cmocka_unit_test_teardown(test_series_cap, teardown),
                cmocka_unit_test_teardown(test_collector, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
