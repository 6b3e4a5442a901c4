/* `conker --attest POLICY`: before any request carries the token or a registry password, the
 * client proves that the conkerd at the other end of the TLS connection is a TD whose
 * measurements meet POLICY (a reference-values file, refvalues.h) and that it holds the
 * connection's key now (docs/API.md "Attested TLS").
 *
 * On each connection: TLS 1.3 with the server certificate accepted only provisionally (no CA,
 * no host name: the certificate is self-signed and its quote is what identifies it); then
 * GET /sw/api/v1/pub/attest?nonce=<32 random bytes> without any credential; then, in order:
 * the certificate's quote (DCAP, collateral from a file or PCS/PCCS), the TD checks (TDX, TCB
 * UpToDate or what --attest-tcb lists, not a debug TD, the reference values), the certificate key binding,
 * and the fresh evidence over that nonce and this connection's TLS exporter. Only then is the request sent,
 * on the same connection; a new connection, and every later request of this process to the same
 * host, must present the same, now attested, key. */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct cli_attest_opts {
        const char *policy;     /* reference-values JSON file (required) */
        const char *sim_root;   /* --trust-sim-root: accept a simulated TD with this root */
        const char *collateral; /* a dcap-qvl JSON file or a PCS/PCCS base URL */
        const char *pcs_ca;     /* extra CA certificates for the PCS/PCCS connection */
        const char *cache_dir;  /* collateral cache for URLs */
        const char *tcb;        /* accepted TCB statuses, comma-separated (NULL: UpToDate) */
};

#define CLI_ATTEST_PCS_DEFAULT "https://api.trustedservices.intel.com"

/* Loads the policy and the trust root; from then on every request attests conkerd first. */
int cli_attest_configure(const struct cli_attest_opts *o, struct ck_error **reterr);
bool cli_attest_enabled(void);
void cli_attest_reset(void);

/* What the last successful attestation found (NULL when none): for `conker attest`. */
struct cli_attest_info {
        const char *status; /* TCB status, Intel's spelling */
        bool simulated;
        uint8_t mrtd[48];
        uint8_t rtmr[3][48];
        uint8_t key_sha256[32]; /* SHA-256 of the server key's SPKI (curl --pinnedpubkey) */
};
const struct cli_attest_info *cli_attest_last(void);

/* Attests conkerd at base_url (https://…) on curl's connection, which later requests reuse.
 * *ret must stay alive (and curl must not be used with another host) until the handle is
 * cleaned up; free it with cli_attest_conn_free() after curl_easy_cleanup(). */
struct cli_attest_conn;
int cli_attest_connect(CURL *curl, const char *base_url, struct cli_attest_conn **ret,
                       struct ck_error **reterr);
/* Whether a connection made after the attestation presented another key (and was refused). */
bool cli_attest_conn_key_changed(const struct cli_attest_conn *a);
void cli_attest_conn_free(struct cli_attest_conn *a);
DEFINE_POINTER_CLEANUP(struct cli_attest_conn, cli_attest_conn_free, cli_attest_conn_free)
