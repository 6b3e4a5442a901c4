/* The canonical task-config document and its digest (task-config.h). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "parse.h"
#include "ssl.h"
#include "task-config.h"

static json_t *strv_json(char *const *v, size_t n)
{
        _cleanup_json_ json_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(a, json_string(v[i])) < 0)
                        return NULL;
        return TAKE_PTR(a);
}

static json_t *ports_json(const struct task_request *req)
{
        _cleanup_json_ json_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < req->n_ports; i++)
                if (json_array_append_new(a, json_pack("{s:i,s:i}", "target", (int)req->ports[i].target,
                                                       "published", (int)req->ports[i].published)) < 0)
                        return NULL;
        return TAKE_PTR(a);
}

static json_t *mounts_json(const struct task_request *req)
{
        _cleanup_json_ json_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < req->n_mounts; i++) {
                const struct task_mount *m = &req->mounts[i];
                if (json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:b}", "type", "volume", "source",
                                                       m->source, "target", m->target, "rw", m->rw)) < 0)
                        return NULL;
        }
        return TAKE_PTR(a);
}

int task_config_document(const char *image_ref, const char *image_id, const struct task_request *req,
                         char **ret, size_t *ret_len, struct ck_error **reterr)
{
        _cleanup_json_ json_t *doc = NULL;
        char *s;
        size_t n;

        if (!image_ref || !image_id || !req)
                return ck_error_set(reterr, -EINVAL, "task-config: no image or request");
        /* json_pack's "o" steals the reference even on failure, and a NULL "o" fails the pack. */
        doc = json_pack("{s:i,s:s,s:s,s:o,s:o,s:o,s:o}", "version", TASK_CONFIG_VERSION, "image", image_ref,
                        "imageId", image_id, "env", strv_json(req->env, req->n_env), "ports",
                        ports_json(req), "mounts", mounts_json(req), "kmsEndpoints",
                        strv_json(req->kms, req->n_kms));
        if (!doc)
                return ck_error_set(reterr, -ENOMEM, "task-config: out of memory (or invalid UTF-8)");
        s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
        if (!s)
                return ck_error_set(reterr, -ENOMEM, "task-config: out of memory");
        n = strlen(s);
        if (n > TASK_CONFIG_MAX) {
                free(s);
                return ck_error_set(
                        reterr, -E2BIG,
                        "the task's configuration (image, Env, Ports, Mounts, KmsEndpoints) takes "
                        "%zu bytes in its canonical form, more than the %u that can be attested",
                        n, TASK_CONFIG_MAX);
        }
        *ret = s;
        *ret_len = n;
        return 0;
}

int task_config_digest(const char *doc, size_t len, char ret[TASK_CONFIG_DIGEST_LEN])
{
        uint8_t d[32];
        int r;

        r = ck_sha256(doc, len, d);
        if (r < 0)
                return r;
        memcpy(ret, "sha256:", 7);
        ck_hex_encode(d, sizeof(d), ret + 7);
        return 0;
}
