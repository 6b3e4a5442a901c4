/* conker-broker: releases a JSON secret only to TDs whose RA-TLS evidence verifies and whose
 * measurements, image and task configuration match the policy.
 *
 * The seed's command line works with one more flag, the MRTD pin (an RTMR1 pin alone can be
 * forged by the host-supplied firmware, so it is refused with a line naming the fix):
 *   conker-broker -m -i 0.0.0.0 -p 3333 -v tdx_ecdsa -a nullattester -s /secret/secret.json \
 *                 -w <RTMR1 hex> -d <image id> --mrtd <MRTD hex>
 * Everything else (policy file, collateral, limits) is a long option; see --help. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "broker-metrics.h"
#include "collateral.h"
#include "fs.h"
#include "log.h"
#include "notify.h"
#include "parse.h"
#include "policy.h"
#include "ratls.h"
#include "secret-store.h"
#include "server.h"
#include "ssl.h"
#include "tee.h"
#include "verifier.h"
#include "verify.h"

#define DEFAULT_PCS_URL "https://api.trustedservices.intel.com"
/* An RA-TLS server certificate is made at start; its quote is checked against the collateral
 * at each connection, so the certificate itself may live as long as RA-TLS allows. */
#define BROKER_ATTESTED_CERT_VALIDITY_SECS (30u * 86400u)

struct options {
        bool mutual;
        const char *address;
        uint16_t port;
        const char *secret_path;
        const char *mrtd, *rtmr0, *rtmr1, *rtmr2;
        const char *reference_values;
        bool firmware_any;
        const char *image_id;
        const char *image_allowlist;
        const char *policy_path;
        const char *collateral;
        const char *trust_sim_root;
        const char *pcs_cache_dir, *pcs_ca;
        const char *cert_path, *key_path;
        const char *audit_path;
        enum broker_audit_fsync audit_fsync;
        const char *fingerprint_file;
        const char *metrics_listen;
        int attester; /* -1: nullattester; else enum attest_tee_kind */
        const char *attester_sim_dir, *attester_sim_state_dir;
        unsigned max_clients, workers, handshake_timeout_ms, request_timeout_ms, cache_ttl;
        unsigned pcs_max_fetches, pcs_failure_ttl, audit_summary_secs;
        size_t max_secret_bytes;
};

/* Seed log levels include fatal and off; they map to error. */
static int parse_log_level(const char *s)
{
        if (strcmp(s, "fatal") == 0 || strcmp(s, "off") == 0)
                return CK_LOG_ERROR;
        if (strcmp(s, "warning") == 0)
                return CK_LOG_WARN;
        return ck_log_level_from_string(s);
}

static int set_verifier(struct options *o, const char *v)
{
        if (strcmp(v, "tdx_ecdsa") != 0) {
                fprintf(stderr, "conker-broker: -v %s: the only verifier is tdx_ecdsa\n", v);
                return -EINVAL;
        }
        return 0;
}

static int set_attester(struct options *o, const char *v)
{
        if (strcmp(v, "nullattester") == 0)
                o->attester = -1;
        else if (strcmp(v, "tdx") == 0)
                o->attester = ATTEST_TEE_KIND_TDX;
        else if (strcmp(v, "sim") == 0)
                o->attester = ATTEST_TEE_KIND_SIM;
        else {
                fprintf(stderr, "conker-broker: -a %s: expected nullattester, tdx or sim\n", v);
                return -EINVAL;
        }
        return 0;
}

/* -a tdx|sim: the broker runs in a TD and its certificate carries a quote over its own key
 * (RA-TLS), which conkerd checks against its kms-broker-reference-values. The key is fresh at
 * each start, so the fingerprint is not something to pin. */
static int attested_identity(const struct options *o, EVP_PKEY **ret_key, X509 **ret_cert,
                             struct ck_error **reterr)
{
        static const char app_id[] = "conker-broker";
        struct attest_tee_config cfg = {.kind = (enum attest_tee_kind)o->attester,
                                        .sim_dir = o->attester_sim_dir,
                                        .sim_state_dir = o->attester_sim_state_dir};
        struct attest_ratls_claims claims = {.app_id = (const uint8_t *)app_id,
                                             .app_id_len = sizeof(app_id) - 1};
        _cleanup_(attest_tee_freep) struct attest_tee *tee = NULL;
        int rc;

        if (o->attester == ATTEST_TEE_KIND_SIM && !o->attester_sim_dir)
                return ck_error_set(reterr, -EINVAL,
                                    "-a sim needs --attester-sim-dir DIR (a simulated TD, tests only)");
        rc = attest_tee_open(&cfg, &tee, reterr);
        if (rc < 0)
                return ck_error_prefix(reterr, rc, "-a %s",
                                       o->attester == ATTEST_TEE_KIND_SIM ? "sim" : "tdx");
        rc = attest_ratls_make_identity(tee, &claims, BROKER_ATTESTED_CERT_VALIDITY_SECS, ret_key, ret_cert,
                                        reterr);
        if (rc < 0)
                return ck_error_prefix(reterr, rc, "the broker's RA-TLS certificate");
        return 0;
}

static int set_log_level(struct options *o, const char *v)
{
        int r = parse_log_level(v);

        if (r < 0) {
                fprintf(stderr, "conker-broker: -l %s: expected error, warn, info or debug\n", v);
                return -EINVAL;
        }
        ck_log_set_level((enum ck_log_level)r);
        return 0;
}

static int set_audit_fsync(struct options *o, const char *v)
{
        int r = broker_audit_fsync_from_string(v);

        if (r < 0) {
                fprintf(stderr, "conker-broker: --audit-fsync %s: expected always or never\n", v);
                return -EINVAL;
        }
        o->audit_fsync = (enum broker_audit_fsync)r;
        return 0;
}

static int set_firmware(struct options *o, const char *v)
{
        if (strcmp(v, "any") != 0) {
                fprintf(stderr,
                        "conker-broker: --firmware %s: the only value is \"any\" (pin a firmware with "
                        "--mrtd)\n",
                        v);
                return -EINVAL;
        }
        o->firmware_any = true;
        return 0;
}

static int set_log_json(struct options *o, const char *v)
{
        ck_log_set_json(1);
        return 0;
}

static int show_help(struct options *o, const char *v);

enum opt_kind {
        OPT_FLAG,   /* no argument: sets the bool at `offset` */
        OPT_STRING, /* the argument is stored at `offset` (a const char *) */
        OPT_UINT,   /* a number in [min, max] stored at `offset` in `size` bytes */
        OPT_CALL,   /* set() checks and applies it (arg NULL: no argument) */
};

/* One command-line option: getopt_long's tables and --help are both made from OPTIONS. A NULL
 * help hides the option (an alias); a section starts a group of the help text. */
struct broker_option {
        const char *section;
        const char *name;
        char short_name;
        const char *arg; /* the argument's name in --help; NULL: takes none */
        const char *help;
        enum opt_kind kind;
        size_t offset, size;
        uint64_t min, max;
        int (*set)(struct options *o, const char *v);
};

#define STR(f) .kind = OPT_STRING, .offset = offsetof(struct options, f)
#define UINT(f, lo, hi)                                                                                     \
        .kind = OPT_UINT, .offset = offsetof(struct options, f), .size = sizeof(((struct options *)0)->f),  \
        .min = (lo), .max = (hi)
#define CALL(fn) .kind = OPT_CALL, .set = (fn)

static const struct broker_option OPTIONS[] = {
        {.section = "Seed-compatible options:",
         .name = "mutual",
         .short_name = 'm',
         .help = "mutual TLS (always on: clients attest with RA-TLS certificates)",
         .kind = OPT_FLAG,
         .offset = offsetof(struct options, mutual)},
        {.name = "ip",
         .short_name = 'i',
         .arg = "ADDR",
         .help = "listen address (default 0.0.0.0)",
         STR(address)},
        {.name = "port",
         .short_name = 'p',
         .arg = "PORT",
         .help = "listen port (default 3333)",
         UINT(port, 0, 65535)},
        {.name = "verifier",
         .short_name = 'v',
         .arg = "NAME",
         .help = "client evidence verifier: tdx_ecdsa",
         CALL(set_verifier)},
        {.name = "attester",
         .short_name = 'a',
         .arg = "NAME",
         .help = "the broker's own certificate: nullattester (a normal certificate),\ntdx (RA-TLS: a quote "
                 "of "
                 "this TD over the certificate key)\nor sim (the same with a simulated TD, tests only)",
         CALL(set_attester)},
        {.name = "attester-sim-dir",
         .arg = "DIR",
         .help = "-a sim: the simulated TD",
         STR(attester_sim_dir)},
        {.name = "attester-sim-state-dir",
         .arg = "DIR",
         .help = "-a sim: its RTMR state directory",
         STR(attester_sim_state_dir)},
        {.name = "secret",
         .short_name = 's',
         .arg = "FILE",
         .help = "the JSON secret, reloaded when it changes",
         STR(secret_path)},
        {.name = "rtmr1",
         .short_name = 'w',
         .arg = "HEX",
         .help = "the client TD's RTMR[1], exactly 96 hex digits",
         STR(rtmr1)},
        {.name = "measurement", .arg = "HEX", STR(rtmr1)},
        {.name = "image-id",
         .short_name = 'd',
         .arg = "ID",
         .help = "the image ID the secret is for (sha256:<hex> or <hex>);\nwithout -d: any image in the "
                 "TD's RTMR3 log",
         STR(image_id)},
        {.name = "log-level",
         .short_name = 'l',
         .arg = "LEVEL",
         .help = "error, warn, info or debug (default info)",
         CALL(set_log_level)},
        {.name = "help", .short_name = 'h', .help = "this text", CALL(show_help)},
        {.section = "Policy and attestation:",
         .name = "policy",
         .arg = "FILE",
         .help = "JSON policy with several secrets and rules (instead of -s/-w/-d)",
         STR(policy_path)},
        {.name = "mrtd",
         .arg = "HEX",
         .help = "the client TD's MRTD (its firmware), exactly 96 hex digits",
         STR(mrtd)},
        {.name = "rtmr0",
         .arg = "HEX",
         .help = "the client TD's RTMR[0], exactly 96 hex digits",
         STR(rtmr0)},
        {.name = "rtmr2",
         .arg = "HEX",
         .help = "the client TD's RTMR[2], exactly 96 hex digits",
         STR(rtmr2)},
        {.name = "reference-values",
         .arg = "FILE",
         .help = "pin the MRTD and RTMR0-2 of a reference-values JSON file",
         STR(reference_values)},
        {.name = "firmware",
         .arg = "any",
         .help = "accept any firmware (no MRTD pin): the host supplies it",
         CALL(set_firmware)},
        {.name = "image-allowlist",
         .arg = "IDS",
         .help = "refuse a TD whose RTMR3 log holds an image outside these\n(comma-separated image IDs)",
         STR(image_allowlist)},
        {.name = "collateral",
         .arg = "FILE|URL",
         .help = "DCAP collateral: a dcap-qvl JSON file or a PCS/PCCS base URL\n(default " DEFAULT_PCS_URL
                 "; with --trust-sim-root,\ncollateral.json next to the root)",
         STR(collateral)},
        {.name = "pcs-cache-dir",
         .arg = "DIR",
         .help = "keep fetched collateral here across restarts",
         STR(pcs_cache_dir)},
        {.name = "pcs-ca",
         .arg = "FILE",
         .help = "extra CA certificates for a PCCS's HTTPS certificate",
         STR(pcs_ca)},
        {.name = "pcs-max-fetches",
         .arg = "N",
         .help = "collateral fetches running at once (default 4)",
         UINT(pcs_max_fetches, 1, 64)},
        {.name = "pcs-failure-ttl",
         .arg = "SECS",
         .help = "after a failed fetch, wait this long before asking the\nPCS for that FMSPC again (default "
                 "60)",
         UINT(pcs_failure_ttl, 1, 86400)},
        {.name = "trust-sim-root",
         .arg = "FILE",
         .help = "trust this simulated root CA instead of Intel's and accept\nsimulated TDs (testing only)",
         STR(trust_sim_root)},
        {.name = "cache-ttl",
         .arg = "SECS",
         .help = "reuse a quote's verification this long (default 300, 0 = off)",
         UINT(cache_ttl, 0, 86400)},
        {.section = "Identity, audit and limits:",
         .name = "cert",
         .arg = "FILE",
         .help = "the broker's certificate (PEM, with --key); default: a fresh\nself-signed one whose "
                 "fingerprint is logged",
         STR(cert_path)},
        {.name = "key", .arg = "FILE", .help = "its private key (PEM, with --cert)", STR(key_path)},
        {.name = "fingerprint-file",
         .arg = "F",
         .help = "also write that fingerprint (sha256:<hex>) to F",
         STR(fingerprint_file)},
        {.name = "audit-log",
         .arg = "FILE",
         .help = "JSON-lines audit log (default " BROKER_AUDIT_DEFAULT_PATH ")",
         STR(audit_path)},
        {.name = "audit-fsync", .arg = "MODE", .help = "always (default) or never", CALL(set_audit_fsync)},
        {.name = "audit-summary-interval",
         .arg = "SECS",
         .help = "write refusals of clients whose evidence did not\nverify as one summary line this often "
                 "(default 60)",
         UINT(audit_summary_secs, 1, 86400)},
        {.name = "max-clients",
         .arg = "N",
         .help = "connections queued or served at once (default 256)",
         UINT(max_clients, 1, 65536)},
        {.name = "workers", .arg = "N", .help = "worker threads (default 8)", UINT(workers, 1, 1024)},
        {.name = "handshake-timeout",
         .arg = "MS",
         .help = "TLS handshake deadline (default 10000)",
         UINT(handshake_timeout_ms, 100, 600000)},
        {.name = "request-timeout",
         .arg = "MS",
         .help = "request read deadline (default 10000)",
         UINT(request_timeout_ms, 100, 600000)},
        {.name = "max-secret-bytes",
         .arg = "N",
         .help = "largest secret file (default 1048576)",
         UINT(max_secret_bytes, 2, 64u * 1024 * 1024)},
        {.name = "log-json", .help = "log as JSON lines", CALL(set_log_json)},
        {.name = "metrics-listen",
         .arg = "ADDR:PORT",
         .help = "serve Prometheus metrics at http://ADDR:PORT/metrics (plain\nHTTP: counts and reason "
                 "codes only)",
         STR(metrics_listen)},
};

#undef STR
#undef UINT
#undef CALL

#define HELP_COLUMN 29

static void usage(FILE *f)
{
        fprintf(f, "usage: conker-broker [OPTIONS]\n");
        for (size_t i = 0; i < ELEMENTSOF(OPTIONS); i++) {
                const struct broker_option *d = &OPTIONS[i];
                const char *h;
                int n;

                if (d->section)
                        fprintf(f, "\n%s\n", d->section);
                if (!d->help)
                        continue;
                if (d->short_name)
                        n = fprintf(f, "  -%c, --%s", d->short_name, d->name);
                else
                        n = fprintf(f, "      --%s", d->name);
                if (d->arg)
                        n += fprintf(f, " %s", d->arg);
                if (n < HELP_COLUMN)
                        fprintf(f, "%*s", HELP_COLUMN - n, "");
                else /* a long option: its text starts on the next line */
                        fprintf(f, "\n%*s", HELP_COLUMN, "");
                /* Continuation lines of the help text line up under its first line. */
                for (h = d->help; *h;) {
                        size_t len = strcspn(h, "\n");
                        fprintf(f, "%.*s\n", (int)len, h);
                        h += len;
                        if (*h == '\n' && *++h)
                                fprintf(f, "%*s", HELP_COLUMN, "");
                }
        }
}

static int show_help(struct options *o, const char *v)
{
        usage(stdout);
        exit(0);
}

static int parse_uint_opt(const char *name, const char *v, uint64_t min, uint64_t max, uint64_t *ret)
{
        if (ck_parse_uint(v, max, ret) < 0 || *ret < min) {
                fprintf(stderr, "conker-broker: %s: expected a number between %llu and %llu, got \"%s\"\n",
                        name, (unsigned long long)min, (unsigned long long)max, v);
                return -EINVAL;
        }
        return 0;
}

/* Applies one option of OPTIONS to o. */
static int option_apply(const struct broker_option *d, struct options *o, const char *v)
{
        char *field = (char *)o + d->offset;
        char name[40];
        uint64_t u;

        switch (d->kind) {
        case OPT_FLAG:
                *(bool *)field = true;
                return 0;
        case OPT_STRING:
                *(const char **)field = v;
                return 0;
        case OPT_UINT:
                if (d->short_name)
                        snprintf(name, sizeof(name), "-%c", d->short_name);
                else
                        snprintf(name, sizeof(name), "--%s", d->name);
                if (parse_uint_opt(name, v, d->min, d->max, &u) < 0)
                        return -EINVAL;
                if (d->size == sizeof(uint16_t))
                        *(uint16_t *)field = (uint16_t)u;
                else if (d->size == sizeof(unsigned))
                        *(unsigned *)field = (unsigned)u;
                else
                        *(uint64_t *)field = u;
                return 0;
        case OPT_CALL:
                return d->set(o, v);
        }
        return -EINVAL;
}

static int parse_options(int argc, char **argv, struct options *o)
{
        struct option longopts[ELEMENTSOF(OPTIONS) + 1] = {0};
        char shortopts[2 * ELEMENTSOF(OPTIONS) + 1] = "", *sp = shortopts;
        int c;

        _Static_assert(sizeof(size_t) == sizeof(uint64_t), "--max-secret-bytes is stored as 64 bits");
        *o = (struct options){
                .address = "0.0.0.0",
                .port = 3333,
                .audit_path = BROKER_AUDIT_DEFAULT_PATH,
                .max_clients = 256,
                .workers = 8,
                .handshake_timeout_ms = 10000,
                .request_timeout_ms = 10000,
                .cache_ttl = 300,
                .pcs_max_fetches = BROKER_FETCH_MAX_DEFAULT,
                .pcs_failure_ttl = BROKER_FETCH_FAILURE_TTL_DEFAULT,
                .audit_summary_secs = BROKER_AUDIT_SUMMARY_DEFAULT_SECS,
                .max_secret_bytes = BROKER_SECRET_MAX_BYTES,
                .attester = -1,
        };
        /* A long option returns 0x100 + its index; a short one its letter. */
        for (size_t i = 0; i < ELEMENTSOF(OPTIONS); i++) {
                const struct broker_option *d = &OPTIONS[i];
                longopts[i] = (struct option){d->name, d->arg ? required_argument : no_argument, NULL,
                                              0x100 + (int)i};
                if (d->short_name) {
                        *sp++ = d->short_name;
                        if (d->arg)
                                *sp++ = ':';
                }
        }
        *sp = 0;
        while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
                const struct broker_option *d = NULL;

                if (c >= 0x100 && c < 0x100 + (int)ELEMENTSOF(OPTIONS))
                        d = &OPTIONS[c - 0x100];
                for (size_t i = 0; !d && c != '?' && i < ELEMENTSOF(OPTIONS); i++)
                        if (OPTIONS[i].short_name == c)
                                d = &OPTIONS[i];
                if (!d) {
                        usage(stderr);
                        return -EINVAL;
                }
                if (option_apply(d, o, d->arg ? optarg : NULL) < 0)
                        return -EINVAL;
        }
        if (optind < argc) {
                fprintf(stderr, "conker-broker: unexpected argument \"%s\"\n", argv[optind]);
                return -EINVAL;
        }
        if (!!o->cert_path != !!o->key_path) {
                fprintf(stderr, "conker-broker: --cert and --key go together\n");
                return -EINVAL;
        }
        if (o->policy_path &&
            (o->secret_path || o->mrtd || o->rtmr0 || o->rtmr1 || o->rtmr2 || o->reference_values ||
             o->firmware_any || o->image_id || o->image_allowlist)) {
                fprintf(stderr, "conker-broker: --policy replaces -s/-w/-d/--mrtd/--rtmr0/--rtmr2/"
                                "--reference-values/--firmware/--image-allowlist; give one or the other\n");
                return -EINVAL;
        }
        return 0;
}

/* ck_write_file_atomic() on a path: the directory part becomes the dirfd. */
static int write_file_at_path(const char *path, const char *data, size_t len, struct ck_error **reterr)
{
        const char *slash = strrchr(path, '/');
        _cleanup_free_ char *dir =
                slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
        _cleanup_close_ int dfd = -1;

        if (!dir)
                return -ENOMEM;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return ck_error_errno(reterr, -errno, "%s", dir);
        return ck_write_file_atomic(dfd, slash ? slash + 1 : path, data, len, 0644, reterr);
}

static int fail(int code, const struct ck_error *err)
{
        log_error("%s", ck_error_message(err, code));
        return 1;
}

int main(int argc, char **argv)
{
        _cleanup_(broker_policy_freep) struct broker_policy *policy = NULL;
        _cleanup_(broker_secret_store_freep) struct broker_secret_store *secrets = NULL;
        _cleanup_(broker_audit_closep) struct broker_audit *audit = NULL;
        _cleanup_(broker_verifier_freep) struct broker_verifier *verifier = NULL;
        _cleanup_(broker_server_freep) struct broker_server *server = NULL;
        _cleanup_(broker_metrics_server_freep) struct broker_metrics_server *metrics = NULL;
        _cleanup_(attest_collateral_freep) struct attest_collateral *collateral = NULL;
        _cleanup_(X509_freep) X509 *sim_root = NULL, *cert = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ struct broker_secret_source *src = NULL;
        _cleanup_free_ char *default_collateral = NULL;
        const char *pcs_url = NULL;
        struct broker_server_config scfg;
        struct options o;
        char fp[72];
        sigset_t mask;
        int rc;

        ck_log_set_ident("conker-broker");
        /* jansson parses the secrets: make its frees wipe, so that no copy of a secret stays in
         * freed heap memory. */
        json_set_alloc_funcs(malloc, ck_free_wiped);
        if (parse_options(argc, argv, &o) < 0)
                return 2;
        if (!o.mutual)
                log_info("mutual TLS is always on (-m): clients attest with their RA-TLS certificates");

        /* Policy: every malformed value, and a rule that leaves the firmware open without saying
         * so, stops the broker here with one line. */
        if (o.policy_path)
                rc = broker_policy_load_file(o.policy_path, o.trust_sim_root != NULL, &policy, &err);
        else
                rc = broker_policy_from_flags(
                        &(struct broker_policy_flags){.secret_path = o.secret_path,
                                                      .mrtd = o.mrtd,
                                                      .rtmr0 = o.rtmr0,
                                                      .rtmr1 = o.rtmr1,
                                                      .rtmr2 = o.rtmr2,
                                                      .reference_values = o.reference_values,
                                                      .firmware_any = o.firmware_any,
                                                      .image_id = o.image_id,
                                                      .image_allowlist = o.image_allowlist,
                                                      .allow_simulated = o.trust_sim_root != NULL},
                        &policy, &err);
        if (rc < 0) {
                fprintf(stderr, "conker-broker: %s\n", ck_error_message(err, rc));
                return 2;
        }
        if (!o.policy_path && !o.image_id)
                log_warn("no -d: the secret is released to a TD running any image, as long as the image "
                         "and its task-config are in the TD's RTMR3 log (add -d <image id> to pin one)");
        if (o.firmware_any)
                log_warn("--firmware any: the MRTD is not pinned; the host supplies the firmware, which "
                         "can extend RTMR0-2 as it likes");

        /* Trust root and collateral. */
        if (o.trust_sim_root) {
                rc = attest_root_load_file(o.trust_sim_root, &sim_root, &err);
                if (rc < 0)
                        return fail(ck_error_prefix(&err, rc, "--trust-sim-root"), err);
                log_warn("trusting the simulated root %s: simulated TDs will be accepted (testing only)",
                         o.trust_sim_root);
                if (!o.collateral) {
                        const char *slash = strrchr(o.trust_sim_root, '/');
                        if (asprintf(&default_collateral, "%.*s/collateral.json",
                                     slash ? (int)(slash - o.trust_sim_root) : 1,
                                     slash ? o.trust_sim_root : ".") < 0)
                                return fail(-ENOMEM, NULL);
                        o.collateral = default_collateral;
                }
        }
        if (!o.collateral)
                o.collateral = DEFAULT_PCS_URL;
        if (ck_startswith(o.collateral, "https://") || ck_startswith(o.collateral, "http://")) {
                /* Fetched per FMSPC on first use and refreshed at nextUpdate (verifier.c). */
                pcs_url = o.collateral;
                if (o.pcs_cache_dir) {
                        rc = ck_mkdir_p(o.pcs_cache_dir, 0700);
                        if (rc < 0)
                                return fail(ck_error_errno(&err, rc, "--pcs-cache-dir %s", o.pcs_cache_dir),
                                            err);
                }
        } else {
                rc = attest_collateral_load_file(o.collateral, &collateral, &err);
                if (rc < 0)
                        return fail(ck_error_prefix(&err, rc, "--collateral %s", o.collateral), err);
                if (attest_collateral_next_update(collateral) <= time(NULL))
                        log_warn("--collateral %s is past its nextUpdate: every quote will be refused until "
                                 "it "
                                 "is replaced",
                                 o.collateral);
        }

        /* Secrets. */
        src = calloc(policy->n_secrets, sizeof(*src));
        if (!src)
                return fail(-ENOMEM, NULL);
        for (size_t i = 0; i < policy->n_secrets; i++)
                src[i] = (struct broker_secret_source){.id = policy->secrets[i].id,
                                                       .path = policy->secrets[i].path};
        rc = broker_secret_store_new(src, policy->n_secrets, o.max_secret_bytes, &secrets, &err);
        if (rc < 0)
                return fail(rc, err);

        rc = broker_audit_open(o.audit_path, o.audit_fsync, &audit, &err);
        if (rc < 0)
                return fail(rc, err);

        rc = broker_verifier_new(
                &(struct broker_verifier_config){.collateral = collateral,
                                                 .pcs_url = pcs_url,
                                                 .pcs_cache_dir = o.pcs_cache_dir,
                                                 .pcs_ca_file = o.pcs_ca,
                                                 .root = sim_root,
                                                 .cache_ttl_secs = o.cache_ttl,
                                                 .max_fetches = o.pcs_max_fetches,
                                                 .fetch_failure_ttl_secs = o.pcs_failure_ttl},
                &verifier, &err);
        if (rc < 0)
                return fail(rc, err);

        /* The broker's own identity. */
        if (o.cert_path)
                rc = broker_identity_load(o.cert_path, o.key_path, &key, &cert, &err);
        else if (o.attester >= 0)
                rc = attested_identity(&o, &key, &cert, &err);
        else
                rc = broker_identity_generate(&key, &cert, &err);
        if (rc < 0)
                return fail(rc, err);
        if (broker_cert_fingerprint(cert, fp) < 0)
                return fail(-EIO, NULL);
        log_info("broker certificate %s (pin it with host:port#%s)", fp, fp);
        if (o.fingerprint_file) {
                char line[80];
                int n = snprintf(line, sizeof(line), "%s\n", fp);
                rc = write_file_at_path(o.fingerprint_file, line, (size_t)n, &err);
                if (rc < 0)
                        return fail(ck_error_prefix(&err, rc, "--fingerprint-file"), err);
        }

        /* The workers inherit this mask; the main loop takes the signals from a signalfd. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        scfg = (struct broker_server_config){
                .address = o.address,
                .port = o.port,
                .workers = o.workers,
                .max_clients = o.max_clients,
                .handshake_timeout_ms = o.handshake_timeout_ms,
                .request_timeout_ms = o.request_timeout_ms,
                .audit_summary_secs = o.audit_summary_secs,
                .key = key,
                .cert = cert,
                .policy = policy,
                .secrets = secrets,
                .audit = audit,
                .verifier = verifier,
        };
        rc = broker_metrics_declare();
        if (rc < 0)
                return fail(rc, NULL);
        rc = broker_server_new(&scfg, &server, &err);
        if (rc < 0)
                return fail(rc, err);
        if (o.metrics_listen) {
                rc = broker_metrics_server_new(o.metrics_listen, &metrics, NULL, &err);
                if (rc < 0)
                        return fail(rc, err);
        }
        log_info("listening on %s port %u (TLS 1.3, client RA-TLS certificates required); %zu secret(s), "
                 "collateral %s, trust root %s",
                 o.address, broker_server_port(server), policy->n_secrets, o.collateral,
                 o.trust_sim_root ? o.trust_sim_root : "Intel SGX Root CA");
        /* Listening: a Type=notify unit is started now. */
        {
                _cleanup_error_ struct ck_error *nerr = NULL;
                int nr = ck_notify("READY=1", &nerr);
                if (nr < 0)
                        log_warn("%s", ck_error_message(nerr, nr));
        }
        rc = broker_server_run(server, &err);
        (void)ck_notify("STOPPING=1", NULL);
        if (rc < 0)
                return fail(rc, err);
        log_info("stopped");
        return 0;
}
