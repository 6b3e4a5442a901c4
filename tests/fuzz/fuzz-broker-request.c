/* Fuzz target: the broker's request-head check must never read outside its input and must
 * accept only the one request form; the reader's framing (body length) must stay inside its
 * input and within the body limit. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "reader.h"
#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (broker_request_check(data, size, BROKER_REQUEST_MAX_BYTES) == 0 &&
            (size < 27 || memcmp(data, "GET /v1/secret HTTP/1.1\r\n", 25) != 0))
                __builtin_trap();
        {
                size_t body = 0;
                if (broker_request_body_length(data, size, 1024, &body) == 0 && body > 1024)
                        __builtin_trap();
        }
        return 0;
}
