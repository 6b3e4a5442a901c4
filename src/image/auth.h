/* Registry authentication pieces that need no network: WWW-Authenticate challenge parsing,
 * token-server replies, Basic credentials, and the per-(host, scope) bearer token cache.
 *
 * Internal to the image module (the registry client's registry-*.c files use it; unit-tested on
 * its own). Tokens and credentials are ck_secrets: callers free them with ck_secret_free(),
 * which wipes them. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "secret.h"

#define REGISTRY_CHALLENGE_MAX   8192 /* all WWW-Authenticate lines of one response */
#define REGISTRY_AUTH_VALUE_MAX  2048 /* one auth-param value (realm, service, scope) */
#define REGISTRY_TOKEN_MAX       (32u << 10)
#define REGISTRY_TOKEN_BODY_MAX  (64u << 10)
#define REGISTRY_TOKEN_CACHE_MAX 32

enum registry_auth_scheme {
        REGISTRY_AUTH_NONE, /* no challenge we understand */
        REGISTRY_AUTH_BASIC,
        REGISTRY_AUTH_BEARER,
        _REGISTRY_AUTH_SCHEME_MAX,
};
const char *registry_auth_scheme_to_string(enum registry_auth_scheme s);

struct registry_challenge {
        enum registry_auth_scheme scheme;
        char *realm, *service, *scope, *error; /* NULL when absent */
};

/* Parses one or more challenges (RFC 7235: `scheme param=value, param="quoted", Scheme2 ...`;
 * several header lines joined with ", ") and keeps the most useful: Bearer, else Basic. Unknown
 * schemes are skipped; when none is known, ret->scheme is REGISTRY_AUTH_NONE. -EBADMSG on a
 * syntax error, -EMSGSIZE over the limits above. */
int registry_challenge_parse(const char *buf, size_t len, struct registry_challenge *ret,
                             struct ck_error **reterr);
void registry_challenge_clear(struct registry_challenge *c);

/* A token server's JSON reply: "token" or "access_token" (token preferred), "expires_in" in
 * seconds (default 60, at least 60, at most a day). The token must be printable ASCII without
 * spaces, so it cannot smuggle a header. */
int registry_token_parse(const uint8_t *buf, size_t len, struct ck_secret **ret_token,
                         uint64_t *ret_expires_in, struct ck_error **reterr);

/* "Basic base64(user:password)": the whole Authorization value. The user may not contain ':'
 * or control characters. */
int registry_basic_credentials(const char *user, const struct ck_secret *password, struct ck_secret **ret,
                               struct ck_error **reterr);

/* Bearer tokens by (host, scope), thread-safe, at most REGISTRY_TOKEN_CACHE_MAX entries (the
 * ones that expire first are dropped). Times are CLOCK_MONOTONIC microseconds, passed in so that
 * tests can move the clock. A token counts as expired 10 s before it really is. */
struct registry_token_cache;
int registry_token_cache_new(struct registry_token_cache **ret);
void registry_token_cache_free(struct registry_token_cache *c);
/* A copy of the cached token, or -ENOENT. */
int registry_token_cache_get(struct registry_token_cache *c, const char *host, const char *scope,
                             uint64_t now_usec, struct ck_secret **ret);
int registry_token_cache_put(struct registry_token_cache *c, const char *host, const char *scope,
                             const struct ck_secret *token, uint64_t expires_in_sec, uint64_t now_usec);
/* Forgets the entry if it still holds `token` (a rejected token); another thread may already
 * have replaced it with a fresh one, which is kept. */
void registry_token_cache_drop(struct registry_token_cache *c, const char *host, const char *scope,
                               const struct ck_secret *token);
