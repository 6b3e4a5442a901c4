/* The pull helper's protocol: what conkerd and conker-fetch say over their socketpair
 * (SOCK_SEQPACKET, so every message arrives whole or not at all).
 *
 * A message is one type byte and a payload of at most FETCH_MSG_MAX - 1 bytes:
 *   conkerd -> helper   'R' request (JSON, below), then 'P' password (raw bytes, may be empty),
 *                       later perhaps 'C' cancel (empty);
 *   helper -> conkerd   'p' progress (JSON), then exactly one 'r' result (JSON).
 * or, once at conkerd's start when the layer format is auto:
 *   conkerd -> helper   'Q' probe {"data_dir": ...}
 *   helper -> conkerd   'f' {"layer_format": "erofs"|"dir"}, or an 'r' result with the error.
 * (The probe writes an EROFS image, which needs the writer: conkerd does not link it.)
 * The password travels in a message of its own so that it never sits in a JSON tree (jansson
 * does not wipe what it frees); both sides wipe the buffers it passed through. A closed socket
 * means cancel to the helper, and "the helper died" to conkerd.
 *
 * Every parser here takes the received bytes and their length, rejects a message that was cut
 * (MSG_TRUNC), unknown types, JSON past its size, wrong types and out-of-range numbers.
 *
 * Contract header (owned by the fetch module). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "secret.h"

#define FETCH_MSG_MAX       (64u * 1024u)
#define FETCH_PASSWORD_MAX  4096u
#define FETCH_MIRRORS_MAX   64u
#define FETCH_INSECURE_MAX  64u
#define FETCH_ERROR_MSG_MAX 4000u

enum fetch_msg_type {
        FETCH_MSG_REQUEST = 'R',
        FETCH_MSG_PASSWORD = 'P',
        FETCH_MSG_CANCEL = 'C',
        FETCH_MSG_PROGRESS = 'p',
        FETCH_MSG_RESULT = 'r',
        FETCH_MSG_PROBE = 'Q',
        FETCH_MSG_FORMAT = 'f',
};

/* What to pull and where. Strings are owned by the struct (fetch_request_clear()). */
struct fetch_request {
        char *ref;
        char *data_dir;
        char *username;     /* NULL: none */
        char *ca_file;      /* NULL: system store */
        char *layer_format; /* "dir" or "erofs": decided by conkerd, so the helper never probes */
        char *log_level;    /* NULL: info */
        char **mirror_domains, **mirror_endpoints;
        size_t n_mirrors;
        char **insecure; /* NULL-terminated; NULL: none */
        uint64_t max_blob_size, max_layer_unpacked, max_layer_entries, max_ratio;
};
void fetch_request_clear(struct fetch_request *r);

/* The phase strings are the static ones of image_pull_progress. */
struct fetch_progress {
        const char *phase;
        uint64_t done_bytes, total_bytes;
        unsigned layers_done, layers_total;
};

/* The pull's outcome: the stored record's id and name on success, else err (-errno) and
 * message (the error as image_pull() rendered it). pulled_bytes counts either way. */
struct fetch_result {
        int err;
        char *id, *name;
        char *message;
        uint64_t pulled_bytes;
};
void fetch_result_clear(struct fetch_result *r);

/* Encoders: a malloc'd message (type byte + payload) in *ret / *ret_len. */
int fetch_request_encode(const struct fetch_request *r, uint8_t **ret, size_t *ret_len);
int fetch_progress_encode(const struct fetch_progress *p, uint8_t **ret, size_t *ret_len);
int fetch_result_encode(const struct fetch_result *r, uint8_t **ret, size_t *ret_len);

/* Decoders of the payload (the bytes after the type byte). */
int fetch_request_decode(const uint8_t *buf, size_t len, struct fetch_request *ret,
                         struct ck_error **reterr);
int fetch_progress_decode(const uint8_t *buf, size_t len, struct fetch_progress *ret,
                          struct ck_error **reterr);
int fetch_result_decode(const uint8_t *buf, size_t len, struct fetch_result *ret, struct ck_error **reterr);

/* The probe and its answer. The decoded format is a static string ("erofs" or "dir"). */
int fetch_probe_encode(const char *data_dir, uint8_t **ret, size_t *ret_len);
int fetch_probe_decode(const uint8_t *buf, size_t len, char **ret_data_dir, struct ck_error **reterr);
int fetch_format_encode(const char *format, uint8_t **ret, size_t *ret_len);
int fetch_format_decode(const uint8_t *buf, size_t len, const char **ret, struct ck_error **reterr);

/* Sends one message of type with payload (len < FETCH_MSG_MAX). MSG_NOSIGNAL; -errno. */
int fetch_msg_send(int fd, char type, const void *payload, size_t len);

/* Receives one message into buf (FETCH_MSG_MAX bytes): 1 and its type and payload length, 0 on end of
 * stream (*ret_type = 0), -EINTR/-EAGAIN passed through, -EMSGSIZE for a cut message. */
int fetch_msg_recv(int fd, uint8_t *buf, char *ret_type, size_t *ret_len);
