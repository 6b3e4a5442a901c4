/* conker run [OPTIONS] IMAGE: builds the container request from docker-like flags, posts it to
 * conkerd and, unless -d, follows the task's events (with pull progress) until it is Running,
 * Failed or Cancelled. Prints the task ID. */
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "commands.h"
#include "json.h"
#include "parse.h"

static void usage(FILE *f)
{
        fprintf(f,
                "usage: conker run [OPTIONS] IMAGE\n\n"
                "Creates a task: pulls IMAGE, attests to the KMS endpoints and starts the container.\n\n"
                "  -p, --publish PUB:TARGET   publish container port TARGET on host port PUB (repeatable)\n"
                "  -e, --env KEY=VALUE        set an environment variable (repeatable)\n"
                "  -v, --volume NAME:/PATH[:ro]  mount encrypted volume NAME at PATH (repeatable)\n"
                "      --kms HOST:PORT        key broker to attest to (repeatable)\n"
                "      --name NAME            task name\n"
                "      --user USER            registry user name\n"
                "      --password-stdin       read the registry password from stdin\n"
                "  -d, --detach               print the task ID at once instead of following "
                "it\n" CLI_COMMON_HELP);
}

static int parse_publish(const char *s, json_t *ports)
{
        const char *colon = strchr(s, ':');
        uint64_t pub, target;

        if (!colon || ck_parse_u64(s, (size_t)(colon - s), 65535, &pub) < 0 ||
            ck_parse_uint(colon + 1, 65535, &target) < 0)
                return -EINVAL;
        return json_array_append_new(ports, json_pack("{s:I,s:I}", "TargetPort", (json_int_t)target,
                                                      "PublishedPort", (json_int_t)pub));
}

static int parse_volume(const char *s, json_t *mounts)
{
        const char *c1 = strchr(s, ':');
        _cleanup_free_ char *name = NULL, *target = NULL;
        bool rw = true;
        const char *c2;

        if (!c1 || c1 == s)
                return -EINVAL;
        name = strndup(s, (size_t)(c1 - s));
        c2 = strchr(c1 + 1, ':');
        if (c2) {
                if (strcmp(c2 + 1, "ro") == 0)
                        rw = false;
                else if (strcmp(c2 + 1, "rw") != 0)
                        return -EINVAL;
                target = strndup(c1 + 1, (size_t)(c2 - c1 - 1));
        } else {
                target = strdup(c1 + 1);
        }
        if (!name || !target)
                return -ENOMEM;
        return json_array_append_new(mounts, json_pack("{s:s,s:s,s:s,s:b}", "Type", "volume", "Target",
                                                       target, "Source", name, "RW", rw));
}

static bool is_final(const char *status)
{
        return strcmp(status, "Running") == 0 || strcmp(status, "Failed") == 0 ||
               strcmp(status, "Cancelled") == 0 || strcmp(status, "Exited") == 0;
}

static void show_progress(json_t *p, bool tty)
{
        json_int_t done = json_integer_value(json_object_get(p, "DoneBytes"));
        json_int_t total = json_integer_value(json_object_get(p, "TotalBytes"));
        const char *phase = json_string_value(json_object_get(p, "Phase"));

        if (!tty)
                return;
        fprintf(stderr, "\r  %-12s %6.1f / %6.1f MB  layers %lld/%lld   ", phase ? phase : "",
                (double)done / 1e6, (double)total / 1e6,
                (long long)json_integer_value(json_object_get(p, "LayersDone")),
                (long long)json_integer_value(json_object_get(p, "LayersTotal")));
}

/* Polls the task, printing each new event, until a final status. Returns 0 when Running. */
static int follow(struct cli_client *c, const char *id, struct ck_error **reterr)
{
        _cleanup_free_ char *path = cli_task_path(id, NULL);
        bool tty = isatty(STDERR_FILENO);
        size_t shown = 0;

        if (!path)
                return -ENOMEM;
        for (;;) {
                _cleanup_json_ json_t *t = NULL;
                json_t *events, *ev;
                const char *status;
                size_t i;
                int r;

                r = cli_call(c, "GET", path, NULL, 0, &t, reterr);
                if (r < 0)
                        return r;
                events = json_object_get(t, "Events");
                json_array_foreach(events, i, ev)
                {
                        if (i < shown)
                                continue;
                        if (tty)
                                fprintf(stderr, "\r%-60s\r", "");
                        fprintf(stderr, "%-10s %s\n", json_string_value(json_object_get(ev, "Action")),
                                json_string_value(json_object_get(ev, "Message")));
                }
                shown = json_array_size(events);
                status = json_string_value(json_object_get(t, "Status"));
                if (!status)
                        return ck_error_set(reterr, -EIO, "malformed task document");
                if (json_object_get(t, "Progress"))
                        show_progress(json_object_get(t, "Progress"), tty);
                if (is_final(status)) {
                        if (tty)
                                fprintf(stderr, "\r%-60s\r", "");
                        if (strcmp(status, "Running") == 0)
                                return 0;
                        return ck_error_set(reterr, -EIO, "task %s", status);
                }
                nanosleep(&(struct timespec){0, 300 * 1000 * 1000}, NULL);
        }
}

int cmd_run(int argc, char **argv)
{
        static const struct option opts[] = {
                {"publish", required_argument, NULL, 'p'},
                {"env", required_argument, NULL, 'e'},
                {"volume", required_argument, NULL, 'v'},
                {"kms", required_argument, NULL, 'K'},
                {"name", required_argument, NULL, 'n'},
                {"user", required_argument, NULL, 'u'},
                {"password-stdin", no_argument, NULL, 'P'},
                {"detach", no_argument, NULL, 'd'},
                {"help", no_argument, NULL, 'h'},
                CLI_COMMON_OPTIONS,
                {0},
        };
        _cleanup_json_ json_t *req = json_object(), *ports = json_array(), *env = json_array(),
                              *mounts = json_array(), *kms = json_array(), *info = json_object(),
                              *data = NULL;
        _cleanup_(ck_secret_freep) struct ck_secret *password = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        struct cli_client c;
        const char *name = NULL, *user = NULL, *id;
        bool detach = false, password_stdin = false;
        char *body;
        int ch, r;

        if (!req || !ports || !env || !mounts || !kms || !info)
                return cli_fail("run", -ENOMEM, NULL);
        cli_client_init(&c);
        optind = 0;
        while ((ch = getopt_long(argc, argv, "+p:e:v:dh", opts, NULL)) != -1) {
                if (cli_client_option(&c, ch, optarg))
                        continue;
                switch (ch) {
                case 'p':
                        if (parse_publish(optarg, ports) < 0) {
                                fprintf(stderr, "conker run: -p wants PUBLISHED:TARGET, got \"%s\"\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case 'e':
                        json_array_append_new(env, json_string(optarg));
                        break;
                case 'v':
                        if (parse_volume(optarg, mounts) < 0) {
                                fprintf(stderr, "conker run: -v wants NAME:/PATH[:ro], got \"%s\"\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case 'K':
                        json_array_append_new(kms, json_string(optarg));
                        break;
                case 'n':
                        name = optarg;
                        break;
                case 'u':
                        user = optarg;
                        break;
                case 'P':
                        password_stdin = true;
                        break;
                case 'd':
                        detach = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc - 1) {
                usage(stderr);
                return 2;
        }
        if (password_stdin && !user) {
                fprintf(stderr, "conker run: --password-stdin needs --user\n");
                return 2;
        }
        if (password_stdin) {
                _cleanup_error_ struct ck_error *pe = NULL;
                int q = cli_password_read_stdin(&password, &pe);
                if (q < 0)
                        return cli_fail("run", q, pe);
        }

        if (name)
                json_object_set_new(req, "Name", json_string(name));
        json_object_set_new(info, "ImageName", json_string(argv[optind]));
        if (user) {
                json_t *auth = json_pack("{s:s}", "Username", user);
                if (password)
                        json_object_set_new(auth, "Password",
                                            json_stringn((const char *)password->data, password->len));
                json_object_set_new(info, "RegisterAuthInfo", auth);
        }
        json_object_set(req, "ImageInfo", info);
        json_object_set(req, "Ports", ports);
        json_object_set(req, "Env", env);
        json_object_set(req, "Mounts", mounts);
        json_object_set(req, "KmsEndpoints", kms);
        body = json_dumps(req, JSON_COMPACT);
        r = body ? cli_call(&c, "POST", "/sw/api/v1/container", body, strlen(body), &data, &e) : -ENOMEM;
        /* The password now lives in the JSON tree and the body: wipe both once sent. */
        if (password) {
                json_t *pw = json_object_get(json_object_get(info, "RegisterAuthInfo"), "Password");
                if (pw)
                        OPENSSL_cleanse((char *)json_string_value(pw), json_string_length(pw));
        }
        if (body) {
                OPENSSL_cleanse(body, strlen(body));
                free(body);
        }
        if (r < 0) {
                cli_client_clear(&c);
                return cli_fail("run", r, e);
        }
        id = json_string_value(json_object_get(data, "Id"));
        if (!id) {
                cli_client_clear(&c);
                return cli_fail("run", -EIO, NULL);
        }
        if (!detach) {
                r = follow(&c, id, &e);
                if (r < 0) {
                        fprintf(stderr, "%s\n", id);
                        cli_client_clear(&c);
                        return cli_fail("run", r, e);
                }
        }
        if (c.json)
                cli_print_json(data);
        else
                printf("%s\n", id);
        cli_client_clear(&c);
        return 0;
}
