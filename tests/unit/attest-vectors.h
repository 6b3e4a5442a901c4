/* Helpers for the attest unit tests: loading the TDX/SGX vectors of tests/data/tdx
 * ($CONKER_TESTDATA/tdx; tests/data/tdx/README.md lists their origin and expected outcomes). */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collateral.h"
#include "fs.h"
#include "parse.h"
#include "ssl.h"
#include "quote.h"
#include "verify.h"

#define TDX_DIR "tdx/"

static inline char *vec_path(const char *rel)
{
        const char *data = getenv("CONKER_TESTDATA");
        char *p = NULL;

        if (!data)
                data = "tests/data";
        if (asprintf(&p, "%s/%s%s", data, TDX_DIR, rel) < 0)
                abort();
        return p;
}

static inline uint8_t *vec_read(const char *rel, size_t *len)
{
        _cleanup_free_ char *p = vec_path(rel);
        uint8_t *d = NULL;

        if (ck_read_file(p, 4 * 1024 * 1024, &d, len, NULL) < 0) {
                fprintf(stderr, "cannot read %s\n", p);
                abort();
        }
        return d;
}

static inline uint8_t *vec_quote(const char *rel, size_t *len)
{
        _cleanup_free_ char *p = vec_path(rel);
        uint8_t *d = NULL;

        if (attest_quote_read_file(p, &d, len, NULL) < 0) {
                fprintf(stderr, "cannot read quote %s\n", p);
                abort();
        }
        return d;
}

static inline struct attest_collateral *vec_collateral(const char *rel)
{
        _cleanup_free_ char *p = vec_path(rel);
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_collateral *c = NULL;

        if (attest_collateral_load_file(p, &c, &e) < 0) {
                fprintf(stderr, "cannot load collateral %s: %s\n", p, ck_error_message(e, -EIO));
                abort();
        }
        return c;
}

/* The go-tdx-guest collateral, from raw PCS parts. */
static inline struct attest_collateral *vec_collateral_go(void)
{
        size_t lt = 0, lq = 0, lc = 0, lp = 0, lr = 0, lpc = 0;
        _cleanup_free_ uint8_t *tcb = vec_read("go-tdx-guest/sample_tcbInfo_response", &lt);
        _cleanup_free_ uint8_t *qe = vec_read("go-tdx-guest/sample_qeIdentity_response", &lq);
        _cleanup_free_ uint8_t *chain = vec_read("go-tdx-guest/tcb_signing_chain.pem", &lc);
        _cleanup_free_ uint8_t *pck = vec_read("go-tdx-guest/pckcrl", &lp);
        _cleanup_free_ uint8_t *pckchain = vec_read("go-tdx-guest/pck_crl_issuer_chain.pem", &lpc);
        _cleanup_free_ uint8_t *root = vec_read("go-tdx-guest/rootcrl.der", &lr);
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_collateral_parts parts = {
                .tcb_info_body = tcb,
                .tcb_info_len = lt,
                .qe_identity_body = qe,
                .qe_identity_len = lq,
                .tcb_issuer_chain_pem = (const char *)chain,
                .pck_crl_der = pck,
                .pck_crl_len = lp,
                .pck_crl_issuer_chain_pem = (const char *)pckchain,
                .root_crl_der = root,
                .root_crl_len = lr,
        };
        struct attest_collateral *c = NULL;

        if (attest_collateral_from_parts(&parts, &c, &e) < 0) {
                fprintf(stderr, "cannot build go-tdx-guest collateral: %s\n", ck_error_message(e, -EIO));
                abort();
        }
        return c;
}

static inline bool hex_eq(const uint8_t *p, size_t n, const char *hex)
{
        char buf[2 * 128 + 1];

        if (n > 128)
                return false;
        ck_hex_encode(p, n, buf);
        return strcmp(buf, hex) == 0;
}
