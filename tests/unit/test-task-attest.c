/* Unit tests for conkerd's Attesting step (src/task/attest-step.c) with a simulated TD and no
 * broker: what happens before and around the exchange. The exchange with a real broker (releases,
 * refusals with their reasons, pins) is covered end to end by tests/e2e/test_seed_story.py. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attest-step.h"
#include "eventlog.h"
#include "fs.h"
#include "parse.h"
#include "sim.h"
#include "tee.h"

#define IMAGE_ID "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

#define PIN "#sha256:0000000000000000000000000000000000000000000000000000000000000000"

static char tmp[64];
static struct attest_tee *the_tee;

static int setup(void **state)
{
        struct attest_sim_init_opts o = {.validity_days = 2};
        _cleanup_error_ struct ck_error *e = NULL;
        char simdir[128], statedir[128];
        int r;

        snprintf(tmp, sizeof(tmp), "/tmp/ck-test-attest-XXXXXX");
        if (!mkdtemp(tmp))
                return -1;
        snprintf(simdir, sizeof(simdir), "%s/sim", tmp);
        snprintf(statedir, sizeof(statedir), "%s/state", tmp);
        r = attest_sim_init(simdir, &o, &e);
        if (r < 0) {
                print_error("sim init: %s\n", ck_error_message(e, r));
                return -1;
        }
        struct attest_tee_config cfg = {
                .kind = ATTEST_TEE_KIND_SIM, .sim_dir = simdir, .sim_state_dir = statedir};
        r = attest_tee_open(&cfg, &the_tee, &e);
        if (r < 0) {
                print_error("sim open: %s\n", ck_error_message(e, r));
                return -1;
        }
        return 0;
}

static int teardown(void **state)
{
        attest_tee_free(TAKE_PTR(the_tee));
        return ck_rm_rf_at(AT_FDCWD, tmp);
}

/* A loopback port nothing listens on (bound, then closed). */
static unsigned closed_port(void)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        close(fd);
        return ntohs(a.sin_port);
}

static size_t rt_events(void)
{
        _cleanup_free_ uint8_t *log = NULL;
        _cleanup_(attest_rt_log_clear) struct attest_rt_log parsed = {0};
        size_t len = 0;

        assert_int_equal(attest_tee_rt_log_read(the_tee, &log, &len, NULL), 0);
        assert_int_equal(attest_rt_log_parse(log, len, &parsed, NULL), 0);
        return parsed.n;
}

static bool allow_unpinned;

static int run(char **eps, size_t n, atomic_int *cancel, struct attest_tee *t,
               struct task_released_secret **ret, size_t *ret_n, struct ck_error **e)
{
        struct task_attest_ctx ctx = {
                .task_id = "0123456789abcdef0123456789abcdef",
                .image_id = IMAGE_ID,
                .endpoints = eps,
                .n_endpoints = n,
                .cancel = cancel,
                .tee = t,
                .timeout_ms = 5000,
                .allow_unpinned = allow_unpinned,
        };
        return task_attest_step(&ctx, ret, ret_n, e);
}

static void test_no_endpoints(void **state)
{
        struct task_released_secret *v = (void *)1;
        size_t n = 7;

        assert_int_equal(run(NULL, 0, NULL, the_tee, &v, &n, NULL), 0);
        assert_null(v);
        assert_int_equal(n, 0);
        assert_int_equal(rt_events(), 0); /* nothing measured without endpoints */
}

static void test_no_tee_fails_closed(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        char *eps[] = {(char *)"127.0.0.1:3333", NULL};
        struct task_released_secret *v = NULL;
        size_t n = 0;
        int r = run(eps, 1, NULL, NULL, &v, &n, &e);

        assert_int_equal(r, -ENOTSUP);
        assert_non_null(strstr(ck_error_message(e, r), "remote attestation is not available"));
        assert_null(v);
}

static void test_bad_endpoint_before_measuring(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        char *eps[] = {(char *)"127.0.0.1:1" PIN, (char *)"no-port-here", NULL};
        struct task_released_secret *v = NULL;
        size_t n = 0;
        int r = run(eps, 2, NULL, the_tee, &v, &n, &e);

        assert_true(r < 0);
        assert_true(ck_startswith(ck_error_message(e, r), "KMS no-port-here: "));
        assert_null(v);
        assert_int_equal(rt_events(), 0);
}

static void test_unreachable_broker_measured_once(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        char ep1[160], ep2[160], prefix[200];
        char *eps[] = {ep1, ep2, NULL};
        struct task_released_secret *v = NULL;
        size_t n = 0;
        int r;

        snprintf(ep1, sizeof(ep1), "127.0.0.1:%u%s", closed_port(), PIN);
        snprintf(ep2, sizeof(ep2), "127.0.0.1:%u%s", closed_port(), PIN);
        r = run(eps, 2, NULL, the_tee, &v, &n, &e);
        assert_true(r < 0);
        snprintf(prefix, sizeof(prefix), "KMS %s: ", ep1);
        /* The endpoint is named once, as given; the client's own "broker <ep>" is not repeated. */
        assert_true(ck_startswith(ck_error_message(e, r), prefix));
        assert_null(strstr(ck_error_message(e, r), "broker 127.0.0.1"));
        assert_null(v);

        /* The image was measured once, before the first endpoint, and the log replays. */
        _cleanup_free_ uint8_t *log = NULL;
        _cleanup_(attest_rt_log_clear) struct attest_rt_log parsed = {0};
        struct attest_measurements m;
        uint8_t replayed[48];
        size_t len = 0;

        assert_int_equal(attest_tee_rt_log_read(the_tee, &log, &len, NULL), 0);
        assert_int_equal(attest_rt_log_parse(log, len, &parsed, NULL), 0);
        assert_int_equal(parsed.n, 1);
        assert_non_null(memmem(log, len, "\"name\":\"image-digest\",\"payload\":\"" IMAGE_ID "\"",
                               strlen("\"name\":\"image-digest\",\"payload\":\"" IMAGE_ID "\"")));
        assert_int_equal(attest_rt_log_replay(&parsed, replayed), 0);
        assert_int_equal(attest_tee_measurements(the_tee, &m, NULL), 0);
        assert_memory_equal(replayed, m.rtmr[3], 48);
}

/* Finding 4: a broker without a certificate pin is not authenticated (the host could answer in
 * its place), so such an endpoint fails the step before anything is measured or sent, naming
 * the config key that allows it; with the key set, the step goes on to connect. */
static void test_unpinned_broker_refused(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL, *e2 = NULL;
        char ep[64];
        char *eps[] = {ep, NULL};
        struct task_released_secret *v = NULL;
        size_t n = 0;
        int r;

        snprintf(ep, sizeof(ep), "127.0.0.1:%u", closed_port());
        r = run(eps, 1, NULL, the_tee, &v, &n, &e);
        assert_int_equal(r, -EPERM);
        assert_non_null(strstr(ck_error_message(e, r), "kms-allow-unpinned = true"));
        assert_non_null(strstr(ck_error_message(e, r), "no certificate pin"));
        assert_null(v);
        assert_int_equal(rt_events(), 0);

        allow_unpinned = true;
        r = run(eps, 1, NULL, the_tee, &v, &n, &e2);
        allow_unpinned = false;
        assert_int_equal(r, -ECONNREFUSED);
        assert_int_equal(rt_events(), 1);
}

static void test_cancel_between_endpoints(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        char *eps[] = {(char *)"127.0.0.1:3333" PIN, NULL};
        struct task_released_secret *v = NULL;
        atomic_int cancel = 1;
        size_t n = 0;

        assert_int_equal(run(eps, 1, &cancel, the_tee, &v, &n, &e), -ECANCELED);
        assert_null(v);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_no_endpoints, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_tee_fails_closed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_endpoint_before_measuring, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unreachable_broker_measured_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_between_endpoints, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unpinned_broker_refused, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
