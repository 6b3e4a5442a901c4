/* conker-shim: its control socket, <state dir>/shim.sock (mode 0600), one request per
 * connection (protocol in src/runtime/shim-proto.h): state, stop (the stop signal, then SIGKILL
 * after the timeout) and delete (SIGKILL, `runtime delete`, then the shim exits). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"
#include "log.h"
#include "shim.h"

static void reply(int fd, struct shim *s, int code, const char *msg)
{
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *txt = NULL;

        if (code < 0)
                j = json_pack("{s:b,s:s,s:i}", "ok", 0, "error", msg ? msg : "error", "errno", -code);
        else
                j = json_pack("{s:b,s:o}", "ok", 1, "state", shim_state_to_json(&s->st));
        txt = j ? ck_json_dump(j) : NULL;
        if (txt)
                (void)shim_frame_write(fd, txt, strlen(txt));
}

static void do_stop(struct shim *s, unsigned timeout_s)
{
        s->stopping = true;
        if (s->st.st.status == RUNTIME_RESTARTING) {
                clear_timer(s->backoff_fd);
                s->st.st.status = RUNTIME_EXITED;
                state_write(s);
        } else if (s->st.st.status == RUNTIME_RUNNING) {
                send_signal(s, s->stop_signal);
                set_timer(s->kill_fd, (uint64_t)timeout_s * 1000);
        }
}

/* Returns true when the shim should exit after replying. */
bool on_client(struct shim *s)
{
        _cleanup_close_ int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        _cleanup_error_ struct ck_error *err = NULL;
        _cleanup_free_ uint8_t *msg = NULL;
        struct timeval tv = {.tv_sec = 2};
        struct shim_request req;
        size_t len;
        int r;

        if (fd < 0)
                return false;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        r = shim_frame_read(fd, &msg, &len);
        if (r < 0) {
                reply(fd, s, r, "bad frame");
                return false;
        }
        r = shim_request_parse(msg, len, &req, &err);
        if (r < 0) {
                reply(fd, s, r, ck_error_message(err, r));
                return false;
        }
        switch (req.op) {
        case SHIM_OP_STATE:
                break;
        case SHIM_OP_STOP:
                do_stop(s, req.timeout_s);
                break;
        case SHIM_OP_DELETE: {
                char *del[] = {"delete", "--force", (char *)s->id};
                s->stopping = true;
                clear_timer(s->backoff_fd);
                if (s->st.st.status == RUNTIME_RUNNING) {
                        send_signal(s, SIGKILL);
                        wait_init_gone(s);
                }
                if (s->st.st.pid > 0) {
                        reply(fd, s, -EBUSY, "container did not die after SIGKILL");
                        return false;
                }
                r = runc(s, del, ELEMENTSOF(del), &err);
                if (r < 0)
                        log_warn("runc delete: %s", ck_error_message(err, r));
                s->st.st.status = RUNTIME_EXITED;
                state_write(s);
                (void)unlinkat(s->state_dfd, SHIM_SOCK_NAME, 0);
                reply(fd, s, 0, NULL);
                return true;
        }
        default:
                break;
        }
        reply(fd, s, 0, NULL);
        return false;
}

int listen_socket(struct shim *s)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd, n;
        mode_t old;

        n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", s->state_dir, SHIM_SOCK_NAME);
        if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void)unlink(sa.sun_path);
        old = umask(0077);
        n = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (n < 0 || chmod(sa.sun_path, 0600) < 0 || listen(fd, 16) < 0) {
                n = -errno;
                close(fd);
                return n;
        }
        return fd;
}
