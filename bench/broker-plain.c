/* conker-broker-plain: the peer of the broker benchmark. The same server code as conker-broker
 * (listener, worker pool, TLS 1.3 context with required client certificates, request check,
 * response), with attestation, policy and audit switched off: any client that completes the
 * mutual-TLS handshake gets the secret. Built for bench/broker.sh only, never installed.
 *
 *   conker-broker-plain --port PORT --secret FILE [--workers N] */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "parse.h"
#include "policy.h"
#include "secret-store.h"
#include "server.h"
#include "ssl.h"

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"port", required_argument, NULL, 'p'},
                {"secret", required_argument, NULL, 's'},
                {"workers", required_argument, NULL, 'w'},
                {},
        };
        static const char zero96[] = "0000000000000000000000000000000000000000000000000000000000000000000000"
                                     "00000000000000000000000000";
        static const char zero64[] = "0000000000000000000000000000000000000000000000000000000000000000";
        _cleanup_(broker_policy_freep) struct broker_policy *policy = NULL;
        _cleanup_(broker_secret_store_freep) struct broker_secret_store *secrets = NULL;
        _cleanup_(broker_server_freep) struct broker_server *server = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_error_ struct ck_error *err = NULL;
        const char *secret = NULL;
        uint64_t port = 0, workers = 8;
        struct broker_secret_source src;
        sigset_t mask;
        int c, r;

        ck_log_set_ident("conker-broker-plain");
        ck_log_set_level(CK_LOG_WARN);
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                if (c == 'p' && ck_parse_uint(optarg, 65535, &port) == 0)
                        continue;
                if (c == 'w' && ck_parse_uint(optarg, 1024, &workers) == 0 && workers > 0)
                        continue;
                if (c == 's') {
                        secret = optarg;
                        continue;
                }
                return 2;
        }
        if (!secret)
                return 2;
        r = broker_policy_from_flags(
                &(struct broker_policy_flags){
                        .secret_path = secret, .mrtd = zero96, .rtmr1 = zero96, .image_id = zero64},
                &policy, &err);
        if (r >= 0) {
                src = (struct broker_secret_source){.id = policy->secrets[0].id, .path = secret};
                r = broker_secret_store_new(&src, 1, 0, &secrets, &err);
        }
        if (r >= 0)
                r = broker_identity_generate(&key, &cert, &err);
        if (r < 0) {
                fprintf(stderr, "conker-broker-plain: %s\n", ck_error_message(err, r));
                return 1;
        }
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        r = broker_server_new(&(struct broker_server_config){.address = "127.0.0.1",
                                                             .port = (uint16_t)port,
                                                             .workers = (unsigned)workers,
                                                             .key = key,
                                                             .cert = cert,
                                                             .policy = policy,
                                                             .secrets = secrets,
                                                             .bench_skip_attestation = true},
                              &server, &err);
        if (r >= 0)
                r = broker_server_run(server, &err);
        if (r < 0) {
                fprintf(stderr, "conker-broker-plain: %s\n", ck_error_message(err, r));
                return 1;
        }
        return 0;
}
