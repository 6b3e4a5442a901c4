/* Registry authentication without the network: WWW-Authenticate parsing, token replies, Basic
 * credentials and the token cache (expiry, scopes, eviction, concurrent use). */
#include "cmocka-wrap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

struct challenge_case {
        const char *header;
        enum registry_auth_scheme scheme;
        const char *realm, *service, *scope, *error;
};

static const struct challenge_case good_challenges[] = {
        {"Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
         "scope=\"repository:library/busybox:pull\"",
         REGISTRY_AUTH_BEARER, "https://auth.docker.io/token", "registry.docker.io",
         "repository:library/busybox:pull", NULL},
        {"Basic realm=\"Registry Realm\"", REGISTRY_AUTH_BASIC, "Registry Realm", NULL, NULL, NULL},
        {"Basic realm=\"x\", Bearer realm=\"https://a/t\",service=\"s\"", REGISTRY_AUTH_BEARER,
         "https://a/t", "s", NULL, NULL},
        {"Bearer realm=\"https://a/t\", Basic realm=\"x\"", REGISTRY_AUTH_BEARER, "https://a/t", NULL, NULL,
         NULL},
        {"bearer REALM=\"https://a/t\" , Service = registry , SCOPE=\"repository:a/b:pull,push\"",
         REGISTRY_AUTH_BEARER, "https://a/t", "registry", "repository:a/b:pull,push", NULL},
        {"Bearer realm=\"https://a/t\",error=\"invalid_token\"", REGISTRY_AUTH_BEARER, "https://a/t", NULL,
         NULL, "invalid_token"},
        {"Bearer realm=\"a\\\"b\\\\c\"", REGISTRY_AUTH_BEARER, "a\"b\\c", NULL, NULL, NULL},
        {"Bearer realm=\"https://a/t\",realm=\"https://evil/t\"", REGISTRY_AUTH_BEARER, "https://a/t", NULL,
         NULL, NULL},
        {"Bearer realm=\"https://a/t\",,  ,service=s", REGISTRY_AUTH_BEARER, "https://a/t", "s", NULL, NULL},
        {"Negotiate", REGISTRY_AUTH_NONE, NULL, NULL, NULL, NULL},
        {"Negotiate abc==, Basic realm=\"x\"", REGISTRY_AUTH_BASIC, "x", NULL, NULL, NULL},
        {"", REGISTRY_AUTH_NONE, NULL, NULL, NULL, NULL},
        {"Basic", REGISTRY_AUTH_BASIC, NULL, NULL, NULL, NULL},
        {"Digest realm=\"a\", nonce=\"b\", Basic realm=\"c\"", REGISTRY_AUTH_BASIC, "c", NULL, NULL, NULL},
};

static void check_str(const char *got, const char *want, const char *what, size_t i)
{
        if (!want && !got)
                return;
        if (!want || !got || strcmp(got, want) != 0)
                fail_msg("case %zu %s: got \"%s\", want \"%s\"", i, what, got ? got : "(null)",
                         want ? want : "(null)");
}

static void test_challenge_good(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(good_challenges); i++) {
                const struct challenge_case *c = &good_challenges[i];
                struct registry_challenge ch = {0};
                _cleanup_error_ struct ck_error *err = NULL;
                int r = registry_challenge_parse(c->header, strlen(c->header), &ch, &err);

                if (r < 0)
                        fail_msg("case %zu: %s", i, ck_error_message(err, r));
                assert_int_equal(ch.scheme, c->scheme);
                check_str(ch.realm, c->realm, "realm", i);
                check_str(ch.service, c->service, "service", i);
                check_str(ch.scope, c->scope, "scope", i);
                check_str(ch.error, c->error, "error", i);
                registry_challenge_clear(&ch);
        }
}

static void test_challenge_bad(void **state)
{
        static const struct {
                const char *header;
                int code;
        } bads[] = {
                {"Bearer realm=\"https://a/t", -EBADMSG},
                {"Bearer service=\"s\"", -EBADMSG}, /* no realm */
                {"Bearer realm=\"a\x01\"", -EBADMSG},
                {"Bearer realm=\"a\\", -EBADMSG},
                {"Bearer realm=", -EBADMSG},
                {"Bearer realm=\"x\" junk", -EBADMSG},
                {"\"Bearer\"", -EBADMSG},
                {"Bearer realm=@", -EBADMSG},
        };
        char big[REGISTRY_CHALLENGE_MAX + 10];
        struct registry_challenge ch = {0};

        for (size_t i = 0; i < ELEMENTSOF(bads); i++) {
                _cleanup_error_ struct ck_error *err = NULL;
                int r = registry_challenge_parse(bads[i].header, strlen(bads[i].header), &ch, &err);

                if (r != bads[i].code)
                        fail_msg("case %zu (%s): got %d", i, bads[i].header, r);
                assert_non_null(err);
                assert_int_equal(ch.scheme, REGISTRY_AUTH_NONE);
                assert_null(ch.realm);
        }

        /* A NUL inside a quoted value (the length says it is there). */
        assert_int_equal(registry_challenge_parse("Bearer realm=\"a\0b\"", 18, &ch, NULL), -EBADMSG);

        /* Size limits: the whole header, one value, the number of parameters. */
        memset(big, 'a', sizeof(big));
        assert_int_equal(registry_challenge_parse(big, sizeof(big), &ch, NULL), -EMSGSIZE);
        {
                char v[REGISTRY_AUTH_VALUE_MAX + 40];
                int n = snprintf(v, sizeof(v), "Bearer realm=\"");

                memset(v + n, 'r', REGISTRY_AUTH_VALUE_MAX + 1);
                snprintf(v + n + REGISTRY_AUTH_VALUE_MAX + 1,
                         sizeof(v) - (size_t)n - REGISTRY_AUTH_VALUE_MAX - 1, "\"");
                assert_int_equal(registry_challenge_parse(v, strlen(v), &ch, NULL), -EMSGSIZE);
                /* Exactly the limit is accepted. */
                v[n + REGISTRY_AUTH_VALUE_MAX] = '"';
                v[n + REGISTRY_AUTH_VALUE_MAX + 1] = 0;
                assert_int_equal(registry_challenge_parse(v, strlen(v), &ch, NULL), 0);
                assert_int_equal(strlen(ch.realm), REGISTRY_AUTH_VALUE_MAX);
                registry_challenge_clear(&ch);
        }
        {
                char many[2000];
                size_t off = (size_t)snprintf(many, sizeof(many), "Bearer realm=\"x\"");

                for (int i = 0; i < 40; i++)
                        off += (size_t)snprintf(many + off, sizeof(many) - off, ",p%d=v", i);
                assert_int_equal(registry_challenge_parse(many, off, &ch, NULL), -EMSGSIZE);
        }
}

static int token_parse(const char *json, struct ck_secret **tok, uint64_t *exp)
{
        return registry_token_parse((const uint8_t *)json, strlen(json), tok, exp, NULL);
}

static void test_token_parse(void **state)
{
        struct ck_secret *tok = NULL;
        uint64_t exp = 0;

        assert_int_equal(token_parse("{\"token\":\"abc.def-ghi\"}", &tok, &exp), 0);
        assert_string_equal((char *)tok->data, "abc.def-ghi");
        assert_int_equal(exp, 60);
        ck_secret_free(tok);

        assert_int_equal(token_parse("{\"access_token\":\"A\",\"expires_in\":3600}", &tok, &exp), 0);
        assert_string_equal((char *)tok->data, "A");
        assert_int_equal(exp, 3600);
        ck_secret_free(tok);

        /* token wins over access_token; tiny and huge lifetimes are clamped. */
        assert_int_equal(
                token_parse("{\"access_token\":\"A\",\"token\":\"T\",\"expires_in\":5}", &tok, &exp), 0);
        assert_string_equal((char *)tok->data, "T");
        assert_int_equal(exp, 60);
        ck_secret_free(tok);
        assert_int_equal(
                token_parse("{\"token\":\"T\",\"expires_in\":99999999,\"issued_at\":\"x\"}", &tok, &exp), 0);
        assert_int_equal(exp, 86400);
        ck_secret_free(tok);
        assert_int_equal(token_parse("{\"token\":\"\",\"access_token\":\"B\"}", &tok, &exp), 0);
        assert_string_equal((char *)tok->data, "B");
        ck_secret_free(tok);

        tok = NULL;
        assert_int_equal(token_parse("{}", &tok, &exp), -EBADMSG);
        assert_int_equal(token_parse("{\"token\":\"\"}", &tok, &exp), -EBADMSG);
        assert_int_equal(token_parse("{\"token\":7}", &tok, &exp), -EBADMSG);
        assert_int_equal(token_parse("{\"token\":\"a b\"}", &tok, &exp), -EBADMSG);
        assert_int_equal(token_parse("{\"token\":\"a\\r\\nX-Injected: 1\"}", &tok, &exp), -EBADMSG);
        assert_int_equal(token_parse("{\"token\":\"a\\u0000b\"}", &tok, &exp), -EBADMSG);
        assert_int_equal(token_parse("{\"token\":\"a\",\"expires_in\":\"60\"}", &tok, &exp), -EBADMSG);
        assert_int_equal(token_parse("not json", &tok, &exp), -EBADMSG);
        assert_int_equal(token_parse("[\"token\"]", &tok, &exp), -EBADMSG);
        assert_null(tok);
        {
                _cleanup_free_ char *big = malloc(REGISTRY_TOKEN_MAX + 100);
                _cleanup_error_ struct ck_error *err = NULL;

                memcpy(big, "{\"token\":\"", 10);
                memset(big + 10, 'x', REGISTRY_TOKEN_MAX + 1);
                memcpy(big + 10 + REGISTRY_TOKEN_MAX + 1, "\"}", 3);
                assert_int_equal(registry_token_parse((uint8_t *)big, strlen(big), &tok, &exp, &err),
                                 -EMSGSIZE);
                /* The error never contains the token. */
                assert_null(strstr(err->msg, "xxxx"));
        }
}

static void test_basic(void **state)
{
        _cleanup_secret_ struct ck_secret *pw = ck_secret_new("pass", 4), *out = NULL,
                                          *empty = ck_secret_new("", 0);
        struct ck_secret *tmp = NULL;

        assert_int_equal(registry_basic_credentials("user", pw, &out, NULL), 0);
        assert_string_equal((char *)out->data, "Basic dXNlcjpwYXNz");
        assert_int_equal(out->len, strlen("Basic dXNlcjpwYXNz"));
        assert_int_equal(registry_basic_credentials("a", empty, &tmp, NULL), 0);
        assert_string_equal((char *)tmp->data, "Basic YTo=");
        ck_secret_free(tmp);
        tmp = NULL;
        assert_int_equal(registry_basic_credentials("a:b", pw, &tmp, NULL), -EINVAL);
        assert_int_equal(registry_basic_credentials("", pw, &tmp, NULL), -EINVAL);
        assert_int_equal(registry_basic_credentials("a\nb", pw, &tmp, NULL), -EINVAL);
        assert_int_equal(registry_basic_credentials(NULL, pw, &tmp, NULL), -EINVAL);
        assert_int_equal(registry_basic_credentials("a", NULL, &tmp, NULL), -EINVAL);
        assert_null(tmp);
}

#define SEC 1000000ULL

static void test_cache(void **state)
{
        struct registry_token_cache *c = NULL;
        _cleanup_secret_ struct ck_secret *t1 = ck_secret_new("t1", 2), *t2 = ck_secret_new("t2", 2);
        struct ck_secret *got = NULL;
        uint64_t now = 1000 * SEC;

        assert_int_equal(registry_token_cache_new(&c), 0);
        assert_int_equal(registry_token_cache_get(c, "h", "repository:a:pull", now, &got), -ENOENT);
        assert_int_equal(registry_token_cache_put(c, "h", "repository:a:pull", t1, 60, now), 0);
        assert_int_equal(registry_token_cache_get(c, "h", "repository:a:pull", now, &got), 0);
        assert_true(ck_secret_equal(got, "t1", 2));
        ck_secret_free(got);
        /* Other scope, other host: separate. */
        assert_int_equal(registry_token_cache_get(c, "h", "repository:b:pull", now, &got), -ENOENT);
        assert_int_equal(registry_token_cache_get(c, "h2", "repository:a:pull", now, &got), -ENOENT);
        /* Still valid 49 s later, not 51 s later (10 s margin). */
        assert_int_equal(registry_token_cache_get(c, "h", "repository:a:pull", now + 49 * SEC, &got), 0);
        ck_secret_free(got);
        assert_int_equal(registry_token_cache_get(c, "h", "repository:a:pull", now + 51 * SEC, &got),
                         -ENOENT);
        /* ...and the expired entry is gone for good. */
        assert_int_equal(registry_token_cache_get(c, "h", "repository:a:pull", now, &got), -ENOENT);

        /* Replacing, and dropping only the token that was rejected. */
        assert_int_equal(registry_token_cache_put(c, "h", "s", t1, 300, now), 0);
        assert_int_equal(registry_token_cache_put(c, "h", "s", t2, 300, now), 0);
        registry_token_cache_drop(c, "h", "s", t1);
        assert_int_equal(registry_token_cache_get(c, "h", "s", now, &got), 0);
        assert_true(ck_secret_equal(got, "t2", 2));
        ck_secret_free(got);
        registry_token_cache_drop(c, "h", "s", t2);
        assert_int_equal(registry_token_cache_get(c, "h", "s", now, &got), -ENOENT);

        /* Eviction: the cache holds at most REGISTRY_TOKEN_CACHE_MAX, dropping what expires first. */
        for (int i = 0; i < REGISTRY_TOKEN_CACHE_MAX + 5; i++) {
                char scope[32];

                snprintf(scope, sizeof(scope), "s%d", i);
                assert_int_equal(registry_token_cache_put(c, "h", scope, t1, 100 + (uint64_t)i, now), 0);
        }
        for (int i = 0; i < REGISTRY_TOKEN_CACHE_MAX + 5; i++) {
                char scope[32];
                int r;

                snprintf(scope, sizeof(scope), "s%d", i);
                r = registry_token_cache_get(c, "h", scope, now, &got);
                assert_int_equal(r, i < 5 ? -ENOENT : 0);
                if (r == 0)
                        ck_secret_free(got);
        }
        registry_token_cache_free(c);
        registry_token_cache_free(NULL);
}

static void *hammer(void *arg)
{
        struct registry_token_cache *c = arg;
        struct ck_secret *t = ck_secret_new("tok", 3), *got = NULL;

        for (int i = 0; i < 2000; i++) {
                char scope[16];

                snprintf(scope, sizeof(scope), "s%d", i % 40);
                registry_token_cache_put(c, "h", scope, t, 60, 0);
                if (registry_token_cache_get(c, "h", scope, 0, &got) == 0) {
                        if (!ck_secret_equal(got, "tok", 3))
                                abort();
                        ck_secret_free(got);
                }
                if (i % 7 == 0)
                        registry_token_cache_drop(c, "h", scope, t);
        }
        ck_secret_free(t);
        return NULL;
}

static void test_cache_threads(void **state)
{
        struct registry_token_cache *c = NULL;
        pthread_t th[4];

        assert_int_equal(registry_token_cache_new(&c), 0);
        for (int i = 0; i < 4; i++)
                assert_int_equal(pthread_create(&th[i], NULL, hammer, c), 0);
        for (int i = 0; i < 4; i++)
                pthread_join(th[i], NULL);
        registry_token_cache_free(c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_challenge_good), cmocka_unit_test(test_challenge_bad),
                cmocka_unit_test(test_token_parse),    cmocka_unit_test(test_basic),
                cmocka_unit_test(test_cache),          cmocka_unit_test(test_cache_threads),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
