/* Explains a firmware CCEL event log event by event: replays it and recomputes every digest
 * that is a function of the event's own data, so that a log can be checked against what the
 * predictor knows instead of only against the quote. The layout checks mirror the attest
 * module's replay (src/attest/ccel.c); this walker also looks at each event's data. */
#include <errno.h>
#include <string.h>

#include "parse.h"
#include "predict.h"
#include "ssl.h"

#define ALG_SHA384                0x000cu
#define EV_NO_ACTION              0x00000003u
#define EV_IPL                    0x0000000du
#define EV_EFI_VARIABLE_BOOT2     0x8000000cu
#define EV_EFI_GPT_EVENT          0x80000006u
#define EV_EFI_VARIABLE_AUTHORITY 0x800000e0u
#define CHECK_MAX_LEN             (16u << 20)
#define CHECK_MAX_EVENTS          65536u
#define CHECK_MAX_ALGS            8u

struct alg {
        uint16_t id, size;
};

static int parse_spec_id(const uint8_t *p, size_t len, struct alg *algs, size_t *ret_n,
                         struct ck_error **reterr)
{
        struct ck_cursor c = ck_cursor_make(p, len);
        const uint8_t *sig = ck_cursor_take(&c, 16);
        uint32_t n;

        (void)ck_cursor_take(&c, 8);
        n = ck_cursor_u32le(&c);
        if (c.err || memcmp(sig, "Spec ID Event03", 16) != 0 || n == 0 || n > CHECK_MAX_ALGS)
                return ck_error_set(reterr, -EBADMSG, "CCEL: bad Spec ID event");
        for (uint32_t i = 0; i < n; i++) {
                algs[i].id = ck_cursor_u16le(&c);
                algs[i].size = ck_cursor_u16le(&c);
                if (c.err || algs[i].size == 0 || algs[i].size > 64 ||
                    (algs[i].id == ALG_SHA384 && algs[i].size != PREDICT_DIGEST_LEN))
                        return ck_error_set(reterr, -EBADMSG, "CCEL: bad Spec ID algorithm list");
        }
        *ret_n = n;
        return 0;
}

/* Recomputes the digest of one event from its data. Returns 1 when it matched, 0 when the
 * event's digest covers data the log does not contain, -EBADMSG on a mismatch. */
static int rederive(uint32_t type, const uint8_t *data, size_t len, const uint8_t *hob, size_t hob_len,
                    const uint8_t digest[PREDICT_DIGEST_LEN])
{
        uint8_t d[PREDICT_DIGEST_LEN];
        const uint8_t *p = data;
        size_t n = len;

        switch (type) {
        case PREDICT_EV_SEPARATOR:
        case PREDICT_EV_EFI_ACTION:
        case PREDICT_EV_EFI_VARIABLE_DRIVER_CONFIG:
        case EV_EFI_VARIABLE_AUTHORITY:
        case EV_EFI_GPT_EVENT:
                break;
        case PREDICT_EV_EFI_VARIABLE_BOOT:
        case EV_EFI_VARIABLE_BOOT2: {
                /* UEFI_VARIABLE_DATA; the digest covers the variable's data only. */
                uint64_t nl, dl;

                if (len < 32)
                        return -EBADMSG;
                nl = ck_le32(data + 16) | (uint64_t)ck_le32(data + 20) << 32;
                dl = ck_le32(data + 24) | (uint64_t)ck_le32(data + 28) << 32;
                if (nl > (len - 32) / 2 || dl != len - 32 - 2 * nl)
                        return -EBADMSG;
                p = data + 32 + 2 * nl;
                n = dl;
                break;
        }
        case PREDICT_EV_EFI_HANDOFF_TABLES2:
                /* {u8 length, "TdxTable", u64 count, {GUID, u64 address}}: the HOB bytes are not in
                 * the log, only where they were. */
                if (!hob || len < 9 || data[0] != 9 || memcmp(data + 1, "TdxTable", 8) != 0)
                        return 0;
                p = hob;
                n = hob_len;
                break;
        case EV_IPL: {
                /* GRUB logs "grub_cmd: <command>" and "kernel_cmdline: <line>" (NUL-terminated)
                 * and measures the text after the prefix. */
                static const char *const prefixes[] = {"grub_cmd: ", "kernel_cmdline: "};

                if (len == 0 || data[len - 1] != '\0')
                        return 0;
                for (size_t i = 0; i < 2; i++) {
                        size_t pl = strlen(prefixes[i]);

                        if (len - 1 >= pl && memcmp(data, prefixes[i], pl) == 0) {
                                p = data + pl;
                                n = len - 1 - pl;
                                goto hash;
                        }
                }
                return 0;
        }
        default:
                return 0;
        }
hash:
        if (ck_sha384(p, n, d) < 0)
                return -EIO;
        return memcmp(d, digest, PREDICT_DIGEST_LEN) == 0 ? 1 : -EBADMSG;
}

int predict_ccel_check(const uint8_t *log, size_t len, const uint8_t *hob, size_t hob_len,
                       struct predict_ccel_check *ret, struct ck_error **reterr)
{
        struct ck_cursor c = ck_cursor_make(log, len);
        struct predict_ccel_check res = {0};
        struct alg algs[CHECK_MAX_ALGS];
        size_t n_algs = 0, count = 0;
        const uint8_t *data;
        uint32_t size;
        int r;

        if (!log || len > CHECK_MAX_LEN)
                return ck_error_set(reterr, -EFBIG, "CCEL: larger than %u bytes", CHECK_MAX_LEN);
        (void)ck_cursor_take(&c, 4);
        if (ck_cursor_u32le(&c) != EV_NO_ACTION)
                return ck_error_set(reterr, -EBADMSG, "CCEL: first event is not EV_NO_ACTION");
        (void)ck_cursor_take(&c, 20);
        size = ck_cursor_u32le(&c);
        data = size <= ck_cursor_left(&c) ? ck_cursor_take(&c, size) : NULL;
        if (c.err || !data)
                return ck_error_set(reterr, -EBADMSG, "CCEL: truncated first event");
        r = parse_spec_id(data, size, algs, &n_algs, reterr);
        if (r < 0)
                return r;

        while (ck_cursor_left(&c) >= 4 && ck_le32(c.p + c.off) != UINT32_MAX) {
                const uint8_t *sha384 = NULL;
                uint32_t mr, type, nd;

                if (++count > CHECK_MAX_EVENTS)
                        return ck_error_set(reterr, -E2BIG, "CCEL: more than %u events", CHECK_MAX_EVENTS);
                mr = ck_cursor_u32le(&c);
                type = ck_cursor_u32le(&c);
                nd = ck_cursor_u32le(&c);
                if (c.err || nd == 0 || nd > n_algs)
                        return ck_error_set(reterr, -EBADMSG, "CCEL: event %zu: bad header", count);
                for (uint32_t i = 0; i < nd; i++) {
                        uint16_t id = ck_cursor_u16le(&c);
                        size_t k;

                        for (k = 0; k < n_algs && algs[k].id != id; k++)
                                ;
                        if (c.err || k == n_algs)
                                return ck_error_set(reterr, -EBADMSG, "CCEL: event %zu: unknown algorithm",
                                                    count);
                        data = ck_cursor_take(&c, algs[k].size);
                        if (!data)
                                return ck_error_set(reterr, -EBADMSG, "CCEL: event %zu: truncated digest",
                                                    count);
                        if (id == ALG_SHA384)
                                sha384 = data;
                }
                size = ck_cursor_u32le(&c);
                data = !c.err && size <= ck_cursor_left(&c) ? ck_cursor_take(&c, size) : NULL;
                if (!data)
                        return ck_error_set(reterr, -EBADMSG, "CCEL: event %zu: truncated data", count);
                if (type == EV_NO_ACTION)
                        continue;
                if (mr < 1 || mr > 4 || !sha384)
                        return ck_error_set(reterr, -EBADMSG, "CCEL: event %zu: MR %u or no SHA-384 digest",
                                            count, mr);
                r = rederive(type, data, size, hob, hob_len, sha384);
                if (r < 0)
                        return ck_error_set(
                                reterr, -EBADMSG,
                                "CCEL: event %zu (RTMR%u, type 0x%08x): digest does not match its data",
                                count, mr - 1, type);
                if (r > 0)
                        res.rederived++;
                else
                        res.opaque++;
                {
                        uint8_t buf[2 * PREDICT_DIGEST_LEN];

                        memcpy(buf, res.rtmr[mr - 1], PREDICT_DIGEST_LEN);
                        memcpy(buf + PREDICT_DIGEST_LEN, sha384, PREDICT_DIGEST_LEN);
                        if (ck_sha384(buf, sizeof(buf), res.rtmr[mr - 1]) < 0)
                                return -EIO;
                }
                res.events++;
        }
        for (size_t i = c.off; i < len; i++)
                if (log[i] != 0xff)
                        return ck_error_set(reterr, -EBADMSG, "CCEL: garbage after the end of the log");
        *ret = res;
        return 0;
}
