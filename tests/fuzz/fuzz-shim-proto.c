/* Fuzzes the shim protocol parsers: a frame header and its body as a request, a response and a
 * state document (what conkerd and the shim read from each other and from state.json), and a
 * spare shim's assignment message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "shim-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct shim_request req;
        struct shim_state st;
        struct ck_error *err = NULL;
        json_t *j = NULL;
        size_t len;

        if (size >= 4 && shim_frame_length(data, &len) == 0 && len <= size - 4) {
                (void)shim_request_parse(data + 4, len, &req, &err);
                ck_error_free(err);
                err = NULL;
        }
        (void)shim_request_parse(data, size, &req, &err);
        ck_error_free(err);
        err = NULL;
        (void)shim_response_parse(data, size, &st, &err);
        ck_error_free(err);
        err = NULL;
        if (size > 0 && size <= SHIM_MSG_MAX) {
                char *argv[SHIM_ASSIGN_ARGS_MAX + 2];
                uint8_t *copy = malloc(size); /* parsed in place */
                int argc;

                if (copy) {
                        memcpy(copy, data, size);
                        if (shim_assign_parse(copy, size, "conker-shim", argv, &argc) == 0)
                                for (int i = 0; i < argc; i++)
                                        (void)strlen(argv[i]);
                        free(copy);
                }
        }
        if (ck_json_loadb(data, size, SHIM_STATE_MAX, &j, NULL) == 0) {
                (void)shim_state_from_json(j, &st, NULL);
                json_decref(j);
        }
        return 0;
}
