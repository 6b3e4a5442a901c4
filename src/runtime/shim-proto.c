/* Shim protocol: framing, request/response/state (de)serialisation and the client call. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs.h"
#include "json.h"
#include "parse.h"
#include "shim-proto.h"

static const char *const op_names[_SHIM_OP_MAX] = {
        [SHIM_OP_STATE] = "state",
        [SHIM_OP_STOP] = "stop",
        [SHIM_OP_DELETE] = "delete",
};

static const char *const status_names[_RUNTIME_STATUS_MAX] = {
        [RUNTIME_CREATED] = "created", [RUNTIME_RUNNING] = "running", [RUNTIME_RESTARTING] = "restarting",
        [RUNTIME_EXITED] = "exited",   [RUNTIME_UNKNOWN] = "unknown",
};

const char *shim_op_to_string(enum shim_op op)
{
        return op < _SHIM_OP_MAX ? op_names[op] : NULL;
}

int shim_op_from_string(const char *s)
{
        for (int i = 0; s && i < _SHIM_OP_MAX; i++)
                if (strcmp(s, op_names[i]) == 0)
                        return i;
        return -EINVAL;
}

const char *runtime_status_to_string(enum runtime_status s)
{
        return s < _RUNTIME_STATUS_MAX ? status_names[s] : "unknown";
}

int runtime_status_from_string(const char *s)
{
        for (int i = 0; s && i < _RUNTIME_STATUS_MAX; i++)
                if (strcmp(s, status_names[i]) == 0)
                        return i;
        return -EINVAL;
}

int shim_frame_length(const uint8_t hdr[4], size_t *ret_len)
{
        uint32_t n = ck_le32(hdr);
        if (n == 0 || n > SHIM_MSG_MAX)
                return -EMSGSIZE;
        *ret_len = n;
        return 0;
}

static int read_exact(int fd, void *buf, size_t len)
{
        uint8_t *p = buf;
        while (len) {
                ssize_t n = read(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int shim_frame_read(int fd, uint8_t **ret, size_t *ret_len)
{
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t hdr[4];
        size_t len;
        int r;

        r = read_exact(fd, hdr, sizeof(hdr));
        if (r < 0)
                return r;
        r = shim_frame_length(hdr, &len);
        if (r < 0)
                return r;
        buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        r = read_exact(fd, buf, len);
        if (r < 0)
                return r;
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int shim_frame_write(int fd, const void *buf, size_t len)
{
        uint8_t hdr[4];
        int r;

        if (len == 0 || len > SHIM_MSG_MAX)
                return -EMSGSIZE;
        ck_put_le32(hdr, (uint32_t)len);
        r = ck_write_all(fd, hdr, sizeof(hdr));
        return r < 0 ? r : ck_write_all(fd, buf, len);
}

int shim_assign_format(char *const *argv, size_t n, uint8_t **ret, size_t *ret_len)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t total = 0, off = 0;

        if (n == 0 || n > SHIM_ASSIGN_ARGS_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                size_t l = argv[i] ? strlen(argv[i]) : 0;
                if (l == 0)
                        return -EINVAL;
                if (l + 1 > SHIM_MSG_MAX - total)
                        return -EMSGSIZE;
                total += l + 1;
        }
        buf = malloc(total);
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(argv[i]) + 1;
                memcpy(buf + off, argv[i], l);
                off += l;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = total;
        return 0;
}

int shim_assign_parse(uint8_t *buf, size_t len, char *argv0, char *ret_argv[SHIM_ASSIGN_ARGS_MAX + 2],
                      int *ret_argc)
{
        char *args[SHIM_ASSIGN_ARGS_MAX + 2];
        size_t n = 1, off = 0;

        if (len == 0 || len > SHIM_MSG_MAX || buf[len - 1] != 0)
                return -EBADMSG;
        args[0] = argv0;
        while (off < len) {
                size_t l = strnlen((const char *)buf + off, len - off);
                if (l == 0 || n > SHIM_ASSIGN_ARGS_MAX)
                        return -EBADMSG;
                args[n++] = (char *)buf + off;
                off += l + 1;
        }
        args[n] = NULL;
        memcpy(ret_argv, args, (n + 1) * sizeof(*args));
        *ret_argc = (int)n;
        return 0;
}

int shim_request_parse(const uint8_t *buf, size_t len, struct shim_request *ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *j = NULL;
        struct shim_request req = {0};
        const char *op;
        uint64_t t = 0;
        int r;

        r = ck_json_loadb(buf, len, SHIM_MSG_MAX, &j, reterr);
        if (r < 0)
                return r;
        if (!json_is_object(j))
                return ck_error_set(reterr, -EBADMSG, "request is not an object");
        r = ck_json_get_string(j, "op", &op, reterr);
        if (r < 0)
                return r == -ENOENT ? ck_error_set(reterr, -EBADMSG, "request without op") : r;
        r = shim_op_from_string(op);
        if (r < 0)
                return ck_error_set(reterr, -EBADMSG, "unknown op");
        req.op = (enum shim_op)r;
        r = ck_json_get_uint(j, "timeout", SHIM_TIMEOUT_MAX, &t, reterr);
        if (r < 0 && r != -ENOENT)
                return r;
        if (json_object_size(j) > (r == -ENOENT ? 1u : 2u))
                return ck_error_set(reterr, -EBADMSG, "unexpected request fields");
        req.timeout_s = (unsigned)t;
        *ret = req;
        return 0;
}

char *shim_request_format(const struct shim_request *req)
{
        _cleanup_json_ json_t *j = json_pack("{s:s}", "op", shim_op_to_string(req->op));
        if (!j)
                return NULL;
        if (req->op == SHIM_OP_STOP && json_object_set_new(j, "timeout", json_integer(req->timeout_s)) < 0)
                return NULL;
        return ck_json_dump(j);
}

json_t *shim_state_to_json(const struct shim_state *s)
{
        return json_pack("{s:s,s:i,s:i,s:b,s:i,s:I,s:I,s:i}", "status",
                         runtime_status_to_string(s->st.status), "pid", (int)s->st.pid, "exit_code",
                         s->st.exit_code, "oom_killed", s->st.oom_killed, "restart_count",
                         (int)s->st.restart_count, "started_at", (json_int_t)s->st.started_at_ns,
                         "finished_at", (json_int_t)s->st.finished_at_ns, "shim_pid", (int)s->shim_pid);
}

static int get_int(json_t *j, const char *key, int64_t min, int64_t max, int64_t *ret,
                   struct ck_error **reterr)
{
        json_t *v = json_object_get(j, key);
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
                return ck_error_set(reterr, -EBADMSG, "state: \"%s\" missing or out of range", key);
        *ret = json_integer_value(v);
        return 0;
}

int shim_state_from_json(json_t *j, struct shim_state *ret, struct ck_error **reterr)
{
        struct shim_state s = {0};
        const char *status;
        int64_t pid, code, rc, sa, fa, spid;
        bool oom;
        int r;

        if (!json_is_object(j))
                return ck_error_set(reterr, -EBADMSG, "state is not an object");
        r = ck_json_get_string(j, "status", &status, reterr);
        if (r < 0)
                return ck_error_set(reterr, -EBADMSG, "state without status");
        r = runtime_status_from_string(status);
        if (r < 0)
                return ck_error_set(reterr, -EBADMSG, "state: unknown status");
        s.st.status = (enum runtime_status)r;
        if ((r = get_int(j, "pid", 0, INT32_MAX, &pid, reterr)) < 0 ||
            (r = get_int(j, "exit_code", -1, 255 + 128, &code, reterr)) < 0 ||
            (r = get_int(j, "restart_count", 0, INT32_MAX, &rc, reterr)) < 0 ||
            (r = get_int(j, "started_at", 0, INT64_MAX, &sa, reterr)) < 0 ||
            (r = get_int(j, "finished_at", 0, INT64_MAX, &fa, reterr)) < 0 ||
            (r = get_int(j, "shim_pid", 0, INT32_MAX, &spid, reterr)) < 0)
                return r;
        r = ck_json_get_bool(j, "oom_killed", &oom, reterr);
        if (r < 0)
                return ck_error_set(reterr, -EBADMSG, "state without oom_killed");
        s.st.pid = (pid_t)pid;
        s.st.exit_code = (int)code;
        s.st.restart_count = (unsigned)rc;
        s.st.started_at_ns = sa;
        s.st.finished_at_ns = fa;
        s.st.oom_killed = oom;
        s.shim_pid = (pid_t)spid;
        *ret = s;
        return 0;
}

int shim_state_read(int dirfd, struct shim_state *ret, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_json_ json_t *j = NULL;
        size_t len;
        int r;

        r = ck_read_file_at(dirfd, SHIM_STATE_NAME, SHIM_STATE_MAX, &buf, &len, reterr);
        if (r < 0)
                return r;
        r = ck_json_loadb(buf, len, SHIM_STATE_MAX, &j, reterr);
        if (r < 0)
                return r;
        return shim_state_from_json(j, ret, reterr);
}

int shim_response_parse(const uint8_t *buf, size_t len, struct shim_state *ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *j = NULL;
        json_t *st;
        bool ok;
        int r;

        r = ck_json_loadb(buf, len, SHIM_MSG_MAX, &j, reterr);
        if (r < 0)
                return r;
        if (!json_is_object(j))
                return ck_error_set(reterr, -EBADMSG, "response is not an object");
        r = ck_json_get_bool(j, "ok", &ok, reterr);
        if (r < 0)
                return ck_error_set(reterr, -EBADMSG, "response without ok");
        if (!ok) {
                const char *e = NULL;
                json_t *code = json_object_get(j, "errno");
                int c = json_is_integer(code) && json_integer_value(code) > 0 &&
                                        json_integer_value(code) < 4096
                                ? -(int)json_integer_value(code)
                                : -EIO;
                if (ck_json_get_string(j, "error", &e, NULL) < 0 || !ck_is_printable(e, strlen(e)))
                        e = "shim error";
                return ck_error_set(reterr, c, "shim: %.512s", e);
        }
        st = json_object_get(j, "state");
        return shim_state_from_json(st, ret, reterr);
}

int shim_call(const char *sock_path, const struct shim_request *req, unsigned io_timeout_s,
              struct shim_state *ret, struct ck_error **reterr)
{
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        _cleanup_free_ char *msg = shim_request_format(req);
        _cleanup_free_ uint8_t *resp = NULL;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = io_timeout_s ? io_timeout_s : 5};
        size_t len;
        int r;

        if (fd < 0)
                return ck_error_errno(reterr, -errno, "socket");
        if (!msg)
                return -ENOMEM;
        if (strlen(sock_path) >= sizeof(sa.sun_path))
                return ck_error_set(reterr, -ENAMETOOLONG, "shim socket path too long: %s", sock_path);
        memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return ck_error_errno(reterr, -errno, "cannot connect to shim at %s", sock_path);
        r = shim_frame_write(fd, msg, strlen(msg));
        if (r < 0)
                return ck_error_errno(reterr, r, "shim request");
        r = shim_frame_read(fd, &resp, &len);
        if (r < 0)
                return ck_error_errno(reterr, r == -EAGAIN ? -ETIMEDOUT : r, "shim reply");
        return shim_response_parse(resp, len, ret, reterr);
}

int shim_parse_oom_kill(const char *buf, size_t len, uint64_t *ret)
{
        size_t off = 0;

        while (off < len) {
                const char *line = buf + off;
                const char *nl = memchr(line, '\n', len - off);
                size_t l = nl ? (size_t)(nl - line) : len - off;

                off += l + (nl ? 1 : 0);
                if (l > 9 && memcmp(line, "oom_kill ", 9) == 0)
                        return ck_parse_u64(line + 9, l - 9, UINT64_MAX, ret);
        }
        return -ENOENT;
}
