/* struct task_image and its JSON form in the store ({"Id","Name","Entrypoint",…}). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "image-info.h"
#include "json.h"
#include "strv.h"

void task_image_clear(struct task_image *i)
{
        free(i->id);
        free(i->name);
        task_strv_free(i->entrypoint);
        task_strv_free(i->cmd);
        task_strv_free(i->env);
        task_strv_free(i->exposed_ports);
        task_strv_free(i->volumes);
        free(i->working_dir);
        free(i->user);
        free(i->stop_signal);
        *i = (struct task_image){0};
}

static json_t *str_or_null(const char *s)
{
        return s ? json_string(s) : json_null();
}

json_t *task_image_to_json(const struct task_image *i)
{
        return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:i}", "Id", str_or_null(i->id),
                         "Name", str_or_null(i->name), "Entrypoint", task_strv_to_json(i->entrypoint), "Cmd",
                         task_strv_to_json(i->cmd), "Env", task_strv_to_json(i->env), "ExposedPorts",
                         task_strv_to_json(i->exposed_ports), "Volumes", task_strv_to_json(i->volumes),
                         "WorkingDir", str_or_null(i->working_dir), "User", str_or_null(i->user),
                         "StopSignal", str_or_null(i->stop_signal), "Size", (json_int_t)i->size, "Layers",
                         (int)i->n_layers);
}

static int strv_from_json(json_t *a, char ***ret)
{
        json_t *v;
        size_t i;
        char **out;

        *ret = NULL;
        if (!a || json_array_size(a) == 0)
                return 0;
        out = calloc(json_array_size(a) + 1, sizeof(char *));
        if (!out)
                return -ENOMEM;
        json_array_foreach(a, i, v)
        {
                if (!json_is_string(v) || !(out[i] = strdup(json_string_value(v)))) {
                        task_strv_free(out);
                        return -EINVAL;
                }
        }
        *ret = out;
        return 0;
}

static int str_from_json(json_t *v, char **ret)
{
        *ret = NULL;
        if (!v || !json_is_string(v))
                return 0;
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

int task_image_from_json(const char *s, struct task_image *ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *j = NULL;
        struct task_image i = {0};
        int r;

        r = ck_json_loadb(s, strlen(s), 1u << 24, &j, reterr);
        if (r < 0)
                return r;
        if (!json_is_object(j))
                return ck_error_set(reterr, -EBADMSG, "stored image record is not an object");
        if ((r = str_from_json(json_object_get(j, "Id"), &i.id)) < 0 ||
            (r = str_from_json(json_object_get(j, "Name"), &i.name)) < 0 ||
            (r = strv_from_json(json_object_get(j, "Entrypoint"), &i.entrypoint)) < 0 ||
            (r = strv_from_json(json_object_get(j, "Cmd"), &i.cmd)) < 0 ||
            (r = strv_from_json(json_object_get(j, "Env"), &i.env)) < 0 ||
            (r = strv_from_json(json_object_get(j, "ExposedPorts"), &i.exposed_ports)) < 0 ||
            (r = strv_from_json(json_object_get(j, "Volumes"), &i.volumes)) < 0 ||
            (r = str_from_json(json_object_get(j, "WorkingDir"), &i.working_dir)) < 0 ||
            (r = str_from_json(json_object_get(j, "User"), &i.user)) < 0 ||
            (r = str_from_json(json_object_get(j, "StopSignal"), &i.stop_signal)) < 0) {
                task_image_clear(&i);
                return ck_error_set(reterr, r, "stored image record is malformed");
        }
        i.size = (uint64_t)json_integer_value(json_object_get(j, "Size"));
        i.n_layers = (unsigned)json_integer_value(json_object_get(j, "Layers"));
        *ret = i;
        return 0;
}
