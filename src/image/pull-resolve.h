/* From a reference to the linux/amd64 image manifest: the document the reference names, then
 * through indexes (nested at most IMAGE_INDEX_DEPTH_MAX deep) to the manifest, each document's
 * size checked against the descriptor that named it. */
#pragma once

#include "error.h"
#include "manifest.h"

struct registry_client;

#define IMAGE_INDEX_DEPTH_MAX 3

/* Called once, when the document the reference names has arrived (its digest verified by the
 * registry client): 1 stops the resolution there, 0 goes on, < 0 fails it. */
typedef int (*image_resolve_first_fn)(void *userdata, const char *digest, struct ck_error **reterr);

/* ret_digest: the digest of that first document (what the tag points to, what one would pin).
 * Returns 1 with only ret_digest set when first() stopped it, 0 with ret filled. */
int image_resolve(struct registry_client *c, const char *repo, const char *reference,
                  image_resolve_first_fn first, void *userdata, struct image_manifest *ret,
                  char **ret_digest, struct ck_error **reterr);
