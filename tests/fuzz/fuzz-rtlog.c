/* Fuzz target: RTMR3 runtime event log parsing and replay. */
#include <stddef.h>
#include <stdint.h>

#include "eventlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct attest_rt_log log = {0};
        struct ck_error *e = NULL;
        uint8_t r3[48];

        if (attest_rt_log_parse(data, size, &log, &e) == 0) {
                (void)attest_rt_log_replay(&log, r3);
                attest_rt_log_clear(&log);
        }
        ck_error_free(e);
        return 0;
}
