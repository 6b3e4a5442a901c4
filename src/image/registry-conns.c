/* The registry client's connections and the keep that hands them from one client to the next
 * (registry-conns.h). A keep lets a burst of pulls from one registry (conker-fetch serves a
 * burst of starts) reuse one TCP/TLS connection and skip the /v2/ request that only tells how
 * the registry wants us to authenticate. Only what the registry told everyone is kept: open
 * connections, DNS and TLS session caches, the challenge's scheme, realm and service. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "registry-conns.h"
#include "registry.h"

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userptr)
{
        struct registry_conns *k = userptr;

        if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
                pthread_mutex_lock(&k->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userptr)
{
        struct registry_conns *k = userptr;

        if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
                pthread_mutex_unlock(&k->share_locks[data]);
}

void registry_conn_free(struct registry_conn *c)
{
        if (c->multi)
                curl_multi_cleanup(c->multi);
        if (c->easy)
                curl_easy_cleanup(c->easy);
        *c = (struct registry_conn){0};
}

void registry_conns_free(struct registry_conns *k)
{
        if (!k)
                return;
        for (size_t i = 0; i < k->n_pool; i++)
                registry_conn_free(&k->pool[i]);
        if (k->share)
                curl_share_cleanup(k->share);
        registry_challenge_clear(&k->challenge);
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_destroy(&k->share_locks[i]);
        pthread_mutex_destroy(&k->lock);
        free(k->base_url);
        free(k->ca_file);
        free(k);
}

static bool same(const char *a, const char *b)
{
        return a == b || (a && b && strcmp(a, b) == 0);
}

int registry_conns_take(struct registry_keep *keep, const char *base_url, const char *ca_file,
                        struct registry_conns **ret)
{
        struct registry_conns *k = NULL;

        if (keep) {
                pthread_mutex_lock(&keep->lock);
                for (struct registry_conns **p = &keep->list; *p; p = &(*p)->next)
                        if (strcmp((*p)->base_url, base_url) == 0 && same((*p)->ca_file, ca_file)) {
                                k = *p;
                                *p = k->next;
                                k->next = NULL;
                                break;
                        }
                pthread_mutex_unlock(&keep->lock);
                if (k) {
                        *ret = k;
                        return 0;
                }
        }
        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        pthread_mutex_init(&k->lock, NULL);
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_init(&k->share_locks[i], NULL);
        k->base_url = strdup(base_url);
        k->ca_file = ca_file ? strdup(ca_file) : NULL;
        k->share = curl_share_init();
        if (!k->base_url || (ca_file && !k->ca_file) || !k->share) {
                registry_conns_free(k);
                return -ENOMEM;
        }
        curl_share_setopt(k->share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(k->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(k->share, CURLSHOPT_USERDATA, k);
        curl_share_setopt(k->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(k->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        *ret = k;
        return 0;
}

void registry_conns_give(struct registry_keep *keep, struct registry_conns *k)
{
        struct registry_conns *drop = NULL;
        size_t n = 0;

        if (!k)
                return;
        if (!keep) {
                registry_conns_free(k);
                return;
        }
        pthread_mutex_lock(&keep->lock);
        k->next = keep->list;
        keep->list = k;
        for (struct registry_conns *p = keep->list; p; p = p->next)
                if (++n == REGISTRY_KEEP_MAX) {
                        drop = p->next;
                        p->next = NULL;
                        break;
                }
        pthread_mutex_unlock(&keep->lock);
        while (drop) {
                struct registry_conns *next = drop->next;
                registry_conns_free(drop);
                drop = next;
        }
}

int registry_conn_get(struct registry_conns *k, struct registry_conn *ret)
{
        struct registry_conn c = {0};
        bool found = false;

        pthread_mutex_lock(&k->lock);
        if (k->n_pool > 0) {
                c = k->pool[--k->n_pool];
                found = true;
        }
        pthread_mutex_unlock(&k->lock);
        if (found) {
                curl_easy_reset(c.easy);
        } else {
                c.easy = curl_easy_init();
                c.multi = curl_multi_init();
                if (!c.easy || !c.multi) {
                        registry_conn_free(&c);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}

void registry_conn_put(struct registry_conns *k, struct registry_conn *c)
{
        /* Drop per-request pointers (headers, callbacks' data) before parking the handle. */
        curl_easy_reset(c->easy);
        pthread_mutex_lock(&k->lock);
        if (k->n_pool < REGISTRY_CONN_POOL_MAX) {
                k->pool[k->n_pool++] = *c;
                *c = (struct registry_conn){0};
        }
        pthread_mutex_unlock(&k->lock);
        registry_conn_free(c);
}

int registry_keep_new(struct registry_keep **ret)
{
        struct registry_keep *keep = calloc(1, sizeof(*keep));

        if (!keep)
                return -ENOMEM;
        pthread_mutex_init(&keep->lock, NULL);
        *ret = keep;
        return 0;
}

void registry_keep_free(struct registry_keep *keep)
{
        if (!keep)
                return;
        while (keep->list) {
                struct registry_conns *k = keep->list;
                keep->list = k->next;
                registry_conns_free(k);
        }
        pthread_mutex_destroy(&keep->lock);
        free(keep);
}
