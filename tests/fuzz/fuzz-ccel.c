/* Fuzz target: CCEL (TCG2 crypto-agile event log) replay. */
#include <stddef.h>
#include <stdint.h>

#include "eventlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct ck_error *e = NULL;
        struct attest_rtmrs rt;
        size_t n = 0;

        (void)attest_ccel_replay(data, size, &rt, &n, &e);
        ck_error_free(e);
        return 0;
}
