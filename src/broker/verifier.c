/* Session-bound client attestation with a cache of quote verifications (see verifier.h for why
 * caching by quote bytes is sound and what is checked on every connection). */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "quote.h"
#include "ratls.h"
#include "ssl.h"
#include "verifier.h"

struct cache_entry {
        bool used;
        uint8_t key[32]; /* SHA-256 of the quote */
        time_t expires;
        struct attest_result value; /* advisory_ids NULL */
};

/* What a fetch is for: a TEE type, an FMSPC and a PCK CA type. */
struct fetch_key {
        uint32_t tee_type;
        char fmspc[13];
        const char *ca_type; /* static string from attest_quote_pck_identity() */
};

/* Collateral fetched for one key. Replaced collateral is retired, not freed, because other
 * workers may still be verifying with it; refreshes happen about once per nextUpdate, so the
 * list stays short. */
struct fetched {
        struct fetch_key key;
        struct attest_collateral *col;
        struct fetched *next;
};

/* A fetch that failed: no new attempt for that key until `until`. */
struct failed {
        struct fetch_key key;
        time_t until;
        int rc;
        char message[256];
        struct failed *next;
};

/* A fetch under way (on the fetching thread's stack while it runs). */
struct inflight {
        struct fetch_key key;
        struct inflight *next;
};

/* The negative cache holds at most this many keys. Only keys whose PCK chain verified to the
 * trusted root reach it, so in practice it holds a few real platforms. */
#define FAILED_MAX 256

struct broker_verifier {
        struct attest_collateral *collateral;
        char *pcs_url, *pcs_cache_dir, *pcs_ca_file;
        /* fetch_lock guards the lists and counters below; it is never held across a fetch. A
         * thread that needs a key being fetched, or finds max_fetches fetches under way, waits
         * on fetch_cond, which is broadcast whenever a fetch ends. */
        pthread_mutex_t fetch_lock;
        pthread_cond_t fetch_cond;
        struct fetched *fetched, *retired;
        struct failed *failed;
        size_t n_failed;
        struct inflight *inflight;
        unsigned n_inflight, max_fetches;
        struct broker_verifier_fetch_stats stats;
        unsigned failure_ttl;
        X509 *root;
        unsigned ttl;
        pthread_mutex_t lock;
        struct cache_entry *slots; /* open addressing, linear probing; twice cache_max slots */
        size_t n_slots, n_used, max;
};

int broker_verifier_new(const struct broker_verifier_config *cfg, struct broker_verifier **ret,
                        struct ck_error **reterr)
{
        struct broker_verifier *v = calloc(1, sizeof(*v));

        if (!v)
                return -ENOMEM;
        v->collateral = cfg->collateral;
        v->root = cfg->root;
        v->max_fetches = cfg->max_fetches ? cfg->max_fetches : BROKER_FETCH_MAX_DEFAULT;
        v->failure_ttl =
                cfg->fetch_failure_ttl_secs ? cfg->fetch_failure_ttl_secs : BROKER_FETCH_FAILURE_TTL_DEFAULT;
        pthread_mutex_init(&v->fetch_lock, NULL);
        pthread_cond_init(&v->fetch_cond, NULL);
        if (!cfg->collateral) {
                v->pcs_url = cfg->pcs_url ? strdup(cfg->pcs_url) : NULL;
                v->pcs_cache_dir = cfg->pcs_cache_dir ? strdup(cfg->pcs_cache_dir) : NULL;
                v->pcs_ca_file = cfg->pcs_ca_file ? strdup(cfg->pcs_ca_file) : NULL;
                if (!v->pcs_url || (cfg->pcs_cache_dir && !v->pcs_cache_dir) ||
                    (cfg->pcs_ca_file && !v->pcs_ca_file)) {
                        broker_verifier_free(v);
                        return cfg->pcs_url ? -ENOMEM
                                            : ck_error_set(reterr, -EINVAL,
                                                           "verifier: no collateral and no PCS URL");
                }
        }
        v->ttl = cfg->cache_ttl_secs;
        v->max = cfg->cache_max ? cfg->cache_max : 4096;
        pthread_mutex_init(&v->lock, NULL);
        if (v->ttl) {
                v->n_slots = v->max * 2;
                v->slots = calloc(v->n_slots, sizeof(*v->slots));
                if (!v->slots) {
                        free(v);
                        return -ENOMEM;
                }
        }
        *ret = v;
        return 0;
}

void broker_verifier_free(struct broker_verifier *v)
{
        if (!v)
                return;
        for (struct fetched *f = v->fetched, *n; f; f = n) {
                n = f->next;
                attest_collateral_free(f->col);
                free(f);
        }
        for (struct fetched *f = v->retired, *n; f; f = n) {
                n = f->next;
                attest_collateral_free(f->col);
                free(f);
        }
        for (struct failed *f = v->failed, *n; f; f = n) {
                n = f->next;
                free(f);
        }
        free(v->pcs_url);
        free(v->pcs_cache_dir);
        free(v->pcs_ca_file);
        free(v->slots);
        pthread_cond_destroy(&v->fetch_cond);
        pthread_mutex_destroy(&v->fetch_lock);
        pthread_mutex_destroy(&v->lock);
        free(v);
}

void broker_verifier_fetch_stats(struct broker_verifier *v, struct broker_verifier_fetch_stats *ret)
{
        pthread_mutex_lock(&v->fetch_lock);
        *ret = v->stats;
        ret->in_flight = v->n_inflight;
        pthread_mutex_unlock(&v->fetch_lock);
}

static size_t slot_of(const struct broker_verifier *v, const uint8_t key[32])
{
        size_t h;

        memcpy(&h, key, sizeof(h));
        return h % v->n_slots;
}

static bool cache_get(struct broker_verifier *v, const uint8_t key[32], time_t now,
                      struct attest_result *ret)
{
        bool hit = false;

        if (!v->slots)
                return false;
        pthread_mutex_lock(&v->lock);
        for (size_t i = slot_of(v, key), n = 0; n < v->n_slots && v->slots[i].used;
             i = (i + 1) % v->n_slots, n++)
                if (memcmp(v->slots[i].key, key, 32) == 0) {
                        hit = now < v->slots[i].expires;
                        if (hit)
                                *ret = v->slots[i].value;
                        break;
                }
        pthread_mutex_unlock(&v->lock);
        return hit;
}

static void cache_put(struct broker_verifier *v, const uint8_t key[32], time_t expires,
                      const struct attest_result *val)
{
        size_t i;

        if (!v->slots)
                return;
        pthread_mutex_lock(&v->lock);
        if (v->n_used >= v->max) {
                /* Full: start over rather than track ages; re-verifying is only a cost. */
                memset(v->slots, 0, v->n_slots * sizeof(*v->slots));
                v->n_used = 0;
        }
        for (i = slot_of(v, key); v->slots[i].used; i = (i + 1) % v->n_slots)
                if (memcmp(v->slots[i].key, key, 32) == 0)
                        break;
        if (!v->slots[i].used)
                v->n_used++;
        v->slots[i] = (struct cache_entry){.used = true, .expires = expires, .value = *val};
        memcpy(v->slots[i].key, key, 32);
        pthread_mutex_unlock(&v->lock);
}

static int cert_time_check(X509 *cert, time_t now, time_t *ret_not_after)
{
        const ASN1_TIME *nb = X509_get0_notBefore(cert), *na = X509_get0_notAfter(cert);
        struct tm tm;

        if (X509_cmp_time(nb, &now) >= 0 || X509_cmp_time(na, &now) <= 0)
                return -EKEYEXPIRED;
        if (ASN1_TIME_to_tm(na, &tm) != 1)
                return -EBADMSG;
        *ret_not_after = timegm(&tm);
        return 0;
}

static bool key_equal(const struct fetch_key *a, const struct fetch_key *b)
{
        return a->tee_type == b->tee_type && strcmp(a->fmspc, b->fmspc) == 0 &&
               strcmp(a->ca_type, b->ca_type) == 0;
}

/* Called with fetch_lock held, for the three lists below. */
static struct fetched *fetched_find(struct broker_verifier *v, const struct fetch_key *k)
{
        for (struct fetched *f = v->fetched; f; f = f->next)
                if (key_equal(&f->key, k))
                        return f;
        return NULL;
}

static struct failed *failed_find(struct broker_verifier *v, const struct fetch_key *k, time_t now)
{
        for (struct failed *f = v->failed; f; f = f->next)
                if (key_equal(&f->key, k))
                        return now < f->until ? f : NULL;
        return NULL;
}

static bool inflight_has(struct broker_verifier *v, const struct fetch_key *k)
{
        for (struct inflight *i = v->inflight; i; i = i->next)
                if (key_equal(&i->key, k))
                        return true;
        return false;
}

static void failed_drop(struct broker_verifier *v, const struct fetch_key *k)
{
        for (struct failed **p = &v->failed; *p; p = &(*p)->next)
                if (key_equal(&(*p)->key, k)) {
                        struct failed *f = *p;
                        *p = f->next;
                        free(f);
                        v->n_failed--;
                        return;
                }
}

/* Remembers a failed fetch for failure_ttl seconds. When the cache is full, expired entries go
 * first, then the oldest. A failure to remember only costs a later retry. */
static void failed_add(struct broker_verifier *v, const struct fetch_key *k, time_t now, int rc,
                       const char *message)
{
        struct failed *f;

        failed_drop(v, k);
        for (struct failed **p = &v->failed; *p;)
                if ((*p)->until <= now) {
                        f = *p;
                        *p = f->next;
                        free(f);
                        v->n_failed--;
                } else
                        p = &(*p)->next;
        if (v->n_failed >= FAILED_MAX) {
                struct failed **p = &v->failed;
                while ((*p)->next)
                        p = &(*p)->next;
                free(*p);
                *p = NULL;
                v->n_failed--;
        }
        f = calloc(1, sizeof(*f));
        if (!f)
                return;
        f->key = *k;
        f->until = now + (time_t)v->failure_ttl;
        f->rc = rc;
        snprintf(f->message, sizeof(f->message), "%s", message);
        f->next = v->failed;
        v->failed = f;
        v->n_failed++;
}

/* Stores freshly fetched collateral for k; the one it replaces is retired. */
static int fetched_put(struct broker_verifier *v, const struct fetch_key *k, struct attest_collateral *col)
{
        struct fetched *f = fetched_find(v, k), *old;

        if (f) {
                old = calloc(1, sizeof(*old));
                if (!old)
                        return -ENOMEM;
                *old = (struct fetched){.col = f->col, .next = v->retired};
                v->retired = old;
                f->col = col;
                return 0;
        }
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        *f = (struct fetched){.key = *k, .col = col, .next = v->fetched};
        v->fetched = f;
        return 0;
}

/* The collateral to verify quote with: the fixed one, or the one fetched for the quote's FMSPC
 * (fetched now when missing or past its nextUpdate).
 *
 * Collateral already at hand is selected by the FMSPC read from the unverified PCK certificate:
 * the verification that follows checks the chain, with the CRLs, against the same certificate.
 * Before anything is fetched, the PCK chain must verify to the trusted root: the FMSPC of a
 * certificate anyone can make is not a reason to contact the PCS. A failed fetch is not retried
 * for the same key until failure_ttl has passed; concurrent requests for one key share one
 * fetch; at most max_fetches run at a time; no lock is held while one runs. */
static int collateral_for(struct broker_verifier *v, const uint8_t *quote, size_t len, time_t now,
                          const struct attest_collateral **ret, const char **ret_reason,
                          struct ck_error **reterr)
{
        _cleanup_error_ struct ck_error *fetch_err = NULL;
        struct attest_collateral *col = NULL;
        struct fetch_key k = {0};
        struct inflight me;
        struct attest_quote q;
        struct fetched *f;
        struct failed *fl;
        int rc;

        if (v->collateral) {
                *ret = v->collateral;
                return 0;
        }
        rc = attest_quote_parse(quote, len, &q, reterr);
        if (rc >= 0)
                rc = attest_quote_pck_identity(&q, k.fmspc, &k.ca_type, reterr);
        if (rc < 0) {
                *ret_reason = "quote_invalid";
                return rc;
        }
        k.tee_type = q.tee_type;
        pthread_mutex_lock(&v->fetch_lock);
        f = fetched_find(v, &k);
        if (f && attest_collateral_next_update(f->col) > now) {
                *ret = f->col;
                pthread_mutex_unlock(&v->fetch_lock);
                return 0;
        }
        pthread_mutex_unlock(&v->fetch_lock);

        /* Nothing at hand: the chain must verify before the network is used. */
        rc = attest_quote_pck_identity_verified(&q, v->root, now, k.fmspc, &k.ca_type, reterr);
        if (rc < 0) {
                *ret_reason = "quote_invalid";
                return rc;
        }

        pthread_mutex_lock(&v->fetch_lock);
        for (;;) {
                f = fetched_find(v, &k);
                if (f && attest_collateral_next_update(f->col) > now) {
                        *ret = f->col;
                        pthread_mutex_unlock(&v->fetch_lock);
                        return 0;
                }
                fl = failed_find(v, &k, now);
                if (fl) {
                        v->stats.skipped++;
                        ck_metrics_inc("conker_broker_collateral_fetches_total", "skipped", NULL);
                        rc = ck_error_set(reterr, fl->rc,
                                          "collateral for FMSPC %s: the last fetch failed, next attempt in "
                                          "%" PRId64 " s: %s",
                                          k.fmspc, (int64_t)(fl->until - now), fl->message);
                        pthread_mutex_unlock(&v->fetch_lock);
                        *ret_reason = "collateral_unavailable";
                        return rc;
                }
                if (!inflight_has(v, &k) && v->n_inflight < v->max_fetches)
                        break;
                v->stats.waiting++;
                pthread_cond_wait(&v->fetch_cond, &v->fetch_lock);
                v->stats.waiting--;
        }
        v->stats.started++;
        me = (struct inflight){.key = k, .next = v->inflight};
        v->inflight = &me;
        v->n_inflight++;
        pthread_mutex_unlock(&v->fetch_lock);

        rc = attest_collateral_fetch_tee(v->pcs_url, k.tee_type, k.fmspc, k.ca_type, v->pcs_cache_dir,
                                         v->pcs_ca_file, now, &col, &fetch_err);

        pthread_mutex_lock(&v->fetch_lock);
        for (struct inflight **p = &v->inflight; *p; p = &(*p)->next)
                if (*p == &me) {
                        *p = me.next;
                        break;
                }
        v->n_inflight--;
        if (rc >= 0) {
                rc = fetched_put(v, &k, col);
                if (rc < 0) {
                        attest_collateral_free(col);
                        col = NULL;
                } else {
                        failed_drop(v, &k);
                        ck_metrics_inc("conker_broker_collateral_fetches_total", "ok", NULL);
                }
        } else {
                v->stats.failed++;
                ck_metrics_inc("conker_broker_collateral_fetches_total", "failed", NULL);
                failed_add(v, &k, now, rc, ck_error_message(fetch_err, rc));
        }
        pthread_cond_broadcast(&v->fetch_cond);
        pthread_mutex_unlock(&v->fetch_lock);

        if (rc == -ENOMEM) {
                *ret_reason = "internal_error";
                return ck_error_set(reterr, rc, "out of memory");
        }
        if (rc < 0) {
                *ret_reason = "collateral_unavailable";
                return ck_error_set(reterr, rc, "collateral for FMSPC %s from %s: %s", k.fmspc, v->pcs_url,
                                    ck_error_message(fetch_err, rc));
        }
        *ret = col;
        return 0;
}

bool broker_verifier_reason_after_quote(const char *reason)
{
        /* attest_ratls_check_binding()'s reasons, and the appId check after it. */
        static const char *const after[] = {"binding_invalid", "evidence_not_bound", "exporter_mismatch",
                                            "image_mismatch"};

        for (size_t i = 0; reason && i < ELEMENTSOF(after); i++)
                if (strcmp(reason, after[i]) == 0)
                        return true;
        return false;
}

void broker_attested_clear(struct broker_attested *a)
{
        if (!a)
                return;
        free(a->task_config);
        free(a->rtmr3_log);
        *a = (struct broker_attested){0};
}

int broker_verifier_check(struct broker_verifier *v, const uint8_t *evidence, size_t len, X509 *cert,
                          const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN], time_t now,
                          struct broker_attested *ret, const char **ret_reason, struct ck_error **reterr)
{
        _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev = NULL;
        _cleanup_(attest_result_freep) struct attest_result *verified = NULL;
        struct attest_verify_opts opts = {.now = now, .root = v->root};
        const struct attest_collateral *col = NULL;
        struct broker_attested a = {0};
        const uint8_t *quote = NULL, *claims = NULL;
        size_t qlen = 0, clen = 0;
        time_t not_after = 0, expires;
        uint8_t key[32];
        int rc;

        if (!cert) {
                *ret_reason = "no_certificate";
                return ck_error_set(reterr, -EKEYREJECTED, "no client certificate");
        }
        rc = cert_time_check(cert, now, &not_after);
        if (rc < 0) {
                *ret_reason = "cert_expired";
                return ck_error_set(reterr, rc, "client certificate is not valid at this time");
        }
        rc = attest_ratls_parse_evidence(evidence, len, &quote, &qlen, &claims, &clen, reterr);
        if (rc < 0) {
                *ret_reason = "evidence_malformed";
                return rc;
        }
        if (ck_sha256(quote, qlen, key) < 0) {
                *ret_reason = "internal_error";
                return ck_error_set(reterr, -EIO, "SHA-256 failed");
        }

        /* The quote: from the cache, or verified now (and cached). */
        a.cached = cache_get(v, key, now, &a.result);
        ck_metrics_inc("conker_broker_verification_cache_total", a.cached ? "hit" : "miss", NULL);
        if (!a.cached) {
                rc = collateral_for(v, quote, qlen, now, &col, ret_reason, reterr);
                if (rc < 0)
                        return rc;
                ck_metrics_gauge("conker_broker_collateral_age_seconds", NULL,
                                 (double)(now - attest_collateral_issue_date(col)));
                rc = attest_verify_quote(quote, qlen, col, &opts, &verified, reterr);
                if (rc < 0) {
                        *ret_reason = "quote_invalid";
                        return ck_error_prefix(reterr, rc, "RA-TLS: quote");
                }
                a.result = *verified;
                a.result.advisory_ids = NULL;
                a.result.n_advisory_ids = 0;
                expires = now + (time_t)v->ttl;
                if (attest_collateral_next_update(col) < expires)
                        expires = attest_collateral_next_update(col);
                cache_put(v, key, expires, &a.result);
        }

        /* The binding, on every connection. */
        rc = attest_ratls_check_binding(&a.result, claims, clen, cert, exporter, &ev, ret_reason, reterr);
        if (rc < 0)
                return rc;
        if (ev->app_id) {
                if (ev->app_id_len > sizeof(a.app_id)) {
                        *ret_reason = "image_mismatch";
                        return ck_error_set(reterr, -EBADMSG, "appId claim of %zu bytes is too long",
                                            ev->app_id_len);
                }
                memcpy(a.app_id, ev->app_id, ev->app_id_len);
                a.app_id_len = ev->app_id_len;
                a.has_app_id = true;
        }
        a.task_config = TAKE_PTR(ev->task_config);
        a.task_config_len = ev->task_config_len;
        a.rtmr3_log = TAKE_PTR(ev->rtmr3_log);
        a.rtmr3_log_len = ev->rtmr3_log_len;
        *ret = a;
        return 0;
}
