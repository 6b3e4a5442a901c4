/* conker ps [-a]: the tasks, newest first. Without -a, failed and cancelled tasks are hidden. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "commands.h"
#include "json.h"

static void usage(FILE *f)
{
        fprintf(f, "usage: conker ps [-a]\n\nLists tasks.\n\n"
                   "  -a, --all           include failed and cancelled tasks\n" CLI_COMMON_HELP);
}

int cmd_ps(int argc, char **argv)
{
        static const struct option opts[] = {
                {"all", no_argument, NULL, 'a'},
                {"help", no_argument, NULL, 'h'},
                CLI_COMMON_OPTIONS,
                {0},
        };
        _cleanup_json_ json_t *data = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        struct cli_client c;
        bool all = false;
        json_t *t;
        size_t i;
        int ch, r;

        cli_client_init(&c);
        optind = 0;
        while ((ch = getopt_long(argc, argv, "ah", opts, NULL)) != -1) {
                if (cli_client_option(&c, ch, optarg))
                        continue;
                switch (ch) {
                case 'a':
                        all = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                usage(stderr);
                return 2;
        }
        r = cli_call(&c, "GET", "/sw/api/v1/containers", NULL, 0, &data, &e);
        cli_client_clear(&c);
        if (r < 0)
                return cli_fail("ps", r, e);
        if (c.json) {
                cli_print_json(data);
                return 0;
        }
        printf("%-12s  %-24s  %-36s  %-10s  %-20s  %s\n", "TASK ID", "NAME", "IMAGE", "STATUS", "CREATED",
               "PORTS");
        json_array_foreach(data, i, t)
        {
                const char *status = json_string_value(json_object_get(t, "Status"));
                const char *created = json_string_value(json_object_get(t, "Created"));
                json_t *conf = json_object_get(t, "ContainerConf");
                const char *image =
                        json_string_value(json_object_get(json_object_get(conf, "ImageInfo"), "ImageName"));
                char ports[256] = "";
                size_t n = 0, j;
                json_t *p;

                if (!status || (!all && (strcmp(status, "Failed") == 0 || strcmp(status, "Cancelled") == 0)))
                        continue;
                json_array_foreach(json_object_get(conf, "Ports"), j, p)
                {
                        int w = snprintf(ports + n, sizeof(ports) - n, "%s%lld->%lld/tcp", j ? ", " : "",
                                         (long long)json_integer_value(json_object_get(p, "PublishedPort")),
                                         (long long)json_integer_value(json_object_get(p, "TargetPort")));
                        if (w < 0 || (size_t)w >= sizeof(ports) - n)
                                break;
                        n += (size_t)w;
                }
                printf("%-12.12s  %-24.24s  %-36.36s  %-10s  %-20.19s  %s\n",
                       json_string_value(json_object_get(t, "Id")),
                       json_string_value(json_object_get(t, "Name")), image ? image : "", status,
                       created ? created : "", ports);
        }
        return 0;
}
