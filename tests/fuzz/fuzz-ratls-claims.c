/* Fuzz target: the RA-TLS claims map. */
#include <stdlib.h>

#include "ratls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct attest_ratls_evidence ev = {0};
        struct ck_error *e = NULL;
        uint8_t pkh[32];

        if (attest_ratls_parse_claims(data, size, &ev, pkh, &e) == 0) {
                free(ev.app_id);
                free(ev.nonce);
                free(ev.rtmr3_log);
        }
        ck_error_free(e);
        return 0;
}
