/* Fuzz target: the pull helper's messages (src/fetch/fetch-proto.h). The first byte picks the
 * decoder (request, progress, result, probe, probe answer), the rest is the payload; whatever decodes must
 * encode again and decode to the same thing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fetch-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const uint8_t *p, size_t n)
{
        struct fetch_request r = {0}, again = {0};
        uint8_t *m = NULL;
        size_t len = 0;

        if (fetch_request_decode(p, n, &r, NULL) < 0)
                return;
        if (fetch_request_encode(&r, &m, &len) < 0 ||
            fetch_request_decode(m + 1, len - 1, &again, NULL) < 0 || strcmp(again.ref, r.ref) != 0 ||
            again.n_mirrors != r.n_mirrors)
                __builtin_trap();
        free(m);
        fetch_request_clear(&again);
        fetch_request_clear(&r);
}

static void check_result(const uint8_t *p, size_t n)
{
        struct fetch_result r = {0}, again = {0};
        uint8_t *m = NULL;
        size_t len = 0;

        if (fetch_result_decode(p, n, &r, NULL) < 0)
                return;
        if ((r.err < 0) == (r.id != NULL))
                __builtin_trap();
        if (fetch_result_encode(&r, &m, &len) < 0 || fetch_result_decode(m + 1, len - 1, &again, NULL) < 0 ||
            again.err != r.err || again.pulled_bytes != r.pulled_bytes)
                __builtin_trap();
        free(m);
        fetch_result_clear(&again);
        fetch_result_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct fetch_progress pr;

        if (size < 1)
                return 0;
        switch (data[0]) {
        case FETCH_MSG_REQUEST:
                check_request(data + 1, size - 1);
                break;
        case FETCH_MSG_RESULT:
                check_result(data + 1, size - 1);
                break;
        case FETCH_MSG_PROBE: {
                char *dir = NULL;

                if (fetch_probe_decode(data + 1, size - 1, &dir, NULL) == 0 && (!dir || !*dir))
                        __builtin_trap();
                free(dir);
                break;
        }
        case FETCH_MSG_FORMAT: {
                const char *f = NULL;

                if (fetch_format_decode(data + 1, size - 1, &f, NULL) == 0 && strcmp(f, "erofs") != 0 &&
                    strcmp(f, "dir") != 0)
                        __builtin_trap();
                break;
        }
        default:
                if (fetch_progress_decode(data + 1, size - 1, &pr, NULL) == 0 && !pr.phase)
                        __builtin_trap();
        }
        return 0;
}
