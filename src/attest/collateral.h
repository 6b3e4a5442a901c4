/* DCAP collateral: TCB Info, QE Identity, CRLs and their issuer chains.
 *
 * Contract header (owned by the attest module). Sources: a dcap-qvl style JSON file
 * (QuoteCollateralV3 keys, see tests/data/tdx/README.md), raw PCS responses with issuer
 * chains, or a PCS/PCCS base URL over HTTPS (cached until nextUpdate). The signed JSON bodies are
 * kept as the exact bytes that were signed; they are never re-serialised. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"

struct attest_collateral; /* opaque; attest_collateral_free() */

/* Parses a dcap-qvl collateral JSON document (max 1 MiB). */
int attest_collateral_from_json(const uint8_t *buf, size_t len, struct attest_collateral **ret,
                                struct ck_error **reterr);
int attest_collateral_load_file(const char *path, struct attest_collateral **ret, struct ck_error **reterr);

/* Builds collateral from raw PCS pieces: the TCB Info and QE Identity response bodies
 * ({"tcbInfo":…,"signature":…} / {"enclaveIdentity":…,"signature":…}), their issuer chain (PEM),
 * the PCK CRL (DER) and its issuer chain (PEM), and the root CA CRL (DER). */
struct attest_collateral_parts {
        const uint8_t *tcb_info_body;
        size_t tcb_info_len;
        const uint8_t *qe_identity_body;
        size_t qe_identity_len;
        const char
                *tcb_issuer_chain_pem; /* also used for the QE Identity when qe_issuer_chain_pem is NULL */
        const char *qe_issuer_chain_pem;
        const uint8_t *pck_crl_der;
        size_t pck_crl_len;
        const char *pck_crl_issuer_chain_pem;
        const uint8_t *root_crl_der;
        size_t root_crl_len;
};
int attest_collateral_from_parts(const struct attest_collateral_parts *p, struct attest_collateral **ret,
                                 struct ck_error **reterr);

/* Fetches collateral for a quote's FMSPC and CA type from a PCS or PCCS base URL
 * (https://host[:port]), caching it under cache_dir (may be NULL) until the earliest nextUpdate.
 * ca_file may name extra trust anchors for the HTTPS connection. */
int attest_collateral_fetch(const char *base_url, const char *fmspc_hex, const char *ca_type,
                            const char *cache_dir, const char *ca_file, time_t now,
                            struct attest_collateral **ret, struct ck_error **reterr);

/* Like attest_collateral_fetch() (which fetches TDX collateral) for either TEE type: the TCB
 * Info and QE Identity come from /tdx/… for ATTEST_TEE_TDX and /sgx/… for ATTEST_TEE_SGX.
 * A cached copy is used while issueDate <= now <= its earliest nextUpdate; when it is stale and
 * the fetch fails, the error says so (-EKEYEXPIRED). */
int attest_collateral_fetch_tee(const char *base_url, uint32_t tee_type, const char *fmspc_hex,
                                const char *ca_type, const char *cache_dir, const char *ca_file, time_t now,
                                struct attest_collateral **ret, struct ck_error **reterr);

/* The earliest nextUpdate of all items (TCB Info, QE Identity, both CRLs). */
time_t attest_collateral_next_update(const struct attest_collateral *c);
/* The newer issueDate of the TCB Info and the QE Identity: how old the collateral a verdict
 * rests on is (the broker exports now minus this as a metric). */
time_t attest_collateral_issue_date(const struct attest_collateral *c);
/* Serialises to the dcap-qvl JSON layout (for caching and for `tdx-sim init`); malloc'd text. */
int attest_collateral_to_json(const struct attest_collateral *c, char **ret, struct ck_error **reterr);

void attest_collateral_free(struct attest_collateral *c);
DEFINE_POINTER_CLEANUP(struct attest_collateral, attest_collateral_free, attest_collateral_free)
