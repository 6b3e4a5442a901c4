/* The Attesting step of the pipeline: measure the task into RTMR3 (its image and its canonical
 * task-config document), then, for each KMS endpoint of the task, attest over RA-TLS and receive
 * the released secret.
 *
 * The pipeline calls task_attest_step() only when the request has KmsEndpoints, and writes the
 * returned secrets into the task's secret tmpfs (as secret-<host:port>.json, read-only) in the
 * Creating step. The secrets stay in ck_secret buffers in between and never touch the disk. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "request.h"
#include "secret.h"

struct attest_tee;
struct broker_peer_policy;

struct task_attest_ctx {
        const char *task_id;
        const char *image_ref;          /* normalised image reference, as in the task-config document */
        const char *image_id;           /* "sha256:…", the appId claim */
        const struct task_request *req; /* Env, Ports, Mounts, KmsEndpoints of the task-config */
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

/* Builds the task's task-config document (task-config.h) and measures into RTMR3 an
 * "image-digest" event (payload: the image ID) and then a "task-config" event (payload:
 * "sha256:<hex>" of the document), each only if an identical event is not already in the log
 * since boot. *ret_doc (malloc'd, *ret_len bytes) is the document. -ENOSPC when the log is full
 * (the TD must reboot). */
int task_attest_measure(const struct task_attest_ctx *ctx, char **ret_doc, size_t *ret_len,
                        struct ck_error **reterr);

/* The checks made when a task with KmsEndpoints is created, before it is accepted: its
 * task-config document fits (the image ID is not known yet; its length is) and the RTMR3 log
 * has room for the two events the task may add. -E2BIG or -EAGAIN (the log is full: the TD must
 * reboot) with a message for the client. tee may be NULL (nothing to check: the step fails
 * closed later). */
int task_attest_admit(struct attest_tee *tee, const char *image_ref, const struct task_request *req,
                      struct ck_error **reterr);

/* Measures the task (task_attest_measure, before the first endpoint),
 * then attests to every endpoint over RA-TLS with the RTMR3 log attached and collects its
 * secret. On success ret receives one secret per endpoint, in order. Fails closed: any doubt
 * about an endpoint fails the whole step, with a message naming the endpoint and the broker's
 * reason ("KMS host:port refused the attestation: rtmr1_mismatch"); no secret is returned
 * then. -ECANCELED when *cancel became non-zero between endpoints; -ENOTSUP without a TEE. */
int task_attest_step(const struct task_attest_ctx *ctx, struct task_released_secret **ret, size_t *ret_n,
                     struct ck_error **reterr);
