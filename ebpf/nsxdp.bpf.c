// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * nsxdp.bpf.c - the XDP program of nsxdp: hands UDP DNS queries for the configured
 * port (and, optionally, addresses) to the AF_XDP socket of the RX queue they came
 * in on; everything else goes on to the kernel's network stack unchanged.
 *
 *   Ethernet [802.1ad/802.1Q tag [802.1Q tag]] IPv4 (options allowed) | IPv6 (no
 *   extension headers) UDP dport == configured port
 *     -> bpf_redirect_map(xsks_map, rx_queue_index), or XDP_PASS if that queue has
 *        no socket.
 *   The same, but with lengths that disagree or fewer than 12 bytes of DNS
 *     -> XDP_DROP.
 *   Anything else (ARP, ICMP, TCP, other ports, IPv4 fragments, IPv6 extension
 *   headers, frames cut short before the UDP port) -> XDP_PASS.
 *
 * Every verdict is counted in the per-CPU array "nsxdp_counters" (see nsxdp.h).
 *
 * Every packet read below is preceded by a check of its end against data_end, so
 * the verifier can prove it in bounds.
 *
 * Licence: "Dual MIT/GPL", which the kernel accepts as GPL-compatible. This file is
 * compiled to a BPF object that nsxdp loads into the kernel at run time; it is not
 * linked into the nsxdp binary, which stays MIT OR Apache-2.0.
 *
 * Build with scripts/build-ebpf.sh (clang -target bpf); needs only the kernel's UAPI
 * headers (linux-libc-dev), not libbpf.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include "nsxdp.h"

/* The few libbpf conveniences we need, spelt out so the build needs no libbpf. */
#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name
/* Not __always_inline: linux/stddef.h defines that as plain __inline__. */
#define INLINE static inline __attribute__((always_inline))

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define nsxdp_htons(x) ((__be16)__builtin_bswap16(x))
#define nsxdp_ntohs(x) ((__u16)__builtin_bswap16(x))
#else
#define nsxdp_htons(x) ((__be16)(x))
#define nsxdp_ntohs(x) ((__u16)(x))
#endif

#define IPV4_MF 0x2000     /* more fragments */
#define IPV4_OFFSET 0x1fff /* fragment offset, in 8-octet units */
#define DNS_HEADER_LEN 12

/* An 802.1Q / 802.1ad tag as it follows the Ethernet addresses (not in the UAPI headers). */
struct vlan_tag {
	__be16 tci;
	__be16 encap_proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, NSXDP_XSKMAP_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nsxdp_config);
} nsxdp_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NSXDP_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} nsxdp_counters SEC(".maps");

/* Counts one frame under `reason` and returns `action`. Per-CPU: no atomics needed. */
INLINE int verdict(__u32 reason, int action)
{
	__u64 *count = bpf_map_lookup_elem(&nsxdp_counters, &reason);

	if (count)
		*count += 1;
	return action;
}

INLINE int is_ipv6_extension(__u8 nexthdr)
{
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_ESP:
	case IPPROTO_AH:
	case IPPROTO_DSTOPTS:
	case IPPROTO_MH:
	case 139: /* Host Identity Protocol */
	case 140: /* Shim6 */
	case 253: /* experimentation (RFC 3692) */
	case 254:
		return 1;
	default:
		return 0;
	}
}

/*
 * A UDP datagram whose ports have been checked against the configuration: the
 * lengths decide between dropping it and handing it to the queue's socket.
 * `udp_len` is the UDP header's length field, `ip_payload` what the IP header says
 * follows it.
 */
INLINE int deliver(struct xdp_md *ctx, __u32 udp_len, __u32 ip_payload)
{
	if (udp_len != ip_payload)
		return verdict(NSXDP_CNT_DROP_UDP_LEN, XDP_DROP);
	if (udp_len < sizeof(struct udphdr) + DNS_HEADER_LEN)
		return verdict(NSXDP_CNT_DROP_SHORT, XDP_DROP);

	/* With no socket at this index the lookup fails and the flags' XDP_PASS is returned. */
	long action = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);

	if (action == XDP_REDIRECT)
		return verdict(NSXDP_CNT_REDIRECTED, XDP_REDIRECT);
	return verdict(NSXDP_CNT_NO_SOCKET, XDP_PASS);
}

SEC("xdp")
int nsxdp_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct nsxdp_config *cfg;
	struct udphdr *udp;
	__u32 key = 0;
	__be16 proto;
	void *l3;

	cfg = bpf_map_lookup_elem(&nsxdp_config, &key);
	if (!cfg || cfg->port == 0)
		return verdict(NSXDP_CNT_PASS_OTHER_DST, XDP_PASS);

	if ((void *)(eth + 1) > data_end)
		return verdict(NSXDP_CNT_PASS_MALFORMED, XDP_PASS);
	proto = eth->h_proto;
	l3 = eth + 1;

	/* At most two tags: one 802.1Q, or an 802.1ad (or 802.1Q) outer and an 802.1Q inner. */
	if (proto == nsxdp_htons(ETH_P_8021AD) || proto == nsxdp_htons(ETH_P_8021Q)) {
		struct vlan_tag *tag = l3;

		if ((void *)(tag + 1) > data_end)
			return verdict(NSXDP_CNT_PASS_MALFORMED, XDP_PASS);
		proto = tag->encap_proto;
		l3 = tag + 1;
		if (proto == nsxdp_htons(ETH_P_8021Q)) {
			tag = l3;
			if ((void *)(tag + 1) > data_end)
				return verdict(NSXDP_CNT_PASS_MALFORMED, XDP_PASS);
			proto = tag->encap_proto;
			l3 = tag + 1;
		}
	}

	if (proto == nsxdp_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		__u32 header_len, total_len;

		if ((void *)(ip + 1) > data_end)
			return verdict(NSXDP_CNT_PASS_MALFORMED, XDP_PASS);
		if (ip->version != 4 || ip->ihl < 5)
			return verdict(NSXDP_CNT_PASS_MALFORMED, XDP_PASS);
		if (ip->protocol != IPPROTO_UDP)
			return verdict(NSXDP_CNT_PASS_NOT_UDP, XDP_PASS);
		if (ip->frag_off & nsxdp_htons(IPV4_MF | IPV4_OFFSET))
			return verdict(NSXDP_CNT_PASS_FRAGMENT, XDP_PASS);

		header_len = ip->ihl * 4;
		udp = l3 + header_len;
		/* The ports (first 4 octets) decide whether the datagram is ours at all. */
		if ((void *)udp + 4 > data_end)
			return verdict(NSXDP_CNT_PASS_MALFORMED, XDP_PASS);
		if (udp->dest != cfg->port || (eth->h_dest[0] & 1) ||
		    ((cfg->flags & NSXDP_CFG_V4_ADDR) && ip->daddr != cfg->v4_addr))
			return verdict(NSXDP_CNT_PASS_OTHER_DST, XDP_PASS);

		/* Ours from here on: anything inconsistent is dropped. */
		if ((void *)(udp + 1) > data_end)
			return verdict(NSXDP_CNT_DROP_TRUNCATED, XDP_DROP);
		total_len = nsxdp_ntohs(ip->tot_len);
		/* A frame may be longer than its datagram (Ethernet padding), never shorter. */
		if (total_len < header_len + sizeof(struct udphdr) || l3 + total_len > data_end)
			return verdict(NSXDP_CNT_DROP_IP_LEN, XDP_DROP);
		return deliver(ctx, nsxdp_ntohs(udp->len), total_len - header_len);
	}

	if (proto == nsxdp_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		__u32 payload_len;

		if ((void *)(ip6 + 1) > data_end)
			return verdict(NSXDP_CNT_PASS_MALFORMED, XDP_PASS);
		if (ip6->version != 6)
			return verdict(NSXDP_CNT_PASS_MALFORMED, XDP_PASS);
		if (ip6->nexthdr != IPPROTO_UDP) {
			if (is_ipv6_extension(ip6->nexthdr))
				return verdict(NSXDP_CNT_PASS_IPV6_EXT, XDP_PASS);
			return verdict(NSXDP_CNT_PASS_NOT_UDP, XDP_PASS);
		}

		udp = (void *)(ip6 + 1);
		if ((void *)udp + 4 > data_end)
			return verdict(NSXDP_CNT_PASS_MALFORMED, XDP_PASS);
		if (udp->dest != cfg->port || (eth->h_dest[0] & 1))
			return verdict(NSXDP_CNT_PASS_OTHER_DST, XDP_PASS);
		if (cfg->flags & NSXDP_CFG_V6_ADDR) {
			const __u32 *want = (const __u32 *)cfg->v6_addr;
			const __u32 *have = ip6->daddr.in6_u.u6_addr32;

			if (have[0] != want[0] || have[1] != want[1] || have[2] != want[2] || have[3] != want[3])
				return verdict(NSXDP_CNT_PASS_OTHER_DST, XDP_PASS);
		}

		if ((void *)(udp + 1) > data_end)
			return verdict(NSXDP_CNT_DROP_TRUNCATED, XDP_DROP);
		payload_len = nsxdp_ntohs(ip6->payload_len);
		/* payload_len 0 (a jumbogram) falls here too: never a DNS query. */
		if (payload_len < sizeof(struct udphdr) || (void *)(ip6 + 1) + payload_len > data_end)
			return verdict(NSXDP_CNT_DROP_IP_LEN, XDP_DROP);
		return deliver(ctx, nsxdp_ntohs(udp->len), payload_len);
	}

	return verdict(NSXDP_CNT_PASS_NOT_IP, XDP_PASS);
}

char _license[] SEC("license") = "Dual MIT/GPL";
