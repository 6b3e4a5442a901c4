/* A small CLI over image_pull() for the end-to-end tests (tests/e2e/test_image_registry.py):
 * what `conker image pull` does, plus the knobs the CLI does not have: registry mirrors, and a
 * cancel raised from the progress callback once N bytes arrived (to measure how long the pull
 * takes to stop). Prints one JSON object on stdout:
 *   {"ok":true,"name":…,"id":…,"manifest_digest":…,"layers":N,"progress_calls":N}
 *   {"ok":false,"code":-errno,"error":"…","cancel_latency_ms":N (when it cancelled)} */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "parse.h"
#include "pull.h"
#include "secret.h"
#include "store.h"

#define MIRRORS_MAX  8
#define INSECURE_MAX 8

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct state {
        atomic_int cancel;
        uint64_t cancel_after;
        atomic_uint_fast64_t cancelled_at_ns;
        atomic_uint progress_calls;
        atomic_uint_fast64_t max_done;
        uint64_t cancel_after_ms;
};

/* Raises the cancel flag after st->cancel_after_ms, whatever the transfer is doing. */
static void *cancel_timer(void *arg)
{
        struct state *st = arg;
        struct timespec ts = {.tv_sec = (time_t)(st->cancel_after_ms / 1000),
                              .tv_nsec = (long)(st->cancel_after_ms % 1000) * 1000000L};
        uint64_t zero = 0;

        nanosleep(&ts, NULL);
        if (atomic_compare_exchange_strong(&st->cancelled_at_ns, &zero, now_ns()))
                atomic_store(&st->cancel, 1);
        return NULL;
}

static void on_progress(void *userdata, const struct image_pull_progress *p)
{
        struct state *st = userdata;
        uint64_t zero = 0;

        atomic_fetch_add(&st->progress_calls, 1);
        if (p->done_bytes > atomic_load(&st->max_done))
                atomic_store(&st->max_done, p->done_bytes);
        if (st->cancel_after && p->done_bytes >= st->cancel_after &&
            atomic_compare_exchange_strong(&st->cancelled_at_ns, &zero, now_ns()))
                atomic_store(&st->cancel, 1);
}

static int usage(void)
{
        fprintf(stderr, "usage: pull-driver --data-dir D [--ca-file F] [--user U --password-stdin]\n"
                        "  [--mirror DOMAIN=ENDPOINT]... [--insecure HOST]... [--cancel-after BYTES]\n"
                        "  [--cancel-after-ms MS] REF\n");
        return 2;
}

static int read_password(struct ck_secret **ret)
{
        char buf[1024];
        size_t len;

        if (!fgets(buf, sizeof(buf), stdin))
                return -EIO;
        len = strcspn(buf, "\r\n");
        *ret = ck_secret_new(buf, len);
        memset(buf, 0, sizeof(buf));
        return *ret ? 0 : -ENOMEM;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"data-dir", required_argument, NULL, 'd'},
                {"ca-file", required_argument, NULL, 'c'},
                {"user", required_argument, NULL, 'u'},
                {"password-stdin", no_argument, NULL, 'p'},
                {"mirror", required_argument, NULL, 'm'},
                {"insecure", required_argument, NULL, 'i'},
                {"cancel-after", required_argument, NULL, 'a'},
                {"cancel-after-ms", required_argument, NULL, 't'},
                {},
        };
        struct image_mirror mirrors[MIRRORS_MAX];
        const char *insecure[INSECURE_MAX + 1] = {0};
        size_t n_mirrors = 0, n_insecure = 0;
        const char *data_dir = NULL, *ca_file = NULL, *user = NULL;
        bool password_stdin = false;
        _cleanup_secret_ struct ck_secret *password = NULL;
        struct image_store *s = NULL;
        struct image_limits lim;
        struct ck_error *err = NULL;
        struct image_record rec = {0};
        struct state st = {0};
        json_t *out;
        char *dump;
        uint64_t end;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (opt) {
                case 'd':
                        data_dir = optarg;
                        break;
                case 'c':
                        ca_file = optarg;
                        break;
                case 'u':
                        user = optarg;
                        break;
                case 'p':
                        password_stdin = true;
                        break;
                case 'm': {
                        char *eq = strchr(optarg, '=');

                        if (!eq || n_mirrors == MIRRORS_MAX)
                                return usage();
                        *eq = 0;
                        mirrors[n_mirrors++] = (struct image_mirror){.domain = optarg, .endpoint = eq + 1};
                        break;
                }
                case 'i':
                        if (n_insecure == INSECURE_MAX)
                                return usage();
                        insecure[n_insecure++] = optarg;
                        break;
                case 'a':
                        if (ck_parse_uint(optarg, UINT64_MAX, &st.cancel_after) < 0)
                                return usage();
                        break;
                case 't':
                        if (ck_parse_uint(optarg, 600000, &st.cancel_after_ms) < 0)
                                return usage();
                        break;
                default:
                        return usage();
                }
        }
        if (optind != argc - 1 || !data_dir)
                return usage();
        if (password_stdin && read_password(&password) < 0)
                return 2;

        if (st.cancel_after_ms) {
                pthread_t t;

                if (pthread_create(&t, NULL, cancel_timer, &st) != 0 || pthread_detach(t) != 0)
                        return 1;
        }
        image_limits_default(&lim);
        r = image_store_open(data_dir, &lim, &s, &err);
        if (r >= 0) {
                struct image_pull_opts o = {
                        .ref = argv[optind],
                        .username = user,
                        .password = password,
                        .ca_file = ca_file,
                        .mirrors = mirrors,
                        .n_mirrors = n_mirrors,
                        .insecure_registries = n_insecure ? insecure : NULL,
                        .cancel = &st.cancel,
                        .progress = on_progress,
                        .progress_userdata = &st,
                };
                r = image_pull(s, &o, &rec, NULL, &err);
        }
        end = now_ns();
        if (r >= 0)
                out = json_pack("{s:b,s:s,s:s,s:s,s:I,s:I,s:I}", "ok", 1, "name", rec.name, "id", rec.id,
                                "manifest_digest", rec.manifest_digest, "layers", (json_int_t)rec.n_layers,
                                "progress_calls", (json_int_t)atomic_load(&st.progress_calls), "done_bytes",
                                (json_int_t)atomic_load(&st.max_done));
        else
                out = json_pack("{s:b,s:i,s:s}", "ok", 0, "code", r, "error", ck_error_message(err, r));
        if (r < 0 && atomic_load(&st.cancelled_at_ns))
                json_object_set_new(
                        out, "cancel_latency_ms",
                        json_integer((json_int_t)((end - atomic_load(&st.cancelled_at_ns)) / 1000000)));
        dump = ck_json_dump(out);
        printf("%s\n", dump);
        free(dump);
        json_decref(out);
        image_record_clear(&rec);
        ck_error_free(err);
        image_store_free(s);
        return r < 0 ? 1 : 0;
}
