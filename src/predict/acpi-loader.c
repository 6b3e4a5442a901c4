/* QEMU's "etc/table-loader" fw_cfg blob, rebuilt from "etc/acpi/tables" and "etc/acpi/rsdp".
 *
 * The loader is a list of 128-byte BIOS linker commands (hw/acpi/bios-linker-loader.c):
 * ALLOCATE {u32 1, char file[56], u32 align, u8 zone}, ADD_POINTER {u32 2, char dest[56],
 * char src[56], u32 offset, u8 size}, ADD_CHECKSUM {u32 3, char file[56], u32 checksum offset,
 * u32 start, u32 length}, zero-padded. QEMU's x86 ACPI builder (hw/i386/acpi-build.c) emits, in
 * table order: for each table its pointers then its checksum; FACP points at FACS (+36), DSDT
 * (+40) and, from revision 2, X_DSDT (+140, 8 bytes); RSDT points at each entry; then the RSDP's
 * pointer to the RSDT and its checksum. ALLOCATE commands are prepended, so the RSDP's comes
 * first, then the tables'. The blob is padded to a multiple of 4 KiB.
 *
 * Tables whose builders add commands of their own (TPM logs, VM generation ID, ...) are not
 * modelled: such a table is refused rather than guessed, and the loader must then be given. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "predict.h"

#define CMD_LEN         128u
#define CMD_FILE_LEN    56u
#define CMD_MAX         256u
#define ACPI_HDR_LEN    36u
#define LOADER_ALIGN    4096u
#define ZONE_HIGH       1u
#define ZONE_FSEG       2u
#define TABLES_FILE     "etc/acpi/tables"
#define RSDP_FILE       "etc/acpi/rsdp"
#define ACPI_TABLES_MAX (1u << 24)

struct loader {
        uint8_t *b;
        size_t n; /* commands */
};

static uint8_t *loader_cmd(struct loader *l, uint32_t type)
{
        uint8_t *c;

        if (l->n >= CMD_MAX)
                return NULL;
        c = l->b + l->n++ * CMD_LEN;
        ck_put_le32(c, type);
        return c;
}

static int add_pointer(struct loader *l, const char *dest, const char *src, uint32_t off, uint8_t size)
{
        uint8_t *c = loader_cmd(l, 2);

        if (!c)
                return -E2BIG;
        memcpy(c + 4, dest, strlen(dest));
        memcpy(c + 4 + CMD_FILE_LEN, src, strlen(src));
        ck_put_le32(c + 4 + 2 * CMD_FILE_LEN, off);
        c[8 + 2 * CMD_FILE_LEN] = size;
        return 0;
}

static int add_checksum(struct loader *l, const char *file, uint32_t csum_off, uint32_t start, uint32_t len)
{
        uint8_t *c = loader_cmd(l, 3);

        if (!c)
                return -E2BIG;
        memcpy(c + 4, file, strlen(file));
        ck_put_le32(c + 4 + CMD_FILE_LEN, csum_off);
        ck_put_le32(c + 8 + CMD_FILE_LEN, start);
        ck_put_le32(c + 12 + CMD_FILE_LEN, len);
        return 0;
}

static void put_alloc(uint8_t *c, const char *file, uint32_t align, uint8_t zone)
{
        ck_put_le32(c, 1);
        memcpy(c + 4, file, strlen(file));
        ck_put_le32(c + 4 + CMD_FILE_LEN, align);
        c[8 + CMD_FILE_LEN] = zone;
}

/* Tables QEMU's x86 builder closes with only a checksum. */
static bool plain_table(const uint8_t *sig)
{
        static const char *const plain[] = {"DSDT", "APIC", "HPET", "MCFG", "WAET",
                                            "SRAT", "SLIT", "HMAT", "DMAR"};

        for (size_t i = 0; i < ELEMENTSOF(plain); i++)
                if (memcmp(sig, plain[i], 4) == 0)
                        return true;
        return false;
}

int predict_acpi_loader_build(const uint8_t *tables, size_t tables_len, const uint8_t *rsdp, size_t rsdp_len,
                              uint8_t **ret, size_t *ret_len, struct ck_error **reterr)
{
        struct loader l = {0};
        size_t off, len;
        uint32_t rsdt_off;
        bool have_rsdt = false;
        int r = 0;

        if (!tables || !rsdp || tables_len > ACPI_TABLES_MAX)
                return ck_error_set(reterr, -EINVAL, "ACPI: tables and RSDP are needed");
        if (rsdp_len != 20 || memcmp(rsdp, "RSD PTR ", 8) != 0 || rsdp[15] != 0)
                return ck_error_set(
                        reterr, -EOPNOTSUPP,
                        "ACPI: only a 20-byte revision 0 RSDP (q35/pc) is modelled; give --acpi-loader");
        rsdt_off = ck_le32(rsdp + 16);
        /* Two ALLOCATE commands first, the rest appended after them. */
        l.b = calloc(CMD_MAX + 2, CMD_LEN);
        if (!l.b)
                return -ENOMEM;
        l.n = 2;

        if (tables_len < 64 || memcmp(tables, "FACS", 4) != 0 || ck_le32(tables + 4) != 64) {
                r = ck_error_set(reterr, -EOPNOTSUPP,
                                 "ACPI: the tables blob does not start with a 64-byte FACS");
                goto fail;
        }
        for (off = 64; off + ACPI_HDR_LEN <= tables_len; off += len) {
                const uint8_t *t = tables + off;

                len = ck_le32(t + 4);
                if (len == 0 && memcmp(t, "\0\0\0\0", 4) == 0)
                        break; /* the zero padding to 128 KiB */
                if (len < ACPI_HDR_LEN || len > tables_len - off) {
                        r = ck_error_set(reterr, -EBADMSG, "ACPI: table at 0x%zx has length %zu", off, len);
                        goto fail;
                }
                if (memcmp(t, "FACP", 4) == 0) {
                        if (len < 148) {
                                r = ck_error_set(reterr, -EOPNOTSUPP,
                                                 "ACPI: FADT revision 1 is not modelled");
                                goto fail;
                        }
                        r = add_pointer(&l, TABLES_FILE, TABLES_FILE, (uint32_t)off + 36, 4);
                        if (r >= 0)
                                r = add_pointer(&l, TABLES_FILE, TABLES_FILE, (uint32_t)off + 40, 4);
                        if (r >= 0)
                                r = add_pointer(&l, TABLES_FILE, TABLES_FILE, (uint32_t)off + 140, 8);
                } else if (memcmp(t, "RSDT", 4) == 0) {
                        if ((len - ACPI_HDR_LEN) % 4 || off != rsdt_off) {
                                r = ck_error_set(reterr, -EBADMSG,
                                                 "ACPI: RSDT at 0x%zx does not match the RSDP", off);
                                goto fail;
                        }
                        for (size_t e = ACPI_HDR_LEN; e < len && r >= 0; e += 4)
                                r = add_pointer(&l, TABLES_FILE, TABLES_FILE, (uint32_t)(off + e), 4);
                        have_rsdt = true;
                } else if (!plain_table(t)) {
                        r = ck_error_set(
                                reterr, -EOPNOTSUPP,
                                "ACPI: table '%.4s' may carry loader commands that are not modelled; give "
                                "--acpi-loader",
                                (const char *)t);
                        goto fail;
                }
                if (r >= 0)
                        r = add_checksum(&l, TABLES_FILE, (uint32_t)off + 9, (uint32_t)off, (uint32_t)len);
                if (r < 0)
                        goto fail;
        }
        if (!have_rsdt) {
                r = ck_error_set(reterr, -EBADMSG, "ACPI: no RSDT in the tables");
                goto fail;
        }
        r = add_pointer(&l, RSDP_FILE, TABLES_FILE, 16, 4);
        if (r >= 0)
                r = add_checksum(&l, RSDP_FILE, 8, 0, 20);
        if (r < 0) {
                r = ck_error_set(reterr, r, "ACPI: more than %u loader commands", CMD_MAX);
                goto fail;
        }
        put_alloc(l.b, RSDP_FILE, 16, ZONE_FSEG);
        put_alloc(l.b + CMD_LEN, TABLES_FILE, 64, ZONE_HIGH);
        len = l.n * CMD_LEN;
        *ret_len = (len + LOADER_ALIGN - 1) / LOADER_ALIGN * LOADER_ALIGN;
        if (*ret_len > (CMD_MAX + 2) * CMD_LEN) {
                uint8_t *b = realloc(l.b, *ret_len);

                if (!b) {
                        r = -ENOMEM;
                        goto fail;
                }
                memset(b + len, 0, *ret_len - len);
                l.b = b;
        }
        *ret = l.b;
        return 0;
fail:
        free(l.b);
        return r;
}
