/* Unit tests for networking without touching the host: subnet parsing, address leases in a temp
 * dir (allocation, reuse, exhaustion, release) and the nft script. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "net-internal.h"
#include "net.h"

static void test_subnet(void **state)
{
        struct net_subnet sn;
        char a[16];

        assert_int_equal(net_subnet_parse("10.88.0.0/16", &sn), 0);
        assert_int_equal(sn.prefix, 16);
        net_addr_format(net_gateway(&sn), a);
        assert_string_equal(a, "10.88.0.1");
        assert_int_equal(net_subnet_parse("10.88.0.1/16", &sn), -EINVAL); /* host bits set */
        assert_int_equal(net_subnet_parse("10.88.0.0", &sn), -EINVAL);
        assert_int_equal(net_subnet_parse("10.88.0.0/31", &sn), -EINVAL);
        assert_int_equal(net_subnet_parse("10.88.0.0/4", &sn), -EINVAL);
        assert_int_equal(net_subnet_parse("10.88.0.0/16x", &sn), -EINVAL);
        assert_int_equal(net_subnet_parse("300.1.1.0/24", &sn), -EINVAL);
        assert_int_equal(net_subnet_parse(NULL, &sn), -EINVAL);
}

static void test_ifname(void **state)
{
        assert_true(net_ifname_valid("conker0"));
        assert_true(net_ifname_valid("ck-test_1"));
        assert_false(net_ifname_valid(""));
        assert_false(net_ifname_valid("0123456789abcdef"));
        assert_false(net_ifname_valid("a b"));
        assert_false(net_ifname_valid("x\";drop"));
        assert_false(net_ifname_valid("a/b"));
}

static void test_leases(void **state)
{
        char dir[64] = "/tmp/ck-test-net-XXXXXX", ip[16];
        struct net_subnet sn;
        int dfd;

        assert_non_null(mkdtemp(dir));
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(net_subnet_parse("192.168.7.0/29", &sn), 0); /* .2 … .6 usable */

        assert_int_equal(net_lease_acquire(dfd, &sn, "aaaaaaaaaaaa", ip, NULL), 0);
        assert_string_equal(ip, "192.168.7.2");
        assert_int_equal(net_lease_acquire(dfd, &sn, "bbbbbbbbbbbb", ip, NULL), 0);
        assert_string_equal(ip, "192.168.7.3");
        /* Same ID again: same address (restarts keep it). */
        assert_int_equal(net_lease_acquire(dfd, &sn, "aaaaaaaaaaaa", ip, NULL), 0);
        assert_string_equal(ip, "192.168.7.2");
        assert_int_equal(net_lease_acquire(dfd, &sn, "cccccccccccc", ip, NULL), 0);
        assert_int_equal(net_lease_acquire(dfd, &sn, "dddddddddddd", ip, NULL), 0);
        assert_int_equal(net_lease_acquire(dfd, &sn, "eeeeeeeeeeee", ip, NULL), 0);
        assert_string_equal(ip, "192.168.7.6");
        /* .7 is the broadcast address: the subnet is full. */
        assert_int_equal(net_lease_acquire(dfd, &sn, "ffffffffffff", ip, NULL), -EADDRNOTAVAIL);
        assert_int_equal(net_lease_release(dfd, "bbbbbbbbbbbb"), 0);
        assert_int_equal(net_lease_acquire(dfd, &sn, "ffffffffffff", ip, NULL), 0);
        assert_string_equal(ip, "192.168.7.3");
        assert_int_equal(net_lease_release(dfd, "nobody000000"), 0);
        close(dfd);
        ck_rm_rf_at(AT_FDCWD, dir);
}

/* Published ports: none twice in one request, none another container publishes (the same
 * number over the other protocol is another port), no two IDs sharing their first 12 chars. */
static void test_conflicts(void **state)
{
        char dir[64] = "/tmp/ck-test-net-XXXXXX";
        struct net_config cfg = {0};
        struct runtime_port held[] = {{.target = 80, .published = 30080}};
        struct runtime_port twice[] = {{.target = 80, .published = 30090},
                                       {.target = 81, .published = 30090}};
        struct runtime_port both[] = {{.target = 53, .published = 30053},
                                      {.target = 53, .published = 30053, .udp = true}};
        struct runtime_port taken[] = {{.target = 8080, .published = 30080}};
        struct runtime_port other_proto[] = {{.target = 8080, .published = 30080, .udp = true}};

        assert_non_null(mkdtemp(dir));
        cfg.state_dir = dir;
        assert_int_equal(net_entry_write(&cfg, "aaaaaaaaaaaa", "10.77.0.2", held, 1, NULL), 0);

        assert_int_equal(net_check_conflicts(&cfg, "bbbbbbbbbbbb", twice, 2, NULL), -EADDRINUSE);
        assert_int_equal(net_check_conflicts(&cfg, "bbbbbbbbbbbb", both, 2, NULL), 0);
        assert_int_equal(net_check_conflicts(&cfg, "bbbbbbbbbbbb", taken, 1, NULL), -EADDRINUSE);
        assert_int_equal(net_check_conflicts(&cfg, "bbbbbbbbbbbb", other_proto, 1, NULL), 0);
        /* The container that holds the port may apply it again (a restart). */
        assert_int_equal(net_check_conflicts(&cfg, "aaaaaaaaaaaa", taken, 1, NULL), 0);
        assert_int_equal(net_check_conflicts(&cfg, "aaaaaaaaaaaaz", NULL, 0, NULL), -EEXIST);
        ck_rm_rf_at(AT_FDCWD, dir);
}

static void test_nft_script(void **state)
{
        struct net_config cfg = {.bridge = "ckbr0", .subnet = "10.77.0.0/16", .nft_table = "conker_t1"};
        struct runtime_port p1[] = {{.target = 80, .published = 30080},
                                    {.target = 53, .published = 30053, .udp = true}};
        struct net_entry e[] = {{.id = "aaaaaaaaaaaa", .ip = "10.77.0.2", .ports = p1, .n_ports = 2},
                                {.id = "bbbbbbbbbbbb", .ip = "10.77.0.3", .ports = NULL, .n_ports = 0}};
        struct net_subnet sn;
        char *s = NULL;

        assert_int_equal(net_subnet_parse(cfg.subnet, &sn), 0);
        assert_int_equal(net_nft_script(&cfg, &sn, e, 2, &s, NULL), 0);
        assert_string_equal(
                s, "table inet conker_t1 {}\ndelete table inet conker_t1\n"
                   "table inet conker_t1 {\n"
                   "\tchain prerouting {\n\t\ttype nat hook prerouting priority -100; policy accept;\n"
                   "\t\tfib daddr type local tcp dport 30080 dnat ip to 10.77.0.2:80\n"
                   "\t\tfib daddr type local udp dport 30053 dnat ip to 10.77.0.2:53\n\t}\n"
                   "\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n"
                   "\t\tfib daddr type local tcp dport 30080 dnat ip to 10.77.0.2:80\n"
                   "\t\tfib daddr type local udp dport 30053 dnat ip to 10.77.0.2:53\n\t}\n"
                   "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
                   "\t\toifname \"ckbr0\" ip saddr 127.0.0.0/8 masquerade\n"
                   "\t\tip saddr 10.77.0.0/16 oifname != \"ckbr0\" masquerade\n\t}\n"
                   "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n"
                   "\t\tiifname \"ckbr0\" oifname != \"ckbr0\" accept\n"
                   "\t\toifname \"ckbr0\" ct state established,related accept\n"
                   "\t\toifname \"ckbr0\" ct status dnat accept\n"
                   "\t\toifname \"ckbr0\" drop\n\t}\n"
                   "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
                   "\t\tiifname \"ckbr0\" ip daddr 127.0.0.0/8 ct status dnat accept\n"
                   "\t\tiifname \"ckbr0\" ip daddr 127.0.0.0/8 drop\n\t}\n"
                   "\tchain raw_prerouting {\n\t\ttype filter hook prerouting priority raw; policy accept;\n"
                   "\t\tiifname != \"ckbr0\" ip daddr 10.77.0.0/16 ip daddr != 10.77.0.1 drop\n\t}\n}\n");
        free(s);

        /* No container left: the script only removes the table. */
        assert_int_equal(net_nft_script(&cfg, &sn, NULL, 0, &s, NULL), 0);
        assert_string_equal(s, "table inet conker_t1 {}\ndelete table inet conker_t1\n");
        free(s);

        /* Names are never spliced into the script unchecked. */
        cfg.nft_table = "x; flush ruleset";
        assert_int_equal(net_nft_script(&cfg, &sn, e, 2, &s, NULL), -EINVAL);
        cfg.nft_table = "conker";
        snprintf(e[0].ip, sizeof(e[0].ip), "10.77.0.2 x");
        assert_int_equal(net_nft_script(&cfg, &sn, e, 1, &s, NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_subnet),     cmocka_unit_test(test_ifname),
                cmocka_unit_test(test_leases),     cmocka_unit_test(test_conflicts),
                cmocka_unit_test(test_nft_script),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
