/* The Attesting step. Remote attestation (RA-TLS to the brokers, DESIGN.md §3) is built by the
 * attestation work; until it is wired in here, a request that names KMS endpoints cannot be
 * honoured and fails closed with a message the operator can act on. */
#include <errno.h>
#include <stdlib.h>

#include "attest-step.h"

void task_released_secrets_free(struct task_released_secret *v, size_t n)
{
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].endpoint);
                ck_secret_free(v[i].secret);
        }
        free(v);
}

int task_attest_step(const struct task_attest_ctx *ctx, struct task_released_secret **ret, size_t *ret_n,
                     struct ck_error **reterr)
{
        if (ctx->n_endpoints == 0) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        return ck_error_set(
                reterr, -ENOTSUP,
                "remote attestation is not available in this build: KmsEndpoints cannot be honoured");
}
