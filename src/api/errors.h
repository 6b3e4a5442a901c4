/* The one place where internal errors become HTTP statuses and client-facing messages.
 *
 *   -EINVAL, -EBADMSG, -ERANGE, -EACCES  400  the request is wrong; the message says how
 *                                             (-EACCES: the registry rejected the client's
 *                                             credentials, which is the client's to fix)
 *   -ENOENT                              404
 *   -EEXIST, -EBUSY                      409  name/port in use, task not in a state for it
 *   -E2BIG, -EMSGSIZE                    413
 *   -EAGAIN                              503  shutting down
 *   anything else                        500  generic message; the detail only in the log
 *
 * A missing or wrong API token is 401 and never goes through here (see server.c). */
#pragma once

#include "error.h"

struct api_error_view {
        int status;
        const char *message; /* borrowed from err or static */
};

/* Maps code (negative errno) and its error to a status and the message to show. For 5xx the
 * message is generic and the detail is logged with `what` as context. */
struct api_error_view api_error_map(int code, const struct ck_error *err, const char *what);
const char *api_status_reason(int status);
