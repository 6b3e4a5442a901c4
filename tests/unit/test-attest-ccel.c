/* Unit tests for the CCEL replay: the go-tdx-guest vector replays to the RTMRs of its quote,
 * and malformed logs are rejected. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventlog.h"
#include "fs.h"
#include "parse.h"

static const char *rtmr_hex[3] = {
        "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6",
        "f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1",
        "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1",
};

static uint8_t *read_vector(const char *rel, size_t *len)
{
        const char *data = getenv("CONKER_TESTDATA");
        char path[512];
        uint8_t *d = NULL;

        if (!data)
                data = "tests/data";
        snprintf(path, sizeof(path), "%s/tdx/%s", data, rel);
        assert_int_equal(ck_read_file(path, 1 << 20, &d, len, NULL), 0);
        return d;
}

static void test_replay_vector(void **state)
{
        _cleanup_free_ uint8_t *log = NULL, *quote = NULL;
        struct attest_rtmrs rt;
        size_t len = 0, qlen = 0, events = 0;
        uint8_t want[48], zero[48] = {0};

        log = read_vector("go-tdx-guest/ccel/ccel_data.dat", &len);
        assert_int_equal(attest_ccel_replay(log, len, &rt, &events, NULL), 0);
        assert_int_equal(events, 16 + 7 + 20);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(ck_hex_decode(rtmr_hex[i], 96, want, 48), 0);
                assert_memory_equal(rt.rtmr[i], want, 48);
        }
        assert_memory_equal(rt.rtmr[3], zero, 48);

        /* The same values are in the quote of that TD (RTMR0 at 48+328). */
        quote = read_vector("go-tdx-guest/ccel/cos-113-tdx-quote.dat", &qlen);
        assert_true(qlen > 48 + 584);
        for (int i = 0; i < 4; i++)
                assert_memory_equal(quote + 48 + 328 + 48 * i, rt.rtmr[i], 48);
}

static void test_replay_rejects_damage(void **state)
{
        _cleanup_free_ uint8_t *log = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_rtmrs rt;
        size_t len = 0;

        log = read_vector("go-tdx-guest/ccel/ccel_data.dat", &len);
        /* Truncated in the middle of the events. */
        assert_int_equal(attest_ccel_replay(log, 9000, &rt, NULL, NULL), -EBADMSG);
        /* Garbage in the 0xFF fill. */
        log[len - 10] = 0;
        assert_int_equal(attest_ccel_replay(log, len, &rt, NULL, &e), -EBADMSG);
        assert_non_null(e);
        log[len - 10] = 0xFF;
        /* A broken Spec ID signature. */
        log[32] ^= 1;
        assert_int_equal(attest_ccel_replay(log, len, &rt, NULL, NULL), -EBADMSG);
        log[32] ^= 1;
        /* Too short for even the first header. */
        assert_int_equal(attest_ccel_replay(log, 10, &rt, NULL, NULL), -EBADMSG);
        assert_int_equal(attest_ccel_replay(log, len, &rt, NULL, NULL), 0);
}

/* An event that names MR index 0 (MRTD, which no event log extends) or 5 (past RTMR3) is
 * refused rather than replayed into a register that does not exist. */
static void test_replay_rejects_mr_index(void **state)
{
        static const uint32_t bad[] = {0, 5, 0x100};
        _cleanup_free_ uint8_t *log = NULL;
        struct attest_rtmrs rt;
        size_t len = 0, first;
        uint8_t keep[4];

        log = read_vector("go-tdx-guest/ccel/ccel_data.dat", &len);
        /* The first TCG_PCR_EVENT2 follows the legacy Spec ID event: 32 bytes of header and its
         * data, whose size is the header's last u32. Its type is not EV_NO_ACTION, so its MR
         * index counts. */
        first = 32 +
                ((size_t)log[28] | (size_t)log[29] << 8 | (size_t)log[30] << 16 | (size_t)log[31] << 24);
        assert_true(first + 12 < len);
        assert_int_equal(log[first + 4] | log[first + 5] << 8 | log[first + 6] << 16, 0x00000b);
        memcpy(keep, log + first, 4);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_error_ struct ck_error *e = NULL;

                for (int k = 0; k < 4; k++)
                        log[first + k] = (uint8_t)(bad[i] >> (8 * k));
                assert_int_equal(attest_ccel_replay(log, len, &rt, NULL, &e), -EBADMSG);
                assert_non_null(strstr(e->msg, "is not an RTMR"));
        }
        memcpy(log + first, keep, 4);
        assert_int_equal(attest_ccel_replay(log, len, &rt, NULL, NULL), 0);
}

static void test_replay_bit_flip_changes_result(void **state)
{
        _cleanup_free_ uint8_t *log = NULL;
        struct attest_rtmrs a, b;
        size_t len = 0;
        size_t changed = 0;

        log = read_vector("go-tdx-guest/ccel/ccel_data.dat", &len);
        assert_int_equal(attest_ccel_replay(log, len, &a, NULL, NULL), 0);
        /* Flip bits throughout the used part: every result is either an error or a replay. */
        for (size_t off = 0; off < 18101; off += 97) {
                log[off] ^= 0x40;
                if (attest_ccel_replay(log, len, &b, NULL, NULL) == 0 && memcmp(&a, &b, sizeof(a)) != 0)
                        changed++;
                log[off] ^= 0x40;
        }
        assert_true(changed > 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_replay_vector),
                cmocka_unit_test(test_replay_rejects_damage),
                cmocka_unit_test(test_replay_rejects_mr_index),
                cmocka_unit_test(test_replay_bit_flip_changes_result),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
