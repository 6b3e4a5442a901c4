/* OCI / Docker schema2 manifests, indexes and image configs: bounded parsing and platform
 * selection (linux/amd64, first match, attestation manifests skipped, nested indexes).
 *
 * Contract header (owned by the image module). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define IMAGE_MANIFEST_MAX (4u << 20)
#define IMAGE_CONFIG_MAX   (8u << 20)
#define IMAGE_LAYERS_MAX   256

enum image_media_kind {
        IMAGE_MEDIA_UNKNOWN,
        IMAGE_MEDIA_OCI_MANIFEST,
        IMAGE_MEDIA_OCI_INDEX,
        IMAGE_MEDIA_DOCKER_MANIFEST,
        IMAGE_MEDIA_DOCKER_LIST,
        IMAGE_MEDIA_OCI_CONFIG,
        IMAGE_MEDIA_DOCKER_CONFIG,
        IMAGE_MEDIA_LAYER_TAR,
        IMAGE_MEDIA_LAYER_GZIP,
        IMAGE_MEDIA_LAYER_ZSTD,
        _IMAGE_MEDIA_KIND_MAX,
};
enum image_media_kind image_media_kind_from_string(const char *media_type);
/* The canonical media type string of a kind ("unknown" for IMAGE_MEDIA_UNKNOWN); static. */
const char *image_media_kind_to_string(enum image_media_kind k);

struct image_descriptor {
        char *media_type;
        char *digest; /* validated "sha256:<64 lower hex>" or "sha512:<128 lower hex>" */
        uint64_t size;
};

struct image_manifest {
        enum image_media_kind kind; /* OCI_MANIFEST or DOCKER_MANIFEST */
        struct image_descriptor config;
        struct image_descriptor *layers;
        size_t n_layers;
};

/* Parses an index/list and returns the descriptor of the linux/amd64 manifest. */
int image_index_select(const uint8_t *buf, size_t len, struct image_descriptor *ret,
                       struct ck_error **reterr);
int image_manifest_parse(const uint8_t *buf, size_t len, struct image_manifest *ret,
                         struct ck_error **reterr);
void image_manifest_clear(struct image_manifest *m);

struct image_config {
        char **entrypoint, **cmd, **env; /* NULL-terminated or NULL */
        char *working_dir, *user, *stop_signal;
        char **exposed_ports; /* "80/tcp" */
        char **volumes;       /* "/data": the image's anonymous volume paths */
        char **diff_ids;      /* one per layer, "sha256:…" */
        size_t n_diff_ids;
        char *os, *architecture;
};
int image_config_parse(const uint8_t *buf, size_t len, struct image_config *ret, struct ck_error **reterr);
void image_config_clear(struct image_config *c);

void image_descriptor_clear(struct image_descriptor *d);
/* true when s is "sha256:<64 lower hex>" or "sha512:<128 lower hex>". */
bool image_digest_valid(const char *s);
