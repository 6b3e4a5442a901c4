/* The pull helper's messages (fetch-proto.h): JSON payloads behind a type byte, bounded and
 * checked field by field on the way in. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fetch-proto.h"
#include "json.h"
#include "parse.h"

static const char *const phases[] = {"resolving", "downloading", "unpacking", "done"};

void fetch_request_clear(struct fetch_request *r)
{
        free(r->ref);
        free(r->data_dir);
        free(r->username);
        free(r->ca_file);
        free(r->layer_format);
        free(r->log_level);
        for (size_t i = 0; i < r->n_mirrors; i++) {
                free(r->mirror_domains[i]);
                free(r->mirror_endpoints[i]);
        }
        free(r->mirror_domains);
        free(r->mirror_endpoints);
        for (char **s = r->insecure; s && *s; s++)
                free(*s);
        free(r->insecure);
        *r = (struct fetch_request){0};
}

void fetch_result_clear(struct fetch_result *r)
{
        free(r->id);
        free(r->name);
        free(r->message);
        *r = (struct fetch_result){0};
}

/* Appends the dump of j behind the type byte. */
static int encode(char type, json_t *j, uint8_t **ret, size_t *ret_len)
{
        _cleanup_free_ char *s = NULL;
        uint8_t *m;
        size_t n;

        if (!j)
                return -ENOMEM;
        s = ck_json_dump(j);
        json_decref(j);
        if (!s)
                return -ENOMEM;
        n = strlen(s);
        if (n + 1 > FETCH_MSG_MAX)
                return -EMSGSIZE;
        m = malloc(n + 1);
        if (!m)
                return -ENOMEM;
        m[0] = (uint8_t)type;
        memcpy(m + 1, s, n);
        *ret = m;
        *ret_len = n + 1;
        return 0;
}

static int set_str(json_t *o, const char *key, const char *v)
{
        if (!v)
                return 0;
        return json_object_set_new(o, key, json_string(v)) < 0 ? -ENOMEM : 0;
}

static int set_u64(json_t *o, const char *key, uint64_t v)
{
        return json_object_set_new(o, key, json_integer((json_int_t)v)) < 0 ? -ENOMEM : 0;
}

int fetch_request_encode(const struct fetch_request *r, uint8_t **ret, size_t *ret_len)
{
        json_t *o = json_object(), *mirrors = json_array(), *insecure = json_array();
        int q = 0;

        if (!o || !mirrors || !insecure) {
                json_decref(o);
                json_decref(mirrors);
                json_decref(insecure);
                return -ENOMEM;
        }
        for (size_t i = 0; q == 0 && i < r->n_mirrors; i++) {
                json_t *m = json_pack("{ssss}", "domain", r->mirror_domains[i], "endpoint",
                                      r->mirror_endpoints[i]);
                q = json_array_append_new(mirrors, m) < 0 ? -ENOMEM : 0;
        }
        for (char **s = r->insecure; q == 0 && s && *s; s++)
                q = json_array_append_new(insecure, json_string(*s)) < 0 ? -ENOMEM : 0;
        if (json_object_set_new(o, "mirrors", mirrors) < 0 ||
            json_object_set_new(o, "insecure", insecure) < 0)
                q = -ENOMEM;
        if (q == 0)
                q = set_str(o, "ref", r->ref) ?: set_str(o, "data_dir", r->data_dir) ?:
                    set_str(o, "username", r->username) ?: set_str(o, "ca_file", r->ca_file) ?:
                    set_str(o, "layer_format", r->layer_format) ?: set_str(o, "log_level", r->log_level) ?:
                    set_u64(o, "max_blob_size", r->max_blob_size) ?:
                    set_u64(o, "max_layer_unpacked", r->max_layer_unpacked) ?:
                    set_u64(o, "max_layer_entries", r->max_layer_entries) ?:
                    set_u64(o, "max_ratio", r->max_ratio);
        if (q < 0) {
                json_decref(o);
                return q;
        }
        return encode(FETCH_MSG_REQUEST, o, ret, ret_len);
}

int fetch_progress_encode(const struct fetch_progress *p, uint8_t **ret, size_t *ret_len)
{
        return encode(FETCH_MSG_PROGRESS,
                      json_pack("{sssIsIsIsI}", "phase", p->phase, "done", (json_int_t)p->done_bytes,
                                "total", (json_int_t)p->total_bytes, "layers_done",
                                (json_int_t)p->layers_done, "layers_total", (json_int_t)p->layers_total),
                      ret, ret_len);
}

int fetch_result_encode(const struct fetch_result *r, uint8_t **ret, size_t *ret_len)
{
        json_t *o = json_pack("{sIsI}", "errno", (json_int_t)(r->err < 0 ? -r->err : 0), "pulled",
                              (json_int_t)r->pulled_bytes);

        if (o && (set_str(o, "id", r->id) < 0 || set_str(o, "name", r->name) < 0 ||
                  set_str(o, "message", r->message) < 0)) {
                json_decref(o);
                return -ENOMEM;
        }
        return encode(FETCH_MSG_RESULT, o, ret, ret_len);
}

/* A string field (required or optional), copied; max bounds its length, and a non-zero max
 * also rejects an empty string. */
static int get_str(json_t *o, const char *key, bool required, size_t max, char **ret,
                   struct ck_error **reterr)
{
        const char *s = NULL;
        int q = ck_json_get_string(o, key, &s, reterr);

        if (q == -ENOENT && !required)
                return 0;
        if (q == -ENOENT)
                return ck_error_set(reterr, -EINVAL, "missing \"%s\"", key);
        if (q < 0)
                return q;
        if (strlen(s) > max || (max > 0 && s[0] == 0))
                return ck_error_set(reterr, -EINVAL, "\"%s\" is empty or too long", key);
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int get_strv(json_t *o, const char *key, size_t max_n, char ***ret, size_t *ret_n,
                    struct ck_error **reterr)
{
        json_t *a = NULL, *v;
        size_t i, n;
        char **l;
        int q = ck_json_get_array(o, key, &a, reterr);

        if (q < 0)
                return q;
        n = json_array_size(a);
        if (n > max_n)
                return ck_error_set(reterr, -EINVAL, "\"%s\" has more than %zu entries", key, max_n);
        l = calloc(n + 1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        *ret = l;
        json_array_foreach(a, i, v)
        {
                if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 1024)
                        return ck_error_set(reterr, -EINVAL, "\"%s\" holds a bad entry", key);
                l[i] = strdup(json_string_value(v));
                if (!l[i])
                        return -ENOMEM;
        }
        if (ret_n)
                *ret_n = n;
        return 0;
}

static int decode_request(json_t *o, struct fetch_request *r, struct ck_error **reterr)
{
        json_t *a = NULL, *v;
        size_t i;
        int q;

        q = get_str(o, "ref", true, 1024, &r->ref, reterr) ?:
            get_str(o, "data_dir", true, 4096, &r->data_dir, reterr) ?:
            get_str(o, "username", false, 1024, &r->username, reterr) ?:
            get_str(o, "ca_file", false, 4096, &r->ca_file, reterr) ?:
            get_str(o, "layer_format", true, 16, &r->layer_format, reterr) ?:
            get_str(o, "log_level", false, 16, &r->log_level, reterr) ?:
            ck_json_get_uint(o, "max_blob_size", UINT64_MAX >> 1, &r->max_blob_size, reterr) ?:
            ck_json_get_uint(o, "max_layer_unpacked", UINT64_MAX >> 1, &r->max_layer_unpacked, reterr) ?:
            ck_json_get_uint(o, "max_layer_entries", UINT64_MAX >> 1, &r->max_layer_entries, reterr) ?:
            ck_json_get_uint(o, "max_ratio", UINT64_MAX >> 1, &r->max_ratio, reterr) ?:
            get_strv(o, "insecure", FETCH_INSECURE_MAX, &r->insecure, NULL, reterr) ?:
            ck_json_get_array(o, "mirrors", &a, reterr);
        if (q < 0)
                return q;
        if (json_array_size(a) > FETCH_MIRRORS_MAX)
                return ck_error_set(reterr, -EINVAL, "more than %u mirrors", FETCH_MIRRORS_MAX);
        r->mirror_domains = calloc(json_array_size(a) + 1, sizeof(char *));
        r->mirror_endpoints = calloc(json_array_size(a) + 1, sizeof(char *));
        if (!r->mirror_domains || !r->mirror_endpoints)
                return -ENOMEM;
        json_array_foreach(a, i, v)
        {
                if (!json_is_object(v))
                        return ck_error_set(reterr, -EINVAL, "a mirror is not an object");
                /* Both of a pair before counting it, so that clear() frees what was set. */
                q = get_str(v, "domain", true, 1024, &r->mirror_domains[i], reterr);
                if (q == 0)
                        q = get_str(v, "endpoint", true, 1024, &r->mirror_endpoints[i], reterr);
                r->n_mirrors = i + 1;
                if (q < 0)
                        return q;
        }
        return 0;
}

int fetch_request_decode(const uint8_t *buf, size_t len, struct fetch_request *ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *o = NULL;
        struct fetch_request r = {0};
        int q;

        q = ck_json_loadb(buf, len, FETCH_MSG_MAX, &o, reterr);
        if (q >= 0 && !json_is_object(o))
                q = ck_error_set(reterr, -EINVAL, "not an object");
        if (q >= 0)
                q = decode_request(o, &r, reterr);
        if (q < 0) {
                fetch_request_clear(&r);
                return ck_error_prefix(reterr, q, "pull request");
        }
        *ret = r;
        return 0;
}

int fetch_progress_decode(const uint8_t *buf, size_t len, struct fetch_progress *ret,
                          struct ck_error **reterr)
{
        _cleanup_json_ json_t *o = NULL;
        const char *phase = NULL;
        uint64_t done = 0, total = 0, ld = 0, lt = 0;
        struct fetch_progress p = {0};
        int q;

        q = ck_json_loadb(buf, len, 4096, &o, reterr);
        if (q >= 0 && !json_is_object(o))
                q = ck_error_set(reterr, -EINVAL, "not an object");
        if (q >= 0)
                q = ck_json_get_string(o, "phase", &phase, reterr) ?:
                    ck_json_get_uint(o, "done", UINT64_MAX >> 1, &done, reterr) ?:
                    ck_json_get_uint(o, "total", UINT64_MAX >> 1, &total, reterr) ?:
                    ck_json_get_uint(o, "layers_done", 1u << 20, &ld, reterr) ?:
                    ck_json_get_uint(o, "layers_total", 1u << 20, &lt, reterr);
        if (q < 0)
                return ck_error_prefix(reterr, q, "pull progress");
        for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
                if (strcmp(phase, phases[i]) == 0)
                        p.phase = phases[i];
        if (!p.phase)
                return ck_error_set(reterr, -EINVAL, "pull progress: unknown phase");
        p.done_bytes = done;
        p.total_bytes = total;
        p.layers_done = (unsigned)ld;
        p.layers_total = (unsigned)lt;
        *ret = p;
        return 0;
}

int fetch_result_decode(const uint8_t *buf, size_t len, struct fetch_result *ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *o = NULL;
        struct fetch_result r = {0};
        uint64_t e = 0;
        int q;

        q = ck_json_loadb(buf, len, FETCH_MSG_MAX, &o, reterr);
        if (q >= 0 && !json_is_object(o))
                q = ck_error_set(reterr, -EINVAL, "not an object");
        if (q >= 0)
                q = ck_json_get_uint(o, "errno", 4095, &e, reterr) ?:
                    ck_json_get_uint(o, "pulled", UINT64_MAX >> 1, &r.pulled_bytes, reterr) ?:
                    get_str(o, "id", e == 0, 200, &r.id, reterr) ?:
                    get_str(o, "name", e == 0, 1024, &r.name, reterr) ?:
                    get_str(o, "message", e != 0, FETCH_ERROR_MSG_MAX, &r.message, reterr);
        if (q >= 0 &&
            ((e == 0) != (r.message == NULL) || (e != 0) != (r.id == NULL) || (e != 0) != (r.name == NULL)))
                q = ck_error_set(reterr, -EINVAL, "an id with an error or neither");
        if (q >= 0 &&
            (r.message ? !ck_is_printable(r.message, strlen(r.message))
                       : !ck_is_printable(r.id, strlen(r.id)) || !ck_is_printable(r.name, strlen(r.name))))
                q = ck_error_set(reterr, -EINVAL, "unprintable text");
        if (q < 0) {
                fetch_result_clear(&r);
                return ck_error_prefix(reterr, q, "pull result");
        }
        r.err = -(int)e;
        *ret = r;
        return 0;
}

int fetch_probe_encode(const char *data_dir, uint8_t **ret, size_t *ret_len)
{
        return encode(FETCH_MSG_PROBE, json_pack("{ss}", "data_dir", data_dir), ret, ret_len);
}

int fetch_probe_decode(const uint8_t *buf, size_t len, char **ret_data_dir, struct ck_error **reterr)
{
        _cleanup_json_ json_t *o = NULL;
        int q;

        q = ck_json_loadb(buf, len, 8192, &o, reterr);
        if (q >= 0 && !json_is_object(o))
                q = ck_error_set(reterr, -EINVAL, "not an object");
        if (q >= 0)
                q = get_str(o, "data_dir", true, 4096, ret_data_dir, reterr);
        return q < 0 ? ck_error_prefix(reterr, q, "probe request") : 0;
}

int fetch_format_encode(const char *format, uint8_t **ret, size_t *ret_len)
{
        return encode(FETCH_MSG_FORMAT, json_pack("{ss}", "layer_format", format), ret, ret_len);
}

int fetch_format_decode(const uint8_t *buf, size_t len, const char **ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *o = NULL;
        const char *f = NULL;
        int q;

        q = ck_json_loadb(buf, len, 1024, &o, reterr);
        if (q >= 0 && !json_is_object(o))
                q = ck_error_set(reterr, -EINVAL, "not an object");
        if (q >= 0)
                q = ck_json_get_string(o, "layer_format", &f, reterr);
        if (q < 0)
                return ck_error_prefix(reterr, q, "probe answer");
        if (strcmp(f, "erofs") == 0)
                *ret = "erofs";
        else if (strcmp(f, "dir") == 0)
                *ret = "dir";
        else
                return ck_error_set(reterr, -EINVAL, "probe answer: unknown layer format");
        return 0;
}

int fetch_msg_send(int fd, char type, const void *payload, size_t len)
{
        struct iovec iov[2] = {{&type, 1}, {(void *)payload, len}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len > 0 ? 2 : 1};
        ssize_t n;

        if (len >= FETCH_MSG_MAX)
                return -EMSGSIZE;
        do
                n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        return (size_t)n == len + 1 ? 0 : -EIO;
}

int fetch_msg_recv(int fd, uint8_t *buf, char *ret_type, size_t *ret_len)
{
        struct iovec iov = {buf, FETCH_MSG_MAX};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

        if (n < 0)
                return -errno;
        if (n == 0) {
                *ret_type = 0;
                *ret_len = 0;
                return 0;
        }
        if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
                return -EMSGSIZE;
        *ret_type = (char)buf[0];
        *ret_len = (size_t)n - 1;
        memmove(buf, buf + 1, *ret_len);
        return 1;
}
