/* TCB Info and QE Identity: parsing of the signed JSON texts, and the checks that compare them
 * with a quote (reference §2.2 steps 5, 6, 7, 10 and 12).
 *
 * The texts are parsed with jansson from exactly the bytes whose signature verify.c checks; this
 * file never sees anything else. Unknown status strings, missing fields and out-of-range SVNs
 * make the whole document invalid (fail closed), rather than being skipped. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "collateral-private.h"
#include "json.h"
#include "parse.h"
#include "tcb.h"

#define SIGNED_JSON_MAX (512 * 1024)
#define LEVELS_MAX      256
#define ADVISORIES_MAX  256
#define MODULE_IDS_MAX  64

int attest_parse_date(const char *s, time_t *ret)
{
        /* Intel's format: YYYY-MM-DDTHH:MM:SSZ, optionally with fractional seconds. */
        static const char pattern[] = "dddd-dd-ddTdd:dd:dd";
        struct tm tm = {};
        size_t n = strlen(s), i;
        time_t t;

        if (n < 20)
                return -EINVAL;
        for (i = 0; i < sizeof(pattern) - 1; i++) {
                if (pattern[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pattern[i])
                        return -EINVAL;
        }
        if (s[i] == '.') {
                i++;
                if (!isdigit((unsigned char)s[i]))
                        return -EINVAL;
                while (isdigit((unsigned char)s[i]))
                        i++;
        }
        if (s[i] != 'Z' || s[i + 1] != '\0')
                return -EINVAL;
        tm.tm_year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0') - 1900;
        tm.tm_mon = (s[5] - '0') * 10 + (s[6] - '0') - 1;
        tm.tm_mday = (s[8] - '0') * 10 + (s[9] - '0');
        tm.tm_hour = (s[11] - '0') * 10 + (s[12] - '0');
        tm.tm_min = (s[14] - '0') * 10 + (s[15] - '0');
        tm.tm_sec = (s[17] - '0') * 10 + (s[18] - '0');
        if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
            tm.tm_sec > 60)
                return -EINVAL;
        t = timegm(&tm);
        if (t == (time_t)-1)
                return -EINVAL;
        *ret = t;
        return 0;
}

void attest_advisories_free(char **a)
{
        if (!a)
                return;
        for (char **p = a; *p; p++)
                free(*p);
        free(a);
}

static int get_hex(json_t *o, const char *key, uint8_t *out, size_t n, struct ck_error **reterr)
{
        const char *s = NULL;
        int r = ck_json_get_string(o, key, &s, reterr);

        if (r == -ENOENT)
                return ck_error_set(reterr, -EBADMSG, "\"%s\" is missing", key);
        if (r < 0)
                return -EBADMSG;
        if (ck_hex_decode(s, strlen(s), out, n) < 0)
                return ck_error_set(reterr, -EBADMSG, "\"%s\" is not %zu bytes of hex", key, n);
        return 0;
}

static int get_uint(json_t *o, const char *key, uint64_t max, uint64_t *ret, struct ck_error **reterr)
{
        int r = ck_json_get_uint(o, key, max, ret, reterr);

        if (r == -ENOENT)
                return ck_error_set(reterr, -EBADMSG, "\"%s\" is missing", key);
        return r < 0 ? -EBADMSG : 0;
}

static int get_str(json_t *o, const char *key, const char **ret, struct ck_error **reterr)
{
        int r = ck_json_get_string(o, key, ret, reterr);

        if (r == -ENOENT)
                return ck_error_set(reterr, -EBADMSG, "\"%s\" is missing", key);
        return r < 0 ? -EBADMSG : 0;
}

static int get_date(json_t *o, const char *key, time_t *ret, struct ck_error **reterr)
{
        const char *s = NULL;
        int r = get_str(o, key, &s, reterr);

        if (r < 0)
                return r;
        if (attest_parse_date(s, ret) < 0)
                return ck_error_set(reterr, -EBADMSG, "\"%s\" is not a date: %.40s", key, s);
        return 0;
}

static int get_status(json_t *o, enum attest_tcb_status *ret, struct ck_error **reterr)
{
        const char *s = NULL;
        int r = get_str(o, "tcbStatus", &s, reterr);

        if (r < 0)
                return r;
        r = attest_tcb_status_from_string(s);
        if (r < 0)
                return ck_error_set(reterr, -EBADMSG, "unknown tcbStatus \"%.40s\"", s);
        *ret = (enum attest_tcb_status)r;
        return 0;
}

static int get_advisories(json_t *o, char ***ret, struct ck_error **reterr)
{
        json_t *a = NULL;
        char **list;
        size_t n;
        int r = ck_json_get_array(o, "advisoryIDs", &a, reterr);

        if (r == -ENOENT)
                a = NULL;
        else if (r < 0)
                return -EBADMSG;
        n = a ? json_array_size(a) : 0;
        if (n > ADVISORIES_MAX)
                return ck_error_set(reterr, -EBADMSG, "too many advisoryIDs (%zu)", n);
        list = calloc(n + 1, sizeof(char *));
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *v = json_array_get(a, i);
                if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 64 ||
                    !ck_is_printable(json_string_value(v), json_string_length(v))) {
                        attest_advisories_free(list);
                        return ck_error_set(reterr, -EBADMSG, "advisoryIDs[%zu] is not a short string", i);
                }
                list[i] = strdup(json_string_value(v));
                if (!list[i]) {
                        attest_advisories_free(list);
                        return -ENOMEM;
                }
        }
        *ret = list;
        return 0;
}

/* tcbLevels of an enclave identity or a TDX module identity: [{tcb:{isvsvn}, tcbStatus, …}]. */
static int parse_isv_levels(json_t *o, struct attest_isv_level **ret, size_t *ret_n,
                            struct ck_error **reterr)
{
        json_t *a = NULL;
        struct attest_isv_level *levels;
        size_t n;
        int r;

        r = ck_json_get_array(o, "tcbLevels", &a, reterr);
        if (r < 0)
                return ck_error_set(reterr, -EBADMSG, "\"tcbLevels\" is missing or not an array");
        n = json_array_size(a);
        if (n == 0 || n > LEVELS_MAX)
                return ck_error_set(reterr, -EBADMSG, "\"tcbLevels\" has %zu entries", n);
        levels = calloc(n, sizeof(*levels));
        if (!levels)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *l = json_array_get(a, i), *tcb = NULL;
                uint64_t svn = 0;

                r = ck_json_get_object(l, "tcb", &tcb, reterr);
                if (r >= 0)
                        r = get_uint(tcb, "isvsvn", UINT16_MAX, &svn, reterr);
                else
                        r = ck_error_set(reterr, -EBADMSG, "\"tcb\" is missing");
                if (r >= 0)
                        r = get_status(l, &levels[i].status, reterr);
                if (r >= 0)
                        r = get_advisories(l, &levels[i].advisory_ids, reterr);
                if (r < 0) {
                        for (size_t j = 0; j < i; j++)
                                attest_advisories_free(levels[j].advisory_ids);
                        free(levels);
                        return ck_error_prefix(reterr, -EBADMSG, "tcbLevels[%zu]", i);
                }
                levels[i].isvsvn = (uint16_t)svn;
        }
        *ret = levels;
        *ret_n = n;
        return 0;
}

static int parse_components(json_t *tcb, const char *key, uint8_t out[ATTEST_SVN_COMPONENTS],
                            struct ck_error **reterr)
{
        json_t *a = NULL;

        if (ck_json_get_array(tcb, key, &a, reterr) < 0)
                return ck_error_set(reterr, -EBADMSG, "\"%s\" is missing or not an array", key);
        if (json_array_size(a) != ATTEST_SVN_COMPONENTS)
                return ck_error_set(reterr, -EBADMSG, "\"%s\" has %zu entries, not 16", key,
                                    json_array_size(a));
        for (size_t i = 0; i < ATTEST_SVN_COMPONENTS; i++) {
                uint64_t v = 0;
                if (get_uint(json_array_get(a, i), "svn", UINT8_MAX, &v, reterr) < 0)
                        return ck_error_prefix(reterr, -EBADMSG, "%s[%zu]", key, i);
                out[i] = (uint8_t)v;
        }
        return 0;
}

/* SGX TCB Info v2 spells the components as sgxtcbcomp01svn … sgxtcbcomp16svn. */
static int parse_components_v2(json_t *tcb, uint8_t out[ATTEST_SVN_COMPONENTS], struct ck_error **reterr)
{
        for (size_t i = 0; i < ATTEST_SVN_COMPONENTS; i++) {
                char key[24];
                uint64_t v = 0;

                snprintf(key, sizeof(key), "sgxtcbcomp%02zusvn", i + 1);
                if (get_uint(tcb, key, UINT8_MAX, &v, reterr) < 0)
                        return -EBADMSG;
                out[i] = (uint8_t)v;
        }
        return 0;
}

/* Descending order by (SGX components, PCESVN, TDX components): Intel keeps levels in a sorted
 * set, so the JSON order is not trusted. */
static int level_cmp_desc(const void *a, const void *b)
{
        const struct attest_tcb_level *x = a, *y = b;
        int c = memcmp(y->sgx, x->sgx, ATTEST_SVN_COMPONENTS);

        if (c)
                return c;
        if (x->pcesvn != y->pcesvn)
                return x->pcesvn < y->pcesvn ? 1 : -1;
        return memcmp(y->tdx, x->tdx, ATTEST_SVN_COMPONENTS);
}

static int parse_module_identity(json_t *o, struct attest_module_identity *m, struct ck_error **reterr)
{
        const char *id = NULL;
        size_t n;
        int r;

        r = get_str(o, "id", &id, reterr);
        if (r < 0)
                return r;
        n = strlen(id);
        if (n == 0 || n >= sizeof(m->id))
                return ck_error_set(reterr, -EBADMSG, "module identity id \"%.20s\" is invalid", id);
        for (size_t i = 0; i < n; i++)
                m->id[i] = (char)toupper((unsigned char)id[i]);
        r = get_hex(o, "mrsigner", m->mrsigner, 48, reterr);
        if (r >= 0)
                r = get_hex(o, "attributes", m->attributes, 8, reterr);
        if (r >= 0)
                r = get_hex(o, "attributesMask", m->attributes_mask, 8, reterr);
        if (r >= 0)
                r = parse_isv_levels(o, &m->levels, &m->n_levels, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "tdxModuleIdentities %s", m->id);
        return 0;
}

void attest_tcb_info_done(struct attest_tcb_info *t)
{
        for (size_t i = 0; i < t->n_levels; i++)
                attest_advisories_free(t->levels[i].advisory_ids);
        free(t->levels);
        for (size_t i = 0; i < t->n_module_ids; i++) {
                for (size_t j = 0; j < t->module_ids[i].n_levels; j++)
                        attest_advisories_free(t->module_ids[i].levels[j].advisory_ids);
                free(t->module_ids[i].levels);
        }
        free(t->module_ids);
        *t = (struct attest_tcb_info){};
}

void attest_qe_identity_done(struct attest_qe_identity *q)
{
        for (size_t i = 0; i < q->n_levels; i++)
                attest_advisories_free(q->levels[i].advisory_ids);
        free(q->levels);
        *q = (struct attest_qe_identity){};
}

static int tcb_info_parse_json(json_t *j, struct attest_tcb_info *t, struct ck_error **reterr)
{
        const char *s = NULL;
        json_t *a = NULL, *mod = NULL;
        uint64_t v = 0;
        size_t n;
        int r;

        if (!json_is_object(j))
                return ck_error_set(reterr, -EBADMSG, "not a JSON object");
        r = get_str(j, "id", &s, reterr);
        if (r < 0)
                return r;
        if (strcmp(s, "TDX") != 0 && strcmp(s, "SGX") != 0)
                return ck_error_set(reterr, -EBADMSG, "id \"%.20s\" is neither TDX nor SGX", s);
        snprintf(t->id, sizeof(t->id), "%s", s);
        if ((r = get_uint(j, "version", 100, &v, reterr)) < 0)
                return r;
        t->version = (unsigned)v;
        if (t->version < 2)
                return ck_error_set(reterr, -EBADMSG, "version %u is not supported", t->version);
        if ((r = get_date(j, "issueDate", &t->issue_date, reterr)) < 0 ||
            (r = get_date(j, "nextUpdate", &t->next_update, reterr)) < 0 ||
            (r = get_hex(j, "fmspc", t->fmspc, 6, reterr)) < 0 ||
            (r = get_hex(j, "pceId", t->pce_id, 2, reterr)) < 0 ||
            (r = get_uint(j, "tcbEvaluationDataNumber", UINT32_MAX, &v, reterr)) < 0)
                return r;
        t->eval_number = (uint32_t)v;

        r = ck_json_get_object(j, "tdxModule", &mod, reterr);
        if (r >= 0) {
                t->has_tdx_module = true;
                if ((r = get_hex(mod, "mrsigner", t->module_mrsigner, 48, reterr)) < 0 ||
                    (r = get_hex(mod, "attributes", t->module_attributes, 8, reterr)) < 0 ||
                    (r = get_hex(mod, "attributesMask", t->module_attributes_mask, 8, reterr)) < 0)
                        return ck_error_prefix(reterr, r, "tdxModule");
        } else if (r != -ENOENT)
                return -EBADMSG;

        r = ck_json_get_array(j, "tdxModuleIdentities", &a, reterr);
        if (r >= 0) {
                n = json_array_size(a);
                if (n > MODULE_IDS_MAX)
                        return ck_error_set(reterr, -EBADMSG, "too many tdxModuleIdentities (%zu)", n);
                t->module_ids = calloc(n ? n : 1, sizeof(*t->module_ids));
                if (!t->module_ids)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        r = parse_module_identity(json_array_get(a, i), &t->module_ids[i], reterr);
                        t->n_module_ids = i + 1;
                        if (r < 0)
                                return r;
                }
        } else if (r != -ENOENT)
                return -EBADMSG;

        r = ck_json_get_array(j, "tcbLevels", &a, reterr);
        if (r < 0)
                return ck_error_set(reterr, -EBADMSG, "\"tcbLevels\" is missing or not an array");
        n = json_array_size(a);
        if (n == 0 || n > LEVELS_MAX)
                return ck_error_set(reterr, -EBADMSG, "\"tcbLevels\" has %zu entries", n);
        t->levels = calloc(n, sizeof(*t->levels));
        if (!t->levels)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct attest_tcb_level *l = &t->levels[i];
                json_t *e = json_array_get(a, i), *tcb = NULL;

                t->n_levels = i + 1;
                if (ck_json_get_object(e, "tcb", &tcb, reterr) < 0)
                        return ck_error_set(reterr, -EBADMSG, "tcbLevels[%zu]: \"tcb\" is missing", i);
                if (t->version >= 3)
                        r = parse_components(tcb, "sgxtcbcomponents", l->sgx, reterr);
                else
                        r = parse_components_v2(tcb, l->sgx, reterr);
                if (r >= 0 && strcmp(t->id, "TDX") == 0)
                        r = parse_components(tcb, "tdxtcbcomponents", l->tdx, reterr);
                if (r >= 0)
                        r = get_uint(tcb, "pcesvn", UINT16_MAX, &v, reterr);
                if (r >= 0)
                        r = get_status(e, &l->status, reterr);
                if (r >= 0)
                        r = get_advisories(e, &l->advisory_ids, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, -EBADMSG, "tcbLevels[%zu]", i);
                l->pcesvn = (uint16_t)v;
        }
        qsort(t->levels, t->n_levels, sizeof(*t->levels), level_cmp_desc);
        return 0;
}

int attest_tcb_info_parse(const char *text, size_t len, struct attest_tcb_info *ret,
                          struct ck_error **reterr)
{
        _cleanup_json_ json_t *j = NULL;
        struct attest_tcb_info t = {};
        int r;

        r = ck_json_loadb(text, len, SIGNED_JSON_MAX, &j, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, -EBADMSG, "TCB Info");
        r = tcb_info_parse_json(j, &t, reterr);
        if (r < 0) {
                attest_tcb_info_done(&t);
                return ck_error_prefix(reterr, r, "TCB Info");
        }
        *ret = t;
        return 0;
}

static int qe_identity_parse_json(json_t *j, struct attest_qe_identity *q, struct ck_error **reterr)
{
        const char *s = NULL;
        uint8_t b4[4] = {};
        uint64_t v = 0;
        int r;

        if (!json_is_object(j))
                return ck_error_set(reterr, -EBADMSG, "not a JSON object");
        if ((r = get_str(j, "id", &s, reterr)) < 0)
                return r;
        if (strcmp(s, "TD_QE") != 0 && strcmp(s, "QE") != 0 && strcmp(s, "QVE") != 0)
                return ck_error_set(reterr, -EBADMSG, "id \"%.20s\" is not a QE identity", s);
        snprintf(q->id, sizeof(q->id), "%s", s);
        if ((r = get_uint(j, "version", 100, &v, reterr)) < 0)
                return r;
        q->version = (unsigned)v;
        if ((r = get_date(j, "issueDate", &q->issue_date, reterr)) < 0 ||
            (r = get_date(j, "nextUpdate", &q->next_update, reterr)) < 0 ||
            (r = get_uint(j, "tcbEvaluationDataNumber", UINT32_MAX, &v, reterr)) < 0)
                return r;
        q->eval_number = (uint32_t)v;
        /* miscselect is written as a big-endian hex number; the QE report holds it little-endian. */
        if ((r = get_hex(j, "miscselect", b4, 4, reterr)) < 0)
                return r;
        q->miscselect = (uint32_t)b4[0] << 24 | (uint32_t)b4[1] << 16 | (uint32_t)b4[2] << 8 | b4[3];
        if ((r = get_hex(j, "miscselectMask", b4, 4, reterr)) < 0)
                return r;
        q->miscselect_mask = (uint32_t)b4[0] << 24 | (uint32_t)b4[1] << 16 | (uint32_t)b4[2] << 8 | b4[3];
        if ((r = get_hex(j, "attributes", q->attributes, 16, reterr)) < 0 ||
            (r = get_hex(j, "attributesMask", q->attributes_mask, 16, reterr)) < 0 ||
            (r = get_hex(j, "mrsigner", q->mrsigner, 32, reterr)) < 0 ||
            (r = get_uint(j, "isvprodid", UINT16_MAX, &v, reterr)) < 0)
                return r;
        q->isvprodid = (uint16_t)v;
        return parse_isv_levels(j, &q->levels, &q->n_levels, reterr);
}

int attest_qe_identity_parse(const char *text, size_t len, struct attest_qe_identity *ret,
                             struct ck_error **reterr)
{
        _cleanup_json_ json_t *j = NULL;
        struct attest_qe_identity q = {};
        int r;

        r = ck_json_loadb(text, len, SIGNED_JSON_MAX, &j, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, -EBADMSG, "QE Identity");
        r = qe_identity_parse_json(j, &q, reterr);
        if (r < 0) {
                attest_qe_identity_done(&q);
                return ck_error_prefix(reterr, r, "QE Identity");
        }
        *ret = q;
        return 0;
}

/* ---- Checks against a quote ---- */

int attest_tcb_check_info(const struct attest_tcb_info *t, const struct attest_quote *q,
                          const struct attest_pck_info *pck, struct ck_error **reterr)
{
        bool tdx = q->tee_type == ATTEST_TEE_TDX;

        if (tdx && strcmp(t->id, "TDX") != 0)
                return ck_error_set(reterr, -EBADMSG, "TCB Info: id \"%s\" is not TDX for a TDX quote",
                                    t->id);
        if (!tdx && strcmp(t->id, "SGX") != 0)
                return ck_error_set(reterr, -EBADMSG, "TCB Info: id \"%s\" is not SGX for an SGX quote",
                                    t->id);
        if (tdx && t->version < 3)
                return ck_error_set(reterr, -EBADMSG, "TCB Info: version %u is below 3 for a TDX quote",
                                    t->version);
        if (memcmp(t->fmspc, pck->fmspc, 6) != 0)
                return ck_error_set(reterr, -ENOENT, "TCB Info: FMSPC does not match the PCK certificate");
        if (memcmp(t->pce_id, pck->pce_id, 2) != 0)
                return ck_error_set(reterr, -ENOENT, "TCB Info: PCE-ID does not match the PCK certificate");
        return 0;
}

int attest_tcb_check_qe_identity_kind(const struct attest_qe_identity *qe, const struct attest_quote *q,
                                      struct ck_error **reterr)
{
        if (q->tee_type == ATTEST_TEE_TDX) {
                if (strcmp(qe->id, "TD_QE") != 0)
                        return ck_error_set(reterr, -EBADMSG,
                                            "QE Identity: id \"%s\" is not TD_QE for a TDX quote", qe->id);
                if (qe->version != 2 && qe->version != 3)
                        return ck_error_set(reterr, -EBADMSG, "QE Identity: version %u is not 2 or 3",
                                            qe->version);
        } else {
                if (strcmp(qe->id, "QE") != 0)
                        return ck_error_set(reterr, -EBADMSG,
                                            "QE Identity: id \"%s\" is not QE for an SGX quote", qe->id);
                if (qe->version != 2)
                        return ck_error_set(reterr, -EBADMSG, "QE Identity: version %u is not 2",
                                            qe->version);
        }
        return 0;
}

const struct attest_module_identity *attest_tcb_find_module(const struct attest_tcb_info *t, uint8_t major)
{
        char want[16];

        snprintf(want, sizeof(want), "TDX_%02X", major);
        for (size_t i = 0; i < t->n_module_ids; i++)
                if (strcmp(t->module_ids[i].id, want) == 0)
                        return &t->module_ids[i];
        return NULL;
}

int attest_tcb_check_module(const struct attest_tcb_info *t, const struct attest_quote *q,
                            const struct attest_module_identity **ret_id, struct ck_error **reterr)
{
        const uint8_t *mrsigner, *attrs, *mask;
        const struct attest_module_identity *mi = NULL;
        const struct attest_measurements *m = &q->m;

        if (m->tee_tcb_svn[1] > 0 && q->version >= 4) {
                mi = attest_tcb_find_module(t, m->tee_tcb_svn[1]);
                if (!mi)
                        return ck_error_set(
                                reterr, -ENOENT,
                                "TDX module: no identity TDX_%02X in TCB Info (TDX_MODULE_MISMATCH)",
                                m->tee_tcb_svn[1]);
                mrsigner = mi->mrsigner;
                attrs = mi->attributes;
                mask = mi->attributes_mask;
        } else {
                if (!t->has_tdx_module)
                        return ck_error_set(reterr, -ENOENT, "TDX module: TCB Info has no tdxModule");
                mrsigner = t->module_mrsigner;
                attrs = t->module_attributes;
                mask = t->module_attributes_mask;
        }
        if (memcmp(m->mr_signer_seam, mrsigner, 48) != 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "TDX module: MRSIGNERSEAM does not match the module identity");
        /* Intel requires SEAMATTRIBUTES to be zero and equal to the expected value; dcap-qvl compares
         * under the mask and forbids bits outside it. Do all of it. */
        for (size_t i = 0; i < 8; i++) {
                if (m->seam_attributes[i] != 0)
                        return ck_error_set(reterr, -EKEYREJECTED, "TDX module: SEAMATTRIBUTES is not zero");
                if ((m->seam_attributes[i] & mask[i]) != (attrs[i] & mask[i]))
                        return ck_error_set(reterr, -EKEYREJECTED,
                                            "TDX module: SEAMATTRIBUTES do not match the module identity");
        }
        *ret_id = mi;
        return 0;
}

int attest_tcb_check_qe_report(const struct attest_qe_identity *qe, const uint8_t *report,
                               const struct attest_isv_level **ret_level, struct ck_error **reterr)
{
        uint32_t misc = ck_le32(report + 16);
        uint16_t prodid = ck_le16(report + 256), isvsvn = ck_le16(report + 258);

        if (memcmp(report + 128, qe->mrsigner, 32) != 0)
                return ck_error_set(reterr, -EKEYREJECTED, "QE identity: MRSIGNER does not match");
        if (prodid != qe->isvprodid)
                return ck_error_set(reterr, -EKEYREJECTED, "QE identity: ISVPRODID %u does not match %u",
                                    prodid, qe->isvprodid);
        if ((misc & qe->miscselect_mask) != (qe->miscselect & qe->miscselect_mask))
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "QE identity: MISCSELECT does not match under the mask");
        for (size_t i = 0; i < 16; i++)
                if ((report[48 + i] & qe->attributes_mask[i]) !=
                    (qe->attributes[i] & qe->attributes_mask[i]))
                        return ck_error_set(reterr, -EKEYREJECTED,
                                            "QE identity: ATTRIBUTES do not match under the mask");
        for (size_t i = 0; i < qe->n_levels; i++)
                if (qe->levels[i].isvsvn <= isvsvn) {
                        if (qe->levels[i].status == ATTEST_TCB_REVOKED)
                                return ck_error_set(reterr, -EKEYREVOKED,
                                                    "QE identity: QE TCB level is revoked");
                        *ret_level = &qe->levels[i];
                        return 0;
                }
        return ck_error_set(reterr, -ENOENT,
                            "QE identity: no QE TCB level for ISVSVN %u (TCB not supported)", isvsvn);
}

/* Merge of a level status with a module or QE status (reference §2.2 step 12). */
static enum attest_tcb_status merge_status(enum attest_tcb_status level, enum attest_tcb_status other)
{
        if (other == ATTEST_TCB_REVOKED)
                return ATTEST_TCB_REVOKED;
        if (other != ATTEST_TCB_OUT_OF_DATE)
                return level;
        switch (level) {
        case ATTEST_TCB_UP_TO_DATE:
        case ATTEST_TCB_SW_HARDENING_NEEDED:
                return ATTEST_TCB_OUT_OF_DATE;
        case ATTEST_TCB_CONFIGURATION_NEEDED:
        case ATTEST_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED:
                return ATTEST_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED;
        default:
                return level;
        }
}

static bool is_configuration_status(enum attest_tcb_status s)
{
        return s == ATTEST_TCB_CONFIGURATION_NEEDED ||
               s == ATTEST_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED ||
               s == ATTEST_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED;
}

/* TD relaunch (v5 body type 3): the platform has been updated but the TD still runs on the old
 * module SVNs, which TEE_TCB_SVN2 (the SVNs a relaunched TD would get) shows to be current. */
static bool relaunch_advised(const struct attest_tcb_info *t, const struct attest_measurements *m)
{
        const struct attest_tcb_level *top = &t->levels[0];
        const uint8_t *svn2 = m->tee_tcb_svn2;

        if (svn2[1] == 0)
                return svn2[0] >= top->tdx[0] && svn2[2] >= top->tdx[2];
        const struct attest_module_identity *mi = attest_tcb_find_module(t, svn2[1]);
        if (!mi || mi->n_levels == 0)
                return false;
        uint16_t top_isvsvn = 0;
        for (size_t i = 0; i < mi->n_levels; i++)
                if (mi->levels[i].isvsvn > top_isvsvn)
                        top_isvsvn = mi->levels[i].isvsvn;
        return svn2[0] >= top_isvsvn && svn2[2] >= top->tdx[2];
}

static int advisories_add(const char ***list, size_t *n, char **add)
{
        for (char **p = add; p && *p; p++) {
                const char **nl = reallocarray(*list, *n + 2, sizeof(char *));
                if (!nl)
                        return -ENOMEM;
                *list = nl;
                nl[(*n)++] = *p;
                nl[*n] = NULL;
        }
        return 0;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int attest_tcb_match(const struct attest_tcb_info *t, const struct attest_quote *q,
                     const struct attest_pck_info *pck, const struct attest_module_identity *mi,
                     const struct attest_isv_level *qe_level, struct attest_result *res,
                     struct ck_error **reterr)
{
        const struct attest_measurements *m = &q->m;
        const struct attest_tcb_level *sgx_level = NULL, *level = NULL;
        const struct attest_isv_level *mod_level = NULL;
        bool tdx = q->tee_type == ATTEST_TEE_TDX;
        size_t first_tdx = tdx && m->tee_tcb_svn[1] > 0 ? 2 : 0;
        enum attest_tcb_status status, mod_status = ATTEST_TCB_UP_TO_DATE;
        _cleanup_free_ const char **adv = NULL;
        size_t n_adv = 0;
        int r;

        for (size_t i = 0; i < t->n_levels; i++) {
                const struct attest_tcb_level *l = &t->levels[i];
                bool ok = pck->pcesvn >= l->pcesvn;

                for (size_t c = 0; ok && c < ATTEST_SVN_COMPONENTS; c++)
                        ok = pck->comp_svn[c] >= l->sgx[c];
                if (!ok)
                        continue;
                if (!sgx_level)
                        sgx_level = l;
                if (!tdx) {
                        level = l;
                        break;
                }
                for (size_t c = first_tdx; ok && c < ATTEST_SVN_COMPONENTS; c++)
                        ok = m->tee_tcb_svn[c] >= l->tdx[c];
                if (ok) {
                        level = l;
                        break;
                }
        }
        if (!level)
                return ck_error_set(reterr, -ENOENT, "TCB level: no matching TCB level (TCB not supported)");
        status = level->status;

        if (tdx && m->tee_tcb_svn[1] > 0) {
                if (!mi)
                        mi = attest_tcb_find_module(t, m->tee_tcb_svn[1]);
                if (!mi)
                        return ck_error_set(reterr, -ENOENT,
                                            "TDX module: no identity TDX_%02X (TDX_MODULE_MISMATCH)",
                                            m->tee_tcb_svn[1]);
                for (size_t i = 0; i < mi->n_levels; i++)
                        if (mi->levels[i].isvsvn <= m->tee_tcb_svn[0]) {
                                mod_level = &mi->levels[i];
                                break;
                        }
                if (!mod_level)
                        return ck_error_set(reterr, -ENOENT,
                                            "TDX module: no TCB level of %s for SVN %u (TCB not supported)",
                                            mi->id, m->tee_tcb_svn[0]);
                mod_status = mod_level->status;
                status = merge_status(status, mod_status);
        }

        if (tdx && q->body_type == 3 && qe_level->status != ATTEST_TCB_OUT_OF_DATE &&
            qe_level->status != ATTEST_TCB_REVOKED &&
            (sgx_level->status == ATTEST_TCB_UP_TO_DATE ||
             sgx_level->status == ATTEST_TCB_SW_HARDENING_NEEDED ||
             sgx_level->status == ATTEST_TCB_CONFIGURATION_NEEDED ||
             sgx_level->status == ATTEST_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED) &&
            (status == ATTEST_TCB_OUT_OF_DATE || status == ATTEST_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED) &&
            mod_status == ATTEST_TCB_OUT_OF_DATE && relaunch_advised(t, m))
                status = is_configuration_status(status) || is_configuration_status(sgx_level->status)
                                 ? ATTEST_TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED
                                 : ATTEST_TCB_TD_RELAUNCH_ADVISED;

        status = merge_status(status, qe_level->status);
        if (status == ATTEST_TCB_REVOKED)
                return ck_error_set(reterr, -EKEYREVOKED, "TCB level: the platform TCB is revoked");

        r = advisories_add(&adv, &n_adv, level->advisory_ids);
        if (r >= 0 && mod_level)
                r = advisories_add(&adv, &n_adv, mod_level->advisory_ids);
        if (r >= 0)
                r = advisories_add(&adv, &n_adv, qe_level->advisory_ids);
        if (r < 0)
                return ck_error_set(reterr, r, "out of memory");

        char **out = calloc(n_adv + 1, sizeof(char *));
        size_t n_out = 0;
        if (!out)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        if (n_adv)
                qsort(adv, n_adv, sizeof(char *), cmp_str);
        for (size_t i = 0; i < n_adv; i++) {
                if (n_out > 0 && strcmp(out[n_out - 1], adv[i]) == 0)
                        continue;
                out[n_out] = strdup(adv[i]);
                if (!out[n_out]) {
                        attest_advisories_free(out);
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
                }
                n_out++;
        }
        res->status = status;
        res->advisory_ids = out;
        res->n_advisory_ids = n_out;
        res->tcb_eval_number = t->eval_number;
        return 0;
}

int attest_time_parse(const char *s, time_t *ret)
{
        uint64_t v = 0;
        size_t n = strlen(s);
        char buf[64];
        time_t t;
        int off;

        if (ck_parse_uint(s, INT64_MAX, &v) >= 0) {
                *ret = (time_t)v;
                return 0;
        }
        if (attest_parse_date(s, ret) >= 0)
                return 0;
        /* RFC 3339 with a numeric offset: "…T10:00:34+02:00" is 08:00:34Z. */
        if (n < 6 || n >= sizeof(buf) || (s[n - 6] != '+' && s[n - 6] != '-') || s[n - 3] != ':' ||
            !isdigit((unsigned char)s[n - 5]) || !isdigit((unsigned char)s[n - 4]) ||
            !isdigit((unsigned char)s[n - 2]) || !isdigit((unsigned char)s[n - 1]))
                return -EINVAL;
        off = ((s[n - 5] - '0') * 10 + (s[n - 4] - '0')) * 3600 +
              ((s[n - 2] - '0') * 10 + (s[n - 1] - '0')) * 60;
        if (off > 24 * 3600)
                return -EINVAL;
        memcpy(buf, s, n - 6);
        buf[n - 6] = 'Z';
        buf[n - 5] = '\0';
        if (attest_parse_date(buf, &t) < 0)
                return -EINVAL;
        *ret = s[n - 6] == '+' ? t - off : t + off;
        return 0;
}
