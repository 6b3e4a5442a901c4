/* The REST API in-process: a real evhttp server on a free loopback port over a task manager
 * with the scripted backend, driven with libcurl. Checks routing, auth, the envelope on every
 * answer (401/404/405/413 included), the error -> status mapping, redaction and logs. */
#include "cmocka-wrap.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api-internal.h"
#include "api.h"
#include "buf.h"
#include "errors.h"
#include "fs.h"
#include "json.h"
#include "task.h"
#include "task-scripted-backend.h"

static const char TOKEN[] = "0123456789abcdef0123456789abcdef";
static struct event_base *base;
static struct api_server *api;
static pthread_t loop_thread;
static char url_base[64];
static struct ck_secret *tok; /* borrowed by the server */

static sem_t loop_running;

static void loop_started(evutil_socket_t fd, short what, void *arg)
{
        sem_post(&loop_running);
}

static void *loop_main(void *arg)
{
        event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
        return NULL;
}

/* event_base_loopbreak() is forgotten when the loop has not started yet (the loop clears the
 * flag on entry), so teardown could wait forever on a test that made no request. Setup returns
 * only once the loop runs a first callback. */
static int loop_start(void)
{
        if (sem_init(&loop_running, 0, 0) < 0 ||
            event_base_once(base, -1, EV_TIMEOUT, loop_started, NULL, NULL) < 0)
                return -1;
        if (pthread_create(&loop_thread, NULL, loop_main, NULL) != 0)
                return -1;
        while (sem_wait(&loop_running) < 0)
                if (errno != EINTR)
                        return -1;
        return 0;
}

static int setup(void **state)
{
        struct task_manager_config mc = {.limits = {30000, 65534},
                                         .max_tasks = 8,
                                         .stop_timeout_s = 1,
                                         .pull_timeout_s = 60,
                                         .max_request_size = 4096};
        struct api_config ac = {.listen = "127.0.0.1:0",
                                .auth = true,
                                .token = tok,
                                .max_body_size = 4096,
                                .max_header_size = 8192,
                                .max_connections = 16,
                                .timeout_s = 10,
                                .version = "test"};
        _cleanup_error_ struct ck_error *e = NULL;
        int r;

        tok = ck_secret_new(TOKEN, strlen(TOKEN));
        ac.token = tok;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-api-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        memset(&sc, 0, sizeof(sc));
        mc.data_dir = tmpdir;
        r = task_manager_new(&mc, &backend, &g_m, &e);
        if (r < 0)
                fail_msg("manager: %s", ck_error_message(e, r));
        base = event_base_new();
        r = api_server_new(base, &ac, g_m, &api, &e);
        if (r < 0)
                fail_msg("api: %s", ck_error_message(e, r));
        snprintf(url_base, sizeof(url_base), "http://127.0.0.1:%u", api_server_port(api));
        return loop_start();
}

static int teardown(void **state)
{
        event_base_loopbreak(base);
        pthread_join(loop_thread, NULL);
        api_server_free(api);
        task_manager_free(g_m);
        event_base_free(base);
        script_log_path[0] = 0;
        ck_secret_free(tok);
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
        return ck_buf_append(ud, p, size * n) < 0 ? 0 : size * n;
}

struct resp {
        long status;
        json_t *body; /* NULL when not JSON */
        char *raw;
        char allow[64];
};

static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
        struct resp *r = ud;
        if (size * n > 7 && strncasecmp(p, "Allow: ", 7) == 0)
                snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(size * n - 9), p + 7);
        return size * n;
}

static void resp_clear(struct resp *r)
{
        json_decref(r->body);
        free(r->raw);
}

static struct resp request(const char *method, const char *path, const char *token, const char *body,
                           size_t body_len)
{
        CURL *c = curl_easy_init();
        struct curl_slist *h = NULL;
        struct ck_buf b;
        struct resp r = {0};
        char url[512], auth[128];

        ck_buf_init(&b, 16 << 20);
        snprintf(url, sizeof(url), "%s%s", url_base, path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
        if (token) {
                snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
                h = curl_slist_append(h, auth);
        }
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        if (body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
        }
        CURLcode cc = curl_easy_perform(c);
        if (cc != CURLE_OK)
                fail_msg("%s %s: transfer failed: %s", method, path, curl_easy_strerror(cc));
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        r.raw = (char *)ck_buf_take(&b, NULL);
        (void)ck_json_loadb(r.raw, strlen(r.raw), 16 << 20, &r.body, NULL);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        return r;
}

/* Checks status, that the body is the envelope with the same code, and the message. */
static void expect(struct resp *r, long status, const char *msg_part)
{
        if (r->status != status)
                fail_msg("status %ld, want %ld (%s)", r->status, status, r->raw);
        if (!r->body || !json_is_object(r->body))
                fail_msg("not a JSON envelope: %s", r->raw);
        assert_int_equal(json_integer_value(json_object_get(r->body, "code")), status);
        assert_true(json_is_string(json_object_get(r->body, "message")));
        assert_non_null(json_object_get(r->body, "data"));
        if (msg_part && !strstr(json_string_value(json_object_get(r->body, "message")), msg_part))
                fail_msg("message \"%s\" lacks \"%s\"",
                         json_string_value(json_object_get(r->body, "message")), msg_part);
}

static const char seed[] =
        "{\"Name\":\"conker-example-app\",\"ImageInfo\":{\"ImageName\":\"reckey/conker-example-app:latest\","
        "\"RegisterAuthInfo\":{\"Username\":\"user\",\"Password\":\"Pa55-w0rd-zz\"}},\"Ports\":[{"
        "\"TargetPort\":8080,"
        "\"PublishedPort\":30080}],\"Env\":[\"userId=secret-127.0.0.1:3333\"],\"Mounts\":[{\"Type\":"
        "\"volume\","
        "\"Target\":\"/data\",\"Source\":\"data\",\"RW\":true}]}";

static void test_health_and_auth(void **state)
{
        struct resp r = request("GET", "/sw/api/v1/pub/health", NULL, NULL, 0);
        expect(&r, 200, "ok");
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/containers", NULL, NULL, 0);
        expect(&r, 401, "API token");
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/containers", "wrong-token-wrong-token-wrong-xx", NULL, 0);
        expect(&r, 401, "API token");
        resp_clear(&r);
        /* Without the token an unknown path is a 401 too: the API tells no one it does not know
         * which routes exist. */
        r = request("GET", "/sw/api/v1/nothing", NULL, NULL, 0);
        expect(&r, 401, "API token");
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/containers", TOKEN, NULL, 0);
        expect(&r, 200, NULL);
        assert_int_equal(json_array_size(json_object_get(r.body, "data")), 0);
        resp_clear(&r);
}

static void test_routes_404_405(void **state)
{
        struct resp r = request("GET", "/sw/api/v1/nope", TOKEN, NULL, 0);
        expect(&r, 404, "no such route");
        resp_clear(&r);
        r = request("GET", "/", TOKEN, NULL, 0);
        expect(&r, 404, NULL);
        resp_clear(&r);
        r = request("PUT", "/sw/api/v1/container", TOKEN, NULL, 0);
        expect(&r, 405, "not allowed");
        assert_string_equal(r.allow, "GET, POST, DELETE");
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/container/cancel", TOKEN, NULL, 0);
        expect(&r, 405, NULL);
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/container", TOKEN, NULL, 0);
        expect(&r, 404, "there is no task");
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/container/abc/zzz", TOKEN, NULL, 0);
        expect(&r, 404, NULL);
        resp_clear(&r);
}

static void test_bad_bodies(void **state)
{
        char big[6000];
        struct resp r = request("POST", "/sw/api/v1/container", TOKEN, "{nope", 5);
        expect(&r, 400, "malformed JSON");
        resp_clear(&r);
        r = request("POST", "/sw/api/v1/container", TOKEN, "", 0);
        expect(&r, 400, NULL);
        resp_clear(&r);
        memset(big, ' ', sizeof(big));
        big[0] = '{';
        big[sizeof(big) - 1] = '}';
        r = request("POST", "/sw/api/v1/container", TOKEN, big, sizeof(big));
        expect(&r, 413, "max-body-size");
        resp_clear(&r);
        r = request(
                "POST", "/sw/api/v1/container", TOKEN,
                "{\"ImageInfo\":{\"ImageName\":\"x\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/"
                "secret\","
                "\"Source\":\"d\"}]}",
                strlen("{\"ImageInfo\":{\"ImageName\":\"x\"},\"Mounts\":[{\"Type\":\"volume\",\"Target\":"
                       "\"/secret\",\"Source\":\"d\"}]}"));
        expect(&r, 400, "/secret is reserved");
        resp_clear(&r);
        /* Still serving. */
        r = request("GET", "/sw/api/v1/pub/health", NULL, NULL, 0);
        expect(&r, 200, NULL);
        resp_clear(&r);
}

static void test_lifecycle(void **state)
{
        struct resp r = request("POST", "/sw/api/v1/container", TOKEN, seed, strlen(seed));
        char path[128], id[64];

        expect(&r, 200, "task created");
        assert_null(strstr(r.raw, "Pa55-w0rd-zz"));
        snprintf(id, sizeof(id), "%s",
                 json_string_value(json_object_get(json_object_get(r.body, "data"), "Id")));
        resp_clear(&r);
        task_manager_wait(g_m, id);

        r = request("GET", "/sw/api/v1/container", TOKEN, NULL, 0);
        expect(&r, 200, NULL);
        assert_string_equal(json_string_value(json_object_get(json_object_get(r.body, "data"), "Status")),
                            "Running");
        assert_null(strstr(r.raw, "Pa55-w0rd-zz"));
        assert_non_null(strstr(r.raw, "\"ContainerInspect\""));
        resp_clear(&r);

        /* Same name again: 409. */
        r = request("POST", "/sw/api/v1/container", TOKEN, seed, strlen(seed));
        expect(&r, 409, "in use");
        assert_null(strstr(r.raw, "Pa55-w0rd-zz"));
        resp_clear(&r);

        snprintf(path, sizeof(path), "/sw/api/v1/container/%s/cancel", id);
        r = request("POST", path, TOKEN, NULL, 0);
        expect(&r, 409, "not being created");
        resp_clear(&r);

        snprintf(path, sizeof(path), "/sw/api/v1/container/%s/events", id);
        r = request("GET", path, TOKEN, NULL, 0);
        expect(&r, 200, NULL);
        assert_int_equal(json_array_size(json_object_get(r.body, "data")), 6);
        resp_clear(&r);

        snprintf(path, sizeof(path), "/sw/api/v1/container/%s", id);
        r = request("DELETE", path, TOKEN, NULL, 0);
        expect(&r, 200, "deleted");
        resp_clear(&r);
        assert_int_equal(sc.container, 0);
        r = request("GET", path, TOKEN, NULL, 0);
        expect(&r, 404, "no such task");
        resp_clear(&r);
        r = request("DELETE", "/sw/api/v1/container", TOKEN, NULL, 0);
        expect(&r, 404, NULL);
        resp_clear(&r);
}

static void test_cancel_newest(void **state)
{
        const char *b = "{\"ImageInfo\":{\"ImageName\":\"x\"}}";
        struct resp r;

        sc.fail_at = "pull";
        r = request("POST", "/sw/api/v1/container", TOKEN, b, strlen(b));
        expect(&r, 200, NULL);
        resp_clear(&r);
        /* It failed at once; cancelling what is not in the pipeline is a conflict. */
        r = request("GET", "/sw/api/v1/containers", TOKEN, NULL, 0);
        task_manager_wait(g_m, json_string_value(json_object_get(
                                       json_array_get(json_object_get(r.body, "data"), 0), "Id")));
        resp_clear(&r);
        r = request("POST", "/sw/api/v1/container/cancel", TOKEN, NULL, 0);
        expect(&r, 409, NULL);
        resp_clear(&r);
}

static void test_logs(void **state)
{
        const char *lines = "{\"ts\":\"t\",\"stream\":\"stdout\",\"log\":\"one\\n\"}\n"
                            "{\"ts\":\"t\",\"stream\":\"stderr\",\"log\":\"two\\n\"}\n"
                            "{\"ts\":\"t\",\"stream\":\"stdout\",\"log\":\"three\\n\"}\n";
        _cleanup_close_ int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct resp r;

        assert_int_equal(ck_write_file_atomic(dfd, "log.json", lines, strlen(lines), 0600, NULL), 0);
        snprintf(script_log_path, sizeof(script_log_path), "%s/log.json", tmpdir);
        r = request("POST", "/sw/api/v1/container", TOKEN, seed, strlen(seed));
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/container/conker-example-app/logs", TOKEN, NULL, 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.raw, "one\ntwo\nthree\n");
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/container/conker-example-app/logs?tail=2", TOKEN, NULL, 0);
        assert_string_equal(r.raw, "two\nthree\n");
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/container/conker-example-app/logs?tail=0", TOKEN, NULL, 0);
        assert_string_equal(r.raw, "");
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/container/conker-example-app/logs?tail=x", TOKEN, NULL, 0);
        expect(&r, 400, "tail");
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/container/nope/logs", TOKEN, NULL, 0);
        expect(&r, 404, NULL);
        resp_clear(&r);
}

/* A log larger than what one request reads (log-max-bytes may be up to 1 GiB) still answers:
 * with its newest lines, starting at a line boundary. */
static void test_logs_large_file(void **state)
{
        const char *last = "{\"ts\":\"t\",\"stream\":\"stdout\",\"log\":\"newest\\n\"}\n";
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *line = NULL;
        const size_t line_len = 4096, total = 70u << 20;
        char path[128];
        struct resp r;

        snprintf(path, sizeof(path), "%s/log.json", tmpdir);
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        line = malloc(line_len);
        assert_non_null(line);
        memset(line, 'x', line_len);
        memcpy(line, "{\"log\":\"", 8);
        memcpy(line + line_len - 3, "\"}\n", 3);
        /* A sparse start (cheap to make, one long line without a newline, so the cut falls
         * inside it), then two real lines. */
        assert_int_equal(ftruncate(fd, (off_t)total), 0);
        assert_int_equal(ck_write_all(fd, "\n", 1), 0);
        assert_int_equal(ck_write_all(fd, line, line_len), 0);
        assert_int_equal(ck_write_all(fd, last, strlen(last)), 0);
        snprintf(script_log_path, sizeof(script_log_path), "%s", path);
        r = request("POST", "/sw/api/v1/container", TOKEN, seed, strlen(seed));
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/container/conker-example-app/logs?tail=1", TOKEN, NULL, 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.raw, "newest\n");
        resp_clear(&r);
        r = request("GET", "/sw/api/v1/container/conker-example-app/logs?tail=2", TOKEN, NULL, 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(strlen(r.raw), line_len - 11 + 7); /* the log field has no newline */
        resp_clear(&r);
}

/* The whole log is served, however large, while the server queues about one piece of it at a
 * time: the old reply held all of it (up to 64 MiB) in one buffer per request. */
static void test_logs_streamed_bounded(void **state)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *line = NULL;
        const size_t line_len = 1024, lines = 14336, text_len = line_len - 12;
        char path[128];
        struct resp r;

        snprintf(path, sizeof(path), "%s/log.json", tmpdir);
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        line = malloc(line_len);
        assert_non_null(line);
        /* {"log":"xxx...x\n"} and a newline: renders to text_len bytes, the last a newline. */
        memset(line, 'x', line_len);
        memcpy(line, "{\"log\":\"", 8);
        memcpy(line + line_len - 5, "\\n\"}\n", 5);
        for (size_t i = 0; i < lines; i++)
                assert_int_equal(ck_write_all(fd, line, line_len), 0);
        snprintf(script_log_path, sizeof(script_log_path), "%s", path);
        r = request("POST", "/sw/api/v1/container", TOKEN, seed, strlen(seed));
        resp_clear(&r);
        api_logs_peak_queued = 0;
        r = request("GET", "/sw/api/v1/container/conker-example-app/logs", TOKEN, NULL, 0);
        assert_int_equal(r.status, 200);
        assert_non_null(r.raw);
        assert_int_equal(strlen(r.raw), lines * text_len);
        for (size_t i = 0; i < lines; i++) {
                assert_int_equal(r.raw[i * text_len], 'x');
                assert_int_equal(r.raw[(i + 1) * text_len - 1], '\n');
        }
        resp_clear(&r);
        assert_true(api_logs_peak_queued > 0);
        if (api_logs_peak_queued > (512u << 10))
                fail_msg("%zu bytes queued for one log request", api_logs_peak_queued);
        /* tail=N over the same file still starts at a line boundary. */
        r = request("GET", "/sw/api/v1/container/conker-example-app/logs?tail=3", TOKEN, NULL, 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(strlen(r.raw), 3 * text_len);
        resp_clear(&r);
}

struct follow_ctx {
        struct resp r;
};

static void *follow_main(void *arg)
{
        struct follow_ctx *f = arg;
        f->r = request("GET", "/sw/api/v1/container/conker-example-app/logs?follow=1&tail=1", TOKEN, NULL,
                       0);
        return NULL;
}

static void test_logs_follow(void **state)
{
        const char *first = "{\"ts\":\"t\",\"stream\":\"stdout\",\"log\":\"old\\n\"}\n"
                            "{\"ts\":\"t\",\"stream\":\"stdout\",\"log\":\"last\\n\"}\n";
        const char *more = "{\"ts\":\"t\",\"stream\":\"stdout\",\"log\":\"new\\n\"}\n{\"ts\":\"t\",\"str";
        const char *rest = "eam\":\"stderr\",\"log\":\"split\\n\"}\n";
        _cleanup_close_ int fd = -1;
        struct follow_ctx f = {0};
        pthread_t th;
        char path[128];
        struct resp r;

        snprintf(path, sizeof(path), "%s/log.json", tmpdir);
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ck_write_all(fd, first, strlen(first)), 0);
        snprintf(script_log_path, sizeof(script_log_path), "%s", path);
        r = request("POST", "/sw/api/v1/container", TOKEN, seed, strlen(seed));
        expect(&r, 200, NULL);
        resp_clear(&r);
        task_manager_wait(g_m, "conker-example-app");

        assert_int_equal(pthread_create(&th, NULL, follow_main, &f), 0);
        usleep(400 * 1000);
        /* A line written in two pieces is sent once it is complete. */
        assert_int_equal(ck_write_all(fd, more, strlen(more)), 0);
        usleep(400 * 1000);
        assert_int_equal(ck_write_all(fd, rest, strlen(rest)), 0);
        usleep(400 * 1000);
        /* Deleting the task ends the stream. */
        assert_int_equal(task_manager_delete(g_m, "conker-example-app", NULL, NULL), 0);
        pthread_join(th, NULL);
        assert_int_equal(f.r.status, 200);
        assert_string_equal(f.r.raw, "last\nnew\nsplit\n");
        resp_clear(&f.r);
}

/* The file offset of our other open file description of path (not skip): how far the follower read. */
static off_t follower_pos(const char *path, int skip)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        off_t pos = -1;

        assert_non_null(d);
        while ((de = readdir(d))) {
                char link[300], target[256], info[300], line[128];
                ssize_t n;
                FILE *f;

                if (de->d_name[0] == '.' || strtol(de->d_name, NULL, 10) == skip)
                        continue;
                snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
                n = readlink(link, target, sizeof(target) - 1);
                if (n < 0)
                        continue;
                target[n] = 0;
                if (strcmp(target, path) != 0)
                        continue;
                snprintf(info, sizeof(info), "/proc/self/fdinfo/%s", de->d_name);
                f = fopen(info, "re");
                if (!f)
                        continue;
                while (fgets(line, sizeof(line), f))
                        if (strncmp(line, "pos:", 4) == 0)
                                pos = (off_t)strtoll(line + 4, NULL, 10);
                fclose(f);
        }
        closedir(d);
        return pos;
}

/* A follower that never reads: conkerd stops reading the log once LOG_BACKLOG_MAX is unsent,
 * instead of buffering everything the container writes. */
static void test_logs_follow_backpressure(void **state)
{
        static const char get[] =
                "GET /sw/api/v1/container/conker-example-app/logs?follow=1 HTTP/1.1\r\n"
                "Host: x\r\nAuthorization: Bearer 0123456789abcdef0123456789abcdef\r\n\r\n";
        _cleanup_close_ int fd = -1, sock = -1;
        _cleanup_free_ char *line = NULL;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        const size_t line_len = 1024, total = 20u << 20;
        int small = 4096;
        char path[128];
        struct resp r;
        off_t pos;

        snprintf(path, sizeof(path), "%s/log.json", tmpdir);
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        snprintf(script_log_path, sizeof(script_log_path), "%s", path);
        r = request("POST", "/sw/api/v1/container", TOKEN, seed, strlen(seed));
        expect(&r, 200, NULL);
        resp_clear(&r);
        task_manager_wait(g_m, "conker-example-app");

        sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(sock >= 0);
        assert_int_equal(setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        sa.sin_port = htons((uint16_t)api_server_port(api));
        assert_int_equal(connect(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(ck_write_all(sock, get, strlen(get)), 0);
        usleep(300 * 1000);

        line = malloc(line_len);
        assert_non_null(line);
        memset(line, 'x', line_len);
        memcpy(line, "{\"log\":\"", 8);
        memcpy(line + line_len - 3, "\"}\n", 3);
        for (size_t done = 0; done < total; done += line_len)
                assert_int_equal(ck_write_all(fd, line, line_len), 0);
        /* Without back-pressure 16 ticks of 1 MiB would have been read by now. */
        sleep(4);
        pos = follower_pos(path, fd);
        assert_true(pos >= 0);
        if (pos > (off_t)(12u << 20))
                fail_msg("the follower read %lld bytes for a client that reads nothing", (long long)pos);
        assert_int_equal(task_manager_delete(g_m, "conker-example-app", NULL, NULL), 0);
}

static void test_error_map(void **state)
{
        struct {
                int code, status;
        } t[] = {{-EINVAL, 400},   {-EBADMSG, 400}, {-ERANGE, 400}, {-EACCES, 400},
                 {-ENOENT, 404},   {-EEXIST, 409},  {-EBUSY, 409},  {-E2BIG, 413},
                 {-EMSGSIZE, 413}, {-EAGAIN, 503},  {-EIO, 500},    {-ENOMEM, 500}};

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_error_ struct ck_error *e = NULL;
                ck_error_set(&e, t[i].code, "detail /var/lib/conker/x");
                struct api_error_view v = api_error_map(t[i].code, e, "test");
                assert_int_equal(v.status, t[i].status);
                /* Internal details never reach the client of a 5xx. */
                if (v.status == 500)
                        assert_null(strstr(v.message, "detail"));
                else
                        assert_string_equal(v.message, "detail /var/lib/conker/x");
        }
}

static void test_token_file(void **state)
{
        _cleanup_(ck_secret_freep) struct ck_secret *a = NULL, *b = NULL, *c = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        char path[128], other[160];
        int fd;

        snprintf(path, sizeof(path), "%s/etc/token", tmpdir);
        assert_int_equal(api_token_load_or_create(path, &a, NULL), 0);
        assert_int_equal(a->len, 64);
        assert_int_equal(api_token_load_or_create(path, &b, NULL), 0);
        assert_true(ck_secret_equal(a, b->data, b->len));
        assert_int_equal(chmod(path, 0644), 0);
        assert_int_equal(api_token_load_or_create(path, &b, &e), -EPERM);
        assert_non_null(strstr(e->msg, "chmod 600"));
        /* Readable by the file's group is readable by someone else too. */
        ck_error_free(TAKE_PTR(e));
        assert_int_equal(chmod(path, 0640), 0);
        assert_int_equal(api_token_load_or_create(path, &b, &e), -EPERM);
        assert_int_equal(chmod(path, 0600), 0);
        /* A symbolic link is not followed, even to a good token file: whoever could plant it
         * would choose the token. */
        snprintf(other, sizeof(other), "%s/etc/token-link", tmpdir);
        assert_int_equal(symlink(path, other), 0);
        assert_true(api_token_load_or_create(other, &c, NULL) < 0);
        assert_null(c);
        /* A token short enough to guess is refused. */
        snprintf(other, sizeof(other), "%s/etc/token-short", tmpdir);
        fd = open(other, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ck_write_all(fd, "0123456789abcde\n", 16), 0);
        close(fd);
        ck_error_free(TAKE_PTR(e));
        assert_int_equal(api_token_load_or_create(other, &c, &e), -EINVAL);
        assert_non_null(strstr(e->msg, "fewer than 16"));
        assert_null(c);
        /* Mode 0600 is no protection when someone else owns the file: they can read and replace
         * the token that conkerd (root) honours. */
        assert_int_equal(chmod(path, 0600), 0);
        if (geteuid() == 0) {
                ck_error_free(TAKE_PTR(e));
                assert_int_equal(chown(path, 65534, 65534), 0);
                assert_int_equal(api_token_load_or_create(path, &b, &e), -EPERM);
                assert_non_null(strstr(e->msg, "owned by"));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_health_and_auth, setup, teardown),
                cmocka_unit_test_setup_teardown(test_routes_404_405, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_bodies, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_newest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_logs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_logs_large_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_logs_streamed_bounded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_logs_follow, setup, teardown),
                cmocka_unit_test_setup_teardown(test_logs_follow_backpressure, setup, teardown),
                cmocka_unit_test_setup_teardown(test_token_file, setup, teardown),
                cmocka_unit_test(test_error_map),
        };

        evthread_use_pthreads();
        curl_global_init(CURL_GLOBAL_DEFAULT);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
