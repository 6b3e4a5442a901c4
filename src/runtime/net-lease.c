/* Container addresses: the subnet ("a.b.c.d/8..30"), dotted-quad formatting, and the lease
 * files under <run_dir>/net/leases, one per address (created O_EXCL: the allocation itself),
 * each holding the ID of the container it belongs to. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "net.h"
#include "parse.h"

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
