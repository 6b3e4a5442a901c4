/* DCAP quote verification: every check of docs/tdx-verification.md §2.2, with the
 * time as an explicit input, failing closed.
 *
 * Contract header (owned by the attest module). The verifier returns a TCB status and the
 * measurements; deciding whether they are acceptable is the policy's job (broker), except for
 * signature, chain, CRL, freshness and identity failures, which are errors. */
#pragma once

#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "collateral.h"
#include "error.h"
#include "quote.h"

enum attest_tcb_status {
        ATTEST_TCB_UP_TO_DATE,
        ATTEST_TCB_SW_HARDENING_NEEDED,
        ATTEST_TCB_CONFIGURATION_NEEDED,
        ATTEST_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED,
        ATTEST_TCB_OUT_OF_DATE,
        ATTEST_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED,
        ATTEST_TCB_TD_RELAUNCH_ADVISED,
        ATTEST_TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
        ATTEST_TCB_REVOKED,
        _ATTEST_TCB_STATUS_MAX,
};
/* Intel's spelling: "UpToDate", "SWHardeningNeeded", "ConfigurationAndSWHardeningNeeded", ... */
const char *attest_tcb_status_to_string(enum attest_tcb_status s);
int attest_tcb_status_from_string(const char *s); /* -EINVAL when unknown */

struct attest_verify_opts {
        time_t now;
        /* Trust anchor. NULL = the pinned Intel SGX Root CA (compiled in, checked by its SHA-256
         * fingerprint). A simulated TD's root is accepted only when given here explicitly, and
         * the result is then marked simulated. */
        X509 *root;
};

struct attest_result {
        enum attest_tcb_status status;
        char **advisory_ids; /* NULL-terminated, sorted, deduplicated */
        size_t n_advisory_ids;
        uint32_t tee_type;
        uint16_t quote_version;
        uint32_t tcb_eval_number; /* tcbEvaluationDataNumber of the TCB Info used */
        char fmspc[13];           /* hex */
        bool simulated;           /* verified against a non-Intel root given in opts->root */
        struct attest_measurements m;
};

/* Verifies quote[0..len) with the collateral at opts->now. On failure the error names the check
 * that failed ("PCK chain: certificate signature failure", "TCB Info: issue date is in the
 * future", "TCB level: no matching TCB level (TCB not supported)"). -EBADMSG malformed,
 * -EKEYREJECTED signature/chain, -EKEYEXPIRED time window, -EKEYREVOKED revoked, -ENOENT no
 * matching TCB level / identity. */
int attest_verify_quote(const uint8_t *quote, size_t len, const struct attest_collateral *col,
                        const struct attest_verify_opts *opts, struct attest_result **ret,
                        struct ck_error **reterr);

/* JSON object with status, advisories and every measurement in hex (for `conker tdx verify
 * --json` and audit logs). Returns a new reference. */
struct json_t;
struct json_t *attest_result_to_json(const struct attest_result *r);

void attest_result_free(struct attest_result *r);
DEFINE_POINTER_CLEANUP(struct attest_result, attest_result_free, attest_result_free)

/* The FMSPC (lower-case hex) and PCK CA type ("platform" or "processor") of the quote's PCK
 * certificate, for fetching collateral. Parses the certificate only; verifies nothing. */
int attest_quote_pck_identity(const struct attest_quote *q, char ret_fmspc[13], const char **ret_ca_type,
                              struct ck_error **reterr);
/* The same, after checking the PCK chain up to root (NULL: the pinned Intel root): exactly three
 * certificates ending at root, Intel's names, signatures and validity at now. Revocation is not
 * checked (the CRLs are part of the collateral). Run before fetching collateral, so that a
 * certificate anyone can make (with any FMSPC) causes no request to the PCS: -EKEYREJECTED (or
 * the chain error's -errno) when the chain does not verify. */
int attest_quote_pck_identity_verified(const struct attest_quote *q, X509 *root, time_t now,
                                       char ret_fmspc[13], const char **ret_ca_type,
                                       struct ck_error **reterr);

/* A verification time: unix seconds, or RFC 3339 ("2025-07-19T10:00:34Z", optional fractional
 * seconds, or a numeric offset "+02:00"). -EINVAL otherwise. */
int attest_time_parse(const char *s, time_t *ret);

/* Certificate names the verifier requires (as Intel's QVL does; a simulated PKI must use the same
 * shape): PCK leaf CN contains "SGX PCK Certificate"; PCK CA CN contains "SGX PCK Platform CA"
 * or "SGX PCK Processor CA"; TCB Info / QE Identity signer CN contains "SGX TCB Signing". The
 * PCK chain in the quote has exactly 3 certificates (leaf, CA, root), the issuer chains exactly
 * 2 (signer or CA, root), and the root must be byte-identical to the trust anchor.
 *
 * A TCB status of Revoked (platform, TDX module or QE level) is an error (-EKEYREVOKED), never a
 * result. */

/* The pinned Intel SGX Root CA (a new reference). */
X509 *attest_intel_root_ca(void);
/* Loads a PEM or DER root certificate from a file. */
int attest_root_load_file(const char *path, X509 **ret, struct ck_error **reterr);
