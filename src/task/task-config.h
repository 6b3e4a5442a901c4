/* The task-config document: the canonical form of what a container request asks conkerd to run
 * (image reference and ID, Env, Ports, Mounts, KmsEndpoints; never credentials), whose digest
 * conkerd measures into RTMR3 as a "task-config" event before it attests for the task, and which
 * travels in the RA-TLS claims so that a broker can check the request it releases a secret for.
 * Encoding: docs/rtmr3-event-log.md ("task-config").
 *
 * Version 1 is a JSON object serialised by jansson with JSON_COMPACT | JSON_SORT_KEYS |
 * JSON_ENSURE_ASCII (so the bytes depend only on the values):
 *   {"env":[…],"image":"<normalised reference>","imageId":"sha256:<64 hex>",
 *    "kmsEndpoints":[…],"mounts":[{"rw":…,"source":…,"target":…,"type":"volume"}],
 *    "ports":[{"published":…,"target":…}],"version":1}
 * Arrays keep the request's order. */
#pragma once

#include <stddef.h>

#include "error.h"
#include "request.h"

#define TASK_CONFIG_VERSION 1
#define TASK_CONFIG_MAX     (64u * 1024)
/* "sha256:" + 64 hex digits + NUL */
#define TASK_CONFIG_DIGEST_LEN (7 + 64 + 1)

/* The canonical document for req run as image_ref (normalised) with image ID image_id
 * ("sha256:<64 hex>"): *ret is a malloc'd, NUL-terminated string of *ret_len bytes (the caller
 * frees it); -E2BIG (with a message) when it would exceed TASK_CONFIG_MAX. */
int task_config_document(const char *image_ref, const char *image_id, const struct task_request *req,
                         char **ret, size_t *ret_len, struct ck_error **reterr);
/* "sha256:<hex SHA-256 of doc>", the payload of the "task-config" RTMR3 event. */
int task_config_digest(const char *doc, size_t len, char ret[TASK_CONFIG_DIGEST_LEN]);
