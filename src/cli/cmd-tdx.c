/* conker tdx SUBCOMMAND: offline TDX attestation tools.
 *
 * Subcommands are rows of tdx_subcommands[] below; each one is a function taking (argc, argv)
 * with argv[0] = the subcommand name and returning the exit status (0 ok, 1 failure, 2 usage).
 * A subcommand may live in its own file (cmd-tdx-<name>.c, declared in commands.h); add its row
 * here and its file to src/cli/meson.build.
 * `verify` checks a quote against DCAP collateral (file or PCS/PCCS URL) at a given time. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "collateral.h"
#include "commands.h"
#include "error.h"
#include "json.h"
#include "parse.h"
#include "quote.h"
#include "ssl.h"
#include "verify.h"

struct tdx_subcommand {
        const char *name;
        const char *summary;
        int (*run)(int argc, char **argv);
};

static int tdx_verify(int argc, char **argv);

static const struct tdx_subcommand tdx_subcommands[] = {
        {"info", "print the TD's measurements and RTMR3 log state", cmd_tdx_info},
        {"measure", "extend RTMR3 with a runtime event and log it", cmd_tdx_measure},
        {"predict", "compute the expected MRTD and RTMR0-2 from boot artefacts", cmd_tdx_predict},
        {"quote", "get a quote over REPORTDATA from the TEE (tdx or sim)", cmd_tdx_quote},
        {"verify", "verify a quote against DCAP collateral", tdx_verify},
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

/* ---- verify ---- */

static void verify_usage(FILE *f)
{
        fprintf(f, "usage: conker tdx verify QUOTE --collateral FILE|URL [--at UNIXTIME|RFC3339] [--root "
                   "FILE]\n"
                   "                         [--trust-sim-root FILE] [--cache-dir DIR] [--pcs-ca FILE] "
                   "[--json]\n"
                   "\n"
                   "Verifies a TDX (or SGX) DCAP quote, binary or hex, against collateral: a dcap-qvl JSON "
                   "file or a\n"
                   "PCS/PCCS base URL (https://…). Exit status 0 when the quote verifies (whatever its TCB "
                   "status),\n"
                   "1 when it does not.\n"
                   "  --at TIME              verification time (default: now)\n"
                   "  --root FILE            the Intel SGX Root CA from a file (must be Intel's; default: "
                   "pinned copy)\n"
                   "  --trust-sim-root FILE  accept quotes of a simulated TD whose PKI has this root\n"
                   "  --cache-dir DIR        collateral cache for URLs\n"
                   "  --pcs-ca FILE          extra CA certificates for the PCS/PCCS HTTPS connection\n"
                   "  --json                 print the result as JSON\n");
}

static void print_hex(const char *label, const uint8_t *p, size_t n)
{
        char buf[2 * 64 + 1];

        ck_hex_encode(p, n, buf);
        printf("%-14s %s\n", label, buf);
}

static void print_human(const struct attest_result *r)
{
        const struct attest_measurements *m = &r->m;

        printf("status:        %s\n", attest_tcb_status_to_string(r->status));
        printf("advisories:    ");
        if (r->n_advisory_ids == 0)
                printf("none");
        for (size_t i = 0; i < r->n_advisory_ids; i++)
                printf("%s%s", i ? ", " : "", r->advisory_ids[i]);
        printf("\n");
        printf("tee:           %s (quote v%u), FMSPC %s, TCB evaluation %" PRIu32 "\n",
               r->tee_type == ATTEST_TEE_TDX ? "TDX" : "SGX", r->quote_version, r->fmspc,
               r->tcb_eval_number);
        if (r->simulated)
                printf("root:          SIMULATED (verified against a non-Intel root given with "
                       "--trust-sim-root)\n");
        if (r->tee_type == ATTEST_TEE_TDX) {
                print_hex("MRTD:", m->mr_td, 48);
                for (size_t i = 0; i < 4; i++) {
                        char label[16];
                        snprintf(label, sizeof(label), "RTMR%zu:", i);
                        print_hex(label, m->rtmr[i], 48);
                }
                print_hex("MRSEAM:", m->mr_seam, 48);
                print_hex("MRSIGNERSEAM:", m->mr_signer_seam, 48);
                print_hex("MRCONFIGID:", m->mr_config_id, 48);
                print_hex("MROWNER:", m->mr_owner, 48);
                print_hex("MROWNERCONFIG:", m->mr_owner_config, 48);
                print_hex("REPORTDATA:", m->report_data, 64);
                print_hex("TDATTRIBUTES:", m->td_attributes, 8);
                print_hex("XFAM:", m->xfam, 8);
                print_hex("TEE_TCB_SVN:", m->tee_tcb_svn, 16);
                if (m->has_v15) {
                        print_hex("TEE_TCB_SVN2:", m->tee_tcb_svn2, 16);
                        print_hex("MRSERVICETD:", m->mr_service_td, 48);
                }
        } else {
                print_hex("MRENCLAVE:", m->mr_enclave, 32);
                print_hex("MRSIGNER:", m->mr_signer, 32);
                print_hex("ATTRIBUTES:", m->sgx_attributes, 16);
                printf("%-14s %u\n", "ISVPRODID:", m->isv_prod_id);
                printf("%-14s %u\n", "ISVSVN:", m->isv_svn);
                print_hex("REPORTDATA:", m->report_data, 64);
        }
}

static int load_collateral(const char *src, const uint8_t *quote, size_t len, const char *cache_dir,
                           const char *pcs_ca, time_t now, struct attest_collateral **ret,
                           struct ck_error **reterr)
{
        struct attest_quote q;
        char fmspc[13];
        const char *ca_type = NULL;
        int r;

        if (!ck_startswith(src, "https://") && !ck_startswith(src, "http://"))
                return attest_collateral_load_file(src, ret, reterr);
        r = attest_quote_parse(quote, len, &q, reterr);
        if (r < 0)
                return r;
        r = attest_quote_pck_identity(&q, fmspc, &ca_type, reterr);
        if (r < 0)
                return r;
        return attest_collateral_fetch_tee(src, q.tee_type, fmspc, ca_type, cache_dir, pcs_ca, now, ret,
                                           reterr);
}

static int tdx_verify(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"collateral", required_argument, NULL, 'c'},
                {"at", required_argument, NULL, 'a'},
                {"root", required_argument, NULL, 'r'},
                {"trust-sim-root", required_argument, NULL, 's'},
                {"cache-dir", required_argument, NULL, 'd'},
                {"pcs-ca", required_argument, NULL, 'p'},
                {"json", no_argument, NULL, 'j'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *collateral = NULL, *at = NULL, *root_file = NULL, *sim_root_file = NULL,
                   *cache_dir = NULL, *pcs_ca = NULL;
        bool json = false;
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ uint8_t *quote = NULL;
        _cleanup_(attest_collateral_freep) struct attest_collateral *col = NULL;
        _cleanup_(attest_result_freep) struct attest_result *res = NULL;
        _cleanup_(X509_freep) X509 *root = NULL;
        struct attest_verify_opts opts = {.now = time(NULL)};
        size_t len = 0;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        collateral = optarg;
                        break;
                case 'a':
                        at = optarg;
                        break;
                case 'r':
                        root_file = optarg;
                        break;
                case 's':
                        sim_root_file = optarg;
                        break;
                case 'd':
                        cache_dir = optarg;
                        break;
                case 'p':
                        pcs_ca = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        verify_usage(stdout);
                        return 0;
                default:
                        verify_usage(stderr);
                        return 2;
                }
        }
        if (optind != argc - 1 || !collateral) {
                verify_usage(stderr);
                return 2;
        }
        if (root_file && sim_root_file) {
                fprintf(stderr, "conker tdx verify: --root and --trust-sim-root are mutually exclusive\n");
                return 2;
        }
        if (at) {
                r = attest_time_parse(at, &opts.now);
                if (r < 0) {
                        fprintf(stderr,
                                "conker tdx verify: --at: '%s' is neither unix seconds nor RFC 3339 (…Z)\n",
                                at);
                        return 2;
                }
        }
        if (root_file) {
                _cleanup_(X509_freep) X509 *intel = attest_intel_root_ca();

                r = attest_root_load_file(root_file, &root, &err);
                if (r < 0)
                        return cli_fail("tdx verify", r, err);
                /* --root may only name Intel's root; anything else is a simulated PKI and must be
                 * trusted with the explicit flag. */
                if (!intel || X509_cmp(root, intel) != 0) {
                        fprintf(stderr,
                                "conker tdx verify: --root %s is not the Intel SGX Root CA "
                                "(use --trust-sim-root for a simulated TD)\n",
                                root_file);
                        return 1;
                }
        } else if (sim_root_file) {
                r = attest_root_load_file(sim_root_file, &root, &err);
                if (r < 0)
                        return cli_fail("tdx verify", r, err);
        }
        opts.root = root;

        r = attest_quote_read_file(argv[optind], &quote, &len, &err);
        if (r < 0)
                return cli_fail("tdx verify", r, err);
        r = load_collateral(collateral, quote, len, cache_dir, pcs_ca, opts.now, &col, &err);
        if (r < 0)
                return cli_fail("tdx verify", r, err);
        r = attest_verify_quote(quote, len, col, &opts, &res, &err);
        if (r < 0) {
                if (json) {
                        _cleanup_json_ json_t *j = json_pack("{s:s,s:s}", "status", "Invalid", "error",
                                                             ck_error_message(err, r));
                        _cleanup_free_ char *s = j ? ck_json_dump(j) : NULL;
                        if (s)
                                printf("%s\n", s);
                }
                return cli_fail("tdx verify", r, err);
        }
        if (json) {
                _cleanup_json_ json_t *j = attest_result_to_json(res);
                _cleanup_free_ char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

                if (!s)
                        return cli_fail("tdx verify", -ENOMEM, NULL);
                printf("%s\n", s);
        } else
                print_human(res);
        return 0;
}
