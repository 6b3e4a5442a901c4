/* Measurement prediction for Intel TDX guests booted by QEMU with TDVF (OVMF): MRTD from the
 * firmware's TDVF metadata, and the RTMR0-2 event log that OVMF writes for a direct kernel boot
 * or a unified kernel image. docs/measurements.md describes every event and byte.
 *
 * All digests are SHA-384. Every parser takes (buf, len), checks each offset and size against
 * len with overflow checks, and fails with -EBADMSG and a message naming the field.
 *
 * Contract header (owned by the predict module). Functions returning memory say who frees it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "error.h"

#define PREDICT_DIGEST_LEN 48

/* ---- tdvf.c: TDVF metadata and MRTD ---- */

enum predict_tdvf_type {
        PREDICT_TDVF_BFV = 0,
        PREDICT_TDVF_CFV = 1,
        PREDICT_TDVF_TD_HOB = 2,
        PREDICT_TDVF_TEMP_MEM = 3,
        PREDICT_TDVF_PERM_MEM = 4,
        PREDICT_TDVF_PAYLOAD = 5,
        PREDICT_TDVF_PAYLOAD_PARAM = 6,
};

#define PREDICT_TDVF_ATTR_EXTENDMR 0x1u
#define PREDICT_TDVF_ATTR_PAGE_AUG 0x2u
#define PREDICT_TDVF_MAX_SECTIONS  32u
/* Largest memory size of all TDVF sections together: MRTD hashes every page, and real images
 * describe a few MiB of initial memory (the TD's RAM is added later, unmeasured). */
#define PREDICT_TDVF_MEM_MAX (1ull << 30)
/* Largest firmware image accepted (OVMF is 2-4 MiB; the TDVF GPA window is below 4 GiB). */
#define PREDICT_FIRMWARE_MAX (64u << 20)

struct predict_tdvf_section {
        uint32_t data_off;
        uint32_t raw_size;
        uint64_t gpa;
        uint64_t mem_size;
        uint32_t type;
        uint32_t attr;
};

struct predict_tdvf {
        struct predict_tdvf_section s[PREDICT_TDVF_MAX_SECTIONS];
        size_t n;
};

enum predict_mrtd_order {
        PREDICT_MRTD_SINGLE_PASS, /* QEMU >= 9: per page, PAGE.ADD then its EXTENDs */
        PREDICT_MRTD_TWO_PASS,    /* QEMU 8.x: per section, all PAGE.ADDs then all EXTENDs */
};

/* Finds the TDVF descriptor through the OVMF GUID table at the end of fw and checks every
 * section: aligned GPA and size, raw data inside fw, raw size <= memory size. */
int predict_tdvf_parse(const uint8_t *fw, size_t len, struct predict_tdvf *ret, struct ck_error **reterr);
/* MRTD of a TD whose firmware fw was parsed into t. */
int predict_tdvf_mrtd(const uint8_t *fw, size_t len, const struct predict_tdvf *t,
                      enum predict_mrtd_order order, uint8_t ret[PREDICT_DIGEST_LEN],
                      struct ck_error **reterr);
/* SHA-384 of the CFV section's raw data (the variable store OVMF measures into RTMR0).
 * -ENOENT when the firmware has no CFV section. */
int predict_tdvf_cfv_digest(const uint8_t *fw, size_t len, const struct predict_tdvf *t,
                            uint8_t ret[PREDICT_DIGEST_LEN], struct ck_error **reterr);
/* The TD_HOB/TEMP_MEM sections of a known OVMF build when the firmware itself is not at hand:
 * "a" (edk2 up to 2023, Debian 12) or "b" (last TEMP_MEM at 0x811000, Ubuntu 2025.02).
 * -EINVAL for another name. */
int predict_tdvf_layout(const char *name, struct predict_tdvf *ret);

/* ---- tdhob.c: the TD HOB QEMU hands to TDVF ---- */

/* Builds the HOB list bytes that OVMF measures (PHIT + resource HOBs, without the end HOB) for
 * a q35 TD with mem_size bytes of RAM. The result is malloc'd; the caller frees it. */
int predict_tdhob_build(const struct predict_tdvf *t, uint64_t mem_size, uint8_t **ret, size_t *ret_len,
                        struct ck_error **reterr);

/* ---- uefi-events.c: digests of fixed UEFI events ---- */

/* SHA-384 of the 4-byte EV_SEPARATOR value 0. */
void predict_digest_separator(uint8_t ret[PREDICT_DIGEST_LEN]);
/* SHA-384 of an EV_EFI_ACTION string (ASCII, no NUL). */
void predict_digest_action(const char *s, uint8_t ret[PREDICT_DIGEST_LEN]);
/* SHA-384 of UTF-16LE(s) followed by a UTF-16 NUL; s must be 7-bit ASCII (-EINVAL otherwise).
 * This is how OVMF and systemd-stub measure a command line. */
int predict_digest_utf16(const char *s, size_t len, uint8_t ret[PREDICT_DIGEST_LEN]);
/* Parses a GUID in its text form into the 16 bytes of EFI_GUID (first three fields
 * little-endian). */
int predict_guid_parse(const char *s, uint8_t ret[16]);
/* Encodes a UEFI_VARIABLE_DATA structure (GUID, name length, data length, UTF-16 name without
 * NUL, data); malloc'd, the caller frees it. The name is 7-bit ASCII. */
int predict_uefi_variable_data(const uint8_t guid[16], const char *name, const uint8_t *data,
                               size_t data_len, uint8_t **ret, size_t *ret_len);
/* EV_EFI_VARIABLE_DRIVER_CONFIG digest: SHA-384 of the whole UEFI_VARIABLE_DATA. */
int predict_digest_variable(const uint8_t guid[16], const char *name, const uint8_t *data, size_t data_len,
                            uint8_t ret[PREDICT_DIGEST_LEN]);
/* Builds OVMF's Boot0000 load option (the hidden UiApp entry OVMF registers) from the GUID of
 * the firmware volume holding UiApp; malloc'd, the caller frees it. */
int predict_uiapp_load_option(const uint8_t fv_guid[16], uint8_t **ret, size_t *ret_len);
/* The td-shim payload parameter digest: SHA-384 of the parameter zero-padded to 4 KiB.
 * -E2BIG for a parameter longer than 4096 bytes. */
int predict_digest_tdshim_param(const uint8_t *param, size_t len, uint8_t ret[PREDICT_DIGEST_LEN]);

/* ---- authenticode.c: PE/COFF images ---- */

#define PREDICT_PE_MAX_SECTIONS 96u
#define PREDICT_PE_MAX          (1u << 30)

struct predict_pe_section {
        char name[9]; /* NUL-terminated; 8-byte names are not terminated in the file */
        uint32_t vsize;
        uint32_t raw_off;
        uint32_t raw_size;
};

struct predict_pe {
        uint32_t checksum_off; /* file offset of OptionalHeader.CheckSum */
        uint32_t certdir_off;  /* file offset of the certificate-table data directory entry */
        uint32_t size_of_headers;
        uint32_t cert_off; /* attribute certificate table, 0/0 when absent */
        uint32_t cert_size;
        size_t n_sections;
        struct predict_pe_section s[PREDICT_PE_MAX_SECTIONS];
};

/* Parses the DOS, COFF and optional headers and the section table of a PE32 or PE32+ image. */
int predict_pe_parse(const uint8_t *buf, size_t len, struct predict_pe *ret, struct ck_error **reterr);
/* The Authenticode SHA-384 (Microsoft PE/COFF spec, "Calculating the PE Image Hash"). */
int predict_pe_authenticode(const uint8_t *buf, size_t len, uint8_t ret[PREDICT_DIGEST_LEN],
                            struct ck_error **reterr);
/* The same with another digest (ret holds EVP_MD_get_size(md) bytes), e.g. SHA-256 to compare
 * with the digest inside a signed image. */
int predict_pe_authenticode_md(const uint8_t *buf, size_t len, const EVP_MD *md, uint8_t *ret,
                               struct ck_error **reterr);
/* The raw data of the named section (first match), clamped to its virtual size as systemd-stub
 * reads it. -ENOENT when absent. */
int predict_pe_section(const uint8_t *buf, size_t len, const struct predict_pe *pe, const char *name,
                       const uint8_t **ret, size_t *ret_len, struct ck_error **reterr);

/* ---- linux.c: the kernel as QEMU hands it to the firmware ---- */

/* QEMU's "acpi_data_size" for q35/pc machine types since 2.x: the top of low RAM reserved for
 * ACPI before the initrd. */
#define PREDICT_QEMU_ACPI_DATA_SIZE 0x28000u

/* Applies QEMU's setup-header edits (x86_load_linux) to a bzImage copy in place: loader type,
 * CAN_USE_HEAP and heap end, command-line pointer, vga=, and the initrd address and size
 * computed from the q35 low-memory size. initrd_size 0 means no initrd. */
int predict_linux_patch(uint8_t *kernel, size_t len, uint64_t mem_size, uint64_t initrd_size,
                        const char *cmdline, struct ck_error **reterr);

/* ---- acpi-loader.c: QEMU's etc/table-loader ---- */

/* Rebuilds the table-loader blob QEMU's x86 ACPI builder writes for these tables and RSDP
 * (revision 0 RSDP, tables QEMU closes with a checksum only, FADT, RSDT); malloc'd, the caller
 * frees it. -EOPNOTSUPP names a table whose commands are not modelled. */
int predict_acpi_loader_build(const uint8_t *tables, size_t tables_len, const uint8_t *rsdp, size_t rsdp_len,
                              uint8_t **ret, size_t *ret_len, struct ck_error **reterr);

/* ---- predict.c: the event log and the registers ---- */

#define PREDICT_MAX_EVENTS 64u

struct predict_event {
        unsigned rtmr; /* 0..2 */
        uint32_t type; /* TCG event type */
        char what[48]; /* short description, e.g. "etc/acpi/tables" */
        uint8_t digest[PREDICT_DIGEST_LEN];
};

struct predict_log {
        struct predict_event ev[PREDICT_MAX_EVENTS];
        size_t n;
};

/* Appends an event; -E2BIG past PREDICT_MAX_EVENTS. */
int predict_log_add(struct predict_log *log, unsigned rtmr, uint32_t type, const char *what,
                    const uint8_t digest[PREDICT_DIGEST_LEN]);
/* Replays the log from zero registers: R = SHA384(R || digest). */
void predict_log_replay(const struct predict_log *log, uint8_t ret[3][PREDICT_DIGEST_LEN]);

/* TCG event types that appear in the predicted log. */
#define PREDICT_EV_SEPARATOR                     0x00000004u
#define PREDICT_EV_EVENT_TAG                     0x00000006u
#define PREDICT_EV_IPL                           0x0000000du
#define PREDICT_EV_PLATFORM_CONFIG_FLAGS         0x0000000au
#define PREDICT_EV_EFI_VARIABLE_DRIVER_CONFIG    0x80000001u
#define PREDICT_EV_EFI_VARIABLE_BOOT             0x80000002u
#define PREDICT_EV_EFI_BOOT_SERVICES_APPLICATION 0x80000003u
#define PREDICT_EV_EFI_ACTION                    0x80000007u
#define PREDICT_EV_EFI_PLATFORM_FIRMWARE_BLOB2   0x8000000au
#define PREDICT_EV_EFI_HANDOFF_TABLES2           0x8000000bu

/* Everything the measurements depend on. Buffers are borrowed. A register is predicted when
 * its inputs are present: MRTD needs the firmware; RTMR0 the memory size, a TDVF layout (the
 * firmware's or a named one), the CFV digest, the ACPI tables and RSDP, and the loader (given,
 * its digest given, or rebuilt from the tables by predict_acpi_loader_build());
 * RTMR1 and RTMR2 a kernel or a UKI. */
struct predict_input {
        const uint8_t *firmware;
        size_t firmware_len;
        enum predict_mrtd_order order;
        const char *tdvf_layout; /* without firmware: "a" or "b" */
        uint64_t mem_size;       /* bytes; 0 = unknown */
        bool has_cfv;
        uint8_t cfv[PREDICT_DIGEST_LEN];
        const uint8_t *acpi_loader, *acpi_rsdp, *acpi_tables;
        size_t acpi_loader_len, acpi_rsdp_len, acpi_tables_len;
        bool has_loader_digest; /* instead of acpi_loader */
        uint8_t loader_digest[PREDICT_DIGEST_LEN];
        const uint8_t *kernel; /* bzImage for QEMU -kernel */
        size_t kernel_len;
        const uint8_t *initrd;
        size_t initrd_len;
        const char *cmdline; /* NULL = "" */
        const uint8_t *uki;  /* instead of kernel: a unified kernel image given to -kernel */
        size_t uki_len;
        bool uki_no_stub_sections; /* the UKI's stub does not measure its sections (not systemd-stub
                                    * >= 255, which measures them into RTMR2) */
};

struct predict_result {
        bool has_mrtd;
        uint8_t mrtd[PREDICT_DIGEST_LEN];
        bool has_rtmr[3];
        uint8_t rtmr[3][PREDICT_DIGEST_LEN];
        struct predict_log log;
};

/* Builds the event log for what the inputs determine and replays it into the registers.
 * -EINVAL (with a message) when an input is inconsistent, e.g. a UKI and a kernel. */
int predict_run(const struct predict_input *in, struct predict_result *ret, struct ck_error **reterr);
/* The reference-values document (src/attest/refvalues.h format) with the predicted registers
 * and a "source" string; malloc'd, the caller frees it. */
int predict_refvalues_json(const struct predict_result *res, const char *source, char **ret);
/* The event log as a JSON array of {"rtmr", "type", "what", "digest"}; malloc'd. */
int predict_events_json(const struct predict_result *res, char **ret);

/* ---- ccel-check.c: explaining a firmware event log ---- */

struct predict_ccel_check {
        size_t events;    /* measured events */
        size_t rederived; /* whose digest was recomputed from their data and matched */
        size_t opaque;    /* whose digest covers data not in the log (images, blobs, tables) */
        uint8_t rtmr[4][PREDICT_DIGEST_LEN];
};

/* Walks a CCEL log (the attest module's attest_ccel_replay() checks the same structure),
 * replays it, and recomputes the digest of each event whose definition makes it a function of
 * the logged data: separators, EFI actions, UEFI variables (driver config, authority and boot
 * variables), GPT events, and "TdxTable" handoff tables when hob/hob_len (the expected TD HOB)
 * is given. A recomputed digest that differs is -EBADMSG naming the event. */
int predict_ccel_check(const uint8_t *log, size_t len, const uint8_t *hob, size_t hob_len,
                       struct predict_ccel_check *ret, struct ck_error **reterr);
