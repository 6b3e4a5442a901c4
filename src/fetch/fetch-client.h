/* conkerd's side of the pull helper: runs conker-fetch for one pull, hands it the request and
 * the password, relays its progress, forwards a cancel, and returns its result. conkerd thus
 * never maps libcurl, libarchive or the decompressors (docs/start-latency.md, Memory).
 *
 * Contract header (owned by the fetch module). */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "error.h"
#include "fetch-proto.h"
#include "secret.h"

/* After a cancel, how long the helper has to report before it is killed (default). */
#define FETCH_CANCEL_GRACE_MS 10000

typedef void (*fetch_progress_fn)(void *userdata, const struct fetch_progress *p);

/* Helpers kept between pulls: a helper that answered is kept up to idle_ms for the next pull
 * (at most FETCH_POOL_MAX idle at once), then its socket is closed and it exits. */
#define FETCH_POOL_MAX     4
#define FETCH_POOL_IDLE_MS 5000u
struct fetch_pool;
int fetch_pool_new(unsigned idle_ms, struct fetch_pool **ret);
/* Ends every idle helper and waits for them. */
void fetch_pool_free(struct fetch_pool *p);

struct fetch_pull_opts {
        const char *helper; /* path of conker-fetch */
        const struct fetch_request *req;
        const struct ck_secret *password; /* NULL: none */
        atomic_int *cancel;               /* polled; NULL: never */
        fetch_progress_fn progress;       /* NULL: none */
        void *progress_userdata;
        unsigned cancel_grace_ms; /* 0: FETCH_CANCEL_GRACE_MS */
        struct fetch_pool *pool;  /* NULL: a helper for this pull only */
};

/* Runs the pull. On success *ret_name is the stored record's name (free()). The helper's own error
 * comes back as it rendered it (same code, same message); a helper that dies before reporting
 * is -EIO "image pull helper ... died: ..." (or -ECANCELED once cancelled). *ret_pulled (may be
 * NULL) receives the bytes the helper downloaded, on failure too. */
int fetch_pull(const struct fetch_pull_opts *o, char **ret_name, uint64_t *ret_pulled,
               struct ck_error **reterr);

/* Asks the helper which layer format the store at data_dir takes (the EROFS probe, for
 * layer-format auto): "erofs" or "dir" (static). Errors as for fetch_pull(). */
int fetch_probe(const char *helper, const char *data_dir, const char **ret_format, struct ck_error **reterr);
