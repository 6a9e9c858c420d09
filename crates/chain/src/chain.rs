//! Immutable chain snapshots and the per-packet run loop.

use crate::program::ChainProgram;
use crate::stats::{sample_now, thread_slot, ticks, Counters, NATIVE_LAYOUT};
use crate::{EntryId, XDP_PASS};
use std::sync::Arc;
use uxdp_jit::{ChainLink, ChainOutcome, NativeChain};
use uxdp_vm::Program;
use uxdp_xdp::{MapTable, ProgTable, RunError, Runner};

/// `XDP_DISPATCHER_RETVAL` (31): libxdp ORs `1 << 31` into every program's
/// chain-call mask so that a dispatcher slot whose stub was never replaced
/// (returning 31) falls through. uxdp keeps the bit for identical verdicts.
pub const DISPATCHER_RETVAL: u32 = 31;

/// Chain-call actions a user may set: bits 0..=30 (libxdp refuses action
/// numbers from [`DISPATCHER_RETVAL`] up).
pub const SETTABLE_ACTIONS: u32 = !(1 << DISPATCHER_RETVAL);

/// Chains of at least this many programs, all with JIT code, run in one
/// native entry; shorter ones call each program in turn. Measured with `cargo bench -p
/// uxdp-chain` (pass-through programs): entering the native chain costs
/// about 28 ns more than one `Runner::exec` (the context block and the
/// lazy machine switching), each further link well under 1 ns against
/// about 17 ns for another `Runner::exec`; one program with counters took
/// 49 ns natively.
pub const NATIVE_MIN: usize = 3;

/// One attachment of a program in a chain snapshot.
#[derive(Clone)]
pub(crate) struct Entry {
    // hot fields first
    pub(crate) program: Arc<Program>,
    pub(crate) maps: Arc<MapTable>,
    pub(crate) prog_table: Arc<ProgTable>,
    /// `actions | 1 << 31`, tested as `1 << (ret & 31)`.
    pub(crate) mask: u32,
    /// Whether the runner must switch tables before this entry (first entry,
    /// or tables differ from the previous entry's); set by [`Chain::new`].
    pub(crate) switch_tables: bool,
    pub(crate) stats: Arc<Counters>,
    pub(crate) id: EntryId,
    // cold
    pub(crate) prog: Arc<ChainProgram>,
    pub(crate) priority: u32,
    pub(crate) actions: u32,
    pub(crate) seq: u64,
    pub(crate) explicit: bool,
}

impl Entry {
    /// libxdp's order key: priority, then name (strcmp), then attach order.
    pub(crate) fn sorts_before(&self, other: &Entry) -> bool {
        (self.priority, self.prog.name().as_bytes(), self.seq)
            < (other.priority, other.prog.name().as_bytes(), other.seq)
    }

    pub(crate) fn set_actions(&mut self, actions: u32) {
        self.actions = actions;
        self.mask = actions | (1 << DISPATCHER_RETVAL);
    }

    pub(crate) fn set_program(&mut self, prog: Arc<ChainProgram>) {
        self.program = prog.program().clone();
        self.maps = prog.maps().clone();
        self.prog_table = prog.prog_table().clone();
        self.prog = prog;
    }
}

/// One version of a hook's chain: the programs in run order. Snapshots never
/// change; an update builds a new one with the next revision.
pub struct Chain {
    pub(crate) revision: u64,
    pub(crate) entries: Vec<Entry>,
    /// The whole chain as native code, when every program has JIT code.
    native: Option<NativeChain>,
}

/// Whether a program that returned `ret` hands the packet to the next
/// entry: the dispatcher's `(1U << ret) & chain_call_actions[i]`, a 32-bit
/// shift, so the amount is taken modulo 32. `mask` is [`Entry::mask`].
#[inline(always)]
pub(crate) fn continues(ret: u32, mask: u32) -> bool {
    1u32.wrapping_shl(ret) & mask != 0
}

/// A verdict's return value and entry count in one word (`retval | ran <<
/// 32`), as the out-of-line run paths return it: with the error boxed, the
/// result comes back in two registers. Returned through memory, the
/// caller's wider reloads of the narrower stores stalled on store
/// forwarding (one program with counters: 34 ns against 20 for a bare run).
#[derive(Clone, Copy)]
pub(crate) struct Packed(u64);

impl Packed {
    #[inline(always)]
    fn new(retval: u32, ran: usize) -> Packed {
        debug_assert!(ran <= u32::MAX as usize);
        Packed(retval as u64 | (ran as u64) << 32)
    }

    #[inline(always)]
    fn retval(self) -> u32 {
        self.0 as u32
    }

    #[inline(always)]
    fn ran(self) -> usize {
        (self.0 >> 32) as usize
    }
}

/// The outcome of one packet through a chain, without the output packet
/// (which stays in the runner: [`Runner::output`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What the hook returns for the packet.
    pub retval: u32,
    /// How many entries ran: the first `ran` entries of the chain at
    /// `revision` (0 for an empty hook).
    pub ran: usize,
    /// The revision of the chain that processed the packet.
    pub revision: u64,
}

/// One program's run inside a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The entry.
    pub id: EntryId,
    /// What its program returned.
    pub retval: u32,
}

/// The full result of [`crate::Hook::run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainRun {
    /// The verdict (also `output.retval`).
    pub verdict: Verdict,
    /// The packet and context after the last program that ran.
    pub output: uxdp_xdp::RunOutput,
    /// Each program that ran, in order, with its return value.
    pub steps: Vec<Step>,
}

/// Receives every step of a run; the fast path uses `()`, which compiles
/// to nothing.
pub(crate) trait StepSink {
    /// Whether the native chain may run (it reports no steps).
    const NATIVE: bool;
    fn step(&mut self, id: EntryId, retval: u32);
}

impl StepSink for () {
    const NATIVE: bool = true;
    #[inline(always)]
    fn step(&mut self, _: EntryId, _: u32) {}
}

impl StepSink for Vec<Step> {
    const NATIVE: bool = false;
    fn step(&mut self, id: EntryId, retval: u32) {
        self.push(Step { id, retval });
    }
}

impl Chain {
    pub(crate) fn empty() -> Chain {
        Chain { revision: 0, entries: Vec::new(), native: None }
    }

    /// A snapshot of `entries` at `revision`.
    pub(crate) fn new(revision: u64, mut entries: Vec<Entry>) -> Chain {
        let mut prev: Option<(*const MapTable, *const ProgTable)> = None;
        for e in entries.iter_mut() {
            let cur = (Arc::as_ptr(&e.maps), Arc::as_ptr(&e.prog_table));
            e.switch_tables = prev != Some(cur);
            prev = Some(cur);
        }
        let native = Self::compile(&entries);
        Chain { revision, entries, native }
    }

    /// The native form of `entries`: `None` if a program has no JIT code
    /// (interpreted programs run through [`Runner::exec`]) or the code
    /// could not be generated.
    fn compile(entries: &[Entry]) -> Option<NativeChain> {
        if entries.len() < NATIVE_MIN || entries.iter().any(|e| e.program.native().is_none()) {
            return None;
        }
        let links: Vec<ChainLink<'_>> = entries
            .iter()
            .map(|e| ChainLink { program: &e.program, mask: e.mask, counters: Some(e.stats.native_base()) })
            .collect();
        // SAFETY: each `counters` points at an entry's `Counters`, whose
        // shards have NATIVE_LAYOUT; the entries (and their `Arc<Counters>`)
        // live in the same `Chain` as the native code, and a shard is only
        // counted into by the thread that owns it.
        unsafe { NativeChain::new(&links, Some(NATIVE_LAYOUT)) }.ok()
    }

    /// The only entry, when there is exactly one.
    pub(crate) fn single(&self) -> Option<&Entry> {
        match &self.entries[..] {
            [e] => Some(e),
            _ => None,
        }
    }

    /// Whether packets run through the chain in one native entry (chains
    /// of at least [`NATIVE_MIN`] programs, all with JIT code).
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    /// This snapshot's revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Number of programs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no program is attached (every packet passes).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry ids in run order.
    pub fn ids(&self) -> impl Iterator<Item = EntryId> + '_ {
        self.entries.iter().map(|e| e.id)
    }

    /// Program names in run order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|e| e.prog.name())
    }

    /// Runs the packet loaded in `runner` through this snapshot.
    ///
    /// `level` is a [`crate::StatsLevel`] as u8: 0 off, 1 counters, 2 timed,
    /// 3 sampled.
    #[inline(always)]
    pub(crate) fn exec<S: StepSink>(
        &self,
        runner: &mut Runner,
        level: u8,
        hook_stats: &Counters,
        sink: &mut S,
    ) -> Result<Verdict, RunError> {
        // The common case first, small enough to inline into the caller:
        // one program, no statistics.
        if level == 0 && self.entries.len() == 1 {
            return self.exec_single(runner, sink);
        }
        match self.exec_general(runner, level, hook_stats, sink) {
            Ok(p) => Ok(Verdict { retval: p.retval(), ran: p.ran(), revision: self.revision }),
            Err(e) => Err(*e),
        }
    }

    /// Everything but the one-program, no-statistics case of
    /// [`Chain::exec`] (a sampled level becomes timed or counters here; a
    /// one-program chain with counters runs natively).
    #[inline(never)]
    fn exec_general<S: StepSink>(
        &self,
        runner: &mut Runner,
        level: u8,
        hook_stats: &Counters,
        sink: &mut S,
    ) -> Result<Packed, Box<RunError>> {
        let level = match level {
            0..=2 => level,
            _ if sample_now() => 2,
            _ => 1,
        };
        if S::NATIVE && level < 2 {
            if let Some(n) = &self.native {
                if let Some(v) = self.exec_native(n, runner, level, hook_stats) {
                    return v;
                }
            }
        }
        match level {
            0 => self.exec_with::<S, 0>(runner, hook_stats, sink),
            1 => self.exec_with::<S, 1>(runner, hook_stats, sink),
            _ => self.exec_with::<S, 2>(runner, hook_stats, sink),
        }
    }

    /// The chain in one native entry (levels 0 and 1; `None` for a thread
    /// counting in the shared overflow shard, which takes the Rust path).
    #[inline]
    fn exec_native(
        &self,
        native: &NativeChain,
        runner: &mut Runner,
        level: u8,
        hook_stats: &Counters,
    ) -> Option<Result<Packed, Box<RunError>>> {
        let slot = if level > 0 {
            let s = thread_slot();
            if s >= NATIVE_LAYOUT.shards {
                return None;
            }
            Some(s)
        } else {
            None
        };
        let entries = &self.entries;
        let out = runner.exec_chain(native, slot, &|i| (&entries[i].maps, &entries[i].prog_table));
        let r = match out {
            ChainOutcome::Stopped { at, retval } => Ok(Packed::new(retval, at + 1)),
            ChainOutcome::Completed => Ok(Packed::new(XDP_PASS, entries.len())),
            ChainOutcome::Fault { at, error } => {
                if let Some(s) = slot {
                    entries[at].stats.count_error(s);
                }
                Err(Box::new(RunError::Fault(error)))
            }
        };
        if let Some(s) = slot {
            match &r {
                Ok(v) => hook_stats.count(s, v.retval()),
                Err(_) => hook_stats.count_error(s),
            }
        }
        Some(r)
    }

    /// A one-program chain without statistics: the common case, kept
    /// small enough to inline into the caller.
    #[inline(always)]
    fn exec_single<S: StepSink>(&self, runner: &mut Runner, sink: &mut S) -> Result<Verdict, RunError> {
        let e = &self.entries[0];
        runner.use_tables(&e.maps, &e.prog_table);
        let ret = runner.exec(&e.program)?;
        sink.step(e.id, ret);
        let retval = if continues(ret, e.mask) { XDP_PASS } else { ret };
        Ok(Verdict { retval, ran: 1, revision: self.revision })
    }

    #[inline(never)]
    fn exec_with<S: StepSink, const LEVEL: u8>(
        &self,
        runner: &mut Runner,
        hook_stats: &Counters,
        sink: &mut S,
    ) -> Result<Packed, Box<RunError>> {
        let slot = if LEVEL > 0 { thread_slot() } else { 0 };
        let start = if LEVEL > 1 { ticks() } else { 0 };
        let mut t = start;
        let mut out = Ok(Packed::new(XDP_PASS, self.entries.len()));
        for (i, e) in self.entries.iter().enumerate() {
            if e.switch_tables {
                runner.use_tables(&e.maps, &e.prog_table);
            }
            let r = runner.exec(&e.program);
            if LEVEL > 1 {
                let now = ticks();
                e.stats.add_ticks(slot, now.wrapping_sub(t));
                t = now;
            }
            match r {
                Ok(ret) => {
                    if LEVEL > 0 {
                        e.stats.count(slot, ret);
                    }
                    sink.step(e.id, ret);
                    if !continues(ret, e.mask) {
                        out = Ok(Packed::new(ret, i + 1));
                        break;
                    }
                }
                Err(err) => {
                    if LEVEL > 0 {
                        e.stats.count_error(slot);
                    }
                    out = Err(Box::new(err));
                    break;
                }
            }
        }
        if LEVEL > 0 {
            match &out {
                Ok(v) => hook_stats.count(slot, v.retval()),
                Err(_) => hook_stats.count_error(slot),
            }
            if LEVEL > 1 {
                hook_stats.add_ticks(slot, t.wrapping_sub(start));
            }
        }
        out
    }
}
