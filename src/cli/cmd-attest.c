/* conker --attest POLICY attest: attests conkerd (attest.h) and prints what it found, including
 * the attested server key as a curl --pinnedpubkey value, so that other HTTP clients can be held
 * to the key this check proved. Sends no credential. */
#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "attest.h"
#include "client.h"
#include "commands.h"
#include "parse.h"

static void usage(FILE *f)
{
        fprintf(f, "usage: conker --attest POLICY [--trust-sim-root FILE] [--collateral FILE|URL] attest "
                   "[--pin] --host https://HOST:PORT\n\n"
                   "Attests conkerd (tls-cert = auto) against POLICY and prints the result.\n"
                   "  --pin        print only the attested key, as sha256//BASE64 (curl "
                   "--pinnedpubkey)\n" CLI_COMMON_HELP);
}

int cmd_attest(int argc, char **argv)
{
        static const struct option opts[] = {
                {"help", no_argument, NULL, 'h'},
                {"pin", no_argument, NULL, 'P'},
                CLI_COMMON_OPTIONS,
                {0},
        };
        _cleanup_error_ struct ck_error *e = NULL;
        const struct cli_attest_info *info;
        struct cli_client c;
        bool pin_only = false;
        char pin[64], hex[97];
        long status = 0;
        json_t *env = NULL;
        int ch, r;

        cli_client_init(&c);
        optind = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (cli_client_option(&c, ch, optarg))
                        continue;
                if (ch == 'P') {
                        pin_only = true;
                        continue;
                }
                usage(ch == 'h' ? stdout : stderr);
                return ch == 'h' ? 0 : 2;
        }
        if (optind != argc || !cli_attest_enabled()) {
                usage(stderr);
                return 2;
        }
        /* No credential: the health route needs none, and the token file is not read. */
        c.token_file = NULL;
        r = cli_request(&c, "GET", "/sw/api/v1/pub/health", NULL, 0, &status, &env, &e);
        json_decref(env);
        cli_client_clear(&c);
        if (r < 0)
                return cli_fail("attest", r, e);
        info = cli_attest_last();
        if (!info)
                return cli_fail("attest", -EIO, NULL);
        memcpy(pin, "sha256//", 8);
        EVP_EncodeBlock((unsigned char *)pin + 8, info->key_sha256, 32);
        if (pin_only) {
                printf("%s\n", pin);
                return 0;
        }
        printf("conkerd:      %s\n", c.host);
        printf("TD:           TDX%s, TCB %s\n", info->simulated ? " (SIMULATED)" : "", info->status);
        ck_hex_encode(info->mrtd, 48, hex);
        printf("MRTD:         %s\n", hex);
        for (unsigned i = 0; i < 3; i++) {
                ck_hex_encode(info->rtmr[i], 48, hex);
                printf("RTMR%u:        %s\n", i, hex);
        }
        printf("fresh quote:  over our nonce and this TLS connection's exporter\n");
        printf("server key:   %s\n", pin);
        return 0;
}
