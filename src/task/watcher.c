/* The runtime watcher: a thread that reads the state of each task's container every
 * watch-interval, records its exits and restarts as events, fails a task whose container exits
 * or restarts on a tampered state disk, and cancels pulls that overrun pull-timeout. Locking and
 * references as described in manager.c. */
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "monotonic.h"
#include "task-internal.h"

/* ---- the watcher ---- */

static enum task_event_type status_from_runtime(enum runtime_status s, enum task_event_type current)
{
        switch (s) {
        case RUNTIME_RUNNING:
                return TASK_EVENT_RUNNING;
        case RUNTIME_RESTARTING:
                return TASK_EVENT_RESTARTING;
        case RUNTIME_EXITED:
                return TASK_EVENT_EXITED;
        default:
                return current;
        }
}

void task_watch_apply_locked(struct task_manager *m, struct task *t, const struct runtime_state *st)
{
        enum task_event_type next = status_from_runtime(st->status, t->status);
        bool restarted = t->have_state && st->restart_count > t->state.restart_count;

        if (next != t->status || (restarted && next == TASK_EVENT_RUNNING)) {
                switch (next) {
                case TASK_EVENT_EXITED:
                        task_event_locked(m, t, next, "container exited with code %d%s", st->exit_code,
                                          st->oom_killed ? " (killed: out of memory)" : "");
                        break;
                case TASK_EVENT_RESTARTING:
                        task_event_locked(m, t, next,
                                          "container exited with code %d; restarting (restart %u)",
                                          st->exit_code, st->restart_count + 1);
                        break;
                default:
                        task_event_locked(m, t, next, "container is running (pid %d, restarts %u)",
                                          (int)st->pid, st->restart_count);
                        break;
                }
        }
        t->state = *st;
        t->have_state = true;
}

/* The watcher saw t's container exit or restart on a tampered state disk: the task ends Failed
 * and its container, shim and resources go, so nothing runs again from altered bytes. */
static void watch_fail_tampered(struct task_manager *m, struct task *t, const char *reason)
{
        _cleanup_error_ struct ck_error *e = NULL;
        int r;

        log_error("task %s (%s): %s", t->id, t->name, reason);
        r = task_cleanup_resources(m, t, &e);
        pthread_mutex_lock(&m->lock);
        task_event_locked(m, t, TASK_EVENT_FAILED, "%s", reason);
        if (r < 0)
                task_event_locked(m, t, t->status, "cleanup incomplete (DELETE retries it): %s",
                                  ck_error_message(e, r));
        t->deleting = false;
        pthread_mutex_unlock(&m->lock);
}

void task_manager_watch_once(struct task_manager *m)
{
        struct task **watch = NULL;
        size_t n = 0;
        int64_t now = task_time_now_ns();
        _cleanup_error_ struct ck_error *te = NULL;
        int tr = task_storage_intact(m, &te);
        const char *tampered = tr < 0 ? ck_error_message(te, tr) : NULL;

        pthread_mutex_lock(&m->lock);
        watch = calloc(m->n_tasks + 1, sizeof(*watch));
        for (size_t i = 0; i < m->n_tasks; i++) {
                struct task *t = m->tasks[i];
                if (m->cfg.pull_timeout_s && t->pull_started_ns &&
                    now - t->pull_started_ns > (int64_t)m->cfg.pull_timeout_s * 1000000000) {
                        int expected = TASK_CANCEL_NONE;
                        atomic_compare_exchange_strong(&t->cancel, &expected, TASK_CANCEL_TIMEOUT);
                }
                if (!watch || t->deleting || t->worker_running)
                        continue;
                if (t->status == TASK_EVENT_RUNNING || t->status == TASK_EVENT_RESTARTING ||
                    t->status == TASK_EVENT_EXITED) {
                        t->refs++;
                        watch[n++] = t;
                }
        }
        pthread_mutex_unlock(&m->lock);

        for (size_t i = 0; i < n; i++) {
                struct runtime_state st = {0};
                int r = m->be->container_state(m->be->userdata, watch[i]->id, &st, NULL);

                struct task *t = watch[i];
                bool fail = false;

                pthread_mutex_lock(&m->lock);
                if (r >= 0 && !t->deleting) {
                        fail = tampered && (st.status == RUNTIME_EXITED || st.status == RUNTIME_RESTARTING ||
                                            (t->have_state && st.restart_count > t->state.restart_count));
                        task_watch_apply_locked(m, t, &st);
                        /* Held off DELETE (-EBUSY) while the container is removed. */
                        t->deleting = fail;
                }
                pthread_mutex_unlock(&m->lock);
                if (fail)
                        watch_fail_tampered(m, t, tampered);
                task_unref(m, t);
        }
        free(watch);
}

void *task_watcher_main(void *arg)
{
        struct task_manager *m = arg;

        pthread_mutex_lock(&m->lock);
        while (!m->stopping) {
                struct timespec ts;
                pthread_mutex_unlock(&m->lock);
                task_manager_watch_once(m);
                pthread_mutex_lock(&m->lock);
                ts = ck_deadline_ns(CLOCK_MONOTONIC, (int64_t)m->cfg.watch_interval_ms * 1000000);
                if (!m->stopping)
                        pthread_cond_timedwait(&m->cond, &m->lock, &ts);
        }
        pthread_mutex_unlock(&m->lock);
        return NULL;
}
