/* Published ports and the nftables table: the per-container state files under
 * <run_dir>/net/containers (<id>.json: address and ports), the conflict checks, the nft script
 * made from them and net_apply, which replaces the table under a lock (run through net-nft.c;
 * asked first whether there is a table at all through nft-table.c). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "buf.h"
#include "fs.h"
#include "json.h"
#include "net-internal.h"
#include "nft-table.h"
#include "parse.h"

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

int net_state_dir_open(const struct net_config *cfg, const char *sub, struct ck_error **reterr)
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

int net_entries_load(const struct net_config *cfg, struct net_entry **ret, size_t *ret_n,
                     struct ck_error **reterr)
{
        _cleanup_close_ int dfd = net_state_dir_open(cfg, "containers", reterr);
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
        int r;

        if (lock < 0)
                return lock;
        if (net_subnet_parse(cfg->subnet, &sn) < 0)
                return ck_error_set(reterr, -EINVAL, "invalid subnet %s", cfg->subnet);
        r = net_entries_load(cfg, &e, &n, reterr);
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
        r = net_nft_run(cfg, script, reterr);
        return r < 0 ? ck_error_prefix(reterr, r, "nftables") : 0;
}

int net_entry_write(const struct net_config *cfg, const char *id, const char *ip,
                    const struct runtime_port *ports, size_t n, struct ck_error **reterr)
{
        _cleanup_close_ int dfd = net_state_dir_open(cfg, "containers", reterr);
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
        int r = net_entries_load(cfg, &e, &ne, reterr);

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
