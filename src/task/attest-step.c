/* The Attesting step (docs/design.md §1 step 3, §3): measure the task's image and its task-config
 * document into RTMR3, then attest to each KMS endpoint over RA-TLS and collect the secret it
 * releases.
 *
 * The TEE is shared by every pipeline worker, so its use (measure, and quote under the RTMR3 log
 * lock) is serialised here; the network exchange with the broker runs outside that lock, so a
 * slow broker delays only its own task. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "attest-step.h"
#include "client.h"
#include "log.h"
#include "metrics.h"
#include "parse.h"
#include "ratls.h"
#include "ssl.h"
#include "task-config.h"
#include "tee.h"

#define ATTEST_TIMEOUT_MS_DEFAULT 30000u
/* The two events a task adds: 2 * (a name of at most 12 characters, a 71-character payload, a
 * 96-digit digest and the JSON around them: about 216 bytes), rounded up. */
#define ATTEST_TASK_EVENTS      2u
#define ATTEST_TASK_EVENT_BYTES (2u * 512u)

static pthread_mutex_t tee_lock = PTHREAD_MUTEX_INITIALIZER;

void task_released_secrets_free(struct task_released_secret *v, size_t n)
{
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].endpoint);
                ck_secret_free(v[i].secret);
        }
        free(v);
}

/* The client names the endpoint itself ("broker <endpoint>: …", "broker <endpoint> refused: …");
 * the step's message names it once, as the operator wrote it, so strip that. */
static const char *client_reason(const char *msg, const char *endpoint)
{
        size_t n = strlen(endpoint);

        if (!ck_startswith(msg, "broker ") || strncmp(msg + 7, endpoint, n) != 0)
                return msg;
        msg += 7 + n;
        if (ck_startswith(msg, " refused: "))
                return msg + 10;
        if (ck_startswith(msg, ": "))
                return msg + 2;
        return msg;
}

/* The outcome as a metric label: the broker's reason code when it refused (a short code such as
 * "mrtd_mismatch"; anything else from the remote side becomes "other", so a broker cannot grow
 * our label set with free text), or a coarse class of local error. */
static void count_outcome(int r, const char *reason)
{
        const char *label = "other";
        size_t n = 0;

        if (r == 0) {
                ck_metrics_inc("conker_attestations_total", "released", "");
                return;
        }
        if (r == -EACCES) {
                while (reason[n] && n <= 48 &&
                       ((reason[n] >= 'a' && reason[n] <= 'z') || reason[n] == '_' ||
                        (reason[n] >= '0' && reason[n] <= '9')))
                        n++;
                ck_metrics_inc("conker_attestations_total", "refused",
                               n > 0 && n <= 48 && !reason[n] ? reason : "other");
                return;
        }
        if (r == -ETIMEDOUT)
                label = "timeout";
        else if (r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -ENETUNREACH)
                label = "unreachable";
        else if (r == -EKEYREJECTED || r == -EPROTO || r == -EBADMSG)
                label = "protocol";
        ck_metrics_inc("conker_attestations_total", "error", label);
}

static int fail_endpoint(const char *endpoint, int r, struct ck_error *e, struct ck_error **reterr)
{
        const char *reason = client_reason(ck_error_message(e, r), endpoint);

        if (r == -EACCES)
                return ck_error_set(reterr, r, "KMS %s refused the attestation: %s", endpoint, reason);
        return ck_error_set(reterr, r, "KMS %s: %s", endpoint, reason);
}

struct step_evidence {
        const struct task_attest_ctx *ctx;
        const struct attest_ratls_claims *claims;
};

/* Makes the evidence for one broker session (client.h), with the TEE to ourselves. */
static int step_make_evidence(void *userdata, X509 *cert, const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN],
                              uint8_t **ret, size_t *ret_len, struct ck_error **reterr)
{
        struct step_evidence *se = userdata;
        int r;

        pthread_mutex_lock(&tee_lock);
        r = attest_ratls_make_evidence(se->ctx->tee, se->claims, cert, exporter, ret, ret_len, reterr);
        pthread_mutex_unlock(&tee_lock);
        return r;
}

static int attest_one(const struct task_attest_ctx *ctx, const char *endpoint, const char *config,
                      size_t config_len, struct ck_secret **ret, struct ck_error **reterr)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_ratls_claims claims = {
                .app_id = (const uint8_t *)ctx->image_id,
                .app_id_len = strlen(ctx->image_id),
                .rtmr3_log_from_tee = true,
                .task_config = (const uint8_t *)config,
                .task_config_len = config_len,
        };
        struct step_evidence se = {.ctx = ctx, .claims = &claims};
        struct broker_client_opts opts = {
                .timeout_ms = ctx->timeout_ms ?: ATTEST_TIMEOUT_MS_DEFAULT,
                .allow_unpinned = ctx->allow_unpinned,
                .broker_attestation = ctx->broker_attestation,
        };
        int r;

        /* The client identity is fresh per connection; the evidence is made once the session
         * exists, bound to it (docs/protocol.md). */
        r = attest_ratls_make_key_cert(BROKER_CLIENT_CERT_VALIDITY_SECS, &key, &cert, &e);
        if (r < 0)
                return ck_error_set(reterr, r, "KMS %s: making the client identity: %s", endpoint,
                                    ck_error_message(e, r));
        r = broker_fetch_secret_with(endpoint, &opts, key, cert, step_make_evidence, &se, ret, &e);
        count_outcome(r, r < 0 ? client_reason(ck_error_message(e, r), endpoint) : NULL);
        if (r < 0)
                return fail_endpoint(endpoint, r, e, reterr);
        return 0;
}

int task_attest_measure(const struct task_attest_ctx *ctx, char **ret_doc, size_t *ret_len,
                        struct ck_error **reterr)
{
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *doc = NULL;
        char digest[TASK_CONFIG_DIGEST_LEN];
        bool added_image = false, added_config = false;
        size_t len = 0;
        int r;

        r = task_config_document(ctx->image_ref, ctx->image_id, ctx->req, &doc, &len, reterr);
        if (r < 0)
                return r;
        r = task_config_digest(doc, len, digest);
        if (r < 0)
                return ck_error_set(reterr, r, "cannot hash the task-config document");

        /* Both events under one hold of tee_lock, so that the two land next to each other when
         * they are new (other users of the log take its flock, which orders them anyway). */
        pthread_mutex_lock(&tee_lock);
        r = attest_tee_measure_once(ctx->tee, "image-digest", ctx->image_id, &added_image, &e);
        if (r >= 0)
                r = attest_tee_measure_once(ctx->tee, "task-config", digest, &added_config, &e);
        pthread_mutex_unlock(&tee_lock);
        if (r < 0)
                return ck_error_set(reterr, r, "measuring the task into RTMR3: %s", ck_error_message(e, r));
        log_info("task %s: RTMR3 image-digest %s (%s), task-config %s (%s)", ctx->task_id, ctx->image_id,
                 added_image ? "extended" : "already measured", digest,
                 added_config ? "extended" : "already measured");
        *ret_doc = TAKE_PTR(doc);
        *ret_len = len;
        return 0;
}

int task_attest_admit(struct attest_tee *tee, const char *image_ref, const struct task_request *req,
                      struct ck_error **reterr)
{
        /* Any valid image ID has this length; the document's size does not depend on its digits. */
        static const char placeholder_id[] =
                "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *doc = NULL;
        size_t len = 0;
        int r;

        if (req->n_kms == 0)
                return 0;
        r = task_config_document(image_ref, placeholder_id, req, &doc, &len, reterr);
        if (r < 0)
                return r;
        if (!tee)
                return 0;
        pthread_mutex_lock(&tee_lock);
        r = attest_tee_rt_log_check_room(tee, ATTEST_TASK_EVENTS, ATTEST_TASK_EVENT_BYTES, &e);
        pthread_mutex_unlock(&tee_lock);
        if (r == -ENOSPC)
                return ck_error_set(reterr, -EAGAIN, "cannot accept a task with KmsEndpoints: %s",
                                    ck_error_message(e, r));
        if (r < 0)
                return ck_error_set(reterr, r, "cannot read the RTMR3 event log: %s",
                                    ck_error_message(e, r));
        return 0;
}

int task_attest_step(const struct task_attest_ctx *ctx, struct task_released_secret **ret, size_t *ret_n,
                     struct ck_error **reterr)
{
        struct task_released_secret *v;
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *config = NULL;
        size_t config_len = 0;
        int r;

        if (ctx->n_endpoints == 0) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (!ctx->tee)
                return ck_error_set(reterr, -ENOTSUP,
                                    "remote attestation is not available in this build: KmsEndpoints cannot "
                                    "be honoured");

        /* A malformed endpoint is refused before the TEE is asked for anything. */
        for (size_t i = 0; i < ctx->n_endpoints; i++) {
                struct broker_endpoint ep;

                r = broker_endpoint_parse(ctx->endpoints[i], &ep, &e);
                if (r < 0)
                        return fail_endpoint(ctx->endpoints[i], r, e, reterr);
        }
        /* So is an unauthenticated broker, unless the operator allowed it. */
        for (size_t i = 0; i < ctx->n_endpoints; i++) {
                struct broker_endpoint ep;

                if (broker_endpoint_parse(ctx->endpoints[i], &ep, NULL) == 0 && !ep.has_pin &&
                    !ctx->allow_unpinned && !ctx->broker_attestation)
                        return ck_error_set(
                                reterr, -EPERM,
                                "KMS %s: no certificate pin, so the broker would not be "
                                "authenticated: add #sha256:<its fingerprint> to the endpoint "
                                "(conker-broker logs it), attest it (kms-broker-reference-values) "
                                "or set kms-allow-unpinned = true in conkerd.conf",
                                ctx->endpoints[i]);
        }

        /* The task is measured before any evidence leaves the TD, so every quote of this task
         * carries it in RTMR3 (and its log) whether the broker looks at it or not. */
        r = task_attest_measure(ctx, &config, &config_len, reterr);
        if (r < 0)
                return r;

        v = calloc(ctx->n_endpoints, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < ctx->n_endpoints; i++) {
                if (ctx->cancel && atomic_load(ctx->cancel)) {
                        task_released_secrets_free(v, i);
                        return -ECANCELED;
                }
                v[i].endpoint = strdup(ctx->endpoints[i]);
                if (!v[i].endpoint) {
                        task_released_secrets_free(v, i);
                        return -ENOMEM;
                }
                r = attest_one(ctx, ctx->endpoints[i], config, config_len, &v[i].secret, reterr);
                if (r < 0) {
                        /* Nothing is released unless every endpoint released. */
                        task_released_secrets_free(v, i + 1);
                        return r;
                }
                log_info("task %s: KMS %s released a secret (%zu bytes)", ctx->task_id, ctx->endpoints[i],
                         v[i].secret->len);
        }
        *ret = v;
        *ret_n = ctx->n_endpoints;
        return 0;
}
