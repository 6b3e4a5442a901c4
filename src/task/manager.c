/* The task manager: the task list and its references, events, the cleanup and the state disk's
 * check that the other files of the module share, queries, cancel, delete, and loading and
 * recovery after a restart. A task's creation and its pipeline worker are in pipeline.c, the
 * runtime watcher in watcher.c.
 *
 * Locking: one mutex (m->lock) protects the task list and every task's fields except
 * task.cancel (atomic). Backend calls that may block (pull, mount, run, stop) are made without
 * the lock; events are appended with it held so that the store and memory agree on the order.
 * A task is freed when its last reference goes: the list, its pipeline worker and any caller in
 * between each hold one. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "image-info.h"
#include "json.h"
#include "log.h"
#include "monotonic.h"
#include "parse.h"
#include "task-internal.h"

/* ---- tasks and references ---- */

void task_free(struct task *t)
{
        free(t->name);
        task_request_clear(&t->req);
        free(t->image_ref);
        task_image_clear(&t->image);
        for (size_t i = 0; i < t->n_events; i++)
                free(t->events[i].message);
        free(t->events);
        for (size_t i = 0; i < t->n_volumes; i++)
                free(t->volumes[i]);
        free(t->volumes);
        free(t);
}

void task_unref_locked(struct task *t)
{
        if (--t->refs == 0)
                task_free(t);
}

void task_unref(struct task_manager *m, struct task *t)
{
        pthread_mutex_lock(&m->lock);
        task_unref_locked(t);
        pthread_mutex_unlock(&m->lock);
}

static bool is_hex(const char *s)
{
        return *s && strspn(s, "0123456789abcdef") == strlen(s);
}

/* Finds a task by ID, name or unique ID prefix; NULL ref is the newest. */
static int task_find_locked(struct task_manager *m, const char *ref, struct task **ret,
                            struct ck_error **reterr)
{
        struct task *found = NULL;

        if (!ref) {
                if (m->n_tasks == 0)
                        return ck_error_set(reterr, -ENOENT, "there is no task");
                *ret = m->tasks[m->n_tasks - 1];
                return 0;
        }
        for (size_t i = 0; i < m->n_tasks; i++)
                if (strcmp(m->tasks[i]->id, ref) == 0) {
                        *ret = m->tasks[i];
                        return 0;
                }
        /* Names: a failed task may share its name with a newer one; the newest wins. */
        for (size_t i = m->n_tasks; i-- > 0;)
                if (strcmp(m->tasks[i]->name, ref) == 0) {
                        *ret = m->tasks[i];
                        return 0;
                }
        if (strlen(ref) >= 12 && strlen(ref) < TASK_ID_LEN && is_hex(ref))
                for (size_t i = 0; i < m->n_tasks; i++)
                        if (ck_startswith(m->tasks[i]->id, ref)) {
                                if (found)
                                        return ck_error_set(reterr, -EINVAL,
                                                            "task ID prefix %s is ambiguous", ref);
                                found = m->tasks[i];
                        }
        if (!found)
                return ck_error_set(reterr, -ENOENT, "no such task: %.80s", ref);
        *ret = found;
        return 0;
}

int tasks_append_locked(struct task_manager *m, struct task *t)
{
        struct task **v = realloc(m->tasks, (m->n_tasks + 1) * sizeof(*v));

        if (!v)
                return -ENOMEM;
        m->tasks = v;
        v[m->n_tasks++] = t;
        return 0;
}

static void tasks_remove_locked(struct task_manager *m, struct task *t)
{
        for (size_t i = 0; i < m->n_tasks; i++)
                if (m->tasks[i] == t) {
                        memmove(&m->tasks[i], &m->tasks[i + 1], (m->n_tasks - i - 1) * sizeof(*m->tasks));
                        m->n_tasks--;
                        task_unref_locked(t);
                        return;
                }
}

/* ---- events ---- */

void task_event_locked(struct task_manager *m, struct task *t, enum task_event_type type, const char *fmt,
                       ...)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct task_event *n;
        char *msg = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                msg = NULL;

        struct task_store_event se = {(char *)task_event_type_to_string(type), task_time_now_ns(),
                                      msg ? msg : (char *)""};
        r = task_store_append_event(m->store, t->id, &se, &e);
        if (r < 0)
                log_error("task %s: cannot record event %s: %s", t->id, se.type, ck_error_message(e, r));

        log_info("task %s (%s): %s: %s", t->id, t->name, se.type, se.message);
        task_metrics_event(t, type, se.time_ns);
        n = realloc(t->events, (t->n_events + 1) * sizeof(*n));
        if (!n) {
                free(msg);
                t->status = type;
                return;
        }
        t->events = n;
        n[t->n_events++] = (struct task_event){type, se.time_ns, msg ? msg : strdup("")};
        t->status = type;
}

/* ---- cleanup shared by failure, cancel, recovery and delete ---- */

/* Removes what the pipeline may have made, except the image (kept as a cache until the task is
 * deleted). Every step is idempotent, so it runs in full whatever step the task reached. */
int task_cleanup_resources(struct task_manager *m, struct task *t, struct ck_error **reterr)
{
        const struct task_backend *be = m->be;
        _cleanup_error_ struct ck_error *e = NULL;
        char **volumes;
        size_t n;
        int r, ret = 0;

        r = be->container_delete(be->userdata, t->id, &e);
        if (r < 0 && r != -ENOENT) {
                log_error("task %s: removing the container: %s", t->id, ck_error_message(e, r));
                ret = ret ?: ck_error_set(reterr, r, "removing the container: %s", ck_error_message(e, r));
        }
        ck_error_free(TAKE_PTR(e));

        r = be->rootfs_umount(be->userdata, t->id, t->image.id, &e);
        if (r < 0 && r != -ENOENT) {
                log_error("task %s: unmounting the rootfs: %s", t->id, ck_error_message(e, r));
                ret = ret ?: ck_error_set(reterr, r, "unmounting the rootfs: %s", ck_error_message(e, r));
        }
        ck_error_free(TAKE_PTR(e));

        pthread_mutex_lock(&m->lock);
        volumes = t->volumes;
        n = t->n_volumes;
        pthread_mutex_unlock(&m->lock);
        /* The volume list only grows in the pipeline, which is not running now. */
        for (size_t i = 0; i < n; i++) {
                r = be->volume_delete(be->userdata, t->id, volumes[i], &e);
                if (r < 0 && r != -ENOENT) {
                        log_error("task %s: deleting volume %s: %s", t->id, volumes[i],
                                  ck_error_message(e, r));
                        ret = ret
                                      ?: ck_error_set(reterr, r, "deleting volume %s: %s", volumes[i],
                                                      ck_error_message(e, r));
                }
                ck_error_free(TAKE_PTR(e));
        }

        r = be->secret_dir_remove(be->userdata, t->id, &e);
        if (r < 0 && r != -ENOENT) {
                log_error("task %s: removing the secret directory: %s", t->id, ck_error_message(e, r));
                ret = ret
                              ?: ck_error_set(reterr, r, "removing the secret directory: %s",
                                              ck_error_message(e, r));
        }
        return ret;
}

/* ---- the state disk's integrity ---- */

/* 0 when the data dir's storage has not failed an authentication check (or nothing watches
 * it); otherwise -EAGAIN with why conkerd fails closed in *reterr. A count that cannot be read
 * counts as a failure. */
int task_storage_intact(struct task_manager *m, struct ck_error **reterr)
{
        _cleanup_error_ struct ck_error *e = NULL;
        uint64_t n = 0;
        int r;

        if (!m->cfg.storage_failures)
                return 0;
        r = m->cfg.storage_failures(m->cfg.storage_userdata, &n, &e);
        if (r < 0)
                return ck_error_set(
                        reterr, -EAGAIN,
                        "cannot tell whether the state disk failed its integrity check (%s); not "
                        "restarting",
                        ck_error_message(e, r));
        if (n > 0)
                return ck_error_set(reterr, -EAGAIN,
                                    "the state disk failed its integrity check (%" PRIu64
                                    " failed sector reads): the host altered it; not restarting",
                                    n);
        return 0;
}

/* ---- queries ---- */

/* One task, found by ref, rendered under the lock (the task may be changing or going away). */
static int task_render(struct task_manager *m, const char *ref, json_t *(*render)(const struct task *t),
                       json_t **ret, struct ck_error **reterr)
{
        struct task *t = NULL;
        json_t *j;
        int r;

        pthread_mutex_lock(&m->lock);
        r = task_find_locked(m, ref, &t, reterr);
        j = r >= 0 ? render(t) : NULL;
        pthread_mutex_unlock(&m->lock);
        if (r < 0)
                return r;
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

int task_manager_get_json(struct task_manager *m, const char *ref, json_t **ret, struct ck_error **reterr)
{
        return task_render(m, ref, task_to_json, ret, reterr);
}

int task_manager_events_json(struct task_manager *m, const char *ref, json_t **ret, struct ck_error **reterr)
{
        return task_render(m, ref, task_events_to_json, ret, reterr);
}

int task_manager_list_json(struct task_manager *m, json_t **ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *a = json_array();
        int r = 0;

        if (!a)
                return -ENOMEM;
        pthread_mutex_lock(&m->lock);
        for (size_t i = m->n_tasks; i-- > 0 && r >= 0;)
                r = json_array_append_new(a, task_to_json(m->tasks[i])) < 0 ? -ENOMEM : 0;
        pthread_mutex_unlock(&m->lock);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

int task_manager_log_path(struct task_manager *m, const char *ref, char **ret_id, char **ret_log_path,
                          struct ck_error **reterr)
{
        struct task *t = NULL;
        char *id;
        int r;

        pthread_mutex_lock(&m->lock);
        r = task_find_locked(m, ref, &t, reterr);
        id = r >= 0 ? strdup(t->id) : NULL;
        pthread_mutex_unlock(&m->lock);
        if (r < 0)
                return r;
        if (!id)
                return -ENOMEM;
        *ret_log_path = m->be->container_log_path(m->be->userdata, id);
        *ret_id = id;
        return 0;
}

bool task_manager_exists(struct task_manager *m, const char *id)
{
        bool found = false;

        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < m->n_tasks && !found; i++)
                found = strcmp(m->tasks[i]->id, id) == 0 && !m->tasks[i]->deleting;
        pthread_mutex_unlock(&m->lock);
        return found;
}

/* ---- cancel and delete ---- */

int task_manager_cancel(struct task_manager *m, const char *ref, char **ret_id, struct ck_error **reterr)
{
        struct task *t = NULL;
        char *id = NULL;
        int r;

        pthread_mutex_lock(&m->lock);
        r = task_find_locked(m, ref, &t, reterr);
        if (r >= 0 && (!t->worker_running || t->deleting))
                r = ck_error_set(reterr, -EBUSY,
                                 "task %s is not being created (status %s); DELETE removes it", t->id,
                                 task_event_type_to_string(t->status));
        if (r >= 0) {
                int expected = TASK_CANCEL_NONE;
                atomic_compare_exchange_strong(&t->cancel, &expected, TASK_CANCEL_USER);
                id = strdup(t->id);
                log_info("task %s (%s): cancel requested during %s", t->id, t->name,
                         task_event_type_to_string(t->status));
        }
        pthread_mutex_unlock(&m->lock);
        if (r < 0)
                return r;
        if (!id)
                return -ENOMEM;
        if (ret_id)
                *ret_id = id;
        else
                free(id);
        return 0;
}

/* Joins the pipeline worker of t, if any. Called without the lock. */
static void task_join_worker(struct task_manager *m, struct task *t)
{
        bool join;
        pthread_t th;

        pthread_mutex_lock(&m->lock);
        join = t->worker_joinable;
        th = t->worker;
        t->worker_joinable = false;
        pthread_mutex_unlock(&m->lock);
        if (join)
                pthread_join(th, NULL);
}

/* True when another task that may still use the image exists. */
static bool image_shared_locked(struct task_manager *m, const struct task *t)
{
        for (size_t i = 0; i < m->n_tasks; i++) {
                const struct task *o = m->tasks[i];
                if (o == t)
                        continue;
                if (o->image.id && t->image.id && strcmp(o->image.id, t->image.id) == 0)
                        return true;
                /* A pull of the same reference in flight may be about to use it. */
                if (!o->image.id && o->worker_running && strcmp(o->image_ref, t->image_ref) == 0)
                        return true;
        }
        return false;
}

static int task_delete_resources(struct task_manager *m, struct task *t, struct ck_error **reterr)
{
        const struct task_backend *be = m->be;
        _cleanup_error_ struct ck_error *e = NULL;
        bool shared;
        int r;

        r = be->container_stop(be->userdata, t->id, m->cfg.stop_timeout_s, &e);
        if (r < 0 && r != -ENOENT)
                log_warn("task %s: stopping the container: %s (removing it anyway)", t->id,
                         ck_error_message(e, r));
        ck_error_free(TAKE_PTR(e));

        r = task_cleanup_resources(m, t, reterr);
        if (r < 0)
                return r;

        pthread_mutex_lock(&m->lock);
        shared = image_shared_locked(m, t);
        pthread_mutex_unlock(&m->lock);
        if (t->image.id && !shared) {
                r = be->image_remove(be->userdata, t->image.id, &e);
                if (r < 0 && r != -ENOENT && r != -EBUSY)
                        return ck_error_set(reterr, r, "removing image %s: %s", t->image.id,
                                            ck_error_message(e, r));
                if (r == -EBUSY)
                        log_info("task %s: image %s is still in use, kept", t->id, t->image.id);
        }
        return 0;
}

static int task_delete(struct task_manager *m, struct task *t, struct ck_error **reterr)
{
        int r;

        /* Stop the pipeline first: it cleans up what it made and ends Cancelled. */
        atomic_store(&t->cancel, TASK_CANCEL_USER);
        task_join_worker(m, t);

        task_event(m, t, TASK_EVENT_DELETING, "deleting: stopping the container and removing its resources");
        r = task_delete_resources(m, t, reterr);
        if (r < 0) {
                pthread_mutex_lock(&m->lock);
                task_event_locked(m, t, TASK_EVENT_DELETING, "deletion incomplete (DELETE retries it): %s",
                                  ck_error_message(reterr ? *reterr : NULL, r));
                t->deleting = false;
                pthread_mutex_unlock(&m->lock);
                return r;
        }
        r = task_store_delete(m->store, t->id, reterr);
        pthread_mutex_lock(&m->lock);
        if (r < 0) {
                t->deleting = false;
        } else {
                log_info("task %s (%s): deleted", t->id, t->name);
                tasks_remove_locked(m, t);
        }
        pthread_mutex_unlock(&m->lock);
        malloc_trim(0);
        return r;
}

int task_manager_delete(struct task_manager *m, const char *ref, char **ret_id, struct ck_error **reterr)
{
        struct task *t = NULL;
        char *id = NULL;
        int r;

        pthread_mutex_lock(&m->lock);
        r = task_find_locked(m, ref, &t, reterr);
        if (r >= 0 && t->deleting)
                r = ck_error_set(reterr, -EBUSY, "task %s is already being deleted", t->id);
        if (r >= 0) {
                t->deleting = true;
                t->refs++;
                id = strdup(t->id);
        }
        pthread_mutex_unlock(&m->lock);
        if (r < 0)
                return r;

        r = task_delete(m, t, reterr);
        task_unref(m, t);
        if (r < 0 || !id) {
                free(id);
                return r < 0 ? r : -ENOMEM;
        }
        if (ret_id)
                *ret_id = id;
        else
                free(id);
        return 0;
}

void task_manager_wait(struct task_manager *m, const char *id)
{
        pthread_mutex_lock(&m->lock);
        for (;;) {
                bool running = false;
                for (size_t i = 0; i < m->n_tasks; i++)
                        if (strcmp(m->tasks[i]->id, id) == 0)
                                running = m->tasks[i]->worker_running;
                if (!running)
                        break;
                pthread_cond_wait(&m->cond, &m->lock);
        }
        pthread_mutex_unlock(&m->lock);
}

/* ---- loading and recovery ---- */

static int task_from_record(struct task_manager *m, const struct task_store_task *rec, struct task **ret,
                            struct ck_error **reterr)
{
        /* Reloaded requests were validated when they came in; the configured port range may
         * have changed since, which must not make them unreadable. */
        static const struct task_request_limits any_port = {1, 65535};
        _cleanup_json_ json_t *doc = NULL;
        struct task *t;
        int r, type;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->refs = 1;
        t->m = m;
        if (strlen(rec->id) != TASK_ID_LEN) {
                r = ck_error_set(reterr, -EBADMSG, "malformed task ID");
                goto fail;
        }
        memcpy(t->id, rec->id, TASK_ID_LEN + 1);
        t->seq = rec->seq;
        t->created_ns = rec->created_ns;
        t->name = strdup(rec->name);
        r = ck_json_loadb(rec->request, strlen(rec->request), 1u << 26, &doc, reterr);
        if (r >= 0)
                r = task_request_from_json(doc, &any_port, &t->req, reterr);
        if (r >= 0)
                r = m->be->image_ref_normalize(m->be->userdata, t->req.image, &t->image_ref, reterr);
        if (r >= 0 && rec->image)
                r = task_image_from_json(rec->image, &t->image, reterr);
        if (r < 0)
                goto fail;
        type = task_event_type_from_string(rec->status);
        if (type < 0) {
                r = ck_error_set(reterr, -EBADMSG, "unknown status \"%s\"", rec->status);
                goto fail;
        }
        t->status = (enum task_event_type)type;
        t->events = calloc(rec->n_events + 1, sizeof(*t->events));
        t->volumes = calloc(rec->n_volumes + 1, sizeof(char *));
        if (!t->name || !t->events || !t->volumes) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < rec->n_events; i++) {
                int et = task_event_type_from_string(rec->events[i].type);
                t->events[i] = (struct task_event){et < 0 ? TASK_EVENT_FAILED : (enum task_event_type)et,
                                                   rec->events[i].time_ns, strdup(rec->events[i].message)};
                t->n_events++;
        }
        for (size_t i = 0; i < rec->n_volumes; i++)
                t->volumes[t->n_volumes++] = strdup(rec->volumes[i]);
        *ret = t;
        return 0;
fail:
        task_free(t);
        return r;
}

static void task_recover(struct task_manager *m, struct task *t)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct runtime_state st = {0};
        int r;

        if (t->status == TASK_EVENT_DELETING) {
                t->deleting = true;
                r = task_delete(m, t, &e);
                if (r < 0)
                        log_error("task %s: finishing its deletion: %s", t->id, ck_error_message(e, r));
                return;
        }
        if (task_status_in_pipeline(t->status)) {
                enum task_event_type was = t->status;
                r = task_cleanup_resources(m, t, &e);
                task_event(m, t, TASK_EVENT_FAILED, "conkerd restarted during %s%s%s",
                           task_event_type_to_string(was),
                           r < 0 ? "; cleanup incomplete (DELETE retries it): " : "",
                           r < 0 ? ck_error_message(e, r) : "");
                return;
        }
        if (t->status == TASK_EVENT_RUNNING || t->status == TASK_EVENT_RESTARTING ||
            t->status == TASK_EVENT_EXITED) {
                r = m->be->container_state(m->be->userdata, t->id, &st, &e);
                if (r < 0) {
                        ck_error_free(TAKE_PTR(e));
                        r = task_cleanup_resources(m, t, &e);
                        task_event(m, t, TASK_EVENT_FAILED,
                                   "the container was gone when conkerd restarted; its resources were "
                                   "removed%s%s",
                                   r < 0 ? " partially: " : "", r < 0 ? ck_error_message(e, r) : "");
                        return;
                }
                pthread_mutex_lock(&m->lock);
                log_info("task %s (%s): re-adopted, container %s", t->id, t->name,
                         st.status == RUNTIME_RUNNING ? "running" : "not running");
                task_watch_apply_locked(m, t, &st);
                pthread_mutex_unlock(&m->lock);
        }
}

int task_manager_new(const struct task_manager_config *cfg, const struct task_backend *be,
                     struct task_manager **ret, struct ck_error **reterr)
{
        _cleanup_free_ char *db_path = NULL;
        struct task_store_task *recs = NULL;
        struct task_manager *m;
        size_t n_recs = 0;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->cfg = *cfg;
        m->be = be;
        m->next_seq = 1;
        pthread_mutex_init(&m->lock, NULL);
        /* The watcher's timed wait counts on the monotonic clock: a step of the wall clock must
         * neither stall nor hurry its polls. */
        ck_cond_init_monotonic(&m->cond);
        m->data_dir = strdup(cfg->data_dir);
        m->cfg.data_dir = m->data_dir;
        if (!m->data_dir || asprintf(&db_path, "%s/conker.db", cfg->data_dir) < 0) {
                db_path = NULL;
                r = -ENOMEM;
                goto fail;
        }
        if (ck_mkdir_p(cfg->data_dir, 0700) < 0) {
                r = ck_error_errno(reterr, -errno, "cannot create %s", cfg->data_dir);
                goto fail;
        }
        r = task_store_open(db_path, &m->store, reterr);
        if (r < 0)
                goto fail;
        r = task_store_load(m->store, &recs, &n_recs, reterr);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < n_recs; i++) {
                _cleanup_error_ struct ck_error *e = NULL;
                struct task *t = NULL;
                if (recs[i].seq >= m->next_seq)
                        m->next_seq = recs[i].seq + 1;
                r = task_from_record(m, &recs[i], &t, &e);
                if (r < 0) {
                        /* One unreadable record must not keep the daemon down; it stays in the
                         * database for inspection. */
                        log_error("task %s: cannot load it from the store: %s", recs[i].id,
                                  ck_error_message(e, r));
                        continue;
                }
                if (tasks_append_locked(m, t) < 0) {
                        task_free(t);
                        r = -ENOMEM;
                        goto fail;
                }
        }
        for (size_t i = 0; i < n_recs; i++)
                task_store_task_clear(&recs[i]);
        free(recs);
        recs = NULL;

        /* Recovery works on a snapshot: finishing a deletion removes tasks from the list. */
        {
                size_t n = m->n_tasks;
                struct task **snap = calloc(n + 1, sizeof(*snap));
                if (!snap) {
                        r = -ENOMEM;
                        goto fail;
                }
                for (size_t i = 0; i < n; i++) {
                        snap[i] = m->tasks[i];
                        snap[i]->refs++;
                }
                for (size_t i = 0; i < n; i++) {
                        task_recover(m, snap[i]);
                        task_unref(m, snap[i]);
                }
                free(snap);
        }

        if (cfg->watch_interval_ms) {
                r = pthread_create(&m->watcher, NULL, task_watcher_main, m);
                if (r != 0) {
                        r = ck_error_set(reterr, -r, "cannot start the watcher thread");
                        goto fail;
                }
                m->has_watcher = true;
        }
        *ret = m;
        return 0;
fail:
        for (size_t i = 0; i < n_recs; i++)
                task_store_task_clear(&recs[i]);
        free(recs);
        task_manager_free(m);
        return r;
}

void task_manager_free(struct task_manager *m)
{
        if (!m)
                return;
        pthread_mutex_lock(&m->lock);
        m->stopping = true;
        for (size_t i = 0; i < m->n_tasks; i++) {
                int expected = TASK_CANCEL_NONE;
                atomic_compare_exchange_strong(&m->tasks[i]->cancel, &expected, TASK_CANCEL_SHUTDOWN);
        }
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
        if (m->has_watcher)
                pthread_join(m->watcher, NULL);

        /* Pipelines end at their next step; a task being deleted is joined by its deleter,
         * which the API has finished before freeing the manager. */
        for (;;) {
                struct task *t = NULL;
                pthread_mutex_lock(&m->lock);
                for (size_t i = 0; i < m->n_tasks && !t; i++)
                        if (m->tasks[i]->worker_joinable)
                                t = m->tasks[i];
                if (t)
                        t->refs++;
                pthread_mutex_unlock(&m->lock);
                if (!t)
                        break;
                task_join_worker(m, t);
                task_unref(m, t);
        }

        pthread_mutex_lock(&m->lock);
        while (m->n_tasks)
                tasks_remove_locked(m, m->tasks[m->n_tasks - 1]);
        pthread_mutex_unlock(&m->lock);
        free(m->tasks);
        task_store_free(m->store);
        pthread_cond_destroy(&m->cond);
        pthread_mutex_destroy(&m->lock);
        free(m->data_dir);
        free(m);
}
