/* Huge-page backed working buffers, reused while a pull runs (see hugebuf.h). */
#include "hugebuf.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_SIZE  ((size_t)2 << 20)
#define HUGE_FROM  ((size_t)1 << 20) /* smaller buffers are not worth a 2 MiB page */
#define PAGE_ALIGN ((size_t)4096)
#define POOL_SLOTS 32                 /* 3 layers in flight: 2 writers, 2 rings, the EROFS tree's chunks */
#define POOL_BYTES ((size_t)32 << 20) /* kept for the next layer at most (a pull's peak stays put) */

struct pooled {
        void *p;
        size_t len; /* mapped */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pooled pool[POOL_SLOTS];
static size_t pool_n, pool_bytes;
static size_t live; /* buffers handed out and not freed yet */

static size_t mapped_len(size_t len)
{
        size_t unit = len >= HUGE_FROM ? HUGE_SIZE : PAGE_ALIGN;

        return (len + unit - 1) & ~(unit - 1);
}

static void *map_new(size_t n)
{
        uint8_t *p, *aligned;

        if (n < HUGE_FROM) {
                p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                return p == MAP_FAILED ? NULL : p;
        }
        /* Over-map by one huge page and trim both ends to a 2 MiB boundary: mmap() itself only
         * promises 4 KiB alignment, and a huge page needs an aligned 2 MiB range. */
        p = mmap(NULL, n + HUGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return NULL;
        aligned = (uint8_t *)(((uintptr_t)p + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1));
        if (aligned > p)
                (void)munmap(p, (size_t)(aligned - p));
        if (aligned + n < p + n + HUGE_SIZE)
                (void)munmap(aligned + n, (size_t)(p + n + HUGE_SIZE - (aligned + n)));
        /* A hint: refused (no THP in this kernel) the buffer is small pages, which works. */
        (void)madvise(aligned, n, MADV_HUGEPAGE);
        return aligned;
}

void *image_hugebuf_alloc(size_t len)
{
        void *p = NULL;
        size_t n;

        if (len == 0 || len > SIZE_MAX / 2 - HUGE_SIZE) {
                errno = EINVAL;
                return NULL;
        }
        n = mapped_len(len);
        if (IMAGE_HUGEBUF_CHECKED)
                return aligned_alloc(PAGE_ALIGN, n);
        pthread_mutex_lock(&pool_lock);
        for (size_t i = 0; i < pool_n; i++)
                if (pool[i].len == n) {
                        p = pool[i].p;
                        pool_bytes -= n;
                        pool[i] = pool[--pool_n];
                        break;
                }
        live++;
        pthread_mutex_unlock(&pool_lock);
        if (!p) {
                p = map_new(n);
                if (!p) {
                        pthread_mutex_lock(&pool_lock);
                        live--;
                        pthread_mutex_unlock(&pool_lock);
                }
        }
        return p;
}

void image_hugebuf_free(void *p, size_t len)
{
        struct pooled drop[POOL_SLOTS + 1];
        size_t n_drop = 0;

        if (!p)
                return;
        if (IMAGE_HUGEBUF_CHECKED) {
                free(p);
                return;
        }
        pthread_mutex_lock(&pool_lock);
        live--;
        if (live > 0 && pool_n < POOL_SLOTS && pool_bytes + mapped_len(len) <= POOL_BYTES) {
                pool[pool_n++] = (struct pooled){.p = p, .len = mapped_len(len)};
                pool_bytes += mapped_len(len);
        } else {
                /* The pool is full, or the last user is gone (the pull ended): then nothing
                 * stays mapped for the next one. */
                drop[n_drop++] = (struct pooled){.p = p, .len = mapped_len(len)};
                if (live == 0) {
                        while (pool_n > 0)
                                drop[n_drop++] = pool[--pool_n];
                        pool_bytes = 0;
                }
        }
        pthread_mutex_unlock(&pool_lock);
        for (size_t i = 0; i < n_drop; i++)
                (void)munmap(drop[i].p, drop[i].len);
}
