// SPDX-License-Identifier: MIT OR Apache-2.0
// An XDP_RUN_CONFIG with a member libxdp does not know (refused, -ENOTSUP).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define _CONCAT(x, y) x##y
#define XDP_RUN_CONFIG(f) _CONCAT(_, f) SEC(".xdp_run_config")

SEC("xdp")
int bad_config(struct xdp_md *ctx)
{
	return XDP_PASS;
}
struct {
	__uint(priority, 5);
	__uint(XDP_FOO, 1);
} XDP_RUN_CONFIG(bad_config);

char _license[] SEC("license") = "GPL";
