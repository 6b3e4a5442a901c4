/* Container networking: the bridge, and per container its netns and veth pair. See net.h.
 *
 * Links, addresses and routes are set over rtnetlink in-process (netlink.c): no `ip` process on
 * the start path. The container's end of the veth pair is created directly inside its namespace,
 * which is configured through a socket opened there, so namespaces need not live in /run/netns.
 * Addresses come from net-lease.c, the port state and the nftables table from net-ports.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fs.h"
#include "net-internal.h"
#include "netlink.h"

#define NSFS_MAGIC_NUM 0x6e736673

bool net_ifname_valid(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > 15)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-'))
                        return false;
        }
        return true;
}

/* ---- sysctl, links ---- */

static int write_sysctl(const char *path, const char *value)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return ck_write_all(fd, value, strlen(value));
}

/* One request over a fresh rtnetlink socket in conkerd's own namespace. */
static int nl_host_call(struct nl_msg *m, int *ret_ifindex, struct ck_error **reterr)
{
        _cleanup_close_ int fd = nl_open(reterr);
        if (fd < 0)
                return fd;
        return nl_call(fd, m, ret_ifindex);
}

/* Through the netns of the caller (sysfs may belong to another one). */
static bool link_exists(const char *name)
{
        return if_nametoindex(name) != 0;
}

int net_bridge_setup(const struct net_config *cfg, struct ck_error **reterr)
{
        struct nl_msg m;
        char p[128];
        struct net_subnet sn;
        int r, ifindex = 0;

        if (!net_ifname_valid(cfg->bridge) || !net_ifname_valid(cfg->nft_table))
                return ck_error_set(reterr, -EINVAL, "invalid bridge or nft table name");
        if (net_subnet_parse(cfg->subnet, &sn) < 0)
                return ck_error_set(reterr, -EINVAL, "invalid subnet %s (a.b.c.d/8..30)", cfg->subnet);
        /* Kept from when the path went into `ip -batch` scripts: names stay plain. */
        if (cfg->netns_dir[0] != '/' || strpbrk(cfg->netns_dir, " \t\n\r\"'\\#") ||
            strpbrk(cfg->netns_prefix, " \t\n\r\"'\\#/"))
                return ck_error_set(reterr, -EINVAL,
                                    "netns dir and prefix must not contain whitespace or quotes");
        if (ck_mkdir_p(cfg->state_dir, 0700) < 0 || ck_mkdir_p(cfg->netns_dir, 0755) < 0)
                return ck_error_errno(reterr, -errno, "cannot create %s or %s", cfg->state_dir,
                                      cfg->netns_dir);
        if (!link_exists(cfg->bridge)) {
                r = nl_build_bridge_add(&m, 1, cfg->bridge);
                if (r >= 0)
                        r = nl_host_call(&m, NULL, reterr);
                if (r < 0 && !link_exists(cfg->bridge))
                        return ck_error_errno(reterr, r, "cannot create bridge %s", cfg->bridge);
        }
        r = nl_build_link_get(&m, 2, cfg->bridge);
        if (r >= 0)
                r = nl_host_call(&m, &ifindex, reterr);
        if (r >= 0)
                r = nl_build_addr_replace(&m, 3, ifindex, net_gateway(&sn), sn.prefix);
        if (r >= 0)
                r = nl_host_call(&m, NULL, reterr);
        if (r >= 0)
                r = nl_build_link_up(&m, 4, cfg->bridge);
        if (r >= 0)
                r = nl_host_call(&m, NULL, reterr);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot configure bridge %s", cfg->bridge);
        r = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1");
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot enable IPv4 forwarding");
        snprintf(p, sizeof(p), "/proc/sys/net/ipv4/conf/%s/route_localnet", cfg->bridge);
        r = write_sysctl(p, "1");
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot set %s", p);
        return 0;
}

static void names_for(const struct net_config *cfg, const char *id, char host[16], char **ns_path)
{
        snprintf(host, 16, "ck%.12s", id);
        if (asprintf(ns_path, "%s/%s%.12s", cfg->netns_dir, cfg->netns_prefix, id) < 0)
                *ns_path = NULL;
}

static bool is_nsfs(const char *path)
{
        struct statfs sf;
        return statfs(path, &sf) == 0 && (unsigned long)sf.f_type == NSFS_MAGIC_NUM;
}

/* A socket inside the namespace pinned at path, creating the namespace (what `ip netns add`
 * does: a bind mount of the namespace on an empty file) unless one is already there. */
static int netns_socket(const char *path, struct ck_error **reterr)
{
        _cleanup_close_ int fd = -1;
        int r;

        if (is_nsfs(path))
                return nl_open_in_netns(path, false, reterr);
        fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot create %s", path);
        r = nl_open_in_netns(path, true, reterr);
        if (r < 0)
                (void)unlink(path);
        return r;
}

/* The container's side, through a socket inside its namespace: lo up, eth0 with its address,
 * up, default route through the gateway. */
static int netns_configure(int fd, uint32_t addr, const struct net_subnet *sn)
{
        struct nl_msg m;
        int r, ifindex = 0;

        if ((r = nl_build_link_up(&m, 1, "lo")) < 0 || (r = nl_call(fd, &m, NULL)) < 0)
                return r;
        if ((r = nl_build_link_get(&m, 2, "eth0")) < 0 || (r = nl_call(fd, &m, &ifindex)) < 0)
                return r;
        if ((r = nl_build_addr_replace(&m, 3, ifindex, addr, sn->prefix)) < 0 ||
            (r = nl_call(fd, &m, NULL)) < 0)
                return r;
        if ((r = nl_build_link_up(&m, 4, "eth0")) < 0 || (r = nl_call(fd, &m, NULL)) < 0)
                return r;
        if ((r = nl_build_route_default(&m, 5, ifindex, net_gateway(sn))) < 0 ||
            (r = nl_call(fd, &m, NULL)) < 0)
                return r;
        return 0;
}

int net_container_setup(const struct net_config *cfg, const char *id, const struct runtime_port *ports,
                        size_t n_ports, char ret_ip[16], char **ret_netns_path, struct ck_error **reterr)
{
        _cleanup_close_ int leases = -1, nsfd = -1, nssock = -1, hostsock = -1;
        _cleanup_free_ char *ns_path = NULL;
        char host[16], ip[16];
        struct net_subnet sn;
        struct in_addr a;
        struct nl_msg m;
        int r, bridge;

        if (net_subnet_parse(cfg->subnet, &sn) < 0)
                return ck_error_set(reterr, -EINVAL, "invalid subnet %s", cfg->subnet);
        if (n_ports > NET_PORTS_MAX)
                return ck_error_set(reterr, -E2BIG, "more than %d published ports", NET_PORTS_MAX);
        r = net_check_conflicts(cfg, id, ports, n_ports, reterr);
        if (r < 0)
                return r;
        names_for(cfg, id, host, &ns_path);
        if (!ns_path)
                return -ENOMEM;
        leases = net_state_dir_open(cfg, "leases", reterr);
        if (leases < 0)
                return leases;
        r = net_lease_acquire(leases, &sn, id, ip, reterr);
        if (r < 0)
                return r;
        if (inet_pton(AF_INET, ip, &a) != 1)
                return ck_error_set(reterr, -EINVAL, "bad lease %s", ip);
        bridge = (int)if_nametoindex(cfg->bridge);
        if (bridge <= 0)
                return ck_error_errno(reterr, -ENODEV, "bridge %s is missing", cfg->bridge);

        nssock = netns_socket(ns_path, reterr);
        if (nssock < 0)
                return nssock;
        nsfd = open(ns_path, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", ns_path);
        hostsock = nl_open(reterr);
        if (hostsock < 0)
                return hostsock;
        /* A veth left by an interrupted earlier attempt is replaced (its peer goes with it). */
        if (link_exists(host) && nl_build_link_del(&m, 1, host) >= 0)
                (void)nl_call(hostsock, &m, NULL);
        /* One request makes the pair: the host end attached to the bridge and up, the peer
         * created as eth0 directly inside the container's namespace. */
        r = nl_build_veth_add(&m, 2, host, bridge, "eth0", nsfd);
        if (r >= 0)
                r = nl_call(hostsock, &m, NULL);
        if (r < 0)
                return ck_error_errno(reterr, r, "network for %s: cannot create veth %s", id, host);
        r = netns_configure(nssock, ntohl(a.s_addr), &sn);
        if (r < 0)
                return ck_error_errno(reterr, r, "network for %s: cannot configure eth0 in %s", id, ns_path);
        r = net_entry_write(cfg, id, ip, ports, n_ports, reterr);
        if (r < 0)
                return r;
        r = net_apply(cfg, reterr);
        if (r < 0)
                return r;
        memcpy(ret_ip, ip, 16);
        *ret_netns_path = TAKE_PTR(ns_path);
        return 0;
}

int net_container_teardown(const struct net_config *cfg, const char *id, struct ck_error **reterr)
{
        _cleanup_close_ int leases = -1, cdir = -1;
        _cleanup_free_ char *ns_path = NULL, *name = NULL;
        char host[16];
        struct nl_msg m;
        int r;

        names_for(cfg, id, host, &ns_path);
        if (!ns_path || asprintf(&name, "%s.json", id) < 0)
                return -ENOMEM;
        if (link_exists(host)) {
                r = nl_build_link_del(&m, 1, host);
                if (r >= 0)
                        r = nl_host_call(&m, NULL, reterr);
                if (r < 0 && r != -ENODEV && link_exists(host))
                        return ck_error_errno(reterr, r, "cannot remove veth %s", host);
        }
        if (is_nsfs(ns_path) && umount2(ns_path, MNT_DETACH) < 0)
                return ck_error_errno(reterr, -errno, "cannot unmount %s", ns_path);
        if (unlink(ns_path) < 0 && errno != ENOENT)
                return ck_error_errno(reterr, -errno, "cannot remove %s", ns_path);
        cdir = net_state_dir_open(cfg, "containers", reterr);
        if (cdir < 0)
                return cdir;
        if (unlinkat(cdir, name, 0) < 0 && errno != ENOENT)
                return ck_error_errno(reterr, -errno, "cannot remove port state of %s", id);
        r = net_apply(cfg, reterr);
        if (r < 0)
                return r;
        leases = net_state_dir_open(cfg, "leases", reterr);
        if (leases < 0)
                return leases;
        return net_lease_release(leases, id);
}

int net_teardown(const struct net_config *cfg, struct ck_error **reterr)
{
        struct net_entry *e = NULL;
        size_t n = 0;
        _cleanup_free_ char *script = NULL;
        int r;

        r = net_entries_load(cfg, &e, &n, reterr);
        if (r < 0)
                return r;
        net_entries_free(e, n);
        if (n > 0)
                return ck_error_set(reterr, -EBUSY, "%zu containers still have network state", n);
        if (!net_ifname_valid(cfg->nft_table))
                return ck_error_set(reterr, -EINVAL, "invalid nft table name");
        /* Create-then-delete: valid whether or not the table exists. */
        if (asprintf(&script, "table inet %s {}\ndelete table inet %s\n", cfg->nft_table, cfg->nft_table) <
            0)
                return -ENOMEM;
        (void)net_nft_run(cfg, script, NULL);
        if (link_exists(cfg->bridge)) {
                struct nl_msg m;
                r = nl_build_link_del(&m, 1, cfg->bridge);
                if (r >= 0)
                        r = nl_host_call(&m, NULL, reterr);
                if (r < 0 && r != -ENODEV)
                        return ck_error_errno(reterr, r, "cannot remove bridge %s", cfg->bridge);
        }
        return 0;
}
