/* The broker's Prometheus metrics and the --metrics-listen HTTP endpoint (docs/metrics.md).
 *
 * Contract header (owned by the broker module). */
#pragma once

#include <stdint.h>

#include "cleanup.h"
#include "error.h"

struct broker_decision;

/* Declares the broker's families (once per process). */
int broker_metrics_declare(void);
/* Counts one release or refusal. */
void broker_metrics_decision(const struct broker_decision *d);

struct broker_metrics_server;

/* Serves GET /metrics on listen ("HOST:PORT", "[V6]:PORT"; port 0 picks one, returned in
 * *ret_port when ret_port is not NULL) from a thread of its own. */
int broker_metrics_server_new(const char *listen, struct broker_metrics_server **ret, uint16_t *ret_port,
                              struct ck_error **reterr);
/* Stops the thread and frees everything; NULL is fine. */
void broker_metrics_server_free(struct broker_metrics_server *s);
DEFINE_POINTER_CLEANUP(struct broker_metrics_server, broker_metrics_server_free, broker_metrics_server_free)
