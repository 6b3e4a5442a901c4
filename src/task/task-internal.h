/* Internals shared by the task manager's files (manager.c: the task list, events, queries,
 * cancel, delete and recovery; pipeline.c: creation and the pipeline worker; watcher.c: the
 * runtime watcher; inspect.c: JSON views; metrics.c). Not for other modules. */
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

/* manager.c: references. A task is freed when its last reference goes (task_free only for one
 * that never reached the list); task_unref takes the lock, task_unref_locked needs it held. */
void task_free(struct task *t);
void task_unref_locked(struct task *t);
void task_unref(struct task_manager *m, struct task *t);
/* Appends t to the list, which takes over the caller's reference; with the lock held. */
int tasks_append_locked(struct task_manager *m, struct task *t);

/* manager.c: appends an event to t, in the store then in memory, and makes it t's status; with
 * the lock held (task_event takes it). */
void task_event_locked(struct task_manager *m, struct task *t, enum task_event_type type, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
#define task_event(m, t, ...)                                                                               \
        do {                                                                                                \
                pthread_mutex_lock(&(m)->lock);                                                             \
                task_event_locked(m, t, __VA_ARGS__);                                                       \
                pthread_mutex_unlock(&(m)->lock);                                                           \
        } while (0)

/* manager.c: removes what the pipeline may have made except the image; without the lock. */
int task_cleanup_resources(struct task_manager *m, struct task *t, struct ck_error **reterr);
/* manager.c: 0, or -EAGAIN when the state disk failed (or cannot tell) its integrity check. */
int task_storage_intact(struct task_manager *m, struct ck_error **reterr);

/* watcher.c: records st, the runtime state of t's container, as t's status; with the lock held. */
void task_watch_apply_locked(struct task_manager *m, struct task *t, const struct runtime_state *st);
/* watcher.c: the watcher thread of m, until m->stopping. */
void *task_watcher_main(void *arg);
