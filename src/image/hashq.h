/* A digest computed on a thread of its own over buffers the caller hands it in order (the
 * diff_id of a layer, while the same thread that produced the bytes goes on inflating and
 * writing them): the hash leaves the unpacker's critical path.
 *
 * The caller owns the buffers and must not change or free a pushed buffer until the queue has
 * hashed it: image_hashq_wait() returns once at most `outstanding` pushed buffers are still
 * waiting, so a producer that rotates over N buffers calls image_hashq_wait(q, N - 1) before
 * it overwrites the oldest one. Bounded: a push never allocates. Internal to the image module;
 * one producer thread per queue. */
#pragma once

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define IMAGE_HASHQ_SLOTS 8

struct image_hashq;

/* Starts the hashing thread. Returns 0, -ENOMEM, -EIO (digest init) or -EAGAIN (thread). */
int image_hashq_new(const EVP_MD *md, struct image_hashq **ret);
/* Queues buf[0, len) (len > 0); waits while IMAGE_HASHQ_SLOTS buffers are outstanding. */
void image_hashq_push(struct image_hashq *q, const uint8_t *buf, size_t len);
/* Waits until at most `outstanding` pushed buffers are not hashed yet. */
void image_hashq_wait(struct image_hashq *q, size_t outstanding);
/* Waits for everything pushed, then writes the digest. Returns 0 or -EIO. */
int image_hashq_final(struct image_hashq *q, uint8_t *md, unsigned *ret_len);
/* Stops the thread (what is queued is dropped) and frees q; NULL is fine. */
void image_hashq_free(struct image_hashq *q);
