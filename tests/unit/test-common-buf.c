/* Unit tests for the bounded buffer. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void test_append_within_cap(void **state)
{
        _cleanup_buf_ struct ck_buf b;

        ck_buf_init(&b, 8);
        assert_int_equal(ck_buf_append(&b, "abcd", 4), 0);
        assert_int_equal(ck_buf_append_str(&b, "efgh"), 0);
        assert_int_equal(b.len, 8);
        assert_string_equal((char *)b.data, "abcdefgh");
}

static void test_append_over_cap_leaves_buffer(void **state)
{
        _cleanup_buf_ struct ck_buf b;

        ck_buf_init(&b, 5);
        assert_int_equal(ck_buf_append(&b, "abc", 3), 0);
        assert_int_equal(ck_buf_append(&b, "def", 3), -E2BIG);
        assert_int_equal(b.len, 3);
        assert_string_equal((char *)b.data, "abc");
        assert_int_equal(ck_buf_printf(&b, "%s", "xyz"), -E2BIG);
        assert_int_equal(ck_buf_append(&b, "", SIZE_MAX), -E2BIG);
}

static void test_printf_and_take(void **state)
{
        struct ck_buf b;
        size_t n = 0;
        uint8_t *d;

        ck_buf_init(&b, 100);
        assert_int_equal(ck_buf_printf(&b, "%d-%s", 42, "x"), 0);
        d = ck_buf_take(&b, &n);
        assert_int_equal(n, 4);
        assert_string_equal((char *)d, "42-x");
        assert_null(b.data);
        assert_int_equal(b.max, 100);
        free(d);
}

static void test_growth(void **state)
{
        _cleanup_buf_ struct ck_buf b;

        ck_buf_init(&b, 1 << 20);
        for (int i = 0; i < 10000; i++)
                assert_int_equal(ck_buf_append(&b, "0123456789", 10), 0);
        assert_int_equal(b.len, 100000);
        assert_int_equal(b.data[99999], '9');
        assert_int_equal(b.data[100000], 0);
        ck_buf_reset(&b);
        assert_int_equal(b.len, 0);
}

/* A secret buffer grows without losing data and stays a secret buffer after take/free. */
static void test_secret_growth(void **state)
{
        struct ck_buf b;
        uint8_t chunk[100], *d;
        size_t n = 0;

        ck_buf_init_secret(&b, 100000);
        for (size_t i = 0; i < 500; i++) {
                memset(chunk, (int)(i & 0xff), sizeof(chunk));
                assert_int_equal(ck_buf_append(&b, chunk, sizeof(chunk)), 0);
        }
        assert_int_equal(b.len, 50000);
        for (size_t i = 0; i < 500; i++)
                assert_int_equal(b.data[i * 100 + 99], i & 0xff);
        assert_int_equal(b.data[b.len], 0);
        d = ck_buf_take(&b, &n);
        assert_int_equal(n, 50000);
        free(d);
        assert_true(b.wipe);
        assert_int_equal(ck_buf_append(&b, "x", 1), 0);
        ck_buf_free(&b);
        assert_true(b.wipe);
        assert_null(b.data);
        d = calloc(1, 100000);
        assert_non_null(d);
        assert_int_equal(ck_buf_append(&b, d, 100000), 0);
        assert_int_equal(ck_buf_append(&b, chunk, 1), -E2BIG);
        free(d);
        ck_buf_free(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_append_within_cap),
                cmocka_unit_test(test_append_over_cap_leaves_buffer),
                cmocka_unit_test(test_printf_and_take),
                cmocka_unit_test(test_growth),
                cmocka_unit_test(test_secret_growth),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
