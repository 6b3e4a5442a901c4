/* TDX and SGX DCAP quotes: parsing by length fields, with bounds on every field.
 *
 * Contract header (owned by the attest module). Layouts: docs/tdx-verification.md §1.
 * attest_quote_parse() never reads outside buf[0..len); trailing bytes after the signature data
 * are allowed (real quotes carry padding) and ignored. The parsed quote points into the caller's
 * buffer, which must outlive it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define ATTEST_TEE_SGX 0x00000000u
#define ATTEST_TEE_TDX 0x00000081u

/* Every measurement and identity field a policy may look at. */
struct attest_measurements {
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
        uint8_t rtmr[4][48];
        uint8_t report_data[64];
        /* TD report 1.5 (quote v5 body type 3) only; zero otherwise. */
        bool has_v15;
        uint8_t tee_tcb_svn2[16];
        uint8_t mr_service_td[48];
        /* SGX enclave quotes (TEE type 0) only. */
        uint8_t mr_enclave[32];
        uint8_t mr_signer[32];
        uint8_t sgx_attributes[16];
        uint16_t isv_prod_id, isv_svn;
};

struct attest_quote {
        uint16_t version;      /* 3, 4 or 5 */
        uint16_t att_key_type; /* 2 */
        uint32_t tee_type;     /* ATTEST_TEE_SGX or ATTEST_TEE_TDX */
        uint16_t body_type;    /* 1 SGX, 2 TD report 1.0, 3 TD report 1.5 */
        uint8_t qe_vendor_id[16];
        struct attest_measurements m;

        const uint8_t *signed_region; /* [0, signed_len) of the quote */
        size_t signed_len;
        const uint8_t *signature;     /* 64 bytes r||s */
        const uint8_t *attest_key;    /* 64 bytes X||Y */
        const uint8_t *qe_report;     /* 384 bytes */
        const uint8_t *qe_report_sig; /* 64 bytes r||s */
        const uint8_t *qe_auth_data;
        size_t qe_auth_len;
        uint16_t cert_type;       /* inner certification data type (5 = PEM chain) */
        const uint8_t *cert_data; /* PEM chain, trailing NULs trimmed */
        size_t cert_len;
};

/* Parses a binary quote. Errors name the field ("quote: signature data length 9000 exceeds
 * the 4974-byte buffer"). -EBADMSG for malformed input, -EOPNOTSUPP for valid but unsupported
 * versions or types. */
int attest_quote_parse(const uint8_t *buf, size_t len, struct attest_quote *ret, struct ck_error **reterr);

/* Reads a quote file: binary, or ASCII hex (optional 0x prefix, surrounding whitespace).
 * The returned buffer is malloc'd; free it after the parsed quote. */
int attest_quote_read_file(const char *path, uint8_t **ret, size_t *ret_len, struct ck_error **reterr);
