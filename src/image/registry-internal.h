/* Internals of the registry client shared by its files: the client, one transfer's state, what
 * a request is for, and the functions one file offers the others.
 *
 *   registry-client.c  construction and teardown of a client (and what it hands to its keep)
 *   registry-xfer.c    the curl callbacks and one HTTP exchange (registry_xfer_perform)
 *   registry-errors.c  error messages and the retry policy (backoff, Retry-After)
 *   registry-auth.c    the Authorization header, the token fetch, learning a 401's challenge
 *   registry.c         the request loop (auth, retries, resume) and the public requests
 *
 * Not a public interface: the rest of the tree uses registry.h. Everything here keeps the
 * security rules listed at the head of registry.c. */
#pragma once

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "error.h"
#include "registry-conns.h"
#include "registry.h"
#include "secret.h"

#define ERROR_BODY_MAX (64u << 10)

struct registry_client {
        char *domain;   /* as given, used in messages and as the token cache key */
        char *base_url; /* "https://host[:port]" */
        char *username;
        struct ck_secret *basic; /* "Basic ..." when a username is set */
        char *ca_file;
        bool plain_http;
        long connect_timeout_ms;
        unsigned retries;
        atomic_int *cancel, *cancel_also;

        struct registry_conns *conns;
        struct registry_keep *keep; /* where conns go back to, or NULL */

        pthread_mutex_t lock; /* guards pinged, inherited, answered, challenge */
        bool pinged;
        bool inherited; /* challenge came from the keep and no request confirmed it yet */
        bool answered;  /* the registry answered a request of ours with 2xx */
        struct registry_challenge challenge;

        struct registry_token_cache *tokens;
};

/* What a request is for: decides how errors are worded. */
enum req_kind {
        REQ_PING,
        REQ_MANIFEST,
        REQ_BLOB,
        REQ_TOKEN,
};

struct xfer {
        struct registry_client *c;
        /* Response state of the last response seen (reset at each status line, so redirect
         * hops do not leak into the final one). */
        long status;
        char content_type[256];
        char retry_after[64];
        bool have_length, have_range;
        uint64_t content_length, range_start;
        struct ck_buf www_auth;
        /* Body handling. */
        struct ck_buf *body;   /* manifest or token reply, capped */
        registry_sink_fn sink; /* blob */
        void *userdata;
        uint64_t *delivered; /* blob bytes given to sink over all attempts */
        uint64_t max_total;  /* blob size */
        uint64_t skip;       /* bytes of a 200 reply we already have (Range ignored) */
        bool body_started;
        bool sink_failed; /* x->err came from the sink, which keeps its own error */
        struct ck_buf errbody;
        int err;          /* set by a callback that aborted the transfer */
        bool auth_failed; /* request() could not get credentials (the token step failed) */
};

/* What a request is: its kind, what it names (for messages) and where it goes. */
struct req {
        enum req_kind kind;
        const char *repo;      /* NULL for ping and token */
        const char *reference; /* tag or digest */
        const char *url;
        const char *accept; /* full "Accept: ..." line or NULL */
};

static inline bool registry_cancelled(const struct registry_client *c)
{
        return (c->cancel && atomic_load(c->cancel) != 0) ||
               (c->cancel_also && atomic_load(c->cancel_also) != 0);
}

static inline bool registry_status_ok(long s)
{
        return s == 200 || s == 206;
}

/* registry-xfer.c */
/* Wipes each header line (they may hold credentials), then frees the list. */
void registry_slist_free_wiped(struct curl_slist *l);
/* Performs one GET of url with the given extra headers. Returns 0 when a response arrived
 * (whatever its status), or a -errno for transport failures (x->err wins when a callback
 * aborted); *ret_transient says whether retrying may help. */
int registry_xfer_perform(struct registry_client *c, const char *url, struct curl_slist *headers,
                          struct xfer *x, bool *ret_transient, char *errbuf);

/* registry-errors.c: a -errno with a message for a response that is not 2xx, or for a
 * transport failure (r from registry_xfer_perform). */
int registry_status_error(struct registry_client *c, const struct req *q, const struct xfer *x,
                          struct ck_error **reterr);
int registry_transport_error(struct registry_client *c, const struct req *q, int r, const char *errbuf,
                             struct ck_error **reterr);
/* Sleeps ms in slices of 100 ms; -ECANCELED as soon as the client is cancelled. */
int registry_sleep_cancellable(struct registry_client *c, unsigned ms);
/* Delay before retry number `attempt` (0-based): Retry-After when the server gave one (seconds
 * or an HTTP date, capped), else exponential backoff. */
unsigned registry_retry_delay_ms(const struct xfer *x, unsigned attempt);
/* 408, 429 and the 5xx a retry may cure. */
bool registry_status_transient(long s);

/* registry-auth.c */
int registry_append_header(struct curl_slist **l, const char *line);
/* "repository:<repo>:pull" (malloc'd). */
int registry_scope_for(const char *repo, char **ret);
/* The Authorization header line for a request to repo, or NULL (*ret untouched) when the
 * registry did not ask for credentials. ret_token receives the bearer token used (to drop it
 * from the cache if it is rejected). */
int registry_auth_header(struct registry_client *c, const char *repo, struct ck_secret **ret,
                         struct ck_secret **ret_token, struct ck_error **reterr);
/* Learns the challenge of a 401 reply. Returns true when there is something new to try. */
bool registry_learn_challenge(struct registry_client *c, const struct xfer *x);
