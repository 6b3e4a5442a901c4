/* conker tdx predict: the expected MRTD and RTMR0-2 of a TD booted by QEMU with TDVF (OVMF),
 * computed offline from the boot artefacts, as a reference-values document for the broker
 * (src/attest/refvalues.h) plus the seed broker's -w value (RTMR1). What each register covers and
 * which VMM settings it depends on is docs/measurements.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "error.h"
#include "fs.h"
#include "parse.h"
#include "predict.h"
#include "ssl.h"

#define ACPI_BLOB_MAX (1u << 20)
#define VARS_MAX      (16u << 20)
#define BOOT_FILE_MAX (1u << 30) /* kernels are tens of MiB, initrds and UKIs up to hundreds */
#define CMDLINE_MAX   65536u

enum {
        OPT_FIRMWARE = 0x100,
        OPT_ORDER,
        OPT_LAYOUT,
        OPT_MEMORY,
        OPT_ACPI_TABLES,
        OPT_ACPI_RSDP,
        OPT_ACPI_LOADER,
        OPT_ACPI_LOADER_DIGEST,
        OPT_VARS,
        OPT_CFV_DIGEST,
        OPT_UKI,
        OPT_KERNEL,
        OPT_INITRD,
        OPT_CMDLINE,
        OPT_EVENTS,
        OPT_PRINT_W,
        OPT_NO_STUB_SECTIONS,
        OPT_CHECK_CCEL,
};

struct predict_files {
        uint8_t *firmware, *acpi_tables, *acpi_rsdp, *acpi_loader, *vars, *uki, *kernel, *initrd;
};

static void predict_files_free(struct predict_files *f)
{
        free(f->firmware);
        free(f->acpi_tables);
        free(f->acpi_rsdp);
        free(f->acpi_loader);
        free(f->vars);
        free(f->uki);
        free(f->kernel);
        free(f->initrd);
}

static void usage(FILE *f)
{
        fprintf(f,
                "usage: conker tdx predict [--firmware OVMF.fd [--mrtd-order single-pass|two-pass]]\n"
                "                          [--memory SIZE] [--tdvf-layout a|b]\n"
                "                          [--acpi-tables F --acpi-rsdp F [--acpi-loader F | "
                "--acpi-loader-digest HEX]]\n"
                "                          [--vars OVMF_VARS.fd | --cfv-digest HEX]\n"
                "                          [--uki FILE [--no-stub-sections] | --kernel FILE [--initrd FILE] "
                "[--cmdline STRING]]\n"
                "                          [-o FILE] [--events FILE] [--print-w] [--check-ccel FILE]\n"
                "\n"
                "Predicts the MRTD and RTMR0-2 of a TD that QEMU boots with TDVF (OVMF before "
                "edk2-stable202505)\n"
                "and prints them as a reference-values document for conker-broker (docs/measurements.md).\n"
                "A register is predicted when its inputs are given:\n"
                "  MRTD   --firmware (TDVF metadata), in QEMU's page order: single-pass (QEMU >= 9, "
                "default)\n"
                "         or two-pass (QEMU 8.x)\n"
                "  RTMR0  --memory, the TDVF layout (--firmware, or --tdvf-layout for a known OVMF build),\n"
                "         the variable store (--vars, --cfv-digest, or the CFV inside --firmware) and "
                "QEMU's\n"
                "         ACPI fw_cfg blobs etc/acpi/tables and etc/acpi/rsdp; etc/table-loader is rebuilt\n"
                "         from them unless given\n"
                "  RTMR1  --kernel (as QEMU -kernel patches its setup header; --memory places the initrd)\n"
                "         or --uki (a unified kernel image given to -kernel)\n"
                "  RTMR2  the command line and initrd (--cmdline/--initrd, or the UKI's .cmdline/.initrd); "
                "for a\n"
                "         UKI first systemd-stub's measurement of each section (--no-stub-sections: a stub\n"
                "         that measures none)\n"
                "  --memory SIZE       guest RAM as for QEMU -m: a number of MiB, or with a K, M, G or T "
                "suffix\n"
                "  -o, --output FILE   write the reference values there instead of stdout\n"
                "  --events FILE       write the predicted event log (register, type, what, digest) as "
                "JSON\n"
                "  --print-w           print only the seed broker's -w value (the RTMR1 hex)\n"
                "  --check-ccel FILE   replay a TD's CCEL event log (/sys/firmware/acpi/tables/data/CCEL),\n"
                "                      re-derive each event digest whose input is known (the TD HOB from\n"
                "                      --memory and the TDVF layout), print the result as JSON, and fail\n"
                "                      when a predicted register differs from the replay\n");
}

/* QEMU -m syntax: plain numbers are MiB; K/M/G/T suffixes (binary), optional "iB"/"B". */
static int parse_memory(const char *s, uint64_t *ret)
{
        size_t n = strspn(s, "0123456789");
        uint64_t v = 0, mul = 1ull << 20;
        const char *suffix = s + n;

        if (n == 0 || ck_parse_u64(s, n, UINT64_MAX >> 1, &v) < 0)
                return -EINVAL;
        if (*suffix) {
                switch (*suffix) {
                case 'k':
                case 'K':
                        mul = 1ull << 10;
                        break;
                case 'm':
                case 'M':
                        mul = 1ull << 20;
                        break;
                case 'g':
                case 'G':
                        mul = 1ull << 30;
                        break;
                case 't':
                case 'T':
                        mul = 1ull << 40;
                        break;
                default:
                        return -EINVAL;
                }
                suffix++;
                if (strcmp(suffix, "") != 0 && strcmp(suffix, "B") != 0 && strcmp(suffix, "iB") != 0)
                        return -EINVAL;
        }
        if (v > (1ull << 46) / mul)
                return -ERANGE;
        *ret = v * mul;
        return 0;
}

static int read_input(const char *what, const char *path, size_t max, uint8_t **ret, size_t *ret_len,
                      struct ck_error **reterr)
{
        int r;

        free(*ret);
        *ret = NULL;
        r = ck_read_file(path, max, ret, ret_len, reterr);
        return r < 0 ? ck_error_prefix(reterr, r, "%s %s", what, path) : 0;
}

static int write_output(const char *path, const char *text, struct ck_error **reterr)
{
        _cleanup_close_ int fd = -1;
        size_t len = strlen(text);
        int r;

        if (!path || strcmp(path, "-") == 0) {
                fputs(text, stdout);
                fputc('\n', stdout);
                return fflush(stdout) == 0 ? 0 : ck_error_errno(reterr, -errno, "stdout");
        }
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "%s", path);
        r = ck_write_all(fd, text, len);
        if (r >= 0)
                r = ck_write_all(fd, "\n", 1);
        return r < 0 ? ck_error_errno(reterr, r, "%s", path) : 0;
}

static int parse_hex48(const char *opt, const char *s, uint8_t out[PREDICT_DIGEST_LEN],
                       struct ck_error **reterr)
{
        if (ck_hex_decode(s, strlen(s), out, PREDICT_DIGEST_LEN) < 0)
                return ck_error_set(reterr, -EINVAL, "%s: expected 96 hex digits", opt);
        return 0;
}

/* --check-ccel: explains a hardware log and compares it with whatever can be predicted. */
static int check_log(const char *path, const struct predict_input *in)
{
        static const char *const keys[4] = {"rtmr0", "rtmr1", "rtmr2", "rtmr3"};
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ uint8_t *log = NULL, *hob = NULL;
        _cleanup_free_ struct predict_result *res = calloc(1, sizeof(*res));
        struct predict_ccel_check chk;
        struct predict_tdvf t;
        size_t len = 0, hob_len = 0;
        bool have_layout = false;
        int r, bad = -1;

        if (!res)
                return cli_fail("tdx predict", -ENOMEM, NULL);
        r = read_input("event log", path, 16u << 20, &log, &len, &err);
        if (r < 0)
                return cli_fail("tdx predict", r, err);
        if (in->firmware)
                have_layout = predict_tdvf_parse(in->firmware, in->firmware_len, &t, NULL) >= 0;
        else if (in->tdvf_layout)
                have_layout = predict_tdvf_layout(in->tdvf_layout, &t) >= 0;
        if (have_layout && in->mem_size) {
                r = predict_tdhob_build(&t, in->mem_size, &hob, &hob_len, &err);
                if (r < 0)
                        return cli_fail("tdx predict", r, err);
        }
        r = predict_ccel_check(log, len, hob, hob_len, &chk, &err);
        if (r < 0)
                return cli_fail("tdx predict", r, err);
        /* Compare with the registers the other options determine, if any. */
        if (predict_run(in, res, NULL) >= 0)
                for (int i = 0; i < 3 && bad < 0; i++)
                        if (res->has_rtmr[i] && memcmp(res->rtmr[i], chk.rtmr[i], PREDICT_DIGEST_LEN) != 0)
                                bad = i;
        printf("{\n  \"events\": %zu,\n  \"rederived\": %zu,\n  \"opaque\": %zu,\n  \"td_hob_checked\": %s",
               chk.events, chk.rederived, chk.opaque, hob ? "true" : "false");
        for (int i = 0; i < 4; i++) {
                char hex[2 * PREDICT_DIGEST_LEN + 1];

                ck_hex_encode(chk.rtmr[i], PREDICT_DIGEST_LEN, hex);
                printf(",\n  \"%s\": \"%s\"", keys[i], hex);
        }
        printf("\n}\n");
        if (bad >= 0) {
                fprintf(stderr, "conker tdx predict: the log's RTMR%d differs from the prediction\n", bad);
                return 1;
        }
        return 0;
}

/* A usage-level failure: the message, exit status 1. */
static int fail(const char *msg)
{
        _cleanup_error_ struct ck_error *e = NULL;
        int r = ck_error_set(&e, -EINVAL, "%s", msg);

        return cli_fail("tdx predict", r, e);
}

int cmd_tdx_predict(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"firmware", required_argument, NULL, OPT_FIRMWARE},
                {"mrtd-order", required_argument, NULL, OPT_ORDER},
                {"tdvf-layout", required_argument, NULL, OPT_LAYOUT},
                {"memory", required_argument, NULL, OPT_MEMORY},
                {"acpi-tables", required_argument, NULL, OPT_ACPI_TABLES},
                {"acpi-rsdp", required_argument, NULL, OPT_ACPI_RSDP},
                {"acpi-loader", required_argument, NULL, OPT_ACPI_LOADER},
                {"acpi-loader-digest", required_argument, NULL, OPT_ACPI_LOADER_DIGEST},
                {"vars", required_argument, NULL, OPT_VARS},
                {"cfv-digest", required_argument, NULL, OPT_CFV_DIGEST},
                {"uki", required_argument, NULL, OPT_UKI},
                {"kernel", required_argument, NULL, OPT_KERNEL},
                {"initrd", required_argument, NULL, OPT_INITRD},
                {"cmdline", required_argument, NULL, OPT_CMDLINE},
                {"output", required_argument, NULL, 'o'},
                {"events", required_argument, NULL, OPT_EVENTS},
                {"print-w", no_argument, NULL, OPT_PRINT_W},
                {"no-stub-sections", no_argument, NULL, OPT_NO_STUB_SECTIONS},
                {"check-ccel", required_argument, NULL, OPT_CHECK_CCEL},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_(predict_files_free) struct predict_files files = {0};
        _cleanup_free_ struct predict_result *res = calloc(1, sizeof(*res));
        _cleanup_free_ char *json = NULL, *events_json = NULL;
        struct predict_input in = {.order = PREDICT_MRTD_SINGLE_PASS};
        const char *output = NULL, *events = NULL, *vars_path = NULL;
        bool print_w = false, has_cfv_digest = false;
        const char *check_ccel = NULL;
        size_t vars_len = 0;
        int c, r = 0;

        if (!res)
                return cli_fail("tdx predict", -ENOMEM, NULL);
        optind = 0;
        while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
                switch (c) {
                case OPT_FIRMWARE:
                        r = read_input("firmware", optarg, PREDICT_FIRMWARE_MAX, &files.firmware,
                                       &in.firmware_len, &err);
                        in.firmware = files.firmware;
                        break;
                case OPT_ORDER:
                        if (strcmp(optarg, "single-pass") == 0)
                                in.order = PREDICT_MRTD_SINGLE_PASS;
                        else if (strcmp(optarg, "two-pass") == 0)
                                in.order = PREDICT_MRTD_TWO_PASS;
                        else
                                r = ck_error_set(&err, -EINVAL, "--mrtd-order: single-pass or two-pass");
                        break;
                case OPT_LAYOUT:
                        in.tdvf_layout = optarg;
                        break;
                case OPT_MEMORY:
                        if (parse_memory(optarg, &in.mem_size) < 0 || in.mem_size == 0)
                                r = ck_error_set(&err, -EINVAL,
                                                 "--memory: '%s' is not a size (e.g. 2048, 2G)", optarg);
                        break;
                case OPT_ACPI_TABLES:
                        r = read_input("ACPI tables", optarg, ACPI_BLOB_MAX, &files.acpi_tables,
                                       &in.acpi_tables_len, &err);
                        in.acpi_tables = files.acpi_tables;
                        break;
                case OPT_ACPI_RSDP:
                        r = read_input("ACPI RSDP", optarg, ACPI_BLOB_MAX, &files.acpi_rsdp,
                                       &in.acpi_rsdp_len, &err);
                        in.acpi_rsdp = files.acpi_rsdp;
                        break;
                case OPT_ACPI_LOADER:
                        r = read_input("ACPI table loader", optarg, ACPI_BLOB_MAX, &files.acpi_loader,
                                       &in.acpi_loader_len, &err);
                        in.acpi_loader = files.acpi_loader;
                        break;
                case OPT_ACPI_LOADER_DIGEST:
                        r = parse_hex48("--acpi-loader-digest", optarg, in.loader_digest, &err);
                        in.has_loader_digest = true;
                        break;
                case OPT_VARS:
                        vars_path = optarg;
                        break;
                case OPT_CFV_DIGEST:
                        r = parse_hex48("--cfv-digest", optarg, in.cfv, &err);
                        has_cfv_digest = true;
                        break;
                case OPT_UKI:
                        r = read_input("UKI", optarg, BOOT_FILE_MAX, &files.uki, &in.uki_len, &err);
                        in.uki = files.uki;
                        break;
                case OPT_KERNEL:
                        r = read_input("kernel", optarg, BOOT_FILE_MAX, &files.kernel, &in.kernel_len, &err);
                        in.kernel = files.kernel;
                        break;
                case OPT_INITRD:
                        r = read_input("initrd", optarg, BOOT_FILE_MAX, &files.initrd, &in.initrd_len, &err);
                        in.initrd = files.initrd;
                        break;
                case OPT_CMDLINE:
                        if (strlen(optarg) >= CMDLINE_MAX)
                                r = ck_error_set(&err, -E2BIG, "--cmdline: longer than %u bytes",
                                                 CMDLINE_MAX);
                        in.cmdline = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case OPT_EVENTS:
                        events = optarg;
                        break;
                case OPT_PRINT_W:
                        print_w = true;
                        break;
                case OPT_NO_STUB_SECTIONS:
                        in.uki_no_stub_sections = true;
                        break;
                case OPT_CHECK_CCEL:
                        check_ccel = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
                if (r < 0)
                        return cli_fail("tdx predict", r, err);
        }
        if (optind != argc) {
                usage(stderr);
                return 2;
        }
        if (vars_path && has_cfv_digest)
                return fail("give --vars or --cfv-digest, not both");
        if (in.acpi_loader && in.has_loader_digest)
                return fail("give --acpi-loader or --acpi-loader-digest, not both");
        if (in.firmware && in.tdvf_layout)
                return fail("--tdvf-layout is for predicting without --firmware");

        /* The CFV digest: given, hashed from the variable store, or the firmware's own CFV. */
        if (vars_path) {
                r = read_input("variable store", vars_path, VARS_MAX, &files.vars, &vars_len, &err);
                if (r >= 0 && ck_sha384(files.vars, vars_len, in.cfv) < 0)
                        r = ck_error_set(&err, -EIO, "SHA-384 failed");
                if (r < 0)
                        return cli_fail("tdx predict", r, err);
                in.has_cfv = true;
        } else if (has_cfv_digest) {
                in.has_cfv = true;
        } else if (in.firmware) {
                struct predict_tdvf t;

                r = predict_tdvf_parse(in.firmware, in.firmware_len, &t, &err);
                if (r >= 0)
                        r = predict_tdvf_cfv_digest(in.firmware, in.firmware_len, &t, in.cfv, NULL);
                if (r == -ENOENT)
                        r = 0; /* a firmware without a CFV: RTMR0 then needs --vars */
                else if (r >= 0)
                        in.has_cfv = true;
                if (r < 0)
                        return cli_fail("tdx predict", r, err);
        }
        if ((in.acpi_tables || in.acpi_rsdp) && !(in.acpi_tables && in.acpi_rsdp))
                return fail("RTMR0 needs both --acpi-tables and --acpi-rsdp");
        if (in.acpi_tables && (!in.mem_size || !in.has_cfv || !(in.firmware || in.tdvf_layout)))
                return fail("RTMR0 also needs --memory, a variable store (--vars, --cfv-digest or "
                            "--firmware) and --firmware or --tdvf-layout");

        if (check_ccel)
                return check_log(check_ccel, &in);
        r = predict_run(&in, res, &err);
        if (r < 0)
                return cli_fail("tdx predict", r, err);
        if (print_w) {
                char hex[2 * PREDICT_DIGEST_LEN + 1];

                if (!res->has_rtmr[1])
                        return fail("--print-w needs RTMR1: give --kernel or --uki");
                ck_hex_encode(res->rtmr[1], PREDICT_DIGEST_LEN, hex);
                printf("%s\n", hex);
                return 0;
        }
        r = predict_refvalues_json(res, "conker tdx predict", &json);
        if (r >= 0)
                r = write_output(output, json, &err);
        if (r >= 0 && events) {
                r = predict_events_json(res, &events_json);
                if (r >= 0)
                        r = write_output(events, events_json, &err);
        }
        if (r < 0)
                return cli_fail("tdx predict", r, err);
        if (res->has_rtmr[1]) {
                char hex[2 * PREDICT_DIGEST_LEN + 1];

                ck_hex_encode(res->rtmr[1], PREDICT_DIGEST_LEN, hex);
                fprintf(stderr, "conker tdx predict: seed broker -w %s\n", hex);
        }
        return 0;
}
