/* CCEL replay: the firmware's TCG2 crypto-agile event log (ACPI CCEL table data) replayed into
 * RTMR0..3, so that a verifier can check that the log explains the RTMRs of a quote.
 *
 * Layout (TCG PC Client Platform Firmware Profile, §10; UEFI 2.10 §38.4):
 *   first event, legacy TCG_PCR_EVENT: mr_index u32, type u32, sha1[20], size u32, data — its
 *     data is the "Spec ID Event03" structure listing the algorithms and their digest sizes;
 *   then TCG_PCR_EVENT2: mr_index u32, type u32, count u32, count × {alg u16, digest},
 *     size u32, data.
 * The area is usually larger than the log; the unused rest is 0xFF. CC MR index m in 1..4
 * extends RTMR[m-1]; EV_NO_ACTION events are informational and never extended. Only the
 * SHA-384 bank exists on TDX, so every measured event must carry a SHA-384 digest. */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "eventlog.h"
#include "parse.h"
#include "ssl.h"

#define TCG_ALG_SHA1        0x0004
#define TCG_ALG_SHA256      0x000B
#define TCG_ALG_SHA384      0x000C
#define TCG_ALG_SHA512      0x000D
#define EV_NO_ACTION        0x00000003u
#define CCEL_MAX_LEN        (16u << 20) /* the whole area; real ones are 64-256 KiB */
#define CCEL_MAX_EVENTS     65536u
#define CCEL_MAX_EVENT_SIZE (1u << 20)
#define CCEL_MAX_ALGS       8u
#define SPEC_ID_SIGNATURE   "Spec ID Event03"

struct ccel_alg {
        uint16_t id;
        uint16_t size;
};

static bool all_ff(const uint8_t *p, size_t n)
{
        static const uint8_t ff[4096] = {[0 ... 4095] = 0xFF};

        /* The fill is most of a 64-256 KiB area: compare in blocks, memcmp is vectorised. */
        while (n > 0) {
                size_t k = n < sizeof(ff) ? n : sizeof(ff);
                if (memcmp(p, ff, k) != 0)
                        return false;
                p += k;
                n -= k;
        }
        return true;
}

/* Parses the Spec ID Event03 data: the digest sizes that every later event uses. */
static int ccel_parse_spec_id(const uint8_t *data, size_t len, struct ccel_alg *algs, size_t *ret_n,
                              struct ck_error **reterr)
{
        struct ck_cursor c = ck_cursor_make(data, len);
        const uint8_t *sig = ck_cursor_take(&c, 16);
        uint32_t n;
        uint8_t vendor_size;
        bool have_sha384 = false;

        if (!sig || memcmp(sig, SPEC_ID_SIGNATURE, sizeof(SPEC_ID_SIGNATURE)) != 0)
                return ck_error_set(reterr, -EBADMSG, "CCEL: first event is not a Spec ID Event03");
        (void)ck_cursor_u32le(&c);   /* platformClass */
        (void)ck_cursor_take(&c, 4); /* spec version minor/major, errata, uintnSize */
        n = ck_cursor_u32le(&c);
        if (c.err)
                return ck_error_set(reterr, -EBADMSG, "CCEL: truncated Spec ID event");
        if (n == 0 || n > CCEL_MAX_ALGS)
                return ck_error_set(reterr, -EBADMSG, "CCEL: Spec ID event lists %u algorithms", n);
        for (uint32_t i = 0; i < n; i++) {
                algs[i].id = ck_cursor_u16le(&c);
                algs[i].size = ck_cursor_u16le(&c);
                if (c.err)
                        return ck_error_set(reterr, -EBADMSG, "CCEL: truncated Spec ID algorithm list");
                if (algs[i].size == 0 || algs[i].size > 64)
                        return ck_error_set(reterr, -EBADMSG, "CCEL: algorithm 0x%04x has digest size %u",
                                            algs[i].id, algs[i].size);
                for (uint32_t k = 0; k < i; k++)
                        if (algs[k].id == algs[i].id)
                                return ck_error_set(reterr, -EBADMSG, "CCEL: algorithm 0x%04x listed twice",
                                                    algs[i].id);
                if (algs[i].id == TCG_ALG_SHA384) {
                        if (algs[i].size != 48)
                                return ck_error_set(reterr, -EBADMSG, "CCEL: SHA-384 digest size %u",
                                                    algs[i].size);
                        have_sha384 = true;
                }
        }
        vendor_size = ck_cursor_u8(&c);
        (void)ck_cursor_take(&c, vendor_size);
        if (c.err)
                return ck_error_set(reterr, -EBADMSG, "CCEL: truncated Spec ID vendor info");
        if (ck_cursor_left(&c) != 0)
                return ck_error_set(reterr, -EBADMSG, "CCEL: %zu trailing bytes in the Spec ID event",
                                    ck_cursor_left(&c));
        if (!have_sha384)
                return ck_error_set(reterr, -EOPNOTSUPP, "CCEL: the log has no SHA-384 bank");
        *ret_n = n;
        return 0;
}

static void rtmr_extend(uint8_t rtmr[48], const uint8_t digest[48])
{
        uint8_t buf[96];

        memcpy(buf, rtmr, 48);
        memcpy(buf + 48, digest, 48);
        /* SHA-384 of a fixed-size buffer cannot fail short of a broken libcrypto. */
        if (ck_sha384(buf, sizeof(buf), rtmr) < 0)
                memset(rtmr, 0xFF, 48);
}

int attest_ccel_replay(const uint8_t *log, size_t len, struct attest_rtmrs *ret, size_t *ret_events,
                       struct ck_error **reterr)
{
        struct ck_cursor c = ck_cursor_make(log, len);
        struct ccel_alg algs[CCEL_MAX_ALGS];
        struct attest_rtmrs rt = {0};
        size_t n_algs = 0, measured = 0, count = 0;
        uint32_t type, size;
        const uint8_t *data;
        int r;

        if (!log || len > CCEL_MAX_LEN)
                return ck_error_set(reterr, -EFBIG, "CCEL: log area of %zu bytes exceeds %u", len,
                                    CCEL_MAX_LEN);

        /* The first event uses the legacy SHA-1 format and must be the Spec ID event. */
        (void)ck_cursor_u32le(&c); /* mr_index: 0 */
        type = ck_cursor_u32le(&c);
        (void)ck_cursor_take(&c, 20);
        size = ck_cursor_u32le(&c);
        if (c.err)
                return ck_error_set(reterr, -EBADMSG, "CCEL: truncated first event");
        if (type != EV_NO_ACTION)
                return ck_error_set(reterr, -EBADMSG, "CCEL: first event has type 0x%x, not EV_NO_ACTION",
                                    type);
        if (size > CCEL_MAX_EVENT_SIZE || !(data = ck_cursor_take(&c, size)))
                return ck_error_set(reterr, -EBADMSG, "CCEL: Spec ID event size %u exceeds the log", size);
        r = ccel_parse_spec_id(data, size, algs, &n_algs, reterr);
        if (r < 0)
                return r;

        while (ck_cursor_left(&c) > 0) {
                const uint8_t *sha384 = NULL;
                uint32_t mr, n_digests;

                /* The unused rest of the area is 0xFF (an MR index of 0xFFFFFFFF starts it);
                 * anything else there is an error. */
                if (ck_cursor_left(&c) < 4 || ck_le32(c.p + c.off) == UINT32_MAX) {
                        if (!all_ff(c.p + c.off, ck_cursor_left(&c)))
                                return ck_error_set(reterr, -EBADMSG,
                                                    "CCEL: garbage after the end of the log");
                        break;
                }
                if (++count > CCEL_MAX_EVENTS)
                        return ck_error_set(reterr, -E2BIG, "CCEL: more than %u events", CCEL_MAX_EVENTS);
                mr = ck_cursor_u32le(&c);
                type = ck_cursor_u32le(&c);
                n_digests = ck_cursor_u32le(&c);
                if (c.err)
                        return ck_error_set(reterr, -EBADMSG, "CCEL: event %zu: truncated header", count);
                if (n_digests == 0 || n_digests > n_algs)
                        return ck_error_set(reterr, -EBADMSG, "CCEL: event %zu: %u digests for %zu banks",
                                            count, n_digests, n_algs);
                for (uint32_t i = 0; i < n_digests; i++) {
                        uint16_t alg = ck_cursor_u16le(&c);
                        const struct ccel_alg *a = NULL;
                        const uint8_t *d;

                        if (c.err)
                                return ck_error_set(reterr, -EBADMSG,
                                                    "CCEL: event %zu: truncated digest list", count);
                        for (size_t k = 0; k < n_algs; k++)
                                if (algs[k].id == alg)
                                        a = &algs[k];
                        if (!a)
                                return ck_error_set(
                                        reterr, -EBADMSG,
                                        "CCEL: event %zu: algorithm 0x%04x not in the Spec ID event", count,
                                        alg);
                        d = ck_cursor_take(&c, a->size);
                        if (!d)
                                return ck_error_set(reterr, -EBADMSG, "CCEL: event %zu: truncated digest",
                                                    count);
                        if (alg == TCG_ALG_SHA384) {
                                if (sha384)
                                        return ck_error_set(reterr, -EBADMSG,
                                                            "CCEL: event %zu: two SHA-384 digests", count);
                                sha384 = d;
                        }
                }
                size = ck_cursor_u32le(&c);
                if (c.err)
                        return ck_error_set(reterr, -EBADMSG, "CCEL: event %zu: truncated size", count);
                if (size > CCEL_MAX_EVENT_SIZE || !ck_cursor_take(&c, size))
                        return ck_error_set(reterr, -EBADMSG,
                                            "CCEL: event %zu: data size %u exceeds the log", count, size);
                if (type == EV_NO_ACTION)
                        continue;
                if (mr < 1 || mr > 4)
                        return ck_error_set(reterr, -EBADMSG, "CCEL: event %zu: MR index %u is not an RTMR",
                                            count, mr);
                if (!sha384)
                        return ck_error_set(reterr, -EBADMSG, "CCEL: event %zu: no SHA-384 digest", count);
                rtmr_extend(rt.rtmr[mr - 1], sha384);
                measured++;
        }

        *ret = rt;
        if (ret_events)
                *ret_events = measured;
        return 0;
}
