/* The state disk's integrity failures in the kernel log: the record parser with the lines the
 * kernel prints (dm-crypt with and without the device name, dm-integrity), other devices,
 * userspace lines and malformed records; and the reader over the host's real /dev/kmsg (when
 * readable), which must find no failure of a device that does not exist. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "integrity-log.h"

static char *devs[] = {(char *)"dm-1", (char *)"conker-state", (char *)"dm-0", NULL};

static bool is(const char *rec)
{
        return conkerd_kmsg_is_integrity_failure(rec, strlen(rec), devs);
}

static void test_failures(void **state)
{
        assert_true(
                is("3,1234,5678901,-;device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR, sector 1687560\n"));
        assert_true(is("3,1234,5678901,-;device-mapper: crypt: dm-1: INTEGRITY AEAD ERROR, sector 8\n"
                       " SUBSYSTEM=block\n DEVICE=b254:1\n"));
        assert_true(
                is("3,7,1,-,caller=T12;device-mapper: crypt: conker-state: INTEGRITY AEAD ERROR, sector 8"));
        /* Older kernels name no device. */
        assert_true(is("3,9,10,-;device-mapper: crypt: INTEGRITY AEAD ERROR, sector 81920\n"));
        assert_true(is("3,9,10,c;device-mapper: integrity: dm-0: Checksum failed at sector 0x1a8\n"));
        /* As Debian's 7.3 kernel prints it (another file's pr_fmt in front), seen in the TD. */
        assert_true(is("3,812,85927573,-;trusted_key: device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR, "
                       "sector 272472\n"));
}

static void test_not_failures(void **state)
{
        /* Another volume's failure. */
        assert_false(is("3,1,2,-;device-mapper: crypt: dm-7: INTEGRITY AEAD ERROR, sector 8\n"));
        assert_false(is("3,1,2,-;device-mapper: crypt: dm-10: INTEGRITY AEAD ERROR, sector 8\n"));
        /* A name that only starts like ours. */
        assert_false(is("3,1,2,-;device-mapper: crypt: dm-0x: INTEGRITY AEAD ERROR, sector 8\n"));
        /* A process that wrote to /dev/kmsg (facility user). */
        assert_false(is("12,1,2,-;device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR, sector 8\n"));
        /* Other kernel lines, the words elsewhere, malformed records. */
        assert_false(is("3,1,2,-;Buffer I/O error on dev dm-1, logical block 43872, async page read\n"));
        assert_false(is("6,1,2,-;EXT4-fs (dm-1): INTEGRITY AEAD ERROR\n"));
        assert_false(is("3,1,2,-;\n device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR\n"));
        assert_false(is("3,1,2,-;a: b: device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR, sector 8\n"));
        assert_false(is("3,1,2,-;Some Thing: device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR, sector 8\n"));
        assert_false(is("3,1,2,-;: device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR, sector 8\n"));
        assert_false(is("device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR, sector 8"));
        assert_false(is("13,1,2,-;device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR, sector 8"));
        assert_false(is("x,1,2,-;device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR, sector 8"));
        assert_false(is("3,1,2,-;device-mapper: crypt: dm-0: INTEGRITY AEAD ERRO"));
        assert_false(is("3,1,2,-;device-mapper: crypt: dm-0:"));
        assert_false(is("3;"));
        assert_false(is(""));
        assert_false(conkerd_kmsg_is_integrity_failure(NULL, 0, devs));
        /* Without device names only the nameless form counts. */
        assert_false(conkerd_kmsg_is_integrity_failure(
                "3,1,2,-;device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR, sector 8", 66, NULL));
        /* Bounded: the length given, not the terminator. */
        assert_false(conkerd_kmsg_is_integrity_failure(
                "3,1,2,-;device-mapper: crypt: dm-0: INTEGRITY AEAD ERROR, sector 8", 50, devs));
}

static void test_real_kmsg(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        char *none[] = {(char *)"ck-test-no-such-device", NULL};
        struct conkerd_integrity_log *l = NULL;
        uint64_t n = 1;
        int r;

        r = conkerd_integrity_log_open("/dev/kmsg", none, &l, &e);
        if (r == -EACCES || r == -EPERM || r == -ENOENT) {
                print_message("skipped: /dev/kmsg is not readable here (%s)\n", ck_error_message(e, r));
                skip();
        }
        assert_int_equal(r, 0);
        assert_int_equal(conkerd_integrity_log_count(l, &n, &e), 0);
        assert_int_equal(n, 0);
        assert_int_equal(conkerd_integrity_log_count(l, &n, &e), 0);
        assert_int_equal(n, 0);
        conkerd_integrity_log_free(l);

        assert_int_equal(conkerd_integrity_log_open("/nonexistent/kmsg", none, &l, &e), -ENOENT);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_failures),
                cmocka_unit_test(test_not_failures),
                cmocka_unit_test(test_real_kmsg),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
