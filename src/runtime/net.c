/* Container networking: netns, veth, bridge, address leases and the nftables table. See net.h.
 *
 * Links, addresses and routes are set over rtnetlink in-process (netlink.c): no `ip` process on
 * the start path. The container's end of the veth pair is created directly inside its namespace,
 * which is configured through a socket opened there, so namespaces need not live in /run/netns.
 * nftables is driven through libnftables in-process, with one context kept for the daemon's
 * life: creating and freeing a context (or running `nft`) costs tens of milliseconds, running a
 * script on a warm one about one. */
#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "exec.h"
#include "fs.h"
#include "json.h"
#include "net.h"
#include "netlink.h"
#include "nft-table.h"
#include "parse.h"

#define NSFS_MAGIC_NUM 0x6e736673

int net_subnet_parse(const char *s, struct net_subnet *ret)
{
        const char *slash = s ? strchr(s, '/') : NULL;
        char addr[16];
        struct in_addr a;
        uint64_t prefix;
        uint32_t base, mask;

        if (!slash || (size_t)(slash - s) >= sizeof(addr))
                return -EINVAL;
        memcpy(addr, s, (size_t)(slash - s));
        addr[slash - s] = 0;
        if (inet_pton(AF_INET, addr, &a) != 1 || ck_parse_uint(slash + 1, 30, &prefix) < 0 || prefix < 8)
                return -EINVAL;
        base = ntohl(a.s_addr);
        mask = prefix == 0 ? 0 : ~0u << (32 - prefix);
        if (base & ~mask)
                return -EINVAL;
        *ret = (struct net_subnet){.base = base, .prefix = (unsigned)prefix};
        return 0;
}

void net_addr_format(uint32_t a, char out[16])
{
        snprintf(out, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

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

/* Reads a lease file's owner. */
static int lease_owner(int dirfd, const char *name, char *out, size_t outlen)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r = ck_read_file_at(dirfd, name, 128, &buf, &len, NULL);
        if (r < 0)
                return r;
        if (len == 0 || len >= outlen)
                return -EBADMSG;
        memcpy(out, buf, len);
        out[len] = 0;
        return 0;
}

int net_lease_acquire(int leases_dirfd, const struct net_subnet *sn, const char *id, char ret_ip[16],
                      struct ck_error **reterr)
{
        uint32_t size = 1u << (32 - sn->prefix);
        DIR *d;
        struct dirent *de;

        /* An existing lease first: restarts and repeated runs keep their address. */
        d = ck_opendir_at(leases_dirfd, ".");
        if (!d)
                return ck_error_errno(reterr, -errno, "leases");
        while ((de = readdir(d))) {
                char owner[80];
                if (de->d_name[0] == '.' || lease_owner(leases_dirfd, de->d_name, owner, sizeof(owner)) < 0)
                        continue;
                if (strcmp(owner, id) == 0 && strlen(de->d_name) < 16) {
                        snprintf(ret_ip, 16, "%s", de->d_name);
                        closedir(d);
                        return 0;
                }
        }
        closedir(d);

        for (uint32_t host = 2; host + 1 < size; host++) {
                char ip[16];
                _cleanup_close_ int fd = -1;

                net_addr_format(sn->base + host, ip);
                fd = openat(leases_dirfd, ip, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0 && errno == EEXIST)
                        continue;
                if (fd < 0)
                        return ck_error_errno(reterr, -errno, "cannot create lease %s", ip);
                if (ck_write_all(fd, id, strlen(id)) < 0) {
                        int r = -errno;
                        (void)unlinkat(leases_dirfd, ip, 0);
                        return ck_error_errno(reterr, r, "cannot write lease %s", ip);
                }
                memcpy(ret_ip, ip, 16);
                return 0;
        }
        return ck_error_set(reterr, -EADDRNOTAVAIL, "no free address left in the container subnet");
}

int net_lease_release(int leases_dirfd, const char *id)
{
        DIR *d = ck_opendir_at(leases_dirfd, ".");
        struct dirent *de;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char owner[80];
                if (de->d_name[0] == '.' || lease_owner(leases_dirfd, de->d_name, owner, sizeof(owner)) < 0)
                        continue;
                if (strcmp(owner, id) == 0)
                        (void)unlinkat(leases_dirfd, de->d_name, 0);
        }
        closedir(d);
        return 0;
}

void net_entries_free(struct net_entry *e, size_t n)
{
        for (size_t i = 0; e && i < n; i++)
                free(e[i].ports);
        free(e);
}

int net_nft_script(const struct net_config *cfg, const struct net_subnet *sn, const struct net_entry *e,
                   size_t n, char **ret, struct ck_error **reterr)
{
        _cleanup_buf_ struct ck_buf b;
        const char *t = cfg->nft_table, *br = cfg->bridge;
        char base[16], gw[16];
        int r = 0;

        if (!net_ifname_valid(t) || !net_ifname_valid(br))
                return ck_error_set(reterr, -EINVAL, "invalid nft table or bridge name");
        net_addr_format(sn->base, base);
        net_addr_format(net_gateway(sn), gw);
        ck_buf_init(&b, 4u << 20);
        /* Creating then deleting makes the delete valid whether or not the table exists; the
         * whole script is one transaction. */
        r |= ck_buf_printf(&b, "table inet %s {}\ndelete table inet %s\n", t, t);
        if (n == 0)
                goto done;
        r |= ck_buf_printf(&b, "table inet %s {\n", t);
        for (int hook = 0; hook < 2; hook++) {
                r |= ck_buf_printf(&b, "\tchain %s {\n\t\ttype nat hook %s priority -100; policy accept;\n",
                                   hook ? "output" : "prerouting", hook ? "output" : "prerouting");
                for (size_t i = 0; i < n; i++)
                        for (size_t k = 0; k < e[i].n_ports; k++) {
                                const struct runtime_port *p = &e[i].ports[k];
                                struct in_addr a;
                                if (inet_pton(AF_INET, e[i].ip, &a) != 1)
                                        return ck_error_set(reterr, -EINVAL, "bad container address");
                                r |= ck_buf_printf(&b,
                                                   "\t\tfib daddr type local %s dport %u dnat ip to %s:%u\n",
                                                   p->udp ? "udp" : "tcp", p->published, e[i].ip, p->target);
                        }
                r |= ck_buf_printf(&b, "\t}\n");
        }
        r |= ck_buf_printf(
                &b,
                "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
                /* 127.0.0.1:<published> reaches the container (route_localnet on the bridge);
                 * the reply must come back to an address the container can route to. */
                "\t\toifname \"%s\" ip saddr 127.0.0.0/8 masquerade\n"
                "\t\tip saddr %s/%u oifname != \"%s\" masquerade\n\t}\n",
                br, base, sn->prefix, br);
        r |= ck_buf_printf(
                &b,
                "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n"
                "\t\tiifname \"%s\" oifname != \"%s\" accept\n"
                "\t\toifname \"%s\" ct state established,related accept\n"
                "\t\toifname \"%s\" ct status dnat accept\n"
                "\t\toifname \"%s\" drop\n\t}\n",
                br, br, br, br, br);
        /* route_localnet on the bridge (needed for 127.0.0.1:<published>) also stops the kernel
         * from treating a packet from the bridge to 127.0.0.0/8 as martian: a container that
         * sends one (a raw socket, or a route of its own) would reach services the TD binds to
         * loopback (CVE-2020-8558). Only what our own DNAT rewrote may arrive: the replies of
         * host connections to 127.0.0.1:<published> (de-masqueraded back to 127.0.0.1). */
        r |= ck_buf_printf(&b,
                           "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
                           "\t\tiifname \"%s\" ip daddr 127.0.0.0/8 ct status dnat accept\n"
                           "\t\tiifname \"%s\" ip daddr 127.0.0.0/8 drop\n\t}\n",
                           br, br);
        /* Packets from outside addressed straight to a container (not to a published port) never
         * reach it, whatever the forward policy of other tables. */
        r |= ck_buf_printf(
                &b,
                "\tchain raw_prerouting {\n\t\ttype filter hook prerouting priority raw; policy accept;\n"
                "\t\tiifname != \"%s\" ip daddr %s/%u ip daddr != %s drop\n\t}\n}\n",
                br, base, sn->prefix, gw);
done:
        if (r)
                return ck_error_set(reterr, -E2BIG, "nft script too large");
        *ret = (char *)ck_buf_take(&b, NULL);
        return *ret ? 0 : -ENOMEM;
}

/* ---- state files ---- */

static int open_state_dir(const struct net_config *cfg, const char *sub, struct ck_error **reterr)
{
        _cleanup_free_ char *p = NULL;
        int fd;

        if (asprintf(&p, "%s/%s", cfg->state_dir, sub) < 0)
                return -ENOMEM;
        if (ck_mkdir_p(p, 0700) < 0)
                return ck_error_errno(reterr, -errno, "cannot create %s", p);
        fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", p);
        return fd;
}

static int entry_parse(const uint8_t *buf, size_t len, struct net_entry *ret)
{
        _cleanup_json_ json_t *j = NULL;
        struct net_entry e = {0};
        const char *ip;
        json_t *ports, *p;
        size_t i;

        if (ck_json_loadb(buf, len, 1u << 20, &j, NULL) < 0 || ck_json_get_string(j, "ip", &ip, NULL) < 0 ||
            strlen(ip) >= sizeof(e.ip) || ck_json_get_array(j, "ports", &ports, NULL) < 0 ||
            json_array_size(ports) > NET_PORTS_MAX)
                return -EBADMSG;
        snprintf(e.ip, sizeof(e.ip), "%s", ip);
        e.ports = calloc(json_array_size(ports) + 1, sizeof(*e.ports));
        if (!e.ports)
                return -ENOMEM;
        json_array_foreach(ports, i, p)
        {
                uint64_t t, pub;
                bool udp;
                if (ck_json_get_uint(p, "target", 65535, &t, NULL) < 0 ||
                    ck_json_get_uint(p, "published", 65535, &pub, NULL) < 0 ||
                    ck_json_get_bool(p, "udp", &udp, NULL) < 0) {
                        free(e.ports);
                        return -EBADMSG;
                }
                e.ports[i] =
                        (struct runtime_port){.target = (uint16_t)t, .published = (uint16_t)pub, .udp = udp};
        }
        e.n_ports = json_array_size(ports);
        *ret = e;
        return 0;
}

static int entries_load(const struct net_config *cfg, struct net_entry **ret, size_t *ret_n,
                        struct ck_error **reterr)
{
        _cleanup_close_ int dfd = open_state_dir(cfg, "containers", reterr);
        struct net_entry *v = NULL;
        size_t n = 0;
        struct dirent *de;
        DIR *d;

        if (dfd < 0)
                return dfd;
        d = ck_opendir_at(dfd, ".");
        if (!d)
                return ck_error_errno(reterr, -errno, "containers dir");
        while ((de = readdir(d))) {
                _cleanup_free_ uint8_t *buf = NULL;
                size_t len, nl = strlen(de->d_name);
                struct net_entry e;
                struct net_entry *nv;

                if (nl < 6 || nl > 64 + 5 || strcmp(de->d_name + nl - 5, ".json") != 0)
                        continue;
                if (ck_read_file_at(dfd, de->d_name, 1u << 20, &buf, &len, NULL) < 0 ||
                    entry_parse(buf, len, &e) < 0)
                        continue;
                snprintf(e.id, sizeof(e.id), "%.*s", (int)(nl - 5), de->d_name);
                nv = realloc(v, (n + 1) * sizeof(*v));
                if (!nv) {
                        free(e.ports);
                        net_entries_free(v, n);
                        closedir(d);
                        return -ENOMEM;
                }
                v = nv;
                v[n++] = e;
        }
        closedir(d);
        *ret = v;
        *ret_n = n;
        return 0;
}

/* Serialises load + nft across threads and processes: every writer of a state file applies
 * after writing, so the apply that runs last has seen every write. */
static int net_lock(const struct net_config *cfg, struct ck_error **reterr)
{
        _cleanup_free_ char *p = NULL;
        int fd;

        if (asprintf(&p, "%s/lock", cfg->state_dir) < 0)
                return -ENOMEM;
        fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", p);
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        int r = -errno;
                        close(fd);
                        return ck_error_errno(reterr, r, "cannot lock %s", p);
                }
        return fd;
}

struct net_nft {
        pthread_mutex_t lock; /* a context is not thread-safe */
        struct nft_ctx *ctx;  /* made at the first run that needs one */
};

#define FDS_MAX 64

/* The fds (>= 3) without FD_CLOEXEC, at most FDS_MAX of them; returns how many. */
static size_t fds_inheritable(int out[FDS_MAX])
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        size_t n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)) && n < FDS_MAX) {
                uint64_t v;
                int fl;
                if (ck_parse_uint(de->d_name, INT32_MAX, &v) < 0 || v < 3 || (int)v == dirfd(d))
                        continue;
                fl = fcntl((int)v, F_GETFD);
                if (fl >= 0 && !(fl & FD_CLOEXEC))
                        out[n++] = (int)v;
        }
        closedir(d);
        return n;
}

/* libnftables opens its netlink socket without SOCK_CLOEXEC: without this, every shim and
 * helper conkerd starts would inherit a netfilter socket. Marks the inheritable fds that are
 * not in before[] (the ones libnftables just opened) close-on-exec. */
static void fds_cloexec_new(const int *before, size_t n_before)
{
        int now[FDS_MAX];
        size_t n = fds_inheritable(now);

        for (size_t i = 0; i < n; i++) {
                bool old = false;
                for (size_t k = 0; k < n_before && !old; k++)
                        old = before[k] == now[i];
                if (!old)
                        (void)fcntl(now[i], F_SETFD, FD_CLOEXEC);
        }
}

static struct nft_ctx *nft_ctx_make(void)
{
        int before[FDS_MAX];
        size_t n_before = fds_inheritable(before);
        struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);

        fds_cloexec_new(before, n_before);
        if (!ctx)
                return NULL;
        /* Output and errors go to buffers, never to conkerd's stdout/stderr. */
        if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0) {
                nft_ctx_free(ctx);
                return NULL;
        }
        return ctx;
}

/* The context is made at the first run, not here: a conkerd with no container never needs
 * one (net_apply() asks the kernel directly whether there is a table to remove), and a context
 * and its first run leave ~0.6 MB of libnftables resident. Making one costs ~0.15 ms; freeing
 * one ~20 ms (its netlink socket), which is why it is then kept. */
struct net_nft *net_nft_new(void)
{
        struct net_nft *n = calloc(1, sizeof(*n));

        if (!n)
                return NULL;
        pthread_mutex_init(&n->lock, NULL);
        return n;
}

void net_nft_free(struct net_nft *n)
{
        if (!n)
                return;
        if (n->ctx)
                nft_ctx_free(n->ctx);
        pthread_mutex_destroy(&n->lock);
        free(n);
}

/* Runs one nft script as one transaction, on cfg's context or (without one) a temporary one. */
static int nft_run(const struct net_config *cfg, const char *script, struct ck_error **reterr)
{
        struct nft_ctx *tmp = NULL, *ctx;
        int before[FDS_MAX];
        size_t n_before;
        const char *msg;
        int r;

        if (cfg->nft) {
                pthread_mutex_lock(&cfg->nft->lock);
                if (!cfg->nft->ctx)
                        cfg->nft->ctx = nft_ctx_make();
                ctx = cfg->nft->ctx;
                if (!ctx) {
                        pthread_mutex_unlock(&cfg->nft->lock);
                        return ck_error_set(reterr, -ENOMEM, "cannot create an nftables context");
                }
        } else {
                ctx = tmp = nft_ctx_make();
                if (!ctx)
                        return ck_error_set(reterr, -ENOMEM, "cannot create an nftables context");
        }
        n_before = fds_inheritable(before);
        r = nft_run_cmd_from_buffer(ctx, script);
        /* In case a run (re)opened a socket. */
        fds_cloexec_new(before, n_before);
        /* Reading the buffers also empties them for the next run. */
        (void)nft_ctx_get_output_buffer(ctx);
        msg = nft_ctx_get_error_buffer(ctx);
        if (r != 0) {
                size_t l = msg ? strcspn(msg, "\n") : 0;
                r = ck_error_set(reterr, -EIO, "%.*s", (int)(l > 512 ? 512 : l), l ? msg : "nft failed");
        }
        if (tmp) {
                nft_ctx_free(tmp);
        } else {
                /* libnftables keeps the cache the run fetched (every table on the host, with a
                 * 128 KiB hash per table and kind) until its next run, and our own transaction
                 * has made it stale already. A run with no command and no cache needs sees the
                 * new generation and drops it; one netlink request. */
                (void)nft_run_cmd_from_buffer(ctx, "");
                (void)nft_ctx_get_output_buffer(ctx);
                (void)nft_ctx_get_error_buffer(ctx);
                pthread_mutex_unlock(&cfg->nft->lock);
        }
        /* A run allocates and frees about a megabyte (parser, cache refresh); give it back
         * rather than keep it in conkerd's idle footprint. */
        (void)malloc_trim(0);
        return r;
}

int net_apply(const struct net_config *cfg, struct ck_error **reterr)
{
        _cleanup_close_ int lock = net_lock(cfg, reterr);
        struct net_entry *e = NULL;
        size_t n = 0;
        _cleanup_free_ char *script = NULL;
        struct net_subnet sn;
        int r;

        if (lock < 0)
                return lock;
        if (net_subnet_parse(cfg->subnet, &sn) < 0)
                return ck_error_set(reterr, -EINVAL, "invalid subnet %s", cfg->subnet);
        r = entries_load(cfg, &e, &n, reterr);
        if (r < 0)
                return r;
        /* No container: the script would only remove our table. When the kernel says there is
         * none, the end state is already that; any other answer runs the script as before. */
        if (n == 0 && net_ifname_valid(cfg->nft_table) && nft_table_exists(cfg->nft_table, NULL) == 0) {
                net_entries_free(e, n);
                return 0;
        }
        r = net_nft_script(cfg, &sn, e, n, &script, reterr);
        net_entries_free(e, n);
        if (r < 0)
                return r;
        r = nft_run(cfg, script, reterr);
        return r < 0 ? ck_error_prefix(reterr, r, "nftables") : 0;
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

static int entry_write(const struct net_config *cfg, const char *id, const char *ip,
                       const struct runtime_port *ports, size_t n, struct ck_error **reterr)
{
        _cleanup_close_ int dfd = open_state_dir(cfg, "containers", reterr);
        _cleanup_json_ json_t *j = json_pack("{s:s,s:[]}", "ip", ip, "ports");
        _cleanup_free_ char *txt = NULL, *name = NULL;

        if (dfd < 0)
                return dfd;
        if (!j || asprintf(&name, "%s.json", id) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(json_object_get(j, "ports"),
                                          json_pack("{s:i,s:i,s:b}", "target", ports[i].target, "published",
                                                    ports[i].published, "udp", ports[i].udp)) < 0)
                        return -ENOMEM;
        txt = ck_json_dump(j);
        if (!txt)
                return -ENOMEM;
        /* Under the run dir (tmpfs): it cannot outlive a reboot, so an fsync buys nothing. */
        return ck_write_file_replace(dfd, name, txt, strlen(txt), 0600, reterr);
}

int net_check_conflicts(const struct net_config *cfg, const char *id, const struct runtime_port *ports,
                        size_t n, struct ck_error **reterr)
{
        struct net_entry *e = NULL;
        size_t ne = 0;
        int r = entries_load(cfg, &e, &ne, reterr);

        if (r < 0)
                return r;
        /* Interface and namespace names carry the first 12 ID characters. */
        for (size_t c = 0; c < ne && r == 0; c++)
                if (strcmp(e[c].id, id) != 0 && strncmp(e[c].id, id, 12) == 0)
                        r = ck_error_set(reterr, -EEXIST,
                                         "container %s shares its first 12 characters with %s", id, e[c].id);
        for (size_t i = 0; i < n && r == 0; i++) {
                for (size_t k = i + 1; k < n && r == 0; k++)
                        if (ports[i].published == ports[k].published && ports[i].udp == ports[k].udp)
                                r = ck_error_set(reterr, -EADDRINUSE, "port %u published twice",
                                                 ports[i].published);
                for (size_t c = 0; c < ne && r == 0; c++) {
                        if (strcmp(e[c].id, id) == 0)
                                continue;

                        for (size_t k = 0; k < e[c].n_ports && r == 0; k++)
                                if (e[c].ports[k].published == ports[i].published &&
                                    e[c].ports[k].udp == ports[i].udp)
                                        r = ck_error_set(reterr, -EADDRINUSE, "port %u is already published",
                                                         ports[i].published);
                }
        }
        net_entries_free(e, ne);
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
        leases = open_state_dir(cfg, "leases", reterr);
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
        r = entry_write(cfg, id, ip, ports, n_ports, reterr);
        if (r < 0)
                return r;
        r = net_apply(cfg, reterr);
        if (r < 0)
                return r;
        memcpy(ret_ip, ip, 16);
        *ret_netns_path = TAKE_PTR(ns_path);
        return 0;
}

void net_container_ip(const struct net_config *cfg, const char *id, char ret_ip[16])
{
        _cleanup_free_ char *p = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        struct net_entry e;
        size_t len;

        ret_ip[0] = 0;
        if (asprintf(&p, "%s/containers/%s.json", cfg->state_dir, id) < 0)
                return;
        if (ck_read_file(p, 1u << 20, &buf, &len, NULL) < 0 || entry_parse(buf, len, &e) < 0)
                return;
        memcpy(ret_ip, e.ip, 16);
        free(e.ports);
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
        cdir = open_state_dir(cfg, "containers", reterr);
        if (cdir < 0)
                return cdir;
        if (unlinkat(cdir, name, 0) < 0 && errno != ENOENT)
                return ck_error_errno(reterr, -errno, "cannot remove port state of %s", id);
        r = net_apply(cfg, reterr);
        if (r < 0)
                return r;
        leases = open_state_dir(cfg, "leases", reterr);
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

        r = entries_load(cfg, &e, &n, reterr);
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
        (void)nft_run(cfg, script, NULL);
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
