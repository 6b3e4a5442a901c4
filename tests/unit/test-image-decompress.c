/* Unit tests of the layer decompressor (src/image/decompress.c): gzip (single and
 * concatenated members), zstd (one and several frames) and plain streams fed in odd-sized
 * chunks; truncated, corrupt and trailing-garbage input; decompression bombs past the cap;
 * empty input. The compressed inputs are made here with ISA-L's deflate and libzstd. */
#include "cmocka-wrap.h"
#include <errno.h>
#include <isa-l/igzip_lib.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "cleanup.h"
#include "decompress.h"
#include "manifest.h"

struct feed {
        const uint8_t *data;
        size_t len, pos, chunk;
        int fail_at; /* return -EIO once pos reaches this (< 0: never) */
};

static ssize_t feed_read(void *userdata, const uint8_t **ret_buf)
{
        struct feed *f = userdata;
        size_t n = f->len - f->pos;

        if (f->fail_at >= 0 && f->pos >= (size_t)f->fail_at)
                return -EIO;
        if (n > f->chunk)
                n = f->chunk;
        *ret_buf = f->data + f->pos;
        f->pos += n;
        return (ssize_t)n;
}

static uint8_t *gzip_make(const uint8_t *in, size_t len, size_t *ret_len)
{
        struct isal_zstream zs;
        size_t cap = len + len / 8 + 1024;
        uint8_t *out = malloc(cap);

        assert_non_null(out);
        isal_deflate_init(&zs);
        zs.gzip_flag = IGZIP_GZIP;
        zs.end_of_stream = 1;
        zs.flush = NO_FLUSH;
        zs.next_in = (uint8_t *)in;
        zs.avail_in = (uint32_t)len;
        zs.next_out = out;
        zs.avail_out = (uint32_t)cap;
        assert_int_equal(isal_deflate(&zs), COMP_OK);
        assert_int_equal(zs.avail_in, 0);
        *ret_len = cap - zs.avail_out;
        return out;
}

static uint8_t *zstd_make(const uint8_t *in, size_t len, size_t *ret_len)
{
        size_t cap = ZSTD_compressBound(len), n;
        uint8_t *out = malloc(cap);
        ZSTD_CCtx *c = ZSTD_createCCtx();

        assert_non_null(out);
        assert_non_null(c);
        /* With the frame checksum, as zstd(1) writes it, so corruption is always caught. */
        assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
        n = ZSTD_compress2(c, out, cap, in, len);
        ZSTD_freeCCtx(c);
        assert_false(ZSTD_isError(n));
        *ret_len = n;
        return out;
}

static uint8_t *concat(const uint8_t *a, size_t al, const uint8_t *b, size_t bl, size_t *ret_len)
{
        uint8_t *out = malloc(al + bl);

        assert_non_null(out);
        memcpy(out, a, al);
        memcpy(out + al, b, bl);
        *ret_len = al + bl;
        return out;
}

/* Decompresses data fed chunk bytes at a time; returns 0 or the -errno of the failure; the
 * output goes to ret (when not NULL, at most cap bytes) and its length to ret_len. */
static int run(int kind, const uint8_t *data, size_t len, size_t chunk, uint64_t max, uint8_t *ret,
               size_t cap, size_t *ret_len)
{
        struct image_decomp *d = NULL;
        struct feed f = {.data = data, .len = len, .chunk = chunk, .fail_at = -1};
        size_t total = 0;
        int r;

        assert_int_equal(image_decomp_new(kind, max, feed_read, &f, &d, NULL), 0);
        for (;;) {
                _cleanup_error_ struct ck_error *e = NULL;
                const uint8_t *buf = NULL;
                ssize_t n = image_decomp_read(d, &buf, &e);

                if (n < 0) {
                        assert_non_null(e);
                        assert_int_equal(e->code, (int)n);
                        /* Sticky: a failed stream stays failed. */
                        assert_true(image_decomp_read(d, &buf, NULL) < 0);
                        r = (int)n;
                        break;
                }
                if (n == 0) {
                        assert_int_equal(image_decomp_total_out(d), total);
                        r = 0;
                        break;
                }
                if (ret) {
                        assert_true(total + (size_t)n <= cap);
                        memcpy(ret + total, buf, (size_t)n);
                }
                total += (size_t)n;
        }
        image_decomp_free(d);
        if (ret_len)
                *ret_len = total;
        return r;
}

static uint8_t *sample(size_t len)
{
        uint8_t *p = malloc(len);

        assert_non_null(p);
        /* Compressible with some entropy: text-like runs and pseudo-random bytes. */
        for (size_t i = 0; i < len; i++)
                p[i] = (i / 64) % 3 == 0 ? (uint8_t)((i * 2654435761u) >> 13) : (uint8_t)('a' + i % 23);
        return p;
}

static void roundtrip(int kind, uint8_t *(*make)(const uint8_t *, size_t, size_t *))
{
        static const size_t sizes[] = {1, 4096, (3u << 20) + 17};
        static const size_t chunks[] = {1, 7, 65536, SIZE_MAX};

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                _cleanup_free_ uint8_t *in = sample(sizes[i]), *z = NULL, *out = malloc(sizes[i]);
                size_t zl = 0, ol = 0;

                z = make ? make(in, sizes[i], &zl) : NULL;
                for (size_t c = 0; c < ELEMENTSOF(chunks); c++) {
                        if (chunks[c] == 1 && sizes[i] > 4096)
                                continue; /* byte by byte through 3 MiB is just slow */
                        assert_int_equal(run(kind, z ? z : in, z ? zl : sizes[i], chunks[c], UINT64_MAX, out,
                                             sizes[i], &ol),
                                         0);
                        assert_int_equal(ol, sizes[i]);
                        assert_memory_equal(out, in, sizes[i]);
                }
        }
}

static void test_gzip_roundtrip(void **state)
{
        roundtrip(IMAGE_MEDIA_LAYER_GZIP, gzip_make);
}

static void test_zstd_roundtrip(void **state)
{
        roundtrip(IMAGE_MEDIA_LAYER_ZSTD, zstd_make);
}

static void test_plain_passthrough(void **state)
{
        roundtrip(IMAGE_MEDIA_LAYER_TAR, NULL);
        /* An empty plain stream is an empty stream (the tar reader rejects it, not us). */
        assert_int_equal(run(IMAGE_MEDIA_LAYER_TAR, (const uint8_t *)"", 0, 16, UINT64_MAX, NULL, 0, NULL),
                         0);
}

static void test_concatenated(void **state)
{
        uint8_t *(*makers[])(const uint8_t *, size_t, size_t *) = {gzip_make, zstd_make};
        const int kinds[] = {IMAGE_MEDIA_LAYER_GZIP, IMAGE_MEDIA_LAYER_ZSTD};

        for (size_t k = 0; k < 2; k++) {
                _cleanup_free_ uint8_t *a = sample(100000), *b = sample(5000), *za = NULL, *zb = NULL,
                                       *both = NULL;
                uint8_t out[105000];
                size_t al = 0, bl = 0, l = 0, ol = 0;

                za = makers[k](a, 100000, &al);
                zb = makers[k](b, 5000, &bl);
                both = concat(za, al, zb, bl, &l);
                for (size_t chunk = 3; chunk < 200000; chunk *= 97) {
                        assert_int_equal(run(kinds[k], both, l, chunk, UINT64_MAX, out, sizeof(out), &ol),
                                         0);
                        assert_int_equal(ol, 105000);
                        assert_memory_equal(out, a, 100000);
                        assert_memory_equal(out + 100000, b, 5000);
                }
        }
}

/* The gzip header is parsed here, not by the inflater (decompress.c): optional fields
 * (FEXTRA, FNAME, FCOMMENT) are skipped, in one piece or split anywhere. */
static void test_gzip_header_fields(void **state)
{
        static const uint8_t hdr[] = {0x1f, 0x8b, 8,   0x1c, 0,   0,   0,   0,   0, 3,   4,   0,
                                      'a',  'b',  'c', 'd',  'n', 'a', 'm', 'e', 0, 'h', 'i', 0};
        _cleanup_free_ uint8_t *in = sample(70000), *z = NULL, *both = NULL;
        uint8_t out[70000];
        size_t zl = 0, l = 0, ol = 0;

        z = gzip_make(in, 70000, &zl);
        assert_true(zl > 10 && z[3] == 0); /* ISA-L wrote a plain 10-byte header */
        both = concat(hdr, sizeof(hdr), z + 10, zl - 10, &l);
        for (size_t chunk = 1; chunk < 100000; chunk = chunk * 5 + 2) {
                assert_int_equal(
                        run(IMAGE_MEDIA_LAYER_GZIP, both, l, chunk, UINT64_MAX, out, sizeof(out), &ol), 0);
                assert_int_equal(ol, 70000);
                assert_memory_equal(out, in, 70000);
        }
        /* Not the deflate method. */
        both[2] = 7;
        assert_int_equal(run(IMAGE_MEDIA_LAYER_GZIP, both, l, 4096, UINT64_MAX, NULL, 0, NULL), -EBADMSG);
}

static void test_truncated_and_empty(void **state)
{
        uint8_t *(*makers[])(const uint8_t *, size_t, size_t *) = {gzip_make, zstd_make};
        const int kinds[] = {IMAGE_MEDIA_LAYER_GZIP, IMAGE_MEDIA_LAYER_ZSTD};

        for (size_t k = 0; k < 2; k++) {
                _cleanup_free_ uint8_t *in = sample(200000), *z = NULL;
                size_t zl = 0;

                z = makers[k](in, 200000, &zl);
                /* Cut anywhere: in the header, the middle, the trailer (gzip: CRC + ISIZE). */
                const size_t cuts[] = {1, 5, zl / 2, zl - 8, zl - 4, zl - 1};
                for (size_t c = 0; c < ELEMENTSOF(cuts); c++)
                        assert_int_equal(run(kinds[k], z, cuts[c], 4096, UINT64_MAX, NULL, 0, NULL),
                                         -EBADMSG);
                /* Nothing at all is not a compressed stream either. */
                assert_int_equal(run(kinds[k], z, 0, 4096, UINT64_MAX, NULL, 0, NULL), -EBADMSG);
        }
}

static void test_corrupt_and_trailing(void **state)
{
        uint8_t *(*makers[])(const uint8_t *, size_t, size_t *) = {gzip_make, zstd_make};
        const int kinds[] = {IMAGE_MEDIA_LAYER_GZIP, IMAGE_MEDIA_LAYER_ZSTD};

        for (size_t k = 0; k < 2; k++) {
                _cleanup_free_ uint8_t *in = sample(200000), *z = NULL, *tail = NULL;
                size_t zl = 0, tl = 0;

                z = makers[k](in, 200000, &zl);
                /* Trailing bytes that are not another member/frame. */
                tail = concat(z, zl, (const uint8_t *)"garbage!", 8, &tl);
                assert_int_equal(run(kinds[k], tail, tl, 4096, UINT64_MAX, NULL, 0, NULL), -EBADMSG);
                free(TAKE_PTR(tail));
                tail = concat(z, zl, (const uint8_t *)"\0\0\0\0", 4, &tl);
                assert_int_equal(run(kinds[k], tail, tl, 4096, UINT64_MAX, NULL, 0, NULL), -EBADMSG);
                /* A flipped bit in the magic, in the data, in the trailer. zstd: the frame
                 * checksum catches what the decoder does not. gzip: the CRC32 is not checked
                 * (decompress.c: the diff_id covers the same bytes), so a flip in the data
                 * must fail or change the output, and one in the CRC field goes unnoticed;
                 * the length field is checked. */
                const size_t at[] = {0, zl / 3, zl - 6, zl - 2};
                for (size_t i = 0; i < ELEMENTSOF(at); i++) {
                        _cleanup_free_ uint8_t *out = malloc(200000 + 65536);
                        size_t ol = 0;
                        int r;

                        assert_non_null(out);
                        z[at[i]] ^= 0x10;
                        r = run(kinds[k], z, zl, 4096, UINT64_MAX, out, 200000 + 65536, &ol);
                        if (kinds[k] == IMAGE_MEDIA_LAYER_GZIP && at[i] == zl / 3)
                                assert_true(r == -EBADMSG || ol != 200000 || memcmp(out, in, ol) != 0);
                        else if (kinds[k] == IMAGE_MEDIA_LAYER_GZIP && at[i] == zl - 6)
                                assert_true(r == 0 && ol == 200000 && memcmp(out, in, ol) == 0);
                        else
                                assert_int_equal(r, -EBADMSG);
                        z[at[i]] ^= 0x10;
                }
                assert_int_equal(run(kinds[k], z, zl, 4096, UINT64_MAX, NULL, 0, NULL), 0);
        }
        /* Not compressed at all, but named gzip / zstd. */
        assert_int_equal(run(IMAGE_MEDIA_LAYER_GZIP, (const uint8_t *)"ustar plain tar", 15, 4096,
                             UINT64_MAX, NULL, 0, NULL),
                         -EBADMSG);
        assert_int_equal(run(IMAGE_MEDIA_LAYER_ZSTD, (const uint8_t *)"ustar plain tar", 15, 4096,
                             UINT64_MAX, NULL, 0, NULL),
                         -EBADMSG);
}

static void test_bomb_past_the_cap(void **state)
{
        uint8_t *(*makers[])(const uint8_t *, size_t, size_t *) = {gzip_make, zstd_make, NULL};
        const int kinds[] = {IMAGE_MEDIA_LAYER_GZIP, IMAGE_MEDIA_LAYER_ZSTD, IMAGE_MEDIA_LAYER_TAR};
        const size_t big = 32u << 20;
        _cleanup_free_ uint8_t *zeros = calloc(1, big);

        assert_non_null(zeros);
        for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
                _cleanup_free_ uint8_t *z = NULL;
                size_t zl = big, ol = 0;

                z = makers[k] ? makers[k](zeros, big, &zl) : NULL;
                if (makers[k])
                        assert_true(zl < big / 100); /* a bomb indeed */
                /* 1 MiB cap: fails as soon as the output passes it, not at the end. */
                assert_int_equal(run(kinds[k], z ? z : zeros, zl, 65536, 1u << 20, NULL, 0, &ol), -EFBIG);
                /* Exactly at the cap is fine. */
                assert_int_equal(run(kinds[k], z ? z : zeros, zl, 65536, big, NULL, 0, &ol), 0);
                assert_int_equal(ol, big);
        }
}

static void test_source_error_and_bad_kind(void **state)
{
        _cleanup_free_ uint8_t *in = sample(100000), *z = NULL;
        struct image_decomp *d = NULL;
        struct feed f;
        size_t zl = 0;
        ssize_t n;

        z = gzip_make(in, 100000, &zl);
        f = (struct feed){.data = z, .len = zl, .chunk = 100, .fail_at = 300};
        assert_int_equal(image_decomp_new(IMAGE_MEDIA_LAYER_GZIP, UINT64_MAX, feed_read, &f, &d, NULL), 0);
        do {
                const uint8_t *buf;
                n = image_decomp_read(d, &buf, NULL);
        } while (n > 0);
        assert_int_equal(n, -EIO);
        image_decomp_free(d);

        assert_int_equal(image_decomp_new(IMAGE_MEDIA_OCI_MANIFEST, 0, feed_read, &f, &d, NULL),
                         -EOPNOTSUPP);
        image_decomp_free(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_gzip_roundtrip),
                cmocka_unit_test(test_zstd_roundtrip),
                cmocka_unit_test(test_plain_passthrough),
                cmocka_unit_test(test_concatenated),
                cmocka_unit_test(test_gzip_header_fields),
                cmocka_unit_test(test_truncated_and_empty),
                cmocka_unit_test(test_corrupt_and_trailing),
                cmocka_unit_test(test_bomb_past_the_cap),
                cmocka_unit_test(test_source_error_and_bad_kind),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
