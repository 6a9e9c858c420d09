// SPDX-License-Identifier: MIT OR Apache-2.0
/* An XDP_RUN_CONFIG with a member libxdp does not know: must be refused. */
#include "common.h"
#include <xdp/xdp_helpers.h>

struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
	__uint(XDP_BOUNCE, 1);
} XDP_RUN_CONFIG(xdp_bad_config);

SEC("xdp")
int xdp_bad_config(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
