/* Session-bound client attestation with a cache of quote verifications (see verifier.h for why
 * caching by quote bytes is sound and what is checked on every connection). */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
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

/* Collateral fetched for one FMSPC and PCK CA type. Replaced collateral is retired, not freed,
 * because other workers may still be verifying with it; refreshes happen about once per
 * nextUpdate, so the list stays short. */
struct fetched {
        char fmspc[13];
        const char *ca_type; /* static string from attest_quote_pck_identity() */
        struct attest_collateral *col;
        struct fetched *next;
};

struct broker_verifier {
        struct attest_collateral *collateral;
        char *pcs_url, *pcs_cache_dir, *pcs_ca_file;
        pthread_mutex_t fetch_lock; /* guards fetched and retired; held across a fetch */
        struct fetched *fetched, *retired;
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
        pthread_mutex_init(&v->fetch_lock, NULL);
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
        free(v->pcs_url);
        free(v->pcs_cache_dir);
        free(v->pcs_ca_file);
        free(v->slots);
        pthread_mutex_destroy(&v->fetch_lock);
        pthread_mutex_destroy(&v->lock);
        free(v);
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

/* The collateral to verify quote with: the fixed one, or the one fetched for the quote's
 * FMSPC (fetched now when missing or past its nextUpdate). The FMSPC is read from the PCK
 * certificate before anything is verified; it only selects collateral, which the verification
 * then checks against that same certificate. */
static int collateral_for(struct broker_verifier *v, const uint8_t *quote, size_t len, time_t now,
                          const struct attest_collateral **ret, const char **ret_reason,
                          struct ck_error **reterr)
{
        struct attest_quote q;
        const char *ca_type = NULL;
        struct fetched *f;
        char fmspc[13];
        int rc;

        if (v->collateral) {
                *ret = v->collateral;
                return 0;
        }
        rc = attest_quote_parse(quote, len, &q, reterr);
        if (rc >= 0)
                rc = attest_quote_pck_identity(&q, fmspc, &ca_type, reterr);
        if (rc < 0) {
                *ret_reason = "quote_invalid";
                return rc;
        }
        pthread_mutex_lock(&v->fetch_lock);
        for (f = v->fetched; f; f = f->next)
                if (strcmp(f->fmspc, fmspc) == 0 && strcmp(f->ca_type, ca_type) == 0)
                        break;
        if (!f || attest_collateral_next_update(f->col) <= now) {
                struct attest_collateral *col = NULL;

                rc = attest_collateral_fetch_tee(v->pcs_url, q.tee_type, fmspc, ca_type, v->pcs_cache_dir,
                                                 v->pcs_ca_file, now, &col, reterr);
                if (rc < 0) {
                        pthread_mutex_unlock(&v->fetch_lock);
                        *ret_reason = "collateral_unavailable";
                        return ck_error_prefix(reterr, rc, "collateral for FMSPC %s from %s", fmspc,
                                               v->pcs_url);
                }
                if (f) {
                        struct fetched *old = calloc(1, sizeof(*old));
                        if (!old) {
                                pthread_mutex_unlock(&v->fetch_lock);
                                attest_collateral_free(col);
                                *ret_reason = "internal_error";
                                return -ENOMEM;
                        }
                        *old = (struct fetched){.col = f->col, .next = v->retired};
                        v->retired = old;
                        f->col = col;
                } else {
                        f = calloc(1, sizeof(*f));
                        if (!f) {
                                pthread_mutex_unlock(&v->fetch_lock);
                                attest_collateral_free(col);
                                *ret_reason = "internal_error";
                                return -ENOMEM;
                        }
                        memcpy(f->fmspc, fmspc, sizeof(fmspc));
                        f->ca_type = ca_type;
                        f->col = col;
                        f->next = v->fetched;
                        v->fetched = f;
                }
        }
        *ret = f->col;
        pthread_mutex_unlock(&v->fetch_lock);
        return 0;
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
