//! Hooks: the current chain behind an RCU-like pointer, compare-and-swap
//! updates, packet runs.

use crate::chain::{Chain, ChainRun, Entry, Verdict, SETTABLE_ACTIONS};
use crate::program::ChainProgram;
use crate::stats::{Counters, LevelCell, StatsLevel, StatsSnapshot};
use crate::{ChainError, EntryId};
use arc_swap::ArcSwap;
use std::sync::{Arc, Mutex};
use uxdp_xdp::{RunError, Runner, TestInput};

/// Programs a hook accepts unless told otherwise ([`Hook::with_max_programs`]).
pub const DEFAULT_MAX_PROGRAMS: usize = 4096;

/// Where an attached (or moved) entry goes in the run order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// By priority: immediately before the first priority-placed entry (in
    /// run order) that libxdp's sort puts after it — lower priority first,
    /// then program name (byte order, as `strcmp`), then attach order
    /// (already attached first) — or last if there is none. Explicitly
    /// placed entries are not anchors (their priority is not what placed
    /// them). On a chain built only this way the order is exactly libxdp's.
    #[default]
    Priority,
    /// Runs first.
    First,
    /// Runs last.
    Last,
    /// Runs immediately before this entry.
    Before(EntryId),
    /// Runs immediately after this entry.
    After(EntryId),
}

/// Per-attachment settings; `None` takes the program's `XDP_RUN_CONFIG`
/// (or libxdp's defaults, priority 50 and `{XDP_PASS}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// Run priority override (lower runs first).
    pub priority: Option<u32>,
    /// Chain-call actions override: bit `1 << action` set = the next program
    /// runs when this one returns `action`. Bits 0..=30 only.
    pub actions: Option<u32>,
    /// Where the entry goes.
    pub placement: Placement,
}

/// What an update returns: its value and the revision it created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Updated<T> {
    /// The operation's result.
    pub value: T,
    /// The hook's revision after the update.
    pub revision: u64,
}

/// A description of one entry (a copy; the chain may change after).
#[derive(Clone, Debug)]
pub struct EntryInfo {
    /// Stable id on its hook.
    pub id: EntryId,
    /// Index in run order at the time of the query.
    pub position: usize,
    /// The program.
    pub program: Arc<ChainProgram>,
    /// Run priority.
    pub priority: u32,
    /// Chain-call actions (bits 0..=30).
    pub actions: u32,
    /// Whether its position was set explicitly (placement other than
    /// [`Placement::Priority`], or [`Transaction::reorder`]).
    pub explicit: bool,
    /// Its live counters (they keep counting runs of snapshots still in
    /// flight even after the entry is detached).
    pub stats: Arc<Counters>,
}

impl EntryInfo {
    fn of(e: &Entry, position: usize) -> EntryInfo {
        EntryInfo {
            id: e.id,
            position,
            program: e.prog.clone(),
            priority: e.priority,
            actions: e.actions,
            explicit: e.explicit,
            stats: e.stats.clone(),
        }
    }
}

impl Chain {
    /// Descriptions of the entries, in run order.
    pub fn info(&self) -> Vec<EntryInfo> {
        self.entries.iter().enumerate().map(|(i, e)| EntryInfo::of(e, i)).collect()
    }
}

#[derive(Debug)]
struct WriterState {
    next_id: u64,
    next_seq: u64,
}

/// One packet port's XDP hook: a chain of programs run on every packet.
///
/// Readers (packet threads) load the current [`Chain`] snapshot once per
/// packet and run it to the end; writers build a new snapshot and swap it in
/// (`arc-swap`), so a packet sees exactly one chain version. A replaced
/// snapshot is freed when the last packet running it finishes. Writers are
/// serialised; every update may name the revision it expects
/// ([`ChainError::StaleRevision`] otherwise).
pub struct Hook {
    name: String,
    current: ArcSwap<Chain>,
    writer: Mutex<WriterState>,
    level: LevelCell,
    totals: Counters,
    max_programs: usize,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("name", &self.name)
            .field("revision", &self.revision())
            .field("programs", &self.len())
            .finish_non_exhaustive()
    }
}

impl Hook {
    /// An empty hook (revision 0) named `name`, accepting
    /// [`DEFAULT_MAX_PROGRAMS`] programs, counting with
    /// [`StatsLevel::Counters`].
    pub fn new(name: impl Into<String>) -> Hook {
        Hook::with_max_programs(name, DEFAULT_MAX_PROGRAMS)
    }

    /// An empty hook accepting at most `max_programs` programs.
    pub fn with_max_programs(name: impl Into<String>, max_programs: usize) -> Hook {
        Hook {
            name: name.into(),
            current: ArcSwap::from_pointee(Chain::empty()),
            writer: Mutex::new(WriterState { next_id: 1, next_seq: 0 }),
            level: LevelCell::new(StatsLevel::Counters),
            totals: Counters::new(),
            max_programs,
        }
    }

    /// The hook's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Most programs this hook accepts.
    pub fn max_programs(&self) -> usize {
        self.max_programs
    }

    /// Current revision (0 for a new hook, +1 per successful update).
    pub fn revision(&self) -> u64 {
        self.current.load().revision
    }

    /// Number of attached programs.
    pub fn len(&self) -> usize {
        self.current.load().entries.len()
    }

    /// True when nothing is attached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current snapshot (keeps it alive while held).
    pub fn snapshot(&self) -> Arc<Chain> {
        self.current.load_full()
    }

    /// The current entries in run order.
    pub fn entries(&self) -> Vec<EntryInfo> {
        self.current.load().info()
    }

    /// One current entry.
    pub fn entry(&self, id: EntryId) -> Option<EntryInfo> {
        let c = self.current.load();
        c.entries.iter().position(|e| e.id == id).map(|i| EntryInfo::of(&c.entries[i], i))
    }

    /// What packets count from now on.
    pub fn set_stats_level(&self, level: StatsLevel) {
        self.level.set(level);
    }

    /// What packets count.
    pub fn stats_level(&self) -> StatsLevel {
        StatsLevel::from_u8(self.level.get_raw())
    }

    /// Hook totals: packets, final verdicts, errors (faults and refused
    /// inputs), whole-chain time.
    pub fn totals(&self) -> StatsSnapshot {
        self.totals.read()
    }

    // ---- packets -----------------------------------------------------------

    /// Runs one packet through the current chain: puts `input` into the
    /// runner's frame (`BPF_PROG_TEST_RUN` geometry), runs the chain and
    /// returns the verdict, the output packet and the steps.
    ///
    /// Semantics (libxdp's `xdp_dispatcher`): entries run in order, each on
    /// the packet as the previous one left it; if an entry's return value
    /// `ret` has its bit `1 << (ret % 32)` in the entry's chain-call actions
    /// (plus bit 31, libxdp's `XDP_DISPATCHER_RETVAL`) the next entry runs,
    /// otherwise the hook returns `ret`. After the last entry, and on an
    /// empty hook, the hook returns `XDP_PASS` — also when the last entry
    /// returned another action in its chain-call set. Tail calls a program
    /// makes belong to its own run. A program fault ends the packet with
    /// [`RunError::Fault`] (the entry's and the hook's error counters count
    /// it); later entries do not run. An input the kernel would refuse is
    /// [`RunError::Refused`] and counts as a hook error only.
    pub fn run(&self, runner: &mut Runner, input: &TestInput<'_>) -> Result<ChainRun, RunError> {
        let level = self.level.get_raw();
        if let Err(e) = runner.load(input) {
            if level > 0 {
                self.totals.count_error(crate::stats::thread_slot());
            }
            return Err(e);
        }
        let chain = self.current.load();
        let mut steps = Vec::with_capacity(chain.entries.len().min(64));
        let verdict = chain.exec(runner, level, &self.totals, &mut steps)?;
        Ok(ChainRun { verdict, output: runner.output(verdict.retval), steps })
    }

    /// The fast path: runs the chain on the packet already in the runner
    /// (after [`Runner::load`]) and returns only the verdict; the output
    /// packet stays in the runner ([`Runner::output`]). Same semantics as
    /// [`Hook::run`]. On a packet thread, [`HookReader::exec`] saves the
    /// per-packet `arc-swap` load.
    #[inline]
    pub fn exec(&self, runner: &mut Runner) -> Result<Verdict, RunError> {
        let level = self.level.get_raw();
        self.current.load().exec(runner, level, &self.totals, &mut ())
    }

    /// Whether [`Hook::exec`] runs the current chain in one native entry
    /// (at least [`crate::NATIVE_MIN`] programs, every one with JIT code);
    /// [`Hook::run`], which reports each program's step, and timed
    /// statistics always take the per-program path.
    pub fn runs_natively(&self) -> bool {
        self.current.load().is_native()
    }

    /// A per-thread reader: like [`Hook::exec`]/[`Hook::run`], but it keeps
    /// the snapshot it last used and re-loads only when the hook's pointer
    /// changed (one relaxed load and a compare per packet instead of
    /// `arc-swap`'s hazard-slot load). The cost: an idle reader keeps its
    /// last snapshot alive until its next packet or until it is dropped.
    pub fn reader(self: &Arc<Self>) -> HookReader {
        HookReader { hook: self.clone(), cache: arc_swap::Cache::new(SwapOf(self.clone())), single: None }
    }

    // ---- updates -----------------------------------------------------------

    /// Applies `f` to a copy of the current chain and publishes the result as
    /// the next revision — all of `f`'s operations become visible to packets
    /// at once. Fails with [`ChainError::StaleRevision`] when `expected` is
    /// given and is not the current revision (another update got in first),
    /// and with `f`'s error (nothing published) when `f` fails.
    pub fn update<T>(
        &self,
        expected: Option<u64>,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, ChainError>,
    ) -> Result<Updated<T>, ChainError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.current.load_full();
        if let Some(expected) = expected {
            if expected != cur.revision {
                return Err(ChainError::StaleRevision { expected, current: cur.revision });
            }
        }
        let mut state = WriterState { next_id: w.next_id, next_seq: w.next_seq };
        let mut tx = Transaction { entries: cur.entries.clone(), state: &mut state, max_programs: self.max_programs };
        let value = f(&mut tx)?;
        let revision = cur.revision + 1;
        let entries = tx.entries;
        *w = state;
        self.current.store(Arc::new(Chain::new(revision, entries)));
        Ok(Updated { value, revision })
    }

    /// Attaches `prog` as a new entry (see [`Transaction::attach`]).
    pub fn attach(
        &self,
        prog: Arc<ChainProgram>,
        opts: AttachOptions,
        expected: Option<u64>,
    ) -> Result<Updated<EntryId>, ChainError> {
        self.update(expected, |tx| tx.attach(prog, opts))
    }

    /// Detaches an entry (see [`Transaction::detach`]).
    pub fn detach(&self, id: EntryId, expected: Option<u64>) -> Result<Updated<EntryInfo>, ChainError> {
        self.update(expected, |tx| tx.detach(id))
    }

    /// Swaps an entry's program (see [`Transaction::replace`]).
    pub fn replace(
        &self,
        id: EntryId,
        prog: Arc<ChainProgram>,
        expected: Option<u64>,
    ) -> Result<Updated<Arc<ChainProgram>>, ChainError> {
        self.update(expected, |tx| tx.replace(id, prog))
    }

    /// Changes an entry's priority (see [`Transaction::set_priority`]).
    pub fn set_priority(&self, id: EntryId, priority: u32, expected: Option<u64>) -> Result<Updated<()>, ChainError> {
        self.update(expected, |tx| tx.set_priority(id, priority))
    }

    /// Changes an entry's chain-call actions (see [`Transaction::set_actions`]).
    pub fn set_actions(&self, id: EntryId, actions: u32, expected: Option<u64>) -> Result<Updated<()>, ChainError> {
        self.update(expected, |tx| tx.set_actions(id, actions))
    }

    /// Moves an entry (see [`Transaction::move_entry`]).
    pub fn move_entry(
        &self,
        id: EntryId,
        placement: Placement,
        expected: Option<u64>,
    ) -> Result<Updated<()>, ChainError> {
        self.update(expected, |tx| tx.move_entry(id, placement))
    }

    /// Sets the whole run order (see [`Transaction::reorder`]).
    pub fn reorder(&self, order: &[EntryId], expected: Option<u64>) -> Result<Updated<()>, ChainError> {
        self.update(expected, |tx| tx.reorder(order))
    }

    /// The status table ([`HookStatus`]'s `Display` is like
    /// `xdp-loader status`).
    pub fn status(&self) -> HookStatus {
        let chain = self.current.load_full();
        HookStatus {
            name: self.name.clone(),
            revision: chain.revision,
            level: self.stats_level(),
            totals: self.totals(),
            entries: chain.info().into_iter().map(|info| EntryStatus { stats: info.stats.read(), info }).collect(),
        }
    }
}

/// Dereferences a shared hook to its snapshot pointer (for `arc_swap::Cache`).
#[derive(Clone)]
struct SwapOf(Arc<Hook>);

impl std::ops::Deref for SwapOf {
    type Target = ArcSwap<Chain>;
    fn deref(&self) -> &ArcSwap<Chain> {
        &self.0.current
    }
}

/// A packet thread's handle on a hook ([`Hook::reader`]).
pub struct HookReader {
    hook: Arc<Hook>,
    cache: arc_swap::Cache<SwapOf, Arc<Chain>>,
    /// The cached snapshot's program when it has exactly one, copied here
    /// so that a packet reaches it without going through the snapshot and
    /// its entry list (two dependent loads: about 1.5 ns a packet).
    single: Option<Single>,
}

/// [`HookReader::single`].
struct Single {
    /// The snapshot this was copied from (compared, never dereferenced).
    chain: *const Chain,
    program: Arc<uxdp_vm::Program>,
    maps: Arc<uxdp_xdp::MapTable>,
    progs: Arc<uxdp_xdp::ProgTable>,
    mask: u32,
    revision: u64,
}

// SAFETY: `chain` is only compared with the cache's pointer, never
// dereferenced; every other field is `Send`.
unsafe impl Send for Single {}

impl std::fmt::Debug for HookReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookReader").field("hook", &self.hook.name).finish_non_exhaustive()
    }
}

impl HookReader {
    /// The hook.
    pub fn hook(&self) -> &Arc<Hook> {
        &self.hook
    }

    /// [`Hook::exec`] through the cached snapshot.
    #[inline]
    pub fn exec(&mut self, runner: &mut Runner) -> Result<Verdict, RunError> {
        let level = self.hook.level.get_raw();
        let chain = self.cache.load();
        if let Some(s) = &self.single {
            if level == 0 && core::ptr::eq(s.chain, Arc::as_ptr(chain)) {
                runner.use_tables(&s.maps, &s.progs);
                let ret = runner.exec(&s.program)?;
                let retval = if crate::chain::continues(ret, s.mask) { crate::XDP_PASS } else { ret };
                return Ok(Verdict { retval, ran: 1, revision: s.revision });
            }
        }
        let v = chain.exec(runner, level, &self.hook.totals, &mut ());
        if self.single.as_ref().is_some_and(|s| core::ptr::eq(s.chain, Arc::as_ptr(chain))) {
            return v;
        }
        self.single = chain.single().map(|e| Single {
            chain: Arc::as_ptr(chain),
            program: e.program.clone(),
            maps: e.maps.clone(),
            progs: e.prog_table.clone(),
            mask: e.mask,
            revision: chain.revision,
        });
        v
    }

    /// [`Hook::run`] through the cached snapshot.
    pub fn run(&mut self, runner: &mut Runner, input: &TestInput<'_>) -> Result<ChainRun, RunError> {
        let level = self.hook.level.get_raw();
        if let Err(e) = runner.load(input) {
            if level > 0 {
                self.hook.totals.count_error(crate::stats::thread_slot());
            }
            return Err(e);
        }
        let chain = self.cache.load();
        let mut steps = Vec::with_capacity(chain.entries.len().min(64));
        let verdict = chain.exec(runner, level, &self.hook.totals, &mut steps)?;
        Ok(ChainRun { verdict, output: runner.output(verdict.retval), steps })
    }
}

/// The chain being built by one [`Hook::update`].
pub struct Transaction<'w> {
    entries: Vec<Entry>,
    state: &'w mut WriterState,
    max_programs: usize,
}

fn check_actions(mask: u32) -> Result<u32, ChainError> {
    if mask & !SETTABLE_ACTIONS != 0 {
        return Err(ChainError::InvalidActions { mask });
    }
    Ok(mask)
}

impl Transaction<'_> {
    /// Entries of the chain being built, in run order.
    pub fn entries(&self) -> Vec<EntryInfo> {
        self.entries.iter().enumerate().map(|(i, e)| EntryInfo::of(e, i)).collect()
    }

    /// Number of entries in the chain being built.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the chain being built is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn index(&self, id: EntryId) -> Result<usize, ChainError> {
        self.entries.iter().position(|e| e.id == id).ok_or(ChainError::NoSuchEntry(id))
    }

    /// Inserts `e` (not in the list) where `placement` says.
    fn place(&mut self, mut e: Entry, placement: Placement) -> Result<(), ChainError> {
        let at = match placement {
            Placement::Priority => {
                self.entries.iter().position(|x| !x.explicit && e.sorts_before(x)).unwrap_or(self.entries.len())
            }
            Placement::First => 0,
            Placement::Last => self.entries.len(),
            Placement::Before(id) | Placement::After(id) if id == e.id => {
                return Err(ChainError::InvalidPlacement(format!("entry {id} cannot be placed relative to itself")));
            }
            Placement::Before(id) => self.index(id)?,
            Placement::After(id) => self.index(id)? + 1,
        };
        e.explicit = placement != Placement::Priority;
        self.entries.insert(at, e);
        Ok(())
    }

    /// Attaches `prog` as a new entry with a new id: priority and actions
    /// from `opts` or the program's run configuration, position from
    /// `opts.placement`. The same program may be attached any number of
    /// times; each attachment is an independent entry.
    pub fn attach(&mut self, prog: Arc<ChainProgram>, opts: AttachOptions) -> Result<EntryId, ChainError> {
        if self.entries.len() >= self.max_programs {
            return Err(ChainError::TooManyPrograms { limit: self.max_programs });
        }
        let cfg = prog.run_config();
        let actions = check_actions(opts.actions.unwrap_or(cfg.chain_call_actions & SETTABLE_ACTIONS))?;
        let id = EntryId(self.state.next_id);
        let mut e = Entry {
            program: prog.program().clone(),
            maps: prog.maps().clone(),
            prog_table: prog.prog_table().clone(),
            mask: 0,
            switch_tables: true,
            stats: Arc::new(Counters::new()),
            id,
            prog,
            priority: opts.priority.unwrap_or(cfg.priority),
            actions: 0,
            seq: self.state.next_seq,
            explicit: false,
        };
        e.set_actions(actions);
        self.place(e, opts.placement)?;
        self.state.next_id += 1;
        self.state.next_seq += 1;
        Ok(id)
    }

    /// Removes an entry; returns its last description (its counters stay
    /// readable through it).
    pub fn detach(&mut self, id: EntryId) -> Result<EntryInfo, ChainError> {
        let i = self.index(id)?;
        let e = self.entries.remove(i);
        Ok(EntryInfo::of(&e, i))
    }

    /// Removes every entry.
    pub fn clear(&mut self) -> Vec<EntryInfo> {
        let out = self.entries();
        self.entries.clear();
        out
    }

    /// Swaps the program of an entry, keeping its id, position, priority,
    /// chain-call actions and counters; returns the old program.
    pub fn replace(&mut self, id: EntryId, prog: Arc<ChainProgram>) -> Result<Arc<ChainProgram>, ChainError> {
        let i = self.index(id)?;
        let old = self.entries[i].prog.clone();
        self.entries[i].set_program(prog);
        Ok(old)
    }

    /// Sets an entry's priority and moves it to its priority position
    /// ([`Placement::Priority`], keeping its attach order for ties); an
    /// explicitly placed entry becomes priority-placed.
    pub fn set_priority(&mut self, id: EntryId, priority: u32) -> Result<(), ChainError> {
        let i = self.index(id)?;
        let mut e = self.entries.remove(i);
        e.priority = priority;
        self.place(e, Placement::Priority)
    }

    /// Sets an entry's chain-call actions (bits 0..=30); position unchanged.
    pub fn set_actions(&mut self, id: EntryId, actions: u32) -> Result<(), ChainError> {
        let actions = check_actions(actions)?;
        let i = self.index(id)?;
        self.entries[i].set_actions(actions);
        Ok(())
    }

    /// Moves an entry to `placement` (relative to the others).
    pub fn move_entry(&mut self, id: EntryId, placement: Placement) -> Result<(), ChainError> {
        let i = self.index(id)?;
        if let Placement::Before(t) | Placement::After(t) = placement {
            if t == id {
                return Err(ChainError::InvalidPlacement(format!("entry {id} cannot be placed relative to itself")));
            }
            self.index(t)?;
        }
        let e = self.entries.remove(i);
        self.place(e, placement)
    }

    /// Sets the whole run order: `order` must name every entry exactly once.
    /// Every entry becomes explicitly placed.
    pub fn reorder(&mut self, order: &[EntryId]) -> Result<(), ChainError> {
        if order.len() != self.entries.len() {
            return Err(ChainError::InvalidOrder(format!(
                "{} ids given for {} entries",
                order.len(),
                self.entries.len()
            )));
        }
        let index: std::collections::HashMap<EntryId, usize> =
            self.entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        let mut used = vec![false; self.entries.len()];
        let mut next = Vec::with_capacity(order.len());
        for &id in order {
            let i = *index.get(&id).ok_or(ChainError::NoSuchEntry(id))?;
            if std::mem::replace(&mut used[i], true) {
                return Err(ChainError::InvalidOrder(format!("entry {id} is named twice")));
            }
            let mut e = self.entries[i].clone();
            e.explicit = true;
            next.push(e);
        }
        self.entries = next;
        Ok(())
    }
}

/// One row of [`HookStatus`].
#[derive(Clone, Debug)]
pub struct EntryStatus {
    /// The entry.
    pub info: EntryInfo,
    /// Its counters when the status was taken.
    pub stats: StatsSnapshot,
}

/// A hook's state for display: `Display` prints a table like
/// `xdp-loader status` (position, id, priority, program, chain actions) plus
/// per-program counters.
#[derive(Clone, Debug)]
pub struct HookStatus {
    /// Hook name.
    pub name: String,
    /// Revision shown.
    pub revision: u64,
    /// Statistics level.
    pub level: StatsLevel,
    /// Hook totals.
    pub totals: StatsSnapshot,
    /// Entries in run order.
    pub entries: Vec<EntryStatus>,
}

/// Names of the actions in `mask` (`XDP_PASS,XDP_DROP`, numbers beyond
/// `XDP_REDIRECT`), or `none`.
pub fn format_actions(mask: u32) -> String {
    let names: Vec<String> = (0..32).filter(|b| mask & (1 << b) != 0).map(action_name).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

/// `XDP_ABORTED` ... `XDP_REDIRECT`, or the number.
pub fn action_name(action: u32) -> String {
    match action {
        0 => "XDP_ABORTED".into(),
        1 => "XDP_DROP".into(),
        2 => "XDP_PASS".into(),
        3 => "XDP_TX".into(),
        4 => "XDP_REDIRECT".into(),
        n => n.to_string(),
    }
}

impl std::fmt::Display for HookStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.totals;
        writeln!(
            f,
            "hook {}  revision {}  programs {}  stats {}",
            self.name,
            self.revision,
            self.entries.len(),
            self.level.name()
        )?;
        writeln!(
            f,
            "totals: packets {}  ABORTED {}  DROP {}  PASS {}  TX {}  REDIRECT {}  other {}  errors {}{}",
            t.packets,
            t.actions[0],
            t.actions[1],
            t.actions[2],
            t.actions[3],
            t.actions[4],
            t.other,
            t.errors,
            t.avg_ns().map(|a| format!("  avg {a:.1} ns/packet")).unwrap_or_default()
        )?;
        let name_w = self.entries.iter().map(|e| e.info.program.name().len()).max().unwrap_or(0).max(12);
        let from_w = self.entries.iter().map(|e| e.info.program.label().len()).max().unwrap_or(0).max(4);
        let act: Vec<String> = self.entries.iter().map(|e| format_actions(e.info.actions)).collect();
        let act_w = act.iter().map(|a| a.len()).max().unwrap_or(0).max(13);
        writeln!(
            f,
            "{:>4} {:>5} {:>5}  {:<name_w$}  {:<from_w$}  {:<act_w$} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>6} {:>6} {:>8}",
            "pos",
            "id",
            "prio",
            "program",
            "from",
            "chain actions",
            "packets",
            "aborted",
            "drop",
            "pass",
            "tx",
            "redirect",
            "other",
            "errors",
            "avg ns"
        )?;
        for (e, act) in self.entries.iter().zip(&act) {
            let s = &e.stats;
            let prio = if e.info.explicit { format!("{}*", e.info.priority) } else { e.info.priority.to_string() };
            writeln!(
                f,
                "{:>4} {:>5} {:>5}  {:<name_w$}  {:<from_w$}  {:<act_w$} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>6} {:>6} {:>8}",
                e.info.position,
                e.info.id.0,
                prio,
                e.info.program.name(),
                e.info.program.label(),
                act,
                s.packets,
                s.actions[0],
                s.actions[1],
                s.actions[2],
                s.actions[3],
                s.actions[4],
                s.other,
                s.errors,
                s.avg_ns().map(|a| format!("{a:.1}")).unwrap_or_else(|| "-".into())
            )?;
        }
        if self.entries.iter().any(|e| e.info.explicit) {
            writeln!(f, "(* explicitly placed: position not from priority)")?;
        }
        Ok(())
    }
}
