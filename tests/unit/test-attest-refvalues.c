/* Unit tests for reference values: strict parsing and exact comparison. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "refvalues.h"

#define HEX96(c)                                                                                            \
        c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

static int parse(const char *doc, struct attest_refvalues *rv, char *msg, size_t msglen)
{
        struct ck_error *e = NULL;
        int r = attest_refvalues_parse((const uint8_t *)doc, strlen(doc), rv, &e);

        if (msg)
                snprintf(msg, msglen, "%s", ck_error_message(e, r));
        ck_error_free(e);
        return r;
}

static void test_parse_and_check(void **state)
{
        struct attest_refvalues rv;
        struct attest_measurements m;
        const char *doc = "{\"mrtd\":\"" HEX96("aB") "\",\"rtmr1\":\"" HEX96("01") "\",\"source\":\"test\"}";

        (void)state;
        assert_int_equal(parse(doc, &rv, NULL, 0), 0);
        assert_true(rv.has_mrtd);
        assert_false(rv.has_rtmr[0]);
        assert_true(rv.has_rtmr[1]);
        assert_false(rv.has_rtmr[2]);
        assert_int_equal(rv.mrtd[0], 0xab);
        assert_int_equal(rv.rtmr[1][47], 0x01);

        memset(&m, 0, sizeof(m));
        memset(m.mr_td, 0xab, 48);
        memset(m.rtmr[1], 0x01, 48);
        memset(m.rtmr[0], 0x77, 48); /* not pinned: any value */
        assert_null(attest_refvalues_check(&rv, &m));
        m.mr_td[47] ^= 1; /* the last byte counts: no prefix matching */
        assert_string_equal(attest_refvalues_check(&rv, &m), "mrtd_mismatch");
        m.mr_td[47] ^= 1;
        m.rtmr[1][0] ^= 0x80;
        assert_string_equal(attest_refvalues_check(&rv, &m), "rtmr1_mismatch");
}

static void test_rejects(void **state)
{
        struct attest_refvalues rv;
        char msg[256];

        (void)state;
        assert_int_equal(parse("{}", &rv, msg, sizeof(msg)), -EINVAL);
        assert_non_null(strstr(msg, "no value"));
        assert_int_equal(parse("{\"mrtd\":\"abcd\"}", &rv, msg, sizeof(msg)), -EINVAL);
        assert_non_null(strstr(msg, "96 hex"));
        assert_int_equal(parse("{\"rtmr2\":\"" HEX96("zz") "\"}", &rv, msg, sizeof(msg)), -EINVAL);
        assert_non_null(strstr(msg, "not hexadecimal"));
        assert_int_equal(parse("{\"rtmr3\":\"" HEX96("00") "\"}", &rv, msg, sizeof(msg)), -EINVAL);
        assert_non_null(strstr(msg, "unknown key"));
        assert_int_equal(parse("{\"mrtd\":12}", &rv, msg, sizeof(msg)), -EINVAL);
        assert_int_equal(parse("[\"" HEX96("00") "\"]", &rv, msg, sizeof(msg)), -EINVAL);
        assert_int_equal(
                parse("{\"mrtd\":\"" HEX96("00") "\",\"mrtd\":\"" HEX96("11") "\"}", &rv, msg, sizeof(msg)),
                -EBADMSG);
        assert_int_equal(parse("{\"mrtd\":\"" HEX96("00") "\"} trailing", &rv, msg, sizeof(msg)), -EBADMSG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_and_check),
                cmocka_unit_test(test_rejects),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
