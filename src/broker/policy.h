/* The broker's release policy: which attested TDs may receive which secret.
 *
 * A policy is a list of secrets, each with one or more rules. A rule pins measurements (MRTD,
 * RTMR0-3; exact, full-length values, directly or from a reference-values file), the image IDs
 * the secret is for, the TCB statuses and minimum TCB evaluation number it accepts, the TD
 * attribute requirements, the images the TD's RTMR3 log may hold, and the task-config (exact
 * digests or per-field rules). A TD receives the first secret one of whose rules it satisfies in
 * full. The JSON format is documented in docs/broker-policy.md; the seed's command-line flags
 * build a one-rule policy.
 *
 * The image and the task's configuration are taken from the RTMR3 log, never from a claim
 * alone: the log is required, must replay to the quoted RTMR3, must hold an "image-digest" event
 * equal to the appId claim and a "task-config" event equal to SHA-256 of the task-config claim,
 * whose imageId must be appId.
 *
 * Everything that can be malformed is rejected when the policy is loaded (startup), so that a
 * typo never turns into a looser rule at run time; so is a rule that pins no MRTD without saying
 * "firmware": "any" (the host supplies the firmware, which can extend RTMR0-2 as it likes). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "eventlog.h"
#include "task-config.h"
#include "verify.h"

/* Largest policy file and the limits on its contents. */
#define BROKER_POLICY_MAX_BYTES   (256u * 1024u)
#define BROKER_POLICY_MAX_SECRETS 64u
#define BROKER_POLICY_MAX_RULES   64u
#define BROKER_POLICY_MAX_IMAGES  256u
#define BROKER_POLICY_MAX_VALUES  256u /* entries of each taskConfig list */

/* A normalised image ID: "sha256:" + 64 lower-case hex digits. */
#define BROKER_IMAGE_ID_LEN (7 + 64)

/* Per-field task-config rules. A field whose has_* is false is not checked; an empty list allows
 * only an empty field. */
struct broker_tc_rules {
        bool has_env; /* an Env entry passes when its key is in env_keys or it is in env exactly */
        char **env_keys;
        size_t n_env_keys;
        char **env;
        size_t n_env;
        bool has_ports;
        struct broker_tc_port *ports;
        size_t n_ports;
        bool has_mounts; /* type, source and target exact; rw only where the rule says rw */
        struct broker_tc_mount *mounts;
        size_t n_mounts;
        bool has_kms;
        char **kms_endpoints;
        size_t n_kms_endpoints;
};

/* What a rule pins, for the audit record ("pinned":[...]). */
enum {
        BROKER_PIN_MRTD = 1u << 0,
        BROKER_PIN_RTMR0 = 1u << 1, /* RTMR1..3 are the next bits */
        BROKER_PIN_IMAGE = 1u << 5,
        BROKER_PIN_LOG_IMAGES = 1u << 6,
        BROKER_PIN_TASK_CONFIG_DIGEST = 1u << 7,
        BROKER_PIN_TASK_CONFIG_RULES = 1u << 8,
        _BROKER_PIN_BITS = 9,
};
/* The name of pin bit i ("mrtd", "rtmr0".., "image", "imageAllowlist", "taskConfigDigest",
 * "taskConfig"); NULL past the last. */
const char *broker_pin_name(unsigned bit);

struct broker_rule {
        bool has_mrtd;
        uint8_t mrtd[48];
        bool has_rtmr[4];
        uint8_t rtmr[4][48];
        bool firmware_any;                          /* explicitly accepts any firmware (no MRTD pin) */
        char (*image_ids)[BROKER_IMAGE_ID_LEN + 1]; /* normalised; none: any image in the log */
        size_t n_image_ids;
        char (*log_images)[BROKER_IMAGE_ID_LEN + 1]; /* imageAllowlist: every image-digest event */
        size_t n_log_images;
        bool has_log_images;
        char (*tc_digests)[BROKER_IMAGE_ID_LEN + 1]; /* taskConfigDigests: "sha256:<hex>" */
        size_t n_tc_digests;
        struct broker_tc_rules *tc_rules; /* NULL: no per-field rules */
        uint32_t tcb_statuses;            /* bit (1 << enum attest_tcb_status) per accepted status */
        uint32_t min_tcb_eval_number;     /* 0 = any */
        bool allow_debug;                 /* TD attributes bits 0..7 (DEBUG and the other TUD bits) */
        bool require_sept_ve_disable;     /* TD attributes bit 28 */
        bool allow_simulated;             /* effective only with --trust-sim-root */
};

struct broker_policy_secret {
        char *id;   /* printable, used in audit lines and logs */
        char *path; /* the JSON secret file */
        struct broker_rule *rules;
        size_t n_rules;
};

struct broker_policy {
        struct broker_policy_secret *secrets;
        size_t n_secrets;
};

/* The seed's flags (-s FILE -w RTMR1 -d IMAGE) and ours (--mrtd, --rtmr0, --rtmr2,
 * --reference-values FILE, --firmware any, --image-allowlist). Every value given is pinned;
 * NULL means not given. */
struct broker_policy_flags {
        const char *secret_path;
        const char *mrtd, *rtmr0, *rtmr1, *rtmr2; /* exactly 96 hex digits */
        const char *reference_values;             /* a reference-values file (refvalues.h) */
        bool firmware_any;
        const char *image_id;        /* "sha256:<64 hex>" or bare hex; NULL: any image in the log */
        const char *image_allowlist; /* comma-separated image IDs */
        bool allow_simulated;        /* --trust-sim-root */
};
/* Builds a one-rule policy. Refused with a one-line message naming the fix when nothing pins
 * the MRTD and firmware_any is not set. */
int broker_policy_from_flags(const struct broker_policy_flags *f, struct broker_policy **ret,
                             struct ck_error **reterr);
/* Parses a JSON policy (docs/broker-policy.md). Rules that say "allowSimulated": true are refused
 * unless trust_sim_root is set, so a policy file cannot silently accept simulated TDs. */
int broker_policy_from_json(const uint8_t *buf, size_t len, bool trust_sim_root, struct broker_policy **ret,
                            struct ck_error **reterr);
int broker_policy_load_file(const char *path, bool trust_sim_root, struct broker_policy **ret,
                            struct ck_error **reterr);
void broker_policy_free(struct broker_policy *p);
DEFINE_POINTER_CLEANUP(struct broker_policy, broker_policy_free, broker_policy_free)

/* Normalises an image ID ("sha256:<hex>" or bare hex, either case) into out. -EINVAL when it is
 * not exactly a SHA-256 digest. */
int broker_image_id_normalise(const char *s, size_t len, char out[BROKER_IMAGE_ID_LEN + 1]);
/* Parses exactly 96 hex digits (either case) into 48 bytes; the error says what is wrong
 * (length, a non-hex character and where). what names the value in the message. */
int broker_measurement_parse(const char *what, const char *hex, uint8_t ret[48], struct ck_error **reterr);

/* What the verifier established about the peer, as the policy sees it (all borrowed). */
struct broker_evidence {
        const struct attest_result *result;
        const uint8_t *app_id; /* the appId claim, as transported */
        size_t app_id_len;
        const struct attest_rt_log *rtmr3_log; /* the parsed RTMR3 log; NULL: the client sent none */
        const uint8_t *task_config;            /* the task-config claim; NULL: none */
        size_t task_config_len;
};

struct broker_decision {
        bool allow;
        const char *secret_id; /* when allow: borrowed from the policy */
        const char *reason;    /* when !allow: a static reason code such as "rtmr1_mismatch" */
        unsigned pinned;       /* BROKER_PIN_* of the rule that matched (or got furthest) */
        char task_config_digest[BROKER_IMAGE_ID_LEN + 1]; /* "" when no task-config claim */
};

/* Evaluates ev against every rule of every secret. The first matching rule wins; when none
 * matches, the reason is the one of the rule that got furthest through the checks (which are
 * made in a fixed order: tee, simulated, TCB status, TCB evaluation number, debug, SEPT_VE,
 * MRTD, RTMR0-3, RTMR3 log present and replaying, image, image in the log, log images allowed,
 * task-config present, valid, in the log, for this image, digest, Env, Ports, Mounts,
 * KmsEndpoints). */
void broker_policy_decide(const struct broker_policy *p, const struct broker_evidence *ev,
                          struct broker_decision *ret);
