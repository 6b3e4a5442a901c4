/* Private keys loaded from PEM files: the key round-trips, anything else is refused. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "ssl.h"

static char tmpdir[64];

static int setup(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-ssl-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

static void write_key(int dfd, const char *name, EVP_PKEY *key)
{
        _cleanup_(BIO_free_allp) BIO *b = BIO_new(BIO_s_mem());
        char *p = NULL;
        long n;

        assert_non_null(b);
        assert_int_equal(PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL), 1);
        n = BIO_get_mem_data(b, &p);
        assert_true(n > 0);
        assert_int_equal(ck_write_file_atomic(dfd, name, p, (size_t)n, 0600, NULL), 0);
}

static void test_key_load(void **state)
{
        _cleanup_close_ int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256"), *got = NULL;
        _cleanup_error_ struct ck_error *e = NULL;

        assert_non_null(key);
        write_key(dfd, "key.pem", key);
        assert_int_equal(ck_ssl_key_load_at(dfd, "key.pem", &got, NULL), 0);
        assert_int_equal(EVP_PKEY_eq(key, got), 1);

        assert_int_equal(ck_write_file_atomic(dfd, "junk.pem", "not a key\n", 10, 0600, NULL), 0);
        assert_int_equal(ck_ssl_key_load_at(dfd, "junk.pem", &got, &e), -EBADMSG);
        assert_non_null(strstr(e->msg, "junk.pem"));
        ck_error_free(TAKE_PTR(e));
        assert_int_equal(ck_ssl_key_load_at(dfd, "missing.pem", &got, &e), -ENOENT);
        ck_error_free(TAKE_PTR(e));
        assert_int_equal(mkfifoat(dfd, "fifo.pem", 0600), 0);
        assert_int_equal(ck_ssl_key_load_at(dfd, "fifo.pem", &got, &e), -EINVAL);
        ck_error_free(TAKE_PTR(e));
        /* Empty, and past the 64 KiB a key file may hold: refused before parsing, by size. */
        assert_int_equal(ck_write_file_atomic(dfd, "empty.pem", "", 0, 0600, NULL), 0);
        assert_int_equal(ck_ssl_key_load_at(dfd, "empty.pem", &got, &e), -EBADMSG);
        assert_non_null(strstr(e->msg, "size 0"));
        ck_error_free(TAKE_PTR(e));
        {
                _cleanup_free_ char *big = malloc((64u << 10) + 1);
                assert_non_null(big);
                memset(big, '\n', (64u << 10) + 1);
                assert_int_equal(ck_write_file_atomic(dfd, "big.pem", big, (64u << 10) + 1, 0600, NULL), 0);
                assert_int_equal(ck_ssl_key_load_at(dfd, "big.pem", &got, &e), -EFBIG);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_key_load, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
