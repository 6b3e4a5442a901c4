/* The broker's release policy: which attested TDs may receive which secret.
 *
 * A policy is a list of secrets, each with one or more rules. A rule pins measurements (MRTD,
 * RTMR0-3; exact, full-length values), the image IDs the secret is for, the TCB statuses and
 * minimum TCB evaluation number it accepts, and the TD attribute requirements. A TD receives the
 * first secret one of whose rules it satisfies in full. The JSON format is documented in
 * docs/broker-policy.md; the seed's command-line flags build a one-rule policy.
 *
 * Everything that can be malformed is rejected when the policy is loaded (startup), so that a
 * typo never turns into a looser rule at run time. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "verify.h"

/* Largest policy file and the limits on its contents. */
#define BROKER_POLICY_MAX_BYTES   (256u * 1024u)
#define BROKER_POLICY_MAX_SECRETS 64u
#define BROKER_POLICY_MAX_RULES   64u
#define BROKER_POLICY_MAX_IMAGES  256u

/* A normalised image ID: "sha256:" + 64 lower-case hex digits. */
#define BROKER_IMAGE_ID_LEN (7 + 64)

struct broker_rule {
        bool has_mrtd;
        uint8_t mrtd[48];
        bool has_rtmr[4];
        uint8_t rtmr[4][48];
        char (*image_ids)[BROKER_IMAGE_ID_LEN + 1]; /* normalised; at least one */
        size_t n_image_ids;
        uint32_t tcb_statuses;        /* bit (1 << enum attest_tcb_status) per accepted status */
        uint32_t min_tcb_eval_number; /* 0 = any */
        bool allow_debug;             /* TD attributes bits 0..7 (DEBUG and the other TUD bits) */
        bool require_sept_ve_disable; /* TD attributes bit 28 */
        bool allow_simulated;         /* effective only with --trust-sim-root */
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

/* The seed's flags: -s FILE -w RTMR1 -d IMAGE. rtmr1_hex must be exactly 96 hex digits; image_id
 * is "sha256:<64 hex>" or bare 64 hex. allow_simulated is set by --trust-sim-root. */
int broker_policy_from_flags(const char *secret_path, const char *rtmr1_hex, const char *image_id,
                             bool allow_simulated, struct broker_policy **ret, struct ck_error **reterr);
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

/* What the verifier established about the peer, as the policy sees it. */
struct broker_evidence {
        const struct attest_result *result;
        const uint8_t *app_id; /* the appId claim, as transported */
        size_t app_id_len;
};

struct broker_decision {
        bool allow;
        const char *secret_id; /* when allow: borrowed from the policy */
        const char *reason;    /* when !allow: a static reason code such as "rtmr1_mismatch" */
};

/* Evaluates ev against every rule of every secret. The first matching rule wins; when none
 * matches, the reason is the one of the rule that got furthest through the checks (which are
 * made in a fixed order: tee, simulated, TCB status, TCB evaluation number, debug, SEPT_VE,
 * MRTD, RTMR0-3, image). */
void broker_policy_decide(const struct broker_policy *p, const struct broker_evidence *ev,
                          struct broker_decision *ret);
