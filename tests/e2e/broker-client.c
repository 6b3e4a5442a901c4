/* conker-broker-testclient: drives the broker from the end-to-end tests with a simulated TD.
 *
 *   conker-broker-testclient sim-init DIR
 *   conker-broker-testclient rtmr1 --sim-dir DIR --sim-state-dir DIR
 *   conker-broker-testclient fetch ENDPOINT --sim-dir DIR --sim-state-dir DIR --app-id ID
 *                            [--timeout MS] [--mismatched-key]
 *
 * `fetch` goes through broker_fetch_secret(), the function conkerd's Attesting step calls, and
 * prints the secret on stdout (the tests compare it; nothing else prints it). --mismatched-key
 * makes the RA-TLS identity and then swaps the certificate's key for another one (re-signing the
 * certificate), so that the evidence's pubkey-hash no longer matches: the broker must refuse. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "log.h"
#include "parse.h"
#include "ratls.h"
#include "sim.h"
#include "ssl.h"
#include "tee.h"

static int fail(const char *what, int code, const struct ck_error *err)
{
        fprintf(stderr, "conker-broker-testclient %s: %s\n", what, ck_error_message(err, code));
        return 1;
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"sim-dir", required_argument, NULL, 'S'},  {"sim-state-dir", required_argument, NULL, 's'},
                {"app-id", required_argument, NULL, 'a'},   {"timeout", required_argument, NULL, 't'},
                {"mismatched-key", no_argument, NULL, 'k'}, {},
        };
        struct attest_tee_config cfg = {.kind = ATTEST_TEE_KIND_SIM};
        _cleanup_(attest_tee_freep) struct attest_tee *tee = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        const char *cmd, *app_id = NULL;
        uint64_t timeout = 10000;
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
                default:
                        return 2;
                }
        }
        r = attest_tee_open(&cfg, &tee, &err);
        if (r < 0)
                return fail(cmd, r, err);

        if (strcmp(cmd, "rtmr1") == 0) {
                struct attest_measurements m;
                char hex[97];
                r = attest_tee_measurements(tee, &m, &err);
                if (r < 0)
                        return fail(cmd, r, err);
                ck_hex_encode(m.rtmr[1], 48, hex);
                printf("%s\n", hex);
                return 0;
        }
        if (strcmp(cmd, "fetch") == 0 && optind == argc - 1 && app_id) {
                struct attest_ratls_claims claims = {.app_id = (const uint8_t *)app_id,
                                                     .app_id_len = strlen(app_id)};
                _cleanup_secret_ struct ck_secret *secret = NULL;

                if (!mismatched)
                        r = broker_fetch_secret(argv[optind], tee, &claims, (unsigned)timeout, &secret,
                                                &err);
                else {
                        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *other = NULL;
                        _cleanup_(X509_freep) X509 *cert = NULL;
                        r = attest_ratls_make_identity(tee, &claims, 600, &key, &cert, &err);
                        if (r < 0)
                                return fail(cmd, r, err);
                        other = EVP_EC_gen("P-256");
                        if (!other || X509_set_pubkey(cert, other) != 1 ||
                            X509_sign(cert, other, EVP_sha256()) <= 0)
                                return fail(cmd, -EIO, NULL);
                        r = broker_fetch_secret_with_identity(argv[optind], other, cert, (unsigned)timeout,
                                                              &secret, &err);
                }
                if (r < 0)
                        return fail(cmd, r, err);
                fwrite(secret->data, 1, secret->len, stdout);
                return 0;
        }
        fprintf(stderr, "conker-broker-testclient: bad usage\n");
        return 2;
}
