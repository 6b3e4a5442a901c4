/* DCAP collateral: loading (dcap-qvl JSON, raw PCS parts), serialisation, and fetching from a
 * PCS/PCCS over HTTPS with an on-disk cache (collateral-fetch.c).
 *
 * Trust: nothing here verifies anything. The signed TCB Info / QE Identity texts are kept as the
 * exact bytes that were signed: from a dcap-qvl file they are the decoded string values; from a
 * PCS response body they are located with json_value_span(), a small bounded scanner, because
 * jansson cannot report where a value lies in its input and re-serialising would change the
 * bytes. The content is then parsed (tcb.c) from those same bytes, so what verify.c checks the
 * signature of is exactly what is evaluated. */
#include <ctype.h>
#include <fcntl.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "collateral-private.h"
#include "fs.h"
#include "json.h"
#include "log.h"
#include "parse.h"
#include "ssl.h"

#define COLLATERAL_JSON_MAX (1024 * 1024)
#define PEM_CHAIN_MAX       (64 * 1024)
#define SIGNED_TEXT_MAX     (512 * 1024)
#define JSON_SPAN_DEPTH_MAX 64

/* ---- PEM chains ---- */

STACK_OF(X509) * attest_pem_chain_parse(const char *pem, size_t len, size_t max_certs)
{
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *sk = NULL;
        _cleanup_(BIO_free_allp) BIO *bio = NULL;

        if (len == 0 || len > PEM_CHAIN_MAX)
                return NULL;
        bio = BIO_new_mem_buf(pem, (int)len);
        sk = sk_X509_new_null();
        if (!bio || !sk)
                return NULL;
        for (;;) {
                X509 *x;

                ERR_clear_error();
                x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                if (!x) {
                        unsigned long e = ERR_peek_last_error();
                        ERR_clear_error();
                        /* The end of the input shows up as "no start line"; anything else is damage. */
                        if (ERR_GET_REASON(e) == PEM_R_NO_START_LINE && sk_X509_num(sk) > 0)
                                break;
                        return NULL;
                }
                if ((size_t)sk_X509_num(sk) >= max_certs || !sk_X509_push(sk, x)) {
                        X509_free(x);
                        return NULL;
                }
        }
        return TAKE_PTR(sk);
}

static X509_CRL *crl_parse(const uint8_t *der, size_t len)
{
        const unsigned char *p = der;
        X509_CRL *crl;

        if (len == 0 || len > CRL_MAX)
                return NULL;
        crl = d2i_X509_CRL(NULL, &p, (long)len);
        if (crl && p != der + len) {
                /* trailing bytes after the DER structure */
                X509_CRL_free(crl);
                return NULL;
        }
        return crl;
}

/* ---- JSON value spans ---- */

static size_t skip_ws(const char *s, size_t len, size_t i)
{
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
                i++;
        return i;
}

/* Skips a JSON string starting at s[i] == '"'; returns the index after the closing quote, or 0. */
static size_t skip_string(const char *s, size_t len, size_t i)
{
        for (i++; i < len; i++) {
                if (s[i] == '\\') {
                        i++;
                        continue;
                }
                if (s[i] == '"')
                        return i + 1;
        }
        return 0;
}

/* Skips one JSON value starting at s[i]; returns the index after it, or 0. Only delimits: the
 * whole document is also parsed by jansson, which rejects anything malformed. */
static size_t skip_value(const char *s, size_t len, size_t i)
{
        size_t depth = 0;

        if (i >= len)
                return 0;
        if (s[i] != '{' && s[i] != '[') {
                if (s[i] == '"')
                        return skip_string(s, len, i);
                while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
                       s[i] != '\n' && s[i] != '\r')
                        i++;
                return i;
        }
        while (i < len) {
                char ch = s[i];

                if (ch == '"') {
                        i = skip_string(s, len, i);
                        if (i == 0)
                                return 0;
                        continue;
                }
                if (ch == '{' || ch == '[') {
                        if (++depth > JSON_SPAN_DEPTH_MAX)
                                return 0;
                } else if (ch == '}' || ch == ']') {
                        if (depth == 0)
                                return 0;
                        if (--depth == 0)
                                return i + 1;
                }
                i++;
        }
        return 0;
}

/* Finds the value of top-level key `key` in the object text s[0..len): its exact byte span.
 * Keys with escapes are refused rather than decoded, so the scanner and jansson (which rejects
 * duplicate keys) cannot disagree about which member is meant. */
static int json_value_span(const char *s, size_t len, const char *key, size_t *ret_off, size_t *ret_len)
{
        size_t klen = strlen(key), i = skip_ws(s, len, 0);
        bool found = false;
        size_t off = 0, vlen = 0;

        if (i >= len || s[i] != '{')
                return -EBADMSG;
        i = skip_ws(s, len, i + 1);
        if (i < len && s[i] == '}')
                return -ENOENT;
        while (i < len) {
                size_t kstart, kend, vend;

                if (s[i] != '"')
                        return -EBADMSG;
                kstart = i + 1;
                kend = skip_string(s, len, i);
                if (kend == 0)
                        return -EBADMSG;
                if (memchr(s + kstart, '\\', kend - 1 - kstart))
                        return -EBADMSG;
                i = skip_ws(s, len, kend);
                if (i >= len || s[i] != ':')
                        return -EBADMSG;
                i = skip_ws(s, len, i + 1);
                vend = skip_value(s, len, i);
                if (vend == 0)
                        return -EBADMSG;
                if (kend - 1 - kstart == klen && memcmp(s + kstart, key, klen) == 0) {
                        if (found)
                                return -EBADMSG;
                        found = true;
                        off = i;
                        vlen = vend - i;
                }
                i = skip_ws(s, len, vend);
                if (i < len && s[i] == ',') {
                        i = skip_ws(s, len, i + 1);
                        continue;
                }
                if (i < len && s[i] == '}') {
                        if (!found)
                                return -ENOENT;
                        *ret_off = off;
                        *ret_len = vlen;
                        return 0;
                }
                return -EBADMSG;
        }
        return -EBADMSG;
}

/* ---- object lifetime ---- */

static struct attest_collateral *collateral_new(void)
{
        struct attest_collateral *c = calloc(1, sizeof(*c));

        if (c)
                pthread_mutex_init(&c->lock, NULL);
        return c;
}

void attest_collateral_free(struct attest_collateral *c)
{
        if (!c)
                return;
        free(c->pck_crl_issuer_chain);
        free(c->tcb_info_issuer_chain);
        free(c->qe_identity_issuer_chain);
        free(c->root_crl_der);
        free(c->pck_crl_der);
        free(c->tcb_info_text);
        free(c->qe_identity_text);
        sk_X509_pop_freep(&c->pck_crl_chain);
        sk_X509_pop_freep(&c->tcb_chain);
        sk_X509_pop_freep(&c->qe_chain);
        X509_CRL_free(c->root_crl);
        X509_CRL_free(c->pck_crl);
        attest_tcb_info_done(&c->tcb);
        attest_qe_identity_done(&c->qe);
        for (size_t i = 0; i < c->n_pck_cache; i++) {
                free(c->pck_cache[i]->chain);
                EVP_PKEY_free(c->pck_cache[i]->leaf_key);
                EVP_PKEY_free(c->pck_cache[i]->ak_key);
                free(c->pck_cache[i]);
        }
        pthread_mutex_destroy(&c->lock);
        free(c);
}

static char *dup_text(const char *s, size_t len)
{
        char *d = malloc(len + 1);

        if (!d)
                return NULL;
        memcpy(d, s, len);
        d[len] = '\0';
        return d;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t len)
{
        uint8_t *d = malloc(len ? len : 1);

        if (d && len)
                memcpy(d, p, len);
        return d;
}

/* Parses everything once the source material is in place. */
static int collateral_finish(struct attest_collateral *c, struct ck_error **reterr)
{
        int r;

        c->pck_crl_chain =
                attest_pem_chain_parse(c->pck_crl_issuer_chain, strlen(c->pck_crl_issuer_chain), 4);
        if (!c->pck_crl_chain)
                return ck_error_set(reterr, -EBADMSG,
                                    "collateral: PCK CRL issuer chain is not a PEM certificate chain");
        c->tcb_chain = attest_pem_chain_parse(c->tcb_info_issuer_chain, strlen(c->tcb_info_issuer_chain), 4);
        if (!c->tcb_chain)
                return ck_error_set(reterr, -EBADMSG,
                                    "collateral: TCB Info issuer chain is not a PEM certificate chain");
        c->qe_chain =
                attest_pem_chain_parse(c->qe_identity_issuer_chain, strlen(c->qe_identity_issuer_chain), 4);
        if (!c->qe_chain)
                return ck_error_set(reterr, -EBADMSG,
                                    "collateral: QE Identity issuer chain is not a PEM certificate chain");
        c->root_crl = crl_parse(c->root_crl_der, c->root_crl_len);
        if (!c->root_crl)
                return ck_error_set(reterr, -EBADMSG, "collateral: root CA CRL is not a DER CRL");
        c->pck_crl = crl_parse(c->pck_crl_der, c->pck_crl_len);
        if (!c->pck_crl)
                return ck_error_set(reterr, -EBADMSG, "collateral: PCK CRL is not a DER CRL");
        r = attest_tcb_info_parse(c->tcb_info_text, c->tcb_info_len, &c->tcb, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "collateral");
        r = attest_qe_identity_parse(c->qe_identity_text, c->qe_identity_len, &c->qe, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "collateral");
        return 0;
}

/* ---- dcap-qvl JSON ---- */

static int json_text(json_t *j, const char *key, size_t max, char **ret, size_t *ret_len,
                     struct ck_error **reterr)
{
        json_t *v = json_object_get(j, key);
        size_t n;

        if (!v)
                return ck_error_set(reterr, -EBADMSG, "collateral: \"%s\" is missing", key);
        if (!json_is_string(v))
                return ck_error_set(reterr, -EBADMSG, "collateral: \"%s\" is not a string", key);
        n = json_string_length(v);
        if (n == 0 || n > max || memchr(json_string_value(v), '\0', n))
                return ck_error_set(reterr, -EBADMSG, "collateral: \"%s\" is empty, too long or holds NUL",
                                    key);
        *ret = dup_text(json_string_value(v), n);
        if (!*ret)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        if (ret_len)
                *ret_len = n;
        return 0;
}

static int json_hex(json_t *j, const char *key, size_t max, uint8_t **ret, size_t *ret_len,
                    struct ck_error **reterr)
{
        json_t *v = json_object_get(j, key);

        if (!v || !json_is_string(v))
                return ck_error_set(reterr, -EBADMSG, "collateral: \"%s\" is missing or not a string", key);
        if (ck_hex_decode_alloc(json_string_value(v), json_string_length(v), max, ret, ret_len) < 0)
                return ck_error_set(reterr, -EBADMSG, "collateral: \"%s\" is not hex", key);
        return 0;
}

static int json_sig(json_t *j, const char *key, uint8_t out[64], struct ck_error **reterr)
{
        json_t *v = json_object_get(j, key);

        if (!v || !json_is_string(v))
                return ck_error_set(reterr, -EBADMSG, "collateral: \"%s\" is missing or not a string", key);
        if (ck_hex_decode(json_string_value(v), json_string_length(v), out, 64) < 0)
                return ck_error_set(reterr, -EBADMSG, "collateral: \"%s\" is not a 64-byte hex signature",
                                    key);
        return 0;
}

int attest_collateral_from_json(const uint8_t *buf, size_t len, struct attest_collateral **ret,
                                struct ck_error **reterr)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c = NULL;
        _cleanup_json_ json_t *j = NULL;
        int r;

        r = ck_json_loadb(buf, len, COLLATERAL_JSON_MAX, &j, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "collateral");
        if (!json_is_object(j))
                return ck_error_set(reterr, -EBADMSG, "collateral: not a JSON object");
        c = collateral_new();
        if (!c)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        if ((r = json_text(j, "pck_crl_issuer_chain", PEM_CHAIN_MAX, &c->pck_crl_issuer_chain, NULL,
                           reterr)) < 0 ||
            (r = json_text(j, "tcb_info_issuer_chain", PEM_CHAIN_MAX, &c->tcb_info_issuer_chain, NULL,
                           reterr)) < 0 ||
            (r = json_text(j, "qe_identity_issuer_chain", PEM_CHAIN_MAX, &c->qe_identity_issuer_chain, NULL,
                           reterr)) < 0 ||
            (r = json_hex(j, "root_ca_crl", CRL_MAX, &c->root_crl_der, &c->root_crl_len, reterr)) < 0 ||
            (r = json_hex(j, "pck_crl", CRL_MAX, &c->pck_crl_der, &c->pck_crl_len, reterr)) < 0 ||
            (r = json_text(j, "tcb_info", SIGNED_TEXT_MAX, &c->tcb_info_text, &c->tcb_info_len, reterr)) <
                    0 ||
            (r = json_sig(j, "tcb_info_signature", c->tcb_info_sig, reterr)) < 0 ||
            (r = json_text(j, "qe_identity", SIGNED_TEXT_MAX, &c->qe_identity_text, &c->qe_identity_len,
                           reterr)) < 0 ||
            (r = json_sig(j, "qe_identity_signature", c->qe_identity_sig, reterr)) < 0)
                return r;
        r = collateral_finish(c, reterr);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int attest_collateral_load_file(const char *path, struct attest_collateral **ret, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0;
        int r;

        r = ck_read_file(path, COLLATERAL_JSON_MAX, &data, &len, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "collateral file %s", path);
        r = attest_collateral_from_json(data, len, ret, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "%s", path);
        return 0;
}

/* ---- raw PCS parts ---- */

/* {"<key>":{…},"signature":"<hex>"}: the exact text of the signed value and its signature. */
static int pcs_body_split(const uint8_t *body, size_t len, const char *key, char **ret_text, size_t *ret_len,
                          uint8_t sig[64], struct ck_error **reterr)
{
        _cleanup_json_ json_t *j = NULL;
        size_t off = 0, vlen = 0;
        json_t *s;
        int r;

        r = ck_json_loadb(body, len, SIGNED_TEXT_MAX, &j, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, -EBADMSG, "%s response", key);
        if (!json_is_object(j) || !json_is_object(json_object_get(j, key)))
                return ck_error_set(reterr, -EBADMSG, "%s response: \"%s\" is missing or not an object", key,
                                    key);
        s = json_object_get(j, "signature");
        if (!json_is_string(s) || ck_hex_decode(json_string_value(s), json_string_length(s), sig, 64) < 0)
                return ck_error_set(reterr, -EBADMSG,
                                    "%s response: \"signature\" is not a 64-byte hex signature", key);
        r = json_value_span((const char *)body, len, key, &off, &vlen);
        if (r < 0)
                return ck_error_set(reterr, -EBADMSG, "%s response: cannot locate the signed \"%s\" value",
                                    key, key);
        if (memchr(body + off, '\0', vlen))
                return ck_error_set(reterr, -EBADMSG, "%s response: NUL inside the signed value", key);
        *ret_text = dup_text((const char *)body + off, vlen);
        if (!*ret_text)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        *ret_len = vlen;
        return 0;
}

static int pem_text(const char *pem, const char *what, char **ret, struct ck_error **reterr)
{
        size_t n;

        if (!pem)
                return ck_error_set(reterr, -EINVAL, "collateral: %s is missing", what);
        n = strnlen(pem, PEM_CHAIN_MAX + 1);
        if (n == 0 || n > PEM_CHAIN_MAX)
                return ck_error_set(reterr, -EBADMSG, "collateral: %s is empty or too long", what);
        *ret = dup_text(pem, n);
        return *ret ? 0 : ck_error_set(reterr, -ENOMEM, "out of memory");
}

int attest_collateral_from_parts(const struct attest_collateral_parts *p, struct attest_collateral **ret,
                                 struct ck_error **reterr)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *c = NULL;
        int r;

        if (!p->tcb_info_body || !p->qe_identity_body || !p->pck_crl_der || !p->root_crl_der)
                return ck_error_set(reterr, -EINVAL, "collateral: a part is missing");
        if (p->pck_crl_len > CRL_MAX || p->root_crl_len > CRL_MAX)
                return ck_error_set(reterr, -E2BIG, "collateral: CRL too large");
        c = collateral_new();
        if (!c)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        if ((r = pcs_body_split(p->tcb_info_body, p->tcb_info_len, "tcbInfo", &c->tcb_info_text,
                                &c->tcb_info_len, c->tcb_info_sig, reterr)) < 0 ||
            (r = pcs_body_split(p->qe_identity_body, p->qe_identity_len, "enclaveIdentity",
                                &c->qe_identity_text, &c->qe_identity_len, c->qe_identity_sig, reterr)) <
                    0 ||
            (r = pem_text(p->tcb_issuer_chain_pem, "TCB Info issuer chain", &c->tcb_info_issuer_chain,
                          reterr)) < 0 ||
            (r = pem_text(p->qe_issuer_chain_pem ? p->qe_issuer_chain_pem : p->tcb_issuer_chain_pem,
                          "QE Identity issuer chain", &c->qe_identity_issuer_chain, reterr)) < 0 ||
            (r = pem_text(p->pck_crl_issuer_chain_pem, "PCK CRL issuer chain", &c->pck_crl_issuer_chain,
                          reterr)) < 0)
                return r;
        c->pck_crl_der = dup_bytes(p->pck_crl_der, p->pck_crl_len);
        c->root_crl_der = dup_bytes(p->root_crl_der, p->root_crl_len);
        if (!c->pck_crl_der || !c->root_crl_der)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        c->pck_crl_len = p->pck_crl_len;
        c->root_crl_len = p->root_crl_len;
        r = collateral_finish(c, reterr);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* ---- serialisation ---- */

static time_t crl_next_update(const X509_CRL *crl)
{
        const ASN1_TIME *t = X509_CRL_get0_nextUpdate(crl);
        struct tm tm = {};

        if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
                return 0; /* no nextUpdate: treat as already stale */
        return timegm(&tm);
}

time_t attest_collateral_next_update(const struct attest_collateral *c)
{
        time_t t = c->tcb.next_update;

        if (c->qe.next_update < t)
                t = c->qe.next_update;
        if (crl_next_update(c->root_crl) < t)
                t = crl_next_update(c->root_crl);
        if (crl_next_update(c->pck_crl) < t)
                t = crl_next_update(c->pck_crl);
        return t;
}

time_t attest_collateral_issue_date(const struct attest_collateral *c)
{
        return c->tcb.issue_date > c->qe.issue_date ? c->tcb.issue_date : c->qe.issue_date;
}

int attest_collateral_to_json(const struct attest_collateral *c, char **ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *j = json_object();
        _cleanup_free_ char *root_crl = ck_hex_encode_alloc(c->root_crl_der, c->root_crl_len);
        _cleanup_free_ char *pck_crl = ck_hex_encode_alloc(c->pck_crl_der, c->pck_crl_len);
        char tsig[129], qsig[129];
        char *out;

        if (!j || !root_crl || !pck_crl)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        ck_hex_encode(c->tcb_info_sig, 64, tsig);
        ck_hex_encode(c->qe_identity_sig, 64, qsig);
        if (json_object_set_new(j, "pck_crl_issuer_chain", json_string(c->pck_crl_issuer_chain)) < 0 ||
            json_object_set_new(j, "root_ca_crl", json_string(root_crl)) < 0 ||
            json_object_set_new(j, "pck_crl", json_string(pck_crl)) < 0 ||
            json_object_set_new(j, "tcb_info_issuer_chain", json_string(c->tcb_info_issuer_chain)) < 0 ||
            json_object_set_new(j, "tcb_info", json_stringn(c->tcb_info_text, c->tcb_info_len)) < 0 ||
            json_object_set_new(j, "tcb_info_signature", json_string(tsig)) < 0 ||
            json_object_set_new(j, "qe_identity_issuer_chain", json_string(c->qe_identity_issuer_chain)) <
                    0 ||
            json_object_set_new(j, "qe_identity", json_stringn(c->qe_identity_text, c->qe_identity_len)) <
                    0 ||
            json_object_set_new(j, "qe_identity_signature", json_string(qsig)) < 0)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        out = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!out)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        *ret = out;
        return 0;
}
