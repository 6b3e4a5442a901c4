/* Fuzz target: rebuilding QEMU's table-loader from ACPI tables. The input is a 20-byte RSDP
 * followed by the tables blob. */
#include <stdlib.h>

#include "predict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct ck_error *e = NULL;
        uint8_t *loader = NULL;
        size_t len = 0;

        if (size < 20)
                return 0;
        if (predict_acpi_loader_build(data + 20, size - 20, data, 20, &loader, &len, &e) == 0)
                free(loader);
        ck_error_free(e);
        return 0;
}
