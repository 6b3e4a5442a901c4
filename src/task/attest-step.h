/* The Attesting step of the pipeline: for each KMS endpoint of a task, attest over RA-TLS and
 * receive the released secret.
 *
 * The pipeline calls task_attest_step() only when the request has KmsEndpoints, and writes the
 * returned secrets into the task's secret tmpfs (as secret-<host:port>.json, read-only) in the
 * Creating step. The secrets stay in ck_secret buffers in between and never touch the disk. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "secret.h"

struct attest_tee;
struct broker_peer_policy;

struct task_attest_ctx {
        const char *task_id;
        const char *image_id; /* "sha256:…", the appId claim */
        char *const *endpoints;
        size_t n_endpoints;
        atomic_int *cancel;
        struct attest_tee *tee; /* NULL: attestation unavailable, the step fails closed */
        unsigned timeout_ms;    /* per endpoint */
        bool allow_unpinned;    /* kms-allow-unpinned: accept endpoints without a #sha256: pin */
        /* kms-broker-reference-values: brokers must attest (RA-TLS server certificate); this
         * authenticates an endpoint without a pin. NULL: no broker attestation. */
        const struct broker_peer_policy *broker_attestation;
};

struct task_released_secret {
        char *endpoint;
        struct ck_secret *secret;
};
void task_released_secrets_free(struct task_released_secret *v, size_t n);

/* Measures the image into RTMR3 (an `image-digest` event, once, before the first endpoint),
 * then attests to every endpoint over RA-TLS with the RTMR3 log attached and collects its
 * secret. On success ret receives one secret per endpoint, in order. Fails closed: any doubt
 * about an endpoint fails the whole step, with a message naming the endpoint and the broker's
 * reason ("KMS host:port refused the attestation: rtmr1_mismatch"); no secret is returned
 * then. -ECANCELED when *cancel became non-zero between endpoints; -ENOTSUP without a TEE. */
int task_attest_step(const struct task_attest_ctx *ctx, struct task_released_secret **ret, size_t *ret_n,
                     struct ck_error **reterr);
