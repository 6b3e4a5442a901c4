/* Registry client (OCI distribution spec) on libcurl easy handles.
 *
 * One client serves one registry and may be used from several threads at once (the pull runs
 * three blob downloads in parallel): each request takes an easy+multi handle pair from a small
 * pool (so connections are reused per pair), DNS and TLS sessions are shared through a CURLSH
 * (registry-conns.c, which may hand both on to the next client through a registry_keep), and the
 * auth state (challenge, token cache) is behind locks.
 *
 * The client is split by job (registry-internal.h lists the files); this one holds the request
 * loop and the public requests. Security rules kept across those files:
 *  - TLS verification is always on; plain HTTP only when the caller says the registry is
 *    insecure. Redirects: at most 10, https only (unless insecure).
 *  - Credentials go in an Authorization header we build per request; libcurl drops custom
 *    Authorization headers when a redirect changes host, port or scheme, and we never set
 *    CURLOPT_UNRESTRICTED_AUTH, so a blob redirect to a CDN carries no credentials.
 *  - Credentials are sent only after the registry challenged us (never preemptively; the
 *    challenge may be one the same registry sent an earlier client of this process), and
 *    the header strings are wiped after each request. Passwords and tokens never appear in
 *    an error message or a log line; curl's verbose mode is never enabled.
 *  - Every response body is capped in the write callback; a blob may not exceed the size its
 *    descriptor announced. Manifest digests are computed over the bytes received.
 *  - A 401 is retried once with fresh credentials, never more: no loops.
 *  - Transient failures (connection errors, 408/429/5xx) are retried with exponential backoff,
 *    honouring Retry-After, a bounded number of times; an interrupted blob resumes with a
 *    Range request (a 200 reply to it is handled by skipping what we already have).
 *  - Cancel: each transfer runs in a multi loop that polls at most 100 ms at a time and checks
 *    the cancel flag between polls (also while the peer sends nothing); the progress and write
 *    callbacks and the backoff sleeps (100 ms slices) check it too. */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "manifest.h"
#include "parse.h"
#include "registry-internal.h"

static const char manifest_accept[] =
        "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
        "application/vnd.docker.distribution.manifest.list.v2+json, "
        "application/vnd.docker.distribution.manifest.v2+json";

/* GET with auth and retries. On success x holds a 2xx response. */
static int request(struct registry_client *c, const struct req *q, struct xfer *x, struct ck_error **reterr)
{
        char errbuf[CURL_ERROR_SIZE];
        bool auth_retried = false;
        unsigned attempt = 0;
        int r;

        for (;;) {
                _cleanup_secret_ struct ck_secret *authz = NULL, *token = NULL;
                struct curl_slist *headers = NULL;
                bool transient = false, sent_auth;
                char range[64];

                if (registry_cancelled(c))
                        return registry_transport_error(c, q, -ECANCELED, "", reterr);
                if (q->kind != REQ_PING && q->kind != REQ_TOKEN) {
                        r = registry_auth_header(c, q->repo, &authz, &token, reterr);
                        if (r < 0) {
                                x->auth_failed = true;
                                return r;
                        }
                }
                sent_auth = authz != NULL;
                r = 0;
                if (authz)
                        r = registry_append_header(&headers, (const char *)authz->data);
                if (r >= 0 && q->accept)
                        r = registry_append_header(&headers, q->accept);
                if (r >= 0 && q->kind == REQ_BLOB && *x->delivered > 0) {
                        snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-", *x->delivered);
                        r = registry_append_header(&headers, range);
                }
                if (r < 0) {
                        registry_slist_free_wiped(headers);
                        return r;
                }
                r = registry_xfer_perform(c, q->url, headers, x, &transient, errbuf);
                registry_slist_free_wiped(headers);
                if (r < 0 && x->sink_failed)
                        return r;

                if (r < 0 && r != -ECANCELED && r != -EMSGSIZE && transient && attempt < c->retries) {
                        log_debug("registry %s: %s; retrying", c->domain, errbuf);
                        r = registry_sleep_cancellable(c, registry_retry_delay_ms(x, attempt++));
                        if (r < 0)
                                return registry_transport_error(c, q, r, "", reterr);
                        continue;
                }
                if (r < 0)
                        return registry_transport_error(c, q, r, errbuf, reterr);

                if (registry_status_ok(x->status)) {
                        /* A blob that ended early without a transport error: resume it. */
                        if (q->kind == REQ_BLOB && *x->delivered < x->max_total && attempt < c->retries) {
                                r = registry_sleep_cancellable(c, registry_retry_delay_ms(x, attempt++));
                                if (r < 0)
                                        return registry_transport_error(c, q, r, "", reterr);
                                continue;
                        }
                        if (q->kind == REQ_MANIFEST || q->kind == REQ_BLOB) {
                                /* The scheme we hold got us an answer: worth keeping. */
                                pthread_mutex_lock(&c->lock);
                                c->answered = true;
                                c->inherited = false;
                                pthread_mutex_unlock(&c->lock);
                        }
                        return 0;
                }
                if (x->status == 401 && q->kind != REQ_TOKEN && q->kind != REQ_PING && !auth_retried) {
                        /* Once: with credentials if we sent none, with a fresh token if ours was
                         * refused. Never a second time. */
                        bool changed = registry_learn_challenge(c, x), can_auth;

                        pthread_mutex_lock(&c->lock);
                        can_auth = c->challenge.scheme == REGISTRY_AUTH_BEARER ||
                                   (c->challenge.scheme == REGISTRY_AUTH_BASIC && c->basic);
                        pthread_mutex_unlock(&c->lock);
                        auth_retried = true;
                        if (token) {
                                _cleanup_free_ char *scope = NULL;

                                if (registry_scope_for(q->repo, &scope) < 0)
                                        return -ENOMEM;
                                registry_token_cache_drop(c->tokens, c->domain, scope, token);
                                continue;
                        }
                        if (!sent_auth && changed && can_auth)
                                continue;
                }
                if (registry_status_transient(x->status) && attempt < c->retries) {
                        log_debug("registry %s: HTTP %ld; retrying", c->domain, x->status);
                        r = registry_sleep_cancellable(c, registry_retry_delay_ms(x, attempt++));
                        if (r < 0)
                                return registry_transport_error(c, q, r, "", reterr);
                        continue;
                }
                return registry_status_error(c, q, x, reterr);
        }
}

/* GET /v2/ once per client, to learn how the registry wants us to authenticate. */
static int ping(struct registry_client *c, struct ck_error **reterr)
{
        _cleanup_free_ char *url = NULL;
        struct xfer x = {.c = c};
        struct req q = {.kind = REQ_PING};
        struct ck_error *err = NULL;
        struct ck_buf discard;
        bool done;
        int r;

        pthread_mutex_lock(&c->lock);
        done = c->pinged;
        pthread_mutex_unlock(&c->lock);
        if (done)
                return 0;
        if (asprintf(&url, "%s/v2/", c->base_url) < 0)
                return -ENOMEM;
        q.url = url;
        ck_buf_init(&discard, 64 << 10);
        ck_buf_init(&x.errbody, ERROR_BODY_MAX);
        ck_buf_init(&x.www_auth, REGISTRY_CHALLENGE_MAX);
        x.body = &discard;
        r = request(c, &q, &x, &err);
        if (r < 0 && x.status == 401) {
                struct registry_challenge ch = {0};

                /* Expected: the challenge tells us the scheme and, for Bearer, where tokens are. */
                ck_error_free(TAKE_PTR(err));
                r = registry_challenge_parse((const char *)x.www_auth.data, x.www_auth.len, &ch, &err);
                if (r < 0)
                        r = ck_error_prefix(&err, -EPROTO, "registry %s", c->domain);
                else if (ch.scheme == REGISTRY_AUTH_NONE)
                        r = ck_error_set(
                                &err, -EPROTO,
                                "registry %s asks for an authentication scheme other than Basic or Bearer",
                                c->domain);
                if (r >= 0) {
                        pthread_mutex_lock(&c->lock);
                        registry_challenge_clear(&c->challenge);
                        c->challenge = ch;
                        c->pinged = true;
                        pthread_mutex_unlock(&c->lock);
                } else {
                        registry_challenge_clear(&ch);
                }
        } else if (r >= 0) {
                pthread_mutex_lock(&c->lock);
                c->pinged = true;
                pthread_mutex_unlock(&c->lock);
        }
        ck_buf_free(&discard);
        ck_buf_free(&x.errbody);
        ck_buf_free(&x.www_auth);
        if (r < 0 && err && reterr && !*reterr)
                *reterr = TAKE_PTR(err);
        ck_error_free(err);
        return r;
}

/* True when the client's scheme came from a keep and no request confirmed it: it is then
 * forgotten, so that the next ping() asks the registry. */
static bool forget_inherited(struct registry_client *c)
{
        bool was;

        pthread_mutex_lock(&c->lock);
        was = c->inherited;
        if (was) {
                c->inherited = c->pinged = false;
                registry_challenge_clear(&c->challenge);
        }
        pthread_mutex_unlock(&c->lock);
        return was;
}

/* Repository names and references go into URLs: accept only their grammar's characters. */
static bool repo_valid(const char *s)
{
        size_t n = 0;

        if (!s || !*s)
                return false;
        for (; *s; s++, n++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr("._-/", *s)))
                        return false;
        return n <= 255;
}

static bool reference_valid(const char *s)
{
        size_t n = 0;

        if (!s || !*s)
                return false;
        if (image_digest_valid(s))
                return true;
        for (; *s; s++, n++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr("._-", *s)))
                        return false;
        return n <= 128;
}

static const EVP_MD *digest_md(const char *digest)
{
        return ck_startswith(digest, "sha512:") ? EVP_sha512() : EVP_sha256();
}

static int digest_of(const EVP_MD *md, const uint8_t *data, size_t len, char **ret)
{
        uint8_t out[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];

        if (EVP_Digest(data, len, out, &n, md, NULL) != 1)
                return -EIO;
        ck_hex_encode(out, n, hex);
        if (asprintf(ret, "%s:%s", md == EVP_sha512() ? "sha512" : "sha256", hex) < 0)
                return -ENOMEM;
        return 0;
}

int registry_get_manifest(struct registry_client *c, const char *repo, const char *reference,
                          uint8_t **ret_body, size_t *ret_len, char **ret_media_type, char **ret_digest,
                          struct ck_error **reterr)
{
        _cleanup_free_ char *url = NULL, *digest = NULL, *media_type = NULL;
        _cleanup_buf_ struct ck_buf body = {0};
        struct ck_error *err = NULL;
        struct xfer x = {.c = c};
        struct req q = {
                .kind = REQ_MANIFEST, .repo = repo, .reference = reference, .accept = manifest_accept};
        const EVP_MD *md;
        size_t mlen;
        int r;

        if (!repo_valid(repo))
                return ck_error_set(reterr, -EINVAL, "invalid repository name \"%.100s\"", repo ? repo : "");
        if (!reference_valid(reference))
                return ck_error_set(reterr, -EINVAL, "invalid tag or digest \"%.140s\"",
                                    reference ? reference : "");
        r = ping(c, reterr);
        if (r < 0)
                return r;
        if (asprintf(&url, "%s/v2/%s/manifests/%s", c->base_url, repo, reference) < 0)
                return -ENOMEM;
        q.url = url;
        ck_buf_init(&body, IMAGE_MANIFEST_MAX);
        ck_buf_init(&x.errbody, ERROR_BODY_MAX);
        ck_buf_init(&x.www_auth, REGISTRY_CHALLENGE_MAX);
        x.body = &body;
        r = request(c, &q, &x, &err);
        if (r < 0 && r != -ECANCELED && (x.status != 0 || x.auth_failed) && forget_inherited(c)) {
                /* The scheme kept from an earlier client may be stale (the registry changed
                 * its authentication, or the token realm moved): learn it again, as a new
                 * client would, and try once more. Not when the registry could not be reached
                 * at all: asking /v2/ would only repeat the retries. */
                log_debug("registry %s: %s; asking /v2/ again", c->domain, ck_error_message(err, r));
                ck_error_free(TAKE_PTR(err));
                r = ping(c, &err);
                if (r >= 0)
                        r = request(c, &q, &x, &err);
        }
        ck_buf_free(&x.errbody);
        ck_buf_free(&x.www_auth);
        if (r < 0) {
                if (err && reterr && !*reterr)
                        *reterr = TAKE_PTR(err);
                ck_error_free(err);
                return r;
        }

        md = image_digest_valid(reference) ? digest_md(reference) : EVP_sha256();
        r = digest_of(md, body.data, body.len, &digest);
        if (r < 0)
                return ck_error_set(reterr, r, "cannot hash the manifest");
        if (image_digest_valid(reference) && strcmp(digest, reference) != 0)
                return ck_error_set(reterr, -EBADMSG,
                                    "manifest %s@%s: digest mismatch (received content hashes to %s)", repo,
                                    reference, digest);
        mlen = strcspn(x.content_type, "; \t");
        media_type = strndup(x.content_type, mlen);
        if (!media_type)
                return -ENOMEM;
        *ret_len = body.len;
        *ret_body = ck_buf_take(&body, NULL);
        *ret_media_type = TAKE_PTR(media_type);
        *ret_digest = TAKE_PTR(digest);
        return 0;
}

int registry_get_blob(struct registry_client *c, const char *repo, const char *digest,
                      uint64_t expected_size, registry_sink_fn sink, void *userdata,
                      struct ck_error **reterr)
{
        _cleanup_free_ char *url = NULL;
        struct xfer x = {.c = c, .sink = sink, .userdata = userdata, .max_total = expected_size};
        struct req q = {.kind = REQ_BLOB, .repo = repo, .reference = digest};
        uint64_t delivered = 0;
        int r;

        if (!repo_valid(repo))
                return ck_error_set(reterr, -EINVAL, "invalid repository name \"%.100s\"", repo ? repo : "");
        if (!image_digest_valid(digest))
                return ck_error_set(reterr, -EINVAL, "invalid blob digest \"%.140s\"", digest ? digest : "");
        if (!sink)
                return ck_error_set(reterr, -EINVAL, "registry_get_blob: no sink");
        r = ping(c, reterr);
        if (r < 0)
                return r;
        if (asprintf(&url, "%s/v2/%s/blobs/%s", c->base_url, repo, digest) < 0)
                return -ENOMEM;
        q.url = url;
        x.delivered = &delivered;
        ck_buf_init(&x.errbody, ERROR_BODY_MAX);
        ck_buf_init(&x.www_auth, REGISTRY_CHALLENGE_MAX);
        r = request(c, &q, &x, reterr);
        ck_buf_free(&x.errbody);
        ck_buf_free(&x.www_auth);
        if (r < 0) {
                /* A failing sink has said why in its own error; do not mask it. */
                return r;
        }
        if (delivered != expected_size)
                return ck_error_set(reterr, -EBADMSG,
                                    "blob %s@%s: received %" PRIu64 " bytes, expected %" PRIu64, repo,
                                    digest, delivered, expected_size);
        return 0;
}
