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
 * image module; the fd is the caller's. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAGE_SEQW_ALIGN 4096u
#define IMAGE_SEQW_BUF   (2u << 20)

struct image_seqw {
        int fd;                    /* not owned */
        bool direct;               /* O_DIRECT is set on fd */
        uint8_t *buf;              /* IMAGE_SEQW_BUF bytes, IMAGE_SEQW_ALIGN-aligned */
        uint64_t pos;              /* file offset of buf[0], aligned */
        size_t len;                /* bytes of buf in use (gaps zeroed) */
        uint64_t kicked, unkicked; /* buffered fallback: writeback started for [0, kicked) */
};

/* Prepares w for fd, writing from offset start (aligned). Returns 0 or -ENOMEM. */
int image_seqw_init(struct image_seqw *w, int fd, uint64_t start);
/* Writes len bytes at file offset off. Returns 0 or -errno. */
int image_seqw_write(struct image_seqw *w, uint64_t off, const void *data, size_t len);
/* Sends everything buffered (the last block padded with zeros) and turns O_DIRECT off, so
 * the caller may write the rest (metadata) with ordinary writes. Returns 0 or -errno. */
int image_seqw_finish(struct image_seqw *w);
/* Frees the buffer (the fd stays open; O_DIRECT stays as it is). */
void image_seqw_clear(struct image_seqw *w);
