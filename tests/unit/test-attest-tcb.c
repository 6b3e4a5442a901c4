/* TCB level matching and status merging (reference §2.2 step 12) on crafted TCB Info / QE
 * Identity documents: these paths cannot be reached with Intel-signed vectors, so the internal
 * functions are driven directly (signatures are verify.c's job and tested there). */
#include "cmocka-wrap.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "collateral-private.h"
#include "json.h"
#include "pck.h"
#include "ssl.h"
#include "tcb.h"

/* One TCB level: SGX components all `sgx`, PCESVN 11, TDX components {tdx0, tdx1, tdx2, 0…}. */
static json_t *level(int sgx, int tdx0, int tdx2, const char *status, const char *adv)
{
        json_t *s = json_array(), *t = json_array();

        for (int i = 0; i < 16; i++) {
                json_array_append_new(s, json_pack("{s:i}", "svn", sgx));
                json_array_append_new(t, json_pack("{s:i}", "svn", i == 0 ? tdx0 : i == 2 ? tdx2 : 0));
        }
        json_t *l = json_pack("{s:{s:o,s:i,s:o},s:s,s:s}", "tcb", "sgxtcbcomponents", s, "pcesvn", 11,
                              "tdxtcbcomponents", t, "tcbDate", "2024-01-01T00:00:00Z", "tcbStatus", status);
        if (adv)
                json_object_set_new(l, "advisoryIDs", json_pack("[s,s]", adv, "INTEL-SA-00001"));
        return l;
}

static json_t *module_id(const char *id, int svn_hi, const char *st_hi, int svn_lo, const char *st_lo)
{
        static const char zero48[] = "0000000000000000000000000000000000000000000000000000000000000000000000"
                                     "00000000000000000000000000";
        return json_pack("{s:s,s:s,s:s,s:s,s:[{s:{s:i},s:s,s:s},{s:{s:i},s:s,s:s,s:[s]}]}", "id", id,
                         "mrsigner", zero48, "attributes", "0000000000000000", "attributesMask",
                         "FFFFFFFFFFFFFFFF", "tcbLevels", "tcb", "isvsvn", svn_hi, "tcbDate",
                         "2024-01-01T00:00:00Z", "tcbStatus", st_hi, "tcb", "isvsvn", svn_lo, "tcbDate",
                         "2023-01-01T00:00:00Z", "tcbStatus", st_lo, "advisoryIDs", "INTEL-SA-00900");
}

static void tcb_info(json_t *levels, json_t *modules, struct attest_tcb_info *ret)
{
        static const char zero48[] = "0000000000000000000000000000000000000000000000000000000000000000000000"
                                     "00000000000000000000000000";
        _cleanup_json_ json_t *j = json_pack(
                "{s:s,s:i,s:s,s:s,s:s,s:s,s:i,s:i,s:{s:s,s:s,s:s},s:o,s:o}", "id", "TDX", "version", 3,
                "issueDate", "2024-01-01T00:00:00Z", "nextUpdate", "2024-02-01T00:00:00Z", "fmspc",
                "00806F050000", "pceId", "0000", "tcbType", 0, "tcbEvaluationDataNumber", 17, "tdxModule",
                "mrsigner", zero48, "attributes", "0000000000000000", "attributesMask", "FFFFFFFFFFFFFFFF",
                "tdxModuleIdentities", modules, "tcbLevels", levels);
        _cleanup_free_ char *s = json_dumps(j, 0);
        _cleanup_error_ struct ck_error *e = NULL;

        if (attest_tcb_info_parse(s, strlen(s), ret, &e) < 0)
                fail_msg("%s", e->msg);
}

struct fixture {
        struct attest_tcb_info t;
        struct attest_quote q;
        struct attest_pck_info pck;
        struct attest_isv_level qe;
};

static void fixture_init(struct fixture *f, int pck_sgx, uint8_t mod_svn, uint8_t mod_major,
                         uint8_t late_ucode)
{
        memset(&f->q, 0, sizeof(f->q));
        f->q.version = 4;
        f->q.tee_type = ATTEST_TEE_TDX;
        f->q.body_type = 2;
        f->q.m.tee_tcb_svn[0] = mod_svn;
        f->q.m.tee_tcb_svn[1] = mod_major;
        f->q.m.tee_tcb_svn[2] = late_ucode;
        memset(&f->pck, 0, sizeof(f->pck));
        memset(f->pck.comp_svn, pck_sgx, 16);
        f->pck.pcesvn = 11;
        f->qe = (struct attest_isv_level){.isvsvn = 4, .status = ATTEST_TCB_UP_TO_DATE};
}

static int match(struct fixture *f, struct attest_result *r, struct ck_error **e)
{
        const struct attest_module_identity *mi = NULL;

        memset(r, 0, sizeof(*r));
        if (f->q.m.tee_tcb_svn[1] > 0) {
                int ret = attest_tcb_check_module(&f->t, &f->q, &mi, e);
                if (ret < 0)
                        return ret;
        }
        return attest_tcb_match(&f->t, &f->q, &f->pck, mi, &f->qe, r, e);
}

/* Levels given in ascending order in the JSON are still matched highest first. */
static void test_sorting_and_sgx_match(void **state)
{
        struct fixture f;
        struct attest_result r;

        tcb_info(json_pack("[o,o,o]", level(3, 1, 1, "OutOfDate", "INTEL-SA-00100"),
                           level(5, 3, 3, "UpToDate", NULL),
                           level(4, 2, 2, "SWHardeningNeeded", "INTEL-SA-00200")),
                 json_array(), &f.t);
        assert_int_equal(f.t.levels[0].sgx[0], 5);
        assert_int_equal(f.t.levels[2].sgx[0], 3);

        fixture_init(&f, 5, 3, 0, 3);
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_UP_TO_DATE);
        attest_advisories_free(r.advisory_ids);

        fixture_init(&f, 4, 9, 0, 9); /* SGX level 4 */
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_SW_HARDENING_NEEDED);
        assert_int_equal(r.n_advisory_ids, 2);
        assert_string_equal(r.advisory_ids[0], "INTEL-SA-00001");
        assert_string_equal(r.advisory_ids[1], "INTEL-SA-00200");
        attest_advisories_free(r.advisory_ids);

        fixture_init(&f, 5, 1, 0, 1); /* SGX fine, TDX module SVN only meets the lowest level */
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_OUT_OF_DATE);
        attest_advisories_free(r.advisory_ids);

        _cleanup_error_ struct ck_error *e = NULL;
        fixture_init(&f, 2, 9, 0, 9); /* below every SGX level */
        assert_int_equal(match(&f, &r, &e), -ENOENT);
        assert_non_null(strstr(e->msg, "not supported"));
        attest_tcb_info_done(&f.t);
}

/* TEE_TCB_SVN[1] > 0: components 0 and 1 are judged by the module identity, not the level. */
static void test_module_identity_merge(void **state)
{
        struct fixture f;
        struct attest_result r;
        _cleanup_error_ struct ck_error *e = NULL;

        tcb_info(json_pack("[o,o]", level(5, 9, 3, "UpToDate", NULL),
                           level(5, 9, 2, "ConfigurationNeeded", "INTEL-SA-00300")),
                 json_pack("[o]", module_id("TDX_01", 6, "UpToDate", 2, "OutOfDate")), &f.t);

        fixture_init(&f, 5, 6, 1, 3); /* module SVN 6 >= 6 UpToDate, comp 0 (9) ignored */
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_UP_TO_DATE);
        attest_advisories_free(r.advisory_ids);

        fixture_init(&f, 5, 3, 1, 3); /* module OutOfDate */
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_OUT_OF_DATE);
        assert_int_equal(r.n_advisory_ids, 1);
        assert_string_equal(r.advisory_ids[0], "INTEL-SA-00900");
        attest_advisories_free(r.advisory_ids);

        fixture_init(&f, 5, 3, 1, 2); /* ConfigurationNeeded level + module OutOfDate */
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED);
        assert_int_equal(r.n_advisory_ids, 3);
        attest_advisories_free(r.advisory_ids);

        fixture_init(&f, 5, 1, 1, 3); /* module SVN below every module level */
        assert_int_equal(match(&f, &r, &e), -ENOENT);
        ck_error_free(TAKE_PTR(e));

        fixture_init(&f, 5, 6, 2, 3); /* no TDX_02 identity */
        assert_int_equal(match(&f, &r, &e), -ENOENT);
        assert_non_null(strstr(e->msg, "TDX_02"));
        ck_error_free(TAKE_PTR(e));

        /* QE status merges like the module's. */
        fixture_init(&f, 5, 6, 1, 3);
        f.qe.status = ATTEST_TCB_OUT_OF_DATE;
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_OUT_OF_DATE);
        attest_advisories_free(r.advisory_ids);
        f.qe.status = ATTEST_TCB_REVOKED;
        assert_int_equal(match(&f, &r, &e), -EKEYREVOKED);
        attest_tcb_info_done(&f.t);
}

static void test_revoked_level(void **state)
{
        struct fixture f;
        struct attest_result r;
        _cleanup_error_ struct ck_error *e = NULL;

        tcb_info(json_pack("[o]", level(5, 0, 0, "Revoked", NULL)), json_array(), &f.t);
        fixture_init(&f, 5, 0, 0, 0);
        assert_int_equal(match(&f, &r, &e), -EKEYREVOKED);
        assert_non_null(strstr(e->msg, "revoked"));
        attest_tcb_info_done(&f.t);
}

/* v5 body type 3: module OutOfDate but TEE_TCB_SVN2 shows a relaunch would be current. */
static void test_td_relaunch(void **state)
{
        struct fixture f;
        struct attest_result r;

        tcb_info(json_pack("[o,o]", level(5, 9, 3, "UpToDate", NULL),
                           level(5, 9, 2, "ConfigurationNeeded", NULL)),
                 json_pack("[o]", module_id("TDX_01", 6, "UpToDate", 2, "OutOfDate")), &f.t);

        fixture_init(&f, 5, 3, 1, 3);
        f.q.version = 5;
        f.q.body_type = 3;
        f.q.m.has_v15 = true;
        f.q.m.tee_tcb_svn2[0] = 6;
        f.q.m.tee_tcb_svn2[1] = 1;
        f.q.m.tee_tcb_svn2[2] = 3;
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_TD_RELAUNCH_ADVISED);
        attest_advisories_free(r.advisory_ids);

        f.q.m.tee_tcb_svn[2] = 2; /* configuration level involved */
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED);
        attest_advisories_free(r.advisory_ids);

        f.q.m.tee_tcb_svn[2] = 3;
        f.q.m.tee_tcb_svn2[0] = 5; /* relaunch would not help */
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_OUT_OF_DATE);
        attest_advisories_free(r.advisory_ids);

        /* A relaunch onto a major-0 module: judged by the TCB level's TDX components. */
        f.q.m.tee_tcb_svn2[1] = 0;
        f.q.m.tee_tcb_svn2[0] = 9;
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_TD_RELAUNCH_ADVISED);
        attest_advisories_free(r.advisory_ids);
        f.q.m.tee_tcb_svn2[0] = 8;
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_OUT_OF_DATE);
        attest_advisories_free(r.advisory_ids);
        f.q.m.tee_tcb_svn2[0] = 9;
        f.q.m.tee_tcb_svn2[2] = 2;
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_OUT_OF_DATE);
        attest_advisories_free(r.advisory_ids);
        f.q.m.tee_tcb_svn2[1] = 1;
        f.q.m.tee_tcb_svn2[2] = 3;

        f.q.m.tee_tcb_svn2[0] = 6;
        f.q.body_type = 2; /* only for TD report 1.5 */
        assert_int_equal(match(&f, &r, NULL), 0);
        assert_int_equal(r.status, ATTEST_TCB_OUT_OF_DATE);
        attest_advisories_free(r.advisory_ids);
        attest_tcb_info_done(&f.t);
}

static void test_bad_documents(void **state)
{
        static const char *const docs[] = {
                "{}",
                "{\"id\":\"TDX\",\"version\":3}",
                "{\"id\":\"XYZ\",\"version\":3,\"issueDate\":\"2024-01-01T00:00:00Z\",\"nextUpdate\":\"2024-"
                "01-01T00:00:00Z\"}",
                "[1,2]",
                "{\"id\":\"TDX\",\"version\":3,\"issueDate\":\"2024-01-01\",\"nextUpdate\":\"2024-01-01T00:"
                "00:00Z\","
                "\"fmspc\":\"00806F050000\",\"pceId\":\"0000\",\"tcbEvaluationDataNumber\":1,\"tcbLevels\":["
                "]}",
        };
        for (size_t i = 0; i < ELEMENTSOF(docs); i++) {
                struct attest_tcb_info t = {};
                struct attest_qe_identity q = {};
                _cleanup_error_ struct ck_error *e = NULL, *e2 = NULL;

                assert_int_equal(attest_tcb_info_parse(docs[i], strlen(docs[i]), &t, &e), -EBADMSG);
                assert_int_equal(attest_qe_identity_parse(docs[i], strlen(docs[i]), &q, &e2), -EBADMSG);
        }
        /* An unknown status string invalidates the whole document. */
        struct attest_tcb_info t = {};
        json_t *lv = level(5, 0, 0, "UpToDate", NULL);
        json_object_set_new(lv, "tcbStatus", json_string("Fine"));
        _cleanup_json_ json_t *j =
                json_pack("{s:s,s:i,s:s,s:s,s:s,s:s,s:i,s:[o]}", "id", "TDX", "version", 3, "issueDate",
                          "2024-01-01T00:00:00Z", "nextUpdate", "2024-02-01T00:00:00Z", "fmspc",
                          "00806F050000", "pceId", "0000", "tcbEvaluationDataNumber", 1, "tcbLevels", lv);
        _cleanup_free_ char *s = json_dumps(j, 0);
        _cleanup_error_ struct ck_error *e = NULL;
        assert_int_equal(attest_tcb_info_parse(s, strlen(s), &t, &e), -EBADMSG);
        assert_non_null(strstr(e->msg, "tcbStatus"));
}

/* The attestation key import must refuse anything that is not a P-256 point. */
static void test_raw_key_import(void **state)
{
        /* P-256 base point G, a valid key. */
        static const uint8_t g[64] = {
                0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63,
                0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1,
                0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f,
                0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57,
                0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5,
        };
        uint8_t xy[64];
        EVP_PKEY *k = NULL;

        assert_int_equal(attest_ec_p256_key_from_raw(g, &k), 0);
        EVP_PKEY_free(k);
        k = NULL;
        memcpy(xy, g, 64);
        xy[63] ^= 1; /* off the curve */
        assert_int_equal(attest_ec_p256_key_from_raw(xy, &k), -EBADMSG);
        memset(xy, 0, 64); /* (0,0) is not on P-256 */
        assert_int_equal(attest_ec_p256_key_from_raw(xy, &k), -EBADMSG);
        memset(xy, 0xff, 64); /* coordinates >= p */
        assert_int_equal(attest_ec_p256_key_from_raw(xy, &k), -EBADMSG);
        assert_null(k);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sorting_and_sgx_match), cmocka_unit_test(test_module_identity_merge),
                cmocka_unit_test(test_revoked_level),         cmocka_unit_test(test_td_relaunch),
                cmocka_unit_test(test_bad_documents),         cmocka_unit_test(test_raw_key_import),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
