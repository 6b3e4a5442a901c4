/* Unit tests of the digest thread (src/image/hashq.c): chunks pushed from a ring of buffers
 * that the producer overwrites as soon as image_hashq_wait() allows must give the digest of
 * the whole stream (a hasher that read a buffer after it was reused would not); an empty
 * stream; freeing a queue with chunks still pending. */
#include "cmocka-wrap.h"
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "hashq.h"

#define RING  4
#define CHUNK (64u << 10)

static void digest_of(const uint8_t *data, size_t len, uint8_t *out)
{
        unsigned n = 0;

        assert_int_equal(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL), 1);
        assert_int_equal(n, 32);
}

static void test_ring_matches_one_shot(void **state)
{
        size_t total = 9 * 1024 * 1024 + 123;
        uint8_t *stream = malloc(total), *ring = malloc(RING * CHUNK);
        uint8_t want[32], got[EVP_MAX_MD_SIZE];
        struct image_hashq *q = NULL;
        unsigned n = 0;
        size_t k = 0;

        (void)state;
        assert_non_null(stream);
        assert_non_null(ring);
        for (size_t i = 0; i < total; i++)
                stream[i] = (uint8_t)(i * 2654435761u >> 13);
        digest_of(stream, total, want);
        assert_int_equal(image_hashq_new(EVP_sha256(), &q), 0);
        for (size_t off = 0; off < total; k++) {
                size_t len = total - off < CHUNK ? total - off : CHUNK;
                uint8_t *slot = ring + (k % RING) * CHUNK;

                len -= (k % 3) * 100 < len ? (k % 3) * 100 : 0; /* uneven chunk sizes */
                image_hashq_wait(q, RING - 1);
                memcpy(slot, stream + off, len);
                image_hashq_push(q, slot, len);
                off += len;
        }
        assert_int_equal(image_hashq_final(q, got, &n), 0);
        assert_int_equal(n, 32);
        assert_memory_equal(got, want, 32);
        image_hashq_free(q);
        free(stream);
        free(ring);
}

static void test_empty_and_free_pending(void **state)
{
        static const uint8_t buf[CHUNK];
        struct image_hashq *q = NULL;
        uint8_t want[32], got[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        (void)state;
        digest_of(buf, 0, want);
        assert_int_equal(image_hashq_new(EVP_sha256(), &q), 0);
        assert_int_equal(image_hashq_final(q, got, &n), 0);
        assert_memory_equal(got, want, 32);
        image_hashq_free(q);

        /* Freed with work queued: stops without hashing it all, and without hanging. */
        assert_int_equal(image_hashq_new(EVP_sha256(), &q), 0);
        for (int i = 0; i < IMAGE_HASHQ_SLOTS; i++)
                image_hashq_push(q, buf, sizeof(buf));
        image_hashq_free(q);
        image_hashq_free(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ring_matches_one_shot),
                cmocka_unit_test(test_empty_and_free_pending),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
