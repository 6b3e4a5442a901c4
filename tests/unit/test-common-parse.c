/* Unit tests for the cursor, hex and number parsers. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

static void test_cursor_bounds(void **state)
{
        const uint8_t data[] = {1, 2, 3, 4, 5, 6, 7};
        struct ck_cursor c = ck_cursor_make(data, sizeof(data));

        assert_int_equal(ck_cursor_u16le(&c), 0x0201);
        assert_int_equal(ck_cursor_u32le(&c), 0x06050403);
        assert_int_equal(ck_cursor_left(&c), 1);
        assert_int_equal(ck_cursor_u16le(&c), 0); /* only one byte left */
        assert_int_equal(c.err, -EBADMSG);
        assert_int_equal(c.off, 6);         /* a failed read does not move */
        assert_null(ck_cursor_take(&c, 1)); /* the first failure sticks */
}

static void test_cursor_u64(void **state)
{
        const uint8_t data[] = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
        struct ck_cursor c = ck_cursor_make(data, sizeof(data));

        assert_true(ck_cursor_u64le(&c) == 0x1122334455667788ULL);
        assert_int_equal(c.err, 0);
        assert_null(ck_cursor_take(&c, SIZE_MAX));
}

static void test_hex(void **state)
{
        uint8_t out[3];
        char s[7];
        uint8_t *d = NULL;
        size_t n = 0;

        assert_int_equal(ck_hex_decode("00aBff", 6, out, 3), 0);
        assert_memory_equal(out, "\x00\xab\xff", 3);
        ck_hex_encode(out, 3, s);
        assert_string_equal(s, "00abff");
        assert_int_equal(ck_hex_decode("00aBf", 5, out, 3), -EINVAL);
        assert_int_equal(ck_hex_decode("00aBfg", 6, out, 3), -EINVAL);
        assert_int_equal(ck_hex_decode("00aBfG", 6, out, 3), -EINVAL);
        /* A pin longer than the digest it stands for is not cut down to its first bytes. */
        assert_int_equal(ck_hex_decode("00aBff00", 8, out, 3), -EINVAL);
        assert_int_equal(ck_hex_decode_alloc(" 0x0102\n", 8, 16, &d, &n), 0);
        assert_int_equal(n, 2);
        assert_memory_equal(d, "\x01\x02", 2);
        free(d);
        assert_int_equal(ck_hex_decode_alloc("010203", 6, 2, &d, &n), -E2BIG);
        assert_int_equal(ck_hex_decode_alloc("0102", 4, 2, &d, &n), 0); /* exactly the cap */
        assert_int_equal(n, 2);
        free(d);
        assert_int_equal(ck_hex_decode_alloc("012", 3, 2, &d, &n), -EINVAL);
}

static void test_numbers(void **state)
{
        uint64_t v = 0;

        assert_int_equal(ck_parse_uint("65534", 65535, &v), 0);
        assert_int_equal(v, 65534);
        assert_int_equal(ck_parse_uint("65536", 65535, &v), -ERANGE);
        assert_int_equal(ck_parse_uint("", 10, &v), -EINVAL);
        assert_int_equal(ck_parse_uint("-1", 10, &v), -EINVAL);
        assert_int_equal(ck_parse_uint(" 1", 10, &v), -EINVAL);
        assert_int_equal(ck_parse_uint("1x", 10, &v), -EINVAL);
        assert_int_equal(ck_parse_uint("18446744073709551615", UINT64_MAX, &v), 0);
        assert_true(v == UINT64_MAX);
        assert_int_equal(ck_parse_uint("18446744073709551616", UINT64_MAX, &v), -ERANGE);
        /* At most 20 digits, even when leading zeros keep the value small. */
        assert_int_equal(ck_parse_uint("00000000000000000001", 10, &v), 0);
        assert_int_equal(ck_parse_uint("000000000000000000001", 10, &v), -EINVAL);
        assert_true(ck_is_printable("abc def", 7));
        assert_false(ck_is_printable("abc\n", 4));
        assert_false(ck_is_printable("abc\x7f", 4)); /* DEL */
        assert_false(ck_is_printable("a\0c", 3));
}

static void test_strndup_utf8(void **state)
{
        /* "aé€" is 1 + 2 + 3 bytes. */
        const char *s = "a\xc3\xa9\xe2\x82\xac";
        const struct {
                size_t max;
                const char *want;
        } cases[] = {
                {0, ""},          {1, "a"}, {2, "a"}, {3, "a\xc3\xa9"}, {4, "a\xc3\xa9"},
                {5, "a\xc3\xa9"}, {6, s},   {7, s},   {100, s},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *t = ck_strndup_utf8(s, cases[i].max);
                assert_non_null(t);
                assert_string_equal(t, cases[i].want);
                free(t);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cursor_bounds), cmocka_unit_test(test_cursor_u64),
                cmocka_unit_test(test_hex),           cmocka_unit_test(test_numbers),
                cmocka_unit_test(test_strndup_utf8),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
