/* Unit tests for the broker's secret store: initial load, inotify reload (in-place writes and
 * rename-over), bad files keep the last good value (counted, with the reason), deleted files
 * revoke, size cap, JSON validation. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "secret-store.h"

static char tmpdir[64];
static char path[128];

static int setup(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-secret-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(path, sizeof(path), "%s/secret.json", tmpdir);
        return 0;
}

static int teardown(void **state)
{
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

static void write_file(const char *p, const char *content)
{
        FILE *f = fopen(p, "we");

        assert_non_null(f);
        assert_int_equal(fputs(content, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

static void assert_value(struct broker_secret_store *s, const char *want)
{
        _cleanup_secret_ struct ck_secret *v = NULL;

        assert_int_equal(broker_secret_store_get(s, "default", &v), 0);
        assert_int_equal(v->len, strlen(want));
        assert_memory_equal(v->data, want, v->len);
}

/* Waits for the inotify fd and processes events; returns the number of changed secrets. */
static int pump(struct broker_secret_store *s)
{
        struct pollfd pfd = {.fd = broker_secret_store_fd(s), .events = POLLIN};
        int changed = 0;

        while (poll(&pfd, 1, 200) > 0)
                changed += broker_secret_store_process(s);
        return changed;
}

static void test_load_and_reload(void **state)
{
        _cleanup_(broker_secret_store_freep) struct broker_secret_store *s = NULL;
        struct broker_secret_source src = {.id = "default", .path = path};
        char tmp[160];

        write_file(path, "{\"k\":\"v1\"}");
        assert_int_equal(broker_secret_store_new(&src, 1, 0, &s, NULL), 0);
        assert_value(s, "{\"k\":\"v1\"}");

        /* In-place rewrite. */
        write_file(path, "{\"k\":\"v2\"}");
        assert_int_equal(pump(s), 1);
        assert_value(s, "{\"k\":\"v2\"}");

        /* Rename over, as editors and deployment tools do. */
        snprintf(tmp, sizeof(tmp), "%s/.secret.json.tmp", tmpdir);
        write_file(tmp, "[\"v3\"]");
        assert_int_equal(rename(tmp, path), 0);
        assert_int_equal(pump(s), 1);
        assert_value(s, "[\"v3\"]");

        /* An unrelated file in the same directory changes nothing. */
        snprintf(tmp, sizeof(tmp), "%s/other", tmpdir);
        write_file(tmp, "x");
        assert_int_equal(pump(s), 0);
        assert_value(s, "[\"v3\"]");

        assert_int_equal(broker_secret_store_get(s, "nope", &(struct ck_secret *){NULL}), -ENOENT);
}

static void test_bad_file_keeps_last_good(void **state)
{
        _cleanup_(broker_secret_store_freep) struct broker_secret_store *s = NULL;
        struct broker_secret_source src = {.id = "default", .path = path};
        struct broker_secret_status st;
        char big[200];

        write_file(path, "{\"k\":\"good\"}");
        assert_int_equal(broker_secret_store_new(&src, 1, 128, &s, NULL), 0);

        write_file(path, "{\"k\": broken");
        assert_int_equal(pump(s), 0);
        assert_value(s, "{\"k\":\"good\"}");
        assert_int_equal(broker_secret_store_status(s, "default", &st), 0);
        assert_int_equal(st.reload_failures, 1);
        assert_non_null(strstr(st.last_error, "not valid JSON"));
        assert_null(strstr(st.last_error, "broken")); /* never the content */

        memset(big, ' ', sizeof(big) - 1);
        big[0] = '{';
        big[sizeof(big) - 2] = '}';
        big[sizeof(big) - 1] = 0;
        write_file(path, big);
        assert_int_equal(pump(s), 0);
        assert_value(s, "{\"k\":\"good\"}");

        assert_int_equal(broker_secret_store_status(s, "default", &st), 0);
        assert_false(st.revoked);
        assert_int_equal(st.reload_failures, 2);
        assert_true(st.last_error[0] != 0);

        write_file(path, "{\"k\":\"new\"}");
        assert_int_equal(pump(s), 1);
        assert_value(s, "{\"k\":\"new\"}");
        assert_int_equal(broker_secret_store_status(s, "default", &st), 0);
        assert_string_equal(st.last_error, "");
        assert_int_equal(st.reload_failures, 2);
}

/* Finding 8: deleting the secret file revokes the secret at once; a file that comes back is
 * released again. */
static void test_deleted_file_revokes(void **state)
{
        _cleanup_(broker_secret_store_freep) struct broker_secret_store *s = NULL;
        struct broker_secret_source src = {.id = "default", .path = path};
        struct broker_secret_status st;
        struct ck_secret *v = NULL;
        char moved[160];

        write_file(path, "{\"k\":\"good\"}");
        assert_int_equal(broker_secret_store_new(&src, 1, 0, &s, NULL), 0);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(pump(s), 1);
        assert_int_equal(broker_secret_store_get(s, "default", &v), -EKEYREVOKED);
        assert_null(v);
        assert_int_equal(broker_secret_store_status(s, "default", &st), 0);
        assert_true(st.revoked);
        assert_int_equal(st.reload_failures, 0);

        write_file(path, "{\"k\":\"back\"}");
        assert_int_equal(pump(s), 1);
        assert_value(s, "{\"k\":\"back\"}");

        /* Moved away (mv secret.json secret.json.old) revokes too. */
        snprintf(moved, sizeof(moved), "%s.old", path);
        assert_int_equal(rename(path, moved), 0);
        assert_int_equal(pump(s), 1);
        assert_int_equal(broker_secret_store_get(s, "default", &v), -EKEYREVOKED);
        assert_int_equal(rename(moved, path), 0);
        assert_int_equal(pump(s), 1);
        assert_value(s, "{\"k\":\"back\"}");
}

/* Removing the whole secret directory revokes as well (the watch itself goes away). */
static void test_deleted_directory_revokes(void **state)
{
        _cleanup_(broker_secret_store_freep) struct broker_secret_store *s = NULL;
        char dir[128], file[160];
        struct broker_secret_source src = {.id = "default", .path = file};
        struct ck_secret *v = NULL;

        snprintf(dir, sizeof(dir), "%s/d", tmpdir);
        snprintf(file, sizeof(file), "%s/secret.json", dir);
        assert_int_equal(mkdir(dir, 0700), 0);
        write_file(file, "{\"k\":\"good\"}");
        assert_int_equal(broker_secret_store_new(&src, 1, 0, &s, NULL), 0);
        assert_int_equal(ck_rm_rf_at(AT_FDCWD, dir), 0);
        assert_true(pump(s) >= 1);
        assert_int_equal(broker_secret_store_get(s, "default", &v), -EKEYREVOKED);
}

static void test_bad_initial_file_is_an_error(void **state)
{
        struct broker_secret_store *s = NULL;
        struct broker_secret_source src = {.id = "default", .path = path};
        _cleanup_error_ struct ck_error *e1 = NULL, *e2 = NULL;

        assert_int_equal(broker_secret_store_new(&src, 1, 0, &s, &e1), -ENOENT);
        write_file(path, "{\"password\":\"hunter2\"");
        assert_int_equal(broker_secret_store_new(&src, 1, 0, &s, &e2), -EBADMSG);
        assert_non_null(strstr(e2->msg, "not valid JSON"));
        /* The error locates the problem but never quotes the secret. */
        assert_null(strstr(e2->msg, "hunter2"));
        assert_null(s);
}

/* A FIFO in place of the secret must not block the broker (the reader would wait forever). */
static void test_fifo_refused(void **state)
{
        struct broker_secret_store *s = NULL;
        struct broker_secret_source src = {.id = "default", .path = path};
        _cleanup_error_ struct ck_error *e = NULL;

        assert_int_equal(mkfifo(path, 0600), 0);
        assert_int_equal(broker_secret_store_new(&src, 1, 0, &s, &e), -EINVAL);
        assert_non_null(strstr(e->msg, "not a regular file"));
}

static void test_validate(void **state)
{
        assert_int_equal(broker_secret_validate((const uint8_t *)"{}", 2, 10, NULL), 0);
        assert_int_equal(broker_secret_validate((const uint8_t *)"[1]", 3, 10, NULL), 0);
        assert_int_equal(broker_secret_validate((const uint8_t *)"\"s\"", 3, 10, NULL), -EBADMSG);
        assert_int_equal(broker_secret_validate((const uint8_t *)"{} {}", 5, 10, NULL), -EBADMSG);
        assert_int_equal(broker_secret_validate((const uint8_t *)"{\"a\":1,\"a\":2}", 13, 100, NULL),
                         -EBADMSG);
        assert_int_equal(broker_secret_validate((const uint8_t *)"{}", 2, 1, NULL), -EFBIG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_load_and_reload, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_file_keeps_last_good, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deleted_file_revokes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deleted_directory_revokes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_initial_file_is_an_error, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fifo_refused, setup, teardown),
                cmocka_unit_test(test_validate),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
