// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * foreign_pass.bpf.c - a test fixture, not part of nsxdp: the smallest XDP program
 * (every frame to the kernel) under a name that is not nsxdp's, so tests/xdp_prog.rs
 * can check that the loader refuses to replace someone else's program without force.
 * Attached by the test with `ip link set dev IF xdp obj ebpf/foreign_pass.bpf.o`.
 */
#include <linux/bpf.h>

int foreign_pass(struct xdp_md *ctx) __attribute__((section("xdp"), used));

int foreign_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] __attribute__((section("license"), used)) = "Dual MIT/GPL";
