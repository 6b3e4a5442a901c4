/* Fuzz target: the broker endpoint syntax (host:port[#sha256:<hex>]). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct broker_endpoint e;
        char *s = strndup((const char *)data, size);

        if (!s)
                return 0;
        if (broker_endpoint_parse(s, &e, NULL) == 0 && (e.port == 0 || e.port > 65535 || !e.host[0]))
                __builtin_trap();
        free(s);
        return 0;
}
