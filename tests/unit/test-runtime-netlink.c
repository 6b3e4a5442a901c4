/* Unit tests for the rtnetlink client: the messages are decoded back and checked field by field,
 * the reply parser is fed good, error and malformed answers, and (as root) the real calls run in
 * a private network namespace of the test, so nothing on the host is touched. */
#include "cmocka-wrap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "netlink.h"

/* The attribute of type `type` inside [p, p + len), or NULL. */
static const struct nlattr *attr_find(const uint8_t *p, size_t len, uint16_t type)
{
        while (len >= NLA_HDRLEN) {
                struct nlattr a;
                memcpy(&a, p, sizeof(a));
                assert_true(a.nla_len >= NLA_HDRLEN && a.nla_len <= len);
                if ((a.nla_type & NLA_TYPE_MASK) == type)
                        return (const struct nlattr *)p;
                size_t step = (size_t)NLA_ALIGN(a.nla_len);
                if (step >= len)
                        break;
                len -= step;
                p += step;
        }
        return NULL;
}

static const uint8_t *attr_data(const struct nlattr *a)
{
        return (const uint8_t *)a + NLA_HDRLEN;
}

static size_t attr_len(const struct nlattr *a)
{
        return a->nla_len - NLA_HDRLEN;
}

static uint32_t attr_u32(const struct nlattr *a)
{
        uint32_t v;
        assert_int_equal(attr_len(a), 4);
        memcpy(&v, attr_data(a), 4);
        return v;
}

static void check_header(const struct nl_msg *m, uint16_t type, uint16_t flags, uint32_t seq)
{
        struct nlmsghdr h;
        memcpy(&h, m->buf, sizeof(h));
        assert_int_equal(h.nlmsg_len, m->len);
        assert_int_equal(h.nlmsg_type, type);
        assert_int_equal(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK | flags);
        assert_int_equal(h.nlmsg_seq, seq);
        assert_int_equal(m->len % 4, 0);
}

static void test_veth(void **state)
{
        struct nl_msg m;
        struct ifinfomsg ifi;
        const uint8_t *attrs;
        const struct nlattr *a, *info, *data, *peer;
        size_t alen;

        assert_int_equal(nl_build_veth_add(&m, 7, "ckabcdef012345", 12, "eth0", 9), 0);
        check_header(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 7);
        memcpy(&ifi, m.buf + NLMSG_HDRLEN, sizeof(ifi));
        assert_int_equal(ifi.ifi_flags, IFF_UP);
        assert_int_equal(ifi.ifi_change, IFF_UP);
        attrs = m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifi));
        alen = m.len - (size_t)(attrs - m.buf);

        a = attr_find(attrs, alen, IFLA_IFNAME);
        assert_non_null(a);
        assert_string_equal((const char *)attr_data(a), "ckabcdef012345");
        a = attr_find(attrs, alen, IFLA_MASTER);
        assert_non_null(a);
        assert_int_equal(attr_u32(a), 12);

        info = attr_find(attrs, alen, IFLA_LINKINFO);
        assert_non_null(info);
        a = attr_find(attr_data(info), attr_len(info), IFLA_INFO_KIND);
        assert_non_null(a);
        assert_string_equal((const char *)attr_data(a), "veth");
        data = attr_find(attr_data(info), attr_len(info), IFLA_INFO_DATA);
        assert_non_null(data);
        peer = attr_find(attr_data(data), attr_len(data), VETH_INFO_PEER);
        assert_non_null(peer);
        /* The peer: an ifinfomsg, then its own attributes. */
        assert_true(attr_len(peer) > sizeof(struct ifinfomsg));
        a = attr_find(attr_data(peer) + sizeof(struct ifinfomsg), attr_len(peer) - sizeof(struct ifinfomsg),
                      IFLA_IFNAME);
        assert_non_null(a);
        assert_string_equal((const char *)attr_data(a), "eth0");
        a = attr_find(attr_data(peer) + sizeof(struct ifinfomsg), attr_len(peer) - sizeof(struct ifinfomsg),
                      IFLA_NET_NS_FD);
        assert_non_null(a);
        assert_int_equal(attr_u32(a), 9);
        /* The nests end exactly at the message end. */
        assert_ptr_equal((const uint8_t *)info + NLA_ALIGN(info->nla_len), m.buf + m.len);

        /* No master: no IFLA_MASTER. */
        assert_int_equal(nl_build_veth_add(&m, 8, "ck1", 0, "eth0", 3), 0);
        attrs = m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifi));
        assert_null(attr_find(attrs, m.len - (size_t)(attrs - m.buf), IFLA_MASTER));

        assert_int_equal(nl_build_veth_add(&m, 1, "0123456789abcdef", 0, "eth0", 3), -EINVAL);
        assert_int_equal(nl_build_veth_add(&m, 1, "ck1", 0, "", 3), -EINVAL);
        assert_int_equal(nl_build_veth_add(&m, 1, "ck1", 0, "eth0", -1), -EINVAL);
        assert_int_equal(nl_build_veth_add(&m, 1, "a/b", 0, "eth0", 3), -EINVAL);
}

static void test_addr_route(void **state)
{
        struct nl_msg m;
        struct ifaddrmsg ifa;
        struct rtmsg rt;
        const uint8_t *attrs;
        const struct nlattr *a;
        size_t alen;

        assert_int_equal(nl_build_addr_replace(&m, 3, 5, 0x0a580002, 16), 0);
        check_header(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, 3);
        memcpy(&ifa, m.buf + NLMSG_HDRLEN, sizeof(ifa));
        assert_int_equal(ifa.ifa_family, AF_INET);
        assert_int_equal(ifa.ifa_prefixlen, 16);
        assert_int_equal(ifa.ifa_index, 5);
        attrs = m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifa));
        alen = m.len - (size_t)(attrs - m.buf);
        a = attr_find(attrs, alen, IFA_LOCAL);
        assert_non_null(a);
        assert_int_equal(attr_u32(a), htonl(0x0a580002));
        a = attr_find(attrs, alen, IFA_ADDRESS);
        assert_non_null(a);
        assert_int_equal(attr_u32(a), htonl(0x0a580002));
        assert_int_equal(nl_build_addr_replace(&m, 3, 0, 1, 16), -EINVAL);
        assert_int_equal(nl_build_addr_replace(&m, 3, 5, 1, 33), -EINVAL);

        assert_int_equal(nl_build_route_default(&m, 4, 5, 0x0a580001), 0);
        check_header(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, 4);
        memcpy(&rt, m.buf + NLMSG_HDRLEN, sizeof(rt));
        assert_int_equal(rt.rtm_family, AF_INET);
        assert_int_equal(rt.rtm_dst_len, 0);
        assert_int_equal(rt.rtm_table, RT_TABLE_MAIN);
        assert_int_equal(rt.rtm_type, RTN_UNICAST);
        attrs = m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(rt));
        alen = m.len - (size_t)(attrs - m.buf);
        a = attr_find(attrs, alen, RTA_GATEWAY);
        assert_non_null(a);
        assert_int_equal(attr_u32(a), htonl(0x0a580001));
        a = attr_find(attrs, alen, RTA_OIF);
        assert_non_null(a);
        assert_int_equal(attr_u32(a), 5);
        assert_int_equal(nl_build_route_default(&m, 4, -1, 1), -EINVAL);
}

static void test_link_ops(void **state)
{
        struct nl_msg m;
        struct ifinfomsg ifi;
        const struct nlattr *a;
        const uint8_t *attrs;

        assert_int_equal(nl_build_link_up(&m, 1, "lo"), 0);
        check_header(&m, RTM_NEWLINK, 0, 1);
        memcpy(&ifi, m.buf + NLMSG_HDRLEN, sizeof(ifi));
        assert_int_equal(ifi.ifi_flags, IFF_UP);
        assert_int_equal(ifi.ifi_change, IFF_UP);
        assert_int_equal(ifi.ifi_index, 0);

        assert_int_equal(nl_build_link_del(&m, 2, "ck0"), 0);
        check_header(&m, RTM_DELLINK, 0, 2);
        assert_int_equal(nl_build_link_get(&m, 3, "eth0"), 0);
        check_header(&m, RTM_GETLINK, 0, 3);
        attrs = m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifi));
        a = attr_find(attrs, m.len - (size_t)(attrs - m.buf), IFLA_IFNAME);
        assert_non_null(a);
        assert_string_equal((const char *)attr_data(a), "eth0");

        assert_int_equal(nl_build_bridge_add(&m, 4, "br-x"), 0);
        check_header(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 4);
        assert_int_equal(nl_build_link_del(&m, 2, ""), -EINVAL);
}

static void test_overflow(void **state)
{
        struct nl_msg m;
        char big[300];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        nl_msg_init(&m, RTM_NEWLINK, 0, 1, NULL, 0);
        for (int i = 0; i < 5; i++)
                nl_msg_put_str(&m, IFLA_IFALIAS, big);
        assert_true(m.overflow);
        assert_int_equal(nl_msg_finish(&m), -E2BIG);

        nl_msg_init(&m, RTM_NEWLINK, 0, 1, NULL, 0);
        nl_msg_nest_begin(&m, IFLA_LINKINFO);
        assert_int_equal(nl_msg_finish(&m), -EINVAL); /* nest left open */
        nl_msg_init(&m, RTM_NEWLINK, 0, 1, NULL, 0);
        nl_msg_nest_end(&m);
        assert_int_equal(nl_msg_finish(&m), -E2BIG);
        nl_msg_init(&m, RTM_NEWLINK, 0, 1, NULL, 0);
        for (int i = 0; i < NL_NEST_MAX + 1; i++)
                nl_msg_nest_begin(&m, IFLA_LINKINFO);
        assert_int_equal(nl_msg_finish(&m), -E2BIG);
}

/* An NLMSG_ERROR message with error e answering seq, appended at buf + off. */
static size_t put_ack(uint8_t *buf, size_t off, uint32_t seq, int e)
{
        struct nlmsghdr h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct nlmsgerr)),
                             .nlmsg_type = NLMSG_ERROR,
                             .nlmsg_seq = seq};
        struct nlmsgerr err = {.error = e};
        memcpy(buf + off, &h, sizeof(h));
        memcpy(buf + off + NLMSG_HDRLEN, &err, sizeof(err));
        return off + NLMSG_ALIGN(h.nlmsg_len);
}

static size_t put_link(uint8_t *buf, size_t off, uint32_t seq, int ifindex)
{
        struct nlmsghdr h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)),
                             .nlmsg_type = RTM_NEWLINK,
                             .nlmsg_seq = seq};
        struct ifinfomsg ifi = {.ifi_index = ifindex};
        memcpy(buf + off, &h, sizeof(h));
        memcpy(buf + off + NLMSG_HDRLEN, &ifi, sizeof(ifi));
        return off + NLMSG_ALIGN(h.nlmsg_len);
}

static void test_reply_parse(void **state)
{
        uint8_t buf[512] = {0};
        int e = 1, idx = 0;
        size_t n;

        n = put_ack(buf, 0, 5, 0);
        assert_int_equal(nl_reply_parse(buf, n, 5, &e, NULL), 1);
        assert_int_equal(e, 0);
        n = put_ack(buf, 0, 5, -EEXIST);
        assert_int_equal(nl_reply_parse(buf, n, 5, &e, NULL), 1);
        assert_int_equal(e, -EEXIST);
        /* Another sequence number: not ours, read on. */
        assert_int_equal(nl_reply_parse(buf, n, 6, &e, NULL), 0);
        /* A link reply, then the ack. */
        n = put_link(buf, 0, 9, 42);
        assert_int_equal(nl_reply_parse(buf, n, 9, &e, &idx), 0);
        assert_int_equal(idx, 42);
        idx = 0;
        n = put_ack(buf, n, 9, 0);
        assert_int_equal(nl_reply_parse(buf, n, 9, &e, &idx), 1);
        assert_int_equal(idx, 42);
        assert_int_equal(e, 0);

        /* Malformed: truncated header, length beyond the buffer, short payloads, bad errno,
         * trailing bytes, a link reply with index 0. */
        n = put_ack(buf, 0, 5, 0);
        assert_int_equal(nl_reply_parse(buf, 10, 5, &e, NULL), -EBADMSG);
        assert_int_equal(nl_reply_parse(buf, n - 4, 5, &e, NULL), -EBADMSG);
        assert_int_equal(nl_reply_parse(buf, n + 3, 5, &e, NULL), -EBADMSG);
        {
                struct nlmsghdr h = {
                        .nlmsg_len = NLMSG_HDRLEN + 2, .nlmsg_type = NLMSG_ERROR, .nlmsg_seq = 5};
                memcpy(buf, &h, sizeof(h));
                assert_int_equal(nl_reply_parse(buf, NLMSG_HDRLEN + 4, 5, &e, NULL), -EBADMSG);
                h.nlmsg_len = 4;
                memcpy(buf, &h, sizeof(h));
                assert_int_equal(nl_reply_parse(buf, NLMSG_HDRLEN, 5, &e, NULL), -EBADMSG);
        }
        n = put_ack(buf, 0, 5, 17);
        assert_int_equal(nl_reply_parse(buf, n, 5, &e, NULL), -EBADMSG);
        n = put_link(buf, 0, 5, 0);
        assert_int_equal(nl_reply_parse(buf, n, 5, &e, &idx), -EBADMSG);
        assert_int_equal(nl_reply_parse(buf, 0, 5, &e, NULL), 0);
}

/* The real thing, inside a network namespace private to this test process: a bridge, a second
 * namespace pinned on a file in a temp dir, a veth pair between them, address, route, delete. */
static void test_live(void **state)
{
        char dir[64] = "/tmp/ck-test-netlink-XXXXXX", ns[96];
        struct nl_msg m;
        int host, inside, nsfd, br = 0, idx = 0, fd;

        if (geteuid() != 0)
                skip();
        if (unshare(CLONE_NEWNET) < 0) {
                print_message("cannot unshare a network namespace: %s\n", strerror(errno));
                skip();
        }
        host = nl_open(NULL);
        assert_true(host >= 0);
        assert_int_equal(nl_build_bridge_add(&m, 1, "ckt-br"), 0);
        assert_int_equal(nl_call(host, &m, NULL), 0);
        assert_int_equal(nl_call(host, &m, NULL), -EEXIST);
        assert_int_equal(nl_build_link_get(&m, 2, "ckt-br"), 0);
        assert_int_equal(nl_call(host, &m, &br), 0);
        assert_int_equal((unsigned)br, if_nametoindex("ckt-br"));
        assert_int_equal(nl_build_addr_replace(&m, 3, br, 0xc0a86401, 24), 0);
        assert_int_equal(nl_call(host, &m, NULL), 0);
        assert_int_equal(nl_call(host, &m, NULL), 0); /* replace: idempotent */
        assert_int_equal(nl_build_link_up(&m, 4, "ckt-br"), 0);
        assert_int_equal(nl_call(host, &m, NULL), 0);

        assert_non_null(mkdtemp(dir));
        snprintf(ns, sizeof(ns), "%s/ns", dir);
        fd = open(ns, O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
        assert_true(fd >= 0);
        close(fd);
        inside = nl_open_in_netns(ns, true, NULL);
        assert_true(inside >= 0);
        nsfd = open(ns, O_RDONLY | O_CLOEXEC);
        assert_true(nsfd >= 0);

        assert_int_equal(nl_build_veth_add(&m, 5, "ckt-host", br, "eth0", nsfd), 0);
        assert_int_equal(nl_call(host, &m, NULL), 0);
        assert_true(if_nametoindex("ckt-host") > 0);
        assert_int_equal(if_nametoindex("eth0"), 0); /* the peer is not here */

        assert_int_equal(nl_build_link_up(&m, 6, "lo"), 0);
        assert_int_equal(nl_call(inside, &m, NULL), 0);
        assert_int_equal(nl_build_link_get(&m, 7, "eth0"), 0);
        assert_int_equal(nl_call(inside, &m, &idx), 0);
        assert_true(idx > 0);
        assert_int_equal(nl_build_addr_replace(&m, 8, idx, 0xc0a86402, 24), 0);
        assert_int_equal(nl_call(inside, &m, NULL), 0);
        assert_int_equal(nl_build_link_up(&m, 9, "eth0"), 0);
        assert_int_equal(nl_call(inside, &m, NULL), 0);
        assert_int_equal(nl_build_route_default(&m, 10, idx, 0xc0a86401), 0);
        assert_int_equal(nl_call(inside, &m, NULL), 0);

        /* A second socket in the same namespace (enter, not create) sees eth0. */
        close(inside);
        inside = nl_open_in_netns(ns, false, NULL);
        assert_true(inside >= 0);
        assert_int_equal(nl_call(inside, &m, NULL), 0); /* the route again: replace */
        assert_int_equal(nl_build_link_get(&m, 11, "nosuch0"), 0);
        assert_int_equal(nl_call(inside, &m, &idx), -ENODEV);

        /* Deleting the host end removes the pair. */
        assert_int_equal(nl_build_link_del(&m, 12, "ckt-host"), 0);
        assert_int_equal(nl_call(host, &m, NULL), 0);
        assert_int_equal(nl_call(host, &m, NULL), -ENODEV);
        assert_int_equal(nl_build_link_get(&m, 13, "eth0"), 0);
        assert_int_equal(nl_call(inside, &m, &idx), -ENODEV);

        assert_true(nl_open_in_netns("/nonexistent/ns", false, NULL) < 0);
        close(inside);
        close(nsfd);
        close(host);
        assert_int_equal(umount2(ns, MNT_DETACH), 0);
        unlink(ns);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_veth),        cmocka_unit_test(test_addr_route),
                cmocka_unit_test(test_link_ops),    cmocka_unit_test(test_overflow),
                cmocka_unit_test(test_reply_parse), cmocka_unit_test(test_live),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
