/* Registry client authentication on the network: the Authorization header of a request (Basic
 * only after the registry asked for it, or a Bearer token from the cache or the token server),
 * the token fetch itself, and learning the challenge of a 401 reply. Header lines are secrets,
 * wiped after use; the parsing without network is in auth.c. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "monotonic.h"
#include "parse.h"
#include "registry-internal.h"

int registry_append_header(struct curl_slist **l, const char *line)
{
        struct curl_slist *n = curl_slist_append(*l, line);

        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static int url_escape(const char *s, char **ret)
{
        char *e = curl_easy_escape(NULL, s, 0), *copy;

        if (!e)
                return -ENOMEM;
        copy = strdup(e);
        curl_free(e);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static int fetch_token(struct registry_client *c, const struct registry_challenge *ch, const char *scope,
                       struct ck_secret **ret, uint64_t *ret_expires, struct ck_error **reterr);

/* "Authorization: <prefix><credential>" as a secret (the caller wipes it with ck_secret_free). */
static struct ck_secret *authz_line(const char *prefix, const struct ck_secret *cred)
{
        static const char head[] = "Authorization: ";
        size_t hl = strlen(head), pl = strlen(prefix), n;
        struct ck_secret *line;

        if (cred->len > SIZE_MAX / 2)
                return NULL;
        n = hl + pl + cred->len;
        line = ck_secret_alloc(n);
        if (!line)
                return NULL;
        memcpy(line->data, head, hl);
        memcpy(line->data + hl, prefix, pl);
        memcpy(line->data + hl + pl, cred->data, cred->len);
        line->data[n] = 0;
        return line;
}

int registry_scope_for(const char *repo, char **ret)
{
        if (asprintf(ret, "repository:%s:pull", repo) < 0)
                return -ENOMEM;
        return 0;
}

/* The Authorization header line for a request to repo, or NULL (*ret untouched) when the
 * registry did not ask for credentials. ret_token receives the bearer token used (to drop it
 * from the cache if it is rejected). */
int registry_auth_header(struct registry_client *c, const char *repo, struct ck_secret **ret,
                         struct ck_secret **ret_token, struct ck_error **reterr)
{
        _cleanup_(registry_challenge_clear) struct registry_challenge ch = {0};
        _cleanup_secret_ struct ck_secret *token = NULL;
        _cleanup_free_ char *scope = NULL;
        enum registry_auth_scheme scheme;
        struct ck_secret *line;
        uint64_t expires = 0;
        int r;

        pthread_mutex_lock(&c->lock);
        scheme = c->challenge.scheme;
        if (scheme == REGISTRY_AUTH_BEARER) {
                ch.scheme = scheme;
                ch.realm = strdup(c->challenge.realm);
                ch.service = c->challenge.service ? strdup(c->challenge.service) : NULL;
                if (!ch.realm || (c->challenge.service && !ch.service))
                        scheme = _REGISTRY_AUTH_SCHEME_MAX; /* OOM marker */
        }
        pthread_mutex_unlock(&c->lock);
        if (scheme == _REGISTRY_AUTH_SCHEME_MAX)
                return -ENOMEM;

        if (scheme == REGISTRY_AUTH_NONE)
                return 0;
        if (scheme == REGISTRY_AUTH_BASIC) {
                if (!c->basic)
                        return 0; /* anonymous: let the 401 say authentication is needed */
                line = authz_line("", c->basic);
                if (!line)
                        return -ENOMEM;
                *ret = line;
                return 0;
        }

        /* Bearer. */
        if (repo)
                r = registry_scope_for(repo, &scope);
        else
                r = (scope = strdup("")) ? 0 : -ENOMEM;
        if (r < 0)
                return r;
        r = registry_token_cache_get(c->tokens, c->domain, scope, (uint64_t)ck_now_us(), &token);
        if (r == -ENOENT) {
                r = fetch_token(c, &ch, repo ? scope : NULL, &token, &expires, reterr);
                if (r < 0)
                        return r;
                r = registry_token_cache_put(c->tokens, c->domain, scope, token, expires,
                                             (uint64_t)ck_now_us());
        }
        if (r < 0)
                return r;
        line = authz_line("Bearer ", token);
        if (!line)
                return -ENOMEM;
        *ret = line;
        if (ret_token)
                *ret_token = TAKE_PTR(token);
        return 0;
}

/* Learns the challenge of a 401 reply. Returns true when there is something new to try. */
bool registry_learn_challenge(struct registry_client *c, const struct xfer *x)
{
        struct registry_challenge ch = {0};
        bool changed = false;

        if (x->www_auth.len == 0 ||
            registry_challenge_parse((const char *)x->www_auth.data, x->www_auth.len, &ch, NULL) < 0)
                return false;
        if (ch.scheme == REGISTRY_AUTH_NONE) {
                registry_challenge_clear(&ch);
                return false;
        }
        pthread_mutex_lock(&c->lock);
        if (c->challenge.scheme != ch.scheme ||
            (ch.realm && (!c->challenge.realm || strcmp(ch.realm, c->challenge.realm) != 0))) {
                registry_challenge_clear(&c->challenge);
                c->challenge = ch;
                ch = (struct registry_challenge){0};
                changed = true;
        }
        pthread_mutex_unlock(&c->lock);
        registry_challenge_clear(&ch);
        return changed;
}

static int fetch_token(struct registry_client *c, const struct registry_challenge *ch, const char *scope,
                       struct ck_secret **ret, uint64_t *ret_expires, struct ck_error **reterr)
{
        _cleanup_free_ char *url = NULL, *esc_service = NULL, *esc_scope = NULL;
        struct ck_buf body = {0};
        struct curl_slist *headers = NULL;
        char errbuf[CURL_ERROR_SIZE];
        struct xfer x = {.c = c};
        unsigned attempt = 0;
        bool transient;
        int r;

        if (!(ck_startswith(ch->realm, "https://") ||
              (c->plain_http && ck_startswith(ch->realm, "http://"))))
                return ck_error_set(reterr, -EPROTO, "registry %s: token realm must be an https:// URL",
                                    c->domain);
        for (const char *p = ch->realm; *p; p++)
                if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
                        return ck_error_set(reterr, -EPROTO, "registry %s: token realm is not a clean URL",
                                            c->domain);
        if ((ch->service && url_escape(ch->service, &esc_service) < 0) ||
            (scope && url_escape(scope, &esc_scope) < 0))
                return -ENOMEM;
        if (asprintf(&url, "%s%s%s%s%s%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?",
                     esc_service ? "service=" : "", esc_service ? esc_service : "",
                     esc_scope ? (esc_service ? "&scope=" : "scope=") : "",
                     esc_scope ? esc_scope : "") < 0) {
                url = NULL;
                return -ENOMEM;
        }

        ck_buf_init_secret(&body, REGISTRY_TOKEN_BODY_MAX); /* the token */
        ck_buf_init(&x.errbody, ERROR_BODY_MAX);
        ck_buf_init(&x.www_auth, REGISTRY_CHALLENGE_MAX);
        x.body = &body;
        for (;;) {
                headers = NULL;
                if (c->basic) {
                        /* The realm is where the registry sent us to log in: credentials go there. */
                        _cleanup_secret_ struct ck_secret *line = authz_line("", c->basic);

                        if (!line) {
                                r = -ENOMEM;
                                goto out;
                        }
                        r = registry_append_header(&headers, (const char *)line->data);
                        if (r < 0)
                                goto out;
                }
                r = registry_xfer_perform(c, url, headers, &x, &transient, errbuf);
                registry_slist_free_wiped(headers);
                headers = NULL;
                if ((r < 0 && transient && attempt < c->retries) ||
                    (r == 0 && registry_status_transient(x.status) && attempt < c->retries)) {
                        r = registry_sleep_cancellable(c, registry_retry_delay_ms(&x, attempt++));
                        if (r < 0)
                                break;
                        continue;
                }
                break;
        }
        if (r < 0) {
                struct req q = {.kind = REQ_TOKEN, .repo = NULL};

                r = registry_transport_error(c, &q, r, errbuf, reterr);
                goto out;
        }
        if (x.status != 200) {
                struct req q = {.kind = REQ_TOKEN, .repo = NULL};

                r = registry_status_error(c, &q, &x, reterr);
                goto out;
        }
        r = registry_token_parse(body.data, body.len, ret, ret_expires, reterr);
        if (r < 0)
                r = ck_error_prefix(reterr, r, "registry %s", c->domain);
out:
        ck_buf_free(&body);
        ck_buf_free(&x.errbody);
        ck_buf_free(&x.www_auth);
        return r;
}
