/* The sequential O_DIRECT writer (see seqwrite.h for why and the contract). */
#include "seqwrite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "hugebuf.h"
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
        /* Both buffers in one mapping: one huge page (hugebuf.h), fresh memory being the
         * expensive kind; the spare is used once the write thread starts. */
        w->base = image_hugebuf_alloc(2 * (size_t)IMAGE_SEQW_BUF);
        if (!w->base)
                return -ENOMEM;
        w->buf = w->base;
        w->spare = w->base + IMAGE_SEQW_BUF;
        /* A file system without direct I/O refuses the flag: buffered writes then. */
        (void)set_direct(w, true);
        return 0;
}

/* ---- the write thread ------------------------------------------------------------------- */

static void *seqw_main(void *arg)
{
        struct image_seqw *w = arg;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->busy && !w->stop)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (!w->busy)
                        break;
                const uint8_t *p = w->job;
                size_t len = w->job_len;
                uint64_t pos = w->job_pos;
                pthread_mutex_unlock(&w->lock);
                int r = ck_pwrite_all(w->fd, p, len, pos);
                pthread_mutex_lock(&w->lock);
                w->job_err = r;
                w->busy = false;
                pthread_cond_broadcast(&w->cond);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

static int seqw_start(struct image_seqw *w)
{
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        if (pthread_create(&w->thread, NULL, seqw_main, w) != 0) {
                pthread_cond_destroy(&w->cond);
                pthread_mutex_destroy(&w->lock);
                return -EAGAIN;
        }
        w->started = true;
        return 0;
}

void image_seqw_clear(struct image_seqw *w)
{
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->stop = true; /* after the write in flight, if any */
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->lock);
                pthread_join(w->thread, NULL);
                pthread_cond_destroy(&w->cond);
                pthread_mutex_destroy(&w->lock);
                w->started = false;
        }
        image_hugebuf_free(w->base, 2 * (size_t)IMAGE_SEQW_BUF);
        w->base = w->spare = w->buf = NULL;
}

/* ---- writing ---------------------------------------------------------------------------- */

/* A buffered write: the writeback of what accumulates is started every
 * IMAGE_WRITEBACK_CHUNK bytes, so the sync before the record finds it on its way to disk.
 * Only with no direct write in flight (callers wait first). */
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

/* Waits until no write is in flight and returns its result. A direct write the file system
 * refused (EINVAL: an alignment it does not support) is done again buffered (its buffer is
 * w->spare, untouched since), and so is everything after it. */
static int seqw_wait(struct image_seqw *w)
{
        int r;

        if (!w->started)
                return 0;
        pthread_mutex_lock(&w->lock);
        while (w->busy)
                pthread_cond_wait(&w->cond, &w->lock);
        r = w->job_err;
        w->job_err = 0;
        pthread_mutex_unlock(&w->lock);
        if (r != -EINVAL || !w->direct)
                return r;
        r = set_direct(w, false);
        return r < 0 ? r : write_buffered(w, w->job, w->job_len, w->job_pos);
}

/* Sends buf[0, n) to pos (n aligned) and now, on this thread. */
static int send_now(struct image_seqw *w, size_t n)
{
        int r = seqw_wait(w);

        if (r < 0)
                return r;
        if (w->direct) {
                r = ck_pwrite_all(w->fd, w->buf, n, w->pos);
                if (r != -EINVAL)
                        return r;
                r = set_direct(w, false);
                if (r < 0)
                        return r;
        }
        return write_buffered(w, w->buf, n, w->pos);
}

/* Sends the whole blocks of the buffer (all of it, the last block padded, when `all`) and
 * moves what is left of a partial block to the front of the buffer to fill next. A full
 * buffer with O_DIRECT goes to the write thread, and filling goes on in the other one. */
static int drain(struct image_seqw *w, bool all)
{
        size_t n = all ? (size_t)align_down(w->len + IMAGE_SEQW_ALIGN - 1) : (size_t)align_down(w->len);
        size_t rest;
        int r;

        if (n == 0)
                return 0;
        if (n > w->len)
                memset(w->buf + w->len, 0, n - w->len);
        rest = w->len > n ? w->len - n : 0;
        if (!all && w->direct && (w->started || seqw_start(w) == 0)) {
                uint8_t *next = w->spare;

                r = seqw_wait(w); /* the spare buffer is free again */
                if (r < 0)
                        return r;
                if (w->direct) {
                        pthread_mutex_lock(&w->lock);
                        w->job = w->buf;
                        w->job_len = n;
                        w->job_pos = w->pos;
                        w->busy = true;
                        pthread_cond_broadcast(&w->cond);
                        pthread_mutex_unlock(&w->lock);
                        memcpy(next, w->buf + n, rest);
                        w->spare = w->buf;
                        w->buf = next;
                        w->len = rest;
                        w->pos += n;
                        return 0;
                }
        }
        r = send_now(w, n);
        if (r < 0)
                return r;
        if (rest)
                memmove(w->buf, w->buf + n, rest);
        w->len = rest;
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
                        r = seqw_wait(w);
                        if (r >= 0)
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

        if (r >= 0)
                r = seqw_wait(w);
        if (r < 0)
                return r;
        return w->direct ? set_direct(w, false) : 0;
}
