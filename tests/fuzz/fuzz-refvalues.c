/* Fuzz target: the reference-values parser accepts or rejects any input without reading out of
 * bounds or leaking, and an accepted document has at least one value. */
#include <stddef.h>
#include <stdint.h>

#include "refvalues.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct attest_refvalues rv;
        struct attest_measurements m = {0};

        if (attest_refvalues_parse(data, size, &rv, NULL) < 0)
                return 0;
        if (!rv.has_mrtd && !rv.has_rtmr[0] && !rv.has_rtmr[1] && !rv.has_rtmr[2])
                __builtin_trap();
        (void)attest_refvalues_check(&rv, &m);
        return 0;
}
