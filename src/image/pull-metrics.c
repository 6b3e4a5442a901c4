/* The pull's metric (pull.h), declared apart from the pull itself so that a program can export
 * it without linking the registry client: conkerd counts what its pull helper reports. */
#include "metrics.h"
#include "pull.h"

int image_metrics_declare(void)
{
        return ck_metrics_declare(IMAGE_METRIC_PULLED_BYTES, CK_METRIC_COUNTER,
                                  "Blob bytes (layers and configs) downloaded from registries.", NULL, NULL,
                                  0);
}
