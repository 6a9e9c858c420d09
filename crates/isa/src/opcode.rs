//! Opcode field constants, named as in RFC 9669 and the kernel's `bpf.h`.
//!
//! An opcode byte is `class | (size|mode)` for loads and stores, and
//! `class | source | operation` for arithmetic and jumps.

/// Mask selecting the instruction class (low 3 bits).
pub const CLASS_MASK: u8 = 0x07;
/// Non-standard load (`lddw`, legacy packet loads).
pub const CLASS_LD: u8 = 0x00;
/// Load into register.
pub const CLASS_LDX: u8 = 0x01;
/// Store immediate.
pub const CLASS_ST: u8 = 0x02;
/// Store register (and atomics).
pub const CLASS_STX: u8 = 0x03;
/// 32-bit arithmetic.
pub const CLASS_ALU: u8 = 0x04;
/// 64-bit jumps, calls and exit.
pub const CLASS_JMP: u8 = 0x05;
/// 32-bit jumps.
pub const CLASS_JMP32: u8 = 0x06;
/// 64-bit arithmetic.
pub const CLASS_ALU64: u8 = 0x07;

/// Source bit: operand is the immediate.
pub const SRC_K: u8 = 0x00;
/// Source bit: operand is `src_reg`.
pub const SRC_X: u8 = 0x08;
/// Mask selecting the operation of an ALU or JMP opcode (high 4 bits).
pub const OP_MASK: u8 = 0xf0;

/// ALU operation codes.
pub mod alu {
    /// `dst += src`
    pub const ADD: u8 = 0x00;
    /// `dst -= src`
    pub const SUB: u8 = 0x10;
    /// `dst *= src`
    pub const MUL: u8 = 0x20;
    /// `dst /= src` (offset 1: signed)
    pub const DIV: u8 = 0x30;
    /// `dst |= src`
    pub const OR: u8 = 0x40;
    /// `dst &= src`
    pub const AND: u8 = 0x50;
    /// `dst <<= src`
    pub const LSH: u8 = 0x60;
    /// `dst >>= src` (logical)
    pub const RSH: u8 = 0x70;
    /// `dst = -dst`
    pub const NEG: u8 = 0x80;
    /// `dst %= src` (offset 1: signed)
    pub const MOD: u8 = 0x90;
    /// `dst ^= src`
    pub const XOR: u8 = 0xa0;
    /// `dst = src` (offset 8/16/32: sign-extending move)
    pub const MOV: u8 = 0xb0;
    /// `dst >>= src` (arithmetic)
    pub const ARSH: u8 = 0xc0;
    /// Byte swap / endianness conversion.
    pub const END: u8 = 0xd0;
}

/// Jump operation codes.
pub mod jmp {
    /// Unconditional jump (`ja`; in JMP32 class `gotol` with a 32-bit offset).
    pub const JA: u8 = 0x00;
    /// `==`
    pub const JEQ: u8 = 0x10;
    /// unsigned `>`
    pub const JGT: u8 = 0x20;
    /// unsigned `>=`
    pub const JGE: u8 = 0x30;
    /// `dst & src != 0`
    pub const JSET: u8 = 0x40;
    /// `!=`
    pub const JNE: u8 = 0x50;
    /// signed `>`
    pub const JSGT: u8 = 0x60;
    /// signed `>=`
    pub const JSGE: u8 = 0x70;
    /// Function call (helper, local, kfunc; `callx` with the X source).
    pub const CALL: u8 = 0x80;
    /// Return from function or program.
    pub const EXIT: u8 = 0x90;
    /// unsigned `<`
    pub const JLT: u8 = 0xa0;
    /// unsigned `<=`
    pub const JLE: u8 = 0xb0;
    /// signed `<`
    pub const JSLT: u8 = 0xc0;
    /// signed `<=`
    pub const JSLE: u8 = 0xd0;
}

/// Size field of load/store opcodes.
pub mod size {
    /// Mask of the size field.
    pub const MASK: u8 = 0x18;
    /// 4 bytes.
    pub const W: u8 = 0x00;
    /// 2 bytes.
    pub const H: u8 = 0x08;
    /// 1 byte.
    pub const B: u8 = 0x10;
    /// 8 bytes.
    pub const DW: u8 = 0x18;
}

/// Mode field of load/store opcodes.
pub mod mode {
    /// Mask of the mode field.
    pub const MASK: u8 = 0xe0;
    /// 64-bit immediate (`lddw`).
    pub const IMM: u8 = 0x00;
    /// Legacy absolute packet load.
    pub const ABS: u8 = 0x20;
    /// Legacy indirect packet load.
    pub const IND: u8 = 0x40;
    /// Regular memory access.
    pub const MEM: u8 = 0x60;
    /// Sign-extending load.
    pub const MEMSX: u8 = 0x80;
    /// Atomic operation.
    pub const ATOMIC: u8 = 0xc0;
}

/// Atomic operation codes carried in the immediate of `STX|ATOMIC`.
pub mod atomic {
    /// Flag: return the old value.
    pub const FETCH: i32 = 0x01;
    /// `*p += src`
    pub const ADD: i32 = 0x00;
    /// `*p |= src`
    pub const OR: i32 = 0x40;
    /// `*p &= src`
    pub const AND: i32 = 0x50;
    /// `*p ^= src`
    pub const XOR: i32 = 0xa0;
    /// Exchange (always fetches).
    pub const XCHG: i32 = 0xe0 | FETCH;
    /// Compare and exchange against r0 (always fetches).
    pub const CMPXCHG: i32 = 0xf0 | FETCH;
}

/// `src_reg` values of `lddw` (`BPF_PSEUDO_*`).
pub mod pseudo {
    /// Plain 64-bit immediate.
    pub const IMM64: u8 = 0;
    /// Map referenced by file descriptor.
    pub const MAP_FD: u8 = 1;
    /// Address of a map value: fd in `imm`, offset in the next `imm`.
    pub const MAP_VALUE: u8 = 2;
    /// Kernel variable by BTF id.
    pub const BTF_ID: u8 = 3;
    /// Address of a subprogram (pc-relative).
    pub const FUNC: u8 = 4;
    /// Map referenced by index.
    pub const MAP_IDX: u8 = 5;
    /// Address of a map value: map index in `imm`, offset in the next `imm`.
    pub const MAP_IDX_VALUE: u8 = 6;
}

/// `src_reg` values of `call`.
pub mod call {
    /// Helper function by static id.
    pub const HELPER: u8 = 0;
    /// bpf-to-bpf call, pc-relative.
    pub const LOCAL: u8 = 1;
    /// Kernel function by BTF id.
    pub const KFUNC: u8 = 2;
}

/// `lddw` opcode byte.
pub const LDDW: u8 = CLASS_LD | mode::IMM | size::DW;
/// `exit` opcode byte.
pub const EXIT: u8 = CLASS_JMP | jmp::EXIT;
/// `call imm` opcode byte.
pub const CALL: u8 = CLASS_JMP | jmp::CALL;
/// `callx reg` opcode byte.
pub const CALLX: u8 = CLASS_JMP | jmp::CALL | SRC_X;
/// `ja` opcode byte.
pub const JA: u8 = CLASS_JMP | jmp::JA;
/// `gotol` (`ja32`) opcode byte.
pub const GOTOL: u8 = CLASS_JMP32 | jmp::JA;
