/* The download → unpacker byte queue (see byteq.h). */
#include "byteq.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hugebuf.h"
#include "monotonic.h"

#define WAIT_NS (50 * 1000000LL) /* how soon a stop is seen by a side that waits */

struct image_byteq {
        const atomic_int *stop;
        pthread_mutex_t lock;
        pthread_cond_t cond; /* on CLOCK_MONOTONIC */
        uint8_t *ring;
        uint64_t head, tail; /* consumed (released) and written bytes, counting up */
        size_t lent;         /* ring bytes from head handed to the reader */
        bool reader_waits, writer_waits;
        int end;     /* 0 open, 1 complete, < 0 the writer failed */
        bool closed; /* the reader is done: what arrives is dropped */
};

int image_byteq_new(const atomic_int *stop, struct image_byteq **ret)
{
        struct image_byteq *q = calloc(1, sizeof(*q));

        if (!q)
                return -ENOMEM;
        q->ring = image_hugebuf_alloc(IMAGE_BYTEQ_SIZE);
        if (!q->ring) {
                free(q);
                return -ENOMEM;
        }
        q->stop = stop;
        pthread_mutex_init(&q->lock, NULL);
        ck_cond_init_monotonic(&q->cond);
        *ret = q;
        return 0;
}

void image_byteq_free(struct image_byteq *q)
{
        if (!q)
                return;
        image_hugebuf_free(q->ring, IMAGE_BYTEQ_SIZE);
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->lock);
        free(q);
}

/* Bounded, so that a stop is seen even when nobody broadcasts it. Called with lock held. */
static void wait_bounded(struct image_byteq *q)
{
        struct timespec until = ck_deadline_ns(CLOCK_MONOTONIC, WAIT_NS);

        pthread_cond_timedwait(&q->cond, &q->lock, &until);
}

int image_byteq_push(struct image_byteq *q, const uint8_t *data, size_t len)
{
        int r = 0;

        pthread_mutex_lock(&q->lock);
        while (len > 0) {
                size_t off, n;

                while (!q->closed && q->tail - q->head == IMAGE_BYTEQ_SIZE && !atomic_load(q->stop)) {
                        q->writer_waits = true;
                        wait_bounded(q);
                        q->writer_waits = false;
                }
                if (q->closed)
                        break;
                if (atomic_load(q->stop)) {
                        r = -ECANCELED;
                        break;
                }
                off = (size_t)(q->tail % IMAGE_BYTEQ_SIZE);
                n = IMAGE_BYTEQ_SIZE - (size_t)(q->tail - q->head);
                if (n > IMAGE_BYTEQ_SIZE - off)
                        n = IMAGE_BYTEQ_SIZE - off;
                if (n > len)
                        n = len;
                /* [tail, tail + n) is this thread's until tail moves: copy without the lock. */
                pthread_mutex_unlock(&q->lock);
                memcpy(q->ring + off, data, n);
                pthread_mutex_lock(&q->lock);
                q->tail += n;
                data += n;
                len -= n;
                if (q->reader_waits)
                        pthread_cond_broadcast(&q->cond);
        }
        pthread_mutex_unlock(&q->lock);
        return r;
}

void image_byteq_end(struct image_byteq *q, int end)
{
        pthread_mutex_lock(&q->lock);
        q->end = end;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

ssize_t image_byteq_read(void *userdata, const uint8_t **ret_buf)
{
        struct image_byteq *q = userdata;
        ssize_t r;

        pthread_mutex_lock(&q->lock);
        q->head += q->lent; /* the previous read's bytes are consumed */
        q->lent = 0;
        if (q->writer_waits)
                pthread_cond_broadcast(&q->cond);
        while (q->tail == q->head && q->end == 0 && !atomic_load(q->stop)) {
                q->reader_waits = true;
                wait_bounded(q);
                q->reader_waits = false;
        }
        if (q->tail > q->head) {
                size_t off = (size_t)(q->head % IMAGE_BYTEQ_SIZE);
                size_t n = (size_t)(q->tail - q->head);

                if (n > IMAGE_BYTEQ_SIZE - off)
                        n = IMAGE_BYTEQ_SIZE - off;
                if (n > IMAGE_BYTEQ_CHUNK)
                        n = IMAGE_BYTEQ_CHUNK;
                q->lent = n;
                *ret_buf = q->ring + off;
                r = (ssize_t)n;
        } else if (q->end == 1) {
                r = 0;
        } else {
                r = q->end < 0 ? q->end : -ECANCELED;
        }
        pthread_mutex_unlock(&q->lock);
        return r;
}

void image_byteq_close(struct image_byteq *q)
{
        pthread_mutex_lock(&q->lock);
        q->closed = true;
        q->head = q->tail; /* nothing more is read */
        q->lent = 0;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}
