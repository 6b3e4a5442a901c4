/* conkerd's configuration table and the three things made from it: the file parser, the flag
 * parser and the example file. Adding a key means adding one row below. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "fs.h"
#include "parse.h"

enum cfg_type {
        CFG_STRING,
        CFG_PATH, /* a string that must be absolute when set */
        CFG_UINT,
        CFG_SIZE, /* bytes, with an optional K/M/G suffix (powers of 1024) */
        CFG_BOOL,
        CFG_ENUM,
        CFG_LIST, /* repeatable string */
};

struct cfg_key {
        const char *name;
        enum cfg_type type;
        const char *def;
        uint64_t min, max;
        const char *const *values; /* CFG_ENUM */
        int (*check)(const char *key, const char *value, struct ck_error **reterr);
        size_t offset;
        const char *help;
};

static const char *const tee_values[] = {"auto", "tdx", "sim", NULL};
static const char *const pull_policy_values[] = {"always", "missing", "never", NULL};
static const char *const layer_format_values[] = {"auto", "erofs", "dir", NULL};
static const char *const log_level_values[] = {"error", "warn", "info", "debug", NULL};

static int check_host_port(const char *key, const char *v, struct ck_error **reterr)
{
        const char *colon = strrchr(v, ':');
        uint64_t port;

        if (!colon || colon == v || ck_parse_uint(colon + 1, 65535, &port) < 0 || port == 0)
                return ck_error_set(reterr, -EINVAL, "%s: \"%s\" is not HOST:PORT", key, v);
        if (v[0] == '[' && colon[-1] != ']')
                return ck_error_set(reterr, -EINVAL, "%s: \"%s\" is not [IPV6]:PORT", key, v);
        return 0;
}

static int check_mirror(const char *key, const char *v, struct ck_error **reterr)
{
        const char *eq = strchr(v, '=');

        if (!eq || eq == v || eq[1] == 0 || strchr(eq + 1, '='))
                return ck_error_set(reterr, -EINVAL, "%s: \"%s\" is not DOMAIN=HOST:PORT", key, v);
        return 0;
}

static int check_range(const char *key, const char *v, struct ck_error **reterr)
{
        if (!*v || strspn(v, "0123456789./") != strlen(v) || !strchr(v, '/'))
                return ck_error_set(reterr, -EINVAL, "%s: \"%s\" is not an IPv4 CIDR range", key, v);
        return 0;
}

static int check_name(const char *key, const char *v, struct ck_error **reterr)
{
        size_t n = strlen(v);

        if (n == 0 || n > 15 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-_") != n)
                return ck_error_set(reterr, -EINVAL, "%s: \"%s\" is not a valid interface name", key, v);
        return 0;
}

static int check_tls_cert(const char *key, const char *v, struct ck_error **reterr)
{
        if (*v && strcmp(v, CONKERD_TLS_CERT_AUTO) != 0 && v[0] != '/')
                return ck_error_set(reterr, -EINVAL, "%s: \"%s\" is neither auto nor an absolute path", key,
                                    v);
        return 0;
}

#define OFF(f) offsetof(struct conkerd_config, f)

static const struct cfg_key keys[] = {
        {"listen", CFG_STRING, "0.0.0.0:8383", 0, 0, NULL, check_host_port, OFF(listen),
         "Address and port the REST API listens on (HOST:PORT, [IPV6]:PORT)."},
        {"data-dir", CFG_PATH, "/var/lib/conker", 0, 0, NULL, NULL, OFF(data_dir),
         "Persistent state: conker.db, blobs, layers, containers, volumes."},
        {"run-dir", CFG_PATH, "/run/conker", 0, 0, NULL, NULL, OFF(run_dir),
         "Volatile state: shim sockets and the per-task secret tmpfs."},
        {"runtime", CFG_STRING, "auto", 0, 0, NULL, NULL, OFF(runtime),
         "OCI runtime: auto (crun if in PATH and 1.8+, else runc), runc, crun, or a path."},
        {"shim", CFG_STRING, "", 0, 0, NULL, NULL, OFF(shim),
         "conker-shim binary; empty means next to conkerd, then PATH."},
        {"tee", CFG_ENUM, "auto", 0, 0, tee_values, NULL, OFF(tee),
         "TEE provider: auto picks tdx when present and otherwise refuses to start; sim must be asked for."},
        {"sim-dir", CFG_PATH, "/run/conker/tdx-sim", 0, 0, NULL, NULL, OFF(sim_dir),
         "The simulated TD made by `conker tdx-sim init DIR` (tee = sim)."},
        {"sim-state-dir", CFG_PATH, "", 0, 0, NULL, NULL, OFF(sim_state_dir),
         "Where the simulated TD keeps its RTMRs and RTMR3 log; empty: under /run/conker/tdx-sim."},
        {"kms-timeout", CFG_UINT, "30", 1, 600, NULL, NULL, OFF(kms_timeout),
         "Seconds one KMS endpoint may take to attest and release its secret."},
        {"kms-broker-reference-values", CFG_PATH, "", 0, 0, NULL, NULL, OFF(kms_broker_reference_values),
         "Mutual attestation: brokers must present an RA-TLS certificate (conker-broker -a tdx) whose "
         "quote matches these reference values (JSON: mrtd, rtmr0-2); such a broker needs no pin."},
        {"kms-broker-collateral", CFG_PATH, "", 0, 0, NULL, NULL, OFF(kms_broker_collateral),
         "DCAP collateral (dcap-qvl JSON) to verify the brokers' quotes with (with "
         "kms-broker-reference-values)."},
        {"kms-broker-trust-root", CFG_PATH, "", 0, 0, NULL, NULL, OFF(kms_broker_trust_root),
         "Trust this root CA instead of Intel's for the brokers' quotes and accept simulated TDs (testing "
         "only)."},
        {"kms-allow-unpinned", CFG_BOOL, "off", 0, 0, NULL, NULL, OFF(kms_allow_unpinned),
         "Accept KMS endpoints without a #sha256:<fingerprint> pin; such a broker is not authenticated "
         "(the host could answer in its place)."},
        {"token-file", CFG_PATH, "/etc/conker/token", 0, 0, NULL, NULL, OFF(token_file),
         "API bearer token; created with a random token (mode 0600) at first start."},
        {"auth", CFG_BOOL, "on", 0, 0, NULL, NULL, OFF(auth),
         "Require the bearer token (or a verified client certificate). Turn off only on a private socket."},
        {"tls-cert", CFG_STRING, "", 0, 0, NULL, check_tls_cert, OFF(tls_cert),
         "PEM certificate for HTTPS; auto: a fresh key and an RA-TLS certificate quoted by the TEE at "
         "every start (clients verify it with `conker --attest`); empty serves plain HTTP."},
        {"tls-key", CFG_PATH, "", 0, 0, NULL, NULL, OFF(tls_key), "PEM private key of tls-cert."},
        {"insecure-http", CFG_BOOL, "off", 0, 0, NULL, NULL, OFF(insecure_http),
         "Allow plain HTTP on an address that is not loopback. The host carries every packet: it "
         "would read the token and registry passwords."},
        {"insecure-storage", CFG_BOOL, "off", 0, 0, NULL, NULL, OFF(insecure_storage),
         "Under tee = tdx, allow a data dir that is neither tmpfs nor on LUKS2 with integrity (dm-crypt "
         "+ dm-integrity). The host reads and rewrites such a disk: layers, databases and volumes."},
        {"tls-client-ca", CFG_PATH, "", 0, 0, NULL, NULL, OFF(tls_client_ca),
         "PEM CA bundle; when set, clients must present a certificate it verifies, which authenticates "
         "them."},
        {"published-port-min", CFG_UINT, "30000", 1, 65535, NULL, NULL, OFF(published_port_min),
         "Lowest host port a task may publish."},
        {"published-port-max", CFG_UINT, "65534", 1, 65535, NULL, NULL, OFF(published_port_max),
         "Highest host port a task may publish."},
        {"max-body-size", CFG_SIZE, "1M", 1024, 64ull << 20, NULL, NULL, OFF(max_body_size),
         "Largest request body accepted (larger: 413)."},
        {"max-header-size", CFG_SIZE, "16K", 1024, 1ull << 20, NULL, NULL, OFF(max_header_size),
         "Largest request header block accepted."},
        {"max-connections", CFG_UINT, "256", 1, 65536, NULL, NULL, OFF(max_connections),
         "Concurrent API connections; more are refused until one closes."},
        {"http-timeout", CFG_UINT, "60", 1, 3600, NULL, NULL, OFF(http_timeout),
         "Seconds an idle or slow API connection may stay open."},
        {"max-tasks", CFG_UINT, "64", 1, 4096, NULL, NULL, OFF(max_tasks),
         "Tasks (of any status) conkerd keeps at once; more are refused with 409."},
        {"pull-timeout", CFG_UINT, "3600", 10, 86400, NULL, NULL, OFF(pull_timeout),
         "Seconds an image pull may take before the task fails."},
        {"pull-policy", CFG_ENUM, "always", 0, 0, pull_policy_values, NULL, OFF(pull_policy),
         "always (the seed's): every task resolves its reference at the registry with its own "
         "credentials, reusing stored layers by digest; missing: an image already in the store is "
         "used without asking the registry, so any task may run what another pulled; never: only "
         "the store is used."},
        {"image-max-blob-size", CFG_SIZE, "4G", 1ull << 20, 1ull << 40, NULL, NULL, OFF(image_max_blob_size),
         "Largest blob (manifest, config or compressed layer) a pull may download."},
        {"image-max-layer-size", CFG_SIZE, "16G", 1ull << 20, 16ull << 40, NULL, NULL,
         OFF(image_max_layer_size), "Largest unpacked size of one layer."},
        {"image-max-layer-entries", CFG_UINT, "1000000", 1, 100000000, NULL, NULL,
         OFF(image_max_layer_entries), "Most files, directories and links in one layer."},
        {"image-max-ratio", CFG_UINT, "100", 1, 100000, NULL, NULL, OFF(image_max_ratio),
         "Largest unpacked/compressed ratio of a layer past its first MiB (decompression bombs)."},
        {"layer-format", CFG_ENUM, "auto", 0, 0, layer_format_values, NULL, OFF(layer_format),
         "How pulled layers are stored: erofs (one read-only image file per layer, mounted as an overlay "
         "lower), dir (unpacked into a directory), auto (erofs when the kernel can mount it, else dir)."},
        {"registry-mirror", CFG_LIST, "", 0, 0, NULL, check_mirror, OFF(registry_mirrors),
         "DOMAIN=HOST:PORT: pull images of DOMAIN from HOST:PORT instead (repeatable)."},
        {"insecure-registry", CFG_LIST, "", 0, 0, NULL, NULL, OFF(insecure_registries),
         "Registry (HOST:PORT) that may be reached over plain HTTP (repeatable)."},
        {"registry-ca-file", CFG_PATH, "", 0, 0, NULL, NULL, OFF(registry_ca_file),
         "Extra PEM trust anchors for registries; empty uses the system store."},
        {"stop-timeout", CFG_UINT, "10", 0, 3600, NULL, NULL, OFF(stop_timeout),
         "Seconds between SIGTERM and SIGKILL when a container is stopped."},
        {"container-pids-limit", CFG_UINT, "4096", 0, 4194304, NULL, NULL, OFF(container_pids_limit),
         "Most processes and threads one container may have (its pids cgroup); 0: no limit. A fork bomb "
         "stops there instead of exhausting the TD."},
        {"container-memory-limit", CFG_SIZE, "0", 0, 16ull << 40, NULL, NULL, OFF(container_memory_limit),
         "Memory one container may use (its memory cgroup; at least 16M when set); 0: no limit. Set it "
         "below the TD's memory so that one container cannot exhaust the TD."},
        {"bridge", CFG_STRING, "conker0", 0, 0, NULL, check_name, OFF(bridge),
         "Bridge the containers' veth pairs attach to."},
        {"subnet", CFG_STRING, "10.88.0.0/16", 0, 0, NULL, check_range, OFF(subnet),
         "Container address range on the bridge."},
        {"nft-table", CFG_STRING, "conker", 0, 0, NULL, check_name, OFF(nft_table),
         "nftables table (family inet) that holds the published-port rules; conkerd owns it."},
        {"netns-dir", CFG_PATH, "/run/netns", 0, 0, NULL, NULL, OFF(netns_dir),
         "Where the containers' network namespaces are bind-mounted."},
        {"netns-prefix", CFG_STRING, "conker-", 0, 0, NULL, check_name, OFF(netns_prefix),
         "Name prefix of the containers' network namespaces."},
        {"volume-backing-size", CFG_SIZE, "4G", 64ull << 20, 16ull << 40, NULL, NULL,
         OFF(volume_backing_size),
         "Size of the sparse loop image for encrypted volumes when the host filesystem lacks fscrypt."},
        {"log-max-bytes", CFG_SIZE, "20M", 64ull << 10, 1ull << 30, NULL, NULL, OFF(log_max_bytes),
         "Container log file size before rotation."},
        {"log-max-files", CFG_UINT, "5", 1, 100, NULL, NULL, OFF(log_max_files),
         "Rotated container log files kept."},
        {"log-level", CFG_ENUM, "info", 0, 0, log_level_values, NULL, OFF(log_level),
         "conkerd's own log level."},
};

static const struct cfg_key *key_find(const char *name, size_t len)
{
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strlen(keys[i].name) == len && memcmp(keys[i].name, name, len) == 0)
                        return &keys[i];
        return NULL;
}

static int parse_size(const char *v, uint64_t *ret)
{
        size_t n = strlen(v);
        unsigned shift = 0;
        uint64_t x;

        if (n > 1) {
                switch (v[n - 1]) {
                case 'K':
                case 'k':
                        shift = 10;
                        break;
                case 'M':
                case 'm':
                        shift = 20;
                        break;
                case 'G':
                case 'g':
                        shift = 30;
                        break;
                case 'T':
                case 't':
                        shift = 40;
                        break;
                default:
                        break;
                }
        }
        if (ck_parse_u64(v, shift ? n - 1 : n, UINT64_MAX >> shift, &x) < 0)
                return -EINVAL;
        *ret = x << shift;
        return 0;
}

static int list_append(struct conkerd_list *l, const char *v)
{
        char **items;

        if (l->n >= CONKERD_CONFIG_LIST_MAX)
                return -E2BIG;
        items = realloc(l->items, (l->n + 2) * sizeof(char *));
        if (!items)
                return -ENOMEM;
        l->items = items;
        l->items[l->n] = strdup(v);
        if (!l->items[l->n])
                return -ENOMEM;
        l->items[++l->n] = NULL;
        return 0;
}

static void list_clear(struct conkerd_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->items[i]);
        free(l->items);
        *l = (struct conkerd_list){0};
}

static int key_set(struct conkerd_config *c, const struct cfg_key *k, const char *v,
                   struct ck_error **reterr)
{
        void *field = (char *)c + k->offset;
        uint64_t x = 0;
        char *s;
        int r;

        if (strlen(v) >= CONKERD_CONFIG_LINE_MAX)
                return ck_error_set(reterr, -EINVAL, "%s: value too long", k->name);
        if (k->check && (k->type != CFG_LIST || *v)) {
                r = k->check(k->name, v, reterr);
                if (r < 0)
                        return r;
        }

        switch (k->type) {
        case CFG_PATH:
                if (*v && v[0] != '/')
                        return ck_error_set(reterr, -EINVAL, "%s: \"%s\" must be an absolute path", k->name,
                                            v);
                _fallthrough_;
        case CFG_STRING:
                s = strdup(v);
                if (!s)
                        return -ENOMEM;
                free(*(char **)field);
                *(char **)field = s;
                return 0;
        case CFG_ENUM:
                for (size_t i = 0; k->values[i]; i++)
                        if (strcmp(v, k->values[i]) == 0) {
                                s = strdup(v);
                                if (!s)
                                        return -ENOMEM;
                                free(*(char **)field);
                                *(char **)field = s;
                                return 0;
                        }
                return ck_error_set(reterr, -EINVAL, "%s: \"%s\" is not one of the allowed values", k->name,
                                    v);
        case CFG_UINT:
        case CFG_SIZE:
                r = k->type == CFG_UINT ? ck_parse_uint(v, UINT64_MAX, &x) : parse_size(v, &x);
                if (r < 0)
                        return ck_error_set(reterr, -EINVAL, "%s: \"%s\" is not a%s number", k->name, v,
                                            k->type == CFG_SIZE ? " size (bytes, K, M, G)" : "n unsigned");
                if (x < k->min || x > k->max)
                        return ck_error_set(reterr, -ERANGE, "%s: %llu is outside %llu-%llu", k->name,
                                            (unsigned long long)x, (unsigned long long)k->min,
                                            (unsigned long long)k->max);
                *(uint64_t *)field = x;
                return 0;
        case CFG_BOOL:
                if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 ||
                    strcmp(v, "1") == 0)
                        *(bool *)field = true;
                else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0 ||
                         strcmp(v, "0") == 0)
                        *(bool *)field = false;
                else
                        return ck_error_set(reterr, -EINVAL, "%s: \"%s\" is not on or off", k->name, v);
                return 0;
        case CFG_LIST:
                if (!*v)
                        return 0;
                r = list_append(field, v);
                if (r == -E2BIG)
                        return ck_error_set(reterr, r, "%s: more than %u values", k->name,
                                            CONKERD_CONFIG_LIST_MAX);
                return r;
        }
        return -EINVAL;
}

int conkerd_config_init(struct conkerd_config *c, struct ck_error **reterr)
{
        *c = (struct conkerd_config){0};
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                int r = key_set(c, &keys[i], keys[i].def, reterr);
                if (r < 0) {
                        conkerd_config_clear(c);
                        return r;
                }
        }
        return 0;
}

void conkerd_config_clear(struct conkerd_config *c)
{
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                void *field = (char *)c + keys[i].offset;
                switch (keys[i].type) {
                case CFG_STRING:
                case CFG_PATH:
                case CFG_ENUM:
                        free(*(char **)field);
                        *(char **)field = NULL;
                        break;
                case CFG_LIST:
                        list_clear(field);
                        break;
                default:
                        break;
                }
        }
}

int conkerd_config_set(struct conkerd_config *c, const char *key, const char *value,
                       struct ck_error **reterr)
{
        const struct cfg_key *k = key_find(key, strlen(key));

        if (!k)
                return ck_error_set(reterr, -EINVAL, "unknown key \"%s\"", key);
        return key_set(c, k, value, reterr);
}

static bool is_blank(char ch)
{
        return ch == ' ' || ch == '\t';
}

int conkerd_config_parse(struct conkerd_config *c, const char *buf, size_t len, const char *origin,
                         struct ck_error **reterr)
{
        unsigned char seen[ELEMENTSOF(keys)] = {0};
        size_t off = 0;
        unsigned lineno = 0;

        if (len > CONKERD_CONFIG_FILE_MAX)
                return ck_error_set(reterr, -E2BIG, "%s: larger than %u bytes", origin,
                                    CONKERD_CONFIG_FILE_MAX);
        if (memchr(buf, 0, len))
                return ck_error_set(reterr, -EINVAL, "%s: contains a NUL byte", origin);

        while (off < len) {
                const char *line = buf + off, *nl = memchr(line, '\n', len - off);
                size_t n = nl ? (size_t)(nl - line) : len - off;
                const char *eq, *ks, *ke, *vs, *ve;
                char value[CONKERD_CONFIG_LINE_MAX];
                const struct cfg_key *k;
                int r;

                off += n + (nl ? 1 : 0);
                lineno++;
                if (n && line[n - 1] == '\r')
                        n--;
                if (n >= CONKERD_CONFIG_LINE_MAX)
                        return ck_error_set(reterr, -EINVAL, "%s:%u: line longer than %d bytes", origin,
                                            lineno, CONKERD_CONFIG_LINE_MAX - 1);
                ks = line;
                while (ks < line + n && is_blank(*ks))
                        ks++;
                if (ks == line + n || *ks == '#')
                        continue;
                if (!ck_is_printable(line, n))
                        return ck_error_set(reterr, -EINVAL, "%s:%u: control characters in line", origin,
                                            lineno);
                eq = memchr(ks, '=', (size_t)(line + n - ks));
                if (!eq)
                        return ck_error_set(reterr, -EINVAL, "%s:%u: expected \"key = value\"", origin,
                                            lineno);
                ke = eq;
                while (ke > ks && is_blank(ke[-1]))
                        ke--;
                vs = eq + 1;
                while (vs < line + n && is_blank(*vs))
                        vs++;
                ve = line + n;
                while (ve > vs && is_blank(ve[-1]))
                        ve--;
                k = key_find(ks, (size_t)(ke - ks));
                if (!k)
                        return ck_error_set(reterr, -EINVAL, "%s:%u: unknown key \"%.*s\"", origin, lineno,
                                            (int)(ke - ks), ks);
                if (k->type != CFG_LIST && seen[k - keys]++)
                        return ck_error_set(reterr, -EINVAL, "%s:%u: \"%s\" is set twice", origin, lineno,
                                            k->name);
                memcpy(value, vs, (size_t)(ve - vs));
                value[ve - vs] = 0;
                r = key_set(c, k, value, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "%s:%u", origin, lineno);
        }
        return 0;
}

int conkerd_config_load_file(struct conkerd_config *c, const char *path, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0;
        int r;

        r = ck_read_file(path, CONKERD_CONFIG_FILE_MAX, &data, &len, NULL);
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read %s", path);
        return conkerd_config_parse(c, (const char *)data, len, path, reterr);
}

int conkerd_config_check(const struct conkerd_config *c, struct ck_error **reterr)
{
        if (c->published_port_min > c->published_port_max)
                return ck_error_set(reterr, -EINVAL,
                                    "published-port-min (%llu) is above published-port-max (%llu)",
                                    (unsigned long long)c->published_port_min,
                                    (unsigned long long)c->published_port_max);
        if (conkerd_config_tls_auto(c)) {
                if (*c->tls_key)
                        return ck_error_set(reterr, -EINVAL,
                                            "tls-key must be empty with tls-cert = auto (the key is made at "
                                            "start and never leaves conkerd)");
        } else if (!!*c->tls_cert != !!*c->tls_key)
                return ck_error_set(reterr, -EINVAL, "tls-cert and tls-key must be set together");
        if (*c->tls_client_ca && !*c->tls_cert)
                return ck_error_set(reterr, -EINVAL, "tls-client-ca needs tls-cert and tls-key");
        if (c->container_memory_limit && c->container_memory_limit < (16u << 20))
                return ck_error_set(reterr, -EINVAL,
                                    "container-memory-limit must be 0 (no limit) or at least 16M, not %llu",
                                    (unsigned long long)c->container_memory_limit);
        /* Finding: the API in clear. Off loopback, plain HTTP hands the token and registry
         * passwords to whoever carries the packets (in a TD: the host). Refuse unless told. */
        if (!*c->tls_cert && !c->insecure_http && !conkerd_listen_is_loopback(c->listen))
                return ck_error_set(reterr, -EPERM,
                                    "listen = %s is not a loopback address and TLS is off: set tls-cert "
                                    "(tls-cert = auto makes an attested certificate; clients check it with "
                                    "`conker --attest`), or pass --insecure-http to serve plain HTTP anyway",
                                    c->listen);
        return 0;
}

bool conkerd_config_tls_auto(const struct conkerd_config *c)
{
        return c->tls_cert && strcmp(c->tls_cert, CONKERD_TLS_CERT_AUTO) == 0;
}

bool conkerd_listen_is_loopback(const char *listen)
{
        const char *colon = listen ? strrchr(listen, ':') : NULL;
        char host[INET6_ADDRSTRLEN + 2];
        struct in6_addr a6;
        struct in_addr a4;
        size_t n;

        if (!colon)
                return false;
        n = (size_t)(colon - listen);
        if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') {
                listen++;
                n -= 2;
        }
        if (n == 0 || n >= sizeof(host))
                return false;
        memcpy(host, listen, n);
        host[n] = 0;
        /* Literal addresses only: a name may resolve to anything. 0.0.0.0 and :: are every
         * address, not loopback. IPv4-mapped ::ffff:127.x counts as loopback. */
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, host, &a6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
        return false;
}

enum {
        ARG_CONFIG = 0x100,
        ARG_PRINT_EXAMPLE,
        ARG_VERSION,
        ARG_CHECK_STORAGE,
        ARG_KEY_BASE = 0x200,    /* + index: --key VALUE */
        ARG_NO_KEY_BASE = 0x300, /* + index: --no-key */
};

int conkerd_config_from_args(struct conkerd_config *c, int argc, char **argv, struct conkerd_args *ret_args,
                             struct ck_error **reterr)
{
        struct option opts[2 * ELEMENTSOF(keys) + 6];
        char no_names[ELEMENTSOF(keys)][64];
        struct conkerd_args args = {0};
        const char *config_file = NULL;
        size_t n = 0;
        int ch, r;

        _Static_assert(ELEMENTSOF(keys) < 0x100, "too many keys for the option code ranges");
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                bool b = keys[i].type == CFG_BOOL;
                opts[n++] = (struct option){keys[i].name, b ? no_argument : required_argument, NULL,
                                            ARG_KEY_BASE + (int)i};
                if (b) {
                        snprintf(no_names[i], sizeof(no_names[i]), "no-%s", keys[i].name);
                        opts[n++] =
                                (struct option){no_names[i], no_argument, NULL, ARG_NO_KEY_BASE + (int)i};
                }
        }
        opts[n++] = (struct option){"config", required_argument, NULL, ARG_CONFIG};
        opts[n++] = (struct option){"print-config-example", no_argument, NULL, ARG_PRINT_EXAMPLE};
        opts[n++] = (struct option){"version", no_argument, NULL, ARG_VERSION};
        opts[n++] = (struct option){"check-storage", required_argument, NULL, ARG_CHECK_STORAGE};
        opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
        opts[n] = (struct option){0};

        /* First pass: only --config, so that the file is applied before the other flags. */
        optind = 0;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (ch == '?')
                        return ck_error_set(reterr, -EINVAL, "unknown or incomplete option \"%s\"",
                                            argv[optind - 1]);
                if (ch == ARG_CONFIG)
                        config_file = optarg;
        }
        if (optind < argc)
                return ck_error_set(reterr, -EINVAL, "unexpected argument \"%s\"", argv[optind]);

        r = conkerd_config_load_file(c, config_file ?: CONKERD_CONFIG_FILE_DEFAULT, reterr);
        if (r == -ENOENT && config_file)
                return ck_error_set(reterr, r, "config file %s does not exist", config_file);
        if (r < 0 && r != -ENOENT)
                return r;

        optind = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                const struct cfg_key *k = NULL;

                if (ch >= ARG_NO_KEY_BASE && ch < ARG_NO_KEY_BASE + (int)ELEMENTSOF(keys)) {
                        k = &keys[ch - ARG_NO_KEY_BASE];
                        r = key_set(c, k, "off", reterr);
                } else if (ch >= ARG_KEY_BASE && ch < ARG_KEY_BASE + (int)ELEMENTSOF(keys)) {
                        k = &keys[ch - ARG_KEY_BASE];
                        r = key_set(c, k, k->type == CFG_BOOL ? "on" : optarg, reterr);
                } else {
                        if (ch == ARG_PRINT_EXAMPLE)
                                args.print_example = true;
                        else if (ch == ARG_VERSION)
                                args.version = true;
                        else if (ch == ARG_CHECK_STORAGE)
                                args.check_storage = optarg;
                        else if (ch == 'h')
                                args.help = true;
                        r = 0;
                }
                if (r < 0)
                        return ck_error_prefix(reterr, r, "command line");
        }
        *ret_args = args;
        return 0;
}

static const char *type_hint(const struct cfg_key *k)
{
        if (k->check == check_tls_cert)
                return "auto or absolute path";
        switch (k->type) {
        case CFG_PATH:
                return "absolute path";
        case CFG_UINT:
                return "number";
        case CFG_SIZE:
                return "size in bytes, K, M, G or T suffix";
        case CFG_BOOL:
                return "on or off";
        case CFG_ENUM:
                return "one of the listed values";
        case CFG_LIST:
                return "repeatable";
        default:
                return "text";
        }
}

char *conkerd_config_example(void)
{
        _cleanup_buf_ struct ck_buf b = {0};
        int r = 0;

        ck_buf_init(&b, 1u << 20);
        r |= ck_buf_append_str(
                &b, "# conkerd configuration: /etc/conker/conkerd.conf\n"
                    "#\n"
                    "# One \"key = value\" per line; lines starting with # are comments.\n"
                    "# Unknown keys and out-of-range values are errors. Every key is also a\n"
                    "# flag (--key VALUE; --key/--no-key for on/off keys) that overrides the file.\n"
                    "# Generated by `conkerd --print-config-example`; do not edit by hand.\n");
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const struct cfg_key *k = &keys[i];
                r |= ck_buf_printf(&b, "\n# %s\n# (%s", k->help, type_hint(k));
                if (k->type == CFG_UINT || k->type == CFG_SIZE)
                        r |= ck_buf_printf(&b, "; %llu-%llu", (unsigned long long)k->min,
                                           (unsigned long long)k->max);
                if (k->type == CFG_ENUM) {
                        r |= ck_buf_append_str(&b, ":");
                        for (size_t j = 0; k->values[j]; j++)
                                r |= ck_buf_printf(&b, " %s", k->values[j]);
                }
                r |= ck_buf_printf(&b, ")\n#%s = %s\n", k->name, k->def);
        }
        if (r < 0)
                return NULL;
        return (char *)ck_buf_take(&b, NULL);
}

void conkerd_config_usage(FILE *f)
{
        fprintf(f, "usage: conkerd [--config FILE] [--KEY VALUE]... [--print-config-example]\n\n"
                   "Runs the Conker engine daemon. Options (defaults in brackets):\n");
        fprintf(f, "  %-28s %s [%s]\n", "--config FILE", "configuration file", CONKERD_CONFIG_FILE_DEFAULT);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                char flag[64];
                if (keys[i].type == CFG_BOOL)
                        snprintf(flag, sizeof(flag), "--[no-]%s", keys[i].name);
                else
                        snprintf(flag, sizeof(flag), "--%s VALUE", keys[i].name);
                fprintf(f, "  %-28s %s [%s]\n", flag, keys[i].help, keys[i].def);
        }
        fprintf(f, "  %-28s %s\n", "--print-config-example", "print the example config file and exit");
        fprintf(f, "  %-28s %s\n", "--check-storage DIR",
                "print whether DIR is host-proof storage and exit (0 yes, 1 no, 2 cannot tell)");
}
