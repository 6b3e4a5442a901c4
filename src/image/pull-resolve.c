/* From a reference to the linux/amd64 image manifest (pull-resolve.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "json.h"
#include "pull-resolve.h"
#include "registry.h"

/* What a manifest body is: its own mediaType when it has one (it must then agree with the
 * Content-Type, when that names a manifest type), else the Content-Type, else its shape. */
static int manifest_kind(const char *content_type, const uint8_t *buf, size_t len,
                         enum image_media_kind *ret, struct ck_error **reterr)
{
        _cleanup_json_ json_t *root = NULL;
        enum image_media_kind ct = image_media_kind_from_string(content_type), body = IMAGE_MEDIA_UNKNOWN;
        json_t *mt, *sv;
        int r;

        r = ck_json_loadb(buf, len, IMAGE_MANIFEST_MAX, &root, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "manifest");
        if (!json_is_object(root))
                return ck_error_set(reterr, -EBADMSG, "manifest is not a JSON object");
        sv = json_object_get(root, "schemaVersion");
        if (json_is_integer(sv) && json_integer_value(sv) == 1)
                return ck_error_set(
                        reterr, -EPROTONOSUPPORT,
                        "schema 1 manifests are not supported; push the image again with a current client");
        mt = json_object_get(root, "mediaType");
        if (json_is_string(mt)) {
                body = image_media_kind_from_string(json_string_value(mt));
                if (body == IMAGE_MEDIA_UNKNOWN)
                        return ck_error_set(reterr, -EPROTONOSUPPORT,
                                            "unsupported manifest media type \"%.100s\"",
                                            json_string_value(mt));
        }
        if (ct != IMAGE_MEDIA_OCI_MANIFEST && ct != IMAGE_MEDIA_OCI_INDEX &&
            ct != IMAGE_MEDIA_DOCKER_MANIFEST && ct != IMAGE_MEDIA_DOCKER_LIST)
                ct = IMAGE_MEDIA_UNKNOWN;
        if (body != IMAGE_MEDIA_UNKNOWN && ct != IMAGE_MEDIA_UNKNOWN && body != ct)
                return ck_error_set(reterr, -EBADMSG,
                                    "registry sent Content-Type %.100s for a manifest whose mediaType is %s",
                                    content_type, image_media_kind_to_string(body));
        if (body == IMAGE_MEDIA_UNKNOWN)
                body = ct;
        if (body == IMAGE_MEDIA_UNKNOWN)
                body = json_object_get(root, "manifests") ? IMAGE_MEDIA_OCI_INDEX : IMAGE_MEDIA_OCI_MANIFEST;
        *ret = body;
        return 0;
}

int image_resolve(struct registry_client *c, const char *repo, const char *reference,
                  image_resolve_first_fn first, void *userdata, struct image_manifest *ret,
                  char **ret_digest, struct ck_error **reterr)
{
        _cleanup_free_ char *top_digest = NULL, *want = NULL;
        uint64_t want_size = 0;

        for (unsigned depth = 0;; depth++) {
                _cleanup_free_ uint8_t *body = NULL;
                _cleanup_free_ char *media_type = NULL, *digest = NULL;
                enum image_media_kind kind = IMAGE_MEDIA_UNKNOWN;
                size_t len = 0;
                int r;

                r = registry_get_manifest(c, repo, want ? want : reference, &body, &len, &media_type,
                                          &digest, reterr);
                if (r < 0)
                        return r;
                if (want && len != want_size)
                        return ck_error_set(reterr, -EBADMSG,
                                            "manifest %s is %zu bytes, the index says %" PRIu64, want, len,
                                            want_size);
                if (!top_digest) {
                        top_digest = strdup(digest);
                        if (!top_digest)
                                return -ENOMEM;
                        r = first ? first(userdata, top_digest, reterr) : 0;
                        if (r < 0)
                                return r;
                        if (r > 0) {
                                *ret_digest = TAKE_PTR(top_digest);
                                return 1;
                        }
                }
                r = manifest_kind(media_type, body, len, &kind, reterr);
                if (r < 0)
                        return r;

                if (kind == IMAGE_MEDIA_OCI_INDEX || kind == IMAGE_MEDIA_DOCKER_LIST) {
                        struct image_descriptor d = {0};

                        if (depth >= IMAGE_INDEX_DEPTH_MAX)
                                return ck_error_set(reterr, -ELOOP, "indexes nested deeper than %d levels",
                                                    IMAGE_INDEX_DEPTH_MAX);
                        r = image_index_select(body, len, &d, reterr);
                        if (r < 0)
                                return r;
                        free(want);
                        want = TAKE_PTR(d.digest);
                        want_size = d.size;
                        image_descriptor_clear(&d);
                        continue;
                }
                r = image_manifest_parse(body, len, ret, reterr);
                if (r < 0)
                        return r;
                *ret_digest = TAKE_PTR(top_digest);
                return 0;
        }
}
