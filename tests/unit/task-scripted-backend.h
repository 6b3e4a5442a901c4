/* A scripted task backend for unit tests: records the operations the pipeline makes, fails or
 * cancels at a named one, and tracks which resources exist so tests can check cleanup.
 * Included by one test file each (static functions). The including file defines g_m (the
 * manager the script cancels through) and tmpdir (used as the secret directory). */
#pragma once

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "task.h"

static struct task_manager *g_m;
static char tmpdir[64];

struct script {
        char calls[4096];
        const char *fail_at;   /* operation that fails */
        const char *cancel_at; /* operation during which the user cancels */
        int fail_code;
        int rootfs, secret, container, volumes, images, image_removes;
        bool port_busy;
        struct runtime_state state;
        /* Set: the store holds this image under every reference (image_cached_id), and the pull
         * waits until the pipeline's early rootfs mount was tried, so the calls keep one order. */
        const char *cached_id;
        atomic_int early_tried;
        char rootfs_image[80]; /* the image the mounted rootfs is of */
        char run_image[80];    /* the image whose rootfs the container was started on */
};

static struct script sc;
static pthread_mutex_t sc_lock = PTHREAD_MUTEX_INITIALIZER; /* calls: the early rootfs has a thread */

static void record(const char *name)
{
        size_t n;

        pthread_mutex_lock(&sc_lock);
        n = strlen(sc.calls);
        snprintf(sc.calls + n, sizeof(sc.calls) - n, "%s;", name);
        pthread_mutex_unlock(&sc_lock);
}

static int op(const char *name, struct ck_error **reterr)
{
        record(name);
        if (sc.cancel_at && strcmp(sc.cancel_at, name) == 0)
                assert_int_equal(task_manager_cancel(g_m, NULL, NULL, NULL), 0);
        if (sc.fail_at && strcmp(sc.fail_at, name) == 0)
                return ck_error_set(reterr, sc.fail_code ? sc.fail_code : -EIO, "scripted failure in %s",
                                    name);
        return 0;
}

static int s_normalize(void *ud, const char *ref, char **ret, struct ck_error **reterr)
{
        if (strchr(ref, ' ') || strcmp(ref, "UPPER") == 0)
                return ck_error_set(reterr, -EINVAL, "invalid reference format");
        return asprintf(ret, "docker.io/library/%s", ref) < 0 ? -ENOMEM : 0;
}

static int s_pull(void *ud, const struct task_pull_request *r, struct task_image *ret,
                  struct ck_error **reterr)
{
        struct task_pull_progress p = {"downloading", 10, 100, 0, 1};
        int q;

        r->progress(r->progress_userdata, &p);
        for (int i = 0; sc.cached_id && !atomic_load(&sc.early_tried) && i < 5000; i++)
                usleep(1000);
        q = op("pull", reterr);
        if (q < 0)
                return q;
        if (atomic_load(r->cancel))
                return ck_error_set(reterr, -ECANCELED, "cancelled");
        sc.images = 1;
        *ret = (struct task_image){
                .id = strdup("sha256:1111111111111111111111111111111111111111111111111111111111111111"),
                .name = strdup(r->ref),
                .n_layers = 1,
                .size = 1234};
        ret->cmd = calloc(3, sizeof(char *));
        ret->cmd[0] = strdup("/app");
        ret->cmd[1] = strdup("--serve");
        return 0;
}

static int s_image_remove(void *ud, const char *id, struct ck_error **reterr)
{
        sc.image_removes++;
        sc.images = 0;
        return op("image_remove", reterr);
}

static int s_image_cached_id(void *ud, const char *ref, char **ret_id, struct ck_error **reterr)
{
        if (!sc.cached_id)
                return -ENOENT;
        record("image_cached_id");
        *ret_id = strdup(sc.cached_id);
        return *ret_id ? 0 : -ENOMEM;
}

static int s_rootfs_mount(void *ud, const char *tid, const char *iid, char **ret, struct ck_error **reterr)
{
        int q = op("rootfs_mount", reterr);

        atomic_store(&sc.early_tried, 1);
        if (q < 0)
                return q;
        sc.rootfs = 1;
        snprintf(sc.rootfs_image, sizeof(sc.rootfs_image), "%s", iid);
        *ret = strdup("/nonexistent/rootfs");
        return 0;
}

static int s_rootfs_umount(void *ud, const char *tid, const char *iid, struct ck_error **reterr)
{
        char name[128];

        if (sc.rootfs) {
                snprintf(name, sizeof(name), "rootfs_umount:%s", iid ? iid : "-");
                record(name);
        }
        sc.rootfs = 0;
        sc.rootfs_image[0] = 0;
        return 0;
}

static int s_volume_create(void *ud, const char *tid, const char *name, char **ret, struct ck_error **reterr)
{
        int q = op("volume_create", reterr);
        if (q < 0)
                return q;
        sc.volumes++;
        return asprintf(ret, "/nonexistent/volumes/%s", name) < 0 ? -ENOMEM : 0;
}

static int s_volume_delete(void *ud, const char *tid, const char *name, struct ck_error **reterr)
{
        size_t n = strlen(sc.calls);
        snprintf(sc.calls + n, sizeof(sc.calls) - n, "volume_delete:%s;", name);
        if (sc.volumes > 0)
                sc.volumes--;
        return 0;
}

static int s_secret_create(void *ud, const char *tid, char **ret, struct ck_error **reterr)
{
        int q = op("secret_dir_create", reterr);
        if (q < 0)
                return q;
        sc.secret = 1;
        *ret = strdup(tmpdir);
        return 0;
}

static int s_secret_remove(void *ud, const char *tid, struct ck_error **reterr)
{
        sc.secret = 0;
        return 0;
}

static int s_run(void *ud, const struct task_run_spec *spec, struct ck_error **reterr)
{
        int q = op("container_run", reterr);
        if (q < 0)
                return q;
        assert_string_equal(spec->rootfs, "/nonexistent/rootfs");
        assert_string_equal(spec->secret_dir, tmpdir);
        assert_int_equal(sc.rootfs, 1);
        snprintf(sc.run_image, sizeof(sc.run_image), "%s", sc.rootfs_image);
        sc.container = 1;
        sc.state = (struct runtime_state){.status = RUNTIME_RUNNING, .pid = 4242, .exit_code = -1};
        return 0;
}

static int s_stop(void *ud, const char *tid, unsigned timeout, struct ck_error **reterr)
{
        return op("container_stop", reterr);
}

static int s_delete(void *ud, const char *tid, struct ck_error **reterr)
{
        sc.container = 0;
        return 0;
}

static int s_state(void *ud, const char *tid, struct runtime_state *ret, struct ck_error **reterr)
{
        if (!sc.container)
                return ck_error_set(reterr, -ENOENT, "no such container");
        *ret = sc.state;
        return 0;
}

static char script_log_path[128];

static char *s_log_path(void *ud, const char *tid)
{
        return strdup(script_log_path[0] ? script_log_path : "/nonexistent/log.json");
}

static bool s_port_in_use(void *ud, uint16_t port)
{
        return sc.port_busy && port == 30999;
}

static const struct task_backend backend = {
        .image_ref_normalize = s_normalize,
        .image_pull = s_pull,
        .image_cached_id = s_image_cached_id,
        .image_remove = s_image_remove,
        .rootfs_mount = s_rootfs_mount,
        .rootfs_umount = s_rootfs_umount,
        .volume_create = s_volume_create,
        .volume_delete = s_volume_delete,
        .secret_dir_create = s_secret_create,
        .secret_dir_remove = s_secret_remove,
        .container_run = s_run,
        .container_stop = s_stop,
        .container_delete = s_delete,
        .container_state = s_state,
        .container_log_path = s_log_path,
        .host_port_in_use = s_port_in_use,
};
