/* conkerd's config table: file parsing (good and bad lines, bounds, lists), flags, and that
 * the committed conkerd.conf.example is exactly what the table generates. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fs.h"

static int parse(struct conkerd_config *c, const char *text, struct ck_error **e)
{
        return conkerd_config_parse(c, text, strlen(text), "test.conf", e);
}

static void test_defaults(void **state)
{
        struct conkerd_config c;

        assert_int_equal(conkerd_config_init(&c, NULL), 0);
        assert_string_equal(c.listen, "0.0.0.0:8383");
        assert_string_equal(c.data_dir, "/var/lib/conker");
        assert_string_equal(c.run_dir, "/run/conker");
        assert_string_equal(c.runtime, "auto");
        assert_string_equal(c.tee, "auto");
        assert_string_equal(c.token_file, "/etc/conker/token");
        assert_true(c.auth);
        assert_int_equal(c.published_port_min, 30000);
        assert_int_equal(c.published_port_max, 65534);
        assert_int_equal(c.max_body_size, 1 << 20);
        assert_int_equal(c.stop_timeout, 10);
        assert_int_equal(c.registry_mirrors.n, 0);
        /* The image caps are config keys with the image store's defaults (STYLE: limits). */
        assert_int_equal(c.image_max_blob_size, UINT64_C(4) << 30);
        assert_int_equal(c.image_max_layer_size, UINT64_C(16) << 30);
        assert_int_equal(c.image_max_layer_entries, 1000000);
        assert_int_equal(c.image_max_ratio, 100);
        assert_int_equal(conkerd_config_set(&c, "image-max-ratio", "20", NULL), 0);
        assert_int_equal(c.image_max_ratio, 20);
        assert_int_equal(conkerd_config_set(&c, "image-max-ratio", "0", NULL), -ERANGE);
        /* The seed's listen address with plain HTTP fails closed (finding 5: the API in clear). */
        assert_false(c.insecure_http);
        assert_string_equal(c.tls_cert, "");
        assert_int_equal(conkerd_config_check(&c, NULL), -EPERM);
        assert_int_equal(conkerd_config_set(&c, "listen", "127.0.0.1:8383", NULL), 0);
        assert_int_equal(conkerd_config_check(&c, NULL), 0);
        conkerd_config_clear(&c);
}

/* conkerd --listen 0.0.0.0:… without TLS stops at start naming --insecure-http; TLS (a file or
 * auto) or the explicit flag lets it start. */
static void test_insecure_http(void **state)
{
        static const struct {
                const char *text;
                int want;
        } cases[] = {
                {"listen = 0.0.0.0:8383\n", -EPERM},
                {"listen = [::]:8383\n", -EPERM},
                {"listen = 10.0.0.5:8383\n", -EPERM},
                {"listen = localhost:8383\n", -EPERM}, /* names may resolve to anything */
                {"listen = 0.0.0.0:8383\ninsecure-http = on\n", 0},
                {"listen = 0.0.0.0:8383\ntls-cert = auto\n", 0},
                {"listen = 0.0.0.0:8383\ntls-cert = /c.pem\ntls-key = /k.pem\n", 0},
                {"listen = 127.0.0.1:8383\n", 0},
                {"listen = 127.1.2.3:8383\n", 0},
                {"listen = [::1]:8383\n", 0},
                {"listen = [::ffff:127.0.0.1]:8383\n", 0},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_error_ struct ck_error *e = NULL;
                struct conkerd_config c;
                int r;

                assert_int_equal(conkerd_config_init(&c, NULL), 0);
                if (parse(&c, cases[i].text, &e) < 0)
                        fail_msg("%s: %s", cases[i].text, e->msg);
                r = conkerd_config_check(&c, &e);
                if (r != cases[i].want)
                        fail_msg("%s: check returned %d", cases[i].text, r);
                if (r < 0) {
                        assert_non_null(strstr(e->msg, "--insecure-http"));
                        assert_non_null(strstr(e->msg, "tls-cert = auto"));
                }
                conkerd_config_clear(&c);
        }

        /* The flag form: --insecure-http after --listen. */
        {
                char *argv_ok[] = {"conkerd", "--listen", "0.0.0.0:1", "--insecure-http", NULL};
                struct conkerd_config c;
                struct conkerd_args a;

                assert_int_equal(conkerd_config_init(&c, NULL), 0);
                assert_int_equal(conkerd_config_from_args(&c, 4, argv_ok, &a, NULL), 0);
                assert_true(c.insecure_http);
                assert_int_equal(conkerd_config_check(&c, NULL), 0);
                conkerd_config_clear(&c);
        }
}

static void test_tls_cert_auto(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct conkerd_config c;

        assert_int_equal(conkerd_config_init(&c, NULL), 0);
        assert_int_equal(parse(&c, "tls-cert = auto\n", NULL), 0);
        assert_true(conkerd_config_tls_auto(&c));
        assert_int_equal(conkerd_config_check(&c, NULL), 0);
        /* The key is made at start: a key file next to auto is a mistake. */
        assert_int_equal(parse(&c, "tls-key = /k.pem\n", NULL), 0);
        assert_int_equal(conkerd_config_check(&c, &e), -EINVAL);
        assert_non_null(strstr(e->msg, "tls-key must be empty"));
        conkerd_config_clear(&c);
        ck_error_free(TAKE_PTR(e));

        assert_int_equal(conkerd_config_init(&c, NULL), 0);
        assert_int_equal(parse(&c, "tls-cert = relative.pem\n", &e), -EINVAL);
        assert_non_null(strstr(e->msg, "neither auto nor an absolute path"));
        assert_false(conkerd_config_tls_auto(&c));
        conkerd_config_clear(&c);

        assert_false(conkerd_listen_is_loopback("127.0.0.1"));
        assert_false(conkerd_listen_is_loopback("[::1:8383"));
        assert_false(conkerd_listen_is_loopback(NULL));
        /* An IPv4-mapped address is loopback only when the IPv4 address is. */
        assert_true(conkerd_listen_is_loopback("[::ffff:127.0.0.1]:8383"));
        assert_false(conkerd_listen_is_loopback("[::ffff:10.1.2.3]:8383"));
        assert_false(conkerd_listen_is_loopback("[::ffff:0.0.0.0]:8383"));
}

static void test_good_file(void **state)
{
        struct conkerd_config c;
        _cleanup_error_ struct ck_error *e = NULL;
        const char *text = "# comment\n"
                           "\n"
                           "   listen = 127.0.0.1:9000   \n"
                           "data-dir=/tmp/x\r\n"
                           "auth = off\n"
                           "max-body-size = 2M\n"
                           "registry-mirror = docker.io=127.0.0.1:5000\n"
                           "registry-mirror = quay.io=127.0.0.1:5001\n"
                           "insecure-registry = 127.0.0.1:5000\n"
                           "tee = sim\n"
                           "tls-cert =\n"
                           "log-level = debug";

        assert_int_equal(conkerd_config_init(&c, NULL), 0);
        if (parse(&c, text, &e) < 0)
                fail_msg("%s", e->msg);
        assert_string_equal(c.listen, "127.0.0.1:9000");
        assert_string_equal(c.data_dir, "/tmp/x");
        assert_false(c.auth);
        assert_int_equal(c.max_body_size, 2 << 20);
        assert_int_equal(c.registry_mirrors.n, 2);
        assert_string_equal(c.registry_mirrors.items[1], "quay.io=127.0.0.1:5001");
        assert_null(c.registry_mirrors.items[2]);
        assert_string_equal(c.insecure_registries.items[0], "127.0.0.1:5000");
        assert_string_equal(c.tee, "sim");
        assert_string_equal(c.log_level, "debug");
        conkerd_config_clear(&c);
}

static const struct {
        const char *text;
        const char *msg;
} bad[] = {
        {"nokey\n", "test.conf:1: expected \"key = value\""},
        {"# ok\nbogus = 1\n", "test.conf:2: unknown key \"bogus\""},
        {"listen = 1.2.3.4\n", "test.conf:1: listen: \"1.2.3.4\" is not HOST:PORT"},
        {"listen = 1.2.3.4:0\n", "is not HOST:PORT"},
        {"data-dir = relative\n", "must be an absolute path"},
        {"auth = maybe\n", "is not on or off"},
        {"tee = sgx\n", "not one of the allowed values"},
        {"max-tasks = 0\n", "max-tasks: 0 is outside 1-4096"},
        {"max-tasks = 5000\n", "outside 1-4096"},
        {"max-tasks = -1\n", "is not an unsigned number"},
        {"max-tasks = 12abc\n", "is not an unsigned number"},
        {"max-body-size = 1\n", "outside"},
        {"max-body-size = 10Q\n", "is not a size"},
        {"published-port-min = 70000\n", "outside 1-65535"},
        {"stop-timeout = 1\nstop-timeout = 2\n", "test.conf:2: \"stop-timeout\" is set twice"},
        {"registry-mirror = docker.io\n", "is not DOMAIN=HOST:PORT"},
        {"bridge = Bad Name\n", "not a valid interface name"},
        {"subnet = abc\n", "not an IPv4 CIDR"},
        {"listen = a\x01:1\n", "control characters"},
};

static void test_bad_lines(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct conkerd_config c;
                _cleanup_error_ struct ck_error *e = NULL;
                int r;

                assert_int_equal(conkerd_config_init(&c, NULL), 0);
                r = parse(&c, bad[i].text, &e);
                if (r >= 0 || !e || !strstr(e->msg, bad[i].msg))
                        fail_msg("case %zu: got %d \"%s\", want \"%s\"", i, r, e ? e->msg : "", bad[i].msg);
                conkerd_config_clear(&c);
        }
}

static void test_check(void **state)
{
        struct conkerd_config c;
        _cleanup_error_ struct ck_error *e = NULL;

        assert_int_equal(conkerd_config_init(&c, NULL), 0);
        assert_int_equal(parse(&c, "published-port-min = 40000\npublished-port-max = 35000\n", NULL), 0);
        assert_int_equal(conkerd_config_check(&c, &e), -EINVAL);
        assert_non_null(strstr(e->msg, "published-port-min"));
        conkerd_config_clear(&c);
        ck_error_free(TAKE_PTR(e));

        assert_int_equal(conkerd_config_init(&c, NULL), 0);
        assert_int_equal(parse(&c, "tls-cert = /x.pem\n", NULL), 0);
        assert_int_equal(conkerd_config_check(&c, &e), -EINVAL);
        assert_non_null(strstr(e->msg, "together"));
        conkerd_config_clear(&c);
}

static void test_flags(void **state)
{
        char *argv[] = {"conkerd", "--config", "/nonexistent/conkerd.conf", NULL};
        char *argv2[] = {"conkerd",
                         "--listen=127.0.0.1:1",
                         "--no-auth",
                         "--registry-mirror",
                         "docker.io=h:1",
                         "--max-tasks",
                         "9",
                         "--print-config-example",
                         NULL};
        char *argv3[] = {"conkerd", "--max-tasks", "0", NULL};
        char *argv4[] = {"conkerd", "--frobnicate", NULL};
        struct conkerd_config c;
        struct conkerd_args a;
        _cleanup_error_ struct ck_error *e = NULL;

        assert_int_equal(conkerd_config_init(&c, NULL), 0);
        assert_int_equal(conkerd_config_from_args(&c, 3, argv, &a, &e), -ENOENT);
        assert_non_null(strstr(e->msg, "does not exist"));
        ck_error_free(TAKE_PTR(e));
        conkerd_config_clear(&c);

        assert_int_equal(conkerd_config_init(&c, NULL), 0);
        /* --config absent: /etc/conker/conkerd.conf may not exist here, which is fine. */
        if (conkerd_config_from_args(&c, 8, argv2, &a, &e) < 0)
                fail_msg("%s", e->msg);
        assert_string_equal(c.listen, "127.0.0.1:1");
        assert_false(c.auth);
        assert_int_equal(c.registry_mirrors.n, 1);
        assert_int_equal(c.max_tasks, 9);
        assert_true(a.print_example);
        conkerd_config_clear(&c);

        assert_int_equal(conkerd_config_init(&c, NULL), 0);
        assert_int_equal(conkerd_config_from_args(&c, 3, argv3, &a, &e), -ERANGE);
        assert_non_null(strstr(e->msg, "command line: max-tasks"));
        ck_error_free(TAKE_PTR(e));
        conkerd_config_clear(&c);

        assert_int_equal(conkerd_config_init(&c, NULL), 0);
        assert_int_equal(conkerd_config_from_args(&c, 2, argv4, &a, &e), -EINVAL);
        assert_non_null(strstr(e->msg, "--frobnicate"));
        conkerd_config_clear(&c);
}

/* The committed example is what the table generates, and it parses back to the defaults once
 * uncommented. */
static void test_example_file(void **state)
{
        const char *src = getenv("CONKER_SOURCE");
        _cleanup_free_ char *gen = conkerd_config_example(), *path = NULL;
        _cleanup_free_ uint8_t *committed = NULL;
        size_t n = 0;
        struct conkerd_config c;

        assert_non_null(src);
        assert_non_null(gen);
        assert_true(asprintf(&path, "%s/src/conkerd/conkerd.conf.example", src) > 0);
        if (ck_read_file(path, 1 << 20, &committed, &n, NULL) < 0)
                fail_msg("cannot read %s; regenerate it with conkerd --print-config-example", path);
        if (n != strlen(gen) || memcmp(committed, gen, n) != 0)
                fail_msg("%s is stale; regenerate it with conkerd --print-config-example", path);

        /* Uncommenting every "#key = value" line gives a valid file. */
        for (char *p = gen; (p = strstr(p, "\n#")) != NULL; p++)
                if (p[2] != ' ' && p[2] != '\n' && p[2] != 0)
                        p[1] = ' ';
        assert_int_equal(conkerd_config_init(&c, NULL), 0);
        _cleanup_error_ struct ck_error *e = NULL;
        if (parse(&c, gen, &e) < 0)
                fail_msg("uncommented example: %s", e->msg);
        assert_string_equal(c.listen, "0.0.0.0:8383");
        conkerd_config_clear(&c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),      cmocka_unit_test(test_good_file),
                cmocka_unit_test(test_bad_lines),     cmocka_unit_test(test_check),
                cmocka_unit_test(test_flags),         cmocka_unit_test(test_example_file),
                cmocka_unit_test(test_insecure_http), cmocka_unit_test(test_tls_cert_auto),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
