// SPDX-License-Identifier: MIT OR Apache-2.0
/* CO-RE relocations of every kind, resolved against the object's own BTF. */
#include "common.h"
#include <bpf/bpf_core_read.h>

struct pkt_meta {
	__u32 a;
	__s16 b;
	struct {
		__u8 c;
		__u64 d;
	};
	int bits_lo : 3;
	unsigned int bits_hi : 9;
	__u32 arr[4];
} __attribute__((preserve_access_index));

enum meta_mode { MODE_OFF = 0, MODE_ON = 7, MODE_NEG = -2 };
typedef struct pkt_meta pkt_meta_t;

struct pkt_meta global_meta;
__u64 results[16];

SEC("xdp")
int xdp_core(struct xdp_md *ctx)
{
	struct pkt_meta *m = &global_meta;

	results[0] = bpf_core_field_exists(m->b);
	results[1] = bpf_core_field_size(m->d);
	results[2] = bpf_core_field_offset(m->d);
	results[3] = BPF_CORE_READ_BITFIELD(m, bits_lo);
	results[4] = BPF_CORE_READ_BITFIELD(m, bits_hi);
	results[5] = bpf_core_type_size(struct pkt_meta);
	results[6] = bpf_core_type_exists(pkt_meta_t);
	results[7] = bpf_core_enum_value_exists(enum meta_mode, MODE_ON);
	results[8] = bpf_core_enum_value(enum meta_mode, MODE_ON);
	results[9] = bpf_core_enum_value(enum meta_mode, MODE_NEG);
	results[10] = bpf_core_type_id_local(struct pkt_meta);
	results[11] = bpf_core_type_id_kernel(struct pkt_meta);
	results[12] = bpf_core_field_offset(m->arr[2]);
	results[13] = BPF_CORE_READ(m, a);
	results[14] = bpf_core_type_matches(struct pkt_meta);
	results[15] = __builtin_preserve_field_info(m->b, BPF_FIELD_SIGNED);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
