/* The container request of POST /sw/api/v1/container (docs/design.md §1): parsing, validation
 * and the redacted JSON forms.
 *
 * Parsing is strict: unknown fields, wrong types and values out of bounds are rejected with a
 * message that names the field ("Ports[1].PublishedPort: 80 is outside 30000-65534"). The
 * registry password is held only as a ck_secret; it is never rendered by task_request_to_json(). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "secret.h"

#define TASK_NAME_MAX         64
#define TASK_PORTS_MAX        64
#define TASK_ENV_MAX          256
#define TASK_ENV_ENTRY_MAX    (32u * 1024)
#define TASK_ENV_TOTAL_MAX    (256u * 1024)
#define TASK_MOUNTS_MAX       32
#define TASK_MOUNT_TARGET_MAX 1024
#define TASK_VOLUME_NAME_MAX  128
#define TASK_KMS_MAX          16
#define TASK_KMS_ENDPOINT_MAX 512
#define TASK_USERNAME_MAX     256
#define TASK_PASSWORD_MAX     4096

struct task_port {
        uint16_t target;
        uint16_t published;
};

struct task_mount {
        char *source; /* volume name */
        char *target; /* absolute, clean path in the container */
        bool rw;
};

struct task_request {
        char *name; /* NULL when the client gave none (the task manager picks one) */
        char *image;
        char *username;             /* NULL = anonymous */
        struct ck_secret *password; /* NULL when none; never persisted or rendered */
        struct task_port *ports;
        size_t n_ports;
        char **env; /* NULL-terminated, n_env entries */
        size_t n_env;
        struct task_mount *mounts;
        size_t n_mounts;
        char **kms; /* NULL-terminated, n_kms entries */
        size_t n_kms;
};

struct task_request_limits {
        uint16_t port_min, port_max; /* allowed PublishedPort range */
};

/* Parses and validates a request document of len bytes (len <= max). Errors are -EBADMSG
 * (not JSON), -EINVAL/-ERANGE (a field is wrong), -E2BIG (over max). */
int task_request_parse(const void *buf, size_t len, size_t max, const struct task_request_limits *lim,
                       struct task_request *ret, struct ck_error **reterr);
/* The same from an already loaded document (used when reloading the persisted form). */
int task_request_from_json(json_t *doc, const struct task_request_limits *lim, struct task_request *ret,
                           struct ck_error **reterr);
void task_request_clear(struct task_request *r);

enum task_redact {
        TASK_REDACT_MASK, /* "Password":"******" when a password was given: for responses */
        TASK_REDACT_OMIT, /* no Password field at all: for the store */
};
/* The request in the API's field names, with the password redacted. NULL on OOM. */
json_t *task_request_to_json(const struct task_request *r, enum task_redact how);

/* Single-field validators, exposed for the CLI and the tests. */
bool task_name_valid(const char *s);
bool task_volume_name_valid(const char *s);
bool task_env_entry_valid(const char *s, size_t len);
/* Checks an absolute, clean container path that is not /secret or below it. */
int task_mount_target_check(const char *s, struct ck_error **reterr);
/* host:port[#sha256:<64 hex>], host a DNS name, IPv4 address or [IPv6] address. */
int task_kms_endpoint_check(const char *s, struct ck_error **reterr);
