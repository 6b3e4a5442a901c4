/* Fuzz target: the task-config parser accepts or rejects any input without reading out of
 * bounds or leaking, and what it accepts is within its limits. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "task-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct broker_task_config *c = NULL;

        if (broker_task_config_parse(data, size, &c, NULL) < 0)
                return 0;
        if (c->n_env > BROKER_TASK_CONFIG_MAX_ENV || c->n_ports > BROKER_TASK_CONFIG_MAX_PORTS ||
            c->n_mounts > BROKER_TASK_CONFIG_MAX_MOUNTS || c->n_kms_endpoints > BROKER_TASK_CONFIG_MAX_KMS ||
            strlen(c->image_id) != 71)
                __builtin_trap();
        for (size_t i = 0; i < c->n_env; i++)
                (void)broker_env_key_len(c->env[i]);
        broker_task_config_free(c);
        return 0;
}
