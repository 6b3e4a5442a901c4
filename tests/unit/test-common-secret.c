/* Secret buffers and the wiping allocator hooks daemons give jansson and libevent. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs.h"
#include "secret.h"

static void test_secret_equal(void **state)
{
        _cleanup_secret_ struct ck_secret *s = ck_secret_new("token", 5);

        assert_non_null(s);
        assert_true(ck_secret_equal(s, "token", 5));
        assert_false(ck_secret_equal(s, "toke", 4));
        assert_false(ck_secret_equal(s, "tokeN", 5));
        assert_false(ck_secret_equal(NULL, "", 0));
}

static void test_realloc_wiped(void **state)
{
        char *p = ck_realloc_wiped(NULL, 8);

        assert_non_null(p);
        memcpy(p, "abcdefgh", 8);
        p = ck_realloc_wiped(p, 4096);
        assert_non_null(p);
        assert_memory_equal(p, "abcdefgh", 8);
        p = ck_realloc_wiped(p, 3);
        assert_non_null(p);
        assert_memory_equal(p, "abc", 3);
        assert_null(ck_realloc_wiped(p, 0)); /* frees */
        ck_free_wiped(NULL);
}

/* A secret file is read whole, within its cap, and only when it is a regular file. */
static void test_file_read(void **state)
{
        char dir[] = "/tmp/ck-test-secret-XXXXXX";
        _cleanup_close_ int dfd = -1;
        uint8_t *buf = NULL;
        size_t len = 0;
        unsigned mode = 0;

        assert_non_null(mkdtemp(dir));
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        assert_int_equal(ck_write_file_atomic(dfd, "s.json", "{\"k\":1}", 7, 0600, NULL), 0);
        assert_int_equal(ck_secret_file_read_at(dfd, "s.json", 7, &buf, &len, &mode, NULL), 0);
        assert_int_equal(len, 7);
        assert_memory_equal(buf, "{\"k\":1}", 7);
        assert_int_equal(mode & 0777, 0600);
        ck_free_wiped(buf);
        assert_int_equal(ck_secret_file_read_at(dfd, "s.json", 6, &buf, &len, NULL, NULL), -EFBIG);
        assert_int_equal(ck_secret_file_read_at(dfd, "none", 6, &buf, &len, NULL, NULL), -ENOENT);
        assert_int_equal(mkfifoat(dfd, "fifo", 0600), 0);
        assert_int_equal(ck_secret_file_read_at(dfd, "fifo", 6, &buf, &len, NULL, NULL), -EINVAL);
        assert_int_equal(ck_rm_rf_at(AT_FDCWD, dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_secret_equal),
                cmocka_unit_test(test_realloc_wiped),
                cmocka_unit_test(test_file_read),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
