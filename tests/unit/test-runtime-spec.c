/* Unit tests for config.json generation: a golden file for a fixed input, environment merging,
 * in-root user resolution, WorkingDir checks, resolv.conf filtering and the seccomp data. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "json.h"
#include "spec.h"

static char root[64];
static int rootfd = -1;

static void put(const char *rel, const char *content)
{
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", root, rel);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(content, f);
        fclose(f);
}

static int setup(void **state)
{
        char p[128];
        snprintf(root, sizeof(root), "/tmp/ck-test-spec-XXXXXX");
        if (!mkdtemp(root))
                return -1;
        snprintf(p, sizeof(p), "%s/etc", root);
        mkdir(p, 0755);
        put("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                          "# comment\n"
                          "app:x:1000:1000:App:/home/app:/bin/sh\n"
                          "svc:x:1001:50::/srv:/bin/false\n"
                          "broken line without fields\n");
        put("etc/group", "root:x:0:\nstaff:x:50:app\napp:x:1000:\nwheel:x:10:svc,app\naudio:x:29:svc\n");
        rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return rootfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
        close(rootfd);
        return ck_rm_rf_at(AT_FDCWD, root);
}

static void test_env_merge(void **state)
{
        char *img[] = {"A=1", "PATH=/img", "B=2", NULL};
        char *req[] = {"B=3", "C=4", "A=", NULL};
        char **out = NULL;

        assert_int_equal(spec_env_merge(img, req, &out, NULL), 0);
        assert_string_equal(out[0], "A=");
        assert_string_equal(out[1], "PATH=/img");
        assert_string_equal(out[2], "B=3");
        assert_string_equal(out[3], "C=4");
        assert_null(out[4]);
        spec_strv_free(out);

        char *noenv[] = {"X=1", NULL};
        assert_int_equal(spec_env_merge(NULL, noenv, &out, NULL), 0);
        assert_string_equal(out[0], SPEC_DEFAULT_PATH);
        assert_string_equal(out[1], "X=1");
        spec_strv_free(out);

        char *bad1[] = {"NOEQUALS", NULL};
        char *bad2[] = {"=value", NULL};
        struct ck_error *err = NULL;
        assert_int_equal(spec_env_merge(NULL, bad1, &out, &err), -EINVAL);
        ck_error_free(err);
        assert_int_equal(spec_env_merge(bad2, NULL, &out, NULL), -EINVAL);

        /* Bounds: SPEC_ENV_MAX entries (plus the default PATH) fit, one more does not; the
         * entries together (with a NUL each) fit in SPEC_ENV_LEN_MAX bytes, one byte more does not. */
        {
                char **many = calloc(SPEC_ENV_MAX + 2, sizeof(char *)), *big;
                size_t n;

                assert_non_null(many);
                for (size_t i = 0; i <= SPEC_ENV_MAX; i++)
                        assert_true(asprintf(&many[i], "K%zu=1", i) > 0);
                free(many[SPEC_ENV_MAX]);
                many[SPEC_ENV_MAX] = NULL;
                assert_int_equal(spec_env_merge(NULL, many, &out, NULL), 0);
                for (n = 0; out[n]; n++)
                        ;
                assert_int_equal(n, SPEC_ENV_MAX + 1);
                assert_string_equal(out[0], SPEC_DEFAULT_PATH);
                spec_strv_free(out);
                assert_true(asprintf(&many[SPEC_ENV_MAX], "K%d=1", SPEC_ENV_MAX) > 0);
                assert_int_equal(spec_env_merge(NULL, many, &out, NULL), -E2BIG);
                for (size_t i = 0; i <= SPEC_ENV_MAX; i++)
                        free(many[i]);
                free(many);

                big = malloc(SPEC_ENV_LEN_MAX + 1);
                assert_non_null(big);
                memset(big, 'v', SPEC_ENV_LEN_MAX);
                memcpy(big, "A=", 2);
                big[SPEC_ENV_LEN_MAX - 1] = 0;
                char *one[] = {big, NULL};
                assert_int_equal(spec_env_merge(NULL, one, &out, NULL), 0);
                spec_strv_free(out);
                big[SPEC_ENV_LEN_MAX - 1] = 'v';
                big[SPEC_ENV_LEN_MAX] = 0;
                assert_int_equal(spec_env_merge(NULL, one, &out, NULL), -E2BIG);
                free(big);
        }
}

static void test_user(void **state)
{
        struct spec_user u;
        struct ck_error *err = NULL;

        assert_int_equal(spec_user_resolve(rootfd, "", &u, NULL), 0);
        assert_int_equal(u.uid, 0);
        assert_int_equal(u.gid, 0);
        assert_string_equal(u.home, "/root");
        assert_int_equal(u.n_gids, 1);

        assert_int_equal(spec_user_resolve(rootfd, "app", &u, NULL), 0);
        assert_int_equal(u.uid, 1000);
        assert_int_equal(u.gid, 1000);
        assert_string_equal(u.home, "/home/app");
        /* primary first, then the groups listing app */
        assert_int_equal(u.n_gids, 3);
        assert_int_equal(u.gids[0], 1000);
        assert_int_equal(u.gids[1], 50);
        assert_int_equal(u.gids[2], 10);

        assert_int_equal(spec_user_resolve(rootfd, "svc:staff", &u, NULL), 0);
        assert_int_equal(u.uid, 1001);
        assert_int_equal(u.gid, 50);
        assert_int_equal(u.gids[0], 50);

        assert_int_equal(spec_user_resolve(rootfd, "1000:4242", &u, NULL), 0);
        assert_int_equal(u.uid, 1000);
        assert_int_equal(u.gid, 4242);
        assert_int_equal(u.gids[0], 4242);

        /* unknown numeric uid: allowed, gid 0, home / */
        assert_int_equal(spec_user_resolve(rootfd, "4000", &u, NULL), 0);
        assert_int_equal(u.uid, 4000);
        assert_int_equal(u.gid, 0);
        assert_string_equal(u.home, "/");

        assert_int_equal(spec_user_resolve(rootfd, "nosuch", &u, &err), -ENOENT);
        assert_non_null(strstr(err->msg, "nosuch"));
        ck_error_free(err);
        err = NULL;
        assert_int_equal(spec_user_resolve(rootfd, "app:nogroup", &u, NULL), -ENOENT);
        assert_int_equal(spec_user_resolve(rootfd, "app:", &u, NULL), -EINVAL);
        assert_int_equal(spec_user_resolve(rootfd, ":1", &u, NULL), -EINVAL);
        assert_int_equal(spec_user_resolve(rootfd, "99999999999", &u, NULL), -EINVAL);
        assert_int_equal(spec_user_resolve(rootfd, "2147483648", &u, NULL), -EINVAL);
}

static void test_user_hostile_files(void **state)
{
        char p[256], dir[64];
        struct spec_user u;
        int fd;

        snprintf(dir, sizeof(dir), "/tmp/ck-test-spec2-XXXXXX");
        assert_non_null(mkdtemp(dir));
        snprintf(p, sizeof(p), "%s/etc", dir);
        mkdir(p, 0755);
        /* An absolute symlink resolves inside the rootfs, never to the host's file. */
        snprintf(p, sizeof(p), "%s/etc/passwd", dir);
        assert_int_equal(symlink("/../../../../etc/shadow-not-here", p), 0);
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(spec_user_resolve(fd, "root", &u, NULL), -ENOENT);
        unlink(p);
        /* Nor does one to a file that exists outside it (a host file with a root entry). */
        {
                char host[64], hp[128];
                FILE *f;

                snprintf(host, sizeof(host), "/tmp/ck-test-spec-host-XXXXXX");
                assert_non_null(mkdtemp(host));
                snprintf(hp, sizeof(hp), "%s/passwd", host);
                f = fopen(hp, "w");
                assert_non_null(f);
                fputs("root:x:4242:4242::/:/bin/sh\n", f);
                fclose(f);
                assert_int_equal(symlink(hp, p), 0);
                assert_int_equal(spec_user_resolve(fd, "root", &u, NULL), -ENOENT);
                unlink(p);
                snprintf(hp, sizeof(hp), "../../../../../../../..%s/passwd", host);
                assert_int_equal(symlink(hp, p), 0);
                assert_int_equal(spec_user_resolve(fd, "root", &u, NULL), -ENOENT);
                ck_rm_rf_at(AT_FDCWD, host);
        }
        /* numeric still works without passwd */
        assert_int_equal(spec_user_resolve(fd, "0", &u, NULL), 0);
        unlink(p);
        /* A directory is not a regular file. */
        assert_int_equal(mkdir(p, 0755), 0);
        assert_int_equal(spec_user_resolve(fd, "root", &u, NULL), -EINVAL);
        close(fd);
        ck_rm_rf_at(AT_FDCWD, dir);
}

/* The supplementary groups come from exact member names, and are bounded. */
static void test_user_groups_exact_and_bounded(void **state)
{
        const char *pw = "app:x:1000:1000::/home/app:/bin/sh\n";
        const char *gr = "pre:x:77:ap,appx,xapp\nsuf:x:78:sv,app2\nok:x:79:ap,app\n";
        struct spec_user u;
        char *many;
        size_t off = 0;

        assert_int_equal(spec_user_resolve_db(pw, strlen(pw), gr, strlen(gr), "app", &u, NULL), 0);
        assert_int_equal(u.n_gids, 2);
        assert_int_equal(u.gids[0], 1000);
        assert_int_equal(u.gids[1], 79);

        /* An image that lists the user in more groups than the limit gets the first ones. */
        many = malloc(200 * 32);
        assert_non_null(many);
        for (unsigned i = 0; i < 200; i++)
                off += (size_t)snprintf(many + off, 32, "g%u:x:%u:app\n", i, 2000 + i);
        assert_int_equal(spec_user_resolve_db(pw, strlen(pw), many, off, "app", &u, NULL), 0);
        assert_int_equal(u.n_gids, SPEC_GROUPS_MAX);
        assert_int_equal(u.gids[0], 1000);
        assert_int_equal(u.gids[SPEC_GROUPS_MAX - 1], 2000 + SPEC_GROUPS_MAX - 2);
        free(many);
}

/* A hostile image's /etc/passwd: NUL bytes, a size over the cap, a FIFO. */
static void test_user_hostile_userdb(void **state)
{
        char p[256], dir[64];
        struct spec_user u;
        FILE *f;
        int fd;

        snprintf(dir, sizeof(dir), "/tmp/ck-test-spec3-XXXXXX");
        assert_non_null(mkdtemp(dir));
        snprintf(p, sizeof(p), "%s/etc", dir);
        assert_int_equal(mkdir(p, 0755), 0);
        snprintf(p, sizeof(p), "%s/etc/passwd", dir);
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0);

        f = fopen(p, "w");
        assert_non_null(f);
        fwrite("root:x:0:0:root:/root:/bin/sh\n\0app:x:5:5::/:/bin/sh\n", 1, 52, f);
        fclose(f);
        assert_int_equal(spec_user_resolve(fd, "root", &u, NULL), -EINVAL);

        f = fopen(p, "w");
        assert_non_null(f);
        fputs("root:x:0:0:root:/root:/bin/sh\n", f);
        while (ftell(f) <= (long)SPEC_USERDB_MAX)
                fputs("# padding padding padding padding padding padding padding paddin\n", f);
        fclose(f);
        assert_int_equal(spec_user_resolve(fd, "root", &u, NULL), -EFBIG);

        assert_int_equal(unlink(p), 0);
        assert_int_equal(mkfifo(p, 0644), 0);
        assert_int_equal(spec_user_resolve(fd, "root", &u, NULL), -EINVAL);
        close(fd);
        ck_rm_rf_at(AT_FDCWD, dir);
}

/* The hostname goes into the bundle's /etc/hostname and /etc/hosts: a name that is not a valid
 * host name (a newline would add a hosts line) falls back to the id. */
static void test_hostname(void **state)
{
        struct runtime_spec spec = {.id = "0123456789abcdef"};
        char h[64], long_name[70];
        const char *bad[] = {"evil\n10.0.0.1", "a b", "-x", ".x", "", "x/y", "x\ty"};

        spec.name = "web-1.a";
        spec_hostname(&spec, h);
        assert_string_equal(h, "web-1.a");
        memset(long_name, 'a', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = 0;
        long_name[64] = 0;
        spec.name = long_name;
        spec_hostname(&spec, h);
        assert_string_equal(h, "0123456789ab");
        long_name[64] = 'a';
        long_name[63] = 0;
        spec_hostname(&spec, h);
        assert_string_equal(h, long_name);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                spec.name = bad[i];
                spec_hostname(&spec, h);
                assert_string_equal(h, "0123456789ab");
        }
}

static void test_cwd(void **state)
{
        assert_true(spec_cwd_valid("/"));
        assert_true(spec_cwd_valid("/app"));
        assert_true(spec_cwd_valid("/a/b.c/..d"));
        assert_false(spec_cwd_valid(""));
        assert_false(spec_cwd_valid("app"));
        assert_false(spec_cwd_valid("/app/"));
        assert_false(spec_cwd_valid("/a//b"));
        assert_false(spec_cwd_valid("/a/./b"));
        assert_false(spec_cwd_valid("/a/../b"));
        assert_false(spec_cwd_valid("/proc/self/fd/7"));
        assert_false(spec_cwd_valid("/proc"));
        assert_true(spec_cwd_valid("/procx"));
}

static void assert_resolv(const char *in, const char *want)
{
        char *out = NULL;

        assert_int_equal(spec_resolv_filter(in, strlen(in), &out), 0);
        assert_string_equal(out, want);
        free(out);
}

static void test_resolv(void **state)
{
        assert_resolv("# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\n"
                      "search example.com\noptions edns0\nnameserver 127.0.0.1",
                      "# generated\nnameserver 10.0.0.2\nsearch example.com\noptions edns0\n");
        assert_resolv("nameserver 127.0.0.53\noptions edns0 trust-ad\n",
                      "options edns0 trust-ad\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        assert_resolv("", "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        /* Every spelling of ::1 (and ::ffff:127.x) is the container's own loopback; ::10 is not. */
        assert_resolv("nameserver 0:0:0:0:0:0:0:1\nnameserver 0::1\nnameserver ::ffff:127.0.0.53\n"
                      "nameserver 0:0:0:0:0:0:0:10\n",
                      "nameserver 0:0:0:0:0:0:0:10\n");
        assert_resolv("nameserver 0:0:0:0:0:0:0:1\n", "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        /* A line with a NUL byte (the host's DHCP answer wrote it) is dropped, not cut short. */
        {
                static const char in[] = "nameserver 10.0.0.2\nsearch a\0.evil\nnameserver 10.0.0.3\n";
                char *out = NULL;

                assert_int_equal(spec_resolv_filter(in, sizeof(in) - 1, &out), 0);
                assert_string_equal(out, "nameserver 10.0.0.2\nnameserver 10.0.0.3\n");
                free(out);
        }
}

static void test_seccomp(void **state)
{
        static const char *const forbidden[] = {
                "mount",           "umount2",      "unshare",        "setns",
                "keyctl",          "add_key",      "request_key",    "bpf",
                "init_module",     "finit_module", "delete_module",  "kexec_load",
                "reboot",          "swapon",       "pivot_root",     "open_by_handle_at",
                "perf_event_open", "userfaultfd",  "acct",           "clone",
                "clone3",          "socket",       "personality",    "fsopen",
                "move_mount",      "settimeofday", "clock_settime",  "iopl",
                "ioperm",          "syslog",       "lookup_dcookie", "vhangup",
                "quotactl",        "nfsservctl"};
        json_t *j = spec_seccomp_default();
        json_t *sys, *r;
        size_t i;
        bool clone3 = false, clone = false;

        assert_true(spec_seccomp_n_allowed > 300);
        for (i = 1; i < spec_seccomp_n_allowed; i++)
                assert_true(strcmp(spec_seccomp_allowed[i - 1], spec_seccomp_allowed[i]) < 0);
        for (i = 0; i < spec_seccomp_n_allowed; i++)
                for (size_t k = 0; k < sizeof(forbidden) / sizeof(forbidden[0]); k++)
                        if (strcmp(spec_seccomp_allowed[i], forbidden[k]) == 0)
                                fail_msg("%s must not be allowed unconditionally", forbidden[k]);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "defaultAction")), "SCMP_ACT_ERRNO");
        assert_int_equal(json_integer_value(json_object_get(j, "defaultErrnoRet")), EPERM);
        sys = json_object_get(j, "syscalls");
        json_array_foreach(sys, i, r)
        {
                const char *name = json_string_value(json_array_get(json_object_get(r, "names"), 0));
                if (strcmp(name, "clone3") == 0) {
                        clone3 = true;
                        assert_string_equal(json_string_value(json_object_get(r, "action")),
                                            "SCMP_ACT_ERRNO");
                        assert_int_equal(json_integer_value(json_object_get(r, "errnoRet")), ENOSYS);
                }
                if (strcmp(name, "clone") == 0) {
                        json_t *a = json_array_get(json_object_get(r, "args"), 0);
                        clone = true;
                        assert_string_equal(json_string_value(json_object_get(a, "op")),
                                            "SCMP_CMP_MASKED_EQ");
                        assert_int_equal(json_integer_value(json_object_get(a, "value")), 0x7E020000);
                }
        }
        assert_true(clone3 && clone);
        json_decref(j);
}

/* The released secrets are 0400 in a 0700 directory: a container whose user is not root can
 * read them only when both belong to that user. */
static void test_secret_dir_owner(void **state)
{
        char dir[] = "/tmp/ck-test-secret-XXXXXX";
        _cleanup_close_ int dfd = -1;
        struct stat st;

        if (geteuid() != 0)
                skip();
        assert_non_null(mkdtemp(dir));
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        assert_int_equal(ck_write_file_atomic(dfd, "secret-h:1.json", "{}", 2, 0400, NULL), 0);
        assert_int_equal(spec_secret_dir_chown(dir, 1000, 1001, NULL), 0);
        assert_int_equal(fstat(dfd, &st), 0);
        assert_int_equal(st.st_uid, 1000);
        assert_int_equal(st.st_gid, 1001);
        assert_int_equal(fstatat(dfd, "secret-h:1.json", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_uid, 1000);
        assert_int_equal(st.st_mode & 07777, 0400);
        /* A symlink put in the directory is never followed. */
        assert_int_equal(symlinkat("/etc/shadow", dfd, "link"), 0);
        assert_int_equal(spec_secret_dir_chown(dir, 1002, 1002, NULL), -ELOOP);
        assert_int_equal(stat("/etc/shadow", &st), 0);
        assert_int_equal(st.st_uid, 0);
        assert_int_equal(ck_rm_rf_at(AT_FDCWD, dir), 0);
}

static void test_golden(void **state)
{
        char *entry[] = {"/bin/entry", "--flag", NULL};
        char *cmd[] = {"serve", "--port", "80", NULL};
        char *ienv[] = {"LANG=C.UTF-8", "MODE=image", NULL};
        char *renv[] = {"MODE=request", NULL};
        char *exposed[] = {"80/tcp", "53/udp", NULL};
        struct image_config img = {.entrypoint = entry,
                                   .cmd = cmd,
                                   .env = ienv,
                                   .working_dir = "/srv",
                                   .user = "app",
                                   .stop_signal = "SIGQUIT",
                                   .exposed_ports = exposed};
        struct runtime_mount mounts[] = {{"/var/lib/conker/volumes/x/data", "/data", false},
                                         {"/var/lib/conker/volumes/x/conf", "/conf", true}};
        struct runtime_spec spec = {.id = "0123456789abcdef",
                                    .name = "web",
                                    .rootfs = "/golden/rootfs",
                                    .image = &img,
                                    .env = renv,
                                    .mounts = mounts,
                                    .n_mounts = 2,
                                    .secret_dir = "/run/conker/tasks/0123456789abcdef/secret"};
        struct spec_input in = {.spec = &spec,
                                .bundle_dir = "/golden/bundle",
                                .netns_path = "/run/netns/conker-0123456789ab",
                                .cgroups_path = "/conker/0123456789abcdef",
                                .oom_score_adj = 0,
                                .pids_limit = 4096,
                                .memory_limit = 512ull << 20};
        struct ck_error *err = NULL;
        json_t *j = NULL;
        char *txt, golden[512];
        uint8_t *want = NULL;
        size_t wlen;
        const char *src = getenv("CONKER_SOURCE");

        assert_int_equal(spec_build(&in, rootfd, &j, &err), 0);
        txt = json_dumps(j, JSON_INDENT(2));
        assert_non_null(txt);
        snprintf(golden, sizeof(golden), "%s/tests/unit/golden/runtime-config.json", src ? src : "..");
        if (getenv("CONKER_UPDATE_GOLDEN")) {
                FILE *f = fopen(golden, "w");
                assert_non_null(f);
                fprintf(f, "%s\n", txt);
                fclose(f);
        }
        assert_int_equal(ck_read_file(golden, 1u << 20, &want, &wlen, NULL), 0);
        assert_int_equal(wlen, strlen(txt) + 1);
        assert_memory_equal(want, txt, strlen(txt));
        free(want);
        free(txt);
        json_decref(j);

        /* The things the golden file is about, spelled out. */
        assert_int_equal(spec_build(&in, rootfd, &j, NULL), 0);
        json_t *caps = json_object_get(json_object_get(j, "process"), "capabilities");
        assert_int_equal(json_array_size(json_object_get(caps, "bounding")), 14);
        assert_int_equal(json_array_size(json_object_get(caps, "inheritable")), 0);
        assert_int_equal(json_array_size(json_object_get(caps, "ambient")), 0);
        /* Issue 9, finding 10: every container has a pids and a memory limit (the config's). */
        json_t *res = json_object_get(json_object_get(j, "linux"), "resources");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "pids"), "limit")), 4096);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "memory"), "limit")),
                         512ll << 20);
        json_decref(j);
        /* 0 is "no limit": the member is absent, as runc reads it. */
        in.pids_limit = 0;
        in.memory_limit = 0;
        assert_int_equal(spec_build(&in, rootfd, &j, NULL), 0);
        res = json_object_get(json_object_get(j, "linux"), "resources");
        assert_null(json_object_get(res, "pids"));
        assert_null(json_object_get(res, "memory"));
        assert_non_null(json_object_get(res, "devices"));
        json_decref(j);
        in.pids_limit = 4096;
        in.memory_limit = 512ull << 20;

        img.working_dir = "/proc/self/fd/7";
        assert_int_equal(spec_build(&in, rootfd, &j, NULL), -EINVAL);
        img.working_dir = "relative";
        assert_int_equal(spec_build(&in, rootfd, &j, NULL), -EINVAL);
        img.working_dir = NULL;
        img.user = "ghost";
        assert_int_equal(spec_build(&in, rootfd, &j, NULL), -ENOENT);
        img.user = NULL;
        img.entrypoint = img.cmd = NULL;
        assert_int_equal(spec_build(&in, rootfd, &j, &err), -EINVAL);
        ck_error_free(err);
        err = NULL;
        img.cmd = cmd;
        mounts[0].target = "/secret/x";
        assert_int_equal(spec_build(&in, rootfd, &j, NULL), -EINVAL);
        mounts[0].target = "rel";
        assert_int_equal(spec_build(&in, rootfd, &j, NULL), -EINVAL);
        /* Nor onto /secret itself (it would hide the released secrets), nor over the root. */
        mounts[0].target = "/secret";
        assert_int_equal(spec_build(&in, rootfd, &j, NULL), -EINVAL);
        mounts[0].target = "/";
        assert_int_equal(spec_build(&in, rootfd, &j, NULL), -EINVAL);
        /* A source that is not absolute would be taken relative to the runtime's cwd. */
        mounts[0].target = "/data";
        mounts[0].source = "volumes/x/data";
        assert_int_equal(spec_build(&in, rootfd, &j, NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_env_merge),
                cmocka_unit_test(test_user),
                cmocka_unit_test(test_user_hostile_files),
                cmocka_unit_test(test_user_groups_exact_and_bounded),
                cmocka_unit_test(test_user_hostile_userdb),
                cmocka_unit_test(test_hostname),
                cmocka_unit_test(test_cwd),
                cmocka_unit_test(test_resolv),
                cmocka_unit_test(test_seccomp),
                cmocka_unit_test(test_secret_dir_owner),
                cmocka_unit_test(test_golden),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
