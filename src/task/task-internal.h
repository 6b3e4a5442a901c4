/* Internals shared by the task manager's files (manager.c: lifecycle and pipeline,
 * inspect.c: JSON views). Not for other modules. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

#include "backend.h"
#include "request.h"
#include "runtime.h"
#include "task-store.h"
#include "task.h"

#define TASK_ID_LEN 32

/* Why a pipeline was asked to stop (the value of task.cancel). */
enum {
        TASK_CANCEL_NONE,
        TASK_CANCEL_USER,
        TASK_CANCEL_TIMEOUT,
        TASK_CANCEL_SHUTDOWN,
};

struct task_event {
        enum task_event_type type;
        int64_t time_ns;
        char *message;
};

/* Fields are protected by task_manager.lock unless noted. */
struct task {
        unsigned refs;
        struct task_manager *m;
        char id[TASK_ID_LEN + 1];
        char *name;
        int64_t seq, created_ns;
        struct task_request req; /* the password is wiped once the image is pulled */
        char *image_ref;         /* normalised reference */
        struct task_image image; /* image.id is NULL until pulled */
        enum task_event_type status;
        struct task_event *events;
        size_t n_events;
        char **volumes; /* created (or about to be), recorded in the store first */
        size_t n_volumes;
        struct task_pull_progress progress;
        char progress_phase[16];
        int64_t pull_started_ns;
        atomic_int cancel; /* TASK_CANCEL_*; read by the registry client without the lock */
        bool worker_running;
        bool worker_joinable;
        pthread_t worker;
        bool deleting;
        bool have_state;
        struct runtime_state state; /* last state seen by the watcher */
};

struct task_manager {
        struct task_manager_config cfg;
        char *data_dir;
        const struct task_backend *be;
        struct task_store *store;
        pthread_mutex_t lock;
        pthread_cond_t cond; /* broadcast when a worker ends or the manager stops */
        struct task **tasks; /* by creation order */
        size_t n_tasks;
        int64_t next_seq;
        bool stopping;
        bool has_watcher;
        pthread_t watcher;
};

/* metrics.c; called with the lock held, before the event is appended to t->events. */
void task_metrics_event(const struct task *t, enum task_event_type type, int64_t time_ns);

/* inspect.c; called with the lock held. */
json_t *task_to_json(const struct task *t);
json_t *task_events_to_json(const struct task *t);
