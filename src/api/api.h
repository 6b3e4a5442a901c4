/* conkerd's REST API (docs/design.md §1, docs/API.md): an evhttp server on the daemon's event loop,
 * optionally over TLS with client-certificate verification, bearer-token auth, the JSON
 * envelope on every response, and the routes of /sw/api/v1.
 *
 * Handlers never block the loop: task creation only validates and starts a pipeline thread,
 * deletion runs in a worker thread and replies when done, logs are read in small steps. The
 * event base must have been created after evthread_use_pthreads(). */
#pragma once

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "secret.h"

struct task_manager;
struct attest_tee;

struct api_config {
        const char *listen;             /* "HOST:PORT" or "[IPV6]:PORT"; port 0 picks a free one */
        bool auth;                      /* false only when the operator said --no-auth */
        const struct ck_secret *token;  /* required when auth is on (borrowed) */
        const char *tls_cert, *tls_key; /* both or neither (ignored with tls_auto) */
        /* An RA-TLS certificate made at start by tee (tls-cert = auto), and
         * GET /sw/api/v1/pub/attest for fresh evidence (docs/API.md "Attested TLS"). */
        bool tls_auto;
        struct attest_tee *tee;    /* borrowed; required with tls_auto */
        const char *tls_client_ca; /* clients must present a certificate it verifies */
        size_t max_body_size;
        size_t max_header_size;
        unsigned max_connections;
        unsigned timeout_s;
        const char *version;
};

struct api_server;

int api_server_new(struct event_base *base, const struct api_config *cfg, struct task_manager *m,
                   struct api_server **ret, struct ck_error **reterr);
/* Stops listening, waits for running deletions and frees everything. The manager must be
 * freed after this. */
void api_server_free(struct api_server *s);
/* The bound port (useful with port 0). */
uint16_t api_server_port(const struct api_server *s);

/* Loads the token file, or creates it (mode 0600, 32 random bytes as hex) when it does not
 * exist. A token file readable by others is refused. */
int api_token_load_or_create(const char *path, struct ck_secret **ret, struct ck_error **reterr);
