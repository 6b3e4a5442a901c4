/* Internal: certificate chains, CRLs, validity windows and the PCK certificate (pck.c). */
#pragma once

#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "collateral-private.h"
#include "quote.h"

/* The intersection of the validity periods of everything a cached verdict depends on. */
struct attest_window {
        time_t not_before, not_after;
};
void attest_window_init(struct attest_window *w);
void attest_window_add(struct attest_window *w, time_t not_before, time_t not_after);
int attest_window_add_cert(struct attest_window *w, X509 *x);

/* thisUpdate <= now <= nextUpdate (a CRL without nextUpdate is refused); adds it to w. */
int attest_crl_check_time(X509_CRL *crl, time_t now, const char *what, struct attest_window *w,
                          struct ck_error **reterr);
bool attest_cert_cn_contains(X509 *x, const char *needle);
bool attest_cert_equal(X509 *a, X509 *b);

/* Verifies leaf (+ untrusted intermediates) up to root with a store holding only root, the
 * given CRLs for every certificate, at time now. The built chain must have exactly
 * n_depth_names certificates and end at root; depth_names name them in errors. */
int attest_chain_verify(X509 *root, X509 *leaf, STACK_OF(X509) * untrusted, STACK_OF(X509_CRL) * crls,
                        time_t now, const char *what, const char *const depth_names[], size_t n_depth_names,
                        struct attest_window *w, struct ck_error **reterr);

int attest_pck_sgx_ext_parse(X509 *leaf, struct attest_pck_info *ret, struct ck_error **reterr);

/* Steps 3 and 4 for the quote's PCK chain, through the collateral's cache. The collateral-wide
 * checks (root CRL, PCK CRL signature) must already have passed for this root and time. */
int attest_pck_chain_verify(struct attest_collateral *c, const struct attest_quote *q, X509 *root,
                            const uint8_t root_fp[32], time_t now, const struct attest_pck_entry **ret,
                            struct ck_error **reterr);
void attest_pck_entry_release(const struct attest_pck_entry *e);

/* verify.c: X||Y (64 bytes, big-endian) to a P-256 public key; -EBADMSG unless on the curve. */
int attest_ec_p256_key_from_raw(const uint8_t xy[64], EVP_PKEY **ret);
/* The quote's attestation key via the PCK entry's memo (pck.c explains why that is safe). */
/* Whether entry's PCK key already verified the QE report and signature hashing to digest, and
 * recording that it did (after a successful verification). */
bool attest_pck_entry_qe_report_verified(struct attest_collateral *c, const struct attest_pck_entry *entry,
                                         const uint8_t digest[32]);
void attest_pck_entry_qe_report_mark(struct attest_collateral *c, const struct attest_pck_entry *entry,
                                     const uint8_t digest[32]);
int attest_pck_entry_attest_key(struct attest_collateral *c, const struct attest_pck_entry *entry,
                                const uint8_t xy[64], EVP_PKEY **ret);
