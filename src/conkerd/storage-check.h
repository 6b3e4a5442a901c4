/* Is conkerd's data dir on host-proof storage? Under --tee tdx everything conkerd keeps (layers,
 * upper dirs, conker.db, volumes) must sit either in TD memory (tmpfs, ramfs) or on a LUKS2
 * device with authenticated encryption, whose key never left the TD: anything else lives on a
 * disk the host reads and rewrites at will. The rule and its limits: docs/conkerd.md
 * "Host-proof storage". */
#pragma once

#include <stdbool.h>

#include "error.h"

struct conkerd_storage_roots {
        const char *mountinfo; /* "/proc/self/mountinfo" */
        const char *sysfs;     /* "/sys" */
};

#define CONKERD_STORAGE_ROOTS_DEFAULT                                                                       \
        {                                                                                                   \
                .mountinfo = "/proc/self/mountinfo", .sysfs = "/sys"                                        \
        }

/* Finds the filesystem data_dir is on and decides. When ret_devs is given, *ret_devs is NULL or,
 * for LUKS2 with integrity, the names the kernel gives its devices in messages ("dm-1",
 * "conker-state", "dm-0": the dm-crypt device, its dm name, the dm-integrity device), a
 * NULL-terminated array freed with conkerd_storage_devs_free. Sets *ret_ok and, when given, *ret_what to a
 * malloc'd description of what was found ("tmpfs (TD memory)", "rootfs (TD memory: the
 * initramfs)", "ext4 on /dev/mapper/state (dm-1 state: LUKS2 with integrity over dm-0)", "ext4
 * on /dev/vda1 (vda1: not dm-crypt with integrity)"). A negative return is a failure to
 * look (no mount found for the directory, unreadable sysfs), never a verdict. */
int conkerd_storage_check(const char *data_dir, const struct conkerd_storage_roots *roots, bool *ret_ok,
                          char **ret_what, char ***ret_devs, struct ck_error **reterr);
void conkerd_storage_devs_free(char **devs);
static inline void conkerd_storage_devs_freep(char ***p)
{
        conkerd_storage_devs_free(*p);
}

/* The verdict as conkerd logs it at start and prints for --check-storage: "data dir DIR: WHAT:
 * host-proof" or "...: NOT host-proof (the host can read and rewrite it)". Malloc'd; NULL when
 * out of memory. */
char *conkerd_storage_describe(const char *data_dir, bool ok, const char *what);
