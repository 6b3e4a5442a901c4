/* Fuzz target: the broker's request-head parser must never read outside its input, must accept
 * only the two request forms, and must never announce a body over its bound. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct broker_request r;

        if (broker_request_parse(data, size, BROKER_REQUEST_MAX_BYTES, 4096, &r) == 0 &&
            ((size < 27 || (memcmp(data, "GET /v1/secret HTTP/1.1\r\n", 25) != 0 &&
                            memcmp(data, "POST /v1/secret HTTP/1.1\r\n", 26) != 0)) ||
             r.content_length > 4096 || (r.post && r.content_length == 0) || (!r.post && r.content_length)))
                __builtin_trap();
        return 0;
}
