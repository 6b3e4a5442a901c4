/* Unit tests of the download → unpacker byte queue (src/image/byteq.c): a stream several times
 * the ring's size, pushed in uneven pieces by one thread and read by another, arrives whole and
 * in order; the reader sees a complete end as 0 and a failed download as its error; a stop
 * releases both a writer waiting for room and a reader waiting for bytes; after the reader
 * closed, pushes are dropped instead of blocking. */
#include "cmocka-wrap.h"
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "byteq.h"

struct writer {
        struct image_byteq *q;
        const uint8_t *data;
        size_t len;
        int end;    /* given to image_byteq_end() after the last push */
        int result; /* of the pushes */
};

static void *writer_main(void *arg)
{
        struct writer *w = arg;
        size_t off = 0;

        w->result = 0;
        for (size_t k = 0; off < w->len && w->result == 0; k++) {
                size_t n = 1 + (k * 7919) % 100000; /* uneven pieces, some across the wrap */

                if (n > w->len - off)
                        n = w->len - off;
                w->result = image_byteq_push(w->q, w->data + off, n);
                off += n;
        }
        image_byteq_end(w->q, w->result < 0 ? w->result : w->end);
        return NULL;
}

static uint8_t *pattern(size_t len)
{
        uint8_t *p = malloc(len);

        assert_non_null(p);
        for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)(i * 2654435761u >> 11);
        return p;
}

/* Reads everything into got (len bytes at most); returns the last read's value. */
static ssize_t read_all(struct image_byteq *q, uint8_t *got, size_t len, size_t *ret_off)
{
        size_t off = 0;
        ssize_t n;

        for (;;) {
                const uint8_t *buf = NULL;

                n = image_byteq_read(q, &buf);
                if (n <= 0)
                        break;
                assert_true((size_t)n <= IMAGE_BYTEQ_CHUNK);
                assert_true(off + (size_t)n <= len);
                memcpy(got + off, buf, (size_t)n);
                off += (size_t)n;
        }
        *ret_off = off;
        return n;
}

static void test_stream_arrives_whole_and_in_order(void **state)
{
        atomic_int stop = 0;
        size_t len = 5 * IMAGE_BYTEQ_SIZE + 12345, off = 0;
        uint8_t *data = pattern(len), *got = malloc(len);
        struct writer w = {.data = data, .len = len, .end = 1};
        pthread_t t;

        (void)state;
        assert_non_null(got);
        assert_int_equal(image_byteq_new(&stop, &w.q), 0);
        assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
        assert_int_equal(read_all(w.q, got, len, &off), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(w.result, 0);
        assert_int_equal(off, len);
        assert_memory_equal(got, data, len);
        image_byteq_free(w.q);
        free(data);
        free(got);
}

static void test_failed_download_reaches_the_reader(void **state)
{
        atomic_int stop = 0;
        size_t len = IMAGE_BYTEQ_SIZE / 2, off = 0;
        uint8_t *data = pattern(len), *got = malloc(len);
        struct writer w = {.data = data, .len = len, .end = -EBADMSG};
        pthread_t t;

        (void)state;
        assert_non_null(got);
        assert_int_equal(image_byteq_new(&stop, &w.q), 0);
        assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
        /* The bytes pushed before the failure are still read, then the failure. */
        assert_int_equal(read_all(w.q, got, len, &off), -EBADMSG);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(off, len);
        assert_memory_equal(got, data, len);
        image_byteq_free(w.q);
        free(data);
        free(got);
}

struct reader {
        struct image_byteq *q;
        ssize_t result;
};

static void *reader_main(void *arg)
{
        struct reader *r = arg;
        const uint8_t *buf = NULL;

        r->result = image_byteq_read(r->q, &buf);
        return NULL;
}

static void test_stop_releases_both_sides(void **state)
{
        atomic_int stop = 0;
        size_t len = 3 * IMAGE_BYTEQ_SIZE;
        uint8_t *data = pattern(len);
        struct writer w = {.data = data, .len = len, .end = 1};
        struct reader rd = {0};
        pthread_t t;

        (void)state;
        /* A writer with more than the ring holds and nobody reading waits for room... */
        assert_int_equal(image_byteq_new(&stop, &w.q), 0);
        assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
        atomic_store(&stop, 1); /* ...until the stop, whenever the writer sees it */
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(w.result, -ECANCELED);
        image_byteq_free(w.q);

        /* A reader waiting on an empty queue gets -ECANCELED. */
        atomic_store(&stop, 0);
        assert_int_equal(image_byteq_new(&stop, &rd.q), 0);
        assert_int_equal(pthread_create(&t, NULL, reader_main, &rd), 0);
        atomic_store(&stop, 1);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(rd.result, -ECANCELED);
        image_byteq_free(rd.q);
        free(data);
}

static void test_pushes_after_close_are_dropped(void **state)
{
        atomic_int stop = 0;
        size_t len = 4 * IMAGE_BYTEQ_SIZE;
        uint8_t *data = pattern(len);
        struct writer w = {.data = data, .len = len, .end = 1};
        const uint8_t *buf = NULL;
        pthread_t t;

        (void)state;
        assert_int_equal(image_byteq_new(&stop, &w.q), 0);
        assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
        assert_true(image_byteq_read(w.q, &buf) > 0);
        /* The unpacker failed: it closes, and the download must still run to its end (its
         * digest decides what is reported) without waiting for room that never comes. */
        image_byteq_close(w.q);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(w.result, 0);
        image_byteq_free(w.q);
        image_byteq_free(NULL);
        free(data);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stream_arrives_whole_and_in_order),
                cmocka_unit_test(test_failed_download_reaches_the_reader),
                cmocka_unit_test(test_stop_releases_both_sides),
                cmocka_unit_test(test_pushes_after_close_are_dropped),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
