//! Differential testing of the JIT's use of verifier facts, shared by
//! `tests/verified_diff.rs` and the cargo-fuzz target
//! `fuzz/fuzz_targets/verified_diff.rs` (which includes this file by path).
//!
//! [`case`] derives an XDP program and a few packets from a byte stream
//! (a seeded PRNG, or fuzz input). The programs are biased towards what the
//! verifier accepts: `data`/`data_end`/`data_meta` loaded from the context,
//! bounds checks `rX = data; rX += N; if rX > data_end goto out` in every
//! orientation (jgt/jge/jlt/jle, taken or fall-through, some 32-bit or
//! signed, which prove nothing), packet loads and stores of 1/2/4/8 bytes
//! just inside and just outside the checked range, variable offsets bounded
//! by masks or range checks, stack accesses at random (sometimes
//! uninitialised, misaligned or out-of-frame) offsets, pointer spills,
//! scalar ALU, bounded loops, and helper calls: the packet-moving
//! `xdp_adjust_head`/`_tail`/`_meta` (after which packet pointers are
//! sometimes reloaded and sometimes not, sometimes waiting in the stack),
//! `xdp_load_bytes`/`xdp_store_bytes` with stack buffers, and helpers with
//! deterministic results (no clock or random numbers, which would differ
//! between the two runs). Half the programs are "tidy" (written to pass
//! strict verification); the other half are "sloppy" (accesses just past
//! the checked range, checks that prove nothing, stale pointers).
//!
//! [`Checker::check`] verifies the program in strict and in permissive mode; for
//! each mode that accepts it, it runs the program on the interpreter and
//! on the JIT compiled with that mode's `Facts::proven` (and `terminates`
//! in strict mode) over the packets, with the stack zeroed before every
//! run (uninitialised stack reads are allowed to privileged programs), and
//! compares the return value or the error and the output packet and
//! context. The interpreter checks every access, so a wrongly proven
//! access shows up as `VmError::Memory` on one side only (or as different
//! bytes).

#![allow(dead_code)]

use std::sync::Arc;
use uxdp_isa::Insn;
use uxdp_verifier::{Mode, ProgType, VerifyInput};
use uxdp_vm::{LoadOptions, Program};
use uxdp_xdp::{RunError, RunOutput, Runner, XdpMd};

/// Random choices drawn from a byte stream (zeros once it runs out, so a
/// short fuzz input still gives a complete program).
pub struct Src<'a, I: Iterator<Item = u8>>(pub &'a mut I);

impl<I: Iterator<Item = u8>> Src<'_, I> {
    /// The next byte.
    pub fn byte(&mut self) -> u8 {
        self.0.next().unwrap_or(0)
    }
    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        if n <= 256 {
            self.byte() as u32 % n
        } else {
            (self.byte() as u32 | (self.byte() as u32) << 8 | (self.byte() as u32) << 16) % n
        }
    }
    /// True with probability `p` percent.
    pub fn chance(&mut self, p: u32) -> bool {
        self.below(100) < p
    }
    /// A number in `lo..=hi` (`lo` if the range is empty).
    pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
        if hi < lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as u32) as i32
    }
    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u32) as usize]
    }
}

/// xorshift64* as an endless byte stream (for seeded runs).
pub struct XorShift {
    state: u64,
    word: u64,
    left: u32,
}

impl XorShift {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> XorShift {
        XorShift { state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed_f00d_d00d_f00d, word: 0, left: 0 }
    }
}

impl Iterator for XorShift {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        if self.left == 0 {
            let mut x = self.state.max(1);
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.state = x;
            self.word = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
            self.left = 8;
        }
        let b = self.word as u8;
        self.word >>= 8;
        self.left -= 1;
        Some(b)
    }
}

/// A generated case: a program and the packets it runs on.
#[derive(Clone, Debug)]
pub struct Case {
    /// Instruction slots.
    pub insns: Vec<Insn>,
    /// Packets, each with the number of metadata bytes at its front.
    pub packets: Vec<(Vec<u8>, u32)>,
    /// Whether the generator added accesses and checks meant to fail
    /// strict verification.
    pub sloppy: bool,
}

// Opcodes.
pub const ALU64: u8 = 0x07;
pub const ALU32: u8 = 0x04;
pub const JMP: u8 = 0x05;
pub const JMP32: u8 = 0x06;
pub const K: u8 = 0x00;
pub const X: u8 = 0x08;
pub const ADD: u8 = 0x00;
pub const SUB: u8 = 0x10;
pub const AND: u8 = 0x50;
pub const LSH: u8 = 0x60;
pub const MOV: u8 = 0xb0;
pub const JA: u8 = 0x00;
pub const JEQ: u8 = 0x10;
pub const JGT: u8 = 0x20;
pub const JGE: u8 = 0x30;
pub const JNE: u8 = 0x50;
pub const JSGT: u8 = 0x60;
pub const JSGE: u8 = 0x70;
pub const JLT: u8 = 0xa0;
pub const JLE: u8 = 0xb0;
pub const JSLT: u8 = 0xc0;
pub const JSLE: u8 = 0xd0;
pub const CALL: u8 = 0x85;
pub const EXIT: u8 = 0x95;

/// Size code (`BPF_W`, `BPF_H`, `BPF_B`, `BPF_DW`) of an access of `n` bytes.
fn size_code(n: i32) -> u8 {
    match n {
        1 => 0x10,
        2 => 0x08,
        4 => 0x00,
        _ => 0x18,
    }
}

pub fn ldx(size: i32, dst: u8, src: u8, off: i32) -> Insn {
    Insn::new(0x61 | size_code(size), dst, src, off as i16, 0)
}
pub fn ldsx(size: i32, dst: u8, src: u8, off: i32) -> Insn {
    Insn::new(0x81 | size_code(size), dst, src, off as i16, 0)
}
pub fn stx(size: i32, dst: u8, src: u8, off: i32) -> Insn {
    Insn::new(0x63 | size_code(size), dst, src, off as i16, 0)
}
pub fn st(size: i32, dst: u8, off: i32, imm: i32) -> Insn {
    Insn::new(0x62 | size_code(size), dst, 0, off as i16, imm)
}
pub fn alu(class: u8, op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(class | op | K, dst, 0, 0, imm)
}
pub fn alux(class: u8, op: u8, dst: u8, src: u8) -> Insn {
    Insn::new(class | op | X, dst, src, 0, 0)
}

/// Whether the generator avoids stack writes the verifier cannot prove
/// (misaligned, partly outside the frame, at an unbounded variable offset).
/// Permissive mode used to keep trusting what such a write overwrote (see
/// `permissive_unproven_stack_writes_clobber_spills` in
/// tests/verified_diff.rs); it now forgets every frame's stack after one,
/// so they are generated. Set it to true to look for other bugs only.
pub const AVOID_UNPROVEN_STACK_WRITES: bool = false;

/// Whether a stack access of `size` bytes at `r10 + off` is misaligned or
/// not inside the 512-byte frame.
fn unproven_stack(off: i32, size: i32) -> bool {
    off % size != 0 || off < -512 || off + size > 0
}

/// Register roles: r6 context, r7 `data`, r8 `data_end`, r9 `data_meta`;
/// r0-r5 scalars or temporary pointers.
pub const CTX: u8 = 6;
pub const DATA: u8 = 7;
pub const END: u8 = 8;
pub const META: u8 = 9;
pub const FP: u8 = 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Uninit,
    Scalar,
    Ptr,
}

struct Gen<'a, 'b, I: Iterator<Item = u8>> {
    r: &'a mut Src<'b, I>,
    p: Vec<Insn>,
    kind: [Kind; 6],
    /// Slots limit (the program stops growing blocks past it).
    cap: usize,
    /// Nesting depth of blocks.
    depth: u32,
    /// Loop counter registers in use (not to be written by bodies).
    locked: u8,
    /// Whether this program also gets accesses just outside what it
    /// checked, checks that prove nothing, odd bases and offsets (else it
    /// is written to pass strict verification, mostly).
    sloppy: bool,
    /// Whether r9 holds `data_meta` (in tidy programs).
    meta: bool,
    /// Slots of the local calls of the subprogram (appended after main).
    calls: Vec<usize>,
    /// Bytes the subprogram accesses through its argument r1.
    sub_span: i32,
    /// Whether the subprogram's argument is a stack pointer (else a
    /// checked packet pointer).
    sub_stack: bool,
}

impl<I: Iterator<Item = u8>> Gen<'_, '_, I> {
    fn emit(&mut self, i: Insn) -> usize {
        self.p.push(i);
        self.p.len() - 1
    }

    /// A conditional or unconditional jump to be patched with [`Gen::land`].
    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32) -> usize {
        self.emit(Insn::new(code, dst, src, 0, imm))
    }

    /// Points the jump at `at` to the next slot.
    fn land(&mut self, at: usize) {
        let off = self.p.len() as i64 - at as i64 - 1;
        self.p[at].off = off as i16;
    }

    fn free(&self, r: u8) -> bool {
        self.locked & (1 << r) == 0
    }

    /// An initialised scalar register (r0 always is, or becomes one).
    fn scalar(&mut self) -> u8 {
        let c: Vec<u8> = (0..6).filter(|&i| self.kind[i as usize] == Kind::Scalar).collect();
        if c.is_empty() || self.r.chance(3) {
            if self.kind[0] == Kind::Scalar {
                return 0;
            }
            // r0 (or another free register) becomes one.
            let d = if self.free(0) { 0 } else { self.temp() };
            let v = self.small_imm();
            self.emit(alu(ALU64, MOV, d, v));
            self.kind[d as usize] = Kind::Scalar;
            return d;
        }
        self.r.pick(&c)
    }

    /// A register (r0-r5, not a loop counter) to write.
    fn temp(&mut self) -> u8 {
        let t = self.r.below(6) as u8;
        (0..6).map(|k| (t + k) % 6).find(|&t| self.free(t)).unwrap_or(0)
    }

    fn small_imm(&mut self) -> i32 {
        match self.r.below(10) {
            0 => 0,
            1 => 1,
            2 => -1,
            3 => self.r.range(0, 4),
            4 => i32::MAX,
            5 => i32::MIN,
            6 => self.r.range(-64, 64),
            7 => (self.r.below(256) as i32) << self.r.below(24),
            _ => self.r.range(0, 255),
        }
    }

    /// A packet size to check: small, header sizes, or larger.
    fn span(&mut self) -> i32 {
        match self.r.below(8) {
            0 => self.r.pick(&[14, 20, 34, 42, 54, 60]),
            1 => self.r.range(0, 3),
            2 => self.r.range(60, 140),
            3 if self.sloppy => self.r.pick(&[0xffff, 0x7fff_ffff, -1, -8, 0x1_0000]),
            _ => self.r.range(1, 40),
        }
    }

    fn size(&mut self) -> i32 {
        self.r.pick(&[1, 2, 4, 8])
    }

    /// An access size; unless sloppy, at most `n` (the bytes checked).
    fn size_within(&mut self, n: i32) -> i32 {
        let mut size = self.size();
        while !self.sloppy && size > n.max(1) {
            size /= 2;
        }
        size
    }

    /// An access of `size` bytes through `base` + `off`: a load into a
    /// scalar register, or a store of an immediate or a scalar register.
    fn access(&mut self, base: u8, off: i32, size: i32) {
        self.access_as(base, off, size, false)
    }

    /// [`Gen::access`], a load if `load_only`.
    fn access_as(&mut self, base: u8, off: i32, size: i32, load_only: bool) {
        match if load_only { 0 } else { self.r.below(10) } {
            0..=4 => {
                let d = self.temp();
                let sx = size < 8 && self.r.chance(15);
                self.emit(if sx { ldsx(size, d, base, off) } else { ldx(size, d, base, off) });
                self.kind[d as usize] = Kind::Scalar;
            }
            5..=6 => {
                let v = self.small_imm();
                self.emit(st(size, base, off, v));
            }
            _ => {
                let s = self.scalar();
                self.emit(stx(size, base, s, off));
            }
        }
    }

    /// An offset for an access of `size` in `[lo, hi)`: mostly inside,
    /// sometimes just outside.
    fn offset(&mut self, lo: i32, hi: i32, size: i32) -> i32 {
        let first = if self.sloppy { 0 } else { 2 };
        match first + self.r.below(12 - first) {
            0 => lo - self.r.range(1, 3),
            1 => hi - size + self.r.range(1, 3),
            2 => hi - size,
            3 => lo,
            _ => {
                if hi - size >= lo {
                    self.r.range(lo, hi - size)
                } else {
                    lo
                }
            }
        }
    }

    /// A bounds check that `reg` (a packet pointer) lies at or before
    /// `end`; the code after it (up to the returned jump's target) runs
    /// only if the check passed, unless the variant proves nothing.
    /// Returns the jump to patch to the end of the guarded code, and 1 if
    /// the check is right-open (`reg < end`: the verifier, like the
    /// kernel's, then proves one byte less), else 0.
    fn guard(&mut self, reg: u8, end: u8) -> (usize, i32) {
        let variant = if self.sloppy { self.r.below(14) } else { self.r.below(9) };
        let open = i32::from(matches!(variant, 5 | 6 | 13));
        let at = match variant {
            0..=3 => self.jump(JMP | JGT | X, reg, end, 0),
            4 => self.jump(JMP | JLT | X, end, reg, 0),
            5 => self.jump(JMP | JGE | X, reg, end, 0),
            6 => self.jump(JMP | JLE | X, end, reg, 0),
            7 | 8 => {
                let (c, d, s) = self.r.pick(&[(JLE, reg, end), (JGE, end, reg), (JLT, reg, end), (JGT, end, reg)]);
                self.emit(Insn::new(JMP | c | X, d, s, 1, 0));
                let at = self.jump(JMP | JA, 0, 0, 0);
                return (at, i32::from(matches!(c, JLT | JGT)));
            }
            9 => self.jump(JMP32 | JGT | X, reg, end, 0),
            10 => self.jump(JMP | JSGT | X, reg, end, 0),
            11 => self.jump(JMP | JEQ | X, reg, end, 0),
            12 => {
                // Against the wrong register.
                let e = self.r.pick(&[DATA, META, CTX, 0]);
                self.jump(JMP | JGT | X, reg, e, 0)
            }
            _ => self.jump(JMP | JGE | X, reg, end, 0),
        };
        (at, open)
    }

    /// After a guarded region: registers whose kind changed inside it hold
    /// different kinds on the two paths.
    fn merge(&mut self, before: [Kind; 6]) {
        for (k, b) in self.kind.iter_mut().zip(before) {
            if *k != b {
                *k = Kind::Uninit;
            }
        }
    }

    /// The bytes a check of `n` bytes proves, for the accesses of tidy
    /// programs (sloppy ones use all `n`, to probe the edge).
    fn proven_span(&self, n: i32, open: i32) -> i32 {
        if self.sloppy {
            n
        } else {
            n - open
        }
    }

    /// `rT = base; rT += n; if rT > end goto out; accesses; out:`.
    fn checked_block(&mut self) {
        let (base, end) = match self.r.below(if self.sloppy { 20 } else { 19 }) {
            16..=18 if self.meta || self.sloppy => (META, DATA),
            0..=18 => (DATA, END),
            _ => (self.r.pick(&[CTX, END, FP, 0]), END),
        };
        let n = self.span();
        let t = self.temp();
        self.emit(alux(ALU64, MOV, t, base));
        self.kind[t as usize] = Kind::Ptr;
        match self.r.below(10) {
            0 => {
                let s = self.temp();
                if s != t {
                    self.emit(alu(ALU64, MOV, s, n));
                    self.kind[s as usize] = Kind::Scalar;
                    self.emit(alux(ALU64, ADD, t, s));
                }
            }
            1 => {
                self.emit(alu(ALU64, SUB, t, -n));
            }
            2 => {
                // Two steps.
                let a = self.r.range(0, n.clamp(0, 64));
                self.emit(alu(ALU64, ADD, t, a));
                self.emit(alu(ALU64, ADD, t, n - a));
            }
            _ => {
                if n != 0 || self.r.chance(50) {
                    self.emit(alu(ALU64, ADD, t, n));
                }
            }
        }
        let before = self.kind;
        let (out, open) = self.guard(t, end);
        let n = self.proven_span(n, open);
        let lock = self.locked;
        self.locked |= 1 << t;
        let count = if self.sloppy || n > 0 { self.r.range(1, 4) } else { 0 };
        for _ in 0..count {
            let size = self.size_within(n);
            if self.r.chance(50) || self.kind[t as usize] != Kind::Ptr {
                let off = self.offset(0, n.clamp(-16, 200), size);
                self.access(base, off, size);
            } else {
                let off = self.offset(-n.clamp(-16, 200), 0, size);
                self.access(t, off, size);
            }
            if self.r.chance(15) && self.depth < 3 && self.p.len() < self.cap {
                self.depth += 1;
                self.block();
                self.depth -= 1;
            }
            if self.r.chance(10) {
                // Spill the checked pointer and use the filled copy.
                let slot = -8 * self.r.range(1, 8);
                self.emit(stx(8, FP, t, slot));
                if self.r.chance(20) {
                    let v = self.small_imm();
                    let (size, mut at) = (self.r.pick(&[1, 2, 4]), slot + self.r.range(0, 4));
                    if AVOID_UNPROVEN_STACK_WRITES {
                        at -= at.rem_euclid(size);
                    }
                    self.emit(st(size, FP, at, v));
                }
                let f = self.temp();
                self.emit(ldx(8, f, FP, slot));
                self.kind[f as usize] = Kind::Ptr;
                let size = self.size_within(n);
                let off = self.offset(-n.clamp(-16, 200), 0, size);
                self.access(f, off, size);
            }
        }
        self.locked = lock;
        self.land(out);
        self.merge(before);
    }

    /// A bounded scalar `s` added to a packet pointer, then checked.
    fn variable_block(&mut self) {
        let s = if self.r.chance(40) {
            // A byte of the packet.
            let t = self.temp();
            self.emit(alux(ALU64, MOV, t, DATA));
            self.emit(alu(ALU64, ADD, t, 8));
            let out = self.jump(JMP | JGT | X, t, END, 0);
            let s = self.temp();
            let size = self.r.pick(&[1, 1, 2, 4, 8]);
            let off = self.r.range(0, 8 - size);
            self.emit(ldx(size, s, DATA, off));
            self.kind[t as usize] = Kind::Ptr;
            self.kind[s as usize] = Kind::Scalar;
            // On the failed-check path s keeps whatever it held: make it a scalar.
            let skip = self.jump(JMP | JA, 0, 0, 0);
            self.land(out);
            let v = self.small_imm();
            self.emit(alu(ALU64, MOV, s, v));
            self.land(skip);
            s
        } else {
            let s = self.scalar();
            let d = self.temp();
            if d != s {
                self.emit(alux(ALU64, MOV, d, s));
                self.kind[d as usize] = Kind::Scalar;
            }
            d
        };
        let mut outs = Vec::new();
        match self.r.below(if self.sloppy { 12 } else { 11 }) {
            0..=4 => {
                let m = self.r.pick(&[0x7, 0xf, 0x3f, 0xff, 0x7ff, 0xfffe, 0x3c]);
                let class = if self.r.chance(20) { ALU32 } else { ALU64 };
                self.emit(alu(class, AND, s, m));
            }
            5..=7 => {
                let c = self.r.pick(&[7, 15, 63, 255, 1500]);
                let (code, imm) = self.r.pick(&[
                    (JMP | JGT, c),
                    (JMP | JGE, c + 1),
                    (JMP32 | JGT, c),
                    (JMP | JSGT, c),
                    (JMP | JSLT, 0),
                ]);
                outs.push(self.jump(code, s, 0, imm));
                if matches!(code, 0x65 | 0xc5) && self.r.chance(70) {
                    // The other signed bound.
                    let other = if code == JMP | JSGT { (JMP | JSLT, 0) } else { (JMP | JSGT, c) };
                    outs.push(self.jump(other.0, s, 0, other.1));
                }
            }
            8 => {
                let k = self.r.range(0, 4);
                self.emit(alu(ALU64, AND, s, 0xf));
                self.emit(alu(ALU64, LSH, s, k));
            }
            9 => {
                let k = self.r.range(56, 63);
                self.emit(alu(ALU64, 0x70, s, k));
            }
            10 => {
                let v = self.small_imm();
                self.emit(alu(ALU32, MOV, s, v));
                self.emit(alu(ALU64, AND, s, 0xff));
            }
            _ => {}
        }
        let t = self.temp();
        let base = if self.r.chance(90) || !(self.meta || self.sloppy) { DATA } else { META };
        let before = self.kind;
        let lock = self.locked;
        if t == s {
            if self.sloppy {
                // Cannot hold both: an access through the scalar (rejected).
                self.access(s, 0, 1);
            }
        } else {
            self.locked |= 1 << t | 1 << s;
            self.emit(alux(ALU64, MOV, t, base));
            self.kind[t as usize] = Kind::Ptr;
            let early = self.sloppy && self.r.chance(10);
            let n = self.r.range(1, 20);
            let e = self.temp();
            if !early {
                self.emit(alux(ALU64, ADD, t, s));
                if self.r.chance(20) {
                    let k = self.r.range(0, 16);
                    self.emit(alu(ALU64, ADD, t, k));
                }
            }
            if e == t || e == s {
                if self.sloppy {
                    let (out, _) = self.guard(t, END);
                    let size = self.size();
                    let off = self.offset(-1, 1, size);
                    self.access(t, off, size);
                    self.land(out);
                }
            } else {
                self.emit(alux(ALU64, MOV, e, t));
                self.emit(alu(ALU64, ADD, e, n));
                self.kind[e as usize] = Kind::Ptr;
                self.locked |= 1 << e;
                let (out, open) = self.guard(e, if base == META { DATA } else { END });
                if early {
                    self.emit(alux(ALU64, ADD, t, s));
                }
                let n = self.proven_span(n, open);
                let count = if self.sloppy || n > 0 { self.r.range(1, 3) } else { 0 };
                for _ in 0..count {
                    let size = self.size_within(n);
                    let off = self.offset(0, n, size);
                    self.access(t, off, size);
                }
                self.land(out);
            }
        }
        self.locked = lock;
        for o in outs {
            self.land(o);
        }
        self.merge(before);
    }

    /// Stack stores and loads, constant or variable offsets.
    fn stack_block(&mut self) {
        for _ in 0..self.r.range(1, 4) {
            let size = self.size();
            let first = if self.sloppy { 0 } else { 4 };
            let off = match first + self.r.below(20 - first) {
                0 => self.r.range(-600, 16),
                1 => -512 - self.r.range(0, 8),
                2 => self.r.range(-size, 4),
                3 => -8 * self.r.range(1, 64) + self.r.range(1, 7),
                _ => -size * self.r.range(1, 512 / size),
            };
            if self.r.chance(25) {
                // Variable offset: r10 + (s & mask) - k.
                let s = self.scalar();
                let t = self.temp();
                if t == s {
                    continue;
                }
                self.emit(alux(ALU64, MOV, t, FP));
                self.kind[t as usize] = Kind::Ptr;
                let m = self.r.pick(&[0x7, 0x1f, 0xff, 0x1f8]);
                let u = self.temp();
                if u == t {
                    continue;
                }
                self.emit(alux(ALU64, MOV, u, s));
                self.emit(alu(ALU64, AND, u, m));
                self.kind[u as usize] = Kind::Scalar;
                self.emit(alux(ALU64, ADD, t, u));
                let k = if self.sloppy { self.r.pick(&[m + size, 256, 512, 8, m]) } else { m + size };
                self.access_as(t, -k, size, AVOID_UNPROVEN_STACK_WRITES);
            } else if self.r.chance(5) {
                // Atomic add on the stack.
                let s = self.scalar();
                // A fetch writes the old value into `s`: not a loop counter.
                let fetch = i32::from(self.r.chance(50) && self.free(s));
                let sz = if self.r.chance(50) { 8 } else { 4 };
                if !(AVOID_UNPROVEN_STACK_WRITES && unproven_stack(off, sz)) {
                    self.emit(Insn::new(0xc3 | size_code(sz), FP, s, off as i16, fetch));
                }
            } else {
                let load_only = AVOID_UNPROVEN_STACK_WRITES && unproven_stack(off, size);
                self.access_as(FP, off, size, load_only);
            }
        }
    }

    /// Scalar ALU.
    fn alu_block(&mut self) {
        const OPS: [u8; 12] = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xa0, 0xb0, 0xc0];
        for _ in 0..self.r.range(1, 4) {
            let d = self.scalar();
            if !self.free(d) {
                continue;
            }
            let class = if self.r.chance(30) { ALU32 } else { ALU64 };
            let op = self.r.pick(&OPS);
            if self.r.chance(40) {
                let s = self.scalar();
                self.emit(alux(class, op, d, s));
            } else {
                let imm = if matches!(op, 0x60 | 0x70 | 0xc0) {
                    self.r.range(0, if class == ALU64 { 63 } else { 31 })
                } else {
                    self.small_imm()
                };
                self.emit(alu(class, op, d, imm));
            }
            if self.r.chance(5) {
                let (order, width) = (self.r.pick(&[0, 8]), self.r.pick(&[16, 32, 64]));
                self.emit(Insn::new(0xd4 | order, d, 0, 0, width));
            }
        }
    }

    /// A counted loop: `c = n; top: body; c -= 1; if c != 0 goto top`.
    fn loop_block(&mut self) {
        let c = self.temp();
        let n = self.r.range(1, 6);
        self.emit(alu(ALU64, MOV, c, n));
        self.kind[c as usize] = Kind::Scalar;
        self.locked |= 1 << c;
        let top = self.p.len();
        // The body runs again after its own writes: let it read only what
        // it wrote itself.
        for i in 0..6 {
            if self.free(i) {
                self.kind[i as usize] = Kind::Uninit;
            }
        }
        for _ in 0..self.r.range(1, 2) {
            if self.r.chance(40) {
                // A packet access at data + c.
                let t = self.temp();
                self.emit(alux(ALU64, MOV, t, DATA));
                self.emit(alux(ALU64, ADD, t, c));
                self.kind[t as usize] = Kind::Ptr;
                let e = self.temp();
                if e != t {
                    let k = self.r.range(1, 8);
                    self.emit(alux(ALU64, MOV, e, t));
                    self.emit(alu(ALU64, ADD, e, k));
                    self.kind[e as usize] = Kind::Ptr;
                    let before = self.kind;
                    let lock = self.locked;
                    self.locked |= 1 << t | 1 << e;
                    let (out, open) = self.guard(e, END);
                    let k = self.proven_span(k, open);
                    if k > 0 || self.sloppy {
                        let size = self.size_within(k);
                        let off = self.offset(0, k, size);
                        self.access(t, off, size);
                    }
                    self.locked = lock;
                    self.land(out);
                    self.merge(before);
                }
            } else if self.depth < 3 {
                self.depth += 1;
                match self.r.below(3) {
                    0 => self.alu_block(),
                    1 => self.stack_block(),
                    _ => self.checked_block(),
                }
                self.depth -= 1;
            }
        }
        self.emit(alu(ALU64, SUB, c, 1));
        let back = match self.r.below(4) {
            0 => JMP | JNE,
            1 => JMP | JGT,
            2 => JMP | JSGT,
            _ => JMP32 | JNE,
        };
        let at = self.emit(Insn::new(back, c, 0, 0, 0));
        self.p[at].off = (top as i64 - at as i64 - 1) as i16;
        self.locked &= !(1 << c);
    }

    /// Reloads the packet pointers from the context.
    fn reload(&mut self, meta: bool) {
        self.emit(ldx(4, DATA, CTX, 0));
        self.emit(ldx(4, END, CTX, 4));
        if meta {
            self.emit(ldx(4, META, CTX, 8));
        }
        self.meta = meta;
    }

    fn call(&mut self, id: i32) {
        self.emit(Insn::new(CALL, 0, 0, 0, id));
        for k in 1..6 {
            if self.free(k) {
                self.kind[k as usize] = Kind::Uninit;
            }
        }
        self.kind[0] = Kind::Scalar;
    }

    /// Helper calls.
    fn helper_block(&mut self) {
        if self.locked & 0x3f != 0 {
            // A loop counter lives in r0-r5, which calls clobber.
            return self.alu_block();
        }
        match self.r.below(10) {
            0..=4 => {
                let (id, deltas): (i32, &[i32]) = match self.r.below(3) {
                    0 => (44, &[-8, -4, 4, 8, 14, -20, 20, 1, -1, 2]),
                    1 => (65, &[-1, -4, -8, 4, 8, 16, -30, 1]),
                    _ => (54, &[-4, -8, -16, -32, 4, -3, 8, -40]),
                };
                // Sometimes a packet pointer waits in the stack across the
                // call (the call must invalidate it there too).
                let spill = self.r.chance(25).then(|| -8 * self.r.range(1, 16));
                if let Some(slot) = spill {
                    self.emit(stx(8, FP, DATA, slot));
                }
                self.emit(alux(ALU64, MOV, 1, CTX));
                if self.r.chance(85) {
                    let d = self.r.pick(deltas);
                    self.emit(alu(ALU64, MOV, 2, d));
                } else {
                    let s = self.scalar();
                    if s != 2 {
                        self.emit(alux(ALU64, MOV, 2, s));
                    }
                    self.emit(alu(ALU64, AND, 2, 0xf));
                }
                self.call(id);
                if self.r.chance(30) {
                    // Bail out if it failed.
                    let j = self.jump(JMP | JEQ, 0, 0, 0);
                    self.p[j].off = 2;
                    self.emit(alu(ALU64, MOV, 0, 1));
                    self.emit(Insn::new(EXIT, 0, 0, 0, 0));
                }
                if self.r.chance(75) || !self.sloppy {
                    let meta = self.r.chance(60) || (self.meta && !self.sloppy);
                    self.reload(meta);
                }
                if let (Some(slot), true) = (spill, self.sloppy) {
                    let f = self.temp();
                    self.emit(ldx(8, f, FP, slot));
                    self.kind[f as usize] = Kind::Ptr;
                    let size = self.size();
                    let off = self.r.range(-4, 16);
                    self.access(f, off, size);
                }
            }
            5 => {
                let id = self.r.pick(&[8, 42]);
                self.call(id);
            }
            6 => {
                self.emit(alux(ALU64, MOV, 1, CTX));
                self.call(188);
            }
            _ => {
                // xdp_load_bytes / xdp_store_bytes with a stack buffer.
                let id = self.r.pick(&[189, 190]);
                let len = self.r.pick(&[1, 2, 4, 8, 14, 16, 0, 3]);
                let mut off = if self.r.chance(20) { self.r.range(-520, 8) } else { -8 * self.r.range(1, 16) };
                if AVOID_UNPROVEN_STACK_WRITES && id == 189 {
                    off = off.clamp(-512, -len);
                }
                let poff = self.r.range(0, 40);
                self.emit(alux(ALU64, MOV, 1, CTX));
                self.emit(alu(ALU64, MOV, 2, poff));
                self.emit(alux(ALU64, MOV, 3, FP));
                self.emit(alu(ALU64, ADD, 3, off));
                self.emit(alu(ALU64, MOV, 4, len));
                self.call(id);
                if id == 189 && self.r.chance(60) {
                    let size = self.size();
                    let d = self.temp();
                    self.emit(ldx(size, d, FP, off));
                    self.kind[d as usize] = Kind::Scalar;
                }
            }
        }
    }

    /// A branch on a scalar around a nested block, or an early exit.
    fn branch_block(&mut self) {
        let s = self.scalar();
        let c = self.r.pick(&[JEQ, JNE, JGT, JGE, JLT, JLE, JSGT, JSGE, JSLT, JSLE, 0x40]);
        let class = if self.r.chance(25) { JMP32 } else { JMP };
        let imm = self.small_imm();
        let j = self.jump(class | c, s, 0, imm);
        if self.r.chance(30) {
            let v = self.r.range(0, 4);
            self.emit(alu(ALU64, MOV, 0, v));
            self.emit(Insn::new(EXIT, 0, 0, 0, 0));
        } else {
            // Kinds may differ between the two paths: forget what the
            // nested block changed to stay on the safe side.
            let saved = self.kind;
            self.depth += 1;
            self.block();
            self.depth -= 1;
            self.merge(saved);
        }
        self.land(j);
    }

    /// A call of the subprogram with a stack or packet pointer in r1.
    fn call_block(&mut self) {
        if self.locked & 0x3f != 0 {
            return self.alu_block();
        }
        let n = self.sub_span;
        let stack = if self.sloppy && self.r.chance(20) { !self.sub_stack } else { self.sub_stack };
        let before = self.kind;
        let mut out = None;
        if stack {
            let mut off = -8 * self.r.range((n + 7) / 8, 64);
            if self.sloppy && self.r.chance(30) {
                off = self.r.range(-520, 0);
                if AVOID_UNPROVEN_STACK_WRITES {
                    off = (off - 7) / 8 * 8;
                    off = off.clamp(-512, -n);
                }
            }
            self.emit(alux(ALU64, MOV, 1, FP));
            self.emit(alu(ALU64, ADD, 1, off));
        } else {
            // Tidy programs check one byte more (right-open checks prove
            // one less).
            let m = if self.sloppy { n - self.r.range(0, 3) } else { n + 1 };
            self.emit(alux(ALU64, MOV, 1, DATA));
            self.emit(alu(ALU64, ADD, 1, m));
            let (o, _) = self.guard(1, END);
            self.emit(alux(ALU64, MOV, 1, DATA));
            out = Some(o);
        }
        let at = self.emit(Insn::new(CALL, 0, 1, 0, 0));
        self.calls.push(at);
        for k in 1..6 {
            self.kind[k] = Kind::Uninit;
        }
        self.kind[0] = Kind::Scalar;
        if let Some(o) = out {
            self.land(o);
            self.merge(before);
        }
    }

    /// The subprogram: accesses through r1 within `sub_span` bytes, its own
    /// stack, a scalar result. It uses r0-r5 and r10 only (r6-r9 are not
    /// initialised in a subprogram).
    fn subprogram(&mut self) {
        let start = self.p.len();
        for &at in &self.calls {
            self.p[at].imm = (start - at - 1) as i32;
        }
        self.kind = [Kind::Uninit; 6];
        self.kind[1] = Kind::Ptr;
        self.locked = 1 << 1;
        self.meta = false;
        let n = self.sub_span;
        for _ in 0..self.r.range(1, 4) {
            if self.r.chance(75) {
                let size = self.size_within(n);
                let mut off = self.offset(0, n, size);
                if self.sub_stack && (!self.sloppy || AVOID_UNPROVEN_STACK_WRITES) {
                    off -= off.rem_euclid(size);
                }
                self.access(1, off, size);
            } else {
                let size = self.size();
                let off = -size * self.r.range(1, 64 / size);
                self.access(FP, off, size);
            }
        }
        let s = self.scalar();
        self.emit(alux(ALU64, MOV, 0, s));
        self.emit(Insn::new(EXIT, 0, 0, 0, 0));
    }

    fn block(&mut self) {
        match self.r.below(100) {
            0..=29 => self.checked_block(),
            30..=44 => self.variable_block(),
            45..=56 => self.stack_block(),
            57..=66 => self.alu_block(),
            67..=74 => {
                if self.depth < 2 {
                    self.loop_block()
                } else {
                    self.alu_block()
                }
            }
            75..=81 => self.helper_block(),
            82..=86 => self.call_block(),
            _ => {
                if self.depth < 3 {
                    self.branch_block()
                } else {
                    self.stack_block()
                }
            }
        }
    }
}

/// Derives a program and its packets from `bytes`.
pub fn case(bytes: &mut impl Iterator<Item = u8>) -> Case {
    let mut src = Src(bytes);
    let mut g = Gen {
        r: &mut src,
        p: Vec::new(),
        kind: [Kind::Uninit; 6],
        cap: 0,
        depth: 0,
        locked: 0,
        sloppy: false,
        meta: false,
        calls: Vec::new(),
        sub_span: 0,
        sub_stack: false,
    };
    g.sub_span = g.r.pick(&[4, 8, 16]);
    g.sub_stack = g.r.chance(50);
    g.sloppy = g.r.chance(50);
    g.cap = 40 + g.r.below(160) as usize;
    // Prologue: context, packet pointers, a return value.
    g.emit(alux(ALU64, MOV, CTX, 1));
    let meta = g.r.chance(50);
    g.reload(meta);
    g.emit(alu(ALU64, MOV, 0, 2));
    g.kind[0] = Kind::Scalar;
    let blocks = g.r.range(1, 8);
    for _ in 0..blocks {
        if g.p.len() >= g.cap {
            break;
        }
        g.block();
    }
    // Epilogue.
    match g.r.below(4) {
        0 => {}
        1 => {
            let s = g.scalar();
            g.emit(alux(ALU64, MOV, 0, s));
        }
        _ => {
            let v = g.r.range(0, 4);
            g.emit(alu(ALU64, MOV, 0, v));
        }
    }
    if g.kind[0] != Kind::Scalar {
        g.emit(alu(ALU64, MOV, 0, 2));
    }
    g.emit(Insn::new(EXIT, 0, 0, 0, 0));
    if !g.calls.is_empty() {
        g.subprogram();
    }
    let sloppy = g.sloppy;
    let insns = g.p;
    let mut packets = Vec::new();
    for _ in 0..src.range(1, 4) {
        let metalen = if src.chance(25) { 4 * src.range(0, 8) as u32 } else { 0 };
        let len = match src.below(6) {
            0 => 14,
            1 => src.range(14, 20),
            2 => src.range(60, 300),
            _ => src.range(14, 80),
        } as usize
            + metalen as usize;
        let data: Vec<u8> = (0..len).map(|_| src.byte()).collect();
        packets.push((data, metalen));
    }
    Case { insns, packets, sloppy }
}

/// Counts over the cases checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Cases generated.
    pub generated: u64,
    /// Accepted in strict mode.
    pub strict: u64,
    /// Cases generated without deliberate strict violations.
    pub tidy: u64,
    /// Of those, accepted in strict mode.
    pub tidy_strict: u64,
    /// Rejected in strict mode but accepted in permissive mode.
    pub permissive_only: u64,
    /// Accepted in permissive mode (including the strict ones).
    pub permissive: u64,
    /// Accepted but refused by `Program::load` or the JIT.
    pub unloadable: u64,
    /// (program, mode) pairs compared.
    pub compared: u64,
    /// Packet runs compared.
    pub runs: u64,
    /// Runs where the interpreter faulted (the same fault on both sides).
    pub faults: u64,
    /// Instructions proven in the compared programs.
    pub proven: u64,
    /// Strict-mode rejections by rule.
    pub strict_rejections: std::collections::BTreeMap<&'static str, u64>,
}

/// Runs cases on one runner, with a program that zeroes the whole stack
/// (all frames) before every run.
pub struct Checker {
    runner: Runner,
    zero: Program,
    helpers: Arc<uxdp_vm::Helpers>,
}

/// A divergence between the interpreter and the JIT with facts.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// `strict` or `permissive`.
    pub mode: &'static str,
    /// The packet (index) it shows on.
    pub packet: usize,
    /// What differs.
    pub what: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} facts, packet {}: {}", self.mode, self.packet, self.what)
    }
}

/// The program as text, one slot per line.
pub fn listing(insns: &[Insn]) -> String {
    let mut s = String::new();
    let mut pc = 0;
    while pc < insns.len() {
        match uxdp_isa::Instruction::decode(&insns[pc..]) {
            Ok(i) => {
                s += &format!("{pc:4}: {i}\n");
                pc += i.slots();
            }
            Err(_) => {
                s += &format!("{pc:4}: {:?}\n", insns[pc]);
                pc += 1;
            }
        }
    }
    s
}

impl Checker {
    /// A checker with a detached runner.
    pub fn new() -> Checker {
        let helpers = Arc::new(uxdp_xdp::helpers::xdp_helpers());
        // Every frame: the subprogram's frame lies below main's, and
        // uninitialised reads there must see the same bytes on both engines.
        let words = (uxdp_vm::STACK_PER_FRAME * uxdp_vm::MAX_FRAMES / 8) as i32;
        let mut z: Vec<Insn> = (1..=words).map(|k| st(8, FP, -8 * k, 0)).collect();
        z.push(alu(ALU64, MOV, 0, 0));
        z.push(Insn::new(EXIT, 0, 0, 0, 0));
        let zero = Program::load(&z, &LoadOptions::new(helpers.clone())).expect("the stack-zeroing program loads");
        Checker { runner: Runner::detached().expect("a detached runner"), zero, helpers }
    }

    fn run(&mut self, prog: &Program, packet: &[u8], metalen: u32) -> Result<RunOutput, RunError> {
        let zeroed = self.runner.run(&self.zero, &[0; 14], None);
        assert!(matches!(zeroed, Ok(ref o) if o.retval == 0), "stack zeroing failed: {zeroed:?}");
        let ctx = XdpMd { data: metalen, data_end: packet.len() as u32, ..XdpMd::default() };
        self.runner.run(prog, packet, if metalen > 0 { Some(&ctx) } else { None })
    }

    /// Verifies `case` in both modes and compares the engines for each
    /// mode that accepts it.
    pub fn check(&mut self, case: &Case, stats: &mut Stats) -> Result<(), Divergence> {
        stats.generated += 1;
        let input = VerifyInput::new(&case.insns, ProgType::Xdp, &[]);
        let strict = uxdp_verifier::verify(&input.mode(Mode::Strict));
        let permissive = uxdp_verifier::verify(&input.mode(Mode::Permissive));
        if let Err(e) = &strict {
            *stats.strict_rejections.entry(e.rule.name()).or_default() += 1;
        }
        if !case.sloppy {
            stats.tidy += 1;
            stats.tidy_strict += strict.is_ok() as u64;
        }
        if strict.is_ok() {
            stats.strict += 1;
        } else if permissive.is_ok() {
            stats.permissive_only += 1;
        }
        if permissive.is_ok() {
            stats.permissive += 1;
        }
        for (mode, facts) in [("strict", strict.ok()), ("permissive", permissive.ok())] {
            let Some(facts) = facts else { continue };
            self.compare(case, mode, &facts, stats)?;
        }
        Ok(())
    }

    fn compare(
        &mut self,
        case: &Case,
        mode: &'static str,
        facts: &uxdp_verifier::Facts,
        stats: &mut Stats,
    ) -> Result<(), Divergence> {
        let mut opts = LoadOptions::new(self.helpers.clone());
        // The verifier ran: skip the flow-insensitive uninitialised-register
        // check, which refuses reads in code no path reaches with those
        // values (e.g. after a branch on a constant).
        opts.entry_regs = None;
        let (interp, jit) = match (Program::load(&case.insns, &opts), Program::load(&case.insns, &opts)) {
            (Ok(i), Ok(j)) => (i, j),
            (Err(e), _) | (_, Err(e)) => {
                stats.unloadable += 1;
                if std::env::var_os("VDIFF_TRACE").is_some() {
                    eprintln!("{mode}: Program::load: {e}");
                }
                return Ok(());
            }
        };
        let keeps = uxdp_xdp::helpers::keeps_regions;
        let jo = uxdp_jit::JitOptions {
            proven: Some(&facts.proven),
            terminates: mode == "strict",
            kernel_calls: mode == "strict",
            keeps_regions: Some(&keeps),
            ..Default::default()
        };
        if let Err(e) = uxdp_jit::attach_with(&jit, &jo) {
            stats.unloadable += 1;
            if std::env::var_os("VDIFF_TRACE").is_some() {
                eprintln!("{mode}: JIT: {e}");
            }
            return Ok(());
        }
        stats.compared += 1;
        stats.proven += facts.proven.iter().filter(|&&p| p).count() as u64;
        for (i, (packet, metalen)) in case.packets.iter().enumerate() {
            let a = self.run(&interp, packet, *metalen);
            let b = self.run(&jit, packet, *metalen);
            stats.runs += 1;
            let same = match (&a, &b) {
                (Ok(x), Ok(y)) => x == y,
                (Err(x), Err(y)) => x.to_string() == y.to_string(),
                _ => false,
            };
            if !same {
                return Err(Divergence { mode, packet: i, what: format!("interpreter {:?}\n  JIT {:?}", a, b) });
            }
            if a.is_err() {
                stats.faults += 1;
            }
        }
        Ok(())
    }
}

impl Default for Checker {
    fn default() -> Checker {
        Checker::new()
    }
}
