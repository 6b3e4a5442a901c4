/* jansson glue: bounded loading with errors that name the field, and typed getters.
 *
 * Every JSON document from outside is loaded with ck_json_loadb(), which takes a maximum size
 * and rejects duplicate keys and trailing garbage. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cleanup.h"
#include "error.h"

DEFINE_POINTER_CLEANUP(json_t, json_decref, ck_json_decref)
#define _cleanup_json_ _cleanup_(ck_json_decrefp)

/* Parses buf[0..len) (len <= max) into *ret. The error names line and column. */
int ck_json_loadb(const void *buf, size_t len, size_t max, json_t **ret, struct ck_error **reterr);

/* Getters: -ENOENT when the key is absent, -EINVAL (with an error naming the key) when it has
 * the wrong type or is out of range (a string holding a NUL byte is refused). Returned strings
 * are borrowed from obj. */
int ck_json_get_string(json_t *obj, const char *key, const char **ret, struct ck_error **reterr);
int ck_json_get_uint(json_t *obj, const char *key, uint64_t max, uint64_t *ret, struct ck_error **reterr);
int ck_json_get_bool(json_t *obj, const char *key, bool *ret, struct ck_error **reterr);
int ck_json_get_array(json_t *obj, const char *key, json_t **ret, struct ck_error **reterr);
int ck_json_get_object(json_t *obj, const char *key, json_t **ret, struct ck_error **reterr);

/* json_dumps() into a malloc'd string (compact, keys in insertion order); NULL on OOM. */
char *ck_json_dump(const json_t *j);
