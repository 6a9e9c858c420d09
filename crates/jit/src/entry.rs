//! Which registers a program may read before it writes them.
//!
//! A run starts with r1 (the context) and r10 (the frame pointer) set and
//! r0, r2-r9 zero. The entry stub of a single run loads all of them; code
//! that enters many programs in a row (a chain) zeroes only the registers
//! a program may read before writing, which for most programs is none.

use uxdp_vm::{Program, OP_CALL_LOCAL, OP_NONE};

/// Every register r0-r10 (bit i = ri): what a program needs set at entry
/// when nothing better is known.
pub(crate) const ALL: u16 = 0b111_1111_1111;

/// Registers (bit i = ri) that some path from the program's first
/// instruction reads before writing (a helper call reads r1-r5 and r10): r1 and r10 must then be loaded (the
/// context, the frame pointer), the others zeroed. Programs with local
/// calls or `callx` get [`ALL`] (the analysis does not follow calls).
pub(crate) fn entry_reads(prog: &Program) -> u16 {
    let ops = prog.ops();
    let n = ops.len();
    if prog.functions().len() > 1 {
        return ALL;
    }
    // Must-defined registers on entry to each slot (None: not reached yet).
    let mut def: Vec<Option<u16>> = vec![None; n];
    let mut work = vec![0usize];
    if n == 0 {
        return ALL;
    }
    def[0] = Some(0);
    let mut need = 0u16;
    while let Some(pc) = work.pop() {
        let Some(d) = def[pc] else { continue };
        let o = ops[pc];
        let bit = |r: u8| 1u16 << (r & 15);
        let (dst, src) = (bit(o.dst), bit(o.src));
        let x = o.code & 8 != 0;
        // (reads, writes, successors)
        let mut succ = [None, None];
        let next = |p: usize| (p < n).then_some(p);
        let (reads, writes) = match o.code & 7 {
            _ if o.code == OP_CALL_LOCAL || o.code == 0x8d => return ALL,
            _ if o.code == OP_NONE => return ALL,
            0 => {
                succ[0] = next(pc + if o.code == 0x18 { 2 } else { 1 });
                match o.code {
                    0x18 => (0, dst),
                    0x20 | 0x28 | 0x30 => (0, 1),
                    0x40 | 0x48 | 0x50 => (src, 1),
                    _ => return ALL,
                }
            }
            1 => {
                succ[0] = next(pc + 1);
                (src, dst)
            }
            2 => {
                succ[0] = next(pc + 1);
                (dst, 0)
            }
            3 => {
                succ[0] = next(pc + 1);
                if o.code & 0xe0 == 0xc0 {
                    let imm = o.imm as i32;
                    match imm {
                        0xf1 => (dst | src | 1, 1),
                        _ if imm & 1 != 0 => (dst | src, src),
                        _ => (dst | src, 0),
                    }
                } else {
                    (dst | src, 0)
                }
            }
            4 | 7 => {
                succ[0] = next(pc + 1);
                match o.code & 0xf0 {
                    0xb0 => (if x { src } else { 0 }, dst),
                    0x80 | 0xd0 => (dst, dst),
                    _ => (dst | if x { src } else { 0 }, dst),
                }
            }
            _ => match o.code {
                0x95 => (1, 0),
                0x85 => {
                    succ[0] = next(pc + 1);
                    // r1-r5 are the arguments; r10 is passed on by a tail
                    // call (the target's frame pointer).
                    (0b100_0011_1110, 1)
                }
                0x05 => {
                    succ[0] = usize::try_from(o.off).ok().and_then(next);
                    (0, 0)
                }
                _ => {
                    succ[0] = next(pc + 1);
                    succ[1] = usize::try_from(o.off).ok().and_then(next);
                    (dst | if x { src } else { 0 }, 0)
                }
            },
        };
        need |= reads & !d;
        let out = d | writes;
        for s in succ.into_iter().flatten() {
            let merged = def[s].map_or(out, |old| old & out);
            if def[s] != Some(merged) {
                def[s] = Some(merged);
                work.push(s);
            }
        }
    }
    need & ALL
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use uxdp_vm::{Helpers, LoadOptions};

    fn prog(src: &str) -> Program {
        let insns = uxdp_asm::assemble(src).unwrap();
        let mut o = LoadOptions::new(Arc::new(Helpers::new()));
        o.entry_regs = None;
        Program::load(&insns, &o).unwrap()
    }

    #[test]
    fn pass_through_reads_nothing() {
        assert_eq!(entry_reads(&prog("mov %r0, 2\nexit")), 0);
    }

    #[test]
    fn reads_on_one_path_count() {
        // r3 is written only on the fall-through path but read on both.
        let p = prog("jeq %r1, 0, +1\nmov %r3, 1\nmov %r0, %r3\nexit");
        assert_eq!(entry_reads(&p), 1 << 3 | 1 << 1);
        // Here the taken path skips the write of r0 and reaches the exit.
        let p = prog("jeq %r1, 0, +2\nmov %r3, 1\nmov %r0, %r3\nexit");
        assert_eq!(entry_reads(&p), 1 << 0 | 1 << 1);
        // The frame pointer, read through a store, and r1 overwritten first.
        let p = prog("mov %r1, 0\nstxdw [%r10-8], %r1\nmov %r0, 2\nexit");
        assert_eq!(entry_reads(&p), 1 << 10);
    }

    #[test]
    fn alu_reads_its_destination() {
        assert_eq!(entry_reads(&prog("add %r4, 1\nmov %r0, 0\nexit")), 1 << 4);
        assert_eq!(entry_reads(&prog("mov %r4, 1\nadd %r4, %r5\nmov %r0, %r4\nexit")), 1 << 5);
    }
}
