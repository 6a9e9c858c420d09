//! Instruction slots to text.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use uxdp_isa::{CallTarget, Insn, Instruction, IsaError, LoadImmKind};

/// Slot a jump, local call or `lddw func` at `pc` refers to, if any.
fn target(ins: &Instruction, pc: usize) -> Option<i64> {
    let rel = match *ins {
        Instruction::Ja { off, .. } => off as i64,
        Instruction::Jump { off, .. } => off as i64,
        Instruction::Call(CallTarget::Local(rel)) => rel as i64,
        Instruction::LoadImm64 { kind: LoadImmKind::Func, imm, .. } => imm as i64,
        _ => return None,
    };
    Some(pc as i64 + 1 + rel)
}

/// Decodes every instruction: `(slot index, instruction)` in order.
fn decode_all(insns: &[Insn]) -> Result<Vec<(usize, Instruction)>, IsaError> {
    let mut out = Vec::with_capacity(insns.len());
    let mut pc = 0;
    while pc < insns.len() {
        let ins =
            Instruction::decode(&insns[pc..]).map_err(|reason| IsaError::Invalid { pc, insn: insns[pc], reason })?;
        out.push((pc, ins));
        pc += ins.slots();
    }
    Ok(out)
}

/// The text of `ins` with its relative target (the last token of the
/// `Display` form) replaced by `label`.
fn with_label(ins: &Instruction, label: &str) -> String {
    let text = ins.to_string();
    match text.rfind(' ') {
        Some(p) => format!("{} {label}", &text[..p]),
        None => text,
    }
}

/// Disassembles a program into text that [`crate::assemble`] turns back into
/// the identical slots.
///
/// One instruction per line (`lddw` once, for its two slots). Every jump,
/// local call and `lddw …, func` whose target is an instruction boundary
/// inside the program (or the slot just past its end) refers to a generated
/// label `L<slot>:` placed on its own line before the target; other targets
/// stay numeric and relative (`ja +7`).
///
/// Fails with [`IsaError::Invalid`] (naming the slot) if a slot does not
/// decode, since such a slot has no text form.
pub fn disassemble(insns: &[Insn]) -> Result<String, IsaError> {
    let decoded = decode_all(insns)?;
    let starts: BTreeSet<usize> = decoded.iter().map(|&(pc, _)| pc).collect();
    let is_label_target = |t: i64| t >= 0 && (t as usize == insns.len() || starts.contains(&(t as usize)));
    let labels: BTreeSet<usize> = decoded
        .iter()
        .filter_map(|(pc, ins)| target(ins, *pc))
        .filter(|&t| is_label_target(t))
        .map(|t| t as usize)
        .collect();
    let mut out = String::new();
    for (pc, ins) in &decoded {
        if labels.contains(pc) {
            let _ = writeln!(out, "L{pc}:");
        }
        match target(ins, *pc) {
            Some(t) if is_label_target(t) => {
                let _ = writeln!(out, "{}", with_label(ins, &format!("L{t}")));
            }
            _ => {
                let _ = writeln!(out, "{ins}");
            }
        }
    }
    if labels.contains(&insns.len()) {
        let _ = writeln!(out, "L{}:", insns.len());
    }
    Ok(out)
}

/// A listing for humans: each instruction prefixed with its slot index
/// (`0003: jeq %r1, 5, +2  # -> 0006`), jump and call targets as absolute
/// slot comments.
///
/// Never fails: a slot that does not decode is shown as
/// `NNNN: <invalid: reason> (raw bytes)` and the listing continues with the
/// next slot. The output is not meant to be re-assembled (use
/// [`disassemble`]).
pub fn disassemble_listing(insns: &[Insn]) -> String {
    let mut out = String::new();
    let mut pc = 0;
    while pc < insns.len() {
        match Instruction::decode(&insns[pc..]) {
            Ok(ins) => {
                let _ = write!(out, "{pc:04}: {ins}");
                if let Some(t) = target(&ins, pc) {
                    let _ = write!(out, "  # -> {t:04}");
                }
                out.push('\n');
                pc += ins.slots();
            }
            Err(e) => {
                let b = insns[pc].to_bytes();
                let _ = writeln!(
                    out,
                    "{pc:04}: <invalid: {e}> ({:02x} {:02x} {:02x} {:02x} {:02x} {:02x} {:02x} {:02x})",
                    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
                );
                pc += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble;

    #[test]
    fn labels_are_generated_and_reassemble() {
        let src = "mov %r0, 0\nloop:\nadd %r0, 1\njne %r0, 10, loop\nlddw %r1, func f\ncall local f\nja +1\nja end\nexit\nf:\nexit\nend:";
        let p = assemble(src).expect("assembles");
        let text = disassemble(&p).expect("disassembles");
        assert_eq!(
            text,
            "mov %r0, 0\nL1:\nadd %r0, 1\njne %r0, 10, L1\nlddw %r1, func L9\ncall local L9\nja L8\nja L10\nL8:\nexit\nL9:\nexit\nL10:\n"
        );
        assert_eq!(assemble(&text).expect("reassembles"), p);
    }

    #[test]
    fn targets_outside_or_inside_lddw_stay_numeric() {
        let p = assemble("ja -1\nja +5\nja +1\nlddw %r0, 1\nexit").expect("assembles");
        let text = disassemble(&p).expect("disassembles");
        assert_eq!(text, "L0:\nja L0\nja +5\nja +1\nlddw %r0, 0x1\nexit\n");
        assert_eq!(assemble(&text).expect("reassembles"), p);
    }

    #[test]
    fn invalid_slots_are_reported() {
        let p = [Insn::new(0xb7, 0, 0, 0, 1), Insn::new(0xff, 0, 0, 0, 0), Insn::new(0x95, 0, 0, 0, 0)];
        let e = disassemble(&p).expect_err("0xff is no opcode");
        assert_eq!(e.pc(), Some(1));
        assert_eq!(
            disassemble_listing(&p),
            "0000: mov %r0, 1\n0001: <invalid: unknown opcode 0xff> (ff 00 00 00 00 00 00 00)\n0002: exit\n"
        );
    }

    #[test]
    fn listing_shows_slot_indices_and_targets() {
        let p = assemble("lddw %r0, 5\njeq %r0, 5, +1\nja32 -4\nexit").expect("assembles");
        assert_eq!(
            disassemble_listing(&p),
            "0000: lddw %r0, 0x5\n0002: jeq %r0, 5, +1  # -> 0004\n0003: ja32 -4  # -> 0000\n0004: exit\n"
        );
    }
}
