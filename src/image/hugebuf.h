/* Large working buffers of a pull (the O_DIRECT writers' buffers, the inflate and download
 * rings, the EROFS tree's chunks), mapped on 2 MiB boundaries and marked MADV_HUGEPAGE, and
 * handed from a layer that ended to the next one.
 *
 * Why: a pull's buffers are fresh memory, 8 MiB and more per layer in flight. Faulted in
 * 4 KiB at a time that was ~5 % of a pull's CPU (one page fault, one memcg charge, one page
 * clear per 4 KiB), and the pinning of every O_DIRECT write walks the same small pages again.
 * With transparent huge pages in `madvise` mode (the common default), a 2 MiB buffer is one
 * fault and one pin. Where the kernel gives no huge page the mapping works as small pages.
 * Clearing a fresh page is still expensive in a VM (and more so in a TD, where it must be
 * accepted first), so a freed buffer is kept for the next layer while any buffer is in use
 * (at most 32 MiB); when the last one is freed, i.e. the pull is over, all are unmapped, and an
 * idle process keeps none. Internal to the image module; thread-safe. */
#pragma once

#include <stddef.h>

/* Under AddressSanitizer the buffers are plain heap blocks, neither pooled nor carved up
 * (erofs-tree.c), so that overruns and uses after free stay visible to it. */
#if defined(__SANITIZE_ADDRESS__)
#define IMAGE_HUGEBUF_CHECKED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IMAGE_HUGEBUF_CHECKED 1
#endif
#endif
#ifndef IMAGE_HUGEBUF_CHECKED
#define IMAGE_HUGEBUF_CHECKED 0
#endif

/* A buffer of at least len bytes, 4096-aligned (2 MiB-aligned from 1 MiB up), holding
 * whatever its last user left (like malloc()), or NULL with errno set. Freed with
 * image_hugebuf_free() and the same len. */
void *image_hugebuf_alloc(size_t len);
/* Unmaps p (NULL is fine); len as given to image_hugebuf_alloc(). */
void image_hugebuf_free(void *p, size_t len);
