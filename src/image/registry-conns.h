/* The registry client's connections (registry-*.c): libcurl (easy, multi) pairs, each keeping its
 * open connections, and one CURLSH with the DNS and TLS session caches; and the keep in which a
 * client leaves them, with the authentication scheme it learned, for the next client of the same
 * registry in this process (registry_keep in registry.h).
 *
 * Internal to the image module. Nothing here holds a credential or a token: Authorization
 * headers are set per request and dropped from a handle (curl_easy_reset) before it is parked. */
#pragma once

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth.h"

#define REGISTRY_CONN_POOL_MAX 4 /* pairs parked per registry */
#define REGISTRY_KEEP_MAX      4 /* registries a keep remembers */

/* An easy handle and the multi handle it runs in. The multi owns the connection cache, so the
 * pair is pooled together. */
struct registry_conn {
        CURL *easy;
        CURLM *multi;
};

struct registry_conns {
        struct registry_conns *next; /* in a keep */
        char *base_url;              /* the key: scheme, host and port ... */
        char *ca_file;               /* ... and the trust anchors (NULL = the system's) */
        CURLSH *share;               /* DNS and TLS sessions */
        pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
        pthread_mutex_t lock; /* guards pool */
        struct registry_conn pool[REGISTRY_CONN_POOL_MAX];
        size_t n_pool;
        /* While kept: the registry's auth scheme (none, Basic, a Bearer realm and service) as a
         * client learned it from the registry itself; empty when learned is false. */
        bool learned;
        struct registry_challenge challenge;
};

/* registry_keep (registry.h): the registries' entries, most recently kept first. */
struct registry_keep {
        pthread_mutex_t lock;
        struct registry_conns *list;
};

/* The kept entry for (base_url, ca_file), taken out of keep (keep may be NULL), or a new one. */
int registry_conns_take(struct registry_keep *keep, const char *base_url, const char *ca_file,
                        struct registry_conns **ret);
/* Hands k back to keep (the oldest entry beyond REGISTRY_KEEP_MAX is freed), or frees it when
 * keep is NULL. */
void registry_conns_give(struct registry_keep *keep, struct registry_conns *k);
void registry_conns_free(struct registry_conns *k);

/* A parked pair (options reset), or a new one. */
int registry_conn_get(struct registry_conns *k, struct registry_conn *ret);
/* Resets the pair's options and parks it (freed when the pool is full). */
void registry_conn_put(struct registry_conns *k, struct registry_conn *c);
void registry_conn_free(struct registry_conn *c);
