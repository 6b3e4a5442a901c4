/* Digests of the UEFI events whose content is fixed or known in advance: the separator, the EFI
 * action strings, UEFI_VARIABLE_DATA for the Secure Boot variables, OVMF's boot options, command
 * lines as UTF-16, and td-shim's payload parameter. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "predict.h"
#include "ssl.h"

#define TDSHIM_PARAM_PAGE 0x1000u
#define UTF16_MAX         (1u << 20) /* characters; a kernel command line is at most 2 KiB-64 KiB */

void predict_digest_separator(uint8_t ret[PREDICT_DIGEST_LEN])
{
        static const uint8_t zero[4];

        (void)ck_sha384(zero, sizeof(zero), ret);
}

void predict_digest_action(const char *s, uint8_t ret[PREDICT_DIGEST_LEN])
{
        (void)ck_sha384(s, strlen(s), ret);
}

/* UTF-16LE of 7-bit ASCII into a malloc'd buffer, with a NUL when nul is set. */
static int ascii_to_utf16(const char *s, size_t len, bool nul, uint8_t **ret, size_t *ret_len)
{
        uint8_t *b;

        if (len > UTF16_MAX)
                return -E2BIG;
        b = calloc(len + 1, 2);
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                if ((unsigned char)s[i] >= 0x80 || s[i] == '\0') {
                        free(b);
                        return -EINVAL;
                }
                b[2 * i] = (uint8_t)s[i];
        }
        *ret = b;
        *ret_len = 2 * len + (nul ? 2 : 0);
        return 0;
}

int predict_digest_utf16(const char *s, size_t len, uint8_t ret[PREDICT_DIGEST_LEN])
{
        _cleanup_free_ uint8_t *u = NULL;
        size_t ulen = 0;
        int r = ascii_to_utf16(s, len, true, &u, &ulen);

        if (r < 0)
                return r;
        return ck_sha384(u, ulen, ret);
}

int predict_guid_parse(const char *s, uint8_t ret[16])
{
        /* xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx; the first three fields are stored little-endian. */
        static const uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
        uint8_t be[16];
        char hex[32];
        size_t k = 0;

        if (strlen(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
                return -EINVAL;
        for (size_t i = 0; i < 36; i++)
                if (s[i] != '-')
                        hex[k++] = s[i];
        if (k != 32 || ck_hex_decode(hex, 32, be, 16) < 0)
                return -EINVAL;
        for (size_t i = 0; i < 16; i++)
                ret[i] = be[order[i]];
        return 0;
}

int predict_uefi_variable_data(const uint8_t guid[16], const char *name, const uint8_t *data,
                               size_t data_len, uint8_t **ret, size_t *ret_len)
{
        _cleanup_free_ uint8_t *uname = NULL;
        size_t nlen = strlen(name), ulen = 0, len;
        uint8_t *b;
        int r;

        r = ascii_to_utf16(name, nlen, false, &uname, &ulen);
        if (r < 0)
                return r;
        if (data_len > UTF16_MAX * 16)
                return -E2BIG;
        len = 32 + ulen + data_len;
        b = malloc(len);
        if (!b)
                return -ENOMEM;
        memcpy(b, guid, 16);
        for (int i = 0; i < 8; i++) {
                b[16 + i] = (uint8_t)((uint64_t)nlen >> (8 * i));
                b[24 + i] = (uint8_t)((uint64_t)data_len >> (8 * i));
        }
        memcpy(b + 32, uname, ulen);
        if (data_len)
                memcpy(b + 32 + ulen, data, data_len);
        *ret = b;
        *ret_len = len;
        return 0;
}

int predict_digest_variable(const uint8_t guid[16], const char *name, const uint8_t *data, size_t data_len,
                            uint8_t ret[PREDICT_DIGEST_LEN])
{
        _cleanup_free_ uint8_t *v = NULL;
        size_t len = 0;
        int r = predict_uefi_variable_data(guid, name, data, data_len, &v, &len);

        if (r < 0)
                return r;
        return ck_sha384(v, len, ret);
}

int predict_uiapp_load_option(const uint8_t fv_guid[16], uint8_t **ret, size_t *ret_len)
{
        /* EFI_LOAD_OPTION: attributes ACTIVE | HIDDEN | CATEGORY_APP, FilePathListLength,
         * description L"UiApp", then MEDIA_PIWG_FW_VOL(fv) / MEDIA_PIWG_FW_FILE(UiApp) / END. */
        static const uint8_t uiapp_file[16] = {0x21, 0xaa, 0x2c, 0x46, 0x14, 0x76, 0x03, 0x45,
                                               0x83, 0x6e, 0x8a, 0xb6, 0xf4, 0x66, 0x23, 0x31};
        static const char desc[] = "UiApp";
        size_t dp_len = 20 + 20 + 4, len = 4 + 2 + 2 * sizeof(desc) + dp_len;
        uint8_t *b = calloc(1, len), *p;

        if (!b)
                return -ENOMEM;
        ck_put_le32(b, 0x109);
        ck_put_le16(b + 4, (uint16_t)dp_len);
        p = b + 6;
        for (size_t i = 0; i < sizeof(desc); i++, p += 2)
                p[0] = (uint8_t)desc[i];
        p[0] = 4, p[1] = 7, p[2] = 20;
        memcpy(p + 4, fv_guid, 16);
        p += 20;
        p[0] = 4, p[1] = 6, p[2] = 20;
        memcpy(p + 4, uiapp_file, 16);
        p += 20;
        p[0] = 0x7f, p[1] = 0xff, p[2] = 4;
        *ret = b;
        *ret_len = len;
        return 0;
}

int predict_digest_tdshim_param(const uint8_t *param, size_t len, uint8_t ret[PREDICT_DIGEST_LEN])
{
        uint8_t page[TDSHIM_PARAM_PAGE] = {0};

        if (len > sizeof(page))
                return -E2BIG;
        if (len)
                memcpy(page, param, len);
        return ck_sha384(page, sizeof(page), ret);
}
