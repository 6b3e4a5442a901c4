/* conker tdx quote|info|measure and conker tdx-sim init: the TD-side tools.
 *
 * `quote`, `info` and `measure` are subcommands of `conker tdx` (rows of the table in
 * cmd-tdx.c); `tdx-sim` is a command of its own. They talk to a TEE provider chosen with
 * --tee (auto = real TDX or a refusal that names --tee sim; the simulator is never picked
 * silently). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "error.h"
#include "eventlog.h"
#include "fs.h"
#include "json.h"
#include "parse.h"
#include "sim.h"
#include "tee.h"

/* Options shared by every subcommand that opens a TEE. */
struct tee_opts {
        struct attest_tee_config cfg;
};

enum {
        OPT_TEE = 0x100,
        OPT_SIM_DIR,
        OPT_SIM_STATE_DIR,
        OPT_RT_LOG,
        OPT_REPORT_DATA,
        OPT_NAME,
        OPT_PAYLOAD,
        OPT_NOW,
        OPT_DAYS,
        OPT_PROFILE,
        OPT_JSON,
};

/* clang-format off */
#define TEE_LONG_OPTIONS                                                \
        {"tee", required_argument, NULL, OPT_TEE},                      \
        {"sim-dir", required_argument, NULL, OPT_SIM_DIR},              \
        {"sim-state-dir", required_argument, NULL, OPT_SIM_STATE_DIR},  \
        {"rtmr3-log", required_argument, NULL, OPT_RT_LOG},             \
        {"help", no_argument, NULL, 'h'}
/* clang-format on */

#define TEE_USAGE                                                                                           \
        "  --tee auto|tdx|sim      TEE provider (default auto: real TDX, or an error)\n"                    \
        "  --sim-dir DIR           the simulated TD made by `conker tdx-sim init DIR` (with --tee sim)\n"   \
        "  --sim-state-dir DIR     where the simulated TD keeps RTMRs (default under /run/conker)\n"        \
        "  --rtmr3-log FILE        the RTMR3 runtime event log (default: the provider's)\n"

/* Returns 1 when the option was one of the TEE options, 0 otherwise, -1 on a bad value. */
static int tee_opts_take(struct tee_opts *o, int c, const char *arg)
{
        int k;

        switch (c) {
        case OPT_TEE:
                k = attest_tee_kind_from_string(arg);
                if (k < 0) {
                        fprintf(stderr, "conker tdx: --tee must be auto, tdx or sim\n");
                        return -1;
                }
                o->cfg.kind = (enum attest_tee_kind)k;
                return 1;
        case OPT_SIM_DIR:
                o->cfg.sim_dir = arg;
                return 1;
        case OPT_SIM_STATE_DIR:
                o->cfg.sim_state_dir = arg;
                return 1;
        case OPT_RT_LOG:
                o->cfg.rt_log_path = arg;
                return 1;
        default:
                return 0;
        }
}

static int tee_opts_check(const char *cmd, const struct tee_opts *o)
{
        if (o->cfg.sim_dir && o->cfg.kind != ATTEST_TEE_KIND_SIM) {
                fprintf(stderr,
                        "conker %s: --sim-dir needs --tee sim (a simulated TEE is never chosen silently)\n",
                        cmd);
                return -1;
        }
        if (o->cfg.kind == ATTEST_TEE_KIND_SIM && !o->cfg.sim_dir) {
                fprintf(stderr, "conker %s: --tee sim needs --sim-dir DIR (see `conker tdx-sim init`)\n",
                        cmd);
                return -1;
        }
        return 0;
}

static void print_hex_line(const char *label, const uint8_t *p, size_t n)
{
        char buf[2 * 64 + 1];

        ck_hex_encode(p, n, buf);
        printf("%-15s %s\n", label, buf);
}

/* ---- conker tdx quote ---- */

static void quote_usage(FILE *f)
{
        fprintf(f, "usage: conker tdx quote --report-data HEX [-o FILE] [TEE OPTIONS]\n"
                   "\n"
                   "Gets a quote over REPORTDATA (up to 64 bytes in hex, zero-padded) from the TEE and\n"
                   "writes it to FILE (binary) or to stdout as hex.\n"
                   "  --report-data HEX       the 64-byte REPORTDATA (hex, shorter values are zero-padded)\n"
                   "  -o, --output FILE       write the binary quote to FILE\n" TEE_USAGE);
}

int cmd_tdx_quote(int argc, char **argv)
{
        static const struct option longopts[] = {
                TEE_LONG_OPTIONS,
                {"report-data", required_argument, NULL, OPT_REPORT_DATA},
                {"output", required_argument, NULL, 'o'},
                {},
        };
        _cleanup_(attest_tee_freep) struct attest_tee *tee = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ uint8_t *quote = NULL, *rdbuf = NULL;
        struct tee_opts o = {0};
        const char *rd_hex = NULL, *out = NULL;
        uint8_t rd[64] = {0};
        size_t qlen = 0, rdlen = 0;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
                r = tee_opts_take(&o, c, optarg);
                if (r < 0)
                        return 2;
                if (r > 0)
                        continue;
                switch (c) {
                case OPT_REPORT_DATA:
                        rd_hex = optarg;
                        break;
                case 'o':
                        out = optarg;
                        break;
                case 'h':
                        quote_usage(stdout);
                        return 0;
                default:
                        quote_usage(stderr);
                        return 2;
                }
        }
        if (optind != argc || !rd_hex) {
                quote_usage(stderr);
                return 2;
        }
        if (tee_opts_check("tdx quote", &o) < 0)
                return 2;
        if (ck_hex_decode_alloc(rd_hex, strlen(rd_hex), 64, &rdbuf, &rdlen) < 0) {
                fprintf(stderr, "conker tdx quote: --report-data must be at most 128 hex digits\n");
                return 2;
        }
        memcpy(rd, rdbuf, rdlen);

        r = attest_tee_open(&o.cfg, &tee, &err);
        if (r >= 0)
                r = attest_tee_quote(tee, rd, &quote, &qlen, &err);
        if (r < 0)
                return cli_fail("tdx quote", r, err);
        if (out) {
                _cleanup_close_ int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0 || ck_write_all(fd, quote, qlen) < 0) {
                        fprintf(stderr, "conker tdx quote: cannot write %s: %s\n", out, strerror(errno));
                        return 1;
                }
                return 0;
        }
        for (size_t i = 0; i < qlen; i++)
                printf("%02x", quote[i]);
        printf("\n");
        return 0;
}

/* ---- conker tdx info ---- */

static void info_usage(FILE *f)
{
        fprintf(f, "usage: conker tdx info [--json] [TEE OPTIONS]\n"
                   "\n"
                   "Prints the TD's current measurements (MRTD, RTMR0-3, ...) and the RTMR3 runtime log\n"
                   "state: whether the log replays to RTMR3.\n" TEE_USAGE);
}

static void info_print_text(struct attest_tee *tee, const struct attest_measurements *m, size_t events,
                            bool replays)
{
        printf("%-15s %s%s\n", "tee:", attest_tee_kind_to_string(attest_tee_kind(tee)),
               attest_tee_kind(tee) == ATTEST_TEE_KIND_SIM ? " (SIMULATED)" : "");
        print_hex_line("MRTD:", m->mr_td, 48);
        for (unsigned i = 0; i < 4; i++) {
                char label[16];
                snprintf(label, sizeof(label), "RTMR%u:", i);
                print_hex_line(label, m->rtmr[i], 48);
        }
        print_hex_line("MRCONFIGID:", m->mr_config_id, 48);
        print_hex_line("MROWNER:", m->mr_owner, 48);
        print_hex_line("MROWNERCONFIG:", m->mr_owner_config, 48);
        if (attest_tee_kind(tee) == ATTEST_TEE_KIND_SIM) {
                print_hex_line("MRSEAM:", m->mr_seam, 48);
                print_hex_line("TDATTRIBUTES:", m->td_attributes, 8);
                print_hex_line("XFAM:", m->xfam, 8);
                print_hex_line("TEE_TCB_SVN:", m->tee_tcb_svn, 16);
        }
        printf("%-15s %s\n", "rtmr3 log:", attest_tee_rt_log_path(tee));
        printf("%-15s %zu (%s)\n", "rtmr3 events:", events,
               replays ? "replays to RTMR3"
                       : "DOES NOT replay to RTMR3: RTMR3 was extended without logging");
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
        char buf[2 * 64 + 1];

        ck_hex_encode(p, n, buf);
        return json_string(buf);
}

static void info_print_json(struct attest_tee *tee, const struct attest_measurements *m, size_t events,
                            bool replays)
{
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *text = NULL;
        json_t *rt = json_array();

        for (unsigned i = 0; rt && i < 4; i++)
                json_array_append_new(rt, hex_json(m->rtmr[i], 48));
        j = json_pack("{s:s, s:b, s:{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}, s:{s:s, s:I, s:b}}",
                      "tee", attest_tee_kind_to_string(attest_tee_kind(tee)), "simulated",
                      attest_tee_kind(tee) == ATTEST_TEE_KIND_SIM, "measurements", "mr_td",
                      hex_json(m->mr_td, 48), "rtmr", rt, "mr_config_id", hex_json(m->mr_config_id, 48),
                      "mr_owner", hex_json(m->mr_owner, 48), "mr_owner_config",
                      hex_json(m->mr_owner_config, 48), "mr_seam", hex_json(m->mr_seam, 48), "td_attributes",
                      hex_json(m->td_attributes, 8), "xfam", hex_json(m->xfam, 8), "tee_tcb_svn",
                      hex_json(m->tee_tcb_svn, 16), "rtmr3_log", "path", attest_tee_rt_log_path(tee),
                      "events", (json_int_t)events, "replays", replays);
        text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (text)
                printf("%s\n", text);
}

int cmd_tdx_info(int argc, char **argv)
{
        static const struct option longopts[] = {
                TEE_LONG_OPTIONS, {"json", no_argument, NULL, OPT_JSON}, {}};
        _cleanup_(attest_tee_freep) struct attest_tee *tee = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ uint8_t *log = NULL;
        _cleanup_(attest_rt_log_clear) struct attest_rt_log parsed = {0};
        struct attest_measurements m;
        struct tee_opts o = {0};
        uint8_t replayed[48];
        size_t len = 0;
        bool json = false, replays;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                r = tee_opts_take(&o, c, optarg);
                if (r < 0)
                        return 2;
                if (r > 0)
                        continue;
                if (c == OPT_JSON) {
                        json = true;
                        continue;
                }
                if (c == 'h') {
                        info_usage(stdout);
                        return 0;
                }
                info_usage(stderr);
                return 2;
        }
        if (optind != argc || tee_opts_check("tdx info", &o) < 0)
                return 2;
        r = attest_tee_open(&o.cfg, &tee, &err);
        if (r >= 0)
                r = attest_tee_measurements(tee, &m, &err);
        if (r < 0)
                return cli_fail("tdx info", r, err);
        r = attest_tee_rt_log_read(tee, &log, &len, &err);
        if (r >= 0)
                r = attest_rt_log_parse(log, len, &parsed, &err);
        if (r >= 0 && attest_rt_log_replay(&parsed, replayed) < 0)
                r = -EIO;
        if (r < 0)
                return cli_fail("tdx info", r, err);
        replays = memcmp(replayed, m.rtmr[3], 48) == 0;
        if (json)
                info_print_json(tee, &m, parsed.n, replays);
        else
                info_print_text(tee, &m, parsed.n, replays);
        return replays ? 0 : 1;
}

/* ---- conker tdx measure ---- */

static void measure_usage(FILE *f)
{
        fprintf(f, "usage: conker tdx measure --name NAME --payload PAYLOAD [TEE OPTIONS]\n"
                   "\n"
                   "Extends RTMR3 with a runtime event and appends it to the RTMR3 event log\n"
                   "(docs/rtmr3-event-log.md). NAME is [a-z0-9.-]{1,64}, e.g. image-digest.\n" TEE_USAGE);
}

int cmd_tdx_measure(int argc, char **argv)
{
        static const struct option longopts[] = {
                TEE_LONG_OPTIONS,
                {"name", required_argument, NULL, OPT_NAME},
                {"payload", required_argument, NULL, OPT_PAYLOAD},
                {},
        };
        _cleanup_(attest_tee_freep) struct attest_tee *tee = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        struct attest_measurements m;
        struct tee_opts o = {0};
        const char *name = NULL, *payload = NULL;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                r = tee_opts_take(&o, c, optarg);
                if (r < 0)
                        return 2;
                if (r > 0)
                        continue;
                switch (c) {
                case OPT_NAME:
                        name = optarg;
                        break;
                case OPT_PAYLOAD:
                        payload = optarg;
                        break;
                case 'h':
                        measure_usage(stdout);
                        return 0;
                default:
                        measure_usage(stderr);
                        return 2;
                }
        }
        if (optind != argc || !name || !payload) {
                measure_usage(stderr);
                return 2;
        }
        if (tee_opts_check("tdx measure", &o) < 0)
                return 2;
        r = attest_tee_open(&o.cfg, &tee, &err);
        if (r >= 0)
                r = attest_tee_measure(tee, name, payload, &err);
        if (r >= 0)
                r = attest_tee_measurements(tee, &m, &err);
        if (r < 0)
                return cli_fail("tdx measure", r, err);
        print_hex_line("RTMR3:", m.rtmr[3], 48);
        return 0;
}

/* ---- conker tdx-sim init ---- */

static void sim_usage(FILE *f)
{
        fprintf(f, "usage: conker tdx-sim init DIR [--now TIME] [--days N] [--profile FILE]\n"
                   "\n"
                   "Creates a simulated TD in DIR: a test PKI shaped like Intel's (root CA, PCK Platform\n"
                   "CA, PCK certificate, TCB signing), signed collateral (collateral.json), the QE\n"
                   "attestation key and a measurement profile. Everything is marked SIMULATED; a verifier\n"
                   "accepts its quotes only with --trust-sim-root DIR/root-ca.pem.\n"
                   "  --now TIME     start of the certificate/collateral window (unix seconds or\n"
                   "                 YYYY-MM-DDTHH:MM:SSZ; default now)\n"
                   "  --days N       validity in days (default 365)\n"
                   "  --profile FILE measurement profile JSON overriding the defaults (keys as in\n"
                   "                 DIR/profile.json)\n");
}

static int parse_time(const char *s, time_t *ret)
{
        uint64_t v;
        struct tm tm = {0};
        const char *end;

        if (ck_parse_uint(s, (uint64_t)INT64_MAX / 2, &v) == 0) {
                *ret = (time_t)v;
                return 0;
        }
        end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!end || *end)
                return -EINVAL;
        *ret = timegm(&tm);
        return 0;
}

int cmd_tdx_sim(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"now", required_argument, NULL, OPT_NOW},
                {"days", required_argument, NULL, OPT_DAYS},
                {"profile", required_argument, NULL, OPT_PROFILE},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ uint8_t *profile = NULL;
        struct attest_sim_init_opts o = {0};
        const char *profile_path = NULL;
        uint64_t days;
        size_t plen = 0;
        int c, r;

        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                sim_usage(stdout);
                return 0;
        }
        if (argc < 3 || strcmp(argv[1], "init") != 0) {
                sim_usage(stderr);
                return 2;
        }
        optind = 0;
        while ((c = getopt_long(argc - 1, argv + 1, "h", longopts, NULL)) != -1) {
                switch (c) {
                case OPT_NOW:
                        if (parse_time(optarg, &o.now) < 0 || o.now <= 0) {
                                fprintf(stderr, "conker tdx-sim: --now must be unix seconds or "
                                                "YYYY-MM-DDTHH:MM:SSZ\n");
                                return 2;
                        }
                        break;
                case OPT_DAYS:
                        if (ck_parse_uint(optarg, 3650, &days) < 0 || days == 0) {
                                fprintf(stderr, "conker tdx-sim: --days must be 1..3650\n");
                                return 2;
                        }
                        o.validity_days = (unsigned)days;
                        break;
                case OPT_PROFILE:
                        profile_path = optarg;
                        break;
                case 'h':
                        sim_usage(stdout);
                        return 0;
                default:
                        sim_usage(stderr);
                        return 2;
                }
        }
        if (optind != argc - 2) {
                sim_usage(stderr);
                return 2;
        }
        if (profile_path) {
                r = ck_read_file(profile_path, 64 << 10, &profile, &plen, &err);
                if (r < 0)
                        return cli_fail("tdx-sim", r, err);
                o.profile_json = (const char *)profile;
        }
        r = attest_sim_init(argv[argc - 1], &o, &err);
        if (r < 0)
                return cli_fail("tdx-sim", r, err);
        printf("simulated TD created in %s (trust anchor: %s/root-ca.pem)\n", argv[argc - 1],
               argv[argc - 1]);
        return 0;
}
