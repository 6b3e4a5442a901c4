/* Fuzz target: reference-values documents (MRTD, RTMR0-2 as JSON). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "refvalues.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct attest_refvalues rv;
        struct attest_measurements m;
        struct ck_error *e = NULL;

        memset(&m, 0, sizeof(m));
        if (attest_refvalues_parse(data, size, &rv, &e) == 0)
                (void)attest_refvalues_check(&rv, &m);
        ck_error_free(e);
        return 0;
}
