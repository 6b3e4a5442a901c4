/* Registry client on libcurl (OCI distribution spec): /v2/ ping, anonymous, Basic and Bearer
 * auth with a token cache, HTTPS with a configurable CA file, size caps, redirects that never
 * carry credentials to another host, retries with backoff on 429/5xx, cancel from another
 * thread within a second.
 *
 * Contract header (owned by the image module). The password is a ck_secret and never appears
 * in a log line, an error message or a URL. */
#pragma once

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "secret.h"

struct registry_opts {
        const char *domain;   /* as in image_ref: "host:port", "[::1]:5000", "docker.io" */
        const char *username; /* NULL = anonymous */
        const struct ck_secret *password;
        const char *ca_file;         /* extra trust anchors (PEM); NULL = system store */
        int plain_http;              /* only for explicitly configured insecure registries */
        unsigned connect_timeout_ms; /* default 10000 */
        unsigned retries;            /* default 4 */
        atomic_int *cancel;          /* when it becomes non-zero, transfers stop with -ECANCELED */
        atomic_int *cancel_also;     /* NULL, or a second flag with the same effect */
        struct registry_keep *keep;  /* NULL, or where the client leaves its connections (below) */
};

/* What clients of the same registry (base URL and CA file) hand on to the next one in this
 * process: the open connections, libcurl's DNS and TLS session caches, and the authentication
 * scheme the registry announced (none, Basic, or a Bearer realm and service), which spares the
 * next client the /v2/ request. Never a credential or a token: those stay with the client they
 * were given to and are wiped with it. A client that saw no 2xx answer from the registry keeps
 * nothing. The kept scheme is only a first guess: a 401 still leads to the challenge and the
 * token, and when the manifest request fails under a kept scheme (an HTTP error, or the token
 * step failed; not an unreachable registry) the client forgets it, asks /v2/ and tries once
 * more (an auth change on the registry between two clients). A keep may be
 * shared by clients on several threads; each entry serves one client at a time. */
struct registry_keep;
int registry_keep_new(struct registry_keep **ret);
/* Closes the kept connections. No client that was given keep may still exist. */
void registry_keep_free(struct registry_keep *keep);

struct registry_client;

int registry_client_new(const struct registry_opts *o, struct registry_client **ret,
                        struct ck_error **reterr);
void registry_client_free(struct registry_client *c);

/* GETs a manifest or index by tag or digest (max IMAGE_MANIFEST_MAX). ret_media_type and
 * ret_digest (the sha256 of the bytes received) are malloc'd. When reference is a digest the
 * bytes are verified against it. */
int registry_get_manifest(struct registry_client *c, const char *repo, const char *reference,
                          uint8_t **ret_body, size_t *ret_len, char **ret_media_type, char **ret_digest,
                          struct ck_error **reterr);

/* Streams a blob to sink, which is called with each chunk (return < 0 to abort). The caller
 * verifies the digest (the store does). The blob may not be longer than expected_size, and must
 * not be shorter (an early end is resumed with a Range request). When the sink fails, its code
 * is returned and reterr is left unset: the sink keeps its own error. */
typedef int (*registry_sink_fn)(void *userdata, const uint8_t *data, size_t len);
int registry_get_blob(struct registry_client *c, const char *repo, const char *digest,
                      uint64_t expected_size, registry_sink_fn sink, void *userdata,
                      struct ck_error **reterr);

/* Errors: -EACCES authentication failed ("registry rejected the credentials for user X"),
 * -ENOENT unknown manifest/tag/blob, -ECANCELED cancelled, -EMSGSIZE over a size cap,
 * -ETIMEDOUT, -ECONNREFUSED, -EPROTO unexpected response (also TLS verification failures),
 * -EAGAIN still rate limited (429) after the retries, -ELOOP more than 10 redirects,
 * -EPROTONOSUPPORT a redirect to plain HTTP, -EBADMSG digest or length mismatch,
 * -EHOSTUNREACH name resolution failed, -ECONNRESET connection lost (after the retries). */
