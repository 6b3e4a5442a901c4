/* Rootfs assembly: an overlay of an image's layers (top first) plus a writable upper, with
 * short lowerdir paths so that deep images fit the mount data page.
 *
 * Contract header (owned by the image module). */
#pragma once

#include "error.h"
#include "store.h"

/* Mounts image `id` at target with upper/work under state_dir (created, mode 0700). Records the
 * mount so that image_store_remove() refuses while it exists. */
int image_rootfs_mount(struct image_store *s, const char *id, const char *state_dir, const char *target,
                       struct ck_error **reterr);
/* Unmounts target (lazily if busy) and forgets the mount; safe to repeat. With remove_state the
 * upper and work dirs are deleted too. */
int image_rootfs_umount(struct image_store *s, const char *id, const char *state_dir, const char *target,
                        bool remove_state, struct ck_error **reterr);
