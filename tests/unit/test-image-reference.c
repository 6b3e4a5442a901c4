/* Image reference parsing: a table of good references with their normalised parts, and bad
 * references with a word their error must contain. */
#include "cmocka-wrap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reference.h"

#define D256 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define D512                                                                                                \
        "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"                           \
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct good {
        const char *in;
        const char *domain, *path, *tag, *digest;
        const char *str;
};

static const struct good goods[] = {
        {"busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest"},
        {"busybox:1.36", "docker.io", "library/busybox", "1.36", NULL, "docker.io/library/busybox:1.36"},
        {"docker.io/library/x", "docker.io", "library/x", "latest", NULL, "docker.io/library/x:latest"},
        {"docker.io/x", "docker.io", "library/x", "latest", NULL, NULL},
        {"index.docker.io/x", "docker.io", "library/x", "latest", NULL, "docker.io/library/x:latest"},
        {"index.docker.io/a/b:t", "docker.io", "a/b", "t", NULL, NULL},
        {"reckey/conker-example-app:latest", "docker.io", "reckey/conker-example-app", "latest", NULL,
         "docker.io/reckey/conker-example-app:latest"},
        {"host:5000/a/b:t", "host:5000", "a/b", "t", NULL, "host:5000/a/b:t"},
        {"host:5000/a/b", "host:5000", "a/b", "latest", NULL, NULL},
        {"[::1]:5000/a@" D256, "[::1]:5000", "a", NULL, D256, "[::1]:5000/a@" D256},
        {"[::1]/a:t", "[::1]", "a", "t", NULL, NULL},
        {"[fe80::1:2]:443/x/y", "[fe80::1:2]:443", "x/y", "latest", NULL, NULL},
        {"localhost/x", "localhost", "x", "latest", NULL, "localhost/x:latest"},
        {"localhost:5000/a", "localhost:5000", "a", "latest", NULL, NULL},
        {"Foo/bar", "Foo", "bar", "latest", NULL, "Foo/bar:latest"},
        {"127.0.0.1:5000/conker/app:v1", "127.0.0.1:5000", "conker/app", "v1", NULL, NULL},
        {"ghcr.io/org/sub/repo:1.2.3-rc.1", "ghcr.io", "org/sub/repo", "1.2.3-rc.1", NULL, NULL},
        {"quay.io/a_b/c__d/e-f/g--h/i.j", "quay.io", "a_b/c__d/e-f/g--h/i.j", "latest", NULL, NULL},
        {"a:t@" D256, "docker.io", "library/a", NULL, D256, "docker.io/library/a@" D256},
        {"a@" D512, "docker.io", "library/a", NULL, D512, NULL},
        {"ubuntu:_x", "docker.io", "library/ubuntu", "_x", NULL, NULL},
        {"ubuntu:X.Y-Z_1", "docker.io", "library/ubuntu", "X.Y-Z_1", NULL, NULL},
        {"my-registry.example.com/app", "my-registry.example.com", "app", "latest", NULL, NULL},
        {"a/b/c", "docker.io", "a/b/c", "latest", NULL, NULL},
        {"foo:5000", "docker.io", "library/foo", "5000", NULL, NULL},
        {"xn--bcher-kva.example/a", "xn--bcher-kva.example", "a", "latest", NULL, NULL},
        {"0/1", "docker.io", "0/1", "latest", NULL, NULL},
};

struct bad {
        const char *in;
        const char *needle;
};

static const struct bad bads[] = {
        {"", "empty"},
        {"Busybox", "lowercase"},
        {"docker.io/Library/x", "lowercase"},
        {"host:5000/A/b", "lowercase"},
        {"a::b", "path component"},
        {"a:", "empty tag"},
        {"a@", "empty digest"},
        {"a:t@", "empty digest"},
        {"a@sha256:abc", "digest"},
        {"a@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "digest"},
        {"a@md5:0123456789abcdef0123456789abcdef", "digest"},
        {"a b", "space"},
        {" a", "space"},
        {"a\tb", "control"},
        {"..", "path component"},
        {"a/../b", "path component"},
        {"a/./b", "path component"},
        {"a//b", "path component"},
        {"a/", "path component"},
        {"/a", "path component"},
        {"-a", "path component"},
        {"a-", "path component"},
        {"a..b", "path component"},
        {"a___b", "path component"},
        {"a-_b", "path component"},
        {"a:-t", "tag"},
        {"a:.t", "tag"},
        {"a:t!", "tag"},
        {"host:99999/a", "registry host"},
        {"host:/a", "registry host"},
        {"-host.com/a", "registry host"},
        {"host..com/a", "registry host"},
        {"[::1/a", "registry host"},
        {"[zz::1]:5000/a", "registry host"},
        {"[::1]:5000", "path component"},
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "hexadecimal"},
        {"caf\xc3\xa9", "non-ASCII"},
        {":t", "empty repository"},
        {"host.com/", "empty repository path"},
};

static void test_good(void **state)
{
        for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
                const struct good *g = &goods[i];
                struct image_ref r = {0};
                _cleanup_error_ struct ck_error *err = NULL;
                _cleanup_free_ char *s = NULL;
                int ret = image_ref_parse(g->in, &r, &err);

                if (ret < 0)
                        fail_msg("%s: %s", g->in, ck_error_message(err, ret));
                assert_string_equal(r.domain, g->domain);
                assert_string_equal(r.path, g->path);
                if (g->tag)
                        assert_string_equal(r.tag, g->tag);
                else
                        assert_null(r.tag);
                if (g->digest)
                        assert_string_equal(r.digest, g->digest);
                else
                        assert_null(r.digest);
                assert_string_equal(image_ref_reference(&r), g->digest ? g->digest : g->tag);
                s = image_ref_to_string(&r);
                assert_non_null(s);
                if (g->str)
                        assert_string_equal(s, g->str);
                image_ref_clear(&r);

                /* The normalised form is a fixed point. */
                ret = image_ref_parse(s, &r, NULL);
                assert_int_equal(ret, 0);
                assert_string_equal(r.domain, g->domain);
                assert_string_equal(r.path, g->path);
                image_ref_clear(&r);
        }
}

static void test_bad(void **state)
{
        for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
                struct image_ref r = {0};
                _cleanup_error_ struct ck_error *err = NULL;
                int ret = image_ref_parse(bads[i].in, &r, &err);

                if (ret >= 0)
                        fail_msg("\"%s\" was accepted as %s/%s", bads[i].in, r.domain, r.path);
                assert_int_equal(ret, -EINVAL);
                assert_non_null(err);
                if (!strstr(err->msg, bads[i].needle))
                        fail_msg("\"%s\": error \"%s\" does not mention \"%s\"", bads[i].in, err->msg,
                                 bads[i].needle);
                assert_null(r.domain);
        }
}

static void test_lengths(void **state)
{
        char name[300], *huge;
        struct image_ref r = {0};
        _cleanup_error_ struct ck_error *err = NULL;

        /* docker.io/library/ + 237 = 255: the limit itself is fine, one more is not. */
        memset(name, 'a', sizeof(name));
        name[255 - strlen("docker.io/library/")] = 0;
        assert_int_equal(image_ref_parse(name, &r, NULL), 0);
        image_ref_clear(&r);
        name[255 - strlen("docker.io/library/")] = 'a';
        name[256 - strlen("docker.io/library/")] = 0;
        assert_int_equal(image_ref_parse(name, &r, &err), -EINVAL);
        assert_non_null(strstr(err->msg, "255"));

        /* 128-character tags are allowed, 129 are not. */
        {
                char ref[200] = "a:";

                memset(ref + 2, 't', 128);
                ref[130] = 0;
                assert_int_equal(image_ref_parse(ref, &r, NULL), 0);
                assert_int_equal(strlen(r.tag), 128);
                image_ref_clear(&r);
                ref[130] = 't';
                ref[131] = 0;
                assert_int_equal(image_ref_parse(ref, &r, NULL), -EINVAL);
        }

        huge = malloc(IMAGE_REF_MAX + 2);
        assert_non_null(huge);
        memset(huge, 'a', IMAGE_REF_MAX + 1);
        huge[IMAGE_REF_MAX + 1] = 0;
        assert_int_equal(image_ref_parse(huge, &r, NULL), -EINVAL);
        free(huge);
        assert_int_equal(image_ref_parse(NULL, &r, NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good),
                cmocka_unit_test(test_bad),
                cmocka_unit_test(test_lengths),
        };

        printf("# %zu good and %zu bad references\n", sizeof(goods) / sizeof(goods[0]),
               sizeof(bads) / sizeof(bads[0]));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
