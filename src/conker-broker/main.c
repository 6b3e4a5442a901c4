/* conker-broker: releases a JSON secret only to TDs whose RA-TLS evidence verifies and whose
 * measurements and image match the policy.
 *
 * The seed's command line works as it did:
 *   conker-broker -m -i 0.0.0.0 -p 3333 -v tdx_ecdsa -a nullattester -s /secret/secret.json \
 *                 -w <RTMR1 hex> -d <image id>
 * Everything else (policy file, collateral, limits) is a long option; see --help. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "collateral.h"
#include "fs.h"
#include "log.h"
#include "parse.h"
#include "policy.h"
#include "secret-store.h"
#include "server.h"
#include "ssl.h"
#include "verifier.h"
#include "verify.h"

#define DEFAULT_PCS_URL "https://api.trustedservices.intel.com"

struct options {
        bool mutual;
        const char *address;
        uint16_t port;
        const char *secret_path;
        const char *rtmr1;
        const char *image_id;
        const char *policy_path;
        const char *collateral;
        const char *trust_sim_root;
        const char *pcs_cache_dir, *pcs_ca;
        const char *cert_path, *key_path;
        const char *audit_path;
        enum broker_audit_fsync audit_fsync;
        const char *fingerprint_file;
        unsigned max_clients, workers, handshake_timeout_ms, request_timeout_ms, cache_ttl;
        size_t max_secret_bytes;
};

enum {
        OPT_POLICY = 0x100,
        OPT_COLLATERAL,
        OPT_TRUST_SIM_ROOT,
        OPT_CERT,
        OPT_KEY,
        OPT_AUDIT_LOG,
        OPT_AUDIT_FSYNC,
        OPT_MAX_CLIENTS,
        OPT_WORKERS,
        OPT_HANDSHAKE_TIMEOUT,
        OPT_REQUEST_TIMEOUT,
        OPT_CACHE_TTL,
        OPT_MAX_SECRET,
        OPT_FINGERPRINT_FILE,
        OPT_LOG_JSON,
        OPT_PCS_CACHE_DIR,
        OPT_PCS_CA,
};

static void usage(FILE *f)
{
        fprintf(f,
                "usage: conker-broker [OPTIONS]\n"
                "\n"
                "Seed-compatible options:\n"
                "  -m, --mutual               mutual TLS (always on: clients attest with RA-TLS "
                "certificates)\n"
                "  -i, --ip ADDR              listen address (default 0.0.0.0)\n"
                "  -p, --port PORT            listen port (default 3333)\n"
                "  -v, --verifier NAME        client evidence verifier: tdx_ecdsa\n"
                "  -a, --attester NAME        the broker's own certificate: nullattester (a normal "
                "certificate)\n"
                "  -s, --secret FILE          the JSON secret, reloaded when it changes\n"
                "  -w, --rtmr1 HEX            the client TD's RTMR[1], exactly 96 hex digits\n"
                "  -d, --image-id ID          the image ID the secret is for (sha256:<hex> or <hex>)\n"
                "  -l, --log-level LEVEL      error, warn, info or debug (default info)\n"
                "\n"
                "Policy and attestation:\n"
                "      --policy FILE          JSON policy with several secrets and rules (instead of "
                "-s/-w/-d)\n"
                "      --collateral FILE|URL  DCAP collateral: a dcap-qvl JSON file or a PCS/PCCS base URL\n"
                "                             (default %s; with --trust-sim-root,\n"
                "                             collateral.json next to the root)\n"
                "      --pcs-cache-dir DIR    keep fetched collateral here across restarts\n"
                "      --pcs-ca FILE          extra CA certificates for a PCCS's HTTPS certificate\n"
                "      --trust-sim-root FILE  trust this simulated root CA instead of Intel's and accept\n"
                "                             simulated TDs (testing only)\n"
                "      --cache-ttl SECS       reuse a certificate's verification this long (default 300, 0 "
                "= off)\n"
                "\n"
                "Identity, audit and limits:\n"
                "      --cert FILE --key FILE the broker's certificate and key (PEM); default: a fresh\n"
                "                             self-signed one whose fingerprint is logged\n"
                "      --fingerprint-file F   also write that fingerprint (sha256:<hex>) to F\n"
                "      --audit-log FILE       JSON-lines audit log (default %s)\n"
                "      --audit-fsync MODE     always (default) or never\n"
                "      --max-clients N        connections queued or served at once (default 256)\n"
                "      --workers N            worker threads (default 8)\n"
                "      --handshake-timeout MS TLS handshake deadline (default 10000)\n"
                "      --request-timeout MS   request read deadline (default 10000)\n"
                "      --max-secret-bytes N   largest secret file (default 1048576)\n"
                "      --log-json             log as JSON lines\n",
                DEFAULT_PCS_URL, BROKER_AUDIT_DEFAULT_PATH);
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

/* Seed log levels include fatal and off; they map to error. */
static int parse_log_level(const char *s)
{
        if (strcmp(s, "fatal") == 0 || strcmp(s, "off") == 0)
                return CK_LOG_ERROR;
        if (strcmp(s, "warning") == 0)
                return CK_LOG_WARN;
        return ck_log_level_from_string(s);
}

static int parse_options(int argc, char **argv, struct options *o)
{
        static const struct option longopts[] = {
                {"mutual", no_argument, NULL, 'm'},
                {"ip", required_argument, NULL, 'i'},
                {"port", required_argument, NULL, 'p'},
                {"verifier", required_argument, NULL, 'v'},
                {"attester", required_argument, NULL, 'a'},
                {"secret", required_argument, NULL, 's'},
                {"rtmr1", required_argument, NULL, 'w'},
                {"measurement", required_argument, NULL, 'w'},
                {"image-id", required_argument, NULL, 'd'},
                {"log-level", required_argument, NULL, 'l'},
                {"help", no_argument, NULL, 'h'},
                {"policy", required_argument, NULL, OPT_POLICY},
                {"collateral", required_argument, NULL, OPT_COLLATERAL},
                {"trust-sim-root", required_argument, NULL, OPT_TRUST_SIM_ROOT},
                {"cert", required_argument, NULL, OPT_CERT},
                {"key", required_argument, NULL, OPT_KEY},
                {"audit-log", required_argument, NULL, OPT_AUDIT_LOG},
                {"audit-fsync", required_argument, NULL, OPT_AUDIT_FSYNC},
                {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
                {"workers", required_argument, NULL, OPT_WORKERS},
                {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
                {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
                {"cache-ttl", required_argument, NULL, OPT_CACHE_TTL},
                {"max-secret-bytes", required_argument, NULL, OPT_MAX_SECRET},
                {"fingerprint-file", required_argument, NULL, OPT_FINGERPRINT_FILE},
                {"log-json", no_argument, NULL, OPT_LOG_JSON},
                {"pcs-cache-dir", required_argument, NULL, OPT_PCS_CACHE_DIR},
                {"pcs-ca", required_argument, NULL, OPT_PCS_CA},
                {},
        };
        uint64_t u = 0;
        int c, r;

        *o = (struct options){
                .address = "0.0.0.0",
                .port = 3333,
                .audit_path = BROKER_AUDIT_DEFAULT_PATH,
                .max_clients = 256,
                .workers = 8,
                .handshake_timeout_ms = 10000,
                .request_timeout_ms = 10000,
                .cache_ttl = 300,
                .max_secret_bytes = BROKER_SECRET_MAX_BYTES,
        };
        while ((c = getopt_long(argc, argv, "mi:p:v:a:s:w:d:l:h", longopts, NULL)) != -1) {
                switch (c) {
                case 'm':
                        o->mutual = true;
                        break;
                case 'i':
                        o->address = optarg;
                        break;
                case 'p':
                        if (parse_uint_opt("-p", optarg, 0, 65535, &u) < 0)
                                return -EINVAL;
                        o->port = (uint16_t)u;
                        break;
                case 'v':
                        if (strcmp(optarg, "tdx_ecdsa") != 0) {
                                fprintf(stderr, "conker-broker: -v %s: the only verifier is tdx_ecdsa\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case 'a':
                        if (strcmp(optarg, "nullattester") != 0) {
                                fprintf(stderr,
                                        "conker-broker: -a %s: only nullattester (a normal certificate) is "
                                        "supported\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case 's':
                        o->secret_path = optarg;
                        break;
                case 'w':
                        o->rtmr1 = optarg;
                        break;
                case 'd':
                        o->image_id = optarg;
                        break;
                case 'l':
                        r = parse_log_level(optarg);
                        if (r < 0) {
                                fprintf(stderr,
                                        "conker-broker: -l %s: expected error, warn, info or debug\n",
                                        optarg);
                                return -EINVAL;
                        }
                        ck_log_set_level((enum ck_log_level)r);
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                case OPT_POLICY:
                        o->policy_path = optarg;
                        break;
                case OPT_COLLATERAL:
                        o->collateral = optarg;
                        break;
                case OPT_TRUST_SIM_ROOT:
                        o->trust_sim_root = optarg;
                        break;
                case OPT_CERT:
                        o->cert_path = optarg;
                        break;
                case OPT_KEY:
                        o->key_path = optarg;
                        break;
                case OPT_AUDIT_LOG:
                        o->audit_path = optarg;
                        break;
                case OPT_AUDIT_FSYNC:
                        r = broker_audit_fsync_from_string(optarg);
                        if (r < 0) {
                                fprintf(stderr,
                                        "conker-broker: --audit-fsync %s: expected always or never\n",
                                        optarg);
                                return -EINVAL;
                        }
                        o->audit_fsync = (enum broker_audit_fsync)r;
                        break;
                case OPT_MAX_CLIENTS:
                        if (parse_uint_opt("--max-clients", optarg, 1, 65536, &u) < 0)
                                return -EINVAL;
                        o->max_clients = (unsigned)u;
                        break;
                case OPT_WORKERS:
                        if (parse_uint_opt("--workers", optarg, 1, 1024, &u) < 0)
                                return -EINVAL;
                        o->workers = (unsigned)u;
                        break;
                case OPT_HANDSHAKE_TIMEOUT:
                        if (parse_uint_opt("--handshake-timeout", optarg, 100, 600000, &u) < 0)
                                return -EINVAL;
                        o->handshake_timeout_ms = (unsigned)u;
                        break;
                case OPT_REQUEST_TIMEOUT:
                        if (parse_uint_opt("--request-timeout", optarg, 100, 600000, &u) < 0)
                                return -EINVAL;
                        o->request_timeout_ms = (unsigned)u;
                        break;
                case OPT_CACHE_TTL:
                        if (parse_uint_opt("--cache-ttl", optarg, 0, 86400, &u) < 0)
                                return -EINVAL;
                        o->cache_ttl = (unsigned)u;
                        break;
                case OPT_MAX_SECRET:
                        if (parse_uint_opt("--max-secret-bytes", optarg, 2, 64u * 1024 * 1024, &u) < 0)
                                return -EINVAL;
                        o->max_secret_bytes = (size_t)u;
                        break;
                case OPT_FINGERPRINT_FILE:
                        o->fingerprint_file = optarg;
                        break;
                case OPT_PCS_CACHE_DIR:
                        o->pcs_cache_dir = optarg;
                        break;
                case OPT_PCS_CA:
                        o->pcs_ca = optarg;
                        break;
                case OPT_LOG_JSON:
                        ck_log_set_json(1);
                        break;
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "conker-broker: unexpected argument \"%s\"\n", argv[optind]);
                return -EINVAL;
        }
        if (!!o->cert_path != !!o->key_path) {
                fprintf(stderr, "conker-broker: --cert and --key go together\n");
                return -EINVAL;
        }
        if (o->policy_path && (o->secret_path || o->rtmr1 || o->image_id)) {
                fprintf(stderr, "conker-broker: --policy replaces -s/-w/-d; give one or the other\n");
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

        /* Policy: every malformed value stops the broker here. */
        if (o.policy_path)
                rc = broker_policy_load_file(o.policy_path, o.trust_sim_root != NULL, &policy, &err);
        else
                rc = broker_policy_from_flags(o.secret_path, o.rtmr1, o.image_id, o.trust_sim_root != NULL,
                                              &policy, &err);
        if (rc < 0)
                return fail(rc, err);

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

        rc = broker_verifier_new(&(struct broker_verifier_config){.collateral = collateral,
                                                                  .pcs_url = pcs_url,
                                                                  .pcs_cache_dir = o.pcs_cache_dir,
                                                                  .pcs_ca_file = o.pcs_ca,
                                                                  .root = sim_root,
                                                                  .cache_ttl_secs = o.cache_ttl},
                                 &verifier, &err);
        if (rc < 0)
                return fail(rc, err);

        /* The broker's own identity. */
        if (o.cert_path)
                rc = broker_identity_load(o.cert_path, o.key_path, &key, &cert, &err);
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
                .key = key,
                .cert = cert,
                .policy = policy,
                .secrets = secrets,
                .audit = audit,
                .verifier = verifier,
        };
        rc = broker_server_new(&scfg, &server, &err);
        if (rc < 0)
                return fail(rc, err);
        log_info("listening on %s port %u (TLS 1.3, client RA-TLS certificates required); %zu secret(s), "
                 "collateral %s, trust root %s",
                 o.address, broker_server_port(server), policy->n_secrets, o.collateral,
                 o.trust_sim_root ? o.trust_sim_root : "Intel SGX Root CA");
        rc = broker_server_run(server, &err);
        if (rc < 0)
                return fail(rc, err);
        log_info("stopped");
        return 0;
}
