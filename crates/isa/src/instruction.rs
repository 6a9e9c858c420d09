//! Typed instructions: decoding from raw slots with full field validation,
//! encoding back, and the textual (disassembly) form.
//!
//! The text form is the one used by the bpf_conformance suite
//! (`add32 %r0, 1`, `ldxh %r0, [%r1+2]`, `lock fetch add [%r10-8], %r1`),
//! extended for the pseudo `lddw` kinds and kfunc calls.

use crate::insn::Insn;
use crate::opcode::{self, alu, atomic, jmp, mode, pseudo, size};
use core::fmt;

/// A register number, 0 to 10 (r10 is the read-only frame pointer).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Reg(pub u8);

impl Reg {
    /// The frame pointer.
    pub const FP: Reg = Reg(10);
    /// Number of registers.
    pub const COUNT: usize = 11;
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%r{}", self.0)
    }
}

/// Operand width of ALU and JMP instructions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Width {
    /// 32-bit (ALU / JMP32 classes).
    W32,
    /// 64-bit (ALU64 / JMP classes).
    W64,
}

/// Memory access size.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Size {
    /// 1 byte.
    B,
    /// 2 bytes.
    H,
    /// 4 bytes.
    W,
    /// 8 bytes.
    DW,
}

impl Size {
    /// Size in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    fn from_code(code: u8) -> Size {
        match code & size::MASK {
            size::W => Size::W,
            size::H => Size::H,
            size::B => Size::B,
            _ => Size::DW,
        }
    }

    fn code(self) -> u8 {
        match self {
            Size::W => size::W,
            Size::H => size::H,
            Size::B => size::B,
            Size::DW => size::DW,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Size::B => "b",
            Size::H => "h",
            Size::W => "w",
            Size::DW => "dw",
        }
    }
}

/// Second operand of ALU, jump and store instructions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Operand {
    /// A register.
    Reg(Reg),
    /// The 32-bit immediate (sign-extended for 64-bit operations).
    Imm(i32),
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Reg(r) => r.fmt(f),
            Operand::Imm(i) => write!(f, "{i}"),
        }
    }
}

/// ALU operations.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AluOp {
    /// Addition.
    Add,
    /// Subtraction.
    Sub,
    /// Multiplication.
    Mul,
    /// Unsigned division (by zero gives 0).
    Div,
    /// Signed division (v4).
    SDiv,
    /// Bitwise or.
    Or,
    /// Bitwise and.
    And,
    /// Left shift (amount masked).
    Lsh,
    /// Logical right shift (amount masked).
    Rsh,
    /// Negation (no source operand).
    Neg,
    /// Unsigned modulo (by zero leaves dst).
    Mod,
    /// Signed modulo (v4).
    SMod,
    /// Bitwise xor.
    Xor,
    /// Move.
    Mov,
    /// Sign-extending move from the low 8, 16 or 32 bits (v4).
    MovSx(u8),
    /// Arithmetic right shift.
    Arsh,
}

impl AluOp {
    /// Mnemonic without width suffix.
    pub fn mnemonic(self) -> &'static str {
        match self {
            AluOp::Add => "add",
            AluOp::Sub => "sub",
            AluOp::Mul => "mul",
            AluOp::Div => "div",
            AluOp::SDiv => "sdiv",
            AluOp::Or => "or",
            AluOp::And => "and",
            AluOp::Lsh => "lsh",
            AluOp::Rsh => "rsh",
            AluOp::Neg => "neg",
            AluOp::Mod => "mod",
            AluOp::SMod => "smod",
            AluOp::Xor => "xor",
            AluOp::Mov => "mov",
            AluOp::MovSx(_) => "movsx",
            AluOp::Arsh => "arsh",
        }
    }

    fn code_and_off(self) -> (u8, i16) {
        match self {
            AluOp::Add => (alu::ADD, 0),
            AluOp::Sub => (alu::SUB, 0),
            AluOp::Mul => (alu::MUL, 0),
            AluOp::Div => (alu::DIV, 0),
            AluOp::SDiv => (alu::DIV, 1),
            AluOp::Or => (alu::OR, 0),
            AluOp::And => (alu::AND, 0),
            AluOp::Lsh => (alu::LSH, 0),
            AluOp::Rsh => (alu::RSH, 0),
            AluOp::Neg => (alu::NEG, 0),
            AluOp::Mod => (alu::MOD, 0),
            AluOp::SMod => (alu::MOD, 1),
            AluOp::Xor => (alu::XOR, 0),
            AluOp::Mov => (alu::MOV, 0),
            AluOp::MovSx(bits) => (alu::MOV, bits as i16),
            AluOp::Arsh => (alu::ARSH, 0),
        }
    }
}

/// Byte-order operations.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Endian {
    /// Convert to little endian (truncates on a little-endian host).
    Le,
    /// Convert to big endian.
    Be,
    /// Unconditional byte swap (v4, ALU64 class).
    Swap,
}

/// Conditional jump comparisons.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Cond {
    /// `==`
    Eq,
    /// unsigned `>`
    Gt,
    /// unsigned `>=`
    Ge,
    /// `a & b != 0`
    Set,
    /// `!=`
    Ne,
    /// signed `>`
    Sgt,
    /// signed `>=`
    Sge,
    /// unsigned `<`
    Lt,
    /// unsigned `<=`
    Le,
    /// signed `<`
    Slt,
    /// signed `<=`
    Sle,
}

impl Cond {
    /// Mnemonic without width suffix.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Cond::Eq => "jeq",
            Cond::Gt => "jgt",
            Cond::Ge => "jge",
            Cond::Set => "jset",
            Cond::Ne => "jne",
            Cond::Sgt => "jsgt",
            Cond::Sge => "jsge",
            Cond::Lt => "jlt",
            Cond::Le => "jle",
            Cond::Slt => "jslt",
            Cond::Sle => "jsle",
        }
    }

    /// All conditions, for tables and tests.
    pub const ALL: [Cond; 11] = [
        Cond::Eq,
        Cond::Gt,
        Cond::Ge,
        Cond::Set,
        Cond::Ne,
        Cond::Sgt,
        Cond::Sge,
        Cond::Lt,
        Cond::Le,
        Cond::Slt,
        Cond::Sle,
    ];

    fn code(self) -> u8 {
        match self {
            Cond::Eq => jmp::JEQ,
            Cond::Gt => jmp::JGT,
            Cond::Ge => jmp::JGE,
            Cond::Set => jmp::JSET,
            Cond::Ne => jmp::JNE,
            Cond::Sgt => jmp::JSGT,
            Cond::Sge => jmp::JSGE,
            Cond::Lt => jmp::JLT,
            Cond::Le => jmp::JLE,
            Cond::Slt => jmp::JSLT,
            Cond::Sle => jmp::JSLE,
        }
    }

    /// Evaluates the comparison on 64-bit operands.
    #[inline(always)]
    pub fn eval64(self, a: u64, b: u64) -> bool {
        match self {
            Cond::Eq => a == b,
            Cond::Gt => a > b,
            Cond::Ge => a >= b,
            Cond::Set => a & b != 0,
            Cond::Ne => a != b,
            Cond::Sgt => (a as i64) > (b as i64),
            Cond::Sge => (a as i64) >= (b as i64),
            Cond::Lt => a < b,
            Cond::Le => a <= b,
            Cond::Slt => (a as i64) < (b as i64),
            Cond::Sle => (a as i64) <= (b as i64),
        }
    }

    /// Evaluates the comparison on 32-bit operands.
    #[inline(always)]
    pub fn eval32(self, a: u32, b: u32) -> bool {
        match self {
            Cond::Eq => a == b,
            Cond::Gt => a > b,
            Cond::Ge => a >= b,
            Cond::Set => a & b != 0,
            Cond::Ne => a != b,
            Cond::Sgt => (a as i32) > (b as i32),
            Cond::Sge => (a as i32) >= (b as i32),
            Cond::Lt => a < b,
            Cond::Le => a <= b,
            Cond::Slt => (a as i32) < (b as i32),
            Cond::Sle => (a as i32) <= (b as i32),
        }
    }
}

/// Atomic read-modify-write operations.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AtomicOp {
    /// Add.
    Add,
    /// Or.
    Or,
    /// And.
    And,
    /// Xor.
    Xor,
    /// Exchange (always fetches into src).
    Xchg,
    /// Compare with r0 and exchange (old value into r0).
    CmpXchg,
}

/// Addressing mode of the legacy packet loads.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PacketMode {
    /// `BPF_ABS`: offset is `imm`.
    Abs,
    /// `BPF_IND`: offset is `src + imm`.
    Ind,
}

/// What the 64-bit immediate of `lddw` denotes (its `src_reg`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LoadImmKind {
    /// A plain constant.
    Imm64,
    /// Map by fd (`imm`).
    MapFd,
    /// Map value address: map fd in `imm`, byte offset in `next_imm`.
    MapValue,
    /// Kernel variable by BTF id.
    BtfId,
    /// Subprogram address, pc-relative in `imm`.
    Func,
    /// Map by index.
    MapIdx,
    /// Map value address by map index, byte offset in `next_imm`.
    MapIdxValue,
}

impl LoadImmKind {
    fn from_src(src: u8) -> Option<Self> {
        Some(match src {
            pseudo::IMM64 => LoadImmKind::Imm64,
            pseudo::MAP_FD => LoadImmKind::MapFd,
            pseudo::MAP_VALUE => LoadImmKind::MapValue,
            pseudo::BTF_ID => LoadImmKind::BtfId,
            pseudo::FUNC => LoadImmKind::Func,
            pseudo::MAP_IDX => LoadImmKind::MapIdx,
            pseudo::MAP_IDX_VALUE => LoadImmKind::MapIdxValue,
            _ => return None,
        })
    }

    /// The `src_reg` encoding.
    pub fn src(self) -> u8 {
        match self {
            LoadImmKind::Imm64 => pseudo::IMM64,
            LoadImmKind::MapFd => pseudo::MAP_FD,
            LoadImmKind::MapValue => pseudo::MAP_VALUE,
            LoadImmKind::BtfId => pseudo::BTF_ID,
            LoadImmKind::Func => pseudo::FUNC,
            LoadImmKind::MapIdx => pseudo::MAP_IDX,
            LoadImmKind::MapIdxValue => pseudo::MAP_IDX_VALUE,
        }
    }

    /// Keyword used in the text form.
    pub fn keyword(self) -> &'static str {
        match self {
            LoadImmKind::Imm64 => "",
            LoadImmKind::MapFd => "map_fd",
            LoadImmKind::MapValue => "map_value",
            LoadImmKind::BtfId => "btf_id",
            LoadImmKind::Func => "func",
            LoadImmKind::MapIdx => "map_idx",
            LoadImmKind::MapIdxValue => "map_idx_value",
        }
    }
}

/// Call targets.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CallTarget {
    /// Helper function by static id.
    Helper(i32),
    /// bpf-to-bpf call; target is `pc + 1 + offset`.
    Local(i32),
    /// Kernel function by BTF id; `off` selects a module BTF (0: vmlinux).
    Kfunc {
        /// BTF type id of the function.
        btf_id: i32,
        /// Index of the module BTF fd (0 for vmlinux).
        off: i16,
    },
}

/// A decoded, validated instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Instruction {
    /// Arithmetic: `dst = dst op src`.
    Alu {
        /// 32 or 64 bit.
        width: Width,
        /// Operation.
        op: AluOp,
        /// Destination (and first operand).
        dst: Reg,
        /// Second operand (`Imm(0)` for `neg`).
        src: Operand,
    },
    /// Byte-order conversion of `dst` to `bits` bits.
    Endian {
        /// Conversion kind.
        kind: Endian,
        /// 16, 32 or 64.
        bits: u8,
        /// Register converted in place.
        dst: Reg,
    },
    /// `lddw dst, imm64` (two slots).
    LoadImm64 {
        /// Destination register.
        dst: Reg,
        /// Meaning of the immediate.
        kind: LoadImmKind,
        /// Low 32 bits (`imm` of the first slot).
        imm: i32,
        /// High 32 bits (`imm` of the second slot).
        next_imm: i32,
    },
    /// `dst = *(size *)(src + off)`, optionally sign-extending.
    Load {
        /// Access size.
        size: Size,
        /// Sign-extend (`BPF_MEMSX`, v4).
        signed: bool,
        /// Destination register.
        dst: Reg,
        /// Base address register.
        src: Reg,
        /// Signed offset.
        off: i16,
    },
    /// `*(size *)(dst + off) = src`.
    Store {
        /// Access size.
        size: Size,
        /// Base address register.
        dst: Reg,
        /// Signed offset.
        off: i16,
        /// Stored value.
        src: Operand,
    },
    /// Atomic read-modify-write of `*(size *)(dst + off)` with `src`.
    Atomic {
        /// `W` or `DW`.
        size: Size,
        /// Operation.
        op: AtomicOp,
        /// Returns the old value (always true for xchg/cmpxchg).
        fetch: bool,
        /// Base address register.
        dst: Reg,
        /// Operand register (receives the old value when fetching).
        src: Reg,
        /// Signed offset.
        off: i16,
    },
    /// Legacy packet load into r0 (`BPF_LD | BPF_ABS/IND`), socket filters only.
    LoadPacket {
        /// Absolute or indirect.
        mode: PacketMode,
        /// `B`, `H` or `W`.
        size: Size,
        /// Index register (indirect mode).
        src: Reg,
        /// Offset.
        imm: i32,
    },
    /// Unconditional jump to `pc + 1 + off`.
    Ja {
        /// Jump offset in slots.
        off: i32,
        /// Encoded as `gotol` (JMP32 class, 32-bit offset in imm).
        long: bool,
    },
    /// Conditional jump to `pc + 1 + off`.
    Jump {
        /// 32 or 64-bit comparison.
        width: Width,
        /// Comparison.
        cond: Cond,
        /// First operand.
        dst: Reg,
        /// Second operand.
        src: Operand,
        /// Jump offset in slots.
        off: i16,
    },
    /// Call a helper, local function or kfunc.
    Call(CallTarget),
    /// Call the helper whose id is in a register (`callx`).
    Callx {
        /// Register holding the target.
        reg: Reg,
    },
    /// Return r0 from the function or program.
    Exit,
}

/// Why a slot failed to decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The opcode byte is not defined.
    #[error("unknown opcode {0:#04x}")]
    UnknownOpcode(u8),
    /// A register field is above r10.
    #[error("invalid register r{0}")]
    InvalidRegister(u8),
    /// r10 used as a destination.
    #[error("r10 is read-only")]
    WriteToFramePointer,
    /// A field that must be zero is not.
    #[error("reserved field {field} must be zero (is {value})")]
    ReservedField {
        /// Field name.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// A field holds a value outside its allowed set.
    #[error("invalid {field} {value} for opcode {code:#04x}")]
    InvalidField {
        /// Field name.
        field: &'static str,
        /// Its value.
        value: i64,
        /// Opcode byte.
        code: u8,
    },
    /// `lddw` is the last slot.
    #[error("lddw is missing its second slot")]
    TruncatedLddw,
}

fn reg(r: u8) -> Result<Reg, DecodeError> {
    if r > 10 {
        Err(DecodeError::InvalidRegister(r))
    } else {
        Ok(Reg(r))
    }
}

fn wreg(r: u8) -> Result<Reg, DecodeError> {
    let r = reg(r)?;
    if r == Reg::FP {
        Err(DecodeError::WriteToFramePointer)
    } else {
        Ok(r)
    }
}

fn zero(field: &'static str, value: i64) -> Result<(), DecodeError> {
    if value != 0 {
        Err(DecodeError::ReservedField { field, value })
    } else {
        Ok(())
    }
}

impl Instruction {
    /// Number of slots the instruction occupies (2 for `lddw`, else 1).
    pub fn slots(&self) -> usize {
        match self {
            Instruction::LoadImm64 { .. } => 2,
            _ => 1,
        }
    }

    /// Decodes the instruction at `slots[0]` (and `slots[1]` for `lddw`),
    /// rejecting undefined opcodes, bad registers and non-zero reserved fields.
    pub fn decode(slots: &[Insn]) -> Result<Instruction, DecodeError> {
        let i = slots[0];
        let code = i.code;
        let class = i.class();
        match class {
            opcode::CLASS_ALU | opcode::CLASS_ALU64 => decode_alu(i),
            opcode::CLASS_JMP | opcode::CLASS_JMP32 => decode_jmp(i),
            opcode::CLASS_LDX => {
                let signed = match code & mode::MASK {
                    mode::MEM => false,
                    mode::MEMSX if code & size::MASK != size::DW => true,
                    _ => return Err(DecodeError::UnknownOpcode(code)),
                };
                zero("imm", i.imm as i64)?;
                Ok(Instruction::Load {
                    size: Size::from_code(code),
                    signed,
                    dst: wreg(i.dst())?,
                    src: reg(i.src())?,
                    off: i.off,
                })
            }
            opcode::CLASS_ST => {
                if code & mode::MASK != mode::MEM {
                    return Err(DecodeError::UnknownOpcode(code));
                }
                zero("src_reg", i.src() as i64)?;
                Ok(Instruction::Store {
                    size: Size::from_code(code),
                    dst: reg(i.dst())?,
                    off: i.off,
                    src: Operand::Imm(i.imm),
                })
            }
            opcode::CLASS_STX => match code & mode::MASK {
                mode::MEM => {
                    zero("imm", i.imm as i64)?;
                    Ok(Instruction::Store {
                        size: Size::from_code(code),
                        dst: reg(i.dst())?,
                        off: i.off,
                        src: Operand::Reg(reg(i.src())?),
                    })
                }
                mode::ATOMIC => {
                    let size = Size::from_code(code);
                    if !matches!(size, Size::W | Size::DW) {
                        return Err(DecodeError::UnknownOpcode(code));
                    }
                    let fetch = i.imm & atomic::FETCH != 0;
                    let op = match i.imm {
                        x if x & !atomic::FETCH == atomic::ADD => AtomicOp::Add,
                        x if x & !atomic::FETCH == atomic::OR => AtomicOp::Or,
                        x if x & !atomic::FETCH == atomic::AND => AtomicOp::And,
                        x if x & !atomic::FETCH == atomic::XOR => AtomicOp::Xor,
                        atomic::XCHG => AtomicOp::Xchg,
                        atomic::CMPXCHG => AtomicOp::CmpXchg,
                        other => {
                            return Err(DecodeError::InvalidField {
                                field: "atomic operation",
                                value: other as i64,
                                code,
                            })
                        }
                    };
                    Ok(Instruction::Atomic {
                        size,
                        op,
                        fetch,
                        dst: reg(i.dst())?,
                        src: reg(i.src())?,
                        off: i.off,
                    })
                }
                _ => Err(DecodeError::UnknownOpcode(code)),
            },
            _ /* CLASS_LD */ => match code & mode::MASK {
                mode::IMM if code & size::MASK == size::DW => {
                    let next = *slots.get(1).ok_or(DecodeError::TruncatedLddw)?;
                    zero("offset", i.off as i64)?;
                    if next.code != 0 || next.regs != 0 || next.off != 0 {
                        return Err(DecodeError::ReservedField {
                            field: "second lddw slot",
                            value: (next.to_u64() & 0xffff_ffff) as i64,
                        });
                    }
                    let kind = LoadImmKind::from_src(i.src()).ok_or(DecodeError::InvalidField {
                        field: "lddw src_reg",
                        value: i.src() as i64,
                        code,
                    })?;
                    if matches!(kind, LoadImmKind::MapFd | LoadImmKind::MapIdx | LoadImmKind::BtfId | LoadImmKind::Func) {
                        zero("lddw upper immediate", next.imm as i64)?;
                    }
                    Ok(Instruction::LoadImm64 { dst: wreg(i.dst())?, kind, imm: i.imm, next_imm: next.imm })
                }
                m @ (mode::ABS | mode::IND) if code & size::MASK != size::DW => {
                    zero("dst_reg", i.dst() as i64)?;
                    zero("offset", i.off as i64)?;
                    let mode = if m == mode::ABS {
                        zero("src_reg", i.src() as i64)?;
                        PacketMode::Abs
                    } else {
                        PacketMode::Ind
                    };
                    Ok(Instruction::LoadPacket { mode, size: Size::from_code(code), src: reg(i.src())?, imm: i.imm })
                }
                _ => Err(DecodeError::UnknownOpcode(code)),
            },
        }
    }

    /// Encodes the instruction; `lddw` yields two slots.
    pub fn encode(&self) -> Vec<Insn> {
        let mut out = Vec::with_capacity(2);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded slots to `out`.
    pub fn encode_into(&self, out: &mut Vec<Insn>) {
        use opcode::*;
        let cls = |w: Width, narrow: u8, wide: u8| if w == Width::W32 { narrow } else { wide };
        match *self {
            Instruction::Alu { width, op, dst, src } => {
                let (opc, off) = op.code_and_off();
                let class = cls(width, CLASS_ALU, CLASS_ALU64);
                let (s, sreg, imm) = match src {
                    Operand::Reg(r) => (SRC_X, r.0, 0),
                    Operand::Imm(v) => (SRC_K, 0, v),
                };
                out.push(Insn::new(class | s | opc, dst.0, sreg, off, imm));
            }
            Instruction::Endian { kind, bits, dst } => {
                let (class, s) = match kind {
                    Endian::Le => (CLASS_ALU, SRC_K),
                    Endian::Be => (CLASS_ALU, SRC_X),
                    Endian::Swap => (CLASS_ALU64, SRC_K),
                };
                out.push(Insn::new(class | s | alu::END, dst.0, 0, 0, bits as i32));
            }
            Instruction::LoadImm64 { dst, kind, imm, next_imm } => {
                out.push(Insn::new(LDDW, dst.0, kind.src(), 0, imm));
                out.push(Insn::new(0, 0, 0, 0, next_imm));
            }
            Instruction::Load { size, signed, dst, src, off } => {
                let m = if signed { mode::MEMSX } else { mode::MEM };
                out.push(Insn::new(CLASS_LDX | m | size.code(), dst.0, src.0, off, 0));
            }
            Instruction::Store { size, dst, off, src } => match src {
                Operand::Reg(r) => out.push(Insn::new(CLASS_STX | mode::MEM | size.code(), dst.0, r.0, off, 0)),
                Operand::Imm(v) => out.push(Insn::new(CLASS_ST | mode::MEM | size.code(), dst.0, 0, off, v)),
            },
            Instruction::Atomic { size, op, fetch, dst, src, off } => {
                let f = if fetch { atomic::FETCH } else { 0 };
                let imm = match op {
                    AtomicOp::Add => atomic::ADD | f,
                    AtomicOp::Or => atomic::OR | f,
                    AtomicOp::And => atomic::AND | f,
                    AtomicOp::Xor => atomic::XOR | f,
                    AtomicOp::Xchg => atomic::XCHG,
                    AtomicOp::CmpXchg => atomic::CMPXCHG,
                };
                out.push(Insn::new(CLASS_STX | mode::ATOMIC | size.code(), dst.0, src.0, off, imm));
            }
            Instruction::LoadPacket { mode: m, size, src, imm } => {
                let md = if m == PacketMode::Abs { mode::ABS } else { mode::IND };
                out.push(Insn::new(CLASS_LD | md | size.code(), 0, src.0, 0, imm));
            }
            Instruction::Ja { off, long } => {
                if long {
                    out.push(Insn::new(GOTOL, 0, 0, 0, off));
                } else {
                    out.push(Insn::new(JA, 0, 0, off as i16, 0));
                }
            }
            Instruction::Jump { width, cond, dst, src, off } => {
                let class = cls(width, CLASS_JMP32, CLASS_JMP);
                let (s, sreg, imm) = match src {
                    Operand::Reg(r) => (SRC_X, r.0, 0),
                    Operand::Imm(v) => (SRC_K, 0, v),
                };
                out.push(Insn::new(class | s | cond.code(), dst.0, sreg, off, imm));
            }
            Instruction::Call(t) => out.push(match t {
                CallTarget::Helper(id) => Insn::new(CALL, 0, call::HELPER, 0, id),
                CallTarget::Local(rel) => Insn::new(CALL, 0, call::LOCAL, 0, rel),
                CallTarget::Kfunc { btf_id, off } => Insn::new(CALL, 0, call::KFUNC, off, btf_id),
            }),
            Instruction::Callx { reg } => out.push(Insn::new(CALLX, reg.0, 0, 0, 0)),
            Instruction::Exit => out.push(Insn::new(EXIT, 0, 0, 0, 0)),
        }
    }

    /// Jump target of a jump instruction located at `pc`, if any
    /// (conditional and unconditional jumps; not calls).
    pub fn jump_target(&self, pc: usize) -> Option<i64> {
        match *self {
            Instruction::Ja { off, .. } => Some(pc as i64 + 1 + off as i64),
            Instruction::Jump { off, .. } => Some(pc as i64 + 1 + off as i64),
            _ => None,
        }
    }
}

fn decode_alu(i: Insn) -> Result<Instruction, DecodeError> {
    let code = i.code;
    let width = if i.class() == opcode::CLASS_ALU { Width::W32 } else { Width::W64 };
    let is_x = code & opcode::SRC_X != 0;
    let opc = code & opcode::OP_MASK;
    if opc == alu::END {
        let kind = match (width, is_x) {
            (Width::W32, false) => Endian::Le,
            (Width::W32, true) => Endian::Be,
            (Width::W64, false) => Endian::Swap,
            (Width::W64, true) => return Err(DecodeError::UnknownOpcode(code)),
        };
        zero("src_reg", i.src() as i64)?;
        zero("offset", i.off as i64)?;
        if !matches!(i.imm, 16 | 32 | 64) {
            return Err(DecodeError::InvalidField { field: "byte-swap width", value: i.imm as i64, code });
        }
        return Ok(Instruction::Endian { kind, bits: i.imm as u8, dst: wreg(i.dst())? });
    }
    let op = match (opc, i.off) {
        (alu::ADD, 0) => AluOp::Add,
        (alu::SUB, 0) => AluOp::Sub,
        (alu::MUL, 0) => AluOp::Mul,
        (alu::DIV, 0) => AluOp::Div,
        (alu::DIV, 1) => AluOp::SDiv,
        (alu::OR, 0) => AluOp::Or,
        (alu::AND, 0) => AluOp::And,
        (alu::LSH, 0) => AluOp::Lsh,
        (alu::RSH, 0) => AluOp::Rsh,
        (alu::NEG, 0) => AluOp::Neg,
        (alu::MOD, 0) => AluOp::Mod,
        (alu::MOD, 1) => AluOp::SMod,
        (alu::XOR, 0) => AluOp::Xor,
        (alu::MOV, 0) => AluOp::Mov,
        (alu::MOV, 8 | 16) if is_x => AluOp::MovSx(i.off as u8),
        (alu::MOV, 32) if is_x && width == Width::W64 => AluOp::MovSx(32),
        (alu::ARSH, 0) => AluOp::Arsh,
        (alu::ADD..=alu::ARSH, off) => {
            return Err(if matches!(opc, alu::DIV | alu::MOD | alu::MOV) {
                DecodeError::InvalidField { field: "offset", value: off as i64, code }
            } else {
                DecodeError::ReservedField { field: "offset", value: off as i64 }
            })
        }
        _ => return Err(DecodeError::UnknownOpcode(code)),
    };
    let dst = wreg(i.dst())?;
    let src = if op == AluOp::Neg {
        if is_x {
            return Err(DecodeError::UnknownOpcode(code));
        }
        zero("src_reg", i.src() as i64)?;
        zero("imm", i.imm as i64)?;
        Operand::Imm(0)
    } else if is_x {
        zero("imm", i.imm as i64)?;
        Operand::Reg(reg(i.src())?)
    } else {
        zero("src_reg", i.src() as i64)?;
        Operand::Imm(i.imm)
    };
    Ok(Instruction::Alu { width, op, dst, src })
}

fn decode_jmp(i: Insn) -> Result<Instruction, DecodeError> {
    let code = i.code;
    let wide = i.class() == opcode::CLASS_JMP;
    let is_x = code & opcode::SRC_X != 0;
    match code & opcode::OP_MASK {
        jmp::JA => {
            if is_x {
                return Err(DecodeError::UnknownOpcode(code));
            }
            zero("dst_reg", i.dst() as i64)?;
            zero("src_reg", i.src() as i64)?;
            if wide {
                zero("imm", i.imm as i64)?;
                Ok(Instruction::Ja { off: i.off as i32, long: false })
            } else {
                zero("offset", i.off as i64)?;
                Ok(Instruction::Ja { off: i.imm, long: true })
            }
        }
        jmp::CALL if wide => {
            if is_x {
                zero("src_reg", i.src() as i64)?;
                zero("offset", i.off as i64)?;
                zero("imm", i.imm as i64)?;
                return Ok(Instruction::Callx { reg: reg(i.dst())? });
            }
            zero("dst_reg", i.dst() as i64)?;
            let t = match i.src() {
                opcode::call::HELPER => {
                    zero("offset", i.off as i64)?;
                    CallTarget::Helper(i.imm)
                }
                opcode::call::LOCAL => {
                    zero("offset", i.off as i64)?;
                    CallTarget::Local(i.imm)
                }
                opcode::call::KFUNC => CallTarget::Kfunc { btf_id: i.imm, off: i.off },
                s => return Err(DecodeError::InvalidField { field: "call src_reg", value: s as i64, code }),
            };
            Ok(Instruction::Call(t))
        }
        jmp::EXIT if wide && !is_x => {
            zero("dst_reg", i.dst() as i64)?;
            zero("src_reg", i.src() as i64)?;
            zero("offset", i.off as i64)?;
            zero("imm", i.imm as i64)?;
            Ok(Instruction::Exit)
        }
        op => {
            let cond = match op {
                jmp::JEQ => Cond::Eq,
                jmp::JGT => Cond::Gt,
                jmp::JGE => Cond::Ge,
                jmp::JSET => Cond::Set,
                jmp::JNE => Cond::Ne,
                jmp::JSGT => Cond::Sgt,
                jmp::JSGE => Cond::Sge,
                jmp::JLT => Cond::Lt,
                jmp::JLE => Cond::Le,
                jmp::JSLT => Cond::Slt,
                jmp::JSLE => Cond::Sle,
                _ => return Err(DecodeError::UnknownOpcode(code)),
            };
            let src = if is_x {
                zero("imm", i.imm as i64)?;
                Operand::Reg(reg(i.src())?)
            } else {
                zero("src_reg", i.src() as i64)?;
                Operand::Imm(i.imm)
            };
            Ok(Instruction::Jump {
                width: if wide { Width::W64 } else { Width::W32 },
                cond,
                dst: reg(i.dst())?,
                src,
                off: i.off,
            })
        }
    }
}

fn fmt_mem(f: &mut fmt::Formatter<'_>, base: Reg, off: i16) -> fmt::Result {
    if off >= 0 {
        write!(f, "[{base}+{off}]")
    } else {
        write!(f, "[{base}{off}]")
    }
}

fn fmt_rel(off: i64) -> String {
    if off >= 0 {
        format!("+{off}")
    } else {
        format!("{off}")
    }
}

impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sfx = |w: Width| if w == Width::W32 { "32" } else { "" };
        match *self {
            Instruction::Alu { width, op: AluOp::Neg, dst, .. } => write!(f, "neg{} {dst}", sfx(width)),
            Instruction::Alu { width, op: AluOp::MovSx(bits), dst, src } => {
                let to = if width == Width::W32 { 32 } else { 64 };
                write!(f, "movsx{bits}{to} {dst}, {src}")
            }
            Instruction::Alu { width, op, dst, src } => {
                write!(f, "{}{} {dst}, {src}", op.mnemonic(), sfx(width))
            }
            Instruction::Endian { kind, bits, dst } => {
                let m = match kind {
                    Endian::Le => "le",
                    Endian::Be => "be",
                    Endian::Swap => "swap",
                };
                write!(f, "{m}{bits} {dst}")
            }
            Instruction::LoadImm64 { dst, kind, imm, next_imm } => {
                let v = ((next_imm as u32 as u64) << 32) | imm as u32 as u64;
                match kind {
                    LoadImmKind::Imm64 => write!(f, "lddw {dst}, {v:#x}"),
                    LoadImmKind::MapValue | LoadImmKind::MapIdxValue => {
                        write!(f, "lddw {dst}, {} {imm}, {next_imm}", kind.keyword())
                    }
                    LoadImmKind::Func => write!(f, "lddw {dst}, func {}", fmt_rel(imm as i64)),
                    _ => write!(f, "lddw {dst}, {} {imm}", kind.keyword()),
                }
            }
            Instruction::Load { size, signed, dst, src, off } => {
                write!(f, "ldx{}{} {dst}, ", if signed { "s" } else { "" }, size.suffix())?;
                fmt_mem(f, src, off)
            }
            Instruction::Store { size, dst, off, src } => {
                match src {
                    Operand::Reg(_) => write!(f, "stx{} ", size.suffix())?,
                    Operand::Imm(_) => write!(f, "st{} ", size.suffix())?,
                }
                fmt_mem(f, dst, off)?;
                write!(f, ", {src}")
            }
            Instruction::Atomic { size, op, fetch, dst, src, off } => {
                let w = if size == Size::W { "32" } else { "" };
                let name = match op {
                    AtomicOp::Add => "add",
                    AtomicOp::Or => "or",
                    AtomicOp::And => "and",
                    AtomicOp::Xor => "xor",
                    AtomicOp::Xchg => "xchg",
                    AtomicOp::CmpXchg => "cmpxchg",
                };
                let fetch = if fetch && !matches!(op, AtomicOp::Xchg | AtomicOp::CmpXchg) { "fetch " } else { "" };
                write!(f, "lock {fetch}{name}{w} ")?;
                fmt_mem(f, dst, off)?;
                write!(f, ", {src}")
            }
            Instruction::LoadPacket { mode, size, src, imm } => match mode {
                PacketMode::Abs => write!(f, "ldabs{} {imm}", size.suffix()),
                PacketMode::Ind => write!(f, "ldind{} {src}, {imm}", size.suffix()),
            },
            Instruction::Ja { off, long } => {
                write!(f, "{} {}", if long { "ja32" } else { "ja" }, fmt_rel(off as i64))
            }
            Instruction::Jump { width, cond, dst, src, off } => {
                write!(f, "{}{} {dst}, {src}, {}", cond.mnemonic(), sfx(width), fmt_rel(off as i64))
            }
            Instruction::Call(CallTarget::Helper(id)) => write!(f, "call {id}"),
            Instruction::Call(CallTarget::Local(rel)) => write!(f, "call local {}", fmt_rel(rel as i64)),
            Instruction::Call(CallTarget::Kfunc { btf_id, off }) => {
                if off == 0 {
                    write!(f, "call kfunc {btf_id}")
                } else {
                    write!(f, "call kfunc {btf_id}, {off}")
                }
            }
            Instruction::Callx { reg } => write!(f, "call {reg}"),
            Instruction::Exit => write!(f, "exit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every opcode byte with a spread of field values: whatever decodes
    /// re-encodes to the identical slots.
    #[test]
    fn decode_encode_round_trip_is_exact() {
        let offs = [0i16, 1, 8, 16, 32, -1, 7];
        let imms = [0i32, 1, 16, 32, 64, -1, 0xe1, 0xf1, 0x41, 0x40, 0xa1];
        let mut decoded = 0;
        for code in 0..=255u8 {
            for regs in [0x00u8, 0x21, 0x1a, 0xa1, 0x0b, 0x10, 0x20] {
                for &off in &offs {
                    for &imm in &imms {
                        let slots = [Insn { code, regs, off, imm }, Insn::new(0, 0, 0, 0, 7)];
                        if let Ok(ins) = Instruction::decode(&slots) {
                            decoded += 1;
                            assert_eq!(ins.encode(), slots[..ins.slots()].to_vec(), "{ins:?}");
                        }
                    }
                }
            }
        }
        assert!(decoded > 2000, "only {decoded} decoded");
    }

    #[test]
    fn reserved_fields_are_rejected() {
        // add64 r0, 1 with offset 1
        let e = Instruction::decode(&[Insn::new(0x07, 0, 0, 1, 1)]).unwrap_err();
        assert!(matches!(e, DecodeError::ReservedField { field: "offset", .. }), "{e}");
        // mov r10, 1
        assert_eq!(Instruction::decode(&[Insn::new(0xb7, 10, 0, 0, 1)]), Err(DecodeError::WriteToFramePointer));
        // register 11
        assert_eq!(Instruction::decode(&[Insn::new(0xbf, 0, 11, 0, 0)]), Err(DecodeError::InvalidRegister(11)));
        // ldxdw sign-extending does not exist
        assert_eq!(Instruction::decode(&[Insn::new(0x99, 0, 1, 0, 0)]), Err(DecodeError::UnknownOpcode(0x99)));
        // truncated lddw
        assert_eq!(Instruction::decode(&[Insn::new(0x18, 0, 0, 0, 0)]), Err(DecodeError::TruncatedLddw));
    }

    #[test]
    fn text_form_matches_the_conformance_syntax() {
        let t = |s: &[Insn]| Instruction::decode(s).unwrap().to_string();
        assert_eq!(t(&[Insn::new(0x04, 0, 0, 0, -3)]), "add32 %r0, -3");
        assert_eq!(t(&[Insn::new(0x69, 0, 1, 2, 0)]), "ldxh %r0, [%r1+2]");
        assert_eq!(t(&[Insn::new(0xdb, 10, 1, -8, 0xf1)]), "lock cmpxchg [%r10-8], %r1");
        assert_eq!(t(&[Insn::new(0xc3, 10, 1, -8, 0x41)]), "lock fetch or32 [%r10-8], %r1");
        assert_eq!(t(&[Insn::new(0xbf, 0, 1, 8, 0)]), "movsx864 %r0, %r1");
        assert_eq!(t(&[Insn::new(0xd7, 3, 0, 0, 16)]), "swap16 %r3");
        assert_eq!(t(&[Insn::new(0x85, 0, 1, 0, 4)]), "call local +4");
        assert_eq!(t(&[Insn::new(0x06, 0, 0, 0, -2)]), "ja32 -2");
    }
}
