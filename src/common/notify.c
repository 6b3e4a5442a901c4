/* sd_notify(3) without libsystemd: see notify.h. The protocol is documented in systemd's
 * sd_notify(3) and "The NOTIFY_SOCKET protocol"; only the part that sends state strings (no file
 * descriptors, no credentials beyond the kernel's SCM_CREDENTIALS) is needed here. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "notify.h"

int ck_notify(const char *state, struct ck_error **reterr)
{
        const char *path = getenv("NOTIFY_SOCKET");
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -1;
        size_t plen, slen = strlen(state);
        socklen_t salen;
        ssize_t n;

        if (!path || !*path)
                return 0;
        if (slen == 0 || slen > CK_NOTIFY_STATE_MAX)
                return ck_error_set(reterr, -E2BIG, "notify state of %zu bytes", slen);
        plen = strlen(path);
        /* A path must be absolute; '@' names an abstract socket (its first byte becomes NUL). */
        if ((path[0] != '/' && path[0] != '@') || plen < 2 || plen > sizeof(sa.sun_path) - 1)
                return ck_error_set(reterr, -EINVAL, "NOTIFY_SOCKET \"%s\" is not an absolute path or @name",
                                    path);
        memcpy(sa.sun_path, path, plen);
        if (path[0] == '@') {
                sa.sun_path[0] = 0;
                /* An abstract name is exactly plen bytes long: no terminating NUL is counted. */
                salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
        } else {
                salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
        }

        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot create the notify socket");
        do
                n = sendto(fd, state, slen, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return ck_error_errno(reterr, -errno, "cannot notify %s", path);
        if ((size_t)n != slen)
                return ck_error_set(reterr, -EIO, "short notify datagram to %s", path);
        return 1;
}
