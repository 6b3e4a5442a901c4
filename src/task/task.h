/* Tasks: one container request and everything conkerd made for it, driven through the
 * pipeline Pulling -> Pulled -> [Attesting -> Attested] -> Creating -> Created -> Starting ->
 * Running (or Failed / Cancelled), recorded as events in the store, cancelled and deleted on
 * request, recovered after a restart and watched while they run.
 *
 * The task manager is thread-safe: the API thread calls it while pipeline workers and the
 * watcher thread run. Calls that may block for long (task_manager_delete) must not run on the
 * event loop. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

struct broker_peer_policy;
#include "error.h"
#include "request.h"

struct attest_tee;

enum task_event_type {
        TASK_EVENT_PULLING,
        TASK_EVENT_PULLED,
        TASK_EVENT_ATTESTING,
        TASK_EVENT_ATTESTED,
        TASK_EVENT_CREATING,
        TASK_EVENT_CREATED,
        TASK_EVENT_STARTING,
        TASK_EVENT_RUNNING,
        TASK_EVENT_FAILED,
        TASK_EVENT_CANCELLED,
        TASK_EVENT_EXITED,
        TASK_EVENT_RESTARTING,
        TASK_EVENT_DELETING,
        _TASK_EVENT_TYPE_MAX,
};
const char *task_event_type_to_string(enum task_event_type t);
int task_event_type_from_string(const char *s); /* -EINVAL when unknown */
/* True for the statuses in which the pipeline is still working. */
bool task_status_in_pipeline(enum task_event_type t);
/* True for the statuses that hold resources (everything but Failed and Cancelled). */
bool task_status_live(enum task_event_type t);

/* RFC 3339 UTC with nanoseconds ("2026-11-29T12:00:00.123456789Z") into buf (>= 40 bytes). */
void task_time_format(int64_t unix_ns, char *buf, size_t size);
int64_t task_time_now_ns(void);

struct task_manager_config {
        const char *data_dir; /* conker.db lives here */
        struct task_request_limits limits;
        unsigned max_tasks;
        unsigned stop_timeout_s;
        unsigned pull_timeout_s;
        unsigned watch_interval_ms; /* 0: no watcher thread (unit tests step it by hand) */
        size_t max_request_size;
        /* The TEE the Attesting step quotes with and measures into (not owned; outlives the
         * manager). NULL: requests with KmsEndpoints fail closed at Attesting. */
        struct attest_tee *tee;
        unsigned kms_timeout_ms; /* per endpoint; 0 means 30 s */
        /* The limits the backend applies to every container, shown in ContainerInspect.HostConfig
         * (PidsLimit, Memory); 0: none. */
        uint64_t container_pids_limit;
        uint64_t container_memory_limit;
        /* The OCI runtime the backend runs containers with ("runc", "crun"), shown in
         * ContainerInspect.HostConfig.Runtime as Docker does; NULL: not shown. */
        const char *container_runtime;
        bool kms_allow_unpinned; /* accept KMS endpoints without a certificate pin */
        /* Mutual attestation of the brokers (not owned; outlives the manager); NULL: none. */
        const struct broker_peer_policy *kms_broker_attestation;
        /* Optional (NULL: the data dir is in TD memory or nothing watches it): how many sectors of
         * the data dir's storage failed their authentication check since boot, that is, reads of
         * blocks the host altered. Once it is > 0 (or cannot be read) conkerd fails closed: a task
         * whose container exits or restarts ends Failed and its container is removed (the shim
         * restarts nothing), no container starts, and new tasks are refused (-EAGAIN: only a
         * reboot, with a fresh state disk, recovers). Called from the watcher, the API and the
         * pipelines: must be thread-safe. */
        int (*storage_failures)(void *ud, uint64_t *ret, struct ck_error **reterr);
        void *storage_userdata;
};

struct task_manager;

/* Opens the store, loads the tasks, and recovers: tasks that were in the pipeline become
 * Failed and their partial resources are removed, running containers are re-adopted, and
 * interrupted deletions are finished. The backend must outlive the manager. */
int task_manager_new(const struct task_manager_config *cfg, const struct task_backend *be,
                     struct task_manager **ret, struct ck_error **reterr);
/* Stops the watcher, stops pipelines at their next step (they end Failed, "conkerd was stopped
 * during …") and waits for them. Containers keep running. */
void task_manager_free(struct task_manager *m);
/* Declares conkerd's task metrics (docs/metrics.md) and counts m's tasks by status whenever
 * /metrics is rendered. Call once per process, for the manager that serves the API; m must
 * outlive the rendering. */
int task_metrics_init(struct task_manager *m);

/* Validates the request (buf, len) and starts its pipeline. ret_id: malloc'd task ID.
 * Errors: -EBADMSG/-EINVAL/-ERANGE bad request, -E2BIG too large (the body, or the task-config
 * document of a task with KmsEndpoints), -EEXIST name or port in use, -EBUSY too many tasks,
 * -EAGAIN shutting down, the RTMR3 log is full or the state disk failed its integrity check (the TD
 * must reboot). */
int task_manager_create(struct task_manager *m, const void *buf, size_t len, char **ret_id,
                        struct ck_error **reterr);

/* `ref` names a task by ID, unique ID prefix (>= 12 hex digits) or name; NULL means the most
 * recently created task. -ENOENT when there is none. */

/* The task document of the seed: {Id, ContainerConf, Status, IsCancel, Events, ContainerInspect}
 * plus Name, Created, ImageName, ImageId and, while pulling, Progress (docs/openapi.yaml). */
int task_manager_get_json(struct task_manager *m, const char *ref, json_t **ret, struct ck_error **reterr);
/* The task document of every task, newest first. */
int task_manager_list_json(struct task_manager *m, json_t **ret, struct ck_error **reterr);
/* The events of a task: [{Action, Message, Time}]. */
int task_manager_events_json(struct task_manager *m, const char *ref, json_t **ret,
                             struct ck_error **reterr);
/* Asks the pipeline to stop; returns once the flag is set (the pipeline ends Cancelled on its
 * own). -EBUSY (with a message) when the task is past its pipeline. ret_id may be NULL. */
int task_manager_cancel(struct task_manager *m, const char *ref, char **ret_id, struct ck_error **reterr);
/* Cancels and waits for the pipeline, stops the container and removes everything of the task.
 * Blocks (container stop). -EBUSY while another delete of the task runs. */
int task_manager_delete(struct task_manager *m, const char *ref, char **ret_id, struct ck_error **reterr);
/* Resolves ref; ret_id and ret_log_path (NULL if the runtime has no log) are malloc'd. */
int task_manager_log_path(struct task_manager *m, const char *ref, char **ret_id, char **ret_log_path,
                          struct ck_error **reterr);
/* True while the task exists and is not being deleted (for following logs). */
bool task_manager_exists(struct task_manager *m, const char *id);

/* One pass of the watcher: polls the runtime for every task with a container and appends
 * Running/Restarting/Exited events when its state changed; fails pulls past pull_timeout, and
 * tasks whose container exited or restarted once the state disk failed its integrity check
 * (task_manager_config.storage_failures). */
void task_manager_watch_once(struct task_manager *m);
/* Waits until no pipeline of the task is running (tests, shutdown). */
void task_manager_wait(struct task_manager *m, const char *id);
