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
int cmd_attest(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_tdx(int argc, char **argv);     /* group: subcommands are rows of tdx_subcommands[] in cmd-tdx.c */
int cmd_tdx_sim(int argc, char **argv); /* conker tdx-sim (cmd-tdx-tee.c) */
int cmd_version(int argc, char **argv);

/* `conker tdx` subcommands implemented in cmd-tdx-tee.c (rows of the table in cmd-tdx.c). */
int cmd_tdx_info(int argc, char **argv);
int cmd_tdx_measure(int argc, char **argv);
int cmd_tdx_quote(int argc, char **argv);
/* `conker tdx predict` (cmd-tdx-predict.c). */
int cmd_tdx_predict(int argc, char **argv);
