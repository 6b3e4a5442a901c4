/* A throwaway DCAP PKI for tests: root, PCK Platform CA, PCK leaf with a real-format SGX
 * extension, TCB Signing, CRLs, signed TCB Info / QE Identity, and v4 TDX quotes signed by a QE
 * attestation key. Knobs let a test break one thing at a time. Test code only. */
#pragma once

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "collateral.h"
#include "json.h"
#include "parse.h"
#include "ssl.h"

struct testpki_opts {
        time_t now;
        bool revoke_leaf;         /* list the PCK leaf in the PCK CRL */
        bool qe_binding_high;     /* non-zero QE report data bytes 32..63 */
        bool two_cert_chain;      /* quote carries leaf + CA only */
        const char *tcb_fmspc;    /* TCB Info fmspc (default matches the PCK) */
        uint8_t qe_mrsigner_xor;  /* QE Identity mrsigner differs */
        uint8_t td_attr3;         /* TDATTRIBUTES byte 3 */
        const char *level_status; /* TCB level status (default UpToDate) */
        /* One broken thing each; zero values keep the defaults. */
        time_t tcb_issue, tcb_next;  /* TCB Info issueDate / nextUpdate */
        time_t qe_next;              /* QE Identity nextUpdate */
        time_t leaf_not_after;       /* PCK leaf notAfter */
        bool pck_crl_no_next;        /* PCK CRL without nextUpdate */
        bool root_crl_no_next;       /* root CA CRL without nextUpdate */
        bool pck_crl_expired;        /* PCK CRL nextUpdate a minute ago */
        bool root_crl_expired;       /* root CA CRL nextUpdate a minute ago */
        bool revoke_ca;              /* list the PCK Platform CA in the root CA CRL */
        bool revoke_root;            /* list the root in the root CA CRL */
        bool root_crl_forged;        /* root CA CRL signed by another key */
        bool pck_crl_forged;         /* PCK CRL signed by another key */
        bool leaf_forged;            /* PCK leaf signed by another key than the CA's */
        const char *tcb_signer_cn;   /* CN of the TCB Signing certificate */
        const char *leaf_cn, *ca_cn; /* CNs of the PCK leaf and the PCK CA */
        const char *tcb_id;          /* TCB Info id (default TDX) */
        const char *tcb_pceid;       /* TCB Info pceId (default 0000, as the PCK) */
        const char *qe_id;           /* QE Identity id (default TD_QE) */
        const char *qe_status;       /* QE Identity TCB level status (default UpToDate) */
        uint16_t qe_prodid_xor;      /* QE report ISVPRODID differs */
        uint32_t qe_misc;            /* QE report MISCSELECT */
        uint8_t qe_attr_or;          /* bits or-ed into QE report ATTRIBUTES byte 0 */
        bool qe_isvsvn_low;          /* QE report ISVSVN 1, below the only level (2) */
        bool pcesvn_low;             /* PCK PCESVN 10, below the only level (11) */
        bool sgx_svn_low;            /* PCK SGX component 0 is 2, below the level's 3 */
        bool tdx_svn_low;            /* TEE_TCB_SVN[2] is 3, below the level's 4 */
        bool tdx_svn0_low;           /* TEE_TCB_SVN[0] (module SVN, major 0) is 2, below the level's 3 */
        uint8_t seam_signer_xor;     /* MRSIGNERSEAM differs from the module identity */
        uint8_t seam_attr;           /* SEAMATTRIBUTES byte 0 */
        bool sgx_ext_no_fmspc;       /* the PCK's SGX extension lacks the FMSPC */
        bool sgx_ext_no_comp16;      /* the PCK's SGX extension TCB lacks component 16 */
};

struct testpki {
        EVP_PKEY *root_key, *ca_key, *leaf_key, *tcb_key, *ak;
        X509 *root, *ca, *leaf, *tcb;
        struct attest_collateral *col;
        uint8_t *quote;
        size_t quote_len;
};

static const uint8_t testpki_fmspc[6] = {0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00};

static X509 *tp_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, long serial, bool ca,
                     time_t now, time_t not_after, X509_EXTENSION *extra)
{
        X509 *x = X509_new();
        X509V3_CTX v3;
        X509_EXTENSION *ext;

        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn,
                                   -1, -1, 0);
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(x));
        ASN1_TIME_set(X509_getm_notBefore(x), now - 86400);
        ASN1_TIME_set(X509_getm_notAfter(x), not_after ? not_after : now + 365 * 86400);
        X509_set_pubkey(x, key);
        X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                                  ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage,
                                  ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        if (extra)
                X509_add_ext(x, extra, -1);
        X509_sign(x, issuer_key, EVP_sha256());
        return x;
}

static void tp_der_append(struct ck_buf *b, uint8_t tag, const uint8_t *p, size_t n)
{
        uint8_t h[4] = {tag};
        size_t hl = 2;

        if (n < 128)
                h[1] = (uint8_t)n;
        else if (n < 256)
                h[1] = 0x81, h[2] = (uint8_t)n, hl = 3;
        else
                h[1] = 0x82, h[2] = (uint8_t)(n >> 8), h[3] = (uint8_t)n, hl = 4;
        ck_buf_append(b, h, hl);
        ck_buf_append(b, p, n);
}

/* SEQUENCE { OID 1.2.840.113741.1.13.1.<arc>[.<sub>], value } */
static void tp_sgx_pair(struct ck_buf *out, int arc, int sub, uint8_t vtag, const uint8_t *v, size_t vn)
{
        static const uint8_t base[] = {0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01};
        uint8_t oid[16];
        size_t on = sizeof(base);
        struct ck_buf b;

        ck_buf_init(&b, 1 << 16);
        memcpy(oid, base, on);
        oid[on++] = (uint8_t)arc;
        if (sub)
                oid[on++] = (uint8_t)sub;
        tp_der_append(&b, 0x06, oid, on);
        tp_der_append(&b, vtag, v, vn);
        tp_der_append(out, 0x30, b.data, b.len);
        ck_buf_free(&b);
}

static X509_EXTENSION *tp_sgx_ext(const uint8_t comp[16], uint16_t pcesvn, bool no_fmspc, bool no_comp16)
{
        struct ck_buf tcb, all, seq;
        uint8_t ppid[16] = {1}, cpusvn[16] = {0}, pceid[2] = {0, 0}, type = 0;
        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        ASN1_OBJECT *obj = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
        X509_EXTENSION *ext;

        ck_buf_init(&tcb, 1 << 16);
        ck_buf_init(&all, 1 << 16);
        ck_buf_init(&seq, 1 << 16);
        for (int i = 0; i < (no_comp16 ? 15 : 16); i++) {
                uint8_t v[2] = {0, comp[i]};
                /* INTEGER: a leading zero only when the top bit is set */
                if (comp[i] & 0x80)
                        tp_sgx_pair(&tcb, 2, i + 1, 0x02, v, 2);
                else
                        tp_sgx_pair(&tcb, 2, i + 1, 0x02, v + 1, 1);
        }
        /* minimal DER INTEGER for a value below 128 */
        uint8_t pv = (uint8_t)pcesvn;
        tp_sgx_pair(&tcb, 2, 17, 0x02, &pv, 1);
        tp_sgx_pair(&tcb, 2, 18, 0x04, cpusvn, 16);
        tp_sgx_pair(&all, 1, 0, 0x04, ppid, 16);
        {
                /* .2 = SEQUENCE { OID .2, SEQUENCE { pairs } } */
                static const uint8_t oid2[] = {0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01, 0x02};
                struct ck_buf p;
                ck_buf_init(&p, 1 << 16);
                tp_der_append(&p, 0x06, oid2, sizeof(oid2));
                tp_der_append(&p, 0x30, tcb.data, tcb.len);
                tp_der_append(&all, 0x30, p.data, p.len);
                ck_buf_free(&p);
        }
        tp_sgx_pair(&all, 3, 0, 0x04, pceid, 2);
        if (!no_fmspc)
                tp_sgx_pair(&all, 4, 0, 0x04, testpki_fmspc, 6);
        tp_sgx_pair(&all, 5, 0, 0x0a, &type, 1);
        tp_der_append(&seq, 0x30, all.data, all.len);
        ASN1_OCTET_STRING_set(os, seq.data, (int)seq.len);
        ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
        ASN1_OCTET_STRING_free(os);
        ASN1_OBJECT_free(obj);
        ck_buf_free(&tcb);
        ck_buf_free(&all);
        ck_buf_free(&seq);
        return ext;
}

static X509_CRL *tp_crl(X509 *issuer, EVP_PKEY *key, time_t now, X509 *revoked, X509 *revoked2, bool no_next,
                        bool expired)
{
        X509_CRL *crl = X509_CRL_new();
        ASN1_TIME *t = ASN1_TIME_new();

        X509_CRL_set_version(crl, 1);
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
        ASN1_TIME_set(t, now - 3600);
        X509_CRL_set1_lastUpdate(crl, t);
        ASN1_TIME_set(t, expired ? now - 60 : now + 30 * 86400);
        if (!no_next)
                X509_CRL_set1_nextUpdate(crl, t);
        for (X509 **x = (X509 *[]){revoked, revoked2}, **end = x + 2; x < end; x++) {
                if (!*x)
                        continue;
                X509_REVOKED *r = X509_REVOKED_new();
                X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(*x));
                ASN1_TIME_set(t, now - 60);
                X509_REVOKED_set_revocationDate(r, t);
                X509_CRL_add0_revoked(crl, r);
        }
        X509_CRL_sort(crl);
        X509_CRL_sign(crl, key, EVP_sha256());
        ASN1_TIME_free(t);
        return crl;
}

/* ECDSA P-256 / SHA-256 as raw r||s. */
static void tp_sign_raw(EVP_PKEY *key, const void *data, size_t len, uint8_t out[64])
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t der[80];
        size_t dl = sizeof(der);
        const uint8_t *p = der;
        ECDSA_SIG *s;

        EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key);
        EVP_DigestSign(ctx, der, &dl, data, len);
        s = d2i_ECDSA_SIG(NULL, &p, (long)dl);
        BN_bn2binpad(ECDSA_SIG_get0_r(s), out, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(s), out + 32, 32);
        ECDSA_SIG_free(s);
        EVP_MD_CTX_free(ctx);
}

static void tp_pem(struct ck_buf *b, X509 *x)
{
        BIO *bio = BIO_new(BIO_s_mem());
        char *p;
        long n;

        PEM_write_bio_X509(bio, x);
        n = BIO_get_mem_data(bio, &p);
        ck_buf_append(b, p, (size_t)n);
        BIO_free(bio);
}

static char *tp_hex(const uint8_t *p, size_t n)
{
        return ck_hex_encode_alloc(p, n);
}

static void testpki_build(struct testpki *t, const struct testpki_opts *o)
{
        static const uint8_t vendor[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                           0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};
        uint8_t comp[16] = {3, 3, 2, 2, 4, 1, 0, 5};
        uint8_t qe_mrsigner[32];
        time_t now = o->now;
        char date_issue[32], date_next[32];
        struct tm tm;

        memset(t, 0, sizeof(*t));
        memset(qe_mrsigner, 0xd5, 32);
        t->root_key = EVP_EC_gen("P-256");
        t->ca_key = EVP_EC_gen("P-256");
        t->leaf_key = EVP_EC_gen("P-256");
        t->tcb_key = EVP_EC_gen("P-256");
        t->ak = EVP_EC_gen("P-256");
        EVP_PKEY *other_key = EVP_EC_gen("P-256"); /* signs what a test wants forged */
        t->root =
                tp_cert("Test SIMULATED SGX Root CA", t->root_key, NULL, t->root_key, 1, true, now, 0, NULL);
        t->ca = tp_cert(o->ca_cn ? o->ca_cn : "Test SIMULATED SGX PCK Platform CA", t->ca_key, t->root,
                        t->root_key, 2, true, now, 0, NULL);
        if (o->sgx_svn_low)
                comp[0] = 2;
        X509_EXTENSION *ext =
                tp_sgx_ext(comp, o->pcesvn_low ? 10 : 11, o->sgx_ext_no_fmspc, o->sgx_ext_no_comp16);
        if (o->sgx_svn_low)
                comp[0] = 3; /* the TCB level keeps 3 */
        t->leaf = tp_cert(o->leaf_cn ? o->leaf_cn : "Test SIMULATED SGX PCK Certificate", t->leaf_key, t->ca,
                          o->leaf_forged ? other_key : t->ca_key, 3, false, now, o->leaf_not_after, ext);
        X509_EXTENSION_free(ext);
        t->tcb = tp_cert(o->tcb_signer_cn ? o->tcb_signer_cn : "Test SIMULATED SGX TCB Signing", t->tcb_key,
                         t->root, t->root_key, 4, false, now, 0, NULL);

        /* Collateral. */
        char tcb_issue[32], tcb_next[32], qe_next[32];
        gmtime_r(&(time_t){now - 86400}, &tm);
        strftime(date_issue, sizeof(date_issue), "%Y-%m-%dT%H:%M:%SZ", &tm);
        gmtime_r(&(time_t){now + 30 * 86400}, &tm);
        strftime(date_next, sizeof(date_next), "%Y-%m-%dT%H:%M:%SZ", &tm);
        gmtime_r(&(time_t){o->tcb_issue ? o->tcb_issue : now - 86400}, &tm);
        strftime(tcb_issue, sizeof(tcb_issue), "%Y-%m-%dT%H:%M:%SZ", &tm);
        gmtime_r(&(time_t){o->tcb_next ? o->tcb_next : now + 30 * 86400}, &tm);
        strftime(tcb_next, sizeof(tcb_next), "%Y-%m-%dT%H:%M:%SZ", &tm);
        gmtime_r(&(time_t){o->qe_next ? o->qe_next : now + 30 * 86400}, &tm);
        strftime(qe_next, sizeof(qe_next), "%Y-%m-%dT%H:%M:%SZ", &tm);
        _cleanup_free_ char *fmspc_hex = tp_hex(testpki_fmspc, 6);
        _cleanup_json_ json_t *sgxc = json_array(), *tdxc = json_array();
        for (int i = 0; i < 16; i++) {
                json_array_append_new(sgxc, json_pack("{s:i}", "svn", comp[i]));
                json_array_append_new(tdxc, json_pack("{s:i}", "svn", i == 0 ? 3 : i == 2 ? 4 : 0));
        }
        static const char z48[] = "0000000000000000000000000000000000000000000000000000000000000000000000000"
                                  "00000000000000000000000";
        _cleanup_json_ json_t *tcbj =
                json_pack("{s:s,s:i,s:s,s:s,s:s,s:s,s:i,s:i,s:{s:s,s:s,s:s},s:[{s:{s:O,s:i,s:O},s:s,s:s}]}",
                          "id", o->tcb_id ? o->tcb_id : "TDX", "version", 3, "issueDate", tcb_issue,
                          "nextUpdate", tcb_next, "fmspc", o->tcb_fmspc ? o->tcb_fmspc : fmspc_hex, "pceId",
                          o->tcb_pceid ? o->tcb_pceid : "0000", "tcbType", 0, "tcbEvaluationDataNumber", 99,
                          "tdxModule", "mrsigner", z48, "attributes", "0000000000000000", "attributesMask",
                          "FFFFFFFFFFFFFFFF", "tcbLevels", "tcb", "sgxtcbcomponents", sgxc, "pcesvn", 11,
                          "tdxtcbcomponents", tdxc, "tcbDate", "2024-01-01T00:00:00Z", "tcbStatus",
                          o->level_status ? o->level_status : "UpToDate");
        uint8_t qm[32];
        memcpy(qm, qe_mrsigner, 32);
        qm[0] ^= o->qe_mrsigner_xor;
        _cleanup_free_ char *qm_hex = tp_hex(qm, 32);
        _cleanup_json_ json_t *qej =
                json_pack("{s:s,s:i,s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:s,s:i,s:[{s:{s:i},s:s,s:s}]}", "id",
                          o->qe_id ? o->qe_id : "TD_QE", "version", 2, "issueDate", date_issue, "nextUpdate",
                          qe_next, "tcbEvaluationDataNumber", 99, "miscselect", "00000000", "miscselectMask",
                          "FFFFFFFF", "attributes", "11000000000000000000000000000000", "attributesMask",
                          "FBFFFFFFFFFFFFFF0000000000000000", "mrsigner", qm_hex, "isvprodid", 2,
                          "tcbLevels", "tcb", "isvsvn", 2, "tcbDate", "2024-01-01T00:00:00Z", "tcbStatus",
                          o->qe_status ? o->qe_status : "UpToDate");
        _cleanup_free_ char *tcb_text = json_dumps(tcbj, JSON_COMPACT);
        _cleanup_free_ char *qe_text = json_dumps(qej, JSON_COMPACT);
        uint8_t tsig[64], qsig[64];
        tp_sign_raw(t->tcb_key, tcb_text, strlen(tcb_text), tsig);
        tp_sign_raw(t->tcb_key, qe_text, strlen(qe_text), qsig);

        X509_CRL *root_crl = tp_crl(t->root, o->root_crl_forged ? other_key : t->root_key, now,
                                    o->revoke_ca ? t->ca : NULL, o->revoke_root ? t->root : NULL,
                                    o->root_crl_no_next, o->root_crl_expired);
        X509_CRL *pck_crl =
                tp_crl(t->ca, o->pck_crl_forged ? other_key : t->ca_key, now,
                       o->revoke_leaf ? t->leaf : NULL, NULL, o->pck_crl_no_next, o->pck_crl_expired);
        EVP_PKEY_free(other_key);
        _cleanup_free_ uint8_t *root_der = NULL, *pck_der = NULL;
        int rl = i2d_X509_CRL(root_crl, &root_der), pl = i2d_X509_CRL(pck_crl, &pck_der);
        X509_CRL_free(root_crl);
        X509_CRL_free(pck_crl);
        struct ck_buf tcb_chain, ca_chain, quote_chain;
        ck_buf_init(&tcb_chain, 1 << 16);
        ck_buf_init(&ca_chain, 1 << 16);
        ck_buf_init(&quote_chain, 1 << 16);
        tp_pem(&tcb_chain, t->tcb);
        tp_pem(&tcb_chain, t->root);
        tp_pem(&ca_chain, t->ca);
        tp_pem(&ca_chain, t->root);
        tp_pem(&quote_chain, t->leaf);
        tp_pem(&quote_chain, t->ca);
        if (!o->two_cert_chain)
                tp_pem(&quote_chain, t->root);
        ck_buf_append(&quote_chain, "", 1); /* trailing NUL, as real quotes have */

        _cleanup_free_ char *rh = tp_hex(root_der, (size_t)rl), *ph = tp_hex(pck_der, (size_t)pl);
        _cleanup_free_ char *tsh = tp_hex(tsig, 64), *qsh = tp_hex(qsig, 64);
        _cleanup_json_ json_t *colj = json_pack(
                "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "pck_crl_issuer_chain", (char *)ca_chain.data,
                "root_ca_crl", rh, "pck_crl", ph, "tcb_info_issuer_chain", (char *)tcb_chain.data,
                "tcb_info", tcb_text, "tcb_info_signature", tsh, "qe_identity_issuer_chain",
                (char *)tcb_chain.data, "qe_identity", qe_text, "qe_identity_signature", qsh);
        _cleanup_free_ char *col_text = json_dumps(colj, 0);
        _cleanup_error_ struct ck_error *e = NULL;
        if (attest_collateral_from_json((const uint8_t *)col_text, strlen(col_text), &t->col, &e) < 0) {
                fprintf(stderr, "testpki collateral: %s\n", e->msg);
                abort();
        }

        /* The quote. */
        uint8_t head[48 + 584] = {0};
        ck_put_le16(head, 4);
        ck_put_le16(head + 2, 2);
        ck_put_le32(head + 4, 0x81);
        memcpy(head + 12, vendor, 16);
        memcpy(head + 28, "CONKER-SIMULATED", 16);
        uint8_t *b = head + 48;
        b[0] = o->tdx_svn0_low ? 2 : 3; /* TEE_TCB_SVN: module SVN 3, major 0 */
        b[2] = o->tdx_svn_low ? 3 : 4;
        b[64] ^= o->seam_signer_xor; /* MRSIGNERSEAM */
        b[112] = o->seam_attr;       /* SEAMATTRIBUTES */
        b[120 + 3] = o->td_attr3;
        memset(b + 136, 0x7d, 48); /* MRTD */
        memset(b + 520, 0xab, 64); /* REPORTDATA */

        uint8_t ak_pub[65];
        size_t akl = sizeof(ak_pub);
        EVP_PKEY_get_octet_string_param(t->ak, "pub", ak_pub, sizeof(ak_pub), &akl);
        uint8_t auth[32];
        memset(auth, 0x5a, 32);
        uint8_t qe[384] = {0};
        qe[48] = 0x11 | o->qe_attr_or; /* attributes: INIT | MODE64BIT, not DEBUG */
        ck_put_le32(qe + 16, o->qe_misc);
        memcpy(qe + 128, qe_mrsigner, 32);
        ck_put_le16(qe + 256, 2 ^ o->qe_prodid_xor);
        ck_put_le16(qe + 258, o->qe_isvsvn_low ? 1 : 2);
        {
                EVP_MD_CTX *m = EVP_MD_CTX_new();
                EVP_DigestInit_ex(m, EVP_sha256(), NULL);
                EVP_DigestUpdate(m, ak_pub + 1, 64);
                EVP_DigestUpdate(m, auth, 32);
                EVP_DigestFinal_ex(m, qe + 320, NULL);
                EVP_MD_CTX_free(m);
        }
        if (o->qe_binding_high)
                qe[383] = 1;
        uint8_t qe_sig[64], quote_sig[64];
        tp_sign_raw(t->leaf_key, qe, sizeof(qe), qe_sig);
        tp_sign_raw(t->ak, head, sizeof(head), quote_sig);

        struct ck_buf q, inner;
        ck_buf_init(&q, 1 << 20);
        ck_buf_init(&inner, 1 << 20);
        uint8_t u16[2], u32[4];
        ck_buf_append(&inner, qe, sizeof(qe));
        ck_buf_append(&inner, qe_sig, 64);
        ck_put_le16(u16, 32);
        ck_buf_append(&inner, u16, 2);
        ck_buf_append(&inner, auth, 32);
        ck_put_le16(u16, 5);
        ck_buf_append(&inner, u16, 2);
        ck_put_le32(u32, (uint32_t)quote_chain.len);
        ck_buf_append(&inner, u32, 4);
        ck_buf_append(&inner, quote_chain.data, quote_chain.len);

        ck_buf_append(&q, head, sizeof(head));
        ck_put_le32(u32, (uint32_t)(128 + 6 + inner.len));
        ck_buf_append(&q, u32, 4);
        ck_buf_append(&q, quote_sig, 64);
        ck_buf_append(&q, ak_pub + 1, 64);
        ck_put_le16(u16, 6);
        ck_buf_append(&q, u16, 2);
        ck_put_le32(u32, (uint32_t)inner.len);
        ck_buf_append(&q, u32, 4);
        ck_buf_append(&q, inner.data, inner.len);
        t->quote = ck_buf_take(&q, &t->quote_len);
        ck_buf_free(&inner);
        ck_buf_free(&tcb_chain);
        ck_buf_free(&ca_chain);
        ck_buf_free(&quote_chain);
}

static void testpki_done(struct testpki *t)
{
        EVP_PKEY_free(t->root_key);
        EVP_PKEY_free(t->ca_key);
        EVP_PKEY_free(t->leaf_key);
        EVP_PKEY_free(t->tcb_key);
        EVP_PKEY_free(t->ak);
        X509_free(t->root);
        X509_free(t->ca);
        X509_free(t->leaf);
        X509_free(t->tcb);
        attest_collateral_free(t->col);
        free(t->quote);
}
