/* Fuzz target: attest_quote_parse() on arbitrary bytes. Every field the parser returns must lie
 * inside the input; the harness touches them all so that ASan sees any escape. */
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "quote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct attest_quote q;
        struct ck_error *e = NULL;
        volatile uint8_t sink = 0;

        if (attest_quote_parse(data, size, &q, &e) < 0) {
                ck_error_free(e);
                return 0;
        }
        for (size_t i = 0; i < q.signed_len; i++)
                sink ^= q.signed_region[i];
        for (size_t i = 0; i < 64; i++)
                sink ^= q.signature[i] ^ q.attest_key[i] ^ q.qe_report_sig[i];
        for (size_t i = 0; i < 384; i++)
                sink ^= q.qe_report[i];
        for (size_t i = 0; i < q.qe_auth_len; i++)
                sink ^= q.qe_auth_data[i];
        for (size_t i = 0; i < q.cert_len; i++)
                sink ^= q.cert_data[i];
        (void)sink;
        return 0;
}
