/* Unit tests for the shim protocol: frame lengths (hostile ones included), request parsing,
 * state round trips, responses, a client/server exchange over a socketpair, and the spare
 * shim's assignment message. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json.h"
#include "parse.h"
#include "shim-proto.h"

static void test_frame_length(void **state)
{
        uint8_t h[4];
        size_t n = 7;

        ck_put_le32(h, 0);
        assert_int_equal(shim_frame_length(h, &n), -EMSGSIZE);
        assert_int_equal(n, 7);
        ck_put_le32(h, SHIM_MSG_MAX + 1);
        assert_int_equal(shim_frame_length(h, &n), -EMSGSIZE);
        ck_put_le32(h, 0xffffffffu);
        assert_int_equal(shim_frame_length(h, &n), -EMSGSIZE);
        ck_put_le32(h, SHIM_MSG_MAX);
        assert_int_equal(shim_frame_length(h, &n), 0);
        assert_int_equal(n, SHIM_MSG_MAX);
}

static void test_frame_io(void **state)
{
        int sv[2];
        uint8_t *buf = NULL, hdr[4];
        size_t len;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(shim_frame_write(sv[0], "{\"op\":\"state\"}", 14), 0);
        assert_int_equal(shim_frame_read(sv[1], &buf, &len), 0);
        assert_int_equal(len, 14);
        assert_memory_equal(buf, "{\"op\":\"state\"}", 14);
        free(buf);
        assert_int_equal(shim_frame_write(sv[0], "x", 0), -EMSGSIZE);

        /* A header announcing 4 GiB is refused before any allocation. */
        ck_put_le32(hdr, 0xfffffff0u);
        assert_int_equal(write(sv[0], hdr, 4), 4);
        assert_int_equal(shim_frame_read(sv[1], &buf, &len), -EMSGSIZE);
        /* A truncated body is an error, not a hang, once the peer closes. */
        ck_put_le32(hdr, 100);
        assert_int_equal(write(sv[0], hdr, 4), 4);
        assert_int_equal(write(sv[0], "abc", 3), 3);
        close(sv[0]);
        assert_int_equal(shim_frame_read(sv[1], &buf, &len), -ECONNRESET);
        close(sv[1]);
}

static void test_request_parse(void **state)
{
        struct shim_request r;
        struct ck_error *err = NULL;
        const char *ok1 = "{\"op\":\"state\"}", *ok2 = "{\"op\":\"stop\",\"timeout\":10}",
                   *ok3 = "{\"op\":\"delete\"}";
        const char *bad[] = {"",
                             "[]",
                             "{}",
                             "{\"op\":1}",
                             "{\"op\":\"exec\"}",
                             "{\"op\":\"stop\",\"timeout\":-1}",
                             "{\"op\":\"stop\",\"timeout\":3601}",
                             "{\"op\":\"stop\",\"timeout\":\"10\"}",
                             "{\"op\":\"state\",\"x\":1}",
                             "{\"op\":\"state\"} trailing",
                             "{\"op\":\"state\",\"op\":\"delete\"}"};

        assert_int_equal(shim_request_parse((const uint8_t *)ok1, strlen(ok1), &r, NULL), 0);
        assert_int_equal(r.op, SHIM_OP_STATE);
        assert_int_equal(shim_request_parse((const uint8_t *)ok2, strlen(ok2), &r, NULL), 0);
        assert_int_equal(r.op, SHIM_OP_STOP);
        assert_int_equal(r.timeout_s, 10);
        assert_int_equal(shim_request_parse((const uint8_t *)ok3, strlen(ok3), &r, NULL), 0);
        assert_int_equal(r.op, SHIM_OP_DELETE);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int ret = shim_request_parse((const uint8_t *)bad[i], strlen(bad[i]), &r, &err);
                if (ret >= 0)
                        fail_msg("accepted %s", bad[i]);
                ck_error_free(err);
                err = NULL;
        }
        /* Round trip of the formatter. */
        struct shim_request q = {.op = SHIM_OP_STOP, .timeout_s = 7};
        char *s = shim_request_format(&q);
        assert_int_equal(shim_request_parse((const uint8_t *)s, strlen(s), &r, NULL), 0);
        assert_int_equal(r.timeout_s, 7);
        free(s);
}

static void test_state_roundtrip(void **state)
{
        struct shim_state in = {.st = {.status = RUNTIME_RESTARTING,
                                       .pid = 0,
                                       .exit_code = 137,
                                       .oom_killed = true,
                                       .restart_count = 3,
                                       .started_at_ns = 1700000000123456789LL,
                                       .finished_at_ns = 1700000001123456789LL},
                                .shim_pid = 4242};
        struct shim_state out;
        json_t *j = shim_state_to_json(&in);
        char *txt = ck_json_dump(j), *resp = NULL;

        assert_int_equal(shim_state_from_json(j, &out, NULL), 0);
        assert_int_equal(out.st.status, RUNTIME_RESTARTING);
        assert_int_equal(out.st.exit_code, 137);
        assert_true(out.st.oom_killed);
        assert_int_equal(out.st.restart_count, 3);
        assert_true(out.st.started_at_ns == in.st.started_at_ns);
        assert_int_equal(out.shim_pid, 4242);
        assert_int_equal(asprintf(&resp, "{\"ok\":true,\"state\":%s}", txt) > 0, 1);
        memset(&out, 0, sizeof(out));
        assert_int_equal(shim_response_parse((const uint8_t *)resp, strlen(resp), &out, NULL), 0);
        assert_int_equal(out.st.restart_count, 3);
        free(resp);
        free(txt);
        json_decref(j);

        const char *bad[] = {
                "{\"status\":\"running\"}",
                "{\"status\":\"zombie\",\"pid\":1,\"exit_code\":0,\"oom_killed\":false,\"restart_count\":0,"
                "\"started_at\":0,\"finished_at\":0,\"shim_pid\":1}",
                "{\"status\":\"running\",\"pid\":-5,\"exit_code\":0,\"oom_killed\":false,"
                "\"restart_count\":0,\"started_at\":0,\"finished_at\":0,\"shim_pid\":1}",
                "{\"status\":\"running\",\"pid\":1,\"exit_code\":999,\"oom_killed\":false,"
                "\"restart_count\":0,\"started_at\":0,\"finished_at\":0,\"shim_pid\":1}",
                /* The bounds themselves: kill(-1, ...) would signal every process. */
                "{\"status\":\"running\",\"pid\":-1,\"exit_code\":0,\"oom_killed\":false,"
                "\"restart_count\":0,\"started_at\":0,\"finished_at\":0,\"shim_pid\":1}",
                "{\"status\":\"running\",\"pid\":1,\"exit_code\":0,\"oom_killed\":false,"
                "\"restart_count\":0,\"started_at\":0,\"finished_at\":0,\"shim_pid\":-1}",
                "{\"status\":\"running\",\"pid\":1,\"exit_code\":0,\"oom_killed\":false,"
                "\"restart_count\":0,\"started_at\":0,\"finished_at\":0,\"shim_pid\":2147483648}",
                "{\"status\":\"running\",\"pid\":1,\"exit_code\":-2,\"oom_killed\":false,"
                "\"restart_count\":0,\"started_at\":0,\"finished_at\":0,\"shim_pid\":1}",
                "{\"status\":\"running\",\"pid\":1,\"exit_code\":384,\"oom_killed\":false,"
                "\"restart_count\":0,\"started_at\":0,\"finished_at\":0,\"shim_pid\":1}",
                "{\"status\":\"running\",\"pid\":1,\"exit_code\":0,\"oom_killed\":false,"
                "\"restart_count\":-1,\"started_at\":0,\"finished_at\":0,\"shim_pid\":1}",
                "{\"status\":\"running\",\"pid\":1,\"exit_code\":0,\"oom_killed\":false,"
                "\"restart_count\":0,\"started_at\":-1,\"finished_at\":0,\"shim_pid\":1}"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                json_t *b = json_loads(bad[i], 0, NULL);
                assert_non_null(b);
                assert_true(shim_state_from_json(b, &out, NULL) < 0);
                json_decref(b);
        }
}

static void test_response_error(void **state)
{
        const char *e = "{\"ok\":false,\"error\":\"container did not die\",\"errno\":16}";
        struct shim_state st;
        struct ck_error *err = NULL;

        assert_int_equal(shim_response_parse((const uint8_t *)e, strlen(e), &st, &err), -EBUSY);
        assert_non_null(strstr(err->msg, "did not die"));
        ck_error_free(err);
        const char *e2 = "{\"ok\":false,\"errno\":99999}";
        assert_int_equal(shim_response_parse((const uint8_t *)e2, strlen(e2), &st, NULL), -EIO);
        assert_int_equal(shim_response_parse((const uint8_t *)"{\"ok\":true}", 11, &st, NULL), -EBADMSG);
}

static void test_status_strings(void **state)
{
        for (int i = 0; i < _RUNTIME_STATUS_MAX; i++)
                assert_int_equal(runtime_status_from_string(runtime_status_to_string(i)), i);
        assert_int_equal(runtime_status_from_string("paused"), -EINVAL);
        assert_string_equal(runtime_status_to_string(_RUNTIME_STATUS_MAX), "unknown");
}

static void test_oom_kill(void **state)
{
        const char *v2 = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        const char *v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";
        uint64_t n = 99;

        assert_int_equal(shim_parse_oom_kill(v2, strlen(v2), &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(shim_parse_oom_kill(v1, strlen(v1), &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(shim_parse_oom_kill("oom 1\n", 6, &n), -ENOENT);
        assert_int_equal(shim_parse_oom_kill("oom_kill x\n", 11, &n), -EINVAL);
        assert_int_equal(shim_parse_oom_kill("oom_kill 1", 8, &n), -ENOENT); /* truncated by len */
}

static void test_assign_roundtrip(void **state)
{
        char *in[] = {"--id", "abcdefabcdef", "--bundle", "/var/lib/conker/containers/x/bundle",
                      "--hide-cgroup2"};
        char *out[SHIM_ASSIGN_ARGS_MAX + 2];
        uint8_t *msg = NULL;
        size_t len;
        int argc = 0;

        assert_int_equal(shim_assign_format(in, 5, &msg, &len), 0);
        assert_int_equal(msg[len - 1], 0);
        assert_int_equal(shim_assign_parse(msg, len, "conker-shim", out, &argc), 0);
        assert_int_equal(argc, 6);
        assert_string_equal(out[0], "conker-shim");
        for (int i = 0; i < 5; i++)
                assert_string_equal(out[i + 1], in[i]);
        assert_null(out[6]);
        free(msg);
}

static void test_assign_format_limits(void **state)
{
        char *many[SHIM_ASSIGN_ARGS_MAX + 1];
        char *empty[] = {"--id", ""};
        char *big = malloc(SHIM_MSG_MAX + 1);
        uint8_t *msg = NULL;
        size_t len;

        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                many[i] = "x";
        assert_int_equal(shim_assign_format(many, 0, &msg, &len), -E2BIG);
        assert_int_equal(shim_assign_format(many, SHIM_ASSIGN_ARGS_MAX + 1, &msg, &len), -E2BIG);
        assert_int_equal(shim_assign_format(empty, 2, &msg, &len), -EINVAL);
        assert_non_null(big);
        memset(big, 'a', SHIM_MSG_MAX);
        big[SHIM_MSG_MAX] = 0;
        assert_int_equal(shim_assign_format(&big, 1, &msg, &len), -EMSGSIZE);
        big[SHIM_MSG_MAX - 1] = 0; /* exactly SHIM_MSG_MAX with its NUL */
        assert_int_equal(shim_assign_format(&big, 1, &msg, &len), 0);
        assert_int_equal(len, SHIM_MSG_MAX);
        free(msg);
        free(big);
        assert_int_equal(shim_assign_format(many, SHIM_ASSIGN_ARGS_MAX, &msg, &len), 0);
        free(msg);
}

static void test_assign_parse_hostile(void **state)
{
        char *out[SHIM_ASSIGN_ARGS_MAX + 2];
        uint8_t buf[2 * (SHIM_ASSIGN_ARGS_MAX + 1)];
        int argc = -1;

        assert_int_equal(shim_assign_parse((uint8_t *)"", 0, "s", out, &argc), -EBADMSG);
        /* Not NUL-terminated at the end. */
        memcpy(buf, "--id\0abc", 8);
        assert_int_equal(shim_assign_parse(buf, 8, "s", out, &argc), -EBADMSG);
        /* An empty argument (two NULs in a row). */
        memcpy(buf, "--id\0\0", 6);
        assert_int_equal(shim_assign_parse(buf, 6, "s", out, &argc), -EBADMSG);
        /* One argument too many. */
        for (size_t i = 0; i < SHIM_ASSIGN_ARGS_MAX + 1; i++) {
                buf[2 * i] = 'x';
                buf[2 * i + 1] = 0;
        }
        assert_int_equal(shim_assign_parse(buf, sizeof(buf), "s", out, &argc), -EBADMSG);
        assert_int_equal(argc, -1);
        /* The most that is allowed. */
        assert_int_equal(shim_assign_parse(buf, sizeof(buf) - 2, "s", out, &argc), 0);
        assert_int_equal(argc, SHIM_ASSIGN_ARGS_MAX + 1);
        assert_null(out[SHIM_ASSIGN_ARGS_MAX + 1]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_frame_length),
                cmocka_unit_test(test_frame_io),
                cmocka_unit_test(test_request_parse),
                cmocka_unit_test(test_state_roundtrip),
                cmocka_unit_test(test_response_error),
                cmocka_unit_test(test_status_strings),
                cmocka_unit_test(test_oom_kill),
                cmocka_unit_test(test_assign_roundtrip),
                cmocka_unit_test(test_assign_format_limits),
                cmocka_unit_test(test_assign_parse_hostile),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
