/* Unit tests for error objects and the secret type. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <string.h>

#include "error.h"
#include "secret.h"

static int inner(struct ck_error **reterr)
{
        return ck_error_set(reterr, -EBADMSG, "layer %d: digest mismatch", 3);
}

static int outer(struct ck_error **reterr)
{
        int r = inner(reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "pulling %s", "busybox");
        return 0;
}

static void test_context_chain(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;

        assert_int_equal(outer(&e), -EBADMSG);
        assert_non_null(e);
        assert_int_equal(e->code, -EBADMSG);
        assert_string_equal(e->msg, "pulling busybox: layer 3: digest mismatch");
}

static void test_first_error_wins_and_null_ok(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;

        assert_int_equal(outer(NULL), -EBADMSG);
        assert_int_equal(ck_error_set(&e, -ENOENT, "first"), -ENOENT);
        assert_int_equal(ck_error_set(&e, -EIO, "second"), -EIO);
        assert_string_equal(e->msg, "first");
        assert_string_equal(ck_error_message(NULL, -ENOENT), strerror(ENOENT));
}

static void test_errno_suffix(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;

        ck_error_errno(&e, -EACCES, "cannot open %s", "/x");
        assert_string_equal(e->msg, "cannot open /x: Permission denied");
}

static void test_secret(void **state)
{
        _cleanup_secret_ struct ck_secret *s = ck_secret_new("hunter2", 7);
        _cleanup_secret_ struct ck_secret *r = NULL;

        assert_true(ck_secret_equal(s, "hunter2", 7));
        assert_false(ck_secret_equal(s, "hunter3", 7));
        assert_false(ck_secret_equal(s, "hunter", 6));
        assert_int_equal(ck_secret_random(32, &r), 0);
        assert_int_equal(r->len, 32);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_context_chain),
                cmocka_unit_test(test_first_error_wins_and_null_ok),
                cmocka_unit_test(test_errno_suffix),
                cmocka_unit_test(test_secret),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
