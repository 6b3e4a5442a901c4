/* Assembles the predicted TDVF event log from the boot artefacts, replays it into RTMR0-2, and
 * renders the reference values and the log as JSON. The event order per register is OVMF's for
 * a QEMU direct boot (edk2 before stable202505); docs/measurements.md lists every event. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "parse.h"
#include "predict.h"
#include "ssl.h"

static const char efi_global_guid[] = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
static const char efi_image_security_guid[] = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";
/* The DXE firmware volume of OvmfPkg (OvmfPkgX64.fdf, FV DXEFV): holds UiApp. */
static const char ovmf_dxefv_guid[] = "7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1";

int predict_log_add(struct predict_log *log, unsigned rtmr, uint32_t type, const char *what,
                    const uint8_t digest[PREDICT_DIGEST_LEN])
{
        struct predict_event *e;

        if (log->n >= PREDICT_MAX_EVENTS || rtmr > 2)
                return -E2BIG;
        e = &log->ev[log->n++];
        e->rtmr = rtmr;
        e->type = type;
        snprintf(e->what, sizeof(e->what), "%s", what);
        memcpy(e->digest, digest, PREDICT_DIGEST_LEN);
        return 0;
}

void predict_log_replay(const struct predict_log *log, uint8_t ret[3][PREDICT_DIGEST_LEN])
{
        memset(ret, 0, 3 * PREDICT_DIGEST_LEN);
        for (size_t i = 0; i < log->n; i++) {
                uint8_t buf[2 * PREDICT_DIGEST_LEN];
                uint8_t *r = ret[log->ev[i].rtmr];

                memcpy(buf, r, PREDICT_DIGEST_LEN);
                memcpy(buf + PREDICT_DIGEST_LEN, log->ev[i].digest, PREDICT_DIGEST_LEN);
                if (ck_sha384(buf, sizeof(buf), r) < 0)
                        memset(r, 0xff, PREDICT_DIGEST_LEN);
        }
}

static int add_sha(struct predict_log *log, unsigned rtmr, uint32_t type, const char *what, const void *data,
                   size_t len)
{
        uint8_t d[PREDICT_DIGEST_LEN];
        int r = ck_sha384(data, len, d);

        return r < 0 ? r : predict_log_add(log, rtmr, type, what, d);
}

static int add_variable(struct predict_log *log, const char *guid_text, const char *name)
{
        uint8_t guid[16], d[PREDICT_DIGEST_LEN];
        int r = predict_guid_parse(guid_text, guid);

        if (r >= 0)
                r = predict_digest_variable(guid, name, NULL, 0, d);
        return r < 0 ? r : predict_log_add(log, 0, PREDICT_EV_EFI_VARIABLE_DRIVER_CONFIG, name, d);
}

static int predict_rtmr0(const struct predict_input *in, const struct predict_tdvf *t,
                         struct predict_log *log, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *hob = NULL, *boot0000 = NULL;
        static const uint8_t boot_order[2] = {0, 0};
        uint8_t d[PREDICT_DIGEST_LEN], fv[16];
        size_t hob_len = 0, b_len = 0;
        int r;

        r = predict_tdhob_build(t, in->mem_size, &hob, &hob_len, reterr);
        if (r < 0)
                return r;
        r = add_sha(log, 0, PREDICT_EV_EFI_HANDOFF_TABLES2, "td-hob", hob, hob_len);
        if (r >= 0)
                r = predict_log_add(log, 0, PREDICT_EV_EFI_PLATFORM_FIRMWARE_BLOB2, "cfv", in->cfv);
        /* Secure Boot off and no keys enrolled: each variable measured with no data. */
        if (r >= 0)
                r = add_variable(log, efi_global_guid, "SecureBoot");
        if (r >= 0)
                r = add_variable(log, efi_global_guid, "PK");
        if (r >= 0)
                r = add_variable(log, efi_global_guid, "KEK");
        if (r >= 0)
                r = add_variable(log, efi_image_security_guid, "db");
        if (r >= 0)
                r = add_variable(log, efi_image_security_guid, "dbx");
        if (r >= 0) {
                predict_digest_separator(d);
                r = predict_log_add(log, 0, PREDICT_EV_SEPARATOR, "separator", d);
        }
        if (r >= 0 && in->has_loader_digest) {
                r = predict_log_add(log, 0, PREDICT_EV_PLATFORM_CONFIG_FLAGS, "etc/table-loader",
                                    in->loader_digest);
        } else if (r >= 0 && in->acpi_loader) {
                r = add_sha(log, 0, PREDICT_EV_PLATFORM_CONFIG_FLAGS, "etc/table-loader", in->acpi_loader,
                            in->acpi_loader_len);
        } else if (r >= 0) {
                _cleanup_free_ uint8_t *loader = NULL;
                size_t loader_len = 0;

                r = predict_acpi_loader_build(in->acpi_tables, in->acpi_tables_len, in->acpi_rsdp,
                                              in->acpi_rsdp_len, &loader, &loader_len, reterr);
                if (r < 0)
                        return r;
                r = add_sha(log, 0, PREDICT_EV_PLATFORM_CONFIG_FLAGS, "etc/table-loader", loader,
                            loader_len);
        }
        if (r >= 0)
                r = add_sha(log, 0, PREDICT_EV_PLATFORM_CONFIG_FLAGS, "etc/acpi/rsdp", in->acpi_rsdp,
                            in->acpi_rsdp_len);
        if (r >= 0)
                r = add_sha(log, 0, PREDICT_EV_PLATFORM_CONFIG_FLAGS, "etc/acpi/tables", in->acpi_tables,
                            in->acpi_tables_len);
        /* Boot variables are measured over their data only (no UEFI_VARIABLE_DATA wrapper). */
        if (r >= 0)
                r = add_sha(log, 0, PREDICT_EV_EFI_VARIABLE_BOOT, "BootOrder", boot_order,
                            sizeof(boot_order));
        if (r >= 0)
                r = predict_guid_parse(ovmf_dxefv_guid, fv);
        if (r >= 0)
                r = predict_uiapp_load_option(fv, &boot0000, &b_len);
        if (r >= 0)
                r = add_sha(log, 0, PREDICT_EV_EFI_VARIABLE_BOOT, "Boot0000", boot0000, b_len);
        return r < 0 ? ck_error_set(reterr, r, "RTMR0 events: %s", strerror(-r)) : 0;
}

static int add_authenticode(struct predict_log *log, const char *what, const uint8_t *img, size_t len,
                            struct ck_error **reterr)
{
        uint8_t d[PREDICT_DIGEST_LEN];
        int r = predict_pe_authenticode(img, len, d, reterr);

        if (r < 0)
                return ck_error_prefix(reterr, r, "%s", what);
        return predict_log_add(log, 1, PREDICT_EV_EFI_BOOT_SERVICES_APPLICATION, what, d);
}

static int add_action(struct predict_log *log, unsigned rtmr, const char *s)
{
        uint8_t d[PREDICT_DIGEST_LEN];

        predict_digest_action(s, d);
        return predict_log_add(log, rtmr, PREDICT_EV_EFI_ACTION, s, d);
}

static int add_separator(struct predict_log *log, unsigned rtmr)
{
        uint8_t d[PREDICT_DIGEST_LEN];

        predict_digest_separator(d);
        return predict_log_add(log, rtmr, PREDICT_EV_SEPARATOR, "separator", d);
}

/* The kernel's EFI stub measures its command line (LoadOptions, UTF-16 with NUL) and the initrd
 * it loads into RTMR2 as tagged events. */
static int add_cmdline_initrd(struct predict_log *log, const char *cmdline, size_t cmdline_len,
                              const uint8_t *initrd, size_t initrd_len)
{
        uint8_t d[PREDICT_DIGEST_LEN];
        int r = predict_digest_utf16(cmdline, cmdline_len, d);

        if (r < 0)
                return r;
        r = predict_log_add(log, 2, PREDICT_EV_EVENT_TAG, "cmdline", d);
        if (r >= 0 && initrd)
                r = add_sha(log, 2, PREDICT_EV_EVENT_TAG, "initrd", initrd, initrd_len);
        return r;
}

static int predict_direct(const struct predict_input *in, struct predict_log *log, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *k = NULL;
        _cleanup_free_ char *cmdline = NULL;
        const char *cl = in->cmdline ? in->cmdline : "";
        int r;

        if (in->initrd && in->mem_size == 0)
                return ck_error_set(reterr, -EINVAL, "the memory size is needed to place the initrd");
        k = malloc(in->kernel_len);
        if (!k)
                return -ENOMEM;
        memcpy(k, in->kernel, in->kernel_len);
        r = predict_linux_patch(k, in->kernel_len, in->mem_size, in->initrd ? in->initrd_len : 0, cl,
                                reterr);
        if (r < 0)
                return r;
        r = add_authenticode(log, "kernel", k, in->kernel_len, reterr);
        if (r < 0)
                return r;
        r = add_action(log, 1, "Calling EFI Application from Boot Option");
        if (r >= 0)
                r = add_separator(log, 1);
        if (r < 0)
                return ck_error_set(reterr, r, "event log full");
        /* OVMF appends " initrd=initrd" to the command line it passes when QEMU gave an initrd. */
        if (asprintf(&cmdline, "%s%s", cl, in->initrd ? " initrd=initrd" : "") < 0) {
                cmdline = NULL;
                return -ENOMEM;
        }
        r = add_cmdline_initrd(log, cmdline, strlen(cmdline), in->initrd, in->initrd_len);
        return r < 0 ? ck_error_set(reterr, r, "command line: %s (7-bit ASCII only)", strerror(-r)) : 0;
}

/* The UKI sections systemd-stub measures (UAPI.5 canonical order; .pcrsig is not measured). */
static const char *const uki_sections[] = {".linux",   ".osrel",   ".cmdline", ".initrd", ".ucode",
                                           ".splash",  ".dtb",     ".uname",   ".sbat",   ".pcrpkey",
                                           ".profile", ".dtbauto", ".hwids",   ".efifw"};

/* systemd-stub measures each section it knows as two EV_IPL events into PCR 11 (RTMR2): the name
 * with its NUL, then the section as loaded in memory (VirtualSize bytes, zeros past the raw
 * data). */
static int add_stub_sections(struct predict_log *log, const uint8_t *img, size_t len,
                             const struct predict_pe *pe)
{
        for (size_t k = 0; k < ELEMENTSOF(uki_sections); k++) {
                for (size_t i = 0; i < pe->n_sections; i++) {
                        const struct predict_pe_section *s = &pe->s[i];
                        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
                        static const uint8_t zero[4096];
                        uint8_t d[PREDICT_DIGEST_LEN];
                        uint32_t have, left;
                        unsigned int n = 0;
                        char what[48];
                        int r;

                        if (strcmp(s->name, uki_sections[k]) != 0)
                                continue;
                        snprintf(what, sizeof(what), "stub %s name", s->name);
                        r = add_sha(log, 2, PREDICT_EV_IPL, what, s->name, strlen(s->name) + 1);
                        if (r < 0)
                                return r;
                        ctx = EVP_MD_CTX_new();
                        if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha384(), NULL) != 1)
                                return -ENOMEM;
                        have = s->vsize < s->raw_size ? s->vsize : s->raw_size;
                        if (have && EVP_DigestUpdate(ctx, img + s->raw_off, have) != 1)
                                return -EIO;
                        for (left = s->vsize - have; left > 0;) {
                                uint32_t c = left < sizeof(zero) ? left : (uint32_t)sizeof(zero);

                                if (EVP_DigestUpdate(ctx, zero, c) != 1)
                                        return -EIO;
                                left -= c;
                        }
                        if (EVP_DigestFinal_ex(ctx, d, &n) != 1)
                                return -EIO;
                        snprintf(what, sizeof(what), "stub %s", s->name);
                        r = predict_log_add(log, 2, PREDICT_EV_IPL, what, d);
                        if (r < 0)
                                return r;
                        break; /* the stub uses the first section of a name */
                }
        }
        (void)len;
        return 0;
}

/* systemd-stub's mangle_stub_cmdline(): the text up to the first NUL, control characters as
 * spaces, trailing spaces removed. */
static char *uki_cmdline(const uint8_t *cmd, size_t len)
{
        size_t n = strnlen((const char *)cmd, len);
        char *s = strndup((const char *)cmd, n);

        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] <= 0x1f)
                        s[i] = ' ';
        while (n > 0 && s[n - 1] == ' ')
                s[--n] = '\0';
        return s;
}

static int predict_uki(const struct predict_input *in, struct predict_log *log, struct ck_error **reterr)
{
        _cleanup_free_ struct predict_pe *pe = calloc(1, sizeof(*pe));
        _cleanup_free_ char *cmdline = NULL;
        const uint8_t *linux_img = NULL, *cmd = NULL, *initrd = NULL;
        size_t linux_len = 0, cmd_len = 0, initrd_len = 0;
        int r;

        if (!pe)
                return -ENOMEM;
        r = predict_pe_parse(in->uki, in->uki_len, pe, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "UKI");
        r = predict_pe_section(in->uki, in->uki_len, pe, ".linux", &linux_img, &linux_len, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "UKI");
        r = predict_pe_section(in->uki, in->uki_len, pe, ".cmdline", &cmd, &cmd_len, NULL);
        if (r == -ENOENT)
                cmd = (const uint8_t *)"", cmd_len = 0;
        r = predict_pe_section(in->uki, in->uki_len, pe, ".initrd", &initrd, &initrd_len, NULL);
        if (r == -ENOENT)
                initrd = NULL;
        cmdline = uki_cmdline(cmd, cmd_len);
        if (!cmdline)
                return -ENOMEM;

        r = add_authenticode(log, "uki", in->uki, in->uki_len, reterr);
        if (r >= 0)
                r = add_action(log, 1, "Calling EFI Application from Boot Option");
        if (r >= 0)
                r = add_separator(log, 1);
        if (r >= 0 && !in->uki_no_stub_sections)
                r = add_stub_sections(log, in->uki, in->uki_len, pe);
        if (r >= 0)
                r = add_authenticode(log, "uki .linux", linux_img, linux_len, reterr);
        if (r >= 0)
                r = add_cmdline_initrd(log, cmdline, strlen(cmdline), initrd, initrd_len);
        return r;
}

int predict_run(const struct predict_input *in, struct predict_result *ret, struct ck_error **reterr)
{
        _cleanup_free_ struct predict_result *res = calloc(1, sizeof(*res));
        struct predict_tdvf t = {0};
        bool have_layout = false, rtmr0, boot;
        uint8_t regs[3][PREDICT_DIGEST_LEN];
        int r;

        if (!res)
                return -ENOMEM;
        if (in->kernel && in->uki)
                return ck_error_set(reterr, -EINVAL, "give either a kernel or a UKI, not both");
        if (in->uki && in->initrd)
                return ck_error_set(reterr, -EINVAL,
                                    "a UKI carries its own initrd (QEMU loads none with it)");
        if (in->initrd && in->initrd_len == 0)
                return ck_error_set(reterr, -EINVAL,
                                    "the initrd is empty (OVMF would not pass or measure it)");
        if (in->uki && in->cmdline && in->cmdline[0])
                return ck_error_set(reterr, -EINVAL, "a UKI carries its own command line");
        if (in->firmware) {
                r = predict_tdvf_parse(in->firmware, in->firmware_len, &t, reterr);
                if (r < 0)
                        return r;
                r = predict_tdvf_mrtd(in->firmware, in->firmware_len, &t, in->order, res->mrtd, reterr);
                if (r < 0)
                        return r;
                res->has_mrtd = true;
                have_layout = true;
        } else if (in->tdvf_layout) {
                if (predict_tdvf_layout(in->tdvf_layout, &t) < 0)
                        return ck_error_set(reterr, -EINVAL, "unknown TDVF layout '%s' (a or b)",
                                            in->tdvf_layout);
                have_layout = true;
        }

        rtmr0 = have_layout && in->mem_size && in->has_cfv && in->acpi_rsdp && in->acpi_tables;
        boot = in->kernel || in->uki;
        if (rtmr0) {
                r = predict_rtmr0(in, &t, &res->log, reterr);
                if (r < 0)
                        return r;
        }
        if (in->kernel) {
                r = predict_direct(in, &res->log, reterr);
                if (r < 0)
                        return r;
        } else if (in->uki) {
                r = predict_uki(in, &res->log, reterr);
                if (r < 0)
                        return r;
        }
        if (boot) {
                r = add_action(&res->log, 1, "Exit Boot Services Invocation");
                if (r >= 0)
                        r = add_action(&res->log, 1, "Exit Boot Services Returned with Success");
                if (r < 0)
                        return ck_error_set(reterr, r, "event log full");
        }
        if (!res->has_mrtd && !rtmr0 && !boot)
                return ck_error_set(
                        reterr, -EINVAL,
                        "nothing to predict: give --firmware, a kernel or UKI, or the RTMR0 inputs");

        predict_log_replay(&res->log, regs);
        memcpy(res->rtmr, regs, sizeof(regs));
        res->has_rtmr[0] = rtmr0;
        res->has_rtmr[1] = res->has_rtmr[2] = boot;
        *ret = *res;
        return 0;
}

static int set_hex(json_t *o, const char *key, const uint8_t *d)
{
        char hex[2 * PREDICT_DIGEST_LEN + 1];

        ck_hex_encode(d, PREDICT_DIGEST_LEN, hex);
        return json_object_set_new(o, key, json_string(hex)) == 0 ? 0 : -ENOMEM;
}

static int dump(json_t *o, char **ret)
{
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int predict_refvalues_json(const struct predict_result *res, const char *source, char **ret)
{
        static const char *const keys[3] = {"rtmr0", "rtmr1", "rtmr2"};
        json_t *o = json_object();
        int r = o ? 0 : -ENOMEM;

        if (r >= 0 && res->has_mrtd)
                r = set_hex(o, "mrtd", res->mrtd);
        for (int i = 0; i < 3 && r >= 0; i++)
                if (res->has_rtmr[i])
                        r = set_hex(o, keys[i], res->rtmr[i]);
        if (r >= 0 && source && json_object_set_new(o, "source", json_string(source)) < 0)
                r = -ENOMEM;
        if (r >= 0)
                r = dump(o, ret);
        json_decref(o);
        return r;
}

int predict_events_json(const struct predict_result *res, char **ret)
{
        json_t *a = json_array();
        int r = a ? 0 : -ENOMEM;

        for (size_t i = 0; i < res->log.n && r >= 0; i++) {
                const struct predict_event *e = &res->log.ev[i];
                json_t *o = json_object();
                char type[11];

                snprintf(type, sizeof(type), "0x%08x", e->type);
                if (!o || json_array_append_new(a, o) < 0 ||
                    json_object_set_new(o, "rtmr", json_integer(e->rtmr)) < 0 ||
                    json_object_set_new(o, "type", json_string(type)) < 0 ||
                    json_object_set_new(o, "what", json_string(e->what)) < 0)
                        r = -ENOMEM;
                if (r >= 0)
                        r = set_hex(o, "digest", e->digest);
        }
        if (r >= 0)
                r = dump(a, ret);
        json_decref(a);
        return r;
}
