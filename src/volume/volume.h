/* Encrypted volumes (docs/design.md §6): one directory per volume on an ext4 filesystem with the
 * encrypt feature, fscrypt v2 policy (AES-256-XTS / AES-256-CTS), one random 256-bit key per
 * volume held only in the kernel keyring and in memory. A loop-mounted image under the data dir
 * provides the filesystem when the host's lacks it. Deleting removes the key first
 * (crypto-erase), then the files.
 *
 * Contract header (owned by the volume module). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct volume_config {
        const char *data_dir;  /* /var/lib/conker: volumes.img and its mount point */
        uint64_t backing_size; /* size of the loop image when one is needed, default 4 GiB (sparse) */
        /* Extension: use the loop image even when the data dir's filesystem could encrypt (tests
         * that inspect the image, or a data dir whose filesystem should not hold volumes). */
        bool force_image;
};

struct volume_manager;

int volume_manager_open(const struct volume_config *cfg, struct volume_manager **ret,
                        struct ck_error **reterr);
void volume_manager_free(struct volume_manager *vm);

/* Creates the volume `name` ([a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}) for owner (the task ID) with a
 * fresh key and returns the host directory to bind-mount (malloc'd). Opening an existing volume
 * whose key is still in the keyring returns its path. */
int volume_create(struct volume_manager *vm, const char *owner, const char *name, char **ret_path,
                  struct ck_error **reterr);
/* Removes the key from the filesystem keyring, then deletes the files. Safe to repeat. */
int volume_delete(struct volume_manager *vm, const char *owner, const char *name, struct ck_error **reterr);
/* Extension: the host path of the filesystem holding the volumes (<data_dir>/volumes). */
const char *volume_manager_root(struct volume_manager *vm);
/* Extension: unmounts the loop image this manager mounted or reused (the loop device detaches
 * itself); volumes must have been deleted. For uninstall and test cleanup. */
int volume_manager_unmount(struct volume_manager *vm, struct ck_error **reterr);
