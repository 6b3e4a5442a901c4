/* Fuzzes the kernel log record parser conkerd counts the state disk's integrity failures with
 * (src/conkerd/integrity-log.c): any bytes, with and without device names. */
#include <stdint.h>
#include <stdlib.h>

#include "integrity-log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char *devs[] = {(char *)"dm-1", (char *)"conker-state", (char *)"dm-0", NULL};

        (void)conkerd_kmsg_is_integrity_failure((const char *)data, size, devs);
        (void)conkerd_kmsg_is_integrity_failure((const char *)data, size, NULL);
        return 0;
}
