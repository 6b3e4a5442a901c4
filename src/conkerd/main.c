/* conkerd: the Conker engine daemon. Reads its configuration, opens the real backend (image
 * store, runtime, volumes), the task manager (which recovers tasks from the last run) and the
 * REST API, then runs the event loop until SIGTERM/SIGINT. Containers keep running after it
 * exits: their shims own them, and the next conkerd re-adopts them. */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "collateral.h"
#include "config.h"
#include "fs.h"
#include "integrity-log.h"
#include "log.h"
#include "notify.h"
#include "peer.h"
#include "pull.h"
#include "secret.h"
#include "ssl.h"
#include "storage-check.h"
#include "tee.h"
#include "task-backend.h"
#include "task.h"
#include "verify.h"

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
        struct event_base *base = arg;

        log_info("received %s; shutting down (containers keep running)",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
        event_base_loopbreak(base);
}

/* docs/design.md §3: auto means TDX when the guest interface exists, otherwise refuse (naming
 * --tee sim); a simulated TD is never chosen silently. The TEE is opened once, here, so that a
 * missing or broken one stops conkerd at start instead of failing the first task. */
static int tee_open(const struct conkerd_config *c, struct attest_tee **ret, struct ck_error **reterr)
{
        struct attest_tee_config tc = {
                .kind = (enum attest_tee_kind)attest_tee_kind_from_string(c->tee),
                .sim_dir = c->sim_dir,
                .sim_state_dir = *c->sim_state_dir ? c->sim_state_dir : NULL,
        };
        int r;

        if ((int)tc.kind < 0)
                return ck_error_set(reterr, -EINVAL, "unknown TEE \"%s\"", c->tee);
        r = attest_tee_open(&tc, ret, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "cannot open the TEE (--tee %s)", c->tee);
        if (attest_tee_kind(*ret) == ATTEST_TEE_KIND_SIM)
                log_warn("TEE: SIMULATED TD from %s (RTMR3 log %s); its quotes verify only against the "
                         "simulator's root (broker --trust-sim-root), never against Intel's",
                         c->sim_dir, attest_tee_rt_log_path(*ret));
        else
                log_info("TEE: Intel TDX (RTMR3 log %s)", attest_tee_rt_log_path(*ret));
        return 0;
}

/* Issue 10 item 3: on a real TD everything conkerd keeps must be out of the host's hands, so the
 * data dir must be in TD memory or on LUKS2 with integrity (docs/conkerd.md "Host-proof
 * storage"). Under every TEE the verdict is logged (the VM test reads it); only TDX enforces it:
 * the simulated TD is a test bench on the host's own disk. */
/* Issue 10 item 6: on LUKS2 with integrity, a read of a sector the host altered is an I/O error
 * that dm-crypt logs; conkerd counts those (integrity-log.h) and the task manager fails closed
 * once there is one. Under TDX a kernel log conkerd cannot read stops it from starting. */
static int integrity_watch(char *const *devs, bool enforce, struct conkerd_integrity_log **ret,
                           struct ck_error **reterr)
{
        int r = conkerd_integrity_log_open("/dev/kmsg", devs, ret, reterr);

        if (r >= 0) {
                log_info("state disk: watching the kernel log for integrity failures of %s", devs[0]);
                return 0;
        }
        if (enforce)
                return ck_error_prefix(reterr, r,
                                       "cannot watch the state disk for integrity failures (conkerd needs "
                                       "CAP_SYSLOG and ProtectKernelLogs=no)");
        log_warn("state disk: integrity failures are not watched: %s", ck_error_message(*reterr, r));
        ck_error_free(*reterr);
        *reterr = NULL;
        return 0;
}

static int integrity_failures(void *ud, uint64_t *ret, struct ck_error **reterr)
{
        return conkerd_integrity_log_count(ud, ret, reterr);
}

static int storage_check(const struct conkerd_config *c, const struct attest_tee *tee,
                         struct conkerd_integrity_log **ret_log, struct ck_error **reterr)
{
        const struct conkerd_storage_roots roots = CONKERD_STORAGE_ROOTS_DEFAULT;
        _cleanup_free_ char *what = NULL, *line = NULL;
        _cleanup_(conkerd_storage_devs_freep) char **devs = NULL;
        bool enforce = attest_tee_kind(tee) == ATTEST_TEE_KIND_TDX, ok = false;
        int r;

        r = conkerd_storage_check(c->data_dir, &roots, &ok, &what, &devs, reterr);
        if (r < 0 && !enforce) {
                log_warn("data dir %s: %s (not enforced: not a TDX TD)", c->data_dir,
                         ck_error_message(*reterr, r));
                ck_error_free(*reterr);
                *reterr = NULL;
                return 0;
        }
        if (r < 0)
                return ck_error_prefix(reterr, r,
                                       "data dir %s: cannot tell whether it is host-proof storage (pass "
                                       "--insecure-storage to start anyway)",
                                       c->data_dir);
        line = conkerd_storage_describe(c->data_dir, ok, what);
        if (!line)
                return -ENOMEM;
        if (devs) {
                r = integrity_watch(devs, enforce, ret_log, reterr);
                if (r < 0)
                        return r;
        }
        if (!enforce) {
                log_info("%s (not enforced: not a TDX TD)", line);
                return 0;
        }
        if (ok) {
                log_info("%s", line);
                return 0;
        }
        if (c->insecure_storage) {
                log_warn("%s (--insecure-storage)", line);
                return 0;
        }
        return ck_error_set(reterr, -EPERM,
                            "data dir %s is on %s: under --tee tdx it must be on tmpfs or on LUKS2 with "
                            "integrity (dm-crypt + dm-integrity), or the host can read and rewrite layers, "
                            "conker.db and volumes; pass --insecure-storage to start anyway",
                            c->data_dir, what);
}

/* --check-storage DIR: the verdict on stdout; exit 0 when host-proof, 1 when not, 2 when it
 * cannot tell. The TD image's state disk unit runs it before conkerd starts. */
static int check_storage_only(const char *dir)
{
        const struct conkerd_storage_roots roots = CONKERD_STORAGE_ROOTS_DEFAULT;
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *what = NULL, *line = NULL;
        bool ok = false;
        int r;

        r = conkerd_storage_check(dir, &roots, &ok, &what, NULL, &e);
        if (r < 0) {
                fprintf(stderr, "conkerd: data dir %s: %s\n", dir, ck_error_message(e, r));
                return 2;
        }
        line = conkerd_storage_describe(dir, ok, what);
        if (!line)
                return 2;
        printf("%s\n", line);
        return ok ? 0 : 1;
}

/* kms-broker-reference-values: load what conkerd checks the brokers' RA-TLS certificates
 * with, at start, so that a bad file stops conkerd instead of failing tasks. */
static int broker_attestation_open(const struct conkerd_config *c, struct broker_peer_policy *p,
                                   struct attest_collateral **ret_col, X509 **ret_root,
                                   struct ck_error **reterr)
{
        int r;

        if (!*c->kms_broker_collateral)
                return ck_error_set(reterr, -EINVAL,
                                    "kms-broker-reference-values needs kms-broker-collateral (the DCAP "
                                    "collateral to verify the brokers' quotes with)");
        r = attest_refvalues_load(c->kms_broker_reference_values, &p->refvalues, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "kms-broker-reference-values");
        r = attest_collateral_load_file(c->kms_broker_collateral, ret_col, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "kms-broker-collateral");
        if (*c->kms_broker_trust_root) {
                r = attest_root_load_file(c->kms_broker_trust_root, ret_root, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "kms-broker-trust-root");
                log_warn("brokers: quotes verified against %s instead of Intel's root (simulated TDs "
                         "accepted; testing only)",
                         c->kms_broker_trust_root);
        }
        p->collateral = *ret_col;
        p->root = *ret_root;
        log_info("brokers must attest: RA-TLS certificate matching %s", c->kms_broker_reference_values);
        return 0;
}

/* A helper program (conker-shim, conker-fetch) next to this executable, else PATH. */
static char *helper_default(const char *name)
{
        char self[PATH_MAX], *slash, *p = NULL;
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        if (n > 0) {
                self[n] = 0;
                slash = strrchr(self, '/');
                if (slash) {
                        *slash = 0;
                        /* The build tree keeps programs in sibling directories. */
                        for (int i = 0; i < 2; i++) {
                                if ((i == 0 ? asprintf(&p, "%s/%s", self, name)
                                            : asprintf(&p, "%s/../%s/%s", self, name, name)) < 0)
                                        return NULL;
                                if (access(p, X_OK) == 0)
                                        return p;
                                free(p);
                                p = NULL;
                        }
                }
        }
        return strdup(name);
}

static int run(struct conkerd_config *c)
{
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_(ck_secret_freep) struct ck_secret *token = NULL;
        _cleanup_free_ char *shim = NULL, *fetch = NULL;
        _cleanup_(attest_tee_freep) struct attest_tee *tee = NULL;
        _cleanup_(attest_collateral_freep) struct attest_collateral *broker_col = NULL;
        _cleanup_(X509_freep) X509 *broker_root = NULL;
        struct broker_peer_policy broker_policy = {0};
        bool broker_attested = false;
        struct task_backend *be = NULL;
        struct conkerd_integrity_log *ilog = NULL;
        struct task_manager *m = NULL;
        struct api_server *api = NULL;
        struct event_base *base = NULL;
        struct event *sigterm = NULL, *sigint = NULL;
        int r;

        r = tee_open(c, &tee, &e);
        if (r < 0)
                goto out;
        if (*c->kms_broker_reference_values) {
                r = broker_attestation_open(c, &broker_policy, &broker_col, &broker_root, &e);
                if (r < 0)
                        goto out;
                broker_attested = true;
        }
        if (ck_mkdir_p(c->data_dir, 0700) < 0 || ck_mkdir_p(c->run_dir, 0700) < 0) {
                r = ck_error_errno(&e, -errno, "cannot create %s or %s", c->data_dir, c->run_dir);
                goto out;
        }
        r = storage_check(c, tee, &ilog, &e);
        if (r < 0)
                goto out;
        if (c->auth) {
                r = api_token_load_or_create(c->token_file, &token, &e);
                if (r < 0)
                        goto out;
        } else {
                log_warn(
                        "API authentication is DISABLED (--no-auth): anyone who reaches %s controls conkerd",
                        c->listen);
        }

        shim = *c->shim ? strdup(c->shim) : helper_default("conker-shim");
        fetch = helper_default("conker-fetch");
        if (!shim || !fetch) {
                r = -ENOMEM;
                goto out;
        }
        struct task_backend_config bc = {
                .data_dir = c->data_dir,
                .run_dir = c->run_dir,
                .runtime = c->runtime,
                .shim = shim,
                .fetch = fetch,
                .bridge = c->bridge,
                .subnet = c->subnet,
                .nft_table = c->nft_table,
                .netns_dir = c->netns_dir,
                .netns_prefix = c->netns_prefix,
                .stop_timeout_s = (unsigned)c->stop_timeout,
                .container_pids_limit = c->container_pids_limit,
                .container_memory_limit = c->container_memory_limit,
                .log_max_bytes = c->log_max_bytes,
                .log_max_files = (unsigned)c->log_max_files,
                .volume_backing_size = c->volume_backing_size,
                .registry_mirrors = c->registry_mirrors.items,
                .insecure_registries = c->insecure_registries.items,
                .registry_ca_file = c->registry_ca_file,
                .pull_policy = strcmp(c->pull_policy, "never") == 0     ? TASK_PULL_NEVER
                               : strcmp(c->pull_policy, "missing") == 0 ? TASK_PULL_MISSING
                                                                        : TASK_PULL_ALWAYS,
                .image_max_blob_size = c->image_max_blob_size,
                .image_max_layer_size = c->image_max_layer_size,
                .image_max_layer_entries = c->image_max_layer_entries,
                .image_max_ratio = c->image_max_ratio,
                .layer_format = c->layer_format,
        };
        r = task_backend_real_new(&bc, &be, &e);
        if (r < 0)
                goto out;

        struct task_manager_config mc = {
                .data_dir = c->data_dir,
                .limits = {(uint16_t)c->published_port_min, (uint16_t)c->published_port_max},
                .max_tasks = (unsigned)c->max_tasks,
                .stop_timeout_s = (unsigned)c->stop_timeout,
                .pull_timeout_s = (unsigned)c->pull_timeout,
                .watch_interval_ms = 1000,
                .max_request_size = c->max_body_size,
                .tee = tee,
                .kms_timeout_ms = (unsigned)c->kms_timeout * 1000u,
                .container_pids_limit = c->container_pids_limit,
                .container_memory_limit = c->container_memory_limit,
                .container_runtime = task_backend_real_runtime(be),
                .kms_allow_unpinned = c->kms_allow_unpinned,
                .kms_broker_attestation = broker_attested ? &broker_policy : NULL,
                .storage_failures = ilog ? integrity_failures : NULL,
                .storage_userdata = ilog,
        };
        r = image_metrics_declare();
        if (r < 0) {
                r = ck_error_set(&e, r, "cannot declare the metrics");
                goto out;
        }
        r = task_manager_new(&mc, be, &m, &e);
        if (r < 0)
                goto out;
        r = task_metrics_init(m);
        if (r < 0) {
                r = ck_error_set(&e, r, "cannot declare the task metrics");
                goto out;
        }

        if (evthread_use_pthreads() < 0) {
                r = ck_error_set(&e, -EIO, "libevent threading support is missing");
                goto out;
        }
        base = event_base_new();
        if (!base) {
                r = ck_error_set(&e, -ENOMEM, "cannot create the event loop");
                goto out;
        }
        struct api_config ac = {
                .listen = c->listen,
                .auth = c->auth,
                .token = token,
                .tls_cert = conkerd_config_tls_auto(c) ? NULL : c->tls_cert,
                .tls_auto = conkerd_config_tls_auto(c),
                .tee = tee,
                .tls_key = c->tls_key,
                .tls_client_ca = c->tls_client_ca,
                .max_body_size = c->max_body_size,
                .max_header_size = c->max_header_size,
                .max_connections = (unsigned)c->max_connections,
                .timeout_s = (unsigned)c->http_timeout,
                .version = CONKER_VERSION,
        };
        r = api_server_new(base, &ac, m, &api, &e);
        if (r < 0)
                goto out;

        sigterm = evsignal_new(base, SIGTERM, on_signal, base);
        sigint = evsignal_new(base, SIGINT, on_signal, base);
        if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0) {
                r = ck_error_set(&e, -EIO, "cannot install signal handlers");
                goto out;
        }
        log_info("conkerd %s ready (data %s, run %s)", CONKER_VERSION, c->data_dir, c->run_dir);
        /* The API listens: a Type=notify unit is started now. */
        r = ck_notify("READY=1", &e);
        if (r < 0) {
                log_warn("%s", ck_error_message(e, r));
                ck_error_free(e);
                e = NULL;
        }
        event_base_dispatch(base);
        (void)ck_notify("STOPPING=1", NULL);
        r = 0;
out:
        if (r < 0)
                log_error("%s", ck_error_message(e, r));
        if (sigterm)
                event_free(sigterm);
        if (sigint)
                event_free(sigint);
        api_server_free(api);
        task_manager_free(m);
        conkerd_integrity_log_free(ilog);
        task_backend_real_free(be);
        if (base)
                event_base_free(base);
        return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
        _cleanup_error_ struct ck_error *e = NULL;
        struct conkerd_config c;
        struct conkerd_args args;
        int r, level;

        ck_log_set_ident("conkerd");
        /* Request bodies and headers carry registry passwords and the API token through jansson
         * and libevent buffers we do not own: have them wiped when those libraries free them.
         * libevent's allocator must be set before its first allocation. */
        json_set_alloc_funcs(malloc, ck_free_wiped);
        event_set_mem_functions(malloc, ck_realloc_wiped, ck_free_wiped);
        signal(SIGPIPE, SIG_IGN);
        umask(0077);
        /* glibc gives each new thread (task pipelines, delete jobs, pull workers) an arena of its
         * own, up to 8 per core, and keeps what they touched. conkerd's threads spend their time
         * waiting on runc, the network and the disk, not in malloc: two arenas keep the
         * contention low and the idle footprint small. MALLOC_ARENA_MAX in the environment
         * still wins (it is read before main). A fixed trim threshold: glibc otherwise raises it
         * (up to 64 MiB) each time a large block is freed, after which the second arena's top,
         * which malloc_trim() leaves alone, keeps the high-water mark of overlapping threads
         * (the pull and the preparations made during it) resident. */
        if (!getenv("MALLOC_ARENA_MAX"))
                (void)mallopt(M_ARENA_MAX, 2);
        if (!getenv("MALLOC_TRIM_THRESHOLD_"))
                (void)mallopt(M_TRIM_THRESHOLD, 128 * 1024);

        r = conkerd_config_init(&c, &e);
        if (r < 0) {
                fprintf(stderr, "conkerd: %s\n", ck_error_message(e, r));
                return 1;
        }
        r = conkerd_config_from_args(&c, argc, argv, &args, &e);
        /* --help, --version, --print-config-example and --check-storage work whatever the
         * configuration. */
        if (r >= 0 && !args.help && !args.version && !args.print_example && !args.check_storage)
                r = conkerd_config_check(&c, &e);
        if (r < 0) {
                fprintf(stderr, "conkerd: %s\n", ck_error_message(e, r));
                conkerd_config_clear(&c);
                return 2;
        }
        if (args.help) {
                conkerd_config_usage(stdout);
                conkerd_config_clear(&c);
                return 0;
        }
        if (args.version) {
                printf("conkerd %s\n", CONKER_VERSION);
                conkerd_config_clear(&c);
                return 0;
        }
        if (args.check_storage) {
                conkerd_config_clear(&c);
                return check_storage_only(args.check_storage);
        }
        if (args.print_example) {
                _cleanup_free_ char *ex = conkerd_config_example();
                conkerd_config_clear(&c);
                if (!ex)
                        return 1;
                fputs(ex, stdout);
                return 0;
        }
        level = ck_log_level_from_string(c.log_level);
        ck_log_set_level(level < 0 ? CK_LOG_INFO : (enum ck_log_level)level);

        r = run(&c);
        conkerd_config_clear(&c);
        return r;
}
