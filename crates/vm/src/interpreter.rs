//! The interpreter: a register machine over pre-decoded 16-byte ops, one
//! `match` on the opcode byte per instruction (compiled to a jump table),
//! no allocation and no re-decoding on the hot path.

use crate::memory::{Memory, Region};
use crate::program::{Op, Program, FUNC_PTR_BASE, OP_CALL_LOCAL};
use crate::VmError;
use core::any::Any;
use std::sync::Arc;

/// Stack bytes per frame, as in the kernel (`MAX_BPF_STACK`).
pub const STACK_PER_FRAME: usize = 512;
/// Maximum call depth including the entry frame (`MAX_CALL_FRAMES`).
pub const MAX_FRAMES: usize = 8;
/// Maximum consecutive tail calls (`MAX_TAIL_CALL_CNT`).
pub const MAX_TAIL_CALLS: u32 = 33;
/// Default budget of taken backward jumps and calls per run, the guard
/// against programs that never terminate (verified programs always do).
pub const DEFAULT_BUDGET: u64 = 1 << 27;

/// Native code for a [`Program`] (e.g. produced by uxdp-jit), attached with
/// [`Program::set_native`]. The [`Machine`] calls it instead of
/// interpreting whenever it would start executing the program: a run, a
/// callback ([`Machine::call_function`]) or the continuation of a tail call.
pub trait NativeCode: Send + Sync + std::panic::RefUnwindSafe + std::panic::UnwindSafe {
    /// Executes the program's function starting at slot `entry` (0 or a
    /// function start) with registers `regs` (r0-r10; r10 is the frame
    /// pointer) until that function exits, and returns its r0. `depth` is
    /// the absolute call depth of that function (for the
    /// [`MAX_FRAMES`] limit on local calls). Faults must be reported
    /// exactly as the interpreter reports them (same error, same `pc`), and
    /// [`Machine::budget`] must be decremented as the interpreter does.
    fn run(&self, m: &mut Machine<'_>, entry: usize, regs: &[u64; 11], depth: usize) -> Result<u64, VmError>;

    /// The code as [`Any`], for embedders that know its concrete type
    /// (e.g. to link several programs' code together); `None` by default.
    fn as_any(&self) -> Option<&dyn Any> {
        None
    }
}

/// Words of [`NativeScratch::block`].
pub const NATIVE_SCRATCH_WORDS: usize = 112;

/// Memory that native code keeps from one run to the next on the same
/// [`Stack`] (uxdp-jit keeps its context block here, so that a run only
/// rewrites what changed since the previous one). The virtual machine
/// never reads it; its meaning belongs to the native code.
#[repr(C, align(64))]
pub struct NativeScratch {
    /// Identifies what `block` holds (0: nothing yet); set by the native
    /// code that initialised it.
    pub tag: u64,
    /// True while a native run uses `block`. A nested run (a callback or a
    /// tail call started from a helper) finds it set and must use memory
    /// of its own.
    pub busy: bool,
    /// The native code's data; only the native code that set `tag`
    /// interprets it, and it must not hold anything that needs dropping
    /// between runs.
    pub block: [core::mem::MaybeUninit<u64>; NATIVE_SCRATCH_WORDS],
}

impl Default for NativeScratch {
    fn default() -> Self {
        NativeScratch { tag: 0, busy: false, block: [core::mem::MaybeUninit::uninit(); NATIVE_SCRATCH_WORDS] }
    }
}

/// The stack memory of one executing thread: all frames, reused across runs
/// (allocate once per thread, not per packet).
pub struct Stack {
    mem: Box<[u64; STACK_PER_FRAME * MAX_FRAMES / 8]>,
    /// Return records of local calls, indexed by absolute call depth (so
    /// nested callback runs share the array without overlapping).
    frames: [Frame; MAX_FRAMES],
    native: Box<NativeScratch>,
}

impl Default for Stack {
    fn default() -> Self {
        Stack {
            mem: Box::new([0; STACK_PER_FRAME * MAX_FRAMES / 8]),
            frames: [Frame::EMPTY; MAX_FRAMES],
            native: Box::default(),
        }
    }
}

impl Stack {
    /// A zeroed stack.
    pub fn new() -> Self {
        Self::default()
    }

    /// Zeroes all frames (e.g. to run two engines on identical state).
    pub fn clear(&mut self) {
        self.mem.fill(0);
    }

    fn region(&mut self) -> Region {
        Region { start: self.mem.as_mut_ptr() as u64, len: (STACK_PER_FRAME * MAX_FRAMES) as u64, writable: true }
    }
}

/// The state of one run: memory regions, the embedder's environment for
/// helpers, and the bookkeeping for calls, callbacks and tail calls.
pub struct Machine<'a> {
    /// Regions the program may access. Helpers add or move regions here
    /// (e.g. the packet after `bpf_xdp_adjust_head`).
    pub mem: Memory<'a>,
    /// The embedder's per-run state, downcast by its helpers.
    pub env: &'a mut dyn Any,
    /// Packet used by the legacy `ldabs`/`ldind` loads: (address, length).
    pub legacy_packet: (u64, u64),
    /// Remaining backward jumps and calls before the run is aborted.
    pub budget: u64,
    /// Whether attached native code ([`Program::set_native`]) is used
    /// (default true); false forces the interpreter.
    pub native: bool,
    /// The CPU number this run uses for per-CPU map values (default 0).
    /// Native code that inlines per-CPU array lookups reads it, so an
    /// embedder whose helpers use another CPU number must set it to that.
    pub cpu: u32,
    prog: &'a Program,
    /// The program the machine was made for ([`Machine::rearm`]).
    entry: &'a Program,
    stack: Region,
    stack_top: u64,
    depth: usize,
    pc: usize,
    tail_call: Option<Arc<Program>>,
    tail_calls: u32,
    held: Vec<Arc<Program>>,
    frames: &'a mut [Frame; MAX_FRAMES],
    /// The stack's [`NativeScratch`] (a raw pointer: native code writes
    /// it while it also hands `&mut Machine` to helpers).
    scratch: *mut NativeScratch,
}

impl<'a> Machine<'a> {
    /// Prepares a run of `prog` on `stack`, with `env` for helpers.
    #[inline]
    pub fn new(prog: &'a Program, stack: &'a mut Stack, env: &'a mut dyn Any) -> Self {
        let sr = stack.region();
        let mem = Memory::with_first(sr, &prog.regions);
        let frames = &mut stack.frames;
        let scratch: *mut NativeScratch = &mut *stack.native;
        Machine {
            mem,
            env,
            legacy_packet: (0, 0),
            budget: DEFAULT_BUDGET,
            native: true,
            cpu: 0,
            prog,
            entry: prog,
            stack: sr,
            stack_top: sr.start + sr.len,
            depth: 0,
            pc: 0,
            tail_call: None,
            tail_calls: 0,
            held: Vec::new(),
            frames,
            scratch,
        }
    }

    /// The instruction index being executed (inside helpers: the call).
    pub fn pc(&self) -> usize {
        self.pc
    }

    /// For native code: records the instruction being executed before it
    /// calls a helper (what [`Machine::pc`] reports to the helper).
    #[inline]
    pub fn set_pc(&mut self, pc: usize) {
        self.pc = pc;
    }

    /// The whole stack of the run (all frames; the entry frame is the top
    /// [`STACK_PER_FRAME`] bytes).
    #[inline]
    pub fn stack(&self) -> Region {
        self.stack
    }

    /// Whether a helper requested a tail call that has not been taken yet.
    #[inline]
    pub fn tail_call_pending(&self) -> bool {
        self.tail_call.is_some()
    }

    /// For native code, after a helper requested a tail call: runs the
    /// target in place of the current function (r0, r2-r5 cleared; r1, the
    /// context, r6-r10 as in `regs`) at call depth `depth`, and returns its
    /// r0, which is the result of the current function. The target runs
    /// natively if it has native code, else interpreted. `None` if no tail
    /// call is pending.
    pub fn run_pending_tail_call(&mut self, regs: &[u64; 11], depth: usize) -> Option<Result<u64, VmError>> {
        let next = self.tail_call.take()?;
        // SAFETY: `next` is kept alive in `held` for the rest of the run.
        let p: &'a Program = unsafe { &*(Arc::as_ptr(&next)) };
        self.held.push(next);
        let saved = self.prog;
        self.prog = p;
        self.mem = Memory::clone_with_shared(&self.mem, &p.regions);
        let mut r = *regs;
        r[0] = 0;
        r[2..6].fill(0);
        let res = self.exec(p, 0, &r, depth);
        self.prog = saved;
        self.mem = Memory::clone_with_shared(&self.mem, &saved.regions);
        Some(res)
    }

    /// The stack's [`NativeScratch`], for native code (see there): valid
    /// for as long as the machine, and not used by anything else.
    #[inline]
    pub fn native_scratch(&mut self) -> *mut NativeScratch {
        self.scratch
    }

    /// Prepares another run of the program the machine was made for, as a
    /// new machine would start it (default budget, no tail calls made or
    /// pending, that program's shared regions), keeping the per-run regions
    /// as the previous run left them: for repeated runs on one set-up
    /// (`BPF_PROG_TEST_RUN` with `repeat`), without building a machine per
    /// run.
    pub fn rearm(&mut self) {
        let p = self.entry;
        if !core::ptr::eq(self.prog, p) {
            self.prog = p;
            self.mem = Memory::clone_with_shared(&self.mem, &p.regions);
        }
        self.tail_call = None;
        self.tail_calls = 0;
        // Nothing refers to earlier tail-call targets any more.
        self.held.clear();
        self.pc = 0;
        self.depth = 0;
        self.stack_top = self.stack.start + self.stack.len;
        self.budget = DEFAULT_BUDGET;
    }

    /// Makes `prog` the program this machine runs from now on, as a new
    /// machine for it would start: its shared regions, no tail call made or
    /// pending. For native code that runs several programs in one entry
    /// (a chain of programs on one hook); the per-run regions, the
    /// environment and the stack stay.
    pub fn switch_program(&mut self, prog: &'a Program) {
        self.prog = prog;
        self.mem = Memory::clone_with_shared(&self.mem, &prog.regions);
        self.tail_call = None;
        self.tail_calls = 0;
        self.pc = 0;
    }

    /// The program currently executing (changes with tail calls).
    pub fn program(&self) -> &Program {
        self.prog
    }

    /// Runs the program from its first instruction with `r1 = ctx`.
    #[inline]
    pub fn run(&mut self, ctx: u64) -> Result<u64, VmError> {
        self.run_with_args([ctx, 0, 0, 0, 0])
    }

    /// Runs the program with r1-r5 set (r1-r5 of the entry frame).
    #[inline]
    pub fn run_with_args(&mut self, args: [u64; 5]) -> Result<u64, VmError> {
        let mut regs = [0u64; 11];
        regs[1..6].copy_from_slice(&args);
        regs[10] = self.stack_top;
        let depth = self.depth;
        self.exec(self.prog, 0, &regs, depth)
    }

    /// From a helper: requests a tail call to `prog` once the helper
    /// returns. Returns false (and the helper should return its error code,
    /// execution continuing after the call) when the run already made
    /// [`MAX_TAIL_CALLS`] tail calls.
    #[must_use]
    pub fn request_tail_call(&mut self, prog: Arc<Program>) -> bool {
        if self.tail_calls >= MAX_TAIL_CALLS {
            return false;
        }
        self.tail_calls += 1;
        self.tail_call = Some(prog);
        true
    }

    /// From a helper: calls the program's function at `func` (a value
    /// loaded with `lddw rX, func`) with r1-r5 = `args`, in a new frame,
    /// and returns its r0. Used by `bpf_loop`, `bpf_for_each_map_elem`, ...
    pub fn call_function(&mut self, func: u64, args: [u64; 5]) -> Result<u64, VmError> {
        let pc = self.pc;
        let prog = self.prog;
        let entry = func.wrapping_sub(FUNC_PTR_BASE);
        if func < FUNC_PTR_BASE || prog.functions.binary_search(&(entry as usize)).is_err() {
            return Err(VmError::BadCallback { pc, value: func });
        }
        if self.depth + 1 >= MAX_FRAMES {
            return Err(VmError::CallDepth { pc });
        }
        let saved = (self.depth, self.stack_top);
        self.depth += 1;
        let top = self.stack_top - STACK_PER_FRAME as u64;
        self.stack_top = top;
        let mut regs = [0u64; 11];
        regs[1..6].copy_from_slice(&args);
        regs[10] = top;
        let depth = self.depth;
        let r = self.exec(prog, entry as usize, &regs, depth);
        (self.depth, self.stack_top) = saved;
        self.pc = pc;
        r
    }

    /// Runs `prog` from `entry` natively if it has native code (and the
    /// machine allows it), else interpreted.
    #[inline]
    fn exec(&mut self, prog: &'a Program, entry: usize, init: &[u64; 11], base_depth: usize) -> Result<u64, VmError> {
        if self.native {
            if let Some(n) = prog.native.get() {
                return n.run(self, entry, init, base_depth);
            }
        }
        self.interpret(prog, entry, init, base_depth)
    }

    #[inline(never)]
    fn interpret(
        &mut self,
        prog: &'a Program,
        entry: usize,
        init: &[u64; 11],
        base_depth: usize,
    ) -> Result<u64, VmError> {
        let mut prog = prog;
        let mut ops: &[Op] = &prog.ops;
        let mut reg = [0u64; 16];
        reg[..11].copy_from_slice(init);
        let mut pc = entry;
        let mut nframes = 0usize;

        macro_rules! d {
            ($op:expr) => {
                reg[($op.dst & 15) as usize]
            };
        }
        macro_rules! s {
            ($op:expr) => {
                reg[($op.src & 15) as usize]
            };
        }
        // `exit` of the current function (also after a native tail call
        // ran in its place): the run ends at depth 0, else the caller's
        // frame resumes.
        macro_rules! exit_frame {
            () => {{
                if nframes == 0 {
                    return Ok(reg[0]);
                }
                nframes -= 1;
                let f = self.frames[base_depth + nframes];
                pc = f.ret;
                if !core::ptr::eq(f.prog, prog) {
                    // SAFETY: frames only hold the entry program or
                    // tail-call targets kept alive in `held`.
                    prog = unsafe { &*f.prog };
                    ops = &prog.ops;
                    self.mem = Memory::clone_with_shared(&self.mem, &prog.regions);
                }
                reg[6..10].copy_from_slice(&f.saved);
                reg[10] = f.fp;
            }};
        }
        macro_rules! fault_mem {
            ($pc:expr, $addr:expr, $len:expr, $w:expr) => {
                return Err(VmError::Memory { pc: $pc, addr: $addr, len: $len, write: $w })
            };
        }
        macro_rules! load {
            ($t:ty, $op:expr, $pc:expr) => {{
                let addr = s!($op).wrapping_add($op.off as i64 as u64);
                match self.mem.check(addr, core::mem::size_of::<$t>() as u64, false) {
                    // SAFETY: checked to lie inside a live readable region.
                    Some(p) => unsafe { core::ptr::read_unaligned(p as *const $t) },
                    None => fault_mem!($pc, addr, core::mem::size_of::<$t>(), false),
                }
            }};
        }
        macro_rules! store {
            ($t:ty, $op:expr, $pc:expr, $v:expr) => {{
                let addr = d!($op).wrapping_add($op.off as i64 as u64);
                match self.mem.check(addr, core::mem::size_of::<$t>() as u64, true) {
                    // SAFETY: checked to lie inside a live writable region.
                    Some(p) => unsafe { core::ptr::write_unaligned(p as *mut $t, $v as $t) },
                    None => fault_mem!($pc, addr, core::mem::size_of::<$t>(), true),
                }
            }};
        }
        macro_rules! jmp {
            ($op:expr, $pc:expr, $cond:expr) => {
                if $cond {
                    let t = $op.off as usize;
                    if t <= $pc {
                        self.budget -= 1;
                        if self.budget == 0 {
                            return Err(VmError::Budget { pc: $pc });
                        }
                    }
                    pc = t;
                }
            };
        }

        loop {
            let cur = pc;
            // SAFETY: validation guarantees every jump and call target is an
            // instruction boundary in range and that the last instruction
            // does not fall through, so `pc` is always in bounds.
            let op = unsafe { *ops.get_unchecked(pc) };
            pc += 1;
            match op.code {
                // ---- ALU64, immediate ----
                0x07 => d!(op) = d!(op).wrapping_add(op.imm as u64),
                0x17 => d!(op) = d!(op).wrapping_sub(op.imm as u64),
                0x27 => d!(op) = d!(op).wrapping_mul(op.imm as u64),
                0x37 => {
                    let k = op.imm as u64;
                    d!(op) = if op.off == 1 {
                        if k == 0 {
                            0
                        } else {
                            (d!(op) as i64).wrapping_div(k as i64) as u64
                        }
                    } else {
                        d!(op).checked_div(k).unwrap_or(0)
                    }
                }
                0x47 => d!(op) |= op.imm as u64,
                0x57 => d!(op) &= op.imm as u64,
                0x67 => d!(op) <<= op.imm as u64 & 63,
                0x77 => d!(op) >>= op.imm as u64 & 63,
                0x87 => d!(op) = (d!(op) as i64).wrapping_neg() as u64,
                0x97 => {
                    let k = op.imm as u64;
                    if k != 0 {
                        d!(op) = if op.off == 1 { (d!(op) as i64).wrapping_rem(k as i64) as u64 } else { d!(op) % k }
                    }
                }
                0xa7 => d!(op) ^= op.imm as u64,
                0xb7 => d!(op) = op.imm as u64,
                0xc7 => d!(op) = ((d!(op) as i64) >> (op.imm as u64 & 63)) as u64,
                // ---- ALU64, register ----
                0x0f => d!(op) = d!(op).wrapping_add(s!(op)),
                0x1f => d!(op) = d!(op).wrapping_sub(s!(op)),
                0x2f => d!(op) = d!(op).wrapping_mul(s!(op)),
                0x3f => {
                    let k = s!(op);
                    d!(op) = if k == 0 {
                        0
                    } else if op.off == 1 {
                        (d!(op) as i64).wrapping_div(k as i64) as u64
                    } else {
                        d!(op) / k
                    }
                }
                0x4f => d!(op) |= s!(op),
                0x5f => d!(op) &= s!(op),
                0x6f => d!(op) <<= s!(op) & 63,
                0x7f => d!(op) >>= s!(op) & 63,
                0x9f => {
                    let k = s!(op);
                    if k != 0 {
                        d!(op) = if op.off == 1 { (d!(op) as i64).wrapping_rem(k as i64) as u64 } else { d!(op) % k }
                    }
                }
                0xaf => d!(op) ^= s!(op),
                0xbf => {
                    let v = s!(op);
                    d!(op) = match op.off {
                        0 => v,
                        8 => v as i8 as i64 as u64,
                        16 => v as i16 as i64 as u64,
                        _ => v as i32 as i64 as u64,
                    }
                }
                0xcf => d!(op) = ((d!(op) as i64) >> (s!(op) & 63)) as u64,
                // ---- ALU32, immediate ----
                0x04 => d!(op) = (d!(op) as u32).wrapping_add(op.imm as u32) as u64,
                0x14 => d!(op) = (d!(op) as u32).wrapping_sub(op.imm as u32) as u64,
                0x24 => d!(op) = (d!(op) as u32).wrapping_mul(op.imm as u32) as u64,
                0x34 => {
                    let k = op.imm as u32;
                    d!(op) = if k == 0 {
                        0
                    } else if op.off == 1 {
                        (d!(op) as i32).wrapping_div(k as i32) as u32 as u64
                    } else {
                        (d!(op) as u32 / k) as u64
                    }
                }
                0x44 => d!(op) = (d!(op) as u32 | op.imm as u32) as u64,
                0x54 => d!(op) = (d!(op) as u32 & op.imm as u32) as u64,
                0x64 => d!(op) = ((d!(op) as u32) << (op.imm as u32 & 31)) as u64,
                0x74 => d!(op) = ((d!(op) as u32) >> (op.imm as u32 & 31)) as u64,
                0x84 => d!(op) = (d!(op) as i32).wrapping_neg() as u32 as u64,
                0x94 => {
                    let k = op.imm as u32;
                    d!(op) = if k == 0 {
                        d!(op) as u32 as u64
                    } else if op.off == 1 {
                        (d!(op) as i32).wrapping_rem(k as i32) as u32 as u64
                    } else {
                        (d!(op) as u32 % k) as u64
                    }
                }
                0xa4 => d!(op) = (d!(op) as u32 ^ op.imm as u32) as u64,
                0xb4 => d!(op) = op.imm as u32 as u64,
                0xc4 => d!(op) = ((d!(op) as i32) >> (op.imm as u32 & 31)) as u32 as u64,
                // ---- ALU32, register ----
                0x0c => d!(op) = (d!(op) as u32).wrapping_add(s!(op) as u32) as u64,
                0x1c => d!(op) = (d!(op) as u32).wrapping_sub(s!(op) as u32) as u64,
                0x2c => d!(op) = (d!(op) as u32).wrapping_mul(s!(op) as u32) as u64,
                0x3c => {
                    let k = s!(op) as u32;
                    d!(op) = if k == 0 {
                        0
                    } else if op.off == 1 {
                        (d!(op) as i32).wrapping_div(k as i32) as u32 as u64
                    } else {
                        (d!(op) as u32 / k) as u64
                    }
                }
                0x4c => d!(op) = (d!(op) as u32 | s!(op) as u32) as u64,
                0x5c => d!(op) = (d!(op) as u32 & s!(op) as u32) as u64,
                0x6c => d!(op) = ((d!(op) as u32) << (s!(op) as u32 & 31)) as u64,
                0x7c => d!(op) = ((d!(op) as u32) >> (s!(op) as u32 & 31)) as u64,
                0x9c => {
                    let k = s!(op) as u32;
                    d!(op) = if k == 0 {
                        d!(op) as u32 as u64
                    } else if op.off == 1 {
                        (d!(op) as i32).wrapping_rem(k as i32) as u32 as u64
                    } else {
                        (d!(op) as u32 % k) as u64
                    }
                }
                0xac => d!(op) = (d!(op) as u32 ^ s!(op) as u32) as u64,
                0xbc => {
                    let v = s!(op);
                    d!(op) = match op.off {
                        0 => v as u32 as u64,
                        8 => v as i8 as i32 as u32 as u64,
                        _ => v as i16 as i32 as u32 as u64,
                    }
                }
                0xcc => d!(op) = ((d!(op) as i32) >> (s!(op) as u32 & 31)) as u32 as u64,
                // ---- byte order ----
                0xd4 => {
                    // to little endian: truncation on this (little-endian) host
                    d!(op) = match op.imm {
                        16 => d!(op) as u16 as u64,
                        32 => d!(op) as u32 as u64,
                        _ => d!(op),
                    }
                }
                0xdc | 0xd7 => {
                    d!(op) = match op.imm {
                        16 => (d!(op) as u16).swap_bytes() as u64,
                        32 => (d!(op) as u32).swap_bytes() as u64,
                        _ => d!(op).swap_bytes(),
                    }
                }
                // ---- lddw ----
                0x18 => {
                    d!(op) = op.imm as u64;
                    pc += 1;
                }
                // ---- loads ----
                0x61 => d!(op) = load!(u32, op, cur) as u64,
                0x69 => d!(op) = load!(u16, op, cur) as u64,
                0x71 => d!(op) = load!(u8, op, cur) as u64,
                0x79 => d!(op) = load!(u64, op, cur),
                0x81 => d!(op) = load!(i32, op, cur) as i64 as u64,
                0x89 => d!(op) = load!(i16, op, cur) as i64 as u64,
                0x91 => d!(op) = load!(i8, op, cur) as i64 as u64,
                // ---- stores ----
                0x62 => store!(u32, op, cur, op.imm),
                0x6a => store!(u16, op, cur, op.imm),
                0x72 => store!(u8, op, cur, op.imm),
                0x7a => store!(u64, op, cur, op.imm),
                0x63 => store!(u32, op, cur, s!(op)),
                0x6b => store!(u16, op, cur, s!(op)),
                0x73 => store!(u8, op, cur, s!(op)),
                0x7b => store!(u64, op, cur, s!(op)),
                // ---- atomics ----
                0xc3 | 0xdb => {
                    let wide = op.code == 0xdb;
                    let addr = d!(op).wrapping_add(op.off as i64 as u64);
                    let size = if wide { 8 } else { 4 };
                    let Some(p) = self.mem.check(addr, size, true) else { fault_mem!(cur, addr, size as usize, true) };
                    if addr % size != 0 {
                        return Err(VmError::Misaligned { pc: cur, addr });
                    }
                    let src = s!(op);
                    let r0 = reg[0];
                    let (old, fetch) = if wide {
                        // SAFETY: in bounds, writable and 8-byte aligned.
                        crate::atomic::rmw64(unsafe { &*(p as *const core::sync::atomic::AtomicU64) }, op.imm, src, r0)
                    } else {
                        // SAFETY: in bounds, writable and 4-byte aligned.
                        crate::atomic::rmw32(
                            unsafe { &*(p as *const core::sync::atomic::AtomicU32) },
                            op.imm,
                            src as u32,
                            r0 as u32,
                        )
                    };
                    match fetch {
                        crate::atomic::Fetch::None => {}
                        crate::atomic::Fetch::Src => reg[(op.src & 15) as usize] = old,
                        crate::atomic::Fetch::R0 => reg[0] = old,
                    }
                }
                // ---- legacy packet loads ----
                0x20 | 0x28 | 0x30 | 0x40 | 0x48 | 0x50 => {
                    let size: u64 = match op.code & 0x18 {
                        0x00 => 4,
                        0x08 => 2,
                        _ => 1,
                    };
                    let off = if op.code & 0x40 != 0 {
                        (s!(op) as u32 as i32).wrapping_add(op.imm as i32)
                    } else {
                        op.imm as i32
                    };
                    let (base, len) = self.legacy_packet;
                    // Out of bounds: the program ends returning 0 (kernel semantics).
                    if off < 0 || off as u64 + size > len {
                        return Ok(0);
                    }
                    let addr = base + off as u64;
                    let Some(p) = self.mem.check(addr, size, false) else {
                        fault_mem!(cur, addr, size as usize, false)
                    };
                    // SAFETY: checked above.
                    let v = unsafe {
                        match size {
                            4 => u32::from_be(core::ptr::read_unaligned(p as *const u32)) as u64,
                            2 => u16::from_be(core::ptr::read_unaligned(p as *const u16)) as u64,
                            _ => *p as u64,
                        }
                    };
                    reg[0] = v;
                }
                // ---- jumps ----
                0x05 => jmp!(op, cur, true),
                0x15 => jmp!(op, cur, d!(op) == op.imm as u64),
                0x1d => jmp!(op, cur, d!(op) == s!(op)),
                0x25 => jmp!(op, cur, d!(op) > op.imm as u64),
                0x2d => jmp!(op, cur, d!(op) > s!(op)),
                0x35 => jmp!(op, cur, d!(op) >= op.imm as u64),
                0x3d => jmp!(op, cur, d!(op) >= s!(op)),
                0x45 => jmp!(op, cur, d!(op) & op.imm as u64 != 0),
                0x4d => jmp!(op, cur, d!(op) & s!(op) != 0),
                0x55 => jmp!(op, cur, d!(op) != op.imm as u64),
                0x5d => jmp!(op, cur, d!(op) != s!(op)),
                0x65 => jmp!(op, cur, d!(op) as i64 > op.imm),
                0x6d => jmp!(op, cur, d!(op) as i64 > s!(op) as i64),
                0x75 => jmp!(op, cur, d!(op) as i64 >= op.imm),
                0x7d => jmp!(op, cur, d!(op) as i64 >= s!(op) as i64),
                0xa5 => jmp!(op, cur, d!(op) < op.imm as u64),
                0xad => jmp!(op, cur, d!(op) < s!(op)),
                0xb5 => jmp!(op, cur, d!(op) <= op.imm as u64),
                0xbd => jmp!(op, cur, d!(op) <= s!(op)),
                0xc5 => jmp!(op, cur, (d!(op) as i64) < op.imm),
                0xcd => jmp!(op, cur, (d!(op) as i64) < s!(op) as i64),
                0xd5 => jmp!(op, cur, d!(op) as i64 <= op.imm),
                0xdd => jmp!(op, cur, d!(op) as i64 <= s!(op) as i64),
                // ---- JMP32 ----
                0x16 => jmp!(op, cur, d!(op) as u32 == op.imm as u32),
                0x1e => jmp!(op, cur, d!(op) as u32 == s!(op) as u32),
                0x26 => jmp!(op, cur, d!(op) as u32 > op.imm as u32),
                0x2e => jmp!(op, cur, d!(op) as u32 > s!(op) as u32),
                0x36 => jmp!(op, cur, d!(op) as u32 >= op.imm as u32),
                0x3e => jmp!(op, cur, d!(op) as u32 >= s!(op) as u32),
                0x46 => jmp!(op, cur, d!(op) as u32 & op.imm as u32 != 0),
                0x4e => jmp!(op, cur, d!(op) as u32 & s!(op) as u32 != 0),
                0x56 => jmp!(op, cur, d!(op) as u32 != op.imm as u32),
                0x5e => jmp!(op, cur, d!(op) as u32 != s!(op) as u32),
                0x66 => jmp!(op, cur, d!(op) as i32 > op.imm as i32),
                0x6e => jmp!(op, cur, d!(op) as i32 > s!(op) as i32),
                0x76 => jmp!(op, cur, d!(op) as i32 >= op.imm as i32),
                0x7e => jmp!(op, cur, d!(op) as i32 >= s!(op) as i32),
                0xa6 => jmp!(op, cur, (d!(op) as u32) < op.imm as u32),
                0xae => jmp!(op, cur, (d!(op) as u32) < s!(op) as u32),
                0xb6 => jmp!(op, cur, d!(op) as u32 <= op.imm as u32),
                0xbe => jmp!(op, cur, d!(op) as u32 <= s!(op) as u32),
                0xc6 => jmp!(op, cur, (d!(op) as i32) < op.imm as i32),
                0xce => jmp!(op, cur, (d!(op) as i32) < s!(op) as i32),
                0xd6 => jmp!(op, cur, d!(op) as i32 <= op.imm as i32),
                0xde => jmp!(op, cur, d!(op) as i32 <= s!(op) as i32),
                // ---- calls ----
                0x85 | 0x8d => {
                    let h = if op.code == 0x85 {
                        // SAFETY: the loader interned every call's helper index.
                        unsafe { *prog.calls.get_unchecked(op.imm as usize) }
                    } else {
                        let id = d!(op);
                        prog.helpers.get(id).ok_or(VmError::BadCallx { pc: cur, id })?
                    };
                    self.pc = cur;
                    self.prog = prog;
                    self.budget -= 1;
                    if self.budget == 0 {
                        return Err(VmError::Budget { pc: cur });
                    }
                    reg[0] = (h.func)(self, [reg[1], reg[2], reg[3], reg[4], reg[5]])?;
                    if let Some(next) = self.tail_call.take() {
                        // Replace the current function with the target's entry.
                        // SAFETY: `next` is kept alive in `held` for the rest of the run.
                        let p: &'a Program = unsafe { &*(Arc::as_ptr(&next)) };
                        if self.native && p.native.get().is_some() {
                            // The target runs natively in place of the
                            // current function; its r0 is that function's.
                            self.tail_call = Some(next);
                            let mut regs = [0u64; 11];
                            regs.copy_from_slice(&reg[..11]);
                            let depth = base_depth + nframes;
                            let r = self.run_pending_tail_call(&regs, depth);
                            reg[0] = r.unwrap_or(Ok(0))?;
                            exit_frame!();
                            continue;
                        }
                        self.held.push(next);
                        prog = p;
                        ops = &p.ops;
                        self.mem = Memory::clone_with_shared(&self.mem, &p.regions);
                        pc = 0;
                        let ctx = reg[1];
                        reg[..6].fill(0);
                        reg[1] = ctx;
                        continue;
                    }
                    // r1-r5 are clobbered by calls; keep them as they are (the
                    // verifier forbids reading them), which is cheaper.
                }
                OP_CALL_LOCAL => {
                    if base_depth + nframes + 1 >= MAX_FRAMES {
                        return Err(VmError::CallDepth { pc: cur });
                    }
                    self.budget -= 1;
                    if self.budget == 0 {
                        return Err(VmError::Budget { pc: cur });
                    }
                    self.frames[base_depth + nframes] =
                        Frame { ret: pc, prog, saved: [reg[6], reg[7], reg[8], reg[9]], fp: reg[10] };
                    nframes += 1;
                    reg[10] -= STACK_PER_FRAME as u64;
                    pc = op.off as usize;
                }
                0x95 => exit_frame!(),
                // OP_NONE (second lddw slot) and anything the loader did not
                // produce: unreachable for validated programs.
                _ => return Err(VmError::Unreachable { pc: cur }),
            }
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Frame {
    ret: usize,
    prog: *const Program,
    saved: [u64; 4],
    fp: u64,
}

impl Frame {
    const EMPTY: Frame = Frame { ret: 0, prog: core::ptr::null(), saved: [0; 4], fp: 0 };
}
