/* Unit tests for the broker's audit log: one JSON line per decision, appended, with the
 * measurements seen and without anything that was not given to it. */
#include "cmocka-wrap.h"

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "fs.h"
#include "policy.h"

static char tmpdir[64];

static int setup(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-audit-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

static void test_lines(void **state)
{
        _cleanup_(broker_audit_closep) struct broker_audit *a = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        struct attest_result r = {.status = ATTEST_TCB_UP_TO_DATE,
                                  .tee_type = ATTEST_TEE_TDX,
                                  .tcb_eval_number = 17,
                                  .simulated = true};
        struct broker_audit_entry e = {.time = {.tv_sec = 1700000000, .tv_nsec = 5000000},
                                       .peer = "127.0.0.1:4444"};
        const char *app = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        const uint8_t bin[3] = {0xff, 0x00, 0x01};
        char path[128], *line, *save = NULL;
        size_t len = 0;
        struct stat st;
        int n = 0;

        memcpy(r.fmspc, "00806f050000", 13);
        memset(r.m.rtmr[1], 0xab, 48);
        snprintf(path, sizeof(path), "%s/sub/audit.jsonl", tmpdir);
        assert_int_equal(broker_audit_open(path, BROKER_AUDIT_FSYNC_ALWAYS, &a, NULL), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        e.release = true;
        e.secret_id = "default";
        e.result = &r;
        e.app_id = (const uint8_t *)app;
        e.app_id_len = strlen(app);
        assert_int_equal(broker_audit_append(a, &e), 0);

        e = (struct broker_audit_entry){.time = e.time,
                                        .peer = "[::1]:5",
                                        .reason = "quote_invalid",
                                        .app_id = bin,
                                        .app_id_len = sizeof(bin)};
        assert_int_equal(broker_audit_append(a, &e), 0);

        assert_int_equal(ck_read_file(path, 1 << 20, &buf, &len, NULL), 0);
        for (line = strtok_r((char *)buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
                json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
                assert_non_null(j);
                assert_string_equal(json_string_value(json_object_get(j, "time")),
                                    "2023-11-14T22:13:20.005Z");
                if (n == 0) {
                        assert_string_equal(json_string_value(json_object_get(j, "decision")), "release");
                        assert_string_equal(json_string_value(json_object_get(j, "secretId")), "default");
                        assert_string_equal(json_string_value(json_object_get(j, "tcbStatus")), "UpToDate");
                        assert_string_equal(json_string_value(json_object_get(j, "fmspc")), "00806f050000");
                        assert_string_equal(json_string_value(json_object_get(j, "appId")), app);
                        assert_true(json_is_true(json_object_get(j, "simulated")));
                        assert_int_equal(strlen(json_string_value(json_object_get(j, "rtmr1"))), 96);
                        assert_memory_equal(json_string_value(json_object_get(j, "rtmr1")), "abababab", 8);
                        assert_null(json_object_get(j, "reason"));
                } else {
                        assert_string_equal(json_string_value(json_object_get(j, "decision")), "refuse");
                        assert_string_equal(json_string_value(json_object_get(j, "reason")),
                                            "quote_invalid");
                        assert_string_equal(json_string_value(json_object_get(j, "peer")), "[::1]:5");
                        assert_string_equal(json_string_value(json_object_get(j, "appId")), "hex:ff0001");
                        assert_null(json_object_get(j, "rtmr1"));
                        assert_null(json_object_get(j, "secretId"));
                }
                json_decref(j);
        }
        assert_int_equal(n, 2);
}

static void *append_many(void *arg)
{
        struct broker_audit *a = arg;
        struct broker_audit_entry e = {.peer = "127.0.0.1:1", .reason = "image_mismatch"};

        for (int i = 0; i < 50; i++)
                if (broker_audit_append(a, &e) < 0)
                        return (void *)1;
        return NULL;
}

/* Concurrent appenders with fsync "always" (group commit): every line arrives whole. */
static void test_concurrent_lines(void **state)
{
        _cleanup_free_ uint8_t *buf = NULL;
        struct broker_audit *a = NULL;
        pthread_t t[8];
        char path[128], *line, *save = NULL;
        size_t len = 0;
        int n = 0;

        snprintf(path, sizeof(path), "%s/audit.jsonl", tmpdir);
        assert_int_equal(broker_audit_open(path, BROKER_AUDIT_FSYNC_ALWAYS, &a, NULL), 0);
        for (int i = 0; i < 8; i++)
                assert_int_equal(pthread_create(&t[i], NULL, append_many, a), 0);
        for (int i = 0; i < 8; i++) {
                void *r = NULL;
                pthread_join(t[i], &r);
                assert_null(r);
        }
        broker_audit_close(a);
        assert_int_equal(ck_read_file(path, 1 << 20, &buf, &len, NULL), 0);
        for (line = strtok_r((char *)buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
                json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
                assert_non_null(j);
                json_decref(j);
        }
        assert_int_equal(n, 400);
}

/* Refusals of unauthenticated clients: counted without I/O, then one summary line per flush
 * (none when nothing was counted). */
static void test_refusal_summary(void **state)
{
        _cleanup_free_ uint8_t *buf = NULL;
        struct broker_audit *a = NULL;
        struct broker_audit_entry e = {.peer = "127.0.0.1:1", .reason = "image_mismatch"};
        char path[128], *line, *save = NULL;
        size_t len = 0;
        struct stat st;
        json_t *j, *reasons;
        int n = 0;

        snprintf(path, sizeof(path), "%s/audit.jsonl", tmpdir);
        assert_int_equal(broker_audit_open(path, BROKER_AUDIT_FSYNC_ALWAYS, &a, NULL), 0);
        assert_int_equal(broker_audit_flush_refusals(a), 0);
        for (int i = 0; i < 1000; i++)
                broker_audit_count_refusal(a, i % 10 ? "quote_invalid" : "no_evidence");
        broker_audit_count_refusal(a, "a_reason_code_that_is_much_longer_than_any_the_broker_has");
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, 0); /* nothing written yet */
        assert_int_equal(broker_audit_append(a, &e), 0);
        assert_int_equal(broker_audit_flush_refusals(a), 0);
        assert_int_equal(broker_audit_flush_refusals(a), 0); /* nothing new: no line */
        broker_audit_count_refusal(a, "no_evidence");
        assert_int_equal(broker_audit_flush_refusals(a), 0);
        broker_audit_close(a);

        assert_int_equal(ck_read_file(path, 1 << 20, &buf, &len, NULL), 0);
        for (line = strtok_r((char *)buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
                j = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
                assert_non_null(j);
                if (n == 0) {
                        assert_string_equal(json_string_value(json_object_get(j, "decision")), "refuse");
                } else if (n == 1) {
                        assert_string_equal(json_string_value(json_object_get(j, "decision")),
                                            "refuse-summary");
                        assert_int_equal(json_integer_value(json_object_get(j, "refusals")), 1001);
                        reasons = json_object_get(j, "reasons");
                        assert_int_equal(json_object_size(reasons), 3);
                        assert_int_equal(json_integer_value(json_object_get(reasons, "quote_invalid")), 900);
                        assert_int_equal(json_integer_value(json_object_get(reasons, "no_evidence")), 100);
                        assert_int_equal(json_integer_value(json_object_get(reasons, "other")), 1);
                        assert_non_null(json_string_value(json_object_get(j, "from")));
                        assert_non_null(json_string_value(json_object_get(j, "to")));
                } else {
                        assert_int_equal(json_integer_value(json_object_get(j, "refusals")), 1);
                        reasons = json_object_get(j, "reasons");
                        assert_int_equal(json_object_size(reasons), 1);
                        assert_int_equal(json_integer_value(json_object_get(reasons, "no_evidence")), 1);
                }
                json_decref(j);
        }
        assert_int_equal(n, 3);
}

static void test_fsync_names(void **state)
{
        assert_int_equal(broker_audit_fsync_from_string("always"), BROKER_AUDIT_FSYNC_ALWAYS);
        assert_int_equal(broker_audit_fsync_from_string("never"), BROKER_AUDIT_FSYNC_NEVER);
        assert_true(broker_audit_fsync_from_string("sometimes") < 0);
}

/* Every record names what the deciding rule pinned and the task-config digest. */
static void test_pinned_and_task_config(void **state)
{
        struct attest_result r = {.status = ATTEST_TCB_UP_TO_DATE, .tee_type = ATTEST_TEE_TDX};
        const char *dig = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        struct broker_audit_entry e = {.peer = "127.0.0.1:1",
                                       .release = true,
                                       .secret_id = "default",
                                       .result = &r,
                                       .pinned =
                                               BROKER_PIN_MRTD | (BROKER_PIN_RTMR0 << 1) | BROKER_PIN_IMAGE,
                                       .task_config_digest = dig};
        _cleanup_free_ char *line = broker_audit_format(&e);
        _cleanup_free_ char *none = NULL;

        assert_non_null(line);
        assert_non_null(strstr(line, "\"pinned\":[\"mrtd\",\"rtmr1\",\"image\"]"));
        assert_non_null(strstr(line, "\"taskConfigDigest\":\"sha256:e3b0c442"));
        /* Nothing verified: no policy ran, nothing to say about pins. */
        e = (struct broker_audit_entry){.peer = "127.0.0.1:1", .reason = "quote_invalid"};
        none = broker_audit_format(&e);
        assert_null(strstr(none, "pinned"));
        assert_null(strstr(none, "taskConfigDigest"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pinned_and_task_config),
                cmocka_unit_test_setup_teardown(test_lines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_concurrent_lines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusal_summary, setup, teardown),
                cmocka_unit_test(test_fsync_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
