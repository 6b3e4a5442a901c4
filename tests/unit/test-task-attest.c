/* Unit tests for conkerd's Attesting step (src/task/attest-step.c) with a simulated TD and no
 * broker: what happens before and around the exchange, and what it measures into RTMR3 (the
 * image and the task-config, each once however many tasks repeat them; a full log refused when a
 * task is created). The exchange with a real broker (releases, refusals with their reasons, pins)
 * is covered end to end by tests/e2e/test_seed_story.py. */
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
#include "collateral.h"
#include "eventlog.h"
#include "fs.h"
#include "parse.h"
#include "ratls.h"
#include "sim.h"
#include "ssl.h"
#include "task-config.h"
#include "tee.h"

#define IMAGE_ID  "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define IMAGE_REF "docker.io/reckey/conker-example-app:latest"

#define PIN "#sha256:0000000000000000000000000000000000000000000000000000000000000000"

static char tmp[64], simdir[128];
static struct attest_tee *the_tee;

static int setup(void **state)
{
        struct attest_sim_init_opts o = {.validity_days = 2};
        _cleanup_error_ struct ck_error *e = NULL;
        char statedir[128];
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
        struct task_request req = {.kms = eps, .n_kms = n};
        struct task_attest_ctx ctx = {
                .task_id = "0123456789abcdef0123456789abcdef",
                .image_ref = IMAGE_REF,
                .image_id = IMAGE_ID,
                .req = &req,
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

        /* The image and the task-config were measured once, before the first endpoint, and the
         * log replays. */
        _cleanup_free_ uint8_t *log = NULL;
        _cleanup_(attest_rt_log_clear) struct attest_rt_log parsed = {0};
        struct attest_measurements m;
        uint8_t replayed[48];
        size_t len = 0;

        assert_int_equal(attest_tee_rt_log_read(the_tee, &log, &len, NULL), 0);
        assert_int_equal(attest_rt_log_parse(log, len, &parsed, NULL), 0);
        assert_int_equal(parsed.n, 2);
        assert_string_equal(parsed.events[0].name, "image-digest");
        assert_string_equal(parsed.events[0].payload, IMAGE_ID);
        assert_string_equal(parsed.events[1].name, "task-config");
        assert_true(ck_startswith(parsed.events[1].payload, "sha256:"));
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
        assert_int_equal(rt_events(), 2); /* image-digest, task-config */
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

/* The measuring half of the step for one task of the seed's shape. */
static int measure(const struct task_request *req, char **ret_doc, size_t *ret_len, struct ck_error **e)
{
        struct task_attest_ctx ctx = {
                .task_id = "0123456789abcdef0123456789abcdef",
                .image_ref = IMAGE_REF,
                .image_id = IMAGE_ID,
                .req = req,
                .endpoints = req->kms,
                .n_endpoints = req->n_kms,
                .tee = the_tee,
        };
        return task_attest_measure(&ctx, ret_doc, ret_len, e);
}

/* Issue 9, finding 6: 5,000 tasks of one image in a row leave the TD able to attest. Before
 * deduplication each task added an event, so the log passed what a certificate can carry after a
 * few hundred tasks and filled at 4096. Now the log stays two events (one image-digest, one
 * task-config), and an RA-TLS identity made after the 5,000th task verifies with the simulated
 * TD's collateral, its log replaying to the quoted RTMR3. */
static void test_5000_tasks_one_image(void **state)
{
        char *eps[] = {(char *)"127.0.0.1:3333", NULL};
        char *env[] = {(char *)"userId=secret-127.0.0.1:3333", NULL};
        struct task_request req = {.env = env, .n_env = 1, .kms = eps, .n_kms = 1};
        _cleanup_free_ char *doc = NULL;
        char digest[TASK_CONFIG_DIGEST_LEN];
        size_t len = 0;

        for (unsigned i = 0; i < 5000; i++) {
                _cleanup_error_ struct ck_error *e = NULL;
                _cleanup_free_ char *d = NULL;
                size_t l = 0;
                int r = measure(&req, &d, &l, &e);

                if (r < 0)
                        fail_msg("task %u: %s", i, ck_error_message(e, r));
                if (i == 0) {
                        doc = TAKE_PTR(d);
                        len = l;
                } else {
                        assert_int_equal(l, len);
                        assert_memory_equal(d, doc, len);
                }
        }
        assert_int_equal(rt_events(), 2);

        /* Quote + replay: what a broker checks. */
        _cleanup_(attest_collateral_freep) struct attest_collateral *col = NULL;
        _cleanup_(X509_freep) X509 *root = NULL, *cert = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev = NULL;
        _cleanup_(attest_rt_log_clear) struct attest_rt_log parsed = {0};
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_ratls_claims c = {.app_id = (const uint8_t *)IMAGE_ID,
                                        .app_id_len = strlen(IMAGE_ID),
                                        .rtmr3_log_from_tee = true,
                                        .task_config = (const uint8_t *)doc,
                                        .task_config_len = len};
        char p[256];
        int r;

        snprintf(p, sizeof(p), "%s/collateral.json", simdir);
        assert_int_equal(attest_collateral_load_file(p, &col, NULL), 0);
        snprintf(p, sizeof(p), "%s/root-ca.pem", simdir);
        assert_int_equal(attest_root_load_file(p, &root, NULL), 0);
        struct attest_verify_opts o = {.now = time(NULL), .root = root};
        assert_int_equal(attest_ratls_make_identity(the_tee, &c, 600, &key, &cert, NULL), 0);
        r = attest_ratls_verify_cert(cert, col, &o, &ev, &e);
        if (r < 0)
                fail_msg("verify: %s", ck_error_message(e, r));
        assert_non_null(ev->rtmr3_log);
        /* The document travels as the task-config claim, and its digest is the logged event. */
        assert_non_null(ev->task_config);
        assert_int_equal(ev->task_config_len, len);
        assert_memory_equal(ev->task_config, doc, len);
        assert_int_equal(attest_rt_log_parse(ev->rtmr3_log, ev->rtmr3_log_len, &parsed, NULL), 0);
        assert_int_equal(parsed.n, 2);
        assert_string_equal(parsed.events[0].name, "image-digest");
        assert_string_equal(parsed.events[0].payload, IMAGE_ID);
        assert_int_equal(task_config_digest(doc, len, digest), 0);
        assert_string_equal(parsed.events[1].name, "task-config");
        assert_string_equal(parsed.events[1].payload, digest);
}

/* Another configuration of the same image adds its task-config only; repeating the first one
 * adds nothing (presence, not position, is what the broker checks). */
static void test_new_config_adds_one_event(void **state)
{
        char *eps[] = {(char *)"127.0.0.1:3333", NULL};
        char *env_a[] = {(char *)"A=1", NULL}, *env_b[] = {(char *)"A=2", NULL};
        struct task_request a = {.env = env_a, .n_env = 1, .kms = eps, .n_kms = 1};
        struct task_request b = {.env = env_b, .n_env = 1, .kms = eps, .n_kms = 1};
        char *d = NULL;
        size_t l = 0;

        assert_int_equal(measure(&a, &d, &l, NULL), 0);
        free(TAKE_PTR(d));
        assert_int_equal(rt_events(), 2);
        assert_int_equal(measure(&b, &d, &l, NULL), 0);
        free(TAKE_PTR(d));
        assert_int_equal(rt_events(), 3);
        assert_int_equal(measure(&a, &d, &l, NULL), 0);
        free(TAKE_PTR(d));
        assert_int_equal(rt_events(), 3);
}

static size_t filler_line(int fd, unsigned i, size_t payload_len)
{
        _cleanup_free_ char *payload = malloc(payload_len + 1), *line = NULL;
        uint8_t digest[48];

        assert_non_null(payload);
        assert_true(payload_len >= 8);
        memset(payload, 'p', payload_len);
        payload[payload_len] = 0;
        snprintf(payload, 9, "%08u", i);
        payload[8] = payload_len > 8 ? 'p' : 0;
        assert_int_equal(attest_rt_event_digest("filler", payload, digest), 0);
        assert_int_equal(attest_rt_event_format("filler", payload, digest, &line), 0);
        assert_int_equal(attest_tee_extend(the_tee, 3, digest, NULL), 0);
        assert_int_equal(ck_write_all(fd, line, strlen(line)), 0);
        return strlen(line);
}

/* Fills the log with events that replay (the TD stays consistent, just full), the way thousands
 * of distinct tasks would, until `room` bytes are left. */
static void fill_log(size_t room)
{
        _cleanup_close_ int fd = open(attest_tee_rt_log_path(the_tee), O_WRONLY | O_APPEND | O_CLOEXEC);
        size_t total = 0, overhead, left;
        unsigned i = 0;

        assert_true(fd >= 0);
        {
                _cleanup_free_ char *line = NULL;
                uint8_t digest[48] = {0};
                assert_int_equal(attest_rt_event_format("filler", "", digest, &line), 0);
                overhead = strlen(line);
        }
        for (;;) {
                left = ATTEST_RT_LOG_MAX - total - room; /* bytes of lines still to write */
                if (left <= 2 * (overhead + ATTEST_RT_PAYLOAD_MAX))
                        break;
                total += filler_line(fd, i++, ATTEST_RT_PAYLOAD_MAX);
        }
        /* The rest in two lines, each between half and all of a full one. */
        total += filler_line(fd, i++, left / 2 - overhead);
        total += filler_line(fd, i++, ATTEST_RT_LOG_MAX - total - room - overhead);
        assert_int_equal(total, ATTEST_RT_LOG_MAX - room);
}

/* A full log is refused when the task is created, with a message that says why and what to do,
 * and the Attesting step says the same when it gets there; tasks without KmsEndpoints (which
 * measure nothing) are still accepted. */
static void test_full_log_refused_before_accepting(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL, *e2 = NULL, *e3 = NULL;
        char *eps[] = {(char *)"127.0.0.1:3333", NULL};
        struct task_request req = {.kms = eps, .n_kms = 1}, none = {0};
        char *d = NULL;
        size_t l = 0;
        int r;

        /* (Make sure the log file exists before appending to it.) */
        assert_int_equal(task_attest_admit(the_tee, IMAGE_REF, &req, NULL), 0);
        /* Room for one event of the task (about 216 bytes), not for both. */
        fill_log(300);
        r = task_attest_admit(the_tee, IMAGE_REF, &req, &e);
        assert_int_equal(r, -EAGAIN);
        assert_non_null(strstr(ck_error_message(e, r), "is full"));
        assert_non_null(strstr(ck_error_message(e, r), "until it reboots"));
        assert_int_equal(task_attest_admit(the_tee, IMAGE_REF, &none, NULL), 0);

        /* Room for one small event remains, not for the task's two: the second fails, named. */
        r = measure(&req, &d, &l, &e2);
        if (r >= 0) {
                free(d);
                fail_msg("measuring into a full log succeeded");
        }
        assert_int_equal(r, -ENOSPC);
        assert_non_null(strstr(ck_error_message(e2, r), "until it reboots"));

        /* What is in the log still replays: the TD can still attest for what it measured. */
        _cleanup_free_ uint8_t *log = NULL;
        _cleanup_(attest_rt_log_clear) struct attest_rt_log parsed = {0};
        struct attest_measurements m;
        uint8_t replayed[48];
        size_t len = 0;

        assert_int_equal(attest_tee_rt_log_read(the_tee, &log, &len, NULL), 0);
        assert_int_equal(attest_rt_log_parse(log, len, &parsed, &e3), 0);
        assert_int_equal(attest_rt_log_replay(&parsed, replayed), 0);
        assert_int_equal(attest_tee_measurements(the_tee, &m, NULL), 0);
        assert_memory_equal(replayed, m.rtmr[3], 48);
}

/* A task whose measurement fails (here: the RTMR3 log has no room left) is not attested: the
 * step fails with the measuring error, and no broker is even connected to, since every quote
 * of the task must carry its image and task-config in RTMR3. */
static void test_failed_measure_contacts_no_broker(void **state)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof(a);
        _cleanup_close_ int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        char ep[160];
        char *eps[] = {ep, NULL};
        struct task_request req = {.kms = eps, .n_kms = 1};
        struct task_released_secret *v = NULL;
        size_t n = 0;
        int r;

        /* A broker address that listens, so that a connection would be seen. */
        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(lfd, 4), 0);
        assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
        snprintf(ep, sizeof(ep), "127.0.0.1:%u%s", ntohs(a.sin_port), PIN);

        assert_int_equal(task_attest_admit(the_tee, IMAGE_REF, &req, NULL), 0);
        fill_log(100);
        r = run(eps, 1, NULL, the_tee, &v, &n, &e);
        assert_int_equal(r, -ENOSPC);
        assert_non_null(strstr(ck_error_message(e, r), "measuring the task into RTMR3"));
        assert_null(v);
        assert_int_equal(accept4(lfd, NULL, NULL, SOCK_CLOEXEC), -1);
        assert_int_equal(errno, EAGAIN);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_no_endpoints, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_tee_fails_closed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_endpoint_before_measuring, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unreachable_broker_measured_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_between_endpoints, setup, teardown),
                cmocka_unit_test_setup_teardown(test_5000_tasks_one_image, setup, teardown),
                cmocka_unit_test_setup_teardown(test_new_config_adds_one_event, setup, teardown),
                cmocka_unit_test_setup_teardown(test_full_log_refused_before_accepting, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unpinned_broker_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_measure_contacts_no_broker, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
