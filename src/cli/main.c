/* conker: the command-line client and offline tools. Dispatches to one file per command. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
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
        {"attest", "attest conkerd (with --attest POLICY) and print what it proved", cmd_attest},
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
        fprintf(f, "usage: conker [--attest POLICY [--trust-sim-root FILE] [--collateral FILE|URL]\n"
                   "               [--pcs-ca FILE] [--collateral-cache DIR] [--attest-tcb LIST]] COMMAND "
                   "[ARGS...]\n\n"
                   "global options (before the command):\n"
                   "  --attest POLICY          verify conkerd's attested TLS identity and a fresh quote\n"
                   "                           against POLICY (reference values JSON) before sending\n"
                   "                           anything; needs an https:// --host (tls-cert = auto)\n"
                   "  --trust-sim-root FILE    accept a simulated TD whose PKI has this root\n"
                   "  --collateral FILE|URL    DCAP collateral: dcap-qvl JSON or PCS/PCCS URL\n"
                   "                           [" CLI_ATTEST_PCS_DEFAULT "]\n"
                   "  --pcs-ca FILE            extra CA certificates for the PCS/PCCS connection\n"
                   "  --collateral-cache DIR   collateral cache for a URL\n"
                   "  --attest-tcb LIST        TCB statuses accepted, comma-separated [UpToDate]\n"
                   "\ncommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
        fprintf(f, "\nRun 'conker COMMAND --help' for a command's options.\n");
}

/* Global options come before the command; returns how many argv entries they took, or -1 after
 * printing a usage error. */
static int global_options(int argc, char **argv, struct cli_attest_opts *o)
{
        static const struct {
                const char *name;
                size_t offset;
        } opts[] = {
                {"--attest", offsetof(struct cli_attest_opts, policy)},
                {"--trust-sim-root", offsetof(struct cli_attest_opts, sim_root)},
                {"--collateral", offsetof(struct cli_attest_opts, collateral)},
                {"--pcs-ca", offsetof(struct cli_attest_opts, pcs_ca)},
                {"--collateral-cache", offsetof(struct cli_attest_opts, cache_dir)},
                {"--attest-tcb", offsetof(struct cli_attest_opts, tcb)},
        };
        int i = 1;

        while (i < argc && strncmp(argv[i], "--", 2) == 0) {
                size_t k = ELEMENTSOF(opts);
                for (size_t j = 0; j < ELEMENTSOF(opts); j++)
                        if (strcmp(argv[i], opts[j].name) == 0)
                                k = j;
                if (k == ELEMENTSOF(opts))
                        break; /* --help and the like */
                if (i + 1 >= argc) {
                        fprintf(stderr, "conker: %s needs a value\n", argv[i]);
                        return -1;
                }
                *(const char **)((char *)o + opts[k].offset) = argv[i + 1];
                i += 2;
        }
        if (!o->policy && (o->sim_root || o->collateral || o->pcs_ca || o->cache_dir || o->tcb)) {
                fprintf(stderr, "conker: --trust-sim-root, --collateral, --pcs-ca, --collateral-cache and "
                                "--attest-tcb only go with --attest POLICY\n");
                return -1;
        }
        return i - 1;
}

int main(int argc, char **argv)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct cli_attest_opts ao = {0};
        int n, r;

        ck_log_set_ident("conker");
        ck_log_set_level(CK_LOG_WARN);
        /* Request bodies carry the registry password through jansson (run): wipe what it frees. */
        json_set_alloc_funcs(malloc, ck_free_wiped);

        n = global_options(argc, argv, &ao);
        if (n < 0)
                return 2;
        argc -= n;
        argv += n;
        if (ao.policy) {
                r = cli_attest_configure(&ao, &e);
                if (r < 0) {
                        fprintf(stderr, "conker: %s\n", ck_error_message(e, r));
                        return 1;
                }
        }
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
                usage(stdout);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(argv[1], commands[i].name) == 0) {
                        r = commands[i].run(argc - 1, argv + 1);
                        cli_attest_reset();
                        return r;
                }

        fprintf(stderr, "conker: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
}
