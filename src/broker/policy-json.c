/* The broker policy's JSON form (docs/broker-policy.md): strict loading at startup. Unknown keys,
 * malformed values and rules that leave the firmware open without saying so are errors, so a
 * typo never turns into a looser rule at run time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "json.h"
#include "parse.h"
#include "policy-internal.h"

/* Known keys of a rule object; anything else is a startup error (a misspelt key must not
 * silently drop a check). */
static const char *const rule_keys[] = {
        "mrtd",
        "rtmr0",
        "rtmr1",
        "rtmr2",
        "rtmr3",
        "imageIds",
        "tcbStatuses",
        "minTcbEvaluationNumber",
        "allowDebug",
        "requireSeptVeDisable",
        "allowSimulated",
        "firmware",
        "referenceValues",
        "imageAllowlist",
        "taskConfigDigests",
        "taskConfig",
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

/* A list of image IDs or digests under key; -ENOENT when absent. */
static int id_list_from_json(json_t *o, const char *key, const char *what, bool allow_empty,
                             char (**list)[BROKER_IMAGE_ID_LEN + 1], size_t *n, struct ck_error **reterr)
{
        json_t *arr = NULL, *v;
        char sub[320];
        size_t i;
        int rc;

        rc = ck_json_get_array(o, key, &arr, reterr);
        if (rc < 0)
                return rc == -ENOENT ? rc : ck_error_prefix(reterr, rc, "%s", what);
        if (json_array_size(arr) == 0 && !allow_empty)
                return ck_error_set(reterr, -EINVAL, "%s: \"%s\" must not be empty", what, key);
        snprintf(sub, sizeof(sub), "%s.%s", what, key);
        json_array_foreach(arr, i, v)
        {
                if (!json_is_string(v))
                        return ck_error_set(reterr, -EINVAL, "%s[%zu]: must be a string", sub, i);
                rc = broker_id_list_add(list, n, sub, json_string_value(v), reterr);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

static int strv_from_json(json_t *arr, const char *what, bool env_key, char ***ret, size_t *ret_n,
                          struct ck_error **reterr)
{
        json_t *v;
        size_t i;

        if (!json_is_array(arr) || json_array_size(arr) > BROKER_POLICY_MAX_VALUES)
                return ck_error_set(reterr, -EINVAL, "%s: must be an array of at most %u strings", what,
                                    BROKER_POLICY_MAX_VALUES);
        *ret = calloc(json_array_size(arr) + 1, sizeof(char *));
        if (!*ret)
                return -ENOMEM;
        json_array_foreach(arr, i, v)
        {
                const char *s = json_is_string(v) ? json_string_value(v) : NULL;

                if (!s || strlen(s) != json_string_length(v) || !*s)
                        return ck_error_set(reterr, -EINVAL, "%s[%zu]: must be a non-empty string", what, i);
                if (env_key && broker_env_key_len(s) != strlen(s))
                        return ck_error_set(reterr, -EINVAL,
                                            "%s[%zu]: a key has no '=' (use \"env\" for K=V)", what, i);
                (*ret)[i] = strdup(s);
                if (!(*ret)[i])
                        return -ENOMEM;
                (*ret_n)++;
        }
        return 0;
}

static int ports_from_json(json_t *arr, const char *what, struct broker_tc_rules *t,
                           struct ck_error **reterr)
{
        json_t *v;
        size_t i;

        if (!json_is_array(arr) || json_array_size(arr) > BROKER_POLICY_MAX_VALUES)
                return ck_error_set(reterr, -EINVAL, "%s: must be an array of at most %u ports", what,
                                    BROKER_POLICY_MAX_VALUES);
        t->ports = calloc(json_array_size(arr) + 1, sizeof(*t->ports));
        if (!t->ports)
                return -ENOMEM;
        json_array_foreach(arr, i, v)
        {
                static const char *const keys[] = {"published", "target"};
                uint64_t target = 0, published = 0;
                char sub[400];
                int rc;

                snprintf(sub, sizeof(sub), "%s[%zu]", what, i);
                if (!json_is_object(v))
                        return ck_error_set(reterr, -EINVAL, "%s: must be {\"published\":P,\"target\":T}",
                                            sub);
                rc = check_keys(v, keys, ELEMENTSOF(keys), sub, reterr);
                if (rc < 0)
                        return rc;
                rc = ck_json_get_uint(v, "target", 65535, &target, reterr);
                if (rc < 0 || target == 0)
                        return ck_error_set(reterr, -EINVAL, "%s: \"target\" must be 1-65535", sub);
                rc = ck_json_get_uint(v, "published", 65535, &published, reterr);
                if (rc < 0 && rc != -ENOENT)
                        return ck_error_set(reterr, -EINVAL, "%s: \"published\" must be 0-65535", sub);
                t->ports[i] = (struct broker_tc_port){.target = (uint16_t)target,
                                                      .published = (uint16_t)published};
                t->n_ports++;
        }
        return 0;
}

static int mounts_from_json(json_t *arr, const char *what, struct broker_tc_rules *t,
                            struct ck_error **reterr)
{
        json_t *v;
        size_t i;

        if (!json_is_array(arr) || json_array_size(arr) > BROKER_POLICY_MAX_VALUES)
                return ck_error_set(reterr, -EINVAL, "%s: must be an array of at most %u mounts", what,
                                    BROKER_POLICY_MAX_VALUES);
        t->mounts = calloc(json_array_size(arr) + 1, sizeof(*t->mounts));
        if (!t->mounts)
                return -ENOMEM;
        json_array_foreach(arr, i, v)
        {
                static const char *const keys[] = {"type", "source", "target", "rw"};
                struct broker_tc_mount *m = &t->mounts[i];
                const char *type = NULL, *source = "", *target = NULL;
                char sub[400];
                int rc;

                snprintf(sub, sizeof(sub), "%s[%zu]", what, i);
                if (!json_is_object(v))
                        return ck_error_set(reterr, -EINVAL, "%s: must be an object", sub);
                rc = check_keys(v, keys, ELEMENTSOF(keys), sub, reterr);
                if (rc < 0)
                        return rc;
                if (ck_json_get_string(v, "type", &type, NULL) < 0 ||
                    ck_json_get_string(v, "target", &target, NULL) < 0)
                        return ck_error_set(reterr, -EINVAL,
                                            "%s: \"type\" and \"target\" are required strings", sub);
                rc = ck_json_get_string(v, "source", &source, reterr);
                if (rc < 0 && rc != -ENOENT)
                        return ck_error_prefix(reterr, rc, "%s", sub);
                t->n_mounts++;
                m->type = strdup(type);
                m->source = strdup(source);
                m->target = strdup(target);
                if (!m->type || !m->source || !m->target)
                        return -ENOMEM;
                rc = ck_json_get_bool(v, "rw", &m->rw, reterr);
                if (rc < 0 && rc != -ENOENT)
                        return ck_error_prefix(reterr, rc, "%s", sub);
        }
        return 0;
}

static int tc_rules_from_json(json_t *o, const char *what, struct broker_tc_rules **ret,
                              struct ck_error **reterr)
{
        static const char *const keys[] = {"envKeys", "env", "ports", "mounts", "kmsEndpoints"};
        struct broker_tc_rules *t;
        json_t *v;
        char sub[320];
        int rc;

        if (!json_is_object(o))
                return ck_error_set(reterr, -EINVAL, "%s: must be an object", what);
        rc = check_keys(o, keys, ELEMENTSOF(keys), what, reterr);
        if (rc < 0)
                return rc;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        *ret = t; /* freed with the rule */
        if ((v = json_object_get(o, "envKeys"))) {
                snprintf(sub, sizeof(sub), "%s.envKeys", what);
                t->has_env = true;
                rc = strv_from_json(v, sub, true, &t->env_keys, &t->n_env_keys, reterr);
                if (rc < 0)
                        return rc;
        }
        if ((v = json_object_get(o, "env"))) {
                snprintf(sub, sizeof(sub), "%s.env", what);
                t->has_env = true;
                rc = strv_from_json(v, sub, false, &t->env, &t->n_env, reterr);
                if (rc < 0)
                        return rc;
        }
        if ((v = json_object_get(o, "ports"))) {
                snprintf(sub, sizeof(sub), "%s.ports", what);
                t->has_ports = true;
                rc = ports_from_json(v, sub, t, reterr);
                if (rc < 0)
                        return rc;
        }
        if ((v = json_object_get(o, "mounts"))) {
                snprintf(sub, sizeof(sub), "%s.mounts", what);
                t->has_mounts = true;
                rc = mounts_from_json(v, sub, t, reterr);
                if (rc < 0)
                        return rc;
        }
        if ((v = json_object_get(o, "kmsEndpoints"))) {
                snprintf(sub, sizeof(sub), "%s.kmsEndpoints", what);
                t->has_kms = true;
                rc = strv_from_json(v, sub, false, &t->kms_endpoints, &t->n_kms_endpoints, reterr);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

static int refvalues_from_json(json_t *v, const char *what, struct broker_rule *r, struct ck_error **reterr)
{
        struct attest_refvalues rv;
        int rc;

        if (json_is_string(v)) {
                rc = attest_refvalues_load(json_string_value(v), &rv, reterr);
        } else if (json_is_object(v)) {
                _cleanup_free_ char *doc = json_dumps(v, JSON_COMPACT);
                rc = doc ? attest_refvalues_parse((const uint8_t *)doc, strlen(doc), &rv, reterr) : -ENOMEM;
        } else
                return ck_error_set(
                        reterr, -EINVAL,
                        "%s: \"referenceValues\" must be a file name or a reference-values object", what);
        if (rc < 0)
                return ck_error_prefix(reterr, rc, "%s.referenceValues", what);
        return broker_rule_apply_refvalues(r, &rv, what, reterr);
}

static int measurements_from_json(json_t *o, const char *what, struct broker_rule *r,
                                  struct ck_error **reterr)
{
        static const char *const rtmr_keys[4] = {"rtmr0", "rtmr1", "rtmr2", "rtmr3"};
        const char *str = NULL;
        json_t *v;
        char sub[256];
        int rc;

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
        if ((v = json_object_get(o, "referenceValues"))) {
                rc = refvalues_from_json(v, what, r, reterr);
                if (rc < 0)
                        return rc;
        }
        rc = ck_json_get_string(o, "firmware", &str, reterr);
        if (rc == 0) {
                if (strcmp(str, "any") != 0)
                        return ck_error_set(reterr, -EINVAL, "%s: \"firmware\" can only be \"any\"", what);
                r->firmware_any = true;
        } else if (rc != -ENOENT)
                return ck_error_prefix(reterr, rc, "%s", what);
        if (r->firmware_any && r->has_mrtd)
                return ck_error_set(reterr, -EINVAL, "%s: \"firmware\": \"any\" contradicts the MRTD pin",
                                    what);
        if (!r->firmware_any && !r->has_mrtd)
                return ck_error_set(
                        reterr, -EINVAL,
                        "%s: pins no MRTD, and a host-supplied firmware can forge RTMR0-2: add \"mrtd\" "
                        "(or \"referenceValues\" with an mrtd), or say \"firmware\": \"any\" to accept "
                        "any firmware",
                        what);
        return 0;
}

static int rule_from_json(json_t *o, bool trust_sim_root, const char *what, struct broker_rule *r,
                          struct ck_error **reterr)
{
        json_t *arr = NULL, *v;
        uint64_t u = 0;
        size_t i;
        int rc;

        if (!json_is_object(o))
                return ck_error_set(reterr, -EINVAL, "%s: must be an object", what);
        rc = check_keys(o, rule_keys, ELEMENTSOF(rule_keys), what, reterr);
        if (rc < 0)
                return rc;
        rc = measurements_from_json(o, what, r, reterr);
        if (rc < 0)
                return rc;

        rc = id_list_from_json(o, "imageIds", what, false, &r->image_ids, &r->n_image_ids, reterr);
        if (rc == -ENOENT)
                return ck_error_set(reterr, -EINVAL,
                                    "%s: \"imageIds\" is required (the images the secret is for)", what);
        if (rc < 0)
                return rc;
        rc = id_list_from_json(o, "imageAllowlist", what, false, &r->log_images, &r->n_log_images, reterr);
        if (rc < 0 && rc != -ENOENT)
                return rc;
        r->has_log_images = rc == 0;
        rc = id_list_from_json(o, "taskConfigDigests", what, false, &r->tc_digests, &r->n_tc_digests,
                               reterr);
        if (rc < 0 && rc != -ENOENT)
                return rc;
        if ((v = json_object_get(o, "taskConfig"))) {
                char sub[256];
                snprintf(sub, sizeof(sub), "%s.taskConfig", what);
                rc = tc_rules_from_json(v, sub, &r->tc_rules, reterr);
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
                        broker_rule_init_defaults(&s->rules[j]);
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
