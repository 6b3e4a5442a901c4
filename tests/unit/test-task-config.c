/* The task-config document (src/task/task-config.c): its exact canonical bytes for a request in
 * the seed's form, its digest, the order of arrays, no credentials, and the size limit. The
 * expected bytes were written independently of jansson (Python's json with sort_keys, compact
 * separators and ensure_ascii gives the same bytes except that it writes \u escapes in lower
 * case; see docs/rtmr3-event-log.md) and the digest is sha256sum's. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "task-config.h"

#define IMAGE_REF "docker.io/reckey/conker-example-app:latest"
#define IMAGE_ID  "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define PIN       "#sha256:abababababababababababababababababababababababababababababababab"

static const struct task_request_limits lim = {30000, 65534};

static const char request[] =
        "{\"Name\":\"conker-example-app\",\"ImageInfo\":{\"ImageName\":\"reckey/conker-example-app:latest\","
        "\"RegisterAuthInfo\":{\"Username\":\"alice-the-user\",\"Password\":\"hunter2-password\"}},"
        "\"Ports\":[{\"TargetPort\":8080,\"PublishedPort\":30080},{\"TargetPort\":9090,\"PublishedPort\":"
        "30081}],"
        "\"Env\":[\"userId=secret-127.0.0.1:3333\",\"Z=1\",\"A=caf\xc3\xa9\"],"
        "\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/data\",\"Source\":\"data\",\"RW\":true},"
        "{\"Type\":\"volume\",\"Target\":\"/logs\",\"Source\":\"logs\",\"RW\":false}],"
        "\"KmsEndpoints\":[\"127.0.0.1:3333\",\"kms.example:4444" PIN "\"]}";

static const char expected[] =
        "{\"env\":[\"userId=secret-127.0.0.1:3333\",\"Z=1\",\"A=caf\\u00E9\"],"
        "\"image\":\"" IMAGE_REF "\",\"imageId\":\"" IMAGE_ID "\","
        "\"kmsEndpoints\":[\"127.0.0.1:3333\",\"kms.example:4444" PIN "\"],"
        "\"mounts\":[{\"rw\":true,\"source\":\"data\",\"target\":\"/data\",\"type\":\"volume\"},"
        "{\"rw\":false,\"source\":\"logs\",\"target\":\"/logs\",\"type\":\"volume\"}],"
        "\"ports\":[{\"published\":30080,\"target\":8080},{\"published\":30081,\"target\":9090}],"
        "\"version\":1}";

static void parse(const char *body, struct task_request *r)
{
        _cleanup_error_ struct ck_error *e = NULL;
        int q = task_request_parse(body, strlen(body), 1u << 20, &lim, r, &e);

        if (q < 0)
                fail_msg("request: %s", ck_error_message(e, q));
}

static void test_canonical_bytes(void **state)
{
        struct task_request r = {0};
        _cleanup_free_ char *doc = NULL;
        size_t len = 0;

        parse(request, &r);
        assert_int_equal(task_config_document(IMAGE_REF, IMAGE_ID, &r, &doc, &len, NULL), 0);
        assert_int_equal(len, strlen(expected));
        assert_memory_equal(doc, expected, len);
        /* Never a credential. */
        assert_null(strstr(doc, "alice-the-user"));
        assert_null(strstr(doc, "hunter2"));
        assert_null(strstr(doc, "Password"));
        task_request_clear(&r);
}

static void test_digest(void **state)
{
        char d[TASK_CONFIG_DIGEST_LEN];

        /* sha256sum of the expected document's bytes. */
        assert_int_equal(task_config_digest(expected, strlen(expected), d), 0);
        assert_string_equal(d, "sha256:8d8d5ba5558d579acc12ff9aee4b138e1f12ddc1caf20427e0f5776de7462ac3");
}

static void test_deterministic_and_sensitive(void **state)
{
        struct task_request a = {0}, b = {0};
        _cleanup_free_ char *da = NULL, *da2 = NULL, *db = NULL;
        char ga[TASK_CONFIG_DIGEST_LEN], gb[TASK_CONFIG_DIGEST_LEN];
        size_t la = 0, la2 = 0, lb = 0;
        /* The same request with two Env entries swapped: a different task. */
        static const char swapped[] =
                "{\"ImageInfo\":{\"ImageName\":\"reckey/conker-example-app:latest\"},"
                "\"Env\":[\"Z=1\",\"userId=secret-127.0.0.1:3333\"],\"KmsEndpoints\":[\"127.0.0.1:3333\"]}";
        static const char plain[] =
                "{\"ImageInfo\":{\"ImageName\":\"reckey/conker-example-app:latest\"},"
                "\"Env\":[\"userId=secret-127.0.0.1:3333\",\"Z=1\"],\"KmsEndpoints\":[\"127.0.0.1:3333\"]}";

        parse(plain, &a);
        parse(swapped, &b);
        assert_int_equal(task_config_document(IMAGE_REF, IMAGE_ID, &a, &da, &la, NULL), 0);
        assert_int_equal(task_config_document(IMAGE_REF, IMAGE_ID, &a, &da2, &la2, NULL), 0);
        assert_int_equal(task_config_document(IMAGE_REF, IMAGE_ID, &b, &db, &lb, NULL), 0);
        assert_int_equal(la, la2);
        assert_memory_equal(da, da2, la);
        assert_int_equal(task_config_digest(da, la, ga), 0);
        assert_int_equal(task_config_digest(db, lb, gb), 0);
        assert_string_not_equal(ga, gb);
        /* Empty arrays are present, not omitted. */
        assert_non_null(strstr(da, "\"mounts\":[],\"ports\":[],\"version\":1}"));
        task_request_clear(&a);
        task_request_clear(&b);
}

static void test_too_large(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct task_request r = {0};
        char *env[4] = {0};
        char *doc = NULL;
        size_t len = 0;
        int q;

        /* Three entries of 30000 bytes: within the request's limits, over the 64 KiB document. */
        for (int i = 0; i < 3; i++) {
                env[i] = malloc(30001);
                assert_non_null(env[i]);
                memset(env[i], 'x', 30000);
                env[i][0] = 'K';
                env[i][1] = '=';
                env[i][30000] = 0;
        }
        r.env = env;
        r.n_env = 3;
        q = task_config_document(IMAGE_REF, IMAGE_ID, &r, &doc, &len, &e);
        assert_int_equal(q, -E2BIG);
        assert_null(doc);
        assert_non_null(strstr(ck_error_message(e, q), "more than the 65536 that can be attested"));
        for (int i = 0; i < 3; i++)
                free(env[i]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_canonical_bytes),
                cmocka_unit_test(test_digest),
                cmocka_unit_test(test_deterministic_and_sensitive),
                cmocka_unit_test(test_too_large),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
