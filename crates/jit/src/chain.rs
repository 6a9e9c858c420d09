//! Native chains: several programs run one after the other inside one
//! native entry, each continuing to the next only on its chain-call
//! actions (libxdp's dispatcher semantics), with no return to Rust
//! between programs.
//!
//! The chain code calls each program's compiled code directly with the
//! context block of the run: per program it stores the link index, resets
//! the budget, sets r1 and r10, zeroes the registers the program may read
//! before writing ([`crate::entry`]), calls, optionally counts the return
//! value, and tests the chain-call mask with one `bt`. The machine (its
//! current program, shared regions and tail-call count) and the embedder's
//! environment are switched to a program lazily, the first time that
//! program's code enters Rust (a helper call, a slow memory check, ...):
//! programs that never leave native code cost no switch at all.

use crate::JitError;
use std::sync::Arc;
use uxdp_vm::{Machine, Program, VmError};

/// One program of a [`NativeChain`].
#[derive(Clone, Copy, Debug)]
pub struct ChainLink<'a> {
    /// The program; it must have JIT code attached ([`crate::attach`]).
    pub program: &'a Arc<Program>,
    /// Chain-call actions: after this program returns `ret`, the next one
    /// runs iff bit `ret % 32` of `mask` is set (the 32-bit shift of the
    /// libxdp dispatcher).
    pub mask: u32,
    /// Where this program's runs are counted by [`NativeChain::run`] with
    /// a count slot: the address of counter 0 of shard 0 of a table of
    /// `u64` counters (see [`NativeChain::new`]); `None` for no counting.
    pub counters: Option<core::ptr::NonNull<u64>>,
}

/// The layout of the counter tables of a counting [`NativeChain`]: per
/// link, `shards` shards of `shard_stride` bytes; a run that returned
/// `ret` adds 1 to counter `min(ret, other)` of the shard it is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterLayout {
    /// Shards per table.
    pub shards: usize,
    /// Bytes between consecutive shards.
    pub shard_stride: usize,
    /// The counter of return values from `other` up (and the count of
    /// counters used per shard, minus one).
    pub other: u32,
}

/// How a chain run ended.
#[derive(Debug)]
pub enum ChainOutcome {
    /// Link `at` returned `retval`, which is not in its chain-call actions:
    /// the chain's verdict is `retval`.
    Stopped {
        /// Index of the link.
        at: usize,
        /// Its return value (low 32 bits).
        retval: u32,
    },
    /// Every link returned one of its chain-call actions (the dispatcher
    /// then returns `XDP_PASS`).
    Completed,
    /// Link `at` faulted.
    Fault {
        /// Index of the link.
        at: usize,
        /// The fault, exactly as a run of that program alone reports it.
        error: VmError,
    },
}

/// The machine-side switch of a chain run, reached from the context block
/// when a program's code enters Rust.
pub(crate) struct Switcher<'s> {
    pub(crate) programs: &'s [Arc<Program>],
    pub(crate) user: &'s mut dyn FnMut(&mut Machine<'_>, usize),
}

impl Switcher<'_> {
    pub(crate) fn switch(&mut self, m: &mut Machine<'static>, i: usize) {
        let p: &Program = &self.programs[i];
        // SAFETY: the program is kept alive by the `NativeChain` for the
        // whole run, and `NativeChain::run` switches the machine back to
        // its own program before returning, so the machine never holds
        // this reference beyond the run.
        let p: &'static Program = unsafe { &*(p as *const Program) };
        m.switch_program(p);
        (self.user)(m, i);
    }
}

/// Native code running a chain of JIT-compiled programs in one entry.
pub struct NativeChain {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    code: crate::x64::ChainCode,
    programs: Vec<Arc<Program>>,
    masks: Vec<u32>,
    layout: Option<CounterLayout>,
}

impl core::fmt::Debug for NativeChain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NativeChain").field("links", &self.programs.len()).finish_non_exhaustive()
    }
}

impl NativeChain {
    /// Compiles the chain code for `links`, in run order.
    ///
    /// Fails with [`JitError::Unsupported`] if a program has no JIT code,
    /// or if links have counters but `layout` is `None`.
    ///
    /// # Safety
    ///
    /// Every `counters` pointer must point at `layout.shards` shards of
    /// `layout.shard_stride` bytes, each holding at least `layout.other +
    /// 1` `u64` counters, valid for as long as the returned chain exists,
    /// and written by nothing else while a run counting into the same
    /// shard is under way (readers may read them at any time).
    pub unsafe fn new(links: &[ChainLink<'_>], layout: Option<CounterLayout>) -> Result<NativeChain, JitError> {
        if layout.is_none() && links.iter().any(|l| l.counters.is_some()) {
            return Err(JitError::Unsupported { pc: 0, what: "chain counters without a counter layout".into() });
        }
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            let mut specs = Vec::with_capacity(links.len());
            for (i, l) in links.iter().enumerate() {
                let jp = l
                    .program
                    .native()
                    .and_then(|n| n.as_any())
                    .and_then(|a| a.downcast_ref::<crate::JitProgram>())
                    .ok_or_else(|| JitError::Unsupported { pc: 0, what: format!("chain link {i} without JIT code") })?;
                let inline = (!jp.code.leaves && l.program.functions().len() <= 1)
                    .then(|| (&**l.program, jp.proven.as_deref(), jp.terminates));
                specs.push(crate::x64::LinkSpec {
                    inline,
                    main: jp.code.main_addr,
                    mask: l.mask,
                    needs: jp.needs,
                    leaves: jp.code.leaves,
                    clear_cache: jp.code.uses_cache,
                    counters: l.counters.map_or(0, |p| p.as_ptr() as u64),
                });
            }
            let other = layout.map_or(0, |l| l.other);
            let code = crate::x64::compile_chain(&specs, other)?;
            Ok(NativeChain {
                code,
                programs: links.iter().map(|l| l.program.clone()).collect(),
                masks: links.iter().map(|l| l.mask).collect(),
                layout,
            })
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            let _ = layout;
            Err(JitError::Unavailable)
        }
    }

    /// The program of link `i`.
    pub fn program(&self, i: usize) -> Option<&Arc<Program>> {
        self.programs.get(i)
    }

    /// Number of links.
    pub fn len(&self) -> usize {
        self.programs.len()
    }

    /// True for a chain of no programs.
    pub fn is_empty(&self) -> bool {
        self.programs.is_empty()
    }

    /// Runs the chain on `m` with r1 = `ctx` for every program, each
    /// starting with the budget `m` has now (as separate runs would). The
    /// per-run regions of `m` (stack, context, packet, ...) are shared by
    /// all programs; before a program's code first enters Rust the machine
    /// is switched to that program ([`Machine::switch_program`]) and
    /// `switch(m, link)` is called so the embedder can switch its
    /// environment (e.g. map tables). `count_slot`: the shard to count
    /// into (below the layout's `shards`), or `None` not to count.
    /// Afterwards `m` runs its own program again.
    pub fn run(
        &self,
        m: &mut Machine<'_>,
        ctx: u64,
        count_slot: Option<usize>,
        switch: &mut dyn FnMut(&mut Machine<'_>, usize),
    ) -> ChainOutcome {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            self.run_native(m, ctx, count_slot, switch)
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            let _ = (m, ctx, count_slot, switch);
            ChainOutcome::Fault { at: 0, error: VmError::Unreachable { pc: 0 } }
        }
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn run_native(
        &self,
        m: &mut Machine<'_>,
        ctx_arg: u64,
        count_slot: Option<usize>,
        switch: &mut dyn FnMut(&mut Machine<'_>, usize),
    ) -> ChainOutcome {
        use crate::runtime::{ST_EARLY, ST_PANIC};
        if self.programs.is_empty() {
            return ChainOutcome::Completed;
        }
        let (variant, stats_off) = match (count_slot, self.layout) {
            (Some(s), Some(l)) if s < l.shards => (1, (s * l.shard_stride) as u64),
            _ => (0, 0),
        };
        let s = m.stack();
        let fp = s.start + s.len;
        let own: *const Program = m.program();
        let mut sw = Switcher { programs: &self.programs, user: switch };
        let budget = m.budget;
        let outcome = crate::with_ctx(m, 0, |ctx| {
            ctx.chain = (&mut sw as *mut Switcher<'_>).cast::<Switcher<'static>>();
            // Nothing is switched yet: the first entry into Rust switches.
            ctx.switched = u64::MAX;
            ctx.stats_off = stats_off;
            // The next single run must not find a chain program's region
            // in the cache slot (whichever way this run ends).
            ctx.cache_prog = core::ptr::null();
            type ChainFn = extern "sysv64" fn(*mut crate::runtime::Ctx, u64, u64, usize) -> u64;
            let mut start = 0usize;
            let out = loop {
                ctx.budget = budget;
                // SAFETY: `entry` is a function emitted by `compile_chain`
                // with exactly this signature; it calls only code of the
                // chain's programs, which the chain keeps alive.
                let f: ChainFn = unsafe { core::mem::transmute::<usize, ChainFn>(self.code.entry[variant]) };
                let st = f(ctx, ctx_arg, fp, start);
                let at = ctx.cur as usize;
                match st {
                    0 => break ChainOutcome::Stopped { at, retval: ctx.r0 as u32 },
                    2 => break ChainOutcome::Completed,
                    _ if ctx.status == ST_EARLY => {
                        // A legacy packet load ran off the packet: this
                        // program returned 0.
                        if self.masks[at] & 1 == 0 {
                            break ChainOutcome::Stopped { at, retval: 0 };
                        }
                        match self.code.links.get(at + 1) {
                            Some(l) => start = l[variant],
                            None => break ChainOutcome::Completed,
                        }
                    }
                    _ if ctx.status == ST_PANIC => {
                        ctx.chain = core::ptr::null_mut();
                        // Resumes the helper's panic.
                        let e = ctx.exit_error();
                        break ChainOutcome::Fault { at, error: e };
                    }
                    _ => break ChainOutcome::Fault { at, error: ctx.exit_error() },
                }
            };
            let touched = ctx.switched != u64::MAX;
            ctx.chain = core::ptr::null_mut();
            ctx.cur = 0;
            ctx.switched = 0;
            // SAFETY: the context block points at `m`.
            let m = unsafe { &mut *ctx.machine };
            m.budget = ctx.budget;
            (out, touched)
        });
        let (out, touched) = outcome;
        if touched {
            // SAFETY: `own` is the program `m` was created for, which
            // outlives `m`.
            m.switch_program(unsafe { &*own });
        }
        out
    }
}
