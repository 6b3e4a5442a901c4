/* The broker's secrets: JSON files loaded into wiped memory and reloaded when they change.
 *
 * Each secret of the policy names a file. The store loads them all at start (a missing or bad
 * file is then a startup error), watches their directories with inotify (so that editors that
 * write a new file and rename it over the old one are seen), and on a change loads the file
 * again: a valid one replaces the previous value atomically; a bad one (too large, not JSON,
 * unreadable) keeps the last good value, logs why (never the content) and counts the failure;
 * a file that is gone (deleted, moved away, or its directory removed) revokes the secret at
 * once: nothing is released until a valid file is back.
 *
 * Thread-safety: broker_secret_store_get() may be called from any thread at any time;
 * broker_secret_store_process() from one thread (the broker's main loop). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "secret.h"

/* Largest secret file. */
#define BROKER_SECRET_MAX_BYTES (1024u * 1024u)

struct broker_secret_store; /* opaque */

struct broker_secret_source {
        const char *id;
        const char *path;
};

/* Loads every source (all must be valid) and starts watching their directories. */
int broker_secret_store_new(const struct broker_secret_source *src, size_t n, size_t max_bytes,
                            struct broker_secret_store **ret, struct ck_error **reterr);
/* The inotify fd to poll for POLLIN; then call broker_secret_store_process(). */
int broker_secret_store_fd(const struct broker_secret_store *s);
/* Drains pending inotify events and reloads what changed. Returns the number of secrets whose
 * value changed (>= 0), or -errno when the inotify fd failed. */
int broker_secret_store_process(struct broker_secret_store *s);
/* Reloads every secret now (what process() does for the affected ones). */
int broker_secret_store_reload_all(struct broker_secret_store *s);
/* A copy of the current value of secret id (the caller frees it with ck_secret_free()).
 * -ENOENT when there is no such secret, -EKEYREVOKED when its file was removed. */
int broker_secret_store_get(struct broker_secret_store *s, const char *id, struct ck_secret **ret);
/* Health of one secret, for logs and metrics. */
struct broker_secret_status {
        bool revoked;             /* its file is gone: nothing is released */
        uint64_t reload_failures; /* reloads that kept the last good value (bad file) */
        char last_error[256];     /* why the last reload failed ("" when it did not) */
};
int broker_secret_store_status(struct broker_secret_store *s, const char *id,
                               struct broker_secret_status *ret);
void broker_secret_store_free(struct broker_secret_store *s);
DEFINE_POINTER_CLEANUP(struct broker_secret_store, broker_secret_store_free, broker_secret_store_free)

/* Checks that buf[0..len) is a JSON object or array of at most max bytes, without keeping the
 * parsed form. The error never quotes the content. */
int broker_secret_validate(const uint8_t *buf, size_t len, size_t max, struct ck_error **reterr);
