/* Secret buffers and the wiping allocator hooks daemons give jansson and libevent. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs.h"
#include "secret.h"

static void test_secret_equal(void **state)
{
        _cleanup_secret_ struct ck_secret *s = ck_secret_new("token", 5);

        assert_non_null(s);
        assert_true(ck_secret_equal(s, "token", 5));
        assert_false(ck_secret_equal(s, "toke", 4));
        assert_false(ck_secret_equal(s, "tokeN", 5));
        assert_false(ck_secret_equal(NULL, "", 0));
}

/* A secret over CK_SECRET_MAX is refused, not mapped (a length from a peer must not decide how
 * much memory gets locked). */
static void test_secret_cap(void **state)
{
        struct ck_secret *s = ck_secret_alloc(CK_SECRET_MAX + 1);

        assert_null(s);
        assert_int_equal(ck_secret_random(1024 * 1024 + 1, &s), -E2BIG);
        assert_null(s);
        s = ck_secret_alloc(CK_SECRET_MAX);
        assert_non_null(s);
        assert_int_equal(s->len, CK_SECRET_MAX);
        ck_secret_free(s);
}

/* The smaps entry of the mapping that starts at p: its Locked size (kB) and whether its VmFlags
 * hold "dd" (not dumped). */
static void smaps_of(const void *p, long *ret_locked_kb, bool *ret_dontdump)
{
        FILE *f = fopen("/proc/self/smaps", "re");
        char line[512];
        bool in = false, found = false;

        assert_non_null(f);
        *ret_locked_kb = -1;
        *ret_dontdump = false;
        while (fgets(line, sizeof(line), f)) {
                unsigned long start, end;
                long kb;

                /* A mapping's first line starts "start-end " in hex; field lines start with a name. */
                if (strspn(line, "0123456789abcdef") == strcspn(line, "-") &&
                    line[strcspn(line, "-")] == '-' && sscanf(line, "%lx-%lx ", &start, &end) == 2) {
                        in = start <= (unsigned long)p && (unsigned long)p < end;
                        found |= in;
                        continue;
                }
                if (in && sscanf(line, "Locked: %ld kB", &kb) == 1)
                        *ret_locked_kb = kb;
                if (in && strncmp(line, "VmFlags:", 8) == 0)
                        *ret_dontdump = strstr(line, " dd") != NULL;
        }
        fclose(f);
        assert_true(found);
}

/* AddressSanitizer intercepts mlock() and does nothing: the lock is only visible without it. */
#if defined(__SANITIZE_ADDRESS__)
#define MLOCK_OBSERVABLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MLOCK_OBSERVABLE 0
#endif
#endif
#ifndef MLOCK_OBSERVABLE
#define MLOCK_OBSERVABLE 1
#endif

/* Issue 9, finding 10: secret buffers are locked in memory (never swapped) and left out of core
 * dumps; they sit in pages of their own, so unlocking one never unlocks another. */
static void test_secret_locked_and_not_dumped(void **state)
{
        _cleanup_secret_ struct ck_secret *a = ck_secret_new("password", 8);
        _cleanup_secret_ struct ck_secret *b = NULL;
        struct rlimit rl;
        long locked;
        bool dd;

        assert_non_null(a);
        assert_int_equal(ck_secret_random(5000, &b), 0);
        assert_int_equal(((uintptr_t)a) % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
        smaps_of(a, &locked, &dd);
        assert_true(dd);
        assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
        if (MLOCK_OBSERVABLE && (geteuid() == 0 || rl.rlim_cur >= (rlim_t)(64 * 1024)))
                assert_true(locked >= 4);
        smaps_of(b, &locked, &dd);
        assert_true(dd);
        if (MLOCK_OBSERVABLE && (geteuid() == 0 || rl.rlim_cur >= (rlim_t)(64 * 1024)))
                assert_true(locked >= 8); /* 5000 bytes and the header: two pages */
        assert_true(ck_secret_equal(a, "password", 8));
        assert_int_equal(b->len, 5000);
        assert_int_equal(b->data[5000], 0);
}

static void test_realloc_wiped(void **state)
{
        char *p = ck_realloc_wiped(NULL, 8);

        assert_non_null(p);
        memcpy(p, "abcdefgh", 8);
        p = ck_realloc_wiped(p, 4096);
        assert_non_null(p);
        assert_memory_equal(p, "abcdefgh", 8);
        p = ck_realloc_wiped(p, 3);
        assert_non_null(p);
        assert_memory_equal(p, "abc", 3);
        assert_null(ck_realloc_wiped(p, 0)); /* frees */
        ck_free_wiped(NULL);
}

/* A secret file is read whole, within its cap, and only when it is a regular file. */
static void test_file_read(void **state)
{
        char dir[] = "/tmp/ck-test-secret-XXXXXX";
        _cleanup_close_ int dfd = -1;
        uint8_t *buf = NULL;
        size_t len = 0;
        unsigned mode = 0;

        assert_non_null(mkdtemp(dir));
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        assert_int_equal(ck_write_file_atomic(dfd, "s.json", "{\"k\":1}", 7, 0600, NULL), 0);
        assert_int_equal(ck_secret_file_read_at(dfd, "s.json", 7, &buf, &len, &mode, NULL), 0);
        assert_int_equal(len, 7);
        assert_memory_equal(buf, "{\"k\":1}", 7);
        assert_int_equal(mode & 0777, 0600);
        ck_free_wiped(buf);
        assert_int_equal(ck_secret_file_read_at(dfd, "s.json", 6, &buf, &len, NULL, NULL), -EFBIG);
        assert_int_equal(ck_secret_file_read_at(dfd, "none", 6, &buf, &len, NULL, NULL), -ENOENT);
        assert_int_equal(mkfifoat(dfd, "fifo", 0600), 0);
        assert_int_equal(ck_secret_file_read_at(dfd, "fifo", 6, &buf, &len, NULL, NULL), -EINVAL);
        /* A file that holds more than its size said while it is read (as /proc files do, at
         * size 0) is refused, not cut or overrun. */
        assert_int_equal(ck_secret_file_read_at(AT_FDCWD, "/proc/self/status", 4096, &buf, &len, NULL, NULL),
                         -EAGAIN);
        assert_int_equal(ck_rm_rf_at(AT_FDCWD, dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_secret_equal),
                cmocka_unit_test(test_secret_cap),
                cmocka_unit_test(test_secret_locked_and_not_dumped),
                cmocka_unit_test(test_realloc_wiped),
                cmocka_unit_test(test_file_read),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
