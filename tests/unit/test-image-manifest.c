/* Manifest, index and config parsing: inline fixtures of every supported type, platform
 * selection (buildx-style indexes with attestations, first match, variants, nested indexes) and
 * malformed documents that must be refused with the right code. */
#include "cmocka-wrap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"
#define H3 "3333333333333333333333333333333333333333333333333333333333333333"
#define H4 "4444444444444444444444444444444444444444444444444444444444444444"
#define D1 "sha256:" H1
#define D2 "sha256:" H2
#define D3 "sha256:" H3
#define D4 "sha256:" H4

#define OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_INDEX    "application/vnd.oci.image.index.v1+json"
#define OCI_CONFIG   "application/vnd.oci.image.config.v1+json"
#define DOCKER_MAN   "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_LIST  "application/vnd.docker.distribution.manifest.list.v2+json"
#define DOCKER_CFG   "application/vnd.docker.container.image.v1+json"

static int parse_manifest(const char *json, struct image_manifest *m, struct ck_error **err)
{
        return image_manifest_parse((const uint8_t *)json, strlen(json), m, err);
}

static int select_index(const char *json, struct image_descriptor *d, struct ck_error **err)
{
        return image_index_select((const uint8_t *)json, strlen(json), d, err);
}

static int parse_config(const char *json, struct image_config *c, struct ck_error **err)
{
        return image_config_parse((const uint8_t *)json, strlen(json), c, err);
}

static void test_oci_manifest(void **state)
{
        const char *j =
                "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MANIFEST "\","
                "\"config\":{\"mediaType\":\"" OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":123},"
                "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
                "\"digest\":\"" D2 "\",\"size\":1000},"
                "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"" D3 "\","
                "\"size\":2000,\"annotations\":{\"a\":\"b\"}},"
                "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"" D4 "\","
                "\"size\":0}],\"annotations\":{\"org.opencontainers.image.created\":\"x\"}}";
        struct image_manifest m = {0};
        _cleanup_error_ struct ck_error *err = NULL;

        assert_int_equal(parse_manifest(j, &m, &err), 0);
        assert_int_equal(m.kind, IMAGE_MEDIA_OCI_MANIFEST);
        assert_string_equal(m.config.digest, D1);
        assert_int_equal(m.config.size, 123);
        assert_int_equal(m.n_layers, 3);
        assert_string_equal(m.layers[0].digest, D2);
        assert_int_equal(image_media_kind_from_string(m.layers[0].media_type), IMAGE_MEDIA_LAYER_GZIP);
        assert_int_equal(image_media_kind_from_string(m.layers[1].media_type), IMAGE_MEDIA_LAYER_ZSTD);
        assert_int_equal(image_media_kind_from_string(m.layers[2].media_type), IMAGE_MEDIA_LAYER_TAR);
        assert_int_equal(m.layers[1].size, 2000);
        image_manifest_clear(&m);
        image_manifest_clear(&m); /* safe to repeat */
}

static void test_docker_manifest(void **state)
{
        const char *j = "{\"schemaVersion\":2,\"mediaType\":\"" DOCKER_MAN "\","
                        "\"config\":{\"mediaType\":\"" DOCKER_CFG "\",\"digest\":\"" D1 "\",\"size\":7},"
                        "\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\","
                        "\"digest\":\"" D2 "\",\"size\":10}]}";
        struct image_manifest m = {0};

        assert_int_equal(parse_manifest(j, &m, NULL), 0);
        assert_int_equal(m.kind, IMAGE_MEDIA_DOCKER_MANIFEST);
        assert_int_equal(m.n_layers, 1);
        image_manifest_clear(&m);

        /* An OCI manifest may omit mediaType; a sha512 layer digest is fine. */
        j = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_CONFIG "\",\"digest\":\"" D1
            "\",\"size\":7},"
            "\"layers\":[{\"mediaType\":\"application/"
            "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha512:" H1 H2 "\",\"size\":10}]}";
        assert_int_equal(parse_manifest(j, &m, NULL), 0);
        assert_int_equal(m.kind, IMAGE_MEDIA_OCI_MANIFEST);
        image_manifest_clear(&m);

        /* No layers at all is a (useless but) valid image. */
        j = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_CONFIG "\",\"digest\":\"" D1
            "\",\"size\":7},\"layers\":[]}";
        assert_int_equal(parse_manifest(j, &m, NULL), 0);
        assert_int_equal(m.n_layers, 0);
        assert_null(m.layers);
        image_manifest_clear(&m);
}

struct bad_doc {
        const char *json;
        int code;
        const char *needle;
};

#define CFG_OK "\"config\":{\"mediaType\":\"" OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":7}"
#define LAYER_OK                                                                                            \
        "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D2 "\",\"size\":10}"

static const struct bad_doc bad_manifests[] = {
        {"{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}", -EPROTONOSUPPORT, "schema 1"},
        {"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}",
         -EPROTONOSUPPORT, "schema 1"},
        {"{\"schemaVersion\":3," CFG_OK ",\"layers\":[]}", -EBADMSG, "schemaVersion"},
        {"{\"schemaVersion\":\"2\"," CFG_OK ",\"layers\":[]}", -EBADMSG, "schemaVersion"},
        {"{\"schemaVersion\":2,\"mediaType\":\"" OCI_INDEX "\",\"manifests\":[]}", -EBADMSG, "index"},
        {"{\"schemaVersion\":2,\"manifests\":[]}", -EBADMSG, "index"},
        {"{\"schemaVersion\":2,\"mediaType\":\"text/plain\"," CFG_OK ",\"layers\":[]}", -EPROTONOSUPPORT,
         "text/plain"},
        {"{\"schemaVersion\":2,\"layers\":[]}", -EBADMSG, "config"},
        {"{\"schemaVersion\":2," CFG_OK "}", -EBADMSG, "layers"},
        {"{\"schemaVersion\":2," CFG_OK ",\"layers\":{}}", -EBADMSG, "layers"},
        {"{\"schemaVersion\":2," CFG_OK ",\"layers\":[" LAYER_OK "]} x", -EBADMSG, "malformed"},
        {"{\"schemaVersion\":2," CFG_OK ",\"layers\":[" LAYER_OK "]", -EBADMSG, "malformed"},
        {"[1,2]", -EBADMSG, "object"},
        {"{\"schemaVersion\":2,\"schemaVersion\":2," CFG_OK ",\"layers\":[]}", -EBADMSG, "malformed"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.cncf.helm.config.v1+json\","
         "\"digest\":\"" D1 "\",\"size\":7},\"layers\":[]}",
         -EPROTONOSUPPORT, "not a container image config"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_CONFIG "\",\"digest\":\"sha256:" H1
         "0\",\"size\":7},\"layers\":[]}",
         -EBADMSG, "digest"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_CONFIG
         "\",\"digest\":\"sha256:AAAA111111111111111111111111111111111111111111111111111111111111\","
         "\"size\":7},"
         "\"layers\":[]}",
         -EBADMSG, "digest"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_CONFIG "\",\"digest\":\"md5:" H1
         "\",\"size\":7},\"layers\":[]}",
         -EBADMSG, "digest"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_CONFIG "\",\"digest\":\"" D1
         "\",\"size\":-1},\"layers\":[]}",
         -EBADMSG, "size"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_CONFIG "\",\"digest\":\"" D1
         "\",\"size\":9000000000},\"layers\":[]}",
         -EMSGSIZE, "limit"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_CONFIG "\",\"digest\":\"" D1
         "\"},\"layers\":[]}",
         -EBADMSG, "size"},
        {"{\"schemaVersion\":2," CFG_OK ",\"layers\":[{\"mediaType\":\"application/x-foo\",\"digest\":\"" D2
         "\",\"size\":1}]}",
         -EPROTONOSUPPORT, "layer 1"},
        {"{\"schemaVersion\":2," CFG_OK ",\"layers\":[" LAYER_OK ",{\"digest\":\"" D2 "\",\"size\":1}]}",
         -EBADMSG, "layer 2"},
        {"{\"schemaVersion\":2," CFG_OK ",\"layers\":[" LAYER_OK ",7]}", -EBADMSG, "layer 2"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_CONFIG "\\u0000x\",\"digest\":\"" D1
         "\",\"size\":7},\"layers\":[]}",
         -EBADMSG, "mediaType"},
};

static void test_bad_manifests(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(bad_manifests); i++) {
                struct image_manifest m = {0};
                _cleanup_error_ struct ck_error *err = NULL;
                int r = parse_manifest(bad_manifests[i].json, &m, &err);

                if (r != bad_manifests[i].code)
                        fail_msg("case %zu: got %d (%s), want %d", i, r, ck_error_message(err, r),
                                 bad_manifests[i].code);
                assert_non_null(err);
                if (!strstr(err->msg, bad_manifests[i].needle))
                        fail_msg("case %zu: \"%s\" does not mention \"%s\"", i, err->msg,
                                 bad_manifests[i].needle);
                assert_null(m.layers);
                assert_null(m.config.digest);
        }
}

static void test_limits(void **state)
{
        _cleanup_free_ char *big = NULL;
        size_t off;
        struct image_manifest m = {0};
        _cleanup_error_ struct ck_error *err = NULL;

        /* 257 layers. */
        big = malloc(200 * 300);
        assert_non_null(big);
        off = (size_t)snprintf(big, 200 * 300, "{\"schemaVersion\":2," CFG_OK ",\"layers\":[");
        for (int i = 0; i < IMAGE_LAYERS_MAX + 1; i++)
                off += (size_t)snprintf(big + off, 200 * 300 - off, "%s" LAYER_OK, i ? "," : "");
        snprintf(big + off, 200 * 300 - off, "]}");
        assert_int_equal(parse_manifest(big, &m, &err), -EMSGSIZE);
        assert_non_null(strstr(err->msg, "257 layers"));
        ck_error_free(TAKE_PTR(err));

        /* Exactly the limit is fine. */
        off = (size_t)snprintf(big, 200 * 300, "{\"schemaVersion\":2," CFG_OK ",\"layers\":[");
        for (int i = 0; i < IMAGE_LAYERS_MAX; i++)
                off += (size_t)snprintf(big + off, 200 * 300 - off, "%s" LAYER_OK, i ? "," : "");
        snprintf(big + off, 200 * 300 - off, "]}");
        assert_int_equal(parse_manifest(big, &m, NULL), 0);
        assert_int_equal(m.n_layers, IMAGE_LAYERS_MAX);
        image_manifest_clear(&m);

        /* Documents over the size cap are refused before parsing. */
        free(big);
        big = calloc(1, IMAGE_MANIFEST_MAX + 2);
        assert_non_null(big);
        memset(big, ' ', IMAGE_MANIFEST_MAX + 1);
        assert_int_equal(image_manifest_parse((uint8_t *)big, IMAGE_MANIFEST_MAX + 1, &m, NULL), -E2BIG);
        {
                struct image_descriptor d = {0};

                assert_int_equal(image_index_select((uint8_t *)big, IMAGE_MANIFEST_MAX + 1, &d, NULL),
                                 -E2BIG);
        }
}

/* An index like `docker buildx build --platform linux/arm64,linux/amd64 --provenance` makes. */
static const char buildx_index[] =
        "{\"schemaVersion\":2,\"mediaType\":\"" OCI_INDEX "\",\"manifests\":["
        "{\"mediaType\":\"" OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":100,"
        "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}},"
        "{\"mediaType\":\"" OCI_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":200,"
        "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
        "{\"mediaType\":\"" OCI_MANIFEST "\",\"digest\":\"" D3 "\",\"size\":300,"
        "\"annotations\":{\"vnd.docker.reference.digest\":\"" D2 "\","
        "\"vnd.docker.reference.type\":\"attestation-manifest\"},"
        "\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"}}]}";

static void test_index_buildx(void **state)
{
        struct image_descriptor d = {0};

        assert_int_equal(select_index(buildx_index, &d, NULL), 0);
        assert_string_equal(d.digest, D2);
        assert_int_equal(d.size, 200);
        assert_int_equal(image_media_kind_from_string(d.media_type), IMAGE_MEDIA_OCI_MANIFEST);
        image_descriptor_clear(&d);
        image_descriptor_clear(&d);
}

struct index_case {
        const char *entries; /* the manifests array's contents */
        int code;
        const char *digest_or_needle;
};

#define E(mt, dg, plat) "{\"mediaType\":\"" mt "\",\"digest\":\"" dg "\",\"size\":10" plat "}"
#define P(os, arch)     ",\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\"}"
#define PV(os, arch, v)                                                                                     \
        ",\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\",\"variant\":\"" v "\"}"

static const struct index_case index_cases[] = {
        /* First match wins. */
        {E(OCI_MANIFEST, D1, P("linux", "amd64")) "," E(OCI_MANIFEST, D2, P("linux", "amd64")), 0, D1},
        /* v1 and no variant are the same level: still the first. */
        {E(OCI_MANIFEST, D1, PV("linux", "amd64", "v1")) "," E(OCI_MANIFEST, D2, P("linux", "amd64")), 0,
         D1},
        /* Variants this CPU cannot have are skipped. */
        {E(OCI_MANIFEST, D1, PV("linux", "amd64", "v9")) "," E(OCI_MANIFEST, D2, P("linux", "amd64")), 0,
         D2},
        /* Other OSes and architectures are skipped, and named in the error when nothing fits. */
        {E(OCI_MANIFEST, D1, P("windows", "amd64")) "," E(OCI_MANIFEST, D2, P("linux", "amd64")), 0, D2},
        {E(OCI_MANIFEST, D1, P("linux", "arm64")) "," E(OCI_MANIFEST, D2, PV("linux", "arm", "v7")), -ENOENT,
         "linux/arm64, linux/arm/v7"},
        {"", -ENOENT, "no linux/amd64"},
        /* Attestations: by platform unknown/unknown alone they do not match anyway; by annotation
         * even when the platform would. */
        {"{\"mediaType\":\"" OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"annotations\":"
         "{\"vnd.docker.reference.type\":\"attestation-manifest\"}" P("linux", "amd64") "}," E(
                 OCI_MANIFEST, D2, P("linux", "amd64")),
         0, D2},
        /* Unknown media types (signatures, artifacts) are ignored, even malformed ones. */
        {"{\"mediaType\":\"application/vnd.example.sig\",\"digest\":\"nope\"}," E(DOCKER_MAN, D2,
                                                                                  P("linux", "amd64")),
         0, D2},
        /* A nested index without a platform is the last resort... */
        {E(OCI_INDEX, D3, "") "," E(OCI_MANIFEST, D1, P("linux", "arm64")), 0, D3},
        /* ...and a direct match beats it even when it comes first. */
        {E(OCI_INDEX, D3, "") "," E(OCI_MANIFEST, D1, P("linux", "amd64")), 0, D1},
        /* A matching entry with a bad digest is an error, not a skip. */
        {E(OCI_MANIFEST, "sha256:xyz", P("linux", "amd64")), -EBADMSG, "digest"},
        {E(OCI_MANIFEST, D1, P("linux", "amd64")) ","
                                                  "7",
         -EBADMSG, "entry 1"},
        /* Manifest sizes are bounded like manifests. */
        {"{\"mediaType\":\"" OCI_MANIFEST "\",\"digest\":\"" D1
         "\",\"size\":99999999" P("linux", "amd64") "}",
         -EMSGSIZE, "limit"},
};

static void test_index_cases(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(index_cases); i++) {
                _cleanup_free_ char *j = NULL;
                struct image_descriptor d = {0};
                _cleanup_error_ struct ck_error *err = NULL;
                int r;

                assert_true(asprintf(&j, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[%s]}",
                                     i % 2 ? DOCKER_LIST : OCI_INDEX, index_cases[i].entries) > 0);
                r = select_index(j, &d, &err);
                if (r != index_cases[i].code)
                        fail_msg("case %zu: got %d (%s), want %d", i, r, ck_error_message(err, r),
                                 index_cases[i].code);
                if (r == 0) {
                        assert_string_equal(d.digest, index_cases[i].digest_or_needle);
                        image_descriptor_clear(&d);
                } else if (!strstr(err->msg, index_cases[i].digest_or_needle)) {
                        fail_msg("case %zu: \"%s\" does not mention \"%s\"", i, err->msg,
                                 index_cases[i].digest_or_needle);
                }
        }
}

static void test_index_bad(void **state)
{
        static const struct bad_doc bads[] = {
                {"{\"schemaVersion\":2,\"mediaType\":\"" OCI_MANIFEST "\",\"manifests\":[]}", -EBADMSG,
                 "not an index"},
                {"{\"schemaVersion\":2}", -EBADMSG, "manifests"},
                {"{\"schemaVersion\":1,\"manifests\":[]}", -EPROTONOSUPPORT, "schema 1"},
                {"{\"schemaVersion\":2,\"manifests\":[]}garbage", -EBADMSG, "malformed"},
                {"\"x\"", -EBADMSG, "malformed"},
        };

        for (size_t i = 0; i < ELEMENTSOF(bads); i++) {
                struct image_descriptor d = {0};
                _cleanup_error_ struct ck_error *err = NULL;
                int r = select_index(bads[i].json, &d, &err);

                if (r != bads[i].code || !strstr(err->msg, bads[i].needle))
                        fail_msg("case %zu: got %d (%s)", i, r, ck_error_message(err, r));
        }

        /* Over the entry cap. */
        {
                _cleanup_free_ char *j = malloc(2000 * 4);
                size_t off = (size_t)snprintf(j, 8000, "{\"schemaVersion\":2,\"manifests\":[");
                struct image_descriptor d = {0};

                for (int i = 0; i < 1025; i++)
                        off += (size_t)snprintf(j + off, 8000 - off, "%s{}", i ? "," : "");
                snprintf(j + off, 8000 - off, "]}");
                assert_int_equal(select_index(j, &d, NULL), -EMSGSIZE);
        }
}

static void test_config(void **state)
{
        const char *j = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"2024-01-01T00:00:00Z\","
                        "\"config\":{\"User\":\"app:app\",\"Env\":[\"PATH=/usr/bin\",\"A=b=c\"],"
                        "\"Entrypoint\":[\"/bin/app\",\"--serve\"],\"Cmd\":null,\"WorkingDir\":\"/srv\","
                        "\"ExposedPorts\":{\"8080/tcp\":{},\"53/udp\":{}},\"StopSignal\":\"SIGINT\","
                        "\"Volumes\":{\"/data\":{}},"
                        "\"Labels\":{\"x\":\"y\"}},"
                        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",\"" D2 "\"]},"
                        "\"history\":[{\"created_by\":\"x\"}]}";
        struct image_config c = {0};
        _cleanup_error_ struct ck_error *err = NULL;

        assert_int_equal(parse_config(j, &c, &err), 0);
        assert_string_equal(c.os, "linux");
        assert_string_equal(c.architecture, "amd64");
        assert_string_equal(c.user, "app:app");
        assert_string_equal(c.working_dir, "/srv");
        assert_string_equal(c.stop_signal, "SIGINT");
        assert_string_equal(c.entrypoint[0], "/bin/app");
        assert_string_equal(c.entrypoint[1], "--serve");
        assert_null(c.entrypoint[2]);
        assert_null(c.cmd);
        assert_string_equal(c.env[1], "A=b=c");
        assert_null(c.env[2]);
        assert_string_equal(c.exposed_ports[0], "8080/tcp");
        assert_string_equal(c.exposed_ports[1], "53/udp");
        assert_null(c.exposed_ports[2]);
        assert_string_equal(c.volumes[0], "/data");
        assert_null(c.volumes[1]);
        assert_int_equal(c.n_diff_ids, 2);
        assert_string_equal(c.diff_ids[1], D2);
        assert_null(c.diff_ids[2]);
        image_config_clear(&c);

        /* Minimal: no "config" at all, no layers. */
        j = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
        assert_int_equal(parse_config(j, &c, NULL), 0);
        assert_null(c.entrypoint);
        assert_null(c.user);
        assert_null(c.volumes);
        assert_int_equal(c.n_diff_ids, 0);
        image_config_clear(&c);
}

static void test_config_bad(void **state)
{
        static const struct bad_doc bads[] = {
                {"{}", -EBADMSG, "rootfs"},
                {"{\"rootfs\":{\"type\":\"layers\"}}", -EBADMSG, "diff_ids"},
                {"{\"rootfs\":{\"type\":\"snapshots\",\"diff_ids\":[]}}", -EBADMSG, "layers"},
                {"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:1\"]}}", -EBADMSG, "diff_ids[0]"},
                {"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[1]}}", -EBADMSG, "diff_ids[0]"},
                {"{\"config\":{\"Cmd\":\"/bin/sh\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                 -EBADMSG, "Cmd"},
                {"{\"config\":{\"Env\":[\"A=\\u0000b\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                 -EBADMSG, "Env"},
                {"{\"config\":{\"Env\":[1]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", -EBADMSG,
                 "Env"},
                {"{\"config\":{\"User\":7},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", -EBADMSG,
                 "User"},
                {"{\"config\":{\"ExposedPorts\":[\"80/"
                 "tcp\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                 -EBADMSG, "ExposedPorts"},
                {"{\"config\":[],\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", -EBADMSG, "config"},
                {"{\"os\":\"li\\u0000nux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", -EBADMSG,
                 "os"},
                {"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}} {}", -EBADMSG, "malformed"},
        };

        for (size_t i = 0; i < ELEMENTSOF(bads); i++) {
                struct image_config c = {0};
                _cleanup_error_ struct ck_error *err = NULL;
                int r = parse_config(bads[i].json, &c, &err);

                if (r != bads[i].code || !strstr(err->msg, bads[i].needle))
                        fail_msg("case %zu: got %d (%s)", i, r, ck_error_message(err, r));
                assert_null(c.diff_ids);
                assert_null(c.env);
        }
}

static void test_media_kinds(void **state)
{
        for (int k = IMAGE_MEDIA_UNKNOWN + 1; k < _IMAGE_MEDIA_KIND_MAX; k++)
                assert_int_equal(image_media_kind_from_string(image_media_kind_to_string(k)), k);
        assert_int_equal(image_media_kind_from_string(DOCKER_LIST "; charset=utf-8"),
                         IMAGE_MEDIA_DOCKER_LIST);
        assert_int_equal(image_media_kind_from_string("application/vnd.docker.image.rootfs.diff.tar.gzip"),
                         IMAGE_MEDIA_LAYER_GZIP);
        assert_int_equal(image_media_kind_from_string(OCI_MANIFEST "x"), IMAGE_MEDIA_UNKNOWN);
        assert_int_equal(image_media_kind_from_string("application/vnd.oci.image.manifest.v1"),
                         IMAGE_MEDIA_UNKNOWN);
        assert_int_equal(image_media_kind_from_string(""), IMAGE_MEDIA_UNKNOWN);
        assert_int_equal(image_media_kind_from_string(NULL), IMAGE_MEDIA_UNKNOWN);
        assert_null(image_media_kind_to_string(_IMAGE_MEDIA_KIND_MAX));
}

static void test_digest_valid(void **state)
{
        assert_true(image_digest_valid(D1));
        assert_true(image_digest_valid("sha512:" H1 H2));
        assert_false(image_digest_valid("sha512:" H1));
        assert_false(image_digest_valid("sha256:" H1 "1"));
        assert_false(image_digest_valid("sha256:" H1 H2));
        assert_false(image_digest_valid("SHA256:" H1));
        assert_false(image_digest_valid(
                "sha256:ABCDEF1111111111111111111111111111111111111111111111111111111111"));
        assert_false(image_digest_valid(
                "sha256:g111111111111111111111111111111111111111111111111111111111111111"));
        assert_false(image_digest_valid("sha384:" H1));
        assert_false(image_digest_valid(H1));
        assert_false(image_digest_valid(""));
        assert_false(image_digest_valid(NULL));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_oci_manifest),  cmocka_unit_test(test_docker_manifest),
                cmocka_unit_test(test_bad_manifests), cmocka_unit_test(test_limits),
                cmocka_unit_test(test_index_buildx),  cmocka_unit_test(test_index_cases),
                cmocka_unit_test(test_index_bad),     cmocka_unit_test(test_config),
                cmocka_unit_test(test_config_bad),    cmocka_unit_test(test_media_kinds),
                cmocka_unit_test(test_digest_valid),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
