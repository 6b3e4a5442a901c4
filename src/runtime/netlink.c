/* rtnetlink requests for container networking (see netlink.h): message building, the ack
 * parser, and the socket calls, including one made from inside another network namespace. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cleanup.h"
#include "netlink.h"

#define NL_REPLY_MAX   32768
#define NL_REPLY_READS 16
#define NL_TIMEOUT_S   10

void nl_msg_init(struct nl_msg *m, uint16_t type, uint16_t flags, uint32_t seq, const void *hdr,
                 size_t hdr_len)
{
        struct nlmsghdr h = {
                .nlmsg_type = type,
                .nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags),
                .nlmsg_seq = seq,
        };

        memset(m, 0, sizeof(*m));
        memcpy(m->buf, &h, sizeof(h));
        m->len = NLMSG_HDRLEN;
        nl_msg_put_raw(m, hdr, hdr_len);
}

void nl_msg_put_raw(struct nl_msg *m, const void *data, size_t len)
{
        size_t aligned = NLMSG_ALIGN(len);

        if (m->overflow || aligned > sizeof(m->buf) - m->len) {
                m->overflow = true;
                return;
        }
        if (len)
                memcpy(m->buf + m->len, data, len);
        memset(m->buf + m->len + len, 0, aligned - len);
        m->len += aligned;
}

void nl_msg_put(struct nl_msg *m, uint16_t type, const void *data, size_t len)
{
        struct nlattr a = {.nla_type = type};

        if (m->overflow || len > UINT16_MAX - NLA_HDRLEN ||
            NLA_HDRLEN + NLA_ALIGN(len) > sizeof(m->buf) - m->len) {
                m->overflow = true;
                return;
        }
        a.nla_len = (uint16_t)(NLA_HDRLEN + len);
        memcpy(m->buf + m->len, &a, sizeof(a));
        m->len += NLA_HDRLEN;
        nl_msg_put_raw(m, data, len);
}

void nl_msg_put_u32(struct nl_msg *m, uint16_t type, uint32_t v)
{
        nl_msg_put(m, type, &v, sizeof(v));
}

void nl_msg_put_str(struct nl_msg *m, uint16_t type, const char *s)
{
        nl_msg_put(m, type, s, strlen(s) + 1);
}

void nl_msg_nest_begin(struct nl_msg *m, uint16_t type)
{
        if (m->n_nest >= NL_NEST_MAX) {
                m->overflow = true;
                return;
        }
        m->nest[m->n_nest++] = m->len;
        nl_msg_put(m, type, NULL, 0);
}

void nl_msg_nest_end(struct nl_msg *m)
{
        struct nlattr a;
        size_t at;

        if (m->n_nest == 0) {
                m->overflow = true;
                return;
        }
        at = m->nest[--m->n_nest];
        if (m->overflow || m->len - at > UINT16_MAX) {
                m->overflow = true;
                return;
        }
        memcpy(&a, m->buf + at, sizeof(a));
        a.nla_len = (uint16_t)(m->len - at);
        memcpy(m->buf + at, &a, sizeof(a));
}

int nl_msg_finish(struct nl_msg *m)
{
        struct nlmsghdr h;

        if (m->overflow)
                return -E2BIG;
        if (m->n_nest)
                return -EINVAL;
        memcpy(&h, m->buf, sizeof(h));
        h.nlmsg_len = (uint32_t)m->len;
        memcpy(m->buf, &h, sizeof(h));
        return 0;
}

static bool name_ok(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        return n > 0 && n < IFNAMSIZ && !strchr(s, '/');
}

static void link_init(struct nl_msg *m, uint16_t type, uint16_t flags, uint32_t seq, unsigned ifi_flags)
{
        struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_flags = ifi_flags, .ifi_change = ifi_flags};
        nl_msg_init(m, type, flags, seq, &ifi, sizeof(ifi));
}

int nl_build_veth_add(struct nl_msg *m, uint32_t seq, const char *host, int master_ifindex, const char *peer,
                      int peer_netns_fd)
{
        struct ifinfomsg peer_ifi = {.ifi_family = AF_UNSPEC};

        if (!name_ok(host) || !name_ok(peer) || master_ifindex < 0 || peer_netns_fd < 0)
                return -EINVAL;
        link_init(m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, seq, IFF_UP);
        nl_msg_put_str(m, IFLA_IFNAME, host);
        if (master_ifindex > 0)
                nl_msg_put_u32(m, IFLA_MASTER, (uint32_t)master_ifindex);
        nl_msg_nest_begin(m, IFLA_LINKINFO);
        nl_msg_put_str(m, IFLA_INFO_KIND, "veth");
        nl_msg_nest_begin(m, IFLA_INFO_DATA);
        nl_msg_nest_begin(m, VETH_INFO_PEER);
        nl_msg_put_raw(m, &peer_ifi, sizeof(peer_ifi));
        nl_msg_put_str(m, IFLA_IFNAME, peer);
        nl_msg_put_u32(m, IFLA_NET_NS_FD, (uint32_t)peer_netns_fd);
        nl_msg_nest_end(m);
        nl_msg_nest_end(m);
        nl_msg_nest_end(m);
        return nl_msg_finish(m);
}

int nl_build_bridge_add(struct nl_msg *m, uint32_t seq, const char *name)
{
        if (!name_ok(name))
                return -EINVAL;
        link_init(m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, seq, 0);
        nl_msg_put_str(m, IFLA_IFNAME, name);
        nl_msg_nest_begin(m, IFLA_LINKINFO);
        nl_msg_put_str(m, IFLA_INFO_KIND, "bridge");
        nl_msg_nest_end(m);
        return nl_msg_finish(m);
}

int nl_build_link_up(struct nl_msg *m, uint32_t seq, const char *name)
{
        if (!name_ok(name))
                return -EINVAL;
        link_init(m, RTM_NEWLINK, 0, seq, IFF_UP);
        nl_msg_put_str(m, IFLA_IFNAME, name);
        return nl_msg_finish(m);
}

int nl_build_link_del(struct nl_msg *m, uint32_t seq, const char *name)
{
        if (!name_ok(name))
                return -EINVAL;
        link_init(m, RTM_DELLINK, 0, seq, 0);
        nl_msg_put_str(m, IFLA_IFNAME, name);
        return nl_msg_finish(m);
}

int nl_build_link_get(struct nl_msg *m, uint32_t seq, const char *name)
{
        if (!name_ok(name))
                return -EINVAL;
        link_init(m, RTM_GETLINK, 0, seq, 0);
        nl_msg_put_str(m, IFLA_IFNAME, name);
        /* Only the basics: no statistics or VF lists in the reply. */
        nl_msg_put_u32(m, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        return nl_msg_finish(m);
}

int nl_build_addr_replace(struct nl_msg *m, uint32_t seq, int ifindex, uint32_t addr, unsigned prefix)
{
        struct ifaddrmsg ifa = {
                .ifa_family = AF_INET,
                .ifa_prefixlen = (uint8_t)prefix,
                .ifa_scope = RT_SCOPE_UNIVERSE,
                .ifa_index = (uint32_t)ifindex,
        };
        uint32_t be = htonl(addr);

        if (ifindex <= 0 || prefix > 32)
                return -EINVAL;
        nl_msg_init(m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, seq, &ifa, sizeof(ifa));
        nl_msg_put(m, IFA_LOCAL, &be, sizeof(be));
        nl_msg_put(m, IFA_ADDRESS, &be, sizeof(be));
        return nl_msg_finish(m);
}

int nl_build_route_default(struct nl_msg *m, uint32_t seq, int ifindex, uint32_t gw)
{
        struct rtmsg rt = {
                .rtm_family = AF_INET,
                .rtm_table = RT_TABLE_MAIN,
                .rtm_protocol = RTPROT_BOOT,
                .rtm_scope = RT_SCOPE_UNIVERSE,
                .rtm_type = RTN_UNICAST,
        };
        uint32_t be = htonl(gw);

        if (ifindex <= 0)
                return -EINVAL;
        nl_msg_init(m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, seq, &rt, sizeof(rt));
        nl_msg_put(m, RTA_GATEWAY, &be, sizeof(be));
        nl_msg_put_u32(m, RTA_OIF, (uint32_t)ifindex);
        return nl_msg_finish(m);
}

int nl_reply_parse(const uint8_t *buf, size_t len, uint32_t seq, int *ret_error, int *ret_ifindex)
{
        size_t off = 0;
        int error = 0, ifindex = 0;
        bool acked = false;

        /* The whole datagram is checked before anything is taken from it. */
        while (off < len) {
                struct nlmsghdr h;
                size_t mlen, payload;

                if (len - off < sizeof(h))
                        return -EBADMSG;
                memcpy(&h, buf + off, sizeof(h));
                mlen = h.nlmsg_len;
                if (mlen < sizeof(h) || mlen > len - off)
                        return -EBADMSG;
                payload = mlen - NLMSG_HDRLEN;
                if (h.nlmsg_seq == seq && h.nlmsg_type == NLMSG_ERROR) {
                        struct nlmsgerr e;
                        if (payload < sizeof(e) || acked)
                                return -EBADMSG;
                        memcpy(&e, buf + off + NLMSG_HDRLEN, sizeof(e));
                        if (e.error > 0 || e.error < -4095)
                                return -EBADMSG;
                        error = e.error;
                        acked = true;
                } else if (h.nlmsg_seq == seq && h.nlmsg_type == RTM_NEWLINK) {
                        struct ifinfomsg ifi;
                        if (payload < sizeof(ifi))
                                return -EBADMSG;
                        memcpy(&ifi, buf + off + NLMSG_HDRLEN, sizeof(ifi));
                        if (ifi.ifi_index <= 0)
                                return -EBADMSG;
                        ifindex = ifi.ifi_index;
                }
                /* The last message of a datagram need not be padded. */
                off += NLMSG_ALIGN(mlen) < len - off ? NLMSG_ALIGN(mlen) : len - off;
        }
        if (ifindex > 0 && ret_ifindex)
                *ret_ifindex = ifindex;
        if (!acked)
                return 0;
        *ret_error = error;
        return 1;
}

int nl_open(struct ck_error **reterr)
{
        return nl_open_protocol(NETLINK_ROUTE, reterr);
}

int nl_open_protocol(int protocol, struct ck_error **reterr)
{
        struct timeval tv = {.tv_sec = NL_TIMEOUT_S};
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);

        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open a netlink socket (protocol %d)",
                                      protocol);
        /* The kernel answers synchronously; the timeout only guards against a lost ack. */
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return fd;
}

int nl_call(int fd, struct nl_msg *m, int *ret_ifindex)
{
        _cleanup_free_ uint8_t *buf = NULL;
        struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
        struct nlmsghdr h;
        int ifindex = 0, error = 0;

        if (m->len < NLMSG_HDRLEN || m->overflow)
                return -EINVAL;
        memcpy(&h, m->buf, sizeof(h));
        if (h.nlmsg_len != m->len)
                return -EINVAL;
        buf = malloc(NL_REPLY_MAX);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = sendto(fd, m->buf, m->len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
                if (n >= 0)
                        break;
                if (errno != EINTR)
                        return -errno;
        }
        for (int i = 0; i < NL_REPLY_READS; i++) {
                struct sockaddr_nl from;
                struct iovec iov = {.iov_base = buf, .iov_len = NL_REPLY_MAX};
                struct msghdr mh = {
                        .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1};
                ssize_t n = recvmsg(fd, &mh, 0);
                int r;

                if (n < 0 && errno == EINTR) {
                        i--;
                        continue;
                }
                if (n < 0)
                        return errno == EAGAIN ? -ETIMEDOUT : -errno;
                if (mh.msg_flags & MSG_TRUNC)
                        return -EBADMSG;
                /* Only the kernel (port 0) may answer. */
                if (mh.msg_namelen != sizeof(from) || from.nl_pid != 0)
                        continue;
                r = nl_reply_parse(buf, (size_t)n, h.nlmsg_seq, &error, &ifindex);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                if (error < 0)
                        return error;
                if (ret_ifindex) {
                        if (ifindex <= 0)
                                return -EBADMSG;
                        *ret_ifindex = ifindex;
                }
                return 0;
        }
        return -EBADMSG;
}

struct netns_job {
        const char *path;
        bool create;
        int fd;
        int error;
        const char *step;
};

static void *netns_thread(void *arg)
{
        struct netns_job *j = arg;

        if (j->create) {
                /* unshare() and setns() of CLONE_NEWNET affect only this thread, which ends here;
                 * the namespace lives on through the bind mount and the socket. */
                if (unshare(CLONE_NEWNET) < 0) {
                        j->error = -errno;
                        j->step = "unshare";
                        return NULL;
                }
                if (mount("/proc/thread-self/ns/net", j->path, NULL, MS_BIND, NULL) < 0) {
                        j->error = -errno;
                        j->step = "bind mount";
                        return NULL;
                }
        } else {
                _cleanup_close_ int nsfd = open(j->path, O_RDONLY | O_CLOEXEC);
                if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
                        j->error = -errno;
                        j->step = "setns";
                        return NULL;
                }
        }
        j->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (j->fd < 0) {
                j->error = -errno;
                j->step = "socket";
        }
        return NULL;
}

int nl_open_in_netns(const char *path, bool create, struct ck_error **reterr)
{
        struct netns_job j = {.path = path, .create = create, .fd = -1};
        struct timeval tv = {.tv_sec = NL_TIMEOUT_S};
        pthread_t t;
        int r;

        r = pthread_create(&t, NULL, netns_thread, &j);
        if (r != 0)
                return ck_error_errno(reterr, -r, "cannot start a thread for %s", path);
        r = pthread_join(t, NULL);
        if (r != 0) {
                /* Cannot happen for a joinable thread we own; never leave j on the stack to it. */
                abort();
        }
        if (j.error < 0)
                return ck_error_errno(reterr, j.error, "network namespace %s: %s", path, j.step);
        (void)setsockopt(j.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return j.fd;
}
