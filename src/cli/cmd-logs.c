/* conker logs [-f] [--tail N] TASK: the container's output; -f keeps following it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "client.h"
#include "commands.h"
#include "parse.h"

static size_t to_stdout(char *p, size_t size, size_t n, void *ud)
{
        size_t w = fwrite(p, size, n, stdout);
        fflush(stdout);
        return w * size;
}

int cmd_logs(int argc, char **argv)
{
        static const struct option opts[] = {
                {"follow", no_argument, NULL, 'f'},
                {"tail", required_argument, NULL, 't'},
                {"help", no_argument, NULL, 'h'},
                CLI_COMMON_OPTIONS,
                {0},
        };
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *path = NULL, *suffix = NULL;
        struct cli_client c;
        bool follow = false;
        uint64_t tail = 0;
        bool has_tail = false;
        int ch, r;

        cli_client_init(&c);
        optind = 0;
        while ((ch = getopt_long(argc, argv, "ft:h", opts, NULL)) != -1) {
                if (cli_client_option(&c, ch, optarg))
                        continue;
                switch (ch) {
                case 'f':
                        follow = true;
                        break;
                case 't':
                        if (ck_parse_uint(optarg, 1000000, &tail) < 0) {
                                fprintf(stderr, "conker logs: --tail wants a number\n");
                                return 2;
                        }
                        has_tail = true;
                        break;
                case 'h':
                        printf("usage: conker logs [-f] [--tail N] TASK\n\n"
                               "  -f, --follow        keep printing new output\n"
                               "      --tail N        start with the last N lines\n" CLI_COMMON_HELP);
                        return 0;
                default:
                        return 2;
                }
        }
        if (optind != argc - 1) {
                fprintf(stderr, "usage: conker logs [-f] [--tail N] TASK\n");
                return 2;
        }
        r = has_tail ? asprintf(&suffix, "/logs?follow=%d&tail=%llu", follow, (unsigned long long)tail)
                     : asprintf(&suffix, "/logs?follow=%d", follow);
        if (r < 0)
                return cli_fail("logs", -ENOMEM, NULL);
        path = cli_task_path(argv[optind], suffix);
        r = path ? cli_stream(&c, path, to_stdout, NULL, &e) : -ENOMEM;
        cli_client_clear(&c);
        if (r < 0)
                return cli_fail("logs", r, e);
        return 0;
}
