/* Unit tests for the pull helper's protocol and conkerd's side of it (src/fetch/): messages
 * round-trip; the decoders reject missing fields, wrong types, too many entries, unknown phases,
 * an id with an error, control characters and cut messages, a bad probe or probe answer; fetch_pull() relays
 * progress and a helper's error, and reports a helper that dies before its result, one that speaks garbage,
 * and one that ignores a cancel (killed after the grace); fetch_probe() takes a known format or an error and
 * rejects an unknown one; a pool reuses an idle helper, replaces one killed while idle, and ends helpers
 * past their idle time and when it is freed. The helpers here are small shell scripts writing whole messages
 * to their fd 3. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch-client.h"
#include "fetch-proto.h"
#include "fs.h"

#define S(x) ((const uint8_t *)(x)), strlen(x)

static void request_roundtrip(void **state)
{
        char *dom[] = {"docker.io", NULL}, *ep[] = {"127.0.0.1:5000", NULL},
             *ins[] = {"127.0.0.1:5000", NULL};
        struct fetch_request r = {
                .ref = "127.0.0.1:5000/app:1",
                .data_dir = "/var/lib/conker",
                .username = "user",
                .layer_format = "erofs",
                .mirror_domains = dom,
                .mirror_endpoints = ep,
                .n_mirrors = 1,
                .insecure = ins,
                .max_blob_size = UINT64_C(4) << 30,
                .max_layer_unpacked = 7,
                .max_layer_entries = 8,
                .max_ratio = 9,
        };
        struct fetch_request d = {0};
        uint8_t *m = NULL;
        size_t len = 0;

        assert_int_equal(fetch_request_encode(&r, &m, &len), 0);
        assert_int_equal(m[0], FETCH_MSG_REQUEST);
        assert_int_equal(fetch_request_decode(m + 1, len - 1, &d, NULL), 0);
        assert_string_equal(d.ref, r.ref);
        assert_string_equal(d.data_dir, r.data_dir);
        assert_string_equal(d.username, "user");
        assert_null(d.ca_file);
        assert_string_equal(d.layer_format, "erofs");
        assert_int_equal(d.n_mirrors, 1);
        assert_string_equal(d.mirror_domains[0], "docker.io");
        assert_string_equal(d.mirror_endpoints[0], "127.0.0.1:5000");
        assert_string_equal(d.insecure[0], "127.0.0.1:5000");
        assert_null(d.insecure[1]);
        assert_true(d.max_blob_size == (UINT64_C(4) << 30));
        assert_int_equal(d.max_ratio, 9);
        free(m);
        fetch_request_clear(&d);
}

static void request_rejects(void **state)
{
        static const char *const bad[] = {
                "[]",
                "{\"data_dir\":\"/d\",\"layer_format\":\"dir\",\"max_blob_size\":1,\"max_layer_unpacked\":1,"
                "\"max_layer_entries\":1,\"max_ratio\":1,\"mirrors\":[],\"insecure\":[]}",
                "{\"ref\":\"\",\"data_dir\":\"/d\",\"layer_format\":\"dir\",\"max_blob_size\":1,"
                "\"max_layer_unpacked\":1,\"max_layer_entries\":1,\"max_ratio\":1,\"mirrors\":[],"
                "\"insecure\":[]}",
                "{\"ref\":\"a\",\"data_dir\":\"/d\",\"layer_format\":\"dir\",\"max_blob_size\":-1,"
                "\"max_layer_unpacked\":1,\"max_layer_entries\":1,\"max_ratio\":1,\"mirrors\":[],"
                "\"insecure\":[]}",
                "{\"ref\":\"a\",\"data_dir\":\"/d\",\"layer_format\":\"dir\",\"max_blob_size\":1,"
                "\"max_layer_unpacked\":1,\"max_layer_entries\":1,\"max_ratio\":1,\"mirrors\":[{\"domain\":"
                "\"x\"}],"
                "\"insecure\":[]}",
                "{\"ref\":\"a\",\"data_dir\":\"/d\",\"layer_format\":\"dir\",\"max_blob_size\":1,"
                "\"max_layer_unpacked\":1,\"max_layer_entries\":1,\"max_ratio\":1,\"mirrors\":[],"
                "\"insecure\":[1]}",
                "{\"ref\":\"a\",\"ref\":\"b\",\"data_dir\":\"/"
                "d\",\"layer_format\":\"dir\",\"max_blob_size\":1,"
                "\"max_layer_unpacked\":1,\"max_layer_entries\":1,\"max_ratio\":1,\"mirrors\":[],"
                "\"insecure\":[]}",
                "{\"ref\":\"a\"} trailing",
        };
        struct fetch_request d = {0};
        char big[256 + 70 * 65 + 10];
        size_t off;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_true(fetch_request_decode(S(bad[i]), &d, NULL) < 0);
        /* More mirrors than FETCH_MIRRORS_MAX. */
        off = (size_t)snprintf(
                big, sizeof(big),
                "{\"ref\":\"a\",\"data_dir\":\"/d\",\"layer_format\":\"dir\",\"max_blob_size\":1,"
                "\"max_layer_unpacked\":1,\"max_layer_entries\":1,\"max_ratio\":1,\"insecure\":[],"
                "\"mirrors\":[");
        for (unsigned i = 0; i <= FETCH_MIRRORS_MAX; i++)
                off += (size_t)snprintf(big + off, sizeof(big) - off,
                                        "%s{\"domain\":\"d\",\"endpoint\":\"e\"}", i ? "," : "");
        snprintf(big + off, sizeof(big) - off, "]}");
        assert_true(fetch_request_decode(S(big), &d, NULL) < 0);
}

static void progress_and_result(void **state)
{
        struct fetch_progress p;
        struct fetch_result r = {0};

        assert_int_equal(
                fetch_progress_decode(S("{\"phase\":\"unpacking\",\"done\":5,\"total\":9,\"layers_done\":1,"
                                        "\"layers_total\":2}"),
                                      &p, NULL),
                0);
        assert_string_equal(p.phase, "unpacking");
        assert_int_equal(p.done_bytes, 5);
        assert_int_equal(p.layers_total, 2);
        assert_true(fetch_progress_decode(S("{\"phase\":\"pwned\",\"done\":5,\"total\":9,\"layers_done\":1,"
                                            "\"layers_total\":2}"),
                                          &p, NULL) < 0);
        assert_true(
                fetch_progress_decode(S("{\"phase\":\"done\",\"done\":\"5\",\"total\":9,\"layers_done\":1,"
                                        "\"layers_total\":2}"),
                                      &p, NULL) < 0);

        assert_int_equal(
                fetch_result_decode(S("{\"errno\":0,\"pulled\":3,\"id\":\"sha256:ab\",\"name\":\"r:1\"}"),
                                    &r, NULL),
                0);
        assert_int_equal(r.err, 0);
        assert_string_equal(r.id, "sha256:ab");
        assert_string_equal(r.name, "r:1");
        fetch_result_clear(&r);
        assert_int_equal(fetch_result_decode(S("{\"errno\":5,\"pulled\":0,\"message\":\"digest mismatch\"}"),
                                             &r, NULL),
                         0);
        assert_int_equal(r.err, -EIO);
        assert_string_equal(r.message, "digest mismatch");
        fetch_result_clear(&r);
        /* An id with an error, a success without a name, errno out of range, control characters. */
        assert_true(fetch_result_decode(S("{\"errno\":5,\"pulled\":0,\"message\":\"m\",\"id\":\"x\"}"), &r,
                                        NULL) < 0);
        assert_true(fetch_result_decode(S("{\"errno\":0,\"pulled\":0,\"id\":\"x\"}"), &r, NULL) < 0);
        assert_true(fetch_result_decode(S("{\"errno\":99999,\"pulled\":0,\"message\":\"m\"}"), &r, NULL) <
                    0);
        assert_true(fetch_result_decode(S("{\"errno\":5,\"pulled\":0,\"message\":\"a\\u001b[2Jb\"}"), &r,
                                        NULL) < 0);
        /* The errno bound at its edge (a code above 4095 is no errno). */
        assert_true(fetch_result_decode(S("{\"errno\":4096,\"pulled\":0,\"message\":\"m\"}"), &r, NULL) < 0);
        assert_int_equal(fetch_result_decode(S("{\"errno\":4095,\"pulled\":0,\"message\":\"m\"}"), &r, NULL),
                         0);
        assert_int_equal(r.err, -4095);
        fetch_result_clear(&r);
        /* A success's id and name reach the API and the logs: no control characters either. */
        assert_true(
                fetch_result_decode(S("{\"errno\":0,\"pulled\":0,\"id\":\"sha256:a\\nb\",\"name\":\"r:1\"}"),
                                    &r, NULL) < 0);
        assert_true(fetch_result_decode(
                            S("{\"errno\":0,\"pulled\":0,\"id\":\"sha256:ab\",\"name\":\"r\\u001b]0;x\"}"),
                            &r, NULL) < 0);
}

/* The probe (conkerd -> helper) and its answer (helper -> conkerd), each with hostile payloads. */
static void probe_and_format(void **state)
{
        static const char *bad_probe[] = {
                "",
                "[]",
                "{}",
                "{\"data_dir\":\"\"}",
                "{\"data_dir\":7}",
                "{\"data_dir\":null}",
                "{\"data_dir\":\"/a\"",
        };
        static const char *bad_format[] = {
                "",
                "[\"erofs\"]",
                "{}",
                "{\"layer_format\":\"\"}",
                "{\"layer_format\":\"erofs2\"}",
                "{\"layer_format\":\"EROFS\"}",
                "{\"layer_format\":1}",
        };
        char *dir = NULL, big[9000];
        const char *f = NULL;
        uint8_t *m = NULL;
        size_t len = 0;

        (void)state;
        assert_int_equal(fetch_probe_encode("/var/lib/conker", &m, &len), 0);
        assert_int_equal(m[0], FETCH_MSG_PROBE);
        assert_int_equal(fetch_probe_decode(m + 1, len - 1, &dir, NULL), 0);
        assert_string_equal(dir, "/var/lib/conker");
        free(dir);
        free(m);
        assert_int_equal(fetch_format_encode("dir", &m, &len), 0);
        assert_int_equal(fetch_format_decode(m + 1, len - 1, &f, NULL), 0);
        assert_string_equal(f, "dir");
        free(m);
        for (size_t i = 0; i < sizeof(bad_probe) / sizeof(bad_probe[0]); i++) {
                dir = NULL;
                assert_true(fetch_probe_decode(S(bad_probe[i]), &dir, NULL) < 0);
                assert_null(dir);
        }
        for (size_t i = 0; i < sizeof(bad_format) / sizeof(bad_format[0]); i++)
                assert_true(fetch_format_decode(S(bad_format[i]), &f, NULL) < 0);
        /* past the probe's size bound, and a data_dir past its own */
        memset(big, 'a', sizeof(big));
        memcpy(big, "{\"data_dir\":\"/", 13);
        memcpy(big + sizeof(big) - 3, "\"}", 3);
        assert_true(fetch_probe_decode(S(big), &dir, NULL) < 0);
        memcpy(big + 4200, "\"}", 3);
        assert_true(fetch_probe_decode(S(big), &dir, NULL) < 0);
}

static void cut_message(void **state)
{
        int sv[2];
        uint8_t *buf = malloc(FETCH_MSG_MAX), *big = calloc(1, FETCH_MSG_MAX + 16);
        size_t len = 0;
        char type = 0;

        assert_non_null(buf);
        assert_non_null(big);
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        big[0] = 'p';
        assert_int_equal(send(sv[1], big, FETCH_MSG_MAX + 16, 0), FETCH_MSG_MAX + 16);
        assert_int_equal(fetch_msg_recv(sv[0], buf, &type, &len), -EMSGSIZE);
        assert_int_equal(fetch_msg_send(sv[1], FETCH_MSG_CANCEL, NULL, 0), 0);
        assert_int_equal(fetch_msg_recv(sv[0], buf, &type, &len), 1);
        assert_int_equal(type, FETCH_MSG_CANCEL);
        assert_int_equal(len, 0);
        assert_int_equal(fetch_msg_send(sv[1], 'p', big, FETCH_MSG_MAX), -EMSGSIZE);
        close(sv[1]);
        assert_int_equal(fetch_msg_recv(sv[0], buf, &type, &len), 0);
        close(sv[0]);
        free(buf);
        free(big);
}

/* ---- fetch_pull() against scripted helpers ---- */

static char *script(const char *body)
{
        char *path = strdup("/tmp/test-fetch-helper-XXXXXX");
        int fd = mkstemp(path);
        FILE *f;

        assert_true(fd >= 0);
        f = fdopen(fd, "w");
        assert_non_null(f);
        fprintf(f, "#!/bin/sh\n%s\n", body);
        fclose(f);
        assert_int_equal(chmod(path, 0700), 0);
        return path;
}

struct seen {
        unsigned n;
        uint64_t done;
};

static void on_progress(void *userdata, const struct fetch_progress *p)
{
        struct seen *s = userdata;

        s->n++;
        s->done = p->done_bytes;
}

static int run(const char *body, atomic_int *cancel, struct seen *seen, char **ret_name,
               uint64_t *ret_pulled, struct ck_error **err)
{
        struct fetch_request req = {.ref = "r:1", .data_dir = "/nonexistent", .layer_format = "dir"};
        struct ck_secret *pw = ck_secret_new("hunter2", 7);
        char *path = script(body);
        struct fetch_pull_opts o = {
                .helper = path,
                .req = &req,
                .password = pw,
                .cancel = cancel,
                .progress = on_progress,
                .progress_userdata = seen,
                .cancel_grace_ms = 200,
        };
        int q = fetch_pull(&o, ret_name, ret_pulled, err);

        unlink(path);
        free(path);
        ck_secret_free(pw);
        return q;
}

#define PROGRESS                                                                                            \
        "printf "                                                                                           \
        "'p{\"phase\":\"downloading\",\"done\":42,\"total\":99,\"layers_done\":0,\"layers_total\":1}' >&3"

static void helper_result(void **state)
{
        struct ck_error *err = NULL;
        struct seen seen = {0};
        uint64_t pulled = 0;
        char *name = NULL;

        assert_int_equal(
                run(PROGRESS
                    "; printf 'r{\"errno\":0,\"pulled\":77,\"id\":\"sha256:ab\",\"name\":\"r:1\"}' >&3",
                    NULL, &seen, &name, &pulled, &err),
                0);
        assert_string_equal(name, "r:1");
        assert_int_equal(pulled, 77);
        assert_int_equal(seen.n, 1);
        assert_int_equal(seen.done, 42);
        free(name);

        assert_int_equal(run("printf 'r{\"errno\":2,\"pulled\":5,\"message\":\"manifest unknown\"}' >&3",
                             NULL, &seen, &name, &pulled, &err),
                         -ENOENT);
        assert_string_equal(ck_error_message(err, 0), "manifest unknown");
        assert_int_equal(pulled, 5);
        ck_error_free(err);
}

static void helper_dies(void **state)
{
        struct ck_error *err = NULL;
        struct seen seen = {0};
        char *name = NULL;

        assert_int_equal(run(PROGRESS "; kill -9 $$", NULL, &seen, &name, NULL, &err), -EIO);
        assert_int_equal(seen.n, 1);
        assert_non_null(strstr(ck_error_message(err, 0), "died before reporting: killed by signal 9"));
        ck_error_free(err);
        err = NULL;
        assert_int_equal(run("exit 3", NULL, &seen, &name, NULL, &err), -EIO);
        assert_non_null(strstr(ck_error_message(err, 0), "exited with status 3"));
        ck_error_free(err);
        err = NULL;
        assert_int_equal(run("printf 'x{}' >&3; exec sleep 30", NULL, &seen, &name, NULL, &err), -EIO);
        assert_non_null(strstr(ck_error_message(err, 0), "unexpected message type"));
        ck_error_free(err);
        err = NULL;
        assert_int_equal(
                run("printf 'p{\"phase\":\"x\"}' >&3; exec sleep 30", NULL, &seen, &name, NULL, &err), -EIO);
        ck_error_free(err);
        err = NULL;
        /* A probe's answer to a pull: a protocol error, the helper ended. */
        assert_int_equal(run("printf 'f{\"layer_format\":\"erofs\"}' >&3; exec sleep 30", NULL, &seen, &name,
                             NULL, &err),
                         -EIO);
        assert_non_null(strstr(ck_error_message(err, 0), "unexpected message type 0x66"));
        ck_error_free(err);
}

static void helper_ignores_cancel(void **state)
{
        struct ck_error *err = NULL;
        struct seen seen = {0};
        atomic_int cancel = 1;
        char *name = NULL;

        /* exec: the shell's own pid is the one killed after the grace, not a child left behind. */
        assert_int_equal(run("exec sleep 30", &cancel, &seen, &name, NULL, &err), -ECANCELED);
        assert_string_equal(ck_error_message(err, 0), "cancelled");
        ck_error_free(err);
}

static void helper_probe(void **state)
{
        struct ck_error *err = NULL;
        const char *format = NULL;
        char *path = script("printf 'f{\"layer_format\":\"erofs\"}' >&3");

        assert_int_equal(fetch_probe(path, "/nonexistent", &format, &err), 0);
        assert_string_equal(format, "erofs");
        unlink(path);
        free(path);
        path = script("printf 'f{\"layer_format\":\"zfs\"}' >&3");
        assert_int_equal(fetch_probe(path, "/nonexistent", &format, &err), -EIO);
        assert_non_null(strstr(ck_error_message(err, 0), "unknown layer format"));
        ck_error_free(err);
        err = NULL;
        unlink(path);
        free(path);
        path = script(
                "printf 'r{\"errno\":13,\"pulled\":0,\"message\":\"cannot open data directory\"}' >&3");
        assert_int_equal(fetch_probe(path, "/nonexistent", &format, &err), -EACCES);
        assert_string_equal(ck_error_message(err, 0), "cannot open data directory");
        ck_error_free(err);
        unlink(path);
        free(path);
}

/* The start of a Python helper that serves requests until the end of the stream: each request
 * and its password read, n counts the requests this process has seen; the rest answers it. */
#define SERVE_LOOP                                                                                          \
        "exec /usr/bin/python3 -c '\n"                                                                      \
        "import json, os, socket\n"                                                                         \
        "s = socket.socket(fileno=3)\n"                                                                     \
        "n = 0\n"                                                                                           \
        "while True:\n"                                                                                     \
        "    m = s.recv(65536)\n"                                                                           \
        "    if not m:\n"                                                                                   \
        "        break\n"                                                                                   \
        "    if m[:1] == b\"R\":\n"                                                                         \
        "        s.recv(65536)\n"                                                                           \
        "        n += 1\n"

/* A helper that serves requests until the end of the stream, answering with its pid as the
 * image name. */
static char *serving_helper(void)
{
        return script(SERVE_LOOP
                      "        r = {\"errno\": 0, \"pulled\": 1, \"id\": \"sha256:ab\", \"name\": "
                      "\"pid-%d\" % os.getpid()}\n"
                      "        s.send(b\"r\" + json.dumps(r).encode())\n"
                      "'");
}

static pid_t name_pid(const char *name)
{
        long v = strtol(name + 4, NULL, 10);

        return (pid_t)v;
}

static char *pooled_pull(struct fetch_pool *pool, const char *helper)
{
        struct fetch_request req = {.ref = "r:1", .data_dir = "/nonexistent", .layer_format = "dir"};
        struct fetch_pull_opts o = {.helper = helper, .req = &req, .pool = pool};
        struct ck_error *err = NULL;
        char *name = NULL;

        assert_int_equal(fetch_pull(&o, &name, NULL, &err), 0);
        return name;
}

static void helper_pool(void **state)
{
        struct fetch_pool *pool = NULL;
        char *path = serving_helper();
        char *a, *b, *c;
        pid_t pid;

        assert_int_equal(fetch_pool_new(300, &pool), 0);
        a = pooled_pull(pool, path);
        b = pooled_pull(pool, path);
        /* The second pull was served by the helper the first one left idle. */
        assert_string_equal(a, b);
        pid = name_pid(a);
        assert_true(pid > 0);
        /* Killed while idle: the next pull notices and starts another. */
        assert_int_equal(kill(pid, SIGKILL), 0);
        c = pooled_pull(pool, path);
        assert_string_not_equal(c, a);
        free(b);
        b = c;
        /* Past the idle time the helper is ended (and reaped: its pid is gone). */
        pid = name_pid(b);
        for (int i = 0; i < 200 && kill(pid, 0) == 0; i++)
                usleep(10000);
        assert_int_equal(kill(pid, 0), -1);
        c = pooled_pull(pool, path);
        assert_string_not_equal(c, b);
        fetch_pool_free(pool); /* ends c's helper */
        pid = name_pid(c);
        assert_int_equal(kill(pid, 0), -1);
        free(a);
        free(b);
        free(c);
        unlink(path);
        free(path);
}

/* The helper inherits its own socket as fd 3 and nothing else of conkerd's: not conkerd's end
 * of the pair (it would never see the helper's end of stream), nor a second copy of its own. */
static void helper_inherits_one_socket(void **state)
{
        struct fetch_request req = {.ref = "r:1", .data_dir = "/nonexistent", .layer_format = "dir"};
        struct fetch_pull_opts o = {.req = &req};
        struct ck_error *err = NULL;
        char *name = NULL, *path;
        int hold[3];

        path = script("exec /usr/bin/python3 -c '\n"
                      "import json, os, socket, stat\n"
                      "s = socket.socket(fileno=3)\n"
                      "s.recv(65536)\n"
                      "s.recv(65536)\n"
                      "fds = []\n"
                      "for fd in range(4, 1024):\n"
                      "    try:\n"
                      "        if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
                      "            fds.append(str(fd))\n"
                      "    except OSError:\n"
                      "        pass\n"
                      "r = {\"errno\": 0, \"pulled\": 1, \"id\": \"sha256:ab\", \"name\": \"fds:\" + "
                      "\",\".join(fds)}\n"
                      "s.send(b\"r\" + json.dumps(r).encode())\n"
                      "'");
        o.helper = path;
        /* conkerd's low fds are taken (fd 3 would be overwritten by the helper's socket and hide
         * a leaked one): hold them here too. */
        for (int i = 0; i < 3; i++)
                hold[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_int_equal(fetch_pull(&o, &name, NULL, &err), 0);
        for (int i = 0; i < 3; i++)
                close(hold[i]);
        assert_string_equal(name, "fds:");
        free(name);
        unlink(path);
        free(path);
}

/* A helper that broke the protocol is ended, never kept for the next pull: this one answers its
 * first request ever with an unknown message type, then serves, naming how many requests its
 * process has seen. */
static void helper_pool_drops_misbehaving(void **state)
{
        struct fetch_pool *pool = NULL;
        struct fetch_request req = {.ref = "r:1", .data_dir = "/nonexistent", .layer_format = "dir"};
        struct fetch_pull_opts o = {.req = &req};
        struct ck_error *err = NULL;
        char dir[64] = "/tmp/ck-test-fetch-XXXXXX", body[1024], *name = NULL, *path;

        assert_non_null(mkdtemp(dir));
        snprintf(
                body, sizeof(body),
                SERVE_LOOP
                "        if not os.path.exists(\"%s/first\"):\n"
                "            open(\"%s/first\", \"w\").close()\n"
                "            s.send(b\"x\")\n"
                "            continue\n"
                "        r = {\"errno\": 0, \"pulled\": 1, \"id\": \"sha256:ab\", \"name\": \"n%%d\" %% n}\n"
                "        s.send(b\"r\" + json.dumps(r).encode())\n"
                "'",
                dir, dir);
        path = script(body);
        o.helper = path;
        assert_int_equal(fetch_pool_new(300, &pool), 0);
        o.pool = pool;
        assert_int_equal(fetch_pull(&o, &name, NULL, &err), -EIO);
        assert_non_null(strstr(err->msg, "unexpected message type 0x78"));
        ck_error_free(err);
        err = NULL;
        /* A new helper's first request, not the misbehaving one's second. */
        assert_int_equal(fetch_pull(&o, &name, NULL, &err), 0);
        assert_string_equal(name, "n1");
        free(name);
        fetch_pool_free(pool);
        unlink(path);
        free(path);
        ck_rm_rf_at(AT_FDCWD, dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(request_roundtrip),
                cmocka_unit_test(request_rejects),
                cmocka_unit_test(progress_and_result),
                cmocka_unit_test(cut_message),
                cmocka_unit_test(helper_result),
                cmocka_unit_test(helper_dies),
                cmocka_unit_test(helper_ignores_cancel),
                cmocka_unit_test(helper_probe),
                cmocka_unit_test(helper_pool),
                cmocka_unit_test(helper_pool_drops_misbehaving),
                cmocka_unit_test(helper_inherits_one_socket),
                cmocka_unit_test(probe_and_format),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
