/* Fuzzes what registries and token servers send about authentication: the WWW-Authenticate
 * challenge parser and the token reply parser, on the same input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct registry_challenge ch = {0};
        struct ck_secret *tok = NULL;
        struct ck_error *err = NULL;
        uint64_t exp = 0;

        if (registry_challenge_parse((const char *)data, size, &ch, &err) == 0) {
                if (ch.scheme == REGISTRY_AUTH_BEARER && !ch.realm)
                        abort();
                if ((ch.realm && strlen(ch.realm) > REGISTRY_AUTH_VALUE_MAX) ||
                    (ch.scope && strlen(ch.scope) > REGISTRY_AUTH_VALUE_MAX))
                        abort();
                registry_challenge_clear(&ch);
        } else if (!err) {
                abort();
        }
        ck_error_free(err);
        err = NULL;

        if (registry_token_parse(data, size, &tok, &exp, &err) == 0) {
                for (size_t i = 0; i < tok->len; i++)
                        if (tok->data[i] <= ' ' || tok->data[i] >= 0x7f)
                                abort(); /* would smuggle a header */
                if (exp < 60 || exp > 86400)
                        abort();
                ck_secret_free(tok);
        }
        ck_error_free(err);
        return 0;
}
