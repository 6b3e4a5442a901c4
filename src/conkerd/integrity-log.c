/* Counting the state disk's authentication failures in the kernel log (integrity-log.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "integrity-log.h"
#include "parse.h"

#define DEVS_MAX 8u

struct conkerd_integrity_log {
        pthread_mutex_t lock;
        int fd;
        uint64_t count;
        char *devs[DEVS_MAX + 1];
};

/* Does s (n bytes) start with prefix? */
static bool starts(const char *s, size_t n, const char *prefix)
{
        size_t k = strlen(prefix);
        return n >= k && memcmp(s, prefix, k) == 0;
}

/* After "device-mapper: <target>: ": "<dev>: <what>" with dev in devs, or "<what>" alone
 * (older kernels name no device). */
static bool names_dev(const char *s, size_t n, char *const *devs, const char *what)
{
        if (starts(s, n, what))
                return true;
        for (size_t i = 0; devs && devs[i]; i++) {
                size_t k = strlen(devs[i]);
                if (k > 0 && n > k + 2 && memcmp(s, devs[i], k) == 0 && s[k] == ':' && s[k + 1] == ' ' &&
                    starts(s + k + 2, n - k - 2, what))
                        return true;
        }
        return false;
}

bool conkerd_kmsg_is_integrity_failure(const char *buf, size_t len, char *const *devs)
{
        const char *semi, *msg, *end;
        size_t n;

        if (!buf || len == 0 || len > CONKERD_KMSG_RECORD_MAX)
                return false;
        semi = memchr(buf, ';', len);
        if (!semi)
                return false;
        /* The prefix is "prio,seq,usec,flags" (and ",caller=…" on some kernels). Only the kernel's
         * own messages count (facility 0: prio 0-7), not lines a process wrote to /dev/kmsg. */
        if (semi - buf < 2 || buf[0] < '0' || buf[0] > '7' || buf[1] != ',')
                return false;
        msg = semi + 1;
        end = memchr(msg, '\n', len - (size_t)(msg - buf));
        n = end ? (size_t)(end - msg) : len - (size_t)(msg - buf);
        /* Some kernels' dm-crypt lines carry another file's pr_fmt ("trusted_key: device-mapper:
         * crypt: …"): one leading "word: " is skipped. */
        if (!starts(msg, n, "device-mapper: ")) {
                size_t k = 0;
                while (k < n && k < 32 &&
                       (msg[k] == '_' || msg[k] == '-' || (msg[k] >= 'a' && msg[k] <= 'z') ||
                        (msg[k] >= '0' && msg[k] <= '9')))
                        k++;
                if (k > 0 && k + 2 <= n && msg[k] == ':' && msg[k + 1] == ' ') {
                        msg += k + 2;
                        n -= k + 2;
                }
        }
        if (starts(msg, n, "device-mapper: crypt: "))
                return names_dev(msg + 22, n - 22, devs, "INTEGRITY AEAD ERROR");
        if (starts(msg, n, "device-mapper: integrity: "))
                return names_dev(msg + 26, n - 26, devs, "Checksum failed");
        return false;
}

int conkerd_integrity_log_open(const char *path, char *const *devs, struct conkerd_integrity_log **ret,
                               struct ck_error **reterr)
{
        struct conkerd_integrity_log *l;
        size_t n = 0;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        pthread_mutex_init(&l->lock, NULL);
        l->fd = -EBADF;
        for (; devs && devs[n]; n++) {
                if (n == DEVS_MAX || !(l->devs[n] = strdup(devs[n]))) {
                        conkerd_integrity_log_free(l);
                        return n == DEVS_MAX ? ck_error_set(reterr, -E2BIG, "too many device names")
                                             : -ENOMEM;
                }
        }
        l->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (l->fd < 0) {
                int r = -errno;
                conkerd_integrity_log_free(l);
                return ck_error_errno(reterr, r, "cannot open %s", path);
        }
        /* Only what is logged from now on: before conkerd starts, the state disk unit's fresh
         * mapping is probed (udev, blkid) where nothing was written yet, and with
         * --integrity-no-wipe such sectors have no valid tag either. */
        if (lseek(l->fd, 0, SEEK_END) < 0) {
                int r = -errno;
                conkerd_integrity_log_free(l);
                return ck_error_errno(reterr, r, "cannot seek to the end of %s", path);
        }
        *ret = l;
        return 0;
}

int conkerd_integrity_log_count(struct conkerd_integrity_log *l, uint64_t *ret, struct ck_error **reterr)
{
        char rec[CONKERD_KMSG_RECORD_MAX];
        int r = 0;

        pthread_mutex_lock(&l->lock);
        for (;;) {
                ssize_t k = read(l->fd, rec, sizeof(rec));
                if (k < 0 && errno == EPIPE) /* overwritten before we read it: skip ahead */
                        continue;
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN)
                        break;
                if (k < 0) {
                        r = ck_error_errno(reterr, -errno, "cannot read the kernel log");
                        break;
                }
                if (k == 0)
                        break;
                if (conkerd_kmsg_is_integrity_failure(rec, (size_t)k, l->devs))
                        l->count++;
        }
        if (r >= 0)
                *ret = l->count;
        pthread_mutex_unlock(&l->lock);
        return r;
}

void conkerd_integrity_log_free(struct conkerd_integrity_log *l)
{
        if (!l)
                return;
        if (l->fd >= 0)
                close(l->fd);
        for (size_t i = 0; i < DEVS_MAX && l->devs[i]; i++)
                free(l->devs[i]);
        pthread_mutex_destroy(&l->lock);
        free(l);
}
