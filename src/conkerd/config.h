/* conkerd's configuration: one table of keys (name, type, default, bounds, help) drives the
 * config file parser, the command-line flags and the generated conkerd.conf.example, so the
 * three can never disagree.
 *
 * The file is `key = value` per line; `#` starts a comment line; blank lines are ignored.
 * Parsing is strict: an unknown key, a malformed line, a value out of bounds or a repeated
 * single-valued key is an error naming the line. List keys (registry-mirror,
 * insecure-registry) may repeat. Flags (`--key VALUE`, `--key=VALUE`, `--[no-]key` for
 * booleans) are applied after the file and override it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

#define CONKERD_CONFIG_FILE_DEFAULT "/etc/conker/conkerd.conf"
#define CONKERD_CONFIG_FILE_MAX     (64u * 1024)
#define CONKERD_CONFIG_LINE_MAX     4096
#define CONKERD_CONFIG_LIST_MAX     64
#define CONKERD_TLS_CERT_AUTO       "auto"

struct conkerd_list {
        char **items; /* NULL-terminated, or NULL when empty */
        size_t n;
};

struct conkerd_config {
        char *listen;
        char *data_dir;
        char *run_dir;
        char *runtime;
        char *shim;
        char *tee;
        char *sim_dir;
        char *sim_state_dir;
        uint64_t kms_timeout;
        bool kms_allow_unpinned;
        char *kms_broker_reference_values;
        char *kms_broker_collateral;
        char *kms_broker_trust_root;
        char *token_file;
        bool auth;
        char *tls_cert;
        char *tls_key;
        bool insecure_http;
        bool insecure_storage;
        char *tls_client_ca;
        uint64_t published_port_min;
        uint64_t published_port_max;
        uint64_t max_body_size;
        uint64_t max_header_size;
        uint64_t max_connections;
        uint64_t http_timeout;
        uint64_t max_tasks;
        uint64_t pull_timeout;
        char *pull_policy;
        char *layer_format;
        uint64_t image_max_blob_size;
        uint64_t image_max_layer_size;
        uint64_t image_max_layer_entries;
        uint64_t image_max_ratio;
        struct conkerd_list registry_mirrors; /* "domain=endpoint" */
        struct conkerd_list insecure_registries;
        char *registry_ca_file;
        uint64_t stop_timeout;
        uint64_t container_pids_limit;   /* 0: none */
        uint64_t container_memory_limit; /* bytes, 0: none */
        char *bridge;
        char *subnet;
        char *nft_table;
        char *netns_dir;
        char *netns_prefix;
        uint64_t volume_backing_size;
        uint64_t log_max_bytes;
        uint64_t log_max_files;
        char *log_level;
};

/* Fills c with the table's defaults. */
int conkerd_config_init(struct conkerd_config *c, struct ck_error **reterr);
void conkerd_config_clear(struct conkerd_config *c);

/* Parses config file text (buf, len <= CONKERD_CONFIG_FILE_MAX); `origin` names it in errors. */
int conkerd_config_parse(struct conkerd_config *c, const char *buf, size_t len, const char *origin,
                         struct ck_error **reterr);
/* Reads and parses a file; a missing file is -ENOENT (the caller decides whether that is fine). */
int conkerd_config_load_file(struct conkerd_config *c, const char *path, struct ck_error **reterr);
/* Sets one key from its textual value, as a flag would. */
int conkerd_config_set(struct conkerd_config *c, const char *key, const char *value,
                       struct ck_error **reterr);
/* Checks relations between keys (port range order, TLS key without cert, ...). A listen address
 * that is not loopback without TLS is -EPERM unless insecure-http is on; the message names
 * --insecure-http and tls-cert = auto. */
int conkerd_config_check(const struct conkerd_config *c, struct ck_error **reterr);
/* tls-cert = auto: an RA-TLS server certificate made at start (docs/conkerd.md). */
bool conkerd_config_tls_auto(const struct conkerd_config *c);
/* Whether a HOST:PORT / [IPV6]:PORT listen address is a literal loopback address (127.0.0.0/8,
 * ::1, ::ffff:127.0.0.0/104). Names, wildcards and anything unparsable are not. */
bool conkerd_listen_is_loopback(const char *listen);

/* Parses argv (after argv[0]). Flags not in the table: --config FILE, --print-config-example,
 * --check-storage DIR (check_storage points into argv), --help, --version; they are reported
 * through the out-params. Returns 0, or -EINVAL with a
 * message on a bad flag. The config file is read before the other flags are applied. */
struct conkerd_args {
        const char *check_storage;
        bool print_example;
        bool help;
        bool version;
};
int conkerd_config_from_args(struct conkerd_config *c, int argc, char **argv, struct conkerd_args *ret_args,
                             struct ck_error **reterr);

/* The example file, generated from the table (malloc'd). */
char *conkerd_config_example(void);
void conkerd_config_usage(FILE *f);
