/* String vector helpers shared by the task module's files (see strv.h). */
#include <stdlib.h>
#include <string.h>

#include "strv.h"

void task_strv_free(char **v)
{
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

char **task_strv_dup(char *const *v)
{
        size_t n = 0;
        char **out;

        if (!v)
                return NULL;
        while (v[n])
                n++;
        out = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; out && i < n; i++)
                if (!(out[i] = strdup(v[i]))) {
                        task_strv_free(out);
                        return NULL;
                }
        return out;
}

json_t *task_strv_to_json(char *const *v)
{
        json_t *a = json_array();

        for (size_t i = 0; a && v && v[i]; i++)
                if (json_array_append_new(a, json_string(v[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}
