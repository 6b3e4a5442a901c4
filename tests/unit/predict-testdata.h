/* Helpers shared by the predict unit tests: the vectors under tests/data/tdx-predict. */
#pragma once

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "parse.h"

static inline uint8_t *predict_test_read(const char *rel, size_t *len)
{
        const char *data = getenv("CONKER_TESTDATA");
        char path[512];
        uint8_t *d = NULL;

        snprintf(path, sizeof(path), "%s/tdx-predict/%s", data ? data : "tests/data", rel);
        assert_int_equal(ck_read_file(path, 4u << 20, &d, len, NULL), 0);
        return d;
}

static inline json_t *predict_test_vectors(void)
{
        size_t len = 0;
        uint8_t *d = predict_test_read("derived/vectors.json", &len);
        json_t *j = json_loadb((const char *)d, len, 0, NULL);

        free(d);
        assert_non_null(j);
        return j;
}

static inline void predict_test_unhex(const char *hex, uint8_t *out, size_t n)
{
        assert_non_null(hex);
        assert_int_equal(ck_hex_decode(hex, strlen(hex), out, n), 0);
}

static inline void assert_digest_hex(const uint8_t *d, const char *hex)
{
        char got[97];

        assert_non_null(hex);
        ck_hex_encode(d, 48, got);
        assert_string_equal(got, hex);
}
