/* The conkerd client used by the task commands (run, ps, inspect, logs, events, cancel, rm):
 * common options, the API token, and HTTP through libcurl with the response envelope parsed.
 *
 * The token is read from a file (never from argv or the environment), kept in a ck_secret and
 * only placed in the Authorization header. */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "secret.h"

#define CLI_HOST_DEFAULT       "http://127.0.0.1:8383"
#define CLI_TOKEN_FILE_DEFAULT "/etc/conker/token"
#define CLI_RESPONSE_MAX       (64u << 20)
#define CLI_PASSWORD_MAX       4096

struct cli_client {
        const char *host;
        const char *token_file;
        const char *ca_file; /* for https hosts with a private CA */
        bool json;
        struct ck_secret *token;
};

/* getopt_long codes of the common options; commands put CLI_COMMON_OPTIONS in their table and
 * pass unknown codes to cli_client_option(). */
enum {
        CLI_OPT_HOST = 0x1000,
        CLI_OPT_TOKEN_FILE,
        CLI_OPT_CA_FILE,
        CLI_OPT_JSON,
};
#define CLI_COMMON_OPTIONS                                                                                  \
        {"host", required_argument, NULL, CLI_OPT_HOST},                                                    \
                {"token-file", required_argument, NULL, CLI_OPT_TOKEN_FILE},                                \
                {"ca-file", required_argument, NULL, CLI_OPT_CA_FILE},                                      \
        {                                                                                                   \
                "json", no_argument, NULL, CLI_OPT_JSON                                                     \
        }
#define CLI_COMMON_HELP                                                                                     \
        "  --host URL          conkerd address [" CLI_HOST_DEFAULT "]\n"                                    \
        "  --token-file PATH   API token file [" CLI_TOKEN_FILE_DEFAULT "]\n"                               \
        "  --ca-file PATH      CA bundle for an https host\n"                                               \
        "  --json              machine-readable output\n"

void cli_client_init(struct cli_client *c);
/* Returns 1 when ch was a common option (consumed), 0 otherwise. */
int cli_client_option(struct cli_client *c, int ch, const char *arg);
void cli_client_clear(struct cli_client *c);

/* One request. *ret_status is the HTTP status; *ret_env the parsed envelope (NULL if the body
 * was not JSON). A transport failure is an error; an HTTP error status is not. */
int cli_request(struct cli_client *c, const char *method, const char *path, const char *body,
                size_t body_len, long *ret_status, json_t **ret_env, struct ck_error **reterr);
/* A request whose 2xx body must be an envelope; non-2xx becomes an error carrying the
 * server's message. *ret_data (may be NULL) receives a new reference to "data". */
int cli_call(struct cli_client *c, const char *method, const char *path, const char *body, size_t body_len,
             json_t **ret_data, struct ck_error **reterr);
/* Streams a GET body to fn (logs); an error status ends with the server's message. */
int cli_stream(struct cli_client *c, const char *path, size_t (*fn)(char *, size_t, size_t, void *),
               void *ud, struct ck_error **reterr);

/* "/sw/api/v1/container/<escaped ref><suffix>" (malloc'd). */
char *cli_task_path(const char *ref, const char *suffix);
/* The registry password for run and image pull (--password-stdin): all of stdin, up to
 * CLI_PASSWORD_MAX bytes, trailing newlines dropped, never empty. Read with read(2), not stdio,
 * so that no buffer we cannot wipe holds it; the caller frees *ret with ck_secret_free(). */
int cli_password_read_stdin(struct ck_secret **ret, struct ck_error **reterr);
/* Prints data as indented JSON on stdout. */
void cli_print_json(json_t *data);

/* The data's "Id" on a line of its own, or the JSON with --json (rm, cancel). */
void cli_print_id(json_t *data, bool json);
/* The body of the commands that act on one task (inspect, rm, cancel, events):
 * `conker NAME [common options] TASK` becomes METHOD <task path><suffix>, and print renders the
 * answer's data
 * (json is --json). Returns the process exit status (0, 1 on failure, 2 on a usage error). */
int cli_task_command(int argc, char **argv, const char *name, const char *method, const char *suffix,
                     void (*print)(json_t *data, bool json));
