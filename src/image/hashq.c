/* The digest thread (see hashq.h). */
#include "hashq.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct hashq_slot {
        const uint8_t *buf;
        size_t len;
};

struct image_hashq {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond; /* any change of head, tail or stop */
        EVP_MD_CTX *md;
        struct hashq_slot slots[IMAGE_HASHQ_SLOTS];
        size_t head, tail; /* pushed: tail; hashed: head (both count up) */
        bool stop;
        bool hasher_waits, pusher_waits; /* signal only a side that waits: one wakeup per
                                            buffer each way was most of the switches */
        int err;
};

static void *hashq_main(void *arg)
{
        struct image_hashq *q = arg;

        pthread_mutex_lock(&q->lock);
        for (;;) {
                struct hashq_slot s;

                while (q->head == q->tail && !q->stop) {
                        q->hasher_waits = true;
                        pthread_cond_wait(&q->cond, &q->lock);
                        q->hasher_waits = false;
                }
                if (q->stop)
                        break;
                s = q->slots[q->head % IMAGE_HASHQ_SLOTS];
                pthread_mutex_unlock(&q->lock);
                int ok = EVP_DigestUpdate(q->md, s.buf, s.len) == 1;
                pthread_mutex_lock(&q->lock);
                if (!ok && !q->err)
                        q->err = -EIO;
                q->head++;
                if (q->pusher_waits)
                        pthread_cond_broadcast(&q->cond);
        }
        pthread_mutex_unlock(&q->lock);
        return NULL;
}

int image_hashq_new(const EVP_MD *md, struct image_hashq **ret)
{
        struct image_hashq *q = calloc(1, sizeof(*q));

        if (!q)
                return -ENOMEM;
        q->md = EVP_MD_CTX_new();
        if (!q->md) {
                free(q);
                return -ENOMEM;
        }
        if (EVP_DigestInit_ex(q->md, md, NULL) != 1) {
                EVP_MD_CTX_free(q->md);
                free(q);
                return -EIO;
        }
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->cond, NULL);
        if (pthread_create(&q->thread, NULL, hashq_main, q) != 0) {
                pthread_cond_destroy(&q->cond);
                pthread_mutex_destroy(&q->lock);
                EVP_MD_CTX_free(q->md);
                free(q);
                return -EAGAIN;
        }
        *ret = q;
        return 0;
}

void image_hashq_wait(struct image_hashq *q, size_t outstanding)
{
        pthread_mutex_lock(&q->lock);
        while (q->tail - q->head > outstanding) {
                q->pusher_waits = true;
                pthread_cond_wait(&q->cond, &q->lock);
                q->pusher_waits = false;
        }
        pthread_mutex_unlock(&q->lock);
}

void image_hashq_push(struct image_hashq *q, const uint8_t *buf, size_t len)
{
        pthread_mutex_lock(&q->lock);
        while (q->tail - q->head >= IMAGE_HASHQ_SLOTS) {
                q->pusher_waits = true;
                pthread_cond_wait(&q->cond, &q->lock);
                q->pusher_waits = false;
        }
        q->slots[q->tail % IMAGE_HASHQ_SLOTS] = (struct hashq_slot){.buf = buf, .len = len};
        q->tail++;
        if (q->hasher_waits)
                pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

int image_hashq_final(struct image_hashq *q, uint8_t *md, unsigned *ret_len)
{
        int r;

        image_hashq_wait(q, 0);
        pthread_mutex_lock(&q->lock);
        r = q->err;
        pthread_mutex_unlock(&q->lock);
        if (r < 0)
                return r;
        return EVP_DigestFinal_ex(q->md, md, ret_len) == 1 ? 0 : -EIO;
}

void image_hashq_free(struct image_hashq *q)
{
        if (!q)
                return;
        pthread_mutex_lock(&q->lock);
        q->stop = true;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        pthread_join(q->thread, NULL);
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->lock);
        EVP_MD_CTX_free(q->md);
        free(q);
}
