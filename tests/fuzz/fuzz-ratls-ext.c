/* Fuzz target: the RA-TLS evidence extension (CBOR tag 60000 [quote, claims]); what it finds
 * for the claims is fed to the claims parser too. */
#include <stdlib.h>
#include <string.h>

#include "ratls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *q = NULL, *c = NULL;
        size_t ql = 0, cl = 0;
        struct ck_error *e = NULL;

        if (attest_ratls_parse_extension(data, size, &q, &ql, &c, &cl, &e) == 0) {
                struct attest_ratls_evidence ev = {0};
                uint8_t pkh[32];
                /* The pointers must lie inside the input. */
                if (q < data || q + ql > data + size || c < data || c + cl > data + size)
                        abort();
                if (attest_ratls_parse_claims(c, cl, &ev, pkh, NULL) == 0) {
                        free(ev.app_id);
                        free(ev.nonce);
                        free(ev.rtmr3_log);
                }
        }
        ck_error_free(e);
        return 0;
}
