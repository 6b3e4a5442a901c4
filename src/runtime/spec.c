/* config.json generation: the image config and the request mapped onto an OCI runtime spec
 * with Docker's defaults (mounts, capabilities, masked paths, devices, seccomp, rlimits).
 *
 * The user comes from spec-user.c (the rootfs's /etc/passwd and /etc/group), the bundle's /etc
 * files from spec-etc.c, the seccomp profile from seccomp-default.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fs.h"
#include "json.h"
#include "parse.h"
#include "spec.h"

static const char *const default_caps[] = {
        "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
        "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
        "CAP_KILL",    "CAP_AUDIT_WRITE",
};

static const char *const masked_paths[] = {
        "/proc/asound",
        "/proc/acpi",
        "/proc/interrupts",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
        "/sys/devices/system/cpu/cpu0/thermal_throttle",
};

static const char *const readonly_paths[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

void spec_strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

static void spec_strv_freep(char ***v)
{
        spec_strv_free(*v);
}

static bool env_entry_valid(const char *e)
{
        const char *eq = strchr(e, '=');
        return eq && eq != e;
}

/* Index of the entry with the same key in v[0..n), or -1. */
static ssize_t env_find(char **v, size_t n, const char *e)
{
        size_t klen = (size_t)(strchr(e, '=') - e);
        for (size_t i = 0; i < n; i++)
                if (strncmp(v[i], e, klen + 1) == 0)
                        return (ssize_t)i;
        return -1;
}

int spec_env_merge(char *const *image_env, char *const *request_env, char ***ret, struct ck_error **reterr)
{
        _cleanup_(spec_strv_freep) char **v = calloc(SPEC_ENV_MAX + 2, sizeof(char *));
        size_t n = 0, total = 0;
        bool have_path = false;

        if (!v)
                return -ENOMEM;
        for (int pass = 0; pass < 2; pass++) {
                char *const *src = pass == 0 ? image_env : request_env;
                for (size_t i = 0; src && src[i]; i++) {
                        const char *e = src[i];
                        ssize_t at;

                        if (!env_entry_valid(e))
                                return ck_error_set(reterr, -EINVAL,
                                                    "%s environment entry %zu is not KEY=value",
                                                    pass == 0 ? "image" : "request", i);
                        total += strlen(e) + 1;
                        if (total > SPEC_ENV_LEN_MAX)
                                return ck_error_set(reterr, -E2BIG, "environment larger than %u bytes",
                                                    SPEC_ENV_LEN_MAX);
                        at = env_find(v, n, e);
                        if (at >= 0) {
                                char *d = strdup(e);
                                if (!d)
                                        return -ENOMEM;
                                free(v[at]);
                                v[at] = d;
                                continue;
                        }
                        if (n >= SPEC_ENV_MAX)
                                return ck_error_set(reterr, -E2BIG, "more than %d environment entries",
                                                    SPEC_ENV_MAX);
                        v[n] = strdup(e);
                        if (!v[n])
                                return -ENOMEM;
                        n++;
                }
        }
        for (size_t i = 0; i < n; i++)
                if (ck_startswith(v[i], "PATH="))
                        have_path = true;
        if (!have_path) {
                memmove(v + 1, v, n * sizeof(char *));
                v[0] = strdup(SPEC_DEFAULT_PATH);
                if (!v[0])
                        return -ENOMEM;
                n++;
        }
        v[n] = NULL;
        *ret = TAKE_PTR(v);
        return 0;
}

bool spec_cwd_valid(const char *p)
{
        const char *c;

        if (!p || p[0] != '/' || strlen(p) > 4096)
                return false;
        if (strcmp(p, "/") == 0)
                return true;
        if (p[strlen(p) - 1] == '/')
                return false;
        for (c = p; *c;) {
                size_t n;
                c++; /* past '/' */
                n = strcspn(c, "/");
                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c += n;
        }
        /* A working directory in /proc is how CVE-2024-21626 reached host fds. */
        return !(strcmp(p, "/proc") == 0 || ck_startswith(p, "/proc/"));
}

/* ---- the spec itself ---- */

static json_t *strv_to_json(const char *const *v, size_t n)
{
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_string(v[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

static int push(json_t *arr, json_t *item)
{
        return item && json_array_append_new(arr, item) == 0 ? 0 : -ENOMEM;
}

static json_t *mount_json(const char *dst, const char *type, const char *src, const char *const *opts,
                          size_t n)
{
        return json_pack("{s:s,s:s,s:s,s:o}", "destination", dst, "type", type, "source", src, "options",
                         strv_to_json(opts, n));
}

#define MOUNT(dst, type, src, ...)                                                                          \
        mount_json(dst, type, src, (const char *const[]){__VA_ARGS__},                                      \
                   sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static int build_mounts(const struct spec_input *in, json_t **ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *m = json_array();
        const struct runtime_spec *s = in->spec;
        _cleanup_free_ char *resolv = NULL, *hostname = NULL, *hosts = NULL;
        int r = 0;

        if (!m || asprintf(&resolv, "%s/resolv.conf", in->bundle_dir) < 0 ||
            asprintf(&hostname, "%s/hostname", in->bundle_dir) < 0 ||
            asprintf(&hosts, "%s/hosts", in->bundle_dir) < 0)
                return -ENOMEM;
        r |= push(m, MOUNT("/proc", "proc", "proc", "nosuid", "noexec", "nodev"));
        r |= push(m, MOUNT("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"));
        r |= push(m, MOUNT("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance",
                           "ptmxmode=0666", "mode=0620", "gid=5"));
        r |= push(m, MOUNT("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"));
        r |= push(m, MOUNT("/sys/fs/cgroup", "cgroup", "cgroup", "ro", "nosuid", "noexec", "nodev",
                           "relatime"));
        r |= push(m, MOUNT("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"));
        r |= push(m, MOUNT("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777",
                           "size=67108864"));
        r |= push(m, MOUNT("/etc/resolv.conf", "bind", resolv, "rbind", "rprivate"));
        r |= push(m, MOUNT("/etc/hostname", "bind", hostname, "rbind", "rprivate"));
        r |= push(m, MOUNT("/etc/hosts", "bind", hosts, "rbind", "rprivate"));
        if (s->secret_dir)
                /* "rro" (mount_setattr, recursive) also covers mounts below the secret directory. */
                r |= push(m, MOUNT("/secret", "bind", s->secret_dir, "rbind", "ro", "nosuid", "nodev",
                                   "noexec", "rprivate", "rro"));
        for (size_t i = 0; i < s->n_mounts; i++) {
                const struct runtime_mount *vm = &s->mounts[i];
                if (!vm->source || vm->source[0] != '/' || !spec_cwd_valid(vm->target) ||
                    strcmp(vm->target, "/") == 0)
                        return ck_error_set(reterr, -EINVAL,
                                            "mount %zu: source and target must be clean absolute "
                                            "paths (not / or under /proc)",
                                            i);
                if (strcmp(vm->target, "/secret") == 0 || ck_startswith(vm->target, "/secret/"))
                        return ck_error_set(reterr, -EINVAL, "mount %zu: %s is reserved", i, vm->target);
                r |= push(m, MOUNT(vm->target, "bind", vm->source, "rbind", "rprivate",
                                   vm->read_only ? "ro" : "rw"));
        }
        if (r)
                return -ENOMEM;
        *ret = TAKE_PTR(m);
        return 0;
}

static json_t *device_rule(bool allow, const char *type, int64_t major, int64_t minor, const char *access)
{
        json_t *d = json_pack("{s:b,s:s}", "allow", allow, "access", access);
        if (!d)
                return NULL;
        if ((type && json_object_set_new(d, "type", json_string(type)) < 0) ||
            (major >= 0 && json_object_set_new(d, "major", json_integer(major)) < 0) ||
            (minor >= 0 && json_object_set_new(d, "minor", json_integer(minor)) < 0)) {
                json_decref(d);
                return NULL;
        }
        return d;
}

static json_t *build_devices(void)
{
        json_t *d = json_array();
        static const int chars[][2] = {{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}};
        int r = 0;

        if (!d)
                return NULL;
        r |= push(d, device_rule(false, NULL, -1, -1, "rwm"));
        r |= push(d, device_rule(true, "c", -1, -1, "m"));
        r |= push(d, device_rule(true, "b", -1, -1, "m"));
        for (size_t i = 0; i < ELEMENTSOF(chars); i++)
                r |= push(d, device_rule(true, "c", chars[i][0], chars[i][1], "rwm"));
        r |= push(d, device_rule(true, "c", 136, -1, "rwm"));
        if (r) {
                json_decref(d);
                return NULL;
        }
        return d;
}

static json_t *build_namespaces(const char *netns_path)
{
        json_t *ns = json_pack("[{s:s},{s:s},{s:s},{s:s}]", "type", "pid", "type", "ipc", "type", "uts",
                               "type", "mount");
        if (!ns)
                return NULL;
        if (push(ns, netns_path ? json_pack("{s:s,s:s}", "type", "network", "path", netns_path)
                                : json_pack("{s:s}", "type", "network")) < 0) {
                json_decref(ns);
                return NULL;
        }
        return ns;
}

static json_t *build_args(const struct image_config *img, struct ck_error **reterr)
{
        json_t *a = json_array();
        size_t n = 0;

        if (!a)
                return NULL;
        for (int pass = 0; pass < 2; pass++) {
                char **v = img ? (pass == 0 ? img->entrypoint : img->cmd) : NULL;
                for (size_t i = 0; v && v[i]; i++, n++)
                        if (push(a, json_string(v[i])) < 0) {
                                json_decref(a);
                                return NULL;
                        }
        }
        if (n == 0) {
                ck_error_set(reterr, -EINVAL, "the image has neither Entrypoint nor Cmd");
                json_decref(a);
                return NULL;
        }
        return a;
}

static json_t *build_annotations(const struct image_config *img)
{
        json_t *an = json_object();
        _cleanup_buf_ struct ck_buf ports;

        ck_buf_init(&ports, 65536);
        if (!an)
                return NULL;
        for (size_t i = 0; img && img->exposed_ports && img->exposed_ports[i]; i++)
                if ((i && ck_buf_append_str(&ports, ",") < 0) ||
                    ck_buf_append_str(&ports, img->exposed_ports[i]) < 0)
                        goto fail;
        if (ports.len && json_object_set_new(an, "org.opencontainers.image.exposedPorts",
                                             json_string((const char *)ports.data)) < 0)
                goto fail;
        if (img && img->stop_signal &&
            json_object_set_new(an, "org.opencontainers.image.stopSignal", json_string(img->stop_signal)) <
                    0)
                goto fail;
        return an;
fail:
        json_decref(an);
        return NULL;
}

/* Docker sets neither by default; here one container must not be able to exhaust the TD that
 * holds every other container's secrets (a fork bomb, a leak), so conkerd's config gives both a
 * default (container-pids-limit, container-memory-limit). */
static int add_resource_limits(json_t *resources, const struct spec_input *in)
{
        if (in->pids_limit > INT64_MAX || in->memory_limit > INT64_MAX)
                return -ERANGE;
        if (in->pids_limit &&
            json_object_set_new(resources, "pids", json_pack("{s:I}", "limit", (json_int_t)in->pids_limit)) <
                    0)
                return -ENOMEM;
        if (in->memory_limit &&
            json_object_set_new(resources, "memory",
                                json_pack("{s:I}", "limit", (json_int_t)in->memory_limit)) < 0)
                return -ENOMEM;
        return 0;
}

int spec_build(const struct spec_input *in, int rootfd, json_t **ret, struct ck_error **reterr)
{
        const struct runtime_spec *s = in->spec;
        const struct image_config *img = s->image;
        _cleanup_(spec_strv_freep) char **env = NULL;
        _cleanup_json_ json_t *args = NULL, *envj = NULL, *gids = NULL, *mounts = NULL, *caps = NULL,
                              *linux_ = NULL, *process = NULL, *root = NULL;
        struct spec_user user;
        char hostname[64];
        const char *cwd = img && img->working_dir && *img->working_dir ? img->working_dir : "/";
        bool have_home = false;
        json_t *spec;
        int r;

        if (!spec_cwd_valid(cwd))
                return ck_error_set(reterr, -EINVAL,
                                    "WorkingDir \"%s\" must be a clean absolute path outside /proc", cwd);
        args = build_args(img, reterr);
        if (!args)
                return reterr && *reterr ? (*reterr)->code : -ENOMEM;
        r = spec_env_merge(img ? img->env : NULL, s->env, &env, reterr);
        if (r < 0)
                return r;
        r = spec_user_resolve(rootfd, img ? img->user : NULL, &user, reterr);
        if (r < 0)
                return r;
        envj = json_array();
        gids = json_array();
        if (!envj || !gids)
                return -ENOMEM;
        for (size_t i = 0; env[i]; i++) {
                if (ck_startswith(env[i], "HOME="))
                        have_home = true;
                if (push(envj, json_string(env[i])) < 0)
                        return -ENOMEM;
        }
        /* runc would add HOME from the rootfs passwd; we resolved it already. */
        if (!have_home) {
                _cleanup_free_ char *home = NULL;
                if (asprintf(&home, "HOME=%s", user.home) < 0 || push(envj, json_string(home)) < 0)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < user.n_gids; i++)
                if (push(gids, json_integer(user.gids[i])) < 0)
                        return -ENOMEM;

        r = build_mounts(in, &mounts, reterr);
        if (r < 0)
                return r;
        spec_hostname(s, hostname);

        caps = json_pack("{s:o,s:o,s:o,s:[],s:[]}", "bounding",
                         strv_to_json(default_caps, ELEMENTSOF(default_caps)), "effective",
                         strv_to_json(default_caps, ELEMENTSOF(default_caps)), "permitted",
                         strv_to_json(default_caps, ELEMENTSOF(default_caps)), "inheritable", "ambient");
        process = json_pack("{s:b,s:{s:I,s:I,s:O},s:O,s:O,s:s,s:O,s:[{s:s,s:i,s:i}],s:b,s:i}", "terminal", 0,
                            "user", "uid", (json_int_t)user.uid, "gid", (json_int_t)user.gid,
                            "additionalGids", gids, "args", args, "env", envj, "cwd", cwd, "capabilities",
                            caps, "rlimits", "type", "RLIMIT_NOFILE", "hard", 1024, "soft", 1024,
                            "noNewPrivileges", 0, "oomScoreAdj", in->oom_score_adj);
        if (!caps || !process)
                return -ENOMEM;
        root = json_pack("{s:s,s:b}", "path", s->rootfs, "readonly", 0);
        linux_ = json_pack(
                "{s:{s:s,s:s},s:{s:o},s:o,s:o,s:o,s:o}", "sysctl", "net.ipv4.ip_unprivileged_port_start",
                "0", "net.ipv4.ping_group_range", "0 2147483647", "resources", "devices", build_devices(),
                "namespaces", build_namespaces(in->netns_path), "maskedPaths",
                strv_to_json(masked_paths, ELEMENTSOF(masked_paths)), "readonlyPaths",
                strv_to_json(readonly_paths, ELEMENTSOF(readonly_paths)), "seccomp", spec_seccomp_default());
        if (!root || !linux_)
                return -ENOMEM;
        if (in->cgroups_path &&
            json_object_set_new(linux_, "cgroupsPath", json_string(in->cgroups_path)) < 0)
                return -ENOMEM;
        r = add_resource_limits(json_object_get(linux_, "resources"), in);
        if (r < 0)
                return r;

        spec = json_pack("{s:s,s:O,s:O,s:s,s:O,s:o,s:O}", "ociVersion", "1.0.2", "process", process, "root",
                         root, "hostname", hostname, "mounts", mounts, "annotations", build_annotations(img),
                         "linux", linux_);
        if (!spec)
                return -ENOMEM;
        *ret = spec;
        return 0;
}

int spec_secret_dir_chown(const char *dir, uint32_t uid, uint32_t gid, struct ck_error **reterr)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct dirent *de;
        DIR *d;
        int r = 0;

        if (dfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open the secret directory %s", dir);
        d = ck_opendir_at(dfd, ".");
        if (!d)
                return ck_error_errno(reterr, -errno, "cannot read the secret directory %s", dir);
        while (r >= 0 && (de = readdir(d))) {
                struct stat st;

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        r = ck_error_errno(reterr, -errno, "cannot stat secret %s", de->d_name);
                else if (S_ISLNK(st.st_mode))
                        r = ck_error_set(reterr, -ELOOP, "secret %s is a symbolic link", de->d_name);
                else if (!S_ISREG(st.st_mode))
                        r = ck_error_set(reterr, -EINVAL, "secret %s is not a regular file", de->d_name);
                else if (fchownat(dfd, de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                        r = ck_error_errno(reterr, -errno, "cannot give secret %s to uid %u", de->d_name,
                                           (unsigned)uid);
        }
        closedir(d);
        if (r < 0)
                return r;
        if (fchown(dfd, uid, gid) < 0)
                return ck_error_errno(reterr, -errno, "cannot give the secret directory to uid %u",
                                      (unsigned)uid);
        return 0;
}
