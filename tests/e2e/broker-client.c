/* conker-broker-testclient: drives the broker from the end-to-end tests with a simulated TD.
 *
 *   conker-broker-testclient sim-init DIR
 *   conker-broker-testclient rtmr1|mrtd --sim-dir DIR --sim-state-dir DIR
 *   conker-broker-testclient fetch ENDPOINT --sim-dir DIR --sim-state-dir DIR --app-id ID
 *                            [--timeout MS] [--mismatched-key] [--allow-unpinned]
 *                            [--record DIR] [--task-config FILE] [--image-event ID]
 *                            [--no-measure] [--no-log] [--no-task-config]
 *                            [--broker-reference-values FILE --broker-collateral FILE
 *                             [--broker-trust-root FILE]]
 *   conker-broker-testclient measure --sim-dir DIR --sim-state-dir DIR --count N
 *   conker-broker-testclient legacy-identity DIR --sim-dir DIR --sim-state-dir DIR --app-id ID
 *
 * `fetch` goes through broker_fetch_secret_with(), the function conkerd's Attesting step calls,
 * and prints the secret on stdout (the tests compare it; nothing else prints it). Like conkerd,
 * it first measures "image-digest" (the --image-event ID, default the appId) and "task-config"
 * (SHA-256 of the --task-config document; default a minimal document for that image) into
 * RTMR3 unless an identical event is there already, and sends the RTMR3 log and the task-config
 * claim; --no-measure, --no-log and --no-task-config leave parts out so that the tests can show
 * each refusal.
 * --mismatched-key makes the evidence for another key than the one the session was
 * authenticated with: the broker must refuse. --record DIR also writes what a host watching the
 * TD (or holding the client's key) could keep from the exchange: the client key and certificate
 * (key.pem, cert.pem) and the evidence body (evidence.cbor), for a replay on another connection.
 * --rtmr3-log (the default) sends the simulated TD's RTMR3 log with the evidence; `measure`
 * extends RTMR3 with N distinct 4000-byte events (a long log). --broker-reference-values makes the broker
 * attest (mutual attestation, peer.h) as conkerd's kms-broker-* keys do. `legacy-identity` writes key.pem
 * and cert.pem of an old-form identity: evidence (bound to the key only) in the certificate. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "client.h"
#include "eventlog.h"
#include "fs.h"
#include "log.h"
#include "parse.h"
#include "ratls.h"
#include "sim.h"
#include "verify.h"
#include "ssl.h"
#include "tee.h"

static int fail(const char *what, int code, const struct ck_error *err)
{
        fprintf(stderr, "conker-broker-testclient %s: %s\n", what, ck_error_message(err, code));
        return 1;
}

/* Measures name/payload unless the identical event is in the runtime log already (conkerd
 * deduplicates the same way, so repeated tasks leave RTMR3 alone). */
static int measure_once(struct attest_tee *tee, const char *name, const char *payload,
                        struct ck_error **reterr)
{
        _cleanup_(attest_rt_log_clear) struct attest_rt_log log = {0};
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r;

        r = attest_tee_rt_log_read(tee, &buf, &len, reterr);
        if (r < 0)
                return r;
        r = attest_rt_log_parse(buf, len, &log, reterr);
        if (r < 0)
                return r;
        for (size_t i = 0; i < log.n; i++)
                if (strcmp(log.events[i].name, name) == 0 && strcmp(log.events[i].payload, payload) == 0)
                        return 0;
        return attest_tee_measure(tee, name, payload, reterr);
}

static int write_pem(const char *dir, const char *name, EVP_PKEY *key, X509 *cert)
{
        _cleanup_fclose_ FILE *f = NULL;
        char path[4096];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        if (!f)
                return -errno;
        if (key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1
                : PEM_write_X509(f, cert) != 1)
                return -EIO;
        return fflush(f) == 0 ? 0 : -errno;
}

struct evidence_maker {
        struct attest_tee *tee;
        const struct attest_ratls_claims *claims;
        X509 *bind_cert; /* the certificate whose key the evidence names (another one for --mismatched-key)
                          */
        const char *record_dir;
};

static int make_evidence(void *userdata, X509 *cert, const uint8_t exporter[ATTEST_RATLS_EXPORTER_LEN],
                         uint8_t **ret, size_t *ret_len, struct ck_error **reterr)
{
        struct evidence_maker *m = userdata;
        _cleanup_close_ int dfd = -1;
        int r;

        r = attest_ratls_make_evidence(m->tee, m->claims, m->bind_cert ? m->bind_cert : cert, exporter, ret,
                                       ret_len, reterr);
        if (r < 0 || !m->record_dir)
                return r;
        dfd = open(m->record_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return ck_error_errno(reterr, -errno, "%s", m->record_dir);
        r = ck_write_file_replace(dfd, "evidence.cbor", *ret, *ret_len, 0600, reterr);
        if (r < 0)
                free(TAKE_PTR(*ret));
        return r;
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"sim-dir", required_argument, NULL, 'S'},
                {"sim-state-dir", required_argument, NULL, 's'},
                {"app-id", required_argument, NULL, 'a'},
                {"timeout", required_argument, NULL, 't'},
                {"mismatched-key", no_argument, NULL, 'k'},
                {"allow-unpinned", no_argument, NULL, 'u'},
                {"record", required_argument, NULL, 'r'},
                {"task-config", required_argument, NULL, 'c'},
                {"broker-reference-values", required_argument, NULL, 'R'},
                {"rtmr3-log", no_argument, NULL, 'L'},
                {"count", required_argument, NULL, 'n'},
                {"broker-collateral", required_argument, NULL, 'C'},
                {"broker-trust-root", required_argument, NULL, 'T'},
                {"image-event", required_argument, NULL, 'i'},
                {"no-measure", no_argument, NULL, 'M'},
                {"no-log", no_argument, NULL, 'G'},
                {"no-task-config", no_argument, NULL, 'X'},
                {},
        };
        struct attest_tee_config cfg = {.kind = ATTEST_TEE_KIND_SIM};
        _cleanup_(attest_tee_freep) struct attest_tee *tee = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        const char *cmd, *app_id = NULL, *record = NULL, *task_config = NULL, *broker_rv = NULL,
                         *broker_col = NULL, *broker_root = NULL;
        _cleanup_(attest_collateral_freep) struct attest_collateral *peer_col = NULL;
        _cleanup_(X509_freep) X509 *peer_root = NULL;
        struct broker_peer_policy peer = {0};
        struct broker_client_opts opts = {0};
        uint64_t timeout = 10000, count = 0;
        const char *image_event = NULL;
        bool with_log = true, measure = true, with_tc = true;
        bool mismatched = false;
        int c, r;

        ck_log_set_ident("conker-broker-testclient");
        if (argc < 2) {
                fprintf(stderr,
                        "usage: conker-broker-testclient sim-init DIR | rtmr1 ... | fetch ENDPOINT ...\n");
                return 2;
        }
        cmd = argv[1];
        if (strcmp(cmd, "sim-init") == 0) {
                struct attest_sim_init_opts o = {.now = time(NULL), .validity_days = 30};
                if (argc != 3)
                        return 2;
                r = attest_sim_init(argv[2], &o, &err);
                return r < 0 ? fail(cmd, r, err) : 0;
        }
        optind = 2;
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (c) {
                case 'S':
                        cfg.sim_dir = optarg;
                        break;
                case 's':
                        cfg.sim_state_dir = optarg;
                        break;
                case 'a':
                        app_id = optarg;
                        break;
                case 't':
                        if (ck_parse_uint(optarg, 600000, &timeout) < 0)
                                return 2;
                        break;
                case 'k':
                        mismatched = true;
                        break;
                case 'u':
                        opts.allow_unpinned = true;
                        break;
                case 'r':
                        record = optarg;
                        break;
                case 'c':
                        task_config = optarg;
                        break;
                case 'R':
                        broker_rv = optarg;
                        break;
                case 'L':
                        with_log = true;
                        break;
                case 'n':
                        if (ck_parse_uint(optarg, ATTEST_RT_LOG_MAX_EVENTS, &count) < 0)
                                return 2;
                        break;
                case 'C':
                        broker_col = optarg;
                        break;
                case 'T':
                        broker_root = optarg;
                        break;
                case 'i':
                        image_event = optarg;
                        break;
                case 'M':
                        measure = false;
                        break;
                case 'G':
                        with_log = false;
                        break;
                case 'X':
                        with_tc = false;
                        break;
                default:
                        return 2;
                }
        }
        r = attest_tee_open(&cfg, &tee, &err);
        if (r < 0)
                return fail(cmd, r, err);
        if (broker_rv) {
                if (!broker_col)
                        return 2;
                r = attest_refvalues_load(broker_rv, &peer.refvalues, &err);
                if (r >= 0)
                        r = attest_collateral_load_file(broker_col, &peer_col, &err);
                if (r >= 0 && broker_root)
                        r = attest_root_load_file(broker_root, &peer_root, &err);
                if (r < 0)
                        return fail(cmd, r, err);
                peer.collateral = peer_col;
                peer.root = peer_root;
                opts.broker_attestation = &peer;
        }

        if (strcmp(cmd, "measure") == 0) {
                char payload[4001];

                for (uint64_t i = 0; i < count; i++) {
                        int n = snprintf(payload, sizeof(payload), "event-%llu-", (unsigned long long)i);
                        memset(payload + n, 'x', sizeof(payload) - 1 - (size_t)n);
                        payload[sizeof(payload) - 1] = 0;
                        r = attest_tee_measure(tee, "test-padding", payload, &err);
                        if (r < 0)
                                return fail(cmd, r, err);
                }
                return 0;
        }
        if (strcmp(cmd, "rtmr1") == 0 || strcmp(cmd, "mrtd") == 0) {
                struct attest_measurements m;
                char hex[97];
                r = attest_tee_measurements(tee, &m, &err);
                if (r < 0)
                        return fail(cmd, r, err);
                ck_hex_encode(cmd[0] == 'r' ? m.rtmr[1] : m.mr_td, 48, hex);
                printf("%s\n", hex);
                return 0;
        }
        if (strcmp(cmd, "fetch") == 0 && optind == argc - 1 && app_id) {
                struct attest_ratls_claims claims = {.app_id = (const uint8_t *)app_id,
                                                     .app_id_len = strlen(app_id),
                                                     .rtmr3_log_from_tee = with_log};
                _cleanup_secret_ struct ck_secret *secret = NULL;
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *other = NULL;
                _cleanup_(X509_freep) X509 *cert = NULL, *other_cert = NULL;
                _cleanup_free_ uint8_t *config = NULL;
                struct evidence_maker m = {.tee = tee, .claims = &claims, .record_dir = record};
                size_t config_len = 0;
                char tc_event[7 + 64 + 1] = "sha256:";
                uint8_t d[32];

                if (!image_event)
                        image_event = app_id;
                if (task_config) {
                        r = ck_read_file(task_config, ATTEST_RATLS_TASK_CONFIG_MAX, &config, &config_len,
                                         &err);
                        if (r < 0)
                                return fail(cmd, r, err);
                } else {
                        if (asprintf((char **)&config,
                                     "{\"env\":[],\"image\":\"example.test/app:latest\",\"imageId\":\"%s\","
                                     "\"kmsEndpoints\":[],\"mounts\":[],\"ports\":[],\"version\":1}",
                                     image_event) < 0)
                                return fail(cmd, -ENOMEM, NULL);
                        config_len = strlen((const char *)config);
                }
                if (ck_sha256(config, config_len, d) < 0)
                        return fail(cmd, -EIO, NULL);
                ck_hex_encode(d, sizeof(d), tc_event + 7);
                if (measure) {
                        r = measure_once(tee, "image-digest", image_event, &err);
                        if (r >= 0)
                                r = measure_once(tee, "task-config", tc_event, &err);
                        if (r < 0)
                                return fail(cmd, r, err);
                }
                if (with_tc) {
                        claims.task_config = config;
                        claims.task_config_len = config_len;
                }
                r = attest_ratls_make_key_cert(600, &key, &cert, &err);
                if (r < 0)
                        return fail(cmd, r, err);
                if (mismatched) {
                        r = attest_ratls_make_key_cert(600, &other, &other_cert, &err);
                        if (r < 0)
                                return fail(cmd, r, err);
                        m.bind_cert = other_cert;
                }
                if (record && (write_pem(record, "key.pem", key, NULL) < 0 ||
                               write_pem(record, "cert.pem", NULL, cert) < 0))
                        return fail(cmd, -EIO, NULL);
                opts.timeout_ms = (unsigned)timeout;
                r = broker_fetch_secret_with(argv[optind], &opts, key, cert, make_evidence, &m, &secret,
                                             &err);
                if (r < 0)
                        return fail(cmd, r, err);
                fwrite(secret->data, 1, secret->len, stdout);
                return 0;
        }
        if (strcmp(cmd, "legacy-identity") == 0 && optind == argc - 1 && app_id) {
                struct attest_ratls_claims claims = {.app_id = (const uint8_t *)app_id,
                                                     .app_id_len = strlen(app_id)};
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
                _cleanup_(X509_freep) X509 *cert = NULL;

                r = attest_ratls_make_identity(tee, &claims, 600, &key, &cert, &err);
                if (r < 0)
                        return fail(cmd, r, err);
                if (write_pem(argv[optind], "key.pem", key, NULL) < 0 ||
                    write_pem(argv[optind], "cert.pem", NULL, cert) < 0)
                        return fail(cmd, -EIO, NULL);
                return 0;
        }
        fprintf(stderr, "conker-broker-testclient: bad usage\n");
        return 2;
}
