/* The `conker` command table. Each subcommand lives in its own file (cmd-<name>.c) and exports
 * one entry point; main.c dispatches on argv[1]. A command returns the process exit status
 * (0 success, 1 failure, 2 usage error) and prints its own errors. */
#pragma once

struct conker_command {
        const char *name;
        const char *summary;
        int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

/* Renders err (or the code) on stderr as "conker <cmd>: <message>" and returns 1. */
struct ck_error;
int cli_fail(const char *cmd, int code, const struct ck_error *err);

/* Entry points, one per file. Keep this list sorted by name. */
int cmd_image(int argc, char **argv);
int cmd_tdx(int argc, char **argv); /* group: subcommands are rows of tdx_subcommands[] in cmd-tdx.c */
int cmd_version(int argc, char **argv);
