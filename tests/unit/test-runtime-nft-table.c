/* Unit tests for the nfnetlink table query (nft-table.c): the GETTABLE message decoded field by
 * field, names refused, and (as root) the real question asked inside a network namespace private
 * to this test, with the table made and removed through libnftables. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nft-table.h"

static void test_build(void **state)
{
        struct nl_msg m;
        struct nlmsghdr h;
        struct nfgenmsg g;
        struct nlattr a;
        size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(g));

        assert_int_equal(nft_build_table_get(&m, 42, "ckd0a1b2c"), 0);
        memcpy(&h, m.buf, sizeof(h));
        assert_int_equal(h.nlmsg_len, m.len);
        assert_int_equal(h.nlmsg_type, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE);
        assert_int_equal(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
        assert_int_equal(h.nlmsg_seq, 42);
        memcpy(&g, m.buf + NLMSG_HDRLEN, sizeof(g));
        assert_int_equal(g.nfgen_family, NFPROTO_INET);
        assert_int_equal(g.version, NFNETLINK_V0);
        assert_int_equal(g.res_id, 0);
        /* One attribute: the name with its NUL, padded to 4. */
        memcpy(&a, m.buf + off, sizeof(a));
        assert_int_equal(a.nla_type, NFTA_TABLE_NAME);
        assert_int_equal(a.nla_len, NLA_HDRLEN + strlen("ckd0a1b2c") + 1);
        assert_string_equal((const char *)m.buf + off + NLA_HDRLEN, "ckd0a1b2c");
        assert_int_equal(m.len, off + NLA_ALIGN(a.nla_len));

        assert_int_equal(nft_build_table_get(&m, 1, ""), -EINVAL);
        assert_int_equal(nft_build_table_get(&m, 1, NULL), -EINVAL);
        assert_int_equal(nft_build_table_get(&m, 1, "0123456789abcdef"), -EINVAL); /* 16 bytes */
        assert_int_equal(nft_build_table_get(&m, 1, "0123456789abcde"), 0);
}

static void nft(const char *cmd)
{
        struct nft_ctx *c = nft_ctx_new(NFT_CTX_DEFAULT);

        assert_non_null(c);
        assert_int_equal(nft_ctx_buffer_output(c), 0);
        assert_int_equal(nft_ctx_buffer_error(c), 0);
        if (nft_run_cmd_from_buffer(c, cmd) != 0)
                fail_msg("nft %s: %s", cmd, nft_ctx_get_error_buffer(c));
        nft_ctx_free(c);
}

static void test_live(void **state)
{
        if (geteuid() != 0)
                skip();
        if (unshare(CLONE_NEWNET) < 0) {
                print_message("cannot unshare a network namespace: %s\n", strerror(errno));
                skip();
        }
        assert_int_equal(nft_table_exists("ckt", NULL), 0);
        /* Same name, other families: still no inet table. */
        nft("add table ip ckt\nadd table ip6 ckt\n");
        assert_int_equal(nft_table_exists("ckt", NULL), 0);
        nft("add table inet ckt\n");
        assert_int_equal(nft_table_exists("ckt", NULL), 1);
        assert_int_equal(nft_table_exists("ckt2", NULL), 0);
        nft("delete table inet ckt\n");
        assert_int_equal(nft_table_exists("ckt", NULL), 0);
        assert_int_equal(nft_table_exists("", NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_build),
                cmocka_unit_test(test_live),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
