/* Client of the broker protocol (docs/protocol.md), on libcurl for name resolution, connection
 * and TLS (1.3 only, the per-connection client certificate, and the broker certificate pin
 * through a certificate-verify callback, so that nothing is sent to a broker whose certificate
 * does not match). The connection is made with CURLOPT_CONNECT_ONLY: the evidence depends on
 * the session's exporter value, so it is made after the handshake and before the request, which
 * is then written and its answer read over the same session. */
#include <errno.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "client.h"
#include "curl.h"
#include "exporter.h"
#include "json.h"
#include "log.h"
#include "parse.h"
#include "secret-store.h"
#include "ssl.h"

#define FETCH_TIMEOUT_MS_DEFAULT 30000u
#define RESPONSE_HEAD_MAX        4096u

struct fetch_ctx {
        const struct broker_endpoint *ep;
        const struct broker_peer_policy *attestation;
        const char *attest_reason;      /* why the broker's attestation failed */
        struct ck_error **attest_error; /* its detail */
        EVP_PKEY *key;
        X509 *cert;
        SSL *ssl; /* the session, seen in pin_verify() */
        bool pin_mismatch;
};

/* Replaces OpenSSL's chain verification: with a pin, the leaf must hash to it; with a broker
 * attestation policy, the leaf must be an RA-TLS certificate that meets it; with neither
 * (allowed only by kms-allow-unpinned), anything is accepted. */
static int pin_verify(X509_STORE_CTX *x, void *arg)
{
        struct fetch_ctx *f = arg;
        X509 *leaf = X509_STORE_CTX_get0_cert(x);
        uint8_t md[32];
        unsigned int n = sizeof(md);

        f->ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
        if (f->ep->has_pin && (!leaf || X509_digest(leaf, EVP_sha256(), md, &n) != 1 ||
                               CRYPTO_memcmp(md, f->ep->pin, 32) != 0)) {
                f->pin_mismatch = true;
                X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
                return 0;
        }
        if (f->attestation && (!leaf || broker_peer_check(f->attestation, leaf, time(NULL),
                                                          &f->attest_reason, f->attest_error) < 0)) {
                if (!f->attest_reason)
                        f->attest_reason = "no_certificate";
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
        /* A broker's certificate may carry evidence (an RA-TLS server); nothing larger. */
        SSL_CTX_set_max_cert_list(ctx, BROKER_CLIENT_MAX_CERT_LIST);
        /* The secret crosses this session: wipe plaintext from the record buffers. */
        SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
        return CURLE_OK;
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_socket(CURL *curl, short events, int64_t deadline)
{
        curl_socket_t sock = CURL_SOCKET_BAD;
        struct pollfd p;
        int64_t left = deadline - now_ms();
        int r;

        if (left <= 0)
                return -ETIMEDOUT;
        if (curl_easy_getinfo(curl, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK || sock == CURL_SOCKET_BAD)
                return -ECONNRESET;
        p = (struct pollfd){.fd = sock, .events = events};
        do
                r = poll(&p, 1, (int)left);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return -errno;
        return r == 0 ? -ETIMEDOUT : 0;
}

static int send_all(CURL *curl, const uint8_t *p, size_t len, int64_t deadline)
{
        while (len > 0) {
                size_t n = 0;
                CURLcode cc = curl_easy_send(curl, p, len, &n);
                int r;

                if (cc == CURLE_OK) {
                        p += n;
                        len -= n;
                        continue;
                }
                if (cc != CURLE_AGAIN)
                        return -EPIPE;
                r = wait_socket(curl, POLLOUT, deadline);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Reads until the broker closes (it answers one request per connection, Connection: close). */
static int recv_all(CURL *curl, struct ck_buf *b, int64_t deadline)
{
        uint8_t chunk[4096];

        for (;;) {
                size_t n = 0;
                CURLcode cc = curl_easy_recv(curl, chunk, sizeof(chunk), &n);
                int r;

                if (cc == CURLE_OK) {
                        if (n == 0)
                                break;
                        r = ck_buf_append(b, chunk, n);
                        OPENSSL_cleanse(chunk, n);
                        if (r < 0)
                                return -EFBIG;
                        continue;
                }
                if (cc != CURLE_AGAIN)
                        return b->len > 0 ? 0 : -ECONNRESET; /* a missing close_notify is checked below */
                r = wait_socket(curl, POLLIN, deadline);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Splits "HTTP/1.1 NNN ...\r\n<headers>\r\n\r\n<body>": the status, and the body, which must be
 * exactly Content-Length bytes (a truncated answer is an error, not a shorter secret). */
static int parse_response(const uint8_t *buf, size_t len, long *ret_status, size_t *ret_body_off)
{
        const uint8_t *end = memmem(buf, len < RESPONSE_HEAD_MAX ? len : RESPONSE_HEAD_MAX, "\r\n\r\n", 4);
        size_t head_len, off;
        uint64_t status = 0, clen = 0;
        bool have_clen = false;

        if (!end || len < 12 || memcmp(buf, "HTTP/1.1 ", 9) != 0 ||
            ck_parse_u64((const char *)buf + 9, 3, 599, &status) < 0 || status < 100)
                return -EPROTO;
        head_len = (size_t)(end - buf) + 4;
        off = 0;
        while (off < head_len - 2) {
                const uint8_t *eol = memmem(buf + off, head_len - off, "\r\n", 2);
                size_t l = (size_t)(eol - (buf + off));

                if (l > 15 && strncasecmp((const char *)buf + off, "Content-Length:", 15) == 0) {
                        const char *v = (const char *)buf + off + 15;
                        size_t vl = l - 15;
                        while (vl > 0 && (*v == ' ' || *v == '\t'))
                                v++, vl--;
                        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                                vl--;
                        if (have_clen || ck_parse_u64(v, vl, BROKER_CLIENT_MAX_SECRET + 1024, &clen) < 0)
                                return -EPROTO;
                        have_clen = true;
                }
                off += l + 2;
        }
        if (!have_clen || len - head_len != clen)
                return -EPROTO;
        *ret_status = (long)status;
        *ret_body_off = head_len;
        return 0;
}

static int exchange(CURL *curl, struct fetch_ctx *f, const char *endpoint, broker_evidence_fn fn,
                    void *userdata, int64_t deadline, struct ck_buf *resp, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *body = NULL;
        uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN];
        size_t body_len = 0;
        struct ck_buf req;
        int rc;

        /* The session the pin was checked on (libcurl does not hand it out in connect-only
         * mode on every version), which must have completed its handshake. */
        if (!f->ssl)
                return ck_error_set(reterr, -EPROTO, "broker %s: no TLS session to bind the evidence to",
                                    endpoint);
        if (broker_tls_exporter(f->ssl, exporter) < 0)
                return ck_ssl_error(reterr, -EPROTO, "broker %s: cannot compute the TLS exporter value",
                                    endpoint);
        rc = fn(userdata, f->cert, exporter, &body, &body_len, reterr);
        OPENSSL_cleanse(exporter, sizeof(exporter));
        if (rc < 0)
                return ck_error_prefix(reterr, rc, "broker %s: making the evidence", endpoint);

        ck_buf_init(&req, 1024);
        rc = ck_buf_printf(&req,
                           "POST /v1/secret HTTP/1.1\r\nHost: %s\r\nContent-Type: application/cbor\r\n"
                           "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                           f->ep->host, body_len);
        if (rc >= 0)
                rc = send_all(curl, req.data, req.len, deadline);
        ck_buf_free(&req);
        if (rc >= 0)
                rc = send_all(curl, body, body_len, deadline);
        if (rc >= 0)
                rc = recv_all(curl, resp, deadline);
        if (rc == -EFBIG)
                return ck_error_set(reterr, rc, "broker %s: response larger than %u bytes", endpoint,
                                    BROKER_CLIENT_MAX_SECRET);
        if (rc < 0)
                return ck_error_set(reterr, rc, "broker %s: %s", endpoint,
                                    rc == -ETIMEDOUT ? "timed out" : "connection lost during the exchange");
        return 0;
}

int broker_fetch_secret_with(const char *endpoint, const struct broker_client_opts *opts, EVP_PKEY *key,
                             X509 *cert, broker_evidence_fn fn, void *userdata, struct ck_secret **ret,
                             struct ck_error **reterr)
{
        _cleanup_(curl_easy_cleanupp) CURL *curl = NULL;
        struct broker_endpoint ep;
        _cleanup_error_ struct ck_error *attest_error = NULL;
        struct fetch_ctx f = {.ep = &ep,
                              .key = key,
                              .cert = cert,
                              .attestation = opts ? opts->broker_attestation : NULL,
                              .attest_error = &attest_error};
        unsigned timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : FETCH_TIMEOUT_MS_DEFAULT;
        int64_t deadline = now_ms() + timeout_ms;
        char url[300], errbuf[CURL_ERROR_SIZE] = "";
        struct ck_secret *secret;
        struct ck_buf resp;
        size_t body_off = 0;
        long status = 0;
        CURLcode cc;
        int rc;

        rc = broker_endpoint_parse(endpoint, &ep, reterr);
        if (rc < 0)
                return rc;
        if (!key || !cert || !fn)
                return ck_error_set(reterr, -EINVAL, "broker %s: no identity or evidence maker", endpoint);
        if (!ep.has_pin && !f.attestation && !(opts && opts->allow_unpinned))
                return ck_error_set(
                        reterr, -EPERM,
                        "broker %s: the endpoint has no certificate pin, so the broker would not be "
                        "authenticated: add #sha256:<its fingerprint> (conker-broker logs it) or set "
                        "kms-allow-unpinned = true",
                        endpoint);
        if (ck_curl_global_init() < 0)
                return ck_error_set(reterr, -EIO, "libcurl initialisation failed");
        if (!ep.has_pin && !f.attestation)
                log_warn("broker %s: no certificate pin and kms-allow-unpinned is set: the broker is not "
                         "authenticated",
                         endpoint);
        snprintf(url, sizeof(url), strchr(ep.host, ':') ? "https://[%s]:%u/" : "https://%s:%u/", ep.host,
                 ep.port);

        curl = curl_easy_init();
        if (!curl)
                return ck_error_set(reterr, -ENOMEM, "curl_easy_init");
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(curl, CURLOPT_CONNECT_ONLY, 1L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(curl, CURLOPT_SSLVERSION,
                         (long)(CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3));
        /* Chain and host checks are replaced by the pin check in pin_verify(). */
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_SESSIONID_CACHE, 0L);
        /* No CA store either: loading the system bundle costs more than the handshake. */
        curl_easy_setopt(curl, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_setup);
        curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, &f);
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);

        cc = curl_easy_perform(curl);
        if (cc != CURLE_OK) {
                if (f.pin_mismatch)
                        return ck_error_set(reterr, -EKEYREJECTED,
                                            "broker %s: certificate does not match the pinned fingerprint",
                                            endpoint);
                if (f.attest_reason)
                        return ck_error_set(reterr, -EKEYREJECTED,
                                            "broker %s: the broker's attestation failed: %s: %s", endpoint,
                                            f.attest_reason, ck_error_message(attest_error, -EKEYREJECTED));
                return ck_error_set(reterr, cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED,
                                    "broker %s: %s", endpoint, *errbuf ? errbuf : curl_easy_strerror(cc));
        }

        ck_buf_init_secret(&resp, BROKER_CLIENT_MAX_SECRET + RESPONSE_HEAD_MAX);
        rc = exchange(curl, &f, endpoint, fn, userdata, deadline, &resp, reterr);
        if (rc >= 0 && parse_response(resp.data, resp.len, &status, &body_off) < 0)
                rc = ck_error_set(reterr, -EPROTO, "broker %s: malformed or truncated HTTP response",
                                  endpoint);
        if (rc < 0) {
                ck_buf_free(&resp);
                return rc;
        }
        if (status != 200) {
                _cleanup_json_ json_t *j = NULL;
                const char *msg = NULL;

                /* A refusal carries a short reason code; show it only when it looks like one. */
                if (ck_json_loadb(resp.data + body_off, resp.len - body_off, 4096, &j, NULL) == 0 &&
                    ck_json_get_string(j, "message", &msg, NULL) == 0 && strlen(msg) <= 64 &&
                    ck_is_printable(msg, strlen(msg)))
                        rc = ck_error_set(reterr, status == 403 ? -EACCES : -EPROTO, "broker %s refused: %s",
                                          endpoint, msg);
                else
                        rc = ck_error_set(reterr, -EPROTO, "broker %s: HTTP status %ld", endpoint, status);
                ck_buf_free(&resp);
                return rc;
        }
        rc = broker_secret_validate(resp.data + body_off, resp.len - body_off, BROKER_CLIENT_MAX_SECRET,
                                    reterr);
        if (rc < 0) {
                ck_buf_free(&resp);
                return ck_error_prefix(reterr, rc, "broker %s: secret", endpoint);
        }
        secret = ck_secret_new(resp.data + body_off, resp.len - body_off);
        ck_buf_free(&resp);
        if (!secret)
                return -ENOMEM;
        *ret = secret;
        return 0;
}

struct tee_evidence {
        struct attest_tee *tee;
        const struct attest_ratls_claims *claims;
};

static int evidence_from_tee(void *userdata, X509 *cert, const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN],
                             uint8_t **ret, size_t *ret_len, struct ck_error **reterr)
{
        struct tee_evidence *t = userdata;

        return attest_ratls_make_evidence(t->tee, t->claims, cert, exporter, ret, ret_len, reterr);
}

int broker_fetch_secret(const char *endpoint, struct attest_tee *tee,
                        const struct attest_ratls_claims *claims, const struct broker_client_opts *opts,
                        struct ck_secret **ret, struct ck_error **reterr)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        struct tee_evidence t = {.tee = tee, .claims = claims};
        struct broker_endpoint ep;
        int rc;

        /* Fail on a bad endpoint before making anything. */
        rc = broker_endpoint_parse(endpoint, &ep, reterr);
        if (rc < 0)
                return rc;
        rc = attest_ratls_make_key_cert(BROKER_CLIENT_CERT_VALIDITY_SECS, &key, &cert, reterr);
        if (rc < 0)
                return ck_error_prefix(reterr, rc, "broker %s: making the client identity", endpoint);
        return broker_fetch_secret_with(endpoint, opts, key, cert, evidence_from_tee, &t, ret, reterr);
}
