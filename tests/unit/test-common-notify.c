/* Unit tests for ck_notify(): the datagram reaches a socket named by $NOTIFY_SOCKET as a path and
 * as an abstract '@' name; unset means no-op; malformed names, oversized states and a missing
 * socket are errors. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

/* A datagram socket bound at name (a path, or "@..." for an abstract name). */
static int bind_dgram(const char *name)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t n = strlen(name);
        socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '@' ? 0 : 1));
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_true(n < sizeof(sa.sun_path));
        memcpy(sa.sun_path, name, n);
        if (name[0] == '@')
                sa.sun_path[0] = 0;
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
        return fd;
}

static void expect_datagram(int fd, const char *want)
{
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

        assert_int_equal(n, (ssize_t)strlen(want));
        assert_memory_equal(buf, want, (size_t)n);
}

static void test_path_socket(void **state)
{
        char dir[] = "/tmp/ck-notify-XXXXXX", path[64];
        int fd;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/notify", dir);
        fd = bind_dgram(path);
        assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);
        assert_int_equal(ck_notify("READY=1", NULL), 1);
        expect_datagram(fd, "READY=1");
        assert_int_equal(ck_notify("STOPPING=1\nSTATUS=bye", NULL), 1);
        expect_datagram(fd, "STOPPING=1\nSTATUS=bye");
        close(fd);
        unlink(path);
        /* Nobody listens any more. */
        assert_int_equal(ck_notify("READY=1", NULL), -ENOENT);
        rmdir(dir);
        unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void **state)
{
        char name[64];
        int fd;

        snprintf(name, sizeof(name), "@conker-notify-test-%d", (int)getpid());
        fd = bind_dgram(name);
        assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
        assert_int_equal(ck_notify("READY=1", NULL), 1);
        expect_datagram(fd, "READY=1");
        close(fd);
        unsetenv("NOTIFY_SOCKET");
}

static void test_unset_is_noop(void **state)
{
        unsetenv("NOTIFY_SOCKET");
        assert_int_equal(ck_notify("READY=1", NULL), 0);
        assert_int_equal(setenv("NOTIFY_SOCKET", "", 1), 0);
        assert_int_equal(ck_notify("READY=1", NULL), 0);
        unsetenv("NOTIFY_SOCKET");
}

static void test_bad_input(void **state)
{
        struct ck_error *e = NULL;
        char big[CK_NOTIFY_STATE_MAX + 2], longname[200];

        assert_int_equal(setenv("NOTIFY_SOCKET", "relative/path", 1), 0);
        assert_int_equal(ck_notify("READY=1", &e), -EINVAL);
        assert_non_null(strstr(e->msg, "NOTIFY_SOCKET"));
        ck_error_free(e);
        e = NULL;
        assert_int_equal(setenv("NOTIFY_SOCKET", "@", 1), 0);
        assert_int_equal(ck_notify("READY=1", NULL), -EINVAL);
        memset(longname, 'a', sizeof(longname) - 1);
        longname[0] = '/';
        longname[sizeof(longname) - 1] = 0;
        assert_int_equal(setenv("NOTIFY_SOCKET", longname, 1), 0);
        assert_int_equal(ck_notify("READY=1", NULL), -EINVAL);

        assert_int_equal(setenv("NOTIFY_SOCKET", "/run/conker-no-such-notify-socket", 1), 0);
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        assert_int_equal(ck_notify(big, NULL), -E2BIG);
        assert_int_equal(ck_notify("", NULL), -E2BIG);
        unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_path_socket),
                cmocka_unit_test(test_abstract_socket),
                cmocka_unit_test(test_unset_is_noop),
                cmocka_unit_test(test_bad_input),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
