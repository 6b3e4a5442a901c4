/* Container networking: netns, veth, bridge, address leases and the nftables table. See net.h.
 *
 * Every helper program (ip, nft) is run with an argv array through ck_exec(); inside a
 * container's namespace through setns() in the child, so namespaces need not live in /run/netns. */
#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <errno.h>
#include <fcntl.h>
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

int net_apply(const struct net_config *cfg, struct ck_error **reterr)
{
        _cleanup_close_ int lock = net_lock(cfg, reterr);
        struct net_entry *e = NULL;
        size_t n = 0;
        _cleanup_free_ char *script = NULL;
        struct net_subnet sn;
        struct ck_exec_opts o = CK_EXEC_OPTS_DEFAULT;
        char *argv[] = {"nft", "-f", "-", NULL};
        int r;

        if (lock < 0)
                return lock;
        if (net_subnet_parse(cfg->subnet, &sn) < 0)
                return ck_error_set(reterr, -EINVAL, "invalid subnet %s", cfg->subnet);
        r = entries_load(cfg, &e, &n, reterr);
        if (r < 0)
                return r;
        r = net_nft_script(cfg, &sn, e, n, &script, reterr);
        net_entries_free(e, n);
        if (r < 0)
                return r;
        o.stdin_data = script;
        o.stdin_len = strlen(script);
        r = ck_exec(argv, &o, NULL, NULL, reterr);
        return r < 0 ? ck_error_prefix(reterr, r, "nftables") : 0;
}

/* ---- sysctl, ip ---- */

static int write_sysctl(const char *path, const char *value)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return ck_write_all(fd, value, strlen(value));
}

static int ip_run(int netns_fd, struct ck_error **reterr, char *const *argv)
{
        struct ck_exec_opts o = CK_EXEC_OPTS_DEFAULT;
        o.netns_fd = netns_fd;
        return ck_exec(argv, &o, NULL, NULL, reterr);
}
#define IP(nsfd, err, ...) ip_run(nsfd, err, (char *const[]){"ip", __VA_ARGS__, NULL})

static int ip_batch(int netns_fd, const char *script, struct ck_error **reterr)
{
        struct ck_exec_opts o = CK_EXEC_OPTS_DEFAULT;
        char *argv[] = {"ip", "-batch", "-", NULL};

        o.netns_fd = netns_fd;
        o.stdin_data = script;
        o.stdin_len = strlen(script);
        return ck_exec(argv, &o, NULL, NULL, reterr);
}

/* Through the netns of the caller (sysfs may belong to another one). */
static bool link_exists(const char *name)
{
        return if_nametoindex(name) != 0;
}

int net_bridge_setup(const struct net_config *cfg, struct ck_error **reterr)
{
        _cleanup_free_ char *addr = NULL, *script = NULL;
        char gw[16], p[128];
        struct net_subnet sn;
        int r;

        if (!net_ifname_valid(cfg->bridge) || !net_ifname_valid(cfg->nft_table))
                return ck_error_set(reterr, -EINVAL, "invalid bridge or nft table name");
        if (net_subnet_parse(cfg->subnet, &sn) < 0)
                return ck_error_set(reterr, -EINVAL, "invalid subnet %s (a.b.c.d/8..30)", cfg->subnet);
        /* The namespace path goes into `ip -batch` scripts: no whitespace, quotes or escapes. */
        if (cfg->netns_dir[0] != '/' || strpbrk(cfg->netns_dir, " \t\n\r\"'\\#") ||
            strpbrk(cfg->netns_prefix, " \t\n\r\"'\\#/"))
                return ck_error_set(reterr, -EINVAL,
                                    "netns dir and prefix must not contain whitespace or quotes");
        if (ck_mkdir_p(cfg->state_dir, 0700) < 0 || ck_mkdir_p(cfg->netns_dir, 0755) < 0)
                return ck_error_errno(reterr, -errno, "cannot create %s or %s", cfg->state_dir,
                                      cfg->netns_dir);
        net_addr_format(net_gateway(&sn), gw);
        if (asprintf(&addr, "%s/%u", gw, sn.prefix) < 0)
                return -ENOMEM;
        if (!link_exists(cfg->bridge)) {
                r = IP(-1, reterr, "link", "add", (char *)cfg->bridge, "type", "bridge");
                if (r < 0 && !link_exists(cfg->bridge))
                        return ck_error_prefix(reterr, r, "bridge %s", cfg->bridge);
                if (reterr && *reterr) {
                        ck_error_free(*reterr);
                        *reterr = NULL;
                }
        }
        if (asprintf(&script, "addr replace %s dev %s\nlink set %s up\n", addr, cfg->bridge, cfg->bridge) <
            0)
                return -ENOMEM;
        r = ip_batch(-1, script, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "bridge %s", cfg->bridge);
        r = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1");
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot enable IPv4 forwarding");
        snprintf(p, sizeof(p), "/proc/sys/net/ipv4/conf/%s/route_localnet", cfg->bridge);
        r = write_sysctl(p, "1");
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot set %s", p);
        return 0;
}

static void names_for(const struct net_config *cfg, const char *id, char host[16], char peer[16],
                      char **ns_path)
{
        snprintf(host, 16, "ck%.12s", id);
        snprintf(peer, 16, "cp%.12s", id);
        if (asprintf(ns_path, "%s/%s%.12s", cfg->netns_dir, cfg->netns_prefix, id) < 0)
                *ns_path = NULL;
}

static bool is_nsfs(const char *path)
{
        struct statfs sf;
        return statfs(path, &sf) == 0 && (unsigned long)sf.f_type == NSFS_MAGIC_NUM;
}

/* A new network namespace pinned by a bind mount at path (what `ip netns add` does). */
static int netns_create(const char *path, struct ck_error **reterr)
{
        _cleanup_close_ int fd = -1;
        int status;
        pid_t pid;

        if (is_nsfs(path))
                return 0;
        fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot create %s", path);
        pid = fork();
        if (pid < 0)
                return ck_error_errno(reterr, -errno, "fork");
        if (pid == 0) {
                if (unshare(CLONE_NEWNET) < 0)
                        _exit(1);
                if (mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL) < 0)
                        _exit(2);
                _exit(0);
        }
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                (void)unlink(path);
                return ck_error_set(reterr, -EIO, "cannot create network namespace %s (step %d)", path,
                                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        return 0;
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
        return ck_write_file_atomic(dfd, name, txt, strlen(txt), 0600, reterr);
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

int net_container_setup(const struct net_config *cfg, const char *id, const struct runtime_port *ports,
                        size_t n_ports, char ret_ip[16], char **ret_netns_path, struct ck_error **reterr)
{
        _cleanup_close_ int leases = -1, nsfd = -1;
        _cleanup_free_ char *ns_path = NULL, *cidr = NULL, *host_script = NULL, *ns_script = NULL;
        char host[16], peer[16], ip[16], gw[16];
        struct net_subnet sn;
        int r;

        if (net_subnet_parse(cfg->subnet, &sn) < 0)
                return ck_error_set(reterr, -EINVAL, "invalid subnet %s", cfg->subnet);
        if (n_ports > NET_PORTS_MAX)
                return ck_error_set(reterr, -E2BIG, "more than %d published ports", NET_PORTS_MAX);
        r = net_check_conflicts(cfg, id, ports, n_ports, reterr);
        if (r < 0)
                return r;
        names_for(cfg, id, host, peer, &ns_path);
        if (!ns_path)
                return -ENOMEM;
        leases = open_state_dir(cfg, "leases", reterr);
        if (leases < 0)
                return leases;
        r = net_lease_acquire(leases, &sn, id, ip, reterr);
        if (r < 0)
                return r;
        net_addr_format(net_gateway(&sn), gw);
        if (asprintf(&cidr, "%s/%u", ip, sn.prefix) < 0)
                return -ENOMEM;

        r = netns_create(ns_path, reterr);
        if (r < 0)
                return r;
        nsfd = open(ns_path, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", ns_path);
        /* A veth left by an interrupted earlier attempt is replaced. */
        if (link_exists(host))
                (void)IP(-1, NULL, "link", "del", host);
        /* Two `ip -batch` runs (one per namespace) instead of nine processes: forks are what a
         * container start costs most here, and more so in a TD. */
        if (asprintf(&host_script,
                     "link add %s type veth peer name %s\nlink set %s netns %s\nlink set %s master %s\n"
                     "link set %s up\n",
                     host, peer, peer, ns_path, host, cfg->bridge, host) < 0 ||
            asprintf(&ns_script,
                     "link set lo up\nlink set %s name eth0\naddr add %s dev eth0\nlink set eth0 up\n"
                     "route add default via %s\n",
                     peer, cidr, gw) < 0)
                return -ENOMEM;
        if ((r = ip_batch(-1, host_script, reterr)) < 0 || (r = ip_batch(nsfd, ns_script, reterr)) < 0)
                return ck_error_prefix(reterr, r, "network for %s", id);
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
        char host[16], peer[16];
        int r;

        names_for(cfg, id, host, peer, &ns_path);
        if (!ns_path || asprintf(&name, "%s.json", id) < 0)
                return -ENOMEM;
        if (link_exists(host)) {
                r = IP(-1, reterr, "link", "del", host);
                if (r < 0 && link_exists(host))
                        return r;
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
        char *argv[] = {"nft", "delete", "table", "inet", (char *)cfg->nft_table, NULL};
        int r;

        r = entries_load(cfg, &e, &n, reterr);
        if (r < 0)
                return r;
        net_entries_free(e, n);
        if (n > 0)
                return ck_error_set(reterr, -EBUSY, "%zu containers still have network state", n);
        (void)ck_exec(argv, NULL, NULL, NULL, NULL);
        if (link_exists(cfg->bridge)) {
                r = IP(-1, reterr, "link", "del", (char *)cfg->bridge);
                if (r < 0)
                        return r;
        }
        return 0;
}
