/* The task store: insert/append/reload, cascading delete, and a crash in the middle of a
 * transaction (a child process dies between the event insert and the commit). */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs.h"
#include "task-store.h"

static char tmpdir[64], dbpath[128];

static int setup(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-store-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(dbpath, sizeof(dbpath), "%s/conker.db", tmpdir);
        return 0;
}

static int teardown(void **state)
{
        task_store_test_hook = NULL;
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

static const char *ID = "00112233445566778899aabbccddeeff";

static void insert_one(struct task_store *s)
{
        struct task_store_task t = {
                .id = (char *)ID, .seq = 1, .name = (char *)"n", .created_ns = 5, .request = (char *)"{}"};
        struct task_store_event e = {(char *)"Pulling", 5, (char *)"pulling x"};

        assert_int_equal(task_store_insert(s, &t, &e, NULL), 0);
}

static void load(struct task_store_task **v, size_t *n)
{
        struct task_store *s = NULL;

        assert_int_equal(task_store_open(dbpath, &s, NULL), 0);
        assert_int_equal(task_store_load(s, v, n, NULL), 0);
        task_store_free(s);
}

static void free_all(struct task_store_task *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                task_store_task_clear(&v[i]);
        free(v);
}

static void test_append_reload(void **state)
{
        struct task_store *s = NULL;
        struct task_store_event e = {(char *)"Pulled", 6, (char *)"pulled"};
        struct task_store_task *v = NULL;
        size_t n = 0;

        assert_int_equal(task_store_open(dbpath, &s, NULL), 0);
        insert_one(s);
        assert_int_equal(task_store_append_event(s, ID, &e, NULL), 0);
        assert_int_equal(task_store_set_image(s, ID, "{\"Id\":\"sha256:x\"}", NULL), 0);
        assert_int_equal(task_store_add_volume(s, ID, "data", NULL), 0);
        assert_int_equal(task_store_add_volume(s, ID, "data", NULL), 0); /* idempotent */
        /* Unknown task: nothing is written. */
        assert_int_equal(task_store_append_event(s, "ffffffffffffffffffffffffffffffff", &e, NULL), -EIO);
        task_store_free(s);

        load(&v, &n);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].id, ID);
        assert_string_equal(v[0].status, "Pulled");
        assert_string_equal(v[0].image, "{\"Id\":\"sha256:x\"}");
        assert_int_equal(v[0].n_events, 2);
        assert_string_equal(v[0].events[1].message, "pulled");
        assert_int_equal(v[0].events[1].time_ns, 6);
        assert_int_equal(v[0].n_volumes, 1);
        assert_string_equal(v[0].volumes[0], "data");
        free_all(v, n);
}

static void test_duplicate_and_delete(void **state)
{
        struct task_store *s = NULL;
        struct task_store_task t = {
                .id = (char *)ID, .seq = 2, .name = (char *)"n", .request = (char *)"{}"};
        struct task_store_event e = {(char *)"Pulling", 1, (char *)""};
        struct task_store_task *v = NULL;
        size_t n = 0;

        assert_int_equal(task_store_open(dbpath, &s, NULL), 0);
        insert_one(s);
        assert_int_equal(task_store_insert(s, &t, &e, NULL), -EEXIST);
        assert_int_equal(task_store_add_volume(s, ID, "v", NULL), 0);
        assert_int_equal(task_store_delete(s, ID, NULL), 0);
        assert_int_equal(task_store_delete(s, ID, NULL), 0);
        task_store_free(s);
        load(&v, &n);
        assert_int_equal(n, 0);
        free_all(v, n);
}

static void die(const char *point)
{
        if (strcmp(point, "append:inserted") == 0)
                _exit(0);
}

static void test_crash_mid_transaction(void **state)
{
        struct task_store *s = NULL;
        struct task_store_task *v = NULL;
        size_t n = 0;
        int status;
        pid_t pid;

        assert_int_equal(task_store_open(dbpath, &s, NULL), 0);
        insert_one(s);
        task_store_free(s);

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct task_store_event e = {(char *)"Running", 9, (char *)"never committed"};
                if (task_store_open(dbpath, &s, NULL) < 0)
                        _exit(2);
                task_store_test_hook = die;
                task_store_append_event(s, ID, &e, NULL);
                _exit(3); /* the hook should have ended us before the commit */
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);

        /* Neither the event nor the status change survived. */
        load(&v, &n);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].status, "Pulling");
        assert_int_equal(v[0].n_events, 1);
        free_all(v, n);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_append_reload, setup, teardown),
                cmocka_unit_test_setup_teardown(test_duplicate_and_delete, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_mid_transaction, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
