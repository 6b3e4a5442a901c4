/* Container networking: one network namespace per container, a veth pair to a bridge, an IPv4
 * address leased from the subnet, and one nftables table owned by conkerd with the DNAT rules of
 * published ports, masquerade and the forward filter.
 *
 * State lives under <run_dir>/net: leases/<a.b.c.d> (created O_EXCL: the allocation itself) and
 * containers/<id>.json ({"ip","ports":[{"target","published","udp"}]}). The nft table is always
 * regenerated from these files and replaced in one nftables transaction (libnftables).
 *
 * Internal to the runtime module (and its unit tests). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "runtime.h"

#define NET_PORTS_MAX 1024

/* A libnftables context kept across calls (see net_nft_new). */
struct net_nft;

struct net_config {
        const char *bridge;
        const char *subnet;
        const char *netns_dir;
        const char *netns_prefix;
        const char *nft_table;
        const char *state_dir; /* <run_dir>/net */
        struct net_nft *nft;   /* NULL: each call makes (and frees) its own context */
};

/* The context the runtime keeps for its life (made at its first run); NULL on allocation
 * failure. Freed by net_nft_free (NULL is fine). */
struct net_nft *net_nft_new(void);
void net_nft_free(struct net_nft *n);

struct net_subnet {
        uint32_t base; /* host byte order */
        unsigned prefix;
};

struct net_entry {
        char id[65];
        char ip[16];
        struct runtime_port *ports;
        size_t n_ports;
};

int net_subnet_parse(const char *s, struct net_subnet *ret);
void net_addr_format(uint32_t a, char out[16]);
static inline uint32_t net_gateway(const struct net_subnet *sn)
{
        return sn->base + 1;
}
/* true for names the kernel accepts as interface names and nft accepts as identifiers. */
bool net_ifname_valid(const char *s);

/* Returns the lease of id, allocating the lowest free address (from .2) if it has none. */
int net_lease_acquire(int leases_dirfd, const struct net_subnet *sn, const char *id, char ret_ip[16],
                      struct ck_error **reterr);
/* Removes id's lease; missing is fine. */
int net_lease_release(int leases_dirfd, const char *id);

/* The nft script that replaces the table with rules for entries (or removes it when n == 0). */
int net_nft_script(const struct net_config *cfg, const struct net_subnet *sn, const struct net_entry *e,
                   size_t n, char **ret, struct ck_error **reterr);
void net_entries_free(struct net_entry *e, size_t n);

/* Bridge with the gateway address, forwarding and route_localnet sysctls, the state dirs. */
int net_bridge_setup(const struct net_config *cfg, struct ck_error **reterr);
/* -EEXIST when another container shares id's first 12 characters (they name its interface and
 * namespace), -EADDRINUSE when a published port is taken. */
int net_check_conflicts(const struct net_config *cfg, const char *id, const struct runtime_port *ports,
                        size_t n, struct ck_error **reterr);
/* Netns + veth + address + routes + port rules for id. ret_netns_path is malloc'd. */
int net_container_setup(const struct net_config *cfg, const char *id, const struct runtime_port *ports,
                        size_t n_ports, char ret_ip[16], char **ret_netns_path, struct ck_error **reterr);
/* Removes everything net_container_setup made; safe to repeat. */
int net_container_teardown(const struct net_config *cfg, const char *id, struct ck_error **reterr);
/* The leased address of id, "" when none. */
void net_container_ip(const struct net_config *cfg, const char *id, char ret_ip[16]);
/* Rewrites the table from the state files. */
int net_apply(const struct net_config *cfg, struct ck_error **reterr);
/* Removes the table and, if no container is left, the bridge. */
int net_teardown(const struct net_config *cfg, struct ck_error **reterr);
