/* Parsing of the task-config document (task-config.h): bounded, strict, version 1 only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "parse.h"
#include "ssl.h"
#include "task-config.h"

void broker_task_config_free(struct broker_task_config *c)
{
        if (!c)
                return;
        free(c->image);
        for (size_t i = 0; i < c->n_env; i++)
                free(c->env[i]);
        free(c->env);
        free(c->ports);
        for (size_t i = 0; i < c->n_mounts; i++) {
                free(c->mounts[i].type);
                free(c->mounts[i].source);
                free(c->mounts[i].target);
        }
        free(c->mounts);
        for (size_t i = 0; i < c->n_kms_endpoints; i++)
                free(c->kms_endpoints[i]);
        free(c->kms_endpoints);
        free(c);
}

size_t broker_env_key_len(const char *entry)
{
        return strcspn(entry, "=");
}

int broker_task_config_digest(const uint8_t *buf, size_t len, char ret[7 + 64 + 1])
{
        uint8_t d[32];

        if (ck_sha256(buf, len, d) < 0)
                return -EIO;
        memcpy(ret, "sha256:", 7);
        ck_hex_encode(d, sizeof(d), ret + 7);
        return 0;
}

static int check_keys(json_t *o, const char *const *keys, size_t n, const char *what,
                      struct ck_error **reterr)
{
        const char *k;
        json_t *v;

        json_object_foreach(o, k, v)
        {
                size_t i;
                for (i = 0; i < n; i++)
                        if (strcmp(k, keys[i]) == 0)
                                break;
                if (i == n)
                        return ck_error_set(reterr, -EBADMSG, "task-config: %s: unknown key \"%.64s\"", what,
                                            k);
        }
        return 0;
}

/* A string without NUL bytes (jansson allows them inside strings). */
static int dup_string(json_t *v, const char *what, size_t idx, char **ret, struct ck_error **reterr)
{
        char *s;

        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                return ck_error_set(reterr, -EBADMSG, "task-config: %s[%zu] must be a string", what, idx);
        s = strdup(json_string_value(v));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int string_array(json_t *root, const char *key, size_t max, char ***ret, size_t *ret_n,
                        struct ck_error **reterr)
{
        json_t *arr = json_object_get(root, key), *v;
        size_t i;
        int r;

        if (!arr)
                return 0;
        if (!json_is_array(arr) || json_array_size(arr) > max)
                return ck_error_set(reterr, -EBADMSG,
                                    "task-config: \"%s\" must be an array of at most %zu strings", key, max);
        *ret = calloc(json_array_size(arr) + 1, sizeof(char *));
        if (!*ret)
                return -ENOMEM;
        json_array_foreach(arr, i, v)
        {
                r = dup_string(v, key, i, &(*ret)[i], reterr);
                if (r < 0)
                        return r;
                (*ret_n)++;
        }
        return 0;
}

static int parse_ports(json_t *root, struct broker_task_config *c, struct ck_error **reterr)
{
        static const char *const keys[] = {"target", "published"};
        json_t *arr = json_object_get(root, "ports"), *v;
        size_t i;

        if (!arr)
                return 0;
        if (!json_is_array(arr) || json_array_size(arr) > BROKER_TASK_CONFIG_MAX_PORTS)
                return ck_error_set(reterr, -EBADMSG,
                                    "task-config: \"ports\" must be an array of at most %u",
                                    BROKER_TASK_CONFIG_MAX_PORTS);
        c->ports = calloc(json_array_size(arr) + 1, sizeof(*c->ports));
        if (!c->ports)
                return -ENOMEM;
        json_array_foreach(arr, i, v)
        {
                json_t *t, *p;
                char what[32];
                int r;

                snprintf(what, sizeof(what), "ports[%zu]", i);
                if (!json_is_object(v))
                        return ck_error_set(reterr, -EBADMSG, "task-config: %s must be an object", what);
                r = check_keys(v, keys, ELEMENTSOF(keys), what, reterr);
                if (r < 0)
                        return r;
                t = json_object_get(v, "target");
                p = json_object_get(v, "published");
                if (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > 65535 ||
                    (p &&
                     (!json_is_integer(p) || json_integer_value(p) < 0 || json_integer_value(p) > 65535)))
                        return ck_error_set(reterr, -EBADMSG,
                                            "task-config: %s: \"target\" must be 1-65535 and \"published\" "
                                            "0-65535",
                                            what);
                c->ports[i] = (struct broker_tc_port){.target = (uint16_t)json_integer_value(t),
                                                      .published = p ? (uint16_t)json_integer_value(p) : 0};
                c->n_ports++;
        }
        return 0;
}

static int parse_mounts(json_t *root, struct broker_task_config *c, struct ck_error **reterr)
{
        static const char *const keys[] = {"type", "source", "target", "rw"};
        json_t *arr = json_object_get(root, "mounts"), *v;
        size_t i;

        if (!arr)
                return 0;
        if (!json_is_array(arr) || json_array_size(arr) > BROKER_TASK_CONFIG_MAX_MOUNTS)
                return ck_error_set(reterr, -EBADMSG,
                                    "task-config: \"mounts\" must be an array of at most %u",
                                    BROKER_TASK_CONFIG_MAX_MOUNTS);
        c->mounts = calloc(json_array_size(arr) + 1, sizeof(*c->mounts));
        if (!c->mounts)
                return -ENOMEM;
        json_array_foreach(arr, i, v)
        {
                struct broker_tc_mount *m = &c->mounts[i];
                json_t *rw, *src;
                char what[32];
                int r;

                snprintf(what, sizeof(what), "mounts[%zu]", i);
                if (!json_is_object(v))
                        return ck_error_set(reterr, -EBADMSG, "task-config: %s must be an object", what);
                r = check_keys(v, keys, ELEMENTSOF(keys), what, reterr);
                if (r < 0)
                        return r;
                c->n_mounts++; /* from here on m's strings are freed with c */
                src = json_object_get(v, "source");
                rw = json_object_get(v, "rw");
                if (rw && !json_is_boolean(rw))
                        return ck_error_set(reterr, -EBADMSG, "task-config: %s: \"rw\" must be a boolean",
                                            what);
                m->rw = json_is_true(rw);
                r = dup_string(json_object_get(v, "type"), what, 0, &m->type, reterr);
                if (r >= 0)
                        r = dup_string(json_object_get(v, "target"), what, 0, &m->target, reterr);
                if (r >= 0)
                        r = src ? dup_string(src, what, 0, &m->source, reterr)
                                : ((m->source = strdup("")) ? 0 : -ENOMEM);
                if (r < 0)
                        return r;
        }
        return 0;
}

int broker_task_config_parse(const uint8_t *buf, size_t len, struct broker_task_config **ret,
                             struct ck_error **reterr)
{
        static const char *const keys[] = {"version", "image",  "imageId",     "env",
                                           "ports",   "mounts", "kmsEndpoints"};
        _cleanup_(broker_task_config_freep) struct broker_task_config *c = NULL;
        _cleanup_json_ json_t *root = NULL;
        json_t *v;
        const char *id;
        int r;

        if (!buf)
                return ck_error_set(reterr, -EBADMSG, "task-config: no document");
        r = ck_json_loadb(buf, len, BROKER_TASK_CONFIG_MAX_BYTES, &root, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, -EBADMSG, "task-config");
        if (!json_is_object(root))
                return ck_error_set(reterr, -EBADMSG, "task-config: must be a JSON object");
        r = check_keys(root, keys, ELEMENTSOF(keys), "document", reterr);
        if (r < 0)
                return r;
        v = json_object_get(root, "version");
        if (!json_is_integer(v) || json_integer_value(v) != 1)
                return ck_error_set(reterr, -EBADMSG, "task-config: \"version\" must be 1");
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        r = dup_string(json_object_get(root, "image"), "image", 0, &c->image, reterr);
        if (r < 0)
                return r;
        v = json_object_get(root, "imageId");
        id = json_is_string(v) ? json_string_value(v) : NULL;
        if (!id || json_string_length(v) != 71 || memcmp(id, "sha256:", 7) != 0)
                return ck_error_set(reterr, -EBADMSG, "task-config: \"imageId\" must be sha256:<64 hex>");
        for (size_t i = 7; i < 71; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return ck_error_set(reterr, -EBADMSG,
                                            "task-config: \"imageId\" must be sha256:<64 lower-case hex>");
        memcpy(c->image_id, id, 72);
        r = string_array(root, "env", BROKER_TASK_CONFIG_MAX_ENV, &c->env, &c->n_env, reterr);
        if (r < 0)
                return r;
        r = parse_ports(root, c, reterr);
        if (r < 0)
                return r;
        r = parse_mounts(root, c, reterr);
        if (r < 0)
                return r;
        r = string_array(root, "kmsEndpoints", BROKER_TASK_CONFIG_MAX_KMS, &c->kms_endpoints,
                         &c->n_kms_endpoints, reterr);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}
