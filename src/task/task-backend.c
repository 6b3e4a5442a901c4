/* The real task backend (see task-backend.h): each operation is a thin, idempotent call into
 * the image, runtime or volume module. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec.h"
#include "fetch-client.h"
#include "fs.h"
#include "log.h"
#include "metrics.h"
#include "pull.h"
#include "reference.h"
#include "request.h"
#include "rootfs.h"
#include "strv.h"
#include "runtime.h"
#include "task-backend.h"
#include "volume.h"

struct real {
        struct task_backend be; /* first: the ops table handed out */
        char *data_dir, *run_dir;
        struct image_store *images;
        struct runtime *rt;
        struct volume_manager *vm;
        /* What every pull asks conker-fetch for, less the reference and the user name. */
        struct fetch_request pull;
        char *fetch_path;
        struct fetch_pool *fetch_pool; /* helpers kept a few seconds for the next pull */
        enum task_pull_policy pull_policy;
};

static char *task_path(const char *base, const char *id, const char *sub)
{
        char *p = NULL;

        if (asprintf(&p, "%s/%s%s%s", base, id, sub ? "/" : "", sub ? sub : "") < 0)
                return NULL;
        return p;
}

static int real_ref_normalize(void *ud, const char *ref, char **ret, struct ck_error **reterr)
{
        _cleanup_(image_ref_clear) struct image_ref r = {0};
        char *s;
        int q;

        q = image_ref_parse(ref, &r, reterr);
        if (q < 0)
                return q;
        s = image_ref_to_string(&r);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static void on_pull_progress(void *userdata, const struct fetch_progress *p)
{
        const struct task_pull_request *r = userdata;
        struct task_pull_progress tp = {p->phase, p->done_bytes, p->total_bytes, p->layers_done,
                                        p->layers_total};

        if (r->progress)
                r->progress(r->progress_userdata, &tp);
}

/* The task_image of a stored record and its parsed config. */
static int task_image_from(const struct image_record *rec, const struct image_config *cfg, const char *ref,
                           struct task_image *ret)
{
        struct task_image img = {0};

        img.id = strdup(rec->id);
        img.name = strdup(rec->name ? rec->name : ref);
        img.entrypoint = task_strv_dup(cfg->entrypoint);
        img.cmd = task_strv_dup(cfg->cmd);
        img.env = task_strv_dup(cfg->env);
        img.exposed_ports = task_strv_dup(cfg->exposed_ports);
        img.volumes = task_strv_dup(cfg->volumes);
        img.working_dir = cfg->working_dir ? strdup(cfg->working_dir) : NULL;
        img.user = cfg->user ? strdup(cfg->user) : NULL;
        img.stop_signal = cfg->stop_signal ? strdup(cfg->stop_signal) : NULL;
        img.size = rec->size;
        img.n_layers = (unsigned)rec->n_layers;
        if (!img.id || !img.name) {
                task_image_clear(&img);
                return -ENOMEM;
        }
        *ret = img;
        return 0;
}

/* Pull policies "missing" and "never": an image already stored under this reference is used as
 * it is, without asking the registry. -ENOENT on any doubt (no record, unreadable config): a
 * pull for "missing", a failure for "never". */
static int cached_image(struct real *x, const char *ref, struct task_image *ret)
{
        _cleanup_(image_record_clear) struct image_record rec = {0};
        _cleanup_(image_config_clear) struct image_config cfg = {0};
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;

        if (image_store_get(x->images, ref, &rec, NULL) < 0 || !rec.name || strcmp(rec.name, ref) != 0)
                return -ENOENT;
        if (image_store_read_blob(x->images, rec.id, IMAGE_CONFIG_MAX, &buf, &len, NULL) < 0 ||
            image_config_parse(buf, len, &cfg, NULL) < 0)
                return -ENOENT;
        return task_image_from(&rec, &cfg, ref, ret);
}

static int real_image_cached_id(void *ud, const char *ref, char **ret_id, struct ck_error **reterr)
{
        struct real *x = ud;
        _cleanup_(image_record_clear) struct image_record rec = {0};

        (void)reterr;
        if (image_store_get(x->images, ref, &rec, NULL) < 0 || !rec.name || !rec.id ||
            strcmp(rec.name, ref) != 0)
                return -ENOENT;
        *ret_id = TAKE_PTR(rec.id);
        return 0;
}

static int real_pull(void *ud, const struct task_pull_request *r, struct task_image *ret,
                     struct ck_error **reterr)
{
        struct real *x = ud;
        _cleanup_(image_record_clear) struct image_record rec = {0};
        _cleanup_(image_config_clear) struct image_config cfg = {0};
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *name = NULL;
        struct fetch_request req = x->pull; /* shallow: only ref and username differ */
        struct fetch_pull_opts o = {
                .helper = x->fetch_path,
                .pool = x->fetch_pool,
                .req = &req,
                .password = r->password,
                .cancel = r->cancel,
                .progress = on_pull_progress,
                .progress_userdata = (void *)r,
        };
        uint64_t pulled = 0;
        size_t len = 0;
        int q;

        if (x->pull_policy != TASK_PULL_ALWAYS) {
                q = cached_image(x, r->ref, ret);
                if (q == 0) {
                        log_debug("image %s is in the store; not pulling (pull-policy %s)", r->ref,
                                  x->pull_policy == TASK_PULL_NEVER ? "never" : "missing");
                        return 0;
                }
                if (x->pull_policy == TASK_PULL_NEVER)
                        return ck_error_set(reterr, -ENOENT,
                                            "image %s is not in the store and pull-policy is never", r->ref);
        }
        req.ref = (char *)r->ref;
        req.username = (char *)r->username;
        q = fetch_pull(&o, &name, &pulled, reterr);
        ck_metric_add(ck_metric_get(IMAGE_METRIC_PULLED_BYTES, NULL), pulled);
        if (q < 0)
                return q;
        /* The helper stored it; read back what image_pull() returned to it. */
        q = image_store_get(x->images, name, &rec, reterr);
        if (q >= 0)
                q = image_store_read_blob(x->images, rec.id, IMAGE_CONFIG_MAX, &buf, &len, reterr);
        if (q >= 0)
                q = image_config_parse(buf, len, &cfg, reterr);
        if (q < 0)
                return ck_error_prefix(reterr, q, "image %s after the pull", name);
        return task_image_from(&rec, &cfg, r->ref, ret);
}

static int real_image_remove(void *ud, const char *image_id, struct ck_error **reterr)
{
        struct real *x = ud;
        return image_store_remove(x->images, image_id, reterr);
}

static int real_rootfs_mount(void *ud, const char *id, const char *image_id, char **ret,
                             struct ck_error **reterr)
{
        struct real *x = ud;
        _cleanup_free_ char *cdir = task_path(x->data_dir, "containers", id);
        _cleanup_free_ char *target = cdir ? task_path(cdir, "rootfs", NULL) : NULL;
        _cleanup_free_ char *state = cdir ? task_path(cdir, "overlay", NULL) : NULL;
        int q;

        if (!target || !state)
                return -ENOMEM;
        q = ck_mkdir_p(target, 0700);
        if (q < 0)
                return ck_error_errno(reterr, q, "cannot create %s", target);
        q = image_rootfs_mount(x->images, image_id, state, target, reterr);
        if (q < 0)
                return q;
        *ret = TAKE_PTR(target);
        return 0;
}

static int real_rootfs_umount(void *ud, const char *id, const char *image_id, struct ck_error **reterr)
{
        struct real *x = ud;
        _cleanup_free_ char *cdir = task_path(x->data_dir, "containers", id);
        _cleanup_free_ char *target = cdir ? task_path(cdir, "rootfs", NULL) : NULL;
        _cleanup_free_ char *state = cdir ? task_path(cdir, "overlay", NULL) : NULL;
        struct stat st;
        int q;

        if (!target || !state)
                return -ENOMEM;
        if (stat(target, &st) == 0) {
                q = image_rootfs_umount(x->images, image_id ? image_id : "", state, target, true, reterr);
                if (q < 0)
                        return q;
        }
        /* What is left is empty directories; rm -rf stays on this filesystem, so a mount that
         * somehow survived is never walked into. */
        q = ck_rm_rf_at(AT_FDCWD, cdir);
        if (q < 0 && q != -ENOENT)
                return ck_error_errno(reterr, q, "cannot remove %s", cdir);
        return 0;
}

static int real_volume_create(void *ud, const char *id, const char *name, char **ret,
                              struct ck_error **reterr)
{
        struct real *x = ud;
        return volume_create(x->vm, id, name, ret, reterr);
}

static int real_volume_delete(void *ud, const char *id, const char *name, struct ck_error **reterr)
{
        struct real *x = ud;
        return volume_delete(x->vm, id, name, reterr);
}

/* A small tmpfs of its own: the secrets never reach a disk and vanish with the mount. With
 * `noswap` (Linux 6.4+) its pages are not written to swap either, which a host that owns the
 * swap device could read. Older kernels reject the option with EINVAL: mount without it and say
 * so once (swap inside a TD is usually off, or on an encrypted device; that is then the
 * operator's part). */
static int secret_tmpfs_mount(const char *dir)
{
        static atomic_bool noswap_missing;
        static const char opts[] = "mode=0700,size=1m,nr_inodes=64";
        bool tried = false;

        if (!atomic_load(&noswap_missing)) {
                if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          "mode=0700,size=1m,nr_inodes=64,noswap") == 0)
                        return 0;
                if (errno != EINVAL)
                        return -errno;
                tried = true;
        }
        if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
                return -errno;
        /* Only now is it the option that was refused, not the mount. */
        if (tried && !atomic_exchange(&noswap_missing, true))
                log_warn("this kernel's tmpfs has no noswap option (Linux 6.4+): the secret directories may "
                         "be swapped; keep swap off or encrypted in the TD");
        return 0;
}

static int real_secret_create(void *ud, const char *id, char **ret, struct ck_error **reterr)
{
        struct real *x = ud;
        _cleanup_free_ char *tdir = task_path(x->run_dir, "tasks", id);
        _cleanup_free_ char *dir = tdir ? task_path(tdir, "secret", NULL) : NULL;
        int q, r;

        if (!dir)
                return -ENOMEM;
        q = ck_mkdir_p(dir, 0700);
        if (q < 0)
                return ck_error_errno(reterr, q, "cannot create %s", dir);
        r = secret_tmpfs_mount(dir);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot mount the secret tmpfs at %s", dir);
        *ret = TAKE_PTR(dir);
        return 0;
}

static int real_secret_remove(void *ud, const char *id, struct ck_error **reterr)
{
        struct real *x = ud;
        _cleanup_free_ char *tdir = task_path(x->run_dir, "tasks", id);
        _cleanup_free_ char *dir = tdir ? task_path(tdir, "secret", NULL) : NULL;

        if (!dir)
                return -ENOMEM;
        /* Unmount every layer (a repeated create could have stacked two). */
        while (umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
                ;
        if (errno != EINVAL && errno != ENOENT)
                return ck_error_errno(reterr, -errno, "cannot unmount %s", dir);
        if (rmdir(dir) < 0 && errno != ENOENT)
                return ck_error_errno(reterr, -errno, "cannot remove %s", dir);
        if (rmdir(tdir) < 0 && errno != ENOENT)
                return ck_error_errno(reterr, -errno, "cannot remove %s", tdir);
        return 0;
}

static int real_run(void *ud, const struct task_run_spec *s, struct ck_error **reterr)
{
        struct real *x = ud;
        _cleanup_free_ struct runtime_port *ports = calloc(s->n_ports + 1, sizeof(*ports));
        _cleanup_free_ struct runtime_mount *mounts = calloc(s->n_mounts + 1, sizeof(*mounts));
        /* A view of the task's copy of the image config: pointers are borrowed. */
        struct image_config cfg = {
                .entrypoint = s->image->entrypoint,
                .cmd = s->image->cmd,
                .env = s->image->env,
                .working_dir = s->image->working_dir,
                .user = s->image->user,
                .stop_signal = s->image->stop_signal,
                .exposed_ports = s->image->exposed_ports,
        };
        struct runtime_spec spec = {
                .id = s->id,
                .name = s->name,
                .rootfs = s->rootfs,
                .image = &cfg,
                .env = s->env,
                .ports = ports,
                .n_ports = s->n_ports,
                .mounts = mounts,
                .n_mounts = s->n_mounts,
                .secret_dir = s->secret_dir,
                .restart = RUNTIME_RESTART_ALWAYS,
        };

        if (!ports || !mounts)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_ports; i++)
                ports[i] = (struct runtime_port){s->ports[i].target, s->ports[i].published, false};
        for (size_t i = 0; i < s->n_mounts; i++)
                mounts[i] = (struct runtime_mount){s->mounts[i].host_path, s->mounts[i].target,
                                                   !s->mounts[i].rw};
        return runtime_run(x->rt, &spec, reterr);
}

static int real_prepare_network(void *ud, const char *id, const struct task_port *tp, size_t n,
                                struct ck_error **reterr)
{
        struct real *x = ud;
        _cleanup_free_ struct runtime_port *ports = calloc(n + 1, sizeof(*ports));

        if (!ports)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                ports[i] = (struct runtime_port){tp[i].target, tp[i].published, false};
        return runtime_prepare_network(x->rt, id, ports, n, reterr);
}

static int real_stop(void *ud, const char *id, unsigned timeout_s, struct ck_error **reterr)
{
        struct real *x = ud;
        return runtime_stop(x->rt, id, timeout_s, reterr);
}

static int real_delete(void *ud, const char *id, struct ck_error **reterr)
{
        struct real *x = ud;
        return runtime_delete(x->rt, id, reterr);
}

static int real_state(void *ud, const char *id, struct runtime_state *ret, struct ck_error **reterr)
{
        struct real *x = ud;
        return runtime_state(x->rt, id, ret, reterr);
}

static char *real_log_path(void *ud, const char *id)
{
        struct real *x = ud;
        return runtime_log_path(x->rt, id);
}

static bool real_port_in_use(void *ud, uint16_t port)
{
        struct sockaddr_in sa = {
                .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;

        if (fd < 0)
                return false;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        return bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == EADDRINUSE;
}

static int parse_mirrors(struct real *x, char *const *list, struct ck_error **reterr)
{
        size_t n = 0;

        while (list && list[n])
                n++;
        if (n > FETCH_MIRRORS_MAX)
                return ck_error_set(reterr, -EINVAL, "more than %u registry mirrors", FETCH_MIRRORS_MAX);
        x->pull.mirror_domains = calloc(n + 1, sizeof(char *));
        x->pull.mirror_endpoints = calloc(n + 1, sizeof(char *));
        if (!x->pull.mirror_domains || !x->pull.mirror_endpoints)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *eq = strchr(list[i], '=');

                if (!eq || eq == list[i] || !eq[1])
                        return ck_error_set(reterr, -EINVAL,
                                            "registry-mirror \"%s\" is not DOMAIN=HOST:PORT", list[i]);
                x->pull.mirror_domains[i] = strndup(list[i], (size_t)(eq - list[i]));
                x->pull.mirror_endpoints[i] = strdup(eq + 1);
                x->pull.n_mirrors++;
                if (!x->pull.mirror_domains[i] || !x->pull.mirror_endpoints[i])
                        return -ENOMEM;
        }
        return 0;
}

/* The fixed part of every pull request: the helper, the data dir, the registry settings. */
static int pull_template(struct real *x, const struct task_backend_config *cfg, struct ck_error **reterr)
{
        size_t n = 0;
        int r;

        r = ck_exec_find(cfg->fetch && *cfg->fetch ? cfg->fetch : "conker-fetch", &x->fetch_path);
        if (r < 0)
                return ck_error_errno(reterr, r, "conker-fetch not found");
        r = fetch_pool_new(FETCH_POOL_IDLE_MS, &x->fetch_pool);
        if (r < 0)
                return r;
        x->pull.data_dir = strdup(cfg->data_dir);
        x->pull.ca_file =
                cfg->registry_ca_file && *cfg->registry_ca_file ? strdup(cfg->registry_ca_file) : NULL;
        x->pull.log_level = strdup(ck_log_level_to_string(ck_log_get_level()));
        while (cfg->insecure_registries && cfg->insecure_registries[n])
                n++;
        if (n > FETCH_INSECURE_MAX)
                return ck_error_set(reterr, -EINVAL, "more than %u insecure registries", FETCH_INSECURE_MAX);
        x->pull.insecure = calloc(n + 1, sizeof(char *));
        if (!x->pull.data_dir || !x->pull.log_level || !x->pull.insecure ||
            (cfg->registry_ca_file && *cfg->registry_ca_file && !x->pull.ca_file))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(x->pull.insecure[i] = strdup(cfg->insecure_registries[i])))
                        return -ENOMEM;
        return parse_mirrors(x, cfg->registry_mirrors, reterr);
}

int task_backend_real_new(const struct task_backend_config *cfg, struct task_backend **ret,
                          struct ck_error **reterr)
{
        struct image_limits lim;
        struct runtime_config rc = {
                .runtime_path = cfg->runtime,
                .shim_path = cfg->shim,
                .data_dir = cfg->data_dir,
                .run_dir = cfg->run_dir,
                .bridge = cfg->bridge,
                .subnet = cfg->subnet,
                .netns_dir = cfg->netns_dir,
                .nft_table = cfg->nft_table,
                .netns_prefix = cfg->netns_prefix,
                .stop_timeout_s = cfg->stop_timeout_s,
                .pids_limit = cfg->container_pids_limit,
                .memory_limit = cfg->container_memory_limit,
                .log_max_bytes = cfg->log_max_bytes,
                .log_max_files = cfg->log_max_files,
                .spare_shim = true,
        };
        struct volume_config vc = {.data_dir = cfg->data_dir, .backing_size = cfg->volume_backing_size};
        const char *format = NULL;
        struct real *x;
        int r;

        x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        x->be = (struct task_backend){
                .userdata = x,
                .image_ref_normalize = real_ref_normalize,
                .image_pull = real_pull,
                .image_remove = real_image_remove,
                .image_cached_id = real_image_cached_id,
                .rootfs_mount = real_rootfs_mount,
                .rootfs_umount = real_rootfs_umount,
                .volume_create = real_volume_create,
                .volume_delete = real_volume_delete,
                .secret_dir_create = real_secret_create,
                .secret_dir_remove = real_secret_remove,
                .container_prepare_network = real_prepare_network,
                .container_run = real_run,
                .container_stop = real_stop,
                .container_delete = real_delete,
                .container_state = real_state,
                .container_log_path = real_log_path,
                .host_port_in_use = real_port_in_use,
        };
        x->data_dir = strdup(cfg->data_dir);
        x->run_dir = strdup(cfg->run_dir);
        x->pull_policy = cfg->pull_policy;
        if (!x->data_dir || !x->run_dir) {
                r = -ENOMEM;
                goto fail;
        }
        r = pull_template(x, cfg, reterr);
        if (r < 0)
                goto fail;
        image_limits_default(&lim);
        if (cfg->image_max_blob_size)
                lim.max_blob_size = cfg->image_max_blob_size;
        if (cfg->image_max_layer_size)
                lim.max_layer_unpacked = cfg->image_max_layer_size;
        if (cfg->image_max_layer_entries)
                lim.max_layer_entries = cfg->image_max_layer_entries;
        if (cfg->image_max_ratio)
                lim.max_ratio = cfg->image_max_ratio;
        if (cfg->layer_format) {
                r = image_layer_format_from_string(cfg->layer_format);
                if (r < 0) {
                        r = ck_error_set(reterr, -EINVAL, "invalid layer format '%s'", cfg->layer_format);
                        goto fail;
                }
                lim.layer_format = r;
        }
        r = image_store_open(cfg->data_dir, &lim, &x->images, reterr);
        if (r < 0) {
                r = ck_error_prefix(reterr, r, "image store");
                goto fail;
        }
        /* Decided now rather than at the first pull, so the log says it at start, and handed to
         * every pull. The probe writes an EROFS image, which takes the layer writer: conker-fetch
         * runs it, so that conkerd does not link the writer (and libarchive). */
        r = lim.layer_format == IMAGE_LAYER_AUTO ? fetch_probe(x->fetch_path, cfg->data_dir, &format, reterr)
                                                 : 0;
        if (r < 0) {
                r = ck_error_prefix(reterr, r, "image store: probing the layer format");
                goto fail;
        }
        if (lim.layer_format != IMAGE_LAYER_AUTO)
                format = image_layer_format_to_string(lim.layer_format);
        log_info("image layers: %s", format);
        x->pull.layer_format = strdup(format);
        x->pull.max_blob_size = lim.max_blob_size;
        x->pull.max_layer_unpacked = lim.max_layer_unpacked;
        x->pull.max_layer_entries = lim.max_layer_entries;
        x->pull.max_ratio = lim.max_ratio;
        if (!x->pull.layer_format) {
                r = -ENOMEM;
                goto fail;
        }
        r = runtime_open(&rc, &x->rt, reterr);
        if (r < 0) {
                r = ck_error_prefix(reterr, r, "runtime");
                goto fail;
        }
        r = volume_manager_open(&vc, &x->vm, reterr);
        if (r < 0) {
                r = ck_error_prefix(reterr, r, "volumes");
                goto fail;
        }
        *ret = &x->be;
        return 0;
fail:
        task_backend_real_free(&x->be);
        return r;
}

const char *task_backend_real_runtime(const struct task_backend *be)
{
        return runtime_name(((const struct real *)be)->rt);
}

void task_backend_real_free(struct task_backend *be)
{
        struct real *x = (struct real *)be;

        if (!x)
                return;
        volume_manager_free(x->vm);
        runtime_free(x->rt);
        image_store_free(x->images);
        fetch_pool_free(x->fetch_pool);
        fetch_request_clear(&x->pull);
        free(x->fetch_path);
        free(x->data_dir);
        free(x->run_dir);
        free(x);
}
