//! Program-level structural validation: every slot decodes, every jump and
//! local call lands on an instruction boundary inside the program, control
//! never falls off the end, and (optionally) no register is read before it
//! is written on some path.

use crate::instruction::{CallTarget, Instruction, Operand, Reg};
use crate::{Insn, IsaError};

/// The kernel's limit on program length (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const MAX_INSNS: usize = 1_000_000;

/// Options for [`validate`].
#[derive(Clone, Copy, Debug)]
pub struct ValidateOptions {
    /// Reject reads of registers that may be uninitialised. The mask gives the
    /// registers initialised at program entry (bit n = rn); r10 is always set.
    pub entry_regs: Option<u16>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        // r1 (context) and r10; most program types pass only the context.
        ValidateOptions { entry_regs: Some(0b10) }
    }
}

/// A validated program: the raw slots and their decoded form.
#[derive(Clone, Debug)]
pub struct Validated {
    /// Decoded instruction per slot; `None` for the second slot of `lddw`.
    pub decoded: Vec<Option<Instruction>>,
    /// Slots that start a function: 0 and every local-call target.
    pub functions: Vec<usize>,
}

/// Validates a program. See the module documentation.
pub fn validate(insns: &[Insn], opts: ValidateOptions) -> Result<Validated, IsaError> {
    if insns.is_empty() {
        return Err(IsaError::Empty);
    }
    if insns.len() > MAX_INSNS {
        return Err(IsaError::TooLong { len: insns.len(), max: MAX_INSNS });
    }
    let n = insns.len();
    let mut decoded = vec![None; n];
    let mut pc = 0;
    while pc < n {
        let ins =
            Instruction::decode(&insns[pc..]).map_err(|reason| IsaError::Invalid { pc, insn: insns[pc], reason })?;
        let slots = ins.slots();
        decoded[pc] = Some(ins);
        pc += slots;
    }
    let mut functions = vec![0usize];
    let target_ok = |pc: usize, t: i64| -> Result<usize, IsaError> {
        if t < 0 || t as usize >= n {
            return Err(IsaError::JumpOutOfRange { pc, target: t });
        }
        if decoded[t as usize].is_none() {
            return Err(IsaError::JumpIntoLddw { pc, target: t as usize });
        }
        Ok(t as usize)
    };
    for (pc, ins) in decoded.iter().enumerate() {
        let Some(ins) = ins else { continue };
        if let Some(t) = ins.jump_target(pc) {
            target_ok(pc, t)?;
        }
        if let Instruction::Call(CallTarget::Local(rel)) = ins {
            let t = target_ok(pc, pc as i64 + 1 + *rel as i64)?;
            functions.push(t);
        }
        if let Instruction::LoadImm64 { kind: crate::LoadImmKind::Func, imm, .. } = ins {
            let t = target_ok(pc, pc as i64 + 1 + *imm as i64)?;
            functions.push(t);
        }
    }
    functions.sort_unstable();
    functions.dedup();
    // The last instruction must not fall through.
    let last = (0..n).rev().find(|&i| decoded[i].is_some()).expect("non-empty");
    match decoded[last] {
        Some(Instruction::Exit) | Some(Instruction::Ja { .. }) => {}
        _ => return Err(IsaError::FallsOffEnd { pc: last }),
    }
    let v = Validated { decoded, functions };
    if let Some(mask) = opts.entry_regs {
        check_init(&v, mask | (1 << 10))?;
    }
    Ok(v)
}

/// Registers read by an instruction (bit mask).
pub fn reads(ins: &Instruction) -> u16 {
    let r = |r: Reg| 1u16 << r.0;
    let op = |o: Operand| if let Operand::Reg(x) = o { r(x) } else { 0 };
    match *ins {
        Instruction::Alu { op: crate::AluOp::Mov | crate::AluOp::MovSx(_), src, .. } => op(src),
        Instruction::Alu { dst, src, .. } => r(dst) | op(src),
        Instruction::Endian { dst, .. } => r(dst),
        Instruction::LoadImm64 { .. } => 0,
        Instruction::Load { src, .. } => r(src),
        Instruction::Store { dst, src, .. } => r(dst) | op(src),
        Instruction::Atomic { dst, src, op: crate::AtomicOp::CmpXchg, .. } => r(dst) | r(src) | 1,
        Instruction::Atomic { dst, src, .. } => r(dst) | r(src),
        Instruction::LoadPacket { mode, src, .. } => {
            // The implicit context (r6) plus the index register.
            (1 << 6) | if mode == crate::PacketMode::Ind { r(src) } else { 0 }
        }
        Instruction::Ja { .. } => 0,
        Instruction::Jump { dst, src, .. } => r(dst) | op(src),
        // Arguments are checked against helper prototypes by the verifier.
        Instruction::Call(_) => 0,
        Instruction::Callx { reg } => r(reg),
        Instruction::Exit => 1,
    }
}

/// Registers written by an instruction, and registers clobbered (made
/// uninitialised) by it.
fn writes(ins: &Instruction) -> (u16, u16) {
    let r = |r: Reg| 1u16 << r.0;
    match *ins {
        Instruction::Alu { dst, .. } | Instruction::Endian { dst, .. } => (r(dst), 0),
        Instruction::LoadImm64 { dst, .. } | Instruction::Load { dst, .. } => (r(dst), 0),
        Instruction::Atomic { op: crate::AtomicOp::CmpXchg, .. } => (1, 0),
        Instruction::Atomic { src, fetch: true, .. } => (r(src), 0),
        Instruction::LoadPacket { .. } => (1, 0b11110),
        Instruction::Call(_) | Instruction::Callx { .. } => (1, 0b11_1110),
        _ => (0, 0),
    }
}

/// State bit marking code reached from a subprogram entry (bits 0-10 are
/// registers).
const IN_SUBPROGRAM: u16 = 1 << 15;

fn check_init(v: &Validated, entry: u16) -> Result<(), IsaError> {
    let n = v.decoded.len();
    // Must-be-initialised sets, meet = intersection; u16::MAX = not visited.
    let mut state = vec![u16::MAX; n];
    let mut work = Vec::new();
    for &f in &v.functions {
        // A function entry: its caller's argument registers are unknown to
        // this simple pass, so r1-r5 count as set (the verifier is exact).
        let s = if f == 0 { entry } else { 0b11_1110 | (1 << 10) | IN_SUBPROGRAM };
        state[f] &= s;
        work.push(f);
    }
    while let Some(pc) = work.pop() {
        let ins = v.decoded[pc].as_ref().expect("instruction boundary");
        let s = state[pc];
        let mut need = reads(ins);
        if matches!(ins, Instruction::Exit) && s & IN_SUBPROGRAM != 0 {
            // As in the kernel, a subprogram may return without setting r0
            // (a `void` function): the caller's r0 is then undefined, which
            // only the verifier tracks.
            need = 0;
        }
        if need & !s != 0 {
            let reg = (need & !s).trailing_zeros() as u8;
            return Err(IsaError::UninitRegister { pc, reg });
        }
        let (w, clobber) = writes(ins);
        let out = (s & !clobber) | w;
        let mut succ = |t: usize, work: &mut Vec<usize>| {
            let new = state[t] & out;
            if new != state[t] {
                state[t] = new;
                work.push(t);
            }
        };
        match ins {
            Instruction::Exit => {}
            Instruction::Ja { .. } => succ(ins.jump_target(pc).unwrap() as usize, &mut work),
            Instruction::Jump { .. } => {
                succ(ins.jump_target(pc).unwrap() as usize, &mut work);
                if pc + 1 < n {
                    succ(pc + 1, &mut work);
                }
            }
            _ => {
                let next = pc + ins.slots();
                if next < n {
                    succ(next, &mut work);
                } else {
                    return Err(IsaError::FallsOffEnd { pc });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opcode::*;

    fn v(insns: &[Insn]) -> Result<Validated, IsaError> {
        validate(insns, ValidateOptions::default())
    }

    #[test]
    fn structural_errors_name_the_instruction() {
        let exit = Insn::new(EXIT, 0, 0, 0, 0);
        let mov0 = Insn::new(0xb7, 0, 0, 0, 0);
        assert_eq!(v(&[]).unwrap_err(), IsaError::Empty);
        assert_eq!(v(&[mov0]).unwrap_err(), IsaError::FallsOffEnd { pc: 0 });
        let ja_out = Insn::new(JA, 0, 0, 5, 0);
        assert_eq!(v(&[mov0, ja_out, exit]).unwrap_err(), IsaError::JumpOutOfRange { pc: 1, target: 7 });
        let into = [mov0, Insn::new(JA, 0, 0, 1, 0), Insn::new(LDDW, 0, 0, 0, 1), Insn::new(0, 0, 0, 0, 0), exit];
        assert_eq!(v(&into).unwrap_err(), IsaError::JumpIntoLddw { pc: 1, target: 3 });
        // `or r0, r10` reads r0 before it is written.
        let e = v(&[Insn::new(0x4f, 0, 10, 0, 0), exit]).unwrap_err();
        assert_eq!(e, IsaError::UninitRegister { pc: 0, reg: 0 });
        // exit without setting r0
        assert_eq!(v(&[exit]).unwrap_err(), IsaError::UninitRegister { pc: 0, reg: 0 });
        // r0 set on only one path
        let one_path = [Insn::new(0x15, 1, 0, 1, 0), mov0, exit];
        assert_eq!(v(&one_path).unwrap_err(), IsaError::UninitRegister { pc: 2, reg: 0 });
        // after a helper call r1-r5 are clobbered
        let clobber = [Insn::new(CALL, 0, 0, 0, 1), Insn::new(0xbf, 0, 1, 0, 0), exit];
        assert_eq!(v(&clobber).unwrap_err(), IsaError::UninitRegister { pc: 1, reg: 1 });
        assert!(v(&[mov0, exit]).is_ok());
    }

    #[test]
    fn void_subprograms_may_exit_without_r0() {
        let exit = Insn::new(EXIT, 0, 0, 0, 0);
        let mov0 = Insn::new(0xb7, 0, 0, 0, 0);
        // main: call +1 (local); r0 = 0; exit. sub: exit with r0 unset.
        let call_local = Insn::new(CALL, 0, 1, 0, 2);
        assert!(v(&[call_local, mov0, exit, exit]).is_ok());
        // r0 after a local call counts as set here; the verifier tracks void returns
        assert_eq!(v(&[Insn::new(CALL, 0, 1, 0, 1), exit, exit]).err(), None);
    }
}
