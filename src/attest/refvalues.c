/* Reference values (refvalues.h): a strict parser for the small JSON file, and the comparison
 * with a verified quote's measurements.
 *
 * Strict on purpose: a misspelt key ("mrdt") or a truncated value must stop the program that
 * loads the file, never turn into an unchecked register. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs.h"
#include "json.h"
#include "parse.h"
#include "refvalues.h"

static const char *const value_keys[4] = {"mrtd", "rtmr0", "rtmr1", "rtmr2"};

static int parse_value(const char *key, json_t *v, uint8_t ret[48], struct ck_error **reterr)
{
        const char *s;
        size_t n;

        if (!json_is_string(v))
                return ck_error_set(reterr, -EINVAL, "reference values: \"%s\" must be a string", key);
        s = json_string_value(v);
        n = json_string_length(v);
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                        return ck_error_set(reterr, -EINVAL,
                                            "reference values: \"%s\": character %zu is not a hex digit",
                                            key, i + 1);
        }
        if (n != 96)
                return ck_error_set(
                        reterr, -EINVAL,
                        "reference values: \"%s\": expected exactly 96 hex digits (48 bytes), got "
                        "%zu",
                        key, n);
        if (ck_hex_decode(s, n, ret, 48) < 0)
                return ck_error_set(reterr, -EINVAL, "reference values: \"%s\" is not hex", key);
        return 0;
}

int attest_refvalues_parse(const uint8_t *buf, size_t len, struct attest_refvalues *ret,
                           struct ck_error **reterr)
{
        _cleanup_json_ json_t *root = NULL;
        struct attest_refvalues rv = {0};
        const char *key;
        json_t *v;
        bool any = false;
        int r;

        if (!buf)
                return ck_error_set(reterr, -EINVAL, "reference values: no document");
        r = ck_json_loadb(buf, len, ATTEST_REFVALUES_MAX_BYTES, &root, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "reference values");
        if (!json_is_object(root))
                return ck_error_set(reterr, -EINVAL, "reference values: must be a JSON object");
        json_object_foreach(root, key, v)
        {
                size_t k;

                if (strcmp(key, "source") == 0) {
                        if (!json_is_string(v))
                                return ck_error_set(reterr, -EINVAL,
                                                    "reference values: \"source\" must be a string");
                        continue;
                }
                for (k = 0; k < ELEMENTSOF(value_keys); k++)
                        if (strcmp(key, value_keys[k]) == 0)
                                break;
                if (k == ELEMENTSOF(value_keys))
                        return ck_error_set(reterr, -EINVAL,
                                            "reference values: unknown key \"%.64s\" (expected mrtd, rtmr0, "
                                            "rtmr1, rtmr2, source)",
                                            key);
                r = parse_value(key, v, k == 0 ? rv.mrtd : rv.rtmr[k - 1], reterr);
                if (r < 0)
                        return r;
                if (k == 0)
                        rv.has_mrtd = true;
                else
                        rv.has_rtmr[k - 1] = true;
                any = true;
        }
        if (!any)
                return ck_error_set(reterr, -EINVAL,
                                    "reference values: no value (give at least one of mrtd, rtmr0, rtmr1, "
                                    "rtmr2)");
        *ret = rv;
        return 0;
}

int attest_refvalues_load(const char *path, struct attest_refvalues *ret, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r;

        r = ck_read_file(path, ATTEST_REFVALUES_MAX_BYTES, &buf, &len, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "%s", path);
        r = attest_refvalues_parse(buf, len, ret, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "%s", path);
        return 0;
}

const char *attest_refvalues_check(const struct attest_refvalues *rv, const struct attest_measurements *m)
{
        static const char *const reasons[3] = {"rtmr0_mismatch", "rtmr1_mismatch", "rtmr2_mismatch"};

        /* Measurements are public: no constant-time comparison needed. */
        if (rv->has_mrtd && memcmp(rv->mrtd, m->mr_td, 48) != 0)
                return "mrtd_mismatch";
        for (unsigned k = 0; k < 3; k++)
                if (rv->has_rtmr[k] && memcmp(rv->rtmr[k], m->rtmr[k], 48) != 0)
                        return reasons[k];
        return NULL;
}
