/* DCAP collateral fetched from a PCS/PCCS over HTTPS (libcurl), with an on-disk cache. A file of
 * its own so that programs that only load and check collateral (conkerd) do not link libcurl. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "collateral-private.h"
#include "curl.h"
#include "fs.h"
#include "log.h"
#include "parse.h"

#define FETCH_BODY_MAX   (1024 * 1024)
#define FETCH_HEADER_MAX (64 * 1024)
#define FETCH_TIMEOUT_S  30L

struct fetch_response {
        struct ck_buf body;
        struct ck_buf headers;
};

static size_t fetch_body_cb(char *p, size_t size, size_t n, void *userdata)
{
        struct fetch_response *r = userdata;

        return ck_buf_append(&r->body, p, size * n) < 0 ? 0 : size * n;
}

static size_t fetch_header_cb(char *p, size_t size, size_t n, void *userdata)
{
        struct fetch_response *r = userdata;

        return ck_buf_append(&r->headers, p, size * n) < 0 ? 0 : size * n;
}

/* The value of response header `name` (case-insensitive), URL-decoded (PCS sends issuer chains
 * percent-encoded). Only the last response's headers count (redirects are not followed). */
static int fetch_header_value(CURL *curl, const struct fetch_response *resp, const char *name, char **ret,
                              struct ck_error **reterr)
{
        const char *h = (const char *)resp->headers.data;
        size_t nlen = strlen(name);

        for (const char *line = h; line && *line;) {
                const char *eol = strchr(line, '\n');
                size_t llen = eol ? (size_t)(eol - line) : strlen(line);

                if (llen > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
                        const char *v = line + nlen + 1;
                        size_t vlen = llen - nlen - 1;
                        int outlen = 0;
                        char *dec;

                        while (vlen && (*v == ' ' || *v == '\t'))
                                v++, vlen--;
                        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                                vlen--;
                        dec = curl_easy_unescape(curl, v, (int)vlen, &outlen);
                        if (!dec)
                                return ck_error_set(reterr, -ENOMEM, "out of memory");
                        *ret = strndup(dec, (size_t)outlen);
                        curl_free(dec);
                        return *ret ? 0 : ck_error_set(reterr, -ENOMEM, "out of memory");
                }
                line = eol ? eol + 1 : NULL;
        }
        return ck_error_set(reterr, -EBADMSG, "response header %s is missing", name);
}

static int fetch_one(const char *url, const char *ca_file, struct fetch_response *resp, CURL **ret_curl,
                     struct ck_error **reterr)
{
        _cleanup_(curl_easy_cleanupp) CURL *curl = NULL;
        long status = 0;
        CURLcode cc;

        if (ck_curl_global_init() < 0)
                return ck_error_set(reterr, -EIO, "curl initialisation failed");
        curl = curl_easy_init();
        if (!curl)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        ck_buf_init(&resp->body, FETCH_BODY_MAX);
        ck_buf_init(&resp->headers, FETCH_HEADER_MAX);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
        if (ca_file)
                curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, FETCH_TIMEOUT_S);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, fetch_body_cb);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, resp);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, fetch_header_cb);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, resp);
        cc = curl_easy_perform(curl);
        if (cc != CURLE_OK)
                return ck_error_set(reterr, -EIO, "GET %s: %s", url, curl_easy_strerror(cc));
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
                return ck_error_set(reterr, -EIO, "GET %s: HTTP status %ld", url, status);
        *ret_curl = TAKE_PTR(curl);
        return 0;
}

static void fetch_response_done(struct fetch_response *r)
{
        ck_buf_free(&r->body);
        ck_buf_free(&r->headers);
}

/* Strips a trailing slash so that paths can be appended. */
static int url_join(const char *base, const char *path, char **ret)
{
        size_t n = strlen(base);

        while (n > 0 && base[n - 1] == '/')
                n--;
        return asprintf(ret, "%.*s%s", (int)n, base, path) < 0 ? -ENOMEM : 0;
}

static bool is_hex_text(const uint8_t *p, size_t n)
{
        size_t digits = 0;

        for (size_t i = 0; i < n; i++) {
                if (isxdigit(p[i]))
                        digits++;
                else if (!isspace(p[i]))
                        return false;
        }
        return digits > 0;
}

static int collateral_download(const char *base_url, const char *fmspc_hex, const char *ca_type, bool tdx,
                               const char *ca_file, struct attest_collateral **ret, struct ck_error **reterr)
{
        struct fetch_response tcb = {}, qe = {}, pck = {}, root = {};
        _cleanup_free_ char *u_tcb = NULL, *u_qe = NULL, *u_pck = NULL, *u_root = NULL, *path = NULL;
        _cleanup_free_ char *tcb_chain = NULL, *qe_chain = NULL, *pck_chain = NULL;
        _cleanup_free_ uint8_t *root_der = NULL;
        size_t root_len = 0;
        CURL *curl = NULL;
        int r;

        /* fmspc_hex and ca_type were checked by attest_collateral_fetch_tee(). */
        if (asprintf(&path, "/%s/certification/v4/tcb?fmspc=%s", tdx ? "tdx" : "sgx", fmspc_hex) < 0 ||
            url_join(base_url, path, &u_tcb) < 0 ||
            url_join(base_url,
                     tdx ? "/tdx/certification/v4/qe/identity" : "/sgx/certification/v4/qe/identity",
                     &u_qe) < 0)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        free(path);
        path = NULL;
        if (asprintf(&path, "/sgx/certification/v4/pckcrl?ca=%s&encoding=der", ca_type) < 0 ||
            url_join(base_url, path, &u_pck) < 0)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        /* Intel's PCS publishes the root CRL on a different host; a PCCS serves it (possibly as
         * hex) under the common prefix. */
        if (strstr(base_url, "api.trustedservices.intel.com"))
                u_root = strdup("https://certificates.trustedservices.intel.com/IntelSGXRootCA.der");
        else if (url_join(base_url, "/sgx/certification/v4/rootcacrl", &u_root) < 0)
                u_root = NULL;
        if (!u_root)
                return ck_error_set(reterr, -ENOMEM, "out of memory");

        r = fetch_one(u_tcb, ca_file, &tcb, &curl, reterr);
        if (r >= 0) {
                /* Without reterr: an error set by the first lookup would outlive the older PCCS
                 * spelling's success and stand for whatever fails next. */
                r = fetch_header_value(curl, &tcb, "TCB-Info-Issuer-Chain", &tcb_chain, NULL);
                if (r == -EBADMSG) /* older PCCS spelling */
                        r = fetch_header_value(curl, &tcb, "SGX-TCB-Info-Issuer-Chain", &tcb_chain, NULL);
                if (r == -EBADMSG)
                        r = ck_error_set(reterr, r, "response header TCB-Info-Issuer-Chain is missing");
                else if (r < 0)
                        r = ck_error_set(reterr, r, "out of memory");
                curl_easy_cleanup(TAKE_PTR(curl));
        }
        if (r >= 0) {
                r = fetch_one(u_qe, ca_file, &qe, &curl, reterr);
                if (r >= 0) {
                        r = fetch_header_value(curl, &qe, "SGX-Enclave-Identity-Issuer-Chain", &qe_chain,
                                               reterr);
                        curl_easy_cleanup(TAKE_PTR(curl));
                }
        }
        if (r >= 0) {
                r = fetch_one(u_pck, ca_file, &pck, &curl, reterr);
                if (r >= 0) {
                        r = fetch_header_value(curl, &pck, "SGX-PCK-CRL-Issuer-Chain", &pck_chain, reterr);
                        curl_easy_cleanup(TAKE_PTR(curl));
                }
        }
        if (r >= 0) {
                r = fetch_one(u_root, ca_file, &root, &curl, reterr);
                if (r >= 0)
                        curl_easy_cleanup(TAKE_PTR(curl));
        }
        if (r >= 0) {
                if (is_hex_text(root.body.data, root.body.len)) {
                        r = ck_hex_decode_alloc((const char *)root.body.data, root.body.len, CRL_MAX,
                                                &root_der, &root_len);
                        if (r < 0)
                                r = ck_error_set(reterr, -EBADMSG, "root CA CRL: invalid hex");
                } else {
                        root_der = ck_buf_take(&root.body, &root_len);
                        if (!root_der)
                                r = ck_error_set(reterr, -ENOMEM, "out of memory");
                }
        }
        if (r >= 0) {
                struct attest_collateral_parts parts = {
                        .tcb_info_body = tcb.body.data,
                        .tcb_info_len = tcb.body.len,
                        .qe_identity_body = qe.body.data,
                        .qe_identity_len = qe.body.len,
                        .tcb_issuer_chain_pem = tcb_chain,
                        .qe_issuer_chain_pem = qe_chain,
                        .pck_crl_der = pck.body.data,
                        .pck_crl_len = pck.body.len,
                        .pck_crl_issuer_chain_pem = pck_chain,
                        .root_crl_der = root_der,
                        .root_crl_len = root_len,
                };
                r = attest_collateral_from_parts(&parts, ret, reterr);
        }
        fetch_response_done(&tcb);
        fetch_response_done(&qe);
        fetch_response_done(&pck);
        fetch_response_done(&root);
        return r;
}

/* Earliest issueDate / thisUpdate: the cached copy is usable only inside [this, nextUpdate]. */
static bool collateral_current(const struct attest_collateral *c, time_t now)
{
        return now >= c->tcb.issue_date && now >= c->qe.issue_date &&
               now <= attest_collateral_next_update(c);
}

int attest_collateral_fetch_tee(const char *base_url, uint32_t tee_type, const char *fmspc_hex,
                                const char *ca_type, const char *cache_dir, const char *ca_file, time_t now,
                                struct attest_collateral **ret, struct ck_error **reterr)
{
        _cleanup_(attest_collateral_freep) struct attest_collateral *cached = NULL, *fresh = NULL;
        _cleanup_free_ char *cache_name = NULL;
        _cleanup_error_ struct ck_error *fetch_err = NULL;
        bool tdx = tee_type == ATTEST_TEE_TDX;
        int r;

        if (strlen(fmspc_hex) != 12 || strspn(fmspc_hex, "0123456789abcdefABCDEF") != 12)
                return ck_error_set(reterr, -EINVAL, "collateral: FMSPC must be 12 hex digits");
        if (strcmp(ca_type, "platform") != 0 && strcmp(ca_type, "processor") != 0)
                return ck_error_set(reterr, -EINVAL,
                                    "collateral: CA type \"%s\" is not platform or processor", ca_type);
        if (cache_dir) {
                char fm[13] = "";

                for (size_t i = 0; i < 12 && fmspc_hex[i]; i++)
                        fm[i] = (char)tolower((unsigned char)fmspc_hex[i]);
                if (asprintf(&cache_name, "%s/collateral-%s-%s-%s.json", cache_dir, tdx ? "tdx" : "sgx", fm,
                             ca_type) < 0)
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
                if (access(cache_name, F_OK) == 0) {
                        _cleanup_error_ struct ck_error *e = NULL;

                        if (attest_collateral_load_file(cache_name, &cached, &e) < 0)
                                log_warn("ignoring unreadable collateral cache %s: %s", cache_name,
                                         ck_error_message(e, -EBADMSG));
                        else if (collateral_current(cached, now)) {
                                *ret = TAKE_PTR(cached);
                                return 0;
                        }
                }
        }

        r = collateral_download(base_url, fmspc_hex, ca_type, tdx, ca_file, &fresh, &fetch_err);
        if (r < 0) {
                if (cached)
                        return ck_error_set(reterr, -EKEYEXPIRED,
                                            "collateral: cached copy is stale (next update %" PRId64
                                            ") and fetching failed: %s",
                                            (int64_t)attest_collateral_next_update(cached),
                                            ck_error_message(fetch_err, r));
                return ck_error_set(reterr, r, "collateral: fetching from %s failed: %s", base_url,
                                    ck_error_message(fetch_err, r));
        }
        if (!collateral_current(fresh, now))
                return ck_error_set(reterr, -EKEYEXPIRED,
                                    "collateral: %s served collateral that is not current", base_url);
        if (cache_name) {
                _cleanup_free_ char *text = NULL;
                _cleanup_error_ struct ck_error *e = NULL;
                _cleanup_close_ int dfd = -1;

                if (ck_mkdir_p(cache_dir, 0755) >= 0 && attest_collateral_to_json(fresh, &text, &e) >= 0 &&
                    (dfd = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
                        const char *base = strrchr(cache_name, '/') + 1;
                        if (ck_write_file_atomic(dfd, base, text, strlen(text), 0644, &e) < 0)
                                log_warn("cannot write collateral cache %s: %s", cache_name,
                                         ck_error_message(e, -EIO));
                }
        }
        *ret = TAKE_PTR(fresh);
        return 0;
}

int attest_collateral_fetch(const char *base_url, const char *fmspc_hex, const char *ca_type,
                            const char *cache_dir, const char *ca_file, time_t now,
                            struct attest_collateral **ret, struct ck_error **reterr)
{
        return attest_collateral_fetch_tee(base_url, ATTEST_TEE_TDX, fmspc_hex, ca_type, cache_dir, ca_file,
                                           now, ret, reterr);
}
