// SPDX-License-Identifier: MIT OR Apache-2.0
// A program without XDP_RUN_CONFIG: libxdp's defaults (priority 50, XDP_PASS).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int plain_pass(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;

	if (data + 5 > end)
		return XDP_PASS;
	data[4] ^= 0xff;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
