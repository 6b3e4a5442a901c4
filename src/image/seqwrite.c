/* The sequential O_DIRECT writer (see seqwrite.h for why and the contract). */
#include "seqwrite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "store-internal.h"

static uint64_t align_down(uint64_t x)
{
        return x & ~(uint64_t)(IMAGE_SEQW_ALIGN - 1);
}

static int set_direct(struct image_seqw *w, bool on)
{
        int fl = fcntl(w->fd, F_GETFL);

        if (fl < 0)
                return -errno;
        fl = on ? fl | O_DIRECT : fl & ~O_DIRECT;
        if (fcntl(w->fd, F_SETFL, fl) < 0)
                return -errno;
        w->direct = on;
        return 0;
}

int image_seqw_init(struct image_seqw *w, int fd, uint64_t start)
{
        *w = (struct image_seqw){.fd = fd, .pos = align_down(start), .kicked = align_down(start)};
        w->buf = aligned_alloc(IMAGE_SEQW_ALIGN, IMAGE_SEQW_BUF);
        if (!w->buf)
                return -ENOMEM;
        /* A file system without direct I/O refuses the flag: buffered writes then. */
        (void)set_direct(w, true);
        return 0;
}

void image_seqw_clear(struct image_seqw *w)
{
        free(w->buf);
        w->buf = NULL;
}

/* A buffered write: the writeback of what accumulates is started every
 * IMAGE_WRITEBACK_CHUNK bytes, so the sync before the record finds it on its way to disk. */
static int write_buffered(struct image_seqw *w, const uint8_t *p, size_t len, uint64_t off)
{
        int r;

        if (w->direct) {
                r = set_direct(w, false);
                if (r < 0)
                        return r;
                r = ck_pwrite_all(w->fd, p, len, off);
                int r2 = set_direct(w, true);
                return r < 0 ? r : r2;
        }
        r = ck_pwrite_all(w->fd, p, len, off);
        if (r < 0)
                return r;
        w->unkicked += len;
        if (w->unkicked >= IMAGE_WRITEBACK_CHUNK && off + len > w->kicked) {
                (void)sync_file_range(w->fd, (off_t)w->kicked, (off_t)(off + len - w->kicked),
                                      SYNC_FILE_RANGE_WRITE);
                w->kicked = off + len;
                w->unkicked = 0;
        }
        return 0;
}

/* Sends buf[0, n) to pos (n aligned). A file system that takes the flag but not the write
 * (EINVAL: alignment it does not support) gets this and every later write buffered. */
static int send(struct image_seqw *w, size_t n)
{
        if (w->direct) {
                int r = ck_pwrite_all(w->fd, w->buf, n, w->pos);
                if (r != -EINVAL)
                        return r;
                r = set_direct(w, false);
                if (r < 0)
                        return r;
        }
        return write_buffered(w, w->buf, n, w->pos);
}

/* Sends the whole blocks of the buffer (all of it, the last block padded, when `all`) and
 * moves what is left of a partial block to the front. */
static int drain(struct image_seqw *w, bool all)
{
        size_t n = all ? (size_t)align_down(w->len + IMAGE_SEQW_ALIGN - 1) : (size_t)align_down(w->len);
        int r;

        if (n == 0)
                return 0;
        if (n > w->len)
                memset(w->buf + w->len, 0, n - w->len);
        r = send(w, n);
        if (r < 0)
                return r;
        if (w->len > n)
                memmove(w->buf, w->buf + n, w->len - n);
        w->len = w->len > n ? w->len - n : 0;
        w->pos += n;
        return 0;
}

int image_seqw_write(struct image_seqw *w, uint64_t off, const void *data, size_t len)
{
        const uint8_t *p = data;
        int r;

        while (len) {
                size_t rel, n;

                if (off < w->pos) { /* already sent: an ordinary write over it */
                        n = w->pos - off < len ? (size_t)(w->pos - off) : len;
                        r = write_buffered(w, p, n, off);
                        if (r < 0)
                                return r;
                        p += n;
                        off += n;
                        len -= n;
                        continue;
                }
                if (off - w->pos >= IMAGE_SEQW_BUF) {
                        r = drain(w, false);
                        if (r < 0)
                                return r;
                        if (off - w->pos >= IMAGE_SEQW_BUF) { /* a long gap: a hole */
                                r = drain(w, true);
                                if (r < 0)
                                        return r;
                                w->pos = align_down(off);
                        }
                }
                rel = (size_t)(off - w->pos);
                if (rel > w->len)
                        memset(w->buf + w->len, 0, rel - w->len);
                n = IMAGE_SEQW_BUF - rel < len ? IMAGE_SEQW_BUF - rel : len;
                memcpy(w->buf + rel, p, n);
                if (rel + n > w->len)
                        w->len = rel + n;
                p += n;
                off += n;
                len -= n;
                if (w->len == IMAGE_SEQW_BUF) {
                        r = drain(w, false);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int image_seqw_finish(struct image_seqw *w)
{
        int r = drain(w, true);

        if (r < 0)
                return r;
        return w->direct ? set_direct(w, false) : 0;
}
