/* Certificate, CRL and signature helpers for the simulated TD's test PKI: P-256 keys,
 * certificates shaped like Intel's (same extensions and key usages), the SGX PCK extension
 * encoded exactly as Intel's PCK certificates carry it, DER CRLs and raw r||s signatures. */
#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "sim-internal.h"
#include "ssl.h"

#define SGX_EXT_OID "1.2.840.113741.1.13.1"

DEFINE_POINTER_CLEANUP(ASN1_INTEGER, ASN1_INTEGER_free, ASN1_INTEGER_free)
DEFINE_POINTER_CLEANUP(X509_REVOKED, X509_REVOKED_free, X509_REVOKED_free)

static void sk_ASN1_TYPE_pop_freep(STACK_OF(ASN1_TYPE) * *p)
{
        if (*p)
                sk_ASN1_TYPE_pop_free(*p, ASN1_TYPE_free);
}

int sim_key_new(EVP_PKEY **ret, struct ck_error **reterr)
{
        EVP_PKEY *k = EVP_EC_gen("P-256");

        if (!k)
                return ck_ssl_error(reterr, -EIO, "cannot generate a P-256 key");
        *ret = k;
        return 0;
}

static int cert_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;
        X509V3_CTX ctx;

        X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext || X509_add_ext(cert, ext, -1) != 1)
                return -EIO;
        return 0;
}

static int serial_random(X509 *cert)
{
        _cleanup_(BN_freep) BIGNUM *bn = BN_new();

        /* 127 random bits: positive and unique enough for a test PKI. */
        if (!bn || BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
            !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
                return -EIO;
        return 0;
}

static X509_NAME *name_make(const char *cn)
{
        X509_NAME *n = X509_NAME_new();

        if (!n ||
            X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1 ||
            X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"Conker SIMULATED", -1,
                                       -1, 0) != 1) {
                X509_NAME_free(n);
                return NULL;
        }
        return n;
}

int sim_cert_make(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int ca,
                  time_t not_before, time_t not_after, X509_EXTENSION *ext, X509 **ret,
                  struct ck_error **reterr)
{
        _cleanup_(X509_freep) X509 *cert = X509_new();
        _cleanup_(X509_NAME_freep) X509_NAME *name = name_make(cn);
        char bc[64];
        int r = 0;

        if (!cert || !name)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        if (X509_set_version(cert, X509_VERSION_3) != 1 || serial_random(cert) < 0 ||
            X509_set_subject_name(cert, name) != 1 ||
            X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) != 1 ||
            !ASN1_TIME_set(X509_getm_notBefore(cert), not_before) ||
            !ASN1_TIME_set(X509_getm_notAfter(cert), not_after) || X509_set_pubkey(cert, key) != 1)
                return ck_ssl_error(reterr, -EIO, "cannot build certificate %s", cn);
        if (ca >= 0)
                snprintf(bc, sizeof(bc), "critical,CA:TRUE,pathlen:%d", ca);
        else
                snprintf(bc, sizeof(bc), "critical,CA:FALSE");
        r = cert_add_ext(cert, issuer ? issuer : cert, NID_subject_key_identifier, "hash");
        if (r >= 0)
                r = cert_add_ext(cert, issuer ? issuer : cert, NID_authority_key_identifier, "keyid:always");
        if (r >= 0)
                r = cert_add_ext(cert, issuer ? issuer : cert, NID_key_usage,
                                 ca >= 0 ? "critical,keyCertSign,cRLSign"
                                         : "critical,digitalSignature,nonRepudiation");
        if (r >= 0)
                r = cert_add_ext(cert, issuer ? issuer : cert, NID_basic_constraints, bc);
        if (r >= 0 && ext && X509_add_ext(cert, ext, -1) != 1)
                r = -EIO;
        if (r < 0)
                return ck_ssl_error(reterr, -EIO, "cannot add extensions to certificate %s", cn);
        if (X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) <= 0)
                return ck_ssl_error(reterr, -EIO, "cannot sign certificate %s", cn);
        *ret = TAKE_PTR(cert);
        return 0;
}

/* Appends ASN1_TYPE t (ownership taken) to a SEQUENCE under construction. */
static int seq_push(STACK_OF(ASN1_TYPE) * seq, ASN1_TYPE *t)
{
        if (!t)
                return -ENOMEM;
        if (sk_ASN1_TYPE_push(seq, t) <= 0) {
                ASN1_TYPE_free(t);
                return -ENOMEM;
        }
        return 0;
}

/* DER-encodes a SEQUENCE and wraps it as an ASN1_TYPE, so that it can nest in another. */
static ASN1_TYPE *seq_wrap(STACK_OF(ASN1_TYPE) * seq)
{
        unsigned char *der = NULL;
        int n = i2d_ASN1_SEQUENCE_ANY(seq, &der);
        ASN1_STRING *s;
        ASN1_TYPE *t;

        if (n <= 0)
                return NULL;
        s = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
        t = ASN1_TYPE_new();
        if (!s || !t || ASN1_STRING_set(s, der, n) != 1) {
                ASN1_STRING_free(s);
                ASN1_TYPE_free(t);
                OPENSSL_free(der);
                return NULL;
        }
        OPENSSL_free(der);
        ASN1_TYPE_set(t, V_ASN1_SEQUENCE, s);
        return t;
}

static ASN1_TYPE *type_oid(const char *oid)
{
        ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
        ASN1_TYPE *t = ASN1_TYPE_new();

        if (!o || !t) {
                ASN1_OBJECT_free(o);
                ASN1_TYPE_free(t);
                return NULL;
        }
        ASN1_TYPE_set(t, V_ASN1_OBJECT, o);
        return t;
}

static ASN1_TYPE *type_octets(const uint8_t *p, size_t n)
{
        ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();
        ASN1_TYPE *t = ASN1_TYPE_new();

        if (!s || !t || ASN1_OCTET_STRING_set(s, p, (int)n) != 1) {
                ASN1_OCTET_STRING_free(s);
                ASN1_TYPE_free(t);
                return NULL;
        }
        ASN1_TYPE_set(t, V_ASN1_OCTET_STRING, s);
        return t;
}

static ASN1_TYPE *type_int(int type, long v)
{
        ASN1_INTEGER *i = type == V_ASN1_ENUMERATED ? ASN1_ENUMERATED_new() : ASN1_INTEGER_new();
        ASN1_TYPE *t = ASN1_TYPE_new();
        int ok = i && t &&
                 (type == V_ASN1_ENUMERATED ? ASN1_ENUMERATED_set(i, v) : ASN1_INTEGER_set(i, v)) == 1;

        if (!ok) {
                ASN1_STRING_free(i);
                ASN1_TYPE_free(t);
                return NULL;
        }
        ASN1_TYPE_set(t, type, i);
        return t;
}

static ASN1_TYPE *type_bool(bool v)
{
        ASN1_TYPE *t = ASN1_TYPE_new();

        if (t && ASN1_TYPE_set1(t, V_ASN1_BOOLEAN, v ? (void *)1 : NULL) != 1) {
                ASN1_TYPE_free(t);
                return NULL;
        }
        return t;
}

/* SEQUENCE { OID, value } — the shape of every entry of the SGX extension. */
static int seq_push_pair(STACK_OF(ASN1_TYPE) * seq, const char *oid, ASN1_TYPE *value)
{
        _cleanup_(sk_ASN1_TYPE_pop_freep) STACK_OF(ASN1_TYPE) *pair = sk_ASN1_TYPE_new_null();
        int r;

        if (!pair || !value) {
                ASN1_TYPE_free(value);
                return -ENOMEM;
        }
        r = seq_push(pair, type_oid(oid));
        if (r < 0) {
                ASN1_TYPE_free(value);
                return r;
        }
        r = seq_push(pair, value);
        if (r < 0)
                return r;
        return seq_push(seq, seq_wrap(pair));
}

int sim_sgx_ext_make(const uint8_t ppid[16], const uint8_t comps[16], unsigned pcesvn,
                     const uint8_t cpusvn[16], const uint8_t pceid[2], const uint8_t fmspc[6],
                     const uint8_t platform_instance_id[16], X509_EXTENSION **ret, struct ck_error **reterr)
{
        _cleanup_(sk_ASN1_TYPE_pop_freep) STACK_OF(ASN1_TYPE) *top = sk_ASN1_TYPE_new_null();
        _cleanup_(sk_ASN1_TYPE_pop_freep) STACK_OF(ASN1_TYPE) *tcb = sk_ASN1_TYPE_new_null();
        _cleanup_(sk_ASN1_TYPE_pop_freep) STACK_OF(ASN1_TYPE) *conf = sk_ASN1_TYPE_new_null();
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj(SGX_EXT_OID, 1);
        _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *val = ASN1_OCTET_STRING_new();
        unsigned char *der = NULL;
        char o[64];
        int r = 0, n;

        if (!top || !tcb || !conf || !oid || !val)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        for (unsigned i = 0; r >= 0 && i < 16; i++) {
                snprintf(o, sizeof(o), SGX_EXT_OID ".2.%u", i + 1);
                r = seq_push_pair(tcb, o, type_int(V_ASN1_INTEGER, comps[i]));
        }
        if (r >= 0)
                r = seq_push_pair(tcb, SGX_EXT_OID ".2.17", type_int(V_ASN1_INTEGER, (long)pcesvn));
        if (r >= 0)
                r = seq_push_pair(tcb, SGX_EXT_OID ".2.18", type_octets(cpusvn, 16));
        /* Configuration of a multi-package platform: what Platform-CA PCKs carry. */
        if (r >= 0)
                r = seq_push_pair(conf, SGX_EXT_OID ".7.1", type_bool(false));
        if (r >= 0)
                r = seq_push_pair(conf, SGX_EXT_OID ".7.2", type_bool(false));
        if (r >= 0)
                r = seq_push_pair(conf, SGX_EXT_OID ".7.3", type_bool(true));
        if (r >= 0)
                r = seq_push_pair(top, SGX_EXT_OID ".1", type_octets(ppid, 16));
        if (r >= 0)
                r = seq_push_pair(top, SGX_EXT_OID ".2", seq_wrap(tcb));
        if (r >= 0)
                r = seq_push_pair(top, SGX_EXT_OID ".3", type_octets(pceid, 2));
        if (r >= 0)
                r = seq_push_pair(top, SGX_EXT_OID ".4", type_octets(fmspc, 6));
        if (r >= 0)
                r = seq_push_pair(top, SGX_EXT_OID ".5", type_int(V_ASN1_ENUMERATED, 0));
        if (r >= 0)
                r = seq_push_pair(top, SGX_EXT_OID ".6", type_octets(platform_instance_id, 16));
        if (r >= 0)
                r = seq_push_pair(top, SGX_EXT_OID ".7", seq_wrap(conf));
        if (r < 0)
                return ck_ssl_error(reterr, r, "cannot build the SGX extension");
        n = i2d_ASN1_SEQUENCE_ANY(top, &der);
        if (n <= 0)
                return ck_ssl_error(reterr, -EIO, "cannot encode the SGX extension");
        r = ASN1_OCTET_STRING_set(val, der, n);
        OPENSSL_free(der);
        if (r != 1)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        *ret = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, val);
        if (!*ret)
                return ck_ssl_error(reterr, -EIO, "cannot create the SGX extension");
        return 0;
}

int sim_crl_make(X509 *issuer, EVP_PKEY *issuer_key, time_t this_update, time_t next_update,
                 const uint64_t *revoked, size_t n_revoked, uint8_t **ret, size_t *ret_len,
                 struct ck_error **reterr)
{
        _cleanup_(X509_CRL_freep) X509_CRL *crl = X509_CRL_new();
        _cleanup_(ASN1_TIME_freep) ASN1_TIME *t1 = ASN1_TIME_set(NULL, this_update);
        _cleanup_(ASN1_TIME_freep) ASN1_TIME *t2 = ASN1_TIME_set(NULL, next_update);
        _cleanup_(ASN1_INTEGER_freep) ASN1_INTEGER *num = ASN1_INTEGER_new();
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *aki = NULL;
        unsigned char *der = NULL;
        uint8_t *copy;
        X509V3_CTX ctx;
        int n;

        if (!crl || !t1 || !t2 || !num)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        if (X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
            X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) != 1 ||
            X509_CRL_set1_lastUpdate(crl, t1) != 1 || X509_CRL_set1_nextUpdate(crl, t2) != 1)
                return ck_ssl_error(reterr, -EIO, "cannot build CRL");
        for (size_t i = 0; i < n_revoked; i++) {
                _cleanup_(X509_REVOKED_freep) X509_REVOKED *rev = X509_REVOKED_new();
                _cleanup_(ASN1_INTEGER_freep) ASN1_INTEGER *serial = ASN1_INTEGER_new();
                if (!rev || !serial || ASN1_INTEGER_set_uint64(serial, revoked[i]) != 1 ||
                    X509_REVOKED_set_serialNumber(rev, serial) != 1 ||
                    X509_REVOKED_set_revocationDate(rev, t1) != 1 || X509_CRL_add0_revoked(crl, rev) != 1)
                        return ck_ssl_error(reterr, -EIO, "cannot add a revoked serial");
                rev = NULL; /* owned by the CRL now */
        }
        X509V3_set_ctx(&ctx, issuer, NULL, NULL, crl, 0);
        aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
        if (ASN1_INTEGER_set(num, 1) != 1 || !aki || X509_CRL_add_ext(crl, aki, -1) != 1 ||
            X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1 || X509_CRL_sort(crl) != 1)
                return ck_ssl_error(reterr, -EIO, "cannot add CRL extensions");
        if (X509_CRL_sign(crl, issuer_key, EVP_sha256()) <= 0)
                return ck_ssl_error(reterr, -EIO, "cannot sign CRL");
        n = i2d_X509_CRL(crl, &der);
        if (n <= 0)
                return ck_ssl_error(reterr, -EIO, "cannot encode CRL");
        copy = malloc((size_t)n);
        if (copy)
                memcpy(copy, der, (size_t)n);
        OPENSSL_free(der);
        if (!copy)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        *ret = copy;
        *ret_len = (size_t)n;
        return 0;
}

int sim_sign_raw(EVP_PKEY *key, const void *data, size_t len, uint8_t ret[64], struct ck_error **reterr)
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = NULL;
        unsigned char der[128];
        const unsigned char *p = der;
        size_t n = sizeof(der);
        const BIGNUM *r, *s;

        if (!ctx || EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL) != 1 ||
            EVP_DigestSign(ctx, der, &n, data, len) != 1)
                return ck_ssl_error(reterr, -EIO, "ECDSA signing failed");
        sig = d2i_ECDSA_SIG(NULL, &p, (long)n);
        if (!sig)
                return ck_ssl_error(reterr, -EIO, "cannot decode the ECDSA signature");
        ECDSA_SIG_get0(sig, &r, &s);
        if (BN_bn2binpad(r, ret, 32) != 32 || BN_bn2binpad(s, ret + 32, 32) != 32)
                return ck_error_set(reterr, -EIO, "ECDSA signature component too large");
        return 0;
}

int sim_pubkey_raw(EVP_PKEY *key, uint8_t ret[64], struct ck_error **reterr)
{
        uint8_t pt[65];
        size_t n = 0;

        if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n) != 1 ||
            n != 65 || pt[0] != 0x04)
                return ck_ssl_error(reterr, -EIO, "cannot export the P-256 public point");
        memcpy(ret, pt + 1, 64);
        return 0;
}

static int bio_take(BIO *b, char **ret, size_t *ret_len)
{
        char *p = NULL;
        long n = BIO_get_mem_data(b, &p);
        char *s;

        if (n <= 0)
                return -EIO;
        s = malloc((size_t)n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, p, (size_t)n);
        s[n] = 0;
        *ret = s;
        *ret_len = (size_t)n;
        return 0;
}

int sim_pem_of_cert(X509 *cert, char **ret, size_t *ret_len)
{
        _cleanup_(BIO_free_allp) BIO *b = BIO_new(BIO_s_mem());

        if (!b || PEM_write_bio_X509(b, cert) != 1)
                return -EIO;
        return bio_take(b, ret, ret_len);
}

int sim_pem_of_key(EVP_PKEY *key, char **ret, size_t *ret_len)
{
        _cleanup_(BIO_free_allp) BIO *b = BIO_new(BIO_s_mem());
        int r;

        if (!b || PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1)
                return -EIO;
        r = bio_take(b, ret, ret_len);
        /* The memory BIO held the key too; wipe it before it is freed. */
        {
                char *p = NULL;
                long n = BIO_get_mem_data(b, &p);
                if (n > 0)
                        OPENSSL_cleanse(p, (size_t)n);
        }
        return r;
}
