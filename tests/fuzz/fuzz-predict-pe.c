/* Fuzz target: PE/COFF parsing, the Authenticode hash, UKI section lookup, and QEMU's bzImage
 * header edits. */
#include <stdlib.h>
#include <string.h>

#include "predict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct predict_pe *pe = calloc(1, sizeof(*pe));
        struct ck_error *e = NULL;
        const uint8_t *sec = NULL;
        uint8_t d[48], *copy;
        size_t n = 0;

        if (!pe)
                return 0;
        if (predict_pe_parse(data, size, pe, &e) == 0) {
                (void)predict_pe_section(data, size, pe, ".linux", &sec, &n, NULL);
                (void)predict_pe_section(data, size, pe, ".cmdline", &sec, &n, NULL);
        }
        ck_error_free(e);
        e = NULL;
        (void)predict_pe_authenticode(data, size, d, &e);
        ck_error_free(e);
        e = NULL;
        copy = malloc(size ? size : 1);
        if (copy) {
                memcpy(copy, data, size);
                (void)predict_linux_patch(copy, size, 2048ull << 20, size / 2, "vga=0x317 quiet", &e);
                ck_error_free(e);
                free(copy);
        }
        free(pe);
        return 0;
}
