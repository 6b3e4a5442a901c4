/* conker cancel TASK: stops a task that is still being created (it ends Cancelled). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "client.h"
#include "commands.h"
#include "json.h"

int cmd_cancel(int argc, char **argv)
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
        int ch, r;

        cli_client_init(&c);
        optind = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (cli_client_option(&c, ch, optarg))
                        continue;
                fprintf(ch == 'h' ? stdout : stderr, "usage: conker cancel TASK\n\n" CLI_COMMON_HELP);
                return ch == 'h' ? 0 : 2;
        }
        if (optind != argc - 1) {
                fprintf(stderr, "usage: conker cancel TASK\n");
                return 2;
        }
        path = cli_task_path(argv[optind], "/cancel");
        r = path ? cli_call(&c, "POST", path, NULL, 0, &data, &e) : -ENOMEM;
        cli_client_clear(&c);
        if (r < 0)
                return cli_fail("cancel", r, e);
        if (c.json)
                cli_print_json(data);
        else
                printf("%s\n", json_string_value(json_object_get(data, "Id")));
        return 0;
}
