/* `conker --attest` (attest.h): verifies conkerd's attested TLS identity and fresh evidence on
 * the connection a request is about to use, before the request (and its token) is sent. */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api-evidence.h"
#include "attest.h"
#include "buf.h"
#include "collateral.h"
#include "curl.h"
#include "json.h"
#include "log.h"
#include "parse.h"
#include "quote.h"
#include "refvalues.h"
#include "ssl.h"
#include "verify.h"

#define ATTEST_RESPONSE_MAX (256u << 10)
#define ATTEST_BUSY_RETRIES 20

static struct {
        bool enabled;
        struct cli_attest_opts o;
        struct attest_refvalues rv;
        uint32_t tcb_statuses; /* bit (1 << enum attest_tcb_status) per accepted status */
        X509 *root;            /* the simulator's root (--trust-sim-root), or NULL for Intel's */
        /* The last conkerd attested: later connections of this process to the same host are
         * held to its key instead of being attested again (`conker run` polls), and
         * `conker attest` prints it. */
        bool attested;
        char *attested_host;
        struct cli_attest_info last;
} g;

struct cli_attest_conn {
        X509 *cert; /* the leaf the attesting connection presented */
        uint8_t ekm[ATTEST_API_EKM_LEN];
        bool have_ekm;
        bool pinned;      /* attested: every later connection must present this key */
        uint8_t pkh[32];  /* SHA-256 of the attested certificate's SPKI */
        bool key_changed; /* a connection presented another key */
};

/* "UpToDate,SWHardeningNeeded" -> bits; Revoked is never acceptable. */
static int tcb_statuses_parse(const char *list, uint32_t *ret, struct ck_error **reterr)
{
        uint32_t bits = 0;
        const char *p = list;

        while (*p) {
                size_t n = strcspn(p, ",");
                char name[64];
                int s;

                if (n == 0 || n >= sizeof(name))
                        return ck_error_set(reterr, -EINVAL,
                                            "--attest-tcb: \"%s\" is not a list of TCB statuses", list);
                memcpy(name, p, n);
                name[n] = 0;
                s = attest_tcb_status_from_string(name);
                if (s < 0 || s == ATTEST_TCB_REVOKED)
                        return ck_error_set(reterr, -EINVAL,
                                            "--attest-tcb: \"%s\" is not an acceptable TCB status", name);
                bits |= 1u << s;
                p += n + (p[n] == ',');
        }
        if (!bits)
                return ck_error_set(reterr, -EINVAL, "--attest-tcb: no status given");
        *ret = bits;
        return 0;
}

int cli_attest_configure(const struct cli_attest_opts *o, struct ck_error **reterr)
{
        int r;

        cli_attest_reset();
        r = attest_refvalues_load(o->policy, &g.rv, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "--attest %s", o->policy);
        if (o->sim_root) {
                r = attest_root_load_file(o->sim_root, &g.root, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "--trust-sim-root %s", o->sim_root);
        }
        r = tcb_statuses_parse(o->tcb ? o->tcb : "UpToDate", &g.tcb_statuses, reterr);
        if (r < 0)
                return r;
        g.o = *o;
        if (!g.o.collateral)
                g.o.collateral = CLI_ATTEST_PCS_DEFAULT;
        g.enabled = true;
        return 0;
}

bool cli_attest_enabled(void)
{
        return g.enabled;
}

const struct cli_attest_info *cli_attest_last(void)
{
        return g.attested ? &g.last : NULL;
}

void cli_attest_reset(void)
{
        g.attested = false;
        free(g.attested_host);
        g.attested_host = NULL;
        X509_free(g.root);
        g.root = NULL;
        g.enabled = false;
        g.rv = (struct attest_refvalues){0};
}

bool cli_attest_conn_key_changed(const struct cli_attest_conn *a)
{
        return a && a->key_changed;
}

void cli_attest_conn_free(struct cli_attest_conn *a)
{
        if (!a)
                return;
        X509_free(a->cert);
        OPENSSL_cleanse(a->ekm, sizeof(a->ekm));
        free(a);
}

static int cert_pkh(X509 *cert, uint8_t ret[32])
{
        unsigned char *der = NULL;
        EVP_PKEY *key = X509_get0_pubkey(cert);
        int n = key ? i2d_PUBKEY(key, &der) : -1;
        int r;

        if (n <= 0)
                return -EIO;
        r = ck_sha256(der, (size_t)n, ret);
        OPENSSL_free(der);
        return r;
}

/* ---- TLS callbacks (run inside curl_easy_perform) ---- */

/* Replaces the chain check: the certificate is self-signed and proves nothing until its quote is
 * verified after the first exchange (which carries no credential). Once attested, only the
 * attested key is accepted. */
static int on_cert_verify(X509_STORE_CTX *xs, void *arg)
{
        struct cli_attest_conn *a = arg;
        X509 *leaf = X509_STORE_CTX_get0_cert(xs);
        uint8_t pkh[32];

        if (!leaf || cert_pkh(leaf, pkh) < 0)
                return 0;
        if (a->pinned) {
                if (memcmp(pkh, a->pkh, 32) == 0)
                        return 1;
                a->key_changed = true;
                X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
                return 0;
        }
        if (a->cert) {
                /* A second connection before the attestation finished: it must be the same key. */
                uint8_t first[32];
                if (cert_pkh(a->cert, first) == 0 && memcmp(first, pkh, 32) == 0)
                        return 1;
                a->key_changed = true;
                return 0;
        }
        if (!X509_up_ref(leaf))
                return 0;
        a->cert = leaf;
        return 1;
}

static void on_info(const SSL *ssl, int where, int ret)
{
        struct cli_attest_conn *a = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

        if (!(where & SSL_CB_HANDSHAKE_DONE) || !a || a->pinned)
                return;
        a->have_ekm =
                SSL_export_keying_material((SSL *)ssl, a->ekm, sizeof(a->ekm), ATTEST_API_EXPORTER_LABEL,
                                           strlen(ATTEST_API_EXPORTER_LABEL), NULL, 0, 0) == 1;
}

static CURLcode on_ssl_ctx(CURL *curl, void *sslctx, void *arg)
{
        SSL_CTX *ctx = sslctx;

        /* After libcurl's own settings: TLS 1.3 (the exporter then covers the whole handshake),
         * the peer certificate required, and judged by on_cert_verify alone. */
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1)
                return CURLE_SSL_CERTPROBLEM;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_cert_verify_callback(ctx, on_cert_verify, arg);
        SSL_CTX_set_app_data(ctx, arg);
        SSL_CTX_set_info_callback(ctx, on_info);
        return CURLE_OK;
}

/* ---- verification ---- */

static int get_collateral(void *userdata, const uint8_t *quote, size_t len, struct attest_collateral **ret,
                          struct ck_error **reterr)
{
        struct attest_quote q;
        const char *ca_type = NULL;
        char fmspc[13];
        int r;

        if (!ck_startswith(g.o.collateral, "https://") && !ck_startswith(g.o.collateral, "http://"))
                return attest_collateral_load_file(g.o.collateral, ret, reterr);
        r = attest_quote_parse(quote, len, &q, reterr);
        if (r < 0)
                return r;
        r = attest_quote_pck_identity(&q, fmspc, &ca_type, reterr);
        if (r < 0)
                return r;
        return attest_collateral_fetch_tee(g.o.collateral, q.tee_type, fmspc, ca_type, g.o.cache_dir,
                                           g.o.pcs_ca, time(NULL), ret, reterr);
}

/* The pinned and the measured value a refvalues reason is about, and its name. */
static const uint8_t *pinned_value(const char *reason, const struct attest_measurements *m,
                                   const uint8_t **ret_have, const char **ret_name)
{
        static const char *const names[] = {"RTMR0", "RTMR1", "RTMR2"};

        if (strcmp(reason, "mrtd_mismatch") == 0) {
                *ret_have = m->mr_td;
                *ret_name = "MRTD";
                return g.rv.mrtd;
        }
        for (unsigned i = 0; i < 3; i++) {
                char want[32];
                snprintf(want, sizeof(want), "rtmr%u_mismatch", i);
                if (strcmp(reason, want) == 0) {
                        *ret_have = m->rtmr[i];
                        *ret_name = names[i];
                        return g.rv.rtmr[i];
                }
        }
        return NULL;
}

/* What the policy asks of the TD behind the certificate. */
static int td_check(const struct attest_result *res, struct ck_error **reterr)
{
        const uint8_t *have = NULL, *want;
        const char *reason, *name = NULL;

        if (res->tee_type != ATTEST_TEE_TDX)
                return ck_error_set(reterr, -EKEYREJECTED, "not_tdx: the quote is not a TDX quote");
        if ((unsigned)res->status >= _ATTEST_TCB_STATUS_MAX || !(g.tcb_statuses & (1u << res->status)))
                return ck_error_set(
                        reterr, -EKEYREJECTED,
                        "tcb_status: the platform's TCB is %s, not one --attest-tcb accepts (default "
                        "UpToDate)",
                        attest_tcb_status_to_string(res->status));
        if (res->m.td_attributes[0] != 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "debug_td: conkerd runs in a debug TD (TDATTRIBUTES %02x)",
                                    res->m.td_attributes[0]);
        reason = attest_refvalues_check(&g.rv, &res->m);
        if (!reason)
                return 0;
        want = pinned_value(reason, &res->m, &have, &name);
        if (want && have && name) {
                char h[97], w[97];
                ck_hex_encode(have, 48, h);
                ck_hex_encode(want, 48, w);
                return ck_error_set(reterr, -EKEYREJECTED, "%s: conkerd's %s is %s, %s pins %s", reason,
                                    name, h, g.o.policy, w);
        }
        return ck_error_set(reterr, -EKEYREJECTED, "%s", reason);
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
        return ck_buf_append(ud, p, size * n) < 0 ? 0 : size * n;
}

/* The evidence bytes of a /pub/attest answer. */
static int response_evidence(long status, const struct ck_buf *body, uint8_t **ret, size_t *ret_len,
                             struct ck_error **reterr)
{
        _cleanup_json_ json_t *env = NULL;
        const char *hex;

        (void)ck_json_loadb(body->data, body->len, ATTEST_RESPONSE_MAX, &env, NULL);
        if (status == 404)
                return ck_error_set(
                        reterr, -EKEYREJECTED,
                        "conkerd offers no attested identity (is it running with tls-cert = auto?)");
        if (status != 200 || !json_is_object(env))
                return ck_error_set(reterr, -EKEYREJECTED, "the attestation request failed (HTTP %ld: %s)",
                                    status,
                                    json_string_value(json_object_get(env, "message")) ?: "no message");
        hex = json_string_value(json_object_get(json_object_get(env, "data"), "Evidence"));
        if (!hex || ck_hex_decode_alloc(hex, strlen(hex), ATTEST_API_EVIDENCE_MAX, ret, ret_len) < 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "the attestation answer carries no valid Evidence");
        return 0;
}

int cli_attest_connect(CURL *curl, const char *base_url, struct cli_attest_conn **ret,
                       struct ck_error **reterr)
{
        _cleanup_(cli_attest_conn_freep) struct cli_attest_conn *a = NULL;
        _cleanup_(attest_result_freep) struct attest_result *cert_res = NULL, *fresh_res = NULL;
        _cleanup_free_ char *url = NULL, *nonce_hex = NULL;
        _cleanup_free_ uint8_t *evidence = NULL;
        _cleanup_buf_ struct ck_buf body = {0};
        struct attest_verify_opts opts = {.now = time(NULL), .root = g.root};
        uint8_t nonce[32];
        size_t ev_len = 0;
        long status = 0, connects = 0;
        CURLcode cc;
        int r;

        if (!ck_startswith(base_url, "https://"))
                return ck_error_set(reterr, -EINVAL,
                                    "--attest needs an https:// --host (conkerd with tls-cert = auto)");
        a = calloc(1, sizeof(*a));
        if (!a || RAND_bytes(nonce, sizeof(nonce)) != 1 ||
            !(nonce_hex = ck_hex_encode_alloc(nonce, sizeof(nonce))) ||
            asprintf(&url, "%s/sw/api/v1/pub/attest?nonce=%s", base_url, nonce_hex) < 0)
                return ck_error_set(reterr, -ENOMEM, "out of memory");

        /* The identity is the quote, not a CA or a name; a resumed session would skip the
         * certificate callback. */
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_SESSIONID_CACHE, 0L);
        curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
        curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, a);
        if (g.attested && strcmp(g.attested_host, base_url) == 0) {
                /* Attested moments ago by this process (fresh quote over this key): the key is
                 * pinned, and a connection presenting another one fails its handshake. */
                a->pinned = true;
                memcpy(a->pkh, g.last.key_sha256, 32);
                *ret = TAKE_PTR(a);
                return 0;
        }
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
        /* conkerd makes one quote at a time and answers 503 meanwhile: ask again, a bounded
         * number of times, on the same connection. */
        for (unsigned attempt = 0;; attempt++) {
                long n = 0;

                ck_buf_free(&body);
                ck_buf_init(&body, ATTEST_RESPONSE_MAX);
                cc = curl_easy_perform(curl);
                if (cc != CURLE_OK)
                        return ck_error_set(reterr, -EIO, "cannot reach conkerd at %s: %s", base_url,
                                            curl_easy_strerror(cc));
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
                curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &n);
                connects += n;
                if (status != 503 || attempt >= ATTEST_BUSY_RETRIES)
                        break;
                nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
        }
        if (!a->cert || !a->have_ekm || connects != 1 || a->key_changed)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "the attestation exchange did not run on one TLS 1.3 connection");
        r = response_evidence(status, &body, &evidence, &ev_len, reterr);
        if (r < 0)
                return r;

        /* 1. The certificate: its quote, then what the policy asks of the TD. */
        r = attest_api_cert_verify(a->cert, get_collateral, NULL, &opts, &cert_res, reterr);
        if (r < 0)
                return r;
        r = td_check(cert_res, reterr);
        if (r < 0)
                return r;
        /* 2. Fresh evidence over our nonce, this connection's exporter and the certificate key:
         * a live TD, not a recorded certificate. It must be the same TD. */
        r = attest_api_evidence_verify(evidence, ev_len, a->cert, nonce, sizeof(nonce), a->ekm,
                                       get_collateral, NULL, &opts, &fresh_res, reterr);
        if (r < 0)
                return r;
        r = td_check(fresh_res, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "fresh evidence");
        if (memcmp(fresh_res->m.mr_td, cert_res->m.mr_td, 48) != 0)
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "the fresh evidence comes from another TD than the certificate");
        if (cert_pkh(a->cert, a->pkh) < 0)
                return ck_error_set(reterr, -EIO, "cannot hash the certificate key");
        a->pinned = true;
        g.last = (struct cli_attest_info){.status = attest_tcb_status_to_string(fresh_res->status),
                                          .simulated = fresh_res->simulated};
        memcpy(g.last.mrtd, fresh_res->m.mr_td, 48);
        for (unsigned i = 0; i < 3; i++)
                memcpy(g.last.rtmr[i], fresh_res->m.rtmr[i], 48);
        memcpy(g.last.key_sha256, a->pkh, 32);
        free(g.attested_host);
        g.attested_host = strdup(base_url);
        g.attested = g.attested_host != NULL;
        log_debug("conkerd at %s attested (%s%s)", base_url, attest_tcb_status_to_string(fresh_res->status),
                  fresh_res->simulated ? ", SIMULATED TD" : "");
        *ret = TAKE_PTR(a);
        return 0;
}
