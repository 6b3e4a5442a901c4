/* The task-config document as the broker reads it: the canonical JSON that conkerd measures into
 * RTMR3 (event "task-config", payload "sha256:<hex of the document bytes>") and sends as the
 * RA-TLS claim "task-config". It says what the host could otherwise change about a task: the
 * image reference and ID, Env, Ports, Mounts and KmsEndpoints (never credentials).
 *
 * Version 1 (docs/rtmr3-event-log.md):
 *   {"env":["K=V",...],"image":"docker.io/...","imageId":"sha256:<64 hex>",
 *    "kmsEndpoints":["host:port#sha256:...",...],
 *    "mounts":[{"rw":true,"source":"vol","target":"/inner","type":"volume"},...],
 *    "ports":[{"published":30001,"target":8080},...],"version":1}
 * Unknown keys are refused: a field the policy cannot judge must not pass unseen. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define BROKER_TASK_CONFIG_MAX_BYTES  (64u * 1024u)
#define BROKER_TASK_CONFIG_MAX_ENV    1024u
#define BROKER_TASK_CONFIG_MAX_PORTS  256u
#define BROKER_TASK_CONFIG_MAX_MOUNTS 256u
#define BROKER_TASK_CONFIG_MAX_KMS    64u

struct broker_tc_port {
        uint16_t target;    /* 1..65535 */
        uint16_t published; /* 0 = not published */
};

struct broker_tc_mount {
        char *type;
        char *source; /* "" when absent */
        char *target;
        bool rw;
};

struct broker_task_config {
        char *image;
        char image_id[7 + 64 + 1]; /* "sha256:" + lower-case hex */
        char **env;                /* "KEY=VALUE" or "KEY" */
        size_t n_env;
        struct broker_tc_port *ports;
        size_t n_ports;
        struct broker_tc_mount *mounts;
        size_t n_mounts;
        char **kms_endpoints;
        size_t n_kms_endpoints;
};

/* Parses a version-1 document of at most BROKER_TASK_CONFIG_MAX_BYTES. Free with
 * broker_task_config_free(). */
int broker_task_config_parse(const uint8_t *buf, size_t len, struct broker_task_config **ret,
                             struct ck_error **reterr);
void broker_task_config_free(struct broker_task_config *c);
DEFINE_POINTER_CLEANUP(struct broker_task_config, broker_task_config_free, broker_task_config_free)

/* "sha256:<hex>" of the document bytes: the payload of its RTMR3 event. */
int broker_task_config_digest(const uint8_t *buf, size_t len, char ret[7 + 64 + 1]);

/* The length of the key of an Env entry: up to the first '=', or all of it. */
size_t broker_env_key_len(const char *entry);
