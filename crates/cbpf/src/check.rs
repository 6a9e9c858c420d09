//! The kernel's classic BPF checker (`bpf_check_classic` in
//! `net/core/filter.c`), rule for rule and in the same order, so a program
//! is accepted here exactly when `SO_ATTACH_FILTER` would accept it (the
//! converter adds one more rule, the jump distance; see [`crate::convert()`]).

use crate::insn::{op, skf, SockFilter};
use crate::CbpfError;
use core::fmt;

/// Which rule of the checker an instruction breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The opcode is not one the kernel accepts in a socket filter.
    UnknownOpcode(u16),
    /// `div #0` or `mod #0`.
    DivisionByZero,
    /// `lsh #k` / `rsh #k` with `k >= 32`.
    ShiftTooLarge(u32),
    /// `M[k]` with `k >= 16` (`BPF_MEMWORDS`).
    ScratchIndex(u32),
    /// `ja k` lands at or past the end of the program.
    JumpOutOfRange {
        /// Target instruction index.
        target: u64,
    },
    /// A conditional jump's true or false target is at or past the end.
    BranchOutOfRange {
        /// Target when true.
        jt_target: usize,
        /// Target when false.
        jf_target: usize,
    },
    /// The last instruction is not `ret #k` or `ret a`.
    LastNotReturn,
    /// `ld M[k]` / `ldx M[k]` may run before any `st`/`stx M[k]` on some path.
    LoadBeforeStore(u32),
    /// A load at `SKF_AD_OFF + n` for an `n` the kernel does not define.
    UnknownAncillary(u32),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rule::UnknownOpcode(c) => write!(f, "opcode {c:#06x} is not a valid classic BPF instruction"),
            Rule::DivisionByZero => write!(f, "division or modulo by constant zero"),
            Rule::ShiftTooLarge(k) => write!(f, "shift by constant {k} (must be below 32)"),
            Rule::ScratchIndex(k) => write!(f, "scratch memory index M[{k}] is out of range (M[0]..M[15])"),
            Rule::JumpOutOfRange { target } => {
                write!(f, "ja target {target} is past the last instruction")
            }
            Rule::BranchOutOfRange { jt_target, jf_target } => write!(
                f,
                "conditional jump targets (true: {jt_target}, false: {jf_target}) must lie before the end of the program"
            ),
            Rule::LastNotReturn => write!(f, "the last instruction must be `ret #k` or `ret a`"),
            Rule::LoadBeforeStore(k) => {
                write!(f, "M[{k}] may be read before it is written on some path")
            }
            Rule::UnknownAncillary(k) => write!(
                f,
                "ancillary load SKF_AD_OFF+{} ({k:#x}) is not defined by the kernel",
                k.wrapping_sub(skf::AD_OFF as u32) as i32
            ),
        }
    }
}

/// Whether `code` is in the kernel's table of allowed socket-filter
/// opcodes (`chk_code_allowed`).
pub fn opcode_allowed(code: u16) -> bool {
    use op::*;
    const ALU_OPS: [u16; 10] = [ADD, SUB, MUL, DIV, MOD, AND, OR, XOR, LSH, RSH];
    if ALU_OPS.iter().any(|&o| code == ALU | o | K || code == ALU | o | X) {
        return true;
    }
    [
        ALU | NEG,
        LD | W | ABS,
        LD | H | ABS,
        LD | B | ABS,
        LD | W | LEN,
        LD | W | IND,
        LD | H | IND,
        LD | B | IND,
        LD | IMM,
        LD | MEM,
        LDX | W | LEN,
        LDX | B | MSH,
        LDX | IMM,
        LDX | MEM,
        ST,
        STX,
        MISC | TAX,
        MISC | TXA,
        RET | K,
        RET | A,
        JMP | JA,
        JMP | JEQ | K,
        JMP | JEQ | X,
        JMP | JGE | K,
        JMP | JGE | X,
        JMP | JGT | K,
        JMP | JGT | X,
        JMP | JSET | K,
        JMP | JSET | X,
    ]
    .contains(&code)
}

/// Whether `code` is a conditional jump.
pub(crate) fn is_cond_jump(code: u16) -> bool {
    use op::*;
    code & 0x07 == JMP && code != JMP | JA
}

/// Checks a classic program with the kernel's rules:
///
/// 1. length 1 to 4096 (`BPF_MAXINSNS`);
/// 2. per instruction, in order: opcode in the kernel's table; `div`/`mod`
///    by constant zero; `lsh`/`rsh` by a constant of 32 or more; scratch
///    index `M[k]` below 16; `ja k` and both targets of conditional jumps
///    inside the program; ancillary loads (`k >= SKF_AD_OFF`) of a defined
///    `SKF_AD_*` only;
/// 3. the last instruction is `ret #k` or `ret a`;
/// 4. every `ld`/`ldx M[k]` is preceded by a `st`/`stx M[k]` on all paths
///    (`check_load_and_stores`, with the kernel's exact flow rules).
///
/// The error names the first failing instruction and the rule, the same
/// one the kernel would stop at.
pub fn check(prog: &[SockFilter]) -> Result<(), CbpfError> {
    use op::*;
    let flen = prog.len();
    if flen == 0 {
        return Err(CbpfError::Empty);
    }
    if flen > MAXINSNS {
        return Err(CbpfError::TooLong { len: flen });
    }
    for (pc, f) in prog.iter().enumerate() {
        if let Some(rule) = insn_rule(pc, f, flen) {
            return Err(CbpfError::Check { pc, rule });
        }
    }
    let last = prog[flen - 1].code;
    if last != RET | K && last != RET | A {
        return Err(CbpfError::Check { pc: flen - 1, rule: Rule::LastNotReturn });
    }
    check_load_and_stores(prog)
}

/// The per-instruction rules, in the kernel's order.
fn insn_rule(pc: usize, f: &SockFilter, flen: usize) -> Option<Rule> {
    use op::*;
    let c = f.code;
    if !opcode_allowed(c) {
        return Some(Rule::UnknownOpcode(c));
    }
    if (c == ALU | DIV | K || c == ALU | MOD | K) && f.k == 0 {
        return Some(Rule::DivisionByZero);
    }
    if (c == ALU | LSH | K || c == ALU | RSH | K) && f.k >= 32 {
        return Some(Rule::ShiftTooLarge(f.k));
    }
    if (c == LD | MEM || c == LDX | MEM || c == ST || c == STX) && f.k >= MEMWORDS {
        return Some(Rule::ScratchIndex(f.k));
    }
    if c == JMP | JA && f.k as u64 >= (flen - pc - 1) as u64 {
        return Some(Rule::JumpOutOfRange { target: pc as u64 + 1 + f.k as u64 });
    }
    if is_cond_jump(c) {
        let (t, e) = (pc + f.jt as usize + 1, pc + f.jf as usize + 1);
        if t >= flen || e >= flen {
            return Some(Rule::BranchOutOfRange { jt_target: t, jf_target: e });
        }
    }
    if c == LD | W | ABS || c == LD | H | ABS || c == LD | B | ABS {
        if let Some(n) = skf::ancillary(f.k) {
            if skf::name(n).is_none() {
                return Some(Rule::UnknownAncillary(f.k));
            }
        }
    }
    None
}

/// The kernel's scratch-memory flow check: a linear scan keeping the set of
/// written cells, intersected at every jump target with the set at each
/// jump to it; after a jump the set restarts as "all written" (the next
/// instruction is only reachable through jumps, whose sets are merged in).
fn check_load_and_stores(prog: &[SockFilter]) -> Result<(), CbpfError> {
    use op::*;
    let mut masks = vec![0xffffu16; prog.len()];
    let mut memvalid: u16 = 0;
    for (pc, f) in prog.iter().enumerate() {
        memvalid &= masks[pc];
        let c = f.code;
        if c == ST || c == STX {
            memvalid |= 1 << f.k;
        } else if (c == LD | MEM || c == LDX | MEM) && memvalid & (1 << f.k) == 0 {
            return Err(CbpfError::Check { pc, rule: Rule::LoadBeforeStore(f.k) });
        } else if c == JMP | JA {
            masks[pc + 1 + f.k as usize] &= memvalid;
            memvalid = !0;
        } else if is_cond_jump(c) {
            masks[pc + 1 + f.jt as usize] &= memvalid;
            masks[pc + 1 + f.jf as usize] &= memvalid;
            memvalid = !0;
        }
    }
    Ok(())
}
