/* Secret files: bounded, validated loads into ck_secrets, and inotify-driven reloads that keep
 * the last good value when a new version is bad.
 *
 * Directories are watched rather than files: an editor or a deployment tool that writes a new
 * file and renames it over the old one replaces the inode, and a watch on the old inode would
 * go quiet. Any relevant event in a directory reloads the secrets that live there; a value that
 * did not change is not reported.
 *
 * Deleting a secret's file is how an owner revokes it: a reload that finds no file (ENOENT,
 * also when the directory itself was removed) drops the value at once. A file that is present
 * but bad is a mistake in an update, not a revocation: the last good value stays. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "secret-store.h"

struct store_entry {
        char *id;
        char *path;
        int wd;
        struct ck_secret *value; /* NULL: revoked */
        uint64_t reload_failures;
        char last_error[256];
};

struct broker_secret_store {
        pthread_mutex_t lock; /* guards every entry's value */
        int ifd;
        size_t max;
        struct store_entry *e;
        size_t n;
};

#define WATCH_MASK                                                                                          \
        (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF |            \
         IN_MOVE_SELF | IN_ONLYDIR)

int broker_secret_validate(const uint8_t *buf, size_t len, size_t max, struct ck_error **reterr)
{
        json_error_t je;
        json_t *j;

        if (len > max)
                return ck_error_set(reterr, -EFBIG, "secret of %zu bytes is over the %zu-byte limit", len,
                                    max);
        /* jansson's error text quotes the input near the error: report the position only. */
        j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
        if (!j)
                return ck_error_set(reterr, -EBADMSG, "not valid JSON (line %d, column %d)", je.line,
                                    je.column);
        json_decref(j);
        return 0;
}

/* Reads and validates one secret file. The read buffer is wiped before it is freed. */
static int secret_load(const char *path, size_t max, struct ck_secret **ret, struct ck_error **reterr)
{
        uint8_t *buf = NULL;
        struct ck_secret *s = NULL;
        size_t len = 0;
        int rc;

        rc = ck_secret_file_read_at(AT_FDCWD, path, max, &buf, &len, NULL, reterr);
        if (rc < 0)
                return rc;
        rc = broker_secret_validate(buf, len, max, reterr);
        if (rc >= 0) {
                s = ck_secret_new(buf, len);
                if (!s)
                        rc = -ENOMEM;
        }
        OPENSSL_cleanse(buf, len);
        free(buf);
        if (rc < 0)
                return rc;
        *ret = s;
        return 0;
}

static int dir_of(const char *path, char **ret)
{
        const char *slash = strrchr(path, '/');
        char *d;

        if (!slash)
                d = strdup(".");
        else if (slash == path)
                d = strdup("/");
        else
                d = strndup(path, (size_t)(slash - path));
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

void broker_secret_store_free(struct broker_secret_store *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++) {
                ck_secret_free(s->e[i].value);
                free(s->e[i].id);
                free(s->e[i].path);
        }
        free(s->e);
        safe_close(s->ifd);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

int broker_secret_store_new(const struct broker_secret_source *src, size_t n, size_t max_bytes,
                            struct broker_secret_store **ret, struct ck_error **reterr)
{
        _cleanup_(broker_secret_store_freep) struct broker_secret_store *s = NULL;
        int rc;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        s->ifd = -1;
        s->max = max_bytes ? max_bytes : BROKER_SECRET_MAX_BYTES;
        s->e = calloc(n ? n : 1, sizeof(*s->e));
        if (!s->e)
                return -ENOMEM;
        s->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (s->ifd < 0)
                return ck_error_errno(reterr, -errno, "inotify_init1");

        for (size_t i = 0; i < n; i++) {
                struct store_entry *e = &s->e[i];
                _cleanup_free_ char *dir = NULL;

                e->id = strdup(src[i].id);
                e->path = strdup(src[i].path);
                e->wd = -1;
                s->n++;
                if (!e->id || !e->path)
                        return -ENOMEM;
                rc = secret_load(e->path, s->max, &e->value, reterr);
                if (rc < 0)
                        return ck_error_prefix(reterr, rc, "secret \"%s\" (%s)", e->id, e->path);
                rc = dir_of(e->path, &dir);
                if (rc < 0)
                        return rc;
                e->wd = inotify_add_watch(s->ifd, dir, WATCH_MASK);
                if (e->wd < 0)
                        return ck_error_errno(reterr, -errno, "watching %s", dir);
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int broker_secret_store_fd(const struct broker_secret_store *s)
{
        return s->ifd;
}

/* Reloads entry i. Returns 1 when its value changed, 0 when it did not or the new file is bad
 * (the last good value stays; the reason is logged). */
static int entry_reload(struct broker_secret_store *s, size_t i)
{
        _cleanup_error_ struct ck_error *err = NULL;
        struct store_entry *e = &s->e[i];
        struct ck_secret *n = NULL, *old;
        int rc;

        rc = secret_load(e->path, s->max, &n, &err);
        if (rc == -ENOENT || rc == -ENOTDIR) {
                /* The file is gone: the owner revoked the secret. */
                pthread_mutex_lock(&s->lock);
                old = TAKE_PTR(e->value);
                snprintf(e->last_error, sizeof(e->last_error), "%s", ck_error_message(err, rc));
                pthread_mutex_unlock(&s->lock);
                if (!old)
                        return 0;
                ck_secret_free(old);
                log_warn("secret \"%s\": %s is gone: revoked, nothing is released until it is back", e->id,
                         e->path);
                return 1;
        }
        if (rc < 0) {
                pthread_mutex_lock(&s->lock);
                e->reload_failures++;
                snprintf(e->last_error, sizeof(e->last_error), "%s", ck_error_message(err, rc));
                pthread_mutex_unlock(&s->lock);
                log_error("secret \"%s\": %s: keeping the last good value: %s", e->id, e->path,
                          ck_error_message(err, rc));
                ck_metrics_inc("conker_broker_secret_reload_failures_total", e->id, NULL);
                return 0;
        }
        pthread_mutex_lock(&s->lock);
        e->last_error[0] = 0;
        if (e->value && ck_secret_equal(e->value, n->data, n->len)) {
                pthread_mutex_unlock(&s->lock);
                ck_secret_free(n);
                return 0;
        }
        old = e->value;
        e->value = n;
        pthread_mutex_unlock(&s->lock);
        ck_secret_free(old);
        log_info("secret \"%s\": reloaded from %s (%zu bytes)", e->id, e->path, n->len);
        return 1;
}

int broker_secret_store_reload_all(struct broker_secret_store *s)
{
        int changed = 0;

        for (size_t i = 0; i < s->n; i++)
                changed += entry_reload(s, i);
        return changed;
}

int broker_secret_store_process(struct broker_secret_store *s)
{
        uint8_t buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
                __attribute__((aligned(__alignof__(struct inotify_event))));
        bool *dirty;
        int changed = 0;

        dirty = calloc(s->n ? s->n : 1, sizeof(*dirty));
        if (!dirty)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(s->ifd, buf, sizeof(buf));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN)
                        break;
                if (k <= 0) {
                        int r = k < 0 ? -errno : -EIO;
                        free(dirty);
                        return r;
                }
                for (size_t off = 0; off + sizeof(struct inotify_event) <= (size_t)k;) {
                        const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
                        for (size_t i = 0; i < s->n; i++)
                                if (s->e[i].wd == ev->wd || (ev->mask & IN_Q_OVERFLOW))
                                        dirty[i] = true;
                        off += sizeof(*ev) + ev->len;
                }
        }
        for (size_t i = 0; i < s->n; i++)
                if (dirty[i])
                        changed += entry_reload(s, i);
        free(dirty);
        return changed;
}

int broker_secret_store_get(struct broker_secret_store *s, const char *id, struct ck_secret **ret)
{
        struct ck_secret *copy = NULL;
        int rc = -ENOENT;

        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->e[i].id, id) == 0) {
                        if (!s->e[i].value) {
                                rc = -EKEYREVOKED;
                                break;
                        }
                        copy = ck_secret_new(s->e[i].value->data, s->e[i].value->len);
                        rc = copy ? 0 : -ENOMEM;
                        break;
                }
        pthread_mutex_unlock(&s->lock);
        if (rc < 0)
                return rc;
        *ret = copy;
        return 0;
}

int broker_secret_store_status(struct broker_secret_store *s, const char *id,
                               struct broker_secret_status *ret)
{
        int rc = -ENOENT;

        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->e[i].id, id) == 0) {
                        *ret = (struct broker_secret_status){.revoked = !s->e[i].value,
                                                             .reload_failures = s->e[i].reload_failures};
                        memcpy(ret->last_error, s->e[i].last_error, sizeof(ret->last_error));
                        rc = 0;
                        break;
                }
        pthread_mutex_unlock(&s->lock);
        return rc;
}
