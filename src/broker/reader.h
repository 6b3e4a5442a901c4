/* Internal to the broker module: the connection reader of server.c.
 *
 * A few I/O threads, each an epoll loop, accept connections, run the TLS handshake and read one
 * request (the head, checked by broker_request_parse(), and the body of at most max_body bytes
 * it announces with Content-Length) under deadlines, with non-blocking sockets. Only a complete request is
 * handed to the caller's dispatch(), with the SSL object still open, so that a worker thread can verify,
 * compute anything it needs from the TLS session (e.g. a keying-material exporter) and answer on the same
 * connection. A client that trickles or holds costs a socket and a little memory until its
 * deadline, never a worker. */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "server.h"

struct broker_conn {
        int fd;
        SSL *ssl;
        char peer[64]; /* "addr:port" */
        /* The request as read: its head (request line and headers, through the empty line),
         * what broker_request_parse() made of it, and the body it announced. */
        struct ck_buf head;
        struct broker_request request;
        struct ck_buf body;
        bool head_done;
        /* 0, or why the request could not be read as one: -E2BIG (head over its limit), -EFBIG
         * (body over its limit) or -EBADMSG (malformed, or bytes after the announced body). The
         * worker answers it with an error status. */
        int error;

        /* Reader state. */
        int phase;
        int64_t deadline; /* CLOCK_MONOTONIC ms */
        struct broker_conn *prev, *next;
};

/* Closes the connection (no close_notify) and frees it. */
void broker_conn_free(struct broker_conn *c);

struct broker_reader_config {
        SSL_CTX *ctx;
        int listen_fd; /* non-blocking; borrowed */
        unsigned threads;
        unsigned handshake_timeout_ms;
        unsigned request_timeout_ms;
        size_t max_head; /* bytes of request head */
        size_t max_body; /* bytes of body */

        /* Called from the I/O threads. admit() counts a new connection against the caller's limit
         * (false: it is closed at once); every admitted connection ends with exactly one of
         * dispatch() (the caller owns it from then on, and calls broker_conn_free()) or released()
         * (the reader closed it: timeout, handshake failure, peer gone). */
        bool (*admit)(void *userdata);
        void (*dispatch)(void *userdata, struct broker_conn *c);
        void (*released)(void *userdata);
        void *userdata;
};

struct broker_reader; /* opaque */

int broker_reader_start(const struct broker_reader_config *cfg, struct broker_reader **ret,
                        struct ck_error **reterr);
/* Returns once no I/O thread accepts any more (the caller may then close the listening socket). */
void broker_reader_stop_accepting(struct broker_reader *r);
/* Stops accepting; the connections already accepted are finished (dispatched, or closed at their
 * deadline); returns when every I/O thread has exited. */
void broker_reader_drain(struct broker_reader *r);
/* Drains if needed, then frees. */
void broker_reader_free(struct broker_reader *r);
DEFINE_POINTER_CLEANUP(struct broker_reader, broker_reader_free, broker_reader_free)
