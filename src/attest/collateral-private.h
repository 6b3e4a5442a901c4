/* Internal view of struct attest_collateral, shared by collateral.c, tcb.c, pck.c and verify.c.
 * Not part of the module's public interface.
 *
 * A collateral object holds three layers:
 *  - the source material exactly as received (PEM chains, DER CRLs, the signed JSON texts and
 *    their raw signatures); serialisation writes these back unchanged;
 *  - structures parsed from that material at load time (certificates, CRLs, TCB Info and QE
 *    Identity contents). Parsing establishes nothing about trust;
 *  - a verification cache (verify.c), filled only by attest_verify_quote(): results of checks
 *    that do not depend on the quote, each valid for one trust anchor and one time window. */
#pragma once

#include <openssl/x509.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "collateral.h"
#include "verify.h"

#define ATTEST_SVN_COMPONENTS 16
/* Largest CRL accepted (DER), loaded or fetched. */
#define CRL_MAX (512 * 1024)

struct attest_isv_level {
        uint16_t isvsvn;
        enum attest_tcb_status status;
        char **advisory_ids; /* NULL-terminated */
};

struct attest_tcb_level {
        uint8_t sgx[ATTEST_SVN_COMPONENTS];
        uint16_t pcesvn;
        uint8_t tdx[ATTEST_SVN_COMPONENTS];
        enum attest_tcb_status status;
        char **advisory_ids; /* NULL-terminated */
};

struct attest_module_identity {
        char id[16]; /* upper-cased */
        uint8_t mrsigner[48];
        uint8_t attributes[8];
        uint8_t attributes_mask[8];
        struct attest_isv_level *levels; /* in document order */
        size_t n_levels;
};

struct attest_tcb_info {
        char id[8]; /* "TDX" or "SGX" */
        unsigned version;
        time_t issue_date, next_update;
        uint8_t fmspc[6];
        uint8_t pce_id[2];
        uint32_t eval_number;
        bool has_tdx_module;
        uint8_t module_mrsigner[48];
        uint8_t module_attributes[8];
        uint8_t module_attributes_mask[8];
        struct attest_module_identity *module_ids;
        size_t n_module_ids;
        struct attest_tcb_level *levels; /* sorted descending (see tcb.c) */
        size_t n_levels;
};

struct attest_qe_identity {
        char id[8]; /* "TD_QE" or "QE" */
        unsigned version;
        time_t issue_date, next_update;
        uint32_t eval_number;
        uint32_t miscselect, miscselect_mask;
        uint8_t attributes[16], attributes_mask[16];
        uint8_t mrsigner[32];
        uint16_t isvprodid;
        struct attest_isv_level *levels; /* in document order */
        size_t n_levels;
};

/* Collateral-wide checks passed for one root and a time window (verify.c). */
struct attest_col_verified {
        uint8_t root_fp[32];
        time_t not_before, not_after;
};

/* A verified PCK chain (pck.c): keyed by the exact certification-data bytes and the root. */
struct attest_pck_info {
        uint8_t fmspc[6];
        uint8_t pce_id[2];
        uint8_t comp_svn[ATTEST_SVN_COMPONENTS];
        uint16_t pcesvn;
        uint8_t cpusvn[16];
        bool processor_ca;
};
struct attest_pck_entry {
        uint8_t root_fp[32];
        uint8_t *chain; /* copy of the PEM bytes */
        size_t chain_len;
        time_t not_before, not_after;
        EVP_PKEY *leaf_key;
        struct attest_pck_info info;
        bool uncached; /* not in the cache (it was full): released by attest_pck_entry_release() */
        /* Memo of the last attestation key decoded for this platform (X||Y -> EVP_PKEY), set under
         * the collateral lock: a pure decoding, never a verdict (see pck.c). */
        /* Memo of the last QE report this PCK key was verified to have signed: SHA-256 of the
         * report and its signature, set under the collateral lock after a successful ECDSA
         * verification of exactly those bytes (a QE certifies its AK once, so every quote of a
         * platform carries the same report). */
        bool qe_report_ok;
        uint8_t qe_report_digest[32];
        uint8_t ak_raw[64];
        EVP_PKEY *ak_key;
};

#define ATTEST_COL_VERIFIED_MAX 4
#define ATTEST_PCK_CACHE_MAX    64

struct attest_collateral {
        /* Source material, as received. */
        char *pck_crl_issuer_chain;
        char *tcb_info_issuer_chain;
        char *qe_identity_issuer_chain;
        uint8_t *root_crl_der;
        size_t root_crl_len;
        uint8_t *pck_crl_der;
        size_t pck_crl_len;
        char *tcb_info_text; /* the exact signed bytes */
        size_t tcb_info_len;
        uint8_t tcb_info_sig[64];
        char *qe_identity_text;
        size_t qe_identity_len;
        uint8_t qe_identity_sig[64];

        /* Parsed. */
        STACK_OF(X509) * pck_crl_chain;
        STACK_OF(X509) * tcb_chain;
        STACK_OF(X509) * qe_chain;
        X509_CRL *root_crl;
        X509_CRL *pck_crl;
        struct attest_tcb_info tcb;
        struct attest_qe_identity qe;

        /* Verification cache (verify.c, pck.c), guarded by lock. Entries are only appended and
         * are freed with the collateral, so a pointer taken under the lock stays valid. */
        pthread_mutex_t lock;
        struct attest_col_verified verified[ATTEST_COL_VERIFIED_MAX];
        size_t n_verified;
        struct attest_pck_entry *pck_cache[ATTEST_PCK_CACHE_MAX];
        size_t n_pck_cache;
};

/* tcb.c */
int attest_tcb_info_parse(const char *text, size_t len, struct attest_tcb_info *ret,
                          struct ck_error **reterr);
int attest_qe_identity_parse(const char *text, size_t len, struct attest_qe_identity *ret,
                             struct ck_error **reterr);
void attest_tcb_info_done(struct attest_tcb_info *t);
void attest_qe_identity_done(struct attest_qe_identity *q);
int attest_parse_date(const char *s, time_t *ret);
void attest_advisories_free(char **a);

/* pck.c */
STACK_OF(X509) * attest_pem_chain_parse(const char *pem, size_t len, size_t max_certs);
