/* One nfnetlink request (see nft-table.h): does our nftables table exist? Built into a fixed
 * nl_msg and answered through nl_call(), whose reply parser checks every message of the answer
 * (the table itself comes back as an NFT_MSG_NEWTABLE message, which is not read). */
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <string.h>

#include "cleanup.h"
#include "nft-table.h"

int nft_build_table_get(struct nl_msg *m, uint32_t seq, const char *name)
{
        struct nfgenmsg g = {.nfgen_family = NFPROTO_INET, .version = NFNETLINK_V0};
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > 15)
                return -EINVAL;
        nl_msg_init(m, (uint16_t)((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE), 0, seq, &g, sizeof(g));
        nl_msg_put_str(m, NFTA_TABLE_NAME, name);
        return nl_msg_finish(m);
}

int nft_table_exists(const char *name, struct ck_error **reterr)
{
        _cleanup_close_ int fd = -1;
        struct nl_msg m;
        int r;

        r = nft_build_table_get(&m, 1, name);
        if (r < 0)
                return ck_error_set(reterr, r, "invalid nft table name");
        fd = nl_open_protocol(NETLINK_NETFILTER, reterr);
        if (fd < 0)
                return fd;
        r = nl_call(fd, &m, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot ask nftables for table %s", name);
        return 1;
}
