/* Unit tests of the pull's reusable buffers (src/image/hugebuf.c): alignment and size classes;
 * a freed buffer is handed to the next user while another is in use; once the last one is
 * freed nothing stays mapped; many threads taking and freeing buffers at once. Under
 * AddressSanitizer the buffers are plain heap blocks (hugebuf.h) and only the contract that
 * holds for both is checked. */
#include "cmocka-wrap.h"
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cleanup.h"
#include "hugebuf.h"

#define MIB ((size_t)1 << 20)

static bool mapped(void *p)
{
        unsigned char v;

        return mincore(p, 4096, &v) == 0;
}

static void test_alignment_and_sizes(void **state)
{
        const size_t sizes[] = {1, 4096, 256u << 10, MIB, 2 * MIB, 4 * MIB + 1};

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                uint8_t *p = image_hugebuf_alloc(sizes[i]);

                assert_non_null(p);
                assert_int_equal((uintptr_t)p % 4096, 0);
                if (!IMAGE_HUGEBUF_CHECKED && sizes[i] >= MIB)
                        assert_int_equal((uintptr_t)p % (2 * MIB), 0);
                memset(p, 0xa5, sizes[i]); /* all of it is writable */
                image_hugebuf_free(p, sizes[i]);
        }
        image_hugebuf_free(NULL, 1);
        errno = 0;
        assert_null(image_hugebuf_alloc(0));
        assert_int_equal(errno, EINVAL);
        assert_null(image_hugebuf_alloc(SIZE_MAX));
}

static void test_reuse_then_unmapped(void **state)
{
        uint8_t *a = image_hugebuf_alloc(2 * MIB), *b = image_hugebuf_alloc(2 * MIB), *c, *d;

        assert_non_null(a);
        assert_non_null(b);
        if (IMAGE_HUGEBUF_CHECKED) {
                image_hugebuf_free(a, 2 * MIB);
                image_hugebuf_free(b, 2 * MIB);
                skip();
        }
        a[0] = 1;
        image_hugebuf_free(a, 2 * MIB); /* b is still in use: a is kept */
        assert_true(mapped(a));
        c = image_hugebuf_alloc(2 * MIB);
        assert_ptr_equal(c, a);
        d = image_hugebuf_alloc(4 * MIB); /* another size class: not a */
        assert_non_null(d);
        assert_ptr_not_equal(d, a);
        image_hugebuf_free(d, 4 * MIB);
        assert_true(mapped(d)); /* pooled: b and c are live */
        image_hugebuf_free(c, 2 * MIB);
        image_hugebuf_free(b, 2 * MIB); /* the last one: everything goes */
        assert_false(mapped(a));
        assert_false(mapped(b));
        assert_false(mapped(d));
}

static void *churn(void *arg)
{
        uintptr_t seed = (uintptr_t)arg;

        for (int i = 0; i < 200; i++) {
                size_t len = (i + seed) % 3 == 0 ? 4 * MIB : (i + seed) % 3 == 1 ? 2 * MIB : 256u << 10;
                uint8_t *p = image_hugebuf_alloc(len);

                if (!p)
                        return (void *)1;
                /* Nobody else holds it: what this thread writes, it reads back. */
                memset(p, (int)(seed + (uintptr_t)i), 64);
                memset(p + len - 64, (int)(seed + (uintptr_t)i), 64);
                for (int k = 0; k < 64; k++)
                        if (p[k] != (uint8_t)(seed + (uintptr_t)i) ||
                            p[len - 64 + k] != (uint8_t)(seed + (uintptr_t)i))
                                return (void *)1;
                image_hugebuf_free(p, len);
        }
        return NULL;
}

static void test_threads(void **state)
{
        pthread_t t[6];

        for (uintptr_t i = 0; i < ELEMENTSOF(t); i++)
                assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)i), 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                void *r = (void *)1;

                assert_int_equal(pthread_join(t[i], &r), 0);
                assert_null(r);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_alignment_and_sizes),
                cmocka_unit_test(test_reuse_then_unmapped),
                cmocka_unit_test(test_threads),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
