/* The bzImage setup-header edits QEMU makes for -kernel (hw/i386/x86.c, x86_load_linux) before
 * it hands the kernel to the firmware through fw_cfg. OVMF before edk2-stable202505 measures the
 * kernel as it receives it, so the measured image is the patched one.
 *
 * Offsets (Documentation/arch/x86/boot.rst): 0x1f1 setup_sects, 0x1fa vid_mode, 0x202 "HdrS",
 * 0x206 protocol version, 0x210 type_of_loader, 0x211 loadflags, 0x218 ramdisk_image,
 * 0x21c ramdisk_size, 0x224 heap_end_ptr, 0x228 cmd_line_ptr, 0x22c initrd_addr_max,
 * 0x236 xloadflags. */
#include <errno.h>
#include <string.h>

#include "parse.h"
#include "predict.h"

#define XLF_CAN_BE_LOADED_ABOVE_4G 0x40u
#define Q35_LOWMEM_SPLIT           0xb0000000ull
#define Q35_LOWMEM                 0x80000000ull

/* QEMU parses vga= with qemu_strtoui(base 0) up to a space or the end. */
static int parse_vga(const char *v, uint16_t *ret)
{
        uint64_t val = 0;
        unsigned base = 10;
        size_t i = 0, digits = 0;

        if (strncmp(v, "normal", 6) == 0) {
                *ret = 0xffff;
                return 0;
        }
        if (strncmp(v, "ext", 3) == 0) {
                *ret = 0xfffe;
                return 0;
        }
        if (strncmp(v, "ask", 3) == 0) {
                *ret = 0xfffd;
                return 0;
        }
        if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
                base = 16;
                i = 2;
        } else if (v[0] == '0') {
                base = 8;
        }
        for (; v[i] && v[i] != ' '; i++, digits++) {
                unsigned d;
                char ch = v[i];

                if (ch >= '0' && ch <= '9')
                        d = (unsigned)(ch - '0');
                else if (ch >= 'a' && ch <= 'f')
                        d = (unsigned)(ch - 'a' + 10);
                else if (ch >= 'A' && ch <= 'F')
                        d = (unsigned)(ch - 'A' + 10);
                else
                        return -EINVAL;
                if (d >= base)
                        return -EINVAL;
                val = val * base + d;
                if (val > UINT32_MAX)
                        return -ERANGE;
        }
        if (digits == 0 && base != 8)
                return -EINVAL;
        *ret = (uint16_t)val; /* QEMU stores the low 16 bits */
        return 0;
}

int predict_linux_patch(uint8_t *k, size_t len, uint64_t mem_size, uint64_t initrd_size, const char *cmdline,
                        struct ck_error **reterr)
{
        uint32_t real_addr, cmdline_addr, initrd_max, below_4g;
        uint16_t protocol = 0;
        const char *vga;

        if (len < 0x240)
                return ck_error_set(reterr, -EBADMSG, "kernel: %zu bytes is too small for a boot image",
                                    len);
        if (ck_le32(k + 0x202) == 0x53726448) { /* "HdrS" */
                size_t setup = ((size_t)(k[0x1f1] ? k[0x1f1] : 4) + 1) * 512;

                protocol = ck_le16(k + 0x206);
                if (setup > len)
                        return ck_error_set(reterr, -EBADMSG,
                                            "kernel: setup of %zu bytes exceeds the file (QEMU refuses it)",
                                            setup);
        }
        if (protocol == 0)
                /* Not a bzImage (a UKI or another PE): QEMU hands it over unchanged. */
                return initrd_size ? ck_error_set(reterr, -EINVAL,
                                                  "kernel: no Linux boot header, QEMU loads no initrd")
                                   : 0;

        if (protocol < 0x202 || !(k[0x211] & 0x01)) {
                real_addr = 0x90000;
                cmdline_addr = 0x9a000 - (uint32_t)(strlen(cmdline) + 1);
        } else {
                real_addr = 0x10000;
                cmdline_addr = 0x20000;
        }

        if (protocol >= 0x202) {
                ck_put_le32(k + 0x228, cmdline_addr);
        } else {
                ck_put_le16(k + 0x20, 0xa33f);
                ck_put_le16(k + 0x22, (uint16_t)(cmdline_addr - real_addr));
        }
        vga = strstr(cmdline, "vga=");
        if (vga) {
                uint16_t mode = 0;

                if (parse_vga(vga + 4, &mode) < 0)
                        return ck_error_set(reterr, -EINVAL,
                                            "kernel command line: invalid vga= (QEMU refuses it)");
                ck_put_le16(k + 0x1fa, mode);
        }
        if (protocol >= 0x200)
                k[0x210] = 0xb0;
        if (protocol >= 0x201) {
                k[0x211] |= 0x80;
                ck_put_le16(k + 0x224, (uint16_t)(cmdline_addr - real_addr - 0x200));
        }
        if (initrd_size) {
                uint32_t addr;

                if (protocol < 0x200)
                        return ck_error_set(reterr, -EINVAL, "kernel: boot protocol too old for an initrd");
                /* The initrd goes as high as the kernel allows below the top of low RAM minus
                 * QEMU's ACPI area. */
                if (protocol >= 0x20c && (ck_le16(k + 0x236) & XLF_CAN_BE_LOADED_ABOVE_4G))
                        initrd_max = UINT32_MAX;
                else if (protocol >= 0x203)
                        initrd_max = ck_le32(k + 0x22c);
                else
                        initrd_max = 0x37ffffff;
                below_4g = (uint32_t)(mem_size >= Q35_LOWMEM_SPLIT ? Q35_LOWMEM : mem_size);
                if (below_4g <= PREDICT_QEMU_ACPI_DATA_SIZE)
                        return ck_error_set(reterr, -EINVAL, "memory size too small to place the initrd");
                if (initrd_max >= below_4g - PREDICT_QEMU_ACPI_DATA_SIZE)
                        initrd_max = below_4g - PREDICT_QEMU_ACPI_DATA_SIZE - 1;
                if (initrd_size >= initrd_max)
                        return ck_error_set(reterr, -EFBIG,
                                            "initrd of %llu bytes exceeds QEMU's limit of %u",
                                            (unsigned long long)initrd_size, initrd_max);
                addr = (uint32_t)((initrd_max - initrd_size) & ~4095ull);
                ck_put_le32(k + 0x218, addr);
                ck_put_le32(k + 0x21c, (uint32_t)initrd_size);
        }
        return 0;
}
