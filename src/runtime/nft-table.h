/* Whether an nftables table exists, asked over nfnetlink directly (NFT_MSG_GETTABLE): lets
 * conkerd skip libnftables when there is nothing to remove, so an idle conkerd never runs the nft
 * parser (its pages and context cost ~0.6 MB of RSS).
 *
 * Internal to the runtime module (and its unit tests). */
#pragma once

#include <stdint.h>

#include "error.h"
#include "netlink.h"

/* GETTABLE for the inet-family table `name` (1..15 bytes, as net_ifname_valid). Returns
 * nl_msg_finish()'s result, or -EINVAL for a bad name. */
int nft_build_table_get(struct nl_msg *m, uint32_t seq, const char *name);

/* 1 when the inet table `name` exists in the caller's network namespace, 0 when the kernel says
 * it does not (ENOENT), < 0 on any other answer or failure (the caller then does not know). */
int nft_table_exists(const char *name, struct ck_error **reterr);
