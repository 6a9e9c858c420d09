//! Structural pass: decoding, subprograms, jump targets, reachability (the
//! kernel's `check_subprogs` and `check_cfg`), and static register liveness
//! used by state pruning.

use crate::{Rejection, Rule};
use uxdp_isa::{CallTarget, DecodeError, Insn, Instruction, LoadImmKind, Operand, Reg};

/// Maximum program length the kernel accepts (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const MAX_INSNS: usize = 1_000_000;

/// A decoded slot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dec {
    /// The instruction (with `dst` forced to r0 when it named r10 as a
    /// destination, see `fp_write`).
    pub ins: Instruction,
    /// The instruction writes r10 (rejected when reached).
    pub fp_write: bool,
}

/// A subprogram: `[start, end)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subprog {
    pub start: usize,
    pub end: usize,
}

/// Everything the abstract interpreter needs to know about the program shape.
pub(crate) struct Structure {
    pub decoded: Vec<Option<Dec>>,
    pub subprogs: Vec<Subprog>,
    pub subprog_of: Vec<u32>,
    pub prune_point: Vec<bool>,
    pub live_in: Vec<u16>,
    /// Predecessors of each instruction within its subprogram.
    pub preds: Vec<Vec<u32>>,
}

fn reject(insns: &[Insn], pc: usize, rule: Rule, message: String) -> Rejection {
    Rejection { pc, insn: crate::disasm(insns, pc), rule, message, state: String::new() }
}

/// Decodes one slot; writes to r10 decode with the destination replaced.
fn decode_at(insns: &[Insn], pc: usize) -> Result<Dec, DecodeError> {
    match Instruction::decode(&insns[pc..]) {
        Ok(ins) => Ok(Dec { ins, fp_write: false }),
        Err(DecodeError::WriteToFramePointer) => {
            let mut copy: Vec<Insn> = insns[pc..(pc + 2).min(insns.len())].to_vec();
            copy[0].regs &= 0xf0;
            let ins = Instruction::decode(&copy)?;
            Ok(Dec { ins, fp_write: true })
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn analyse(insns: &[Insn]) -> Result<Structure, Rejection> {
    let n = insns.len();
    if n == 0 {
        return Err(Rejection {
            pc: 0,
            insn: String::new(),
            rule: Rule::InvalidInstruction,
            message: "program has no instructions".into(),
            state: String::new(),
        });
    }
    if n > MAX_INSNS {
        return Err(reject(
            insns,
            0,
            Rule::TooComplex,
            format!("program has {n} instructions, more than the limit of {MAX_INSNS}"),
        ));
    }
    let mut decoded: Vec<Option<Dec>> = vec![None; n];
    let mut pc = 0;
    while pc < n {
        let d = decode_at(insns, pc)
            .map_err(|e| reject(insns, pc, Rule::InvalidInstruction, format!("invalid instruction: {e}")))?;
        match d.ins {
            Instruction::Callx { .. } => {
                return Err(reject(
                    insns,
                    pc,
                    Rule::InvalidInstruction,
                    format!("unknown opcode {:02x} (callx is not supported by the kernel)", insns[pc].code),
                ))
            }
            Instruction::LoadImm64 { kind: LoadImmKind::BtfId, .. } => {
                return Err(reject(
                    insns,
                    pc,
                    Rule::Unsupported,
                    "lddw of a kernel variable by BTF id is not supported".into(),
                ))
            }
            _ => {}
        }
        let slots = d.ins.slots();
        decoded[pc] = Some(d);
        pc += slots;
    }
    // Subprogram starts: 0, local-call targets and function addresses.
    let mut starts = vec![0usize];
    for (pc, d) in decoded.iter().enumerate() {
        let Some(d) = d else { continue };
        let target = match d.ins {
            Instruction::Call(CallTarget::Local(rel)) => Some(pc as i64 + 1 + rel as i64),
            Instruction::LoadImm64 { kind: LoadImmKind::Func, imm, .. } => Some(pc as i64 + 1 + imm as i64),
            _ => None,
        };
        if let Some(t) = target {
            if t < 0 || t as usize >= n {
                return Err(reject(insns, pc, Rule::JumpOutOfRange, format!("call to invalid destination {t}")));
            }
            if decoded[t as usize].is_none() {
                return Err(reject(insns, pc, Rule::JumpIntoLddw, format!("call target {t} is the middle of an lddw")));
            }
            starts.push(t as usize);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let mut subprogs = Vec::with_capacity(starts.len());
    for (i, &s) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(n);
        subprogs.push(Subprog { start: s, end });
    }
    let mut subprog_of = vec![0u32; n];
    for (i, sp) in subprogs.iter().enumerate() {
        for x in &mut subprog_of[sp.start..sp.end] {
            *x = i as u32;
        }
    }
    // Jumps stay inside their subprogram and land on instruction starts.
    for (pc, d) in decoded.iter().enumerate() {
        let Some(d) = d else { continue };
        if let Some(t) = d.ins.jump_target(pc) {
            let sp = subprogs[subprog_of[pc] as usize];
            if t < sp.start as i64 || t >= sp.end as i64 {
                return Err(reject(
                    insns,
                    pc,
                    Rule::JumpOutOfRange,
                    format!("jump out of range from insn {pc} to {t}"),
                ));
            }
        }
    }
    for sp in &subprogs {
        let last = (sp.start..sp.end).rev().find(|&i| decoded[i].is_some()).unwrap_or(sp.start);
        if !matches!(decoded[last].map(|d| d.ins), Some(Instruction::Exit) | Some(Instruction::Ja { .. })) {
            return Err(reject(insns, last, Rule::FallsOffEnd, "last insn is not an exit or jmp".into()));
        }
    }
    // Reachability (depth-first like check_cfg; every branch of every
    // conditional jump counts as reachable).
    let mut seen = vec![false; n];
    let mut prune_point = vec![false; n];
    let mut work = vec![0usize];
    seen[0] = true;
    prune_point[0] = true;
    while let Some(pc) = work.pop() {
        let Some(d) = decoded[pc] else {
            return Err(reject(
                insns,
                pc,
                Rule::JumpIntoLddw,
                format!("jump into the middle of ldimm64 insn {}", pc - 1),
            ));
        };
        let mut succ: [Option<usize>; 2] = [None, None];
        match d.ins {
            Instruction::Exit => {}
            Instruction::Ja { .. } => {
                let t = d.ins.jump_target(pc).unwrap_or(0) as usize;
                prune_point[t] = true;
                succ[0] = Some(t);
            }
            Instruction::Jump { .. } => {
                let t = d.ins.jump_target(pc).unwrap_or(0) as usize;
                prune_point[pc] = true;
                prune_point[t] = true;
                succ = [Some(pc + 1), Some(t)];
            }
            Instruction::Call(CallTarget::Local(rel)) => {
                let t = (pc as i64 + 1 + rel as i64) as usize;
                prune_point[t] = true;
                prune_point[pc + 1] = true;
                succ = [Some(pc + 1), Some(t)];
            }
            Instruction::LoadImm64 { kind: LoadImmKind::Func, imm, .. } => {
                let t = (pc as i64 + 1 + imm as i64) as usize;
                prune_point[t] = true;
                succ = [Some(pc + 2), Some(t)];
            }
            Instruction::Call(_) => {
                prune_point[pc + 1] = true;
                succ[0] = Some(pc + 1);
            }
            ins => succ[0] = Some(pc + ins.slots()),
        }
        for s in succ.into_iter().flatten() {
            if s >= n {
                return Err(reject(
                    insns,
                    pc,
                    Rule::JumpOutOfRange,
                    format!("jump out of range from insn {pc} to {s}"),
                ));
            }
            if !seen[s] {
                seen[s] = true;
                work.push(s);
            }
        }
    }
    let mut pc = 0;
    while pc < n {
        if !seen[pc] {
            return Err(reject(insns, pc, Rule::Unreachable, format!("unreachable insn {pc}")));
        }
        pc += decoded[pc].map(|d| d.ins.slots()).unwrap_or(1);
    }
    let live_in = liveness(&decoded, &subprogs, &subprog_of);
    let mut preds: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (pc, d) in decoded.iter().enumerate() {
        let Some(d) = d else { continue };
        let sp = subprogs[subprog_of[pc] as usize];
        let mut add = |t: usize| {
            if t >= sp.start && t < sp.end {
                preds[t].push(pc as u32);
            }
        };
        match d.ins {
            Instruction::Exit => {}
            Instruction::Ja { .. } => add(d.ins.jump_target(pc).unwrap_or(0) as usize),
            Instruction::Jump { .. } => {
                add(d.ins.jump_target(pc).unwrap_or(0) as usize);
                add(pc + 1);
            }
            ins => add(pc + ins.slots()),
        }
    }
    Ok(Structure { decoded, subprogs, subprog_of, prune_point, live_in, preds })
}

fn bit(r: Reg) -> u16 {
    1 << r.0
}

/// Registers whose values an instruction's written registers are computed
/// from (for precision propagation: a precise result needs precise inputs).
pub(crate) fn value_sources(ins: &Instruction) -> u16 {
    match ins {
        Instruction::Alu { .. } | Instruction::Endian { .. } => use_def(ins).0,
        _ => 0,
    }
}

/// (registers read, registers written) by an instruction.
pub(crate) fn use_def(ins: &Instruction) -> (u16, u16) {
    let op = |o: Operand| if let Operand::Reg(r) = o { bit(r) } else { 0 };
    const ARGS: u16 = 0b11_1110;
    match *ins {
        Instruction::Alu { op: uxdp_isa::AluOp::Mov | uxdp_isa::AluOp::MovSx(_), dst, src, .. } => (op(src), bit(dst)),
        Instruction::Alu { dst, src, .. } => (bit(dst) | op(src), bit(dst)),
        Instruction::Endian { dst, .. } => (bit(dst), bit(dst)),
        Instruction::LoadImm64 { dst, .. } => (0, bit(dst)),
        Instruction::Load { dst, src, .. } => (bit(src), bit(dst)),
        Instruction::Store { dst, src, .. } => (bit(dst) | op(src), 0),
        Instruction::Atomic { dst, src, op: uxdp_isa::AtomicOp::CmpXchg, .. } => (bit(dst) | bit(src) | 1, 1),
        Instruction::Atomic { dst, src, fetch, .. } => (bit(dst) | bit(src), if fetch { bit(src) } else { 0 }),
        Instruction::LoadPacket { mode, src, .. } => {
            (1 << 6 | if mode == uxdp_isa::PacketMode::Ind { bit(src) } else { 0 }, 1 | ARGS)
        }
        Instruction::Ja { .. } => (0, 0),
        Instruction::Jump { dst, src, .. } => (bit(dst) | op(src), 0),
        Instruction::Call(_) | Instruction::Callx { .. } => (ARGS, 1 | ARGS),
        Instruction::Exit => (1, 0),
    }
}

fn liveness(decoded: &[Option<Dec>], subprogs: &[Subprog], subprog_of: &[u32]) -> Vec<u16> {
    let n = decoded.len();
    let mut live = vec![0u16; n];
    let mut changed = true;
    // Backward passes until nothing changes (programs are small; loops
    // converge in a few passes).
    while changed {
        changed = false;
        for pc in (0..n).rev() {
            let Some(d) = decoded[pc] else { continue };
            let sp = subprogs[subprog_of[pc] as usize];
            let in_sp = |t: usize| t >= sp.start && t < sp.end;
            let mut out = 0u16;
            match d.ins {
                Instruction::Exit => {}
                Instruction::Ja { .. } => {
                    let t = d.ins.jump_target(pc).unwrap_or(0) as usize;
                    if in_sp(t) {
                        out |= live[t];
                    }
                }
                Instruction::Jump { .. } => {
                    let t = d.ins.jump_target(pc).unwrap_or(0) as usize;
                    if in_sp(t) {
                        out |= live[t];
                    }
                    if in_sp(pc + 1) {
                        out |= live[pc + 1];
                    }
                }
                ins => {
                    let t = pc + ins.slots();
                    if t < n && in_sp(t) {
                        out |= live[t];
                    }
                }
            }
            let (u, df) = use_def(&d.ins);
            let new = u | (out & !df);
            if new != live[pc] {
                live[pc] = new;
                changed = true;
            }
        }
    }
    live
}
