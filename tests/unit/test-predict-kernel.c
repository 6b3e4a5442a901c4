/* Authenticode of a real, signed Debian kernel: the digest predict computes over the image must
 * equal the one osslsigncode calculates (and that the signature carries). Uses the kernel named
 * by CONKER_TEST_KERNEL, the one scripts/deps.sh extracts from Debian's signed cloud kernel
 * package (TEST_KERNEL_CACHED), or the first /boot/vmlinuz-*; exits 77 (skipped) when there is
 * no signed kernel or no osslsigncode on this host. */
#include "cmocka-wrap.h"

#include <glob.h>
#include <unistd.h>

#include "exec.h"
#include "predict-testdata.h"
#include "predict.h"

#define TEST_KERNEL_CACHED "/var/cache/conker-test/kernel/vmlinuz"

static char *kernel_path, *alg, *want;

/* Returns the value after "<label>:" on a line of out, trimmed, or NULL. */
static char *field(const char *out, const char *label)
{
        const char *p = strstr(out, label), *colon, *end;

        if (!p || !(colon = strchr(p, ':')))
                return NULL;
        colon++;
        while (*colon == ' ')
                colon++;
        end = colon;
        while (*end && *end != '\n' && *end != ' ')
                end++;
        return strndup(colon, (size_t)(end - colon));
}

static void test_matches_osslsigncode(void **state)
{
        _cleanup_free_ uint8_t *k = NULL;
        _cleanup_free_ char *hex = NULL;
        uint8_t d[64];
        size_t len = 0;
        const EVP_MD *md;

        md = strcmp(alg, "SHA256") == 0 ? EVP_sha256() : strcmp(alg, "SHA384") == 0 ? EVP_sha384() : NULL;
        assert_non_null(md);
        assert_int_equal(ck_read_file(kernel_path, 256u << 20, &k, &len, NULL), 0);
        assert_int_equal(predict_pe_authenticode_md(k, len, md, d, NULL), 0);
        hex = ck_hex_encode_alloc(d, (size_t)EVP_MD_get_size(md));
        for (char *c = want; *c; c++)
                *c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
        printf("%s: %s %s\n", kernel_path, alg, hex);
        assert_string_equal(hex, want);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_matches_osslsigncode),
        };
        _cleanup_free_ char *tool = NULL;
        const char *env = getenv("CONKER_TEST_KERNEL");
        glob_t g = {0};
        int r;

        if (ck_exec_find("osslsigncode", &tool) < 0) {
                printf("SKIP: osslsigncode is not installed (scripts/deps.sh)\n");
                return 77;
        }
        if (env && *env) {
                kernel_path = strdup(env);
        } else if (access(TEST_KERNEL_CACHED, R_OK) == 0) {
                kernel_path = strdup(TEST_KERNEL_CACHED);
        } else if (glob("/boot/vmlinuz-*", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
                kernel_path = strdup(g.gl_pathv[0]);
        }
        globfree(&g);
        if (!kernel_path) {
                printf("SKIP: no signed kernel: neither " TEST_KERNEL_CACHED " (scripts/deps.sh) nor "
                       "/boot/vmlinuz-* (or set CONKER_TEST_KERNEL)\n");
                return 77;
        }
        {
                char *argv[] = {"osslsigncode", "verify", "-in", kernel_path, NULL};
                _cleanup_free_ char *out = NULL;

                (void)ck_exec(argv, &(struct ck_exec_opts){.netns_fd = -1, .out_max = 1 << 20}, &out, NULL,
                              NULL);
                alg = out ? field(out, "Message digest algorithm  :") : NULL;
                want = out ? field(out, "Calculated message digest :") : NULL;
        }
        if (!alg || !want) {
                printf("SKIP: osslsigncode finds no Authenticode signature in %s\n", kernel_path);
                free(kernel_path);
                return 77;
        }
        r = cmocka_run_group_tests(tests, NULL, NULL);
        free(kernel_path);
        free(alg);
        free(want);
        return r;
}
