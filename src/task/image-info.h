/* JSON form of struct task_image (backend.h), as persisted in the tasks table. */
#pragma once

#include <jansson.h>

#include "backend.h"
#include "error.h"
#include "strv.h"

/* New reference, NULL on OOM. */
json_t *task_image_to_json(const struct task_image *i);
int task_image_from_json(const char *s, struct task_image *ret, struct ck_error **reterr);
