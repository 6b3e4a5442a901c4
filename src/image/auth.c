/* Registry authentication without the network: challenge parsing (RFC 7235 grammar with a
 * bounded cursor), token replies, Basic credentials and the bearer token cache. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "json.h"

#define CHALLENGE_PARAMS_MAX 32
#define EXPIRES_DEFAULT      60
#define EXPIRES_MAX          86400
#define EXPIRY_MARGIN_USEC   (10ULL * 1000 * 1000)

static const char *const scheme_table[_REGISTRY_AUTH_SCHEME_MAX] = {
        [REGISTRY_AUTH_NONE] = "none",
        [REGISTRY_AUTH_BASIC] = "Basic",
        [REGISTRY_AUTH_BEARER] = "Bearer",
};

const char *registry_auth_scheme_to_string(enum registry_auth_scheme s)
{
        if ((int)s < 0 || s >= _REGISTRY_AUTH_SCHEME_MAX)
                return NULL;
        return scheme_table[s];
}

void registry_challenge_clear(struct registry_challenge *c)
{
        if (!c)
                return;
        free(c->realm);
        free(c->service);
        free(c->scope);
        free(c->error);
        *c = (struct registry_challenge){0};
}

/* RFC 7230 tchar. */
static bool is_tchar(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c && strchr("!#$%&'*+-.^_`|~", c));
}

struct scan {
        const char *p;
        size_t len, off;
};

static void skip_ws(struct scan *s)
{
        while (s->off < s->len && (s->p[s->off] == ' ' || s->p[s->off] == '\t'))
                s->off++;
}

static size_t take_token(struct scan *s)
{
        size_t start = s->off;

        while (s->off < s->len && is_tchar(s->p[s->off]))
                s->off++;
        return s->off - start;
}

/* A quoted-string (the opening quote is at s->off) or a token, unescaped into out. */
static int take_value(struct scan *s, char *out, size_t out_size, size_t *ret_len)
{
        size_t n = 0;

        if (s->off < s->len && s->p[s->off] == '"') {
                s->off++;
                for (;;) {
                        char c;

                        if (s->off >= s->len)
                                return -EBADMSG; /* unterminated */
                        c = s->p[s->off++];
                        if (c == '"')
                                break;
                        if (c == '\\') {
                                if (s->off >= s->len)
                                        return -EBADMSG;
                                c = s->p[s->off++];
                        }
                        if ((unsigned char)c < 0x20 && c != '\t')
                                return -EBADMSG;
                        if ((unsigned char)c == 0x7f)
                                return -EBADMSG;
                        if (n + 1 >= out_size)
                                return -EMSGSIZE;
                        out[n++] = c;
                }
        } else {
                size_t start = s->off, tl = take_token(s);

                /* token68 may end in '=' padding. */
                while (s->off < s->len && s->p[s->off] == '=')
                        s->off++, tl++;
                if (tl == 0)
                        return -EBADMSG;
                if (tl + 1 > out_size)
                        return -EMSGSIZE;
                memcpy(out, s->p + start, tl);
                n = tl;
        }
        out[n] = 0;
        *ret_len = n;
        return 0;
}

static enum registry_auth_scheme scheme_from(const char *p, size_t len)
{
        if (len == 5 && strncasecmp(p, "basic", 5) == 0)
                return REGISTRY_AUTH_BASIC;
        if (len == 6 && strncasecmp(p, "bearer", 6) == 0)
                return REGISTRY_AUTH_BEARER;
        return REGISTRY_AUTH_NONE;
}

int registry_challenge_parse(const char *buf, size_t len, struct registry_challenge *ret,
                             struct ck_error **reterr)
{
        _cleanup_(registry_challenge_clear) struct registry_challenge best = {0}, cur = {0};
        _cleanup_free_ char *value = NULL;
        struct scan s = {.p = buf, .len = len};
        unsigned n_params = 0;
        int r;

        if (len > REGISTRY_CHALLENGE_MAX)
                return ck_error_set(reterr, -EMSGSIZE, "WWW-Authenticate is over %u bytes",
                                    REGISTRY_CHALLENGE_MAX);
        value = malloc(REGISTRY_AUTH_VALUE_MAX + 1);
        if (!value)
                return -ENOMEM;

        for (;;) {
                enum registry_auth_scheme scheme;
                const char *scheme_p;
                size_t scheme_len;

                /* Between challenges: spaces and empty list elements. */
                while (s.off < s.len && (s.p[s.off] == ' ' || s.p[s.off] == '\t' || s.p[s.off] == ','))
                        s.off++;
                if (s.off >= s.len)
                        break;
                scheme_p = s.p + s.off;
                scheme_len = take_token(&s);
                if (scheme_len == 0)
                        return ck_error_set(reterr, -EBADMSG,
                                            "WWW-Authenticate: expected an auth scheme at byte %zu", s.off);
                scheme = scheme_from(scheme_p, scheme_len);
                registry_challenge_clear(&cur);
                cur.scheme = scheme;

                /* Parameters, until the next scheme or the end. */
                for (;;) {
                        size_t save, name_len, vlen = 0;
                        const char *name;
                        char **slot = NULL;

                        while (s.off < s.len &&
                               (s.p[s.off] == ' ' || s.p[s.off] == '\t' || s.p[s.off] == ','))
                                s.off++;
                        if (s.off >= s.len)
                                break;
                        save = s.off;
                        name = s.p + s.off;
                        name_len = take_token(&s);
                        if (name_len == 0)
                                return ck_error_set(reterr, -EBADMSG,
                                                    "WWW-Authenticate: unexpected character at byte %zu",
                                                    s.off);
                        skip_ws(&s);
                        if (s.off >= s.len || s.p[s.off] != '=') {
                                /* A token not followed by '=' starts the next challenge... unless it
                                 * is token68 right after the scheme, which we do not use. */
                                s.off = save;
                                break;
                        }
                        s.off++;
                        skip_ws(&s);
                        if (++n_params > CHALLENGE_PARAMS_MAX)
                                return ck_error_set(reterr, -EMSGSIZE,
                                                    "WWW-Authenticate: more than %d parameters",
                                                    CHALLENGE_PARAMS_MAX);
                        r = take_value(&s, value, REGISTRY_AUTH_VALUE_MAX + 1, &vlen);
                        if (r == -EMSGSIZE)
                                return ck_error_set(reterr, r, "WWW-Authenticate: \"%.*s\" is over %d bytes",
                                                    (int)name_len, name, REGISTRY_AUTH_VALUE_MAX);
                        if (r < 0)
                                return ck_error_set(reterr, r,
                                                    "WWW-Authenticate: malformed value of \"%.*s\"",
                                                    (int)name_len, name);
                        if (strlen(value) != vlen)
                                return ck_error_set(reterr, -EBADMSG,
                                                    "WWW-Authenticate: NUL byte in a value");
                        if (name_len == 5 && strncasecmp(name, "realm", 5) == 0)
                                slot = &cur.realm;
                        else if (name_len == 7 && strncasecmp(name, "service", 7) == 0)
                                slot = &cur.service;
                        else if (name_len == 5 && strncasecmp(name, "scope", 5) == 0)
                                slot = &cur.scope;
                        else if (name_len == 5 && strncasecmp(name, "error", 5) == 0)
                                slot = &cur.error;
                        if (slot && !*slot) {
                                *slot = strdup(value);
                                if (!*slot)
                                        return -ENOMEM;
                        }
                        skip_ws(&s);
                        if (s.off < s.len && s.p[s.off] != ',')
                                return ck_error_set(reterr, -EBADMSG,
                                                    "WWW-Authenticate: expected ',' after \"%.*s\"",
                                                    (int)name_len, name);
                }

                if (cur.scheme != REGISTRY_AUTH_NONE && cur.scheme > best.scheme) {
                        registry_challenge_clear(&best);
                        best = cur;
                        cur = (struct registry_challenge){0};
                }
        }

        if (best.scheme == REGISTRY_AUTH_BEARER && !best.realm)
                return ck_error_set(reterr, -EBADMSG, "WWW-Authenticate: Bearer challenge without a realm");
        *ret = best;
        best = (struct registry_challenge){0};
        return 0;
}

static bool token_chars_ok(const char *t, size_t len)
{
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
                        return false;
        return true;
}

int registry_token_parse(const uint8_t *buf, size_t len, struct ck_secret **ret_token,
                         uint64_t *ret_expires_in, struct ck_error **reterr)
{
        _cleanup_json_ json_t *root = NULL;
        json_t *t, *e;
        const char *tok;
        size_t tlen;
        uint64_t expires = EXPIRES_DEFAULT;
        struct ck_secret *secret;
        int r;

        r = ck_json_loadb(buf, len, REGISTRY_TOKEN_BODY_MAX, &root, NULL);
        if (r < 0)
                return ck_error_set(reterr, r == -E2BIG ? -EMSGSIZE : -EBADMSG,
                                    "token server reply is not a JSON document of at most %u bytes",
                                    REGISTRY_TOKEN_BODY_MAX);
        if (!json_is_object(root))
                return ck_error_set(reterr, -EBADMSG, "token server reply is not a JSON object");
        t = json_object_get(root, "token");
        if (!json_is_string(t) || json_string_length(t) == 0)
                t = json_object_get(root, "access_token");
        if (!json_is_string(t) || json_string_length(t) == 0)
                return ck_error_set(reterr, -EBADMSG,
                                    "token server reply has no \"token\" or \"access_token\"");
        tok = json_string_value(t);
        tlen = json_string_length(t);
        if (tlen > REGISTRY_TOKEN_MAX)
                return ck_error_set(reterr, -EMSGSIZE, "token is over %u bytes", REGISTRY_TOKEN_MAX);
        /* Never echo the token: it may be valid even when malformed. */
        if (!token_chars_ok(tok, tlen))
                return ck_error_set(reterr, -EBADMSG, "token contains spaces or non-printable characters");
        e = json_object_get(root, "expires_in");
        if (e && !json_is_null(e)) {
                if (!json_is_integer(e))
                        return ck_error_set(reterr, -EBADMSG,
                                            "token server reply: \"expires_in\" is not an integer");
                if (json_integer_value(e) > EXPIRES_DEFAULT)
                        expires = json_integer_value(e) > EXPIRES_MAX ? EXPIRES_MAX
                                                                      : (uint64_t)json_integer_value(e);
        }
        secret = ck_secret_new(tok, tlen);
        if (!secret)
                return -ENOMEM;
        *ret_token = secret;
        if (ret_expires_in)
                *ret_expires_in = expires;
        return 0;
}

/* An uninitialised secret of len bytes (NUL-terminated). */
static struct ck_secret *secret_alloc(size_t len)
{
        return ck_secret_alloc(len);
}

int registry_basic_credentials(const char *user, const struct ck_secret *password, struct ck_secret **ret,
                               struct ck_error **reterr)
{
        struct ck_secret *plain = NULL, *out = NULL;
        size_t ulen, plen, enc_len;
        int n;

        if (!user || !password)
                return ck_error_set(reterr, -EINVAL,
                                    "Basic authentication needs a user name and a password");
        ulen = strlen(user);
        if (ulen == 0 || ulen > 1024 || strchr(user, ':'))
                return ck_error_set(reterr, -EINVAL,
                                    "registry user name must be 1-1024 characters without ':'");
        for (size_t i = 0; i < ulen; i++)
                if ((unsigned char)user[i] < 0x20 || (unsigned char)user[i] == 0x7f)
                        return ck_error_set(reterr, -EINVAL,
                                            "registry user name contains control characters");
        if (password->len > 4096)
                return ck_error_set(reterr, -EINVAL, "registry password is longer than 4096 bytes");
        plen = ulen + 1 + password->len;
        plain = secret_alloc(plen);
        if (!plain)
                return -ENOMEM;
        memcpy(plain->data, user, ulen);
        plain->data[ulen] = ':';
        memcpy(plain->data + ulen + 1, password->data, password->len);

        enc_len = 4 * ((plen + 2) / 3);
        out = secret_alloc(strlen("Basic ") + enc_len);
        if (!out) {
                ck_secret_free(plain);
                return -ENOMEM;
        }
        memcpy(out->data, "Basic ", 6);
        n = EVP_EncodeBlock(out->data + 6, plain->data, (int)plen);
        ck_secret_free(plain);
        if (n < 0 || (size_t)n != enc_len) {
                ck_secret_free(out);
                return -EIO;
        }
        out->data[6 + enc_len] = 0;
        *ret = out;
        return 0;
}

struct token_entry {
        char *host, *scope;
        struct ck_secret *token;
        uint64_t expires_usec;
};

struct registry_token_cache {
        pthread_mutex_t lock;
        struct token_entry entries[REGISTRY_TOKEN_CACHE_MAX];
        size_t n;
};

int registry_token_cache_new(struct registry_token_cache **ret)
{
        struct registry_token_cache *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        *ret = c;
        return 0;
}

static void entry_clear(struct token_entry *e)
{
        free(e->host);
        free(e->scope);
        ck_secret_free(e->token);
        *e = (struct token_entry){0};
}

static void cache_remove_at(struct registry_token_cache *c, size_t i)
{
        entry_clear(&c->entries[i]);
        c->entries[i] = c->entries[c->n - 1];
        c->entries[c->n - 1] = (struct token_entry){0};
        c->n--;
}

void registry_token_cache_free(struct registry_token_cache *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->n; i++)
                entry_clear(&c->entries[i]);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

static struct token_entry *cache_find(struct registry_token_cache *c, const char *host, const char *scope)
{
        for (size_t i = 0; i < c->n; i++)
                if (strcmp(c->entries[i].host, host) == 0 && strcmp(c->entries[i].scope, scope) == 0)
                        return &c->entries[i];
        return NULL;
}

int registry_token_cache_get(struct registry_token_cache *c, const char *host, const char *scope,
                             uint64_t now_usec, struct ck_secret **ret)
{
        struct token_entry *e;
        int r = -ENOENT;

        pthread_mutex_lock(&c->lock);
        e = cache_find(c, host, scope);
        if (e && now_usec + EXPIRY_MARGIN_USEC < e->expires_usec) {
                *ret = ck_secret_new(e->token->data, e->token->len);
                r = *ret ? 0 : -ENOMEM;
        } else if (e) {
                cache_remove_at(c, (size_t)(e - c->entries));
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}

int registry_token_cache_put(struct registry_token_cache *c, const char *host, const char *scope,
                             const struct ck_secret *token, uint64_t expires_in_sec, uint64_t now_usec)
{
        struct token_entry n = {0}, *e;

        if (expires_in_sec > EXPIRES_MAX)
                expires_in_sec = EXPIRES_MAX;
        n.host = strdup(host);
        n.scope = strdup(scope);
        n.token = ck_secret_new(token->data, token->len);
        n.expires_usec = now_usec + expires_in_sec * 1000000ULL;
        if (!n.host || !n.scope || !n.token) {
                entry_clear(&n);
                return -ENOMEM;
        }

        pthread_mutex_lock(&c->lock);
        e = cache_find(c, host, scope);
        if (e) {
                entry_clear(e);
        } else {
                if (c->n == REGISTRY_TOKEN_CACHE_MAX) {
                        /* Full: drop the entry that expires first. */
                        size_t victim = 0;

                        for (size_t i = 1; i < c->n; i++)
                                if (c->entries[i].expires_usec < c->entries[victim].expires_usec)
                                        victim = i;
                        cache_remove_at(c, victim);
                }
                e = &c->entries[c->n++];
        }
        *e = n;
        pthread_mutex_unlock(&c->lock);
        return 0;
}

void registry_token_cache_drop(struct registry_token_cache *c, const char *host, const char *scope,
                               const struct ck_secret *token)
{
        struct token_entry *e;

        pthread_mutex_lock(&c->lock);
        e = cache_find(c, host, scope);
        if (e && (!token || ck_secret_equal(e->token, token->data, token->len)))
                cache_remove_at(c, (size_t)(e - c->entries));
        pthread_mutex_unlock(&c->lock);
}
