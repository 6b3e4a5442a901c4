/* jansson glue. */
#include <errno.h>
#include <string.h>

#include "json.h"

int ck_json_loadb(const void *buf, size_t len, size_t max, json_t **ret, struct ck_error **reterr)
{
        json_error_t je;
        char *near;
        json_t *j;

        if (len > max)
                return ck_error_set(reterr, -E2BIG, "JSON document of %zu bytes is over the %zu-byte limit",
                                    len, max);
        j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
        if (!j) {
                /* jansson quotes the token it stopped at ("... near '\"hunter2'"): that may be a
                 * password or a token from the document, and this message reaches clients and
                 * logs. The position is enough to find the fault. */
                near = strstr(je.text, " near '");
                if (near)
                        *near = 0;
                return ck_error_set(reterr, -EBADMSG, "malformed JSON at line %d column %d: %s", je.line,
                                    je.column, je.text);
        }
        *ret = j;
        return 0;
}

static int get_typed(json_t *obj, const char *key, json_type t, const char *tname, json_t **ret,
                     struct ck_error **reterr)
{
        json_t *v;

        if (!json_is_object(obj))
                return ck_error_set(reterr, -EINVAL, "expected an object around \"%s\"", key);
        v = json_object_get(obj, key);
        if (!v)
                return -ENOENT;
        if (json_typeof(v) != t)
                return ck_error_set(reterr, -EINVAL, "\"%s\" must be %s", key, tname);
        *ret = v;
        return 0;
}

int ck_json_get_string(json_t *obj, const char *key, const char **ret, struct ck_error **reterr)
{
        json_t *v = NULL;
        int r = get_typed(obj, key, JSON_STRING, "a string", &v, reterr);

        if (r < 0)
                return r;
        /* A JSON string may hold \u0000 (documents are loaded with JSON_ALLOW_NUL, as a secret
         * may); a C string cannot: what a caller checked would be only the part before it. */
        if (strlen(json_string_value(v)) != json_string_length(v))
                return ck_error_set(reterr, -EINVAL, "\"%s\" contains a NUL byte", key);
        *ret = json_string_value(v);
        return 0;
}

int ck_json_get_uint(json_t *obj, const char *key, uint64_t max, uint64_t *ret, struct ck_error **reterr)
{
        json_t *v = NULL;
        int r = get_typed(obj, key, JSON_INTEGER, "an integer", &v, reterr);
        json_int_t i;

        if (r < 0)
                return r;
        i = json_integer_value(v);
        if (i < 0 || (uint64_t)i > max)
                return ck_error_set(reterr, -ERANGE, "\"%s\" must be between 0 and %llu", key,
                                    (unsigned long long)max);
        *ret = (uint64_t)i;
        return 0;
}

int ck_json_get_bool(json_t *obj, const char *key, bool *ret, struct ck_error **reterr)
{
        json_t *v;

        if (!json_is_object(obj))
                return ck_error_set(reterr, -EINVAL, "expected an object around \"%s\"", key);
        v = json_object_get(obj, key);
        if (!v)
                return -ENOENT;
        if (!json_is_boolean(v))
                return ck_error_set(reterr, -EINVAL, "\"%s\" must be true or false", key);
        *ret = json_is_true(v);
        return 0;
}

int ck_json_get_array(json_t *obj, const char *key, json_t **ret, struct ck_error **reterr)
{
        return get_typed(obj, key, JSON_ARRAY, "an array", ret, reterr);
}

int ck_json_get_object(json_t *obj, const char *key, json_t **ret, struct ck_error **reterr)
{
        return get_typed(obj, key, JSON_OBJECT, "an object", ret, reterr);
}

char *ck_json_dump(const json_t *j)
{
        return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
}
