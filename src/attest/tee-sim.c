/* The simulated TD: builds byte-for-byte v4 TDX quotes from the sim directory's profile and
 * keys (sim.h), and keeps RTMR state across process restarts in a state directory under /run
 * (a "reboot" is that directory disappearing, or the profile's boot measurements changing).
 *
 * Quote v4 layout (reference §1): header 48 | TD report body 584 | sig_data_len u32 | quote
 * signature r||s by the attestation key over [0,632) | AK X||Y | cert type 6 | size |
 * QE report 384 (REPORTDATA = SHA-256(AK || auth) || 0^32) | QE report signature by the PCK key |
 * auth size 32 | auth | cert type 5 | size | PEM chain.
 *
 * Opening checks everything that needs no cryptography (profile, chain, key files present,
 * regular, readable and non-empty, the state directory) so that a daemon with a broken sim
 * directory still refuses to start; the keys are parsed and the QE report signed at the first
 * quote. An idle daemon thus never initialises OpenSSL (about 2.5 MB of its RSS). A key that does
 * not parse then fails that quote with the key's name, and the next quote tries again. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/rand.h>

#include "fs.h"
#include "parse.h"
#include "secret.h"
#include "sim-internal.h"
#include "ssl.h"
#include "tee-internal.h"

#define SIM_CHAIN_MAX  (64u << 10)
#define SIM_STATE_FILE "rtmrs"
#define QUOTE_HDR      48
#define QUOTE_BODY     584
#define QE_REPORT      384
#define QE_AUTH        32

struct sim_priv {
        struct sim_profile prof;
        int dir_fd;
        /* Guards the lazily loaded keys and QE report below (quotes come from task threads). */
        pthread_mutex_t keys_lock;
        bool keys_ready;
        EVP_PKEY *pck_key;
        EVP_PKEY *ak_key;
        uint8_t ak_pub[64];
        /* The QE's report on the AK and its PCK signature, made once (at the first quote), as a
         * real QE certifies its attestation key once rather than per quote. */
        uint8_t qe_auth[QE_AUTH];
        uint8_t qe_report_signed[QE_REPORT + 64];
        char *chain;
        size_t chain_len;
        int state_fd;
        char *rt_log_path;
};

static void sim_free(void *p)
{
        struct sim_priv *s = p;

        if (!s)
                return;
        EVP_PKEY_free(s->pck_key);
        EVP_PKEY_free(s->ak_key);
        free(s->chain);
        free(s->rt_log_path);
        safe_close(s->state_fd);
        safe_close(s->dir_fd);
        pthread_mutex_destroy(&s->keys_lock);
        free(s);
}

static int load_key(int dfd, const char *name, EVP_PKEY **ret, struct ck_error **reterr)
{
        EVP_PKEY *k = NULL;
        int r;

        r = ck_ssl_key_load_at(dfd, name, &k, reterr);
        if (r < 0)
                return r;
        if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC || EVP_PKEY_get_bits(k) != 256) {
                EVP_PKEY_free(k);
                return ck_error_set(reterr, -EBADMSG, "%s: not a P-256 key", name);
        }
        *ret = k;
        return 0;
}

/* What opening checks of a key file without parsing it: present, a regular file of at most 64 KiB
 * (ck_ssl_key_load_at's limit), readable by us and not empty. The bytes are wiped at once. */
static int key_file_check(int dfd, const char *name, struct ck_error **reterr)
{
        uint8_t *buf = NULL;
        size_t len = 0;
        int r;

        r = ck_secret_file_read_at(dfd, name, 64u << 10, &buf, &len, NULL, reterr);
        if (r < 0)
                return r;
        ck_free_wiped(buf);
        if (len == 0)
                return ck_error_set(reterr, -EBADMSG, "%s: not a PEM private key (size 0)", name);
        return 0;
}

/* ---- RTMR state ---- */

/* Loads the RTMRs, starting a new "boot" when there is no state or when the profile's boot
 * measurements no longer match it. Called with the state lock held. */
static int sim_state_load(struct sim_priv *s, uint8_t rtmr[4][48], struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *d = NULL;
        size_t n = 0;
        int r;

        r = ck_read_file_at(s->state_fd, SIM_STATE_FILE, 4 * 48, &d, &n, NULL);
        if (r >= 0 && n == 4 * 48 && memcmp(d, s->prof.rtmr, 3 * 48) == 0) {
                memcpy(rtmr, d, 4 * 48);
                return 0;
        }
        if (r < 0 && r != -ENOENT)
                return ck_error_errno(reterr, r, "sim: cannot read the RTMR state");
        /* New boot: RTMR0-2 from the profile, RTMR3 empty, and the runtime log of the previous
         * boot no longer describes anything. */
        memcpy(rtmr, s->prof.rtmr, 3 * 48);
        memset(rtmr[3], 0, 48);
        r = ck_write_file_atomic(s->state_fd, SIM_STATE_FILE, rtmr, 4 * 48, 0600, reterr);
        if (r < 0)
                return r;
        if (truncate(s->rt_log_path, 0) < 0 && errno != ENOENT)
                return ck_error_errno(reterr, -errno, "sim: cannot reset the runtime log %s",
                                      s->rt_log_path);
        return 0;
}

static int sim_lock(struct sim_priv *s, int op, struct ck_error **reterr)
{
        int fd = openat(s->state_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

        if (fd < 0)
                return ck_error_errno(reterr, -errno, "sim: cannot open the state lock");
        if (flock(fd, op) < 0) {
                int r = -errno;
                safe_close(fd);
                return ck_error_errno(reterr, r, "sim: cannot lock the state");
        }
        return fd;
}

static int sim_extend(struct attest_tee *t, unsigned index, const uint8_t data[48], struct ck_error **reterr)
{
        struct sim_priv *s = t->priv;
        _cleanup_close_ int lock = -1;
        uint8_t rtmr[4][48], buf[96];
        int r;

        lock = sim_lock(s, LOCK_EX, reterr);
        if (lock < 0)
                return lock;
        r = sim_state_load(s, rtmr, reterr);
        if (r < 0)
                return r;
        memcpy(buf, rtmr[index], 48);
        memcpy(buf + 48, data, 48);
        if (ck_sha384(buf, sizeof(buf), rtmr[index]) < 0)
                return ck_error_set(reterr, -EIO, "sim: SHA-384 failed");
        return ck_write_file_atomic(s->state_fd, SIM_STATE_FILE, rtmr, sizeof(rtmr), 0600, reterr);
}

static int sim_measurements(struct attest_tee *t, struct attest_measurements *ret, struct ck_error **reterr)
{
        struct sim_priv *s = t->priv;
        struct attest_measurements m = {0};
        _cleanup_close_ int lock = -1;
        uint8_t rtmr[4][48];
        int r;

        lock = sim_lock(s, LOCK_EX, reterr);
        if (lock < 0)
                return lock;
        r = sim_state_load(s, rtmr, reterr);
        if (r < 0)
                return r;
        memcpy(m.tee_tcb_svn, s->prof.tee_tcb_svn, 16);
        memcpy(m.mr_seam, s->prof.mr_seam, 48);
        memcpy(m.mr_signer_seam, s->prof.mr_signer_seam, 48);
        memcpy(m.seam_attributes, s->prof.seam_attributes, 8);
        memcpy(m.td_attributes, s->prof.td_attributes, 8);
        memcpy(m.xfam, s->prof.xfam, 8);
        memcpy(m.mr_td, s->prof.mr_td, 48);
        memcpy(m.mr_config_id, s->prof.mr_config_id, 48);
        memcpy(m.mr_owner, s->prof.mr_owner, 48);
        memcpy(m.mr_owner_config, s->prof.mr_owner_config, 48);
        memcpy(m.rtmr, rtmr, sizeof(rtmr));
        *ret = m;
        return 0;
}

/* ---- quotes ---- */

static void body_write(uint8_t *b, const struct attest_measurements *m, const uint8_t report_data[64])
{
        memcpy(b + 0, m->tee_tcb_svn, 16);
        memcpy(b + 16, m->mr_seam, 48);
        memcpy(b + 64, m->mr_signer_seam, 48);
        memcpy(b + 112, m->seam_attributes, 8);
        memcpy(b + 120, m->td_attributes, 8);
        memcpy(b + 128, m->xfam, 8);
        memcpy(b + 136, m->mr_td, 48);
        memcpy(b + 184, m->mr_config_id, 48);
        memcpy(b + 232, m->mr_owner, 48);
        memcpy(b + 280, m->mr_owner_config, 48);
        for (unsigned i = 0; i < 4; i++)
                memcpy(b + 328 + 48 * i, m->rtmr[i], 48);
        memcpy(b + 520, report_data, 64);
}

/* The simulated TD QE's own report: identity as in the sim QE Identity, bound to the AK. */
static int qe_report_write(struct sim_priv *s, uint8_t *q, const uint8_t auth[QE_AUTH],
                           struct ck_error **reterr)
{
        uint8_t bind[64 + QE_AUTH];

        memset(q, 0, QE_REPORT);
        memcpy(q + 0, sim_sgx_comps, 16); /* CPUSVN */
        q[48] = SIM_QE_ATTR0;
        if (ck_sha256("Conker SIMULATED TD QE", strlen("Conker SIMULATED TD QE"), q + 64) <
                    0 ||                                                              /* MRENCLAVE */
            ck_sha256(SIM_QE_SIGNER_LABEL, strlen(SIM_QE_SIGNER_LABEL), q + 128) < 0) /* MRSIGNER */
                return ck_error_set(reterr, -EIO, "SHA-256 failed");
        ck_put_le16(q + 256, SIM_QE_ISVPRODID);
        ck_put_le16(q + 258, SIM_QE_ISVSVN);
        memcpy(bind, s->ak_pub, 64);
        memcpy(bind + 64, auth, QE_AUTH);
        if (ck_sha256(bind, sizeof(bind), q + 320) < 0)
                return ck_error_set(reterr, -EIO, "SHA-256 failed");
        return 0;
}

/* Parses the keys and makes the QE's signed report on the AK, once; called with keys_lock held.
 * Nothing is kept from a failed attempt. */
static int sim_keys_load(struct sim_priv *s, struct ck_error **reterr)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pck = NULL, *ak = NULL;
        int r;

        r = load_key(s->dir_fd, SIM_FILE_PCK_KEY, &pck, reterr);
        if (r >= 0)
                r = load_key(s->dir_fd, SIM_FILE_AK_KEY, &ak, reterr);
        if (r >= 0)
                r = sim_pubkey_raw(ak, s->ak_pub, reterr);
        if (r >= 0 && RAND_bytes(s->qe_auth, sizeof(s->qe_auth)) != 1)
                r = ck_ssl_error(reterr, -EIO, "no randomness");
        if (r >= 0)
                r = qe_report_write(s, s->qe_report_signed, s->qe_auth, reterr);
        /* The QE report is signed by the PCK key: that is what ties the AK to the platform. */
        if (r >= 0)
                r = sim_sign_raw(pck, s->qe_report_signed, QE_REPORT, s->qe_report_signed + QE_REPORT,
                                 reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "simulated TD keys");
        s->pck_key = TAKE_PTR(pck);
        s->ak_key = TAKE_PTR(ak);
        s->keys_ready = true;
        return 0;
}

static int sim_keys_ensure(struct sim_priv *s, struct ck_error **reterr)
{
        int r = 0;

        pthread_mutex_lock(&s->keys_lock);
        if (!s->keys_ready)
                r = sim_keys_load(s, reterr);
        pthread_mutex_unlock(&s->keys_lock);
        return r;
}

static int sim_quote(struct attest_tee *t, const uint8_t report_data[64], uint8_t **ret, size_t *ret_len,
                     struct ck_error **reterr)
{
        struct sim_priv *s = t->priv;
        _cleanup_free_ uint8_t *q = NULL;
        struct attest_measurements m;
        size_t cert6_len, sig_len, total, off;
        int r;

        r = sim_keys_ensure(s, reterr);
        if (r < 0)
                return r;
        r = sim_measurements(t, &m, reterr);
        if (r < 0)
                return r;
        cert6_len = QE_REPORT + 64 + 2 + QE_AUTH + 2 + 4 + s->chain_len;
        sig_len = 64 + 64 + 2 + 4 + cert6_len;
        total = QUOTE_HDR + QUOTE_BODY + 4 + sig_len;
        q = calloc(1, total);
        if (!q)
                return ck_error_set(reterr, -ENOMEM, "out of memory");

        ck_put_le16(q + 0, 4); /* version */
        ck_put_le16(q + 2, 2); /* ECDSA-256 with P-256 */
        ck_put_le32(q + 4, ATTEST_TEE_TDX);
        memcpy(q + 12, sim_qe_vendor_id, 16);
        memcpy(q + 28, SIM_USER_DATA, strlen(SIM_USER_DATA));
        body_write(q + QUOTE_HDR, &m, report_data);
        off = QUOTE_HDR + QUOTE_BODY;
        ck_put_le32(q + off, (uint32_t)sig_len);
        off += 4;
        /* Quote signature over the header and body, by the attestation key. */
        r = sim_sign_raw(s->ak_key, q, QUOTE_HDR + QUOTE_BODY, q + off, reterr);
        if (r < 0)
                return r;
        memcpy(q + off + 64, s->ak_pub, 64);
        off += 128;
        ck_put_le16(q + off, 6);
        ck_put_le32(q + off + 2, (uint32_t)cert6_len);
        off += 6;
        memcpy(q + off, s->qe_report_signed, QE_REPORT + 64);
        off += QE_REPORT + 64;
        ck_put_le16(q + off, QE_AUTH);
        memcpy(q + off + 2, s->qe_auth, QE_AUTH);
        off += 2 + QE_AUTH;
        ck_put_le16(q + off, 5);
        ck_put_le32(q + off + 2, (uint32_t)s->chain_len);
        memcpy(q + off + 6, s->chain, s->chain_len);
        assert(off + 6 + s->chain_len == total);

        *ret = TAKE_PTR(q);
        *ret_len = total;
        return 0;
}

static const struct attest_tee_ops sim_ops = {
        .quote = sim_quote,
        .extend = sim_extend,
        .measurements = sim_measurements,
        .free = sim_free,
};

static int sim_state_dir_default(const char *sim_dir, char **ret, struct ck_error **reterr)
{
        char real[PATH_MAX], hex[65];
        uint8_t h[32];

        if (!realpath(sim_dir, real))
                return ck_error_errno(reterr, -errno, "cannot resolve %s", sim_dir);
        if (ck_sha256(real, strlen(real), h) < 0)
                return ck_error_set(reterr, -EIO, "SHA-256 failed");
        ck_hex_encode(h, 8, hex);
        if (asprintf(ret, "%s/%s", ATTEST_SIM_STATE_ROOT, hex) < 0)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        return 0;
}

int attest_tee_sim_open(const struct attest_tee_config *cfg, struct attest_tee *t, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *prof = NULL, *chain = NULL;
        _cleanup_free_ char *state_dir = NULL;
        _cleanup_close_ int dfd = -1;
        struct sim_priv *s;
        size_t n = 0;
        int r;

        if (!cfg->sim_dir)
                return ck_error_set(reterr, -EINVAL,
                                    "the simulated TD needs a sim directory (made by "
                                    "`conker tdx-sim init DIR`)");
        dfd = open(cfg->sim_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open sim directory %s", cfg->sim_dir);
        s = calloc(1, sizeof(*s));
        if (!s)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        s->state_fd = -1;
        s->dir_fd = -1;
        pthread_mutex_init(&s->keys_lock, NULL);
        t->priv = s;
        t->ops = &sim_ops; /* from here on attest_tee_free() releases s */

        r = ck_read_file_at(dfd, SIM_FILE_PROFILE, 64 << 10, &prof, &n, reterr);
        if (r >= 0)
                r = sim_profile_parse(prof, n, NULL, &s->prof, reterr);
        if (r >= 0)
                r = ck_read_file_at(dfd, SIM_FILE_PCK_CHAIN, SIM_CHAIN_MAX, &chain, &s->chain_len, reterr);
        if (r >= 0)
                r = key_file_check(dfd, SIM_FILE_PCK_KEY, reterr);
        if (r >= 0)
                r = key_file_check(dfd, SIM_FILE_AK_KEY, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "sim directory %s", cfg->sim_dir);
        s->chain = (char *)TAKE_PTR(chain);
        s->dir_fd = TAKE_FD(dfd);

        if (cfg->sim_state_dir) {
                state_dir = strdup(cfg->sim_state_dir);
                if (!state_dir)
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
        } else {
                r = sim_state_dir_default(cfg->sim_dir, &state_dir, reterr);
                if (r < 0)
                        return r;
        }
        r = ck_mkdir_p(state_dir, 0700);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot create sim state directory %s", state_dir);
        s->state_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->state_fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open sim state directory %s", state_dir);
        if (!t->rt_log_path && asprintf(&t->rt_log_path, "%s/rtmr3.log", state_dir) < 0) {
                t->rt_log_path = NULL;
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        s->rt_log_path = strdup(t->rt_log_path);
        if (!s->rt_log_path)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        return 0;
}
