/* Error -> HTTP status mapping (see errors.h for the table and the reasons). */
#include <errno.h>

#include "errors.h"
#include "log.h"

struct api_error_view api_error_map(int code, const struct ck_error *err, const char *what)
{
        struct api_error_view v = {500, "internal error; see the conkerd log"};

        switch (code) {
        case -EINVAL:
        case -EBADMSG:
        case -ERANGE:
        case -EACCES:
                v.status = 400;
                break;
        case -ENOENT:
                v.status = 404;
                break;
        case -EEXIST:
        case -EBUSY:
                v.status = 409;
                break;
        case -E2BIG:
        case -EMSGSIZE:
                v.status = 413;
                break;
        case -EAGAIN:
                v.status = 503;
                break;
        default:
                log_error("%s: %s", what ? what : "request", ck_error_message(err, code));
                return v;
        }
        v.message = ck_error_message(err, code);
        return v;
}

const char *api_status_reason(int status)
{
        switch (status) {
        case 200:
                return "OK";
        case 400:
                return "Bad Request";
        case 401:
                return "Unauthorized";
        case 404:
                return "Not Found";
        case 405:
                return "Method Not Allowed";
        case 409:
                return "Conflict";
        case 413:
                return "Payload Too Large";
        case 500:
                return "Internal Server Error";
        case 503:
                return "Service Unavailable";
        default:
                return "Error";
        }
}
