// SPDX-License-Identifier: MIT OR Apache-2.0
/* BTF-defined maps of every shape the loader handles: key/value given as
 * types and as sizes, flags, pinning, NUMA node, a ring buffer whose size
 * libbpf rounds, a prog array and a map-in-map initialised with 'values',
 * and programs in the section names libbpf knows. */
#include "common.h"

struct flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
};

struct flow_stats {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flow_key);
	__type(value, struct flow_stats);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
	__uint(max_entries, 4);
	__uint(numa_node, 0);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 5000);
} events SEC(".maps");

struct inner_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 8);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner_array);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a, [3] = &inner_b },
};

int tail_a(struct xdp_md *ctx);
int tail_b(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 3);
	__uint(key_size, sizeof(__u32));
	__array(values, int (void *));
} jumps SEC(".maps") = {
	.values = { [1] = (void *)&tail_a, [2] = (void *)&tail_b },
};

SEC("xdp")
int tail_a(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("xdp.frags")
int tail_b(struct xdp_md *ctx)
{
	return XDP_TX;
}

SEC("xdp")
int xdp_maps(struct xdp_md *ctx)
{
	struct flow_key key = { .proto = 6 };
	struct flow_stats *st;
	__u32 idx = 1, *inner_val;
	void *inner;
	__u64 *cnt;

	st = bpf_map_lookup_elem(&flows, &key);
	if (st)
		st->packets++;
	cnt = bpf_map_lookup_elem(&counters, &idx);
	if (cnt)
		*cnt += 1;
	inner = bpf_map_lookup_elem(&outer, &idx);
	if (inner) {
		inner_val = bpf_map_lookup_elem(inner, &idx);
		if (inner_val)
			*inner_val = 1;
	}
	bpf_ringbuf_output(&events, &idx, sizeof(idx), 0);
	bpf_tail_call(ctx, &jumps, 1);
	return XDP_PASS;
}

SEC("xdp/devmap")
int xdp_devmap_prog(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("?tc")
int tc_not_autoloaded(struct __sk_buff *skb)
{
	return 0;
}

SEC("socket")
int sock_prog(struct __sk_buff *skb)
{
	return skb->len;
}

SEC("xdp_legacy_name")
int legacy_named(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
