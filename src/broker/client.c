/* Client of the broker protocol, on libcurl (HTTP) with OpenSSL (TLS 1.3, the RA-TLS client
 * certificate, and the broker certificate pin through a certificate-verify callback, so that
 * nothing is sent to a broker whose certificate does not match). */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "client.h"
#include "curl.h"
#include "json.h"
#include "log.h"
#include "parse.h"
#include "secret-store.h"
#include "ssl.h"

struct fetch_ctx {
        const struct broker_endpoint *ep;
        EVP_PKEY *key;
        X509 *cert;
        bool pin_mismatch;
        struct ck_buf body; /* a secret buffer: on 200 it is the secret */
};

/* Replaces OpenSSL's chain verification: with a pin, the leaf must hash to it; without one,
 * anything is accepted (the broker is then unauthenticated, as in the seed). */
static int pin_verify(X509_STORE_CTX *x, void *arg)
{
        struct fetch_ctx *f = arg;
        X509 *leaf = X509_STORE_CTX_get0_cert(x);
        uint8_t md[32];
        unsigned int n = sizeof(md);

        if (!f->ep->has_pin)
                return 1;
        if (!leaf || X509_digest(leaf, EVP_sha256(), md, &n) != 1 ||
            CRYPTO_memcmp(md, f->ep->pin, 32) != 0) {
                f->pin_mismatch = true;
                X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
                return 0;
        }
        return 1;
}

static CURLcode ssl_ctx_setup(CURL *curl, void *sslctx, void *arg)
{
        struct fetch_ctx *f = arg;
        SSL_CTX *ctx = sslctx;

        if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
            SSL_CTX_use_certificate(ctx, f->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, f->key) != 1)
                return CURLE_SSL_CERTPROBLEM;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_cert_verify_callback(ctx, pin_verify, f);
        /* OpenSSL wipes its copies of the records: the released secret arrives in them. */
        SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
        return CURLE_OK;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
        struct fetch_ctx *f = arg;
        size_t n = size * nmemb;

        if (ck_buf_append(&f->body, data, n) < 0)
                return 0;
        return n;
}

int broker_fetch_secret_with_identity(const char *endpoint, EVP_PKEY *key, X509 *cert, unsigned timeout_ms,
                                      struct ck_secret **ret, struct ck_error **reterr)
{
        _cleanup_(curl_easy_cleanupp) CURL *curl = NULL;
        struct broker_endpoint ep;
        struct fetch_ctx f = {.ep = &ep, .key = key, .cert = cert};
        char url[300], errbuf[CURL_ERROR_SIZE] = "";
        struct ck_secret *secret;
        long status = 0;
        CURLcode cc;
        int rc;

        rc = broker_endpoint_parse(endpoint, &ep, reterr);
        if (rc < 0)
                return rc;
        if (ck_curl_global_init() < 0)
                return ck_error_set(reterr, -EIO, "libcurl initialisation failed");
        if (!ep.has_pin)
                log_warn(
                        "broker %s: no certificate pin (#sha256:...) given, the broker is not authenticated",
                        endpoint);
        snprintf(url, sizeof(url),
                 strchr(ep.host, ':') ? "https://[%s]:%u/v1/secret" : "https://%s:%u/v1/secret", ep.host,
                 ep.port);
        ck_buf_init_secret(&f.body, BROKER_CLIENT_MAX_SECRET + 1024);

        curl = curl_easy_init();
        if (!curl) {
                ck_buf_free(&f.body);
                return ck_error_set(reterr, -ENOMEM, "curl_easy_init");
        }
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(curl, CURLOPT_SSLVERSION,
                         (long)(CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3));
        /* Chain and host checks are replaced by the pin check in pin_verify(). */
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_SESSIONID_CACHE, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_setup);
        curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, &f);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &f);
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);

        cc = curl_easy_perform(curl);
        if (cc != CURLE_OK) {
                if (f.pin_mismatch)
                        rc = ck_error_set(reterr, -EKEYREJECTED,
                                          "broker %s: certificate does not match the pinned fingerprint",
                                          endpoint);
                else if (cc == CURLE_WRITE_ERROR)
                        rc = ck_error_set(reterr, -EFBIG, "broker %s: response larger than %u bytes",
                                          endpoint, BROKER_CLIENT_MAX_SECRET);
                else
                        rc = ck_error_set(
                                reterr, cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED,
                                "broker %s: %s", endpoint, *errbuf ? errbuf : curl_easy_strerror(cc));
                ck_buf_free(&f.body);
                return rc;
        }
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200) {
                _cleanup_json_ json_t *j = NULL;
                const char *msg = NULL;

                /* A refusal carries a short reason code; show it only when it looks like one. */
                if (ck_json_loadb(f.body.data, f.body.len, 4096, &j, NULL) == 0 &&
                    ck_json_get_string(j, "message", &msg, NULL) == 0 && strlen(msg) <= 64 &&
                    ck_is_printable(msg, strlen(msg)))
                        rc = ck_error_set(reterr, status == 403 ? -EACCES : -EPROTO, "broker %s refused: %s",
                                          endpoint, msg);
                else
                        rc = ck_error_set(reterr, -EPROTO, "broker %s: HTTP status %ld", endpoint, status);
                ck_buf_free(&f.body);
                return rc;
        }
        rc = broker_secret_validate(f.body.data, f.body.len, BROKER_CLIENT_MAX_SECRET, reterr);
        if (rc < 0) {
                ck_buf_free(&f.body);
                return ck_error_prefix(reterr, rc, "broker %s: secret", endpoint);
        }
        secret = ck_secret_new(f.body.data, f.body.len);
        ck_buf_free(&f.body);
        if (!secret)
                return -ENOMEM;
        *ret = secret;
        return 0;
}

int broker_fetch_secret(const char *endpoint, struct attest_tee *tee,
                        const struct attest_ratls_claims *claims, unsigned timeout_ms,
                        struct ck_secret **ret, struct ck_error **reterr)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        struct broker_endpoint ep;
        int rc;

        /* Fail on a bad endpoint before asking the TEE for a quote. */
        rc = broker_endpoint_parse(endpoint, &ep, reterr);
        if (rc < 0)
                return rc;
        rc = attest_ratls_make_identity(tee, claims, BROKER_CLIENT_CERT_VALIDITY_SECS, &key, &cert, reterr);
        if (rc < 0)
                return ck_error_prefix(reterr, rc, "broker %s: making the RA-TLS identity", endpoint);
        return broker_fetch_secret_with_identity(endpoint, key, cert, timeout_ms, ret, reterr);
}
