/* The task store: tables `tasks`, `events` and `volumes` in <data>/conker.db (SQLite, WAL).
 *
 * Every change is one transaction (an event and the task's status move together), so a crash
 * leaves either the old or the new state. The request is stored redacted: the registry
 * password never reaches the disk. The store serialises its own transactions; it is safe to
 * call from any thread. */
#pragma once

#include <stdint.h>

#include "error.h"

struct task_store;

struct task_store_event {
        char *type;
        int64_t time_ns;
        char *message;
};

struct task_store_task {
        char *id;
        int64_t seq; /* creation order */
        char *name;
        int64_t created_ns;
        char *status;
        char *request; /* redacted request JSON */
        char *image;   /* task_image JSON once pulled, else NULL */
        struct task_store_event *events;
        size_t n_events;
        char **volumes; /* volumes created for the task (NULL-terminated or NULL) */
        size_t n_volumes;
};
void task_store_task_clear(struct task_store_task *t);

int task_store_open(const char *path, struct task_store **ret, struct ck_error **reterr);
void task_store_free(struct task_store *s);

/* Inserts the task together with its first event. -EEXIST if the ID exists. */
int task_store_insert(struct task_store *s, const struct task_store_task *t,
                      const struct task_store_event *first, struct ck_error **reterr);
/* Appends an event and sets the task's status to its type. -ENOENT for an unknown task. */
int task_store_append_event(struct task_store *s, const char *id, const struct task_store_event *e,
                            struct ck_error **reterr);
int task_store_set_image(struct task_store *s, const char *id, const char *image_json,
                         struct ck_error **reterr);
/* Records a volume before it is created, so a crash between the two still finds it. */
int task_store_add_volume(struct task_store *s, const char *id, const char *name, struct ck_error **reterr);
/* Removes the task, its events and its volume rows. Deleting an absent task is fine. */
int task_store_delete(struct task_store *s, const char *id, struct ck_error **reterr);
/* All tasks with their events and volumes, oldest first. */
int task_store_load(struct task_store *s, struct task_store_task **ret, size_t *ret_n,
                    struct ck_error **reterr);

/* Fault injection for tests: called at named points inside transactions ("append:inserted"). */
extern void (*task_store_test_hook)(const char *point);
