/* Loading an image from an OCI image layout directory (see load.h).
 *
 * The layout is input like any registry: index.json and manifests are size-capped and parsed
 * by the same parsers as pulled ones, blobs are opened inside the layout with
 * openat2(RESOLVE_IN_ROOT) and copied through the store's verifying blob writer. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "json.h"
#include "load.h"
#include "store-internal.h"

#define LAYOUT_INDEX_MAX (1u << 20)
#define COPY_BUF         (1u << 20)

/* Copies layout blob `digest` of `size` bytes into the store (verified on commit). */
static int copy_blob(struct image_store *s, int layout_fd, const char *digest, uint64_t size,
                     struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int fd = -1;
        struct image_blob_writer *w = NULL;
        const char *algo, *hex;
        size_t algo_len;
        char rel[IMAGE_DIGEST_MAX + 8];
        int r;

        if (image_digest_split(digest, &algo, &algo_len, &hex) < 0)
                return ck_error_set(reterr, -EINVAL, "invalid digest '%.80s'", digest);
        r = image_blob_begin(s, digest, size, &w, reterr);
        if (r != 0)
                return r < 0 ? r : 0;
        snprintf(rel, sizeof(rel), "blobs/%.*s/%s", (int)algo_len, algo, hex);
        fd = ck_open_in_root(layout_fd, rel, O_RDONLY, 0);
        buf = malloc(COPY_BUF);
        if (fd < 0 || !buf) {
                image_blob_abort(w);
                return fd < 0 ? ck_error_errno(reterr, fd, "layout blob %s", digest)
                              : ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        for (;;) {
                ssize_t n = read(fd, buf, COPY_BUF);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = ck_error_errno(reterr, -errno, "cannot read layout blob %s", digest);
                        image_blob_abort(w);
                        return r;
                }
                if (n == 0)
                        break;
                r = image_blob_write(w, buf, (size_t)n, reterr);
                if (r < 0) {
                        image_blob_abort(w);
                        return r;
                }
        }
        return image_blob_commit(w, reterr);
}

/* The manifest descriptor of index.json tagged `tag` (or the only one). */
static int index_pick(const uint8_t *buf, size_t len, const char *tag, struct image_descriptor *ret,
                      struct ck_error **reterr)
{
        _cleanup_json_ json_t *root = NULL;
        json_t *manifests, *pick = NULL, *d;
        const char *mt, *digest;
        uint64_t size;
        size_t i;
        int r;

        r = ck_json_loadb(buf, len, LAYOUT_INDEX_MAX, &root, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "index.json");
        r = ck_json_get_array(root, "manifests", &manifests, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "index.json");
        json_array_foreach(manifests, i, d)
        {
                json_t *ann = json_object_get(d, "annotations");
                json_t *ref = ann ? json_object_get(ann, "org.opencontainers.image.ref.name") : NULL;
                if (!tag ? json_array_size(manifests) == 1
                         : (json_is_string(ref) && strcmp(json_string_value(ref), tag) == 0)) {
                        pick = d;
                        break;
                }
        }
        if (!pick)
                return ck_error_set(reterr, -ENOENT, "index.json has no manifest %s%s", tag ? "tagged " : "",
                                    tag ? tag : "(several found: name a tag)");
        if (ck_json_get_string(pick, "mediaType", &mt, reterr) < 0 ||
            ck_json_get_string(pick, "digest", &digest, reterr) < 0 ||
            ck_json_get_uint(pick, "size", IMAGE_MANIFEST_MAX, &size, reterr) < 0)
                return ck_error_prefix(reterr, -EINVAL, "index.json");
        if (!image_digest_valid(digest))
                return ck_error_set(reterr, -EINVAL, "index.json: invalid digest");
        ret->media_type = strdup(mt);
        ret->digest = strdup(digest);
        ret->size = size;
        if (!ret->media_type || !ret->digest) {
                image_descriptor_clear(ret);
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        return 0;
}

int image_load_oci_layout(struct image_store *s, const char *layout_dir, const char *tag, const char *name,
                          struct image_record *ret, struct ck_error **reterr)
{
        _cleanup_close_ int lfd = -1;
        _cleanup_free_ uint8_t *index = NULL, *mbuf = NULL, *cbuf = NULL;
        struct image_descriptor md = {0};
        struct image_manifest m = {0};
        struct image_config cfg = {0};
        struct image_record rec = {0};
        size_t ilen = 0, mlen = 0, clen = 0;
        uint64_t total = 0;
        int r;

        lfd = open(layout_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (lfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open layout %s", layout_dir);
        {
                _cleanup_close_ int ifd = ck_open_in_root(lfd, "index.json", O_RDONLY, 0);
                if (ifd < 0)
                        return ck_error_errno(reterr, ifd, "%s/index.json", layout_dir);
                r = ck_read_fd(ifd, LAYOUT_INDEX_MAX, &index, &ilen);
                if (r < 0)
                        return ck_error_errno(reterr, r, "cannot read %s/index.json", layout_dir);
        }
        r = index_pick(index, ilen, tag, &md, reterr);
        if (r < 0)
                return r;
        if (image_media_kind_from_string(md.media_type) != IMAGE_MEDIA_OCI_MANIFEST &&
            image_media_kind_from_string(md.media_type) != IMAGE_MEDIA_DOCKER_MANIFEST) {
                r = ck_error_set(reterr, -EOPNOTSUPP, "layout manifest has media type %.100s",
                                 md.media_type);
                goto out;
        }
        r = copy_blob(s, lfd, md.digest, md.size, reterr);
        if (r >= 0)
                r = image_store_read_blob(s, md.digest, IMAGE_MANIFEST_MAX, &mbuf, &mlen, reterr);
        if (r >= 0)
                r = image_manifest_parse(mbuf, mlen, &m, reterr);
        if (r >= 0)
                r = copy_blob(s, lfd, m.config.digest, m.config.size, reterr);
        if (r >= 0)
                r = image_store_read_blob(s, m.config.digest, IMAGE_CONFIG_MAX, &cbuf, &clen, reterr);
        if (r >= 0)
                r = image_config_parse(cbuf, clen, &cfg, reterr);
        if (r < 0)
                goto out;
        if (cfg.n_diff_ids != m.n_layers) {
                r = ck_error_set(reterr, -EBADMSG, "config lists %zu diff_ids for %zu layers",
                                 cfg.n_diff_ids, m.n_layers);
                goto out;
        }
        for (size_t i = 0; i < m.n_layers; i++) {
                r = copy_blob(s, lfd, m.layers[i].digest, m.layers[i].size, reterr);
                if (r >= 0)
                        r = image_store_unpack_layer(s, &m.layers[i], cfg.diff_ids[i], reterr);
                if (r < 0) {
                        r = ck_error_prefix(reterr, r, "layer %zu/%zu %s", i + 1, m.n_layers,
                                            m.layers[i].digest);
                        goto out;
                }
                total += m.layers[i].size;
        }

        rec.name = (char *)name;
        rec.manifest_digest = md.digest;
        rec.id = m.config.digest;
        rec.n_layers = m.n_layers;
        rec.layers = calloc(m.n_layers ? m.n_layers : 1, sizeof(char *));
        rec.diff_ids = cfg.diff_ids;
        rec.size = total + m.config.size;
        rec.created = (int64_t)time(NULL);
        if (!rec.layers) {
                r = ck_error_set(reterr, -ENOMEM, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < m.n_layers; i++)
                rec.layers[i] = m.layers[i].digest;
        r = image_store_put(s, &rec, reterr);
        free(rec.layers);
        if (r >= 0 && ret)
                r = image_store_get(s, name, ret, reterr);
out:
        image_config_clear(&cfg);
        image_manifest_clear(&m);
        image_descriptor_clear(&md);
        return r;
}
