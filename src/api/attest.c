/* The attested API (tls-cert = auto, docs/API.md "Attested TLS"): the RA-TLS server identity made
 * at start, and GET /sw/api/v1/pub/attest?nonce=HEX, which answers with fresh evidence over the
 * client's nonce, this connection's TLS exporter and the server key (api-evidence.h).
 *
 * The route needs no token: a client asks before it trusts the server with one. A quote takes
 * the TEE some milliseconds (a TDX quote goes through the host's quoting service), so it is made
 * on a worker thread, one at a time: a second request while one is being quoted gets 503, which
 * bounds what an unauthenticated client can make the TD do. */
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api-evidence.h"
#include "api-internal.h"
#include "log.h"
#include "parse.h"
#include "ssl.h"

struct api_attest {
        struct attest_tee *tee; /* borrowed */
        EVP_PKEY *key;
        X509 *cert;

        /* The one quote in flight: set on the loop, finished by the worker, answered on the loop. */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool busy; /* a worker owns `job` */
        bool done; /* the worker finished; the loop has not answered yet */
        struct event *done_event;
        struct {
                struct evhttp_request *req;
                uint8_t nonce[ATTEST_API_NONCE_MAX];
                size_t nonce_len;
                uint8_t ekm[ATTEST_API_EKM_LEN];
                uint8_t *evidence;
                size_t evidence_len;
                int result;
                struct ck_error *err;
        } job;
};

static void job_reply(struct api_attest *a)
{
        struct evhttp_request *req = TAKE_PTR(a->job.req);
        _cleanup_free_ char *hex = NULL;

        if (a->job.result < 0) {
                log_error("attested API: %s", ck_error_message(a->job.err, a->job.result));
                api_reply(req, 500, "cannot make evidence; see the conkerd log", NULL);
        } else if (!(hex = ck_hex_encode_alloc(a->job.evidence, a->job.evidence_len))) {
                api_reply(req, 500, "out of memory", NULL);
        } else {
                api_reply(req, 200, "ok",
                          json_pack("{s:s,s:s,s:s}", "Evidence", hex, "Ctx", ATTEST_API_CTX, "ExporterLabel",
                                    ATTEST_API_EXPORTER_LABEL));
        }
        free(TAKE_PTR(a->job.evidence));
        ck_error_free(TAKE_PTR(a->job.err));
        OPENSSL_cleanse(a->job.ekm, sizeof(a->job.ekm));
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
        struct api_attest *a = arg;
        bool done;

        pthread_mutex_lock(&a->lock);
        done = a->done;
        pthread_mutex_unlock(&a->lock);
        if (!done)
                return;
        job_reply(a);
        pthread_mutex_lock(&a->lock);
        a->done = false;
        a->busy = false;
        pthread_mutex_unlock(&a->lock);
}

static void *job_main(void *arg)
{
        struct api_attest *a = arg;

        a->job.result = attest_api_evidence_make(a->tee, a->cert, a->job.nonce, a->job.nonce_len, a->job.ekm,
                                                 &a->job.evidence, &a->job.evidence_len, &a->job.err);
        pthread_mutex_lock(&a->lock);
        a->done = true;
        event_active(a->done_event, EV_READ, 0);
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        return NULL;
}

int api_attest_new(struct api_server *s, struct ck_error **reterr)
{
        struct api_attest *a;
        int r;

        if (!s->cfg.tee)
                return ck_error_set(reterr, -EINVAL, "tls-cert = auto needs a TEE");
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->tee = s->cfg.tee;
        pthread_mutex_init(&a->lock, NULL);
        pthread_cond_init(&a->cond, NULL);
        s->attest = a;
        a->done_event = event_new(s->base, -1, 0, on_done, a);
        if (!a->done_event)
                return -ENOMEM;
        r = attest_api_identity_make(a->tee, &a->key, &a->cert, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "tls-cert = auto");
        return 0;
}

int api_attest_tls_setup(struct api_server *s, SSL_CTX *ctx, struct ck_error **reterr)
{
        struct api_attest *a = s->attest;

        /* TLS 1.3 only: its exporter is bound to the whole handshake (RFC 8446 §7.5). */
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
            SSL_CTX_use_certificate(ctx, a->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, a->key) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1)
                return ck_ssl_error(reterr, -EINVAL, "tls-cert = auto: cannot use the attested identity");
        return 0;
}

void api_attest_free(struct api_server *s)
{
        struct api_attest *a = s->attest;

        if (!a)
                return;
        pthread_mutex_lock(&a->lock);
        while (a->busy && !a->done)
                pthread_cond_wait(&a->cond, &a->lock);
        pthread_mutex_unlock(&a->lock);
        if (a->job.req)
                job_reply(a); /* frees the request, whether or not its client is still there */
        if (a->done_event)
                event_free(a->done_event);
        EVP_PKEY_free(a->key);
        X509_free(a->cert);
        pthread_mutex_destroy(&a->lock);
        pthread_cond_destroy(&a->cond);
        free(a);
        s->attest = NULL;
}

/* nonce=HEX from the query: ATTEST_API_NONCE_MIN..MAX bytes. */
static int query_nonce(struct evhttp_request *req, uint8_t *ret, size_t *ret_len)
{
        const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
        struct evkeyvalq params = {0};
        const char *hex;
        size_t n;
        int r = -EINVAL;

        if (!q || evhttp_parse_query_str(q, &params) < 0)
                return -EINVAL;
        hex = evhttp_find_header(&params, "nonce");
        n = hex ? strlen(hex) : 0;
        if (n % 2 == 0 && n / 2 >= ATTEST_API_NONCE_MIN && n / 2 <= ATTEST_API_NONCE_MAX &&
            ck_hex_decode(hex, n, ret, n / 2) == 0) {
                *ret_len = n / 2;
                r = 0;
        }
        evhttp_clear_headers(&params);
        return r;
}

void api_route_attest(struct api_server *s, struct evhttp_request *req)
{
        struct api_attest *a = s->attest;
        struct bufferevent *bev;
        pthread_attr_t attr;
        pthread_t th;
        SSL *ssl;
        int r;

        if (!a) {
                api_reply(req, 404, "conkerd has no attested identity (tls-cert is not auto)", NULL);
                return;
        }
        pthread_mutex_lock(&a->lock);
        r = a->busy ? -EBUSY : 0;
        pthread_mutex_unlock(&a->lock);
        if (r < 0) {
                api_reply(req, 503, "another quote is being made; try again", NULL);
                return;
        }
        if (query_nonce(req, a->job.nonce, &a->job.nonce_len) < 0) {
                api_reply(req, 400, "nonce must be 32 to 128 hex digits (16 to 64 bytes)", NULL);
                return;
        }
        bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
        ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
        if (!ssl ||
            SSL_export_keying_material(ssl, a->job.ekm, sizeof(a->job.ekm), ATTEST_API_EXPORTER_LABEL,
                                       strlen(ATTEST_API_EXPORTER_LABEL), NULL, 0, 0) != 1) {
                api_reply(req, 500, "cannot derive the TLS exporter of this connection", NULL);
                return;
        }
        a->job.req = req;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&a->lock);
        a->busy = true;
        r = pthread_create(&th, &attr, job_main, a);
        if (r != 0)
                a->busy = false;
        pthread_mutex_unlock(&a->lock);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                log_error("cannot start a quote worker: %s", strerror(r));
                a->job.req = NULL;
                OPENSSL_cleanse(a->job.ekm, sizeof(a->job.ekm));
                api_reply(req, 500, "internal error; see the conkerd log", NULL);
        }
}
