/* Internals shared by the API's files: server.c (listener, TLS, connection limit, auth,
 * routing, envelopes), routes.c (task handlers, worker jobs) and logs.c (log streaming). */
#pragma once

#include <event2/http.h>
#include <jansson.h>
#include <pthread.h>

#include "api.h"

struct api_conn;
struct api_job;
struct api_follow;
struct api_attest;

struct api_server {
        struct api_config cfg;
        struct event_base *base;
        struct evhttp *http;
        struct evhttp_bound_socket *bound;
        struct ssl_ctx_st *ssl_ctx;
        struct task_manager *m;
        uint16_t port;
        unsigned connections; /* tracked connections (loop thread only) */
        struct api_conn *conns;

        /* Worker jobs (DELETE): finished jobs are queued and replied to on the loop. */
        pthread_mutex_t jobs_lock;
        pthread_cond_t jobs_cond;
        unsigned jobs_running;
        struct api_job *jobs_done;
        struct event *jobs_event;

        struct api_follow *follows; /* open log streams */
        struct api_attest *attest;  /* tls-cert = auto (attest.c); NULL otherwise */
};

/* Replies {"code":status,"message":message,"data":data} (data may be NULL: null; it is
 * consumed). */
void api_reply(struct evhttp_request *req, int status, const char *message, json_t *data);
/* Replies with the status and message of an internal error (errors.c). */
void api_reply_error(struct evhttp_request *req, int code, const struct ck_error *err, const char *what);

/* Calls fn(userdata) when the connection of req closes (one hook per connection; NULL fn
 * clears it). */
void api_conn_set_close_hook(struct api_server *s, struct evhttp_request *req, void (*fn)(void *),
                             void *userdata);

/* Route handlers; `ref` is the task ID/name from the path or NULL for the newest task. */
void api_route_create(struct api_server *s, struct evhttp_request *req);
void api_route_get(struct api_server *s, struct evhttp_request *req, const char *ref);
void api_route_list(struct api_server *s, struct evhttp_request *req);
void api_route_events(struct api_server *s, struct evhttp_request *req, const char *ref);
void api_route_cancel(struct api_server *s, struct evhttp_request *req, const char *ref);
void api_route_delete(struct api_server *s, struct evhttp_request *req, const char *ref);
void api_route_logs(struct api_server *s, struct evhttp_request *req, const char *ref);

/* The attested identity (attest.c): made at start, installed in the TLS context (TLS 1.3
 * only), and the unauthenticated route GET /pub/attest?nonce=HEX. */
int api_attest_new(struct api_server *s, struct ck_error **reterr);
int api_attest_tls_setup(struct api_server *s, struct ssl_ctx_st *ctx, struct ck_error **reterr);
void api_attest_free(struct api_server *s);
void api_route_attest(struct api_server *s, struct evhttp_request *req);

int api_jobs_init(struct api_server *s);
/* Waits for running jobs and drops their replies. */
void api_jobs_shutdown(struct api_server *s);
void api_follows_shutdown(struct api_server *s);
/* The most bytes a log request has had queued on its connection after handing it a piece of the
 * existing log (for the tests: it must stay about one piece, whatever the log size). */
extern size_t api_logs_peak_queued;
