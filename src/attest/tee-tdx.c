/* The real TDX provider: quotes through configfs-tsm, RTMR3 extension and measurements through
 * the tdx_guest sysfs measurements directory (Linux >= 6.7 / 6.16; reference §3.1, §3.3).
 *
 * configfs-tsm protocol, one request: mkdir report/<unique>, check that `provider` says
 * tdx_guest, read `generation`, write exactly 64 bytes to `inblob`, read `outblob` (this is when
 * the quote is made; -EBUSY while another request is in flight), read `generation` again: it
 * must have moved by exactly our one write, otherwise someone else wrote inblob in between
 * and outblob may be theirs, so we retry. Then rmdir. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "fs.h"
#include "parse.h"
#include "tee-internal.h"

#define TSM_OUTBLOB_MAX        (1u << 20)
#define TSM_GENERATION_RETRIES 3
#define TSM_BUSY_RETRIES       100
#define TSM_BUSY_SLEEP_MS      50

struct tdx_priv {
        int report_fd;
        int measure_fd;
};

static void tdx_free(void *p)
{
        struct tdx_priv *x = p;

        if (!x)
                return;
        safe_close(x->report_fd);
        safe_close(x->measure_fd);
        free(x);
}

static void sleep_ms(unsigned ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Reads a small attribute file (configfs/sysfs) whole. */
static int read_attr(int dirfd, const char *name, size_t max, uint8_t **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0)
                return -errno;
        return ck_read_fd(fd, max, ret, ret_len);
}

static int read_generation(int entry_fd, uint64_t *ret, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *d = NULL;
        size_t n = 0;
        int r = read_attr(entry_fd, "generation", 32, &d, &n);

        if (r < 0)
                return ck_error_errno(reterr, r, "configfs-tsm: cannot read generation");
        while (n > 0 && (d[n - 1] == '\n' || d[n - 1] == ' '))
                n--;
        r = ck_parse_u64((const char *)d, n, UINT64_MAX, ret);
        if (r < 0)
                return ck_error_set(reterr, -EBADMSG, "configfs-tsm: generation is not a number");
        return 0;
}

static int write_inblob(int entry_fd, const uint8_t report_data[64])
{
        _cleanup_close_ int fd = openat(entry_fd, "inblob", O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        ssize_t n;

        if (fd < 0)
                return -errno;
        /* The kernel wants the whole blob in one write; a short write is an error, not a
         * partial success to continue. */
        do
                n = write(fd, report_data, 64);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n != 64)
                return -EIO;
        return 0;
}

int attest_tdx_quote_entry(int entry_fd, const uint8_t report_data[64], uint8_t **ret, size_t *ret_len,
                           struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *prov = NULL;
        size_t plen = 0;
        int r;

        r = read_attr(entry_fd, "provider", 64, &prov, &plen);
        if (r < 0)
                return ck_error_errno(reterr, r, "configfs-tsm: cannot read provider");
        if (plen > 0 && prov[plen - 1] == '\n')
                plen--;
        if (plen != strlen("tdx_guest") || memcmp(prov, "tdx_guest", plen) != 0)
                return ck_error_set(reterr, -ENODEV, "configfs-tsm: provider is not tdx_guest");

        for (unsigned attempt = 0; attempt < TSM_GENERATION_RETRIES; attempt++) {
                _cleanup_free_ uint8_t *quote = NULL;
                uint64_t before, after;
                size_t qlen = 0;
                unsigned busy = 0;

                r = read_generation(entry_fd, &before, reterr);
                if (r < 0)
                        return r;
                for (;;) {
                        r = write_inblob(entry_fd, report_data);
                        if (r != -EBUSY || ++busy >= TSM_BUSY_RETRIES)
                                break;
                        sleep_ms(TSM_BUSY_SLEEP_MS);
                }
                if (r < 0)
                        return ck_error_errno(reterr, r, "configfs-tsm: cannot write inblob");
                for (;;) {
                        r = read_attr(entry_fd, "outblob", TSM_OUTBLOB_MAX, &quote, &qlen);
                        if (r != -EBUSY || ++busy >= TSM_BUSY_RETRIES)
                                break;
                        sleep_ms(TSM_BUSY_SLEEP_MS);
                }
                if (r == -EBUSY)
                        return ck_error_set(reterr, r, "configfs-tsm: quote generation stayed busy");
                if (r < 0)
                        return ck_error_errno(reterr, r, "configfs-tsm: cannot read outblob");
                r = read_generation(entry_fd, &after, reterr);
                if (r < 0)
                        return r;
                if (after != before + 1)
                        continue; /* another writer raced us: outblob may answer their inblob */
                if (qlen == 0)
                        return ck_error_set(reterr, -EIO, "configfs-tsm: empty quote");
                *ret = TAKE_PTR(quote);
                *ret_len = qlen;
                return 0;
        }
        return ck_error_set(reterr, -EAGAIN,
                            "configfs-tsm: generation kept changing; another process is using "
                            "the same report entry");
}

/* A fresh entry name: configfs-tsm entries are shared state, a private one per request keeps
 * other requesters (and our own threads) out (reference §3.1). */
static int entry_name(const char *prefix, char out[64])
{
        uint8_t rnd[8];
        char hex[17];

        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
                return -EIO;
        ck_hex_encode(rnd, sizeof(rnd), hex);
        snprintf(out, 64, "conker-%s%d-%s", prefix, (int)getpid(), hex);
        return 0;
}

static int tdx_quote(struct attest_tee *t, const uint8_t report_data[64], uint8_t **ret, size_t *ret_len,
                     struct ck_error **reterr)
{
        struct tdx_priv *x = t->priv;
        _cleanup_close_ int entry_fd = -1;
        char name[64];
        int r;

        if (entry_name("", name) < 0)
                return ck_error_set(reterr, -EIO, "no randomness for the configfs-tsm entry name");
        if (mkdirat(x->report_fd, name, 0700) < 0)
                return ck_error_errno(reterr, -errno, "configfs-tsm: cannot create report entry");
        entry_fd = openat(x->report_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (entry_fd < 0)
                r = ck_error_errno(reterr, -errno, "configfs-tsm: cannot open report entry");
        else
                r = attest_tdx_quote_entry(entry_fd, report_data, ret, ret_len, reterr);
        entry_fd = safe_close(entry_fd);
        if (unlinkat(x->report_fd, name, AT_REMOVEDIR) < 0 && r >= 0)
                return ck_error_errno(reterr, -errno, "configfs-tsm: cannot remove report entry %s", name);
        return r;
}

static int tdx_extend(struct attest_tee *t, unsigned index, const uint8_t data[48], struct ck_error **reterr)
{
        struct tdx_priv *x = t->priv;
        _cleanup_close_ int fd = -1;
        char name[32];
        ssize_t n;

        snprintf(name, sizeof(name), "rtmr%u:sha384", index);
        fd = openat(x->measure_fd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", name);
        /* The kernel accepts exactly 48 bytes at offset 0 and turns them into TDG.MR.RTMR.EXTEND. */
        do
                n = pwrite(fd, data, 48, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return ck_error_errno(reterr, -errno, "cannot extend RTMR%u", index);
        if (n != 48)
                return ck_error_set(reterr, -EIO, "short write extending RTMR%u", index);
        return 0;
}

static int read_mr(int dirfd, const char *name, bool optional, uint8_t out[48], struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *d = NULL;
        size_t n = 0;
        int r = read_attr(dirfd, name, 4096, &d, &n);

        if (r == -ENOENT && optional) {
                memset(out, 0, 48);
                return 0;
        }
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read measurement %s", name);
        if (n != 48)
                return ck_error_set(reterr, -EBADMSG, "measurement %s has %zu bytes, expected 48", name, n);
        memcpy(out, d, 48);
        return 0;
}

static int tdx_measurements(struct attest_tee *t, struct attest_measurements *ret, struct ck_error **reterr)
{
        struct tdx_priv *x = t->priv;
        struct attest_measurements m = {0};
        int r;

        r = read_mr(x->measure_fd, "mrtd:sha384", false, m.mr_td, reterr);
        for (unsigned i = 0; r >= 0 && i < 4; i++) {
                char name[32];
                snprintf(name, sizeof(name), "rtmr%u:sha384", i);
                r = read_mr(x->measure_fd, name, false, m.rtmr[i], reterr);
        }
        /* The configuration/owner registers are only exposed by some kernels. */
        if (r >= 0)
                r = read_mr(x->measure_fd, "mrconfigid", true, m.mr_config_id, reterr);
        if (r >= 0)
                r = read_mr(x->measure_fd, "mrowner", true, m.mr_owner, reterr);
        if (r >= 0)
                r = read_mr(x->measure_fd, "mrownerconfig", true, m.mr_owner_config, reterr);
        if (r < 0)
                return r;
        *ret = m;
        return 0;
}

static const struct attest_tee_ops tdx_ops = {
        .quote = tdx_quote,
        .extend = tdx_extend,
        .measurements = tdx_measurements,
        .free = tdx_free,
};

static const char *cfg_report_dir(const struct attest_tee_config *cfg)
{
        return cfg->tsm_report_dir ? cfg->tsm_report_dir : ATTEST_TSM_REPORT_DIR;
}

static const char *cfg_measure_dir(const struct attest_tee_config *cfg)
{
        return cfg->measurements_dir ? cfg->measurements_dir : ATTEST_TDX_MEASURE_DIR;
}

int attest_tee_tdx_probe(const struct attest_tee_config *cfg, struct ck_error **reterr)
{
        _cleanup_close_ int report_fd = -1, entry_fd = -1;
        _cleanup_free_ uint8_t *prov = NULL;
        char name[64];
        size_t n = 0;
        int r;

        report_fd = open(cfg_report_dir(cfg), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (report_fd < 0)
                return ck_error_errno(reterr, -errno, "%s", cfg_report_dir(cfg));
        if (access(cfg_measure_dir(cfg), F_OK) < 0)
                return ck_error_errno(reterr, -errno, "%s", cfg_measure_dir(cfg));
        /* The provider is only visible inside an entry. */
        if (entry_name("probe-", name) < 0)
                return ck_error_set(reterr, -EIO, "no randomness for the configfs-tsm entry name");
        if (mkdirat(report_fd, name, 0700) < 0)
                return ck_error_errno(reterr, -errno, "cannot create a configfs-tsm entry");
        entry_fd = openat(report_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        r = entry_fd < 0 ? -errno : read_attr(entry_fd, "provider", 64, &prov, &n);
        (void)unlinkat(report_fd, name, AT_REMOVEDIR);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read the configfs-tsm provider");
        if (n > 0 && prov[n - 1] == '\n')
                n--;
        if (n != strlen("tdx_guest") || memcmp(prov, "tdx_guest", n) != 0)
                return ck_error_set(reterr, -ENODEV, "configfs-tsm provider is not tdx_guest");
        return 0;
}

int attest_tee_tdx_open(const struct attest_tee_config *cfg, struct attest_tee *t, struct ck_error **reterr)
{
        struct tdx_priv *x = calloc(1, sizeof(*x));

        if (!x)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        x->report_fd = open(cfg_report_dir(cfg), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        x->measure_fd =
                x->report_fd < 0 ? -1 : open(cfg_measure_dir(cfg), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (x->report_fd < 0 || x->measure_fd < 0) {
                int r = -errno;
                const char *what = x->report_fd < 0 ? cfg_report_dir(cfg) : cfg_measure_dir(cfg);
                tdx_free(x);
                return ck_error_errno(reterr, r, "TDX: cannot open %s", what);
        }
        if (!t->rt_log_path) {
                t->rt_log_path = strdup(ATTEST_TDX_RT_LOG);
                if (!t->rt_log_path) {
                        tdx_free(x);
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
                }
        }
        t->ops = &tdx_ops;
        t->priv = x;
        return 0;
}
