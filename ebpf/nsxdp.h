/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * nsxdp.h - what the XDP program and its loader (src/dataplane/xdp_prog.rs) share:
 * the layout of the configuration map entry and the indexes of the counters.
 *
 * The Rust side mirrors these by hand; the unit test `header_matches_rust` in
 * xdp_prog.rs reads this file and fails if the two disagree. Append new counters
 * before NSXDP_CNT_MAX, never renumber old ones.
 */
#ifndef NSXDP_H
#define NSXDP_H

/* Counter indexes into the per-CPU array map "nsxdp_counters". */
enum nsxdp_counter {
	NSXDP_CNT_REDIRECTED = 0,  /* DNS frame handed to the AF_XDP socket of its queue */
	NSXDP_CNT_NO_SOCKET = 1,   /* DNS frame, but no socket on its queue: kernel */
	NSXDP_CNT_PASS_NOT_IP = 2, /* neither IPv4 nor IPv6 (ARP, LLDP, ...): kernel */
	NSXDP_CNT_PASS_NOT_UDP = 3, /* IP but not UDP (TCP, ICMP, ...): kernel */
	NSXDP_CNT_PASS_FRAGMENT = 4, /* IPv4 fragment (MF set or offset != 0): kernel */
	NSXDP_CNT_PASS_IPV6_EXT = 5, /* IPv6 with an extension header: kernel */
	NSXDP_CNT_PASS_OTHER_DST = 6, /* UDP to another port or address: kernel */
	NSXDP_CNT_PASS_MALFORMED = 7, /* cut short before the UDP port, bad IHL or version: kernel */
	NSXDP_CNT_DROP_TRUNCATED = 8, /* ours, UDP header cut short: dropped */
	NSXDP_CNT_DROP_IP_LEN = 9, /* ours, IP length disagrees with the frame: dropped */
	NSXDP_CNT_DROP_UDP_LEN = 10, /* ours, UDP length disagrees with the IP length: dropped */
	NSXDP_CNT_DROP_SHORT = 11, /* ours, fewer than 12 bytes of DNS: dropped */
	NSXDP_CNT_MAX = 12
};

/* nsxdp_config.flags */
#define NSXDP_CFG_V4_ADDR 0x1 /* only IPv4 packets to v4_addr are ours */
#define NSXDP_CFG_V6_ADDR 0x2 /* only IPv6 packets to v6_addr are ours */

/*
 * The one entry (key 0) of the array map "nsxdp_config". All fields in network
 * byte order. port == 0 means "not configured": every frame goes to the kernel.
 */
struct nsxdp_config {
	__u16 port;        /* UDP destination port, network order */
	__u16 flags;       /* NSXDP_CFG_* */
	__u32 v4_addr;     /* IPv4 destination, network order (with NSXDP_CFG_V4_ADDR) */
	__u8 v6_addr[16];  /* IPv6 destination (with NSXDP_CFG_V6_ADDR) */
};

#define NSXDP_XSKMAP_SIZE 64 /* entries of "xsks_map": RX queues 0..63 */

#endif /* NSXDP_H */
