/* conker-example-app: the demo application that runs inside a Conker container.
 *
 * It answers `GET /api/v1/getsecret` with
 *   {"code":200,"message":"get secret successful","data":"<content of $SECRET_DIR/$userId.json>"}
 * (the content JSON-escaped), which shows that the secret released by the broker reached the
 * container. Environment: userId (e.g. "secret-127.0.0.1:3333"), PORT (default 8080),
 * SECRET_DIR (default /secret).
 *
 * It is linked statically against libc only, so the image holds this one file. The request
 * reading is deliberately minimal and bounded (8 KiB head, 5 s per connection, one request per
 * connection, one connection at a time): it is a demo inside the container, not the engine. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_HEAD   8192
#define MAX_SECRET (1024 * 1024)
#define IO_TIMEOUT 5

static void on_term(int sig)
{
        _exit(0);
}

static int write_all(int fd, const char *p, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -1;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static void respond(int fd, int code, const char *status, const char *body, size_t len)
{
        char head[256];
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n",
                         code, status, len);

        if (n > 0 && (size_t)n < sizeof(head) && write_all(fd, head, (size_t)n) == 0)
                write_all(fd, body, len);
}

static void respond_message(int fd, int code, const char *status, const char *message)
{
        char body[256];
        int n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code, message);

        if (n > 0 && (size_t)n < sizeof(body))
                respond(fd, code, status, body, (size_t)n);
}

/* A userId names one file in the secret directory: no path separators, no dot files. */
static int user_id_ok(const char *s)
{
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 200 || s[0] == '.')
                return 0;
        for (size_t i = 0; i < n; i++)
                if (s[i] == '/' || s[i] < 0x21 || s[i] == 0x7f)
                        return 0;
        return 1;
}

static int read_secret(char **ret, size_t *ret_len)
{
        const char *dir = getenv("SECRET_DIR"), *user = getenv("userId");
        char path[512];
        struct stat st;
        char *buf;
        size_t len = 0;
        int fd, n;

        if (!user_id_ok(user))
                return -EINVAL;
        n = snprintf(path, sizeof(path), "%s/%s.json", dir && *dir ? dir : "/secret", user);
        if (n < 0 || (size_t)n >= sizeof(path))
                return -ENAMETOOLONG;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_SECRET) {
                close(fd);
                return -EFBIG;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        while (len < (size_t)st.st_size) {
                ssize_t k = read(fd, buf + len, (size_t)st.st_size - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                len += (size_t)k;
        }
        close(fd);
        *ret = buf;
        *ret_len = len;
        return 0;
}

/* JSON string escaping of len bytes into a new buffer (bytes >= 0x80 pass through as UTF-8). */
static char *json_escape(const char *in, size_t len, size_t *ret_len)
{
        static const char hex[] = "0123456789abcdef";
        char *out = malloc(len * 6 + 1), *p = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)in[i];
                if (c == '"' || c == '\\') {
                        *p++ = '\\';
                        *p++ = (char)c;
                } else if (c == '\n') {
                        *p++ = '\\';
                        *p++ = 'n';
                } else if (c == '\r') {
                        *p++ = '\\';
                        *p++ = 'r';
                } else if (c == '\t') {
                        *p++ = '\\';
                        *p++ = 't';
                } else if (c < 0x20 || c == 0x7f) {
                        memcpy(p, "\\u00", 4);
                        p[4] = hex[c >> 4];
                        p[5] = hex[c & 15];
                        p += 6;
                } else
                        *p++ = (char)c;
        }
        *p = 0;
        *ret_len = (size_t)(p - out);
        return out;
}

static void serve_getsecret(int fd)
{
        static const char prefix[] = "{\"code\":200,\"message\":\"get secret successful\",\"data\":\"";
        static const char suffix[] = "\"}";
        char *secret = NULL, *esc, *body;
        size_t len = 0, elen = 0, blen;
        int r = read_secret(&secret, &len);

        if (r == -EINVAL) {
                respond_message(fd, 500, "Internal Server Error", "userId is not set or not a file name");
                return;
        }
        if (r < 0) {
                respond_message(fd, 404, "Not Found", "secret not found");
                return;
        }
        esc = json_escape(secret, len, &elen);
        free(secret);
        if (!esc) {
                respond_message(fd, 500, "Internal Server Error", "out of memory");
                return;
        }
        blen = sizeof(prefix) - 1 + elen + sizeof(suffix) - 1;
        body = malloc(blen);
        if (body) {
                memcpy(body, prefix, sizeof(prefix) - 1);
                memcpy(body + sizeof(prefix) - 1, esc, elen);
                memcpy(body + sizeof(prefix) - 1 + elen, suffix, sizeof(suffix) - 1);
                respond(fd, 200, "OK", body, blen);
        } else
                respond_message(fd, 500, "Internal Server Error", "out of memory");
        free(body);
        free(esc);
}

static void serve(int fd)
{
        char head[MAX_HEAD + 1];
        size_t len = 0;
        char *sp1, *sp2, *eol;

        while (len < MAX_HEAD) {
                ssize_t n = read(fd, head + len, MAX_HEAD - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                len += (size_t)n;
                head[len] = 0;
                if (strstr(head, "\r\n\r\n") || strstr(head, "\n\n"))
                        break;
        }
        head[len] = 0;
        eol = strpbrk(head, "\r\n");
        if (!eol) {
                respond_message(fd, 400, "Bad Request", "bad request");
                return;
        }
        *eol = 0;
        /* Request line: METHOD SP TARGET SP VERSION. */
        sp1 = strchr(head, ' ');
        sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
                respond_message(fd, 400, "Bad Request", "bad request");
                return;
        }
        *sp1 = *sp2 = 0;
        if (strcmp(head, "GET") != 0) {
                respond_message(fd, 405, "Method Not Allowed", "method not allowed");
                return;
        }
        sp2 = strchr(sp1 + 1, '?');
        if (sp2)
                *sp2 = 0;
        if (strcmp(sp1 + 1, "/api/v1/getsecret") == 0)
                serve_getsecret(fd);
        else
                respond_message(fd, 404, "Not Found", "not found");
}

int main(void)
{
        const char *port_env = getenv("PORT");
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
        struct timeval tv = {.tv_sec = IO_TIMEOUT};
        long port = 8080;
        int fd, one = 1;

        if (port_env && *port_env) {
                char *end = NULL;
                port = strtol(port_env, &end, 10);
                if (!end || *end || port < 1 || port > 65535) {
                        fprintf(stderr, "conker-example-app: PORT=%s is not a port number\n", port_env);
                        return 2;
                }
        }
        /* As PID 1 in a container, signals without a handler are ignored. */
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        signal(SIGPIPE, SIG_IGN);

        sa.sin_port = htons((uint16_t)port);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
                fprintf(stderr, "conker-example-app: listening on port %ld: %s\n", port, strerror(errno));
                return 1;
        }
        fprintf(stderr, "conker-example-app: listening on 0.0.0.0:%ld\n", port);
        for (;;) {
                int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0) {
                        if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
                                continue;
                        return 1;
                }
                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                serve(c);
                close(c);
        }
}
