/* A tiny CLI over the runtime library for the end-to-end tests (tests/e2e/test_runtime.py): each
 * invocation opens the runtime (adopting shims like conkerd does on start), runs one command and
 * prints JSON. `hold` keeps a runtime open until killed, to play a conkerd that dies. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "parse.h"
#include "runtime.h"

#define MAX_ITEMS 64

static int usage(void)
{
        fprintf(stderr,
                "usage: runtime-driver [--data D] [--run R] [--bridge B] [--subnet S] [--netns-dir N]\n"
                "  [--netns-prefix P] [--nft-table T] [--shim PATH] [--runtime PATH] [--log-max-bytes N]\n"
                "  [--log-max-files N] [--resolv FILE] [--pids-limit N] [--start-timeout SECONDS] COMMAND "
                "...\n"
                "commands: run ID ROOTFS [--port PUB:TARGET[/udp]] [--env K=V] [--secret DIR]\n"
                "            [--mount SRC:DST[:ro]] [--restart always|no] [--user U] [--workdir W]\n"
                "            [--stop-signal S] [--name N] [--hold] -- ARGS...\n"
                "          state ID | stop ID TIMEOUT | delete ID | list | logpath ID | teardown | hold\n");
        return 2;
}

static int fail(struct ck_error *err, int r)
{
        fprintf(stderr, "error: %s\n", ck_error_message(err, r));
        ck_error_free(err);
        return 1;
}

static int cmd_run(struct runtime *rt, int argc, char **argv)
{
        static const struct option opts[] = {
                {"port", required_argument, NULL, 'p'},
                {"env", required_argument, NULL, 'e'},
                {"secret", required_argument, NULL, 's'},
                {"mount", required_argument, NULL, 'm'},
                {"restart", required_argument, NULL, 'r'},
                {"user", required_argument, NULL, 'u'},
                {"workdir", required_argument, NULL, 'w'},
                {"stop-signal", required_argument, NULL, 'k'},
                {"name", required_argument, NULL, 'n'},
                {"hold", no_argument, NULL, 'H'},
                {0},
        };
        struct runtime_port ports[MAX_ITEMS];
        struct runtime_mount mounts[MAX_ITEMS];
        char *env[MAX_ITEMS + 1] = {0};
        size_t np = 0, nm = 0, ne = 0;
        struct image_config img = {0};
        struct runtime_spec spec = {.restart = RUNTIME_RESTART_NO};
        struct ck_error *err = NULL;
        bool hold = false;
        int c, r;

        if (argc < 3)
                return usage();
        spec.id = argv[1];
        spec.rootfs = argv[2];
        spec.name = argv[1];
        optind = 3;
        while ((c = getopt_long(argc, argv, "+", opts, NULL)) >= 0) {
                switch (c) {
                case 'p': {
                        unsigned pub, tgt;
                        char proto[8] = "tcp";
                        if (np >= MAX_ITEMS || sscanf(optarg, "%u:%u/%7s", &pub, &tgt, proto) < 2 ||
                            pub > 65535 || tgt > 65535)
                                return usage();
                        ports[np++] = (struct runtime_port){.published = (uint16_t)pub,
                                                            .target = (uint16_t)tgt,
                                                            .udp = strcmp(proto, "udp") == 0};
                        break;
                }
                case 'e':
                        if (ne >= MAX_ITEMS)
                                return usage();
                        env[ne++] = optarg;
                        break;
                case 's':
                        spec.secret_dir = optarg;
                        break;
                case 'm': {
                        char *a = optarg, *b = strchr(a, ':'), *ro;
                        if (!b || nm >= MAX_ITEMS)
                                return usage();
                        *b++ = 0;
                        ro = strchr(b, ':');
                        if (ro)
                                *ro++ = 0;
                        mounts[nm++] = (struct runtime_mount){
                                .source = a, .target = b, .read_only = ro && strcmp(ro, "ro") == 0};
                        break;
                }
                case 'r':
                        spec.restart =
                                strcmp(optarg, "always") == 0 ? RUNTIME_RESTART_ALWAYS : RUNTIME_RESTART_NO;
                        break;
                case 'u':
                        img.user = optarg;
                        break;
                case 'w':
                        img.working_dir = optarg;
                        break;
                case 'k':
                        img.stop_signal = optarg;
                        break;
                case 'n':
                        spec.name = optarg;
                        break;
                default:
                        return usage();
                }
        }
        img.cmd = argv + optind;
        spec.image = &img;
        spec.env = env;
        spec.ports = ports;
        spec.n_ports = np;
        spec.mounts = mounts;
        spec.n_mounts = nm;
        r = runtime_run(rt, &spec, &err);
        if (r < 0)
                return fail(err, r);
        printf("{\"ok\":true}\n");
        fflush(stdout);
        /* Plays a conkerd that keeps running until it is killed. */
        while (hold)
                pause();
        return 0;
}

static int print_state(struct runtime *rt, const char *id)
{
        struct runtime_state st;
        struct ck_error *err = NULL;
        json_t *j;
        char *s;
        int r = runtime_state(rt, id, &st, &err);

        if (r < 0)
                return fail(err, r);
        j = json_pack("{s:s,s:i,s:i,s:b,s:i,s:I,s:I,s:s}", "status", runtime_status_to_string(st.status),
                      "pid", (int)st.pid, "exit_code", st.exit_code, "oom_killed", st.oom_killed,
                      "restart_count", (int)st.restart_count, "started_at", (json_int_t)st.started_at_ns,
                      "finished_at", (json_int_t)st.finished_at_ns, "ip", st.ip);
        s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
        return 0;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"data", required_argument, NULL, 'd'},
                {"run", required_argument, NULL, 'R'},
                {"bridge", required_argument, NULL, 'b'},
                {"subnet", required_argument, NULL, 's'},
                {"netns-dir", required_argument, NULL, 'N'},
                {"netns-prefix", required_argument, NULL, 'P'},
                {"nft-table", required_argument, NULL, 't'},
                {"shim", required_argument, NULL, 'S'},
                {"runtime", required_argument, NULL, 'r'},
                {"log-max-bytes", required_argument, NULL, 'm'},
                {"log-max-files", required_argument, NULL, 'f'},
                {"resolv", required_argument, NULL, 'v'},
                {"pids-limit", required_argument, NULL, 'p'},
                {"start-timeout", required_argument, NULL, 'T'},
                {0},
        };
        struct runtime_config cfg = {0};
        struct runtime *rt = NULL;
        struct ck_error *err = NULL;
        const char *cmd;
        uint64_t v;
        int c, r, ret = 0;

        while ((c = getopt_long(argc, argv, "+", opts, NULL)) >= 0) {
                switch (c) {
                case 'd':
                        cfg.data_dir = optarg;
                        break;
                case 'R':
                        cfg.run_dir = optarg;
                        break;
                case 'b':
                        cfg.bridge = optarg;
                        break;
                case 's':
                        cfg.subnet = optarg;
                        break;
                case 'N':
                        cfg.netns_dir = optarg;
                        break;
                case 'P':
                        cfg.netns_prefix = optarg;
                        break;
                case 't':
                        cfg.nft_table = optarg;
                        break;
                case 'S':
                        cfg.shim_path = optarg;
                        break;
                case 'r':
                        cfg.runtime_path = optarg;
                        break;
                case 'v':
                        cfg.resolv_conf = optarg;
                        break;
                case 'm':
                        if (ck_parse_uint(optarg, UINT64_MAX, &v) < 0)
                                return usage();
                        cfg.log_max_bytes = v;
                        break;
                case 'p':
                        if (ck_parse_uint(optarg, 4194304, &v) < 0)
                                return usage();
                        cfg.pids_limit = v;
                        break;
                case 'f':
                        if (ck_parse_uint(optarg, 100, &v) < 0)
                                return usage();
                        cfg.log_max_files = (unsigned)v;
                        break;
                case 'T':
                        if (ck_parse_uint(optarg, 3600, &v) < 0)
                                return usage();
                        cfg.start_timeout_s = (unsigned)v;
                        break;
                default:
                        return usage();
                }
        }
        if (optind >= argc)
                return usage();
        cmd = argv[optind];
        r = runtime_open(&cfg, &rt, &err);
        if (r < 0)
                return fail(err, r);
        argc -= optind;
        argv += optind;
        if (strcmp(cmd, "run") == 0) {
                ret = cmd_run(rt, argc, argv);
        } else if (strcmp(cmd, "state") == 0 && argc == 2) {
                ret = print_state(rt, argv[1]);
        } else if (strcmp(cmd, "stop") == 0 && argc == 3) {
                r = ck_parse_uint(argv[2], 3600, &v);
                r = r < 0 ? r : runtime_stop(rt, argv[1], (unsigned)v, &err);
                ret = r < 0 ? fail(err, r) : print_state(rt, argv[1]);
        } else if (strcmp(cmd, "delete") == 0 && argc == 2) {
                r = runtime_delete(rt, argv[1], &err);
                ret = r < 0 ? fail(err, r) : (printf("{\"ok\":true}\n"), 0);
        } else if (strcmp(cmd, "list") == 0) {
                char **ids = NULL;
                size_t n = 0;
                r = runtime_list(rt, &ids, &n, &err);
                if (r < 0) {
                        ret = fail(err, r);
                } else {
                        for (size_t i = 0; i < n; i++) {
                                printf("%s\n", ids[i]);
                                free(ids[i]);
                        }
                        free(ids);
                }
        } else if (strcmp(cmd, "logpath") == 0 && argc == 2) {
                char *p = runtime_log_path(rt, argv[1]);
                printf("%s\n", p ? p : "");
                free(p);
        } else if (strcmp(cmd, "teardown") == 0) {
                r = runtime_teardown(rt, &err);
                ret = r < 0 ? fail(err, r) : 0;
        } else if (strcmp(cmd, "hold") == 0) {
                printf("{\"ok\":true}\n");
                fflush(stdout);
                for (;;)
                        pause();
        } else {
                ret = usage();
        }
        runtime_free(rt);
        return ret;
}
