/* The TLS exporter value that binds evidence to one session (docs/protocol.md): RFC 8446 §7.5
 * with label ATTEST_RATLS_EXPORTER_LABEL, no context, ATTEST_RATLS_EXPORTER_LEN bytes. Both the
 * client (to put it in the claims) and the broker (to compare) compute it after the handshake;
 * a man in the middle or a replay on another connection has a different value. */
#pragma once

#include <openssl/ssl.h>
#include <stdint.h>

#include "ratls.h"

/* 0, or -EPROTO when the session has no exporter (not TLS 1.3, handshake not complete). */
int broker_tls_exporter(SSL *ssl, uint8_t ret[ATTEST_RATLS_EXPORTER_LEN]);
