//! # uxdp-kernel: the running Linux kernel as a reference implementation
//!
//! uxdp's differential tests ask the kernel "what do you do with this
//! object / program on this packet" and compare with uxdp. This crate is the
//! kernel side:
//!
//! - [`availability`]: can this process load and test-run BPF programs at
//!   all? Tests skip with the returned reason when not.
//! - [`KernelObject`]: a whole clang-compiled object loaded like libbpf does
//!   (through aya 0.14, with kernel BTF for CO-RE, kfunc resolution and
//!   libbpf/iproute2 section names fixed up first), each in a private bpffs pin
//!   directory; per-program loads with the verifier's verdict, errno and log;
//!   map listing, dump, lookup, update; [`KernelObject::reset`] for fresh maps.
//! - [`load_raw`]: `BPF_PROG_LOAD` of hand-written instructions with the
//!   verifier log and [`VerifierStats`] on success and failure.
//! - [`test_run_xdp`], [`test_run_skb`], [`bench_xdp`]: `BPF_PROG_TEST_RUN`.
//! - [`TailCallChain`] and [`run_chain_reference`]: libxdp's multi-program
//!   dispatcher semantics in the kernel.
//!
//! Everything talks to the kernel with the raw `bpf(2)` syscall and this
//! crate's own `#[repr(C)]` attribute structs, except object loading, which
//! aya does.

#![warn(missing_docs)]

pub mod chain;
mod elf;
pub mod error;
pub mod object;
pub mod raw;
mod sys;
pub mod testrun;

use std::sync::OnceLock;

pub use chain::{run_chain_reference, ChainRun, TailCallChain, DEFAULT_CHAIN_ACTIONS};
pub use error::{Errno, KernelError};
pub use object::{KernelObject, LoadInfo, MapDesc, MapEntry, ObjectOptions, ProgramDesc, ProgramKind, XdpAttach};
pub use raw::{
    load_btf, load_raw, load_raw_bytes, load_raw_with, FuncInfo, LoadFailure, LoadOptions, LoadedProg, ProgType,
    VerifierStats,
};
pub use testrun::{bench_xdp, test_run_skb, test_run_xdp, TestRun};

/// Whether this process can use BPF here: loads `r0 = XDP_PASS; exit` as an
/// XDP program and test-runs it on a 64-byte packet (the result is computed
/// once per process).
///
/// `Err` holds a one-line reason to print when skipping a test, naming the
/// errno (EPERM without privileges, ENOSYS without the bpf syscall, ...) and
/// the effective uid.
pub fn availability() -> Result<(), String> {
    availability_inner()
}

/// Number of possible CPUs (`/sys/devices/system/cpu/possible`): the factor
/// in per-CPU map values as user space sees them.
pub fn possible_cpus() -> Result<usize, KernelError> {
    sys::possible_cpus().map_err(KernelError::Unsupported)
}

fn availability_inner() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT.get_or_init(check_availability).clone()
}

fn check_availability() -> Result<(), String> {
    use uxdp_isa::opcode::{self as op, alu};
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let insns = [
        uxdp_isa::Insn::new(op::CLASS_ALU64 | alu::MOV | op::SRC_K, 0, 0, 0, 2),
        uxdp_isa::Insn::new(op::EXIT, 0, 0, 0, 0),
    ];
    let prog = load_raw(&insns, ProgType::XDP, "GPL", raw::log_level::NONE).map_err(|f| {
        format!("kernel BPF unavailable: BPF_PROG_LOAD of a trivial XDP program failed with {} (euid {euid})", f.errno)
    })?;
    let run = test_run_xdp(prog.fd(), &[0u8; 64], 1, None).map_err(|e| {
        format!("kernel BPF unavailable: BPF_PROG_TEST_RUN of a trivial XDP program failed: {e} (euid {euid})")
    })?;
    if run.retval != 2 {
        return Err(format!("kernel BPF misbehaves: trivial XDP program returned {} instead of 2", run.retval));
    }
    Ok(())
}
