// SPDX-License-Identifier: MIT OR Apache-2.0
/* Global data with offsets, bpf-to-bpf calls (static and global), a bpf_loop
 * callback (function pointer), kconfig and kfunc externs, decl tags and a
 * custom XDP_RUN_CONFIG. */
#include "common.h"
#include <xdp/xdp_helpers.h>

#define __tag(x) __attribute__((btf_decl_tag(x)))

/* .bss */
__u32 counter;
__u64 bss_pad[3];
__u32 bss_tail;
/* .data */
__u64 data_arr[4] = { 11, 22, 33, 44 };
__u32 data_after = 55;
/* .rodata, read-only to the program */
const volatile __u32 cfg_a = 7;
const volatile __u64 cfg_b = 0x1122334455667788ULL;
/* custom sections: named as-is by libbpf */
__u32 custom_val SEC(".data.custom") = 99;
static volatile __u32 static_val = 5;

extern int LINUX_KERNEL_VERSION __kconfig;
extern _Bool CONFIG_UXDP_TEST_OPTION __kconfig __weak;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym __weak;

struct {
	__uint(priority, 5);
	__uint(XDP_DROP, 1);
	__uint(XDP_PASS, 0);
	__uint(XDP_TX, 1);
} XDP_RUN_CONFIG(xdp_calls);

static __noinline __u64 mul3(__u64 x)
{
	return x * 3 + static_val;
}

static __noinline __u64 add_idx(__u32 i)
{
	if (i >= 4)
		return 0;
	return data_arr[i] + mul3(i);
}

__noinline int global_helper(struct xdp_md *ctx)
{
	if (!ctx)
		return 0;
	return ctx->data_end - ctx->data + bss_tail;
}

static int loop_cb(__u32 index, void *arg)
{
	__u64 *sum = arg;
	*sum += add_idx(index);
	return 0;
}

SEC("xdp")
__tag("comment:test_expect_success") __tag("comment:test_retval=2")
int xdp_calls(struct xdp_md *ctx)
{
	__u64 sum = 0;

	bpf_loop(4, loop_cb, &sum, 0);
	counter += 1;
	bss_pad[1] = sum;
	data_after = cfg_a + custom_val;
	if (LINUX_KERNEL_VERSION > 0 && CONFIG_UXDP_TEST_OPTION)
		sum += cfg_b;
	if (sum == 12345)
		return XDP_DROP;
	if (global_helper(ctx) == 7)
		return XDP_TX;
	return XDP_PASS;
}

SEC("tc")
int tc_kfunc(struct __sk_buff *skb)
{
	bpf_rcu_read_lock();
	if (bpf_rcu_read_unlock)
		bpf_rcu_read_unlock();
	return add_idx(skb->len & 3) ? 0 : 1;
}

char _license[] SEC("license") = "Dual MIT/GPL";
