/* Internal pieces of the simulated TD shared by sim.c (the test PKI made by `tdx-sim init`),
 * sim-pki.c (certificate, CRL and signature helpers) and tee-sim.c (the quoting TD).
 * Not for use outside the attest module, except by its unit tests. */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <time.h>

#include "error.h"
#include "quote.h"

/* File names inside the sim directory (sim.h). */
#define SIM_FILE_ROOT       "root-ca.pem"
#define SIM_FILE_COLLATERAL "collateral.json"
#define SIM_FILE_PCK_CHAIN  "pck-chain.pem"
#define SIM_FILE_PCK_KEY    "pck-key.pem"
#define SIM_FILE_AK_KEY     "qe-ak-key.pem"
#define SIM_FILE_PROFILE    "profile.json"

/* The simulated platform: what the PCK certificate claims and the TCB Info / QE Identity
 * expect. The UpToDate TCB level equals these values; the OutOfDate level is below them. */
#define SIM_FMSPC_HEX "00C0DE000000"
#define SIM_PCEID_HEX "0000"
#define SIM_PCESVN    11
extern const uint8_t sim_fmspc[6];
extern const uint8_t sim_pceid[2];
extern const uint8_t sim_sgx_comps[16];
#define SIM_QE_ISVPRODID 2
#define SIM_QE_ISVSVN    4
#define SIM_QE_ATTR0     0x11 /* QE ATTRIBUTES byte 0: INIT | MODE64BIT, not DEBUG */
#define SIM_USER_DATA    "CONKER-SIMULATED"
extern const uint8_t sim_qe_vendor_id[16];
/* The simulated QE's MRSIGNER: SHA-256 of this label. */
#define SIM_QE_SIGNER_LABEL "Conker SIMULATED TD QE signer"

/* The measurement profile of the simulated TD (profile.json). */
struct sim_profile {
        uint8_t tee_tcb_svn[16];
        uint8_t mr_seam[48];
        uint8_t mr_signer_seam[48];
        uint8_t seam_attributes[8];
        uint8_t td_attributes[8];
        uint8_t xfam[8];
        uint8_t mr_td[48];
        uint8_t mr_config_id[48];
        uint8_t mr_owner[48];
        uint8_t mr_owner_config[48];
        uint8_t rtmr[3][48];
};

void sim_profile_default(struct sim_profile *p);
/* Parses profile JSON. With base non-NULL, keys absent from the document keep base's values;
 * with base NULL every key is required. Unknown keys are rejected. */
int sim_profile_parse(const uint8_t *buf, size_t len, const struct sim_profile *base,
                      struct sim_profile *ret, struct ck_error **reterr);
int sim_profile_to_json(const struct sim_profile *p, char **ret);

/* PKI helpers (sim-pki.c). */
int sim_key_new(EVP_PKEY **ret, struct ck_error **reterr);
/* A certificate for key, signed by issuer_key (issuer NULL = self-signed). ca: pathlen for a
 * CA (>= 0) or -1 for an end-entity; ext: an extra extension to add (may be NULL). */
int sim_cert_make(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int ca,
                  time_t not_before, time_t not_after, X509_EXTENSION *ext, X509 **ret,
                  struct ck_error **reterr);
/* The SGX PCK extension (OID 1.2.840.113741.1.13.1) in Intel's DER layout. */
int sim_sgx_ext_make(const uint8_t ppid[16], const uint8_t comps[16], unsigned pcesvn,
                     const uint8_t cpusvn[16], const uint8_t pceid[2], const uint8_t fmspc[6],
                     const uint8_t platform_instance_id[16], X509_EXTENSION **ret, struct ck_error **reterr);
/* A DER CRL by issuer, valid [this_update, next_update), revoking the given serials. */
int sim_crl_make(X509 *issuer, EVP_PKEY *issuer_key, time_t this_update, time_t next_update,
                 const uint64_t *revoked, size_t n_revoked, uint8_t **ret, size_t *ret_len,
                 struct ck_error **reterr);
/* ECDSA P-256 / SHA-256 over data, as raw r||s (the quote and collateral signature format). */
int sim_sign_raw(EVP_PKEY *key, const void *data, size_t len, uint8_t ret[64], struct ck_error **reterr);
/* The uncompressed public point X||Y of a P-256 key. */
int sim_pubkey_raw(EVP_PKEY *key, uint8_t ret[64], struct ck_error **reterr);
int sim_pem_of_cert(X509 *cert, char **ret, size_t *ret_len);
int sim_pem_of_key(EVP_PKEY *key, char **ret, size_t *ret_len);
