/* Internal pieces of RA-TLS shared by ratls.c (certificates) and ratls-cbor.c (evidence
 * encoding and parsing). Not for use outside the attest module. */
#pragma once

#include <cbor.h>
#include <stddef.h>
#include <stdint.h>

#include "ratls.h"

#define RATLS_EXT_OID     "2.23.133.5.4.9"
#define RATLS_TAG         60000u
#define RATLS_HASH_SHA256 1u
#define RATLS_QUOTE_MAX   (64u << 10)
#define RATLS_CLAIMS_MAX  (ATTEST_RT_LOG_MAX + ATTEST_RATLS_TASK_CONFIG_MAX + (16u << 10))
#define RATLS_EXT_MAX     (RATLS_QUOTE_MAX + RATLS_CLAIMS_MAX + 64)
_Static_assert(RATLS_EXT_MAX == ATTEST_RATLS_EVIDENCE_MAX, "ratls.h's evidence bound is out of date");
#define RATLS_APPID_MAX 1024u
#define RATLS_NONCE_MAX 1024u
#define CBOR_DEPTH_MAX  8

static inline void cbor_itemp(cbor_item_t **p)
{
        if (*p)
                cbor_decref(p);
}
#define _cleanup_cbor_ _cleanup_(cbor_itemp)

/* The claims map in the documented key order, for a key whose SPKI hashes to pkh. */
int ratls_claims_encode(const uint8_t pkh[32], const struct attest_ratls_claims *c, uint8_t **ret,
                        size_t *ret_len);
/* 60000([bstr quote, bstr claims]) */
int ratls_evidence_encode(const uint8_t *quote, size_t qlen, const uint8_t *claims, size_t clen,
                          uint8_t **ret, size_t *ret_len);
