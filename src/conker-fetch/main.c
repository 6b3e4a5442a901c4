/* conker-fetch: conkerd's pull helper. conkerd starts it with a SOCK_SEQPACKET socket as fd 3
 * (src/fetch/fetch-proto.h): it reads the request and the password, opens the image store (conkerd holds it
 * open, so no recovery runs here), pulls with image_pull(), reports progress and the result, and waits for
 * the next request: conkerd keeps a helper for a few seconds after a pull, so a burst of pulls pays one
 * exec, one store open (the store's lock is held only during a pull) and, per registry, one
 * connection and one /v2/ request (registry_keep: no credentials are kept). A cancel message, or conkerd
 * closing the socket, cancels the pull; the end of the stream between pulls ends the helper. Keeping the
 * pull in its own process keeps libcurl, libarchive and the decompressors out of conkerd's memory
 * (docs/start-latency.md). */
#include <errno.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch-proto.h"
#include "log.h"
#include "metrics.h"
#include "parse.h"
#include "pull.h"
#include "registry.h"
#include "secret.h"
#include "store.h"

#define SOCK_FD 3

static atomic_int cancel_flag;

/* Kept between the pulls of this helper: the store (its directory fds and SQLite connection,
 * but not its lock: held only during a pull) and the registries' connections and auth schemes
 * (registry.h; no credentials). */
static struct image_store *kept_store;
static char *kept_dir;
static struct registry_keep *kept_registries;

/* The store of data_dir with these limits, held for one pull (store_done() after it). */
static int store_get(const char *data_dir, const struct image_limits *lim, struct image_store **ret,
                     struct ck_error **reterr)
{
        int q;

        if (kept_store && strcmp(kept_dir, data_dir) == 0) {
                q = image_store_hold(kept_store, reterr);
                if (q < 0)
                        return q;
                image_store_set_limits(kept_store, lim);
                *ret = kept_store;
                return 0;
        }
        image_store_free(TAKE_PTR(kept_store));
        free(TAKE_PTR(kept_dir));
        q = image_store_open(data_dir, lim, ret, reterr);
        if (q < 0)
                return q;
        kept_dir = strdup(data_dir);
        if (kept_dir)
                kept_store = *ret;
        return 0;
}

/* After a pull: the kept store is released for the time this helper idles; any other is
 * closed. */
static void store_done(struct image_store *store)
{
        if (store == kept_store && image_store_release(store, NULL) >= 0)
                return;
        if (store == kept_store) {
                kept_store = NULL;
                free(TAKE_PTR(kept_dir));
        }
        image_store_free(store);
}

static void on_progress(void *userdata, const struct image_pull_progress *p)
{
        struct fetch_progress fp = {p->phase, p->done_bytes, p->total_bytes, p->layers_done,
                                    p->layers_total};
        _cleanup_free_ uint8_t *m = NULL;
        size_t len = 0;

        if (fetch_progress_encode(&fp, &m, &len) == 0)
                (void)fetch_msg_send(SOCK_FD, (char)m[0], m + 1, len - 1);
}

/* Reads the socket during a pull: a cancel message, or the end of the stream (conkerd gone),
 * sets the cancel flag. Stopped through stop_fd before the result is sent, so that it never
 * takes the next request. */
struct watcher {
        pthread_t thread;
        int stop_fd;
        uint8_t *buf;
};

static void *watch_cancel(void *arg)
{
        struct watcher *w = arg;

        for (;;) {
                struct pollfd p[2] = {{.fd = SOCK_FD, .events = POLLIN},
                                      {.fd = w->stop_fd, .events = POLLIN}};
                size_t len = 0;
                char type = 0;
                int q;

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        atomic_store(&cancel_flag, 1);
                        return NULL;
                }
                if (p[1].revents)
                        return NULL;
                q = fetch_msg_recv(SOCK_FD, w->buf, &type, &len);
                if (q == -EINTR || q == -EAGAIN)
                        continue;
                if (q <= 0 || type == FETCH_MSG_CANCEL)
                        atomic_store(&cancel_flag, 1);
                if (q <= 0)
                        return NULL;
        }
}

/* Receives one message of an expected type into buf (want2: another accepted type, or 0). */
static int recv_expect(uint8_t *buf, char want, char want2, char *ret_type, size_t *ret_len,
                       struct ck_error **reterr)
{
        char type = 0;
        int q;

        do
                q = fetch_msg_recv(SOCK_FD, buf, &type, ret_len);
        while (q == -EINTR);
        if (q < 0)
                return ck_error_errno(reterr, q, "reading the request");
        if (q == 0 || (type != want && (!want2 || type != want2)))
                return ck_error_set(reterr, -EPROTO, "expected message '%c'", want);
        if (ret_type)
                *ret_type = type;
        return 0;
}

static int send_result(struct fetch_result *res)
{
        _cleanup_free_ uint8_t *out = NULL;
        size_t len = 0;
        int q = fetch_result_encode(res, &out, &len);

        fetch_result_clear(res);
        if (q < 0)
                return q;
        return fetch_msg_send(SOCK_FD, (char)out[0], out + 1, len - 1);
}

/* The EROFS probe (fetch-proto.h): which format new layers of this store are written in. */
static int probe(const uint8_t *buf, size_t len)
{
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ char *data_dir = NULL;
        _cleanup_free_ uint8_t *out = NULL;
        struct image_store *store = NULL;
        struct fetch_result res = {0};
        size_t out_len = 0;
        int q;

        q = fetch_probe_decode(buf, len, &data_dir, &err);
        if (q >= 0)
                q = image_store_open(data_dir, NULL, &store, &err);
        if (q < 0) {
                res.err = q;
                res.message = ck_strndup_utf8(ck_error_message(err, q), FETCH_ERROR_MSG_MAX);
                return res.message ? send_result(&res) : -ENOMEM;
        }
        q = fetch_format_encode(image_layer_format_to_string(image_store_layer_format(store)), &out,
                                &out_len);
        image_store_free(store);
        if (q < 0)
                return q;
        return fetch_msg_send(SOCK_FD, (char)out[0], out + 1, out_len - 1);
}

static int pull(const struct fetch_request *req, const struct ck_secret *password, struct fetch_result *res,
                struct ck_error **reterr)
{
        struct image_store *store = NULL;
        _cleanup_(image_record_clear) struct image_record rec = {0};
        _cleanup_free_ struct image_mirror *mirrors = NULL;
        struct image_limits lim;
        struct ck_metric *pulled;
        uint64_t before;
        int q;

        image_limits_default(&lim);
        lim.max_blob_size = req->max_blob_size;
        lim.max_layer_unpacked = req->max_layer_unpacked;
        lim.max_layer_entries = req->max_layer_entries;
        lim.max_ratio = req->max_ratio;
        q = image_layer_format_from_string(req->layer_format);
        if (q < 0 || q == IMAGE_LAYER_AUTO)
                return ck_error_set(reterr, -EINVAL, "bad layer format in the request");
        lim.layer_format = q;
        mirrors = calloc(req->n_mirrors + 1, sizeof(*mirrors));
        if (!mirrors)
                return -ENOMEM;
        for (size_t i = 0; i < req->n_mirrors; i++)
                mirrors[i] = (struct image_mirror){req->mirror_domains[i], req->mirror_endpoints[i]};

        q = image_metrics_declare();
        if (q < 0)
                return q;
        pulled = ck_metric_get(IMAGE_METRIC_PULLED_BYTES, NULL);
        before = ck_metric_count(pulled); /* the counter lives as long as this helper */
        q = store_get(req->data_dir, &lim, &store, reterr);
        if (q < 0)
                return ck_error_prefix(reterr, q, "image store");
        q = image_pull(store,
                       &(struct image_pull_opts){
                               .ref = req->ref,
                               .username = req->username,
                               .password = password,
                               .ca_file = req->ca_file,
                               .mirrors = mirrors,
                               .n_mirrors = req->n_mirrors,
                               .insecure_registries = (const char *const *)req->insecure,
                               .cancel = &cancel_flag,
                               .progress = on_progress,
                               .keep = kept_registries,
                       },
                       &rec, NULL, reterr);
        store_done(store);
        res->pulled_bytes = ck_metric_count(pulled) - before;
        if (q < 0)
                return q;
        res->id = strdup(rec.id);
        res->name = strdup(rec.name);
        return res->id && res->name ? 0 : -ENOMEM;
}

/* Reads the next request and its password. 0 at the end of the stream; a cancel left over from
 * the previous pull (sent before conkerd saw its result) is skipped. */
static int next_request(uint8_t *buf, char *ret_type, size_t *ret_len, struct ck_error **reterr)
{
        int q;

        for (;;) {
                do
                        q = fetch_msg_recv(SOCK_FD, buf, ret_type, ret_len);
                while (q == -EINTR);
                if (q < 0)
                        return ck_error_errno(reterr, q, "reading the request");
                if (q == 0)
                        return 0;
                if (*ret_type == FETCH_MSG_CANCEL)
                        continue;
                if (*ret_type != FETCH_MSG_REQUEST && *ret_type != FETCH_MSG_PROBE)
                        return ck_error_set(reterr, -EPROTO, "expected a request");
                return 1;
        }
}

/* One pull: its request (decoded from buf), the password, the pull under a watcher, the result. */
static int serve(uint8_t *buf, size_t len, struct watcher *w, struct ck_error **reterr)
{
        _cleanup_(fetch_request_clear) struct fetch_request req = {0};
        _cleanup_(ck_secret_freep) struct ck_secret *password = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        struct fetch_result res = {0};
        eventfd_t one = 0;
        int q;

        q = fetch_request_decode(buf, len, &req, reterr);
        if (q >= 0)
                q = recv_expect(buf, FETCH_MSG_PASSWORD, 0, NULL, &len, reterr);
        if (q >= 0 && len > FETCH_PASSWORD_MAX)
                q = ck_error_set(reterr, -EINVAL, "password longer than %u bytes", FETCH_PASSWORD_MAX);
        if (q >= 0 && len > 0 && !(password = ck_secret_new(buf, len)))
                q = -ENOMEM;
        /* held the password (fetch_msg_recv() moved it down one byte: its last byte is twice) */
        OPENSSL_cleanse(buf, len < FETCH_MSG_MAX ? len + 1 : FETCH_MSG_MAX);
        if (q < 0)
                return q;
        if (req.log_level && ck_log_level_from_string(req.log_level) >= 0)
                ck_log_set_level((enum ck_log_level)ck_log_level_from_string(req.log_level));

        atomic_store(&cancel_flag, 0);
        if (pthread_create(&w->thread, NULL, watch_cancel, w) != 0)
                return -ENOMEM;
        q = pull(&req, password, &res, &err);
        if (eventfd_write(w->stop_fd, 1) < 0)
                pthread_cancel(w->thread); /* never leave it reading the next request */
        pthread_join(w->thread, NULL);
        (void)eventfd_read(w->stop_fd, &one);
        if (q < 0) {
                res.err = q;
                res.message = ck_strndup_utf8(ck_error_message(err, q), FETCH_ERROR_MSG_MAX);
                if (!res.message)
                        return -ENOMEM;
                /* The message may quote a registry: no control characters cross. */
                for (char *c = res.message; *c; c++)
                        if ((unsigned char)*c < 0x20 || *c == 0x7f)
                                *c = ' ';
        }
        return send_result(&res);
}

int main(int argc, char **argv)
{
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ uint8_t *buf = NULL, *wbuf = NULL;
        struct watcher w = {.stop_fd = -1};
        struct stat st;
        size_t len = 0;
        char type = 0;
        int q;

        ck_log_set_ident("conker-fetch");
        if (argc > 1 || fstat(SOCK_FD, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                fprintf(stderr, "conker-fetch: conkerd's image pull helper; conkerd starts it with its "
                                "socket as fd 3 (it takes no arguments)\n");
                return 2;
        }
        buf = malloc(FETCH_MSG_MAX);
        wbuf = malloc(FETCH_MSG_MAX);
        w.buf = wbuf;
        w.stop_fd = eventfd(0, EFD_CLOEXEC);
        if (!buf || !wbuf || w.stop_fd < 0 || registry_keep_new(&kept_registries) < 0)
                return 1;
        /* conkerd may keep this helper for the next pull: serve requests until it closes. */
        for (;;) {
                q = next_request(buf, &type, &len, &err);
                if (q == 0) {
                        /* conkerd is done with this helper: close the store cleanly (SQLite). */
                        image_store_free(kept_store);
                        registry_keep_free(kept_registries);
                        free(kept_dir);
                        return 0;
                }
                if (q > 0 && type == FETCH_MSG_PROBE)
                        q = probe(buf, len);
                else if (q > 0)
                        q = serve(buf, len, &w, &err);
                if (q < 0) {
                        log_error("%s", ck_error_message(err, q));
                        return 1;
                }
        }
}
