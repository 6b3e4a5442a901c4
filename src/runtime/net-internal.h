/* Internals of container networking shared by its files, what one file offers the others:
 *
 *   net.c        the bridge, per container its netns and veth pair; the whole teardown
 *   net-lease.c  the subnet, address formatting, the lease files
 *   net-ports.c  the per-container state files, the port conflict checks, the nft script and
 *                net_apply
 *   net-nft.c    the libnftables context kept for conkerd's life and one script run on it
 *
 * Not a public interface: the rest of the runtime uses net.h. */
#pragma once

#include <stddef.h>

#include "error.h"
#include "net.h"

/* net-ports.c */
/* <state_dir>/<sub>, created when missing; returns an O_DIRECTORY fd the caller closes. */
int net_state_dir_open(const struct net_config *cfg, const char *sub, struct ck_error **reterr);
/* Every readable containers/<id>.json; unreadable or malformed ones are skipped. Free *ret with
 * net_entries_free. */
int net_entries_load(const struct net_config *cfg, struct net_entry **ret, size_t *ret_n,
                     struct ck_error **reterr);
/* Writes containers/<id>.json with ip and ports (replaced atomically, no fsync: tmpfs). */
int net_entry_write(const struct net_config *cfg, const char *id, const char *ip,
                    const struct runtime_port *ports, size_t n, struct ck_error **reterr);

/* net-nft.c */
/* Runs one nft script as one transaction, on cfg's context or (without one) a temporary one. */
int net_nft_run(const struct net_config *cfg, const char *script, struct ck_error **reterr);
