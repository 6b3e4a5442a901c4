/* Reference values (MRTD, RTMR0-2): parse the JSON document and compare with a quote's
 * measurements. Comparison is exact and over all 48 bytes; there is no prefix matching. */
#include <errno.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cleanup.h"
#include "fs.h"
#include "json.h"
#include "parse.h"
#include "refvalues.h"

static const char *const rtmr_keys[3] = {"rtmr0", "rtmr1", "rtmr2"};

static int parse_value(json_t *obj, const char *key, bool *ret_has, uint8_t ret[48],
                       struct ck_error **reterr)
{
        json_t *v = json_object_get(obj, key);
        const char *s;
        size_t len;

        if (!v)
                return 0;
        if (!json_is_string(v))
                return ck_error_set(reterr, -EINVAL,
                                    "reference values: \"%s\" must be a string of 96 hex digits", key);
        s = json_string_value(v);
        len = json_string_length(v);
        if (len != 96)
                return ck_error_set(reterr, -EINVAL,
                                    "reference values: \"%s\" has %zu characters, expected 96 hex digits",
                                    key, len);
        if (ck_hex_decode(s, len, ret, 48) < 0)
                return ck_error_set(reterr, -EINVAL, "reference values: \"%s\" is not hexadecimal", key);
        *ret_has = true;
        return 0;
}

int attest_refvalues_parse(const uint8_t *buf, size_t len, struct attest_refvalues *ret,
                           struct ck_error **reterr)
{
        _cleanup_json_ json_t *doc = NULL;
        struct attest_refvalues rv = {0};
        const char *key;
        json_t *v;
        int r;

        r = ck_json_loadb(buf, len, ATTEST_REFVALUES_MAX_BYTES, &doc, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "reference values");
        if (!json_is_object(doc))
                return ck_error_set(reterr, -EINVAL, "reference values: expected a JSON object");
        json_object_foreach(doc, key, v)
        {
                bool known = strcmp(key, "mrtd") == 0 || strcmp(key, "source") == 0;

                for (size_t i = 0; i < 3 && !known; i++)
                        known = strcmp(key, rtmr_keys[i]) == 0;
                if (!known)
                        return ck_error_set(reterr, -EINVAL,
                                            "reference values: unknown key (expected mrtd, rtmr0, rtmr1, "
                                            "rtmr2, source)");
                if (strcmp(key, "source") == 0 && !json_is_string(v))
                        return ck_error_set(reterr, -EINVAL,
                                            "reference values: \"source\" must be a string");
        }
        r = parse_value(doc, "mrtd", &rv.has_mrtd, rv.mrtd, reterr);
        if (r < 0)
                return r;
        for (size_t i = 0; i < 3; i++) {
                r = parse_value(doc, rtmr_keys[i], &rv.has_rtmr[i], rv.rtmr[i], reterr);
                if (r < 0)
                        return r;
        }
        if (!rv.has_mrtd && !rv.has_rtmr[0] && !rv.has_rtmr[1] && !rv.has_rtmr[2])
                return ck_error_set(reterr, -EINVAL,
                                    "reference values: no value given (mrtd, rtmr0, rtmr1, rtmr2)");
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

        if (rv->has_mrtd && CRYPTO_memcmp(rv->mrtd, m->mr_td, 48) != 0)
                return "mrtd_mismatch";
        for (size_t i = 0; i < 3; i++)
                if (rv->has_rtmr[i] && CRYPTO_memcmp(rv->rtmr[i], m->rtmr[i], 48) != 0)
                        return reasons[i];
        return NULL;
}
