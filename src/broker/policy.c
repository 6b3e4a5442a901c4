/* Release policy: the model, the seed's flags and the decision (policy-json.c loads the JSON
 * form).
 *
 * Measurements are compared in full and exactly; there is no prefix or wildcard form. Anything
 * a rule does not mention is not checked, except the defaults that fail closed: only UpToDate is
 * accepted, debug TDs are refused, SEPT_VE_DISABLE is required, simulated TDs are refused, the
 * MRTD must be pinned unless the rule accepts any firmware, and the image and task-config must be
 * in a replaying RTMR3 log. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "json.h"
#include "parse.h"
#include "policy-internal.h"

static bool is_hex(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int broker_measurement_parse(const char *what, const char *hex, uint8_t ret[48], struct ck_error **reterr)
{
        size_t len = hex ? strlen(hex) : 0;
        uint8_t v[48];

        for (size_t i = 0; i < len; i++)
                if (!is_hex(hex[i]))
                        return ck_error_set(reterr, -EINVAL, "%s: character %zu is not a hex digit", what,
                                            i + 1);
        if (len != 96)
                return ck_error_set(
                        reterr, -EINVAL,
                        "%s: expected exactly 96 hex digits (48 bytes), got %zu; measurements are "
                        "matched in full, never by prefix",
                        what, len);
        if (ck_hex_decode(hex, len, v, sizeof(v)) < 0)
                return ck_error_set(reterr, -EINVAL, "%s: not a hex value", what);
        memcpy(ret, v, sizeof(v));
        return 0;
}

int broker_image_id_normalise(const char *s, size_t len, char out[BROKER_IMAGE_ID_LEN + 1])
{
        if (len >= 7 && memcmp(s, "sha256:", 7) == 0) {
                s += 7;
                len -= 7;
        }
        if (len != 64)
                return -EINVAL;
        memcpy(out, "sha256:", 7);
        for (size_t i = 0; i < 64; i++) {
                char c = s[i];
                if (!is_hex(c))
                        return -EINVAL;
                out[7 + i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
        }
        out[BROKER_IMAGE_ID_LEN] = 0;
        return 0;
}

const char *broker_pin_name(unsigned bit)
{
        static const char *const names[_BROKER_PIN_BITS] = {
                "mrtd",       "rtmr0", "rtmr1",          "rtmr2",
                "rtmr3",      "image", "imageAllowlist", "taskConfigDigest",
                "taskConfig",
        };

        return bit < _BROKER_PIN_BITS ? names[bit] : NULL;
}

void broker_rule_init_defaults(struct broker_rule *r)
{
        *r = (struct broker_rule){
                .tcb_statuses = 1u << ATTEST_TCB_UP_TO_DATE,
                .require_sept_ve_disable = true,
        };
}

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

void broker_tc_rules_free(struct broker_tc_rules *t)
{
        if (!t)
                return;
        strv_free(t->env_keys, t->n_env_keys);
        strv_free(t->env, t->n_env);
        free(t->ports);
        for (size_t i = 0; i < t->n_mounts; i++) {
                free(t->mounts[i].type);
                free(t->mounts[i].source);
                free(t->mounts[i].target);
        }
        free(t->mounts);
        strv_free(t->kms_endpoints, t->n_kms_endpoints);
        free(t);
}

void broker_rule_clear(struct broker_rule *r)
{
        free(r->image_ids);
        free(r->log_images);
        free(r->tc_digests);
        broker_tc_rules_free(r->tc_rules);
        *r = (struct broker_rule){0};
}

void broker_policy_free(struct broker_policy *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->n_secrets; i++) {
                struct broker_policy_secret *s = &p->secrets[i];
                for (size_t j = 0; j < s->n_rules; j++)
                        broker_rule_clear(&s->rules[j]);
                free(s->rules);
                free(s->id);
                free(s->path);
        }
        free(p->secrets);
        free(p);
}

int broker_id_list_add(char (**list)[BROKER_IMAGE_ID_LEN + 1], size_t *n, const char *what, const char *s,
                       struct ck_error **reterr)
{
        char norm[BROKER_IMAGE_ID_LEN + 1];
        void *nl;

        if (broker_image_id_normalise(s, strlen(s), norm) < 0)
                return ck_error_set(
                        reterr, -EINVAL,
                        "%s: \"%.80s\" is not a digest (expected sha256:<64 hex> or 64 hex digits)", what,
                        s);
        if (*n >= BROKER_POLICY_MAX_IMAGES)
                return ck_error_set(reterr, -E2BIG, "%s: more than %u entries", what,
                                    BROKER_POLICY_MAX_IMAGES);
        nl = reallocarray(*list, *n + 1, sizeof(**list));
        if (!nl)
                return -ENOMEM;
        *list = nl;
        memcpy((*list)[(*n)++], norm, sizeof(norm));
        return 0;
}

int broker_rule_apply_refvalues(struct broker_rule *r, const struct attest_refvalues *rv, const char *what,
                                struct ck_error **reterr)
{
        static const char *const names[3] = {"rtmr0", "rtmr1", "rtmr2"};

        if (rv->has_mrtd) {
                if (r->has_mrtd)
                        return ck_error_set(
                                reterr, -EINVAL,
                                "%s: mrtd is pinned twice (directly and in the reference values)", what);
                memcpy(r->mrtd, rv->mrtd, 48);
                r->has_mrtd = true;
        }
        for (unsigned k = 0; k < 3; k++) {
                if (!rv->has_rtmr[k])
                        continue;
                if (r->has_rtmr[k])
                        return ck_error_set(reterr, -EINVAL,
                                            "%s: %s is pinned twice (directly and in the reference values)",
                                            what, names[k]);
                memcpy(r->rtmr[k], rv->rtmr[k], 48);
                r->has_rtmr[k] = true;
        }
        return 0;
}

/* The firmware rule: without an MRTD pin, whoever supplies the firmware (the host) decides what
 * RTMR0-2 hold; accepting that must be said explicitly. */
static int flags_check_firmware(const struct broker_policy_flags *f, const struct broker_rule *r,
                                struct ck_error **reterr)
{
        if (r->firmware_any && r->has_mrtd)
                return ck_error_set(
                        reterr, -EINVAL,
                        "--firmware any contradicts the MRTD pin (--mrtd or --reference-values): "
                        "give one or the other");
        if (r->firmware_any || r->has_mrtd)
                return 0;
        if (f->rtmr1 && !r->has_rtmr[0] && !r->has_rtmr[2])
                return ck_error_set(
                        reterr, -EINVAL,
                        "-w pins RTMR1 only, which a host-supplied firmware can forge: add --mrtd "
                        "<MRTD hex> (or --firmware any to accept any firmware)");
        return ck_error_set(
                reterr, -EINVAL,
                "no MRTD is pinned, and a host-supplied firmware can forge RTMR0-2: add --mrtd <MRTD "
                "hex> or --reference-values FILE with an mrtd (or --firmware any to accept any "
                "firmware)");
}

int broker_policy_from_flags(const struct broker_policy_flags *f, struct broker_policy **ret,
                             struct ck_error **reterr)
{
        static const char *const what[4] = {"--mrtd", "--rtmr0", "-w (RTMR1)", "--rtmr2"};
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        const char *vals[4] = {f->mrtd, f->rtmr0, f->rtmr1, f->rtmr2};
        struct broker_policy_secret *s;
        struct broker_rule *r;
        int rc;

        if (!f->secret_path || !*f->secret_path)
                return ck_error_set(reterr, -EINVAL, "-s: a secret file is required");

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->secrets = calloc(1, sizeof(*p->secrets));
        if (!p->secrets)
                return -ENOMEM;
        p->n_secrets = 1;
        s = &p->secrets[0];
        s->id = strdup("default");
        s->path = strdup(f->secret_path);
        s->rules = calloc(1, sizeof(*s->rules));
        if (!s->id || !s->path || !s->rules)
                return -ENOMEM;
        s->n_rules = 1;
        r = &s->rules[0];
        broker_rule_init_defaults(r);
        r->allow_simulated = f->allow_simulated;
        r->firmware_any = f->firmware_any;
        for (unsigned k = 0; k < 4; k++) {
                if (!vals[k])
                        continue;
                rc = broker_measurement_parse(what[k], vals[k], k == 0 ? r->mrtd : r->rtmr[k - 1], reterr);
                if (rc < 0)
                        return rc;
                if (k == 0)
                        r->has_mrtd = true;
                else
                        r->has_rtmr[k - 1] = true;
        }
        if (f->reference_values) {
                struct attest_refvalues rv;

                rc = attest_refvalues_load(f->reference_values, &rv, reterr);
                if (rc < 0)
                        return ck_error_prefix(reterr, rc, "--reference-values");
                rc = broker_rule_apply_refvalues(r, &rv, "--reference-values", reterr);
                if (rc < 0)
                        return rc;
        }
        rc = flags_check_firmware(f, r, reterr);
        if (rc < 0)
                return rc;
        if (f->image_id) {
                rc = broker_id_list_add(&r->image_ids, &r->n_image_ids, "-d (image ID)", f->image_id,
                                        reterr);
                if (rc < 0)
                        return rc;
        }
        if (f->image_allowlist) {
                r->has_log_images = true;
                for (const char *tok = f->image_allowlist; *tok;) {
                        size_t n = strcspn(tok, ",");
                        _cleanup_free_ char *one = strndup(tok, n);

                        if (!one)
                                return -ENOMEM;
                        rc = broker_id_list_add(&r->log_images, &r->n_log_images, "--image-allowlist", one,
                                                reterr);
                        if (rc < 0)
                                return rc;
                        tok += n + (tok[n] == ',');
                }
                if (r->n_log_images == 0)
                        return ck_error_set(reterr, -EINVAL, "--image-allowlist: no image ID given");
        }
        *ret = TAKE_PTR(p);
        return 0;
}

/* The checks in the order they are made; a refusal names the first that failed. The index
 * doubles as "how far a rule got", to pick the most telling reason among several rules. */
enum check {
        CHECK_TEE,
        CHECK_SIMULATED,
        CHECK_TCB_STATUS,
        CHECK_TCB_EVAL,
        CHECK_DEBUG,
        CHECK_SEPT_VE,
        CHECK_MRTD,
        CHECK_RTMR0,
        CHECK_RTMR1,
        CHECK_RTMR2,
        CHECK_RTMR3,
        CHECK_LOG,
        CHECK_LOG_REPLAY,
        CHECK_IMAGE,
        CHECK_IMAGE_IN_LOG,
        CHECK_LOG_IMAGES,
        CHECK_TC,
        CHECK_TC_VALID,
        CHECK_TC_IN_LOG,
        CHECK_TC_IMAGE,
        CHECK_TC_DIGEST,
        CHECK_TC_ENV,
        CHECK_TC_PORTS,
        CHECK_TC_MOUNTS,
        CHECK_TC_KMS,
        _CHECK_MAX,
};

static const char *const check_reasons[_CHECK_MAX] = {
        [CHECK_TEE] = "not_tdx",
        [CHECK_SIMULATED] = "simulated_td",
        [CHECK_TCB_STATUS] = "tcb_status",
        [CHECK_TCB_EVAL] = "tcb_eval_too_old",
        [CHECK_DEBUG] = "debug_td",
        [CHECK_SEPT_VE] = "sept_ve_not_disabled",
        [CHECK_MRTD] = "mrtd_mismatch",
        [CHECK_RTMR0] = "rtmr0_mismatch",
        [CHECK_RTMR1] = "rtmr1_mismatch",
        [CHECK_RTMR2] = "rtmr2_mismatch",
        [CHECK_RTMR3] = "rtmr3_mismatch",
        [CHECK_LOG] = "rtmr3_log_missing",
        [CHECK_LOG_REPLAY] = "rtmr3_log_mismatch",
        [CHECK_IMAGE] = "image_mismatch",
        [CHECK_IMAGE_IN_LOG] = "image_not_in_log",
        [CHECK_LOG_IMAGES] = "log_image_not_allowed",
        [CHECK_TC] = "task_config_missing",
        [CHECK_TC_VALID] = "task_config_invalid",
        [CHECK_TC_IN_LOG] = "task_config_mismatch",
        [CHECK_TC_IMAGE] = "task_config_image_mismatch",
        [CHECK_TC_DIGEST] = "task_config_not_allowed",
        [CHECK_TC_ENV] = "task_config_env_not_allowed",
        [CHECK_TC_PORTS] = "task_config_ports_not_allowed",
        [CHECK_TC_MOUNTS] = "task_config_mounts_not_allowed",
        [CHECK_TC_KMS] = "task_config_kms_not_allowed",
};

/* TD attributes (little-endian 64-bit): bits 0..7 are the TD-under-debug group (bit 0 DEBUG);
 * bit 28 is SEPT_VE_DISABLE. */
#define TD_ATTR_TUD_MASK        0xffu
#define TD_ATTR_SEPT_VE_DISABLE (UINT64_C(1) << 28)

static uint64_t td_attributes(const struct attest_measurements *m)
{
        uint64_t v = 0;

        for (int i = 7; i >= 0; i--)
                v = v << 8 | m->td_attributes[i];
        return v;
}

/* What the evidence says, worked out once per decision; the rules only look these up. */
struct facts {
        const struct broker_evidence *ev;
        const char *app_id; /* normalised; NULL when absent or not an image ID */
        char app_id_buf[BROKER_IMAGE_ID_LEN + 1];
        bool log_replays;
        bool app_id_in_log;
        bool has_tc;                   /* a task-config claim */
        struct broker_task_config *tc; /* NULL when the claim does not parse */
        char tc_digest[BROKER_IMAGE_ID_LEN + 1];
        bool tc_in_log;
};

static bool log_has(const struct attest_rt_log *log, const char *name, const char *payload)
{
        for (size_t i = 0; i < log->n; i++)
                if (strcmp(log->events[i].name, name) == 0 && strcmp(log->events[i].payload, payload) == 0)
                        return true;
        return false;
}

static void facts_init(struct facts *f, const struct broker_evidence *ev)
{
        const struct attest_rt_log *log = ev->rtmr3_log;

        *f = (struct facts){.ev = ev};
        if (ev->app_id &&
            broker_image_id_normalise((const char *)ev->app_id, ev->app_id_len, f->app_id_buf) == 0)
                f->app_id = f->app_id_buf;
        if (log) {
                uint8_t rtmr3[48];
                /* attest_ratls_verify_cert() replays the log already; the policy does not rely on
                 * the caller having used it. */
                f->log_replays = attest_rt_log_replay(log, rtmr3) == 0 &&
                                 memcmp(rtmr3, ev->result->m.rtmr[3], 48) == 0;
                f->app_id_in_log = f->app_id && log_has(log, "image-digest", f->app_id);
        }
        if (ev->task_config) {
                f->has_tc = true;
                if (broker_task_config_digest(ev->task_config, ev->task_config_len, f->tc_digest) < 0)
                        f->tc_digest[0] = 0;
                else if (broker_task_config_parse(ev->task_config, ev->task_config_len, &f->tc, NULL) < 0)
                        f->tc = NULL;
                f->tc_in_log = log && f->tc_digest[0] && log_has(log, "task-config", f->tc_digest);
        }
}

static bool id_in(const char (*list)[BROKER_IMAGE_ID_LEN + 1], size_t n, const char *id)
{
        for (size_t i = 0; id && i < n; i++)
                if (strcmp(list[i], id) == 0)
                        return true;
        return false;
}

static bool str_in(char *const *list, size_t n, const char *s)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i], s) == 0)
                        return true;
        return false;
}

/* Every image-digest event of the log is on the allowlist: a TD that ran anything else since
 * boot does not receive the secret. */
static bool log_images_allowed(const struct broker_rule *r, const struct attest_rt_log *log)
{
        for (size_t i = 0; i < log->n; i++) {
                char id[BROKER_IMAGE_ID_LEN + 1];
                const char *p = log->events[i].payload;

                if (strcmp(log->events[i].name, "image-digest") != 0)
                        continue;
                if (broker_image_id_normalise(p, strlen(p), id) < 0 ||
                    !id_in(r->log_images, r->n_log_images, id))
                        return false;
        }
        return true;
}

static bool env_allowed(const struct broker_tc_rules *t, const struct broker_task_config *c)
{
        for (size_t i = 0; i < c->n_env; i++) {
                const char *e = c->env[i];
                size_t klen = broker_env_key_len(e);
                bool ok = str_in(t->env, t->n_env, e);

                for (size_t k = 0; k < t->n_env_keys && !ok; k++)
                        ok = strlen(t->env_keys[k]) == klen && memcmp(t->env_keys[k], e, klen) == 0;
                if (!ok)
                        return false;
        }
        return true;
}

static bool ports_allowed(const struct broker_tc_rules *t, const struct broker_task_config *c)
{
        for (size_t i = 0; i < c->n_ports; i++) {
                bool ok = false;
                for (size_t k = 0; k < t->n_ports && !ok; k++)
                        ok = t->ports[k].target == c->ports[i].target &&
                             t->ports[k].published == c->ports[i].published;
                if (!ok)
                        return false;
        }
        return true;
}

static bool mounts_allowed(const struct broker_tc_rules *t, const struct broker_task_config *c)
{
        for (size_t i = 0; i < c->n_mounts; i++) {
                const struct broker_tc_mount *m = &c->mounts[i];
                bool ok = false;
                for (size_t k = 0; k < t->n_mounts && !ok; k++) {
                        const struct broker_tc_mount *a = &t->mounts[k];
                        ok = strcmp(a->type, m->type) == 0 && strcmp(a->source, m->source) == 0 &&
                             strcmp(a->target, m->target) == 0 && (a->rw || !m->rw);
                }
                if (!ok)
                        return false;
        }
        return true;
}

static bool kms_allowed(const struct broker_tc_rules *t, const struct broker_task_config *c)
{
        for (size_t i = 0; i < c->n_kms_endpoints; i++)
                if (!str_in(t->kms_endpoints, t->n_kms_endpoints, c->kms_endpoints[i]))
                        return false;
        return true;
}

/* Returns _CHECK_MAX when the rule matches, otherwise the first failing check. */
static enum check rule_check(const struct broker_rule *r, const struct facts *f)
{
        const struct attest_result *res = f->ev->result;
        const struct attest_measurements *m = &res->m;
        const struct broker_tc_rules *t = r->tc_rules;
        uint64_t attrs = td_attributes(m);

        if (res->tee_type != ATTEST_TEE_TDX)
                return CHECK_TEE;
        if (res->simulated && !r->allow_simulated)
                return CHECK_SIMULATED;
        if ((unsigned)res->status >= _ATTEST_TCB_STATUS_MAX || res->status == ATTEST_TCB_REVOKED ||
            !(r->tcb_statuses & (1u << res->status)))
                return CHECK_TCB_STATUS;
        if (res->tcb_eval_number < r->min_tcb_eval_number)
                return CHECK_TCB_EVAL;
        if ((attrs & TD_ATTR_TUD_MASK) && !r->allow_debug)
                return CHECK_DEBUG;
        if (r->require_sept_ve_disable && !(attrs & TD_ATTR_SEPT_VE_DISABLE))
                return CHECK_SEPT_VE;
        /* Measurements are public values: memcmp is fine, no constant-time comparison needed. */
        if (r->has_mrtd && memcmp(r->mrtd, m->mr_td, 48) != 0)
                return CHECK_MRTD;
        for (unsigned k = 0; k < 4; k++)
                if (r->has_rtmr[k] && memcmp(r->rtmr[k], m->rtmr[k], 48) != 0)
                        return CHECK_RTMR0 + k;
        /* The image and the task's configuration come from the log, the claims only say which
         * of its events to look at. */
        if (!f->ev->rtmr3_log)
                return CHECK_LOG;
        if (!f->log_replays)
                return CHECK_LOG_REPLAY;
        if (!f->app_id || (r->n_image_ids > 0 && !id_in(r->image_ids, r->n_image_ids, f->app_id)))
                return CHECK_IMAGE;
        if (!f->app_id_in_log)
                return CHECK_IMAGE_IN_LOG;
        if (r->has_log_images && !log_images_allowed(r, f->ev->rtmr3_log))
                return CHECK_LOG_IMAGES;
        if (!f->has_tc)
                return CHECK_TC;
        if (!f->tc)
                return CHECK_TC_VALID;
        if (!f->tc_in_log)
                return CHECK_TC_IN_LOG;
        if (strcmp(f->tc->image_id, f->app_id) != 0)
                return CHECK_TC_IMAGE;
        if (r->n_tc_digests > 0 && !id_in(r->tc_digests, r->n_tc_digests, f->tc_digest))
                return CHECK_TC_DIGEST;
        if (t && t->has_env && !env_allowed(t, f->tc))
                return CHECK_TC_ENV;
        if (t && t->has_ports && !ports_allowed(t, f->tc))
                return CHECK_TC_PORTS;
        if (t && t->has_mounts && !mounts_allowed(t, f->tc))
                return CHECK_TC_MOUNTS;
        if (t && t->has_kms && !kms_allowed(t, f->tc))
                return CHECK_TC_KMS;
        return _CHECK_MAX;
}

static unsigned rule_pins(const struct broker_rule *r)
{
        unsigned p = r->has_mrtd ? BROKER_PIN_MRTD : 0;

        for (unsigned k = 0; k < 4; k++)
                if (r->has_rtmr[k])
                        p |= BROKER_PIN_RTMR0 << k;
        if (r->n_image_ids > 0)
                p |= BROKER_PIN_IMAGE;
        if (r->has_log_images)
                p |= BROKER_PIN_LOG_IMAGES;
        if (r->n_tc_digests > 0)
                p |= BROKER_PIN_TASK_CONFIG_DIGEST;
        if (r->tc_rules)
                p |= BROKER_PIN_TASK_CONFIG_RULES;
        return p;
}

void broker_policy_decide(const struct broker_policy *p, const struct broker_evidence *ev,
                          struct broker_decision *ret)
{
        struct facts f;
        struct broker_decision d = {.reason = "no_rule"};
        int best = -1;

        facts_init(&f, ev);
        for (size_t i = 0; i < p->n_secrets && !d.allow; i++)
                for (size_t j = 0; j < p->secrets[i].n_rules && !d.allow; j++) {
                        const struct broker_rule *r = &p->secrets[i].rules[j];
                        enum check c = rule_check(r, &f);

                        if (c == _CHECK_MAX)
                                d = (struct broker_decision){.allow = true,
                                                             .secret_id = p->secrets[i].id,
                                                             .pinned = rule_pins(r)};
                        else if ((int)c > best) {
                                best = (int)c;
                                d.reason = check_reasons[c];
                                d.pinned = rule_pins(r);
                        }
                }
        memcpy(d.task_config_digest, f.tc_digest, sizeof(d.task_config_digest));
        broker_task_config_free(f.tc);
        *ret = d;
}
