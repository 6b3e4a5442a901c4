/* The session-binding exporter value (exporter.h). */
#include <errno.h>
#include <string.h>

#include "exporter.h"

int broker_tls_exporter(SSL *ssl, uint8_t ret[ATTEST_RATLS_EXPORTER_LEN])
{
        static const char label[] = ATTEST_RATLS_EXPORTER_LABEL;

        if (!ssl || SSL_version(ssl) != TLS1_3_VERSION || !SSL_is_init_finished(ssl))
                return -EPROTO;
        /* use_context = 0: "no context", which TLS 1.3 treats as an empty context. */
        if (SSL_export_keying_material(ssl, ret, ATTEST_RATLS_EXPORTER_LEN, label, sizeof(label) - 1, NULL,
                                       0, 0) != 1)
                return -EPROTO;
        return 0;
}
