/* Unit tests for the RTMR3 runtime log: digest encoding, parsing limits, replay. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventlog.h"
#include "parse.h"
#include "ssl.h"

static void test_digest_is_domain_separated(void **state)
{
        uint8_t a[48], b[48], want[48];
        const char enc[] = "conker/rtmr3/v1\0image-digest\0sha256:00";

        assert_int_equal(attest_rt_event_digest("image-digest", "sha256:00", a), 0);
        assert_int_equal(ck_sha384(enc, sizeof(enc) - 1, want), 0);
        assert_memory_equal(a, want, 48);
        /* Moving a byte between name and payload changes the digest. */
        assert_int_equal(attest_rt_event_digest("image-digest.", "sha256:00", b), 0);
        assert_memory_not_equal(a, b, 48);
        assert_int_equal(attest_rt_event_digest("Image", "x", b), -EINVAL);
        assert_int_equal(attest_rt_event_digest("", "x", b), -EINVAL);
        assert_int_equal(attest_rt_event_digest("a", "line\nbreak", b), -EINVAL);
}

static char *make_log(unsigned n)
{
        size_t cap = (size_t)n * 256 + 1, len = 0;
        char *buf = calloc(1, cap);

        assert_non_null(buf);
        for (unsigned i = 0; i < n; i++) {
                _cleanup_free_ char *line = NULL;
                char payload[96];
                uint8_t d[48];
                snprintf(payload, sizeof(payload), "sha256:%064u", i);
                assert_int_equal(attest_rt_event_digest("image-digest", payload, d), 0);
                assert_int_equal(attest_rt_event_format("image-digest", payload, d, &line), 0);
                memcpy(buf + len, line, strlen(line));
                len += strlen(line);
        }
        return buf;
}

static void test_parse_and_replay(void **state)
{
        _cleanup_free_ char *text = make_log(3);
        struct attest_rt_log log = {0};
        uint8_t r3[48], want[48] = {0}, buf[96];

        assert_int_equal(attest_rt_log_parse((const uint8_t *)text, strlen(text), &log, NULL), 0);
        assert_int_equal(log.n, 3);
        assert_string_equal(log.events[1].name, "image-digest");
        assert_int_equal(attest_rt_log_replay(&log, r3), 0);
        for (size_t i = 0; i < log.n; i++) {
                memcpy(buf, want, 48);
                memcpy(buf + 48, log.events[i].digest, 48);
                assert_int_equal(ck_sha384(buf, 96, want), 0);
        }
        assert_memory_equal(r3, want, 48);
        attest_rt_log_clear(&log);

        /* Empty log: zero events, RTMR3 stays zero. */
        assert_int_equal(attest_rt_log_parse((const uint8_t *)"", 0, &log, NULL), 0);
        assert_int_equal(log.n, 0);
        assert_int_equal(attest_rt_log_replay(&log, r3), 0);
        memset(want, 0, 48);
        assert_memory_equal(r3, want, 48);
}

static void expect_reject(const char *text)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_rt_log log = {0};

        assert_true(attest_rt_log_parse((const uint8_t *)text, strlen(text), &log, &e) < 0);
        assert_non_null(e);
        assert_int_equal(log.n, 0);
}

static void test_parse_rejects(void **state)
{
        _cleanup_free_ char *text = make_log(2);
        char *p, saved;

        /* A tampered digest. */
        p = strstr(text, "\"digest\":\"") + 10;
        saved = *p;
        *p = *p == '0' ? '1' : '0';
        expect_reject(text);
        *p = saved;
        /* A tampered payload. */
        p = strstr(text, "sha256:0");
        p[7] = '9';
        expect_reject(text);
        p[7] = '0';
        {
                struct attest_rt_log log = {0};
                assert_int_equal(attest_rt_log_parse((const uint8_t *)text, strlen(text), &log, NULL), 0);
                attest_rt_log_clear(&log);
        }
        /* Unterminated last line. */
        text[strlen(text) - 1] = 0;
        expect_reject(text);
        expect_reject("\n");
        expect_reject("{}\n");
        expect_reject("[1]\n");
        expect_reject("{\"name\":\"a\",\"payload\":\"b\"}\n");
        expect_reject("{\"name\":\"a\",\"payload\":\"b\",\"digest\":\"00\",\"x\":1}\n");
        expect_reject("{\"name\":\"a\",\"name\":\"a\",\"payload\":\"b\"}\n");
        expect_reject("{\"name\":\"a\\u0000b\",\"payload\":\"b\",\"digest\":\"00\"}\n");
}

/* A torn append (the last event without its newline) is refused as such, on an otherwise
 * intact log. */
static void test_parse_rejects_unterminated(void **state)
{
        _cleanup_free_ char *text = make_log(2);
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_rt_log log = {0};

        assert_int_equal(attest_rt_log_parse((const uint8_t *)text, strlen(text), &log, NULL), 0);
        attest_rt_log_clear(&log);
        text[strlen(text) - 1] = 0;
        assert_int_equal(attest_rt_log_parse((const uint8_t *)text, strlen(text), &log, &e), -EBADMSG);
        assert_non_null(strstr(e->msg, "line 2: no terminating newline"));
        assert_int_equal(log.n, 0);
}

static void test_parse_limits(void **state)
{
        _cleanup_free_ char *many = make_log(ATTEST_RT_LOG_MAX_EVENTS + 1);
        _cleanup_free_ char *ok = make_log(ATTEST_RT_LOG_MAX_EVENTS);
        struct attest_rt_log log = {0};

        /* Each line is ~190 bytes: 4097 lines pass the byte cap, so the event cap must hold. */
        assert_true(strlen(many) <= ATTEST_RT_LOG_MAX);
        assert_int_equal(attest_rt_log_parse((const uint8_t *)many, strlen(many), &log, NULL), -E2BIG);
        assert_int_equal(attest_rt_log_parse((const uint8_t *)ok, strlen(ok), &log, NULL), 0);
        assert_int_equal(log.n, ATTEST_RT_LOG_MAX_EVENTS);
        attest_rt_log_clear(&log);
        assert_int_equal(attest_rt_log_parse((const uint8_t *)ok, ATTEST_RT_LOG_MAX + 1, &log, NULL),
                         -EFBIG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_digest_is_domain_separated),
                cmocka_unit_test(test_parse_and_replay),
                cmocka_unit_test(test_parse_rejects),
                cmocka_unit_test(test_parse_rejects_unterminated),
                cmocka_unit_test(test_parse_limits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
