/* The libnftables context conkerd keeps for its life, and one script run on it as one
 * transaction (net_nft_run): creating and freeing a context (or running `nft`) costs tens of
 * milliseconds, running a script on a warm one about one. libnftables opens its sockets without
 * close-on-exec; this file marks them so no shim or helper inherits one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "net-internal.h"
#include "parse.h"

struct net_nft {
        pthread_mutex_t lock; /* a context is not thread-safe */
        struct nft_ctx *ctx;  /* made at the first run that needs one */
};

#define FDS_MAX 64

/* The fds (>= 3) without FD_CLOEXEC, at most FDS_MAX of them; returns how many. */
static size_t fds_inheritable(int out[FDS_MAX])
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        size_t n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)) && n < FDS_MAX) {
                uint64_t v;
                int fl;
                if (ck_parse_uint(de->d_name, INT32_MAX, &v) < 0 || v < 3 || (int)v == dirfd(d))
                        continue;
                fl = fcntl((int)v, F_GETFD);
                if (fl >= 0 && !(fl & FD_CLOEXEC))
                        out[n++] = (int)v;
        }
        closedir(d);
        return n;
}

/* libnftables opens its netlink socket without SOCK_CLOEXEC: without this, every shim and
 * helper conkerd starts would inherit a netfilter socket. Marks the inheritable fds that are
 * not in before[] (the ones libnftables just opened) close-on-exec. */
static void fds_cloexec_new(const int *before, size_t n_before)
{
        int now[FDS_MAX];
        size_t n = fds_inheritable(now);

        for (size_t i = 0; i < n; i++) {
                bool old = false;
                for (size_t k = 0; k < n_before && !old; k++)
                        old = before[k] == now[i];
                if (!old)
                        (void)fcntl(now[i], F_SETFD, FD_CLOEXEC);
        }
}

static struct nft_ctx *nft_ctx_make(void)
{
        int before[FDS_MAX];
        size_t n_before = fds_inheritable(before);
        struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);

        fds_cloexec_new(before, n_before);
        if (!ctx)
                return NULL;
        /* Output and errors go to buffers, never to conkerd's stdout/stderr. */
        if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0) {
                nft_ctx_free(ctx);
                return NULL;
        }
        return ctx;
}

/* The context is made at the first run, not here: a conkerd with no container never needs
 * one (net_apply() asks the kernel directly whether there is a table to remove), and a context
 * and its first run leave ~0.6 MB of libnftables resident. Making one costs ~0.15 ms; freeing
 * one ~20 ms (its netlink socket), which is why it is then kept. */
struct net_nft *net_nft_new(void)
{
        struct net_nft *n = calloc(1, sizeof(*n));

        if (!n)
                return NULL;
        pthread_mutex_init(&n->lock, NULL);
        return n;
}

void net_nft_free(struct net_nft *n)
{
        if (!n)
                return;
        if (n->ctx)
                nft_ctx_free(n->ctx);
        pthread_mutex_destroy(&n->lock);
        free(n);
}

/* Runs one nft script as one transaction, on cfg's context or (without one) a temporary one. */
int net_nft_run(const struct net_config *cfg, const char *script, struct ck_error **reterr)
{
        struct nft_ctx *tmp = NULL, *ctx;
        int before[FDS_MAX];
        size_t n_before;
        const char *msg;
        int r;

        if (cfg->nft) {
                pthread_mutex_lock(&cfg->nft->lock);
                if (!cfg->nft->ctx)
                        cfg->nft->ctx = nft_ctx_make();
                ctx = cfg->nft->ctx;
                if (!ctx) {
                        pthread_mutex_unlock(&cfg->nft->lock);
                        return ck_error_set(reterr, -ENOMEM, "cannot create an nftables context");
                }
        } else {
                ctx = tmp = nft_ctx_make();
                if (!ctx)
                        return ck_error_set(reterr, -ENOMEM, "cannot create an nftables context");
        }
        n_before = fds_inheritable(before);
        r = nft_run_cmd_from_buffer(ctx, script);
        /* In case a run (re)opened a socket. */
        fds_cloexec_new(before, n_before);
        /* Reading the buffers also empties them for the next run. */
        (void)nft_ctx_get_output_buffer(ctx);
        msg = nft_ctx_get_error_buffer(ctx);
        if (r != 0) {
                size_t l = msg ? strcspn(msg, "\n") : 0;
                r = ck_error_set(reterr, -EIO, "%.*s", (int)(l > 512 ? 512 : l), l ? msg : "nft failed");
        }
        if (tmp) {
                nft_ctx_free(tmp);
        } else {
                /* libnftables keeps the cache the run fetched (every table on the host, with a
                 * 128 KiB hash per table and kind) until its next run, and our own transaction
                 * has made it stale already. A run with no command and no cache needs sees the
                 * new generation and drops it; one netlink request. */
                (void)nft_run_cmd_from_buffer(ctx, "");
                (void)nft_ctx_get_output_buffer(ctx);
                (void)nft_ctx_get_error_buffer(ctx);
                pthread_mutex_unlock(&cfg->nft->lock);
        }
        /* A run allocates and frees about a megabyte (parser, cache refresh); give it back
         * rather than keep it in conkerd's idle footprint. */
        (void)malloc_trim(0);
        return r;
}
