/* Unit tests of the sequential O_DIRECT writer (src/image/seqwrite.c): seeded random write
 * sequences (forward with small gaps, writes that jump more than the buffer, writes back into
 * what was already sent, writes from 1 byte to several buffers long) compared byte for byte
 * with a model of the file, on the file system of /tmp (direct I/O where it is offered) and on
 * /dev/shm, and with the buffered fallback forced; direct I/O is checked to be taken where the
 * file system offers it. */
#include "cmocka-wrap.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "seqwrite.h"

#define MODEL_MAX (24u << 20)

static uint64_t rng_state;

static uint64_t rnd(void)
{
        /* xorshift64*: reproducible sequences from a fixed seed */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 2685821657736338717ull;
}

static int tmpfile_in(const char *dir)
{
        char path[256];
        int fd;

        snprintf(path, sizeof(path), "%s/ck-test-seqw-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(unlink(path), 0);
        return fd;
}

/* Whether the file system of dir takes O_DIRECT at all. */
static bool dir_has_direct(const char *dir)
{
        char path[256];
        int fd;

        snprintf(path, sizeof(path), "%s/ck-test-seqw-probe-%d", dir, (int)getpid());
        fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
        if (fd < 0)
                return false;
        close(fd);
        unlink(path);
        return true;
}

/* One random sequence of writes through the writer and into the model; then compares. */
static void run_sequence(const char *dir, uint64_t seed, bool force_buffered)
{
        _cleanup_free_ uint8_t *model = calloc(1, MODEL_MAX), *back = malloc(MODEL_MAX),
                               *src = malloc(8u << 20);
        _cleanup_close_ int fd = tmpfile_in(dir);
        struct image_seqw w;
        uint64_t off = 4096, end = 0;

        assert_non_null(model);
        assert_non_null(back);
        assert_non_null(src);
        rng_state = seed;
        for (size_t i = 0; i < (8u << 20); i++)
                src[i] = (uint8_t)rnd();
        assert_int_equal(image_seqw_init(&w, fd, off), 0);
        if (!force_buffered && dir_has_direct(dir))
                assert_true(w.direct);
        if (force_buffered) {
                assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT), 0);
                w.direct = false;
        }
        for (int i = 0; i < 400; i++) {
                uint64_t k = rnd() % 100, len;

                if (k < 60) /* small, often unaligned */
                        len = 1 + rnd() % 9000;
                else if (k < 90)
                        len = 1 + rnd() % (300u << 10);
                else
                        len = 1 + rnd() % (5u << 20);
                k = rnd() % 100;
                if (k < 70) /* contiguous */
                        ;
                else if (k < 85) /* a gap up to a block */
                        off += rnd() % 4096;
                else if (k < 92) /* a gap longer than the buffer: a hole */
                        off += IMAGE_SEQW_BUF + rnd() % (3u << 20);
                else if (off > 0) /* back into what may already be on disk */
                        off -= rnd() % (off < (3u << 20) ? off : (3u << 20));
                if (off + len > MODEL_MAX - 8192) {
                        off = rnd() % (1u << 20);
                        len = 1 + rnd() % 8192;
                }
                size_t s = (size_t)(rnd() % ((8u << 20) - len));
                assert_int_equal(image_seqw_write(&w, off, src + s, (size_t)len), 0);
                memcpy(model + off, src + s, (size_t)len);
                off += len;
                if (off > end)
                        end = off;
        }
        assert_int_equal(image_seqw_finish(&w), 0);
        assert_false(fcntl(fd, F_GETFL) & O_DIRECT);
        /* Ordinary writes after finish, as the EROFS metadata is written. */
        assert_int_equal(pwrite(fd, "tail", 4, (off_t)end), 4);
        memcpy(model + end, "tail", 4);
        end += 4;
        assert_int_equal(ftruncate(fd, (off_t)end), 0);
        image_seqw_clear(&w);

        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal((uint64_t)st.st_size, end);
        size_t got = 0;
        while (got < end) {
                ssize_t n = pread(fd, back + got, end - got, (off_t)got);
                assert_true(n > 0);
                got += (size_t)n;
        }
        assert_memory_equal(back, model, end);
}

static void test_sequences_tmp(void **state)
{
        (void)state;
        for (uint64_t seed = 1; seed <= 6; seed++)
                run_sequence("/tmp", seed * 0x9E3779B97F4A7C15ull, false);
}

static void test_sequences_shm(void **state)
{
        (void)state;
        if (access("/dev/shm", W_OK) != 0)
                skip();
        for (uint64_t seed = 1; seed <= 3; seed++)
                run_sequence("/dev/shm", seed * 0xD1B54A32D192ED03ull, false);
}

static void test_sequences_buffered(void **state)
{
        (void)state;
        for (uint64_t seed = 1; seed <= 3; seed++)
                run_sequence("/tmp", seed * 0xA24BAED4963EE407ull, true);
}

/* A short file: one partial block, padded on disk until the caller truncates. */
static void test_small_and_empty(void **state)
{
        _cleanup_close_ int fd = tmpfile_in("/tmp");
        struct image_seqw w;
        uint8_t back[16];
        struct stat st;

        (void)state;
        assert_int_equal(image_seqw_init(&w, fd, 0), 0);
        assert_int_equal(image_seqw_finish(&w), 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(st.st_size, 0);
        image_seqw_clear(&w);

        assert_int_equal(image_seqw_init(&w, fd, 0), 0);
        assert_int_equal(image_seqw_write(&w, 0, "hello", 5), 0);
        assert_int_equal(image_seqw_write(&w, 5, " world", 6), 0);
        assert_int_equal(image_seqw_finish(&w), 0);
        image_seqw_clear(&w);
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(st.st_size, 4096);
        assert_int_equal(ftruncate(fd, 11), 0);
        assert_int_equal(pread(fd, back, sizeof(back), 0), 11);
        assert_memory_equal(back, "hello world", 11);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sequences_tmp),
                cmocka_unit_test(test_sequences_shm),
                cmocka_unit_test(test_sequences_buffered),
                cmocka_unit_test(test_small_and_empty),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
