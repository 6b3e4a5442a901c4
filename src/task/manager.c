/* The task manager: creation with validation, the pipeline worker of each task, cancel,
 * delete, recovery after a restart and the runtime watcher.
 *
 * Locking: one mutex (m->lock) protects the task list and every task's fields except
 * task.cancel (atomic). Backend calls that may block (pull, mount, run, stop) are made without
 * the lock; events are appended with it held so that the store and memory agree on the order.
 * A task is freed when its last reference goes: the list, its pipeline worker and any caller in
 * between each hold one. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attest-step.h"
#include "fs.h"
#include "image-info.h"
#include "json.h"
#include "log.h"
#include "monotonic.h"
#include "parse.h"
#include "task-internal.h"

/* ---- tasks and references ---- */

static void task_free(struct task *t)
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

static void task_unref_locked(struct task *t)
{
        if (--t->refs == 0)
                task_free(t);
}

static void task_unref(struct task_manager *m, struct task *t)
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

/* ---- events ---- */

static void task_event_locked(struct task_manager *m, struct task *t, enum task_event_type type,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void task_event_locked(struct task_manager *m, struct task *t, enum task_event_type type,
                              const char *fmt, ...)
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

#define task_event(m, t, ...)                                                                               \
        do {                                                                                                \
                pthread_mutex_lock(&(m)->lock);                                                             \
                task_event_locked(m, t, __VA_ARGS__);                                                       \
                pthread_mutex_unlock(&(m)->lock);                                                           \
        } while (0)

/* ---- cleanup shared by failure, cancel, recovery and delete ---- */

/* Removes what the pipeline may have made, except the image (kept as a cache until the task is
 * deleted). Every step is idempotent, so it runs in full whatever step the task reached. */
static int task_cleanup_resources(struct task_manager *m, struct task *t, struct ck_error **reterr)
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
static int storage_intact(struct task_manager *m, struct ck_error **reterr)
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

/* ---- the pipeline ---- */

static int check_cancel(struct task *t)
{
        return atomic_load(&t->cancel) ? -ECANCELED : 0;
}

static void on_progress(void *userdata, const struct task_pull_progress *p)
{
        struct task *t = userdata;

        pthread_mutex_lock(&t->m->lock);
        t->progress = *p;
        snprintf(t->progress_phase, sizeof(t->progress_phase), "%s", p->phase ? p->phase : "");
        t->progress.phase = t->progress_phase;
        pthread_mutex_unlock(&t->m->lock);
}

static int step_pull(struct task_manager *m, struct task *t, struct ck_error **reterr)
{
        const struct task_backend *be = m->be;
        struct task_image img = {0};
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *s = NULL;
        struct task_pull_request pr = {
                .ref = t->image_ref,
                .username = t->req.username,
                .password = t->req.password,
                .cancel = &t->cancel,
                .progress = on_progress,
                .progress_userdata = t,
        };
        int r;

        /* The Pulling event was recorded with the task. */
        pthread_mutex_lock(&m->lock);
        t->pull_started_ns = task_time_now_ns();
        pthread_mutex_unlock(&m->lock);

        r = be->image_pull(be->userdata, &pr, &img, reterr);
        pthread_mutex_lock(&m->lock);
        t->pull_started_ns = 0;
        /* The registry password has done its job; drop it from memory. */
        ck_secret_free(TAKE_PTR(t->req.password));
        pthread_mutex_unlock(&m->lock);
        if (r < 0)
                return r;

        j = task_image_to_json(&img);
        s = j ? ck_json_dump(j) : NULL;
        if (!s) {
                task_image_clear(&img);
                return -ENOMEM;
        }
        r = task_store_set_image(m->store, t->id, s, reterr);
        if (r < 0) {
                task_image_clear(&img);
                return r;
        }
        pthread_mutex_lock(&m->lock);
        task_image_clear(&t->image);
        t->image = img;
        task_event_locked(m, t, TASK_EVENT_PULLED, "pulled %s: image %s (%u layers, %llu bytes)",
                          t->image_ref, img.id, img.n_layers, (unsigned long long)img.size);
        pthread_mutex_unlock(&m->lock);
        return 0;
}

static int step_attest(struct task_manager *m, struct task *t, struct task_released_secret **ret,
                       size_t *ret_n, struct ck_error **reterr)
{
        struct task_attest_ctx ctx = {
                .task_id = t->id,
                .image_ref = t->image_ref,
                .image_id = t->image.id,
                .req = &t->req,
                .endpoints = t->req.kms,
                .n_endpoints = t->req.n_kms,
                .cancel = &t->cancel,
                .tee = m->cfg.tee,
                .timeout_ms = m->cfg.kms_timeout_ms,
                .allow_unpinned = m->cfg.kms_allow_unpinned,
                .broker_attestation = m->cfg.kms_broker_attestation,
        };
        int64_t start;
        int r;

        if (t->req.n_kms == 0)
                return 0;
        task_event(m, t, TASK_EVENT_ATTESTING, "attesting to %zu KMS endpoint%s", t->req.n_kms,
                   t->req.n_kms == 1 ? "" : "s");
        start = task_time_now_ns();
        r = task_attest_step(&ctx, ret, ret_n, reterr);
        if (r < 0)
                return r;
        /* The duration is part of the message: bench/attest.sh reads it from the events. */
        task_event(m, t, TASK_EVENT_ATTESTED, "attested to %zu KMS endpoint%s in %lld ms", *ret_n,
                   *ret_n == 1 ? "" : "s", (long long)((task_time_now_ns() - start) / 1000000));
        return 0;
}

/* "secret-<host:port>.json": the endpoint without its certificate pin. */
static int write_secrets(const char *dir, const struct task_released_secret *s, size_t n,
                         struct ck_error **reterr)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open the secret directory");
        for (size_t i = 0; i < n; i++) {
                char name[TASK_KMS_ENDPOINT_MAX + 32];
                size_t len = strcspn(s[i].endpoint, "#");
                int r;

                snprintf(name, sizeof(name), "secret-%.*s.json", (int)len, s[i].endpoint);
                r = ck_write_file_atomic(dfd, name, s[i].secret->data, s[i].secret->len, 0400, reterr);
                if (r < 0)
                        return r;
        }
        return 0;
}

struct created {
        char *rootfs;
        char *secret_dir;
        struct task_run_mount *mounts;
        char **host_paths;
        size_t n_mounts;
};

static void created_clear(struct created *c)
{
        free(c->rootfs);
        free(c->secret_dir);
        for (size_t i = 0; i < c->n_mounts; i++)
                free(c->host_paths[i]);
        free(c->host_paths);
        free(c->mounts);
        *c = (struct created){0};
}

static int task_add_volume(struct task_manager *m, struct task *t, const char *name,
                           struct ck_error **reterr)
{
        char **v;
        int r;

        for (size_t i = 0; i < t->n_volumes; i++)
                if (strcmp(t->volumes[i], name) == 0)
                        return 0;
        /* Recorded before it exists: a crash in between still finds it to erase. */
        r = task_store_add_volume(m->store, t->id, name, reterr);
        if (r < 0)
                return r;
        pthread_mutex_lock(&m->lock);
        v = realloc(t->volumes, (t->n_volumes + 2) * sizeof(char *));
        if (v) {
                t->volumes = v;
                v[t->n_volumes] = strdup(name);
                if (v[t->n_volumes])
                        v[++t->n_volumes] = NULL;
        }
        pthread_mutex_unlock(&m->lock);
        return v && v[t->n_volumes - 1] ? 0 : -ENOMEM;
}

/* c->rootfs already set: the rootfs mounted ahead of the pull for this very image ID. */
static int step_create(struct task_manager *m, struct task *t, const struct task_released_secret *secrets,
                       size_t n_secrets, struct created *c, struct ck_error **reterr)
{
        const struct task_backend *be = m->be;
        int r;

        task_event(m, t, TASK_EVENT_CREATING,
                   "creating the container: rootfs, %zu volume%s, secret directory", t->req.n_mounts,
                   t->req.n_mounts == 1 ? "" : "s");

        if (!c->rootfs) {
                r = be->rootfs_mount(be->userdata, t->id, t->image.id, &c->rootfs, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "mounting the rootfs");
        }
        if ((r = check_cancel(t)) < 0)
                return r;

        c->mounts = calloc(t->req.n_mounts + 1, sizeof(*c->mounts));
        c->host_paths = calloc(t->req.n_mounts + 1, sizeof(char *));
        if (!c->mounts || !c->host_paths)
                return -ENOMEM;
        for (size_t i = 0; i < t->req.n_mounts; i++) {
                const struct task_mount *tm = &t->req.mounts[i];
                r = task_add_volume(m, t, tm->source, reterr);
                if (r < 0)
                        return r;
                r = be->volume_create(be->userdata, t->id, tm->source, &c->host_paths[i], reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "creating volume %s", tm->source);
                c->mounts[i] = (struct task_run_mount){c->host_paths[i], tm->target, tm->rw};
                c->n_mounts++;
                if ((r = check_cancel(t)) < 0)
                        return r;
        }

        r = be->secret_dir_create(be->userdata, t->id, &c->secret_dir, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "creating the secret directory");
        r = write_secrets(c->secret_dir, secrets, n_secrets, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "writing the released secrets");

        task_event(m, t, TASK_EVENT_CREATED, "container created (%zu volume%s, %zu secret%s)",
                   t->req.n_mounts, t->req.n_mounts == 1 ? "" : "s", n_secrets, n_secrets == 1 ? "" : "s");
        return 0;
}

static int step_start(struct task_manager *m, struct task *t, const struct created *c,
                      struct ck_error **reterr)
{
        const struct task_backend *be = m->be;
        struct runtime_state st = {0};
        struct task_run_spec spec = {
                .id = t->id,
                .name = t->name,
                .rootfs = c->rootfs,
                .image = &t->image,
                .env = t->req.env,
                .ports = t->req.ports,
                .n_ports = t->req.n_ports,
                .mounts = c->mounts,
                .n_mounts = c->n_mounts,
                .secret_dir = c->secret_dir,
        };
        int r;

        task_event(m, t, TASK_EVENT_STARTING, "starting the container");
        r = storage_intact(m, reterr);
        if (r < 0)
                return r;
        r = be->container_run(be->userdata, &spec, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "starting the container");
        r = be->container_state(be->userdata, t->id, &st, NULL);
        pthread_mutex_lock(&m->lock);
        if (r >= 0) {
                t->state = st;
                t->have_state = true;
        }
        if (r >= 0 && st.pid > 0)
                task_event_locked(m, t, TASK_EVENT_RUNNING, "container is running (pid %d)", (int)st.pid);
        else
                task_event_locked(m, t, TASK_EVENT_RUNNING, "container started");
        pthread_mutex_unlock(&m->lock);
        return 0;
}

/* What can be made while the pipeline pulls the image (with pull-policy always even a cached
 * image costs a registry round trip), on a thread of its own: the container's network, and the
 * rootfs of the image the store holds under the task's reference now. Nothing of it runs
 * anything: the container starts only after the pull confirmed the image ID and the Attesting
 * step measured it and got the secrets. A rootfs for another image than the pull answers is
 * unmounted (early_rootfs_settle); a failure here is no failure of the task (the normal steps
 * make the same things). */
/* What a start prepares while the pull step asks the registry: the container's network, and
 * the rootfs of the image the store holds under the task's reference. Each on a thread of its
 * own (they share nothing), so the pull waits for the longer of the two, not their sum. */
struct prep {
        struct task_manager *m;
        struct task *t;
        pthread_t net_thread, rootfs_thread;
        bool net_started, rootfs_started;
        int64_t net_us, rootfs_us; /* how long each took, for the debug line */
        char *image_id, *rootfs;   /* the rootfs mounted ahead and the image it is of */
};

static void *prep_rootfs_main(void *arg)
{
        struct prep *p = arg;
        const struct task_backend *be = p->m->be;
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *id = NULL;
        int64_t t0 = ck_now_us();
        int r;

        if (check_cancel(p->t) < 0)
                goto out;
        r = be->image_cached_id(be->userdata, p->t->image_ref, &id, &e);
        if (r < 0)
                goto out;
        r = be->rootfs_mount(be->userdata, p->t->id, id, &p->rootfs, &e);
        if (r < 0) {
                log_debug("task %s: rootfs of %s not mounted ahead: %s", p->t->id, id,
                          ck_error_message(e, r));
                goto out;
        }
        p->image_id = TAKE_PTR(id);
out:
        p->rootfs_us = ck_now_us() - t0;
        return NULL;
}

static void *prep_net_main(void *arg)
{
        struct prep *p = arg;
        const struct task_backend *be = p->m->be;
        _cleanup_error_ struct ck_error *e = NULL;
        int64_t t0 = ck_now_us();
        int r;

        r = be->container_prepare_network(be->userdata, p->t->id, p->t->req.ports, p->t->req.n_ports, &e);
        if (r < 0)
                log_debug("task %s: network not prepared ahead (the start sets it up): %s", p->t->id,
                          ck_error_message(e, r));
        p->net_us = ck_now_us() - t0;
        return NULL;
}

static void prep_start(struct prep *p)
{
        const struct task_backend *be = p->m->be;

        if (be->container_prepare_network)
                p->net_started = pthread_create(&p->net_thread, NULL, prep_net_main, p) == 0;
        if (be->image_cached_id)
                p->rootfs_started = pthread_create(&p->rootfs_thread, NULL, prep_rootfs_main, p) == 0;
}

/* Before any later step or the cleanup: both may touch the same network and rootfs. */
static void prep_join(struct prep *p)
{
        if (p->net_started)
                pthread_join(p->net_thread, NULL);
        if (p->rootfs_started)
                pthread_join(p->rootfs_thread, NULL);
        if (p->net_started || p->rootfs_started)
                log_debug("task %s: prepared during the pull: network %.1f ms, rootfs %.1f ms", p->t->id,
                          p->net_us / 1000.0, p->rootfs_us / 1000.0);
        p->net_started = p->rootfs_started = false;
}

/* After a successful pull: the rootfs mounted ahead becomes the container's when it is of the
 * image the pull answered; otherwise (the tag moved) it is unmounted, and step_create mounts the
 * new image. A rootfs left here by a failed pull goes with the task's cleanup. */
static int early_rootfs_settle(struct task_manager *m, struct task *t, struct prep *p, struct created *c,
                               struct ck_error **reterr)
{
        const struct task_backend *be = m->be;
        int r;

        if (!p->rootfs)
                return 0;
        if (t->image.id && strcmp(p->image_id, t->image.id) == 0) {
                log_debug("task %s: the rootfs mounted during the pull is of %s: kept", t->id, p->image_id);
                c->rootfs = TAKE_PTR(p->rootfs);
                return 0;
        }
        log_info("task %s: %s is image %s now, not %s: the rootfs mounted ahead is discarded", t->id,
                 t->image_ref, t->image.id ? t->image.id : "?", p->image_id);
        r = be->rootfs_umount(be->userdata, t->id, p->image_id, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "unmounting the rootfs mounted ahead");
        return 0;
}

static void prep_clear(struct prep *p)
{
        free(p->image_id);
        free(p->rootfs);
        p->image_id = p->rootfs = NULL;
}

static void *pipeline_main(void *arg)
{
        struct task *t = arg;
        struct task_manager *m = t->m;
        _cleanup_error_ struct ck_error *e = NULL, *ce = NULL;
        struct task_released_secret *secrets = NULL;
        size_t n_secrets = 0;
        struct created c = {0};
        enum task_event_type step = TASK_EVENT_PULLING;
        struct prep prep = {.m = m, .t = t};
        int r, cancel;

        prep_start(&prep);
        r = step_pull(m, t, &e);
        prep_join(&prep);
        if (r >= 0)
                r = early_rootfs_settle(m, t, &prep, &c, &e);
        prep_clear(&prep);
        if (r >= 0 && (r = check_cancel(t)) >= 0) {
                step = TASK_EVENT_ATTESTING;
                r = step_attest(m, t, &secrets, &n_secrets, &e);
        }
        if (r >= 0 && (r = check_cancel(t)) >= 0) {
                step = TASK_EVENT_CREATING;
                r = step_create(m, t, secrets, n_secrets, &c, &e);
        }
        task_released_secrets_free(secrets, n_secrets);
        if (r >= 0 && (r = check_cancel(t)) >= 0) {
                step = TASK_EVENT_STARTING;
                r = step_start(m, t, &c, &e);
        }
        created_clear(&c);

        if (r < 0) {
                int cr = task_cleanup_resources(m, t, &ce);
                const char *step_name = task_event_type_to_string(step);

                cancel = atomic_load(&t->cancel);
                pthread_mutex_lock(&m->lock);
                if (cancel == TASK_CANCEL_USER)
                        task_event_locked(m, t, TASK_EVENT_CANCELLED, "cancelled by request during %s",
                                          step_name);
                else if (cancel == TASK_CANCEL_TIMEOUT)
                        task_event_locked(m, t, TASK_EVENT_FAILED,
                                          "%s failed: the image pull took longer than %u s", step_name,
                                          m->cfg.pull_timeout_s);
                else if (cancel == TASK_CANCEL_SHUTDOWN)
                        task_event_locked(m, t, TASK_EVENT_FAILED, "conkerd was stopped during %s",
                                          step_name);
                else
                        task_event_locked(m, t, TASK_EVENT_FAILED, "%s failed: %s", step_name,
                                          ck_error_message(e, r));
                if (cr < 0)
                        task_event_locked(m, t, t->status, "cleanup incomplete (DELETE retries it): %s",
                                          ck_error_message(ce, cr));
                pthread_mutex_unlock(&m->lock);
        }

        pthread_mutex_lock(&m->lock);
        t->worker_running = false;
        pthread_cond_broadcast(&m->cond);
        task_unref_locked(t);
        pthread_mutex_unlock(&m->lock);
        /* A pipeline leaves the free pages of the pull's, the spec's and libnftables' buffers in
         * malloc's heaps: hand them back (docs/start-latency.md, "Memory"). */
        malloc_trim(0);
        return NULL;
}

/* ---- creation ---- */

static int random_id(char out[TASK_ID_LEN + 1])
{
        uint8_t raw[TASK_ID_LEN / 2];

        if (RAND_bytes(raw, sizeof(raw)) != 1)
                return -EIO;
        ck_hex_encode(raw, sizeof(raw), out);
        return 0;
}

/* Name and port conflicts with other live tasks, and ports busy on the host. */
static int check_conflicts_locked(struct task_manager *m, const struct task_request *req, const char *name,
                                  struct ck_error **reterr)
{
        if (m->n_tasks >= m->cfg.max_tasks)
                return ck_error_set(reterr, -EBUSY,
                                    "conkerd already holds %zu tasks (max-tasks); delete one first",
                                    m->n_tasks);
        for (size_t i = 0; i < m->n_tasks; i++) {
                const struct task *o = m->tasks[i];
                if (!task_status_live(o->status) && !o->worker_running)
                        continue;
                if (strcmp(o->name, name) == 0)
                        return ck_error_set(reterr, -EEXIST, "the name \"%s\" is in use by task %s", name,
                                            o->id);
                for (size_t a = 0; a < req->n_ports; a++)
                        for (size_t b = 0; b < o->req.n_ports; b++)
                                if (req->ports[a].published == o->req.ports[b].published)
                                        return ck_error_set(reterr, -EEXIST,
                                                            "PublishedPort %u is in use by task %s (%s)",
                                                            req->ports[a].published, o->id, o->name);
        }
        for (size_t a = 0; a < req->n_ports; a++)
                if (m->be->host_port_in_use(m->be->userdata, req->ports[a].published))
                        return ck_error_set(reterr, -EEXIST, "PublishedPort %u is in use on the host",
                                            req->ports[a].published);
        return 0;
}

static int tasks_append_locked(struct task_manager *m, struct task *t)
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

int task_manager_create(struct task_manager *m, const void *buf, size_t len, char **ret_id,
                        struct ck_error **reterr)
{
        _cleanup_json_ json_t *stored = NULL;
        _cleanup_free_ char *stored_s = NULL, *id_copy = NULL;
        struct task *t;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->refs = 1;
        t->m = m;
        r = task_request_parse(buf, len, m->cfg.max_request_size, &m->cfg.limits, &t->req, reterr);
        if (r < 0)
                goto fail;
        r = storage_intact(m, reterr);
        if (r < 0)
                goto fail;
        r = m->be->image_ref_normalize(m->be->userdata, t->req.image, &t->image_ref, reterr);
        if (r < 0) {
                r = ck_error_prefix(reterr, r == -ENOMEM ? r : -EINVAL, "ImageInfo.ImageName");
                goto fail;
        }
        /* Refused now rather than at Attesting: a task-config that cannot be attested, or an
         * RTMR3 log too full to measure the task (only a reboot of the TD empties it). */
        r = task_attest_admit(m->cfg.tee, t->image_ref, &t->req, reterr);
        if (r < 0)
                goto fail;
        r = random_id(t->id);
        if (r < 0)
                goto fail;
        t->name = t->req.name ? strdup(t->req.name) : strndup(t->id, 12);
        stored = task_request_to_json(&t->req, TASK_REDACT_OMIT);
        stored_s = stored ? ck_json_dump(stored) : NULL;
        id_copy = strdup(t->id);
        if (!t->name || !stored_s || !id_copy) {
                r = -ENOMEM;
                goto fail;
        }
        if (!t->req.name) {
                char *n = NULL;
                if (asprintf(&n, "conker-%s", t->name) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
                free(t->name);
                t->name = n;
        }
        t->created_ns = task_time_now_ns();
        t->status = TASK_EVENT_PULLING;

        pthread_mutex_lock(&m->lock);
        if (m->stopping) {
                pthread_mutex_unlock(&m->lock);
                r = ck_error_set(reterr, -EAGAIN, "conkerd is shutting down");
                goto fail;
        }
        r = check_conflicts_locked(m, &t->req, t->name, reterr);
        if (r >= 0) {
                struct task_store_task st = {.id = t->id,
                                             .seq = m->next_seq,
                                             .name = t->name,
                                             .created_ns = t->created_ns,
                                             .request = stored_s};
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "pulling image %s", t->image_ref) < 0)
                        msg = NULL;
                struct task_store_event first = {(char *)"Pulling", t->created_ns, msg ? msg : (char *)""};
                struct task_event *ev = calloc(1, sizeof(*ev));

                t->seq = m->next_seq;
                r = ev ? task_store_insert(m->store, &st, &first, reterr) : -ENOMEM;
                if (r >= 0) {
                        m->next_seq++;
                        task_metrics_event(t, TASK_EVENT_PULLING, t->created_ns);
                        *ev = (struct task_event){TASK_EVENT_PULLING, t->created_ns, TAKE_PTR(msg)};
                        t->events = ev;
                        t->n_events = 1;
                        log_info("task %s (%s): Pulling: %s", t->id, t->name,
                                 ev->message ? ev->message : "");
                        r = tasks_append_locked(m, t);
                } else {
                        free(ev);
                }
        }
        if (r < 0) {
                pthread_mutex_unlock(&m->lock);
                goto fail;
        }
        /* The worker's reference. */
        t->refs++;
        t->worker_running = true;
        r = pthread_create(&t->worker, NULL, pipeline_main, t);
        if (r != 0) {
                t->refs--;
                t->worker_running = false;
                task_event_locked(m, t, TASK_EVENT_FAILED, "cannot start the pipeline: %s", strerror(r));
        } else {
                t->worker_joinable = true;
        }
        pthread_mutex_unlock(&m->lock);
        *ret_id = TAKE_PTR(id_copy);
        return 0;
fail:
        task_free(t);
        return r;
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

static void watch_apply_locked(struct task_manager *m, struct task *t, const struct runtime_state *st)
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
        int tr = storage_intact(m, &te);
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
                        watch_apply_locked(m, t, &st);
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

static void *watcher_main(void *arg)
{
        struct task_manager *m = arg;

        pthread_mutex_lock(&m->lock);
        while (!m->stopping) {
                struct timespec ts;
                pthread_mutex_unlock(&m->lock);
                task_manager_watch_once(m);
                pthread_mutex_lock(&m->lock);
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += (long)(m->cfg.watch_interval_ms % 1000) * 1000000;
                ts.tv_sec += m->cfg.watch_interval_ms / 1000 + ts.tv_nsec / 1000000000;
                ts.tv_nsec %= 1000000000;
                if (!m->stopping)
                        pthread_cond_timedwait(&m->cond, &m->lock, &ts);
        }
        pthread_mutex_unlock(&m->lock);
        return NULL;
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
                watch_apply_locked(m, t, &st);
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
        pthread_cond_init(&m->cond, NULL);
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
                r = pthread_create(&m->watcher, NULL, watcher_main, m);
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
