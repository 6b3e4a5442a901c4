/* The bytes of one layer on their way from its download to its unpacker (pull.c): a ring of
 * IMAGE_BYTEQ_SIZE bytes, one writer thread and one reader thread. The writer blocks while the
 * ring is full, the reader while it is empty, and both give up once *stop is raised (seen within
 * 50 ms). The reader is lent up to IMAGE_BYTEQ_CHUNK contiguous bytes at a time, released on its
 * next read, so that the writer refills the rest meanwhile. Each side wakes the other only when
 * that one waits: a wakeup per write and per read is a futex call each, mostly for nobody.
 * Internal to the image module. */
#pragma once

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IMAGE_BYTEQ_SIZE  (2u << 20) /* one of the pull's reusable buffers (hugebuf.h) */
#define IMAGE_BYTEQ_CHUNK (256u << 10)

struct image_byteq;

/* A queue whose waits end when *stop becomes non-zero. Returns 0 or -ENOMEM. */
int image_byteq_new(const atomic_int *stop, struct image_byteq **ret);
/* Frees q (NULL is fine) once neither side uses it any more. */
void image_byteq_free(struct image_byteq *q);

/* The writer's side. push appends data[0, len), waiting for room; returns 0, or -ECANCELED on
 * stop. Once the reader has closed, the bytes are dropped and 0 is returned. */
int image_byteq_push(struct image_byteq *q, const uint8_t *data, size_t len);
/* No more bytes: end is 1 when everything pushed is complete (verified), or a negative errno
 * (the download failed), which the reader then gets. */
void image_byteq_end(struct image_byteq *q, int end);

/* The reader's side, an image_decomp_source_fn (decompress.h): the next bytes (> 0, lent in
 * *ret_buf until the next call), 0 after a complete end, or the writer's negative errno, or
 * -ECANCELED on stop. */
ssize_t image_byteq_read(void *q, const uint8_t **ret_buf);
/* The reader is done: nothing more is read, and what the writer pushes from now on is dropped. */
void image_byteq_close(struct image_byteq *q);
