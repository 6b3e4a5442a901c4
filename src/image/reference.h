/* Image references parsed like Docker's distribution/reference (docs/image.md, "Pulling").
 *
 * Contract header (owned by the image module). "busybox" -> docker.io/library/busybox:latest;
 * "host:5000/a/b:t", "[::1]:5000/a@sha256:…", "localhost/x". Tag + digest: the digest wins. */
#pragma once

#include <stddef.h>

#include "error.h"

#define IMAGE_REF_MAX 4096

struct image_ref {
        char *domain; /* "docker.io", "localhost:5000", "[::1]:5000" */
        char *path;   /* "library/busybox" */
        char *tag;    /* NULL when only a digest was given */
        char *digest; /* "sha256:<64 hex>" or NULL */
};

/* Parses and normalises s. Errors say what is wrong ("invalid reference format: repository
 * name must be lowercase"). */
int image_ref_parse(const char *s, struct image_ref *ret, struct ck_error **reterr);
/* "docker.io/library/busybox:latest" or "…@sha256:…"; malloc'd. */
char *image_ref_to_string(const struct image_ref *r);
/* The tag or digest to ask the registry for. */
const char *image_ref_reference(const struct image_ref *r);
void image_ref_clear(struct image_ref *r);
