/* Per-key serialisation of the image store: one writer per blob digest and per diff_id at a
 * time, across threads (busy list + condvar) and across processes (flock on
 * ingest/<key>.lock, unlinked by its last holder). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "manifest.h"
#include "parse.h"
#include "sqlite.h"
#include "ssl.h"
#include "store-internal.h"

/* ---- per-key locks ---------------------------------------------------------------------- */

static bool busy_has(struct image_store *s, const char *key)
{
        for (struct image_busy *b = s->busy; b; b = b->next)
                if (strcmp(b->key, key) == 0)
                        return true;
        return false;
}

int image_store_lock_key(struct image_store *s, const char *key, const char *lock_name, int *ret_fd,
                         struct ck_error **reterr)
{
        struct image_busy *b = calloc(1, sizeof(*b));

        if (!b || !(b->key = strdup(key))) {
                free(b);
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        pthread_mutex_lock(&s->mutex);
        while (busy_has(s, key))
                pthread_cond_wait(&s->cond, &s->mutex);
        b->next = s->busy;
        s->busy = b;
        pthread_mutex_unlock(&s->mutex);

        /* Across processes: flock the lock file, then make sure it is still the file at that
         * name (the previous holder unlinks it when done). */
        for (;;) {
                _cleanup_close_ int fd =
                        openat(s->ingest_fd, lock_name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                struct stat a, b2;
                int r;

                if (fd < 0) {
                        r = -errno;
                        image_store_unlock_key(s, key, NULL, -1);
                        return ck_error_errno(reterr, r, "cannot create lock file %s", lock_name);
                }
                while (flock(fd, LOCK_EX) < 0)
                        if (errno != EINTR) {
                                r = -errno;
                                image_store_unlock_key(s, key, NULL, -1);
                                return ck_error_errno(reterr, r, "cannot lock %s", lock_name);
                        }
                if (fstat(fd, &a) == 0 && fstatat(s->ingest_fd, lock_name, &b2, AT_SYMLINK_NOFOLLOW) == 0 &&
                    a.st_dev == b2.st_dev && a.st_ino == b2.st_ino) {
                        *ret_fd = TAKE_FD(fd);
                        return 0;
                }
        }
}

void image_store_unlock_key(struct image_store *s, const char *key, const char *lock_name, int fd)
{
        struct image_busy **pp;

        if (fd >= 0) {
                if (lock_name)
                        (void)unlinkat(s->ingest_fd, lock_name, 0);
                close(fd);
        }
        pthread_mutex_lock(&s->mutex);
        for (pp = &s->busy; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->key, key) == 0) {
                        struct image_busy *b = *pp;
                        *pp = b->next;
                        free(b->key);
                        free(b);
                        break;
                }
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mutex);
}
