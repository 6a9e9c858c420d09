//! # uxdp-asm: eBPF text assembler and disassembler
//!
//! The text syntax is the one of the
//! [bpf_conformance](https://github.com/Alan-Jowett/bpf_conformance) suite
//! (`mov32 %r0, 1`, `ldxh %r0, [%r1+2]`, `jeq %r1, 5, exit`,
//! `lock fetch add [%r10-8], %r1`), extended with everything the
//! `Display` form of [`uxdp_isa::Instruction`] produces (kfunc calls, the
//! pseudo `lddw` kinds, legacy packet loads).
//!
//! * [`assemble`] turns text into raw instruction slots.
//! * [`disassemble`] turns slots back into re-assemblable text with
//!   generated labels; [`disassemble_listing`] prints a listing for humans.
//! * [`testfile`] parses conformance `.data` files.
//!
//! ## Syntax accepted by [`assemble`]
//!
//! One instruction per line; `#` starts a comment; blank lines are ignored.
//! `name:` defines a label at the next instruction (an instruction may follow
//! on the same line). The first `exit` instruction is also reachable under
//! the implicit label `exit` unless a label of that name is defined.
//!
//! * Registers: `%r0` … `%r10`; `%r11` … `%r15` are accepted as upstream does
//!   (they are encodable, so negative tests can build programs the loader
//!   must reject). Anything else is `Invalid register`.
//! * Numbers: decimal or `0x` hex, with an optional sign. A 32-bit immediate
//!   accepts decimal in the `i32` range and hex up to `0xffffffff` (the bit
//!   pattern); 16-bit offsets accept decimal in the `i16` range and hex up to
//!   `0xffff`; `lddw` accepts any 64-bit value (decimal `i64`/`u64`, hex
//!   `u64`).
//! * Jump targets: a label, or a relative offset that starts with `+` or `-`
//!   (`ja +3`, `jeq %r1, 5, -2`).
//! * ALU: `add sub mul div sdiv or and lsh rsh mod smod xor mov arsh` with
//!   two operands, `neg` with one; the `32` suffix selects 32-bit ALU;
//!   `movsx864 movsx1664 movsx3264 movsx832 movsx1632`; `le16/32/64`,
//!   `be16/32/64`, `swap16/32/64` (alias `bswap…`).
//! * Jumps: `ja`, `ja32` (`gotol`), `jeq jgt jge jset jne jsgt jsge jlt jle
//!   jslt jsle` (+`32`), `exit`.
//! * Calls: `call N` / `call helper N` (helper), `call %rN` /
//!   `call helper %rN` / `callx %rN` (callx, register in `dst_reg`),
//!   `call local TARGET`, `call kfunc N [, OFF]` / `call runtime N`.
//! * Memory: `ldx{b,h,w,dw} %rD, [%rS+OFF]`, `ldxs{b,h,w}`,
//!   `st{b,h,w,dw} [%rD+OFF], IMM`, `stx{b,h,w,dw} [%rD+OFF], %rS`,
//!   `lock [fetch] {add,or,and,xor,xchg,cmpxchg}[32] [%rD+OFF], %rS`.
//! * `lddw %rD, IMM64`, `lddw %rD, map_fd N`, `map_idx N`, `btf_id N`,
//!   `map_value N, OFF`, `map_idx_value N, OFF`, `func TARGET`.
//! * Legacy packet loads: `ldabs{b,h,w} IMM`, `ldind{b,h,w} %rS, IMM`.

#![warn(missing_docs)]

mod assembler;
mod disassembler;
pub mod testfile;

pub use assembler::assemble;
pub use disassembler::{disassemble, disassemble_listing};
pub use testfile::{TestFile, TestFileError};

/// An assembly error: the 1-based line it occurred on and what is wrong.
///
/// The message texts follow upstream's assembler (`Invalid register: …`,
/// `Invalid mnemonic: …`, `Invalid number of operands for lock`, …) so that
/// conformance files that expect an error string match.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct AsmError {
    /// 1-based line number in the assembled text (0 when the error is not
    /// tied to a line, see [`AsmErrorKind::NoProgram`]).
    pub line: usize,
    /// What is wrong.
    pub kind: AsmErrorKind,
}

/// The kinds of [`AsmError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AsmErrorKind {
    /// The mnemonic (or the operation after `lock`) is not known.
    #[error("Invalid mnemonic: {0}")]
    InvalidMnemonic(String),
    /// Wrong number of operands for the mnemonic.
    #[error("Invalid number of operands for mnemonic: {mnemonic} (expected {expected}, got {got})")]
    OperandCount {
        /// The mnemonic.
        mnemonic: String,
        /// What the mnemonic takes.
        expected: &'static str,
        /// How many operands were given.
        got: usize,
    },
    /// Wrong number of operands for a `lock` (atomic) instruction.
    #[error("Invalid number of operands for lock")]
    LockOperandCount,
    /// An operand that must be a register is not `%r0` … `%r15`.
    #[error("Invalid register: {0}")]
    InvalidRegister(String),
    /// An operand that must be a number is not one.
    #[error("Invalid number: {0}")]
    InvalidNumber(String),
    /// A 32-bit immediate does not fit (decimal: `i32`; hex: `u32`).
    #[error("Immediate out of 32-bit range: {0}")]
    Imm32Range(String),
    /// A 64-bit immediate does not fit.
    #[error("Immediate out of 64-bit range: {0}")]
    Imm64Range(String),
    /// A 16-bit offset does not fit (decimal: `i16`; hex: `u16`).
    #[error("Offset out of 16-bit range: {0}")]
    OffsetRange(String),
    /// A memory operand is not of the form `[%rN]`, `[%rN+OFF]`, `[%rN-OFF]`.
    #[error("Failed to decode register and offset: {0}")]
    InvalidMemoryOperand(String),
    /// An operand is empty (two commas in a row, or a trailing comma).
    #[error("Empty operand")]
    EmptyOperand,
    /// A jump or call refers to a label that is not defined.
    #[error("Invalid label: {0}")]
    UnknownLabel(String),
    /// A label is defined twice.
    #[error("Duplicate label ({name}) (previous declaration at line {previous_line})")]
    DuplicateLabel {
        /// The label.
        name: String,
        /// Line of the first definition.
        previous_line: usize,
    },
    /// A label name contains characters other than letters, digits, `_`, `.`
    /// and `$`.
    #[error("Invalid label name: {0}")]
    InvalidLabelName(String),
    /// A jump to a label is too far for the 16-bit offset field.
    #[error("Jump to label {label} is out of 16-bit range (offset {offset})")]
    JumpOutOfRange {
        /// The label.
        label: String,
        /// The relative offset needed.
        offset: i64,
    },
    /// `call` with an unknown mode word.
    #[error("Invalid call mode: {0} (expected helper, local, kfunc or runtime)")]
    InvalidCallMode(String),
    /// `lddw` with an unknown pseudo kind.
    #[error("Invalid lddw kind: {0} (expected map_fd, map_idx, map_value, map_idx_value, btf_id or func)")]
    InvalidLddwKind(String),
    /// A test file has neither an `-- asm` nor a `-- raw` section.
    #[error("test file has neither an asm nor a raw section")]
    NoProgram,
}

impl AsmError {
    pub(crate) fn new(line: usize, kind: AsmErrorKind) -> Self {
        AsmError { line, kind }
    }
}
