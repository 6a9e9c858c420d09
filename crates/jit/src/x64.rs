//! The x86-64 code generator (dynasm-rs).
//!
//! Register assignment (chosen so that r1-r5 are already the System V
//! argument registers 2-6 of the helper trampoline, whose first argument is
//! the context):
//!
//! | eBPF | r0  | r1  | r2  | r3  | r4 | r5 | r6  | r7  | r8  | r9  | r10 |
//! |------|-----|-----|-----|-----|----|----|-----|-----|-----|-----|-----|
//! | x86  | rax | rsi | rdx | rcx | r8 | r9 | rbx | r13 | r14 | r15 | rbp |
//!
//! `r12` holds the [`Ctx`] block; `rdi`, `r10` and `r11` are scratch. Inside
//! generated functions `rsp` is always 16-byte aligned, so Rust can be
//! called directly: the entry stub pushes 6 registers, a local call pushes
//! 5 (r6-r10) plus its return address.

use crate::runtime::*;
use crate::{ArrayLookup, ArrayResolver, DirectLookup, JitError, JitOptions, LookupResolver};
use dynasmrt::x64::Assembler;
use dynasmrt::{dynasm, AssemblyOffset, DynamicLabel, DynasmApi, DynasmLabelApi, ExecutableBuffer};
use uxdp_vm::{Program, Region, VmError, MAX_FRAMES, OP_CALL_LOCAL, OP_NONE, STACK_PER_FRAME};

/// x86 register of each eBPF register.
const REG: [u8; 11] = [0, 6, 2, 1, 8, 9, 3, 13, 14, 15, 5];
const RAX: u8 = 0;
const RCX: u8 = 1;

/// `bpf_map_lookup_elem`.
const LOOKUP_HELPER: u32 = 1;
/// `bpf_tail_call`.
const TAIL_CALL_HELPER: u32 = 12;

/// Machine code of one program.
pub(crate) struct Code {
    pub buf: ExecutableBuffer,
    /// (function start slot, code offset), sorted by slot.
    pub entries: Vec<(usize, AssemblyOffset)>,
    /// Address of the entry stub (cached `buf.ptr(stub)`), which loads all
    /// of r0-r10.
    pub stub_addr: usize,
    /// Address of the entry stub for slot 0, which loads only the
    /// registers the program may read before writing them
    /// ([`crate::entry::entry_reads`]).
    pub main_stub_addr: usize,
    /// For code that never leaves ([`Code::leaves`] false): address of a
    /// stub `fn(regs, target) -> r0` that runs slot 0 without a context
    /// block; 0 otherwise.
    pub pure_stub_addr: usize,
    /// Address of the code of slot 0.
    pub main_addr: usize,
    /// Whether checked accesses consult the shared-region cache slot.
    pub uses_cache: bool,
    /// Whether the code may leave through the error exit, call into Rust
    /// or use the budget; code that cannot only computes r0.
    pub leaves: bool,
}

impl Code {
    /// Runs slot 0 of code that never leaves through its pure stub
    /// (`pure_stub_addr` must be set): no context block, no exit status.
    #[inline(always)]
    pub(crate) fn run_pure(&self, regs: &[u64; 11]) -> u64 {
        type Pure = extern "sysv64" fn(*const [u64; 11], *const u8) -> u64;
        debug_assert!(self.pure_stub_addr != 0);
        // SAFETY: the stub was emitted by `compile` with this signature for
        // code that only touches registers, its frame (the caller checked
        // r10) and memory its verifier proved in bounds.
        let stub: Pure = unsafe { core::mem::transmute::<usize, Pure>(self.pure_stub_addr) };
        stub(regs, self.main_addr as *const u8)
    }

    /// Runs the function at `target` (code of this program) with `regs`
    /// on the prepared context block `ctx`, and turns the exit status into
    /// the run's result.
    #[inline(always)]
    pub(crate) fn enter(&self, ctx: &mut Ctx, regs: &[u64; 11], target: *const u8) -> Result<u64, VmError> {
        type Stub = extern "sysv64" fn(*mut Ctx, *const [u64; 11], *const u8) -> u64;
        let addr = if target as usize == self.main_addr { self.main_stub_addr } else { self.stub_addr };
        // SAFETY: both stubs are emitted by `compile` with exactly this
        // signature; the code only touches memory through checked or
        // frame-bounded accesses and the context block.
        let stub: Stub = unsafe { core::mem::transmute::<usize, Stub>(addr) };
        let st = stub(ctx, regs, target);
        // SAFETY: the context block points at the running machine.
        let m = unsafe { &mut *ctx.machine };
        m.budget = ctx.budget;
        if st == 0 {
            return Ok(ctx.r0);
        }
        if ctx.status == ST_EARLY {
            return Ok(0);
        }
        Err(ctx.exit_error())
    }
}

enum Deferred {
    /// Slow memory check: `info` for [`slow_check`]; continue at `ok`.
    MemSlow { at: DynamicLabel, ok: DynamicLabel, info: u64 },
    /// Leave with `status` at `pc`.
    Fail { at: DynamicLabel, pc: usize, status: u64 },
    /// Misaligned atomic (address in r11).
    Misaligned { at: DynamicLabel, pc: usize },
    /// Taken backward conditional jump: charge the budget, then jump.
    Back { at: DynamicLabel, pc: usize, target: DynamicLabel },
    /// A helper left a non-zero status: tail call or error.
    HelperStatus { at: DynamicLabel },
}

#[derive(Clone, Copy)]
enum Cond {
    Eq,
    Ne,
    A,
    Ae,
    B,
    Be,
    G,
    Ge,
    L,
    Le,
    Set,
}

struct Gen<'p> {
    a: &'p mut Assembler,
    labels: Vec<DynamicLabel>,
    error_exit: DynamicLabel,
    slow_stub: DynamicLabel,
    deferred: Vec<Deferred>,
    proven: Option<&'p [bool]>,
    /// False if some instruction writes r10 (an atomic fetch into r10,
    /// which validation lets through): then r10 is not a trusted frame
    /// pointer and stack accesses are checked like any other.
    r10_trusted: bool,
    /// Per slot: the array whose lookup the call there inlines.
    lookups: Vec<Option<ArrayLookup>>,
    /// Per slot: the map lookup the call there makes directly.
    direct: Vec<Option<DirectLookup>>,
    /// [`JitOptions::keeps_regions`].
    keeps_regions: Option<&'p dyn Fn(u32) -> bool>,
    /// The program's shared (map-value) regions, checked with constants
    /// after the per-run slots when there are few of them (`None`: use the
    /// cache slot instead).
    shared: Option<Vec<Region>>,
    /// Some generated code calls into Rust.
    called_rust: bool,
    /// Inlined into chain code: `exit` jumps here instead of returning.
    exit_to: Option<DynamicLabel>,
    /// [`JitOptions::terminates`]: no budget charges on backward jumps,
    /// local calls and helper calls.
    terminates: bool,
    /// [`JitOptions::kernel_calls`]: helper calls clobber r1-r5.
    kernel_calls: bool,
}

/// Most shared regions checked with constants at each access.
const MAX_CONST_SHARED: usize = 6;

/// Where a checked (or proven) access goes: `[base + disp]`.
struct Mem {
    base: u8,
    disp: i32,
}

fn codegen(e: impl core::fmt::Display) -> JitError {
    JitError::Codegen(e.to_string())
}

impl Gen<'_> {
    fn label(&mut self) -> DynamicLabel {
        self.a.new_dynamic_label()
    }

    fn fail(&mut self, pc: usize, status: u64) -> DynamicLabel {
        let at = self.label();
        self.deferred.push(Deferred::Fail { at, pc, status });
        at
    }

    /// Emits the bounds check of `[r(base) + off, +size)`; stack accesses
    /// through r10 inside the current frame and accesses the verifier
    /// proved need none.
    fn mem(&mut self, pc: usize, base: u8, off: i16, size: u32, write: bool) -> Mem {
        let off = off as i32;
        let in_frame = self.r10_trusted && base == 10 && off >= -(STACK_PER_FRAME as i32) && off + size as i32 <= 0;
        let proven = self.proven.is_some_and(|p| p.get(pc).copied().unwrap_or(false));
        let b = REG[base as usize];
        if in_frame || proven {
            return Mem { base: b, disp: off };
        }
        let ok = self.label();
        let slow = self.label();
        dynasm!(self.a ; .arch x64 ; lea r11, [Rq(b) + off]);
        // XDP puts the packet in slot 2 and the context in slot 1; stack
        // accesses through r10 mostly never get here; map values hit the
        // cache of the last shared region.
        // When the program has few shared regions they are compared with
        // constants; otherwise the cache slot holds the last one used.
        let consts: Vec<(u64, u64)> = match &self.shared {
            Some(v) => v
                .iter()
                .filter(|r| r.writable || !write)
                .filter_map(|r| Some((r.start, r.len.checked_sub(size as u64 - 1)?)))
                .filter(|&(_, lim)| lim > 0)
                .collect(),
            None => Vec::new(),
        };
        let slots: &[usize] = if self.shared.is_some() { &[2, 1, 0] } else { &[2, 1, 0, CACHE_SLOT] };
        for &slot in slots {
            let (s, l) = (region_start(slot), region_lim(slot, size, write));
            dynasm!(self.a
                ; .arch x64
                ; mov r10, r11
                ; sub r10, [r12 + s]
                ; cmp r10, [r12 + l]
                ; jb =>ok
            );
        }
        for (start, lim) in consts {
            dynasm!(self.a
                ; .arch x64
                ; mov r10, QWORD start.wrapping_neg() as i64
                ; add r10, r11
                ; cmp r10, lim as i32
                ; jb =>ok
            );
        }
        dynasm!(self.a ; .arch x64 ; jmp =>slow ; =>ok);
        let info = (pc as u64) << 8 | (write as u64) << 4 | size as u64;
        self.deferred.push(Deferred::MemSlow { at: slow, ok, info });
        Mem { base: 11, disp: 0 }
    }

    /// Whether a 2-byte jump emitted here reaches `l`: only for a label
    /// already placed (a backward jump) within a signed byte.
    fn short_to(&self, l: DynamicLabel) -> bool {
        self.a.labels().resolve_dynamic(l).is_ok_and(|t| {
            let from = self.a.offset().0 as isize + 2;
            i8::try_from(t.0 as isize - from).is_ok()
        })
    }

    /// `mov` of a constant, in the shortest form: `xor` for 0 (eBPF keeps
    /// no flags across instructions), the zero-extending 32-bit move, the
    /// sign-extending one, or the 10-byte one.
    fn mov_imm(&mut self, d: u8, v: i64) {
        let a = &mut self.a;
        if v == 0 {
            dynasm!(a ; .arch x64 ; xor Rd(d), Rd(d));
        } else if u32::try_from(v).is_ok() {
            dynasm!(a ; .arch x64 ; mov Rd(d), v as u32 as i32);
        } else if i32::try_from(v).is_ok() {
            dynasm!(a ; .arch x64 ; mov Rq(d), v as i32);
        } else {
            dynasm!(a ; .arch x64 ; mov Rq(d), QWORD v);
        }
    }

    fn jcc(&mut self, c: Cond, l: DynamicLabel) {
        if self.short_to(l) {
            let a = &mut self.a;
            match c {
                Cond::Eq => dynasm!(a ; .arch x64 ; je BYTE =>l),
                Cond::Ne | Cond::Set => dynasm!(a ; .arch x64 ; jne BYTE =>l),
                Cond::A => dynasm!(a ; .arch x64 ; ja BYTE =>l),
                Cond::Ae => dynasm!(a ; .arch x64 ; jae BYTE =>l),
                Cond::B => dynasm!(a ; .arch x64 ; jb BYTE =>l),
                Cond::Be => dynasm!(a ; .arch x64 ; jbe BYTE =>l),
                Cond::G => dynasm!(a ; .arch x64 ; jg BYTE =>l),
                Cond::Ge => dynasm!(a ; .arch x64 ; jge BYTE =>l),
                Cond::L => dynasm!(a ; .arch x64 ; jl BYTE =>l),
                Cond::Le => dynasm!(a ; .arch x64 ; jle BYTE =>l),
            }
            return;
        }
        let a = &mut self.a;
        match c {
            Cond::Eq => dynasm!(a ; .arch x64 ; je =>l),
            Cond::Ne | Cond::Set => dynasm!(a ; .arch x64 ; jne =>l),
            Cond::A => dynasm!(a ; .arch x64 ; ja =>l),
            Cond::Ae => dynasm!(a ; .arch x64 ; jae =>l),
            Cond::B => dynasm!(a ; .arch x64 ; jb =>l),
            Cond::Be => dynasm!(a ; .arch x64 ; jbe =>l),
            Cond::G => dynasm!(a ; .arch x64 ; jg =>l),
            Cond::Ge => dynasm!(a ; .arch x64 ; jge =>l),
            Cond::L => dynasm!(a ; .arch x64 ; jl =>l),
            Cond::Le => dynasm!(a ; .arch x64 ; jle =>l),
        }
    }

    /// Calls `f(ctx, r1..r5)` keeping r1-r5 (the interpreter leaves them
    /// untouched across calls); the result lands in rax (r0).
    fn call_rust(&mut self, f: usize) {
        self.call_rust_keeping(f, true);
    }

    /// [`Gen::call_rust`], keeping r1-r5 (and r11) only if `keep`.
    fn call_rust_keeping(&mut self, f: usize, keep: bool) {
        self.called_rust = true;
        if !keep {
            // Six pushes or none: the stack stays 16-byte aligned.
            dynasm!(self.a
                ; .arch x64
                ; mov rdi, r12
                ; mov rax, QWORD f as i64
                ; call rax
            );
            return;
        }
        dynasm!(self.a
            ; .arch x64
            ; push rsi ; push rdx ; push rcx ; push r8 ; push r9 ; push r11
            ; mov rdi, r12
            ; mov rax, QWORD f as i64
            ; call rax
            ; pop r11 ; pop r9 ; pop r8 ; pop rcx ; pop rdx ; pop rsi
        );
    }

    fn charge_budget(&mut self, pc: usize) {
        if self.terminates {
            return;
        }
        let err = self.fail(pc, ST_BUDGET);
        dynasm!(self.a ; .arch x64 ; sub QWORD [r12 + C_BUDGET], 1 ; jz =>err);
    }

    fn shift_reg(&mut self, kind: u8, wide: bool, d: u8, s: u8) {
        macro_rules! sh {
            ($r:ident) => {
                match (kind, wide) {
                    (0x60, true) => dynasm!(self.a ; .arch x64 ; shl Rq($r), cl),
                    (0x70, true) => dynasm!(self.a ; .arch x64 ; shr Rq($r), cl),
                    (_, true) => dynasm!(self.a ; .arch x64 ; sar Rq($r), cl),
                    (0x60, false) => dynasm!(self.a ; .arch x64 ; shl Rd($r), cl),
                    (0x70, false) => dynasm!(self.a ; .arch x64 ; shr Rd($r), cl),
                    (_, false) => dynasm!(self.a ; .arch x64 ; sar Rd($r), cl),
                }
            };
        }
        if s == RCX {
            sh!(d);
        } else if d == RCX {
            let t = 11u8;
            dynasm!(self.a ; .arch x64 ; mov r11, rcx ; mov rcx, Rq(s));
            sh!(t);
            dynasm!(self.a ; .arch x64 ; mov rcx, r11);
        } else {
            dynasm!(self.a ; .arch x64 ; mov r11, rcx ; mov rcx, Rq(s));
            sh!(d);
            dynasm!(self.a ; .arch x64 ; mov rcx, r11);
        }
        if !wide {
            // A 32-bit shift by 0 may leave the upper half: zero-extend.
            dynasm!(self.a ; .arch x64 ; mov Rd(d), Rd(d));
        }
    }

    /// Division or modulo of `d` by the divisor already in r11 (non-zero
    /// and, if signed, not -1: both handled by the caller).
    fn divide(&mut self, wide: bool, signed: bool, modulo: bool, d: u8) {
        dynasm!(self.a ; .arch x64 ; mov rdi, rax ; mov r10, rdx ; mov rax, Rq(d));
        match (wide, signed) {
            (true, false) => dynasm!(self.a ; .arch x64 ; xor edx, edx ; div r11),
            (true, true) => dynasm!(self.a ; .arch x64 ; cqo ; idiv r11),
            (false, false) => dynasm!(self.a ; .arch x64 ; xor edx, edx ; div r11d),
            (false, true) => dynasm!(self.a ; .arch x64 ; cdq ; idiv r11d),
        }
        match (wide, modulo) {
            (true, false) => dynasm!(self.a ; .arch x64 ; mov r11, rax),
            (true, true) => dynasm!(self.a ; .arch x64 ; mov r11, rdx),
            (false, false) => dynasm!(self.a ; .arch x64 ; mov r11d, eax),
            (false, true) => dynasm!(self.a ; .arch x64 ; mov r11d, edx),
        }
        dynasm!(self.a ; .arch x64 ; mov rax, rdi ; mov rdx, r10 ; mov Rq(d), r11);
    }

    /// RFC 9669 results for a zero divisor.
    fn div_by_zero(&mut self, wide: bool, modulo: bool, d: u8) {
        match (wide, modulo) {
            (_, false) => dynasm!(self.a ; .arch x64 ; xor Rd(d), Rd(d)),
            (true, true) => {}
            (false, true) => dynasm!(self.a ; .arch x64 ; mov Rd(d), Rd(d)),
        }
    }

    /// Signed division by -1: negation (wrapping), modulo: 0.
    fn div_by_minus_one(&mut self, wide: bool, modulo: bool, d: u8) {
        match (wide, modulo) {
            (_, true) => dynasm!(self.a ; .arch x64 ; xor Rd(d), Rd(d)),
            (true, false) => dynasm!(self.a ; .arch x64 ; neg Rq(d)),
            (false, false) => dynasm!(self.a ; .arch x64 ; neg Rd(d)),
        }
    }

    fn divmod(&mut self, wide: bool, signed: bool, modulo: bool, d: u8, src: Option<u8>, imm: i64) {
        match src {
            None => {
                let k = if wide { imm } else { imm as u32 as i64 };
                let minus_one = if wide { imm == -1 } else { imm as i32 == -1 };
                if k == 0 {
                    self.div_by_zero(wide, modulo, d);
                } else if signed && minus_one {
                    self.div_by_minus_one(wide, modulo, d);
                } else {
                    dynasm!(self.a ; .arch x64 ; mov r11, QWORD k);
                    self.divide(wide, signed, modulo, d);
                }
            }
            Some(s) => {
                let (zero, done) = (self.label(), self.label());
                dynasm!(self.a ; .arch x64 ; mov r11, Rq(s));
                if wide {
                    dynasm!(self.a ; .arch x64 ; test r11, r11 ; jz =>zero);
                } else {
                    dynasm!(self.a ; .arch x64 ; test r11d, r11d ; jz =>zero);
                }
                if signed {
                    let general = self.label();
                    if wide {
                        dynasm!(self.a ; .arch x64 ; cmp r11, -1 ; jne =>general);
                    } else {
                        dynasm!(self.a ; .arch x64 ; cmp r11d, -1 ; jne =>general);
                    }
                    self.div_by_minus_one(wide, modulo, d);
                    dynasm!(self.a ; .arch x64 ; jmp =>done ; =>general);
                }
                self.divide(wide, signed, modulo, d);
                dynasm!(self.a ; .arch x64 ; jmp =>done ; =>zero);
                self.div_by_zero(wide, modulo, d);
                dynasm!(self.a ; .arch x64 ; =>done);
            }
        }
    }

    fn atomic(&mut self, pc: usize, wide: bool, d: u8, s_bpf: u8, off: i16, imm: i64) -> Result<(), JitError> {
        use uxdp_isa::opcode::atomic as at;
        let size = if wide { 8 } else { 4 };
        let m = self.mem(pc, d, off, size, true);
        let s = REG[s_bpf as usize];
        let mis = self.label();
        self.deferred.push(Deferred::Misaligned { at: mis, pc });
        dynasm!(self.a
            ; .arch x64
            ; lea r11, [Rq(m.base) + m.disp]
            ; test r11, (size - 1) as i32
            ; jnz =>mis
        );
        let imm = imm as i32;
        match (imm, wide) {
            (at::ADD, true) => dynasm!(self.a ; .arch x64 ; lock add [r11], Rq(s)),
            (at::ADD, false) => dynasm!(self.a ; .arch x64 ; lock add [r11], Rd(s)),
            (at::OR, true) => dynasm!(self.a ; .arch x64 ; lock or [r11], Rq(s)),
            (at::OR, false) => dynasm!(self.a ; .arch x64 ; lock or [r11], Rd(s)),
            (at::AND, true) => dynasm!(self.a ; .arch x64 ; lock and [r11], Rq(s)),
            (at::AND, false) => dynasm!(self.a ; .arch x64 ; lock and [r11], Rd(s)),
            (at::XOR, true) => dynasm!(self.a ; .arch x64 ; lock xor [r11], Rq(s)),
            (at::XOR, false) => dynasm!(self.a ; .arch x64 ; lock xor [r11], Rd(s)),
            (0x01, true) => dynasm!(self.a ; .arch x64 ; lock xadd [r11], Rq(s)),
            (0x01, false) => dynasm!(self.a ; .arch x64 ; lock xadd [r11], Rd(s)),
            (at::XCHG, true) => dynasm!(self.a ; .arch x64 ; xchg [r11], Rq(s)),
            (at::XCHG, false) => dynasm!(self.a ; .arch x64 ; xchg [r11], Rd(s)),
            (at::CMPXCHG, true) => dynasm!(self.a ; .arch x64 ; lock cmpxchg [r11], Rq(s)),
            (at::CMPXCHG, false) => dynasm!(self.a ; .arch x64 ; lock cmpxchg [r11], Rd(s) ; mov eax, eax),
            (0x41 | 0x51 | 0xa1, _) => {
                let again = self.label();
                dynasm!(self.a ; .arch x64 ; mov rdi, Rq(s) ; push rax);
                if wide {
                    dynasm!(self.a ; .arch x64 ; mov rax, [r11] ; =>again ; mov r10, rax);
                } else {
                    dynasm!(self.a ; .arch x64 ; mov eax, [r11] ; =>again ; mov r10, rax);
                }
                match imm {
                    0x41 => dynasm!(self.a ; .arch x64 ; or r10, rdi),
                    0x51 => dynasm!(self.a ; .arch x64 ; and r10, rdi),
                    _ => dynasm!(self.a ; .arch x64 ; xor r10, rdi),
                }
                if wide {
                    dynasm!(self.a ; .arch x64 ; lock cmpxchg [r11], r10 ; jnz =>again);
                } else {
                    dynasm!(self.a ; .arch x64 ; lock cmpxchg [r11], r10d ; jnz =>again);
                }
                if s == RAX {
                    dynasm!(self.a ; .arch x64 ; add rsp, 8);
                } else {
                    dynasm!(self.a ; .arch x64 ; mov Rq(s), rax ; pop rax);
                }
            }
            _ => return Err(JitError::Unsupported { pc, what: format!("atomic operation {imm:#x}") }),
        }
        Ok(())
    }

    fn insn(&mut self, prog: &Program, pc: usize) -> Result<(), JitError> {
        let op = prog.ops()[pc];
        let d = REG[(op.dst & 15).min(10) as usize];
        let s = REG[(op.src & 15).min(10) as usize];
        let imm = op.imm;
        let i = imm as i32;
        macro_rules! a {
            ($($t:tt)*) => { dynasm!(self.a ; .arch x64 ; $($t)*) };
        }
        match op.code {
            // ---- ALU64 immediate ----
            // Immediates that fit a signed byte use the short forms (the
            // code of small loops then fits fewer fetch windows).
            0x07 | 0x17 | 0x47 | 0x57 | 0xa7 | 0x04 | 0x14 | 0x44 | 0x54 | 0xa4 if i as i8 as i32 == i => {
                let b = i as i8;
                match op.code {
                    0x07 => a!(add Rq(d), BYTE b),
                    0x17 => a!(sub Rq(d), BYTE b),
                    0x47 => a!(or Rq(d), BYTE b),
                    0x57 => a!(and Rq(d), BYTE b),
                    0xa7 => a!(xor Rq(d), BYTE b),
                    0x04 => a!(add Rd(d), BYTE b),
                    0x14 => a!(sub Rd(d), BYTE b),
                    0x44 => a!(or Rd(d), BYTE b),
                    0x54 => a!(and Rd(d), BYTE b),
                    _ => a!(xor Rd(d), BYTE b),
                }
            }
            0x07 => a!(add Rq(d), i),
            0x17 => a!(sub Rq(d), i),
            0x27 => a!(imul Rq(d), Rq(d), i),
            0x47 => a!(or Rq(d), i),
            0x57 => a!(and Rq(d), i),
            0xa7 => a!(xor Rq(d), i),
            // A non-negative immediate zero-extends from the 32-bit move.
            0xb7 | 0xb4 => self.mov_imm(d, if op.code == 0xb7 { i as i64 } else { i as u32 as i64 }),
            0x67 | 0x77 | 0xc7 => {
                let k = (imm as u64 & 63) as i8;
                if k != 0 {
                    match op.code {
                        0x67 => a!(shl Rq(d), k),
                        0x77 => a!(shr Rq(d), k),
                        _ => a!(sar Rq(d), k),
                    }
                }
            }
            0x87 => a!(neg Rq(d)),
            0x37 | 0x97 => self.divmod(true, op.off == 1, op.code == 0x97, d, None, imm),
            // ---- ALU64 register ----
            0x0f => a!(add Rq(d), Rq(s)),
            0x1f => a!(sub Rq(d), Rq(s)),
            0x2f => a!(imul Rq(d), Rq(s)),
            0x4f => a!(or Rq(d), Rq(s)),
            0x5f => a!(and Rq(d), Rq(s)),
            0xaf => a!(xor Rq(d), Rq(s)),
            0xbf => match op.off {
                0 => a!(mov Rq(d), Rq(s)),
                8 => a!(mov r10, Rq(s) ; movsx Rq(d), r10b),
                16 => a!(movsx Rq(d), Rw(s)),
                _ => a!(movsxd Rq(d), Rd(s)),
            },
            0x6f | 0x7f | 0xcf => self.shift_reg(op.code & 0xf0, true, d, s),
            0x3f | 0x9f => self.divmod(true, op.off == 1, op.code == 0x9f, d, Some(s), 0),
            // ---- ALU32 immediate ----
            0x04 => a!(add Rd(d), i),
            0x14 => a!(sub Rd(d), i),
            0x24 => a!(imul Rd(d), Rd(d), i),
            0x44 => a!(or Rd(d), i),
            0x54 => a!(and Rd(d), i),
            0xa4 => a!(xor Rd(d), i),
            0x64 | 0x74 | 0xc4 => {
                let k = (imm as u32 & 31) as i8;
                match (op.code, k) {
                    (_, 0) => a!(mov Rd(d), Rd(d)),
                    (0x64, _) => a!(shl Rd(d), k),
                    (0x74, _) => a!(shr Rd(d), k),
                    _ => a!(sar Rd(d), k),
                }
            }
            0x84 => a!(neg Rd(d)),
            0x34 | 0x94 => self.divmod(false, op.off == 1, op.code == 0x94, d, None, imm),
            // ---- ALU32 register ----
            0x0c => a!(add Rd(d), Rd(s)),
            0x1c => a!(sub Rd(d), Rd(s)),
            0x2c => a!(imul Rd(d), Rd(s)),
            0x4c => a!(or Rd(d), Rd(s)),
            0x5c => a!(and Rd(d), Rd(s)),
            0xac => a!(xor Rd(d), Rd(s)),
            0xbc => match op.off {
                0 => a!(mov Rd(d), Rd(s)),
                8 => a!(mov r10, Rq(s) ; movsx Rd(d), r10b),
                _ => a!(movsx Rd(d), Rw(s)),
            },
            0x6c | 0x7c | 0xcc => self.shift_reg(op.code & 0xf0, false, d, s),
            0x3c | 0x9c => self.divmod(false, op.off == 1, op.code == 0x9c, d, Some(s), 0),
            // ---- byte order ----
            0xd4 => match imm {
                16 => a!(movzx Rd(d), Rw(d)),
                32 => a!(mov Rd(d), Rd(d)),
                _ => {}
            },
            0xdc | 0xd7 => match imm {
                16 => a!(rol Rw(d), 8 ; movzx Rd(d), Rw(d)),
                32 => a!(bswap Rd(d)),
                _ => a!(bswap Rq(d)),
            },
            // ---- lddw ----
            0x18 => self.mov_imm(d, imm),
            // ---- loads ----
            0x61 | 0x69 | 0x71 | 0x79 | 0x81 | 0x89 | 0x91 => {
                let size = match op.code & 0x18 {
                    0x00 => 4,
                    0x08 => 2,
                    0x10 => 1,
                    _ => 8,
                };
                let m = self.mem(pc, op.src, op.off as i16, size, false);
                let (b, o) = (m.base, m.disp);
                // Displacements that fit a byte take the short form.
                match (op.code, i8::try_from(o)) {
                    (0x61, Ok(o)) => a!(mov Rd(d), DWORD [BYTE Rq(b) + o]),
                    (0x69, Ok(o)) => a!(movzx Rd(d), WORD [BYTE Rq(b) + o]),
                    (0x71, Ok(o)) => a!(movzx Rd(d), BYTE [BYTE Rq(b) + o]),
                    (0x79, Ok(o)) => a!(mov Rq(d), QWORD [BYTE Rq(b) + o]),
                    (0x81, Ok(o)) => a!(movsxd Rq(d), DWORD [BYTE Rq(b) + o]),
                    (0x89, Ok(o)) => a!(movsx Rq(d), WORD [BYTE Rq(b) + o]),
                    (_, Ok(o)) => a!(movsx Rq(d), BYTE [BYTE Rq(b) + o]),
                    (0x61, _) => a!(mov Rd(d), DWORD [Rq(b) + o]),
                    (0x69, _) => a!(movzx Rd(d), WORD [Rq(b) + o]),
                    (0x71, _) => a!(movzx Rd(d), BYTE [Rq(b) + o]),
                    (0x79, _) => a!(mov Rq(d), QWORD [Rq(b) + o]),
                    (0x81, _) => a!(movsxd Rq(d), DWORD [Rq(b) + o]),
                    (0x89, _) => a!(movsx Rq(d), WORD [Rq(b) + o]),
                    _ => a!(movsx Rq(d), BYTE [Rq(b) + o]),
                }
            }
            // ---- stores ----
            0x62 | 0x6a | 0x72 | 0x7a | 0x63 | 0x6b | 0x73 | 0x7b => {
                let size = match op.code & 0x18 {
                    0x00 => 4,
                    0x08 => 2,
                    0x10 => 1,
                    _ => 8,
                };
                let m = self.mem(pc, op.dst, op.off as i16, size, true);
                let (b, o) = (m.base, m.disp);
                let (w, h, c) = (i as i16, i as i8, op.code);
                match (c, i8::try_from(o)) {
                    (0x62, Ok(o)) => a!(mov DWORD [BYTE Rq(b) + o], i),
                    (0x6a, Ok(o)) => a!(mov WORD [BYTE Rq(b) + o], w),
                    (0x72, Ok(o)) => a!(mov BYTE [BYTE Rq(b) + o], h),
                    (0x7a, Ok(o)) => a!(mov QWORD [BYTE Rq(b) + o], i),
                    (0x63, Ok(o)) => a!(mov DWORD [BYTE Rq(b) + o], Rd(s)),
                    (0x6b, Ok(o)) => a!(mov WORD [BYTE Rq(b) + o], Rw(s)),
                    (0x73, Ok(o)) => a!(mov r10, Rq(s) ; mov BYTE [BYTE Rq(b) + o], r10b),
                    (_, Ok(o)) => a!(mov QWORD [BYTE Rq(b) + o], Rq(s)),
                    (0x62, _) => a!(mov DWORD [Rq(b) + o], i),
                    (0x6a, _) => a!(mov WORD [Rq(b) + o], w),
                    (0x72, _) => a!(mov BYTE [Rq(b) + o], h),
                    (0x7a, _) => a!(mov QWORD [Rq(b) + o], i),
                    (0x63, _) => a!(mov DWORD [Rq(b) + o], Rd(s)),
                    (0x6b, _) => a!(mov WORD [Rq(b) + o], Rw(s)),
                    (0x73, _) => a!(mov r10, Rq(s) ; mov BYTE [Rq(b) + o], r10b),
                    _ => a!(mov QWORD [Rq(b) + o], Rq(s)),
                }
            }
            // ---- atomics ----
            0xc3 | 0xdb => self.atomic(pc, op.code == 0xdb, op.dst, op.src, op.off as i16, imm)?,
            // ---- legacy packet loads ----
            0x20 | 0x28 | 0x30 | 0x40 | 0x48 | 0x50 => {
                // Fast path: the offset (a 32-bit value, zero-extended, so
                // a negative one fails the compare) plus the size within
                // the legacy packet, which `Ctx` only exposes when it lies
                // in a readable region. Anything else goes to Rust, which
                // ends the run early or faults as the interpreter does.
                let size: i32 = match op.code & 0x18 {
                    0x00 => 4,
                    0x08 => 2,
                    _ => 1,
                };
                let (slow, done) = (self.label(), self.label());
                if op.code & 0x40 != 0 {
                    a!(mov r11d, Rd(s) ; add r11d, i);
                } else {
                    a!(mov r11d, i);
                }
                a!(
                    lea r10, [r11 + size]
                    ; cmp r10, [r12 + C_LEGACY_LEN]
                    ; ja =>slow
                    ; add r11, [r12 + C_LEGACY_BASE]
                );
                match size {
                    4 => a!(mov eax, DWORD [r11] ; bswap eax),
                    2 => a!(movzx eax, WORD [r11] ; rol ax, 8),
                    _ => a!(movzx eax, BYTE [r11]),
                }
                a!(jmp =>done ; =>slow);
                let arg2 = (op.code as u64) << 32 | imm as u32 as u64;
                a!(
                    mov [r12 + C_ARG], Rq(s)
                    ; mov QWORD [r12 + C_PC], pc as i32
                    ; mov rax, QWORD arg2 as i64
                    ; mov [r12 + C_ARG2], rax
                );
                self.call_rust(ld_legacy_tramp as *const () as usize);
                let e = self.error_exit;
                a!(cmp QWORD [r12 + C_STATUS], 0 ; jne =>e ; =>done);
            }
            // ---- jumps ----
            0x05 => {
                let t = op.off as usize;
                let l = self.labels[t];
                if t <= pc {
                    self.charge_budget(pc);
                }
                match self.short_to(l) {
                    true => a!(jmp BYTE =>l),
                    false => a!(jmp =>l),
                }
            }
            c if matches!(c & 7, 5 | 6) && matches!(c >> 4, 1..=7 | 0xa..=0xd) => {
                let wide = c & 7 == 5;
                let x = c & 8 != 0;
                let cond = match c >> 4 {
                    1 => Cond::Eq,
                    2 => Cond::A,
                    3 => Cond::Ae,
                    4 => Cond::Set,
                    5 => Cond::Ne,
                    6 => Cond::G,
                    7 => Cond::Ge,
                    0xa => Cond::B,
                    0xb => Cond::Be,
                    0xc => Cond::L,
                    _ => Cond::Le,
                };
                let test = matches!(cond, Cond::Set);
                let b = i as i8;
                match (wide, x, test) {
                    (w, false, false) if b as i32 == i => cmp_imm8(self.a, w, d, b),
                    (true, false, false) => a!(cmp Rq(d), i),
                    (true, false, true) => a!(test Rq(d), i),
                    (true, true, false) => a!(cmp Rq(d), Rq(s)),
                    (true, true, true) => a!(test Rq(d), Rq(s)),
                    (false, false, false) => a!(cmp Rd(d), i),
                    (false, false, true) => a!(test Rd(d), i),
                    (false, true, false) => a!(cmp Rd(d), Rd(s)),
                    (false, true, true) => a!(test Rd(d), Rd(s)),
                }
                let t = op.off as usize;
                let target = self.labels[t];
                if t > pc || self.terminates {
                    self.jcc(cond, target);
                } else {
                    let at = self.label();
                    self.deferred.push(Deferred::Back { at, pc, target });
                    self.jcc(cond, at);
                }
            }
            // ---- calls ----
            0x85 => {
                let h = prog.called_helpers().get(imm as usize).ok_or_else(|| JitError::Unsupported {
                    pc,
                    what: format!("call of helper index {imm}, which the program does not reference"),
                })?;
                let tramp = self.helper_tramp(h.id);
                if let Some(l) = self.lookups[pc] {
                    self.array_lookup(pc, h.func as usize, tramp, l);
                    return Ok(());
                }
                if let Some(l) = self.direct[pc].clone() {
                    self.direct_lookup(pc, h.func as usize, tramp, &l);
                    return Ok(());
                }
                self.call_helper_at(pc, h.id, h.func as usize, tramp);
            }
            0x8d => {
                a!(mov [r12 + C_ARG], Rq(d) ; mov QWORD [r12 + C_PC], pc as i32);
                self.helper_call(callx_tramp as *const () as usize, true);
            }
            OP_CALL_LOCAL => {
                let depth_err = self.fail(pc, ST_DEPTH);
                a!(cmp QWORD [r12 + C_DEPTH], (MAX_FRAMES - 1) as i32 ; jae =>depth_err);
                self.charge_budget(pc);
                let target = self.labels[op.off as usize];
                a!(
                    add QWORD [r12 + C_DEPTH], 1
                    ; push rbx ; push r13 ; push r14 ; push r15 ; push rbp
                    ; sub rbp, STACK_PER_FRAME as i32
                    ; call =>target
                    ; pop rbp ; pop r15 ; pop r14 ; pop r13 ; pop rbx
                    ; sub QWORD [r12 + C_DEPTH], 1
                );
            }
            0x95 => match self.exit_to {
                Some(l) => a!(jmp =>l),
                None => a!(ret),
            },
            // Second slot of `lddw`: the first slot's code falls through it,
            // and validation guarantees nothing jumps here.
            OP_NONE => {}
            c => return Err(JitError::Unsupported { pc, what: format!("opcode {c:#04x}") }),
        }
        Ok(())
    }

    /// `bpf_map_lookup_elem` on a known array: reads a key on the stack
    /// inline (any other key goes through the helper, which checks it and
    /// faults exactly as usual), charges the budget as a helper call does,
    /// and computes the value pointer or NULL. Only r0 changes.
    fn array_lookup(&mut self, pc: usize, func: usize, tramp: usize, l: ArrayLookup) {
        let (slow, done, null) = (self.label(), self.label(), self.label());
        let (s, lim) = (region_start(0), region_lim(0, 4, false));
        dynasm!(self.a
            ; .arch x64
            // The key (r2 = rdx): 4 readable bytes of the stack (slot 0).
            ; mov r10, rdx
            ; sub r10, [r12 + s]
            ; cmp r10, [r12 + lim]
            ; jae =>slow
        );
        self.charge_budget(pc);
        dynasm!(self.a
            ; .arch x64
            ; mov r11d, DWORD [rdx]
            ; cmp r11d, l.max_entries as i32
            ; jae =>null
            ; imul r11, r11, l.elem_size as i32
            ; mov rax, QWORD l.base as i64
            ; add rax, r11
        );
        if l.cpu_stride != 0 {
            dynasm!(self.a
                ; .arch x64
                ; mov r10, [r12 + C_CPU]
                ; cmp r10, l.nr_cpus as i32
                ; jae =>null
                ; imul r10, r10, l.cpu_stride as i32
                ; add rax, r10
            );
        }
        dynasm!(self.a
            ; .arch x64
            ; jmp =>done
            ; =>null
            ; xor eax, eax
            ; jmp =>done
            ; =>slow
        );
        self.call_helper_at(pc, LOOKUP_HELPER, func, tramp);
        dynasm!(self.a ; .arch x64 ; =>done);
    }

    /// `bpf_map_lookup_elem` on a known map through its [`DirectLookup`]:
    /// a key lying on the stack (slot 0) or in the packet (slot 2) is
    /// passed straight to the lookup
    /// function, after the budget charge of a helper call; any other key
    /// goes through the helper, which checks it and faults as usual. Only
    /// r0 changes.
    fn direct_lookup(&mut self, pc: usize, func: usize, tramp: usize, l: &DirectLookup) {
        let (slow, done, ok) = (self.label(), self.label(), self.label());
        let obj = std::sync::Arc::as_ptr(&l.obj) as *const () as usize;
        // The key (r2 = rdx): key_size readable bytes of the stack (slot 0)
        // or of the packet (slot 2 for XDP).
        for (i, slot) in [0usize, 2].into_iter().enumerate() {
            let (s, len) = (region_start(slot), region_lim(slot, 1, false));
            let next = if i == 0 { self.label() } else { slow };
            dynasm!(self.a
                ; .arch x64
                ; mov r10, rdx
                ; sub r10, [r12 + s]
                ; cmp r10, [r12 + len]
                ; jae =>next
                ; add r10, l.key_size as i32
                ; cmp r10, [r12 + len]
            );
            if i == 0 {
                dynasm!(self.a ; .arch x64 ; jbe =>ok ; =>next);
            } else {
                dynasm!(self.a ; .arch x64 ; ja =>slow);
            }
        }
        dynasm!(self.a ; .arch x64 ; =>ok);
        self.charge_budget(pc);
        let keep = self.keeps_args(LOOKUP_HELPER);
        if keep {
            dynasm!(self.a ; .arch x64 ; push rsi ; push rdx ; push rcx ; push r8 ; push r9 ; push r11);
        }
        dynasm!(self.a
            ; .arch x64
            ; mov rdi, QWORD obj as i64
            ; mov rsi, rdx
            ; mov rdx, [r12 + C_CPU]
            ; mov rax, QWORD l.func as usize as i64
            ; call rax
        );
        if keep {
            dynasm!(self.a ; .arch x64 ; pop r11 ; pop r9 ; pop r8 ; pop rcx ; pop rdx ; pop rsi);
        }
        dynasm!(self.a
            ; .arch x64
            ; jmp =>done
            ; =>slow
        );
        self.call_helper_at(pc, LOOKUP_HELPER, func, tramp);
        dynasm!(self.a ; .arch x64 ; =>done);
    }

    /// The trampoline for calls of helper `id`: without the region-table
    /// reload when the embedder says the helper keeps the regions.
    fn helper_tramp(&self, id: u32) -> usize {
        let keep = self.keeps_regions.is_some_and(|k| k(id));
        let f: HelperTramp = match (keep, self.terminates) {
            (true, false) => helper_tramp_keep,
            (false, false) => helper_tramp,
            (true, true) => helper_tramp_keep_unbudgeted,
            (false, true) => helper_tramp_unbudgeted,
        };
        f as *const () as usize
    }

    /// Whether a call of helper `id` must keep r1-r5: unless the program
    /// follows the kernel's convention, and always for `bpf_tail_call`,
    /// whose target receives r1.
    fn keeps_args(&self, id: u32) -> bool {
        !self.kernel_calls || id == TAIL_CALL_HELPER
    }

    /// Calls helper `func` for the call at slot `pc` through `tramp`.
    fn call_helper_at(&mut self, pc: usize, id: u32, func: usize, tramp: usize) {
        dynasm!(self.a
            ; .arch x64
            ; mov rax, QWORD func as i64
            ; mov [r12 + C_ARG], rax
            ; mov QWORD [r12 + C_PC], pc as i32
        );
        let keep = self.keeps_args(id);
        self.helper_call(tramp, keep);
    }

    fn helper_call(&mut self, tramp: usize, keep_args: bool) {
        self.call_rust_keeping(tramp, keep_args);
        let st = self.label();
        self.deferred.push(Deferred::HelperStatus { at: st });
        dynasm!(self.a ; .arch x64 ; cmp QWORD [r12 + C_STATUS], 0 ; jne =>st);
    }

    fn emit_deferred(&mut self) {
        let e = self.error_exit;
        let slow_stub = self.slow_stub;
        for d in core::mem::take(&mut self.deferred) {
            match d {
                Deferred::MemSlow { at, ok, info } => dynasm!(self.a
                    ; .arch x64
                    ; =>at
                    ; mov r10, QWORD info as i64
                    ; call =>slow_stub
                    ; jz =>e
                    ; jmp =>ok
                ),
                Deferred::Fail { at, pc, status } => dynasm!(self.a
                    ; .arch x64
                    ; =>at
                    ; mov QWORD [r12 + C_PC], pc as i32
                    ; mov QWORD [r12 + C_STATUS], status as i32
                    ; jmp =>e
                ),
                Deferred::Misaligned { at, pc } => dynasm!(self.a
                    ; .arch x64
                    ; =>at
                    ; mov [r12 + C_ADDR], r11
                    ; mov QWORD [r12 + C_PC], pc as i32
                    ; mov QWORD [r12 + C_STATUS], ST_MISALIGNED as i32
                    ; jmp =>e
                ),
                Deferred::Back { at, pc, target } => dynasm!(self.a
                    ; .arch x64
                    ; =>at
                    ; sub QWORD [r12 + C_BUDGET], 1
                    ; jnz =>target
                    ; mov QWORD [r12 + C_PC], pc as i32
                    ; mov QWORD [r12 + C_STATUS], ST_BUDGET as i32
                    ; jmp =>e
                ),
                Deferred::HelperStatus { at } => dynasm!(self.a
                    ; .arch x64
                    ; =>at
                    ; cmp QWORD [r12 + C_STATUS], ST_TAIL as i32
                    ; jne =>e
                    ; mov [r12 + C_TAIL_REGS + 8], rsi
                    ; mov [r12 + C_TAIL_REGS + 48], rbx
                    ; mov [r12 + C_TAIL_REGS + 56], r13
                    ; mov [r12 + C_TAIL_REGS + 64], r14
                    ; mov [r12 + C_TAIL_REGS + 72], r15
                    ; mov [r12 + C_TAIL_REGS + 80], rbp
                    ; mov QWORD [r12 + C_STATUS], 0
                    ; mov rdi, r12
                    ; mov rax, QWORD tail_tramp as *const () as usize as i64
                    ; call rax
                    ; cmp QWORD [r12 + C_STATUS], 0
                    ; jne =>e
                    ; ret
                ),
            }
        }
    }
}

/// The start of an entry stub `fn(ctx, regs: *const [u64; 11], code) -> 0
/// (ok) | 1 (status in ctx)`: saves the callee-saved registers, loads the
/// eBPF registers in `mask` (bit i = ri) from `regs`, calls `code` and
/// stores r0; the caller emits what follows (0 in eax, then the epilogue).
fn entry_stub(a: &mut Assembler, mask: u16) {
    dynasm!(a
        ; .arch x64
        ; push rbp ; push rbx ; push r12 ; push r13 ; push r14 ; push r15
        ; mov r12, rdi
        ; mov [r12 + C_SAVED_RSP], rsp
        ; mov r11, rdx
        ; mov rdi, rsi
    );
    load_regs(a, mask);
    dynasm!(a
        ; .arch x64
        ; call r11
        ; mov [r12 + C_R0], rax
        ; xor eax, eax
    );
}

/// Loads the eBPF registers in `mask` (bit i = ri) from the array at rdi.
fn load_regs(a: &mut Assembler, mask: u16) {
    for r in (0..11u8).filter(|&r| mask & (1 << r) != 0) {
        let (x, off) = (REG[r as usize], 8 * r as i32);
        dynasm!(a ; .arch x64 ; mov Rq(x), [rdi + off]);
    }
}

/// `cmp r64/r32, imm8` (`83 /7 ib`), which dynasm's operand matching
/// never picks for a register.
fn cmp_imm8(a: &mut Assembler, wide: bool, r: u8, imm: i8) {
    let rex = 0x40 | (wide as u8) << 3 | (r >> 3);
    if rex != 0x40 {
        a.push(rex);
    }
    a.extend([0x83, 0xc0 | 7 << 3 | (r & 7), imm as u8]);
}

/// Small loops: the slot a backward jump targets, with the number of slots
/// up to the furthest such jump (loops of at most [`SMALL_LOOP`] slots).
fn loop_heads(prog: &Program) -> std::collections::HashMap<usize, usize> {
    let mut heads = std::collections::HashMap::new();
    for (pc, op) in prog.ops().iter().enumerate() {
        let jump = op.code == 0x05 || (matches!(op.code & 7, 5 | 6) && matches!(op.code >> 4, 1..=7 | 0xa..=0xd));
        let t = op.off as usize;
        if jump && t <= pc && pc - t < SMALL_LOOP {
            let e = heads.entry(t).or_insert(0);
            *e = (*e).max(pc - t + 1);
        }
    }
    heads
}

/// Loops of up to this many slots are placed so that their code does not
/// straddle a 64-byte line when it fits one (see [`align_loop`]).
const SMALL_LOOP: usize = 12;

/// Pads with long NOPs to the next 64-byte line when a loop of `slots`
/// slots starting here would straddle the current line (estimating 5 bytes
/// a slot): a small loop spanning two lines of the op cache costs a cycle
/// more per iteration (`crossing_64_bit_signed_boundary_2` of the corpus
/// ran 2 cycles per 3-instruction iteration instead of 1). The padding runs
/// once, on entry.
fn align_loop(a: &mut Assembler, slots: usize) {
    let at = a.offset().0 % 64;
    let est = slots * 5;
    if est > 64 || at + est <= 64 {
        return;
    }
    let mut pad = 64 - at;
    // The recommended multi-byte NOPs (Intel SDM, "NOP").
    const NOPS: [&[u8]; 9] = [
        &[0x90],
        &[0x66, 0x90],
        &[0x0f, 0x1f, 0x00],
        &[0x0f, 0x1f, 0x40, 0x00],
        &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
        &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    ];
    while pad > 0 {
        let k = pad.min(9);
        a.extend(NOPS[k - 1].iter().copied());
        pad -= k;
    }
}

/// Slots where execution may arrive other than by falling through from the
/// previous slot: jump and local-call targets and function starts.
fn join_points(prog: &Program) -> Vec<bool> {
    let ops = prog.ops();
    let mut join = vec![false; ops.len() + 1];
    join[0] = true;
    for &f in prog.functions() {
        if let Some(j) = join.get_mut(f) {
            *j = true;
        }
    }
    for o in ops {
        let jump = o.code == OP_CALL_LOCAL || (matches!(o.code & 7, 5 | 6) && !matches!(o.code, 0x85 | 0x8d | 0x95));
        if jump {
            if let Some(j) = usize::try_from(o.off).ok().and_then(|t| join.get_mut(t)) {
                *j = true;
            }
        }
    }
    join
}

/// The value r1 certainly holds when slot `pc` executes: an `lddw r1` earlier
/// in the same straight-line code, with nothing in between that writes r1
/// or that control could enter by.
fn const_r1(prog: &Program, join: &[bool], pc: usize) -> Option<u64> {
    let ops = prog.ops();
    let mut j = pc;
    for _ in 0..64 {
        if join[j] || j == 0 {
            return None;
        }
        let o = ops[j - 1];
        j -= 1;
        let class = o.code & 7;
        match o.code {
            // The second slot of an `lddw`: its first slot comes next.
            OP_NONE => continue,
            0x18 if o.dst == 1 => return Some(o.imm as u64),
            0x18 => continue,
            _ => {}
        }
        let writes_r1 = match class {
            // ALU, ALU64, LDX: the destination.
            4 | 7 | 1 => o.dst == 1,
            // Plain stores write no register; atomics may.
            2 => false,
            3 => o.code & 0xe0 == 0xc0,
            // Conditional jumps write nothing; calls, exits and `ja` end
            // the straight-line code.
            5 | 6 => matches!(o.code, 0x05 | 0x06 | 0x85 | 0x8d | 0x95) || o.code == OP_CALL_LOCAL,
            // Legacy packet loads and anything else: stop.
            _ => true,
        };
        if writes_r1 {
            return None;
        }
    }
    None
}

/// Per slot, the array layout of the `bpf_map_lookup_elem` calls to inline.
fn inline_lookups(prog: &Program, resolve: Option<ArrayResolver<'_>>) -> Vec<Option<ArrayLookup>> {
    let ops = prog.ops();
    let mut out = vec![None; ops.len()];
    let Some(resolve) = resolve else { return out };
    let join = join_points(prog);
    for (pc, o) in ops.iter().enumerate() {
        if o.code != 0x85 || prog.called_helpers().get(o.imm as usize).is_none_or(|h| h.id != 1) {
            continue;
        }
        let Some(l) = const_r1(prog, &join, pc).and_then(resolve) else { continue };
        // Immediates must fit the instruction forms used.
        let fits = l.elem_size <= i32::MAX as u32 && l.cpu_stride <= i32::MAX as u64 && l.nr_cpus <= i32::MAX as u32;
        if fits && l.max_entries > 0 && l.nr_cpus > 0 {
            out[pc] = Some(l);
        }
    }
    out
}

/// Per slot, the direct map lookup of the `bpf_map_lookup_elem` calls not
/// inlined as array lookups.
fn direct_lookups(
    prog: &Program,
    arrays: &[Option<ArrayLookup>],
    resolve: Option<LookupResolver<'_>>,
) -> Vec<Option<DirectLookup>> {
    let ops = prog.ops();
    let mut out = vec![None; ops.len()];
    let Some(resolve) = resolve else { return out };
    let join = join_points(prog);
    for (pc, o) in ops.iter().enumerate() {
        if arrays[pc].is_some() || o.code != 0x85 || prog.called_helpers().get(o.imm as usize).is_none_or(|h| h.id != 1)
        {
            continue;
        }
        out[pc] = const_r1(prog, &join, pc).and_then(resolve).filter(|l| l.key_size <= i32::MAX as u32 / 2);
    }
    out
}

impl<'p> Gen<'p> {
    /// A generator for `prog` emitting into `a`, with one label per slot.
    fn new(
        a: &'p mut Assembler,
        prog: &Program,
        opts: &JitOptions<'p>,
        labels: Vec<DynamicLabel>,
        error_exit: DynamicLabel,
        slow_stub: DynamicLabel,
    ) -> Gen<'p> {
        let r10_trusted = !prog.ops().iter().any(|o| {
            matches!(o.code, 0xc3 | 0xdb) && o.src == 10 && o.imm as i32 & uxdp_isa::opcode::atomic::FETCH != 0
        });
        let lookups = inline_lookups(prog, opts.array_lookup);
        let direct = direct_lookups(prog, &lookups, opts.map_lookup);
        // Regions of 2 GiB or more do not fit the compare's immediate.
        let sh = prog.shared_regions();
        let shared = (sh.len() <= MAX_CONST_SHARED && sh.iter().all(|r| r.len <= i32::MAX as u64)).then(|| sh.to_vec());
        Gen {
            a,
            labels,
            error_exit,
            slow_stub,
            deferred: Vec::new(),
            proven: opts.proven,
            r10_trusted,
            lookups,
            direct,
            keeps_regions: opts.keeps_regions,
            shared,
            called_rust: false,
            exit_to: None,
            terminates: opts.terminates,
            kernel_calls: opts.kernel_calls,
        }
    }
}

/// What a program's code keeps alive (its direct lookups' objects).
type Keep = Vec<std::sync::Arc<dyn core::any::Any + Send + Sync>>;

/// Compiles `prog` to machine code.
/// `needs`: [`crate::entry::entry_reads`] of `prog`.
pub(crate) fn compile(prog: &Program, opts: &JitOptions<'_>, needs: u16) -> Result<(Code, Keep), JitError> {
    let n = prog.ops().len();
    if n >= (i32::MAX as usize) >> 8 {
        return Err(JitError::Unsupported { pc: 0, what: format!("a program of {n} instructions") });
    }
    let mut a = Assembler::new().map_err(codegen)?;
    let labels: Vec<DynamicLabel> = (0..n).map(|_| a.new_dynamic_label()).collect();
    let error_exit = a.new_dynamic_label();
    let slow_stub = a.new_dynamic_label();
    let done = a.new_dynamic_label();
    // Entry stub: fn(ctx, regs: *const [u64; 11], code) -> 0 (ok) | 1 (status in ctx).
    let stub = a.offset();
    entry_stub(&mut a, crate::entry::ALL);
    dynasm!(a
        ; .arch x64
        ; =>done
        ; pop r15 ; pop r14 ; pop r13 ; pop r12 ; pop rbx ; pop rbp
        ; ret
        ; =>error_exit
        ; mov rsp, [r12 + C_SAVED_RSP]
        ; mov eax, 1
        ; jmp =>done
        // Slow memory check: address in r11, info in r10; ZF set = fault.
        ; =>slow_stub
        ; push rax ; push rcx ; push rdx ; push rsi ; push r8 ; push r9 ; push r11
        ; mov rdi, r12
        ; mov rsi, r11
        ; mov rdx, r10
        ; mov rax, QWORD slow_check as *const () as usize as i64
        ; call rax
        ; mov r10, rax
        ; pop r11 ; pop r9 ; pop r8 ; pop rsi ; pop rdx ; pop rcx ; pop rax
        ; test r10, r10
        ; ret
    );
    // The stub for slot 0: only the registers the code may read before
    // writing them (the others cannot affect it: `entry_reads` counts a
    // helper call as reading r1-r5).
    let main_stub = a.offset();
    entry_stub(&mut a, needs);
    dynasm!(a ; .arch x64 ; jmp =>done);
    let mut g = Gen::new(&mut a, prog, opts, labels, error_exit, slow_stub);
    let uses_cache = g.shared.is_none();
    let heads = loop_heads(prog);
    for pc in 0..n {
        if let Some(&slots) = heads.get(&pc) {
            align_loop(g.a, slots);
        }
        let l = g.labels[pc];
        dynasm!(g.a ; .arch x64 ; =>l);
        g.insn(prog, pc)?;
    }
    let leaves = g.called_rust || !g.deferred.is_empty();
    g.emit_deferred();
    let keep: Keep = g.direct.iter().flatten().map(|d| d.obj.clone()).collect();
    let labels = g.labels;
    // Code that never leaves does not use the context block either (every
    // use of r12 comes with a slow path, a fault or a call into Rust): its
    // slot 0 runs from a stub that only loads the registers.
    let pure_stub = (!leaves).then(|| {
        let at = a.offset();
        dynasm!(a
            ; .arch x64
            ; push rbp ; push rbx ; push r12 ; push r13 ; push r14 ; push r15
            ; mov r11, rsi
        );
        load_regs(&mut a, needs);
        dynasm!(a
            ; .arch x64
            ; call r11
            ; pop r15 ; pop r14 ; pop r13 ; pop r12 ; pop rbx ; pop rbp
            ; ret
        );
        at
    });
    a.commit().map_err(codegen)?;
    let mut entries = Vec::new();
    for &f in prog.functions() {
        let l = *labels.get(f).ok_or_else(|| JitError::Unsupported { pc: f, what: "function start".into() })?;
        entries.push((f, a.labels().resolve_dynamic(l).map_err(codegen)?));
    }
    entries.sort_by_key(|e| e.0);
    let buf = a.finalize().map_err(|_| JitError::Codegen("finalizing the code buffer failed".into()))?;
    let stub_addr = buf.ptr(stub) as usize;
    let main_stub_addr = buf.ptr(main_stub) as usize;
    let main_addr = entries.first().map_or(stub_addr, |e| buf.ptr(e.1) as usize);
    let pure_stub_addr = pure_stub.map_or(0, |p| buf.ptr(p) as usize);
    Ok((Code { buf, entries, stub_addr, main_stub_addr, pure_stub_addr, main_addr, uses_cache, leaves }, keep))
}

/// One program of a chain, as the chain code calls it.
pub(crate) struct LinkSpec<'a> {
    /// Compile the program's body into the chain code (no call, `exit`
    /// jumps to the mask test) with these proven accesses: only for
    /// programs of one function whose code never leaves.
    pub inline: Option<(&'a Program, Option<&'a [bool]>, bool)>,
    /// Address of the program's code for slot 0.
    pub main: usize,
    /// Chain-call actions: the next link runs iff bit `ret % 32` is set.
    pub mask: u32,
    /// Registers the program reads before writing them
    /// ([`crate::entry::entry_reads`]): r1 and r10 are loaded, the others
    /// zeroed.
    pub needs: u16,
    /// [`Code::leaves`]: the program may fault, enter Rust or use the
    /// budget, so the link index and the budget must be set before it.
    pub leaves: bool,
    /// Whether the program's code uses the shared-region cache slot, which
    /// then must not carry another program's region in.
    pub clear_cache: bool,
    /// Address of the link's counter 0 in shard 0 (0: no counters).
    pub counters: u64,
}

/// Machine code running a chain of programs: two functions
/// `fn(ctx, r1, fp, start) -> 0 | 1 | 2`, one that counts runs per return
/// value and one that does not. `start` is the address of a link's entry
/// inside the function ([`ChainCode::links`]) or 0 for the first.
/// Returns 0 when link `ctx.cur` ended the chain with `ctx.r0`, 2 when
/// every link asked for the next one, 1 when link `ctx.cur` left through
/// its error exit.
pub(crate) struct ChainCode {
    pub _buf: ExecutableBuffer,
    /// Entry of the whole function (plain, counting).
    pub entry: [usize; 2],
    /// Per link, the address to resume at (plain, counting).
    pub links: Vec<[usize; 2]>,
}

/// The registers of eBPF r0-r9 as x86 register numbers (r1 excluded by
/// callers: it is always set).
fn zero_reg(a: &mut Assembler, r: u8) {
    dynasm!(a ; .arch x64 ; xor Rd(r), Rd(r));
}

/// Compiles the chain code for `links`; a return value at or above
/// `other` is counted in counter `other`. Programs that never leave native
/// code and have one function are compiled into the chain code; the others
/// are called through a register. (Measured with `cargo bench -p
/// uxdp-chain --bench chain`: direct `call rel32` instructions patched
/// after assembly were no faster than the indirect call here, and
/// aligning every link to 32 bytes did not help either.)
pub(crate) fn compile_chain(links: &[LinkSpec<'_>], other: u32) -> Result<ChainCode, JitError> {
    let mut a = Assembler::new().map_err(codegen)?;
    let mut entry = [AssemblyOffset(0); 2];
    let mut link_offs: Vec<[Option<DynamicLabel>; 2]> = vec![[None, None]; links.len()];
    let mut stops: Vec<(DynamicLabel, usize)> = Vec::with_capacity(links.len());
    for (v, counting) in [false, true].into_iter().enumerate() {
        let stop = a.new_dynamic_label();
        let done = a.new_dynamic_label();
        entry[v] = a.offset();
        let first = a.new_dynamic_label();
        dynasm!(a
            ; .arch x64
            ; push rbp ; push rbx ; push r12 ; push r13 ; push r14 ; push r15
            ; mov r12, rdi
            ; mov [r12 + C_SAVED_RSP], rsp
            ; mov [r12 + C_CHAIN_R1], rsi
            ; mov [r12 + C_CHAIN_FP], rdx
            ; mov rax, [r12 + C_BUDGET]
            ; mov [r12 + C_BUDGET0], rax
            ; test rcx, rcx
            ; jz =>first
            ; jmp rcx
        );
        for (i, l) in links.iter().enumerate() {
            let at = a.new_dynamic_label();
            link_offs[i][v] = Some(at);
            dynasm!(a ; .arch x64 ; =>at);
            if l.leaves {
                dynasm!(a
                    ; .arch x64
                    ; mov rax, [r12 + C_BUDGET0]
                    ; mov [r12 + C_BUDGET], rax
                );
            }
            if i == 0 {
                dynasm!(a ; .arch x64 ; =>first);
            }
            if l.leaves {
                dynasm!(a ; .arch x64 ; mov QWORD [r12 + C_CUR], i as i32);
            }
            if l.clear_cache {
                for size in [1, 2, 4, 8] {
                    for write in [false, true] {
                        dynasm!(a ; .arch x64 ; mov QWORD [r12 + region_lim(CACHE_SLOT, size, write)], 0);
                    }
                }
            }
            if l.needs & (1 << 1) != 0 {
                dynasm!(a ; .arch x64 ; mov rsi, [r12 + C_CHAIN_R1]);
            }
            if l.needs & (1 << 10) != 0 {
                dynasm!(a ; .arch x64 ; mov rbp, [r12 + C_CHAIN_FP]);
            }
            for r in (0..10u8).filter(|&r| r != 1 && l.needs & (1 << r) != 0) {
                zero_reg(&mut a, REG[r as usize]);
            }
            if let Some((prog, proven, terminates)) = l.inline {
                inline_body(&mut a, prog, proven, terminates)?;
            } else {
                dynasm!(a
                    ; .arch x64
                    ; mov r11, QWORD l.main as i64
                    ; call r11
                );
            }
            if counting && l.counters != 0 {
                dynasm!(a
                    ; .arch x64
                    ; mov r10, QWORD l.counters as i64
                    ; add r10, [r12 + C_STATS_OFF]
                    ; mov r11d, other as i32
                    ; cmp eax, other as i32
                    ; cmovb r11d, eax
                    ; add QWORD [r10 + r11 * 8], 1
                );
            }
            let stop_here = a.new_dynamic_label();
            stops.push((stop_here, i));
            dynasm!(a
                ; .arch x64
                ; mov r11d, l.mask as i32
                ; bt r11d, eax
                ; jnc =>stop_here
            );
        }
        if links.is_empty() {
            dynasm!(a ; .arch x64 ; =>first);
        }
        dynasm!(a
            ; .arch x64
            ; mov [r12 + C_R0], rax
            ; mov eax, 2
            ; jmp =>done
        );
        // Out of line: which link stopped the chain.
        for (l, i) in stops.drain(..) {
            dynasm!(a ; .arch x64 ; =>l ; mov QWORD [r12 + C_CUR], i as i32 ; jmp =>stop);
        }
        dynasm!(a
            ; .arch x64
            ; =>stop
            ; mov [r12 + C_R0], rax
            ; xor eax, eax
            ; =>done
            ; pop r15 ; pop r14 ; pop r13 ; pop r12 ; pop rbx ; pop rbp
            ; ret
        );
    }
    a.commit().map_err(codegen)?;
    let mut offs = Vec::with_capacity(links.len());
    for l in &link_offs {
        let mut o = [AssemblyOffset(0); 2];
        for v in 0..2 {
            let label = l[v].ok_or_else(|| JitError::Codegen("chain link without a label".into()))?;
            o[v] = a.labels().resolve_dynamic(label).map_err(codegen)?;
        }
        offs.push(o);
    }
    let buf = a.finalize().map_err(|_| JitError::Codegen("finalizing the chain code buffer failed".into()))?;
    let entry = [buf.ptr(entry[0]) as usize, buf.ptr(entry[1]) as usize];
    let links = offs.iter().map(|o| [buf.ptr(o[0]) as usize, buf.ptr(o[1]) as usize]).collect();
    Ok(ChainCode { _buf: buf, entry, links })
}

/// Emits the body of `prog` (one function whose code never leaves: no
/// helper calls, no checked accesses, no budget charges) in line, compiled
/// with the options it was compiled with alone, its exits jumping to the
/// end of the body with r0 in rax.
fn inline_body(a: &mut Assembler, prog: &Program, proven: Option<&[bool]>, terminates: bool) -> Result<(), JitError> {
    let n = prog.ops().len();
    let labels: Vec<DynamicLabel> = (0..n).map(|_| a.new_dynamic_label()).collect();
    let end = a.new_dynamic_label();
    // Never referenced by code that does not leave.
    let (unused_exit, unused_slow) = (a.new_dynamic_label(), a.new_dynamic_label());
    let opts = JitOptions { proven, terminates, ..JitOptions::default() };
    let mut g = Gen::new(a, prog, &opts, labels, unused_exit, unused_slow);
    g.exit_to = Some(end);
    for pc in 0..n {
        let l = g.labels[pc];
        dynasm!(g.a ; .arch x64 ; =>l);
        g.insn(prog, pc)?;
    }
    if g.called_rust || !g.deferred.is_empty() {
        return Err(JitError::Codegen("a program inlined into chain code needs to leave native code".into()));
    }
    dynasm!(a ; .arch x64 ; =>end);
    Ok(())
}
