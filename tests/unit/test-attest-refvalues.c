/* Unit tests for reference values: the strict format (every value exactly 96 hex digits, no
 * unknown key, at least one value) and the comparison with measurements. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "refvalues.h"

#define H48A                                                                                                \
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define H48B                                                                                                \
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF"

static int parse(const char *s, struct attest_refvalues *rv)
{
        return attest_refvalues_parse((const uint8_t *)s, strlen(s), rv, NULL);
}

static void test_parse_all_values(void **state)
{
        struct attest_refvalues rv;

        assert_int_equal(parse("{\"mrtd\":\"" H48A "\",\"rtmr0\":\"" H48B "\",\"rtmr1\":\"" H48A
                               "\",\"rtmr2\":\"" H48B "\",\"source\":\"conker tdx predict\"}",
                               &rv),
                         0);
        assert_true(rv.has_mrtd);
        assert_true(rv.has_rtmr[0] && rv.has_rtmr[1] && rv.has_rtmr[2]);
        assert_int_equal(rv.mrtd[0], 0xaa);
        assert_int_equal(rv.rtmr[0][0], 0x01);
        assert_int_equal(rv.rtmr[0][47], 0xef); /* upper-case hex accepted */
}

static void test_parse_partial(void **state)
{
        struct attest_refvalues rv;

        assert_int_equal(parse("{\"mrtd\":\"" H48A "\"}", &rv), 0);
        assert_true(rv.has_mrtd);
        assert_false(rv.has_rtmr[0] || rv.has_rtmr[1] || rv.has_rtmr[2]);
}

static void test_parse_rejects(void **state)
{
        struct attest_refvalues rv = {0};
        struct ck_error *err = NULL;
        const char *bad[] = {
                "{}",
                "{\"source\":\"x\"}",
                "[]",
                "{\"mrtd\":\"" H48A "00\"}",                      /* too long */
                "{\"mrtd\":\"aaaa\"}",                            /* a prefix */
                "{\"mrtd\":\"" H48A "\",\"rtmr3\":\"" H48A "\"}", /* RTMR3 is not a reference value */
                "{\"mrdt\":\"" H48A "\"}",                        /* misspelt */
                "{\"mrtd\":42}",
                "{\"mrtd\":\"" H48A "\",\"source\":1}",
                "{\"mrtd\":\"" H48A "\",\"mrtd\":\"" H48A "\"}", /* duplicate */
                "{\"mrtd\":\"" H48A "\"} x",
                "{\"mrtd\":\""
                "g" H48A "\"}",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_true(parse(bad[i], &rv) < 0);
                assert_false(rv.has_mrtd); /* ret untouched on failure */
        }
        assert_int_equal(attest_refvalues_parse((const uint8_t *)"{\"mrtd\":\"aaaa\"}", 15, &rv, &err),
                         -EINVAL);
        assert_non_null(strstr(ck_error_message(err, -EINVAL), "96 hex digits"));
        ck_error_free(err);
}

static void test_check(void **state)
{
        struct attest_refvalues rv;
        struct attest_measurements m = {0};

        assert_int_equal(parse("{\"mrtd\":\"" H48A "\",\"rtmr1\":\"" H48B "\"}", &rv), 0);
        memcpy(m.mr_td, rv.mrtd, 48);
        memcpy(m.rtmr[1], rv.rtmr[1], 48);
        m.rtmr[0][0] = 7; /* not pinned: ignored */
        assert_null(attest_refvalues_check(&rv, &m));
        m.rtmr[1][47] ^= 1;
        assert_string_equal(attest_refvalues_check(&rv, &m), "rtmr1_mismatch");
        m.mr_td[0] ^= 1;
        assert_string_equal(attest_refvalues_check(&rv, &m), "mrtd_mismatch");
}

static void test_load(void **state)
{
        char path[] = "/tmp/test-refvalues-XXXXXX";
        const char doc[] = "{\"rtmr2\":\"" H48A "\"}";
        struct attest_refvalues rv;
        int fd = mkstemp(path);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, doc, sizeof(doc) - 1), (ssize_t)(sizeof(doc) - 1));
        close(fd);
        assert_int_equal(attest_refvalues_load(path, &rv, NULL), 0);
        assert_true(rv.has_rtmr[2]);
        assert_false(rv.has_mrtd);
        unlink(path);
        assert_true(attest_refvalues_load(path, &rv, NULL) < 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_all_values),
                cmocka_unit_test(test_parse_partial),
                cmocka_unit_test(test_parse_rejects),
                cmocka_unit_test(test_check),
                cmocka_unit_test(test_load),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
