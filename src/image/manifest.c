/* OCI and Docker schema2 manifests, indexes/lists and image configs: bounded parsing on jansson,
 * platform selection for linux/amd64, and digest validation.
 *
 * Everything here is parsed from bytes a registry sent, so every size is capped (document size
 * by the caller's max, array lengths, string lengths), every digest is validated before it is
 * used as a file name, and strings with embedded NUL bytes are rejected (jansson accepts them,
 * C strings would silently truncate them). Schema 1 manifests are refused: they are signed
 * with keys nobody checks and carry no content-addressed config. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "manifest.h"

#define MEDIA_TYPE_MAX    255
#define INDEX_ENTRIES_MAX 1024
#define CONFIG_ARRAY_MAX  4096
#define CONFIG_STRING_MAX (64u << 10)
#define PLATFORMS_LISTED  8

static const char *const media_kind_table[_IMAGE_MEDIA_KIND_MAX] = {
        [IMAGE_MEDIA_UNKNOWN] = "unknown",
        [IMAGE_MEDIA_OCI_MANIFEST] = "application/vnd.oci.image.manifest.v1+json",
        [IMAGE_MEDIA_OCI_INDEX] = "application/vnd.oci.image.index.v1+json",
        [IMAGE_MEDIA_DOCKER_MANIFEST] = "application/vnd.docker.distribution.manifest.v2+json",
        [IMAGE_MEDIA_DOCKER_LIST] = "application/vnd.docker.distribution.manifest.list.v2+json",
        [IMAGE_MEDIA_OCI_CONFIG] = "application/vnd.oci.image.config.v1+json",
        [IMAGE_MEDIA_DOCKER_CONFIG] = "application/vnd.docker.container.image.v1+json",
        [IMAGE_MEDIA_LAYER_TAR] = "application/vnd.oci.image.layer.v1.tar",
        [IMAGE_MEDIA_LAYER_GZIP] = "application/vnd.oci.image.layer.v1.tar+gzip",
        [IMAGE_MEDIA_LAYER_ZSTD] = "application/vnd.oci.image.layer.v1.tar+zstd",
};

/* Other names for the same kinds: Docker's layer types and the (deprecated) non-distributable
 * OCI layers, which registries still serve like any blob. */
static const struct {
        const char *name;
        enum image_media_kind kind;
} media_kind_aliases[] = {
        {"application/vnd.docker.image.rootfs.diff.tar.gzip", IMAGE_MEDIA_LAYER_GZIP},
        {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", IMAGE_MEDIA_LAYER_GZIP},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar", IMAGE_MEDIA_LAYER_TAR},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", IMAGE_MEDIA_LAYER_GZIP},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", IMAGE_MEDIA_LAYER_ZSTD},
};

enum image_media_kind image_media_kind_from_string(const char *media_type)
{
        size_t len;

        if (!media_type)
                return IMAGE_MEDIA_UNKNOWN;
        /* Parameters (";charset=utf-8") are not part of the type. */
        len = strcspn(media_type, "; \t");
        for (int k = IMAGE_MEDIA_UNKNOWN + 1; k < _IMAGE_MEDIA_KIND_MAX; k++)
                if (strlen(media_kind_table[k]) == len && strncmp(media_kind_table[k], media_type, len) == 0)
                        return (enum image_media_kind)k;
        for (size_t i = 0; i < ELEMENTSOF(media_kind_aliases); i++)
                if (strlen(media_kind_aliases[i].name) == len &&
                    strncmp(media_kind_aliases[i].name, media_type, len) == 0)
                        return media_kind_aliases[i].kind;
        return IMAGE_MEDIA_UNKNOWN;
}

const char *image_media_kind_to_string(enum image_media_kind k)
{
        if ((int)k < 0 || k >= _IMAGE_MEDIA_KIND_MAX)
                return NULL;
        return media_kind_table[k];
}

static bool is_lower_hex(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

bool image_digest_valid(const char *s)
{
        size_t len;

        if (!s)
                return false;
        len = strnlen(s, 7 + 128 + 1);
        if (len == 7 + 64 && strncmp(s, "sha256:", 7) == 0)
                return is_lower_hex(s + 7, 64);
        if (len == 7 + 128 && strncmp(s, "sha512:", 7) == 0)
                return is_lower_hex(s + 7, 128);
        return false;
}

void image_descriptor_clear(struct image_descriptor *d)
{
        if (!d)
                return;
        free(d->media_type);
        free(d->digest);
        *d = (struct image_descriptor){0};
}

void image_manifest_clear(struct image_manifest *m)
{
        if (!m)
                return;
        image_descriptor_clear(&m->config);
        for (size_t i = 0; i < m->n_layers; i++)
                image_descriptor_clear(&m->layers[i]);
        free(m->layers);
        *m = (struct image_manifest){0};
}

static void strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

void image_config_clear(struct image_config *c)
{
        if (!c)
                return;
        strv_free(c->entrypoint);
        strv_free(c->cmd);
        strv_free(c->env);
        strv_free(c->exposed_ports);
        strv_free(c->volumes);
        strv_free(c->diff_ids);
        free(c->working_dir);
        free(c->user);
        free(c->stop_signal);
        free(c->os);
        free(c->architecture);
        *c = (struct image_config){0};
}

static inline void strv_freep(char ***v)
{
        strv_free(*v);
}
#define _cleanup_strv_ _cleanup_(strv_freep)

/* A JSON string value that is a proper C string (no embedded NUL) of at most max bytes. */
static const char *json_cstr(json_t *v, size_t max)
{
        const char *s;
        size_t len;

        if (!json_is_string(v))
                return NULL;
        s = json_string_value(v);
        len = json_string_length(v);
        if (len > max || strlen(s) != len)
                return NULL;
        return s;
}

/* Optional string member: absent or null -> *ret stays NULL. */
static int get_opt_string(json_t *obj, const char *key, size_t max, char **ret, struct ck_error **reterr)
{
        json_t *v = json_object_get(obj, key);
        const char *s;

        if (!v || json_is_null(v))
                return 0;
        s = json_cstr(v, max);
        if (!s)
                return ck_error_set(reterr, -EBADMSG, "\"%s\" must be a string of at most %zu bytes", key,
                                    max);
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int get_schema_version(json_t *root, struct ck_error **reterr)
{
        json_t *v = json_object_get(root, "schemaVersion");

        if (!json_is_integer(v))
                return ck_error_set(reterr, -EBADMSG, "\"schemaVersion\" missing or not an integer");
        if (json_integer_value(v) == 1)
                return ck_error_set(reterr, -EPROTONOSUPPORT,
                                    "schema 1 manifests are not supported; push the image again with a "
                                    "current client");
        if (json_integer_value(v) != 2)
                return ck_error_set(reterr, -EBADMSG, "unsupported schemaVersion %lld",
                                    (long long)json_integer_value(v));
        return 0;
}

/* Optional top-level "mediaType": returns its kind, IMAGE_MEDIA_UNKNOWN when absent. */
static int get_top_media_type(json_t *root, enum image_media_kind *ret, struct ck_error **reterr)
{
        json_t *v = json_object_get(root, "mediaType");
        const char *s;

        *ret = IMAGE_MEDIA_UNKNOWN;
        if (!v)
                return 0;
        s = json_cstr(v, MEDIA_TYPE_MAX);
        if (!s)
                return ck_error_set(reterr, -EBADMSG, "\"mediaType\" must be a short string");
        *ret = image_media_kind_from_string(s);
        if (*ret == IMAGE_MEDIA_UNKNOWN) {
                if (strstr(s, "manifest.v1+"))
                        return ck_error_set(reterr, -EPROTONOSUPPORT,
                                            "schema 1 manifests are not supported");
                return ck_error_set(reterr, -EPROTONOSUPPORT, "unsupported media type \"%s\"", s);
        }
        return 0;
}

/* A descriptor object: mediaType, digest and size are required and validated; max bounds size. */
static int descriptor_parse(json_t *d, const char *what, uint64_t max_size, struct image_descriptor *ret,
                            struct ck_error **reterr)
{
        _cleanup_free_ char *media_type = NULL, *digest = NULL;
        const char *mt, *dg;
        json_t *sz;
        json_int_t size;

        if (!json_is_object(d))
                return ck_error_set(reterr, -EBADMSG, "%s: descriptor must be an object", what);
        mt = json_cstr(json_object_get(d, "mediaType"), MEDIA_TYPE_MAX);
        if (!mt)
                return ck_error_set(reterr, -EBADMSG, "%s: \"mediaType\" missing or not a short string",
                                    what);
        dg = json_cstr(json_object_get(d, "digest"), 7 + 128);
        if (!dg || !image_digest_valid(dg))
                return ck_error_set(
                        reterr, -EBADMSG,
                        "%s: \"digest\" must be sha256:<64 lowercase hex> or sha512:<128 lowercase hex>",
                        what);
        sz = json_object_get(d, "size");
        if (!json_is_integer(sz) || json_integer_value(sz) < 0)
                return ck_error_set(reterr, -EBADMSG, "%s: \"size\" missing or negative", what);
        size = json_integer_value(sz);
        if ((uint64_t)size > max_size)
                return ck_error_set(reterr, -EMSGSIZE, "%s: size %lld is over the limit of %llu bytes", what,
                                    (long long)size, (unsigned long long)max_size);
        media_type = strdup(mt);
        digest = strdup(dg);
        if (!media_type || !digest)
                return -ENOMEM;
        *ret = (struct image_descriptor){
                .media_type = TAKE_PTR(media_type),
                .digest = TAKE_PTR(digest),
                .size = (uint64_t)size,
        };
        return 0;
}

/* The x86-64 micro-architecture level of this CPU (1-4), for the "variant" of amd64 entries. */
static int host_amd64_level(void)
{
#if defined(__x86_64__)
        static int level;

        if (level)
                return level;
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
            __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("fma"))
                level = 4;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") &&
                 __builtin_cpu_supports("fma") && __builtin_cpu_supports("popcnt") &&
                 __builtin_cpu_supports("sse4.2"))
                level = 3;
        else if (__builtin_cpu_supports("popcnt") && __builtin_cpu_supports("sse4.2") &&
                 __builtin_cpu_supports("ssse3"))
                level = 2;
        else
                level = 1;
        return level;
#else
        return 1;
#endif
}

/* How well an index entry's platform suits linux/amd64 here: < 0 not at all, higher is better.
 * An entry without a variant is baseline amd64 (level 1); "vN" is usable when N <= this CPU's
 * level, and the highest usable level wins (containerd falls back vN -> vN-1 ... -> v1 the same
 * way). A nested index without a platform is a candidate of last resort (rank 0). */
static int platform_rank(json_t *entry, enum image_media_kind kind)
{
        json_t *platform = json_object_get(entry, "platform"), *ann;
        const char *os, *arch, *variant, *reftype;

        ann = json_object_get(entry, "annotations");
        reftype = json_cstr(json_object_get(ann, "vnd.docker.reference.type"), MEDIA_TYPE_MAX);
        if (reftype && strcmp(reftype, "attestation-manifest") == 0)
                return -1;
        if (!platform)
                return (kind == IMAGE_MEDIA_OCI_INDEX || kind == IMAGE_MEDIA_DOCKER_LIST) ? 0 : -1;
        os = json_cstr(json_object_get(platform, "os"), 64);
        arch = json_cstr(json_object_get(platform, "architecture"), 64);
        variant = json_cstr(json_object_get(platform, "variant"), 64);
        if (!os || !arch || strcmp(os, "linux") != 0 || strcmp(arch, "amd64") != 0)
                return -1;
        if (!variant || !*variant || strcmp(variant, "v1") == 0)
                return 1;
        if (strlen(variant) == 2 && variant[0] == 'v' && variant[1] >= '2' && variant[1] <= '4') {
                int level = variant[1] - '0';

                return level <= host_amd64_level() ? level : -1;
        }
        return -1;
}

static void platform_describe(json_t *entry, char *buf, size_t size)
{
        json_t *platform = json_object_get(entry, "platform");
        const char *os = json_cstr(json_object_get(platform, "os"), 32);
        const char *arch = json_cstr(json_object_get(platform, "architecture"), 32);
        const char *variant = json_cstr(json_object_get(platform, "variant"), 16);

        snprintf(buf, size, "%s/%s%s%s", os ? os : "?", arch ? arch : "?", variant ? "/" : "",
                 variant ? variant : "");
}

int image_index_select(const uint8_t *buf, size_t len, struct image_descriptor *ret,
                       struct ck_error **reterr)
{
        _cleanup_json_ json_t *root = NULL;
        enum image_media_kind top;
        json_t *manifests, *entry, *best = NULL;
        int best_rank = -1, r;
        size_t i, n_listed = 0;
        char seen[PLATFORMS_LISTED * 40] = "";

        r = ck_json_loadb(buf, len, IMAGE_MANIFEST_MAX, &root, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "image index");
        if (!json_is_object(root))
                return ck_error_set(reterr, -EBADMSG, "image index: not a JSON object");
        r = get_schema_version(root, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "image index");
        r = get_top_media_type(root, &top, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "image index");
        if (top != IMAGE_MEDIA_UNKNOWN && top != IMAGE_MEDIA_OCI_INDEX && top != IMAGE_MEDIA_DOCKER_LIST)
                return ck_error_set(reterr, -EBADMSG, "image index: media type is %s, not an index",
                                    image_media_kind_to_string(top));
        manifests = json_object_get(root, "manifests");
        if (!json_is_array(manifests))
                return ck_error_set(reterr, -EBADMSG, "image index: \"manifests\" missing or not an array");
        if (json_array_size(manifests) > INDEX_ENTRIES_MAX)
                return ck_error_set(reterr, -EMSGSIZE, "image index: more than %d entries",
                                    INDEX_ENTRIES_MAX);

        json_array_foreach(manifests, i, entry)
        {
                const char *mt;
                enum image_media_kind kind;
                int rank;

                if (!json_is_object(entry))
                        return ck_error_set(reterr, -EBADMSG, "image index: entry %zu is not an object", i);
                mt = json_cstr(json_object_get(entry, "mediaType"), MEDIA_TYPE_MAX);
                kind = image_media_kind_from_string(mt);
                /* Entries of unknown types (signatures, artifacts) must not fail the pull. */
                if (kind != IMAGE_MEDIA_OCI_MANIFEST && kind != IMAGE_MEDIA_DOCKER_MANIFEST &&
                    kind != IMAGE_MEDIA_OCI_INDEX && kind != IMAGE_MEDIA_DOCKER_LIST)
                        continue;
                rank = platform_rank(entry, kind);
                if (rank < 0) {
                        if (json_object_get(entry, "platform") && n_listed < PLATFORMS_LISTED) {
                                char p[40];

                                platform_describe(entry, p, sizeof(p));
                                if (!strstr(seen, p)) {
                                        size_t off = strlen(seen);

                                        snprintf(seen + off, sizeof(seen) - off, "%s%s", off ? ", " : "", p);
                                        n_listed++;
                                }
                        }
                        continue;
                }
                if (rank > best_rank) {
                        best_rank = rank;
                        best = entry;
                }
        }
        if (!best)
                return ck_error_set(reterr, -ENOENT, "image index has no linux/amd64 image%s%s%s",
                                    *seen ? " (it has " : "", seen, *seen ? ")" : "");
        r = descriptor_parse(best, "image index: selected entry", IMAGE_MANIFEST_MAX, ret, reterr);
        return r;
}

int image_manifest_parse(const uint8_t *buf, size_t len, struct image_manifest *ret,
                         struct ck_error **reterr)
{
        _cleanup_json_ json_t *root = NULL;
        _cleanup_(image_manifest_clear) struct image_manifest m = {0};
        enum image_media_kind top, ck;
        json_t *config, *layers, *entry;
        size_t i;
        int r;

        r = ck_json_loadb(buf, len, IMAGE_MANIFEST_MAX, &root, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "image manifest");
        if (!json_is_object(root))
                return ck_error_set(reterr, -EBADMSG, "image manifest: not a JSON object");
        r = get_schema_version(root, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "image manifest");
        r = get_top_media_type(root, &top, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "image manifest");
        if (top == IMAGE_MEDIA_OCI_INDEX || top == IMAGE_MEDIA_DOCKER_LIST)
                return ck_error_set(reterr, -EBADMSG, "image manifest: got an index, expected a manifest");
        if (top != IMAGE_MEDIA_UNKNOWN && top != IMAGE_MEDIA_OCI_MANIFEST &&
            top != IMAGE_MEDIA_DOCKER_MANIFEST)
                return ck_error_set(reterr, -EBADMSG, "image manifest: media type %s is not a manifest",
                                    image_media_kind_to_string(top));
        if (top == IMAGE_MEDIA_UNKNOWN && json_object_get(root, "manifests"))
                return ck_error_set(reterr, -EBADMSG, "image manifest: got an index, expected a manifest");

        config = json_object_get(root, "config");
        if (!config)
                return ck_error_set(reterr, -EBADMSG, "image manifest: \"config\" missing");
        r = descriptor_parse(config, "image manifest: config", IMAGE_CONFIG_MAX, &m.config, reterr);
        if (r < 0)
                return r;
        ck = image_media_kind_from_string(m.config.media_type);
        if (ck != IMAGE_MEDIA_OCI_CONFIG && ck != IMAGE_MEDIA_DOCKER_CONFIG)
                return ck_error_set(
                        reterr, -EPROTONOSUPPORT,
                        "image manifest: config media type \"%s\" is not a container image config",
                        m.config.media_type);
        m.kind = top != IMAGE_MEDIA_UNKNOWN ? top
                                            : (ck == IMAGE_MEDIA_DOCKER_CONFIG ? IMAGE_MEDIA_DOCKER_MANIFEST
                                                                               : IMAGE_MEDIA_OCI_MANIFEST);

        layers = json_object_get(root, "layers");
        if (!json_is_array(layers))
                return ck_error_set(reterr, -EBADMSG, "image manifest: \"layers\" missing or not an array");
        if (json_array_size(layers) > IMAGE_LAYERS_MAX)
                return ck_error_set(reterr, -EMSGSIZE, "image manifest: %zu layers is over the limit of %d",
                                    json_array_size(layers), IMAGE_LAYERS_MAX);
        if (json_array_size(layers) > 0) {
                m.layers = calloc(json_array_size(layers), sizeof(*m.layers));
                if (!m.layers)
                        return -ENOMEM;
        }
        json_array_foreach(layers, i, entry)
        {
                char what[64];
                enum image_media_kind lk;

                snprintf(what, sizeof(what), "image manifest: layer %zu", i + 1);
                r = descriptor_parse(entry, what, UINT64_MAX, &m.layers[i], reterr);
                if (r < 0)
                        return r;
                m.n_layers++;
                lk = image_media_kind_from_string(m.layers[i].media_type);
                if (lk != IMAGE_MEDIA_LAYER_TAR && lk != IMAGE_MEDIA_LAYER_GZIP &&
                    lk != IMAGE_MEDIA_LAYER_ZSTD)
                        return ck_error_set(reterr, -EPROTONOSUPPORT,
                                            "%s: unsupported layer media type \"%s\"", what,
                                            m.layers[i].media_type);
        }
        *ret = m;
        m = (struct image_manifest){0};
        return 0;
}

/* Array of strings, or null/absent -> NULL. At most CONFIG_ARRAY_MAX entries. */
static int get_strv(json_t *obj, const char *key, char ***ret, struct ck_error **reterr)
{
        _cleanup_strv_ char **v = NULL;
        json_t *a = json_object_get(obj, key), *e;
        size_t i;

        *ret = NULL;
        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a))
                return ck_error_set(reterr, -EBADMSG, "\"%s\" must be an array of strings", key);
        if (json_array_size(a) > CONFIG_ARRAY_MAX)
                return ck_error_set(reterr, -EMSGSIZE, "\"%s\" has more than %d entries", key,
                                    CONFIG_ARRAY_MAX);
        v = calloc(json_array_size(a) + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        json_array_foreach(a, i, e)
        {
                const char *s = json_cstr(e, CONFIG_STRING_MAX);

                if (!s)
                        return ck_error_set(reterr, -EBADMSG,
                                            "\"%s\"[%zu] must be a string without NUL bytes", key, i);
                v[i] = strdup(s);
                if (!v[i])
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

/* The keys of an object-valued set such as "ExposedPorts" ({"80/tcp":{}}) or "Volumes". */
static int get_key_set(json_t *obj, const char *name, size_t key_max, char ***ret, struct ck_error **reterr)
{
        _cleanup_strv_ char **v = NULL;
        json_t *o = json_object_get(obj, name), *value;
        const char *key;
        size_t n = 0;

        *ret = NULL;
        if (!o || json_is_null(o))
                return 0;
        if (!json_is_object(o))
                return ck_error_set(reterr, -EBADMSG, "\"%s\" must be an object", name);
        if (json_object_size(o) > CONFIG_ARRAY_MAX)
                return ck_error_set(reterr, -EMSGSIZE, "\"%s\" has more than %d entries", name,
                                    CONFIG_ARRAY_MAX);
        v = calloc(json_object_size(o) + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        json_object_foreach(o, key, value)
        {
                if (strlen(key) > key_max)
                        return ck_error_set(reterr, -EBADMSG, "\"%s\": key too long", name);
                v[n] = strdup(key);
                if (!v[n])
                        return -ENOMEM;
                n++;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

int image_config_parse(const uint8_t *buf, size_t len, struct image_config *ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *root = NULL;
        _cleanup_(image_config_clear) struct image_config c = {0};
        json_t *cfg, *rootfs, *diff_ids, *e;
        const char *type;
        size_t i;
        int r;

        r = ck_json_loadb(buf, len, IMAGE_CONFIG_MAX, &root, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "image config");
        if (!json_is_object(root))
                return ck_error_set(reterr, -EBADMSG, "image config: not a JSON object");

        r = get_opt_string(root, "os", 64, &c.os, reterr);
        if (r >= 0)
                r = get_opt_string(root, "architecture", 64, &c.architecture, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "image config");

        cfg = json_object_get(root, "config");
        if (cfg && !json_is_null(cfg)) {
                if (!json_is_object(cfg))
                        return ck_error_set(reterr, -EBADMSG, "image config: \"config\" must be an object");
                r = get_strv(cfg, "Entrypoint", &c.entrypoint, reterr);
                if (r >= 0)
                        r = get_strv(cfg, "Cmd", &c.cmd, reterr);
                if (r >= 0)
                        r = get_strv(cfg, "Env", &c.env, reterr);
                if (r >= 0)
                        r = get_opt_string(cfg, "WorkingDir", 4096, &c.working_dir, reterr);
                if (r >= 0)
                        r = get_opt_string(cfg, "User", 1024, &c.user, reterr);
                if (r >= 0)
                        r = get_opt_string(cfg, "StopSignal", 32, &c.stop_signal, reterr);
                if (r >= 0)
                        r = get_key_set(cfg, "ExposedPorts", 32, &c.exposed_ports, reterr);
                if (r >= 0)
                        r = get_key_set(cfg, "Volumes", 4096, &c.volumes, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "image config");
        }

        rootfs = json_object_get(root, "rootfs");
        if (!json_is_object(rootfs))
                return ck_error_set(reterr, -EBADMSG, "image config: \"rootfs\" missing or not an object");
        type = json_cstr(json_object_get(rootfs, "type"), 32);
        if (!type || strcmp(type, "layers") != 0)
                return ck_error_set(reterr, -EBADMSG, "image config: rootfs.type must be \"layers\"");
        diff_ids = json_object_get(rootfs, "diff_ids");
        if (!json_is_array(diff_ids))
                return ck_error_set(reterr, -EBADMSG,
                                    "image config: rootfs.diff_ids missing or not an array");
        if (json_array_size(diff_ids) > IMAGE_LAYERS_MAX)
                return ck_error_set(reterr, -EMSGSIZE, "image config: more than %d diff_ids",
                                    IMAGE_LAYERS_MAX);
        c.diff_ids = calloc(json_array_size(diff_ids) + 1, sizeof(char *));
        if (!c.diff_ids)
                return -ENOMEM;
        json_array_foreach(diff_ids, i, e)
        {
                const char *s = json_cstr(e, 7 + 128);

                if (!s || !image_digest_valid(s))
                        return ck_error_set(reterr, -EBADMSG,
                                            "image config: rootfs.diff_ids[%zu] is not a valid digest", i);
                c.diff_ids[i] = strdup(s);
                if (!c.diff_ids[i])
                        return -ENOMEM;
                c.n_diff_ids++;
        }
        *ret = c;
        c = (struct image_config){0};
        return 0;
}
