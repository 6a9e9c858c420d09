// SPDX-License-Identifier: MIT OR Apache-2.0
/* Legacy `struct bpf_map_def` maps in the "maps" section, global data and
 * a bpf-to-bpf call. Built twice: with -g (BTF) and without (no BTF). */
#include "common.h"

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") legacy_hash = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 16,
};

struct bpf_map_def SEC("maps") legacy_array = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = 16,
	.max_entries = 2,
	.map_flags = 0,
};

__u64 hits[2];
const volatile __u32 limit = 3;

static __noinline __u64 bump(__u32 i)
{
	__u64 *v;

	if (i > 1)
		return 0;
	hits[i] += 1;
	v = bpf_map_lookup_elem(&legacy_hash, &i);
	return v ? *v : hits[i];
}

SEC("xdp")
int xdp_legacy(struct xdp_md *ctx)
{
	__u32 k = 0;
	void *v = bpf_map_lookup_elem(&legacy_array, &k);

	if (v && bump(ctx->rx_queue_index & 1) > limit)
		return XDP_DROP;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
