//! The classic-to-eBPF lowering shared by [`crate::convert`] (the kernel's
//! in-kernel conversion) and [`crate::xdp`] (XDP and socket-filter
//! programs for the kernel): the register mapping, instruction builders,
//! and the classic instructions whose eBPF form is the same in every
//! target (ALU, scratch memory, constants, jumps, `tax`/`txa`).
//!
//! Each target keeps its own slot type (an instruction, or a jump whose
//! offset is known only after layout) and implements [`Lowered`] for it.

use crate::insn::{op, SockFilter};
use uxdp_isa::{AluOp, CallTarget, Cond, Endian, Instruction, Operand, Reg, Size, Width};

/// Classic A.
pub(crate) const RA: Reg = Reg(0);
/// Classic X (callee-saved: survives helper calls).
pub(crate) const RX: Reg = Reg(7);
/// The frame pointer; `M[k]` is at `r10 - (4k + 4)`.
pub(crate) const FP: Reg = Reg(10);

/// A target's slot: an instruction or a jump to a classic instruction.
pub(crate) trait Lowered: From<Instruction> {
    /// `goto` the first eBPF instruction of classic instruction `target`.
    fn ja(target: usize) -> Self;
    /// `if (w0 cond src) goto` classic instruction `target` (32-bit).
    fn jcc(cond: Cond, src: Operand, target: usize) -> Self;
}

/// 32-bit ALU operation.
pub(crate) fn alu32<E: From<Instruction>>(op: AluOp, dst: Reg, src: Operand) -> E {
    Instruction::Alu { width: Width::W32, op, dst, src }.into()
}

/// 64-bit ALU operation.
pub(crate) fn alu64<E: From<Instruction>>(op: AluOp, dst: Reg, src: Operand) -> E {
    Instruction::Alu { width: Width::W64, op, dst, src }.into()
}

/// `wdst = k`.
pub(crate) fn mov32<E: From<Instruction>>(dst: Reg, k: u32) -> E {
    alu32(AluOp::Mov, dst, Operand::Imm(k as i32))
}

/// `dst = src` (64-bit).
pub(crate) fn mov64<E: From<Instruction>>(dst: Reg, src: Reg) -> E {
    alu64(AluOp::Mov, dst, Operand::Reg(src))
}

/// `dst = *(size *)(src + off)`, zero-extended.
pub(crate) fn ldx<E: From<Instruction>>(size: Size, dst: Reg, src: Reg, off: i16) -> E {
    Instruction::Load { size, signed: false, dst, src, off }.into()
}

/// A conditional jump by a fixed offset.
pub(crate) fn jmp<E: From<Instruction>>(width: Width, cond: Cond, dst: Reg, src: Operand, off: i16) -> E {
    Instruction::Jump { width, cond, dst, src, off }.into()
}

/// Call of helper `id`.
pub(crate) fn call<E: From<Instruction>>(id: u32) -> E {
    Instruction::Call(CallTarget::Helper(id as i32)).into()
}

/// `exit`.
pub(crate) fn exit<E: From<Instruction>>() -> E {
    Instruction::Exit.into()
}

/// `dst = be{bits}(dst)`.
pub(crate) fn be<E: From<Instruction>>(bits: u8, dst: Reg) -> E {
    Instruction::Endian { kind: Endian::Be, bits, dst }.into()
}

/// Offset of `M[k]` from the frame pointer.
fn scratch_off(k: u32) -> i16 {
    -(4 * (k & 15) as i16 + 4)
}

/// `dst = M[k]`.
pub(crate) fn load_scratch<E: From<Instruction>>(dst: Reg, k: u32) -> E {
    ldx(Size::W, dst, FP, scratch_off(k))
}

/// `M[k] = src` (`st`: A, `stx`: X).
pub(crate) fn store_scratch<E: From<Instruction>>(class: u16, k: u32) -> E {
    let src = if class == op::ST { RA } else { RX };
    Instruction::Store { size: Size::W, dst: FP, off: scratch_off(k), src: Operand::Reg(src) }.into()
}

/// A classic `ALU` instruction. `div x` and `mod x` first run
/// `x_is_zero`, which must end the program (as the classic filter does)
/// when X is 0.
pub(crate) fn lower_alu<E: From<Instruction>>(f: &SockFilter, out: &mut Vec<E>, x_is_zero: impl FnOnce(&mut Vec<E>)) {
    use op::*;
    let alu = match f.code & 0xf0 {
        ADD => AluOp::Add,
        SUB => AluOp::Sub,
        MUL => AluOp::Mul,
        DIV => AluOp::Div,
        OR => AluOp::Or,
        AND => AluOp::And,
        LSH => AluOp::Lsh,
        RSH => AluOp::Rsh,
        NEG => AluOp::Neg,
        MOD => AluOp::Mod,
        _ => AluOp::Xor,
    };
    if alu == AluOp::Neg {
        out.push(alu32(AluOp::Neg, RA, Operand::Imm(0)));
    } else if f.code & X != 0 {
        if matches!(alu, AluOp::Div | AluOp::Mod) {
            x_is_zero(out);
        }
        out.push(alu32(alu, RA, Operand::Reg(RX)));
    } else {
        out.push(alu32(alu, RA, Operand::Imm(f.k as i32)));
    }
}

/// A classic `JMP` instruction at `pc`, laid out as the kernel does: a
/// single jump when the false branch falls through, an inverted single
/// jump when the true branch does, else a conditional jump and a `ja`.
pub(crate) fn lower_jump<E: Lowered>(pc: usize, f: &SockFilter, out: &mut Vec<E>) {
    use op::*;
    if f.code == JMP | JA {
        out.push(E::ja(pc + 1 + f.k as usize));
        return;
    }
    let src = if f.code & X != 0 { Operand::Reg(RX) } else { Operand::Imm(f.k as i32) };
    let cond = match f.code & 0xf0 {
        JEQ => Cond::Eq,
        JGT => Cond::Gt,
        JGE => Cond::Ge,
        _ => Cond::Set,
    };
    let (t, e) = (pc + 1 + f.jt as usize, pc + 1 + f.jf as usize);
    let inverse = match cond {
        Cond::Eq => Some(Cond::Ne),
        Cond::Gt => Some(Cond::Le),
        Cond::Ge => Some(Cond::Lt),
        _ => None,
    };
    if f.jf == 0 {
        out.push(E::jcc(cond, src, t));
    } else if let (0, Some(inv)) = (f.jt, inverse) {
        out.push(E::jcc(inv, src, e));
    } else {
        out.push(E::jcc(cond, src, t));
        out.push(E::ja(e));
    }
}

/// A classic `MISC` instruction: `tax` or `txa`.
pub(crate) fn lower_misc<E: From<Instruction>>(code: u16, out: &mut Vec<E>) {
    if code == op::MISC | op::TAX {
        out.push(mov64(RX, RA));
    } else {
        out.push(mov64(RA, RX));
    }
}
