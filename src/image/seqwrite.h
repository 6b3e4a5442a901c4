/* A file written front to back through one aligned buffer with O_DIRECT (the blob writer's
 * compressed layers, the EROFS writer's data area).
 *
 * Why: a pull writes every layer twice (the compressed blob and the unpacked image, ~4x the
 * download), and through the page cache each byte is copied by the kernel into a freshly
 * allocated page that the sync before the image record then writes out anyway. That copy and
 * page allocation were about half of a pull's CPU on a 2-CPU guest (more in a TD, where fresh
 * guest memory must also be accepted). With O_DIRECT the buffer goes from user memory to the
 * device, and what the record needs durable is on disk when the write returns.
 *
 * Writes may leave gaps (zeros) and may go backwards: a write below what was already sent to
 * the file is done as an ordinary buffered pwrite. The last partial block is written padded
 * with zeros by image_seqw_finish(); the caller truncates the file to its real size. Where the
 * file system refuses O_DIRECT (open flag or a write with EINVAL), the writer falls back to
 * buffered writes with writeback started every IMAGE_WRITEBACK_CHUNK bytes. Internal to the
 * image module; the fd is the caller's; one thread writes through a given writer. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAGE_SEQW_ALIGN 4096u
#define IMAGE_SEQW_BUF   (1u << 20) /* two of them: one 2 MiB huge page */

struct image_seqw {
        int fd;                    /* not owned */
        bool direct;               /* O_DIRECT is set on fd */
        uint8_t *base;             /* both buffers, one mapping (hugebuf.h) */
        uint8_t *buf;              /* the buffer being filled: IMAGE_SEQW_BUF bytes, aligned */
        uint64_t pos;              /* file offset of buf[0], aligned */
        size_t len;                /* bytes of buf in use (gaps zeroed) */
        uint64_t kicked, unkicked; /* buffered fallback: writeback started for [0, kicked) */

        /* Full buffers go to the disk on a thread of the writer's own (started with the first
         * one, so small files never start it) while the other buffer fills: the inflating
         * thread does not wait for the device. One write in flight at a time. */
        uint8_t *spare; /* the other buffer, used once the thread runs */
        bool started;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool busy;          /* the job is in flight */
        const uint8_t *job; /* the last job: job[0, job_len) to job_pos (kept for a retry) */
        size_t job_len;
        uint64_t job_pos;
        bool stop;
        int job_err; /* of the last job, taken by the next wait */
};

/* Prepares w for fd, writing from offset start (aligned). Returns 0 or -ENOMEM. */
int image_seqw_init(struct image_seqw *w, int fd, uint64_t start);
/* Writes len bytes at file offset off. Returns 0 or -errno. */
int image_seqw_write(struct image_seqw *w, uint64_t off, const void *data, size_t len);
/* Sends everything buffered (the last block padded with zeros) and turns O_DIRECT off, so
 * the caller may write the rest (metadata) with ordinary writes. Returns 0 or -errno. */
int image_seqw_finish(struct image_seqw *w);
/* Waits for the write in flight, stops the thread and frees the buffers (the fd stays open;
 * O_DIRECT stays as it is). Safe on a writer whose init failed. */
void image_seqw_clear(struct image_seqw *w);
