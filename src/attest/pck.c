/* Certificate chains and CRLs (reference §2.2 steps 2-4): X.509 chain verification against a
 * store that holds only the trust anchor, and the PCK certificate's SGX extension.
 *
 * A verified PCK chain is cached in the collateral, keyed by the exact certification-data bytes
 * of the quote and the root's fingerprint, together with the time window in which every
 * certificate and CRL involved is valid. Everything that went into the verdict (the chain bytes,
 * the root, the collateral's CRLs, the time) is then either part of the key, fixed for the
 * lifetime of the collateral, or checked against the window, so a hit gives exactly the answer a
 * full verification would give. A failed verification is never cached. */
#include <errno.h>
#include <openssl/err.h>
#include <string.h>

#include "collateral-private.h"
#include "pck.h"
#include "parse.h"
#include "ssl.h"

#define SGX_EXT_OID "1.2.840.113741.1.13.1"

static int asn1_time_to_time_t(const ASN1_TIME *a, time_t *ret)
{
        struct tm tm = {};

        if (!a || ASN1_TIME_to_tm(a, &tm) != 1)
                return -EBADMSG;
        *ret = timegm(&tm);
        return 0;
}

void attest_window_init(struct attest_window *w)
{
        w->not_before = INT64_MIN;
        w->not_after = INT64_MAX;
}

void attest_window_add(struct attest_window *w, time_t not_before, time_t not_after)
{
        if (not_before > w->not_before)
                w->not_before = not_before;
        if (not_after < w->not_after)
                w->not_after = not_after;
}

int attest_window_add_cert(struct attest_window *w, X509 *x)
{
        time_t nb, na;

        if (asn1_time_to_time_t(X509_get0_notBefore(x), &nb) < 0 ||
            asn1_time_to_time_t(X509_get0_notAfter(x), &na) < 0)
                return -EBADMSG;
        attest_window_add(w, nb, na);
        return 0;
}

int attest_crl_check_time(X509_CRL *crl, time_t now, const char *what, struct attest_window *w,
                          struct ck_error **reterr)
{
        time_t this_update, next_update;

        if (asn1_time_to_time_t(X509_CRL_get0_lastUpdate(crl), &this_update) < 0)
                return ck_error_set(reterr, -EBADMSG, "%s: no thisUpdate", what);
        /* A CRL without nextUpdate cannot be shown to be current. */
        if (asn1_time_to_time_t(X509_CRL_get0_nextUpdate(crl), &next_update) < 0)
                return ck_error_set(reterr, -EKEYEXPIRED, "%s: no nextUpdate", what);
        if (now < this_update)
                return ck_error_set(reterr, -EKEYEXPIRED, "%s: not yet valid (thisUpdate is in the future)",
                                    what);
        if (now > next_update)
                return ck_error_set(reterr, -EKEYEXPIRED, "%s: expired (nextUpdate has passed)", what);
        attest_window_add(w, this_update, next_update);
        return 0;
}

bool attest_cert_cn_contains(X509 *x, const char *needle)
{
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));

        return n > 0 && strstr(cn, needle) != NULL;
}

bool attest_cert_equal(X509 *a, X509 *b)
{
        _cleanup_free_ unsigned char *da = NULL, *db = NULL;
        int la = i2d_X509(a, &da), lb = i2d_X509(b, &db);

        return la > 0 && la == lb && memcmp(da, db, (size_t)la) == 0;
}

static int x509_err_to_errno(int e)
{
        switch (e) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CERT_NOT_YET_VALID:
        case X509_V_ERR_CRL_HAS_EXPIRED:
        case X509_V_ERR_CRL_NOT_YET_VALID:
                return -EKEYEXPIRED;
        case X509_V_ERR_CERT_REVOKED:
                return -EKEYREVOKED;
        default:
                return -EKEYREJECTED;
        }
}

int attest_chain_verify(X509 *root, X509 *leaf, STACK_OF(X509) * untrusted, STACK_OF(X509_CRL) * crls,
                        time_t now, const char *what, const char *const depth_names[], size_t n_depth_names,
                        struct attest_window *w, struct ck_error **reterr)
{
        _cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        STACK_OF(X509) * chain;
        int ok, e, depth;

        if (!store || !ctx || X509_STORE_add_cert(store, root) != 1)
                return ck_ssl_error(reterr, -ENOMEM, "%s: cannot set up the certificate store", what);
        if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1)
                return ck_ssl_error(reterr, -ENOMEM, "%s: cannot set up verification", what);
        if (crls) {
                X509_STORE_CTX_set0_crls(ctx, crls);
                X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx),
                                            X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
        }
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
        ok = X509_verify_cert(ctx);
        if (ok != 1) {
                const char *name = "certificate";

                e = X509_STORE_CTX_get_error(ctx);
                depth = X509_STORE_CTX_get_error_depth(ctx);
                ERR_clear_error();
                if (depth >= 0 && (size_t)depth < n_depth_names)
                        name = depth_names[depth];
                return ck_error_set(reterr, x509_err_to_errno(e), "%s: %s: %s", what, name,
                                    X509_verify_cert_error_string(e));
        }
        chain = X509_STORE_CTX_get0_chain(ctx);
        if (!chain || (size_t)sk_X509_num(chain) != n_depth_names ||
            !attest_cert_equal(sk_X509_value(chain, sk_X509_num(chain) - 1), root))
                return ck_error_set(reterr, -EKEYREJECTED, "%s: chain does not end at the trusted root",
                                    what);
        for (int i = 0; i < sk_X509_num(chain); i++)
                if (attest_window_add_cert(w, sk_X509_value(chain, i)) < 0)
                        return ck_error_set(reterr, -EBADMSG, "%s: unreadable validity dates", what);
        return 0;
}

/* ---- SGX extension ---- */

static void sk_ASN1_TYPE_free_all(ASN1_SEQUENCE_ANY *s)
{
        sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free);
}
DEFINE_POINTER_CLEANUP(ASN1_SEQUENCE_ANY, sk_ASN1_TYPE_free_all, ASN1_SEQUENCE_ANY)

static ASN1_SEQUENCE_ANY *seq_parse(const ASN1_TYPE *t)
{
        const unsigned char *p, *end;
        ASN1_SEQUENCE_ANY *s;

        if (!t || t->type != V_ASN1_SEQUENCE)
                return NULL;
        p = ASN1_STRING_get0_data(t->value.sequence);
        end = p + ASN1_STRING_length(t->value.sequence);
        s = d2i_ASN1_SEQUENCE_ANY(NULL, &p, end - p);
        if (s && p != end) {
                sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free);
                return NULL;
        }
        return s;
}

/* One {OID, value} pair: returns the arc after `prefix.` (e.g. 4 for "<ext>.4"), or -1. */
static int pair_arc(ASN1_SEQUENCE_ANY *pair, const char *prefix, ASN1_TYPE **ret_value)
{
        char oid[128];
        size_t plen = strlen(prefix);
        ASN1_TYPE *o;
        uint64_t arc = 0;

        if (sk_ASN1_TYPE_num(pair) != 2)
                return -1;
        o = sk_ASN1_TYPE_value(pair, 0);
        if (o->type != V_ASN1_OBJECT)
                return -1;
        if (OBJ_obj2txt(oid, sizeof(oid), o->value.object, 1) <= 0 || strncmp(oid, prefix, plen) != 0 ||
            oid[plen] != '.' || ck_parse_uint(oid + plen + 1, 64, &arc) < 0)
                return -1;
        *ret_value = sk_ASN1_TYPE_value(pair, 1);
        return (int)arc;
}

static int octets(const ASN1_TYPE *v, uint8_t *out, size_t n)
{
        if (v->type != V_ASN1_OCTET_STRING || (size_t)ASN1_STRING_length(v->value.octet_string) != n)
                return -EBADMSG;
        memcpy(out, ASN1_STRING_get0_data(v->value.octet_string), n);
        return 0;
}

static int integer(const ASN1_TYPE *v, int64_t max, int64_t *ret)
{
        int64_t i = 0;

        if (v->type != V_ASN1_INTEGER || ASN1_INTEGER_get_int64(&i, v->value.integer) != 1 || i < 0 ||
            i > max)
                return -EBADMSG;
        *ret = i;
        return 0;
}

static int sgx_tcb_parse(const ASN1_TYPE *v, struct attest_pck_info *info, struct ck_error **reterr)
{
        _cleanup_(ASN1_SEQUENCE_ANYp) ASN1_SEQUENCE_ANY *tcb = seq_parse(v);
        uint32_t seen = 0;

        if (!tcb)
                return ck_error_set(reterr, -EBADMSG,
                                    "PCK certificate: SGX extension TCB is not a SEQUENCE");
        for (int i = 0; i < sk_ASN1_TYPE_num(tcb); i++) {
                _cleanup_(ASN1_SEQUENCE_ANYp) ASN1_SEQUENCE_ANY *pair =
                        seq_parse(sk_ASN1_TYPE_value(tcb, i));
                ASN1_TYPE *val = NULL;
                int64_t n = 0;
                int arc = pair ? pair_arc(pair, SGX_EXT_OID ".2", &val) : -1;

                if (arc < 1 || arc > 18 || (seen & (1u << arc)))
                        return ck_error_set(reterr, -EBADMSG,
                                            "PCK certificate: SGX extension TCB entry %d is invalid", i);
                seen |= 1u << arc;
                if (arc <= 16) {
                        if (integer(val, 255, &n) < 0)
                                return ck_error_set(
                                        reterr, -EBADMSG,
                                        "PCK certificate: SGX TCB component %d is not an INTEGER 0..255",
                                        arc);
                        info->comp_svn[arc - 1] = (uint8_t)n;
                } else if (arc == 17) {
                        if (integer(val, UINT16_MAX, &n) < 0)
                                return ck_error_set(reterr, -EBADMSG,
                                                    "PCK certificate: PCESVN is not an INTEGER");
                        info->pcesvn = (uint16_t)n;
                } else if (octets(val, info->cpusvn, 16) < 0)
                        return ck_error_set(reterr, -EBADMSG, "PCK certificate: CPUSVN is not 16 octets");
        }
        if (seen != 0x7fffeu)
                return ck_error_set(reterr, -EBADMSG, "PCK certificate: SGX extension TCB is incomplete");
        return 0;
}

int attest_pck_sgx_ext_parse(X509 *leaf, struct attest_pck_info *ret, struct ck_error **reterr)
{
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(SGX_EXT_OID, 1);
        _cleanup_(ASN1_SEQUENCE_ANYp) ASN1_SEQUENCE_ANY *seq = NULL;
        struct attest_pck_info info = {};
        const ASN1_OCTET_STRING *data;
        const unsigned char *p;
        unsigned seen = 0;
        int idx, r;

        if (!obj)
                return ck_ssl_error(reterr, -ENOMEM, "PCK certificate: SGX extension OID");
        idx = X509_get_ext_by_OBJ(leaf, obj, -1);
        if (idx < 0)
                return ck_error_set(reterr, -EBADMSG, "PCK certificate: SGX extension is missing");
        if (X509_get_ext_by_OBJ(leaf, obj, idx) >= 0)
                return ck_error_set(reterr, -EBADMSG, "PCK certificate: SGX extension appears twice");
        data = X509_EXTENSION_get_data(X509_get_ext(leaf, idx));
        p = ASN1_STRING_get0_data(data);
        seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, ASN1_STRING_length(data));
        if (!seq || p != ASN1_STRING_get0_data(data) + ASN1_STRING_length(data)) {
                ERR_clear_error();
                return ck_error_set(reterr, -EBADMSG,
                                    "PCK certificate: SGX extension is not a DER SEQUENCE");
        }
        for (int i = 0; i < sk_ASN1_TYPE_num(seq); i++) {
                _cleanup_(ASN1_SEQUENCE_ANYp) ASN1_SEQUENCE_ANY *pair =
                        seq_parse(sk_ASN1_TYPE_value(seq, i));
                ASN1_TYPE *val = NULL;
                int arc = pair ? pair_arc(pair, SGX_EXT_OID, &val) : -1;

                if (arc < 1 || arc > 31 || (seen & (1u << arc)))
                        return ck_error_set(reterr, -EBADMSG,
                                            "PCK certificate: SGX extension entry %d is invalid", i);
                seen |= 1u << arc;
                switch (arc) {
                case 2:
                        r = sgx_tcb_parse(val, &info, reterr);
                        if (r < 0)
                                return r;
                        break;
                case 3:
                        if (octets(val, info.pce_id, 2) < 0)
                                return ck_error_set(reterr, -EBADMSG,
                                                    "PCK certificate: PCE-ID is not 2 octets");
                        break;
                case 4:
                        if (octets(val, info.fmspc, 6) < 0)
                                return ck_error_set(reterr, -EBADMSG,
                                                    "PCK certificate: FMSPC is not 6 octets");
                        break;
                default: /* PPID, SGX type, platform instance, configuration: not needed here */
                        break;
                }
        }
        if ((seen & 0x1c) != 0x1c)
                return ck_error_set(reterr, -EBADMSG,
                                    "PCK certificate: SGX extension lacks TCB, PCE-ID or FMSPC");
        ERR_clear_error();
        *ret = info;
        return 0;
}

/* ---- the PCK chain of a quote ---- */

static const char *const pck_depth_names[] = {"PCK certificate", "intermediate certificate",
                                              "root certificate"};

static int pck_chain_verify_full(struct attest_collateral *c, const struct attest_quote *q, X509 *root,
                                 time_t now, struct attest_pck_entry *e, struct ck_error **reterr)
{
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *chain = NULL;
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *untrusted = NULL;
        STACK_OF(X509_CRL) *crls = NULL;
        struct attest_window w;
        X509 *leaf, *ca;
        X509_REVOKED *rev = NULL;
        int r;

        attest_window_init(&w);
        chain = attest_pem_chain_parse((const char *)q->cert_data, q->cert_len, 4);
        if (!chain)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "PCK chain: invalid PEM certificate chain in the quote");
        if (sk_X509_num(chain) != 3)
                return ck_error_set(reterr, -EKEYREJECTED, "PCK chain: %d certificates, expected exactly 3",
                                    sk_X509_num(chain));
        leaf = sk_X509_value(chain, 0);
        ca = sk_X509_value(chain, 1);
        if (!attest_cert_equal(sk_X509_value(chain, 2), root))
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "PCK chain: root certificate is not the trusted root");
        if (!attest_cert_cn_contains(leaf, "SGX PCK Certificate"))
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "PCK chain: leaf CN is not an SGX PCK Certificate");
        e->info.processor_ca = attest_cert_cn_contains(ca, "SGX PCK Processor CA");
        if (!e->info.processor_ca && !attest_cert_cn_contains(ca, "SGX PCK Platform CA"))
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "PCK chain: intermediate CN is not an SGX PCK Platform/Processor CA");

        /* 4.1.2.4.6: the PCK CRL must come from the CA that issued this PCK. */
        if (X509_NAME_cmp(X509_CRL_get_issuer(c->pck_crl), X509_get_issuer_name(leaf)) != 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "PCK chain: PCK CRL issuer is not the PCK certificate issuer");

        untrusted = sk_X509_new_null();
        crls = sk_X509_CRL_new_null();
        if (!untrusted || !crls || !sk_X509_push(untrusted, ca) || !X509_up_ref(ca) ||
            !sk_X509_CRL_push(crls, c->root_crl) || !sk_X509_CRL_push(crls, c->pck_crl)) {
                sk_X509_CRL_free(crls);
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        r = attest_chain_verify(root, leaf, untrusted, crls, now, "PCK chain", pck_depth_names, 3, &w,
                                reterr);
        sk_X509_CRL_free(crls); /* the CRLs belong to the collateral */
        if (r < 0)
                return r;
        r = attest_crl_check_time(c->pck_crl, now, "PCK CRL", &w, reterr);
        if (r < 0)
                return r;
        r = attest_crl_check_time(c->root_crl, now, "root CA CRL", &w, reterr);
        if (r < 0)
                return r;
        /* 4.1.2.4.7, explicitly (OpenSSL has checked it too): */
        if (X509_CRL_get0_by_cert(c->pck_crl, &rev, leaf) == 1)
                return ck_error_set(reterr, -EKEYREVOKED, "PCK chain: PCK certificate is revoked");
        if (X509_CRL_get0_by_cert(c->root_crl, &rev, ca) == 1)
                return ck_error_set(reterr, -EKEYREVOKED, "PCK chain: intermediate certificate is revoked");

        r = attest_pck_sgx_ext_parse(leaf, &e->info, reterr);
        if (r < 0)
                return r;
        e->leaf_key = X509_get_pubkey(leaf);
        if (!e->leaf_key || EVP_PKEY_get_base_id(e->leaf_key) != EVP_PKEY_EC ||
            EVP_PKEY_get_bits(e->leaf_key) != 256)
                return ck_error_set(reterr, -EKEYREJECTED, "PCK chain: PCK key is not an EC P-256 key");
        e->not_before = w.not_before;
        e->not_after = w.not_after;
        return 0;
}

int attest_pck_chain_verify(struct attest_collateral *c, const struct attest_quote *q, X509 *root,
                            const uint8_t root_fp[32], time_t now, const struct attest_pck_entry **ret,
                            struct ck_error **reterr)
{
        struct attest_pck_entry *e;
        int r;

        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n_pck_cache; i++) {
                e = c->pck_cache[i];
                if (e->chain_len == q->cert_len && memcmp(e->root_fp, root_fp, 32) == 0 &&
                    now >= e->not_before && now <= e->not_after &&
                    memcmp(e->chain, q->cert_data, q->cert_len) == 0) {
                        pthread_mutex_unlock(&c->lock);
                        *ret = e;
                        return 0;
                }
        }
        pthread_mutex_unlock(&c->lock);

        e = calloc(1, sizeof(*e));
        if (!e)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        r = pck_chain_verify_full(c, q, root, now, e, reterr);
        if (r >= 0) {
                e->chain = malloc(q->cert_len);
                if (!e->chain)
                        r = ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        if (r < 0) {
                EVP_PKEY_free(e->leaf_key);
                free(e->chain);
                free(e);
                return r;
        }
        memcpy(e->chain, q->cert_data, q->cert_len);
        e->chain_len = q->cert_len;
        memcpy(e->root_fp, root_fp, 32);

        pthread_mutex_lock(&c->lock);
        if (c->n_pck_cache < ATTEST_PCK_CACHE_MAX) {
                c->pck_cache[c->n_pck_cache++] = e;
                pthread_mutex_unlock(&c->lock);
                *ret = e;
                return 0;
        }
        pthread_mutex_unlock(&c->lock);
        /* Cache full: the caller gets a private entry it must free (see attest_pck_entry_release). */
        e->uncached = true;
        *ret = e;
        return 0;
}

void attest_pck_entry_release(const struct attest_pck_entry *e)
{
        struct attest_pck_entry *m = (struct attest_pck_entry *)e;

        if (!m || !m->uncached)
                return;
        EVP_PKEY_free(m->leaf_key);
        EVP_PKEY_free(m->ak_key);
        free(m->chain);
        free(m);
}

int attest_quote_pck_identity(const struct attest_quote *q, char ret_fmspc[13], const char **ret_ca_type,
                              struct ck_error **reterr)
{
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *chain = NULL;
        struct attest_pck_info info = {};
        X509 *ca;
        int r;

        chain = attest_pem_chain_parse((const char *)q->cert_data, q->cert_len, 4);
        if (!chain || sk_X509_num(chain) < 2)
                return ck_error_set(reterr, -EBADMSG,
                                    "PCK chain: invalid PEM certificate chain in the quote");
        r = attest_pck_sgx_ext_parse(sk_X509_value(chain, 0), &info, reterr);
        if (r < 0)
                return r;
        ca = sk_X509_value(chain, 1);
        if (attest_cert_cn_contains(ca, "SGX PCK Processor CA"))
                *ret_ca_type = "processor";
        else if (attest_cert_cn_contains(ca, "SGX PCK Platform CA"))
                *ret_ca_type = "platform";
        else
                return ck_error_set(reterr, -EBADMSG,
                                    "PCK chain: intermediate CN is not an SGX PCK Platform/Processor CA");
        ck_hex_encode(info.fmspc, 6, ret_fmspc);
        return 0;
}

int attest_quote_pck_identity_verified(const struct attest_quote *q, X509 *root, time_t now,
                                       char ret_fmspc[13], const char **ret_ca_type,
                                       struct ck_error **reterr)
{
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *chain = NULL;
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *untrusted = NULL;
        _cleanup_(X509_freep) X509 *intel = NULL;
        struct attest_pck_info info = {};
        struct attest_window w;
        const char *ca_type;
        X509 *leaf, *ca;
        int r;

        if (!root) {
                intel = attest_intel_root_ca();
                if (!intel)
                        return ck_error_set(reterr, -EIO, "the pinned Intel root certificate is unusable");
                root = intel;
        }
        chain = attest_pem_chain_parse((const char *)q->cert_data, q->cert_len, 4);
        if (!chain || sk_X509_num(chain) != 3)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "PCK chain: not a chain of exactly 3 PEM certificates");
        leaf = sk_X509_value(chain, 0);
        ca = sk_X509_value(chain, 1);
        /* The cheap refusal first: a self-made chain ends at a root of its own. */
        if (!attest_cert_equal(sk_X509_value(chain, 2), root))
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "PCK chain: root certificate is not the trusted root");
        if (attest_cert_cn_contains(ca, "SGX PCK Processor CA"))
                ca_type = "processor";
        else if (attest_cert_cn_contains(ca, "SGX PCK Platform CA"))
                ca_type = "platform";
        else
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "PCK chain: intermediate CN is not an SGX PCK Platform/Processor CA");
        if (!attest_cert_cn_contains(leaf, "SGX PCK Certificate"))
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "PCK chain: leaf CN is not an SGX PCK Certificate");
        untrusted = sk_X509_new_null();
        if (!untrusted || !sk_X509_push(untrusted, ca) || !X509_up_ref(ca))
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        attest_window_init(&w);
        /* No CRLs: they come with the collateral this check gates. attest_verify_quote() checks
         * the same chain again with both CRLs. */
        r = attest_chain_verify(root, leaf, untrusted, NULL, now, "PCK chain", pck_depth_names, 3, &w,
                                reterr);
        if (r < 0)
                return r;
        r = attest_pck_sgx_ext_parse(leaf, &info, reterr);
        if (r < 0)
                return r;
        ck_hex_encode(info.fmspc, 6, ret_fmspc);
        *ret_ca_type = ca_type;
        return 0;
}

/* The attestation key of a quote, decoded from X||Y, through a one-entry memo per PCK entry.
 *
 * A platform's QE keeps its attestation key across many quotes, and decoding a P-256 point costs
 * a quarter of an ECDSA verification. The memo maps the exact 64 bytes to the key object they
 * decode to, which is a pure function of those bytes: nothing about the quote is trusted because
 * of it. The QE report signature, the QE binding of this key and the quote signature are still
 * checked for every quote. */
int attest_pck_entry_attest_key(struct attest_collateral *c, const struct attest_pck_entry *entry,
                                const uint8_t xy[64], EVP_PKEY **ret)
{
        struct attest_pck_entry *e = (struct attest_pck_entry *)entry;
        EVP_PKEY *key = NULL;
        int r;

        pthread_mutex_lock(&c->lock);
        if (e->ak_key && memcmp(e->ak_raw, xy, 64) == 0 && EVP_PKEY_up_ref(e->ak_key) == 1)
                key = e->ak_key;
        pthread_mutex_unlock(&c->lock);
        if (key) {
                *ret = key;
                return 0;
        }
        r = attest_ec_p256_key_from_raw(xy, &key);
        if (r < 0)
                return r;
        pthread_mutex_lock(&c->lock);
        if (!e->ak_key && EVP_PKEY_up_ref(key) == 1) {
                memcpy(e->ak_raw, xy, 64);
                e->ak_key = key;
        }
        pthread_mutex_unlock(&c->lock);
        *ret = key;
        return 0;
}

bool attest_pck_entry_qe_report_verified(struct attest_collateral *c, const struct attest_pck_entry *entry,
                                         const uint8_t digest[32])
{
        bool ok;

        pthread_mutex_lock(&c->lock);
        ok = entry->qe_report_ok && memcmp(entry->qe_report_digest, digest, 32) == 0;
        pthread_mutex_unlock(&c->lock);
        return ok;
}

void attest_pck_entry_qe_report_mark(struct attest_collateral *c, const struct attest_pck_entry *entry,
                                     const uint8_t digest[32])
{
        struct attest_pck_entry *e = (struct attest_pck_entry *)entry;

        pthread_mutex_lock(&c->lock);
        memcpy(e->qe_report_digest, digest, 32);
        e->qe_report_ok = true;
        pthread_mutex_unlock(&c->lock);
}
