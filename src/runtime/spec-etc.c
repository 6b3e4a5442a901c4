/* The files a bundle gives the container's /etc: hostname, hosts and resolv.conf (the host's
 * minus loopback nameservers), bind-mounted by the spec (spec.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fs.h"
#include "spec.h"

/* 127.0.0.0/8 (as glibc reads it: "127." and any tail), or any spelling of ::1 or of a
 * v4-mapped 127.x: inside the container those name its own loopback, where nothing answers. */
static bool is_loopback_ns(const char *a, size_t n)
{
        char s[INET6_ADDRSTRLEN];
        struct in6_addr a6;

        if (n >= 4 && strncmp(a, "127.", 4) == 0)
                return true;
        if (n == 0 || n >= sizeof(s))
                return false;
        memcpy(s, a, n);
        s[n] = 0;
        return inet_pton(AF_INET6, s, &a6) == 1 &&
               (IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127));
}

int spec_resolv_filter(const char *buf, size_t len, char **ret)
{
        _cleanup_buf_ struct ck_buf out;
        size_t off = 0;
        bool any_ns = false;

        ck_buf_init(&out, 65536);
        while (off < len) {
                const char *line = buf + off;
                const char *nl = memchr(line, '\n', len - off);
                size_t l = nl ? (size_t)(nl - line) : len - off;
                const char *p = line;
                int r = 0;

                off += l + (nl ? 1 : 0);
                if (l >= 11 && strncmp(line, "nameserver", 10) == 0 &&
                    (line[10] == ' ' || line[10] == '\t')) {
                        size_t i = 10, s;
                        while (i < l && (p[i] == ' ' || p[i] == '\t'))
                                i++;
                        s = i;
                        while (i < l && p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
                                i++;
                        if (is_loopback_ns(p + s, i - s))
                                continue;
                        any_ns = true;
                }
                if (memchr(line, 0, l))
                        continue;
                r = ck_buf_append(&out, line, l);
                if (r >= 0)
                        r = ck_buf_append(&out, "\n", 1);
                if (r < 0)
                        return r;
        }
        if (!any_ns && ck_buf_append_str(&out, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n") < 0)
                return -ENOMEM;
        *ret = (char *)ck_buf_take(&out, NULL);
        return *ret ? 0 : -ENOMEM;
}

static bool hostname_valid(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > 63 || s[0] == '-' || s[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.'))
                        return false;
        }
        return true;
}

void spec_hostname(const struct runtime_spec *spec, char ret[64])
{
        if (hostname_valid(spec->name))
                snprintf(ret, 64, "%s", spec->name);
        else
                snprintf(ret, 64, "%.12s", spec->id);
}

int spec_write_etc(int bundlefd, const char *hostname, const char *ip, const char *host_resolv_path,
                   struct ck_error **reterr)
{
        _cleanup_free_ char *hosts = NULL, *hn = NULL, *resolv = NULL;
        _cleanup_free_ uint8_t *host_resolv = NULL;
        size_t rlen = 0;
        int r;

        if (asprintf(&hn, "%s\n", hostname) < 0 ||
            asprintf(&hosts,
                     "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                     "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                     "ff02::2\tip6-allrouters\n%s%s%s%s",
                     ip && *ip ? ip : "", ip && *ip ? "\t" : "", ip && *ip ? hostname : "",
                     ip && *ip ? "\n" : "") < 0)
                return -ENOMEM;
        /* Behind systemd-resolved's stub the real upstream list is in its own file. */
        r = ck_read_file(host_resolv_path, 65536, &host_resolv, &rlen, NULL);
        if (r < 0 && strcmp(host_resolv_path, "/etc/resolv.conf") == 0)
                r = ck_read_file("/run/systemd/resolve/resolv.conf", 65536, &host_resolv, &rlen, NULL);
        r = spec_resolv_filter(r < 0 ? "" : (const char *)host_resolv, r < 0 ? 0 : rlen, &resolv);
        if (r < 0)
                return ck_error_errno(reterr, r, "resolv.conf");
        /* No fsync: the bundle is written anew before every run and never outlives its container. */
        r = ck_write_file_replace(bundlefd, "hostname", hn, strlen(hn), 0644, reterr);
        if (r >= 0)
                r = ck_write_file_replace(bundlefd, "hosts", hosts, strlen(hosts), 0644, reterr);
        if (r >= 0)
                r = ck_write_file_replace(bundlefd, "resolv.conf", resolv, strlen(resolv), 0644, reterr);
        return r;
}
