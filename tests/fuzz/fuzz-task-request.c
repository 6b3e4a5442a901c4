/* Fuzzes container request parsing and its redacted rendering. */
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const struct task_request_limits lim = {30000, 65534};
        struct task_request r = {0};

        if (task_request_parse(data, size, 1u << 20, &lim, &r, NULL) == 0) {
                json_t *j = task_request_to_json(&r, TASK_REDACT_MASK);
                json_decref(j);
                task_request_clear(&r);
        }
        return 0;
}
