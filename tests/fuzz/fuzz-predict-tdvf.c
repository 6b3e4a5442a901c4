/* Fuzz target: the OVMF GUID table and TDVF metadata, then MRTD and the TD HOB for what parsed
 * (the parser allows 1 GiB sections; inputs with sections over 1 MiB skip MRTD so that one
 * input stays fast). */
#include <stdlib.h>

#include "predict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct predict_tdvf t;
        struct ck_error *e = NULL;
        uint8_t d[48], *hob = NULL;
        size_t hob_len = 0;
        bool small = true;

        if (predict_tdvf_parse(data, size, &t, &e) < 0) {
                ck_error_free(e);
                return 0;
        }
        for (size_t i = 0; i < t.n; i++)
                if (t.s[i].mem_size > (1u << 20))
                        small = false;
        if (small) {
                (void)predict_tdvf_mrtd(data, size, &t, PREDICT_MRTD_SINGLE_PASS, d, NULL);
                (void)predict_tdvf_mrtd(data, size, &t, PREDICT_MRTD_TWO_PASS, d, NULL);
        }
        (void)predict_tdvf_cfv_digest(data, size, &t, d, NULL);
        if (predict_tdhob_build(&t, 4096ull << 20, &hob, &hob_len, &e) == 0)
                free(hob);
        ck_error_free(e);
        return 0;
}
