/* conker events TASK: the task's events (time, type, message). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "client.h"
#include "commands.h"
#include "json.h"

int cmd_events(int argc, char **argv)
{
        static const struct option opts[] = {
                {"help", no_argument, NULL, 'h'},
                CLI_COMMON_OPTIONS,
                {0},
        };
        _cleanup_json_ json_t *data = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *path = NULL;
        struct cli_client c;
        json_t *ev;
        size_t i;
        int ch, r;

        cli_client_init(&c);
        optind = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (cli_client_option(&c, ch, optarg))
                        continue;
                fprintf(ch == 'h' ? stdout : stderr, "usage: conker events TASK\n\n" CLI_COMMON_HELP);
                return ch == 'h' ? 0 : 2;
        }
        if (optind != argc - 1) {
                fprintf(stderr, "usage: conker events TASK\n");
                return 2;
        }
        path = cli_task_path(argv[optind], "/events");
        r = path ? cli_call(&c, "GET", path, NULL, 0, &data, &e) : -ENOMEM;
        cli_client_clear(&c);
        if (r < 0)
                return cli_fail("events", r, e);
        if (c.json) {
                cli_print_json(data);
                return 0;
        }
        json_array_foreach(data, i, ev)
                printf("%-30s  %-10s  %s\n", json_string_value(json_object_get(ev, "Time")),
                       json_string_value(json_object_get(ev, "Type")),
                       json_string_value(json_object_get(ev, "Message")));
        return 0;
}
