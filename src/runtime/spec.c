/* config.json generation: the image config and the request mapped onto an OCI runtime spec
 * with Docker's defaults (mounts, capabilities, masked paths, devices, seccomp, rlimits).
 *
 * The user is resolved from the rootfs's /etc/passwd and /etc/group read through
 * ck_open_in_root() (regular files only, size-capped), never with the host's NSS. */
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

static int parse_id(const char *s, size_t len, uint32_t *ret)
{
        uint64_t v;
        int r = ck_parse_u64(s, len, INT32_MAX, &v);
        if (r < 0)
                return r;
        *ret = (uint32_t)v;
        return 0;
}

/* Reads an /etc file of the rootfs: regular file, capped. Missing file → *ret = NULL. */
static int read_userdb(int rootfd, const char *path, char **ret, struct ck_error **reterr)
{
        _cleanup_close_ int fd = ck_open_in_root(rootfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
        uint8_t *data = NULL;
        struct stat st;
        size_t len;
        int r;

        if (fd == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (fd < 0)
                return ck_error_errno(reterr, fd, "cannot open %s in the rootfs", path);
        if (fstat(fd, &st) < 0)
                return ck_error_errno(reterr, -errno, "stat %s", path);
        if (!S_ISREG(st.st_mode))
                return ck_error_set(reterr, -EINVAL, "%s in the rootfs is not a regular file", path);
        r = ck_read_fd(fd, SPEC_USERDB_MAX, &data, &len);
        if (r == -EFBIG)
                return ck_error_set(reterr, r, "%s in the rootfs is larger than %u bytes", path,
                                    SPEC_USERDB_MAX);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read %s", path);
        if (memchr(data, 0, len)) {
                free(data);
                return ck_error_set(reterr, -EINVAL, "%s in the rootfs contains NUL bytes", path);
        }
        *ret = (char *)data;
        return 0;
}

/* Splits line into at most max ':'-separated fields (in place). Returns the count. */
static size_t split_fields(char *line, char **f, size_t max)
{
        size_t n = 0;
        f[n++] = line;
        for (char *c = line; *c && n < max; c++)
                if (*c == ':') {
                        *c = 0;
                        f[n++] = c + 1;
                }
        return n;
}

/* Walks the lines of a passwd/group file; cb returns > 0 to stop. */
static int for_each_line(char *db, int (*cb)(char **f, size_t n, void *ud), size_t nfields, void *ud)
{
        char *line = db;
        while (line && *line) {
                char *nl = strchr(line, '\n');
                char *f[8];
                size_t n;
                int r;

                if (nl)
                        *nl = 0;
                if (*line && *line != '#') {
                        n = split_fields(line, f, nfields);
                        r = cb(f, n, ud);
                        if (r != 0)
                                return r;
                }
                line = nl ? nl + 1 : NULL;
        }
        return 0;
}

struct pw_query {
        const char *name; /* or NULL */
        uint32_t uid;     /* when name is NULL */
        bool found;
        char user[256];
        uint32_t out_uid, out_gid;
        char home[256];
};

static int pw_cb(char **f, size_t n, void *ud)
{
        struct pw_query *q = ud;
        uint32_t uid, gid;

        if (n < 7 || parse_id(f[2], strlen(f[2]), &uid) < 0 || parse_id(f[3], strlen(f[3]), &gid) < 0)
                return 0;
        if (q->name ? strcmp(f[0], q->name) != 0 : uid != q->uid)
                return 0;
        q->found = true;
        q->out_uid = uid;
        q->out_gid = gid;
        snprintf(q->user, sizeof(q->user), "%s", f[0]);
        snprintf(q->home, sizeof(q->home), "%s", f[5]);
        return 1;
}

struct gr_query {
        const char *name; /* group to find by name, or NULL */
        bool found;
        uint32_t gid;
        const char *member; /* collect groups listing this user */
        struct spec_user *u;
};

static void add_gid(struct spec_user *u, uint32_t gid)
{
        for (size_t i = 0; i < u->n_gids; i++)
                if (u->gids[i] == gid)
                        return;
        if (u->n_gids < SPEC_GROUPS_MAX)
                u->gids[u->n_gids++] = gid;
}

static int gr_cb(char **f, size_t n, void *ud)
{
        struct gr_query *q = ud;
        uint32_t gid;

        if (n < 4 || parse_id(f[2], strlen(f[2]), &gid) < 0)
                return 0;
        if (q->name && !q->found && strcmp(f[0], q->name) == 0) {
                q->found = true;
                q->gid = gid;
        }
        if (q->member && *f[3]) {
                const char *m = f[3];
                size_t ml = strlen(q->member);
                while (*m) {
                        size_t l = strcspn(m, ",");
                        if (l == ml && strncmp(m, q->member, l) == 0)
                                add_gid(q->u, gid);
                        m += l;
                        if (*m == ',')
                                m++;
                }
        }
        return 0;
}

static bool all_digits(const char *s, size_t len)
{
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

int spec_user_resolve(int rootfd, const char *user, struct spec_user *ret, struct ck_error **reterr)
{
        _cleanup_free_ char *passwd = NULL, *group = NULL;
        int r;

        r = read_userdb(rootfd, "/etc/passwd", &passwd, reterr);
        if (r < 0)
                return r;
        r = read_userdb(rootfd, "/etc/group", &group, reterr);
        if (r < 0)
                return r;
        return spec_user_resolve_db(passwd, passwd ? strlen(passwd) : 0, group, group ? strlen(group) : 0,
                                    user, ret, reterr);
}

int spec_user_resolve_db(const char *passwd_buf, size_t passwd_len, const char *group_buf, size_t group_len,
                         const char *user, struct spec_user *ret, struct ck_error **reterr)
{
        _cleanup_free_ char *passwd = NULL, *group = NULL;
        struct spec_user u = {.home = "/"};
        struct pw_query pq = {0};
        const char *colon, *ustr = user ? user : "";
        _cleanup_free_ char *uname = NULL;
        const char *gname = NULL;
        int r;

        if (strlen(ustr) > 512 || !ck_is_printable(ustr, strlen(ustr)))
                return ck_error_set(reterr, -EINVAL, "invalid User");
        colon = strchr(ustr, ':');
        uname = strndup(ustr, colon ? (size_t)(colon - ustr) : strlen(ustr));
        if (!uname)
                return -ENOMEM;
        if (colon)
                gname = colon + 1;
        if (colon && !*gname)
                return ck_error_set(reterr, -EINVAL, "invalid User \"%s\": empty group", ustr);
        if (!*uname && colon)
                return ck_error_set(reterr, -EINVAL, "invalid User \"%s\": empty user", ustr);

        /* Private NUL-terminated copies: the line walker splits them in place. */
        if (passwd_buf && (passwd_len > SPEC_USERDB_MAX || memchr(passwd_buf, 0, passwd_len)))
                return ck_error_set(reterr, -EINVAL, "invalid /etc/passwd in the rootfs");
        if (group_buf && (group_len > SPEC_USERDB_MAX || memchr(group_buf, 0, group_len)))
                return ck_error_set(reterr, -EINVAL, "invalid /etc/group in the rootfs");
        if ((passwd_buf && !(passwd = strndup(passwd_buf, passwd_len))) ||
            (group_buf && !(group = strndup(group_buf, group_len))))
                return -ENOMEM;

        if (!*uname) {
                pq.uid = 0;
        } else if (all_digits(uname, strlen(uname))) {
                r = parse_id(uname, strlen(uname), &pq.uid);
                if (r < 0)
                        return ck_error_set(reterr, -EINVAL, "invalid uid \"%s\"", uname);
        } else {
                pq.name = uname;
        }
        if (passwd)
                for_each_line(passwd, pw_cb, 7, &pq);
        if (pq.found) {
                u.uid = pq.out_uid;
                u.gid = pq.out_gid;
                snprintf(u.home, sizeof(u.home), "%s", pq.home[0] ? pq.home : "/");
        } else if (pq.name) {
                return ck_error_set(reterr, -ENOENT,
                                    "unable to find user %s: no matching entries in passwd file", pq.name);
        } else {
                u.uid = pq.uid;
                u.gid = 0;
        }

        if (gname) {
                if (all_digits(gname, strlen(gname))) {
                        r = parse_id(gname, strlen(gname), &u.gid);
                        if (r < 0)
                                return ck_error_set(reterr, -EINVAL, "invalid gid \"%s\"", gname);
                } else {
                        struct gr_query gq = {.name = gname, .u = &u};
                        _cleanup_free_ char *g2 = group ? strdup(group) : NULL;
                        if (group && !g2)
                                return -ENOMEM;
                        if (g2)
                                for_each_line(g2, gr_cb, 4, &gq);
                        if (!gq.found)
                                return ck_error_set(
                                        reterr, -ENOENT,
                                        "unable to find group %s: no matching entries in group file", gname);
                        u.gid = gq.gid;
                }
        }
        /* The primary gid is always an additional gid too (CVE-2023-25173). */
        add_gid(&u, u.gid);
        if (pq.found && group) {
                struct gr_query gq = {.member = pq.user, .u = &u};
                for_each_line(group, gr_cb, 4, &gq);
        }
        *ret = u;
        return 0;
}

static bool is_loopback_ns(const char *a, size_t n)
{
        return (n >= 4 && strncmp(a, "127.", 4) == 0) || (n == 3 && strncmp(a, "::1", 3) == 0) ||
               (n >= 16 && strncmp(a, "0:0:0:0:0:0:0:1", 15) == 0);
}

int spec_resolv_filter(const char *buf, size_t len, char **ret)
{
        _cleanup_buf_ struct ck_buf out;
        size_t off = 0;
        bool any_ns = false;

        ck_buf_init(&out, 65536);
        while (off < len) {
                const char *line = buf + off;
                const char *nl = memchr(line, '\n', len - off);
                size_t l = nl ? (size_t)(nl - line) : len - off;
                const char *p = line;
                int r = 0;

                off += l + (nl ? 1 : 0);
                if (l >= 11 && strncmp(line, "nameserver", 10) == 0 &&
                    (line[10] == ' ' || line[10] == '\t')) {
                        size_t i = 10, s;
                        while (i < l && (p[i] == ' ' || p[i] == '\t'))
                                i++;
                        s = i;
                        while (i < l && p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
                                i++;
                        if (is_loopback_ns(p + s, i - s))
                                continue;
                        any_ns = true;
                }
                if (memchr(line, 0, l))
                        continue;
                r = ck_buf_append(&out, line, l);
                if (r >= 0)
                        r = ck_buf_append(&out, "\n", 1);
                if (r < 0)
                        return r;
        }
        if (!any_ns && ck_buf_append_str(&out, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n") < 0)
                return -ENOMEM;
        *ret = (char *)ck_buf_take(&out, NULL);
        return *ret ? 0 : -ENOMEM;
}

static bool hostname_valid(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > 63 || s[0] == '-' || s[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.'))
                        return false;
        }
        return true;
}

void spec_hostname(const struct runtime_spec *spec, char ret[64])
{
        if (hostname_valid(spec->name))
                snprintf(ret, 64, "%s", spec->name);
        else
                snprintf(ret, 64, "%.12s", spec->id);
}

int spec_write_etc(int bundlefd, const char *hostname, const char *ip, const char *host_resolv_path,
                   struct ck_error **reterr)
{
        _cleanup_free_ char *hosts = NULL, *hn = NULL, *resolv = NULL;
        _cleanup_free_ uint8_t *host_resolv = NULL;
        size_t rlen = 0;
        int r;

        if (asprintf(&hn, "%s\n", hostname) < 0 ||
            asprintf(&hosts,
                     "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                     "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                     "ff02::2\tip6-allrouters\n%s%s%s%s",
                     ip && *ip ? ip : "", ip && *ip ? "\t" : "", ip && *ip ? hostname : "",
                     ip && *ip ? "\n" : "") < 0)
                return -ENOMEM;
        /* Behind systemd-resolved's stub the real upstream list is in its own file. */
        r = ck_read_file(host_resolv_path, 65536, &host_resolv, &rlen, NULL);
        if (r < 0 && strcmp(host_resolv_path, "/etc/resolv.conf") == 0)
                r = ck_read_file("/run/systemd/resolve/resolv.conf", 65536, &host_resolv, &rlen, NULL);
        r = spec_resolv_filter(r < 0 ? "" : (const char *)host_resolv, r < 0 ? 0 : rlen, &resolv);
        if (r < 0)
                return ck_error_errno(reterr, r, "resolv.conf");
        /* No fsync: the bundle is written anew before every run and never outlives its container. */
        r = ck_write_file_replace(bundlefd, "hostname", hn, strlen(hn), 0644, reterr);
        if (r >= 0)
                r = ck_write_file_replace(bundlefd, "hosts", hosts, strlen(hosts), 0644, reterr);
        if (r >= 0)
                r = ck_write_file_replace(bundlefd, "resolv.conf", resolv, strlen(resolv), 0644, reterr);
        return r;
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
