/* Errors with context.
 *
 * A fallible function returns int: >= 0 on success, -errno on failure. A human-readable cause
 * travels in an optional last parameter `struct ck_error **reterr`: the place where the failure
 * happens sets it with ck_error_set(), callers on the way up may add context with
 * ck_error_prefix(), and only a boundary (API handler, CLI command, main) renders and frees it.
 *
 * reterr may be NULL (the caller only wants the code). If *reterr is already set, ck_error_set()
 * keeps the first, most precise error and returns the new code. */
#pragma once

#include <stdarg.h>

#include "cleanup.h"

struct ck_error {
        int code;  /* negative errno */
        char *msg; /* NUL-terminated, never NULL */
};

/* Sets *reterr to a new error and returns code (which must be negative). */
int ck_error_set(struct ck_error **reterr, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
int ck_error_setv(struct ck_error **reterr, int code, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));

/* Like ck_error_set() with ": <strerror(-code)>" appended. */
int ck_error_errno(struct ck_error **reterr, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Prepends "<context>: " to the message of *reterr and returns code. When reterr or *reterr is
 * NULL it only returns code, so it is safe on any failure path. */
int ck_error_prefix(struct ck_error **reterr, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* The message, or a generic text for the code when err is NULL. Never NULL. */
const char *ck_error_message(const struct ck_error *err, int code);

void ck_error_free(struct ck_error *err);
DEFINE_POINTER_CLEANUP(struct ck_error, ck_error_free, ck_error_free)
#define _cleanup_error_ _cleanup_(ck_error_freep)
