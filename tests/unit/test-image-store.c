/* Unit tests for the image store: blob verification (digest, size), concurrent writers of one
 * blob, crash leftovers, image records and garbage collection of unshared blobs and layers.
 * The tests run once with directory layers and once with EROFS layers (layer-format). */
#include "cmocka-wrap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs.h"
#include "image-tar-helper.h"
#include "store-internal.h"
#include "store.h"

static char tmpdir[64];
static int format = IMAGE_LAYER_DIR; /* the layer format of the group being run */
static int erofs_ok = -1;

static int setup(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-store-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

static struct image_store *store_open(void)
{
        struct image_store *s = NULL;
        struct image_limits lim;
        _cleanup_error_ struct ck_error *e = NULL;

        if (format == IMAGE_LAYER_EROFS && erofs_ok != 0)
                skip();
        image_limits_default(&lim);
        lim.layer_format = format;
        assert_int_equal(image_store_open(tmpdir, &lim, &s, &e), 0);
        return s;
}

/* Reads rel from a stored layer: a directory, or an EROFS image mounted for the occasion. */
static int layer_read(const char *layer, const char *rel, uint8_t **ret, size_t *ret_len)
{
        _cleanup_free_ char *mnt = NULL, *path = NULL;
        struct stat st;
        int r;

        assert_int_equal(stat(layer, &st), 0);
        if (S_ISDIR(st.st_mode)) {
                assert_true(asprintf(&path, "%s/%s", layer, rel) > 0);
                return ck_read_file(path, 1 << 20, ret, ret_len, NULL);
        }
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(format, IMAGE_LAYER_EROFS);
        assert_true(asprintf(&mnt, "%s/mnt", tmpdir) > 0);
        assert_true(asprintf(&path, "%s/%s", mnt, rel) > 0);
        assert_int_equal(mkdir(mnt, 0700), 0);
        assert_int_equal(mount(layer, mnt, "erofs", MS_RDONLY, NULL), 0);
        r = ck_read_file(path, 1 << 20, ret, ret_len, NULL);
        assert_int_equal(umount2(mnt, 0), 0);
        assert_int_equal(rmdir(mnt), 0);
        return r;
}

static int put_blob(struct image_store *s, const void *data, size_t len, const char *digest, uint64_t size,
                    struct ck_error **e)
{
        struct image_blob_writer *w = NULL;
        int r = image_blob_begin(s, digest, size, &w, e);

        if (r != 0)
                return r;
        r = image_blob_write(w, data, len, e);
        if (r < 0) {
                image_blob_abort(w);
                return r;
        }
        return image_blob_commit(w, e);
}

static int count_dir(const char *sub)
{
        char p[256];
        int n = 0;
        DIR *d;
        struct dirent *de;

        snprintf(p, sizeof(p), "%s/%s", tmpdir, sub);
        d = opendir(p);
        if (!d)
                return -1;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static void test_blob_roundtrip_and_reverify(void **state)
{
        struct image_store *s = store_open();
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ uint8_t *got = NULL;
        char d[72], p[256];
        size_t n = 0;

        tar_digest((const uint8_t *)"hello world", 11, d);
        assert_false(image_store_has_blob(s, d));
        assert_int_equal(put_blob(s, "hello world", 11, d, 11, &e), 0);
        assert_true(image_store_has_blob(s, d));
        /* Present: begin says so and hands out no writer. */
        assert_int_equal(put_blob(s, "hello world", 11, d, 11, &e), 1);
        assert_int_equal(image_store_read_blob(s, d, 100, &got, &n, &e), 0);
        assert_int_equal(n, 11);
        assert_memory_equal(got, "hello world", 11);
        assert_int_equal(count_dir("ingest"), 0);

        /* Flip a byte on disk: reading re-verifies. */
        snprintf(p, sizeof(p), "%s/blobs/sha256/%s", tmpdir, d + 7);
        {
                _cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
                assert_true(fd >= 0);
                assert_int_equal(pwrite(fd, "J", 1, 0), 1);
        }
        free(TAKE_PTR(got));
        assert_int_equal(image_store_read_blob(s, d, 100, &got, &n, &e), -EBADMSG);
        assert_non_null(strstr(e->msg, "corrupt"));
        image_store_free(s);
}

static void test_blob_digest_and_size_mismatch(void **state)
{
        struct image_store *s = store_open();
        char d[72];

        tar_digest((const uint8_t *)"expected", 8, d);
        {
                _cleanup_error_ struct ck_error *e = NULL;
                assert_int_equal(put_blob(s, "Expected", 8, d, 8, &e), -EBADMSG);
                assert_non_null(strstr(e->msg, "digest mismatch"));
                assert_non_null(strstr(e->msg, d));
        }
        {
                _cleanup_error_ struct ck_error *e = NULL;
                assert_int_equal(put_blob(s, "expect", 6, d, 8, &e), -EBADMSG);
                assert_non_null(strstr(e->msg, "size mismatch"));
        }
        {
                _cleanup_error_ struct ck_error *e = NULL;
                assert_int_equal(put_blob(s, "expected!", 9, d, 8, &e), -EMSGSIZE);
        }
        {
                _cleanup_error_ struct ck_error *e = NULL;
                assert_int_equal(put_blob(s, "x", 1, "sha256:abc", 1, &e), -EINVAL);
                assert_int_equal(put_blob(s, "x", 1, "md5:d41d8cd98f00b204e9800998ecf8427e", 1, &e),
                                 -EINVAL);
        }
        {
                /* A declared size over max-blob-size is refused before anything is written. */
                _cleanup_error_ struct ck_error *e = NULL;
                struct image_blob_writer *w = NULL;
                struct image_limits lim;

                image_limits_default(&lim);
                assert_int_equal(image_blob_begin(s, d, lim.max_blob_size + 1, &w, &e), -EFBIG);
                assert_null(w);
                assert_non_null(strstr(e->msg, "over the limit"));
        }
        assert_false(image_store_has_blob(s, d));
        assert_int_equal(count_dir("ingest"), 0);
        assert_int_equal(count_dir("blobs/sha256"), 0);
        image_store_free(s);
}

struct writer_arg {
        struct image_store *s;
        const char *digest;
        int result;
};

static const char concurrent_data[] = "the same blob, fetched by several pulls at once";

static void *writer_thread(void *p)
{
        struct writer_arg *a = p;
        struct image_blob_writer *w = NULL;
        size_t len = strlen(concurrent_data);

        a->result = image_blob_begin(a->s, a->digest, len, &w, NULL);
        if (a->result != 0)
                return NULL;
        /* Hold the blob for a while so the others have to wait. */
        for (size_t i = 0; i < len; i++) {
                if (image_blob_write(w, (const uint8_t *)concurrent_data + i, 1, NULL) < 0) {
                        a->result = -1;
                        image_blob_abort(w);
                        return NULL;
                }
                usleep(2000);
        }
        if (image_blob_commit(w, NULL) < 0)
                a->result = -1;
        return NULL;
}

static void test_concurrent_writers_once(void **state)
{
        struct image_store *s = store_open();
        struct writer_arg args[6];
        pthread_t t[6];
        char d[72];
        int writers = 0, skipped = 0;

        tar_digest((const uint8_t *)concurrent_data, strlen(concurrent_data), d);
        for (int i = 0; i < 6; i++) {
                args[i] = (struct writer_arg){.s = s, .digest = d, .result = -100};
                assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &args[i]), 0);
        }
        for (int i = 0; i < 6; i++) {
                pthread_join(t[i], NULL);
                if (args[i].result == 0)
                        writers++;
                else if (args[i].result == 1)
                        skipped++;
        }
        assert_int_equal(writers, 1);
        assert_int_equal(skipped, 5);
        assert_true(image_store_has_blob(s, d));
        assert_int_equal(count_dir("ingest"), 0);
        image_store_free(s);
}

static void test_crash_leftovers_cleaned(void **state)
{
        struct image_store *s = store_open();
        char p[256];
        image_store_free(s);

        snprintf(p, sizeof(p), "%s/ingest/sha256-abc.partial", tmpdir);
        {
                _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                assert_true(fd >= 0);
        }
        snprintf(p, sizeof(p), "%s/layers/7.tmp/usr/bin", tmpdir);
        assert_int_equal(ck_mkdir_p(p, 0755), 0);
        snprintf(p, sizeof(p), "%s/layers/99", tmpdir);
        assert_int_equal(ck_mkdir_p(p, 0755), 0);

        s = store_open();
        assert_int_equal(count_dir("ingest"), 0);
        assert_int_equal(count_dir("layers"), 0);

        /* A second open while the first holds the store skips recovery (it is not alone). */
        snprintf(p, sizeof(p), "%s/layers/5.tmp", tmpdir);
        assert_int_equal(mkdir(p, 0755), 0);
        {
                struct image_store *s2 = store_open();
                assert_int_equal(count_dir("layers"), 1);
                image_store_free(s2);
        }
        image_store_free(s);
}

/* Stores a one-file layer with the given content; fills the descriptor and diff_id. */
static void make_layer(struct image_store *s, const char *content, struct image_descriptor *desc,
                       char diff_id[72])
{
        struct tar_member m[] = {{.path = "file", .data = content}};
        _cleanup_free_ uint8_t *tar = NULL, *gz = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        size_t tl = 0, gl = 0;
        char d[72];

        tar = tar_build(m, 1, 0, &tl);
        gz = tar_build(m, 1, 1, &gl);
        tar_digest(tar, tl, diff_id);
        tar_digest(gz, gl, d);
        assert_true(put_blob(s, gz, gl, d, gl, &e) >= 0);
        desc->digest = strdup(d);
        desc->media_type = strdup("application/vnd.oci.image.layer.v1.tar+gzip");
        desc->size = gl;
        assert_int_equal(image_store_unpack_layer(s, desc, diff_id, &e), 0);
        /* Idempotent. */
        assert_int_equal(image_store_unpack_layer(s, desc, diff_id, &e), 0);
}

static void desc_free(struct image_descriptor *d)
{
        free(d->digest);
        free(d->media_type);
}

static void make_config(struct image_store *s, const char *text, char out[72])
{
        tar_digest((const uint8_t *)text, strlen(text), out);
        assert_true(put_blob(s, text, strlen(text), out, strlen(text), NULL) >= 0);
}

static void test_records_and_gc(void **state)
{
        struct image_store *s = store_open();
        struct image_descriptor shared = {0}, only_a = {0}, only_b = {0};
        char did_shared[72], did_a[72], did_b[72], cfg_a[72], cfg_b[72], man_a[72], man_b[72];
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *dir_a = NULL, *dir_shared = NULL;
        struct image_record got = {0}, *list = NULL;
        size_t n = 0;
        struct stat st;

        make_layer(s, "shared", &shared, did_shared);
        make_layer(s, "only a", &only_a, did_a);
        make_layer(s, "only b", &only_b, did_b);
        make_config(s, "{\"config\":\"a\"}", cfg_a);
        make_config(s, "{\"config\":\"b\"}", cfg_b);
        make_config(s, "{\"manifest\":\"a\"}", man_a);
        make_config(s, "{\"manifest\":\"b\"}", man_b);

        char *layers_a[] = {shared.digest, only_a.digest}, *diffs_a[] = {did_shared, did_a};
        char *layers_b[] = {shared.digest, only_b.digest}, *diffs_b[] = {did_shared, did_b};
        struct image_record a = {.name = "localhost:5000/a:latest",
                                 .manifest_digest = man_a,
                                 .id = cfg_a,
                                 .layers = layers_a,
                                 .diff_ids = diffs_a,
                                 .n_layers = 2,
                                 .size = 10};
        struct image_record b = {.name = "localhost:5000/b:latest",
                                 .manifest_digest = man_b,
                                 .id = cfg_b,
                                 .layers = layers_b,
                                 .diff_ids = diffs_b,
                                 .n_layers = 2,
                                 .size = 20};
        assert_int_equal(image_store_put(s, &a, &e), 0);
        assert_int_equal(image_store_put(s, &b, &e), 0);

        assert_int_equal(image_store_get(s, "localhost:5000/a:latest", &got, &e), 0);
        assert_string_equal(got.id, cfg_a);
        assert_int_equal(got.n_layers, 2);
        assert_string_equal(got.diff_ids[1], did_a);
        image_record_clear(&got);
        /* By ID, by "sha256:" prefix and by a 12-hex prefix. */
        assert_int_equal(image_store_get(s, cfg_b, &got, &e), 0);
        assert_string_equal(got.name, "localhost:5000/b:latest");
        image_record_clear(&got);
        {
                char prefix[20];
                snprintf(prefix, sizeof(prefix), "%.12s", cfg_b + 7);
                assert_int_equal(image_store_get(s, prefix, &got, &e), 0);
                assert_string_equal(got.id, cfg_b);
                image_record_clear(&got);
        }
        assert_int_equal(image_store_get(s, "nope", &got, NULL), -ENOENT);
        assert_int_equal(image_store_list(s, &list, &n, &e), 0);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++)
                image_record_clear(&list[i]);
        free(list);

        dir_a = image_store_layer_dir(s, did_a);
        dir_shared = image_store_layer_dir(s, did_shared);
        assert_non_null(dir_a);
        assert_int_equal(stat(dir_a, &st), 0);

        assert_int_equal(image_store_remove(s, "localhost:5000/a:latest", &e), 0);
        assert_int_equal(image_store_get(s, "localhost:5000/a:latest", &got, NULL), -ENOENT);
        assert_false(image_store_has_blob(s, only_a.digest));
        assert_false(image_store_has_blob(s, cfg_a));
        assert_false(image_store_has_blob(s, man_a));
        assert_true(image_store_has_blob(s, shared.digest));
        assert_true(image_store_has_blob(s, only_b.digest));
        assert_int_equal(stat(dir_a, &st), -1);
        assert_int_equal(stat(dir_shared, &st), 0);

        assert_int_equal(image_store_remove(s, cfg_b, &e), 0);
        assert_false(image_store_has_blob(s, shared.digest));
        assert_int_equal(stat(dir_shared, &st), -1);
        assert_int_equal(count_dir("layers"), 0);

        desc_free(&shared);
        desc_free(&only_a);
        desc_free(&only_b);
        image_store_free(s);
}

static void test_layer_diff_id_mismatch_leaves_nothing(void **state)
{
        struct image_store *s = store_open();
        struct tar_member m[] = {{.path = "etc/hostname", .data = "box\n"}};
        _cleanup_free_ uint8_t *tar = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        struct image_descriptor desc = {.media_type = (char *)"application/vnd.oci.image.layer.v1.tar"};
        char d[72], wrong[72];
        size_t tl = 0;

        tar = tar_build(m, 1, 0, &tl);
        tar_digest(tar, tl, d);
        tar_digest((const uint8_t *)"other", 5, wrong);
        assert_int_equal(put_blob(s, tar, tl, d, tl, &e), 0);
        desc.digest = d;
        desc.size = tl;
        assert_int_equal(image_store_unpack_layer(s, &desc, wrong, &e), -EBADMSG);
        assert_non_null(strstr(e->msg, "diff_id mismatch"));
        assert_int_equal(count_dir("layers"), 0);
        assert_null(image_store_layer_dir(s, wrong));
        image_store_free(s);
}

/* A source handing out a buffer in small pieces, then its end (or an error instead). */
struct piece_source {
        const uint8_t *data;
        size_t len, pos;
        int end; /* what to return after the data: 0, or -errno */
};

static ssize_t piece_read(void *userdata, const uint8_t **ret_buf)
{
        struct piece_source *ps = userdata;
        size_t n = ps->len - ps->pos < 100 ? ps->len - ps->pos : 100;

        if (n == 0)
                return ps->end;
        *ret_buf = ps->data + ps->pos;
        ps->pos += n;
        return (ssize_t)n;
}

static void test_unpack_layer_from_stream(void **state)
{
        struct image_store *s = store_open();
        struct tar_member m[] = {{.path = "etc/hostname", .data = "streamed\n"}};
        _cleanup_free_ uint8_t *tar = NULL, *gz = NULL, *got = NULL;
        _cleanup_free_ char *dir = NULL;
        struct image_descriptor desc = {.media_type = (char *)"application/vnd.oci.image.layer.v1.tar+gzip"};
        char d[72], diff_id[72], wrong[72];
        size_t tl = 0, gl = 0, n = 0;

        tar = tar_build(m, 1, 0, &tl);
        gz = tar_build(m, 1, 1, &gl);
        tar_digest(tar, tl, diff_id);
        tar_digest(gz, gl, d);
        tar_digest((const uint8_t *)"other", 5, wrong);
        desc.digest = d;
        desc.size = gl;

        /* The download failed after all the bytes (say, digest mismatch at commit): the layer is
         * not committed, nothing stays. */
        {
                _cleanup_error_ struct ck_error *e = NULL;
                struct piece_source ps = {.data = gz, .len = gl, .end = -EBADMSG};
                assert_int_equal(image_store_unpack_layer_from(s, &desc, diff_id, piece_read, &ps, &e),
                                 -EBADMSG);
                assert_int_equal(count_dir("layers"), 0);
                assert_null(image_store_layer_dir(s, diff_id));
        }
        /* Blob verified, diff_id wrong: nothing either. */
        {
                _cleanup_error_ struct ck_error *e = NULL;
                struct piece_source ps = {.data = gz, .len = gl};
                assert_int_equal(image_store_unpack_layer_from(s, &desc, wrong, piece_read, &ps, &e),
                                 -EBADMSG);
                assert_non_null(strstr(e->msg, "diff_id mismatch"));
                assert_int_equal(count_dir("layers"), 0);
        }
        /* Both right: committed, with the content; a second call does not read its source. */
        {
                _cleanup_error_ struct ck_error *e = NULL;
                struct piece_source ps = {.data = gz, .len = gl}, none = {.data = gz, .len = gl};
                assert_int_equal(image_store_unpack_layer_from(s, &desc, diff_id, piece_read, &ps, &e), 0);
                assert_int_equal(ps.pos, gl);
                dir = image_store_layer_dir(s, diff_id);
                assert_non_null(dir);
                assert_int_equal(layer_read(dir, "etc/hostname", &got, &n), 0);
                assert_int_equal(n, 9);
                assert_memory_equal(got, "streamed\n", 9);
                assert_int_equal(image_store_unpack_layer_from(s, &desc, diff_id, piece_read, &none, &e), 0);
                assert_int_equal(none.pos, 0);
                assert_int_equal(image_store_unpack_layer_from(s, &desc, diff_id, NULL, NULL, &e), -EINVAL);
        }
        image_store_free(s);
}

/* A stored image of one layer (holding `content`) under name, its config and manifest blobs made
 * from the texts given. o->r points into o: o stays where it is while r is used. */
struct one_layer_image {
        struct image_descriptor layer;
        char did[72], cfg[72], man[72];
        char *layers[1], *diffs[1];
        struct image_record r;
};

static void put_one_layer_image(struct image_store *s, const char *name, const char *content,
                                const char *config, const char *manifest, struct one_layer_image *o)
{
        _cleanup_error_ struct ck_error *e = NULL;

        make_layer(s, content, &o->layer, o->did);
        make_config(s, config, o->cfg);
        make_config(s, manifest, o->man);
        o->layers[0] = o->layer.digest;
        o->diffs[0] = o->did;
        o->r = (struct image_record){.name = (char *)name,
                                     .manifest_digest = o->man,
                                     .id = o->cfg,
                                     .layers = o->layers,
                                     .diff_ids = o->diffs,
                                     .n_layers = 1};
        assert_int_equal(image_store_put(s, &o->r, &e), 0);
}

static void test_prune_unreferenced(void **state)
{
        struct image_store *s = store_open();
        struct image_descriptor orphan = {0};
        struct one_layer_image kept = {0};
        char did_orphan[72], stray[72];
        _cleanup_error_ struct ck_error *e = NULL;

        put_one_layer_image(s, "localhost/kept:1", "kept", "{\"config\":1}", "{\"manifest\":1}", &kept);
        make_layer(s, "orphan", &orphan, did_orphan);
        make_config(s, "stray blob of a failed pull", stray);

        /* Another handle on the store (as another process would have): refused. */
        {
                struct image_store *other = store_open();
                assert_int_equal(image_store_prune(s, &e), -EBUSY);
                image_store_free(other);
        }
        assert_int_equal(image_store_prune(s, &e), 3); /* orphan layer blob and dir, stray blob */
        assert_false(image_store_has_blob(s, orphan.digest));
        assert_false(image_store_has_blob(s, stray));
        assert_null(image_store_layer_dir(s, did_orphan));
        assert_true(image_store_has_blob(s, kept.layer.digest));
        assert_true(image_store_has_blob(s, kept.cfg));
        assert_true(image_store_has_blob(s, kept.man));
        assert_int_equal(count_dir("layers"), 1);
        desc_free(&kept.layer);
        desc_free(&orphan);
        image_store_free(s);
}

/* A holder that released the store (conker-fetch between pulls) keeps no prune out; once it holds
 * it again, prune is refused. A record is complete while everything it names is there. */
static void test_release_hold_and_complete(void **state)
{
        struct image_store *s = store_open(), *other = NULL;
        struct one_layer_image img = {0};
        struct image_record *r = &img.r;
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *dir = NULL;

        put_one_layer_image(s, "localhost/complete:1", "complete", "{\"config\":2}", "{\"manifest\":2}",
                            &img);
        assert_int_equal(image_store_record_complete(s, r, &e), 1);

        other = store_open();
        assert_int_equal(image_store_prune(other, &e), -EBUSY);
        assert_int_equal(image_store_release(s, &e), 0);
        assert_int_equal(image_store_prune(other, &e), 0); /* nothing unreferenced */
        assert_int_equal(image_store_hold(s, &e), 0);
        assert_int_equal(image_store_prune(other, &e), -EBUSY);
        image_store_free(other);

        /* The layer gone behind the store's back, then the config: incomplete. */
        dir = image_store_layer_dir(s, img.did);
        assert_non_null(dir);
        assert_int_equal(ck_rm_rf_at(AT_FDCWD, dir), 0);
        assert_int_equal(image_store_record_complete(s, r, &e), 0);
        r->layers = NULL;
        r->diff_ids = NULL;
        r->n_layers = 0;
        assert_int_equal(image_store_record_complete(s, r, &e), 1);
        {
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "%s/blobs/sha256/%s", tmpdir, img.cfg + 7);
                assert_int_equal(unlink(path), 0);
        }
        assert_int_equal(image_store_record_complete(s, r, &e), 0);
        desc_free(&img.layer);
        image_store_free(s);
}

static void test_discard_failed_pull(void **state)
{
        struct image_store *s = store_open();
        struct image_descriptor fetched = {0};
        struct one_layer_image kept = {0};
        char did_fetched[72], stray[72];
        _cleanup_error_ struct ck_error *e = NULL;
        /* A second handle is open (like another process): discard still works, prune would not. */
        struct image_store *other = store_open();

        put_one_layer_image(s, "localhost/kept:2", "kept", "{\"config\":2}", "{\"manifest\":2}", &kept);

        /* A pull that failed after fetching a shared blob, a new layer and a config. */
        make_layer(s, "fetched", &fetched, did_fetched);
        make_config(s, "config of the failed pull", stray);
        char *mine[] = {kept.layer.digest, fetched.digest, stray};
        assert_int_equal(image_store_discard(s, mine, 3, &e), 0);
        assert_true(image_store_has_blob(s, kept.layer.digest));
        {
                _cleanup_free_ char *dir = image_store_layer_dir(s, kept.did);
                assert_non_null(dir);
        }
        assert_false(image_store_has_blob(s, fetched.digest));
        assert_null(image_store_layer_dir(s, did_fetched));
        assert_false(image_store_has_blob(s, stray));
        assert_int_equal(count_dir("layers"), 1);
        assert_int_equal(count_dir("ingest"), 0);
        desc_free(&kept.layer);
        desc_free(&fetched);
        image_store_free(other);
        image_store_free(s);
}

static void test_cross_process_writers(void **state)
{
        static const char data[] = "one blob, two processes";
        char d[72];
        int pipefd[2];
        pid_t pid;

        tar_digest((const uint8_t *)data, strlen(data), d);
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* The child writes the blob slowly, after telling the parent it holds it. */
                struct image_store *cs = NULL;
                struct image_blob_writer *w = NULL;
                if (image_store_open(tmpdir, NULL, &cs, NULL) < 0 ||
                    image_blob_begin(cs, d, strlen(data), &w, NULL) != 0)
                        _exit(2);
                (void)!write(pipefd[1], "x", 1);
                usleep(300000);
                if (image_blob_write(w, (const uint8_t *)data, strlen(data), NULL) < 0 ||
                    image_blob_commit(w, NULL) < 0)
                        _exit(3);
                image_store_free(cs);
                _exit(0);
        }
        {
                struct image_store *s = NULL;
                struct image_blob_writer *w = NULL;
                char c;
                int status = 0;

                assert_int_equal(read(pipefd[0], &c, 1), 1);
                assert_int_equal(image_store_open(tmpdir, NULL, &s, NULL), 0);
                /* Waits on the child's flock, then finds the blob there. */
                assert_int_equal(image_blob_begin(s, d, strlen(data), &w, NULL), 1);
                assert_true(image_store_has_blob(s, d));
                assert_int_equal(waitpid(pid, &status, 0), pid);
                assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                image_store_free(s);
        }
        close(pipefd[0]);
        close(pipefd[1]);
        assert_int_equal(count_dir("ingest"), 0);
}

static void test_stale_mount_row_does_not_block_removal(void **state)
{
        struct image_store *s = store_open();
        struct image_descriptor l = {0};
        char did[72], cfg[72], man[72];
        _cleanup_error_ struct ck_error *e = NULL;

        make_layer(s, "stale", &l, did);
        make_config(s, "{\"c\":3}", cfg);
        make_config(s, "{\"m\":3}", man);
        char *layers[] = {l.digest}, *diffs[] = {did};
        struct image_record r = {.name = "localhost/stale:1",
                                 .manifest_digest = man,
                                 .id = cfg,
                                 .layers = layers,
                                 .diff_ids = diffs,
                                 .n_layers = 1};
        assert_int_equal(image_store_put(s, &r, &e), 0);
        /* A row left by a crash: its target is not a mount point. */
        {
                char *sql = NULL;
                assert_true(asprintf(&sql,
                                     "INSERT INTO mounts (target, image_id, state_dir, created)"
                                     " VALUES ('%s', '%s', '%s', 0)",
                                     tmpdir, cfg, tmpdir) > 0);
                assert_int_equal(sqlite3_exec(s->db, sql, NULL, NULL, NULL), SQLITE_OK);
                free(sql);
        }
        assert_int_equal(image_store_remove(s, "localhost/stale:1", &e), 0);
        assert_false(image_store_has_blob(s, l.digest));
        desc_free(&l);
        image_store_free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_blob_roundtrip_and_reverify, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blob_digest_and_size_mismatch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_concurrent_writers_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_leftovers_cleaned, setup, teardown),
                cmocka_unit_test_setup_teardown(test_records_and_gc, setup, teardown),
                cmocka_unit_test_setup_teardown(test_layer_diff_id_mismatch_leaves_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unpack_layer_from_stream, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prune_unreferenced, setup, teardown),
                cmocka_unit_test_setup_teardown(test_discard_failed_pull, setup, teardown),
                cmocka_unit_test_setup_teardown(test_release_hold_and_complete, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cross_process_writers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stale_mount_row_does_not_block_removal, setup,
                                                teardown),
        };
        int failed;

        format = IMAGE_LAYER_DIR;
        failed = cmocka_run_group_tests_name("directory layers", tests, NULL, NULL);
        format = IMAGE_LAYER_EROFS;
        {
                _cleanup_close_ int tmp_fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                erofs_ok = geteuid() != 0 ? -EPERM : tmp_fd < 0 ? -errno : image_erofs_probe(tmp_fd);
        }
        if (erofs_ok != 0)
                fprintf(stderr,
                        "test-image-store: EROFS layers cannot be mounted here (%s); skipping them\n",
                        strerror(-erofs_ok));
        failed += cmocka_run_group_tests_name("EROFS layers", tests, NULL, NULL);
        return ck_group_result(failed);
}
