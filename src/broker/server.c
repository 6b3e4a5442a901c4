/* RA-TLS secret server: TLS 1.3 with client certificates, the worker pool that verifies and
 * answers complete requests (head, then the evidence body), and the release decision.
 * Accepting, the handshake and reading the request happen on the reader's event loops
 * (reader.c), so a client that trickles bytes or holds its connection costs a socket until its
 * deadline, never a worker. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "broker-metrics.h"
#include "exporter.h"
#include "log.h"
#include "monotonic.h"
#include "parse.h"
#include "reader.h"
#include "server.h"
#include "ssl.h"

struct broker_server {
        struct broker_server_config cfg;
        SSL_CTX *ctx;
        int listen_fd;
        int stop_fd; /* eventfd */
        int sig_fd;  /* signalfd for SIGTERM, SIGINT, SIGHUP */
        uint16_t port;
        struct broker_reader *reader;

        pthread_mutex_t lock; /* guards everything below */
        pthread_cond_t cond;
        struct broker_conn **queue; /* ring of complete requests */
        size_t q_head, q_len;
        unsigned busy; /* connections being read, queued or served */
        bool stopping;
        pthread_t *threads;
        unsigned n_threads;
};

/* Identity */

int broker_cert_fingerprint(X509 *cert, char buf[72])
{
        uint8_t md[32];
        unsigned int n = sizeof(md);

        if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32)
                return -EIO;
        memcpy(buf, "sha256:", 7);
        ck_hex_encode(md, 32, buf + 7);
        return 0;
}

int broker_identity_generate(EVP_PKEY **ret_key, X509 **ret_cert, struct ck_error **reterr)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
        _cleanup_(X509_freep) X509 *cert = X509_new();
        _cleanup_(BN_freep) BIGNUM *serial = BN_new();
        X509_NAME *name;

        if (!key || !cert || !serial)
                return ck_ssl_error(reterr, -ENOMEM, "generating the broker key");
        if (BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
            !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) || X509_set_version(cert, 2) != 1 ||
            !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
            !X509_gmtime_adj(X509_getm_notAfter(cert), 365L * 24 * 3600) || X509_set_pubkey(cert, key) != 1)
                return ck_ssl_error(reterr, -EIO, "building the broker certificate");
        name = X509_get_subject_name(cert);
        if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"conker-broker", -1,
                                       -1, 0) != 1 ||
            X509_set_issuer_name(cert, name) != 1 || X509_sign(cert, key, EVP_sha256()) <= 0)
                return ck_ssl_error(reterr, -EIO, "signing the broker certificate");
        *ret_key = TAKE_PTR(key);
        *ret_cert = TAKE_PTR(cert);
        return 0;
}

int broker_identity_load(const char *cert_path, const char *key_path, EVP_PKEY **ret_key, X509 **ret_cert,
                         struct ck_error **reterr)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_fclose_ FILE *cf = NULL;
        int r;

        cf = fopen(cert_path, "re");
        if (!cf)
                return ck_error_errno(reterr, -errno, "%s", cert_path);
        cert = PEM_read_X509(cf, NULL, NULL, NULL);
        if (!cert)
                return ck_ssl_error(reterr, -EBADMSG, "%s: not a PEM certificate", cert_path);
        /* Not through stdio: its buffer would keep the key after fclose(). */
        r = ck_ssl_key_load_at(AT_FDCWD, key_path, &key, reterr);
        if (r < 0)
                return r;
        if (X509_check_private_key(cert, key) != 1)
                return ck_ssl_error(reterr, -EINVAL, "%s does not match %s", key_path, cert_path);
        *ret_key = TAKE_PTR(key);
        *ret_cert = TAKE_PTR(cert);
        return 0;
}

/* TLS */

/* OpenSSL's chain check runs first and has nothing to anchor a self-signed RA-TLS certificate
 * to. Accept here; the real check (quote, binding, policy) runs after the handshake on the
 * certificate the client proved possession of, so that a refusal can carry a reason. */
static int verify_defer(int preverify_ok, X509_STORE_CTX *x)
{
        return 1;
}

static int tls_context_new(const struct broker_server_config *cfg, SSL_CTX **ret, struct ck_error **reterr)
{
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

        if (!ctx)
                return ck_ssl_error(reterr, -ENOMEM, "SSL_CTX_new");
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
            SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
                return ck_ssl_error(reterr, -EIO, "restricting to TLS 1.3");
        if (SSL_CTX_use_certificate(ctx, cfg->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, cfg->key) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1)
                return ck_ssl_error(reterr, -EINVAL, "loading the broker identity");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_defer);
        /* Every connection attests afresh: no resumption, no tickets, no session cache. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        /* The secret crosses these sessions: wipe plaintext from the record buffers. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_CLEANSE_PLAINTEXT);
        SSL_CTX_set_num_tickets(ctx, 0);
        /* Evidence comes in the request body, so a client certificate is small; the bound is
         * generous enough for the old form (evidence in the certificate, without a large RTMR3
         * log) to complete the handshake and be told "evidence_not_bound". */
        SSL_CTX_set_max_cert_list(ctx, BROKER_MAX_CLIENT_CERT_LIST);
        /* Connections wait on the reader's loops, possibly many at once: no idle read/write
         * buffers while they do. */
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
        *ret = TAKE_PTR(ctx);
        return 0;
}

/* Waits for the direction OpenSSL asked for, until deadline. */
static int wait_io(int fd, int ssl_err, int64_t deadline)
{
        struct pollfd p = {.fd = fd, .events = ssl_err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN};
        int64_t left = deadline - ck_now_ms();
        int r;

        if (left <= 0)
                return -ETIMEDOUT;
        do
                r = poll(&p, 1, (int)left);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return -errno;
        return r == 0 ? -ETIMEDOUT : 0;
}

static int tls_write_all(SSL *ssl, int fd, const void *buf, size_t len, int64_t deadline)
{
        const uint8_t *p = buf;

        while (len > 0) {
                size_t n = 0;
                int r = SSL_write_ex(ssl, p, len, &n), e;
                if (r == 1) {
                        p += n;
                        len -= n;
                        continue;
                }
                e = SSL_get_error(ssl, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                        return -EPIPE;
                r = wait_io(fd, e, deadline);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int respond(SSL *ssl, int fd, int status, const char *status_text, const void *body, size_t body_len,
                   int64_t deadline)
{
        struct ck_buf b;
        int rc;

        /* The body may be the secret: the buffer is wiped. */
        ck_buf_init(&b, body_len + 512);
        rc = ck_buf_printf(&b,
                           "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                           "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                           status, status_text, body_len);
        if (rc >= 0)
                rc = ck_buf_append(&b, body, body_len);
        if (rc >= 0)
                rc = tls_write_all(ssl, fd, b.data, b.len, deadline);
        ck_buf_free_wiped(&b);
        return rc;
}

static int respond_error(SSL *ssl, int fd, int status, const char *status_text, const char *message,
                         int64_t deadline)
{
        char body[160];
        int n;

        /* message is always one of our own reason codes: no escaping needed. */
        n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", status, message);
        if (n < 0 || (size_t)n >= sizeof(body))
                return -EINVAL;
        return respond(ssl, fd, status, status_text, body, (size_t)n, deadline);
}

/* Logs and audits one decision. a: what verified evidence established (NULL: none). A refusal
 * with summarise set (nothing about the client verified) is only counted. */
static void audit(struct broker_server *s, const char *peer, const struct broker_decision *d,
                  const struct broker_attested *a, bool summarise, int *ret_rc)
{
        struct broker_audit_entry e = {.peer = peer,
                                       .release = d->allow,
                                       .reason = d->reason,
                                       .secret_id = d->secret_id,
                                       .pinned = d->pinned,
                                       .task_config_digest = d->task_config_digest};
        int rc;

        clock_gettime(CLOCK_REALTIME, &e.time);
        if (a) {
                e.result = &a->result;
                if (a->has_app_id) {
                        e.app_id = a->app_id;
                        e.app_id_len = a->app_id_len;
                }
        }
        if (d->allow)
                log_info("%s: release of secret \"%s\"%s", peer, d->secret_id,
                         a && a->cached ? " (cached quote verification)" : "");
        else if (!summarise)
                log_info("%s: refused: %s", peer, d->reason);
        else
                log_debug("%s: refused: %s", peer, d->reason);
        broker_metrics_decision(d);
        if (!s->cfg.audit) {
                *ret_rc = 0;
                return;
        }
        /* A client whose evidence did not verify is nobody in particular: its refusal is counted
         * and written in the next summary line (one write and one fsync per interval, however
         * many arrive), so that a flood of them costs the disk nothing. */
        if (summarise && !d->allow) {
                broker_audit_count_refusal(s->cfg.audit, d->reason);
                *ret_rc = 0;
                return;
        }
        rc = broker_audit_append(s->cfg.audit, &e);
        if (rc < 0)
                log_error("audit log: %s", strerror(-rc));
        *ret_rc = rc;
}

/* Decides and answers one request. The old form (GET, evidence in the certificate, bound to
 * nothing but a key) is refused without looking at its evidence. */
static void serve_secret(struct broker_server *s, SSL *ssl, int fd, const char *peer,
                         const struct broker_request *req, const struct ck_buf *body, int64_t deadline)
{
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_secret_ struct ck_secret *secret = NULL;
        _cleanup_(broker_attested_clear) struct broker_attested a = {0};
        _cleanup_(attest_rt_log_clear) struct attest_rt_log log = {0};
        struct broker_decision d = {0};
        const char *reason = NULL;
        X509 *cert = SSL_get0_peer_certificate(ssl);
        uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN];
        bool have_evidence = false, quote_verified = false;
        int rc, arc = 0;

        if (s->cfg.bench_skip_attestation) {
                if (broker_secret_store_get(s->cfg.secrets, s->cfg.policy->secrets[0].id, &secret) < 0)
                        respond_error(ssl, fd, 503, "Service Unavailable", "secret_unavailable", deadline);
                else
                        respond(ssl, fd, 200, "OK", secret->data, secret->len, deadline);
                return;
        }

        if (!cert) {
                d.reason = "no_certificate";
        } else if (!req->post) {
                d.reason = "evidence_not_bound";
        } else if (broker_tls_exporter(ssl, exporter) < 0) {
                d.reason = "internal_error";
                log_error("%s: cannot compute the TLS exporter value", peer);
        } else {
                rc = broker_verifier_check(s->cfg.verifier, body->data, body->len, cert, exporter,
                                           time(NULL), &a, &reason, &err);
                if (rc < 0) {
                        log_warn("%s: attestation failed (%s): %s", peer, reason, ck_error_message(err, rc));
                        d.reason = reason;
                        quote_verified = broker_verifier_reason_after_quote(reason);
                } else if (a.rtmr3_log &&
                           attest_rt_log_parse(a.rtmr3_log, a.rtmr3_log_len, &log, &err) < 0) {
                        /* Cannot happen: the verifier parsed and replayed it. */
                        log_warn("%s: RTMR3 log: %s", peer, ck_error_message(err, -EBADMSG));
                        d.reason = "binding_invalid";
                        quote_verified = true;
                } else {
                        struct broker_evidence ev = {.result = &a.result,
                                                     .app_id = a.has_app_id ? a.app_id : NULL,
                                                     .app_id_len = a.app_id_len,
                                                     .rtmr3_log = a.rtmr3_log ? &log : NULL,
                                                     .task_config = a.task_config,
                                                     .task_config_len = a.task_config_len};
                        have_evidence = true;
                        broker_policy_decide(s->cfg.policy, &ev, &d);
                }
        }
        OPENSSL_cleanse(exporter, sizeof(exporter));

        if (d.allow) {
                rc = broker_secret_store_get(s->cfg.secrets, d.secret_id, &secret);
                if (rc < 0) {
                        /* A deleted secret file is a revocation (secret-store.h). */
                        d = (struct broker_decision){.reason = rc == -EKEYREVOKED ? "secret_revoked"
                                                                                  : "secret_unavailable"};
                        audit(s, peer, &d, have_evidence ? &a : NULL, !have_evidence && !quote_verified,
                              &arc);
                        respond_error(ssl, fd, 503, "Service Unavailable", d.reason, deadline);
                        return;
                }
        }
        audit(s, peer, &d, have_evidence ? &a : NULL, !have_evidence && !quote_verified, &arc);
        if (d.allow && arc < 0) {
                /* No release without its audit record. */
                respond_error(ssl, fd, 500, "Internal Server Error", "audit_failed", deadline);
                return;
        }
        if (d.allow)
                respond(ssl, fd, 200, "OK", secret->data, secret->len, deadline);
        else
                respond_error(ssl, fd, 403, "Forbidden", d.reason, deadline);
}

/* Answers one request read by the reader: an error status when it could not be read as one
 * request, else the release decision. */
static void serve_request(struct broker_server *s, struct broker_conn *c)
{
        int64_t deadline = ck_now_ms() + s->cfg.request_timeout_ms;
        int rc = c->error;

        if (rc == -E2BIG)
                respond_error(c->ssl, c->fd, 431, "Request Header Fields Too Large", "request_too_large",
                              deadline);
        else if (rc == -EFBIG)
                respond_error(c->ssl, c->fd, 413, "Content Too Large", "request_too_large", deadline);
        else if (rc < 0)
                respond_error(c->ssl, c->fd, 400, "Bad Request", "bad_request", deadline);
        else
                serve_secret(s, c->ssl, c->fd, c->peer, &c->request, &c->body, deadline);
        SSL_shutdown(c->ssl); /* best effort close_notify */
        ERR_clear_error();
}

static void *worker_main(void *arg)
{
        struct broker_server *s = arg;

        for (;;) {
                struct broker_conn *c;

                pthread_mutex_lock(&s->lock);
                while (s->q_len == 0 && !s->stopping)
                        pthread_cond_wait(&s->cond, &s->lock);
                if (s->q_len == 0) {
                        pthread_mutex_unlock(&s->lock);
                        return NULL;
                }
                c = s->queue[s->q_head];
                s->q_head = (s->q_head + 1) % s->cfg.max_clients;
                s->q_len--;
                pthread_mutex_unlock(&s->lock);

                serve_request(s, c);
                broker_conn_free(c);

                pthread_mutex_lock(&s->lock);
                s->busy--;
                pthread_mutex_unlock(&s->lock);
        }
}

/* The reader's callbacks (reader.h), on its I/O threads. */
static bool conn_admit(void *userdata)
{
        struct broker_server *s = userdata;
        bool ok;

        pthread_mutex_lock(&s->lock);
        ok = s->busy < s->cfg.max_clients;
        if (ok)
                s->busy++;
        pthread_mutex_unlock(&s->lock);
        return ok;
}

static void conn_dispatch(void *userdata, struct broker_conn *c)
{
        struct broker_server *s = userdata;

        /* busy counts every connection in the queue, so the ring (max_clients) has room. */
        pthread_mutex_lock(&s->lock);
        s->queue[(s->q_head + s->q_len) % s->cfg.max_clients] = c;
        s->q_len++;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

static void conn_released(void *userdata)
{
        struct broker_server *s = userdata;

        pthread_mutex_lock(&s->lock);
        s->busy--;
        pthread_mutex_unlock(&s->lock);
}

static int listen_socket(const char *address, uint16_t port, int *ret_fd, uint16_t *ret_port,
                         struct ck_error **reterr)
{
        struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
                                 .ai_socktype = SOCK_STREAM};
        struct addrinfo *ai = NULL;
        struct sockaddr_storage sa = {0};
        socklen_t sl = sizeof(sa);
        _cleanup_close_ int fd = -1;
        char portstr[8];
        int one = 1, r;

        snprintf(portstr, sizeof(portstr), "%u", port);
        r = getaddrinfo(address, portstr, &hints, &ai);
        if (r != 0)
                return ck_error_set(reterr, -EINVAL,
                                    "listen address \"%s\": %s (a numeric IPv4 or IPv6 address)", address,
                                    gai_strerror(r));
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                freeaddrinfo(ai);
                return ck_error_errno(reterr, -errno, "socket");
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                r = -errno;
                freeaddrinfo(ai);
                return ck_error_errno(reterr, r, "binding %s port %u", address, port);
        }
        freeaddrinfo(ai);
        if (listen(fd, 512) < 0)
                return ck_error_errno(reterr, -errno, "listen");
        if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
                return ck_error_errno(reterr, -errno, "getsockname");
        *ret_port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                                   : ((struct sockaddr_in *)&sa)->sin_port);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int broker_server_new(const struct broker_server_config *cfg, struct broker_server **ret,
                      struct ck_error **reterr)
{
        _cleanup_(broker_server_freep) struct broker_server *s = NULL;
        sigset_t mask;
        int rc;

        if (!cfg->policy || !cfg->secrets || (!cfg->verifier && !cfg->bench_skip_attestation) || !cfg->key ||
            !cfg->cert)
                return ck_error_set(reterr, -EINVAL, "broker server: incomplete configuration");
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->cfg = *cfg;
        s->listen_fd = s->stop_fd = s->sig_fd = -1;
        if (!s->cfg.workers)
                s->cfg.workers = 4;
        if (!s->cfg.max_clients)
                s->cfg.max_clients = 256;
        if (!s->cfg.handshake_timeout_ms)
                s->cfg.handshake_timeout_ms = 10000;
        if (!s->cfg.request_timeout_ms)
                s->cfg.request_timeout_ms = 10000;
        if (!s->cfg.max_request_bytes)
                s->cfg.max_request_bytes = BROKER_REQUEST_MAX_BYTES;
        if (!s->cfg.max_body_bytes || s->cfg.max_body_bytes > ATTEST_RATLS_EVIDENCE_MAX)
                s->cfg.max_body_bytes = ATTEST_RATLS_EVIDENCE_MAX;
        if (!s->cfg.io_threads) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                s->cfg.io_threads = n < 1 ? 1 : n > 4 ? 4 : (unsigned)n;
        }
        if (!s->cfg.audit_summary_secs)
                s->cfg.audit_summary_secs = BROKER_AUDIT_SUMMARY_DEFAULT_SECS;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        s->queue = calloc(s->cfg.max_clients, sizeof(*s->queue));
        s->threads = calloc(s->cfg.workers, sizeof(*s->threads));
        if (!s->queue || !s->threads)
                return -ENOMEM;

        rc = tls_context_new(&s->cfg, &s->ctx, reterr);
        if (rc < 0)
                return rc;
        rc = listen_socket(cfg->address ? cfg->address : "0.0.0.0", cfg->port, &s->listen_fd, &s->port,
                           reterr);
        if (rc < 0)
                return rc;
        s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->stop_fd < 0)
                return ck_error_errno(reterr, -errno, "eventfd");
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        s->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (s->sig_fd < 0)
                return ck_error_errno(reterr, -errno, "signalfd");

        for (unsigned i = 0; i < s->cfg.workers; i++) {
                rc = pthread_create(&s->threads[i], NULL, worker_main, s);
                if (rc != 0)
                        return ck_error_errno(reterr, -rc, "starting worker %u", i);
                s->n_threads++;
        }
        rc = broker_reader_start(
                &(struct broker_reader_config){.ctx = s->ctx,
                                               .listen_fd = s->listen_fd,
                                               .threads = s->cfg.io_threads,
                                               .handshake_timeout_ms = s->cfg.handshake_timeout_ms,
                                               .request_timeout_ms = s->cfg.request_timeout_ms,
                                               .max_head = s->cfg.max_request_bytes,
                                               .max_body = s->cfg.max_body_bytes,
                                               .admit = conn_admit,
                                               .dispatch = conn_dispatch,
                                               .released = conn_released,
                                               .userdata = s},
                &s->reader, reterr);
        if (rc < 0)
                return rc;
        *ret = TAKE_PTR(s);
        return 0;
}

uint16_t broker_server_port(const struct broker_server *s)
{
        return s->port;
}

void broker_server_stop(struct broker_server *s)
{
        uint64_t one = 1;
        ssize_t r = write(s->stop_fd, &one, sizeof(one));

        (void)r;
}

static void audit_flush(struct broker_server *s)
{
        int rc;

        if (!s->cfg.audit)
                return;
        rc = broker_audit_flush_refusals(s->cfg.audit);
        if (rc < 0)
                log_error("audit log: %s", strerror(-rc));
}

/* Stops the reader (it finishes the connections it holds), then the workers once they have
 * answered everything queued. */
static void stop_all(struct broker_server *s)
{
        if (s->reader) {
                broker_reader_stop_accepting(s->reader);
                /* New connections are refused from here on, rather than left in the backlog. */
                s->listen_fd = safe_close(s->listen_fd);
                broker_reader_drain(s->reader);
        }
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        for (unsigned i = 0; i < s->n_threads; i++)
                pthread_join(s->threads[i], NULL);
        s->n_threads = 0;
}

int broker_server_run(struct broker_server *s, struct ck_error **reterr)
{
        int ifd = broker_secret_store_fd(s->cfg.secrets);
        int64_t summary_at = ck_now_ms() + (int64_t)s->cfg.audit_summary_secs * 1000;

        for (;;) {
                struct pollfd p[3] = {
                        {.fd = s->stop_fd, .events = POLLIN},
                        {.fd = s->sig_fd, .events = POLLIN},
                        {.fd = ifd, .events = POLLIN},
                };
                int64_t left = summary_at - ck_now_ms();
                int r;

                if (left <= 0) {
                        audit_flush(s);
                        summary_at = ck_now_ms() + (int64_t)s->cfg.audit_summary_secs * 1000;
                        continue;
                }
                r = poll(p, 3, (int)left);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return ck_error_errno(reterr, -errno, "poll");
                }
                if (p[2].revents & POLLIN) {
                        r = broker_secret_store_process(s->cfg.secrets);
                        if (r < 0)
                                log_error("secret watch: %s", strerror(-r));
                }
                if (p[1].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        if (read(s->sig_fd, &si, sizeof(si)) == sizeof(si)) {
                                if (si.ssi_signo == SIGHUP) {
                                        log_info("SIGHUP: reloading secrets");
                                        broker_secret_store_reload_all(s->cfg.secrets);
                                } else {
                                        log_info("%s: stopping", strsignal((int)si.ssi_signo));
                                        break;
                                }
                        }
                }
                if (p[0].revents & POLLIN)
                        break;
        }

        /* Stop accepting; what was accepted is read, answered and audited, then the summary of
         * refusals since the last one is written. */
        stop_all(s);
        audit_flush(s);
        return 0;
}

void broker_server_free(struct broker_server *s)
{
        if (!s)
                return;
        stop_all(s);
        broker_reader_free(s->reader);
        for (size_t i = 0; i < s->q_len; i++)
                broker_conn_free(s->queue[(s->q_head + i) % s->cfg.max_clients]);
        safe_close(s->listen_fd);
        safe_close(s->stop_fd);
        safe_close(s->sig_fd);
        SSL_CTX_free(s->ctx);
        free(s->queue);
        free(s->threads);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
}
