//! `BPF_PROG_TEST_RUN`: run a loaded program on one packet in the kernel.

use std::os::fd::AsFd;

use crate::error::{Errno, KernelError};
use crate::sys;

/// What the kernel did with one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (XDP action, socket-filter length, ...).
    pub retval: u32,
    /// The packet after the program ran (grown/shrunk by `bpf_xdp_adjust_*`).
    pub data_out: Vec<u8>,
    /// Average nanoseconds per run over `repeat` runs, as measured by the kernel.
    pub duration_ns: u32,
    /// The context after the run (`struct xdp_md` / `struct __sk_buff`), only
    /// when a context was passed in.
    pub ctx_out: Option<Vec<u8>>,
}

/// Extra room offered for the output packet beyond the input length. Large
/// enough that `bpf_xdp_adjust_tail` / `bpf_skb_change_tail` growth never
/// truncates, so the kernel never answers ENOSPC (a retry would run the
/// program — and its map side effects — a second time).
const OUT_SLACK: usize = 64 * 1024;

/// Runs an XDP program once per `repeat` (0 counts as 1) on `data_in`.
///
/// `ctx_in`, when given, is a `struct xdp_md` (24 bytes) that the kernel
/// checks: `data_meta` 0, `data` = length of the metadata at the front of
/// `data_in`, `data_end` = `data_in.len()`, `egress_ifindex` 0, and
/// `ingress_ifindex`/`rx_queue_index` naming a real device and queue.
/// Errors carry the kernel's errno: EINVAL for a packet or context the
/// kernel refuses to test-run, ENOMEM for packets beyond what a test run can
/// allocate (BIG TCP), ENOTSUPP for program types without test-run support.
pub fn test_run_xdp(
    prog: impl AsFd,
    data_in: &[u8],
    repeat: u32,
    ctx_in: Option<&[u8]>,
) -> Result<TestRun, KernelError> {
    test_run(prog, data_in, repeat, ctx_in)
}

/// Runs a socket filter (or tc classifier) on a socket buffer built from
/// `data_in`, which must start with an Ethernet header: the kernel refuses
/// packets shorter than `ETH_HLEN` (14) with EINVAL. `ctx_in` is an optional
/// `struct __sk_buff`.
pub fn test_run_skb(
    prog: impl AsFd,
    data_in: &[u8],
    repeat: u32,
    ctx_in: Option<&[u8]>,
) -> Result<TestRun, KernelError> {
    test_run(prog, data_in, repeat, ctx_in)
}

/// Benchmark: the kernel's own average ns per run of an XDP program over
/// `repeat` back-to-back runs on the same packet (BPF_PROG_TEST_RUN's
/// `duration`). Use a large `repeat` (10^6 or more) for a stable number; the
/// figure includes the test-run harness (~26 ns on this machine for
/// `return XDP_PASS`).
pub fn bench_xdp(prog: impl AsFd, data_in: &[u8], repeat: u32) -> Result<u32, KernelError> {
    if repeat == 0 {
        return Err(KernelError::InvalidInput("bench_xdp needs repeat >= 1".into()));
    }
    Ok(test_run(prog, data_in, repeat, None)?.duration_ns)
}

fn test_run(prog: impl AsFd, data_in: &[u8], repeat: u32, ctx_in: Option<&[u8]>) -> Result<TestRun, KernelError> {
    let too_big =
        |what: &str, n: usize| KernelError::InvalidInput(format!("{what} of {n} bytes does not fit a u32 size"));
    let data_size_in = u32::try_from(data_in.len()).map_err(|_| too_big("packet", data_in.len()))?;
    let mut out_cap = data_in.len() + OUT_SLACK;
    let ctx_len = ctx_in.map_or(0, |c| c.len());
    let ctx_size_in = u32::try_from(ctx_len).map_err(|_| too_big("context", ctx_len))?;
    // Two rounds at most: a second one only when the output still did not fit.
    for _ in 0..2 {
        let mut out: Vec<u8> = Vec::with_capacity(out_cap);
        let mut ctx_out: Vec<u8> = vec![0u8; ctx_len];
        let mut attr = sys::TestRunAttr {
            prog_fd: sys::fd_u32(prog.as_fd()),
            data_size_in,
            data_size_out: u32::try_from(out_cap).map_err(|_| too_big("output buffer", out_cap))?,
            data_in: data_in.as_ptr() as u64,
            data_out: out.as_mut_ptr() as u64,
            repeat,
            ctx_size_in,
            ctx_size_out: ctx_size_in,
            ctx_in: ctx_in.map_or(0, |c| c.as_ptr() as u64),
            ctx_out: if ctx_len == 0 { 0 } else { ctx_out.as_mut_ptr() as u64 },
            ..Default::default()
        };
        // SAFETY: inputs are readable for their sizes; `out` has capacity
        // `data_size_out` and `ctx_out` length `ctx_size_out`, both writable.
        let ret = unsafe { sys::bpf(sys::BPF_PROG_TEST_RUN, &mut attr) };
        match ret {
            Ok(_) => {
                let n = (attr.data_size_out as usize).min(out_cap);
                // SAFETY: the kernel wrote `data_size_out` bytes (at most the
                // capacity it was given) into `out`.
                unsafe { out.set_len(n) };
                let ctx_out = (ctx_len != 0).then(|| {
                    ctx_out.truncate((attr.ctx_size_out as usize).min(ctx_len));
                    ctx_out
                });
                return Ok(TestRun { retval: attr.retval, data_out: out, duration_ns: attr.duration, ctx_out });
            }
            Err(e) if e.0 == libc::ENOSPC && attr.data_size_out as usize > out_cap => {
                out_cap = attr.data_size_out as usize;
            }
            Err(errno) => return Err(KernelError::Syscall { op: "BPF_PROG_TEST_RUN", errno }),
        }
    }
    Err(KernelError::Syscall { op: "BPF_PROG_TEST_RUN", errno: Errno(libc::ENOSPC) })
}
