/* Request validation: the seed's body verbatim, every rule with a hostile value, and the
 * redacted JSON forms. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "request.h"

static const struct task_request_limits lim = {30000, 65534};

static const char seed[] =
        "{\"Name\":\"conker-example-app\",\"ImageInfo\":{\"ImageName\":\"reckey/conker-example-app:latest\","
        "\"RegisterAuthInfo\":{\"Username\":\"user\",\"Password\":\"pass\"}},\"Ports\":[{\"TargetPort\":"
        "8080,"
        "\"PublishedPort\":30080}],\"Env\":[\"userId=secret-127.0.0.1:3333\"],\"Mounts\":[{\"Type\":"
        "\"volume\","
        "\"Target\":\"/data\",\"Source\":\"data\",\"RW\":true}],\"KmsEndpoints\":[\"127.0.0.1:3333\"]}";

static void test_seed_body(void **state)
{
        struct task_request r = {0};

        assert_int_equal(task_request_parse(seed, strlen(seed), 1 << 20, &lim, &r, NULL), 0);
        assert_string_equal(r.name, "conker-example-app");
        assert_string_equal(r.image, "reckey/conker-example-app:latest");
        assert_string_equal(r.username, "user");
        assert_true(ck_secret_equal(r.password, "pass", 4));
        assert_int_equal(r.n_ports, 1);
        assert_int_equal(r.ports[0].target, 8080);
        assert_int_equal(r.ports[0].published, 30080);
        assert_int_equal(r.n_env, 1);
        assert_string_equal(r.env[0], "userId=secret-127.0.0.1:3333");
        assert_int_equal(r.n_mounts, 1);
        assert_string_equal(r.mounts[0].target, "/data");
        assert_string_equal(r.mounts[0].source, "data");
        assert_true(r.mounts[0].rw);
        assert_int_equal(r.n_kms, 1);
        task_request_clear(&r);
}

static void test_minimal_body(void **state)
{
        struct task_request r = {0};
        const char *b =
                "{\"ImageInfo\":{\"ImageName\":\"busybox\"},\"Ports\":null,\"Env\":[],\"Mounts\":[{\"Type\":"
                "\"volume\",\"Target\":\"/v\",\"Source\":\"v\"}]}";

        assert_int_equal(task_request_parse(b, strlen(b), 1 << 20, &lim, &r, NULL), 0);
        assert_null(r.name);
        assert_null(r.username);
        assert_null(r.password);
        assert_int_equal(r.n_ports, 0);
        assert_true(r.mounts[0].rw); /* RW defaults to true, as in Docker */

        /* The response form has the seed's shape even for a minimal request: Name and both
         * RegisterAuthInfo strings present, arrays for absent lists, Docker's ReadOnly. */
        _cleanup_json_ json_t *masked = task_request_to_json(&r, TASK_REDACT_MASK);
        _cleanup_free_ char *m = ck_json_dump(masked);
        assert_non_null(strstr(m, "\"Name\":\"\""));
        assert_non_null(strstr(m, "\"RegisterAuthInfo\":{\"Username\":\"\",\"Password\":\"\"}"));
        assert_non_null(strstr(m, "\"Ports\":[]"));
        assert_non_null(strstr(m, "\"KmsEndpoints\":[]"));
        assert_non_null(strstr(m, "\"RW\":true,\"ReadOnly\":false"));
        /* The stored form keeps only what was given. */
        _cleanup_json_ json_t *omitted = task_request_to_json(&r, TASK_REDACT_OMIT);
        assert_null(json_object_get(omitted, "Name"));
        assert_null(json_object_get(json_object_get(omitted, "ImageInfo"), "RegisterAuthInfo"));
        task_request_clear(&r);
}

static void test_redaction(void **state)
{
        struct task_request r = {0};
        _cleanup_json_ json_t *masked = NULL, *omitted = NULL;
        _cleanup_free_ char *m = NULL, *o = NULL;

        assert_int_equal(task_request_parse(seed, strlen(seed), 1 << 20, &lim, &r, NULL), 0);
        masked = task_request_to_json(&r, TASK_REDACT_MASK);
        omitted = task_request_to_json(&r, TASK_REDACT_OMIT);
        m = ck_json_dump(masked);
        o = ck_json_dump(omitted);
        assert_non_null(strstr(m, "\"Password\":\"******\""));
        assert_null(strstr(m, "pass\""));
        assert_null(strstr(o, "Password"));
        assert_null(strstr(o, "\"pass\""));
        assert_non_null(strstr(o, "\"Username\":\"user\""));
        /* The stored form parses back to the same request without the password. */
        task_request_clear(&r);
        assert_int_equal(task_request_from_json(omitted, &lim, &r, NULL), 0);
        assert_null(r.password);
        assert_int_equal(r.ports[0].published, 30080);
        task_request_clear(&r);
}

struct bad {
        const char *body;
        int code;
        const char *msg; /* substring of the error */
};

static const struct bad bad_cases[] = {
        {"", -EBADMSG, "malformed JSON"},
        {"{", -EBADMSG, "malformed JSON"},
        {"[]", -EINVAL, "must be a JSON object"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"}} x", -EBADMSG, "malformed JSON"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"ImageInfo\":{}}", -EBADMSG, "duplicate"},
        {"{}", -EINVAL, "ImageInfo is required"},
        {"{\"ImageInfo\":{}}", -EINVAL, "ImageName is required"},
        {"{\"ImageInfo\":{\"ImageName\":\"\"}}", -EINVAL, "ImageName is required"},
        {"{\"ImageInfo\":{\"ImageName\":5}}", -EINVAL, "ImageName must be a string"},
        {"{\"ImageInfo\":\"x\"}", -EINVAL, "ImageInfo must be an object"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\",\"Tag\":1}}", -EINVAL, "unknown field \"Tag\""},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Cmd\":[]}", -EINVAL, "unknown field \"Cmd\""},
        {"{\"Name\":\"-x\",\"ImageInfo\":{\"ImageName\":\"a\"}}", -EINVAL, "Name must match"},
        {"{\"Name\":\"a/b\",\"ImageInfo\":{\"ImageName\":\"a\"}}", -EINVAL, "Name must match"},
        {"{\"Name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"ImageInfo\":{"
         "\"ImageName\":"
         "\"a\"}}",
         -EINVAL, "Name must match"},
        {"{\"Name\":7,\"ImageInfo\":{\"ImageName\":\"a\"}}", -EINVAL, "Name must be a string"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\",\"RegisterAuthInfo\":{\"Password\":\"p\"}}}", -EINVAL,
         "needs a Username"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\",\"RegisterAuthInfo\":{\"Username\":\"a:b\"}}}", -EINVAL,
         "no ':'"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\",\"RegisterAuthInfo\":{\"Username\":1}}}", -EINVAL,
         "Username must be a string"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Ports\":{}}", -EINVAL, "Ports must be an array"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Ports\":[1]}", -EINVAL, "Ports[0] must be an object"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Ports\":[{\"TargetPort\":80}]}", -EINVAL,
         "Ports[0].PublishedPort is required"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Ports\":[{\"TargetPort\":\"80\",\"PublishedPort\":30080}]}",
         -EINVAL, "Ports[0].TargetPort must be an integer"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Ports\":[{\"TargetPort\":0,\"PublishedPort\":30080}]}",
         -ERANGE, "outside the allowed range 1-65535"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Ports\":[{\"TargetPort\":65536,\"PublishedPort\":30080}]}",
         -ERANGE, "TargetPort"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Ports\":[{\"TargetPort\":80,\"PublishedPort\":80}]}",
         -ERANGE, "outside the allowed range 30000-65534"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Ports\":[{\"TargetPort\":80,\"PublishedPort\":65535}]}",
         -ERANGE, "PublishedPort"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Ports\":[{\"TargetPort\":80,\"PublishedPort\":30080.5}]}",
         -EINVAL, "must be an integer"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Ports\":[{\"TargetPort\":80,\"PublishedPort\":30080},{"
         "\"TargetPort\":"
         "81,\"PublishedPort\":30080}]}",
         -EINVAL, "published twice"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Ports\":[{\"TargetPort\":80,\"PublishedPort\":30080,"
         "\"Proto\":1}]}",
         -EINVAL, "unknown field \"Proto\""},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Env\":\"A=1\"}", -EINVAL, "Env must be an array"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Env\":[1]}", -EINVAL, "Env[0] must be a string"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Env\":[\"NOEQUALS\"]}", -EINVAL, "no '=' found"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Env\":[\"=v\"]}", -EINVAL, "KEY=VALUE"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Env\":[\"1A=v\"]}", -EINVAL, "KEY=VALUE"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Env\":[\"A-B=v\"]}", -EINVAL, "KEY=VALUE"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Env\":[\"A=x\\ny\"]}", -EINVAL, "newline"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Env\":[\"A=x\\u0000y\"]}", -EINVAL, "NUL"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Env\":[\"A=1\",\"A=2\"]}", -EINVAL, "A is set twice"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"bind\",\"Target\":\"/"
         "d\",\"Source\":\"/etc\"}]}",
         -EINVAL, "Type must be \"volume\""},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Target\":\"/d\",\"Source\":\"d\"}]}", -EINVAL,
         "Type must be \"volume\""},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Source\":\"d\"}]}",
         -EINVAL, "Target is required"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/d\"}]}",
         -EINVAL, "Source is required"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"d\",\"Source\":"
         "\"d\"}]}",
         -EINVAL, "absolute"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/"
         "\",\"Source\":\"d\"}]}",
         -EINVAL, "over /"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/a/../secret\","
         "\"Source\":\"d\"}]}",
         -EINVAL, "clean path"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/a//"
         "b\",\"Source\":\"d\"}]}",
         -EINVAL, "clean path"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/a/"
         "\",\"Source\":\"d\"}]}",
         -EINVAL, "end with /"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/"
         "secret\",\"Source\":"
         "\"d\"}]}",
         -EINVAL, "/secret is reserved"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/secret/"
         "x\",\"Source\":"
         "\"d\"}]}",
         -EINVAL, "/secret is reserved"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/"
         "d\",\"Source\":\"../x\"}]}",
         -EINVAL, "Source must be a volume name"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/"
         "d\",\"Source\":\"d\","
         "\"RW\":\"yes\"}]}",
         -EINVAL, "RW must be true or false"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/"
         "d\",\"Source\":\"a\"},"
         "{\"Type\":\"volume\",\"Target\":\"/d\",\"Source\":\"b\"}]}",
         -EINVAL, "mounted twice"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":\"h:1\"}", -EINVAL,
         "KmsEndpoints must be an array"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":[\"nohost\"]}", -EINVAL, "host:port"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":[\"h:0\"]}", -EINVAL, "port must be"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":[\"h:99999\"]}", -EINVAL, "port must be"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":[\"h_x:1\"]}", -EINVAL, "DNS name"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":[\"[zz]:1\"]}", -EINVAL, "IPv6"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":[\"h:1#sha256:abc\"]}", -EINVAL,
         "certificate pin"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":[\"h:1\",\"h:1\"]}", -EINVAL,
         "listed twice"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":[\"a/../../x:1\"]}", -EINVAL, "DNS name"},
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":[\"h\\u0000/x:1\"]}", -EINVAL,
         "contains a NUL byte"},
        /* Both would write /secret/secret-h:1.json: the second would silently replace the first. */
        {"{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":[\"h:1\",\"h:1#sha256:"
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"]}",
         -EINVAL, "listed twice"},
};

static void test_bad_requests(void **state)
{
        for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
                _cleanup_error_ struct ck_error *e = NULL;
                struct task_request r = {0};
                int q = task_request_parse(bad_cases[i].body, strlen(bad_cases[i].body), 1 << 20, &lim, &r,
                                           &e);
                if (q != bad_cases[i].code || !e || !strstr(e->msg, bad_cases[i].msg))
                        fail_msg("case %zu (%s): got %d \"%s\", want %d \"%s\"", i, bad_cases[i].body, q,
                                 e ? e->msg : "", bad_cases[i].code, bad_cases[i].msg);
        }
}

static void test_limits(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct task_request r = {0};
        char big[4096];
        size_t n = 0;

        /* The body cap. */
        assert_int_equal(task_request_parse(seed, strlen(seed), 100, &lim, &r, &e), -E2BIG);
        ck_error_free(TAKE_PTR(e));
        /* Too many KMS endpoints. */
        n = (size_t)snprintf(big, sizeof(big), "{\"ImageInfo\":{\"ImageName\":\"a\"},\"KmsEndpoints\":[");
        for (int i = 0; i <= TASK_KMS_MAX; i++)
                n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"h%d:1\"", i ? "," : "", i);
        snprintf(big + n, sizeof(big) - n, "]}");
        assert_int_equal(task_request_parse(big, strlen(big), 1 << 20, &lim, &r, &e), -EINVAL);
        assert_non_null(strstr(e->msg, "more than"));
}

/* A malformed body must not echo its own bytes back: jansson's error text quotes the token it
 * stopped at ("... near '\"hunter2'"), and the message reaches the client and the log. */
static void test_parse_error_hides_password(void **state)
{
        static const char *const bodies[] = {
                "{\"ImageInfo\":{\"ImageName\":\"a\",\"RegisterAuthInfo\":{\"Username\":\"u\","
                "\"Password\":\"hunter2",
                "{\"ImageInfo\":{\"ImageName\":\"a\",\"RegisterAuthInfo\":{\"Username\":\"u\","
                "\"Password\":\"hunter2\\q\"}}}",
                "{\"ImageInfo\":{\"ImageName\":\"a\",\"RegisterAuthInfo\":{\"Username\":\"u\","
                "\"Password\":\"hunter2\x01\"}}}",
                "{\"ImageInfo\":{\"ImageName\":\"a\",\"RegisterAuthInfo\":{\"Username\":\"u\","
                "\"Password\":hunter2}}}",
        };

        for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
                _cleanup_error_ struct ck_error *e = NULL;
                struct task_request r = {0};

                assert_int_equal(task_request_parse(bodies[i], strlen(bodies[i]), 1 << 20, &lim, &r, &e),
                                 -EBADMSG);
                assert_non_null(e);
                if (strstr(e->msg, "hunter"))
                        fail_msg("body %zu: the error quotes the password: %s", i, e->msg);
                assert_non_null(strstr(e->msg, "malformed JSON"));
        }
}

static void test_validators(void **state)
{
        assert_true(task_name_valid("a"));
        assert_true(task_name_valid("A0_.-"));
        assert_false(task_name_valid(""));
        assert_false(task_name_valid(".a"));
        assert_true(task_volume_name_valid("data"));
        assert_false(task_volume_name_valid("a b"));
        assert_true(task_env_entry_valid("A=", 2));
        assert_true(task_env_entry_valid("_a1=x=y", 7));
        assert_int_equal(task_mount_target_check("/secretive", NULL), 0);
        assert_int_equal(task_mount_target_check("/a/./b", NULL), -EINVAL);
        assert_int_equal(task_kms_endpoint_check("127.0.0.1:3333", NULL), 0);
        assert_int_equal(task_kms_endpoint_check("[::1]:3333", NULL), 0);
        assert_int_equal(
                task_kms_endpoint_check("kms.example.com:443#sha256:"
                                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                                        NULL),
                0);
        assert_int_equal(task_kms_endpoint_check("a..b:1", NULL), -EINVAL);
        assert_int_equal(task_kms_endpoint_check("-a:1", NULL), -EINVAL);
        assert_int_equal(task_kms_endpoint_check(":1", NULL), -EINVAL);
        /* The endpoint names its secret's file, /secret/secret-<host:port>.json: nothing that
         * leads out of that directory. */
        assert_int_equal(task_kms_endpoint_check("a/b:1", NULL), -EINVAL);
        assert_int_equal(task_kms_endpoint_check("x/../../../etc/cron.d/y:1", NULL), -EINVAL);
        assert_int_equal(task_kms_endpoint_check("..:1", NULL), -EINVAL);
        assert_int_equal(task_kms_endpoint_check("[::1/..]:1", NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_seed_body),
                cmocka_unit_test(test_minimal_body),
                cmocka_unit_test(test_redaction),
                cmocka_unit_test(test_bad_requests),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_validators),
                cmocka_unit_test(test_parse_error_hides_password),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
