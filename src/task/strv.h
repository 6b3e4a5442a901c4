/* NULL-terminated string vectors ("char **") as the task module keeps them: env, cmd,
 * entrypoint, KMS endpoints. */
#pragma once

#include <jansson.h>

void task_strv_free(char **v);
/* A deep copy (NULL gives NULL); NULL on OOM too, so callers check v before. */
char **task_strv_dup(char *const *v);
/* ["a","b"] from v (NULL gives []); NULL on OOM. */
json_t *task_strv_to_json(char *const *v);
