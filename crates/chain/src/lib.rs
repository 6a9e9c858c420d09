//! # uxdp-chain: many XDP programs on one hook
//!
//! The kernel's XDP hook takes one program; libxdp's dispatcher takes ten
//! and needs freplace; the kernel's mprog (tcx only) has no per-program
//! chain-call actions. A [`Hook`] here runs a chain of any number of
//! programs (default limit [`DEFAULT_MAX_PROGRAMS`]) with libxdp's
//! semantics, updated atomically while packets flow.
//!
//! ## Semantics
//!
//! - **Run order.** Each entry has a run priority (lower first) and a set of
//!   chain-call actions, both from the program's `XDP_RUN_CONFIG` (priority
//!   50 and `{XDP_PASS}` by default, as libxdp) unless overridden at attach
//!   time ([`AttachOptions`]). Entries attached with
//!   [`Placement::Priority`] are ordered like libxdp's `cmp_xdp_programs`:
//!   priority, then program name (`strcmp`), then already-attached first
//!   (uxdp's attach order stands in for libxdp's loaded-before-new rule).
//! - **Explicit placement** ([`Placement::First`], [`Placement::Last`],
//!   [`Placement::Before`], [`Placement::After`], like the kernel's mprog
//!   `BPF_F_BEFORE`/`BPF_F_AFTER`) puts an entry exactly there; its
//!   priority is kept for display but does not move it. The chain is a
//!   stored order, not re-sorted on each update: a priority-placed attach
//!   goes immediately before the first *priority-placed* entry in run order
//!   that sorts after it (last if none), so a chain built only by priority
//!   is exactly libxdp's sorted order, and explicit positions stay where
//!   they were put. [`Transaction::set_priority`]
//!   re-places an entry by priority; [`Transaction::reorder`] sets the
//!   whole order.
//! - **Running** (matching xdp-tools' `xdp-dispatcher.c.in`: per slot
//!   `ret = progN(ctx); if (!((1U << ret) & conf.chain_call_actions[N]))
//!   return ret;`, then `out: return XDP_PASS;`): each entry sees the packet
//!   as the previous one left it; a return value outside the entry's
//!   chain-call set ends the chain with that verdict; running past the last
//!   entry returns `XDP_PASS` even when the last entry returned, say,
//!   `XDP_DROP` with `XDP_DROP` in its set; an empty hook returns
//!   `XDP_PASS`. libxdp ORs bit 31 (`XDP_DISPATCHER_RETVAL`) into every
//!   mask and the shift is 32-bit, so the bit tested is `ret % 32`; uxdp
//!   does the same. A program's tail calls run inside its own step. A
//!   program fault ends the packet with the fault ([`uxdp_xdp::RunError`]).
//! - **Updates** ([`Hook::update`] and its shorthands) build a new immutable
//!   [`Chain`] and swap it in (`arc-swap`): a packet loads the snapshot once
//!   and runs it to the end, so it sees exactly one revision; the old
//!   snapshot is freed when its last packet finishes. Each update may carry
//!   the revision it expects and fails with [`ChainError::StaleRevision`] if
//!   another update got in first (libxdp's `XDP_FLAGS_REPLACE`, mprog's
//!   `expected_revision`).
//! - **Packet threads** should run packets through a [`HookReader`]
//!   ([`Hook::reader`]): it keeps the snapshot it last used and re-loads
//!   only when the hook's pointer changed (a relaxed load and a compare per
//!   packet). [`Hook::run`]/[`Hook::exec`] load through `arc-swap` on every
//!   packet (a few ns more). Either way a packet runs one snapshot start to
//!   end.
//! - **Statistics** ([`stats`]): per entry and per hook, sharded per thread
//!   without atomic read-modify-writes ([`StatsLevel::Counters`], the
//!   default); run time from the time-stamp counter on one packet in
//!   [`SAMPLE_EVERY`] ([`StatsLevel::Sampled`]) or on every packet
//!   ([`StatsLevel::Timed`]). Counters are never reset (take differences).
//!
//! `benches/chain.rs` measures the chain against bare `Runner::exec` calls
//! and against the kernel's tail calls.
//!
//! ## Example
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use uxdp_chain::{AttachOptions, ChainProgram, Hook};
//! use uxdp_xdp::{LoadedObject, Runner, TestInput};
//! let obj = LoadedObject::from_file("xdpfilt_alw_all.o".as_ref())?;
//! let prog = ChainProgram::from_object(&obj, None, "xdpfilt_alw_all.o")?;
//! let hook = Hook::new("eth0");
//! let first = hook.attach(prog.clone(), AttachOptions::default(), None)?;
//! hook.attach(prog, AttachOptions { priority: Some(10), ..Default::default() }, Some(first.revision))?;
//! let mut runner = Runner::new(&obj)?;
//! let run = hook.run(&mut runner, &TestInput::new(&[0u8; 64], None)?)?;
//! println!("verdict {} after {} programs\n{}", run.verdict.retval, run.verdict.ran, hook.status());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod chain;
pub mod hook;
pub mod program;
pub mod stats;

pub use chain::{Chain, ChainRun, Step, Verdict, DISPATCHER_RETVAL, NATIVE_MIN, SETTABLE_ACTIONS};
pub use hook::{
    action_name, format_actions, AttachOptions, EntryInfo, EntryStatus, Hook, HookReader, HookStatus, Placement,
    Transaction, Updated, DEFAULT_MAX_PROGRAMS,
};
pub use program::ChainProgram;
pub use stats::{Counters, StatsLevel, StatsSnapshot, SAMPLE_EVERY, THREAD_SHARDS};

/// `XDP_ABORTED`.
pub const XDP_ABORTED: u32 = 0;
/// `XDP_DROP`.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`: what a hook returns past its last program.
pub const XDP_PASS: u32 = 2;
/// `XDP_TX`.
pub const XDP_TX: u32 = 3;
/// `XDP_REDIRECT`.
pub const XDP_REDIRECT: u32 = 4;

/// An entry's id on its hook: assigned at attach, never reused by that hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub u64);

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a hook update or a program could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The update expected another revision.
    #[error("stale revision: the update expected revision {expected} but the hook is at revision {current}")]
    StaleRevision {
        /// Revision the caller expected.
        expected: u64,
        /// The hook's revision.
        current: u64,
    },
    /// No entry with this id on the hook.
    #[error("no entry {0} on the hook")]
    NoSuchEntry(EntryId),
    /// The hook is full.
    #[error("the hook is full: at most {limit} programs")]
    TooManyPrograms {
        /// The hook's limit.
        limit: usize,
    },
    /// A chain-call action mask with bit 31 (`XDP_DISPATCHER_RETVAL`, which
    /// libxdp reserves) set.
    #[error("invalid chain-call actions {mask:#x}: only actions 0..=30 can be set (31 is XDP_DISPATCHER_RETVAL)")]
    InvalidActions {
        /// The mask given.
        mask: u32,
    },
    /// A placement that cannot be applied.
    #[error("invalid placement: {0}")]
    InvalidPlacement(String),
    /// A [`Transaction::reorder`] list that is not a permutation of the entries.
    #[error("invalid order: {0}")]
    InvalidOrder(String),
    /// A program that cannot be put on a hook.
    #[error("{label}: {reason}")]
    Program {
        /// Where the program came from.
        label: String,
        /// Why not.
        reason: String,
    },
}
