/* Pulling an image: reference -> (mirror) -> manifest (through indexes, linux/amd64) -> config
 * -> layers, into the content store, then the image record.
 *
 * Threads: the calling thread resolves the manifest, starts up to PULL_PARALLEL download
 * threads for the layer blobs (Docker's and containerd's default of 3) and fetches the config
 * beside them; every unpacker waits for the config (its diff_ids) to be verified and checked
 * before it starts, so a layer's bytes may queue but nothing is unpacked or committed before.
 * The download threads share one registry client (own easy handle, shared token cache). Each download
 * feeds its bytes both to the blob writer and, through a bounded queue, to an unpack thread of
 * its own, so a layer is unpacked while it downloads; layers whose blob is already stored are
 * unpacked from disk by a pool of one thread per CPU, in any order: every layer goes to its own
 * directory, so layers are independent. When the caller passes a cancel flag, a watcher thread
 * copies it into the pull's own stop flag, which is also raised when any step fails, so that
 * every transfer and every streamed unpack stops within a second either way. Unpacking a
 * stored blob is not interruptible: a cancel that arrives during one takes effect when it ends.
 *
 * Nothing partial becomes visible: blobs go through the store's writers (temp file, verified,
 * renamed) and are aborted on any failure; layers are committed only with their blob's digest
 * and size and their diff_id verified; the record is written last. A pull that fails or is cancelled
 * discards the blobs it committed (and the layers unpacked from them) unless an image references them. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "byteq.h"
#include "log.h"
#include "manifest.h"
#include "metrics.h"
#include "monotonic.h"
#include "pull-resolve.h"
#include "pull.h"
#include "reference.h"
#include "registry.h"

#define PULL_PARALLEL       3
#define UNPACK_PARALLEL_MAX 8
#define PROGRESS_STEP       (256u << 10)
#define WATCH_INTERVAL_NSEC 50000000L

enum {
        LAYER_PENDING,
        LAYER_FETCHING,   /* a download thread has it (and streams it into its unpacker) */
        LAYER_DOWNLOADED, /* blob committed (or present), waiting for an unpack thread */
        LAYER_UNPACKING,
        LAYER_UNPACKED,
};

struct layer_state {
        int status;     /* LAYER_* */
        bool committed; /* this pull wrote the blob (discarded again if the pull fails) */
};

struct pull {
        struct image_store *s;
        const struct image_pull_opts *o;
        struct registry_client *client;
        const char *ref_str;
        const char *repo;
        const struct image_manifest *m;
        const struct image_config *cfg; /* set under lock (cond broadcast) once checked */

        atomic_int stop;     /* raised on user cancel or on the first failure */
        atomic_int finished; /* tells the watcher to exit */

        pthread_mutex_t lock; /* guards next, layers[], err, err_layer; cond signals layer changes */
        pthread_cond_t cond;
        size_t next;
        size_t *order; /* layer indexes, largest blob first: the order downloads start in */
        struct layer_state *layers;
        struct ck_error *err; /* first failure */
        int err_code;
        size_t err_layer; /* 1-based, 0 when not a layer */

        atomic_uint_fast64_t done_bytes;
        atomic_uint_fast64_t reported_bytes;
        uint64_t total_bytes;
        atomic_uint layers_done;
        struct ck_metric *pulled_bytes; /* NULL when the program exports no metrics */
        bool config_committed;          /* this pull wrote the config blob */
};

static void progress(struct pull *p, const char *phase)
{
        struct image_pull_progress pr;

        if (!p->o->progress)
                return;
        pr = (struct image_pull_progress){
                .phase = phase,
                .done_bytes = atomic_load(&p->done_bytes),
                .total_bytes = p->total_bytes,
                .layers_done = atomic_load(&p->layers_done),
                .layers_total = p->m ? (unsigned)p->m->n_layers : 0,
        };
        p->o->progress(p->o->progress_userdata, &pr);
}

static void add_bytes(struct pull *p, uint64_t n)
{
        uint64_t done = atomic_fetch_add(&p->done_bytes, n) + n;
        uint64_t last = atomic_load(&p->reported_bytes);

        /* Report about every PROGRESS_STEP bytes; the CAS picks one reporter per step. */
        if (done - last >= PROGRESS_STEP && atomic_compare_exchange_strong(&p->reported_bytes, &last, done))
                progress(p, "downloading");
}

/* Records the first failure (layer is 1-based, 0 for none) and stops everything else. */
static void fail(struct pull *p, size_t layer, int code, struct ck_error **err)
{
        pthread_mutex_lock(&p->lock);
        if (!p->err_code) {
                p->err_code = code;
                p->err = err ? TAKE_PTR(*err) : NULL;
                p->err_layer = layer;
        }
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        atomic_store(&p->stop, 1);
}

static bool user_cancelled(const struct pull *p)
{
        return p->o->cancel && atomic_load(p->o->cancel) != 0;
}

/* WATCH_INTERVAL from now, for the pull's bounded condition waits (CLOCK_REALTIME, the
 * conditions' default clock). */
static struct timespec watch_deadline(void)
{
        return ck_deadline_ns(CLOCK_REALTIME, WATCH_INTERVAL_NSEC);
}

/* The config is fetched beside the layers: an unpacker waits here for it (its diff_ids) before
 * it starts, so no layer is unpacked, compared or committed before the config was verified and
 * checked against the manifest. Returns false when the pull stopped first. */
static bool wait_config(struct pull *p)
{
        bool ok;

        pthread_mutex_lock(&p->lock);
        while (!p->cfg && !atomic_load(&p->stop) && !p->err_code) {
                struct timespec ts = watch_deadline();

                /* Bounded: a user cancel is seen even without a watcher's broadcast. */
                pthread_cond_timedwait(&p->cond, &p->lock, &ts);
        }
        ok = p->cfg && !atomic_load(&p->stop) && !p->err_code;
        pthread_mutex_unlock(&p->lock);
        return ok;
}

/* Watches the user's cancel flag. It waits on p->cond (bounded by WATCH_INTERVAL) rather than
 * sleeping, so that the end of a pull (finished + broadcast under p->lock) releases it at once:
 * a pull that only resolves a manifest must not wait out a sleep before it can return. */
static void *watcher_main(void *arg)
{
        struct pull *p = arg;

        pthread_mutex_lock(&p->lock);
        while (!atomic_load(&p->finished)) {
                struct timespec ts;

                if (user_cancelled(p)) {
                        atomic_store(&p->stop, 1);
                        pthread_cond_broadcast(&p->cond);
                        break;
                }
                ts = watch_deadline();
                pthread_cond_timedwait(&p->cond, &p->lock, &ts);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* -- blobs -------------------------------------------------------------------------------- */
struct blob_sink {
        struct pull *p;
        struct image_blob_writer *w;
        struct ck_error *err;
};

static int blob_sink_write(void *userdata, const uint8_t *data, size_t len)
{
        struct blob_sink *bs = userdata;
        int r = image_blob_write(bs->w, data, len, &bs->err);

        if (r < 0)
                return r;
        add_bytes(bs->p, len);
        ck_metric_add(bs->p->pulled_bytes, len);
        return 0;
}

/* Downloads one blob into the store unless it is already there; *ret_committed says whether
 * this call wrote it. */
static int fetch_blob(struct pull *p, const struct image_descriptor *d, bool *ret_committed,
                      struct ck_error **reterr)
{
        struct blob_sink bs = {.p = p};
        int r;

        r = image_blob_begin(p->s, d->digest, d->size, &bs.w, reterr);
        if (r < 0)
                return r;
        if (r == 1) {
                add_bytes(p, d->size);
                *ret_committed = false;
                return 0;
        }
        r = registry_get_blob(p->client, p->repo, d->digest, d->size, blob_sink_write, &bs, reterr);
        if (r < 0) {
                image_blob_abort(bs.w);
                /* When the sink failed the store said why; the registry left reterr alone. */
                if (bs.err && reterr && !*reterr)
                        *reterr = TAKE_PTR(bs.err);
                ck_error_free(bs.err);
                return r;
        }
        r = image_blob_commit(bs.w, reterr);
        if (r < 0)
                return r;
        *ret_committed = true;
        return 0;
}

/* -- streaming a layer: network -> blob writer and -> unpacker ----------------------------- */

/* A layer being downloaded and, on a thread of its own, unpacked from the same bytes, which
 * reach the unpacker through a bounded queue (byteq.h): the download waits when the unpacker
 * lags. */
struct layer_stream {
        struct pull *p;
        size_t index;
        struct image_byteq *q;
        int result;           /* the unpacker's, read after it was joined */
        struct ck_error *err; /* and why */
};

static void *stream_unpack_main(void *arg)
{
        struct layer_stream *ls = arg;
        struct pull *p = ls->p;
        int r = -ECANCELED;

        if (wait_config(p))
                r = image_store_unpack_layer_from(p->s, &p->m->layers[ls->index],
                                                  p->cfg->diff_ids[ls->index], image_byteq_read, ls->q,
                                                  &ls->err);
        ls->result = r;
        image_byteq_close(ls->q);
        return NULL;
}

struct stream_sink {
        struct blob_sink bs;
        struct layer_stream *ls;
};

static int stream_sink_write(void *userdata, const uint8_t *data, size_t len)
{
        struct stream_sink *ss = userdata;
        int r = blob_sink_write(&ss->bs, data, len);

        if (r < 0)
                return r;
        return image_byteq_push(ss->ls->q, data, len);
}

/* Downloads layer i into a blob writer and, at the same time, unpacks it from the same bytes
 * on a thread of its own. The unpacker sees the end of its input only after the blob was
 * committed (size and digest verified), so the layer is never committed from unverified
 * bytes. An unpacker that fails stops reading (the rest of the blob is still downloaded and
 * verified, so that a corrupt blob is reported as such). Returns 1 when the layer was streamed
 * (it is unpacked), 0 when the blob was already there (to be unpacked from the store), or
 * -errno. *ret_committed says whether this call wrote the blob. */
static int fetch_layer(struct pull *p, size_t i, bool *ret_committed, struct ck_error **reterr)
{
        const struct image_descriptor *d = &p->m->layers[i];
        struct layer_stream ls = {.p = p, .index = i};
        struct stream_sink ss = {.bs = {.p = p}, .ls = &ls};
        pthread_t t;
        int r;

        r = image_blob_begin(p->s, d->digest, d->size, &ss.bs.w, reterr);
        if (r < 0)
                return r;
        if (r == 1) {
                add_bytes(p, d->size);
                *ret_committed = false;
                return 0;
        }
        if (image_byteq_new(&p->stop, &ls.q) < 0) {
                image_blob_abort(ss.bs.w);
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        if (pthread_create(&t, NULL, stream_unpack_main, &ls) != 0) {
                image_blob_abort(ss.bs.w);
                r = ck_error_set(reterr, -EAGAIN, "cannot start an unpack thread");
                goto out;
        }
        r = registry_get_blob(p->client, p->repo, d->digest, d->size, stream_sink_write, &ss, reterr);
        if (r < 0) {
                image_blob_abort(ss.bs.w);
                if (ss.bs.err && reterr && !*reterr)
                        *reterr = TAKE_PTR(ss.bs.err);
                ck_error_free(ss.bs.err);
        } else {
                r = image_blob_commit(ss.bs.w, reterr);
        }
        if (r >= 0) {
                *ret_committed = true;
                pthread_mutex_lock(&p->lock);
                p->layers[i].committed = true;
                pthread_mutex_unlock(&p->lock);
        }
        image_byteq_end(ls.q, r < 0 ? r : 1);
        pthread_join(t, NULL);
        /* A failed download (digest mismatch above all) explains a failed unpack, not the
         * reverse: the unpacker's error counts only for a verified blob. */
        if (r >= 0 && ls.result < 0) {
                r = ls.result;
                if (reterr && !*reterr)
                        *reterr = TAKE_PTR(ls.err);
        } else if (r >= 0) {
                r = 1;
        }
out:
        ck_error_free(ls.err);
        image_byteq_free(ls.q);
        return r;
}

static void *download_main(void *arg)
{
        struct pull *p = arg;

        for (;;) {
                struct ck_error *err = NULL;
                bool committed = false;
                size_t i;
                int r;

                pthread_mutex_lock(&p->lock);
                if (atomic_load(&p->stop) || p->next >= p->m->n_layers) {
                        pthread_mutex_unlock(&p->lock);
                        return NULL;
                }
                i = p->order[p->next++];
                p->layers[i].status = LAYER_FETCHING;
                pthread_mutex_unlock(&p->lock);

                r = fetch_layer(p, i, &committed, &err);
                if (r < 0) {
                        /* A stop raised by someone else shows up here as ECANCELED: not ours. */
                        if (r == -ECANCELED && atomic_load(&p->stop) && !user_cancelled(p)) {
                                ck_error_free(err);
                                return NULL;
                        }
                        fail(p, i + 1, r, &err);
                        ck_error_free(err);
                        return NULL;
                }
                pthread_mutex_lock(&p->lock);
                p->layers[i].status = r == 1 ? LAYER_UNPACKED : LAYER_DOWNLOADED;
                pthread_cond_broadcast(&p->cond);
                pthread_mutex_unlock(&p->lock);
                if (r == 1) {
                        atomic_fetch_add(&p->layers_done, 1);
                        progress(p, "unpacking");
                }
        }
}

/* Takes the lowest downloaded layer not yet taken; waits while downloads are in flight.
 * Returns false when there is nothing left to do (all taken, or the pull stopped). */
static bool unpack_take(struct pull *p, size_t *ret)
{
        bool found = false;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                bool waiting = false;

                if (atomic_load(&p->stop) || p->err_code)
                        break;
                for (size_t i = 0; i < p->m->n_layers; i++) {
                        if (p->layers[i].status == LAYER_DOWNLOADED) {
                                p->layers[i].status = LAYER_UNPACKING;
                                *ret = i;
                                found = true;
                                break;
                        }
                        if (p->layers[i].status == LAYER_PENDING || p->layers[i].status == LAYER_FETCHING)
                                waiting = true;
                }
                if (found || !waiting)
                        break;
                pthread_cond_wait(&p->cond, &p->lock);
        }
        pthread_mutex_unlock(&p->lock);
        return found;
}

static void *unpack_main(void *arg)
{
        struct pull *p = arg;
        size_t i;

        if (!wait_config(p))
                return NULL;
        while (unpack_take(p, &i)) {
                struct ck_error *err = NULL;
                int r;

                progress(p, "unpacking");
                r = image_store_unpack_layer(p->s, &p->m->layers[i], p->cfg->diff_ids[i], &err);
                if (r < 0) {
                        fail(p, i + 1, r, &err);
                        ck_error_free(err);
                        return NULL;
                }
                pthread_mutex_lock(&p->lock);
                p->layers[i].status = LAYER_UNPACKED;
                pthread_mutex_unlock(&p->lock);
                atomic_fetch_add(&p->layers_done, 1);
                progress(p, "unpacking");
        }
        return NULL;
}

/* What the store has under p's name, if it is complete (else known is left empty): the first
 * manifest document decides whether it still stands. When the caller opens the store meanwhile
 * (o->store_wait), this is where the pull waits for it. */
static int pull_known(struct pull *p, struct image_record *known, struct ck_error **reterr)
{
        if (!p->s) {
                int r = p->o->store_wait(p->o->store_userdata, &p->s, reterr);

                if (r < 0)
                        return r;
                if (!p->s)
                        return ck_error_set(reterr, -EINVAL, "image_pull: no store");
        }
        if (image_store_get(p->s, p->ref_str, known, NULL) < 0 || !known->name ||
            strcmp(known->name, p->ref_str) != 0 || image_store_record_complete(p->s, known, NULL) <= 0)
                image_record_clear(known);
        return 0;
}

struct first_document {
        struct pull *p;
        struct image_record *known;
};

/* image_resolve()'s stop test, once the document the reference names has arrived: 1 when it
 * is the one of the complete record stored under the name (then nothing below it can differ
 * from what the record was made from, and it is not fetched). */
static int first_document(void *userdata, const char *digest, struct ck_error **reterr)
{
        struct first_document *f = userdata;
        int r = pull_known(f->p, f->known, reterr);

        if (r < 0)
                return r;
        return f->known->manifest_digest && strcmp(digest, f->known->manifest_digest) == 0;
}

/* -- the pull ----------------------------------------------------------------------------- */
static const char *endpoint_for(const struct image_pull_opts *o, const char *domain)
{
        for (size_t i = 0; i < o->n_mirrors; i++)
                if (o->mirrors[i].domain && o->mirrors[i].endpoint &&
                    strcmp(o->mirrors[i].domain, domain) == 0)
                        return o->mirrors[i].endpoint;
        return domain;
}

static bool is_insecure(const struct image_pull_opts *o, const char *endpoint)
{
        if (!o->insecure_registries)
                return false;
        for (const char *const *p = o->insecure_registries; *p; p++)
                if (strcmp(*p, endpoint) == 0)
                        return true;
        return false;
}

static int record_put(struct pull *p, const char *name, const char *manifest_digest,
                      const struct image_config *cfg, struct ck_error **reterr)
{
        const struct image_manifest *m = p->m;
        struct image_record rec = {
                .name = (char *)name,
                .manifest_digest = (char *)manifest_digest,
                .id = m->config.digest,
                .n_layers = m->n_layers,
                .size = m->config.size,
                .created = (int64_t)time(NULL),
        };
        int r;

        rec.layers = calloc(m->n_layers + 1, sizeof(char *));
        if (!rec.layers)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_layers; i++) {
                rec.layers[i] = m->layers[i].digest;
                rec.size += m->layers[i].size;
        }
        rec.diff_ids = cfg->diff_ids;
        r = image_store_put(p->s, &rec, reterr);
        free(rec.layers); /* the strings are borrowed */
        return r;
}

static size_t unpack_threads(size_t n_layers)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        if (n < 1)
                n = 1;
        if (n > UNPACK_PARALLEL_MAX)
                n = UNPACK_PARALLEL_MAX;
        return (size_t)n < n_layers ? (size_t)n : n_layers;
}

/* The config, on the calling thread while the layers download: fetched (digest and size
 * verified by the blob writer), parsed within its limits, checked against the manifest, and
 * only then published in p->cfg, which releases the unpackers. A failure stops the pull. */
static void pull_config(struct pull *p, struct image_config *cfg)
{
        const struct image_manifest *m = p->m;
        _cleanup_free_ uint8_t *buf = NULL;
        struct ck_error *err = NULL;
        size_t len = 0;
        int r;

        r = fetch_blob(p, &m->config, &p->config_committed, &err);
        if (r >= 0)
                r = image_store_read_blob(p->s, m->config.digest, IMAGE_CONFIG_MAX, &buf, &len, &err);
        if (r >= 0)
                r = image_config_parse(buf, len, cfg, &err);
        if (r < 0) {
                /* A stop raised by a failing layer shows up here as ECANCELED: not ours. */
                if (r == -ECANCELED && atomic_load(&p->stop) && !user_cancelled(p)) {
                        ck_error_free(err);
                        return;
                }
                r = ck_error_prefix(&err, r, "config %s", m->config.digest);
        } else if ((cfg->os && strcmp(cfg->os, "linux") != 0) ||
                   (cfg->architecture && strcmp(cfg->architecture, "amd64") != 0)) {
                r = ck_error_set(&err, -EPROTONOSUPPORT, "image is for %s/%s, not linux/amd64",
                                 cfg->os ? cfg->os : "?", cfg->architecture ? cfg->architecture : "?");
        } else if (cfg->n_diff_ids != m->n_layers) {
                r = ck_error_set(&err, -EBADMSG,
                                 "the config lists %zu layer diff_ids, the manifest %zu layers",
                                 cfg->n_diff_ids, m->n_layers);
        }
        if (r < 0) {
                fail(p, 0, r, &err);
                ck_error_free(err);
                return;
        }
        pthread_mutex_lock(&p->lock);
        p->cfg = cfg;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

/* Downloads (PULL_PARALLEL threads) and unpacks (one thread per CPU, each layer as soon as its
 * blob is in) every layer, and fetches the config meanwhile on the calling thread: the first
 * blob requests need not wait for it, the unpackers do (wait_config()). Failures are recorded
 * in p (fail()); the return value only reports -ENOMEM before anything started. */
static int pull_layers(struct pull *p, struct image_config *cfg)
{
        const struct image_manifest *m = p->m;
        pthread_t threads[PULL_PARALLEL + UNPACK_PARALLEL_MAX];
        size_t n_threads = 0, n_unpack = unpack_threads(m->n_layers);

        p->layers = calloc(m->n_layers + 1, sizeof(*p->layers));
        p->order = calloc(m->n_layers + 1, sizeof(*p->order));
        if (!p->layers || !p->order)
                return -ENOMEM;
        /* Largest first: layers are independent, and the biggest one (its download, inflate
         * and hash on one thread each) is the critical path; starting it last would add the
         * small ones before it to the pull's time. Insertion sort: at most IMAGE_LAYERS_MAX. */
        for (size_t i = 0; i < m->n_layers; i++) {
                size_t k = i;
                for (; k > 0 && m->layers[p->order[k - 1]].size < m->layers[i].size; k--)
                        p->order[k] = p->order[k - 1];
                p->order[k] = i;
        }
        for (size_t i = 0; i < PULL_PARALLEL + n_unpack; i++) {
                bool download = i < PULL_PARALLEL;

                if (download && i >= m->n_layers)
                        continue;
                if (pthread_create(&threads[n_threads], NULL, download ? download_main : unpack_main, p) !=
                    0) {
                        struct ck_error *e = NULL;

                        ck_error_set(&e, -EAGAIN, "cannot start a pull thread");
                        fail(p, 0, -EAGAIN, &e);
                        ck_error_free(e);
                        break;
                }
                n_threads++;
        }
        pull_config(p, cfg);
        /* Download threads see stop (or run out of layers) and end, transfers abort within a
         * second; unpack threads end once every layer is taken or on stop. */
        for (size_t i = 0; i < n_threads; i++)
                pthread_join(threads[i], NULL);
        if (!p->err_code && !atomic_load(&p->stop))
                for (size_t i = 0; i < m->n_layers; i++)
                        if (p->layers[i].status != LAYER_UNPACKED) {
                                struct ck_error *e = NULL;

                                ck_error_set(&e, -EAGAIN, "layer %zu was not unpacked", i + 1);
                                fail(p, 0, -EAGAIN, &e);
                                ck_error_free(e);
                                break;
                        }
        return 0;
}

/* After a failure: forgets the blobs this pull wrote, and the layers unpacked from them, that
 * no image references (the store checks), so that nothing of the pull stays behind. */
static void pull_discard(struct pull *p, bool config_committed)
{
        _cleanup_free_ char **digests = NULL;
        struct ck_error *err = NULL;
        size_t n = 0;

        if (!p->m)
                return;
        digests = calloc(p->m->n_layers + 1, sizeof(char *));
        if (!digests)
                return;
        if (config_committed)
                digests[n++] = p->m->config.digest;
        for (size_t i = 0; p->layers && i < p->m->n_layers; i++)
                if (p->layers[i].committed)
                        digests[n++] = p->m->layers[i].digest;
        if (n > 0 && image_store_discard(p->s, digests, n, &err) < 0)
                log_warn("pull of %s: cannot discard what it fetched: %s", p->ref_str,
                         err ? err->msg : "unknown error");
        ck_error_free(err);
}

/* The tag still names the stored image (image_resolve() stopped at the first document): answer from its
 * record. No blob is written, no layer unpacked, nothing synced and the record is not rewritten. */
static int pull_unchanged(struct pull *p, struct image_record *known, const char *manifest_digest,
                          struct image_record *ret, struct image_config *ret_config,
                          struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r;

        if (user_cancelled(p))
                return ck_error_set(reterr, -ECANCELED, "cancelled");
        log_debug("%s: manifest %s is the stored one; the stored image %s stands", p->ref_str,
                  manifest_digest, known->id);
        if (ret_config) {
                r = image_store_read_blob(p->s, known->id, IMAGE_CONFIG_MAX, &buf, &len, reterr);
                if (r >= 0)
                        r = image_config_parse(buf, len, ret_config, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "config %s", known->id);
        }
        progress(p, "done");
        if (ret) {
                *ret = *known;
                *known = (struct image_record){0};
        }
        return 0;
}

int image_pull(struct image_store *s, const struct image_pull_opts *o, struct image_record *ret,
               struct image_config *ret_config, struct ck_error **reterr)
{
        _cleanup_(image_ref_clear) struct image_ref ref = {0};
        _cleanup_(image_manifest_clear) struct image_manifest m = {0};
        _cleanup_(image_config_clear) struct image_config cfg = {0};
        _cleanup_free_ char *name = NULL, *manifest_digest = NULL;
        _cleanup_(image_record_clear) struct image_record known = {0};
        struct pull p = {.s = s, .o = o};
        struct registry_opts ro = {0};
        pthread_t watcher;
        bool have_watcher = false;
        const char *endpoint;
        int r;

        if (!o || (!s && !o->store_wait) || !o->ref)
                return ck_error_set(reterr, -EINVAL, "image_pull: no store or reference");
        r = image_ref_parse(o->ref, &ref, reterr);
        if (r < 0)
                return r;
        name = image_ref_to_string(&ref);
        if (!name)
                return -ENOMEM;
        p.ref_str = name;
        p.repo = ref.path;
        pthread_mutex_init(&p.lock, NULL);
        pthread_cond_init(&p.cond, NULL);

        endpoint = endpoint_for(o, ref.domain);
        ro = (struct registry_opts){
                .domain = endpoint,
                .username = o->username,
                .password = o->password,
                .ca_file = o->ca_file,
                .plain_http = is_insecure(o, endpoint),
                .cancel = &p.stop,
                .cancel_also = o->cancel, /* no watcher thread needed while resolving */
                .keep = o->keep,
        };
        r = registry_client_new(&ro, &p.client, reterr);
        if (r < 0)
                goto out;
        if (endpoint != ref.domain)
                log_debug("pulling %s through mirror %s", name, endpoint);

        progress(&p, "resolving");
        r = image_resolve(p.client, p.repo, image_ref_reference(&ref), first_document,
                          &(struct first_document){.p = &p, .known = &known}, &m, &manifest_digest, reterr);
        if (r < 0)
                goto out;
        if (r == 1) {
                r = pull_unchanged(&p, &known, manifest_digest, ret, ret_config, reterr);
                goto out;
        }
        if (o->cancel) {
                if (pthread_create(&watcher, NULL, watcher_main, &p) != 0) {
                        r = ck_error_set(reterr, -EAGAIN, "cannot start the cancel watcher thread");
                        goto out;
                }
                have_watcher = true;
        }
        p.m = &m;
        p.total_bytes = m.config.size;
        p.pulled_bytes = ck_metric_get(IMAGE_METRIC_PULLED_BYTES, NULL);
        for (size_t i = 0; i < m.n_layers; i++) {
                if (m.layers[i].size > UINT64_MAX - p.total_bytes) {
                        r = ck_error_set(reterr, -EOVERFLOW, "layer sizes add up to more than 2^64 bytes");
                        goto out;
                }
                p.total_bytes += m.layers[i].size;
        }

        progress(&p, "downloading");
        r = pull_layers(&p, &cfg);
        if (r >= 0 && p.err_code) {
                r = p.err_code;
                if (reterr && !*reterr) {
                        *reterr = TAKE_PTR(p.err);
                        if (!*reterr)
                                ck_error_set(reterr, r, "layer %zu failed", p.err_layer);
                }
                if (r == -ECANCELED && user_cancelled(&p)) {
                        ck_error_free(reterr ? TAKE_PTR(*reterr) : NULL);
                        r = ck_error_set(reterr, -ECANCELED, "cancelled");
                } else if (p.err_layer > 0) {
                        r = ck_error_prefix(reterr, r, "layer %zu/%zu %s", p.err_layer, m.n_layers,
                                            m.layers[p.err_layer - 1].digest);
                }
                goto out;
        }
        if (r >= 0 && user_cancelled(&p)) {
                r = ck_error_set(reterr, -ECANCELED, "cancelled");
                goto out;
        }
        if (r < 0)
                goto out;

        r = record_put(&p, name, manifest_digest, &cfg, reterr);
        if (r < 0)
                goto out;
        progress(&p, "done");
        if (ret) {
                r = image_store_get(p.s, name, ret, reterr);
                if (r < 0)
                        goto out;
        }
        if (ret_config) {
                *ret_config = cfg;
                cfg = (struct image_config){0};
        }
        r = 0;
out:
        pthread_mutex_lock(&p.lock);
        atomic_store(&p.finished, 1);
        pthread_cond_broadcast(&p.cond);
        pthread_mutex_unlock(&p.lock);
        if (have_watcher)
                pthread_join(watcher, NULL);
        if (r < 0 && r == -ECANCELED && user_cancelled(&p) && reterr && *reterr &&
            strstr((*reterr)->msg, "cancel") == NULL) {
                ck_error_free(TAKE_PTR(*reterr));
                ck_error_set(reterr, r, "cancelled");
        }
        if (r < 0) {
                pull_discard(&p, p.config_committed);
                r = ck_error_prefix(reterr, r, "pulling %s", name);
        }
        registry_client_free(p.client);
        ck_error_free(p.err);
        free(p.layers);
        free(p.order);
        pthread_cond_destroy(&p.cond);
        pthread_mutex_destroy(&p.lock);
        return r;
}
