/* Unit tests for ck_exec(): argv without a shell, stdin data, captured output, exit status in the
 * error, output caps, timeouts, PATH lookup. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"

static void test_stdin_and_stdout(void **state)
{
        char *argv[] = {"cat", NULL};
        struct ck_exec_opts o = CK_EXEC_OPTS_DEFAULT;
        char *out = NULL, *err = NULL;

        o.stdin_data = "line one\n$(not a shell)\n";
        o.stdin_len = strlen(o.stdin_data);
        assert_int_equal(ck_exec(argv, &o, &out, &err, NULL), 0);
        assert_string_equal(out, "line one\n$(not a shell)\n");
        assert_string_equal(err, "");
        free(out);
        free(err);
}

static void test_failure_message(void **state)
{
        char *argv[] = {"sh", "-c", "echo oops >&2; exit 3", NULL};
        struct ck_error *e = NULL;
        char *err = NULL;

        assert_int_equal(ck_exec(argv, NULL, NULL, &err, &e), -EIO);
        assert_non_null(strstr(e->msg, "exited 3"));
        assert_non_null(strstr(e->msg, "oops"));
        assert_string_equal(err, "oops");
        free(err);
        ck_error_free(e);
}

/* A failing program's stderr goes into an error message that reaches logs and API clients: it is
 * cut to 512 bytes and holds no control characters (no forged log lines, no terminal escapes). */
static void test_failure_message_sanitised(void **state)
{
        char *esc[] = {"sh", "-c", "printf 'a\\033[2Jb\\rc\\nfake: line\\n' >&2; exit 1", NULL};
        char *big[] = {"sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x >&2; exit 1", NULL};
        struct ck_error *e = NULL;
        char *err = NULL;

        assert_int_equal(ck_exec(esc, NULL, NULL, &err, &e), -EIO);
        assert_string_equal(err, "a [2Jb c fake: line");
        for (const char *c = e->msg; *c; c++)
                assert_true((unsigned char)*c >= 0x20);
        free(err);
        ck_error_free(e);
        e = NULL;
        assert_int_equal(ck_exec(big, NULL, NULL, &err, &e), -EIO);
        assert_int_equal(strlen(err), 512);
        assert_true(strlen(e->msg) < 600);
        free(err);
        ck_error_free(e);
}

/* opts.netns_fd: the program runs in that network namespace, and when it cannot be entered the
 * program does not run at all (never in conkerd's own namespace instead). */
static void test_netns(void **state)
{
        char *argv[] = {"readlink", "/proc/self/ns/net", NULL};
        char *ok[] = {"true", NULL};
        struct ck_exec_opts o = CK_EXEC_OPTS_DEFAULT;
        _cleanup_close_ int nsfd = -1, notns = open("/dev/null", O_RDONLY | O_CLOEXEC);
        char want[64] = "", path[64];
        char *out = NULL;
        int sync[2], status, r;
        pid_t pid;
        ssize_t n;

        assert_true(notns >= 0);
        o.netns_fd = notns;
        assert_int_equal(ck_exec(ok, &o, NULL, NULL, NULL), -EIO);

        /* A child in a network namespace of its own holds it while ck_exec enters it. */
        assert_int_equal(pipe2(sync, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char c = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
                (void)!write(sync[1], &c, 1);
                pause();
                _exit(0);
        }
        close(sync[1]);
        {
                char c = 0;
                assert_int_equal(read(sync[0], &c, 1), 1);
                close(sync[0]);
                if (c != 'y') {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        skip(); /* no CAP_SYS_ADMIN: cannot make a network namespace */
                }
        }
        snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
        n = readlink(path, want, sizeof(want) - 1);
        nsfd = open(path, O_RDONLY | O_CLOEXEC);
        o.netns_fd = nsfd;
        r = n > 0 && nsfd >= 0 ? ck_exec(argv, &o, &out, NULL, NULL) : -EBADF;
        kill(pid, SIGKILL); /* before any assertion, which would leave it behind */
        waitpid(pid, &status, 0);
        assert_int_equal(r, 0);
        assert_non_null(out);
        out[strcspn(out, "\n")] = 0;
        assert_string_equal(out, want);
        free(out);
        n = readlink("/proc/self/ns/net", path, sizeof(path) - 1);
        assert_true(n > 0);
        path[n] = 0;
        assert_string_not_equal(path, want);
}

static void test_not_found_and_timeout(void **state)
{
        char *missing[] = {"conker-no-such-program-xyz", NULL};
        char *slow[] = {"sleep", "5", NULL};
        struct ck_exec_opts o = CK_EXEC_OPTS_DEFAULT;
        char *p = NULL;

        assert_int_equal(ck_exec(missing, NULL, NULL, NULL, NULL), -ENOENT);
        o.timeout_s = 1;
        assert_int_equal(ck_exec(slow, &o, NULL, NULL, NULL), -ETIMEDOUT);
        assert_int_equal(ck_exec_find("sh", &p), 0);
        assert_true(p[0] == '/');
        free(p);
}

static void test_output_cap(void **state)
{
        char *argv[] = {"head", "-c", "100000", "/dev/zero", NULL};
        struct ck_exec_opts o = CK_EXEC_OPTS_DEFAULT;
        char *out = NULL;

        o.out_max = 1000;
        /* The child is drained to the end (no deadlock), the excess dropped. */
        assert_int_equal(ck_exec(argv, &o, &out, NULL, NULL), 0);
        free(out);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stdin_and_stdout),          cmocka_unit_test(test_failure_message),
                cmocka_unit_test(test_failure_message_sanitised), cmocka_unit_test(test_netns),
                cmocka_unit_test(test_not_found_and_timeout),     cmocka_unit_test(test_output_cap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
