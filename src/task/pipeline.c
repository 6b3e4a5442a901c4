/* A task's creation and its pipeline worker: the request is admitted (conflicts, the state
 * disk, what the Attesting step can measure), recorded in the store and handed to a thread that
 * pulls the image (the network and the rootfs prepared meanwhile on two threads of their own),
 * attests, creates and starts the container, and on a failure or a cancel removes what it made.
 * Locking and references as described in manager.c. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest-step.h"
#include "fs.h"
#include "image-info.h"
#include "json.h"
#include "log.h"
#include "monotonic.h"
#include "parse.h"
#include "task-internal.h"

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
        char **v, *copy = NULL;
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
                copy = strdup(name);
                if (copy) {
                        v[t->n_volumes++] = copy;
                        v[t->n_volumes] = NULL;
                }
        }
        pthread_mutex_unlock(&m->lock);
        /* Then the caller fails the task before it makes the volume. */
        return copy ? 0 : ck_error_set(reterr, -ENOMEM, "out of memory");
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
        r = task_storage_intact(m, reterr);
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

/* What a start prepares while the pull step asks the registry (with pull-policy always even a
 * cached image costs a round trip): the container's network, and the rootfs of the image the
 * store holds under the task's reference now. Each on a thread of its own (they share nothing),
 * so the pull waits for the longer of the two, not their sum. Nothing of it runs anything: the
 * container starts only after the pull confirmed the image ID and the Attesting step measured it
 * and got the secrets. A rootfs for another image than the pull answers is unmounted
 * (early_rootfs_settle); a failure here is no failure of the task (the normal steps make the
 * same things). */
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
        r = task_storage_intact(m, reterr);
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
