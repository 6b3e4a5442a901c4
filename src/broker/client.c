/* Client of the broker protocol (docs/protocol.md), straight on sockets and OpenSSL: name
 * resolution, a non-blocking connect bounded by the exchange's deadline, then TLS (1.3 only, the
 * per-connection client certificate, and the broker certificate pin through a
 * certificate-verify callback, so that nothing is sent to a broker whose certificate does not
 * match). The evidence depends on the session's exporter value, so it is made after the
 * handshake and before the request, which is then written and its answer read over the same
 * session: one POST with a Content-Length body, one bounded answer. No libcurl, so that conkerd
 * does not map it (docs/start-latency.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "client.h"
#include "exporter.h"
#include "json.h"
#include "log.h"
#include "monotonic.h"
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

static int ssl_ctx_setup(SSL_CTX *ctx, struct fetch_ctx *f)
{
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
            SSL_CTX_use_certificate(ctx, f->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, f->key) != 1)
                return -EINVAL;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_cert_verify_callback(ctx, pin_verify, f);
        /* A broker's certificate may carry evidence (an RA-TLS server); nothing larger. */
        SSL_CTX_set_max_cert_list(ctx, BROKER_CLIENT_MAX_CERT_LIST);
        /* The secret crosses this session: wipe plaintext from the record buffers. */
        SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
        return 0;
}

static int wait_socket(int sock, short events, int64_t deadline)
{
        struct pollfd p;
        int64_t left = deadline - ck_now_ms();
        int r;

        if (left <= 0)
                return -ETIMEDOUT;
        p = (struct pollfd){.fd = sock, .events = events};
        do
                r = poll(&p, 1, (int)left);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return -errno;
        return r == 0 ? -ETIMEDOUT : 0;
}

/* Waits for what a non-blocking SSL call asked for; -EPIPE for any other failure. */
static int ssl_wait(SSL *ssl, int ret, int64_t deadline)
{
        switch (SSL_get_error(ssl, ret)) {
        case SSL_ERROR_WANT_READ:
                return wait_socket(SSL_get_fd(ssl), POLLIN, deadline);
        case SSL_ERROR_WANT_WRITE:
                return wait_socket(SSL_get_fd(ssl), POLLOUT, deadline);
        default:
                return -EPIPE;
        }
}

static int send_all(SSL *ssl, const uint8_t *p, size_t len, int64_t deadline)
{
        while (len > 0) {
                size_t n = 0;
                int ret = SSL_write_ex(ssl, p, len, &n), r;

                if (ret == 1) {
                        p += n;
                        len -= n;
                        continue;
                }
                r = ssl_wait(ssl, ret, deadline);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Reads until the broker closes (it answers one request per connection, Connection: close). */
static int recv_all(SSL *ssl, struct ck_buf *b, int64_t deadline)
{
        uint8_t chunk[4096];

        for (;;) {
                size_t n = 0;
                int ret = SSL_read_ex(ssl, chunk, sizeof(chunk), &n), r, e;

                if (ret == 1) {
                        r = ck_buf_append(b, chunk, n);
                        OPENSSL_cleanse(chunk, n);
                        if (r < 0)
                                return -EFBIG;
                        continue;
                }
                e = SSL_get_error(ssl, ret);
                if (e == SSL_ERROR_ZERO_RETURN)
                        break;
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                        ERR_clear_error();
                        return b->len > 0 ? 0 : -ECONNRESET; /* a missing close_notify is checked below */
                }
                r = ssl_wait(ssl, ret, deadline);
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

static int exchange(SSL *ssl, struct fetch_ctx *f, const char *endpoint, broker_evidence_fn fn,
                    void *userdata, int64_t deadline, struct ck_buf *resp, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *body = NULL;
        uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN];
        size_t body_len = 0;
        struct ck_buf req;
        int rc;

        /* The session the pin was checked on, which must have completed its handshake. */
        if (!f->ssl || f->ssl != ssl)
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
                rc = send_all(ssl, req.data, req.len, deadline);
        ck_buf_free(&req);
        if (rc >= 0)
                rc = send_all(ssl, body, body_len, deadline);
        if (rc >= 0)
                rc = recv_all(ssl, resp, deadline);
        if (rc == -EFBIG)
                return ck_error_set(reterr, rc, "broker %s: response larger than %u bytes", endpoint,
                                    BROKER_CLIENT_MAX_SECRET);
        if (rc < 0)
                return ck_error_set(reterr, rc, "broker %s: %s", endpoint,
                                    rc == -ETIMEDOUT ? "timed out" : "connection lost during the exchange");
        return 0;
}

/* A TCP connection to ep, trying each resolved address in turn until the deadline. */
static int connect_tcp(const struct broker_endpoint *ep, const char *endpoint, int64_t deadline,
                       struct ck_error **reterr)
{
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        char port[8];
        int r, last = -ECONNREFUSED;

        snprintf(port, sizeof(port), "%u", ep->port);
        r = getaddrinfo(ep->host, port, &hints, &ai);
        if (r != 0)
                return ck_error_set(reterr, -ECONNREFUSED, "broker %s: cannot resolve %s: %s", endpoint,
                                    ep->host, gai_strerror(r));
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
                int err = 0;
                socklen_t len = sizeof(err);

                if (fd < 0) {
                        last = -errno;
                        continue;
                }
                if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
                    (errno == EINPROGRESS && (last = wait_socket(fd, POLLOUT, deadline)) == 0 &&
                     getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)) {
                        freeaddrinfo(ai);
                        return fd;
                }
                if (err)
                        last = -err;
                else if (last == 0 || errno != EINPROGRESS)
                        last = -errno;
                close(fd);
                if (last == -ETIMEDOUT)
                        break;
        }
        freeaddrinfo(ai);
        return ck_error_errno(reterr, last, "broker %s: cannot connect", endpoint);
}

static bool is_ip_literal(const char *host)
{
        uint8_t a[16];

        return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* The TLS handshake on fd, bounded by the deadline. The pin and the broker's attestation are
 * checked inside it (pin_verify()). */
static int tls_connect(int fd, struct fetch_ctx *f, const char *endpoint, int64_t deadline, SSL **ret,
                       struct ck_error **reterr)
{
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        _cleanup_(SSL_freep) SSL *ssl = NULL;
        int r;

        if (!ctx || ssl_ctx_setup(ctx, f) < 0 || !(ssl = SSL_new(ctx)) || SSL_set_fd(ssl, fd) != 1)
                return ck_ssl_error(reterr, -ENOMEM, "broker %s: TLS setup", endpoint);
        /* Server name indication for a DNS name, as any HTTPS client sends it. */
        if (!is_ip_literal(f->ep->host))
                (void)SSL_set_tlsext_host_name(ssl, f->ep->host);
        for (;;) {
                ERR_clear_error();
                r = SSL_connect(ssl);
                if (r == 1)
                        break;
                if (f->pin_mismatch || f->attest_reason)
                        return -EKEYREJECTED;
                r = ssl_wait(ssl, r, deadline);
                if (r == -ETIMEDOUT)
                        return ck_error_set(reterr, r, "broker %s: TLS handshake timed out", endpoint);
                if (r < 0)
                        return ck_ssl_error(reterr, -ECONNREFUSED, "broker %s: TLS handshake failed",
                                            endpoint);
        }
        *ret = TAKE_PTR(ssl);
        return 0;
}

int broker_fetch_secret_with(const char *endpoint, const struct broker_client_opts *opts, EVP_PKEY *key,
                             X509 *cert, broker_evidence_fn fn, void *userdata, struct ck_secret **ret,
                             struct ck_error **reterr)
{
        _cleanup_(SSL_freep) SSL *ssl = NULL;
        _cleanup_close_ int fd = -1;
        struct broker_endpoint ep;
        _cleanup_error_ struct ck_error *attest_error = NULL;
        struct fetch_ctx f = {.ep = &ep,
                              .key = key,
                              .cert = cert,
                              .attestation = opts ? opts->broker_attestation : NULL,
                              .attest_error = &attest_error};
        unsigned timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : FETCH_TIMEOUT_MS_DEFAULT;
        int64_t deadline = ck_now_ms() + timeout_ms;
        struct ck_secret *secret;
        struct ck_buf resp;
        size_t body_off = 0;
        long status = 0;
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
        if (!ep.has_pin && !f.attestation)
                log_warn("broker %s: no certificate pin and kms-allow-unpinned is set: the broker is not "
                         "authenticated",
                         endpoint);

        fd = connect_tcp(&ep, endpoint, deadline, reterr);
        if (fd < 0)
                return fd;
        rc = tls_connect(fd, &f, endpoint, deadline, &ssl, reterr);
        if (rc == -EKEYREJECTED && f.pin_mismatch)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "broker %s: certificate does not match the pinned fingerprint",
                                    endpoint);
        if (rc == -EKEYREJECTED)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "broker %s: the broker's attestation failed: %s: %s", endpoint,
                                    f.attest_reason, ck_error_message(attest_error, -EKEYREJECTED));
        if (rc < 0)
                return rc;

        ck_buf_init_secret(&resp, BROKER_CLIENT_MAX_SECRET + RESPONSE_HEAD_MAX);
        rc = exchange(ssl, &f, endpoint, fn, userdata, deadline, &resp, reterr);
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
