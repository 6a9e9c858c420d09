//! # uxdp-isa: the eBPF instruction set
//!
//! The bottom of the uxdp stack: the 8-byte instruction slot ([`Insn`]), the
//! opcode constants of RFC 9669 ([`opcode`]), typed decoding with validation
//! of every reserved field ([`Instruction::decode`]), encoding back to slots,
//! the conformance-suite text form (`Display`), and program-level structural
//! validation ([`validate()`]).
//!
//! Every other crate speaks in these types; this crate depends on nothing
//! but `thiserror`.

#![warn(missing_docs)]

pub mod helper_names;
pub mod insn;
pub mod instruction;
pub mod opcode;
pub mod validate;

pub use insn::Insn;
pub use instruction::{
    AluOp, AtomicOp, CallTarget, Cond, DecodeError, Endian, Instruction, LoadImmKind, Operand, PacketMode, Reg, Size,
    Width,
};
pub use validate::{validate, ValidateOptions, Validated};

/// Errors of decoding and validating programs. Every variant that concerns
/// one instruction names its index (`pc`, in slots).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IsaError {
    /// Byte length is not a multiple of 8.
    #[error("program length {len} is not a multiple of 8 bytes")]
    TruncatedBytes {
        /// Length in bytes.
        len: usize,
    },
    /// No instructions.
    #[error("program has no instructions")]
    Empty,
    /// Program longer than the kernel allows.
    #[error("program has {len} instructions, more than the limit of {max}")]
    TooLong {
        /// Slots.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// One slot is malformed.
    #[error("instruction {pc} ({insn:?}): {reason}")]
    Invalid {
        /// Slot index.
        pc: usize,
        /// The raw slot.
        insn: Insn,
        /// What is wrong.
        reason: DecodeError,
    },
    /// A jump or call leaves the program.
    #[error("instruction {pc}: jump target {target} is outside the program")]
    JumpOutOfRange {
        /// Slot index.
        pc: usize,
        /// Target slot.
        target: i64,
    },
    /// A jump lands on the second half of `lddw`.
    #[error("instruction {pc}: jump target {target} is the middle of an lddw")]
    JumpIntoLddw {
        /// Slot index.
        pc: usize,
        /// Target slot.
        target: usize,
    },
    /// Control reaches the end of the program without `exit`.
    #[error("instruction {pc}: control falls off the end of the program")]
    FallsOffEnd {
        /// Slot index.
        pc: usize,
    },
    /// A register may be read before it is written.
    #[error("instruction {pc}: register r{reg} is read before it is initialised")]
    UninitRegister {
        /// Slot index.
        pc: usize,
        /// Register number.
        reg: u8,
    },
}

impl IsaError {
    /// The instruction index the error concerns, if any.
    pub fn pc(&self) -> Option<usize> {
        match *self {
            IsaError::Invalid { pc, .. }
            | IsaError::JumpOutOfRange { pc, .. }
            | IsaError::JumpIntoLddw { pc, .. }
            | IsaError::FallsOffEnd { pc }
            | IsaError::UninitRegister { pc, .. } => Some(pc),
            _ => None,
        }
    }
}
