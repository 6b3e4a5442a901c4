/* Fuzzes the index selector, the manifest parser and the config parser on the same input: all
 * three read registry bytes, and must fail cleanly (with an error) or return consistent data. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct image_descriptor d = {0};
        struct image_manifest m = {0};
        struct image_config c = {0};
        struct ck_error *err = NULL;

        if (image_index_select(data, size, &d, &err) == 0) {
                if (!image_digest_valid(d.digest) || !d.media_type)
                        abort();
                image_descriptor_clear(&d);
        }
        ck_error_free(err);
        err = NULL;

        if (image_manifest_parse(data, size, &m, &err) == 0) {
                if (!image_digest_valid(m.config.digest) || m.n_layers > IMAGE_LAYERS_MAX)
                        abort();
                for (size_t i = 0; i < m.n_layers; i++)
                        if (!image_digest_valid(m.layers[i].digest))
                                abort();
                image_manifest_clear(&m);
        }
        ck_error_free(err);
        err = NULL;

        if (image_config_parse(data, size, &c, &err) == 0) {
                for (size_t i = 0; i < c.n_diff_ids; i++)
                        if (!image_digest_valid(c.diff_ids[i]))
                                abort();
                if (c.diff_ids[c.n_diff_ids])
                        abort();
                image_config_clear(&c);
        }
        ck_error_free(err);
        return 0;
}
