/* The service manager's readiness protocol (sd_notify(3)), written without libsystemd: one
 * datagram with "KEY=VALUE" lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or
 * an abstract name written with a leading '@'). Outside systemd the variable is unset and every
 * call is a no-op, so programs call it unconditionally. */
#pragma once

#include "error.h"

/* The longest state string sent; READY=1, STOPPING=1 and STATUS= lines fit easily. */
#define CK_NOTIFY_STATE_MAX 4096

/* Sends state (e.g. "READY=1") to $NOTIFY_SOCKET. Returns 1 when sent, 0 when NOTIFY_SOCKET is
 * unset or empty (not under a service manager), -errno on failure (-EINVAL for a malformed socket
 * name, -E2BIG for an oversized state, or the socket's error). Never blocks: the socket is
 * datagram and the send is non-blocking. */
int ck_notify(const char *state, struct ck_error **reterr);
