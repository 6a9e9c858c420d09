/* Shared definitions for the uxdp-object test programs (MIT OR Apache-2.0). */
#ifndef UXDP_TEST_COMMON_H
#define UXDP_TEST_COMMON_H
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#endif
