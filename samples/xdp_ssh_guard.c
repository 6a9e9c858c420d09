// SPDX-License-Identifier: MIT OR Apache-2.0
// uxdp's sample XDP program: count packets per IP protocol and drop TCP
// packets to or from port 22 (SSH) unless their source is allowed.
// Build: clang-19 -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu -c xdp_ssh_guard.c -o xdp_ssh_guard.o
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} proto_count SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);   /* IPv4 source address, network order */
	__type(value, __u8);
} ssh_allowed SEC(".maps");

__u64 dropped = 0;

SEC("xdp")
int ssh_guard(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u32 key;
	__u64 *cnt;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	key = ip->protocol;
	cnt = bpf_map_lookup_elem(&proto_count, &key);
	if (cnt)
		*cnt += 1;
	if (ip->protocol != IPPROTO_TCP || ip->ihl < 5)
		return XDP_PASS;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > data_end)
		return XDP_PASS;
	if (tcp->dest != bpf_htons(22) && tcp->source != bpf_htons(22))
		return XDP_PASS;
	if (bpf_map_lookup_elem(&ssh_allowed, &ip->saddr))
		return XDP_PASS;
	__sync_fetch_and_add(&dropped, 1);
	return XDP_DROP;
}

char _license[] SEC("license") = "Dual MIT/GPL";
