/* Unit tests for crun's seccomp filter cache: the key follows the profile and the runtime's
 * version, a kept filter becomes the annotation byte for byte, and a malformed or missing cache
 * file (empty, not whole instructions, too long, a symlinked directory) leaves the spec as it is,
 * so that crun compiles the profile itself. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "json.h"
#include "seccomp-cache.h"

static char tmp[64];

static json_t *spec_with(const char *default_action)
{
        return json_pack("{s:{s:{s:s,s:[s]}}}", "linux", "seccomp", "defaultAction", default_action,
                         "architectures", "SCMP_ARCH_X86_64");
}

static void put(const char *rel, const void *data, size_t len)
{
        char p[256];
        FILE *f;

        snprintf(p, sizeof(p), "%s/%s", tmp, rel);
        f = fopen(p, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        fclose(f);
}

static int setup(void **state)
{
        char p[128];

        snprintf(tmp, sizeof(tmp), "/tmp/ck-sccache-XXXXXX");
        assert_non_null(mkdtemp(tmp));
        snprintf(p, sizeof(p), "%s/root", tmp);
        assert_int_equal(mkdir(p, 0700), 0);
        snprintf(p, sizeof(p), "%s/root/c1", tmp);
        assert_int_equal(mkdir(p, 0700), 0);
        return 0;
}

static int teardown(void **state)
{
        assert_int_equal(ck_rm_rf_at(AT_FDCWD, tmp), 0);
        return 0;
}

static void test_key(void **state)
{
        json_t *a = spec_with("SCMP_ACT_ERRNO"), *b = spec_with("SCMP_ACT_ERRNO"),
               *c = spec_with("SCMP_ACT_KILL");
        json_t *none = json_pack("{s:{}}", "linux");
        char ka[65], kb[65], kc[65], kv[65];

        assert_int_equal(seccomp_cache_key(a, "crun version 1.8.1", ka), 0);
        assert_int_equal(strlen(ka), 64);
        assert_int_equal(seccomp_cache_key(b, "crun version 1.8.1", kb), 0);
        assert_string_equal(ka, kb);
        assert_int_equal(seccomp_cache_key(c, "crun version 1.8.1", kc), 0);
        assert_string_not_equal(ka, kc);
        assert_int_equal(seccomp_cache_key(a, "crun version 1.9", kv), 0);
        assert_string_not_equal(ka, kv);
        assert_int_equal(seccomp_cache_key(none, "crun version 1.8.1", kv), -ENOENT);
        json_decref(a);
        json_decref(b);
        json_decref(c);
        json_decref(none);
}

static void test_valid(void **state)
{
        assert_false(seccomp_cache_filter_valid(0));
        assert_false(seccomp_cache_filter_valid(7));
        assert_false(seccomp_cache_filter_valid(12));
        assert_true(seccomp_cache_filter_valid(8));
        assert_true(seccomp_cache_filter_valid(4096 * 8));
        assert_false(seccomp_cache_filter_valid(4096 * 8 + 8));
}

static void test_store_then_annotate(void **state)
{
        char dir[128], root[128], key[65], b64[64];
        uint8_t filt[24];
        json_t *cfg = spec_with("SCMP_ACT_ERRNO");
        const char *ann;

        for (size_t i = 0; i < sizeof(filt); i++)
                filt[i] = (uint8_t)(i * 7 + 1);
        snprintf(dir, sizeof(dir), "%s/cache", tmp);
        snprintf(root, sizeof(root), "%s/root", tmp);
        assert_int_equal(seccomp_cache_key(cfg, "crun version 1.8.1", key), 0);

        /* Nothing kept yet: the spec is left alone. */
        assert_int_equal(seccomp_cache_annotate(dir, key, cfg, NULL), 0);
        assert_null(json_object_get(cfg, "annotations"));

        /* The runtime wrote no filter, or a malformed one: nothing is kept. */
        assert_int_equal(seccomp_cache_store(dir, key, root, "c1", NULL), -ENOENT);
        put("root/c1/seccomp.bpf", filt, 12);
        assert_int_equal(seccomp_cache_store(dir, key, root, "c1", NULL), -EBADMSG);
        assert_int_equal(seccomp_cache_annotate(dir, key, cfg, NULL), 0);

        put("root/c1/seccomp.bpf", filt, sizeof(filt));
        assert_int_equal(seccomp_cache_store(dir, key, root, "c1", NULL), 0);
        assert_int_equal(seccomp_cache_annotate(dir, key, cfg, NULL), 1);
        ann = json_string_value(
                json_object_get(json_object_get(cfg, "annotations"), SECCOMP_CACHE_ANNOTATION));
        assert_non_null(ann);
        EVP_EncodeBlock((unsigned char *)b64, filt, sizeof(filt));
        assert_string_equal(ann, b64);
        json_decref(cfg);
}

static void test_malformed_cache_ignored(void **state)
{
        char dir[128], key[65], name[160], link[128];
        json_t *cfg = spec_with("SCMP_ACT_ERRNO");
        uint8_t big[4096 * 8 + 8] = {0};

        snprintf(dir, sizeof(dir), "%s/cache2", tmp);
        assert_int_equal(mkdir(dir, 0700), 0);
        assert_int_equal(seccomp_cache_key(cfg, "crun version 1.8.1", key), 0);
        snprintf(name, sizeof(name), "cache2/%s.bpf", key);
        put(name, "", 0);
        assert_int_equal(seccomp_cache_annotate(dir, key, cfg, NULL), 0);
        put(name, "12345", 5);
        assert_int_equal(seccomp_cache_annotate(dir, key, cfg, NULL), 0);
        put(name, big, sizeof(big));
        assert_int_equal(seccomp_cache_annotate(dir, key, cfg, NULL), 0);
        assert_null(json_object_get(cfg, "annotations"));

        /* A symlink in place of the cache directory is not followed. */
        put(name, big, 16);
        snprintf(link, sizeof(link), "%s/cache3", tmp);
        assert_int_equal(symlink(dir, link), 0);
        assert_int_equal(seccomp_cache_annotate(link, key, cfg, NULL), 0);
        assert_int_equal(seccomp_cache_annotate(dir, key, cfg, NULL), 1);
        json_decref(cfg);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_key),
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_store_then_annotate),
                cmocka_unit_test(test_malformed_cache_ignored),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
