//! # uxdp-vm: the execution core
//!
//! Programs are validated and pre-decoded once ([`Program::load`]) into a
//! compact form, then run many times, from many threads, by the
//! [`Machine`] interpreter. Every memory access is checked against the
//! [`memory::Memory`] regions of the run (stack, context, packet, map
//! values); a bad access is a [`VmError`] naming the instruction, never
//! undefined behaviour.
//!
//! Semantics follow RFC 9669 exactly: division by zero yields 0, modulo by
//! zero leaves the dividend (zero-extended in 32-bit), shift amounts are
//! masked, 32-bit results are zero-extended, signed division and modulo
//! wrap on `INT_MIN / -1`. Local calls use a 512-byte frame each, up to 8
//! frames; r6-r9 and r10 are restored on return.
//!
//! Helpers are plain functions registered in a [`Helpers`] table; the
//! embedder (the XDP layer, the conformance plugin) supplies its own
//! environment through [`Machine::env`].

#![warn(missing_docs)]

mod atomic;
/// Helper names by id (defined in `uxdp-isa`, re-exported for embedders).
pub use uxdp_isa::helper_names;
pub mod helpers;
pub mod interpreter;
pub mod memory;
pub mod program;

pub use helpers::{conformance_helpers, Helper, HelperFn, Helpers};
pub use interpreter::{
    Machine, NativeCode, NativeScratch, Stack, MAX_FRAMES, MAX_TAIL_CALLS, NATIVE_SCRATCH_WORDS, STACK_PER_FRAME,
};
pub use memory::{Memory, Region};
pub use program::{LoadError, LoadOptions, Op, Program, FUNC_PTR_BASE, OP_CALL_LOCAL, OP_NONE};

/// Faults that end a run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VmError {
    /// A load or store outside every region of the run.
    #[error("instruction {pc}: {} of {len} bytes at {addr:#x} is outside the memory the program was given", if *write { "store" } else { "load" })]
    Memory {
        /// Slot index.
        pc: usize,
        /// Address accessed.
        addr: u64,
        /// Access size.
        len: usize,
        /// Whether it was a store.
        write: bool,
    },
    /// An atomic operation on a misaligned address.
    #[error("instruction {pc}: atomic operation on misaligned address {addr:#x}")]
    Misaligned {
        /// Slot index.
        pc: usize,
        /// Address accessed.
        addr: u64,
    },
    /// More than [`MAX_FRAMES`] nested calls.
    #[error("instruction {pc}: call depth exceeds {MAX_FRAMES} frames")]
    CallDepth {
        /// Slot index.
        pc: usize,
    },
    /// The run exceeded its budget of backward jumps and calls.
    #[error("instruction {pc}: execution budget exhausted (the program does not terminate)")]
    Budget {
        /// Slot index.
        pc: usize,
    },
    /// `callx` to an id that is not a registered helper.
    #[error("instruction {pc}: callx to unknown helper {id}")]
    BadCallx {
        /// Slot index.
        pc: usize,
        /// Register value.
        id: u64,
    },
    /// A callback argument that is not a function of the program.
    #[error("instruction {pc}: {value:#x} is not a function of this program")]
    BadCallback {
        /// Slot index.
        pc: usize,
        /// The value passed.
        value: u64,
    },
    /// A helper rejected its arguments in a way that must end the run.
    #[error("instruction {pc}: helper {helper}: {msg}")]
    Helper {
        /// Slot index.
        pc: usize,
        /// Helper name.
        helper: &'static str,
        /// Explanation.
        msg: String,
    },
    /// Control reached an instruction that cannot execute.
    #[error("instruction {pc}: not executable")]
    Unreachable {
        /// Slot index.
        pc: usize,
    },
}

impl VmError {
    /// The instruction index the fault happened at.
    pub fn pc(&self) -> usize {
        match *self {
            VmError::Memory { pc, .. }
            | VmError::Misaligned { pc, .. }
            | VmError::CallDepth { pc }
            | VmError::Budget { pc }
            | VmError::BadCallx { pc, .. }
            | VmError::BadCallback { pc, .. }
            | VmError::Helper { pc, .. }
            | VmError::Unreachable { pc } => pc,
        }
    }
}

/// Runs `prog` the way the bpf_conformance suite does: r1 points at `mem`
/// (writable), r2 holds its length; returns r0.
pub fn run_on_memory(prog: &Program, mem: &mut [u8], stack: &mut Stack) -> Result<u64, VmError> {
    let (addr, len) = (mem.as_mut_ptr() as u64, mem.len() as u64);
    let mut env = ();
    let mut m = Machine::new(prog, stack, &mut env);
    if len > 0 {
        m.mem.push(Region::of_mut_slice(mem));
    }
    m.legacy_packet = (addr, len);
    m.run_with_args([if len > 0 { addr } else { 0 }, len, 0, 0, 0])
}
