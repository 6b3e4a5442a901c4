/* Huge-page backed working buffers (see hugebuf.h). */
#include "hugebuf.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#define HUGE_SIZE  ((size_t)2 << 20)
#define HUGE_FROM  ((size_t)1 << 20) /* smaller buffers are not worth a 2 MiB page */
#define PAGE_ALIGN ((size_t)4096)

static size_t mapped_len(size_t len)
{
        size_t unit = len >= HUGE_FROM ? HUGE_SIZE : PAGE_ALIGN;

        return (len + unit - 1) & ~(unit - 1);
}

void *image_hugebuf_alloc(size_t len)
{
        size_t n, extra;
        uint8_t *p, *aligned;

        if (len == 0 || len > SIZE_MAX / 2 - HUGE_SIZE) {
                errno = EINVAL;
                return NULL;
        }
        n = mapped_len(len);
        if (len < HUGE_FROM) {
                p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                return p == MAP_FAILED ? NULL : p;
        }
        /* Over-map by one huge page and trim both ends to a 2 MiB boundary: mmap() itself only
         * promises 4 KiB alignment, and a huge page needs an aligned 2 MiB range. */
        extra = HUGE_SIZE;
        p = mmap(NULL, n + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return NULL;
        aligned = (uint8_t *)(((uintptr_t)p + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1));
        if (aligned > p)
                (void)munmap(p, (size_t)(aligned - p));
        if (aligned + n < p + n + extra)
                (void)munmap(aligned + n, (size_t)(p + n + extra - (aligned + n)));
        /* A hint: refused (no THP in this kernel) the buffer is small pages, which works. */
        (void)madvise(aligned, n, MADV_HUGEPAGE);
        return aligned;
}

void image_hugebuf_free(void *p, size_t len)
{
        if (p)
                (void)munmap(p, mapped_len(len));
}
