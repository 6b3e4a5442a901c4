/* DCAP quote parsing (SGX v3, SGX/TDX v4, v5 with body descriptor).
 *
 * The layout is walked strictly by its length fields (docs/tdx-verification.md §1):
 * header, body, signature-data length, then the signature data, whose nested sizes must exactly
 * account for their contents. Every read goes through a bounded cursor, so no field can be read
 * beyond the declared size or the buffer. Bytes after the signature data are ignored because real
 * quotes carry padding. Semantic checks that need collateral or keys live in verify.c. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "fs.h"
#include "parse.h"
#include "quote.h"

#define QUOTE_HEADER_LEN    48
#define SGX_REPORT_LEN      384
#define TD_REPORT10_LEN     584
#define TD_REPORT15_LEN     648
#define QE_REPORT_LEN       384
#define CERT_TYPE_PCK_CHAIN 5
#define CERT_TYPE_QE_REPORT 6
#define QUOTE_FILE_MAX      (1024 * 1024)

static const uint8_t intel_qe_vendor_id[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                               0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

static void parse_sgx_body(const uint8_t *b, struct attest_measurements *m)
{
        memcpy(m->sgx_attributes, b + 48, 16);
        memcpy(m->mr_enclave, b + 64, 32);
        memcpy(m->mr_signer, b + 128, 32);
        m->isv_prod_id = ck_le16(b + 256);
        m->isv_svn = ck_le16(b + 258);
        memcpy(m->report_data, b + 320, 64);
}

static void parse_td_body(const uint8_t *b, size_t len, struct attest_measurements *m)
{
        memcpy(m->tee_tcb_svn, b + 0, 16);
        memcpy(m->mr_seam, b + 16, 48);
        memcpy(m->mr_signer_seam, b + 64, 48);
        memcpy(m->seam_attributes, b + 112, 8);
        memcpy(m->td_attributes, b + 120, 8);
        memcpy(m->xfam, b + 128, 8);
        memcpy(m->mr_td, b + 136, 48);
        memcpy(m->mr_config_id, b + 184, 48);
        memcpy(m->mr_owner, b + 232, 48);
        memcpy(m->mr_owner_config, b + 280, 48);
        for (size_t i = 0; i < 4; i++)
                memcpy(m->rtmr[i], b + 328 + 48 * i, 48);
        memcpy(m->report_data, b + 520, 64);
        if (len >= TD_REPORT15_LEN) {
                m->has_v15 = true;
                memcpy(m->tee_tcb_svn2, b + 584, 16);
                memcpy(m->mr_service_td, b + 600, 48);
        }
}

/* The QE report, its signature, the QE auth data and the PCK certification data. In v4/v5 they
 * are wrapped in certification data of type 6 whose size must be exactly what they occupy. */
static int parse_qe_part(struct ck_cursor *c, struct attest_quote *q, struct ck_error **reterr)
{
        uint16_t auth_len, cert_type;
        uint32_t cert_len;

        q->qe_report = ck_cursor_take(c, QE_REPORT_LEN);
        q->qe_report_sig = ck_cursor_take(c, 64);
        if (c->err)
                return ck_error_set(reterr, -EBADMSG, "quote: QE report truncated (%zu bytes left)",
                                    ck_cursor_left(c));
        auth_len = ck_cursor_u16le(c);
        if (c->err)
                return ck_error_set(reterr, -EBADMSG, "quote: QE auth data size truncated");
        q->qe_auth_data = ck_cursor_take(c, auth_len);
        if (c->err)
                return ck_error_set(reterr, -EBADMSG,
                                    "quote: QE auth data size %u exceeds the %zu bytes left", auth_len,
                                    ck_cursor_left(c));
        q->qe_auth_len = auth_len;
        cert_type = ck_cursor_u16le(c);
        cert_len = ck_cursor_u32le(c);
        if (c->err)
                return ck_error_set(reterr, -EBADMSG, "quote: PCK certification data header truncated");
        if (cert_type < 1 || cert_type > CERT_TYPE_PCK_CHAIN)
                return ck_error_set(reterr, -EBADMSG, "quote: PCK certification data type %u is invalid",
                                    cert_type);
        if (cert_type != CERT_TYPE_PCK_CHAIN)
                return ck_error_set(
                        reterr, -EOPNOTSUPP,
                        "quote: PCK certification data type %u is not supported (only 5, PCK chain)",
                        cert_type);
        if (cert_len != ck_cursor_left(c))
                return ck_error_set(reterr, -EBADMSG,
                                    "quote: PCK certification data size %" PRIu32
                                    " does not match the %zu bytes left",
                                    cert_len, ck_cursor_left(c));
        q->cert_type = cert_type;
        q->cert_data = ck_cursor_take(c, cert_len);
        q->cert_len = cert_len;
        while (q->cert_len > 0 && q->cert_data[q->cert_len - 1] == 0)
                q->cert_len--;
        if (q->cert_len == 0)
                return ck_error_set(reterr, -EBADMSG, "quote: PCK certification data is empty");
        return 0;
}

int attest_quote_parse(const uint8_t *buf, size_t len, struct attest_quote *ret, struct ck_error **reterr)
{
        struct ck_cursor c = ck_cursor_make(buf, len);
        struct attest_quote q = {};
        const uint8_t *body;
        size_t body_len;
        uint32_t sig_len;
        int r;

        if (!buf && len)
                return ck_error_set(reterr, -EINVAL, "quote: no buffer");
        if (len < QUOTE_HEADER_LEN)
                return ck_error_set(reterr, -EBADMSG, "quote: %zu bytes is shorter than the 48-byte header",
                                    len);

        q.version = ck_cursor_u16le(&c);
        q.att_key_type = ck_cursor_u16le(&c);
        q.tee_type = ck_cursor_u32le(&c);
        (void)ck_cursor_take(&c, 4); /* reserved (v3: QE SVN, PCE SVN) */
        ck_cursor_copy(&c, q.qe_vendor_id, 16);
        (void)ck_cursor_take(&c, 20); /* user data */

        if (q.version < 3 || q.version > 5)
                return ck_error_set(reterr, -EOPNOTSUPP, "quote: version %u is not supported (3, 4 or 5)",
                                    q.version);
        if (q.att_key_type != 2)
                return ck_error_set(reterr, -EOPNOTSUPP,
                                    "quote: attestation key type %u is not supported (2, ECDSA P-256)",
                                    q.att_key_type);
        if (q.tee_type != ATTEST_TEE_SGX && q.tee_type != ATTEST_TEE_TDX)
                return ck_error_set(reterr, -EOPNOTSUPP, "quote: TEE type 0x%08x is not supported",
                                    q.tee_type);
        if (q.version == 3 && q.tee_type != ATTEST_TEE_SGX)
                return ck_error_set(reterr, -EBADMSG,
                                    "quote: version 3 quote with TEE type 0x%08x (v3 is SGX only)",
                                    q.tee_type);
        if (memcmp(q.qe_vendor_id, intel_qe_vendor_id, 16) != 0)
                return ck_error_set(reterr, -EBADMSG, "quote: QE vendor ID is not Intel's");

        if (q.version == 5) {
                uint32_t size;

                q.body_type = ck_cursor_u16le(&c);
                size = ck_cursor_u32le(&c);
                if (c.err)
                        return ck_error_set(reterr, -EBADMSG, "quote: v5 body descriptor truncated");
                switch (q.body_type) {
                case 1:
                        body_len = SGX_REPORT_LEN;
                        break;
                case 2:
                        body_len = TD_REPORT10_LEN;
                        break;
                case 3:
                        body_len = TD_REPORT15_LEN;
                        break;
                default:
                        return ck_error_set(reterr, -EOPNOTSUPP, "quote: v5 body type %u is not supported",
                                            q.body_type);
                }
                if (size != body_len)
                        return ck_error_set(reterr, -EBADMSG,
                                            "quote: v5 body size %" PRIu32
                                            " does not match body type %u (%zu bytes)",
                                            size, q.body_type, body_len);
                if ((q.body_type == 1) != (q.tee_type == ATTEST_TEE_SGX))
                        return ck_error_set(reterr, -EBADMSG,
                                            "quote: v5 body type %u does not match TEE type 0x%08x",
                                            q.body_type, q.tee_type);
        } else {
                q.body_type = q.tee_type == ATTEST_TEE_SGX ? 1 : 2;
                body_len = q.tee_type == ATTEST_TEE_SGX ? SGX_REPORT_LEN : TD_REPORT10_LEN;
        }

        body = ck_cursor_take(&c, body_len);
        if (!body)
                return ck_error_set(reterr, -EBADMSG, "quote: body of %zu bytes exceeds the %zu-byte buffer",
                                    body_len, len);
        if (q.body_type == 1)
                parse_sgx_body(body, &q.m);
        else
                parse_td_body(body, body_len, &q.m);
        q.signed_region = buf;
        q.signed_len = c.off;

        sig_len = ck_cursor_u32le(&c);
        if (c.err)
                return ck_error_set(reterr, -EBADMSG, "quote: signature data length truncated");
        if (sig_len > ck_cursor_left(&c))
                return ck_error_set(reterr, -EBADMSG,
                                    "quote: signature data length %" PRIu32 " exceeds the %zu-byte buffer",
                                    sig_len, len);

        /* From here on, a sub-cursor bounded by the declared signature data length. */
        struct ck_cursor s = ck_cursor_make(ck_cursor_take(&c, sig_len), sig_len);
        q.signature = ck_cursor_take(&s, 64);
        q.attest_key = ck_cursor_take(&s, 64);
        if (s.err)
                return ck_error_set(reterr, -EBADMSG,
                                    "quote: signature data length %" PRIu32 " is too small", sig_len);

        if (q.version == 3) {
                r = parse_qe_part(&s, &q, reterr);
                if (r < 0)
                        return r;
        } else {
                uint16_t outer_type = ck_cursor_u16le(&s);
                uint32_t outer_len = ck_cursor_u32le(&s);

                if (s.err)
                        return ck_error_set(reterr, -EBADMSG, "quote: certification data header truncated");
                if (outer_type != CERT_TYPE_QE_REPORT)
                        return ck_error_set(
                                reterr, -EBADMSG,
                                "quote: certification data type %u is not 6 (QE report certification data)",
                                outer_type);
                if (outer_len != ck_cursor_left(&s))
                        return ck_error_set(reterr, -EBADMSG,
                                            "quote: certification data size %" PRIu32
                                            " does not match the %zu bytes of signature data left",
                                            outer_len, ck_cursor_left(&s));
                struct ck_cursor qe = ck_cursor_make(ck_cursor_take(&s, outer_len), outer_len);
                r = parse_qe_part(&qe, &q, reterr);
                if (r < 0)
                        return r;
        }

        *ret = q;
        return 0;
}

/* A quote file is hex when, apart from surrounding whitespace and an optional 0x prefix, it
 * holds only hex digits; a binary quote starts with a version byte (3..5) that is not one. */
static bool looks_like_hex(const uint8_t *p, size_t n)
{
        size_t i = 0, digits = 0;

        while (i < n && isspace(p[i]))
                i++;
        if (n - i >= 2 && p[i] == '0' && (p[i + 1] == 'x' || p[i + 1] == 'X'))
                i += 2;
        for (; i < n; i++) {
                if (isxdigit(p[i]))
                        digits++;
                else if (!isspace(p[i]))
                        return false;
        }
        return digits > 0;
}

int attest_quote_read_file(const char *path, uint8_t **ret, size_t *ret_len, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0;
        int r;

        r = ck_read_file(path, QUOTE_FILE_MAX, &data, &len, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "quote file %s", path);
        if (looks_like_hex(data, len)) {
                uint8_t *bin = NULL;
                size_t bin_len = 0, n = 0;

                /* Drop all whitespace (hex dumps are often wrapped), then decode. */
                for (size_t i = 0; i < len; i++)
                        if (!isspace(data[i]))
                                data[n++] = data[i];
                r = ck_hex_decode_alloc((const char *)data, n, QUOTE_FILE_MAX, &bin, &bin_len);
                if (r < 0)
                        return ck_error_set(reterr, -EBADMSG,
                                            "quote file %s: invalid hex (odd number of digits)", path);
                *ret = bin;
                *ret_len = bin_len;
                return 0;
        }
        *ret = TAKE_PTR(data);
        *ret_len = len;
        return 0;
}
