/* RA-TLS evidence CBOR (ratls.h): encoding of the claims map and the tag-60000 evidence, and
 * the bounded parsers for both, kept apart from certificate making and verification so that
 * fuzzers can link them alone.
 *
 * CBOR comes from the peer, so before libcbor builds a tree from it a streaming pre-scan
 * checks the shape: only unsigned integers, definite byte/text strings, definite arrays,
 * maps and tags; every declared length fits in the input; nesting at most 8 deep; exactly one
 * top-level item and no trailing bytes. That bounds memory and recursion for what follows. */
#include <errno.h>
#include <string.h>

#include "eventlog.h"
#include "ratls-internal.h"

/* ---- bounded CBOR pre-scan ---- */

struct cbor_scan {
        size_t len;
        size_t remaining[CBOR_DEPTH_MAX];
        int depth;
        size_t top;
        bool bad;
};

static void scan_item_done(struct cbor_scan *s)
{
        for (;;) {
                if (s->depth == 0) {
                        s->top++;
                        return;
                }
                if (--s->remaining[s->depth - 1] > 0)
                        return;
                s->depth--; /* the container is complete: it is an item of its parent */
        }
}

static void scan_container(struct cbor_scan *s, size_t items)
{
        if (items == 0) {
                scan_item_done(s);
                return;
        }
        /* Every item takes at least one byte, so a count beyond the input is a lie. */
        if (items > s->len || s->depth >= CBOR_DEPTH_MAX) {
                s->bad = true;
                return;
        }
        s->remaining[s->depth++] = items;
}

static void scan_uint8(void *c, uint8_t v)
{
        scan_item_done(c);
}
static void scan_uint16(void *c, uint16_t v)
{
        scan_item_done(c);
}
static void scan_uint32(void *c, uint32_t v)
{
        scan_item_done(c);
}
static void scan_uint64(void *c, uint64_t v)
{
        scan_item_done(c);
}
static void scan_bytes(void *c, cbor_data d, size_t n)
{
        scan_item_done(c);
}
static void scan_array(void *c, size_t n)
{
        scan_container(c, n);
}
static void scan_map(void *c, size_t n)
{
        struct cbor_scan *s = c;
        if (n > s->len / 2) {
                s->bad = true;
                return;
        }
        scan_container(c, 2 * n);
}
static void scan_tag(void *c, uint64_t v)
{
        scan_container(c, 1);
}
static void scan_bad(void *c)
{
        ((struct cbor_scan *)c)->bad = true;
}
static void scan_bad_i8(void *c, uint8_t v)
{
        scan_bad(c);
}
static void scan_bad_i16(void *c, uint16_t v)
{
        scan_bad(c);
}
static void scan_bad_i32(void *c, uint32_t v)
{
        scan_bad(c);
}
static void scan_bad_i64(void *c, uint64_t v)
{
        scan_bad(c);
}
static void scan_bad_f(void *c, float v)
{
        scan_bad(c);
}
static void scan_bad_d(void *c, double v)
{
        scan_bad(c);
}
static void scan_bad_b(void *c, bool v)
{
        scan_bad(c);
}

static const struct cbor_callbacks scan_callbacks = {
        .uint8 = scan_uint8,
        .uint16 = scan_uint16,
        .uint32 = scan_uint32,
        .uint64 = scan_uint64,
        .negint8 = scan_bad_i8,
        .negint16 = scan_bad_i16,
        .negint32 = scan_bad_i32,
        .negint64 = scan_bad_i64,
        .byte_string = scan_bytes,
        .byte_string_start = scan_bad,
        .string = scan_bytes,
        .string_start = scan_bad,
        .array_start = scan_array,
        .indef_array_start = scan_bad,
        .map_start = scan_map,
        .indef_map_start = scan_bad,
        .tag = scan_tag,
        .float2 = scan_bad_f,
        .float4 = scan_bad_f,
        .float8 = scan_bad_d,
        .undefined = scan_bad,
        .null = scan_bad,
        .boolean = scan_bad_b,
        .indef_break = scan_bad,
};

/* Loads one CBOR item from buf[0..len) after the pre-scan; the whole buffer must be used. */
static int cbor_load_strict(const uint8_t *buf, size_t len, const char *what, cbor_item_t **ret,
                            struct ck_error **reterr)
{
        struct cbor_scan s = {.len = len};
        struct cbor_load_result res;
        size_t off = 0;
        cbor_item_t *item;

        while (off < len && !s.bad) {
                struct cbor_decoder_result d = cbor_stream_decode(buf + off, len - off, &scan_callbacks, &s);
                if (d.status != CBOR_DECODER_FINISHED || d.read == 0)
                        return ck_error_set(reterr, -EBADMSG, "%s: malformed or truncated CBOR", what);
                off += d.read;
        }
        if (s.bad)
                return ck_error_set(reterr, -EBADMSG,
                                    "%s: unsupported CBOR (indefinite length, float, simple value, negative "
                                    "integer, impossible length or nesting deeper than %d)",
                                    what, CBOR_DEPTH_MAX);
        if (s.depth != 0 || s.top != 1)
                return ck_error_set(reterr, -EBADMSG, "%s: expected exactly one CBOR item (%zu found%s)",
                                    what, s.top, s.depth ? ", last one incomplete" : "");
        item = cbor_load(buf, len, &res);
        if (!item || res.error.code != CBOR_ERR_NONE || res.read != len) {
                if (item)
                        cbor_decref(&item);
                return ck_error_set(reterr, -EBADMSG, "%s: malformed CBOR", what);
        }
        *ret = item;
        return 0;
}

static bool cbor_is_text(const cbor_item_t *i, const char *s)
{
        size_t n = strlen(s);

        return cbor_isa_string(i) && cbor_string_is_definite(i) && cbor_string_length(i) == n &&
               memcmp(cbor_string_handle(i), s, n) == 0;
}

static bool cbor_is_bstr(const cbor_item_t *i)
{
        return cbor_isa_bytestring(i) && cbor_bytestring_is_definite(i);
}

/* ---- parsing ---- */

int attest_ratls_parse_extension(const uint8_t *buf, size_t len, const uint8_t **ret_quote,
                                 size_t *ret_quote_len, const uint8_t **ret_claims, size_t *ret_claims_len,
                                 struct ck_error **reterr)
{
        _cleanup_cbor_ cbor_item_t *top = NULL, *inner = NULL, *q = NULL, *c = NULL;
        size_t qoff, coff;
        int r;

        if (!buf || len > RATLS_EXT_MAX)
                return ck_error_set(reterr, -EFBIG, "RA-TLS extension: %zu bytes exceeds %u", len,
                                    RATLS_EXT_MAX);
        r = cbor_load_strict(buf, len, "RA-TLS extension", &top, reterr);
        if (r < 0)
                return r;
        if (!cbor_isa_tag(top) || cbor_tag_value(top) != RATLS_TAG)
                return ck_error_set(reterr, -EBADMSG, "RA-TLS extension: not CBOR tag %u (TEE quote)",
                                    RATLS_TAG);
        inner = cbor_tag_item(top);
        if (!cbor_isa_array(inner) || !cbor_array_is_definite(inner) || cbor_array_size(inner) != 2)
                return ck_error_set(reterr, -EBADMSG, "RA-TLS extension: expected [quote, claims]");
        q = cbor_array_get(inner, 0);
        c = cbor_array_get(inner, 1);
        if (!cbor_is_bstr(q) || !cbor_is_bstr(c))
                return ck_error_set(reterr, -EBADMSG,
                                    "RA-TLS extension: quote and claims must be byte strings");
        if (cbor_bytestring_length(q) == 0 || cbor_bytestring_length(q) > RATLS_QUOTE_MAX ||
            cbor_bytestring_length(c) > RATLS_CLAIMS_MAX)
                return ck_error_set(reterr, -EBADMSG, "RA-TLS extension: quote or claims size out of range");

        /* Hand out pointers into the caller's buffer (REPORTDATA is a hash of the claims
         * bytes exactly as transported). A definite bstr is stored contiguously, and it is
         * the last thing in its item, so its bytes end where the item ends. */
        coff = len - cbor_bytestring_length(c);
        if (memcmp(buf + coff, cbor_bytestring_handle(c), cbor_bytestring_length(c)) != 0)
                return ck_error_set(reterr, -EBADMSG, "RA-TLS extension: unexpected claims layout");
        /* The quote bstr ends where the claims item starts; find that item's header length. */
        {
                size_t clen = cbor_bytestring_length(c);
                size_t hdr = clen < 24               ? 1
                             : clen < 0x100          ? 2
                             : clen < 0x10000        ? 3
                             : clen < 0x100000000ull ? 5
                                                     : 9;
                if (coff < hdr + cbor_bytestring_length(q))
                        return ck_error_set(reterr, -EBADMSG, "RA-TLS extension: unexpected layout");
                qoff = coff - hdr - cbor_bytestring_length(q);
        }
        if (memcmp(buf + qoff, cbor_bytestring_handle(q), cbor_bytestring_length(q)) != 0)
                return ck_error_set(reterr, -EBADMSG,
                                    "RA-TLS extension: non-canonical CBOR length encoding");
        *ret_quote = buf + qoff;
        *ret_quote_len = cbor_bytestring_length(q);
        *ret_claims = buf + coff;
        *ret_claims_len = cbor_bytestring_length(c);
        return 0;
}

/* Frees what parse_claims copied out; the verification result is not its business. */
static void evidence_fields_free(struct attest_ratls_evidence *e)
{
        free(e->app_id);
        free(e->nonce);
        free(e->rtmr3_log);
        free(e->task_config);
}

static int bstr_dup(const cbor_item_t *v, size_t max, const char *key, uint8_t **ret, size_t *ret_len,
                    struct ck_error **reterr)
{
        size_t n = cbor_bytestring_length(v);
        uint8_t *d;

        if (n > max)
                return ck_error_set(reterr, -EBADMSG, "RA-TLS claims: \"%s\" is longer than %zu bytes", key,
                                    max);
        d = malloc(n + 1); /* +1: never malloc(0), and text claims stay NUL-terminated */
        if (!d)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        memcpy(d, cbor_bytestring_handle(v), n);
        d[n] = 0;
        *ret = d;
        *ret_len = n;
        return 0;
}

static int parse_pubkey_hash(const cbor_item_t *v, uint8_t ret[32], struct ck_error **reterr)
{
        _cleanup_cbor_ cbor_item_t *arr = NULL, *alg = NULL, *dig = NULL;
        int r;

        r = cbor_load_strict(cbor_bytestring_handle(v), cbor_bytestring_length(v), "RA-TLS pubkey-hash",
                             &arr, reterr);
        if (r < 0)
                return r;
        if (!cbor_isa_array(arr) || cbor_array_size(arr) != 2)
                return ck_error_set(reterr, -EBADMSG, "RA-TLS pubkey-hash: expected [alg, digest]");
        alg = cbor_array_get(arr, 0);
        dig = cbor_array_get(arr, 1);
        if (!cbor_isa_uint(alg) || cbor_get_int(alg) != RATLS_HASH_SHA256)
                return ck_error_set(reterr, -EOPNOTSUPP, "RA-TLS pubkey-hash: only SHA-256 (1) is accepted");
        if (!cbor_is_bstr(dig) || cbor_bytestring_length(dig) != 32)
                return ck_error_set(reterr, -EBADMSG, "RA-TLS pubkey-hash: digest must be 32 bytes");
        memcpy(ret, cbor_bytestring_handle(dig), 32);
        return 0;
}

int attest_ratls_parse_claims(const uint8_t *buf, size_t len, struct attest_ratls_evidence *ret,
                              uint8_t ret_pubkey_hash[32], struct ck_error **reterr)
{
        static const char *const known[] = {"pubkey-hash",  "appId",       "ctx",      "nonce",
                                            "tls-exporter", "task-config", "rtmr3-log"};
        _cleanup_(evidence_fields_free) struct attest_ratls_evidence local = {0};
        struct attest_ratls_evidence *ev = &local;
        _cleanup_cbor_ cbor_item_t *map = NULL;
        bool seen[ELEMENTSOF(known)] = {false};
        uint8_t pkh[32];
        struct cbor_pair *pairs;
        int r;

        if (!buf || len > RATLS_CLAIMS_MAX)
                return ck_error_set(reterr, -EFBIG, "RA-TLS claims: %zu bytes exceeds %u", len,
                                    RATLS_CLAIMS_MAX);
        r = cbor_load_strict(buf, len, "RA-TLS claims", &map, reterr);
        if (r < 0)
                return r;
        if (!cbor_isa_map(map) || !cbor_map_is_definite(map))
                return ck_error_set(reterr, -EBADMSG, "RA-TLS claims: expected a definite-length map");
        pairs = cbor_map_handle(map);
        for (size_t i = 0; i < cbor_map_size(map); i++) {
                const cbor_item_t *k = pairs[i].key, *v = pairs[i].value;
                size_t which = ELEMENTSOF(known);

                if (!cbor_isa_string(k) || !cbor_string_is_definite(k))
                        return ck_error_set(reterr, -EBADMSG, "RA-TLS claims: keys must be text");
                if (!cbor_is_bstr(v))
                        return ck_error_set(reterr, -EBADMSG, "RA-TLS claims: values must be byte strings");
                for (size_t w = 0; w < ELEMENTSOF(known); w++)
                        if (cbor_is_text(k, known[w]))
                                which = w;
                if (which == ELEMENTSOF(known)) {
                        /* Custom claims are allowed (they are bound by REPORTDATA) but a key
                         * may appear only once, so check duplicates among them too. */
                        for (size_t j = 0; j < i; j++)
                                if (cbor_string_length(pairs[j].key) == cbor_string_length(k) &&
                                    memcmp(cbor_string_handle(pairs[j].key), cbor_string_handle(k),
                                           cbor_string_length(k)) == 0)
                                        return ck_error_set(reterr, -EBADMSG,
                                                            "RA-TLS claims: duplicate key");
                        continue;
                }
                if (seen[which])
                        return ck_error_set(reterr, -EBADMSG, "RA-TLS claims: duplicate \"%s\"",
                                            known[which]);
                seen[which] = true;
                switch (which) {
                case 0:
                        r = parse_pubkey_hash(v, pkh, reterr);
                        break;
                case 1:
                        r = bstr_dup(v, RATLS_APPID_MAX, known[which], &ev->app_id, &ev->app_id_len, reterr);
                        break;
                case 2:
                        r = cbor_bytestring_length(v) == strlen(ATTEST_RATLS_CTX) &&
                                            memcmp(cbor_bytestring_handle(v), ATTEST_RATLS_CTX,
                                                   strlen(ATTEST_RATLS_CTX)) == 0
                                    ? 0
                                    : ck_error_set(reterr, -EBADMSG,
                                                   "RA-TLS claims: ctx is not \"" ATTEST_RATLS_CTX
                                                   "\" (evidence made for another protocol)");
                        break;
                case 3:
                        r = bstr_dup(v, RATLS_NONCE_MAX, known[which], &ev->nonce, &ev->nonce_len, reterr);
                        break;
                case 4:
                        if (cbor_bytestring_length(v) != ATTEST_RATLS_EXPORTER_LEN) {
                                r = ck_error_set(reterr, -EBADMSG,
                                                 "RA-TLS claims: \"tls-exporter\" must be %u bytes",
                                                 ATTEST_RATLS_EXPORTER_LEN);
                                break;
                        }
                        memcpy(ev->tls_exporter, cbor_bytestring_handle(v), ATTEST_RATLS_EXPORTER_LEN);
                        ev->has_tls_exporter = true;
                        r = 0;
                        break;
                case 5:
                        r = bstr_dup(v, ATTEST_RATLS_TASK_CONFIG_MAX, known[which], &ev->task_config,
                                     &ev->task_config_len, reterr);
                        break;
                default:
                        r = bstr_dup(v, ATTEST_RT_LOG_MAX, known[which], &ev->rtmr3_log, &ev->rtmr3_log_len,
                                     reterr);
                }
                if (r < 0)
                        return r;
        }
        if (!seen[0] || !seen[1] || !seen[2])
                return ck_error_set(reterr, -EBADMSG, "RA-TLS claims: \"%s\" is missing",
                                    !seen[0]   ? "pubkey-hash"
                                    : !seen[1] ? "appId"
                                               : "ctx");
        *ret = local;
        local = (struct attest_ratls_evidence){0};
        memcpy(ret_pubkey_hash, pkh, 32);
        return 0;
}

/* ---- encoding ---- */

static bool map_add_bstr(cbor_item_t *map, const char *key, const uint8_t *v, size_t n)
{
        _cleanup_cbor_ cbor_item_t *k = cbor_build_string(key);
        _cleanup_cbor_ cbor_item_t *val = cbor_build_bytestring(v, n);

        return k && val && cbor_map_add(map, (struct cbor_pair){.key = k, .value = val});
}

static int serialize(const cbor_item_t *item, uint8_t **ret, size_t *ret_len)
{
        unsigned char *buf = NULL;
        size_t cap = 0;
        size_t n = cbor_serialize_alloc(item, &buf, &cap);

        if (n == 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        *ret_len = n;
        return 0;
}

int ratls_claims_encode(const uint8_t pkh[32], const struct attest_ratls_claims *c, uint8_t **ret,
                        size_t *ret_len)
{
        size_t n = 3 + (c->nonce ? 1 : 0) + (c->tls_exporter ? 1 : 0) + (c->task_config ? 1 : 0) +
                   (c->rtmr3_log ? 1 : 0);
        _cleanup_cbor_ cbor_item_t *map = cbor_new_definite_map(n);
        _cleanup_cbor_ cbor_item_t *ph = cbor_new_definite_array(2);
        _cleanup_cbor_ cbor_item_t *alg = cbor_build_uint8(RATLS_HASH_SHA256);
        _cleanup_cbor_ cbor_item_t *dig = cbor_build_bytestring(pkh, 32);
        _cleanup_free_ uint8_t *phbuf = NULL;
        const char *ctx = c->ctx ? c->ctx : ATTEST_RATLS_CTX;
        size_t phlen = 0;

        if (!map || !ph || !alg || !dig || !cbor_array_push(ph, alg) || !cbor_array_push(ph, dig) ||
            serialize(ph, &phbuf, &phlen) < 0)
                return -ENOMEM;
        /* Key order is part of the format (ratls.h): pubkey-hash, appId, ctx, nonce, tls-exporter,
         * task-config, rtmr3-log. */
        if (!map_add_bstr(map, "pubkey-hash", phbuf, phlen) ||
            !map_add_bstr(map, "appId", c->app_id, c->app_id_len) ||
            !map_add_bstr(map, "ctx", (const uint8_t *)ctx, strlen(ctx)) ||
            (c->nonce && !map_add_bstr(map, "nonce", c->nonce, c->nonce_len)) ||
            (c->tls_exporter &&
             !map_add_bstr(map, "tls-exporter", c->tls_exporter, ATTEST_RATLS_EXPORTER_LEN)) ||
            (c->task_config && !map_add_bstr(map, "task-config", c->task_config, c->task_config_len)) ||
            (c->rtmr3_log && !map_add_bstr(map, "rtmr3-log", c->rtmr3_log, c->rtmr3_log_len)))
                return -ENOMEM;
        return serialize(map, ret, ret_len);
}

int ratls_evidence_encode(const uint8_t *quote, size_t qlen, const uint8_t *claims, size_t clen,
                          uint8_t **ret, size_t *ret_len)
{
        _cleanup_cbor_ cbor_item_t *tag = cbor_new_tag(RATLS_TAG);
        _cleanup_cbor_ cbor_item_t *arr = cbor_new_definite_array(2);
        _cleanup_cbor_ cbor_item_t *q = cbor_build_bytestring(quote, qlen);
        _cleanup_cbor_ cbor_item_t *c = cbor_build_bytestring(claims, clen);

        if (!tag || !arr || !q || !c || !cbor_array_push(arr, q) || !cbor_array_push(arr, c))
                return -ENOMEM;
        cbor_tag_set_item(tag, arr);
        return serialize(tag, ret, ret_len);
}
