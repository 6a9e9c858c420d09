//! Random-program differential testing of the JIT against the interpreter,
//! shared by `tests/differential.rs` and the cargo-fuzz target
//! (`fuzz/fuzz_targets/jit_diff.rs` includes this file by path).
//!
//! A case is generated from a stream of random words (a seeded PRNG, or
//! fuzz input): a main function and a second function (local-call and
//! callback target), over the whole ISA the interpreter runs: ALU32/64
//! (sdiv/smod, movsx), byte swaps, `lddw` (values and function pointers),
//! all load/store sizes including sign-extending loads, every atomic,
//! every jump condition, backward jumps (the budget ends loops), helper
//! calls (including one that fails, one that reads memory through the
//! machine, and one that calls back into the program), `callx`, and legacy
//! packet loads. Memory offsets are mostly in bounds, sometimes not, so
//! faults are exercised too. Both engines run with the same small budget
//! and must agree on r0 or the error, and on the final memory.

#![allow(dead_code)]

use std::sync::Arc;
use uxdp_isa::Insn;
use uxdp_vm::{Helpers, LoadOptions, Machine, Program, Region, Stack, VmError};

/// Size of the memory r1 points at.
pub const MEM: usize = 64;
/// Budget given to both engines.
pub const BUDGET: u64 = 2000;

/// A source of random words.
pub trait Rand {
    /// The next word.
    fn next(&mut self) -> u64;
    /// A number below `n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `p` percent.
    fn chance(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// xorshift64*.
#[derive(Clone)]
pub struct XorShift(pub u64);

impl Rand for XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Words from fuzz input (8 bytes each, then zeros).
pub struct Bytes<'a>(pub &'a [u8]);

impl Rand for Bytes<'_> {
    fn next(&mut self) -> u64 {
        let n = self.0.len().min(8);
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        u64::from_le_bytes(b)
    }
}

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn::new(code, dst, src, off, imm)
}

fn imm(r: &mut dyn Rand) -> i32 {
    match r.below(8) {
        0 => 0,
        1 => -1,
        2 => 1,
        3 => i32::MIN,
        4 => r.below(64) as i32,
        5 => -(r.below(64) as i32),
        _ => r.next() as i32,
    }
}

/// Destination register: mostly scratch registers, rarely the pointers r1/r6.
fn dst(r: &mut dyn Rand) -> u8 {
    const SCRATCH: [u8; 8] = [0, 2, 3, 4, 5, 7, 8, 9];
    if r.chance(4) {
        [1, 6][r.below(2) as usize]
    } else {
        SCRATCH[r.below(8) as usize]
    }
}

fn src(r: &mut dyn Rand) -> u8 {
    r.below(11) as u8
}

/// A memory operand: (base register, offset) for an access of `size`.
fn mem_operand(r: &mut dyn Rand, size: i16) -> (u8, i16) {
    match r.below(40) {
        0..=18 => ([1, 6][r.below(2) as usize], r.below((MEM as i16 - size + 1) as u64) as i16),
        19..=37 => (10, -(1 + r.below(516) as i16)),
        38 => ([1, 6, 10][r.below(3) as usize], r.below(1100) as i16 - 600),
        _ => (src(r), r.below(200) as i16 - 100),
    }
}

const ALU: [u8; 13] = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0];
const JMP: [u8; 11] = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0];
const ATOMIC: [i32; 10] = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1];

/// Emits one random instruction (or a short sequence) into `p`; `limit`
/// is the first slot after the current function (jump targets stay below
/// it); `func` is the slot of the second function.
fn one(r: &mut dyn Rand, p: &mut Vec<Insn>, limit: usize, func: usize) {
    let pc = p.len();
    match r.below(100) {
        0..=29 => {
            let op = ALU[r.below(13) as usize];
            let wide = r.chance(60);
            let class = if wide { 0x07 } else { 0x04 };
            let reg = r.chance(50) && op != 0x80;
            let code = class | op | if reg { 0x08 } else { 0 };
            let mut off = 0i16;
            if matches!(op, 0x30 | 0x90) && r.chance(50) {
                off = 1;
            }
            if op == 0xb0 && reg && r.chance(30) {
                off = if wide { [8, 16, 32][r.below(3) as usize] } else { [8, 16][r.below(2) as usize] };
            }
            let k = match op {
                0x60 | 0x70 | 0xc0 => r.below(if wide { 64 } else { 32 }) as i32,
                0x80 => 0,
                _ => imm(r),
            };
            if reg {
                p.push(ins(code, dst(r), src(r), off, 0));
            } else {
                p.push(ins(code, dst(r), 0, off, k));
            }
        }
        30..=33 => {
            let code = [0xd4, 0xdc, 0xd7][r.below(3) as usize];
            p.push(ins(code, dst(r), 0, 0, [16, 32, 64][r.below(3) as usize]));
        }
        34..=36 => {
            let v = r.next();
            p.push(ins(0x18, dst(r), 0, 0, v as i32));
            p.push(ins(0, 0, 0, 0, (v >> 32) as i32));
        }
        37..=51 => {
            let sz = [0x00, 0x08, 0x10, 0x18][r.below(4) as usize];
            let size = [4i16, 2, 1, 8][(sz >> 3) as usize];
            let (b, off) = mem_operand(r, size);
            let sx = sz != 0x18 && r.chance(25);
            let code = if sx { 0x81 | sz } else { 0x61 | sz };
            p.push(ins(code, dst(r), b, off, 0));
        }
        52..=65 => {
            let sz = [0x00, 0x08, 0x10, 0x18][r.below(4) as usize];
            let size = [4i16, 2, 1, 8][(sz >> 3) as usize];
            let (b, off) = mem_operand(r, size);
            if r.chance(50) {
                p.push(ins(0x62 | sz, b, 0, off, imm(r)));
            } else {
                p.push(ins(0x63 | sz, b, src(r), off, 0));
            }
        }
        66..=70 => {
            let wide = r.chance(50);
            let size = if wide { 8 } else { 4 };
            let (b, mut off) = mem_operand(r, size);
            if r.chance(80) {
                off &= !(size - 1);
            }
            let op = ATOMIC[r.below(10) as usize];
            // A fetch into r10 passes validation but makes the interpreter
            // overflow-panic (debug builds) on a later local call; the JIT
            // handles it (tests/behaviour.rs), so keep it out of here.
            let s = if op & 1 != 0 { dst(r) } else { src(r) };
            p.push(ins(if wide { 0xdb } else { 0xc3 }, b, s, off, op));
        }
        71..=87 => {
            let op = JMP[r.below(11) as usize];
            let class = if r.chance(60) { 0x05 } else { 0x06 };
            let reg = r.chance(50);
            let code = class | op | if reg { 0x08 } else { 0 };
            let back = r.chance(15) && pc > 0;
            let target = if back { r.below(pc as u64 + 1) as usize } else { pc + 1 + r.below(8) as usize };
            let target = target.min(limit - 1);
            let off = (target as i64 - pc as i64 - 1) as i16;
            if reg {
                p.push(ins(code, dst(r), src(r), off, 0));
            } else {
                p.push(ins(code, dst(r), 0, off, imm(r)));
            }
        }
        88..=89 => {
            let back = r.chance(30) && pc > 0;
            let target =
                if back { r.below(pc as u64 + 1) as usize } else { (pc + 1 + r.below(6) as usize).min(limit - 1) };
            p.push(ins(0x05, 0, 0, (target as i64 - pc as i64 - 1) as i16, 0));
        }
        90..=93 => {
            // helper call: ids 1-4 exist, 9 does not exist as callx target
            let id = 1 + r.below(3) as i32;
            p.push(ins(0x85, 0, 0, 0, id));
        }
        94 => {
            p.push(ins(0xb7, 7, 0, 0, [1, 2, 3, 9][r.below(4) as usize]));
            p.push(ins(0x8d, 7, 0, 0, 0));
        }
        95..=96 => {
            // local call of the second function
            p.push(ins(0x85, 0, 1, 0, func as i32 - pc as i32 - 1));
        }
        97 => {
            // callback: r1 = &func; r2 = value; call 4
            p.push(ins(0x18, 1, 4, 0, func as i32 - pc as i32 - 1));
            p.push(ins(0, 0, 0, 0, 0));
            p.push(ins(0xb7, 2, 0, 0, imm(r)));
            p.push(ins(0x85, 0, 0, 0, 4));
            p.push(ins(0xbf, 1, 6, 0, 0));
        }
        _ => {
            // legacy packet load (needs r6 = context)
            let size = [0x00, 0x08, 0x10][r.below(3) as usize];
            if r.chance(50) {
                p.push(ins(0x20 | size, 0, 0, 0, r.below(70) as i32));
            } else {
                p.push(ins(0x40 | size, 0, src(r), 0, r.below(70) as i32 - 4));
            }
        }
    }
}

/// A random program: main (r6 = r1 at entry) then a second function.
pub fn program(r: &mut dyn Rand) -> Vec<Insn> {
    let main_len = 8 + r.below(40) as usize;
    let f_len = 2 + r.below(12) as usize;
    let mut p = vec![ins(0xbf, 6, 1, 0, 0)];
    while p.len() < main_len {
        one(r, &mut p, usize::MAX, 0);
    }
    p.push(ins(0x95, 0, 0, 0, 0));
    let func = p.len();
    while p.len() < func + f_len {
        one(r, &mut p, usize::MAX, func);
    }
    p.push(ins(0x95, 0, 0, 0, 0));
    fix_targets(&mut p, func);
    p
}

/// Clamps jump targets into the program and away from second `lddw`
/// slots; points local calls and `lddw func` at `func`.
fn fix_targets(p: &mut [Insn], func: usize) {
    let n = p.len();
    let mut second = vec![false; n];
    let mut i = 0;
    while i < n {
        if p[i].code == 0x18 {
            if i + 1 < n {
                second[i + 1] = true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    for i in 0..n {
        if second[i] {
            continue;
        }
        let code = p[i].code;
        let is_jump = matches!(code & 7, 5 | 6) && !matches!(code, 0x85 | 0x8d | 0x95);
        if code == 0x85 && p[i].src() == 1 || code == 0x18 && p[i].src() == 4 {
            p[i].imm = func as i32 - i as i32 - 1;
        } else if is_jump {
            let mut t = (i as i64 + 1 + p[i].off as i64).clamp(0, n as i64 - 1) as usize;
            while second[t] {
                t -= 1;
            }
            p[i].off = (t as i64 - i as i64 - 1) as i16;
        }
    }
}

fn mix(_m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    Ok(a[0].wrapping_mul(31) ^ a[1] ^ (a[2] << 1) ^ a[3].rotate_left(7) ^ a[4])
}

fn fail(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    if a[0] & 7 == 0 {
        Err(VmError::Helper { pc: m.pc(), helper: "fail", msg: format!("r1 = {:#x}", a[0]) })
    } else {
        Ok(a[0] >> 1)
    }
}

fn read(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    Ok(match m.mem.slice(a[0], 8) {
        Some(s) => u64::from_le_bytes(s.try_into().unwrap_or([0; 8])),
        None => u64::MAX,
    })
}

fn callback(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let r = m.call_function(a[0], [a[1], 7, 0, 0, 0])?;
    Ok(r ^ 0x5a)
}

/// The helpers random programs call.
pub fn helpers() -> Arc<Helpers> {
    let mut h = Helpers::new();
    h.register(1, "mix", mix).register(2, "fail", fail).register(3, "read", read).register(4, "callback", callback);
    Arc::new(h)
}

/// Loads `insns` (no uninitialised-register check, as for the suite's
/// `entry_regs = None` users), or None if validation rejects them.
pub fn load(insns: &[Insn]) -> Option<Program> {
    let mut o = LoadOptions::new(helpers());
    o.entry_regs = None;
    Program::load(insns, &o).ok()
}

/// Runs `prog` on `mem` (and `stack`, cleared first) with either engine;
/// returns the result, the memory afterwards and the budget left.
pub fn run(prog: &Program, mem: &mut [u8], stack: &mut Stack, native: bool) -> (Result<u64, VmError>, u64) {
    stack.clear();
    let (addr, len) = (mem.as_mut_ptr() as u64, mem.len() as u64);
    let mut env = ();
    let mut m = Machine::new(prog, stack, &mut env);
    m.native = native;
    m.budget = BUDGET;
    m.mem.push(Region::of_mut_slice(mem));
    m.legacy_packet = (addr, len);
    let r = m.run_with_args([addr, len, 0, 0, 0]);
    (r, m.budget)
}

/// Result of one differential case.
pub enum Case {
    /// Validation rejected the program.
    Invalid,
    /// Both engines agreed; the outcome's kind ("ok", or the error variant).
    Same(&'static str),
    /// They differ (description).
    Differ(String),
}

/// Generates a case from `r`, runs it on both engines and compares.
pub fn case(r: &mut dyn Rand) -> Case {
    let insns = program(r);
    let mut mem = vec![0u8; MEM];
    for b in mem.iter_mut() {
        *b = r.next() as u8;
    }
    compare(&insns, &mem)
}

/// Runs `insns` on `mem` with both engines and compares the outcomes.
pub fn compare(insns: &[Insn], mem: &[u8]) -> Case {
    let Some(prog) = load(insns) else { return Case::Invalid };
    // Same buffers for both runs, so that addresses (in r0, errors and
    // stored pointers) are identical.
    let mut stack = Stack::new();
    let mut buf = mem.to_vec();
    let (r, b) = run(&prog, &mut buf, &mut stack, false);
    let interp = (r, buf.clone(), b);
    buf.copy_from_slice(mem);
    if let Err(e) = uxdp_jit::attach(&prog) {
        return Case::Differ(format!("JIT compile failed: {e}"));
    }
    let (r, b) = run(&prog, &mut buf, &mut stack, true);
    let jit = (r, buf, b);
    if interp == jit {
        Case::Same(match &interp.0 {
            Ok(_) => "ok",
            Err(VmError::Memory { .. }) => "memory fault",
            Err(VmError::Misaligned { .. }) => "misaligned",
            Err(VmError::CallDepth { .. }) => "call depth",
            Err(VmError::Budget { .. }) => "budget",
            Err(VmError::BadCallx { .. }) => "bad callx",
            Err(VmError::BadCallback { .. }) => "bad callback",
            Err(VmError::Helper { .. }) => "helper error",
            Err(VmError::Unreachable { .. }) => "unreachable",
        })
    } else {
        let text: Vec<String> = insns.iter().map(|i| format!("{i:?}")).collect();
        Case::Differ(format!(
            "interpreter {:?} (budget left {}) vs JIT {:?} (budget left {}); memory equal: {}\nprogram:\n{}",
            interp.0,
            interp.2,
            jit.0,
            jit.2,
            interp.1 == jit.1,
            text.join("\n")
        ))
    }
}
