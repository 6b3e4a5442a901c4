/* Unit tests for the broker's request check (the one request form it accepts, with limits) and
 * for the client's endpoint syntax. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "server.h"

static struct broker_request last;

static int check(const char *s)
{
        return broker_request_parse((const uint8_t *)s, strlen(s), BROKER_REQUEST_MAX_BYTES, 1000, &last);
}

static void test_request_accepted(void **state)
{
        assert_int_equal(check("GET /v1/secret HTTP/1.1\r\n\r\n"), 0);
        assert_false(last.post);
        assert_int_equal(check("GET /v1/secret HTTP/1.1\r\nHost: 127.0.0.1:3333\r\nAccept: */*\r\n"
                               "Content-Length: 0\r\nX-Empty:\r\n\r\n"),
                         0);
        assert_int_equal(check("POST /v1/secret HTTP/1.1\r\nHost: b\r\nContent-Type: application/cbor\r\n"
                               "Content-Length: 1000\r\n\r\n"),
                         0);
        assert_true(last.post);
        assert_int_equal(last.content_length, 1000);
        assert_int_equal(check("POST /v1/secret HTTP/1.1\r\ncontent-length:  7 \r\ncontent-type: "
                               "Application/CBOR\r\n\r\n"),
                         0);
        assert_int_equal(last.content_length, 7);
}

static void test_request_rejected(void **state)
{
        const char *bad[] = {
                "",
                "GET /v1/secret HTTP/1.1\r\n",
                "GET /v1/secret HTTP/1.1\r\n\r\nextra",
                "GET /v1/secret HTTP/1.0\r\n\r\n",
                "GET /v1/secret/ HTTP/1.1\r\n\r\n",
                "GET /v1/secretx HTTP/1.1\r\n\r\n",
                "POST /v1/secret HTTP/1.1\r\n\r\n",
                "POST /v1/secret HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
                "POST /v1/secret HTTP/1.1\r\nContent-Type: application/cbor\r\n\r\n",
                "POST /v1/secret HTTP/1.1\r\nContent-Type: application/cbor\r\nContent-Length: 0\r\n\r\n",
                "POST /v1/secret HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n",
                "POST /v1/secret HTTP/1.1\r\nContent-Type: application/cbor\r\nContent-Length: 5\r\n"
                "Content-Length: 5\r\n\r\n",
                "POST /v1/secret HTTP/1.1\r\nContent-Type: application/cbor\r\nContent-Length: 05\r\n\r\n",
                "POST /v1/secret HTTP/1.1\r\nContent-Type: application/cbor\r\nContent-Length: +5\r\n\r\n",
                "POST /v1/secret HTTP/1.1\r\nContent-Type: application/cbor\r\nContent-Length: "
                "5\r\n\r\nhello",
                "POST /v1/secret HTTP/1.1\r\nContent-Type: application/cbor\r\nTransfer-Encoding: "
                "chunked\r\n\r\n",
                "get /v1/secret HTTP/1.1\r\n\r\n",
                "GET  /v1/secret HTTP/1.1\r\n\r\n",
                "GET /v1/secret HTTP/1.1\n\n",
                "GET /v1/secret HTTP/1.1\r\nNoColon\r\n\r\n",
                "GET /v1/secret HTTP/1.1\r\n: value\r\n\r\n",
                "GET /v1/secret HTTP/1.1\r\nBad Name: v\r\n\r\n",
                "GET /v1/secret HTTP/1.1\r\nX: a\x01z\r\n\r\n",
                "GET /v1/secret HTTP/1.1\r\nX: a\rz\r\n\r\n",
                "GET /v1/secret HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "GET /v1/secret HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello",
                "GET /v1/secret HTTP/1.1\r\nContent-Length: 00\r\n\r\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (check(bad[i]) != -EBADMSG)
                        fail_msg("request %zu was not rejected as malformed", i);
}

static void test_request_limits(void **state)
{
        char buf[BROKER_REQUEST_MAX_BYTES + 64];
        size_t off;

        off = (size_t)snprintf(buf, sizeof(buf), "GET /v1/secret HTTP/1.1\r\n");
        for (unsigned i = 0; i <= BROKER_REQUEST_MAX_HEADERS; i++)
                off += (size_t)snprintf(buf + off, sizeof(buf) - off, "X-%u: v\r\n", i);
        snprintf(buf + off, sizeof(buf) - off, "\r\n");
        assert_int_equal(check(buf), -E2BIG);
        assert_int_equal(broker_request_parse((const uint8_t *)"GET /v1/secret HTTP/1.1\r\n\r\n", 27, 26,
                                              1000, &last),
                         -E2BIG);
        /* The body bound is separate from the head's. */
        assert_int_equal(check("POST /v1/secret HTTP/1.1\r\nContent-Type: application/cbor\r\n"
                               "Content-Length: 1001\r\n\r\n"),
                         -EFBIG);
        assert_int_equal(check("POST /v1/secret HTTP/1.1\r\nContent-Type: application/cbor\r\n"
                               "Content-Length: 99999999999999999999999\r\n\r\n"),
                         -EBADMSG);
}

static void test_endpoint_parse(void **state)
{
        struct broker_endpoint e;
        _cleanup_error_ struct ck_error *err = NULL;
        const char *pin = "sha256:00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        char s[160];

        assert_int_equal(broker_endpoint_parse("127.0.0.1:3333", &e, NULL), 0);
        assert_string_equal(e.host, "127.0.0.1");
        assert_int_equal(e.port, 3333);
        assert_false(e.has_pin);

        snprintf(s, sizeof(s), "kms.example.com:443#%s", pin);
        assert_int_equal(broker_endpoint_parse(s, &e, NULL), 0);
        assert_string_equal(e.host, "kms.example.com");
        assert_true(e.has_pin);
        assert_int_equal(e.pin[0], 0x00);
        assert_int_equal(e.pin[31], 0xff);

        assert_int_equal(broker_endpoint_parse("[::1]:3333", &e, NULL), 0);
        assert_string_equal(e.host, "::1");

        const char *bad[] = {
                "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",   "127.0.0.1:65536",
                ":3333",     "a b:1",      "h:1#sha256:00", "h:1#md5:00112233445566778899aabbccddeeff",
                "[::1]3333", "h/x:1",      "h:1x",          "h:+1"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (broker_endpoint_parse(bad[i], &e, NULL) != -EINVAL)
                        fail_msg("endpoint \"%s\" was accepted", bad[i]);
        /* The pin is exactly 64 hex digits: nothing may follow it. */
        snprintf(s, sizeof(s), "h:1#%s0", pin);
        assert_int_equal(broker_endpoint_parse(s, &e, NULL), -EINVAL);
        snprintf(s, sizeof(s), "h:1#%s#x", pin);
        assert_int_equal(broker_endpoint_parse(s, &e, NULL), -EINVAL);
        assert_int_equal(broker_endpoint_parse("h:1#sha256:zz", &e, &err), -EINVAL);
        assert_non_null(strstr(err->msg, "pin"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_request_accepted),
                cmocka_unit_test(test_request_rejected),
                cmocka_unit_test(test_request_limits),
                cmocka_unit_test(test_endpoint_parse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
