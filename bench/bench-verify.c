/* bench-verify: quote verifications per second on one thread, with the collateral loaded once
 * (as a verifier service holds it), so that every iteration after the first does the per-quote
 * work only: parse, cached PCK chain lookup, QE report signature, QE binding and identity, quote
 * signature, TCB level matching.
 *
 * usage: bench-verify QUOTE COLLATERAL.json UNIXTIME [SECONDS]
 * Runs for SECONDS of CPU time and prints "verifications_per_second <n>" (per CPU second). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "collateral.h"
#include "error.h"
#include "parse.h"
#include "quote.h"
#include "verify.h"

/* CPU time of this process (user + system), not wall-clock time: `openssl speed`, which
 * bench/verify.sh compares against, divides by user CPU time too, so both numbers stay
 * comparable on a loaded machine. Including system time makes ours the conservative one. */
static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ uint8_t *quote = NULL;
        _cleanup_(attest_collateral_freep) struct attest_collateral *col = NULL;
        struct attest_verify_opts opts = {};
        uint64_t t = 0, secs = 3, n = 0;
        size_t len = 0;
        double start, elapsed;
        int r;

        if (argc < 4 || argc > 5 || ck_parse_uint(argv[3], INT64_MAX, &t) < 0 ||
            (argc == 5 && ck_parse_uint(argv[4], 3600, &secs) < 0)) {
                fprintf(stderr, "usage: bench-verify QUOTE COLLATERAL.json UNIXTIME [SECONDS]\n");
                return 2;
        }
        opts.now = (time_t)t;
        r = attest_quote_read_file(argv[1], &quote, &len, &err);
        if (r >= 0)
                r = attest_collateral_load_file(argv[2], &col, &err);
        if (r < 0) {
                fprintf(stderr, "bench-verify: %s\n", ck_error_message(err, r));
                return 1;
        }
        start = now_s();
        do {
                /* batches of 64 to keep the clock out of the loop */
                for (int i = 0; i < 64; i++) {
                        struct attest_result *res = NULL;

                        r = attest_verify_quote(quote, len, col, &opts, &res, &err);
                        if (r < 0) {
                                fprintf(stderr, "bench-verify: %s\n", ck_error_message(err, r));
                                return 1;
                        }
                        attest_result_free(res);
                        n++;
                }
                elapsed = now_s() - start;
        } while (elapsed < (double)secs);
        printf("verifications_per_second %.0f\n", (double)n / elapsed);
        return 0;
}
