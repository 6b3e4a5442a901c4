/* Unit tests for the jansson glue: bounded loading, duplicate keys, errors that do not quote the
 * document, and the typed getters. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <string.h>

#include "json.h"

static json_t *load(const char *doc, struct ck_error **e)
{
        json_t *j = NULL;

        if (ck_json_loadb(doc, strlen(doc), 1024, &j, e) < 0)
                return NULL;
        return j;
}

static void test_load(void **state)
{
        _cleanup_error_ struct ck_error *e1 = NULL, *e2 = NULL, *e3 = NULL;
        _cleanup_json_ json_t *j = NULL;
        json_t *bad = NULL;
        char big[1100];

        j = load("{\"a\":1}", NULL);
        assert_non_null(j);
        /* Duplicate keys would let two readers see two documents. */
        assert_null(load("{\"a\":1,\"a\":2}", &e1));
        assert_non_null(strstr(e1->msg, "malformed JSON"));
        /* The error gives the position, never the token it stopped at (a password, say). */
        assert_null(load("{\"password\":\"hunter2", &e2));
        assert_null(strstr(e2->msg, "hunter2"));
        memset(big, ' ', sizeof(big));
        memcpy(big, "{}", 2);
        assert_int_equal(ck_json_loadb(big, sizeof(big), 1024, &bad, &e3), -E2BIG);
        assert_null(bad);
}

static void test_getters(void **state)
{
        _cleanup_error_ struct ck_error *e1 = NULL, *e2 = NULL, *e3 = NULL;
        _cleanup_json_ json_t *j =
                load("{\"s\":\"ok\",\"nul\":\"sha256:ab\\u0000cd\",\"n\":5,\"neg\":-1,\"b\":true}", NULL);
        const char *s = NULL;
        uint64_t n = 0;
        bool b = false;

        assert_non_null(j);
        assert_int_equal(ck_json_get_string(j, "s", &s, NULL), 0);
        assert_string_equal(s, "ok");
        assert_int_equal(ck_json_get_string(j, "missing", &s, NULL), -ENOENT);
        assert_int_equal(ck_json_get_string(j, "n", &s, &e1), -EINVAL);
        assert_non_null(strstr(e1->msg, "\"n\" must be a string"));
        /* As a C string it would read "sha256:ab": refused, not cut short. */
        s = NULL;
        assert_int_equal(ck_json_get_string(j, "nul", &s, &e2), -EINVAL);
        assert_non_null(strstr(e2->msg, "\"nul\" contains a NUL byte"));
        assert_null(s);
        assert_int_equal(ck_json_get_uint(j, "n", 5, &n, NULL), 0);
        assert_int_equal(n, 5);
        assert_int_equal(ck_json_get_uint(j, "n", 4, &n, NULL), -ERANGE);
        assert_int_equal(ck_json_get_uint(j, "neg", 100, &n, &e3), -ERANGE);
        assert_int_equal(ck_json_get_bool(j, "b", &b, NULL), 0);
        assert_true(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_load),
                cmocka_unit_test(test_getters),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
