/* `conker tdx-sim init`: the simulated TD's test PKI and collateral (sim.h), and its
 * measurement profile.
 *
 * The PKI has Intel's shape so that the production verifier runs unchanged: root CA -> PCK
 * Platform CA -> PCK leaf (with the SGX extension), root CA -> TCB Signing; a root CRL and a
 * PCK CRL; TCB Info (TDX, v3) and TD_QE Identity (v2) signed as raw r||s over their exact text.
 * Every subject says SIMULATED. The CA keys are thrown away after signing: nothing can later
 * issue or revoke in this PKI, which keeps a sim directory a fixed, self-contained fixture. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/rand.h>

#include "fs.h"
#include "json.h"
#include "parse.h"
#include "sim-internal.h"
#include "sim.h"
#include "ssl.h"

const uint8_t sim_fmspc[6] = {0x00, 0xC0, 0xDE, 0x00, 0x00, 0x00};
const uint8_t sim_pceid[2] = {0x00, 0x00};
const uint8_t sim_sgx_comps[16] = {3, 3, 2, 2, 4, 1, 0, 5};
const uint8_t sim_qe_vendor_id[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                      0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

#define SIM_MAX_DAYS    3650u
#define SIM_PROFILE_MAX (64u << 10)
#define SIM_TCB_EVAL    17

/* ---- measurement profile ---- */

static void label_hash(const char *label, uint8_t out[48])
{
        if (ck_sha384(label, strlen(label), out) < 0)
                memset(out, 0, 48);
}

void sim_profile_default(struct sim_profile *p)
{
        *p = (struct sim_profile){0};
        /* TDX module 1.x SVN 6, late microcode 3: matches the sim TCB Info's TDX_01 identity. */
        p->tee_tcb_svn[0] = 6;
        p->tee_tcb_svn[1] = 1;
        p->tee_tcb_svn[2] = 3;
        label_hash("Conker SIMULATED MRSEAM", p->mr_seam);
        /* A production TD: DEBUG=0, SEPT_VE_DISABLE=1 (bit 28). */
        p->td_attributes[3] = 0x10;
        /* x87, SSE, AVX, AVX-512 state, PKRU: what a TD usually enables. */
        memcpy(p->xfam, (const uint8_t[8]){0xe7, 0x02, 0x06, 0, 0, 0, 0, 0}, 8);
        label_hash("Conker SIMULATED MRTD", p->mr_td);
        label_hash("Conker SIMULATED RTMR0 (firmware)", p->rtmr[0]);
        label_hash("Conker SIMULATED RTMR1 (kernel)", p->rtmr[1]);
        label_hash("Conker SIMULATED RTMR2 (command line, initrd)", p->rtmr[2]);
}

struct profile_field {
        const char *key;
        size_t off, len;
};

static const struct profile_field profile_fields[] = {
        {"tee_tcb_svn", offsetof(struct sim_profile, tee_tcb_svn), 16},
        {"mr_seam", offsetof(struct sim_profile, mr_seam), 48},
        {"mr_signer_seam", offsetof(struct sim_profile, mr_signer_seam), 48},
        {"seam_attributes", offsetof(struct sim_profile, seam_attributes), 8},
        {"td_attributes", offsetof(struct sim_profile, td_attributes), 8},
        {"xfam", offsetof(struct sim_profile, xfam), 8},
        {"mr_td", offsetof(struct sim_profile, mr_td), 48},
        {"mr_config_id", offsetof(struct sim_profile, mr_config_id), 48},
        {"mr_owner", offsetof(struct sim_profile, mr_owner), 48},
        {"mr_owner_config", offsetof(struct sim_profile, mr_owner_config), 48},
        {"rtmr0", offsetof(struct sim_profile, rtmr[0]), 48},
        {"rtmr1", offsetof(struct sim_profile, rtmr[1]), 48},
        {"rtmr2", offsetof(struct sim_profile, rtmr[2]), 48},
};

int sim_profile_parse(const uint8_t *buf, size_t len, const struct sim_profile *base,
                      struct sim_profile *ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *j = NULL;
        struct sim_profile p = {0};
        const char *key;
        json_t *v;
        int r;

        r = ck_json_loadb(buf, len, SIM_PROFILE_MAX, &j, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "profile");
        if (!json_is_object(j))
                return ck_error_set(reterr, -EBADMSG, "profile: expected a JSON object");
        if (base)
                p = *base;
        json_object_foreach(j, key, v)
        {
                const struct profile_field *f = NULL;
                for (size_t i = 0; i < ELEMENTSOF(profile_fields); i++)
                        if (strcmp(key, profile_fields[i].key) == 0)
                                f = &profile_fields[i];
                if (!f) {
                        if (strcmp(key, "simulated") == 0 || strcmp(key, "comment") == 0)
                                continue;
                        return ck_error_set(reterr, -EBADMSG, "profile: unknown key \"%s\"", key);
                }
                if (!json_is_string(v) || ck_hex_decode(json_string_value(v), json_string_length(v),
                                                        (uint8_t *)&p + f->off, f->len) < 0)
                        return ck_error_set(reterr, -EBADMSG, "profile: \"%s\" must be %zu hex digits", key,
                                            2 * f->len);
        }
        if (!base)
                for (size_t i = 0; i < ELEMENTSOF(profile_fields); i++)
                        if (!json_object_get(j, profile_fields[i].key))
                                return ck_error_set(reterr, -EBADMSG, "profile: \"%s\" is missing",
                                                    profile_fields[i].key);
        *ret = p;
        return 0;
}

int sim_profile_to_json(const struct sim_profile *p, char **ret)
{
        _cleanup_json_ json_t *j = json_object();
        char *s;

        if (!j || json_object_set_new(j, "simulated", json_true()) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(profile_fields); i++) {
                char hex[97];
                ck_hex_encode((const uint8_t *)p + profile_fields[i].off, profile_fields[i].len, hex);
                if (json_object_set_new(j, profile_fields[i].key, json_string(hex)) < 0)
                        return -ENOMEM;
        }
        s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* ---- collateral ---- */

static int iso_time(time_t t, char out[32])
{
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return -EINVAL;
        return 0;
}

static json_t *tcb_components(const uint8_t svn[16])
{
        json_t *a = json_array();

        for (unsigned i = 0; a && i < 16; i++)
                if (json_array_append_new(a, json_pack("{s:i}", "svn", svn[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

static json_t *tcb_level(const uint8_t sgx[16], unsigned pcesvn, const uint8_t tdx[16], const char *date,
                         const char *status, const char *advisory)
{
        json_t *l = json_pack("{s:{s:o, s:i, s:o}, s:s, s:s}", "tcb", "sgxtcbcomponents",
                              tcb_components(sgx), "pcesvn", (int)pcesvn, "tdxtcbcomponents",
                              tcb_components(tdx), "tcbDate", date, "tcbStatus", status);

        if (l && advisory && json_object_set_new(l, "advisoryIDs", json_pack("[s]", advisory)) < 0) {
                json_decref(l);
                return NULL;
        }
        return l;
}

static char *json_text(json_t *j)
{
        return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

/* TCB Info v3 for the sim FMSPC: one UpToDate level equal to the sim platform, one OutOfDate
 * level below it, and the TDX_01 module identity. */
static char *tcb_info_text(const char *issue, const char *next, const struct sim_profile *prof)
{
        static const char zero48[] = "000000000000000000000000000000000000000000000000"
                                     "000000000000000000000000000000000000000000000000";
        _cleanup_json_ json_t *j = NULL;
        uint8_t tdx_up[16] = {0}, tdx_old[16] = {0}, sgx_old[16];

        /* Components 0 and 1 are judged by the module identity when TEE_TCB_SVN[1] > 0. */
        tdx_up[2] = prof->tee_tcb_svn[2];
        tdx_old[2] = prof->tee_tcb_svn[2] > 0 ? prof->tee_tcb_svn[2] - 1 : 0;
        memcpy(sgx_old, sim_sgx_comps, 16);
        sgx_old[7] = 3;
        j = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:i, s:i,"
                      " s:{s:s, s:s, s:s},"
                      " s:[{s:s, s:s, s:s, s:s, s:[{s:{s:i}, s:s, s:s}, {s:{s:i}, s:s, s:s}]}],"
                      " s:[o, o]}",
                      "id", "TDX", "version", 3, "issueDate", issue, "nextUpdate", next, "fmspc",
                      SIM_FMSPC_HEX, "pceId", SIM_PCEID_HEX, "tcbType", 0, "tcbEvaluationDataNumber",
                      SIM_TCB_EVAL, "tdxModule", "mrsigner", zero48, "attributes", "0000000000000000",
                      "attributesMask", "FFFFFFFFFFFFFFFF", "tdxModuleIdentities", "id", "TDX_01",
                      "mrsigner", zero48, "attributes", "0000000000000000", "attributesMask",
                      "FFFFFFFFFFFFFFFF", "tcbLevels", "tcb", "isvsvn", 6, "tcbDate", "2024-03-13T00:00:00Z",
                      "tcbStatus", "UpToDate", "tcb", "isvsvn", 2, "tcbDate", "2023-08-09T00:00:00Z",
                      "tcbStatus", "OutOfDate", "tcbLevels",
                      tcb_level(sim_sgx_comps, SIM_PCESVN, tdx_up, "2024-03-13T00:00:00Z", "UpToDate", NULL),
                      tcb_level(sgx_old, SIM_PCESVN - 6, tdx_old, "2023-02-15T00:00:00Z", "OutOfDate",
                                "INTEL-SA-00837"));
        return j ? json_text(j) : NULL;
}

static char *qe_identity_text(const char *issue, const char *next)
{
        _cleanup_json_ json_t *j = NULL;
        uint8_t signer[32];
        char hex[65];

        if (ck_sha256(SIM_QE_SIGNER_LABEL, strlen(SIM_QE_SIGNER_LABEL), signer) < 0)
                return NULL;
        ck_hex_encode(signer, 32, hex);
        for (char *c = hex; *c; c++)
                if (*c >= 'a' && *c <= 'f')
                        *c = (char)(*c - 'a' + 'A');
        j = json_pack("{s:s, s:i, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:i,"
                      " s:[{s:{s:i}, s:s, s:s}, {s:{s:i}, s:s, s:s}]}",
                      "id", "TD_QE", "version", 2, "issueDate", issue, "nextUpdate", next,
                      "tcbEvaluationDataNumber", SIM_TCB_EVAL, "miscselect", "00000000", "miscselectMask",
                      "FFFFFFFF", "attributes", "11000000000000000000000000000000", "attributesMask",
                      "FBFFFFFFFFFFFFFF0000000000000000", "mrsigner", hex, "isvprodid", SIM_QE_ISVPRODID,
                      "tcbLevels", "tcb", "isvsvn", SIM_QE_ISVSVN, "tcbDate", "2024-03-13T00:00:00Z",
                      "tcbStatus", "UpToDate", "tcb", "isvsvn", 2, "tcbDate", "2023-02-15T00:00:00Z",
                      "tcbStatus", "OutOfDate");
        return j ? json_text(j) : NULL;
}

static int sign_hex(EVP_PKEY *key, const char *text, char out[129], struct ck_error **reterr)
{
        uint8_t sig[64];
        int r = sim_sign_raw(key, text, strlen(text), sig, reterr);

        if (r < 0)
                return r;
        ck_hex_encode(sig, 64, out);
        return 0;
}

static int pem_concat(X509 *a, X509 *b, X509 *c, char **ret)
{
        X509 *certs[] = {a, b, c};
        _cleanup_free_ char *out = NULL;
        size_t total = 0;

        for (size_t i = 0; i < ELEMENTSOF(certs); i++) {
                _cleanup_free_ char *pem = NULL;
                size_t n = 0;
                char *grown;
                if (!certs[i])
                        continue;
                if (sim_pem_of_cert(certs[i], &pem, &n) < 0)
                        return -EIO;
                grown = realloc(out, total + n + 1);
                if (!grown)
                        return -ENOMEM;
                out = grown;
                memcpy(out + total, pem, n);
                total += n;
                out[total] = 0;
        }
        *ret = TAKE_PTR(out);
        return 0;
}

static int write_text(int dfd, const char *name, const char *text, mode_t mode, struct ck_error **reterr)
{
        return ck_write_file_atomic(dfd, name, text, strlen(text), mode, reterr);
}

static int write_key(int dfd, const char *name, EVP_PKEY *key, struct ck_error **reterr)
{
        char *pem = NULL;
        size_t n = 0;
        int r = sim_pem_of_key(key, &pem, &n);

        if (r < 0)
                return ck_ssl_error(reterr, r, "cannot encode %s", name);
        r = ck_write_file_atomic(dfd, name, pem, n, 0600, reterr);
        OPENSSL_cleanse(pem, n);
        free(pem);
        return r;
}

int attest_sim_init(const char *dir, const struct attest_sim_init_opts *opts, struct ck_error **reterr)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *root_key = NULL, *ca_key = NULL, *pck_key = NULL,
                                           *tcb_key = NULL, *ak_key = NULL;
        _cleanup_(X509_freep) X509 *root = NULL, *ca = NULL, *pck = NULL, *tcb = NULL;
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *sgx = NULL;
        _cleanup_free_ uint8_t *root_crl = NULL, *pck_crl = NULL;
        _cleanup_free_ char *root_pem = NULL, *pck_chain = NULL, *ca_chain = NULL, *tcb_chain = NULL,
                            *tcb_info = NULL, *qe_id = NULL, *profile_text = NULL, *root_crl_hex = NULL,
                            *pck_crl_hex = NULL, *collateral = NULL;
        _cleanup_json_ json_t *col = NULL;
        _cleanup_close_ int dfd = -1;
        struct sim_profile prof;
        uint8_t ppid[16], instance[16];
        uint64_t revoked[2];
        char issue[32], next[32], tcb_sig[129], qe_sig[129];
        size_t root_crl_len = 0, pck_crl_len = 0;
        unsigned days = opts && opts->validity_days ? opts->validity_days : 365;
        time_t now = opts && opts->now ? opts->now : time(NULL);
        time_t until;
        int r;

        if (days > SIM_MAX_DAYS)
                return ck_error_set(reterr, -EINVAL, "sim: validity of %u days exceeds %u", days,
                                    SIM_MAX_DAYS);
        until = now + (time_t)days * 86400;
        sim_profile_default(&prof);
        if (opts && opts->profile_json) {
                r = sim_profile_parse((const uint8_t *)opts->profile_json, strlen(opts->profile_json), &prof,
                                      &prof, reterr);
                if (r < 0)
                        return r;
        }
        if (iso_time(now, issue) < 0 || iso_time(until, next) < 0)
                return ck_error_set(reterr, -EINVAL, "sim: time out of range");

        r = ck_mkdir_p(dir, 0755);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot create %s", dir);
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", dir);

        r = sim_key_new(&root_key, reterr);
        if (r >= 0)
                r = sim_key_new(&ca_key, reterr);
        if (r >= 0)
                r = sim_key_new(&pck_key, reterr);
        if (r >= 0)
                r = sim_key_new(&tcb_key, reterr);
        if (r >= 0)
                r = sim_key_new(&ak_key, reterr);
        if (r < 0)
                return r;
        if (RAND_bytes(ppid, sizeof(ppid)) != 1 || RAND_bytes(instance, sizeof(instance)) != 1 ||
            RAND_bytes((uint8_t *)revoked, sizeof(revoked)) != 1)
                return ck_ssl_error(reterr, -EIO, "no randomness");
        /* Certificates start an hour early so that a verifier whose clock is slightly behind
         * (or a test that verifies "now") is not confused; the collateral starts at now. */
        r = sim_cert_make("Conker SIMULATED SGX Root CA", root_key, NULL, NULL, 1, now - 3600, until, NULL,
                          &root, reterr);
        if (r >= 0)
                r = sim_cert_make("Conker SIMULATED SGX PCK Platform CA", ca_key, root, root_key, 0,
                                  now - 3600, until, NULL, &ca, reterr);
        if (r >= 0)
                r = sim_sgx_ext_make(ppid, sim_sgx_comps, SIM_PCESVN, sim_sgx_comps, sim_pceid, sim_fmspc,
                                     instance, &sgx, reterr);
        if (r >= 0)
                r = sim_cert_make("Conker SIMULATED SGX PCK Certificate", pck_key, ca, ca_key, -1,
                                  now - 3600, until, sgx, &pck, reterr);
        if (r >= 0)
                r = sim_cert_make("Conker SIMULATED SGX TCB Signing", tcb_key, root, root_key, -1,
                                  now - 3600, until, NULL, &tcb, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "sim PKI");
        /* The PCK CRL revokes two unrelated serials, so that revocation lists are exercised. */
        revoked[0] = (revoked[0] >> 2) | 1;
        revoked[1] = (revoked[1] >> 2) | 1;
        r = sim_crl_make(root, root_key, now, until, NULL, 0, &root_crl, &root_crl_len, reterr);
        if (r >= 0)
                r = sim_crl_make(ca, ca_key, now, until, revoked, 2, &pck_crl, &pck_crl_len, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "sim CRLs");

        tcb_info = tcb_info_text(issue, next, &prof);
        qe_id = qe_identity_text(issue, next);
        if (!tcb_info || !qe_id)
                return ck_error_set(reterr, -ENOMEM, "cannot build TCB Info / QE Identity");
        r = sign_hex(tcb_key, tcb_info, tcb_sig, reterr);
        if (r >= 0)
                r = sign_hex(tcb_key, qe_id, qe_sig, reterr);
        if (r < 0)
                return r;
        root_crl_hex = ck_hex_encode_alloc(root_crl, root_crl_len);
        pck_crl_hex = ck_hex_encode_alloc(pck_crl, pck_crl_len);
        if (!root_crl_hex || !pck_crl_hex || pem_concat(root, NULL, NULL, &root_pem) < 0 ||
            pem_concat(pck, ca, root, &pck_chain) < 0 || pem_concat(ca, root, NULL, &ca_chain) < 0 ||
            pem_concat(tcb, root, NULL, &tcb_chain) < 0)
                return ck_error_set(reterr, -ENOMEM, "cannot encode certificates");
        col = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "pck_crl_issuer_chain", ca_chain,
                        "root_ca_crl", root_crl_hex, "pck_crl", pck_crl_hex, "tcb_info_issuer_chain",
                        tcb_chain, "tcb_info", tcb_info, "tcb_info_signature", tcb_sig,
                        "qe_identity_issuer_chain", tcb_chain, "qe_identity", qe_id, "qe_identity_signature",
                        qe_sig);
        collateral = col ? json_dumps(col, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (!collateral || sim_profile_to_json(&prof, &profile_text) < 0)
                return ck_error_set(reterr, -ENOMEM, "out of memory");

        /* Keys first, public files after: a half-written directory is never mistaken for a
         * complete one, because profile.json (which tee-sim reads first) comes last. */
        r = write_key(dfd, SIM_FILE_PCK_KEY, pck_key, reterr);
        if (r >= 0)
                r = write_key(dfd, SIM_FILE_AK_KEY, ak_key, reterr);
        if (r >= 0)
                r = write_text(dfd, SIM_FILE_ROOT, root_pem, 0644, reterr);
        if (r >= 0)
                r = write_text(dfd, SIM_FILE_PCK_CHAIN, pck_chain, 0644, reterr);
        if (r >= 0)
                r = write_text(dfd, SIM_FILE_COLLATERAL, collateral, 0644, reterr);
        if (r >= 0)
                r = write_text(dfd, SIM_FILE_PROFILE, profile_text, 0644, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "%s", dir);
        return 0;
}
