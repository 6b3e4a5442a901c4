/* Release policy: loading (flags or JSON), strict validation at startup, and the decision.
 *
 * Measurements are compared in full and exactly; there is no prefix or wildcard form. Anything
 * a rule does not mention is not checked, except the defaults that fail closed: only UpToDate is
 * accepted, debug TDs are refused, SEPT_VE_DISABLE is required and simulated TDs are refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "json.h"
#include "parse.h"
#include "policy.h"

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

static void rule_init_defaults(struct broker_rule *r)
{
        *r = (struct broker_rule){
                .tcb_statuses = 1u << ATTEST_TCB_UP_TO_DATE,
                .require_sept_ve_disable = true,
        };
}

static void rule_clear(struct broker_rule *r)
{
        free(r->image_ids);
        *r = (struct broker_rule){0};
}

void broker_policy_free(struct broker_policy *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->n_secrets; i++) {
                struct broker_policy_secret *s = &p->secrets[i];
                for (size_t j = 0; j < s->n_rules; j++)
                        rule_clear(&s->rules[j]);
                free(s->rules);
                free(s->id);
                free(s->path);
        }
        free(p->secrets);
        free(p);
}

static int rule_add_image(struct broker_rule *r, const char *what, const char *s, struct ck_error **reterr)
{
        char norm[BROKER_IMAGE_ID_LEN + 1];
        void *n;

        if (broker_image_id_normalise(s, strlen(s), norm) < 0)
                return ck_error_set(
                        reterr, -EINVAL,
                        "%s: \"%.80s\" is not an image ID (expected sha256:<64 hex> or 64 hex digits)", what,
                        s);
        if (r->n_image_ids >= BROKER_POLICY_MAX_IMAGES)
                return ck_error_set(reterr, -E2BIG, "%s: more than %u image IDs", what,
                                    BROKER_POLICY_MAX_IMAGES);
        n = reallocarray(r->image_ids, r->n_image_ids + 1, sizeof(*r->image_ids));
        if (!n)
                return -ENOMEM;
        r->image_ids = n;
        memcpy(r->image_ids[r->n_image_ids++], norm, sizeof(norm));
        return 0;
}

int broker_policy_from_flags(const char *secret_path, const char *rtmr1_hex, const char *image_id,
                             bool allow_simulated, struct broker_policy **ret, struct ck_error **reterr)
{
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        struct broker_policy_secret *s;
        struct broker_rule *r;
        int rc;

        if (!secret_path || !*secret_path)
                return ck_error_set(reterr, -EINVAL, "-s: a secret file is required");
        if (!rtmr1_hex)
                return ck_error_set(reterr, -EINVAL, "-w: the RTMR1 value (96 hex digits) is required");
        if (!image_id)
                return ck_error_set(reterr, -EINVAL, "-d: the image ID the secret is for is required");

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->secrets = calloc(1, sizeof(*p->secrets));
        if (!p->secrets)
                return -ENOMEM;
        p->n_secrets = 1;
        s = &p->secrets[0];
        s->id = strdup("default");
        s->path = strdup(secret_path);
        s->rules = calloc(1, sizeof(*s->rules));
        if (!s->id || !s->path || !s->rules)
                return -ENOMEM;
        s->n_rules = 1;
        r = &s->rules[0];
        rule_init_defaults(r);
        r->allow_simulated = allow_simulated;
        r->has_rtmr[1] = true;
        rc = broker_measurement_parse("-w (RTMR1)", rtmr1_hex, r->rtmr[1], reterr);
        if (rc < 0)
                return rc;
        rc = rule_add_image(r, "-d (image ID)", image_id, reterr);
        if (rc < 0)
                return rc;
        *ret = TAKE_PTR(p);
        return 0;
}

/* Known keys of a rule object; anything else is a startup error (a misspelt key must not
 * silently drop a check). */
static const char *const rule_keys[] = {
        "mrtd",           "rtmr0",
        "rtmr1",          "rtmr2",
        "rtmr3",          "imageIds",
        "tcbStatuses",    "minTcbEvaluationNumber",
        "allowDebug",     "requireSeptVeDisable",
        "allowSimulated",
};

static int check_keys(json_t *obj, const char *const *keys, size_t n, const char *what,
                      struct ck_error **reterr)
{
        const char *k;
        json_t *v;

        json_object_foreach(obj, k, v)
        {
                bool ok = false;
                for (size_t i = 0; i < n && !ok; i++)
                        ok = strcmp(k, keys[i]) == 0;
                if (!ok)
                        return ck_error_set(reterr, -EINVAL, "%s: unknown key \"%.64s\"", what, k);
        }
        return 0;
}

static int rule_from_json(json_t *o, bool trust_sim_root, const char *what, struct broker_rule *r,
                          struct ck_error **reterr)
{
        static const char *const rtmr_keys[4] = {"rtmr0", "rtmr1", "rtmr2", "rtmr3"};
        const char *str = NULL;
        json_t *arr = NULL, *v;
        uint64_t u = 0;
        size_t i;
        int rc;
        char sub[160];

        if (!json_is_object(o))
                return ck_error_set(reterr, -EINVAL, "%s: must be an object", what);
        rc = check_keys(o, rule_keys, ELEMENTSOF(rule_keys), what, reterr);
        if (rc < 0)
                return rc;

        rc = ck_json_get_string(o, "mrtd", &str, reterr);
        if (rc == 0) {
                snprintf(sub, sizeof(sub), "%s.mrtd", what);
                rc = broker_measurement_parse(sub, str, r->mrtd, reterr);
                if (rc < 0)
                        return rc;
                r->has_mrtd = true;
        } else if (rc != -ENOENT)
                return ck_error_prefix(reterr, rc, "%s", what);

        for (unsigned k = 0; k < 4; k++) {
                rc = ck_json_get_string(o, rtmr_keys[k], &str, reterr);
                if (rc == -ENOENT)
                        continue;
                if (rc < 0)
                        return ck_error_prefix(reterr, rc, "%s", what);
                snprintf(sub, sizeof(sub), "%s.%s", what, rtmr_keys[k]);
                rc = broker_measurement_parse(sub, str, r->rtmr[k], reterr);
                if (rc < 0)
                        return rc;
                r->has_rtmr[k] = true;
        }

        rc = ck_json_get_array(o, "imageIds", &arr, reterr);
        if (rc == -ENOENT)
                return ck_error_set(reterr, -EINVAL,
                                    "%s: \"imageIds\" is required (the images the secret is for)", what);
        if (rc < 0)
                return ck_error_prefix(reterr, rc, "%s", what);
        if (json_array_size(arr) == 0)
                return ck_error_set(reterr, -EINVAL, "%s: \"imageIds\" must not be empty", what);
        snprintf(sub, sizeof(sub), "%s.imageIds", what);
        json_array_foreach(arr, i, v)
        {
                if (!json_is_string(v))
                        return ck_error_set(reterr, -EINVAL, "%s[%zu]: must be a string", sub, i);
                rc = rule_add_image(r, sub, json_string_value(v), reterr);
                if (rc < 0)
                        return rc;
        }

        rc = ck_json_get_array(o, "tcbStatuses", &arr, reterr);
        if (rc == 0) {
                if (json_array_size(arr) == 0)
                        return ck_error_set(reterr, -EINVAL, "%s: \"tcbStatuses\" must not be empty", what);
                r->tcb_statuses = 0;
                json_array_foreach(arr, i, v)
                {
                        int s = json_is_string(v) ? attest_tcb_status_from_string(json_string_value(v))
                                                  : -EINVAL;
                        if (s < 0)
                                return ck_error_set(
                                        reterr, -EINVAL,
                                        "%s.tcbStatuses[%zu]: not a TCB status (UpToDate, "
                                        "SWHardeningNeeded, ConfigurationNeeded, OutOfDate, ...)",
                                        what, i);
                        if (s == ATTEST_TCB_REVOKED)
                                return ck_error_set(reterr, -EINVAL,
                                                    "%s.tcbStatuses[%zu]: Revoked can never be accepted",
                                                    what, i);
                        r->tcb_statuses |= 1u << s;
                }
        } else if (rc != -ENOENT)
                return ck_error_prefix(reterr, rc, "%s", what);

        rc = ck_json_get_uint(o, "minTcbEvaluationNumber", UINT32_MAX, &u, reterr);
        if (rc == 0)
                r->min_tcb_eval_number = (uint32_t)u;
        else if (rc != -ENOENT)
                return ck_error_prefix(reterr, rc, "%s", what);

        rc = ck_json_get_bool(o, "allowDebug", &r->allow_debug, reterr);
        if (rc < 0 && rc != -ENOENT)
                return ck_error_prefix(reterr, rc, "%s", what);
        rc = ck_json_get_bool(o, "requireSeptVeDisable", &r->require_sept_ve_disable, reterr);
        if (rc < 0 && rc != -ENOENT)
                return ck_error_prefix(reterr, rc, "%s", what);
        rc = ck_json_get_bool(o, "allowSimulated", &r->allow_simulated, reterr);
        if (rc < 0 && rc != -ENOENT)
                return ck_error_prefix(reterr, rc, "%s", what);
        if (r->allow_simulated && !trust_sim_root)
                return ck_error_set(
                        reterr, -EINVAL,
                        "%s: \"allowSimulated\" needs the broker to be started with --trust-sim-root", what);
        return 0;
}

static bool valid_secret_id(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.'))
                        return false;
        }
        return true;
}

int broker_policy_from_json(const uint8_t *buf, size_t len, bool trust_sim_root, struct broker_policy **ret,
                            struct ck_error **reterr)
{
        static const char *const top_keys[] = {"secrets"};
        static const char *const secret_keys[] = {"id", "file", "rules"};
        _cleanup_(broker_policy_freep) struct broker_policy *p = NULL;
        _cleanup_json_ json_t *root = NULL;
        json_t *secrets = NULL, *so, *rules = NULL, *ro;
        size_t i, j;
        int rc;

        rc = ck_json_loadb(buf, len, BROKER_POLICY_MAX_BYTES, &root, reterr);
        if (rc < 0)
                return rc;
        if (!json_is_object(root))
                return ck_error_set(reterr, -EINVAL, "policy: must be a JSON object");
        rc = check_keys(root, top_keys, ELEMENTSOF(top_keys), "policy", reterr);
        if (rc < 0)
                return rc;
        rc = ck_json_get_array(root, "secrets", &secrets, reterr);
        if (rc == -ENOENT)
                return ck_error_set(reterr, -EINVAL, "policy: \"secrets\" is required");
        if (rc < 0)
                return rc;
        if (json_array_size(secrets) == 0 || json_array_size(secrets) > BROKER_POLICY_MAX_SECRETS)
                return ck_error_set(reterr, -EINVAL, "policy: \"secrets\" must hold 1 to %u entries",
                                    BROKER_POLICY_MAX_SECRETS);

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->secrets = calloc(json_array_size(secrets), sizeof(*p->secrets));
        if (!p->secrets)
                return -ENOMEM;

        json_array_foreach(secrets, i, so)
        {
                struct broker_policy_secret *s = &p->secrets[p->n_secrets];
                const char *id = NULL, *file = NULL;
                char what[64];

                snprintf(what, sizeof(what), "secrets[%zu]", i);
                if (!json_is_object(so))
                        return ck_error_set(reterr, -EINVAL, "%s: must be an object", what);
                rc = check_keys(so, secret_keys, ELEMENTSOF(secret_keys), what, reterr);
                if (rc < 0)
                        return rc;
                if (ck_json_get_string(so, "id", &id, reterr) < 0 || !valid_secret_id(id))
                        return ck_error_set(reterr, -EINVAL,
                                            "%s: \"id\" must be 1-64 characters of [A-Za-z0-9._-]", what);
                for (size_t k = 0; k < p->n_secrets; k++)
                        if (strcmp(p->secrets[k].id, id) == 0)
                                return ck_error_set(reterr, -EINVAL, "%s: duplicate id \"%s\"", what, id);
                if (ck_json_get_string(so, "file", &file, reterr) < 0 || !*file)
                        return ck_error_set(reterr, -EINVAL,
                                            "%s: \"file\" (the secret's JSON file) is required", what);
                rc = ck_json_get_array(so, "rules", &rules, reterr);
                if (rc < 0 || json_array_size(rules) == 0 ||
                    json_array_size(rules) > BROKER_POLICY_MAX_RULES)
                        return ck_error_set(reterr, -EINVAL, "%s: \"rules\" must hold 1 to %u rules", what,
                                            BROKER_POLICY_MAX_RULES);

                s->id = strdup(id);
                s->path = strdup(file);
                s->rules = calloc(json_array_size(rules), sizeof(*s->rules));
                p->n_secrets++;
                if (!s->id || !s->path || !s->rules)
                        return -ENOMEM;
                json_array_foreach(rules, j, ro)
                {
                        char rwhat[96];

                        snprintf(rwhat, sizeof(rwhat), "%s.rules[%zu]", what, j);
                        rule_init_defaults(&s->rules[j]);
                        s->n_rules++;
                        rc = rule_from_json(ro, trust_sim_root, rwhat, &s->rules[j], reterr);
                        if (rc < 0)
                                return rc;
                }
        }
        *ret = TAKE_PTR(p);
        return 0;
}

int broker_policy_load_file(const char *path, bool trust_sim_root, struct broker_policy **ret,
                            struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int rc;

        rc = ck_read_file(path, BROKER_POLICY_MAX_BYTES, &buf, &len, reterr);
        if (rc < 0)
                return ck_error_prefix(reterr, rc, "policy %s", path);
        rc = broker_policy_from_json(buf, len, trust_sim_root, ret, reterr);
        if (rc < 0)
                return ck_error_prefix(reterr, rc, "policy %s", path);
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
        CHECK_IMAGE,
        _CHECK_MAX,
};

static const char *const check_reasons[_CHECK_MAX] = {
        [CHECK_TEE] = "not_tdx",           [CHECK_SIMULATED] = "simulated_td",
        [CHECK_TCB_STATUS] = "tcb_status", [CHECK_TCB_EVAL] = "tcb_eval_too_old",
        [CHECK_DEBUG] = "debug_td",        [CHECK_SEPT_VE] = "sept_ve_not_disabled",
        [CHECK_MRTD] = "mrtd_mismatch",    [CHECK_RTMR0] = "rtmr0_mismatch",
        [CHECK_RTMR1] = "rtmr1_mismatch",  [CHECK_RTMR2] = "rtmr2_mismatch",
        [CHECK_RTMR3] = "rtmr3_mismatch",  [CHECK_IMAGE] = "image_mismatch",
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

/* Returns _CHECK_MAX when the rule matches, otherwise the first failing check. */
static enum check rule_check(const struct broker_rule *r, const struct attest_result *res,
                             const char *app_id)
{
        const struct attest_measurements *m = &res->m;
        uint64_t attrs = td_attributes(m);
        bool image_ok = false;

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
        for (size_t i = 0; app_id && i < r->n_image_ids && !image_ok; i++)
                image_ok = strcmp(r->image_ids[i], app_id) == 0;
        if (!image_ok)
                return CHECK_IMAGE;
        return _CHECK_MAX;
}

void broker_policy_decide(const struct broker_policy *p, const struct broker_evidence *ev,
                          struct broker_decision *ret)
{
        char app_id[BROKER_IMAGE_ID_LEN + 1];
        bool have_app_id;
        int best = -1;

        have_app_id = ev->app_id &&
                      broker_image_id_normalise((const char *)ev->app_id, ev->app_id_len, app_id) == 0;
        for (size_t i = 0; i < p->n_secrets; i++)
                for (size_t j = 0; j < p->secrets[i].n_rules; j++) {
                        enum check c =
                                rule_check(&p->secrets[i].rules[j], ev->result, have_app_id ? app_id : NULL);
                        if (c == _CHECK_MAX) {
                                *ret = (struct broker_decision){.allow = true,
                                                                .secret_id = p->secrets[i].id};
                                return;
                        }
                        if ((int)c > best)
                                best = (int)c;
                }
        *ret = (struct broker_decision){.reason = best >= 0 ? check_reasons[best] : "no_rule"};
}
