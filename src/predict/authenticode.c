/* PE/COFF parsing and the Authenticode image hash, which OVMF measures for every EFI application
 * it starts (EV_EFI_BOOT_SERVICES_APPLICATION in RTMR1).
 *
 * The hash (Microsoft PE/COFF specification, "Calculating the PE Image Hash"; edk2
 * DxeTpm2MeasureBootLib does the same): the headers up to SizeOfHeaders without the CheckSum
 * field and the certificate-table data directory entry; then every section with raw data, in
 * ascending PointerToRawData order; then whatever the file holds after the last section, minus
 * the attribute certificate table's size. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "parse.h"
#include "predict.h"
#include "ssl.h"

#define PE_MAGIC32      0x10bu
#define PE_MAGIC64      0x20bu
#define PE_DIR_SECURITY 4u
#define PE_SECTION_LEN  40u

int predict_pe_parse(const uint8_t *buf, size_t len, struct predict_pe *ret, struct ck_error **reterr)
{
        struct predict_pe pe = {0};
        uint32_t lfanew, ndirs, dir_off, opt_size, table;
        uint16_t magic, nsec;
        size_t opt;

        if (!buf || len > PREDICT_PE_MAX)
                return ck_error_set(reterr, -EFBIG, "PE: image larger than %u bytes", PREDICT_PE_MAX);
        if (len < 0x40 || buf[0] != 'M' || buf[1] != 'Z')
                return ck_error_set(reterr, -EBADMSG, "PE: no MZ header");
        lfanew = ck_le32(buf + 0x3c);
        if (lfanew > len || len - lfanew < 4 + 20 + 2 || memcmp(buf + lfanew, "PE\0\0", 4) != 0)
                return ck_error_set(reterr, -EBADMSG, "PE: no PE signature at 0x%x", lfanew);
        nsec = ck_le16(buf + lfanew + 6);
        opt_size = ck_le16(buf + lfanew + 20);
        opt = (size_t)lfanew + 24;
        if (nsec > PREDICT_PE_MAX_SECTIONS)
                return ck_error_set(reterr, -EBADMSG, "PE: %u sections (at most %u)", nsec,
                                    PREDICT_PE_MAX_SECTIONS);
        if (opt_size > len - opt)
                return ck_error_set(reterr, -EBADMSG, "PE: optional header of %u bytes exceeds the file",
                                    opt_size);
        magic = ck_le16(buf + opt);
        if (magic == PE_MAGIC32) {
                dir_off = 96;
        } else if (magic == PE_MAGIC64) {
                dir_off = 112;
        } else {
                return ck_error_set(reterr, -EBADMSG, "PE: optional header magic 0x%x", magic);
        }
        if (opt_size < dir_off)
                return ck_error_set(reterr, -EBADMSG, "PE: optional header of %u bytes is too short",
                                    opt_size);
        pe.checksum_off = (uint32_t)opt + 64;
        pe.size_of_headers = ck_le32(buf + opt + 60);
        ndirs = ck_le32(buf + opt + dir_off - 4);
        if (ndirs > 16 || dir_off + 8 * ndirs > opt_size)
                return ck_error_set(reterr, -EBADMSG,
                                    "PE: %u data directories do not fit the optional header", ndirs);
        if (ndirs > PE_DIR_SECURITY) {
                pe.certdir_off = (uint32_t)opt + dir_off + 8 * PE_DIR_SECURITY;
                pe.cert_off = ck_le32(buf + pe.certdir_off);
                pe.cert_size = ck_le32(buf + pe.certdir_off + 4);
        }
        table = (uint32_t)opt + opt_size;
        if (pe.size_of_headers > len || pe.size_of_headers < table + (uint32_t)nsec * PE_SECTION_LEN)
                return ck_error_set(reterr, -EBADMSG,
                                    "PE: SizeOfHeaders 0x%x does not cover the section table",
                                    pe.size_of_headers);
        if (pe.cert_size && (pe.cert_off > len || pe.cert_size > len - pe.cert_off))
                return ck_error_set(reterr, -EBADMSG, "PE: certificate table 0x%x+0x%x outside the file",
                                    pe.cert_off, pe.cert_size);
        for (uint16_t i = 0; i < nsec; i++) {
                const uint8_t *h = buf + table + (size_t)i * PE_SECTION_LEN;
                struct predict_pe_section *s = &pe.s[i];

                memcpy(s->name, h, 8);
                s->name[8] = '\0';
                s->vsize = ck_le32(h + 8);
                s->raw_size = ck_le32(h + 16);
                s->raw_off = ck_le32(h + 20);
                if (s->raw_size && (s->raw_off > len || s->raw_size > len - s->raw_off))
                        return ck_error_set(reterr, -EBADMSG,
                                            "PE: section %u (%s) 0x%x+0x%x outside the file", i, s->name,
                                            s->raw_off, s->raw_size);
        }
        pe.n_sections = nsec;
        *ret = pe;
        return 0;
}

static int raw_cmp(const void *a, const void *b)
{
        const struct predict_pe_section *x = a, *y = b;

        return x->raw_off < y->raw_off ? -1 : x->raw_off > y->raw_off;
}

int predict_pe_authenticode(const uint8_t *buf, size_t len, uint8_t ret[PREDICT_DIGEST_LEN],
                            struct ck_error **reterr)
{
        return predict_pe_authenticode_md(buf, len, EVP_sha384(), ret, reterr);
}

int predict_pe_authenticode_md(const uint8_t *buf, size_t len, const EVP_MD *md, uint8_t *ret,
                               struct ck_error **reterr)
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_free_ struct predict_pe *pe = calloc(1, sizeof(*pe));
        struct predict_pe_section sorted[PREDICT_PE_MAX_SECTIONS];
        uint64_t hashed;
        unsigned int outlen = 0;
        int ok = 1, r;

        if (!pe)
                return -ENOMEM;
        r = predict_pe_parse(buf, len, pe, reterr);
        if (r < 0)
                return r;
        ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1)
                return ck_ssl_error(reterr, -ENOMEM, "digest");
        ok &= EVP_DigestUpdate(ctx, buf, pe->checksum_off);
        if (pe->certdir_off) {
                ok &= EVP_DigestUpdate(ctx, buf + pe->checksum_off + 4,
                                       pe->certdir_off - pe->checksum_off - 4);
                ok &= EVP_DigestUpdate(ctx, buf + pe->certdir_off + 8,
                                       pe->size_of_headers - pe->certdir_off - 8);
        } else {
                ok &= EVP_DigestUpdate(ctx, buf + pe->checksum_off + 4,
                                       pe->size_of_headers - pe->checksum_off - 4);
        }
        hashed = pe->size_of_headers;

        memcpy(sorted, pe->s, pe->n_sections * sizeof(sorted[0]));
        qsort(sorted, pe->n_sections, sizeof(sorted[0]), raw_cmp);
        for (size_t i = 0; i < pe->n_sections; i++) {
                if (sorted[i].raw_size == 0)
                        continue;
                ok &= EVP_DigestUpdate(ctx, buf + sorted[i].raw_off, sorted[i].raw_size);
                hashed += sorted[i].raw_size;
        }
        /* Trailing data (e.g. a bzImage's payload tail), without the certificates. */
        if (len > hashed && len - hashed > pe->cert_size)
                ok &= EVP_DigestUpdate(ctx, buf + hashed, len - hashed - pe->cert_size);
        if (!ok || EVP_DigestFinal_ex(ctx, ret, &outlen) != 1)
                return ck_ssl_error(reterr, -EIO, "digest");
        return 0;
}

int predict_pe_section(const uint8_t *buf, size_t len, const struct predict_pe *pe, const char *name,
                       const uint8_t **ret, size_t *ret_len, struct ck_error **reterr)
{
        for (size_t i = 0; i < pe->n_sections; i++) {
                const struct predict_pe_section *s = &pe->s[i];
                size_t n;

                if (strcmp(s->name, name) != 0)
                        continue;
                n = s->vsize && s->vsize < s->raw_size ? s->vsize : s->raw_size;
                if (s->raw_off > len || n > len - s->raw_off)
                        return ck_error_set(reterr, -EBADMSG, "PE: section %s outside the file", name);
                *ret = buf + s->raw_off;
                *ret_len = n;
                return 0;
        }
        return ck_error_set(reterr, -ENOENT, "PE: no %s section", name);
}
