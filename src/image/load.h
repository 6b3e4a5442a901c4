/* Loading an image from an OCI image layout directory (what `skopeo copy … oci:DIR:TAG` and
 * `umoci` write) into the store, without a registry: the offline counterpart of image_pull.
 * Every blob goes through the store's verifying writer, every layer through the confined
 * unpacker with its diff_id checked.
 *
 * Owned by the image module (local side). */
#pragma once

#include "error.h"
#include "manifest.h"
#include "store.h"

/* Loads layout_dir's manifest tagged `tag` (the only one when tag is NULL) and records it as
 * `name` (a normalised reference). ret (may be NULL) receives the record; the caller clears
 * it with image_record_clear(). */
int image_load_oci_layout(struct image_store *s, const char *layout_dir, const char *tag, const char *name,
                          struct image_record *ret, struct ck_error **reterr);
