/* Unit tests for the task-config document parser: the canonical v1 shape, its bounds, and
 * refusal of anything the policy could not judge. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task-config.h"

#define ID "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char good[] =
        "{\"env\":[\"A=1\",\"B\"],\"image\":\"docker.io/reckey/conker-example-app:latest\",\"imageId\":\"" ID
        "\",\"kmsEndpoints\":[\"127.0.0.1:3333#sha256:00\"],"
        "\"mounts\":[{\"rw\":true,\"source\":\"test-api\",\"target\":\"/inner1\",\"type\":\"volume\"},"
        "{\"target\":\"/tmp\",\"type\":\"tmpfs\"}],"
        "\"ports\":[{\"published\":30001,\"target\":8080},{\"target\":9000}],\"version\":1}";

static int parse(const char *s, struct broker_task_config **ret)
{
        return broker_task_config_parse((const uint8_t *)s, strlen(s), ret, NULL);
}

static void test_parse_good(void **state)
{
        _cleanup_(broker_task_config_freep) struct broker_task_config *c = NULL;

        assert_int_equal(parse(good, &c), 0);
        assert_string_equal(c->image, "docker.io/reckey/conker-example-app:latest");
        assert_string_equal(c->image_id, ID);
        assert_int_equal(c->n_env, 2);
        assert_string_equal(c->env[1], "B");
        assert_int_equal(broker_env_key_len(c->env[0]), 1);
        assert_int_equal(broker_env_key_len(c->env[1]), 1);
        assert_int_equal(c->n_ports, 2);
        assert_int_equal(c->ports[0].published, 30001);
        assert_int_equal(c->ports[1].published, 0);
        assert_int_equal(c->n_mounts, 2);
        assert_true(c->mounts[0].rw);
        assert_string_equal(c->mounts[1].source, "");
        assert_false(c->mounts[1].rw);
        assert_int_equal(c->n_kms_endpoints, 1);
}

static void test_parse_minimal(void **state)
{
        _cleanup_(broker_task_config_freep) struct broker_task_config *c = NULL;

        assert_int_equal(parse("{\"image\":\"x\",\"imageId\":\"" ID "\",\"version\":1}", &c), 0);
        assert_int_equal(c->n_env + c->n_ports + c->n_mounts + c->n_kms_endpoints, 0);
}

static void test_parse_rejects(void **state)
{
        struct broker_task_config *c = NULL;
        _cleanup_free_ char *big = NULL;
        const char *bad[] = {
                "[]",
                "{\"image\":\"x\",\"imageId\":\"" ID "\",\"version\":2}",
                "{\"image\":\"x\",\"imageId\":\"" ID "\"}",
                "{\"imageId\":\"" ID "\",\"version\":1}",
                "{\"image\":\"x\",\"imageId\":\"sha256:00\",\"version\":1}",
                "{\"image\":\"x\",\"imageId\":\"" ID "\",\"version\":1,\"privileged\":true}",
                "{\"image\":\"x\",\"imageId\":\"SHA256:0123456789abcdef0123456789abcdef0123456789abcdef01234"
                "56789abcdef\",\"version\":1}",
                "{\"image\":\"x\",\"imageId\":\"" ID "\",\"version\":1,\"env\":[1]}",
                "{\"image\":\"x\",\"imageId\":\"" ID "\",\"version\":1,\"env\":[\"A\\u0000B\"]}",
                "{\"image\":\"x\",\"imageId\":\"" ID "\",\"version\":1,\"ports\":[{\"target\":0}]}",
                "{\"image\":\"x\",\"imageId\":\"" ID
                "\",\"version\":1,\"ports\":[{\"target\":80,\"published\":70000}]}",
                "{\"image\":\"x\",\"imageId\":\"" ID
                "\",\"version\":1,\"ports\":[{\"target\":80,\"proto\":\"udp\"}]}",
                "{\"image\":\"x\",\"imageId\":\"" ID "\",\"version\":1,\"mounts\":[{\"target\":\"/a\"}]}",
                "{\"image\":\"x\",\"imageId\":\"" ID
                "\",\"version\":1,\"mounts\":[{\"type\":\"bind\",\"target\":\"/a\","
                "\"rw\":1}]}",
                "{\"image\":\"x\",\"imageId\":\"" ID "\",\"version\":1,\"env\":[],\"env\":[]}",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (parse(bad[i], &c) >= 0)
                        fail_msg("accepted %s", bad[i]);
        assert_null(c);
        /* Over the size limit. */
        big = malloc(BROKER_TASK_CONFIG_MAX_BYTES + 2);
        assert_non_null(big);
        memset(big, ' ', BROKER_TASK_CONFIG_MAX_BYTES + 1);
        big[0] = '{';
        big[BROKER_TASK_CONFIG_MAX_BYTES] = '}';
        big[BROKER_TASK_CONFIG_MAX_BYTES + 1] = 0;
        assert_int_equal(broker_task_config_parse((const uint8_t *)big, strlen(big), &c, NULL), -EBADMSG);
}

static void test_digest(void **state)
{
        char d[72];

        assert_int_equal(broker_task_config_digest((const uint8_t *)"", 0, d), 0);
        assert_string_equal(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_good),
                cmocka_unit_test(test_parse_minimal),
                cmocka_unit_test(test_parse_rejects),
                cmocka_unit_test(test_digest),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
