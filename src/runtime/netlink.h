/* A small rtnetlink client for container networking: the few link, address and route changes a
 * container start needs, done in-process instead of by running `ip` (a fork + exec per batch costs
 * more than the whole kernel work, and more so in a TD).
 *
 * Messages are built into a fixed buffer (struct nl_msg) by pure functions that the unit tests
 * check byte for byte; nl_call() sends one and waits for the kernel's answer.
 *
 * Internal to the runtime module (and its unit tests). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define NL_MSG_MAX  1024
#define NL_NEST_MAX 4

struct nl_msg {
        uint8_t buf[NL_MSG_MAX];
        size_t len;
        size_t nest[NL_NEST_MAX]; /* offsets of open nested attributes */
        unsigned n_nest;
        bool overflow; /* set by any put that did not fit; nl_msg_finish() reports it */
};

/* Starts a request: nlmsghdr (type, NLM_F_REQUEST|NLM_F_ACK|flags, seq) then the family header. */
void nl_msg_init(struct nl_msg *m, uint16_t type, uint16_t flags, uint32_t seq, const void *hdr,
                 size_t hdr_len);
void nl_msg_put(struct nl_msg *m, uint16_t type, const void *data, size_t len);
void nl_msg_put_u32(struct nl_msg *m, uint16_t type, uint32_t v);
void nl_msg_put_str(struct nl_msg *m, uint16_t type, const char *s); /* with its NUL */
void nl_msg_nest_begin(struct nl_msg *m, uint16_t type);
void nl_msg_nest_end(struct nl_msg *m);
/* Appends raw bytes (a family header inside a nest, e.g. the veth peer's ifinfomsg). */
void nl_msg_put_raw(struct nl_msg *m, const void *data, size_t len);
/* Closes the message: -E2BIG if anything overflowed, -EINVAL if a nest is still open. */
int nl_msg_finish(struct nl_msg *m);

/* Message builders. Names are interface names (1..15 bytes, checked); addresses are IPv4 in
 * host byte order. Each returns nl_msg_finish()'s result. */
/* A veth pair: host end `host` in the caller's namespace, attached to master_ifindex (0: none)
 * and up; peer end `peer` created directly inside the namespace peer_netns_fd (down). */
int nl_build_veth_add(struct nl_msg *m, uint32_t seq, const char *host, int master_ifindex, const char *peer,
                      int peer_netns_fd);
int nl_build_bridge_add(struct nl_msg *m, uint32_t seq, const char *name);
int nl_build_link_up(struct nl_msg *m, uint32_t seq, const char *name);
int nl_build_link_del(struct nl_msg *m, uint32_t seq, const char *name);
int nl_build_link_get(struct nl_msg *m, uint32_t seq, const char *name);
/* `ip addr replace a/prefix dev ifindex`. */
int nl_build_addr_replace(struct nl_msg *m, uint32_t seq, int ifindex, uint32_t addr, unsigned prefix);
/* `ip route replace default via gw dev ifindex` in the main table. */
int nl_build_route_default(struct nl_msg *m, uint32_t seq, int ifindex, uint32_t gw);

/* Parses the kernel's answer to request seq in buf: NLMSG_ERROR (0 = success), optionally
 * preceded by an RTM_NEWLINK reply whose ifindex goes to *ret_ifindex (untouched otherwise).
 * Returns 1 when the ack was found (*ret_error = 0 or -errno), 0 when buf holds only other
 * replies so far (read on), -EBADMSG for malformed or truncated messages. */
int nl_reply_parse(const uint8_t *buf, size_t len, uint32_t seq, int *ret_error, int *ret_ifindex);

/* An rtnetlink socket in the caller's (thread's) network namespace. */
int nl_open(struct ck_error **reterr);
/* The same for another netlink protocol (NETLINK_NETFILTER for nft-table.c). */
int nl_open_protocol(int protocol, struct ck_error **reterr);
/* Sends m and waits for its ack; returns 0 or the kernel's -errno (no reterr: callers decide
 * which errors are fine, e.g. -ENODEV on a delete). ret_ifindex (optional) gets the index from an
 * RTM_GETLINK reply. */
int nl_call(int fd, struct nl_msg *m, int *ret_ifindex);

/* Runs in a short-lived thread (so that the caller never changes namespace): creates a new
 * network namespace pinned by a bind mount at path (an empty file it creates; kept if it already
 * is a namespace), or just enters the one at path, and returns an rtnetlink socket inside it. */
int nl_open_in_netns(const char *path, bool create, struct ck_error **reterr);
