/* conker: the command-line client and offline tools. Dispatches to one file per command. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "error.h"
#include "log.h"
#include "secret.h"

static const struct conker_command commands[] = {
        {"run", "create a task: pull, attest and start a container", cmd_run},
        {"ps", "list tasks", cmd_ps},
        {"inspect", "show a task (config, events, ContainerInspect)", cmd_inspect},
        {"logs", "print a container's output", cmd_logs},
        {"events", "show a task's events", cmd_events},
        {"cancel", "stop a task that is still being created", cmd_cancel},
        {"rm", "stop a task and remove everything it had", cmd_rm},
        {"image", "pull, list, remove and mount images", cmd_image},
        {"tdx", "TDX attestation tools (quote, info, measure, verify)", cmd_tdx},
        {"tdx-sim", "create a simulated TD (tdx-sim init DIR)", cmd_tdx_sim},
        {"version", "print the version", cmd_version},
};

int cli_fail(const char *cmd, int code, const struct ck_error *err)
{
        fprintf(stderr, "conker %s: %s\n", cmd, ck_error_message(err, code));
        return 1;
}

static void usage(FILE *f)
{
        fprintf(f, "usage: conker COMMAND [ARGS...]\n\ncommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
        fprintf(f, "\nRun 'conker COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
        ck_log_set_ident("conker");
        ck_log_set_level(CK_LOG_WARN);
        /* Request bodies carry the registry password through jansson (run): wipe what it frees. */
        json_set_alloc_funcs(malloc, ck_free_wiped);

        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
                usage(stdout);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(argv[1], commands[i].name) == 0)
                        return commands[i].run(argc - 1, argv + 1);

        fprintf(stderr, "conker: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
}
