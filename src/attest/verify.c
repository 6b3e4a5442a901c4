/* DCAP quote verification (reference §2.2), the orchestration: steps in order, each failing
 * closed with an error that names the check.
 *
 * Order: 1 parse; 2 trust anchor and root CRL; collateral-wide checks (TCB Info, QE Identity and
 * PCK CRL issuer chains, signatures over the exact signed bytes, dates); 3-4 PCK chain and SGX
 * extension (pck.c); 5 TCB Info against the quote and PCK; 6 QE Identity kind; 7 TDX module
 * identity; 8 QE report signature; 9 QE binding; 10 QE identity match; 11 quote signature; 12 TCB
 * level matching and status (tcb.c); 13 result.
 *
 * Caching, and why it is safe. Verifying many quotes against one collateral object should only
 * redo the per-quote work. Two things are cached inside the collateral:
 *  - the collateral-wide checks, which depend only on the collateral bytes (immutable once
 *    loaded), the trust anchor (part of the key, by SHA-256 of its DER) and the time (the entry
 *    records the intersection of the validity periods of every certificate, CRL and signed JSON
 *    involved, and is used only when `now` lies inside it);
 *  - verified PCK chains (pck.c), keyed by the exact chain bytes from the quote and the root,
 *    again with their validity window. The PCK CRL and root CRL they were checked against are
 *    the collateral's own.
 * Per quote we still parse, verify the QE report signature with the PCK key, check the QE
 * binding and identity, verify the quote signature with the attestation key, and match TCB
 * levels: no verdict that depends on the quote's bytes outside the PCK chain is ever cached.
 * (The one other memo, of the attestation key decoded from its 64 bytes, caches a pure decoding,
 * not a verdict; see attest_pck_entry_attest_key().)
 *
 * With that, a verification costs two P-256 verifications plus small change; bench/verify.sh
 * measures it against `openssl speed ecdsap256` (about 0.8 of verify_rate / 2 on the build
 * machine). */
#include <errno.h>
#include <pthread.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <string.h>

#include "collateral-private.h"
#include "fs.h"
#include "json.h"
#include "parse.h"
#include "pck.h"
#include "ssl.h"
#include "tcb.h"
#include "verify.h"

/* The Intel SGX Root CA (CN=Intel SGX Root CA, 2018-05-21 .. 2049-12-31), DER. */
static const uint8_t intel_root_der[] = {
        0x30, 0x82, 0x02, 0x8f, 0x30, 0x82, 0x02, 0x34, 0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x14, 0x22, 0x65,
        0x0c, 0xd6, 0x5a, 0x9d, 0x34, 0x89, 0xf3, 0x83, 0xb4, 0x95, 0x52, 0xbf, 0x50, 0x1b, 0x39, 0x27, 0x06,
        0xac, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x30, 0x68, 0x31, 0x1a,
        0x30, 0x18, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x11, 0x49, 0x6e, 0x74, 0x65, 0x6c, 0x20, 0x53, 0x47,
        0x58, 0x20, 0x52, 0x6f, 0x6f, 0x74, 0x20, 0x43, 0x41, 0x31, 0x1a, 0x30, 0x18, 0x06, 0x03, 0x55, 0x04,
        0x0a, 0x0c, 0x11, 0x49, 0x6e, 0x74, 0x65, 0x6c, 0x20, 0x43, 0x6f, 0x72, 0x70, 0x6f, 0x72, 0x61, 0x74,
        0x69, 0x6f, 0x6e, 0x31, 0x14, 0x30, 0x12, 0x06, 0x03, 0x55, 0x04, 0x07, 0x0c, 0x0b, 0x53, 0x61, 0x6e,
        0x74, 0x61, 0x20, 0x43, 0x6c, 0x61, 0x72, 0x61, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x08,
        0x0c, 0x02, 0x43, 0x41, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 0x55, 0x53,
        0x30, 0x1e, 0x17, 0x0d, 0x31, 0x38, 0x30, 0x35, 0x32, 0x31, 0x31, 0x30, 0x34, 0x35, 0x31, 0x30, 0x5a,
        0x17, 0x0d, 0x34, 0x39, 0x31, 0x32, 0x33, 0x31, 0x32, 0x33, 0x35, 0x39, 0x35, 0x39, 0x5a, 0x30, 0x68,
        0x31, 0x1a, 0x30, 0x18, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x11, 0x49, 0x6e, 0x74, 0x65, 0x6c, 0x20,
        0x53, 0x47, 0x58, 0x20, 0x52, 0x6f, 0x6f, 0x74, 0x20, 0x43, 0x41, 0x31, 0x1a, 0x30, 0x18, 0x06, 0x03,
        0x55, 0x04, 0x0a, 0x0c, 0x11, 0x49, 0x6e, 0x74, 0x65, 0x6c, 0x20, 0x43, 0x6f, 0x72, 0x70, 0x6f, 0x72,
        0x61, 0x74, 0x69, 0x6f, 0x6e, 0x31, 0x14, 0x30, 0x12, 0x06, 0x03, 0x55, 0x04, 0x07, 0x0c, 0x0b, 0x53,
        0x61, 0x6e, 0x74, 0x61, 0x20, 0x43, 0x6c, 0x61, 0x72, 0x61, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55,
        0x04, 0x08, 0x0c, 0x02, 0x43, 0x41, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02,
        0x55, 0x53, 0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x0b, 0xa9, 0xc4, 0xc0, 0xc0,
        0xc8, 0x61, 0x93, 0xa3, 0xfe, 0x23, 0xd6, 0xb0, 0x2c, 0xda, 0x10, 0xa8, 0xbb, 0xd4, 0xe8, 0x8e, 0x48,
        0xb4, 0x45, 0x85, 0x61, 0xa3, 0x6e, 0x70, 0x55, 0x25, 0xf5, 0x67, 0x91, 0x8e, 0x2e, 0xdc, 0x88, 0xe4,
        0x0d, 0x86, 0x0b, 0xd0, 0xcc, 0x4e, 0xe2, 0x6a, 0xac, 0xc9, 0x88, 0xe5, 0x05, 0xa9, 0x53, 0x55, 0x8c,
        0x45, 0x3f, 0x6b, 0x09, 0x04, 0xae, 0x73, 0x94, 0xa3, 0x81, 0xbb, 0x30, 0x81, 0xb8, 0x30, 0x1f, 0x06,
        0x03, 0x55, 0x1d, 0x23, 0x04, 0x18, 0x30, 0x16, 0x80, 0x14, 0x22, 0x65, 0x0c, 0xd6, 0x5a, 0x9d, 0x34,
        0x89, 0xf3, 0x83, 0xb4, 0x95, 0x52, 0xbf, 0x50, 0x1b, 0x39, 0x27, 0x06, 0xac, 0x30, 0x52, 0x06, 0x03,
        0x55, 0x1d, 0x1f, 0x04, 0x4b, 0x30, 0x49, 0x30, 0x47, 0xa0, 0x45, 0xa0, 0x43, 0x86, 0x41, 0x68, 0x74,
        0x74, 0x70, 0x73, 0x3a, 0x2f, 0x2f, 0x63, 0x65, 0x72, 0x74, 0x69, 0x66, 0x69, 0x63, 0x61, 0x74, 0x65,
        0x73, 0x2e, 0x74, 0x72, 0x75, 0x73, 0x74, 0x65, 0x64, 0x73, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x73,
        0x2e, 0x69, 0x6e, 0x74, 0x65, 0x6c, 0x2e, 0x63, 0x6f, 0x6d, 0x2f, 0x49, 0x6e, 0x74, 0x65, 0x6c, 0x53,
        0x47, 0x58, 0x52, 0x6f, 0x6f, 0x74, 0x43, 0x41, 0x2e, 0x64, 0x65, 0x72, 0x30, 0x1d, 0x06, 0x03, 0x55,
        0x1d, 0x0e, 0x04, 0x16, 0x04, 0x14, 0x22, 0x65, 0x0c, 0xd6, 0x5a, 0x9d, 0x34, 0x89, 0xf3, 0x83, 0xb4,
        0x95, 0x52, 0xbf, 0x50, 0x1b, 0x39, 0x27, 0x06, 0xac, 0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01,
        0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x01, 0x06, 0x30, 0x12, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01,
        0xff, 0x04, 0x08, 0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x01, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x03, 0x49, 0x00, 0x30, 0x46, 0x02, 0x21, 0x00, 0xe5, 0xbf, 0xe5,
        0x09, 0x11, 0xf9, 0x2f, 0x42, 0x89, 0x20, 0xdc, 0x36, 0x8a, 0x30, 0x2e, 0xe3, 0xd1, 0x2e, 0xc5, 0x86,
        0x7f, 0xf6, 0x22, 0xec, 0x64, 0x97, 0xf7, 0x80, 0x60, 0xc1, 0x3c, 0x20, 0x02, 0x21, 0x00, 0xe0, 0x9d,
        0x25, 0xac, 0x7a, 0x0c, 0xb3, 0xe5, 0xe8, 0xe6, 0x8f, 0xec, 0x5f, 0xa3, 0xbd, 0x41, 0x6c, 0x47, 0x44,
        0x0b, 0xd9, 0x50, 0x63, 0x9d, 0x45, 0x0e, 0xdc, 0xbe, 0xa4, 0x57, 0x6a, 0xa2,
};
static const uint8_t intel_root_sha256[32] = {
        0x44, 0xa0, 0x19, 0x6b, 0x2b, 0x99, 0xf8, 0x89, 0xb8, 0xe1, 0x49, 0xe9, 0x5b, 0x80, 0x7a, 0x35,
        0x0e, 0x74, 0x24, 0x96, 0x43, 0x99, 0xe8, 0x85, 0xa7, 0xcb, 0xb8, 0xcc, 0xfa, 0xb6, 0x74, 0xd3,
};

#define ROOT_FILE_MAX (64 * 1024)

static const char *const status_names[_ATTEST_TCB_STATUS_MAX] = {
        [ATTEST_TCB_UP_TO_DATE] = "UpToDate",
        [ATTEST_TCB_SW_HARDENING_NEEDED] = "SWHardeningNeeded",
        [ATTEST_TCB_CONFIGURATION_NEEDED] = "ConfigurationNeeded",
        [ATTEST_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED] = "ConfigurationAndSWHardeningNeeded",
        [ATTEST_TCB_OUT_OF_DATE] = "OutOfDate",
        [ATTEST_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED] = "OutOfDateConfigurationNeeded",
        [ATTEST_TCB_TD_RELAUNCH_ADVISED] = "TDRelaunchAdvised",
        [ATTEST_TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED] = "TDRelaunchAdvisedConfigurationNeeded",
        [ATTEST_TCB_REVOKED] = "Revoked",
};

const char *attest_tcb_status_to_string(enum attest_tcb_status s)
{
        return (unsigned)s < _ATTEST_TCB_STATUS_MAX ? status_names[s] : "unknown";
}

int attest_tcb_status_from_string(const char *s)
{
        for (int i = 0; i < _ATTEST_TCB_STATUS_MAX; i++)
                if (strcmp(s, status_names[i]) == 0)
                        return i;
        return -EINVAL;
}

/* ---- trust anchor ---- */

/* Parsed once per process: verification is on the hot path of a broker. */
static pthread_once_t intel_root_once = PTHREAD_ONCE_INIT;
static X509 *intel_root;

static void intel_root_init(void)
{
        const unsigned char *p = intel_root_der;
        uint8_t fp[32];

        /* The fingerprint check guards the compiled-in bytes against an accidental edit. */
        if (ck_sha256(intel_root_der, sizeof(intel_root_der), fp) < 0 ||
            memcmp(fp, intel_root_sha256, 32) != 0)
                return;
        intel_root = d2i_X509(NULL, &p, sizeof(intel_root_der));
}

X509 *attest_intel_root_ca(void)
{
        pthread_once(&intel_root_once, intel_root_init);
        if (!intel_root || X509_up_ref(intel_root) != 1)
                return NULL;
        return intel_root;
}

int attest_root_load_file(const char *path, X509 **ret, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_(BIO_free_allp) BIO *bio = NULL;
        const unsigned char *p;
        size_t len = 0;
        X509 *x;
        int r;

        r = ck_read_file(path, ROOT_FILE_MAX, &data, &len, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "root certificate %s", path);
        p = data;
        x = d2i_X509(NULL, &p, (long)len);
        if (x && p != data + len) {
                X509_free(x);
                x = NULL;
        }
        if (!x) {
                bio = BIO_new_mem_buf(data, (int)len);
                x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        }
        ERR_clear_error();
        if (!x)
                return ck_error_set(reterr, -EBADMSG, "root certificate %s: not a PEM or DER certificate",
                                    path);
        *ret = x;
        return 0;
}

static int cert_fingerprint(X509 *x, uint8_t fp[32])
{
        _cleanup_free_ unsigned char *der = NULL;
        int n = i2d_X509(x, &der);

        if (n <= 0)
                return -EBADMSG;
        return ck_sha256(der, (size_t)n, fp);
}

/* ---- ECDSA P-256 with raw r||s signatures ---- */

/* SHA-256 fetched once: in OpenSSL 3 every use of EVP_sha256() in a digest operation repeats an
 * implicit provider fetch, which is measurable next to an ECDSA verification. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void sha256_md_init(void)
{
        sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int sha256_parts(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[32])
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        pthread_once(&sha256_once, sha256_md_init);
        if (!ctx || !sha256_md || EVP_DigestInit_ex(ctx, sha256_md, NULL) != 1 ||
            EVP_DigestUpdate(ctx, a, alen) != 1 || (blen && EVP_DigestUpdate(ctx, b, blen) != 1) ||
            EVP_DigestFinal_ex(ctx, out, NULL) != 1)
                return -ENOMEM;
        return 0;
}

static int ecdsa_verify_raw(EVP_PKEY *key, const uint8_t *data, size_t len, const uint8_t sig[64])
{
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *s = ECDSA_SIG_new();
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        unsigned char der[80], *p = der;
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *sv = BN_bin2bn(sig + 32, 32, NULL);
        uint8_t digest[32];
        int n, ok;

        if (!s || !r || !sv || !ECDSA_SIG_set0(s, r, sv)) {
                BN_free(r);
                BN_free(sv);
                return -ENOMEM;
        }
        /* r, s < 2^256: at most 2 + 2 * (2 + 33) = 72 bytes of DER. */
        if (i2d_ECDSA_SIG(s, NULL) > (int)sizeof(der))
                return -EBADMSG;
        n = i2d_ECDSA_SIG(s, &p);
        if (n <= 0 || sha256_parts(data, len, NULL, 0, digest) < 0)
                return -ENOMEM;
        /* The digest is computed here, so the signature operation needs no digest of its own; the
         * key is P-256 and the digest 32 bytes, exactly what ECDSA-with-SHA256 verifies. */
        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        if (!ctx || EVP_PKEY_verify_init(ctx) != 1)
                return -ENOMEM;
        ok = EVP_PKEY_verify(ctx, der, (size_t)n, digest, sizeof(digest));
        ERR_clear_error();
        return ok == 1 ? 1 : 0;
}

int attest_ec_p256_key_from_raw(const uint8_t xy[64], EVP_PKEY **ret)
{
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        uint8_t pub[65];
        char group[] = "prime256v1";
        OSSL_PARAM params[3];

        pub[0] = 0x04;
        memcpy(pub + 1, xy, 64);
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
        params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
        params[2] = OSSL_PARAM_construct_end();
        /* Importing the uncompressed point decodes it with EC_POINT_oct2point(), which rejects
         * coordinates outside [0, p) and points that are not on the curve (test-attest-tcb checks
         * both). P-256 has cofactor 1, so that makes it a valid public key; a separate
         * EVP_PKEY_public_check_quick() would repeat the same checks at a third of the cost of an
         * ECDSA verification, on the hot path. */
        if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
            EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
                ERR_clear_error();
                return -EBADMSG;
        }
        *ret = TAKE_PTR(key);
        return 0;
}

/* ---- collateral-wide checks ---- */

static const char *const signer_depth_names[] = {"signing certificate", "root certificate"};

/* A 2-certificate issuer chain (signer, root) that must end at the trust anchor. */
static int issuer_chain_verify(STACK_OF(X509) * chain, X509 *root, X509_CRL *root_crl, time_t now,
                               const char *what, struct attest_window *w, struct ck_error **reterr)
{
        STACK_OF(X509_CRL) * crls;
        int r;

        if (sk_X509_num(chain) != 2)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "%s: issuer chain has %d certificates, expected 2", what,
                                    sk_X509_num(chain));
        if (!attest_cert_equal(sk_X509_value(chain, 1), root))
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "%s: issuer chain does not end at the trusted root", what);
        crls = sk_X509_CRL_new_null();
        if (!crls || !sk_X509_CRL_push(crls, root_crl)) {
                sk_X509_CRL_free(crls);
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        /* CRL_CHECK_ALL also checks the root against the root CRL. */
        r = attest_chain_verify(root, sk_X509_value(chain, 0), NULL, crls, now, what, signer_depth_names, 2,
                                w, reterr);
        sk_X509_CRL_free(crls);
        return r;
}

static int signed_json_verify(STACK_OF(X509) * chain, X509 *root, X509_CRL *root_crl, const char *text,
                              size_t len, const uint8_t sig[64], time_t issue, time_t next, time_t now,
                              const char *what, struct attest_window *w, struct ck_error **reterr)
{
        EVP_PKEY *key;
        int r;

        r = issuer_chain_verify(chain, root, root_crl, now, what, w, reterr);
        if (r < 0)
                return r;
        if (!attest_cert_cn_contains(sk_X509_value(chain, 0), "SGX TCB Signing"))
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "%s: signer CN is not an SGX TCB Signing certificate", what);
        key = X509_get0_pubkey(sk_X509_value(chain, 0));
        if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
                return ck_error_set(reterr, -EKEYREJECTED, "%s: signer key is not EC", what);
        r = ecdsa_verify_raw(key, (const uint8_t *)text, len, sig);
        if (r < 0)
                return ck_error_set(reterr, r, "%s: signature verification error", what);
        if (r == 0)
                return ck_error_set(reterr, -EKEYREJECTED, "%s: signature verification failed", what);
        if (now < issue)
                return ck_error_set(reterr, -EKEYEXPIRED, "%s: issue date is in the future", what);
        if (now > next)
                return ck_error_set(reterr, -EKEYEXPIRED, "%s: expired (nextUpdate has passed)", what);
        attest_window_add(w, issue, next);
        return 0;
}

static int collateral_verify_full(struct attest_collateral *c, X509 *root, time_t now,
                                  struct attest_window *w, struct ck_error **reterr)
{
        X509_REVOKED *rev = NULL;
        EVP_PKEY *root_key = X509_get0_pubkey(root), *ca_key;
        X509 *pck_ca;
        int r;

        /* Step 2: the root CRL, signed by the root, current, and not revoking the root. */
        if (X509_NAME_cmp(X509_CRL_get_issuer(c->root_crl), X509_get_subject_name(root)) != 0)
                return ck_error_set(reterr, -EKEYREJECTED, "root CA CRL: issuer is not the trusted root");
        if (!root_key || X509_CRL_verify(c->root_crl, root_key) != 1) {
                ERR_clear_error();
                return ck_error_set(reterr, -EKEYREJECTED, "root CA CRL: signature verification failed");
        }
        r = attest_crl_check_time(c->root_crl, now, "root CA CRL", w, reterr);
        if (r < 0)
                return r;
        if (X509_CRL_get0_by_cert(c->root_crl, &rev, root) == 1)
                return ck_error_set(reterr, -EKEYREVOKED, "root CA CRL: the root certificate is revoked");
        if (attest_window_add_cert(w, root) < 0)
                return ck_error_set(reterr, -EBADMSG, "root certificate: unreadable validity dates");

        /* The PCK CRL and its issuer chain (PCK Platform/Processor CA, root). */
        r = issuer_chain_verify(c->pck_crl_chain, root, c->root_crl, now, "PCK CRL issuer chain", w, reterr);
        if (r < 0)
                return r;
        pck_ca = sk_X509_value(c->pck_crl_chain, 0);
        if (!attest_cert_cn_contains(pck_ca, "SGX PCK Platform CA") &&
            !attest_cert_cn_contains(pck_ca, "SGX PCK Processor CA"))
                return ck_error_set(reterr, -EKEYREJECTED, "PCK CRL issuer chain: CN is not an SGX PCK CA");
        if (X509_NAME_cmp(X509_CRL_get_issuer(c->pck_crl), X509_get_subject_name(pck_ca)) != 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "PCK CRL: issuer does not match its issuer chain");
        ca_key = X509_get0_pubkey(pck_ca);
        if (!ca_key || X509_CRL_verify(c->pck_crl, ca_key) != 1) {
                ERR_clear_error();
                return ck_error_set(reterr, -EKEYREJECTED, "PCK CRL: signature verification failed");
        }
        r = attest_crl_check_time(c->pck_crl, now, "PCK CRL", w, reterr);
        if (r < 0)
                return r;

        /* Steps 5 and 6, the parts that do not depend on the quote. */
        r = signed_json_verify(c->tcb_chain, root, c->root_crl, c->tcb_info_text, c->tcb_info_len,
                               c->tcb_info_sig, c->tcb.issue_date, c->tcb.next_update, now, "TCB Info", w,
                               reterr);
        if (r < 0)
                return r;
        return signed_json_verify(c->qe_chain, root, c->root_crl, c->qe_identity_text, c->qe_identity_len,
                                  c->qe_identity_sig, c->qe.issue_date, c->qe.next_update, now,
                                  "QE Identity", w, reterr);
}

static int collateral_verify(struct attest_collateral *c, X509 *root, const uint8_t root_fp[32], time_t now,
                             struct ck_error **reterr)
{
        struct attest_window w;
        int r;

        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n_verified; i++)
                if (memcmp(c->verified[i].root_fp, root_fp, 32) == 0 && now >= c->verified[i].not_before &&
                    now <= c->verified[i].not_after) {
                        pthread_mutex_unlock(&c->lock);
                        return 0;
                }
        pthread_mutex_unlock(&c->lock);

        attest_window_init(&w);
        r = collateral_verify_full(c, root, now, &w, reterr);
        if (r < 0)
                return r;

        pthread_mutex_lock(&c->lock);
        if (c->n_verified < ATTEST_COL_VERIFIED_MAX) {
                struct attest_col_verified *v = &c->verified[c->n_verified++];
                memcpy(v->root_fp, root_fp, 32);
                v->not_before = w.not_before;
                v->not_after = w.not_after;
        }
        pthread_mutex_unlock(&c->lock);
        return 0;
}

/* ---- the quote ---- */

void attest_result_free(struct attest_result *r)
{
        if (!r)
                return;
        attest_advisories_free(r->advisory_ids);
        free(r);
}

static void pck_entry_releasep(const struct attest_pck_entry **e)
{
        attest_pck_entry_release(*e);
}

int attest_verify_quote(const uint8_t *quote, size_t len, const struct attest_collateral *col,
                        const struct attest_verify_opts *opts, struct attest_result **ret,
                        struct ck_error **reterr)
{
        /* The collateral is logically const; only its internal cache is written (under its lock). */
        struct attest_collateral *c = (struct attest_collateral *)col;
        _cleanup_(X509_freep) X509 *intel = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
        _cleanup_(attest_result_freep) struct attest_result *res = NULL;
        _cleanup_(pck_entry_releasep) const struct attest_pck_entry *pck = NULL;
        const struct attest_module_identity *mi = NULL;
        const struct attest_isv_level *qe_level = NULL;
        struct attest_quote q;
        uint8_t root_fp[32], hash[32];
        X509 *root;
        bool simulated;
        int r;

        if (!quote || !col || !opts)
                return ck_error_set(reterr, -EINVAL, "verify: missing argument");

        /* Step 1. */
        r = attest_quote_parse(quote, len, &q, reterr);
        if (r < 0)
                return r;

        /* Step 2: the trust anchor. */
        intel = attest_intel_root_ca();
        if (!intel)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "root CA: the pinned Intel root fails its fingerprint check");
        root = opts->root ? opts->root : intel;
        if (!opts->root)
                memcpy(root_fp, intel_root_sha256, 32);
        else if (cert_fingerprint(root, root_fp) < 0)
                return ck_error_set(reterr, -EBADMSG, "root CA: cannot encode the trust anchor");
        simulated = memcmp(root_fp, intel_root_sha256, 32) != 0;

        r = collateral_verify(c, root, root_fp, opts->now, reterr);
        if (r < 0)
                return r;

        /* Steps 3 and 4. */
        r = attest_pck_chain_verify(c, &q, root, root_fp, opts->now, &pck, reterr);
        if (r < 0)
                return r;

        /* Steps 5 and 6 (the quote-dependent parts). */
        r = attest_tcb_check_info(&c->tcb, &q, &pck->info, reterr);
        if (r < 0)
                return r;
        r = attest_tcb_check_qe_identity_kind(&c->qe, &q, reterr);
        if (r < 0)
                return r;

        /* Step 7. */
        if (q.tee_type == ATTEST_TEE_TDX) {
                r = attest_tcb_check_module(&c->tcb, &q, &mi, reterr);
                if (r < 0)
                        return r;
        }

        /* Step 8 (a platform's QE report is the same in every quote: its verification by this
         * PCK key is memoised by the exact report and signature bytes). */
        if (sha256_parts(q.qe_report, 384, q.qe_report_sig, 64, hash) < 0)
                return ck_error_set(reterr, -ENOMEM, "QE report: hashing failed");
        if (!attest_pck_entry_qe_report_verified(c, pck, hash)) {
                r = ecdsa_verify_raw(pck->leaf_key, q.qe_report, 384, q.qe_report_sig);
                if (r < 0)
                        return ck_error_set(reterr, r, "QE report: signature verification error");
                if (r == 0)
                        return ck_error_set(reterr, -EKEYREJECTED,
                                            "QE report: signature verification failed (PCK key)");
                attest_pck_entry_qe_report_mark(c, pck, hash);
        }

        /* Step 9: QE.REPORTDATA = SHA-256(attestation key || QE auth data) || 32 zero bytes. */
        if (sha256_parts(q.attest_key, 64, q.qe_auth_data, q.qe_auth_len, hash) < 0)
                return ck_error_set(reterr, -ENOMEM, "QE report: hashing failed");
        if (CRYPTO_memcmp(hash, q.qe_report + 320, 32) != 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "QE report: report data does not bind the attestation key (QE binding)");
        for (size_t i = 32; i < 64; i++)
                if (q.qe_report[320 + i] != 0)
                        return ck_error_set(reterr, -EKEYREJECTED,
                                            "QE report: report data bytes 32..63 are not zero (QE binding)");

        /* Step 10. */
        r = attest_tcb_check_qe_report(&c->qe, q.qe_report, &qe_level, reterr);
        if (r < 0)
                return r;

        /* Step 11. */
        r = attest_pck_entry_attest_key(c, pck, q.attest_key, &ak);
        if (r < 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "quote signature: attestation key is not a P-256 point");
        r = ecdsa_verify_raw(ak, q.signed_region, q.signed_len, q.signature);
        if (r < 0)
                return ck_error_set(reterr, r, "quote signature: verification error");
        if (r == 0)
                return ck_error_set(reterr, -EKEYREJECTED, "quote signature: verification failed");

        /* Steps 12 and 13. */
        res = calloc(1, sizeof(*res));
        if (!res)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        r = attest_tcb_match(&c->tcb, &q, &pck->info, mi, qe_level, res, reterr);
        if (r < 0)
                return r;
        res->tee_type = q.tee_type;
        res->quote_version = q.version;
        ck_hex_encode(pck->info.fmspc, 6, res->fmspc);
        res->simulated = simulated;
        res->m = q.m;
        *ret = TAKE_PTR(res);
        return 0;
}

/* ---- JSON rendering ---- */

static int set_hex(json_t *o, const char *key, const uint8_t *p, size_t n)
{
        char buf[2 * 64 + 1];

        ck_hex_encode(p, n, buf);
        return json_object_set_new(o, key, json_string(buf));
}

json_t *attest_result_to_json(const struct attest_result *r)
{
        _cleanup_json_ json_t *j = json_object();
        json_t *adv = json_array(), *m = json_object(), *rtmr = json_array();
        const struct attest_measurements *x = &r->m;
        char tee[16];

        if (!j || !adv || !m || !rtmr) {
                json_decref(adv);
                json_decref(m);
                json_decref(rtmr);
                return NULL;
        }
        for (size_t i = 0; i < r->n_advisory_ids; i++)
                json_array_append_new(adv, json_string(r->advisory_ids[i]));
        snprintf(tee, sizeof(tee), "%s", r->tee_type == ATTEST_TEE_TDX ? "TDX" : "SGX");
        json_object_set_new(j, "status", json_string(attest_tcb_status_to_string(r->status)));
        json_object_set_new(j, "advisory_ids", adv);
        json_object_set_new(j, "tee", json_string(tee));
        json_object_set_new(j, "quote_version", json_integer(r->quote_version));
        json_object_set_new(j, "tcb_evaluation_data_number", json_integer(r->tcb_eval_number));
        json_object_set_new(j, "fmspc", json_string(r->fmspc));
        json_object_set_new(j, "simulated", json_boolean(r->simulated));
        if (r->tee_type == ATTEST_TEE_TDX) {
                set_hex(m, "tee_tcb_svn", x->tee_tcb_svn, 16);
                set_hex(m, "mr_seam", x->mr_seam, 48);
                set_hex(m, "mr_signer_seam", x->mr_signer_seam, 48);
                set_hex(m, "seam_attributes", x->seam_attributes, 8);
                set_hex(m, "td_attributes", x->td_attributes, 8);
                set_hex(m, "xfam", x->xfam, 8);
                set_hex(m, "mr_td", x->mr_td, 48);
                set_hex(m, "mr_config_id", x->mr_config_id, 48);
                set_hex(m, "mr_owner", x->mr_owner, 48);
                set_hex(m, "mr_owner_config", x->mr_owner_config, 48);
                for (size_t i = 0; i < 4; i++) {
                        char buf[97];
                        ck_hex_encode(x->rtmr[i], 48, buf);
                        json_array_append_new(rtmr, json_string(buf));
                }
                json_object_set_new(m, "rtmr", TAKE_PTR(rtmr));
                if (x->has_v15) {
                        set_hex(m, "tee_tcb_svn2", x->tee_tcb_svn2, 16);
                        set_hex(m, "mr_service_td", x->mr_service_td, 48);
                }
        } else {
                set_hex(m, "mr_enclave", x->mr_enclave, 32);
                set_hex(m, "mr_signer", x->mr_signer, 32);
                set_hex(m, "attributes", x->sgx_attributes, 16);
                json_object_set_new(m, "isv_prod_id", json_integer(x->isv_prod_id));
                json_object_set_new(m, "isv_svn", json_integer(x->isv_svn));
        }
        json_decref(rtmr);
        set_hex(m, "report_data", x->report_data, 64);
        json_object_set_new(j, "measurements", m);
        return TAKE_PTR(j);
}
