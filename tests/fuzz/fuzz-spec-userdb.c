/* Fuzzes what the spec parses from an untrusted rootfs or host file: /etc/passwd and /etc/group
 * with a User string (input = user NUL passwd NUL group, spec-user.c), resolv.conf filtering
 * (spec-etc.c) and the WorkingDir check (spec.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *p = (const char *)data, *end = p + size;
        const char *nul1 = memchr(p, 0, size), *nul2;
        struct spec_user u;
        struct ck_error *err = NULL;
        char *out = NULL, *copy;

        if (spec_resolv_filter(p, size, &out) == 0)
                free(out);
        copy = strndup(p, size);
        if (copy) {
                (void)spec_cwd_valid(copy);
                free(copy);
        }
        if (!nul1)
                return 0;
        nul2 = memchr(nul1 + 1, 0, (size_t)(end - nul1 - 1));
        (void)spec_user_resolve_db(nul1 + 1, (size_t)((nul2 ? nul2 : end) - nul1 - 1),
                                   nul2 ? nul2 + 1 : NULL, nul2 ? (size_t)(end - nul2 - 1) : 0, p, &u, &err);
        ck_error_free(err);
        return 0;
}
