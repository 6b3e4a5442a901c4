/* Fuzz target: the broker's JSON policy loader must reject or accept any input without reading
 * out of bounds or leaking, and an accepted policy must be usable by the decision function. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct broker_policy *p = NULL;
        struct attest_result r = {.tee_type = ATTEST_TEE_TDX};
        struct attest_rt_log log = {0};
        struct broker_evidence ev = {.result = &r,
                                     .app_id = data,
                                     .app_id_len = size < 80 ? size : 80,
                                     .rtmr3_log = &log,
                                     .task_config = data,
                                     .task_config_len = size};
        struct broker_decision d;

        if (broker_policy_from_json(data, size, size & 1, &p, NULL) < 0)
                return 0;
        broker_policy_decide(p, &ev, &d);
        if (!d.allow && !d.reason)
                __builtin_trap();
        broker_policy_free(p);
        return 0;
}
