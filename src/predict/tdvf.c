/* TDVF metadata and MRTD.
 *
 * OVMF ends with a table of GUID-tagged entries (ResetVector/Ia16/ResetVectorVtf0.asm): the last
 * 32 bytes are the reset vector; before them a footer {u16 table length, GUID 96b582de-...}; each
 * entry before it ends with {u16 entry length, GUID}, the length covering the whole entry. The
 * entry e47a6535-... holds a u32, the distance from the end of the image to the TDVF descriptor
 * {"TDVF", u32 length, u32 version 1, u32 section count} followed by 32-byte sections
 * {u32 data offset, u32 raw size, u64 GPA, u64 memory size, u32 type, u32 attributes}.
 *
 * The TDX module builds MRTD from what the VMM does while the TD is built: TDH.MEM.PAGE.ADD
 * hashes a 128-byte block "MEM.PAGE.ADD" with the GPA at offset 16, TDH.MR.EXTEND a 128-byte
 * block "MR.EXTEND" with the GPA followed by the 256 bytes of that chunk. QEMU adds every page of
 * every section not marked PAGE.AUG and extends the pages of sections marked EXTENDMR, in section
 * order; whether a section's extends follow each page or all of its pages changed between
 * QEMU 8 and 9 (docs/measurements.md). */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "parse.h"
#include "predict.h"
#include "ssl.h"

#define TDVF_PAGE     0x1000u
#define TDVF_CHUNK    0x100u
#define TDVF_TAIL     0x20u /* reset vector area after the GUID table */
#define TDVF_GUID_LEN 16u

/* 96b582de-1fb2-45f7-baea-a366c55a082d and e47a6535-984a-4798-865e-4685a7bf8ec2 in EFI_GUID
 * byte order. */
static const uint8_t guid_table_footer[16] = {0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45,
                                              0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d};
static const uint8_t guid_tdx_metadata[16] = {0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47,
                                              0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2};

/* Returns the offset of the TDVF descriptor named by the GUID table. */
static int tdvf_find_descriptor(const uint8_t *fw, size_t len, size_t *ret, struct ck_error **reterr)
{
        size_t end, table_start, pos;
        uint16_t table_len;
        unsigned entries = 0;

        if (len < TDVF_TAIL + TDVF_GUID_LEN + 2)
                return ck_error_set(reterr, -EBADMSG, "firmware: %zu bytes is too small for OVMF", len);
        end = len - TDVF_TAIL;
        if (memcmp(fw + end - TDVF_GUID_LEN, guid_table_footer, TDVF_GUID_LEN) != 0)
                return ck_error_set(reterr, -EBADMSG, "firmware: no OVMF GUID table footer at end-0x30");
        table_len = ck_le16(fw + end - TDVF_GUID_LEN - 2);
        if (table_len < TDVF_GUID_LEN + 2 || table_len > end)
                return ck_error_set(reterr, -EBADMSG, "firmware: GUID table length %u is invalid",
                                    table_len);
        table_start = end - table_len;
        pos = end - TDVF_GUID_LEN - 2; /* the footer entry is the table itself */

        /* Each step moves back by at least 18 bytes, so this loop ends within table_len/18. */
        while (pos - table_start >= TDVF_GUID_LEN + 2) {
                uint16_t elen = ck_le16(fw + pos - TDVF_GUID_LEN - 2);
                const uint8_t *guid = fw + pos - TDVF_GUID_LEN;

                if (elen < TDVF_GUID_LEN + 2 || elen > pos - table_start)
                        return ck_error_set(reterr, -EBADMSG, "firmware: GUID table entry %u has length %u",
                                            entries, elen);
                if (memcmp(guid, guid_tdx_metadata, TDVF_GUID_LEN) == 0) {
                        uint32_t back;

                        if (elen != TDVF_GUID_LEN + 2 + 4)
                                return ck_error_set(reterr, -EBADMSG,
                                                    "firmware: TDX metadata entry has length %u", elen);
                        back = ck_le32(fw + pos - elen);
                        if (back == 0 || back > len || len - back > len - 16)
                                return ck_error_set(
                                        reterr, -EBADMSG,
                                        "firmware: TDVF descriptor offset 0x%x is outside the image", back);
                        *ret = len - back;
                        return 0;
                }
                pos -= elen;
                entries++;
        }
        return ck_error_set(reterr, -ENOENT,
                            "firmware: no TDX metadata in the OVMF GUID table (not a TDVF build?)");
}

int predict_tdvf_parse(const uint8_t *fw, size_t len, struct predict_tdvf *ret, struct ck_error **reterr)
{
        struct predict_tdvf t = {0};
        struct ck_cursor c;
        uint32_t dlen, version, n;
        uint64_t total = 0;
        size_t off = 0;
        int r;

        if (!fw || len > PREDICT_FIRMWARE_MAX)
                return ck_error_set(reterr, -EFBIG, "firmware: larger than %u bytes", PREDICT_FIRMWARE_MAX);
        r = tdvf_find_descriptor(fw, len, &off, reterr);
        if (r < 0)
                return r;
        c = ck_cursor_make(fw + off, len - off);
        if (memcmp(ck_cursor_take(&c, 4), "TDVF", 4) != 0)
                return ck_error_set(reterr, -EBADMSG, "firmware: no TDVF signature at 0x%zx", off);
        dlen = ck_cursor_u32le(&c);
        version = ck_cursor_u32le(&c);
        n = ck_cursor_u32le(&c);
        if (c.err)
                return ck_error_set(reterr, -EBADMSG, "firmware: truncated TDVF descriptor");
        if (version != 1)
                return ck_error_set(reterr, -EOPNOTSUPP, "firmware: TDVF metadata version %u", version);
        if (n == 0 || n > PREDICT_TDVF_MAX_SECTIONS)
                return ck_error_set(reterr, -EBADMSG, "firmware: %u TDVF sections (1..%u)", n,
                                    PREDICT_TDVF_MAX_SECTIONS);
        if (dlen != 16 + 32 * n || dlen > len - off)
                return ck_error_set(reterr, -EBADMSG, "firmware: TDVF descriptor length %u for %u sections",
                                    dlen, n);

        for (uint32_t i = 0; i < n; i++) {
                struct predict_tdvf_section *s = &t.s[i];

                s->data_off = ck_cursor_u32le(&c);
                s->raw_size = ck_cursor_u32le(&c);
                s->gpa = ck_cursor_u64le(&c);
                s->mem_size = ck_cursor_u64le(&c);
                s->type = ck_cursor_u32le(&c);
                s->attr = ck_cursor_u32le(&c);
                if (c.err)
                        return ck_error_set(reterr, -EBADMSG, "firmware: truncated TDVF section %u", i);
                if (s->type > PREDICT_TDVF_PAYLOAD_PARAM)
                        return ck_error_set(reterr, -EBADMSG, "firmware: TDVF section %u has type %u", i,
                                            s->type);
                if (s->attr & ~(PREDICT_TDVF_ATTR_EXTENDMR | PREDICT_TDVF_ATTR_PAGE_AUG))
                        return ck_error_set(reterr, -EBADMSG,
                                            "firmware: TDVF section %u has attributes 0x%x", i, s->attr);
                if (s->gpa % TDVF_PAGE || s->mem_size % TDVF_PAGE || s->mem_size == 0 ||
                    s->gpa > UINT64_MAX - s->mem_size)
                        return ck_error_set(
                                reterr, -EBADMSG,
                                "firmware: TDVF section %u: GPA 0x%llx size 0x%llx not page-aligned", i,
                                (unsigned long long)s->gpa, (unsigned long long)s->mem_size);
                total += s->mem_size;
                if (s->mem_size > PREDICT_TDVF_MEM_MAX || total > PREDICT_TDVF_MEM_MAX)
                        return ck_error_set(reterr, -EBADMSG,
                                            "firmware: TDVF sections describe more than 1 GiB");
                if (s->raw_size > s->mem_size)
                        return ck_error_set(reterr, -EBADMSG,
                                            "firmware: TDVF section %u: raw size exceeds memory size", i);
                if (s->raw_size > 0 && (s->data_off > len || s->raw_size > len - s->data_off))
                        return ck_error_set(reterr, -EBADMSG,
                                            "firmware: TDVF section %u: data 0x%x+0x%x outside the image", i,
                                            s->data_off, s->raw_size);
        }
        t.n = n;
        *ret = t;
        return 0;
}

static int mrtd_page_add(EVP_MD_CTX *ctx, uint64_t gpa)
{
        uint8_t b[128] = {0};

        memcpy(b, "MEM.PAGE.ADD", 12);
        for (int i = 0; i < 8; i++)
                b[16 + i] = (uint8_t)(gpa >> (8 * i));
        return EVP_DigestUpdate(ctx, b, sizeof(b)) == 1 ? 0 : -EIO;
}

/* Extends one page: 16 chunks of 256 bytes, zeros past the section's raw data (QEMU copies the
 * raw data into a zeroed buffer of the section's memory size). */
static int mrtd_page_extend(EVP_MD_CTX *ctx, const uint8_t *fw, const struct predict_tdvf_section *s,
                            uint64_t page)
{
        static const uint8_t zero[TDVF_CHUNK];

        for (uint64_t k = 0; k < TDVF_PAGE / TDVF_CHUNK; k++) {
                uint64_t rel = page * TDVF_PAGE + k * TDVF_CHUNK, gpa = s->gpa + rel;
                uint8_t b[128] = {0}, chunk[TDVF_CHUNK];

                memcpy(b, "MR.EXTEND", 9);
                for (int i = 0; i < 8; i++)
                        b[16 + i] = (uint8_t)(gpa >> (8 * i));
                memcpy(chunk, zero, sizeof(chunk));
                if (rel < s->raw_size) {
                        uint64_t n = s->raw_size - rel < TDVF_CHUNK ? s->raw_size - rel : TDVF_CHUNK;
                        memcpy(chunk, fw + s->data_off + rel, n);
                }
                if (EVP_DigestUpdate(ctx, b, sizeof(b)) != 1 ||
                    EVP_DigestUpdate(ctx, chunk, sizeof(chunk)) != 1)
                        return -EIO;
        }
        return 0;
}

int predict_tdvf_mrtd(const uint8_t *fw, size_t len, const struct predict_tdvf *t,
                      enum predict_mrtd_order order, uint8_t ret[PREDICT_DIGEST_LEN],
                      struct ck_error **reterr)
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned int outlen = 0;
        int r = 0;

        if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha384(), NULL) != 1)
                return ck_ssl_error(reterr, -ENOMEM, "SHA-384");
        for (size_t i = 0; i < t->n && r == 0; i++) {
                const struct predict_tdvf_section *s = &t->s[i];
                uint64_t pages = s->mem_size / TDVF_PAGE;
                bool add = !(s->attr & PREDICT_TDVF_ATTR_PAGE_AUG),
                     ext = s->attr & PREDICT_TDVF_ATTR_EXTENDMR;

                if (s->raw_size > 0 && (s->data_off > len || s->raw_size > len - s->data_off))
                        return ck_error_set(reterr, -EBADMSG, "firmware: TDVF section %zu outside the image",
                                            i);
                if (order == PREDICT_MRTD_SINGLE_PASS) {
                        for (uint64_t p = 0; p < pages && r == 0; p++) {
                                if (add)
                                        r = mrtd_page_add(ctx, s->gpa + p * TDVF_PAGE);
                                if (ext && r == 0)
                                        r = mrtd_page_extend(ctx, fw, s, p);
                        }
                } else {
                        for (uint64_t p = 0; add && p < pages && r == 0; p++)
                                r = mrtd_page_add(ctx, s->gpa + p * TDVF_PAGE);
                        for (uint64_t p = 0; ext && p < pages && r == 0; p++)
                                r = mrtd_page_extend(ctx, fw, s, p);
                }
        }
        if (r < 0 || EVP_DigestFinal_ex(ctx, ret, &outlen) != 1)
                return ck_ssl_error(reterr, -EIO, "SHA-384");
        return 0;
}

int predict_tdvf_cfv_digest(const uint8_t *fw, size_t len, const struct predict_tdvf *t,
                            uint8_t ret[PREDICT_DIGEST_LEN], struct ck_error **reterr)
{
        for (size_t i = 0; i < t->n; i++) {
                const struct predict_tdvf_section *s = &t->s[i];

                if (s->type != PREDICT_TDVF_CFV)
                        continue;
                if (s->data_off > len || s->raw_size > len - s->data_off)
                        return ck_error_set(reterr, -EBADMSG, "firmware: CFV section outside the image");
                if (ck_sha384(fw + s->data_off, s->raw_size, ret) < 0)
                        return ck_error_set(reterr, -EIO, "SHA-384 failed");
                return 0;
        }
        return ck_error_set(reterr, -ENOENT, "firmware: no CFV section");
}

int predict_tdvf_layout(const char *name, struct predict_tdvf *ret)
{
        /* The memory sections of OVMF's IntelTdx metadata (OvmfPkg/ResetVector); only their
         * places matter for the TD HOB. Layout b moved the last TEMP_MEM region up by a page. */
        struct predict_tdvf t = {
                .s =
                        {
                                {.gpa = 0x800000, .mem_size = 0x6000, .type = PREDICT_TDVF_TEMP_MEM},
                                {.gpa = 0x809000, .mem_size = 0x2000, .type = PREDICT_TDVF_TD_HOB},
                                {.gpa = 0x80b000, .mem_size = 0x2000, .type = PREDICT_TDVF_TEMP_MEM},
                                {.gpa = 0x810000, .mem_size = 0x10000, .type = PREDICT_TDVF_TEMP_MEM},
                        },
                .n = 4,
        };

        if (strcmp(name, "b") == 0 || strcmp(name, "B") == 0) {
                t.s[3].gpa = 0x811000;
                t.s[3].mem_size = 0xf000;
        } else if (strcmp(name, "a") != 0 && strcmp(name, "A") != 0)
                return -EINVAL;
        *ret = t;
        return 0;
}
