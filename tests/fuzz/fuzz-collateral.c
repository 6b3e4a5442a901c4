/* Fuzz target: collateral loading. The input is parsed as a dcap-qvl collateral document
 * (attest_collateral_from_json, then serialised back), and also used as both PCS response
 * bodies of attest_collateral_from_parts(), which exercises the signed-value span scanner. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collateral.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct attest_collateral *c = NULL;
        struct ck_error *e = NULL;
        static const uint8_t dummy_crl[] = {0x30, 0x00};
        struct attest_collateral_parts parts = {
                .tcb_info_body = data,
                .tcb_info_len = size,
                .qe_identity_body = data,
                .qe_identity_len = size,
                .tcb_issuer_chain_pem = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
                .pck_crl_der = dummy_crl,
                .pck_crl_len = sizeof(dummy_crl),
                .pck_crl_issuer_chain_pem = "x",
                .root_crl_der = dummy_crl,
                .root_crl_len = sizeof(dummy_crl),
        };

        if (attest_collateral_from_json(data, size, &c, &e) >= 0) {
                char *s = NULL;
                if (attest_collateral_to_json(c, &s, NULL) >= 0)
                        free(s);
                (void)attest_collateral_next_update(c);
                attest_collateral_free(c);
        }
        ck_error_free(e);
        e = NULL;
        c = NULL;
        if (attest_collateral_from_parts(&parts, &c, &e) >= 0)
                attest_collateral_free(c);
        ck_error_free(e);
        return 0;
}
