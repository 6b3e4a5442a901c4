/* The task state machine driven by a scripted backend: the order of events, cancel at each
 * step, failure at each step (and that everything made is cleaned up), delete, the watcher,
 * recovery after a restart, conflicts, that the registry password never reaches the disk, and
 * failing closed on a tampered state disk. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "json.h"
#include "task-internal.h"
#include "task-store.h"
#include "task.h"
#include "task-scripted-backend.h"

static const char seed[] =
        "{\"Name\":\"conker-example-app\",\"ImageInfo\":{\"ImageName\":\"reckey/conker-example-app:latest\","
        "\"RegisterAuthInfo\":{\"Username\":\"user\",\"Password\":\"S3cret-Pw-9f8e\"}},\"Ports\":[{"
        "\"TargetPort\":8080,"
        "\"PublishedPort\":30080}],\"Env\":[\"userId=secret-127.0.0.1:3333\"],\"Mounts\":[{\"Type\":"
        "\"volume\","
        "\"Target\":\"/data\",\"Source\":\"data\",\"RW\":true}]}";
static const char with_kms[] =
        "{\"Name\":\"k\",\"ImageInfo\":{\"ImageName\":\"app\"},\"KmsEndpoints\":[\"127.0.0.1:3333\"]}";

/* The state disk's integrity failures as storage_failures reports them: tamper_failures from the
 * tamper_from-th call on (1-based; 0: never), or an error when tamper_error. */
static uint64_t tamper_failures;
static unsigned tamper_from, tamper_calls;
static bool tamper_error;

static int s_storage_failures(void *ud, uint64_t *ret, struct ck_error **reterr)
{
        tamper_calls++;
        if (tamper_error)
                return ck_error_set(reterr, -EIO, "scripted kernel log failure");
        *ret = tamper_from && tamper_calls >= tamper_from ? tamper_failures : 0;
        return 0;
}

static void open_manager(void)
{
        struct task_manager_config cfg = {
                .data_dir = tmpdir,
                .limits = {30000, 65534},
                .max_tasks = 4,
                .stop_timeout_s = 1,
                .pull_timeout_s = 60,
                .max_request_size = 1 << 20,
                .storage_failures = s_storage_failures,
        };
        _cleanup_error_ struct ck_error *e = NULL;
        int r = task_manager_new(&cfg, &backend, &g_m, &e);
        if (r < 0)
                fail_msg("task_manager_new: %s", ck_error_message(e, r));
}

static int setup(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-pipeline-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        memset(&sc, 0, sizeof(sc));
        tamper_failures = 0;
        tamper_from = tamper_calls = 0;
        tamper_error = false;
        open_manager();
        return 0;
}

static int teardown(void **state)
{
        task_manager_free(g_m);
        g_m = NULL;
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

static char *create(const char *body, int expect)
{
        _cleanup_error_ struct ck_error *e = NULL;
        char *id = NULL;
        int r = task_manager_create(g_m, body, strlen(body), &id, &e);

        if (r != expect)
                fail_msg("create: expected %d, got %d (%s)", expect, r, ck_error_message(e, r));
        if (r >= 0)
                task_manager_wait(g_m, id);
        return id;
}

/* "Pulling,Pulled,..." of a task. */
static void events_of(const char *id, char *out, size_t size)
{
        _cleanup_json_ json_t *j = NULL;
        json_t *ev;
        size_t i, n = 0;

        out[0] = 0;
        assert_int_equal(task_manager_events_json(g_m, id, &j, NULL), 0);
        json_array_foreach(j, i, ev) n += (size_t)snprintf(out + n, size - n, "%s%s", i ? "," : "",
                                                           json_string_value(json_object_get(ev, "Action")));
}

static const char *last_message(const char *id, char *buf, size_t size)
{
        _cleanup_json_ json_t *j = NULL;
        assert_int_equal(task_manager_events_json(g_m, id, &j, NULL), 0);
        snprintf(buf, size, "%s",
                 json_string_value(json_object_get(json_array_get(j, json_array_size(j) - 1), "Message")));
        return buf;
}

static void assert_clean(void)
{
        assert_int_equal(sc.rootfs, 0);
        assert_int_equal(sc.secret, 0);
        assert_int_equal(sc.container, 0);
        assert_int_equal(sc.volumes, 0);
}

static void test_happy_path(void **state)
{
        _cleanup_free_ char *id = create(seed, 0);
        _cleanup_json_ json_t *j = NULL;
        char ev[512];
        json_t *ci;

        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Pulled,Creating,Created,Starting,Running");
        assert_string_equal(sc.calls, "pull;rootfs_mount;volume_create;secret_dir_create;container_run;");
        assert_int_equal(task_manager_get_json(g_m, NULL, &j, NULL), 0);
        assert_string_equal(json_string_value(json_object_get(j, "Status")), "Running");
        assert_string_equal(json_string_value(json_object_get(j, "Id")), id);
        /* The password is masked in the response... */
        assert_string_equal(
                json_string_value(json_object_get(
                        json_object_get(json_object_get(json_object_get(j, "ContainerConf"), "ImageInfo"),
                                        "RegisterAuthInfo"),
                        "Username")),
                "user");
        _cleanup_free_ char *dump = ck_json_dump(j);
        assert_null(strstr(dump, "S3cret-Pw-9f8e"));
        assert_true(json_is_false(json_object_get(j, "IsCancel")));
        assert_string_equal(
                json_string_value(json_object_get(
                        json_object_get(json_object_get(json_object_get(j, "ContainerConf"), "ImageInfo"),
                                        "RegisterAuthInfo"),
                        "Password")),
                "******");
        /* ... and ContainerInspect has Docker's fields. */
        ci = json_object_get(j, "ContainerInspect");
        assert_string_equal(json_string_value(json_object_get(ci, "Path")), "/app");
        assert_string_equal(json_string_value(json_array_get(json_object_get(ci, "Args"), 0)), "--serve");
        assert_true(json_is_true(json_object_get(json_object_get(ci, "State"), "Running")));
        assert_int_equal(json_integer_value(json_object_get(json_object_get(ci, "State"), "Pid")), 4242);
        assert_string_equal(
                json_string_value(json_object_get(
                        json_array_get(json_object_get(json_object_get(json_object_get(ci, "HostConfig"),
                                                                       "PortBindings"),
                                                       "8080/tcp"),
                                       0),
                        "HostPort")),
                "30080");
        assert_string_equal(
                json_string_value(json_object_get(
                        json_array_get(json_object_get(json_object_get(json_object_get(ci, "HostConfig"),
                                                                       "PortBindings"),
                                                       "8080/tcp"),
                                       0),
                        "HostIp")),
                "0.0.0.0");
        assert_true(json_is_null(json_object_get(json_object_get(ci, "Config"), "Volumes")));
        assert_non_null(
                json_object_get(json_object_get(json_object_get(ci, "Config"), "ExposedPorts"), "8080/tcp"));
        assert_string_equal(
                json_string_value(json_array_get(json_object_get(json_object_get(ci, "Config"), "Env"), 0)),
                "userId=secret-127.0.0.1:3333");
}

#define IMAGE_PULLED "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define IMAGE_BEFORE "sha256:2222222222222222222222222222222222222222222222222222222222222222"

/* The image under the reference is in the store and the pull answers the same ID: the rootfs
 * mounted during the pull is the container's, and nothing else is mounted. */
static void test_early_rootfs_same_image(void **state)
{
        char ev[512];

        sc.cached_id = IMAGE_PULLED;
        _cleanup_free_ char *id = create(seed, 0);
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Pulled,Creating,Created,Starting,Running");
        assert_string_equal(sc.calls, "image_cached_id;rootfs_mount;pull;volume_create;secret_dir_create;"
                                      "container_run;");
        assert_string_equal(sc.run_image, IMAGE_PULLED);
}

/* The tag moved while the image was cached: the pull answers another ID, the early rootfs is
 * unmounted and the container runs on a rootfs of the pulled image. */
static void test_early_rootfs_discarded_when_the_tag_moved(void **state)
{
        char ev[512];

        sc.cached_id = IMAGE_BEFORE;
        _cleanup_free_ char *id = create(seed, 0);
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Pulled,Creating,Created,Starting,Running");
        assert_string_equal(sc.calls, "image_cached_id;rootfs_mount;pull;rootfs_umount:" IMAGE_BEFORE
                                      ";rootfs_mount;volume_create;secret_dir_create;container_run;");
        assert_string_equal(sc.run_image, IMAGE_PULLED);
}

/* A cancel while the rootfs is mounted ahead, and a failed pull after it: the early rootfs goes
 * with the task's cleanup, and nothing ran. */
static void test_early_rootfs_cancel_cleans_up(void **state)
{
        char ev[512];

        sc.cached_id = IMAGE_BEFORE;
        sc.cancel_at = "rootfs_mount";
        _cleanup_free_ char *id = create(seed, 0);
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Cancelled");
        assert_non_null(strstr(sc.calls, "image_cached_id;rootfs_mount;"));
        assert_null(strstr(sc.calls, "container_run"));
        assert_clean();
}

static void test_early_rootfs_failed_pull_cleans_up(void **state)
{
        char ev[512];

        sc.cached_id = IMAGE_PULLED;
        sc.fail_at = "pull";
        _cleanup_free_ char *id = create(seed, 0);
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Failed");
        assert_non_null(strstr(sc.calls, "image_cached_id;rootfs_mount;pull;rootfs_umount:"));
        assert_null(strstr(sc.calls, "container_run"));
        assert_clean();
}

static void test_password_not_on_disk(void **state)
{
        _cleanup_free_ char *id = create(seed, 0);
        assert_non_null(id);
        const char *files[] = {"conker.db", "conker.db-wal"};

        assert_non_null(id);
        task_manager_free(g_m);
        g_m = NULL;
        for (size_t i = 0; i < 2; i++) {
                char path[128];
                _cleanup_free_ uint8_t *d = NULL;
                size_t n = 0;
                snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
                if (ck_read_file(path, 64 << 20, &d, &n, NULL) < 0)
                        continue;
                assert_null(memmem(d, n, "S3cret-Pw-9f8e", 14));
                assert_non_null(memmem(d, n, "conker-example-app", 18));
        }
        open_manager();
}

/* The registry password serves the pull only: once the pull is over, failed or not, it is
 * wiped from conkerd's memory rather than kept for the task's lifetime. */
static void test_password_dropped_after_pull(void **state)
{
        const char *fail[] = {"pull", NULL};

        for (size_t k = 0; k < 2; k++) {
                bool found = false;

                sc.fail_at = fail[k];
                _cleanup_free_ char *id = create(seed, 0);
                pthread_mutex_lock(&g_m->lock);
                for (size_t i = 0; i < g_m->n_tasks; i++) {
                        if (strcmp(g_m->tasks[i]->id, id) != 0)
                                continue;
                        found = true;
                        assert_null(g_m->tasks[i]->req.password);
                        assert_string_equal(g_m->tasks[i]->req.username, "user");
                }
                pthread_mutex_unlock(&g_m->lock);
                assert_true(found);
        }
}

static void test_attest_unavailable(void **state)
{
        _cleanup_free_ char *id = create(with_kms, 0);
        char ev[512], msg[512];

        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Pulled,Attesting,Failed");
        assert_non_null(strstr(
                last_message(id, msg, sizeof(msg)),
                "remote attestation is not available in this build: KmsEndpoints cannot be honoured"));
        assert_clean();
}

static void fail_at(const char *opname, const char *expect_events)
{
        char ev[512], msg[512];

        sc.fail_at = opname;
        _cleanup_free_ char *id = create(seed, 0);
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, expect_events);
        last_message(id, msg, sizeof(msg));
        assert_non_null(strstr(msg, "scripted failure in"));
        assert_non_null(strstr(msg, opname));
        assert_clean();
        /* Volumes recorded for the task are erased. */
        if (strcmp(opname, "secret_dir_create") == 0 || strcmp(opname, "container_run") == 0)
                assert_non_null(strstr(sc.calls, "volume_delete:data;"));
}

static void test_fail_pull(void **state)
{
        fail_at("pull", "Pulling,Failed");
}
static void test_fail_rootfs(void **state)
{
        fail_at("rootfs_mount", "Pulling,Pulled,Creating,Failed");
}
static void test_fail_volume(void **state)
{
        fail_at("volume_create", "Pulling,Pulled,Creating,Failed");
}
static void test_fail_secret(void **state)
{
        fail_at("secret_dir_create", "Pulling,Pulled,Creating,Failed");
}
static void test_fail_run(void **state)
{
        fail_at("container_run", "Pulling,Pulled,Creating,Created,Starting,Failed");
}

static void cancel_at(const char *opname, const char *expect_events)
{
        char ev[512], msg[512];

        sc.cancel_at = opname;
        _cleanup_free_ char *id = create(seed, 0);
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, expect_events);
        assert_non_null(strstr(last_message(id, msg, sizeof(msg)), "cancelled by request during"));
        assert_clean();
        _cleanup_json_ json_t *j = NULL;
        assert_int_equal(task_manager_get_json(g_m, id, &j, NULL), 0);
        assert_true(json_is_true(json_object_get(j, "IsCancel")));
}

static void test_cancel_pull(void **state)
{
        cancel_at("pull", "Pulling,Cancelled");
}
static void test_cancel_rootfs(void **state)
{
        cancel_at("rootfs_mount", "Pulling,Pulled,Creating,Cancelled");
}
static void test_cancel_volume(void **state)
{
        cancel_at("volume_create", "Pulling,Pulled,Creating,Cancelled");
}
static void test_cancel_secret(void **state)
{
        cancel_at("secret_dir_create", "Pulling,Pulled,Creating,Created,Cancelled");
}

static void test_cancel_after_running_is_busy(void **state)
{
        _cleanup_free_ char *id = create(seed, 0);
        _cleanup_error_ struct ck_error *e = NULL;

        assert_int_equal(task_manager_cancel(g_m, id, NULL, &e), -EBUSY);
        assert_non_null(strstr(e->msg, "not being created"));
}

static void test_delete(void **state)
{
        _cleanup_free_ char *id = create(seed, 0);
        _cleanup_json_ json_t *j = NULL;

        assert_int_equal(task_manager_delete(g_m, id, NULL, NULL), 0);
        assert_clean();
        assert_int_equal(sc.images, 0);
        assert_non_null(strstr(sc.calls, "container_stop;"));
        assert_int_equal(task_manager_get_json(g_m, id, &j, NULL), -ENOENT);
        /* Deleting again: not found. */
        assert_int_equal(task_manager_delete(g_m, id, NULL, NULL), -ENOENT);
        /* And it stays gone after a restart. */
        task_manager_free(g_m);
        open_manager();
        assert_int_equal(task_manager_get_json(g_m, id, &j, NULL), -ENOENT);
}

static void test_delete_keeps_shared_image(void **state)
{
        _cleanup_free_ char *a = create("{\"Name\":\"a\",\"ImageInfo\":{\"ImageName\":\"x\"}}", 0);
        assert_non_null(a);
        _cleanup_free_ char *b = create("{\"Name\":\"b\",\"ImageInfo\":{\"ImageName\":\"x\"}}", 0);

        assert_non_null(a);
        assert_int_equal(task_manager_delete(g_m, "a", NULL, NULL), 0);
        assert_int_equal(sc.image_removes, 0);
        assert_int_equal(task_manager_delete(g_m, b, NULL, NULL), 0);
        assert_int_equal(sc.image_removes, 1);
}

static void test_conflicts(void **state)
{
        _cleanup_free_ char *id = create(seed, 0);
        assert_non_null(id);
        _cleanup_error_ struct ck_error *e = NULL;
        char *x = NULL;

        assert_non_null(id);

        /* Same name. */
        assert_int_equal(task_manager_create(g_m, seed, strlen(seed), &x, &e), -EEXIST);
        assert_non_null(strstr(e->msg, "name"));
        ck_error_free(TAKE_PTR(e));
        /* Same published port, other name. */
        const char *port =
                "{\"Name\":\"other\",\"ImageInfo\":{\"ImageName\":\"x\"},\"Ports\":[{\"TargetPort\":1,"
                "\"PublishedPort\":30080}]}";
        assert_int_equal(task_manager_create(g_m, port, strlen(port), &x, &e), -EEXIST);
        assert_non_null(strstr(e->msg, "30080"));
        ck_error_free(TAKE_PTR(e));
        /* A port busy on the host. */
        sc.port_busy = true;
        const char *host = "{\"ImageInfo\":{\"ImageName\":\"x\"},\"Ports\":[{\"TargetPort\":1,"
                           "\"PublishedPort\":30999}]}";
        assert_int_equal(task_manager_create(g_m, host, strlen(host), &x, &e), -EEXIST);
        assert_non_null(strstr(e->msg, "on the host"));
        ck_error_free(TAKE_PTR(e));
        /* A bad image reference. */
        const char *bad = "{\"ImageInfo\":{\"ImageName\":\"UPPER\"}}";
        assert_int_equal(task_manager_create(g_m, bad, strlen(bad), &x, &e), -EINVAL);
        assert_non_null(strstr(e->msg, "ImageInfo.ImageName"));
        ck_error_free(TAKE_PTR(e));
        /* The name of a failed task is free again. */
        task_manager_free(g_m);
        memset(&sc, 0, sizeof(sc));
        open_manager();
        sc.fail_at = "pull";
        const char *f = "{\"Name\":\"f\",\"ImageInfo\":{\"ImageName\":\"x\"}}";
        free(create(f, 0));
        sc.fail_at = NULL;
        free(create(f, 0));
        /* max-tasks (4): seed (gone, Failed), f (Failed), f, one more, then no more. */
        free(create("{\"ImageInfo\":{\"ImageName\":\"x\"}}", 0));
        free(create("{\"ImageInfo\":{\"ImageName\":\"x\"}}", -EBUSY));
}

static void test_watcher(void **state)
{
        _cleanup_free_ char *id = create(seed, 0);
        char ev[512], msg[256];

        sc.state = (struct runtime_state){.status = RUNTIME_RESTARTING, .exit_code = 3, .restart_count = 0};
        task_manager_watch_once(g_m);
        assert_non_null(strstr(last_message(id, msg, sizeof(msg)), "exited with code 3; restarting"));
        sc.state = (struct runtime_state){.status = RUNTIME_RUNNING, .pid = 99, .restart_count = 1};
        task_manager_watch_once(g_m);
        task_manager_watch_once(g_m); /* no change, no event */
        sc.state = (struct runtime_state){.status = RUNTIME_EXITED, .exit_code = 137, .oom_killed = true};
        task_manager_watch_once(g_m);
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev,
                            "Pulling,Pulled,Creating,Created,Starting,Running,Restarting,Running,Exited");
        assert_non_null(strstr(last_message(id, msg, sizeof(msg)), "code 137 (killed: out of memory)"));
}

/* Issue 10: once the state disk failed its integrity check, a container that exits or restarts
 * ends its task Failed with everything removed (the shim restarts nothing); a running one is
 * left alone; nothing starts and no task is created. */
static void test_tampered_state_disk(void **state)
{
        _cleanup_free_ char *id = create(seed, 0);
        const char *reason =
                "the state disk failed its integrity check (3 failed sector reads): the host altered it; "
                "not restarting";
        char ev[512], msg[256];

        tamper_failures = 3;
        tamper_from = 1;
        task_manager_watch_once(g_m); /* running, no exit: left alone */
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Pulled,Creating,Created,Starting,Running");
        assert_int_equal(sc.container, 1);

        sc.state =
                (struct runtime_state){.status = RUNTIME_RESTARTING, .exit_code = 135, .restart_count = 0};
        task_manager_watch_once(g_m);
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Pulled,Creating,Created,Starting,Running,Restarting,Failed");
        assert_string_equal(last_message(id, msg, sizeof(msg)), reason);
        assert_clean();
        task_manager_watch_once(g_m); /* it stays failed */
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Pulled,Creating,Created,Starting,Running,Restarting,Failed");

        /* No new task. */
        _cleanup_error_ struct ck_error *e = NULL;
        char *id2 = NULL;
        assert_int_equal(task_manager_create(g_m, seed, strlen(seed), &id2, &e), -EAGAIN);
        assert_string_equal(ck_error_message(e, -EAGAIN), reason);
        assert_int_equal(task_manager_delete(g_m, id, NULL, NULL), 0);

        /* A failure reported while a task is in its pipeline: it does not start. */
        tamper_calls = 0;
        tamper_from = 2; /* the create passes, the Starting step sees it */
        sc.calls[0] = 0;
        _cleanup_free_ char *id3 = create(seed, 0);
        events_of(id3, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Pulled,Creating,Created,Starting,Failed");
        assert_non_null(strstr(last_message(id3, msg, sizeof(msg)), reason));
        assert_null(strstr(sc.calls, "container_run;"));
        assert_clean();
        assert_int_equal(task_manager_delete(g_m, id3, NULL, NULL), 0);

        /* A kernel log that cannot be read counts as a failure. */
        tamper_error = true;
        assert_int_equal(task_manager_create(g_m, seed, strlen(seed), &id2, NULL), -EAGAIN);
}

/* A restart seen only as a higher restart count (the container already runs again) counts as
 * an exit. */
static void test_tampered_restart_count(void **state)
{
        _cleanup_free_ char *id = create(seed, 0);
        char ev[512];

        task_manager_watch_once(g_m);
        tamper_failures = 1;
        tamper_from = 1;
        sc.state.restart_count = 1;
        task_manager_watch_once(g_m);
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Pulled,Creating,Created,Starting,Running,Running,Failed");
        assert_clean();
}

static void test_recovery_readopts_running(void **state)
{
        _cleanup_free_ char *id = create(seed, 0);
        char ev[512];

        task_manager_free(g_m);
        /* The container survived conkerd (the shim owns it). */
        assert_int_equal(sc.container, 1);
        open_manager();
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Pulled,Creating,Created,Starting,Running");
        assert_int_equal(sc.container, 1);

        /* It died while conkerd was down: the task fails and its resources go. */
        task_manager_free(g_m);
        sc.container = 0;
        open_manager();
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Pulled,Creating,Created,Starting,Running,Failed");
        assert_clean();
}

static void test_recovery_mid_pipeline(void **state)
{
        _cleanup_(task_store_task_clear) struct task_store_task none = {0};
        struct task_store *s = NULL;
        char path[128], ev[512], msg[256];
        const char *id = "0123456789abcdef0123456789abcdef";
        struct task_store_task t = {.id = (char *)id,
                                    .seq = 7,
                                    .name = (char *)"mid",
                                    .created_ns = 1,
                                    .request =
                                            (char *)"{\"Name\":\"mid\",\"ImageInfo\":{\"ImageName\":\"x\"},"
                                                    "\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/d\","
                                                    "\"Source\":\"v1\"}]}"};
        struct task_store_event e1 = {(char *)"Pulling", 1, (char *)"pulling"};
        struct task_store_event e2 = {(char *)"Creating", 2, (char *)"creating"};

        task_manager_free(g_m);
        snprintf(path, sizeof(path), "%s/conker.db", tmpdir);
        assert_int_equal(task_store_open(path, &s, NULL), 0);
        assert_int_equal(task_store_insert(s, &t, &e1, NULL), 0);
        assert_int_equal(task_store_append_event(s, id, &e2, NULL), 0);
        assert_int_equal(task_store_add_volume(s, id, "v1", NULL), 0);
        task_store_free(s);
        sc.rootfs = sc.secret = sc.volumes = 1;

        open_manager();
        events_of(id, ev, sizeof(ev));
        assert_string_equal(ev, "Pulling,Creating,Failed");
        assert_string_equal(last_message(id, msg, sizeof(msg)), "conkerd restarted during Creating");
        assert_non_null(strstr(sc.calls, "volume_delete:v1;"));
        assert_clean();
        (void)none;
}

static void test_lookup(void **state)
{
        _cleanup_free_ char *id = create(seed, 0);
        _cleanup_json_ json_t *j = NULL, *l = NULL;
        char prefix[13];

        snprintf(prefix, sizeof(prefix), "%.12s", id);
        assert_int_equal(task_manager_get_json(g_m, prefix, &j, NULL), 0);
        json_decref(TAKE_PTR(j));
        assert_int_equal(task_manager_get_json(g_m, "conker-example-app", &j, NULL), 0);
        assert_int_equal(task_manager_get_json(g_m, "nope", &l, NULL), -ENOENT);
        assert_int_equal(task_manager_list_json(g_m, &l, NULL), 0);
        assert_int_equal(json_array_size(l), 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_happy_path, setup, teardown),
                cmocka_unit_test_setup_teardown(test_password_not_on_disk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_early_rootfs_same_image, setup, teardown),
                cmocka_unit_test_setup_teardown(test_early_rootfs_discarded_when_the_tag_moved, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_early_rootfs_cancel_cleans_up, setup, teardown),
                cmocka_unit_test_setup_teardown(test_early_rootfs_failed_pull_cleans_up, setup, teardown),
                cmocka_unit_test_setup_teardown(test_password_dropped_after_pull, setup, teardown),
                cmocka_unit_test_setup_teardown(test_attest_unavailable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fail_pull, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fail_rootfs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fail_volume, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fail_secret, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fail_run, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_pull, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_rootfs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_volume, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_secret, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_after_running_is_busy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
                cmocka_unit_test_setup_teardown(test_delete_keeps_shared_image, setup, teardown),
                cmocka_unit_test_setup_teardown(test_conflicts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watcher, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tampered_state_disk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tampered_restart_count, setup, teardown),
                cmocka_unit_test_setup_teardown(test_recovery_readopts_running, setup, teardown),
                cmocka_unit_test_setup_teardown(test_recovery_mid_pipeline, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
