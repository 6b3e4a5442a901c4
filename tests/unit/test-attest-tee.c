/* Unit tests for the TEE providers: the configfs-tsm/sysfs TDX provider against a fake tree
 * in a temporary directory, provider selection, and the simulated TD's RTMR state and
 * runtime-event measurement. */
#include "cmocka-wrap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eventlog.h"
#include "fs.h"
#include "sim.h"
#include "ssl.h"
#include "tee-internal.h"

static char tmp[64];

static int setup(void **state)
{
        snprintf(tmp, sizeof(tmp), "/tmp/ck-test-tee-XXXXXX");
        return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
        return ck_rm_rf_at(AT_FDCWD, tmp);
}

static void put(const char *dir, const char *name, const void *data, size_t len)
{
        char p[256];
        _cleanup_close_ int fd = -1;

        snprintf(p, sizeof(p), "%s/%s", dir, name);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(ck_write_all(fd, data, len), 0);
}

static void path(char *out, size_t n, const char *rel)
{
        snprintf(out, n, "%s/%s", tmp, rel);
}

/* ---- fake configfs-tsm entry: inblob and outblob are FIFOs served by a thread that plays
 * the kernel: it reads the 64-byte inblob, bumps generation, then serves the quote. ---- */

struct fake_tsm {
        char dir[256];
        unsigned rounds;
        unsigned gen_step; /* 1 = honest kernel; 2 = another writer interfered */
        uint8_t seen[64];
};

static void *fake_tsm_serve(void *arg)
{
        struct fake_tsm *f = arg;
        unsigned gen = 0;

        for (unsigned i = 0; i < f->rounds; i++) {
                char p[300], g[32];
                int fd;
                snprintf(p, sizeof(p), "%s/inblob", f->dir);
                fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || read(fd, f->seen, 64) != 64)
                        return NULL;
                close(fd);
                gen += f->gen_step;
                snprintf(g, sizeof(g), "%u\n", gen);
                put(f->dir, "generation", g, strlen(g));
                snprintf(p, sizeof(p), "%s/outblob", f->dir);
                fd = open(p, O_WRONLY | O_CLOEXEC);
                if (fd < 0)
                        return NULL;
                (void)!write(fd, "QUOTE-BYTES", 11);
                close(fd);
        }
        return NULL;
}

static void fake_entry(struct fake_tsm *f, const char *provider)
{
        char p[300];

        path(f->dir, sizeof(f->dir), "entry");
        assert_int_equal(mkdir(f->dir, 0700), 0);
        put(f->dir, "provider", provider, strlen(provider));
        put(f->dir, "generation", "0\n", 2);
        snprintf(p, sizeof(p), "%s/inblob", f->dir);
        assert_int_equal(mkfifo(p, 0600), 0);
        snprintf(p, sizeof(p), "%s/outblob", f->dir);
        assert_int_equal(mkfifo(p, 0600), 0);
}

static void test_tsm_quote_entry(void **state)
{
        struct fake_tsm f = {.rounds = 1, .gen_step = 1};
        _cleanup_free_ uint8_t *q = NULL;
        _cleanup_close_ int efd = -1;
        uint8_t rd[64];
        pthread_t th;
        size_t n = 0;

        for (int i = 0; i < 64; i++)
                rd[i] = (uint8_t)i;
        fake_entry(&f, "tdx_guest\n");
        efd = open(f.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(pthread_create(&th, NULL, fake_tsm_serve, &f), 0);
        assert_int_equal(attest_tdx_quote_entry(efd, rd, &q, &n, NULL), 0);
        pthread_join(th, NULL);
        assert_int_equal(n, 11);
        assert_memory_equal(q, "QUOTE-BYTES", 11);
        assert_memory_equal(f.seen, rd, 64);
}

static void test_tsm_generation_race(void **state)
{
        struct fake_tsm f = {.rounds = 3, .gen_step = 2};
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_close_ int efd = -1;
        uint8_t rd[64] = {0}, *q = NULL;
        pthread_t th;
        size_t n = 0;

        fake_entry(&f, "tdx_guest");
        efd = open(f.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(pthread_create(&th, NULL, fake_tsm_serve, &f), 0);
        /* Every round sees generation move by 2: the outblob may be someone else's. */
        assert_int_equal(attest_tdx_quote_entry(efd, rd, &q, &n, &e), -EAGAIN);
        pthread_join(th, NULL);
        assert_null(q);
        assert_non_null(strstr(e->msg, "generation"));
}

static void test_tsm_wrong_provider(void **state)
{
        struct fake_tsm f = {0};
        _cleanup_close_ int efd = -1;
        uint8_t rd[64] = {0}, *q = NULL;
        size_t n = 0;

        fake_entry(&f, "sev_guest\n");
        efd = open(f.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(attest_tdx_quote_entry(efd, rd, &q, &n, NULL), -ENODEV);
}

static void make_fake_tdx(char *report, char *measure)
{
        uint8_t mr[48];

        path(report, 256, "tsm/report");
        path(measure, 256, "measurements");
        assert_int_equal(ck_mkdir_p(report, 0755), 0);
        assert_int_equal(ck_mkdir_p(measure, 0755), 0);
        for (int i = 0; i < 48; i++)
                mr[i] = (uint8_t)(0xA0 + i);
        put(measure, "mrtd:sha384", mr, 48);
        for (int i = 0; i < 4; i++) {
                char n[32];
                mr[0] = (uint8_t)i;
                snprintf(n, sizeof(n), "rtmr%d:sha384", i);
                put(measure, n, mr, 48);
        }
        put(measure, "mrconfigid", mr, 48);
}

static int count_entries(const char *dirpath)
{
        DIR *dir = opendir(dirpath);
        struct dirent *de;
        int count = 0;

        assert_non_null(dir);
        while ((de = readdir(dir)))
                if (de->d_name[0] != '.')
                        count++;
        closedir(dir);
        return count;
}

static void test_tdx_provider_fake_tree(void **state)
{
        char report[256], measure[256], log[256];
        _cleanup_(attest_tee_freep) struct attest_tee *t = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_measurements m;
        uint8_t d[48], rd[64] = {0}, *q = NULL;
        size_t n = 0;

        make_fake_tdx(report, measure);
        path(log, sizeof(log), "rt/rtmr3.log");
        struct attest_tee_config cfg = {.kind = ATTEST_TEE_KIND_TDX,
                                        .tsm_report_dir = report,
                                        .measurements_dir = measure,
                                        .rt_log_path = log};
        assert_int_equal(attest_tee_open(&cfg, &t, NULL), 0);
        assert_int_equal(attest_tee_kind(t), ATTEST_TEE_KIND_TDX);
        assert_string_equal(attest_tee_rt_log_path(t), log);
        assert_int_equal(attest_tee_measurements(t, &m, NULL), 0);
        assert_int_equal(m.mr_td[0], 0xA0);
        assert_int_equal(m.rtmr[2][0], 2);
        assert_int_equal(m.mr_config_id[0], 3);
        assert_int_equal(m.mr_owner[0], 0); /* absent: zero */

        /* The fake rtmr3 is a plain file: the provider's write lands at offset 0, 48 bytes. */
        memset(d, 0x5A, sizeof(d));
        assert_int_equal(attest_tee_extend(t, 3, d, NULL), 0);
        assert_int_equal(attest_tee_measurements(t, &m, NULL), 0);
        assert_memory_equal(m.rtmr[3], d, 48);
        assert_int_equal(attest_tee_extend(t, 2, d, NULL), -EPERM);
        assert_int_equal(attest_tee_extend(t, 0, d, NULL), -EPERM);

        /* A plain directory is not configfs: mkdir gives an empty entry without provider.
         * The request must fail and leave no entry behind. */
        assert_true(attest_tee_quote(t, rd, &q, &n, &e) < 0);
        assert_non_null(strstr(e->msg, "provider"));
        assert_int_equal(count_entries(report), 0);
}

static void test_auto_refuses_without_tdx(void **state)
{
        char report[256], measure[256];
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_tee *t = NULL;

        path(report, sizeof(report), "nope/report");
        path(measure, sizeof(measure), "nope/measurements");
        struct attest_tee_config cfg = {
                .kind = ATTEST_TEE_AUTO, .tsm_report_dir = report, .measurements_dir = measure};
        assert_int_equal(attest_tee_open(&cfg, &t, &e), -ENODEV);
        assert_null(t);
        assert_non_null(strstr(e->msg, "--tee sim"));

        /* Directories present but no tdx_guest provider (a plain directory): still refused. */
        ck_error_free(TAKE_PTR(e));
        make_fake_tdx(report, measure);
        assert_int_equal(attest_tee_open(&cfg, &t, &e), -ENODEV);
        assert_non_null(strstr(e->msg, "--tee sim"));
}

static void test_kind_strings(void **state)
{
        assert_string_equal(attest_tee_kind_to_string(ATTEST_TEE_KIND_SIM), "sim");
        assert_int_equal(attest_tee_kind_from_string("tdx"), ATTEST_TEE_KIND_TDX);
        assert_int_equal(attest_tee_kind_from_string("auto"), ATTEST_TEE_AUTO);
        assert_int_equal(attest_tee_kind_from_string("sgx"), -EINVAL);
        assert_null(attest_tee_kind_to_string(_ATTEST_TEE_KIND_MAX));
}

/* ---- the simulated TD ---- */

static struct attest_tee *sim_open(const char *simdir, const char *statedir)
{
        struct attest_tee_config cfg = {
                .kind = ATTEST_TEE_KIND_SIM, .sim_dir = simdir, .sim_state_dir = statedir};
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_tee *t = NULL;
        int r = attest_tee_open(&cfg, &t, &e);

        if (r < 0)
                fail_msg("sim open: %s", ck_error_message(e, r));
        return t;
}

static void test_sim_rtmr_state(void **state)
{
        char simdir[256], statedir[256], sf[300];
        struct attest_sim_init_opts o = {.now = 1767225600, .validity_days = 30};
        struct attest_measurements m0, m1;
        uint8_t d[48], want[48], buf[96];
        struct stat st;

        path(simdir, sizeof(simdir), "sim");
        path(statedir, sizeof(statedir), "state");
        assert_int_equal(attest_sim_init(simdir, &o, NULL), 0);
        {
                _cleanup_(attest_tee_freep) struct attest_tee *t = sim_open(simdir, statedir);
                assert_int_equal(attest_tee_kind(t), ATTEST_TEE_KIND_SIM);
                assert_int_equal(attest_tee_measurements(t, &m0, NULL), 0);
                memset(want, 0, 48);
                assert_memory_equal(m0.rtmr[3], want, 48);
                assert_int_equal(m0.td_attributes[0] & 1, 0);       /* DEBUG = 0 */
                assert_int_equal(m0.td_attributes[3] & 0x10, 0x10); /* SEPT_VE_DISABLE = 1 */
                memset(d, 7, 48);
                assert_int_equal(attest_tee_extend(t, 3, d, NULL), 0);
        }
        /* A new process (open again) still sees the extension: state lives in statedir. */
        {
                _cleanup_(attest_tee_freep) struct attest_tee *t = sim_open(simdir, statedir);
                assert_int_equal(attest_tee_measurements(t, &m1, NULL), 0);
                memset(buf, 0, 48);
                memcpy(buf + 48, d, 48);
                assert_int_equal(ck_sha384(buf, 96, want), 0);
                assert_memory_equal(m1.rtmr[3], want, 48);
                assert_memory_equal(m1.rtmr[0], m0.rtmr[0], 3 * 48);
                assert_memory_equal(m1.mr_td, m0.mr_td, 48);
        }
        snprintf(sf, sizeof(sf), "%s/rtmrs", statedir);
        assert_int_equal(stat(sf, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(st.st_size, 4 * 48);
        /* "Reboot": the state directory is gone, RTMR3 starts from zero again. */
        assert_int_equal(ck_rm_rf_at(AT_FDCWD, statedir), 0);
        {
                _cleanup_(attest_tee_freep) struct attest_tee *t = sim_open(simdir, statedir);
                assert_int_equal(attest_tee_measurements(t, &m1, NULL), 0);
                memset(want, 0, 48);
                assert_memory_equal(m1.rtmr[3], want, 48);
        }
}

static void test_sim_measure_and_log(void **state)
{
        char simdir[256], statedir[256];
        struct attest_sim_init_opts o = {.now = 1767225600, .validity_days = 30};
        _cleanup_(attest_tee_freep) struct attest_tee *t = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ uint8_t *log = NULL;
        struct attest_rt_log parsed = {0};
        struct attest_measurements m;
        uint8_t r3[48], d[48] = {1};
        size_t n = 0;

        path(simdir, sizeof(simdir), "sim2");
        path(statedir, sizeof(statedir), "state2");
        assert_int_equal(attest_sim_init(simdir, &o, NULL), 0);
        t = sim_open(simdir, statedir);
        assert_int_equal(attest_tee_rt_log_read(t, &log, &n, NULL), 0);
        assert_int_equal(n, 0);
        free(TAKE_PTR(log));
        assert_int_equal(attest_tee_measure(t, "image-digest", "sha256:aaaa", NULL), 0);
        assert_int_equal(attest_tee_measure(t, "request-digest", "sha256:bbbb", NULL), 0);
        assert_int_equal(attest_tee_measure(t, "Bad Name", "x", NULL), -EINVAL);
        assert_int_equal(attest_tee_rt_log_read(t, &log, &n, NULL), 0);
        assert_int_equal(attest_rt_log_parse(log, n, &parsed, NULL), 0);
        assert_int_equal(parsed.n, 2);
        assert_int_equal(attest_rt_log_replay(&parsed, r3), 0);
        attest_rt_log_clear(&parsed);
        assert_int_equal(attest_tee_measurements(t, &m, NULL), 0);
        assert_memory_equal(m.rtmr[3], r3, 48);

        /* An extension that bypasses the log makes the log useless: measuring refuses. */
        assert_int_equal(attest_tee_extend(t, 3, d, NULL), 0);
        assert_int_equal(attest_tee_measure(t, "image-digest", "sha256:cccc", &e), -EUCLEAN);
        assert_non_null(strstr(e->msg, "RTMR3 does not match"));
}

struct measure_once_arg {
        struct attest_tee *t;
        atomic_int added, failed;
};

static void *measure_once_worker(void *p)
{
        struct measure_once_arg *a = p;

        for (int i = 0; i < 50; i++) {
                bool added = false;
                if (attest_tee_measure_once(a->t, "image-digest", "sha256:dddd", &added, NULL) < 0)
                        atomic_fetch_add(&a->failed, 1);
                else if (added)
                        atomic_fetch_add(&a->added, 1);
        }
        return NULL;
}

/* The deduplication runs under the log's exclusive lock: measurers racing on one event, in
 * threads and through two handles (as two processes would), extend it exactly once. A measure
 * without "once" still adds; a different payload is a new event. */
static void test_sim_measure_once(void **state)
{
        char simdir[256], statedir[256];
        struct attest_sim_init_opts o = {.now = 1767225600, .validity_days = 30};
        _cleanup_(attest_tee_freep) struct attest_tee *t1 = NULL, *t2 = NULL;
        _cleanup_free_ uint8_t *log = NULL;
        _cleanup_(attest_rt_log_clear) struct attest_rt_log parsed = {0};
        struct measure_once_arg a1 = {0}, a2 = {0};
        struct attest_measurements m;
        pthread_t th[4];
        uint8_t r3[48];
        bool added = true;
        size_t n = 0;

        path(simdir, sizeof(simdir), "sim3");
        path(statedir, sizeof(statedir), "state3");
        assert_int_equal(attest_sim_init(simdir, &o, NULL), 0);
        t1 = sim_open(simdir, statedir);
        t2 = sim_open(simdir, statedir);
        a1.t = t1;
        a2.t = t2;
        for (int i = 0; i < 4; i++)
                assert_int_equal(pthread_create(&th[i], NULL, measure_once_worker, i % 2 ? &a2 : &a1), 0);
        for (int i = 0; i < 4; i++)
                pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&a1.failed) + atomic_load(&a2.failed), 0);
        assert_int_equal(atomic_load(&a1.added) + atomic_load(&a2.added), 1);

        assert_int_equal(attest_tee_measure_once(t1, "image-digest", "sha256:dddd", &added, NULL), 0);
        assert_false(added);
        assert_int_equal(attest_tee_measure_once(t1, "task-config", "sha256:dddd", &added, NULL), 0);
        assert_true(added); /* same payload, another name: another event */
        assert_int_equal(attest_tee_measure(t1, "image-digest", "sha256:dddd", NULL), 0);

        assert_int_equal(attest_tee_rt_log_read(t1, &log, &n, NULL), 0);
        assert_int_equal(attest_rt_log_parse(log, n, &parsed, NULL), 0);
        assert_int_equal(parsed.n, 3);
        assert_int_equal(attest_rt_log_replay(&parsed, r3), 0);
        assert_int_equal(attest_tee_measurements(t2, &m, NULL), 0);
        assert_memory_equal(m.rtmr[3], r3, 48);

        /* Room: two more small events fit; more events than the log holds do not. */
        assert_int_equal(attest_tee_rt_log_check_room(t1, 2, 1024, NULL), 0);
        assert_int_equal(attest_tee_rt_log_check_room(t1, ATTEST_RT_LOG_MAX_EVENTS, 0, NULL), -ENOSPC);
        assert_int_equal(attest_tee_rt_log_check_room(t1, 1, ATTEST_RT_LOG_MAX, NULL), -ENOSPC);
}

/* Opening checks the key files without parsing them (an idle daemon does not initialise
 * OpenSSL): a missing key refuses the open; a key that does not parse fails the first quote,
 * naming the file, and a quote after the key is repaired works. */
static void test_sim_keys_at_first_quote(void **state)
{
        char simdir[256], statedir[256], kp[300], saved[300];
        struct attest_sim_init_opts o = {.now = 1767225600, .validity_days = 30};
        struct attest_tee_config cfg = {.kind = ATTEST_TEE_KIND_SIM};
        _cleanup_(attest_tee_freep) struct attest_tee *t = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ uint8_t *q = NULL;
        uint8_t rd[64] = {0};
        size_t qlen = 0;
        int r;

        path(simdir, sizeof(simdir), "sim");
        path(statedir, sizeof(statedir), "state");
        assert_int_equal(attest_sim_init(simdir, &o, NULL), 0);
        cfg.sim_dir = simdir;
        cfg.sim_state_dir = statedir;
        snprintf(kp, sizeof(kp), "%s/qe-ak-key.pem", simdir);
        snprintf(saved, sizeof(saved), "%s/ak.saved", tmp);

        /* Missing: refused at open. */
        assert_int_equal(rename(kp, saved), 0);
        r = attest_tee_open(&cfg, &t, &e);
        assert_int_equal(r, -ENOENT);
        assert_non_null(strstr(ck_error_message(e, r), "qe-ak-key.pem"));
        assert_null(t);
        ck_error_free(e);
        e = NULL;
        /* Empty: refused at open. */
        put(simdir, "qe-ak-key.pem", "", 0);
        r = attest_tee_open(&cfg, &t, &e);
        assert_int_equal(r, -EBADMSG);
        assert_null(t);
        ck_error_free(e);
        e = NULL;

        /* Not a key: opens, the quote fails and says which file. */
        put(simdir, "qe-ak-key.pem", "not a key\n", 10);
        assert_int_equal(attest_tee_open(&cfg, &t, NULL), 0);
        r = attest_tee_quote(t, rd, &q, &qlen, &e);
        assert_int_equal(r, -EBADMSG);
        assert_non_null(strstr(ck_error_message(e, r), "qe-ak-key.pem"));
        assert_null(q);
        ck_error_free(e);
        e = NULL;

        /* Repaired: the next quote loads it. */
        assert_int_equal(rename(saved, kp), 0);
        assert_int_equal(attest_tee_quote(t, rd, &q, &qlen, NULL), 0);
        assert_true(qlen > 632);
        assert_int_equal(q[0], 4);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_tsm_quote_entry, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tsm_generation_race, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tsm_wrong_provider, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tdx_provider_fake_tree, setup, teardown),
                cmocka_unit_test_setup_teardown(test_auto_refuses_without_tdx, setup, teardown),
                cmocka_unit_test(test_kind_strings),
                cmocka_unit_test_setup_teardown(test_sim_rtmr_state, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sim_measure_and_log, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sim_measure_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sim_keys_at_first_quote, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
