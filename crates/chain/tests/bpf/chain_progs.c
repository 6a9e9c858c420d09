// SPDX-License-Identifier: MIT OR Apache-2.0
// Programs for uxdp-chain's tests: each carries libxdp's XDP_RUN_CONFIG.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#if __has_include(<xdp/xdp_helpers.h>)
#include <xdp/xdp_helpers.h>
#else
/* As libxdp's xdp_helpers.h defines it. */
#define _CONCAT(x, y) x##y
#define XDP_RUN_CONFIG(f) _CONCAT(_, f) SEC(".xdp_run_config")
#endif

#define IPPROTO_UDP 17

/* IPv4 protocol of an untagged Ethernet frame, or -1. */
static __always_inline int ip_proto(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;

	if (data + 34 > end)
		return -1;
	if (data[12] != 0x08 || data[13] != 0x00)
		return -1;
	return data[23];
}

/* IPv4 UDP: XDP_DROP (chained on); ARP: XDP_TX (ends the chain); anything
 * else: XDP_PASS. */
SEC("xdp")
int classify(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;
	int p = ip_proto(ctx);

	if (data + 14 > end)
		return XDP_ABORTED;
	data[0] ^= 0x01;
	if (p == IPPROTO_UDP)
		return XDP_DROP;
	if (data[12] == 0x08 && data[13] == 0x06)
		return XDP_TX;
	return XDP_PASS;
}
struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
	__uint(XDP_DROP, 1);
} XDP_RUN_CONFIG(classify);

/* Packets over 64 bytes lose their last 4 bytes. */
SEC("xdp")
int shrink(struct xdp_md *ctx)
{
	if (ctx->data_end - ctx->data > 64)
		bpf_xdp_adjust_tail(ctx, -4);
	return XDP_PASS;
}
struct {
	__uint(priority, 20);
} XDP_RUN_CONFIG(shrink);

/* Counts in byte 1; frames shorter than 34 bytes are dropped. */
SEC("xdp")
int stamp(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;

	if (data + 34 > end)
		return XDP_DROP;
	data[1] += 1;
	return XDP_PASS;
}
struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(stamp);

SEC("xdp")
int tc_target(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;

	if (data + 3 > end)
		return XDP_ABORTED;
	data[2] = 0xaa;
	return XDP_PASS;
}

/* Slot 0 holds tc_target; the tests fill it in (as a loader would). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jmp_table SEC(".maps");

/* Tail-calls tc_target; XDP_ABORTED when the tail call fails. */
SEC("xdp")
int tc_entry(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jmp_table, 0);
	return XDP_ABORTED;
}
struct {
	__uint(priority, 30);
	__uint(XDP_PASS, 1);
	__uint(XDP_REDIRECT, 1);
} XDP_RUN_CONFIG(tc_entry);

/* IPv6 frames are transmitted (XDP_TX is not chained on). */
SEC("xdp")
int ipv6_tx(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;

	if (data + 14 > end)
		return XDP_PASS;
	if (data[12] == 0x86 && data[13] == 0xdd)
		return XDP_TX;
	return XDP_PASS;
}
struct {
	__uint(priority, 40);
} XDP_RUN_CONFIG(ipv6_tx);

/* Always XDP_DROP, which is in its chain-call set: as the last program the
 * chain still returns XDP_PASS. */
SEC("xdp")
int last_drop(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;

	if (data + 4 > end)
		return XDP_DROP;
	data[3] = 0x55;
	return XDP_DROP;
}
struct {
	__uint(priority, 50);
	__uint(XDP_DROP, 1);
	__uint(XDP_PASS, 0);
} XDP_RUN_CONFIG(last_drop);

char _license[] SEC("license") = "GPL";
