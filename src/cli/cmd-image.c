/* conker image: pull, list, remove, mount and unmount images in a local data directory
 * (default /var/lib/conker), without conkerd. Useful for preparing a host, for tests and for
 * benchmarks; conkerd uses the same image module.
 *
 * The registry password is read from stdin only (--password-stdin), kept in a ck_secret and
 * wiped after use; it never appears in argv, the environment or a message. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "commands.h"
#include "error.h"
#include "json.h"
#include "load.h"
#include "parse.h"
#include "pull.h"
#include "reference.h"
#include "rootfs.h"
#include "secret.h"
#include "store.h"

#define DEFAULT_DATA_DIR "/var/lib/conker"

DEFINE_POINTER_CLEANUP(struct image_store, image_store_free, image_store_free)

struct image_cli {
        const char *data_dir;
        struct image_limits lim;
};

static void image_usage(FILE *f)
{
        fprintf(f, "usage: conker image COMMAND [OPTIONS]\n\n"
                   "  pull REF [--user U --password-stdin] [--ca-file F] [--plain-http]\n"
                   "           [--max-unpacked BYTES] [--max-ratio N] [--max-entries N]\n"
                   "           [--layer-format auto|erofs|dir]\n"
                   "  load OCI_LAYOUT_DIR[:TAG] NAME [--layer-format auto|erofs|dir]\n"
                   "  ls [--json]\n"
                   "  rm REF|ID...\n"
                   "  mount REF|ID TARGET --state DIR\n"
                   "  umount TARGET [--state DIR [--remove-state]]\n\n"
                   "Every command takes --data-dir DIR (default " DEFAULT_DATA_DIR ").\n");
}

static int parse_layer_format(const char *arg, struct image_cli *c)
{
        int f = image_layer_format_from_string(arg);

        if (f < 0) {
                fprintf(stderr, "conker image: --layer-format takes auto, erofs or dir\n");
                return -EINVAL;
        }
        c->lim.layer_format = f;
        return 0;
}

static int store_open(const struct image_cli *c, struct image_store **ret, struct ck_error **reterr)
{
        return image_store_open(c->data_dir, &c->lim, ret, reterr);
}

/* The key under which the store knows arg: arg itself (a stored name, an ID or an ID prefix),
 * else arg normalised as a reference ("busybox" -> "docker.io/library/busybox:latest"). */
static int resolve_key(struct image_store *s, const char *arg, char **ret, struct ck_error **reterr)
{
        struct image_record rec = {0};
        struct image_ref ref = {0};
        char *norm;
        int r;

        r = image_store_get(s, arg, &rec, NULL);
        image_record_clear(&rec);
        if (r == 0 || image_ref_parse(arg, &ref, NULL) < 0) {
                if (r < 0 && r != -ENOENT)
                        return image_store_get(s, arg, &rec, reterr);
                if (r < 0)
                        return ck_error_set(reterr, -ENOENT, "no such image: %s", arg);
                norm = strdup(arg);
        } else {
                norm = image_ref_to_string(&ref);
                image_ref_clear(&ref);
        }
        if (!norm)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        *ret = norm;
        return 0;
}

static int lookup(struct image_store *s, const char *arg, struct image_record *ret, struct ck_error **reterr)
{
        _cleanup_free_ char *key = NULL;
        int r = resolve_key(s, arg, &key, reterr);

        if (r < 0)
                return r;
        return image_store_get(s, key, ret, reterr);
}

/* The store of a pull, opened (on a new data dir: created, 7 synced writes) on a thread of its
 * own while the pull asks the registry for /v2/ and the manifest; image_pull() takes it through
 * store_wait once the first manifest document is in. */
struct store_opening {
        const struct image_cli *c;
        pthread_t thread;
        bool started, joined;
        int r;
        struct image_store *s;
        struct ck_error *err;
};

static void *store_opening_main(void *arg)
{
        struct store_opening *so = arg;

        so->r = store_open(so->c, &so->s, &so->err);
        return NULL;
}

static void store_opening_join(struct store_opening *so)
{
        if (so->started && !so->joined)
                pthread_join(so->thread, NULL);
        so->joined = true;
}

static int store_opening_wait(void *userdata, struct image_store **ret, struct ck_error **reterr)
{
        struct store_opening *so = userdata;

        store_opening_join(so);
        if (!so->started) /* no thread: open it here */
                so->r = store_open(so->c, &so->s, &so->err);
        if (so->r < 0) {
                if (reterr && !*reterr)
                        *reterr = TAKE_PTR(so->err);
                return so->r;
        }
        *ret = so->s;
        return 0;
}

/* userdata points to a bool: whether stderr is a terminal, asked once per pull rather than at
 * each of the hundreds of progress calls (an ioctl each). */
static void progress_print(void *userdata, const struct image_pull_progress *p)
{
        const bool *tty = userdata;

        if (*tty)
                fprintf(stderr, "\r%-11s %u/%u layers, %" PRIu64 "/%" PRIu64 " MB   ", p->phase,
                        p->layers_done, p->layers_total, p->done_bytes >> 20, p->total_bytes >> 20);
}

static int parse_size_arg(const char *opt, const char *v, uint64_t *ret)
{
        if (ck_parse_uint(v, UINT64_MAX, ret) < 0 || *ret == 0) {
                fprintf(stderr, "conker image: %s needs a positive number, not '%s'\n", opt, v);
                return -EINVAL;
        }
        return 0;
}

static int image_pull_cmd(struct image_cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                {"user", required_argument, NULL, 'u'},
                {"password-stdin", no_argument, NULL, 'P'},
                {"ca-file", required_argument, NULL, 'C'},
                {"plain-http", no_argument, NULL, 'H'},
                {"max-unpacked", required_argument, NULL, 'U'},
                {"max-ratio", required_argument, NULL, 'R'},
                {"max-entries", required_argument, NULL, 'E'},
                {"layer-format", required_argument, NULL, 'F'},
                {"data-dir", required_argument, NULL, 'd'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(image_store_freep) struct image_store *s = NULL;
        _cleanup_secret_ struct ck_secret *password = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_(image_record_clear) struct image_record rec = {0};
        struct store_opening so = {0};
        struct image_ref ref = {0};
        const char *user = NULL, *ca_file = NULL;
        bool password_stdin = false, plain = false;
        const char *insecure[2] = {NULL, NULL};
        int opt, r;

        while ((opt = getopt_long(argc, argv, "u:", opts, NULL)) >= 0) {
                switch (opt) {
                case 'u':
                        user = optarg;
                        break;
                case 'P':
                        password_stdin = true;
                        break;
                case 'C':
                        ca_file = optarg;
                        break;
                case 'H':
                        plain = true;
                        break;
                case 'U':
                        if (parse_size_arg("--max-unpacked", optarg, &c->lim.max_layer_unpacked) < 0)
                                return 2;
                        break;
                case 'R':
                        if (parse_size_arg("--max-ratio", optarg, &c->lim.max_ratio) < 0)
                                return 2;
                        break;
                case 'E':
                        if (parse_size_arg("--max-entries", optarg, &c->lim.max_layer_entries) < 0)
                                return 2;
                        break;
                case 'F':
                        if (parse_layer_format(optarg, c) < 0)
                                return 2;
                        break;
                case 'd':
                        c->data_dir = optarg;
                        break;
                case 'h':
                        image_usage(stdout);
                        return 0;
                default:
                        image_usage(stderr);
                        return 2;
                }
        }
        if (optind != argc - 1) {
                image_usage(stderr);
                return 2;
        }
        if (password_stdin != (user != NULL)) {
                fprintf(stderr, "conker image pull: --user and --password-stdin go together\n");
                return 2;
        }
        if (password_stdin) {
                r = cli_password_read_stdin(&password, &err);
                if (r < 0)
                        return cli_fail("image pull", r, err);
        }
        if (plain) {
                r = image_ref_parse(argv[optind], &ref, &err);
                if (r < 0)
                        return cli_fail("image pull", r, err);
                insecure[0] = ref.domain;
        }

        so.c = c;
        so.started = pthread_create(&so.thread, NULL, store_opening_main, &so) == 0;
        {
                bool tty = isatty(STDERR_FILENO);
                struct image_pull_opts o = {
                        .ref = argv[optind],
                        .username = user,
                        .password = password,
                        .ca_file = ca_file,
                        .insecure_registries = plain ? insecure : NULL,
                        .progress = progress_print,
                        .progress_userdata = &tty,
                        .store_wait = store_opening_wait,
                        .store_userdata = &so,
                };
                r = image_pull(NULL, &o, &rec, NULL, &err);
                if (tty)
                        fputc('\n', stderr);
                /* The pull may have failed before it needed the store. */
                store_opening_join(&so);
                s = TAKE_PTR(so.s);
                ck_error_free(so.err);
                /* Leave the store as it was: drop what the failed pull fetched (unless another
                 * process is using the store, whose pulls must not lose their blobs). */
                if (r < 0 && s)
                        (void)image_store_prune(s, NULL);
        }
        image_ref_clear(&ref);
        if (r < 0)
                return cli_fail("image pull", r, err);
        printf("%s\n%s\n", rec.name, rec.id);
        return 0;
}

static int image_load_cmd(struct image_cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                {"data-dir", required_argument, NULL, 'd'},
                {"layer-format", required_argument, NULL, 'F'},
                {},
        };
        _cleanup_(image_store_freep) struct image_store *s = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_(image_record_clear) struct image_record rec = {0};
        _cleanup_free_ char *dir = NULL, *name = NULL;
        struct image_ref ref = {0};
        const char *tag = NULL;
        char *colon;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                if (opt == 'F' && parse_layer_format(optarg, c) < 0)
                        return 2;
                if (opt != 'd' && opt != 'F') {
                        image_usage(stderr);
                        return 2;
                }
                if (opt == 'd')
                        c->data_dir = optarg;
        }
        if (optind != argc - 2) {
                image_usage(stderr);
                return 2;
        }
        dir = strdup(argv[optind]);
        if (!dir)
                return cli_fail("image load", -ENOMEM, NULL);
        colon = strrchr(dir, ':');
        if (colon && !strchr(colon, '/')) {
                *colon = 0;
                tag = colon + 1;
        }
        r = image_ref_parse(argv[optind + 1], &ref, &err);
        if (r < 0)
                return cli_fail("image load", r, err);
        name = image_ref_to_string(&ref);
        image_ref_clear(&ref);
        if (!name)
                return cli_fail("image load", -ENOMEM, NULL);
        r = store_open(c, &s, &err);
        if (r >= 0)
                r = image_load_oci_layout(s, dir, tag, name, &rec, &err);
        if (r < 0)
                return cli_fail("image load", r, err);
        printf("%s\n%s\n", rec.name, rec.id);
        return 0;
}

static int image_ls_cmd(struct image_cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                {"json", no_argument, NULL, 'j'},
                {"data-dir", required_argument, NULL, 'd'},
                {},
        };
        _cleanup_(image_store_freep) struct image_store *s = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        struct image_record *v = NULL;
        bool json = false;
        size_t n = 0;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                if (opt == 'j')
                        json = true;
                else if (opt == 'd')
                        c->data_dir = optarg;
                else {
                        image_usage(stderr);
                        return 2;
                }
        }
        r = store_open(c, &s, &err);
        if (r >= 0)
                r = image_store_list(s, &v, &n, &err);
        if (r < 0)
                return cli_fail("image ls", r, err);

        if (json) {
                _cleanup_json_ json_t *arr = json_array();
                _cleanup_free_ char *out = NULL;
                for (size_t i = 0; arr && i < n; i++) {
                        json_t *layers = json_array(), *o;
                        for (size_t k = 0; layers && k < v[i].n_layers; k++)
                                json_array_append_new(layers, json_string(v[i].layers[k]));
                        o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:o}", "Name", v[i].name, "Id", v[i].id,
                                      "ManifestDigest", v[i].manifest_digest, "Size", (json_int_t)v[i].size,
                                      "Created", (json_int_t)v[i].created, "Layers",
                                      layers ? layers : json_null());
                        json_array_append_new(arr, o);
                }
                out = arr ? json_dumps(arr, JSON_INDENT(2)) : NULL;
                if (out)
                        printf("%s\n", out);
        } else {
                printf("%-50s %-12s %10s  %s\n", "NAME", "ID", "SIZE", "CREATED");
                for (size_t i = 0; i < n; i++) {
                        char when[32] = "-";
                        time_t t = (time_t)v[i].created;
                        struct tm tm;
                        if (gmtime_r(&t, &tm))
                                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
                        printf("%-50s %-12.12s %8.1fMB  %s\n", v[i].name,
                               strchr(v[i].id, ':') ? strchr(v[i].id, ':') + 1 : v[i].id,
                               (double)v[i].size / 1e6, when);
                }
        }
        for (size_t i = 0; i < n; i++)
                image_record_clear(&v[i]);
        free(v);
        return 0;
}

static int image_rm_cmd(struct image_cli *c, int argc, char **argv)
{
        static const struct option opts[] = {{"data-dir", required_argument, NULL, 'd'}, {}};
        _cleanup_(image_store_freep) struct image_store *s = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        int opt, r, status = 0;

        while ((opt = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                if (opt != 'd') {
                        image_usage(stderr);
                        return 2;
                }
                c->data_dir = optarg;
        }
        if (optind >= argc) {
                image_usage(stderr);
                return 2;
        }
        r = store_open(c, &s, &err);
        if (r < 0)
                return cli_fail("image rm", r, err);
        for (int i = optind; i < argc; i++) {
                _cleanup_(image_record_clear) struct image_record rec = {0};
                _cleanup_error_ struct ck_error *e = NULL;
                _cleanup_free_ char *key = NULL;
                r = resolve_key(s, argv[i], &key, &e);
                if (r >= 0)
                        r = image_store_get(s, key, &rec, &e);
                /* By name only that name goes; by ID every name of the image. */
                if (r >= 0)
                        r = image_store_remove(s, key, &e);
                if (r < 0) {
                        status = cli_fail("image rm", r, e);
                        continue;
                }
                printf("Untagged: %s\nDeleted: %s\n", rec.name, rec.id);
        }
        return status;
}

static int image_mount_cmd(struct image_cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                {"state", required_argument, NULL, 's'},
                {"data-dir", required_argument, NULL, 'd'},
                {},
        };
        _cleanup_(image_store_freep) struct image_store *s = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_(image_record_clear) struct image_record rec = {0};
        const char *state = NULL;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                if (opt == 's')
                        state = optarg;
                else if (opt == 'd')
                        c->data_dir = optarg;
                else {
                        image_usage(stderr);
                        return 2;
                }
        }
        if (optind != argc - 2 || !state) {
                image_usage(stderr);
                return 2;
        }
        r = store_open(c, &s, &err);
        if (r >= 0)
                r = lookup(s, argv[optind], &rec, &err);
        if (r >= 0)
                r = image_rootfs_mount(s, rec.id, state, argv[optind + 1], &err);
        if (r < 0)
                return cli_fail("image mount", r, err);
        return 0;
}

static int image_umount_cmd(struct image_cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                {"state", required_argument, NULL, 's'},
                {"remove-state", no_argument, NULL, 'r'},
                {"data-dir", required_argument, NULL, 'd'},
                {},
        };
        _cleanup_(image_store_freep) struct image_store *s = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        const char *state = NULL;
        bool remove_state = false;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                if (opt == 's')
                        state = optarg;
                else if (opt == 'r')
                        remove_state = true;
                else if (opt == 'd')
                        c->data_dir = optarg;
                else {
                        image_usage(stderr);
                        return 2;
                }
        }
        if (optind != argc - 1 || (remove_state && !state)) {
                image_usage(stderr);
                return 2;
        }
        r = store_open(c, &s, &err);
        if (r >= 0)
                r = image_rootfs_umount(s, NULL, state, argv[optind], remove_state, &err);
        if (r < 0)
                return cli_fail("image umount", r, err);
        return 0;
}

int cmd_image(int argc, char **argv)
{
        static const struct {
                const char *name;
                int (*run)(struct image_cli *c, int argc, char **argv);
        } sub[] = {
                {"pull", image_pull_cmd},     {"load", image_load_cmd}, {"ls", image_ls_cmd},
                {"list", image_ls_cmd},       {"rm", image_rm_cmd},     {"mount", image_mount_cmd},
                {"umount", image_umount_cmd},
        };
        struct image_cli c = {.data_dir = DEFAULT_DATA_DIR};

        image_limits_default(&c.lim);
        if (argc < 2) {
                image_usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                image_usage(stdout);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(sub); i++)
                if (strcmp(argv[1], sub[i].name) == 0) {
                        optind = 1;
                        return sub[i].run(&c, argc - 1, argv + 1);
                }
        fprintf(stderr, "conker image: unknown command '%s'\n", argv[1]);
        image_usage(stderr);
        return 2;
}
