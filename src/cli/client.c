/* conkerd client over libcurl (see client.h). */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attest.h"
#include "buf.h"
#include "client.h"
#include "commands.h"
#include "curl.h"
#include "fs.h"
#include "json.h"

void cli_client_init(struct cli_client *c)
{
        *c = (struct cli_client){.host = CLI_HOST_DEFAULT, .token_file = CLI_TOKEN_FILE_DEFAULT};
}

int cli_client_option(struct cli_client *c, int ch, const char *arg)
{
        switch (ch) {
        case CLI_OPT_HOST:
                c->host = arg;
                return 1;
        case CLI_OPT_TOKEN_FILE:
                c->token_file = arg;
                return 1;
        case CLI_OPT_CA_FILE:
                c->ca_file = arg;
                return 1;
        case CLI_OPT_JSON:
                c->json = true;
                return 1;
        default:
                return 0;
        }
}

void cli_client_clear(struct cli_client *c)
{
        ck_secret_free(c->token);
        c->token = NULL;
}

/* A missing token file is fine (conkerd may run with --no-auth); the server says 401 if not. */
static int load_token(struct cli_client *c, struct ck_error **reterr)
{
        uint8_t *data = NULL;
        size_t len = 0, n;
        int r;

        if (c->token || !c->token_file || !*c->token_file)
                return 0;
        r = ck_read_file(c->token_file, 4096, &data, &len, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read the token file %s (use --token-file)",
                                      c->token_file);
        n = len;
        while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r' || data[n - 1] == ' '))
                n--;
        c->token = ck_secret_new(data, n);
        OPENSSL_cleanse(data, len);
        free(data);
        return c->token ? 0 : -ENOMEM;
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
        return ck_buf_append(ud, p, size * n) < 0 ? 0 : size * n;
}

struct stream_ctx {
        size_t (*fn)(char *, size_t, size_t, void *);
        void *ud;
        long status; /* known once the first body byte arrives */
        CURL *curl;
        struct ck_buf err; /* the body of an error response */
};

static size_t stream_cb(char *p, size_t size, size_t n, void *ud)
{
        struct stream_ctx *s = ud;

        if (!s->status)
                curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
        if (s->status / 100 != 2)
                return collect(p, size, n, &s->err);
        return s->fn(p, size, n, s->ud);
}

static int perform(struct cli_client *c, const char *method, const char *path, const char *body,
                   size_t body_len, size_t (*write_fn)(char *, size_t, size_t, void *), void *write_ud,
                   bool stream, long *ret_status, struct ck_error **reterr)
{
        /* Declared before curl: its TLS callbacks point at it until curl is cleaned up. */
        _cleanup_(cli_attest_conn_freep) struct cli_attest_conn *att = NULL;
        _cleanup_(curl_easy_cleanupp) CURL *curl = NULL;
        _cleanup_(curl_slist_free_allp) struct curl_slist *h = NULL;
        _cleanup_free_ char *url = NULL;
        char *auth = NULL;
        CURLcode cc;
        long status = 0;
        int r;

        r = load_token(c, reterr);
        if (r < 0)
                return r;
        if (ck_curl_global_init() < 0)
                return ck_error_set(reterr, -EIO, "cannot initialise libcurl");
        curl = curl_easy_init();
        if (!curl || asprintf(&url, "%s%s", c->host, path) < 0)
                return -ENOMEM;
        /* --attest: conkerd proves what it is on this connection before the token goes out. */
        if (cli_attest_enabled()) {
                r = cli_attest_connect(curl, c->host, &att, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "refusing to send anything to conkerd at %s",
                                               c->host);
        }
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_fn);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, write_ud);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
        if (!stream)
                curl_easy_setopt(curl, CURLOPT_TIMEOUT, 600L);
        if (c->ca_file && !att)
                curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_file);
        if (c->token) {
                size_t n = strlen("Authorization: Bearer ") + c->token->len + 1;
                auth = malloc(n);
                if (!auth)
                        return -ENOMEM;
                snprintf(auth, n, "Authorization: Bearer %s", (const char *)c->token->data);
                h = curl_slist_append(h, auth);
                OPENSSL_cleanse(auth, n);
                free(auth);
        }
        h = curl_slist_append(h, "Expect:");
        if (body) {
                h = curl_slist_append(h, "Content-Type: application/json");
                curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
        }
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
        if (stream)
                ((struct stream_ctx *)write_ud)->curl = curl;
        cc = curl_easy_perform(curl);
        /* The header list held the token: wipe it before libcurl frees it. */
        for (struct curl_slist *l = h; l; l = l->next)
                OPENSSL_cleanse(l->data, strlen(l->data));
        if (cc != CURLE_OK && cc != CURLE_WRITE_ERROR && cli_attest_conn_key_changed(att))
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "conkerd at %s presented another key than the one attested: refused",
                                    c->host);
        if (cc != CURLE_OK && cc != CURLE_WRITE_ERROR)
                return ck_error_set(reterr, -EIO, "cannot reach conkerd at %s: %s", c->host,
                                    curl_easy_strerror(cc));
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        *ret_status = status;
        return 0;
}

int cli_request(struct cli_client *c, const char *method, const char *path, const char *body,
                size_t body_len, long *ret_status, json_t **ret_env, struct ck_error **reterr)
{
        _cleanup_buf_ struct ck_buf b;
        json_t *env = NULL;
        long status = 0;
        int r;

        ck_buf_init(&b, CLI_RESPONSE_MAX);
        r = perform(c, method, path, body, body_len, collect, &b, false, &status, reterr);
        if (r < 0)
                return r;
        (void)ck_json_loadb(b.data, b.len, CLI_RESPONSE_MAX, &env, NULL);
        *ret_status = status;
        *ret_env = env;
        return 0;
}

static int envelope_error(long status, json_t *env, struct ck_error **reterr)
{
        const char *msg = json_string_value(json_object_get(env, "message"));
        int code = status == 404 ? -ENOENT : status == 409 ? -EBUSY : status == 401 ? -EACCES : -EIO;

        if (status == 401)
                return ck_error_set(reterr, code, "%s (check --token-file)", msg ? msg : "unauthorized");
        return ck_error_set(reterr, code, "%s (HTTP %ld)", msg ? msg : "unexpected response", status);
}

int cli_call(struct cli_client *c, const char *method, const char *path, const char *body, size_t body_len,
             json_t **ret_data, struct ck_error **reterr)
{
        _cleanup_json_ json_t *env = NULL;
        long status = 0;
        int r;

        r = cli_request(c, method, path, body, body_len, &status, &env, reterr);
        if (r < 0)
                return r;
        if (status / 100 != 2 || !json_is_object(env))
                return envelope_error(status, env, reterr);
        if (ret_data)
                *ret_data = json_incref(json_object_get(env, "data"));
        return 0;
}

int cli_stream(struct cli_client *c, const char *path, size_t (*fn)(char *, size_t, size_t, void *),
               void *ud, struct ck_error **reterr)
{
        struct stream_ctx s = {.fn = fn, .ud = ud};
        _cleanup_json_ json_t *env = NULL;
        long status = 0;
        int r;

        ck_buf_init(&s.err, 1 << 20);
        r = perform(c, "GET", path, NULL, 0, stream_cb, &s, true, &status, reterr);
        if (r >= 0 && status / 100 != 2) {
                (void)ck_json_loadb(s.err.data, s.err.len, 1 << 20, &env, NULL);
                r = envelope_error(status, env, reterr);
        }
        ck_buf_free(&s.err);
        return r;
}

char *cli_task_path(const char *ref, const char *suffix)
{
        char *esc = curl_easy_escape(NULL, ref, 0);
        char *p = NULL;

        if (esc && asprintf(&p, "/sw/api/v1/container/%s%s", esc, suffix ? suffix : "") < 0)
                p = NULL;
        curl_free(esc);
        return p;
}

void cli_print_json(json_t *data)
{
        char *s = json_dumps(data, JSON_INDENT(4) | JSON_ENCODE_ANY);

        if (s) {
                puts(s);
                free(s);
        }
}

void cli_print_id(json_t *data, bool json)
{
        if (json)
                cli_print_json(data);
        else
                printf("%s\n", json_string_value(json_object_get(data, "Id")));
}

int cli_task_command(int argc, char **argv, const char *name, const char *method, const char *suffix,
                     void (*print)(json_t *data, bool json))
{
        static const struct option opts[] = {
                {"help", no_argument, NULL, 'h'},
                CLI_COMMON_OPTIONS,
                {0},
        };
        _cleanup_json_ json_t *data = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *path = NULL;
        struct cli_client c;
        int ch, r;

        cli_client_init(&c);
        optind = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (cli_client_option(&c, ch, optarg))
                        continue;
                fprintf(ch == 'h' ? stdout : stderr, "usage: conker %s TASK\n\n" CLI_COMMON_HELP, name);
                return ch == 'h' ? 0 : 2;
        }
        if (optind != argc - 1) {
                fprintf(stderr, "usage: conker %s TASK\n", name);
                return 2;
        }
        path = cli_task_path(argv[optind], suffix);
        r = path ? cli_call(&c, method, path, NULL, 0, &data, &e) : -ENOMEM;
        cli_client_clear(&c);
        if (r < 0)
                return cli_fail(name, r, e);
        print(data, c.json);
        return 0;
}

int cli_password_read_stdin(struct ck_secret **ret, struct ck_error **reterr)
{
        uint8_t buf[CLI_PASSWORD_MAX + 1];
        size_t len = 0;
        int r = 0;

        while (len < sizeof(buf)) {
                ssize_t n = read(STDIN_FILENO, buf + len, sizeof(buf) - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = ck_error_errno(reterr, -errno, "cannot read the password from stdin");
                        goto out;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (len > CLI_PASSWORD_MAX) {
                r = ck_error_set(reterr, -EMSGSIZE, "password on stdin is longer than %d bytes",
                                 CLI_PASSWORD_MAX);
                goto out;
        }
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
                len--;
        if (len == 0) {
                r = ck_error_set(reterr, -EINVAL, "empty password on stdin");
                goto out;
        }
        *ret = ck_secret_new(buf, len);
        if (!*ret)
                r = ck_error_set(reterr, -ENOMEM, "out of memory");
out:
        OPENSSL_cleanse(buf, sizeof(buf));
        return r;
}
