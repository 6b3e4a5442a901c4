/* Fuzzes image reference parsing; a reference that parses must print to a string that parses
 * to the same parts (normalisation is a fixed point). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reference.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int streq(const char *a, const char *b)
{
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct image_ref r = {0}, r2 = {0};
        struct ck_error *err = NULL;
        char *s, *printed;

        if (size > IMAGE_REF_MAX + 16)
                return 0;
        s = strndup((const char *)data, size);
        if (!s)
                return 0;
        if (image_ref_parse(s, &r, &err) == 0) {
                printed = image_ref_to_string(&r);
                if (!printed || image_ref_parse(printed, &r2, NULL) != 0 || !streq(r.domain, r2.domain) ||
                    !streq(r.path, r2.path) || !streq(r.tag, r2.tag) || !streq(r.digest, r2.digest))
                        abort();
                free(printed);
                image_ref_clear(&r2);
                image_ref_clear(&r);
        } else if (!err) {
                abort(); /* every rejection explains itself */
        }
        ck_error_free(err);
        free(s);
        return 0;
}
