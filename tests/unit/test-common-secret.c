/* Secret buffers and the wiping allocator hooks daemons give jansson and libevent. */
#include "cmocka-wrap.h"

#include <string.h>

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

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_secret_equal),
                cmocka_unit_test(test_realloc_wiped),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
