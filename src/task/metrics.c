/* conkerd's task metrics: the families the pipeline updates (events, step durations,
 * attestation outcomes) and the collector that counts tasks by status when /metrics is read.
 * Names and meanings are listed in docs/metrics.md. */
#include <pthread.h>
#include <stddef.h>

#include "metrics.h"
#include "task-internal.h"

static const double step_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

/* Each step is timed from its "-ing" event to the event that ends it. */
static const struct {
        enum task_event_type start, end;
        const char *step;
} steps[] = {
        {TASK_EVENT_PULLING, TASK_EVENT_PULLED, "pull"},
        {TASK_EVENT_ATTESTING, TASK_EVENT_ATTESTED, "attest"},
        {TASK_EVENT_CREATING, TASK_EVENT_CREATED, "create"},
        {TASK_EVENT_STARTING, TASK_EVENT_RUNNING, "start"},
};

static void collect_tasks(void *userdata)
{
        struct task_manager *m = userdata;
        unsigned count[_TASK_EVENT_TYPE_MAX] = {0};

        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < m->n_tasks; i++)
                if (m->tasks[i]->status < _TASK_EVENT_TYPE_MAX)
                        count[m->tasks[i]->status]++;
        pthread_mutex_unlock(&m->lock);
        for (int s = 0; s < _TASK_EVENT_TYPE_MAX; s++)
                ck_metrics_gauge("conker_tasks", task_event_type_to_string(s), count[s]);
}

int task_metrics_init(struct task_manager *m)
{
        static const char *const status[] = {"status", NULL};
        static const char *const type[] = {"type", NULL};
        static const char *const step[] = {"step", NULL};
        static const char *const outcome[] = {"outcome", "reason", NULL};
        int r = 0;

        r = r
                    ?: ck_metrics_declare("conker_tasks", CK_METRIC_GAUGE,
                                          "Tasks known to conkerd, by status.", status, NULL, 0);
        r = r
                    ?: ck_metrics_declare("conker_task_events_total", CK_METRIC_COUNTER,
                                          "Task events recorded, by event type (Pulling ... Running, "
                                          "Failed, Cancelled).",
                                          type, NULL, 0);
        r = r
                    ?: ck_metrics_declare(
                               "conker_task_step_duration_seconds", CK_METRIC_HISTOGRAM,
                               "Duration of completed pipeline steps (pull, attest, create, start).", step,
                               step_buckets, sizeof(step_buckets) / sizeof(step_buckets[0]));
        r = r
                    ?: ck_metrics_declare("conker_attestations_total", CK_METRIC_COUNTER,
                                          "Attestations to KMS endpoints, by outcome (released, refused, "
                                          "error) and the "
                                          "broker's reason code.",
                                          outcome, NULL, 0);
        r = r ?: ck_metrics_add_collector(collect_tasks, m);
        return r;
}

void task_metrics_event(const struct task *t, enum task_event_type type, int64_t time_ns)
{
        ck_metrics_inc("conker_task_events_total", task_event_type_to_string(type), NULL);
        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
                if (steps[s].end != type)
                        continue;
                /* The most recent start event of this step (a restart repeats Starting). */
                for (size_t i = t->n_events; i-- > 0;)
                        if (t->events[i].type == steps[s].start) {
                                const char *v[] = {steps[s].step, NULL};
                                ck_metric_observe(ck_metric_get("conker_task_step_duration_seconds", v),
                                                  (double)(time_ns - t->events[i].time_ns) / 1e9);
                                break;
                        }
        }
}
