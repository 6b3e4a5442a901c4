/* conker-shim: the spare mode (`--spare`). A spare is started ahead by conkerd, makes a sealed
 * copy of crun while it waits, then receives the command line of the container it is to serve;
 * the copy is used only if the file on disk is still the one copied. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "shim.h"

/* crun (like runc 1.1) re-executes itself from a sealed copy of its binary before it touches a
 * container (CVE-2019-5736: a container must never reach a writable host runtime through
 * /proc/self/exe), and skips that step when /proc/self/exe already is a memfd sealed with
 * exactly these seals. A spare makes that copy while it waits, so the start does not pay crun's
 * bind mount, detach and second exec. */
#define RUNTIME_COPY_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
#define RUNTIME_COPY_MAX   (256u << 20)

int runtime_copy_sealed(const char *path, struct stat *ret_st)
{
        _cleanup_close_ int in = open(path, O_RDONLY | O_CLOEXEC), out = -1;
        struct stat st;
        off_t off = 0;

        if (in < 0 || fstat(in, &st) < 0)
                return -errno;
        *ret_st = st;
        if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > RUNTIME_COPY_MAX)
                return -EINVAL;
        out = memfd_create("conker-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (out < 0)
                return -errno;
        while (off < st.st_size) {
                ssize_t n = sendfile(out, in, &off, (size_t)(st.st_size - off));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
        }
        if (fcntl(out, F_ADD_SEALS, RUNTIME_COPY_SEALS) < 0)
                return -errno;
        return TAKE_FD(out);
}

/* Whether path is still the file a spare copied (st, from runtime_copy_sealed()): a spare may
 * wait for minutes, and a runtime upgraded meanwhile (a package replaces the file, a new inode;
 * an in-place write changes size, mtime and ctime) must not run its old, possibly vulnerable
 * code even once. */
bool runtime_copy_current(const char *path, const struct stat *st)
{
        struct stat now;

        return stat(path, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino &&
               now.st_size == st->st_size && now.st_mtim.tv_sec == st->st_mtim.tv_sec &&
               now.st_mtim.tv_nsec == st->st_mtim.tv_nsec && now.st_ctim.tv_sec == st->st_ctim.tv_sec &&
               now.st_ctim.tv_nsec == st->st_ctim.tv_nsec;
}

/* `--spare`: started ahead by conkerd (shim-spare.c) with its socket on fd 3. Waits for the
 * assignment (shim-proto.h), makes the log fd that came with it stdout and stderr, and returns
 * the command line in *ret_argv (pointing into *ret_buf, which the caller keeps). 0 on EOF: conkerd
 * is gone or shut down, nothing to do. */
int spare_wait(uint8_t **ret_buf, char *ret_argv[SHIM_ASSIGN_ARGS_MAX + 2], int *ret_argc)
{
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } ctl;
        _cleanup_free_ uint8_t *buf = malloc(SHIM_MSG_MAX + 1);
        struct iovec iov = {.iov_base = buf, .iov_len = SHIM_MSG_MAX + 1};
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
        struct cmsghdr *c;
        int logfd = -1, r;
        ssize_t n;

        if (!buf)
                return -ENOMEM;
        do
                n = recvmsg(3, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        c = CMSG_FIRSTHDR(&mh);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int)))
                memcpy(&logfd, CMSG_DATA(c), sizeof(int));
        if (n == 0 && logfd < 0)
                return 0;
        if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || logfd < 0 || (c && CMSG_NXTHDR(&mh, c))) {
                safe_close(logfd);
                return -EBADMSG;
        }
        r = dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0 ? -errno : 0;
        if (logfd > 2) /* always: 0-3 are taken */
                safe_close(logfd);
        if (r < 0)
                return r;
        r = shim_assign_parse(buf, (size_t)n, "conker-shim", ret_argv, ret_argc);
        if (r < 0)
                return r;
        *ret_buf = TAKE_PTR(buf);
        return 1;
}
