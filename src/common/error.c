/* Error objects carrying -errno and a message, wrapped with context on the way up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static struct ck_error ck_error_oom = {.code = -ENOMEM, .msg = (char *)"out of memory"};

int ck_error_setv(struct ck_error **reterr, int code, const char *fmt, va_list ap)
{
        struct ck_error *e;

        if (code >= 0)
                code = -EINVAL; /* a failure must be negative; treat a slip as EINVAL */
        if (!reterr || *reterr)
                return code;

        e = calloc(1, sizeof(*e));
        if (!e) {
                *reterr = &ck_error_oom;
                return code;
        }
        e->code = code;
        if (vasprintf(&e->msg, fmt, ap) < 0) {
                free(e);
                *reterr = &ck_error_oom;
                return code;
        }
        *reterr = e;
        return code;
}

int ck_error_set(struct ck_error **reterr, int code, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        code = ck_error_setv(reterr, code, fmt, ap);
        va_end(ap);
        return code;
}

int ck_error_errno(struct ck_error **reterr, int code, const char *fmt, ...)
{
        _cleanup_free_ char *head = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&head, fmt, ap);
        va_end(ap);
        if (r < 0)
                return ck_error_set(reterr, code, "%s", strerror(code < 0 ? -code : code));
        return ck_error_set(reterr, code, "%s: %s", head, strerror(code < 0 ? -code : code));
}

int ck_error_prefix(struct ck_error **reterr, int code, const char *fmt, ...)
{
        _cleanup_free_ char *head = NULL;
        char *joined = NULL;
        va_list ap;
        int r;

        if (!reterr || !*reterr || *reterr == &ck_error_oom)
                return code;

        va_start(ap, fmt);
        r = vasprintf(&head, fmt, ap);
        va_end(ap);
        if (r < 0)
                return code;
        if (asprintf(&joined, "%s: %s", head, (*reterr)->msg) < 0)
                return code;
        free((*reterr)->msg);
        (*reterr)->msg = joined;
        return code;
}

const char *ck_error_message(const struct ck_error *err, int code)
{
        if (err)
                return err->msg;
        return strerror(code < 0 ? -code : code);
}

void ck_error_free(struct ck_error *err)
{
        if (!err || err == &ck_error_oom)
                return;
        free(err->msg);
        free(err);
}
