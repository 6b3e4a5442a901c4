/* Parsing and validation of container requests; see request.h for the rules. Every rule that
 * can be checked without looking at other tasks or the host lives here, so it is unit-tested
 * in isolation; conflicts with other tasks and host ports are checked by the task manager. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "parse.h"
#include "request.h"
#include "strv.h"

static bool in_set(char ch, const char *set)
{
        return ch && strchr(set, ch);
}

#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

static bool name_valid(const char *s, size_t max)
{
        size_t n = strlen(s);

        if (n == 0 || n > max || !in_set(s[0], ALNUM))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!in_set(s[i], ALNUM "_.-"))
                        return false;
        return true;
}

bool task_name_valid(const char *s)
{
        return name_valid(s, TASK_NAME_MAX);
}

bool task_volume_name_valid(const char *s)
{
        return name_valid(s, TASK_VOLUME_NAME_MAX);
}

bool task_env_entry_valid(const char *s, size_t len)
{
        const char *eq = memchr(s, '=', len);

        if (!eq || eq == s || len > TASK_ENV_ENTRY_MAX)
                return false;
        if (!in_set(s[0], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"))
                return false;
        for (const char *p = s + 1; p < eq; p++)
                if (!in_set(*p, ALNUM "_"))
                        return false;
        /* The value may hold anything a process environment can, except what would split or
         * truncate it. */
        for (const char *p = eq + 1; p < s + len; p++)
                if (*p == 0 || *p == '\n' || *p == '\r')
                        return false;
        return true;
}

int task_mount_target_check(const char *s, struct ck_error **reterr)
{
        size_t n = strlen(s);

        if (n == 0 || s[0] != '/')
                return ck_error_set(reterr, -EINVAL, "must be an absolute path");
        if (n > TASK_MOUNT_TARGET_MAX)
                return ck_error_set(reterr, -EINVAL, "longer than %u bytes", TASK_MOUNT_TARGET_MAX);
        if (n == 1)
                return ck_error_set(reterr, -EINVAL, "cannot mount a volume over /");
        if (!ck_is_printable(s, n))
                return ck_error_set(reterr, -EINVAL, "contains control characters");
        if (s[n - 1] == '/')
                return ck_error_set(reterr, -EINVAL, "must not end with /");
        for (const char *c = s; c && *c;) {
                const char *next = strchr(c + 1, '/');
                size_t len = next ? (size_t)(next - c - 1) : strlen(c + 1);
                if (len == 0 || (len == 1 && c[1] == '.') || (len == 2 && c[1] == '.' && c[2] == '.'))
                        return ck_error_set(reterr, -EINVAL,
                                            "must be a clean path (no empty, . or .. components)");
                c = next;
        }
        if (strcmp(s, "/secret") == 0 || ck_startswith(s, "/secret/"))
                return ck_error_set(reterr, -EINVAL, "/secret is reserved for released secrets");
        return 0;
}

static bool hostname_valid(const char *s, size_t n)
{
        size_t label = 0;

        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (!in_set(s[i], ALNUM "-") || (label == 0 && s[i] == '-') || ++label > 63)
                        return false;
        }
        return label > 0 && s[n - 1] != '-';
}

int task_kms_endpoint_check(const char *s, struct ck_error **reterr)
{
        const char *hash = strchr(s, '#'), *end = hash ? hash : s + strlen(s), *colon, *host = s;
        size_t host_len;
        uint64_t port;
        char addr[64];

        if ((size_t)(end - s) > TASK_KMS_ENDPOINT_MAX)
                return ck_error_set(reterr, -EINVAL, "longer than %u bytes", TASK_KMS_ENDPOINT_MAX);
        colon = memrchr(s, ':', (size_t)(end - s));
        if (!colon)
                return ck_error_set(reterr, -EINVAL, "must be host:port");
        if (ck_parse_u64(colon + 1, (size_t)(end - colon - 1), 65535, &port) < 0 || port == 0)
                return ck_error_set(reterr, -EINVAL, "port must be a number between 1 and 65535");
        host_len = (size_t)(colon - s);
        if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
                struct in6_addr a6;
                if (host_len - 2 >= sizeof(addr))
                        return ck_error_set(reterr, -EINVAL, "invalid IPv6 address");
                memcpy(addr, host + 1, host_len - 2);
                addr[host_len - 2] = 0;
                if (inet_pton(AF_INET6, addr, &a6) != 1)
                        return ck_error_set(reterr, -EINVAL, "invalid IPv6 address");
        } else if (!hostname_valid(host, host_len)) {
                return ck_error_set(reterr, -EINVAL, "host must be a DNS name, an IPv4 address or [IPv6]");
        }
        if (hash) {
                const char *fp = hash + 1;
                uint8_t raw[32];
                if (!ck_startswith(fp, "sha256:") || strlen(fp + 7) != 64 ||
                    strspn(fp + 7, "0123456789abcdef") != 64 || ck_hex_decode(fp + 7, 64, raw, 32) < 0)
                        return ck_error_set(reterr, -EINVAL,
                                            "certificate pin must be #sha256:<64 lower-case hex digits>");
        }
        return 0;
}

/* Rejects keys of obj that are not in allowed (NULL-terminated), naming the first. */
static int check_keys(json_t *obj, const char *where, const char *const *allowed, struct ck_error **reterr)
{
        const char *key;
        json_t *v;

        json_object_foreach(obj, key, v)
        {
                bool ok = false;
                for (size_t i = 0; allowed[i]; i++)
                        ok = ok || strcmp(key, allowed[i]) == 0;
                if (!ok)
                        return ck_error_set(reterr, -EINVAL, "%s%sunknown field \"%s\"", where,
                                            *where ? ": " : "", key);
        }
        return 0;
}

/* Optional field: absent or null is fine (returns 0 with *ret NULL). */
static int get_opt(json_t *obj, const char *key, json_type t, const char *where, const char *tname,
                   json_t **ret, struct ck_error **reterr)
{
        json_t *v = json_object_get(obj, key);

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (json_typeof(v) != t)
                return ck_error_set(reterr, -EINVAL, "%s%s must be %s", where, key, tname);
        *ret = v;
        return 0;
}

static int dup_string(json_t *v, size_t max, const char *field, char **ret, struct ck_error **reterr)
{
        size_t n = json_string_length(v);
        const char *s = json_string_value(v);

        if (n > max)
                return ck_error_set(reterr, -EINVAL, "%s is longer than %zu bytes", field, max);
        if (strlen(s) != n)
                return ck_error_set(reterr, -EINVAL, "%s contains a NUL byte", field);
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int parse_image(json_t *doc, struct task_request *r, struct ck_error **reterr)
{
        static const char *const image_keys[] = {"ImageName", "RegisterAuthInfo", NULL};
        static const char *const auth_keys[] = {"Username", "Password", NULL};
        json_t *info = NULL, *name = NULL, *auth = NULL, *user = NULL, *pass = NULL;
        int q;

        q = get_opt(doc, "ImageInfo", JSON_OBJECT, "", "an object", &info, reterr);
        if (q < 0)
                return q;
        if (!info)
                return ck_error_set(reterr, -EINVAL, "ImageInfo is required");
        q = check_keys(info, "ImageInfo", image_keys, reterr);
        if (q < 0)
                return q;
        q = get_opt(info, "ImageName", JSON_STRING, "ImageInfo.", "a string", &name, reterr);
        if (q < 0)
                return q;
        if (!name || json_string_length(name) == 0)
                return ck_error_set(reterr, -EINVAL, "ImageInfo.ImageName is required");
        q = dup_string(name, 4096, "ImageInfo.ImageName", &r->image, reterr);
        if (q < 0)
                return q;
        if (!ck_is_printable(r->image, strlen(r->image)))
                return ck_error_set(reterr, -EINVAL, "ImageInfo.ImageName contains control characters");

        q = get_opt(info, "RegisterAuthInfo", JSON_OBJECT, "ImageInfo.", "an object", &auth, reterr);
        if (q < 0 || !auth)
                return q;
        q = check_keys(auth, "ImageInfo.RegisterAuthInfo", auth_keys, reterr);
        if (q < 0)
                return q;
        q = get_opt(auth, "Username", JSON_STRING, "ImageInfo.RegisterAuthInfo.", "a string", &user, reterr);
        if (q < 0)
                return q;
        q = get_opt(auth, "Password", JSON_STRING, "ImageInfo.RegisterAuthInfo.", "a string", &pass, reterr);
        if (q < 0)
                return q;
        /* An empty username means anonymous, as the seed's clients send it. */
        if (user && json_string_length(user) > 0) {
                q = dup_string(user, TASK_USERNAME_MAX, "ImageInfo.RegisterAuthInfo.Username", &r->username,
                               reterr);
                if (q < 0)
                        return q;
                if (!ck_is_printable(r->username, strlen(r->username)) || strchr(r->username, ':'))
                        return ck_error_set(
                                reterr, -EINVAL,
                                "ImageInfo.RegisterAuthInfo.Username must be printable and have no ':'");
        }
        if (pass && json_string_length(pass) > 0) {
                size_t n = json_string_length(pass);
                if (n > TASK_PASSWORD_MAX)
                        return ck_error_set(reterr, -EINVAL,
                                            "ImageInfo.RegisterAuthInfo.Password is longer than %u bytes",
                                            TASK_PASSWORD_MAX);
                if (memchr(json_string_value(pass), 0, n))
                        return ck_error_set(reterr, -EINVAL,
                                            "ImageInfo.RegisterAuthInfo.Password contains a NUL byte");
                r->password = ck_secret_new(json_string_value(pass), n);
                /* The parsed document is ours and dies after parsing: wipe its copy now, as
                 * jansson frees strings without clearing them. */
                OPENSSL_cleanse((char *)json_string_value(pass), n);
                if (!r->password)
                        return -ENOMEM;
        }
        if (r->password && !r->username)
                return ck_error_set(reterr, -EINVAL,
                                    "ImageInfo.RegisterAuthInfo: a Password needs a Username");
        return 0;
}

static int get_port(json_t *p, const char *key, size_t i, uint64_t lo, uint64_t hi, uint16_t *ret,
                    struct ck_error **reterr)
{
        json_t *v = json_object_get(p, key);

        if (!v)
                return ck_error_set(reterr, -EINVAL, "Ports[%zu].%s is required", i, key);
        if (!json_is_integer(v))
                return ck_error_set(reterr, -EINVAL, "Ports[%zu].%s must be an integer", i, key);
        if (json_integer_value(v) < (json_int_t)lo || json_integer_value(v) > (json_int_t)hi)
                return ck_error_set(reterr, -ERANGE,
                                    "Ports[%zu].%s: %lld is outside the allowed range %llu-%llu", i, key,
                                    (long long)json_integer_value(v), (unsigned long long)lo,
                                    (unsigned long long)hi);
        *ret = (uint16_t)json_integer_value(v);
        return 0;
}

static int parse_ports(json_t *doc, const struct task_request_limits *lim, struct task_request *r,
                       struct ck_error **reterr)
{
        static const char *const port_keys[] = {"TargetPort", "PublishedPort", NULL};
        json_t *arr = NULL, *p;
        size_t i;
        int q;

        q = get_opt(doc, "Ports", JSON_ARRAY, "", "an array", &arr, reterr);
        if (q < 0 || !arr || json_array_size(arr) == 0)
                return q;
        if (json_array_size(arr) > TASK_PORTS_MAX)
                return ck_error_set(reterr, -EINVAL, "Ports: more than %u entries", TASK_PORTS_MAX);
        r->ports = calloc(json_array_size(arr), sizeof(*r->ports));
        if (!r->ports)
                return -ENOMEM;
        json_array_foreach(arr, i, p)
        {
                char where[32];
                struct task_port tp = {0};

                snprintf(where, sizeof(where), "Ports[%zu]", i);
                if (!json_is_object(p))
                        return ck_error_set(reterr, -EINVAL, "%s must be an object", where);
                q = check_keys(p, where, port_keys, reterr);
                if (q < 0)
                        return q;
                q = get_port(p, "TargetPort", i, 1, 65535, &tp.target, reterr);
                if (q < 0)
                        return q;
                q = get_port(p, "PublishedPort", i, lim->port_min, lim->port_max, &tp.published, reterr);
                if (q < 0)
                        return q;
                for (size_t j = 0; j < r->n_ports; j++)
                        if (r->ports[j].published == tp.published)
                                return ck_error_set(reterr, -EINVAL,
                                                    "Ports[%zu].PublishedPort: %u is published twice", i,
                                                    tp.published);
                r->ports[r->n_ports++] = tp;
        }
        return 0;
}

static int parse_string_array(json_t *doc, const char *key, size_t max_n, char ***ret, size_t *ret_n,
                              struct ck_error **reterr)
{
        json_t *arr = NULL, *v;
        size_t i;
        int q;

        q = get_opt(doc, key, JSON_ARRAY, "", "an array of strings", &arr, reterr);
        if (q < 0 || !arr || json_array_size(arr) == 0)
                return q;
        if (json_array_size(arr) > max_n)
                return ck_error_set(reterr, -EINVAL, "%s: more than %zu entries", key, max_n);
        *ret = calloc(json_array_size(arr) + 1, sizeof(char *));
        if (!*ret)
                return -ENOMEM;
        json_array_foreach(arr, i, v)
        {
                char field[48];
                if (!json_is_string(v))
                        return ck_error_set(reterr, -EINVAL, "%s[%zu] must be a string", key, i);
                snprintf(field, sizeof(field), "%s[%zu]", key, i);
                q = dup_string(v, TASK_ENV_ENTRY_MAX, field, &(*ret)[i], reterr);
                if (q < 0)
                        return q;
                (*ret_n)++;
        }
        return 0;
}

static int parse_env(json_t *doc, struct task_request *r, struct ck_error **reterr)
{
        size_t total = 0;
        int q = parse_string_array(doc, "Env", TASK_ENV_MAX, &r->env, &r->n_env, reterr);

        if (q < 0)
                return q;
        for (size_t i = 0; i < r->n_env; i++) {
                size_t n = strlen(r->env[i]);
                /* The key is printed, the value is not: env values may be secrets. */
                if (!task_env_entry_valid(r->env[i], n)) {
                        const char *eq = strchr(r->env[i], '=');
                        return ck_error_set(
                                reterr, -EINVAL,
                                "Env[%zu] must be KEY=VALUE with KEY of letters, digits and _ (not "
                                "starting with a digit) and no newline in VALUE%s",
                                i, eq ? "" : " (no '=' found)");
                }
                total += n;
                for (size_t j = 0; j < i; j++) {
                        size_t kl = (size_t)(strchr(r->env[i], '=') - r->env[i]);
                        if (strncmp(r->env[j], r->env[i], kl + 1) == 0)
                                return ck_error_set(reterr, -EINVAL, "Env[%zu]: %.*s is set twice", i,
                                                    (int)kl, r->env[i]);
                }
        }
        if (total > TASK_ENV_TOTAL_MAX)
                return ck_error_set(reterr, -EINVAL, "Env: more than %u bytes in total", TASK_ENV_TOTAL_MAX);
        return 0;
}

static int parse_mounts(json_t *doc, struct task_request *r, struct ck_error **reterr)
{
        static const char *const mount_keys[] = {"Type", "Target", "Source", "RW", NULL};
        json_t *arr = NULL, *m;
        size_t i;
        int q;

        q = get_opt(doc, "Mounts", JSON_ARRAY, "", "an array", &arr, reterr);
        if (q < 0 || !arr || json_array_size(arr) == 0)
                return q;
        if (json_array_size(arr) > TASK_MOUNTS_MAX)
                return ck_error_set(reterr, -EINVAL, "Mounts: more than %u entries", TASK_MOUNTS_MAX);
        r->mounts = calloc(json_array_size(arr), sizeof(*r->mounts));
        if (!r->mounts)
                return -ENOMEM;
        json_array_foreach(arr, i, m)
        {
                char where[40];
                json_t *type = NULL, *target = NULL, *source = NULL, *rw = NULL;
                struct task_mount *tm = &r->mounts[r->n_mounts];
                _cleanup_error_ struct ck_error *e = NULL;

                snprintf(where, sizeof(where), "Mounts[%zu].", i);
                if (!json_is_object(m))
                        return ck_error_set(reterr, -EINVAL, "Mounts[%zu] must be an object", i);
                q = check_keys(m, where, mount_keys, reterr);
                if (q < 0)
                        return q;
                if ((q = get_opt(m, "Type", JSON_STRING, where, "a string", &type, reterr)) < 0 ||
                    (q = get_opt(m, "Target", JSON_STRING, where, "a string", &target, reterr)) < 0 ||
                    (q = get_opt(m, "Source", JSON_STRING, where, "a string", &source, reterr)) < 0)
                        return q;
                rw = json_object_get(m, "RW");
                if (rw && !json_is_boolean(rw) && !json_is_null(rw))
                        return ck_error_set(reterr, -EINVAL, "%sRW must be true or false", where);
                if (!type || strcmp(json_string_value(type), "volume") != 0)
                        return ck_error_set(reterr, -EINVAL,
                                            "%sType must be \"volume\" (bind mounts are not allowed)",
                                            where);
                if (!target)
                        return ck_error_set(reterr, -EINVAL, "%sTarget is required", where);
                if (!source)
                        return ck_error_set(reterr, -EINVAL, "%sSource is required", where);
                /* Counted before its strings are filled, so a failure below frees them. */
                r->n_mounts++;
                q = dup_string(target, TASK_MOUNT_TARGET_MAX, "Mounts[].Target", &tm->target, reterr);
                if (q < 0)
                        return q;
                q = dup_string(source, TASK_VOLUME_NAME_MAX, "Mounts[].Source", &tm->source, reterr);
                if (q < 0)
                        return q;
                tm->rw = !rw || json_is_null(rw) || json_is_true(rw);
                q = task_mount_target_check(tm->target, &e);
                if (q < 0)
                        return ck_error_set(reterr, q, "%sTarget \"%s\": %s", where, tm->target,
                                            ck_error_message(e, q));
                if (!task_volume_name_valid(tm->source))
                        return ck_error_set(
                                reterr, -EINVAL,
                                "%sSource must be a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]{0,127})", where);
                for (size_t j = 0; j + 1 < r->n_mounts; j++)
                        if (strcmp(r->mounts[j].target, tm->target) == 0)
                                return ck_error_set(reterr, -EINVAL, "%sTarget \"%s\" is mounted twice",
                                                    where, tm->target);
        }
        return 0;
}

static int parse_kms(json_t *doc, struct task_request *r, struct ck_error **reterr)
{
        int q = parse_string_array(doc, "KmsEndpoints", TASK_KMS_MAX, &r->kms, &r->n_kms, reterr);

        if (q < 0)
                return q;
        for (size_t i = 0; i < r->n_kms; i++) {
                _cleanup_error_ struct ck_error *e = NULL;
                q = task_kms_endpoint_check(r->kms[i], &e);
                if (q < 0)
                        return ck_error_set(reterr, q, "KmsEndpoints[%zu]: %s", i, ck_error_message(e, q));
                /* Compared without the certificate pin: the secret file is named after host:port
                 * alone, so "h:1" and "h:1#sha256:…" would write the same file. */
                size_t n = strcspn(r->kms[i], "#");
                for (size_t j = 0; j < i; j++)
                        if (strcspn(r->kms[j], "#") == n && memcmp(r->kms[i], r->kms[j], n) == 0)
                                return ck_error_set(reterr, -EINVAL, "KmsEndpoints[%zu] is listed twice", i);
        }
        return 0;
}

int task_request_from_json(json_t *doc, const struct task_request_limits *lim, struct task_request *ret,
                           struct ck_error **reterr)
{
        static const char *const top_keys[] = {"Name",   "ImageInfo",    "Ports", "Env",
                                               "Mounts", "KmsEndpoints", NULL};
        struct task_request r = {0};
        json_t *name = NULL;
        int q;

        if (!json_is_object(doc))
                return ck_error_set(reterr, -EINVAL, "the request must be a JSON object");
        q = check_keys(doc, "", top_keys, reterr);
        if (q < 0)
                goto fail;
        q = get_opt(doc, "Name", JSON_STRING, "", "a string", &name, reterr);
        if (q < 0)
                goto fail;
        if (name) {
                if (!task_name_valid(json_string_value(name))) {
                        q = ck_error_set(reterr, -EINVAL, "Name must match [a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}");
                        goto fail;
                }
                r.name = strdup(json_string_value(name));
                if (!r.name) {
                        q = -ENOMEM;
                        goto fail;
                }
        }
        if ((q = parse_image(doc, &r, reterr)) < 0 || (q = parse_ports(doc, lim, &r, reterr)) < 0 ||
            (q = parse_env(doc, &r, reterr)) < 0 || (q = parse_mounts(doc, &r, reterr)) < 0 ||
            (q = parse_kms(doc, &r, reterr)) < 0)
                goto fail;
        *ret = r;
        return 0;
fail:
        task_request_clear(&r);
        return q;
}

int task_request_parse(const void *buf, size_t len, size_t max, const struct task_request_limits *lim,
                       struct task_request *ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *doc = NULL;
        int q;

        q = ck_json_loadb(buf, len, max, &doc, reterr);
        if (q < 0)
                return q;
        return task_request_from_json(doc, lim, ret, reterr);
}

void task_request_clear(struct task_request *r)
{
        free(r->name);
        free(r->image);
        free(r->username);
        ck_secret_free(r->password);
        free(r->ports);
        task_strv_free(r->env);
        for (size_t i = 0; i < r->n_mounts; i++) {
                free(r->mounts[i].source);
                free(r->mounts[i].target);
        }
        free(r->mounts);
        task_strv_free(r->kms);
        *r = (struct task_request){0};
}

json_t *task_request_to_json(const struct task_request *r, enum task_redact how)
{
        _cleanup_json_ json_t *doc = json_object(), *info = json_object(), *ports = json_array(),
                              *mounts = json_array();
        int q = 0;

        if (!doc || !info || !ports || !mounts)
                return NULL;
        /* Responses always carry Name, "" when the client gave none (as the seed's document). */
        if (r->name || how == TASK_REDACT_MASK)
                q |= json_object_set_new(doc, "Name", json_string(r->name ? r->name : ""));
        q |= json_object_set_new(info, "ImageName", json_string(r->image));
        if (how == TASK_REDACT_MASK) {
                /* The seed's shape: RegisterAuthInfo always, with both strings. The password shows
                 * as "******" whenever a username was given, so a response does not even tell
                 * whether a password came with it. */
                q |= json_object_set_new(info, "RegisterAuthInfo",
                                         json_pack("{s:s,s:s}", "Username", r->username ? r->username : "",
                                                   "Password", r->username ? "******" : ""));
        } else if (r->username) {
                q |= json_object_set_new(info, "RegisterAuthInfo",
                                         json_pack("{s:s}", "Username", r->username));
        }
        q |= json_object_set(doc, "ImageInfo", info);
        for (size_t i = 0; i < r->n_ports; i++)
                q |= json_array_append_new(ports,
                                           json_pack("{s:i,s:i}", "TargetPort", (int)r->ports[i].target,
                                                     "PublishedPort", (int)r->ports[i].published));
        q |= json_object_set(doc, "Ports", ports);
        q |= json_object_set_new(doc, "Env", task_strv_to_json(r->env));
        for (size_t i = 0; i < r->n_mounts; i++) {
                json_t *mnt = json_pack("{s:s,s:s,s:s,s:b}", "Type", "volume", "Target", r->mounts[i].target,
                                        "Source", r->mounts[i].source, "RW", r->mounts[i].rw);
                /* Responses also carry Docker's ReadOnly, which the seed's document uses. */
                if (mnt && how == TASK_REDACT_MASK)
                        q |= json_object_set_new(mnt, "ReadOnly", json_boolean(!r->mounts[i].rw));
                q |= json_array_append_new(mounts, mnt);
        }
        q |= json_object_set(doc, "Mounts", mounts);
        q |= json_object_set_new(doc, "KmsEndpoints", task_strv_to_json(r->kms));
        if (q)
                return NULL;
        return TAKE_PTR(doc);
}
