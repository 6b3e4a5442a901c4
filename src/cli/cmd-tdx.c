/* conker tdx SUBCOMMAND: TDX attestation tools. Placeholder dispatcher for the TD-side
 * subcommands until the `tdx` command group (with `verify`) lands; its rows move into that
 * table on merge. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "error.h"

struct tdx_subcommand {
        const char *name;
        const char *summary;
        int (*run)(int argc, char **argv);
};

static const struct tdx_subcommand tdx_subcommands[] = {
        {"info", "print the TD's measurements and RTMR3 log state", cmd_tdx_info},
        {"measure", "extend RTMR3 with a runtime event and log it", cmd_tdx_measure},
        {"quote", "get a quote over REPORTDATA from the TEE", cmd_tdx_quote},
};

static void tdx_usage(FILE *f)
{
        fprintf(f, "usage: conker tdx SUBCOMMAND [ARGS...]\n\nsubcommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(tdx_subcommands); i++)
                fprintf(f, "  %-10s %s\n", tdx_subcommands[i].name, tdx_subcommands[i].summary);
}

int cmd_tdx(int argc, char **argv)
{
        if (argc < 2) {
                tdx_usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                tdx_usage(stdout);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(tdx_subcommands); i++)
                if (strcmp(argv[1], tdx_subcommands[i].name) == 0)
                        return tdx_subcommands[i].run(argc - 1, argv + 1);
        fprintf(stderr, "conker tdx: unknown subcommand '%s'\n", argv[1]);
        tdx_usage(stderr);
        return 2;
}
