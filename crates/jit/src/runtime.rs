//! The run-time side of generated code: the context block the code keeps
//! in `r12`, and the `extern "sysv64"` trampolines it calls into Rust for
//! helpers, tail calls, legacy packet loads and the slow memory check.

use core::any::Any;
use core::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use uxdp_vm::{HelperFn, Machine, Program, Region, VmError};

/// Number of per-run regions checked inline by generated code (slots 0-2:
/// stack, context and packet for XDP); the others, and the shared (map
/// value) regions, are checked by [`slow_check`].
pub(crate) const INLINE_REGIONS: usize = 3;
// `Ctx::new` fills exactly these slots.
const _: () = assert!(INLINE_REGIONS == 3);

/// Slot of the one-entry cache of shared (map-value) regions: the last
/// shared region [`slow_check`] allowed an access in, checked inline after
/// the per-run slots. Shared regions do not change during a native run (a
/// tail call runs in its own context block), so it is never stale.
pub(crate) const CACHE_SLOT: usize = INLINE_REGIONS;

/// Status codes left in [`Ctx::status`] when the code leaves through the
/// error exit.
pub(crate) const ST_OK: u64 = 0;
/// A [`VmError`] is in [`Ctx::error`].
pub(crate) const ST_ERR: u64 = 1;
/// Budget exhausted at [`Ctx::pc`].
pub(crate) const ST_BUDGET: u64 = 2;
/// Call depth exceeded at [`Ctx::pc`].
pub(crate) const ST_DEPTH: u64 = 3;
/// Misaligned atomic at [`Ctx::pc`], address in [`Ctx::addr`].
pub(crate) const ST_MISALIGNED: u64 = 4;
/// A legacy packet load ran off the packet: the run returns 0.
pub(crate) const ST_EARLY: u64 = 5;
/// Unreachable slot executed at [`Ctx::pc`].
pub(crate) const ST_UNREACH: u64 = 6;
/// A helper panicked; the payload is in [`Ctx::panic`].
pub(crate) const ST_PANIC: u64 = 7;
/// A helper requested a tail call (not an exit status: the code handles it).
pub(crate) const ST_TAIL: u64 = 8;

/// One inline-checked region: `addr` is inside for an access of size `s`
/// iff `addr - start < lim[s]` (unsigned), where `lim[s] = len - s + 1`
/// (0 if the region is shorter than `s`, or for writes to a read-only one).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct InlineRegion {
    pub start: u64,
    /// Limits for reads of 1, 2, 4, 8 bytes.
    pub rlim: [u64; 4],
    /// Limits for writes of 1, 2, 4, 8 bytes.
    pub wlim: [u64; 4],
}

impl InlineRegion {
    #[inline(always)]
    fn of(r: &Region) -> Self {
        let lim = [r.len, r.len.saturating_sub(1), r.len.saturating_sub(3), r.len.saturating_sub(7)];
        let mask = 0u64.wrapping_sub(r.writable as u64);
        InlineRegion { start: r.start, rlim: lim, wlim: lim.map(|l| l & mask) }
    }
}

/// The block generated code addresses through `r12`.
#[repr(C)]
pub(crate) struct Ctx {
    /// Per-run slots `0..INLINE_REGIONS`, then the shared-region cache.
    pub regions: [InlineRegion; INLINE_REGIONS + 1],
    pub budget: u64,
    pub depth: u64,
    /// [`Machine::cpu`], for inlined per-CPU array lookups.
    pub cpu: u64,
    pub pc: u64,
    pub status: u64,
    /// Helper function pointer, `callx` id, or `ldind` register value.
    pub arg: u64,
    /// `ldabs`/`ldind`: opcode << 32 | imm.
    pub arg2: u64,
    pub addr: u64,
    pub saved_rsp: u64,
    pub r0: u64,
    /// Registers handed to a tail call's target: generated code stores r1
    /// and r6-r10 (the only ones a tail call passes on) before calling
    /// [`tail_tramp`]; the other slots are never written nor read.
    pub tail_regs: MaybeUninit<[u64; 11]>,
    pub machine: *mut Machine<'static>,
    pub error: Option<VmError>,
    pub panic: Option<Box<dyn Any + Send>>,
    /// The machine regions `regions[..INLINE_REGIONS]` were computed from
    /// (an absent slot is the empty region): [`Ctx::refresh`] recomputes
    /// only the slots that changed.
    pub src: [Region; INLINE_REGIONS],
    /// The program whose shared region the cache slot may hold.
    pub cache_prog: *const Program,
    /// Chain runs: the link running now (written by the chain code before
    /// each program; 0 otherwise).
    pub cur: u64,
    /// Chain runs: the link the machine was last switched to
    /// ([`Ctx::sync`]); equal to `cur` outside chain runs.
    pub switched: u64,
    /// Chain runs: how to switch the machine to another link (null
    /// otherwise; only read when `cur != switched`).
    pub chain: *mut crate::chain::Switcher<'static>,
    /// Chain runs: the budget each program starts with.
    pub budget0: u64,
    /// Chain runs: r1 (the context) and r10 (the frame pointer) of every
    /// program.
    pub chain_r1: u64,
    pub chain_fp: u64,
    /// Chain runs that count: byte offset of this thread's shard in every
    /// link's counters.
    pub stats_off: u64,
    /// The machine's legacy packet (`ldabs`/`ldind`) when it lies inside a
    /// readable per-run region (else length 0: every load takes the slow
    /// path, which ends the run or faults exactly as the interpreter does).
    pub legacy_base: u64,
    pub legacy_len: u64,
    /// [`uxdp_vm::Memory::generation`] when the region table was last
    /// brought up to date.
    pub mem_gen: u32,
}

/// [`uxdp_vm::NativeScratch::tag`] of a scratch block holding a [`Ctx`].
pub(crate) const CTX_TAG: u64 = 0x7578_6470_6a69_7401;
const _: () = assert!(core::mem::size_of::<Ctx>() <= 8 * uxdp_vm::NATIVE_SCRATCH_WORDS);
const _: () = assert!(core::mem::align_of::<Ctx>() <= 64);

const EMPTY: Region = Region { start: 0, len: 0, writable: false };

macro_rules! off {
    ($f:ident) => {
        core::mem::offset_of!(Ctx, $f) as i32
    };
}
pub(crate) const C_BUDGET: i32 = off!(budget);
pub(crate) const C_DEPTH: i32 = off!(depth);
pub(crate) const C_CPU: i32 = off!(cpu);
pub(crate) const C_PC: i32 = off!(pc);
pub(crate) const C_STATUS: i32 = off!(status);
pub(crate) const C_ARG: i32 = off!(arg);
pub(crate) const C_ARG2: i32 = off!(arg2);
pub(crate) const C_ADDR: i32 = off!(addr);
pub(crate) const C_SAVED_RSP: i32 = off!(saved_rsp);
pub(crate) const C_R0: i32 = off!(r0);
pub(crate) const C_TAIL_REGS: i32 = off!(tail_regs);
pub(crate) const C_CUR: i32 = off!(cur);
pub(crate) const C_BUDGET0: i32 = off!(budget0);
pub(crate) const C_CHAIN_R1: i32 = off!(chain_r1);
pub(crate) const C_CHAIN_FP: i32 = off!(chain_fp);
pub(crate) const C_STATS_OFF: i32 = off!(stats_off);
pub(crate) const C_LEGACY_BASE: i32 = off!(legacy_base);
pub(crate) const C_LEGACY_LEN: i32 = off!(legacy_len);

/// Offset of region `slot`'s start.
pub(crate) const fn region_start(slot: usize) -> i32 {
    (core::mem::offset_of!(Ctx, regions) + slot * core::mem::size_of::<InlineRegion>()) as i32
}

/// Offset of region `slot`'s limit for an access of `size` bytes.
pub(crate) const fn region_lim(slot: usize, size: u32, write: bool) -> i32 {
    let i = match size {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    };
    let base =
        if write { core::mem::offset_of!(InlineRegion, wlim) } else { core::mem::offset_of!(InlineRegion, rlim) };
    region_start(slot) + (base + i * 8) as i32
}

impl Ctx {
    /// The context block of a native run on `m` at call depth `depth`, its
    /// region table filled from `m` (built in place: no zeroing first).
    #[inline]
    pub(crate) fn new(m: &mut Machine<'_>, depth: usize) -> Ctx {
        let d = m.mem.dynamic();
        let src = |i: usize| d.get(i).copied().unwrap_or(EMPTY);
        let src = [src(0), src(1), src(2)];
        Ctx {
            regions: [
                InlineRegion::of(&src[0]),
                InlineRegion::of(&src[1]),
                InlineRegion::of(&src[2]),
                InlineRegion::default(),
            ],
            budget: m.budget,
            depth: depth as u64,
            cpu: m.cpu as u64,
            pc: 0,
            status: ST_OK,
            arg: 0,
            arg2: 0,
            addr: 0,
            saved_rsp: 0,
            r0: 0,
            tail_regs: MaybeUninit::uninit(),
            machine: (m as *mut Machine<'_>).cast::<Machine<'static>>(),
            error: None,
            panic: None,
            src,
            cache_prog: m.program() as *const Program,
            cur: 0,
            switched: 0,
            chain: core::ptr::null_mut(),
            budget0: 0,
            chain_r1: 0,
            chain_fp: 0,
            stats_off: 0,
            legacy_base: 0,
            legacy_len: 0,
            mem_gen: m.mem.generation(),
        }
        .with_legacy(m)
    }

    /// Sets the inline legacy-packet fields from the machine.
    #[inline]
    fn with_legacy(mut self, m: &Machine<'_>) -> Ctx {
        self.set_legacy(m);
        self
    }

    #[inline]
    fn set_legacy(&mut self, m: &Machine<'_>) {
        let (base, len) = m.legacy_packet;
        let ok = len != 0 && len < (1 << 31) && m.mem.dynamic().iter().any(|r| r.contains(base, len, false));
        self.legacy_base = base;
        self.legacy_len = if ok { len } else { 0 };
    }

    /// Prepares a context block left by an earlier run (on the same stack)
    /// for a run on `m` at `depth`: what [`Ctx::new`] would build, without
    /// recomputing the region slots that did not change.
    #[inline]
    pub(crate) fn reset(&mut self, m: &mut Machine<'_>, depth: usize) {
        self.refresh(m);
        let prog = m.program() as *const Program;
        if self.cache_prog != prog {
            self.regions[CACHE_SLOT] = InlineRegion::default();
            self.cache_prog = prog;
        }
        self.budget = m.budget;
        self.depth = depth as u64;
        self.cpu = m.cpu as u64;
        self.status = ST_OK;
        self.machine = (m as *mut Machine<'_>).cast::<Machine<'static>>();
        self.cur = 0;
        self.switched = 0;
        // `refresh` above already recomputed the legacy packet if the last
        // run had one; only a run that starts having one is left.
        if m.legacy_packet.1 != 0 && self.legacy_len == 0 {
            self.set_legacy(m);
        }
    }

    /// Before Rust code looks at the machine from inside a chain run:
    /// switches it to the link running now if it is not there yet.
    #[inline(always)]
    pub(crate) fn sync(&mut self) {
        if self.cur != self.switched {
            self.switch_link();
        }
    }

    #[cold]
    #[inline(never)]
    fn switch_link(&mut self) {
        self.switched = self.cur;
        let cur = self.cur as usize;
        let budget = self.budget;
        // SAFETY: `chain` is set for the whole chain run whenever `cur`
        // can differ from `switched` (see `NativeChain::run`).
        let sw = unsafe { &mut *self.chain };
        let m = self.machine();
        m.budget = budget;
        sw.switch(m, cur);
    }

    /// Brings the inline table up to date with the machine's first per-run
    /// regions.
    #[inline]
    pub(crate) fn refresh(&mut self, m: &Machine<'_>) {
        self.mem_gen = m.mem.generation();
        if self.legacy_len != 0 {
            // A helper may have moved the region holding the legacy packet.
            self.set_legacy(m);
        }
        let d = m.mem.dynamic();
        if let [a, b, c, ..] = d {
            // The common case (XDP: stack, context, packet): usually only
            // the packet moved, or nothing.
            for (i, r) in [a, b, c].into_iter().enumerate() {
                if *r != self.src[i] {
                    self.src[i] = *r;
                    self.regions[i] = InlineRegion::of(r);
                }
            }
            return;
        }
        for i in 0..INLINE_REGIONS {
            let r = d.get(i).copied().unwrap_or(EMPTY);
            if r != self.src[i] {
                self.src[i] = r;
                self.regions[i] = InlineRegion::of(&r);
            }
        }
    }

    /// The error of a run that left through the error exit (status in
    /// `self.status`). `ST_EARLY` is not an error: the caller returns 0.
    #[cold]
    pub(crate) fn exit_error(&mut self) -> VmError {
        let pc = self.pc as usize;
        match self.status {
            ST_BUDGET => VmError::Budget { pc },
            ST_DEPTH => VmError::CallDepth { pc },
            ST_MISALIGNED => VmError::Misaligned { pc, addr: self.addr },
            ST_UNREACH => VmError::Unreachable { pc },
            ST_PANIC => match self.panic.take() {
                Some(p) => std::panic::resume_unwind(p),
                None => VmError::Unreachable { pc },
            },
            ST_ERR => self.error.take().unwrap_or(VmError::Unreachable { pc }),
            _ => VmError::Unreachable { pc },
        }
    }

    fn fail(&mut self, e: VmError) -> u64 {
        self.error = Some(e);
        self.status = ST_ERR;
        0
    }

    fn machine(&mut self) -> &mut Machine<'static> {
        // SAFETY: `machine` points at the machine that is running this code
        // (set by `JitProgram::run`, which does not touch it meanwhile).
        unsafe { &mut *self.machine }
    }

    /// Calls helper `f` with the budget bookkeeping the interpreter does.
    /// Inlined into the trampolines so that the arguments are stored once,
    /// where `f` reads them (a copy reloading them with wider loads stalls
    /// on store forwarding).
    /// `REFRESH` reloads the region table afterwards (false only for
    /// helpers known not to change the per-run regions).
    /// `BUDGET` charges the call to the budget (false for programs known
    /// to terminate, whose code keeps no budget: the machine's is left as
    /// it is).
    #[inline(always)]
    fn call_helper<const REFRESH: bool, const BUDGET: bool>(&mut self, f: HelperFn, args: [u64; 5]) -> u64 {
        self.sync();
        let pc = self.pc as usize;
        if BUDGET {
            self.budget -= 1;
            if self.budget == 0 {
                self.status = ST_BUDGET;
                return 0;
            }
        }
        let budget = self.budget;
        let m = self.machine();
        m.set_pc(pc);
        if BUDGET {
            m.budget = budget;
        }
        let r = catch_unwind(AssertUnwindSafe(|| f(m, args)));
        let m = self.machine();
        let tail = m.tail_call_pending();
        if BUDGET {
            self.budget = m.budget;
        }
        if REFRESH {
            // SAFETY: as in `machine`; `refresh` only reads.
            let m: &Machine<'_> = unsafe { &*self.machine };
            // Within a run the machine's memory changes its per-run regions
            // only through `push`/`set`, which move the generation.
            if m.mem.generation() != self.mem_gen {
                self.refresh(m);
            }
        }
        match r {
            Ok(Ok(v)) => {
                if tail {
                    self.status = ST_TAIL;
                }
                v
            }
            Ok(Err(e)) => self.fail(e),
            Err(p) => {
                self.panic = Some(p);
                self.status = ST_PANIC;
                0
            }
        }
    }
}

/// The signature of the helper trampolines.
pub(crate) type HelperTramp = extern "sysv64" fn(*mut Ctx, u64, u64, u64, u64, u64) -> u64;

/// Defines a helper trampoline: the function pointer is in `ctx.arg`, the
/// call's slot in `ctx.pc`; r1-r5 arrive in the argument registers.
macro_rules! helper_tramps {
    ($($(#[$doc:meta])* $name:ident: refresh $refresh:literal, budget $budget:literal;)*) => {$(
        $(#[$doc])*
        pub(crate) extern "sysv64" fn $name(ctx: *mut Ctx, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> u64 {
            // SAFETY: generated code passes its own context block.
            let ctx = unsafe { &mut *ctx };
            // SAFETY: the code generator stored a `HelperFn` taken from the
            // program.
            let f: HelperFn = unsafe { core::mem::transmute::<usize, HelperFn>(ctx.arg as usize) };
            ctx.call_helper::<$refresh, $budget>(f, [a1, a2, a3, a4, a5])
        }
    )*};
}

helper_tramps! {
    /// A helper call, charged to the budget, reloading the region table.
    helper_tramp: refresh true, budget true;
    /// For helpers that never change the per-run regions
    /// ([`crate::JitOptions::keeps_regions`]): no region-table reload.
    helper_tramp_keep: refresh false, budget true;
    /// [`helper_tramp`] for programs known to terminate
    /// ([`crate::JitOptions::terminates`]): no budget charge.
    helper_tramp_unbudgeted: refresh true, budget false;
    /// [`helper_tramp_keep`] without the budget charge.
    helper_tramp_keep_unbudgeted: refresh false, budget false;
}

/// `callx`: the helper id is in `ctx.arg`.
pub(crate) extern "sysv64" fn callx_tramp(ctx: *mut Ctx, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> u64 {
    // SAFETY: generated code passes its own context block.
    let ctx = unsafe { &mut *ctx };
    ctx.sync();
    let id = ctx.arg;
    let pc = ctx.pc as usize;
    let h = ctx.machine().program().helpers().get(id);
    match h {
        Some(h) => ctx.call_helper::<true, true>(h.func, [a1, a2, a3, a4, a5]),
        None => ctx.fail(VmError::BadCallx { pc, id }),
    }
}

/// Runs the pending tail call in place of the current function
/// (`ctx.tail_regs` holds r1 and r6-r10); returns its r0.
pub(crate) extern "sysv64" fn tail_tramp(ctx: *mut Ctx) -> u64 {
    // SAFETY: generated code passes its own context block.
    let ctx = unsafe { &mut *ctx };
    ctx.sync();
    let t = ctx.tail_regs.as_ptr().cast::<u64>();
    let mut regs = [0u64; 11];
    for i in [1, 6, 7, 8, 9, 10] {
        // SAFETY: generated code stored r1 and r6-r10 in these slots just
        // before calling this trampoline (r0 and r2-r5 are cleared for the
        // target anyway).
        regs[i] = unsafe { t.add(i).read() };
    }
    let depth = ctx.depth as usize;
    let budget = ctx.budget;
    let m = ctx.machine();
    m.budget = budget;
    let r = catch_unwind(AssertUnwindSafe(|| m.run_pending_tail_call(&regs, depth)));
    let m = ctx.machine();
    ctx.budget = m.budget;
    // SAFETY: as in `Ctx::machine`; `refresh` only reads.
    let m: &Machine<'_> = unsafe { &*ctx.machine };
    ctx.refresh(m);
    match r {
        Ok(Some(Ok(v))) => {
            ctx.status = ST_OK;
            v
        }
        Ok(None) => {
            ctx.status = ST_OK;
            0
        }
        Ok(Some(Err(e))) => ctx.fail(e),
        Err(p) => {
            ctx.panic = Some(p);
            ctx.status = ST_PANIC;
            0
        }
    }
}

/// Legacy `ldabs`/`ldind`: `ctx.arg2` = opcode << 32 | imm, `ctx.arg` =
/// the index register's value; returns the loaded value, or ends the run.
pub(crate) extern "sysv64" fn ld_legacy_tramp(ctx: *mut Ctx) -> u64 {
    // SAFETY: generated code passes its own context block.
    let ctx = unsafe { &mut *ctx };
    ctx.sync();
    let code = (ctx.arg2 >> 32) as u8;
    let imm = ctx.arg2 as u32 as i32;
    let pc = ctx.pc as usize;
    let size: u64 = match code & 0x18 {
        0x00 => 4,
        0x08 => 2,
        _ => 1,
    };
    let off = if code & 0x40 != 0 { (ctx.arg as u32 as i32).wrapping_add(imm) } else { imm };
    let m = ctx.machine();
    let (base, len) = m.legacy_packet;
    if off < 0 || off as u64 + size > len {
        ctx.status = ST_EARLY;
        return 0;
    }
    let addr = base + off as u64;
    let Some(p) = m.mem.check(addr, size, false) else {
        return ctx.fail(VmError::Memory { pc, addr, len: size as usize, write: false });
    };
    // SAFETY: checked to lie inside a live readable region.
    unsafe {
        match size {
            4 => u32::from_be(core::ptr::read_unaligned(p as *const u32)) as u64,
            2 => u16::from_be(core::ptr::read_unaligned(p as *const u16)) as u64,
            _ => *p as u64,
        }
    }
}

/// The out-of-line memory check: all regions of the machine. `info` =
/// pc << 8 | write << 4 | size. Returns 1 if allowed, else 0 with the
/// fault recorded.
pub(crate) extern "sysv64" fn slow_check(ctx: *mut Ctx, addr: u64, info: u64) -> u64 {
    // SAFETY: generated code passes its own context block.
    let ctx = unsafe { &mut *ctx };
    ctx.sync();
    let size = info & 0xf;
    let write = (info >> 4) & 1 != 0;
    let mem = &ctx.machine().mem;
    let shared = mem.shared_region(addr, size, write);
    let allowed = shared.is_some() || mem.check(addr, size, write).is_some();
    if let Some(r) = shared {
        ctx.regions[CACHE_SLOT] = InlineRegion::of(&r);
    }
    if allowed {
        1
    } else {
        ctx.fail(VmError::Memory { pc: (info >> 8) as usize, addr, len: size as usize, write })
    }
}
