//! Per-program and per-hook statistics, cheap enough to leave on.
//!
//! Every counter set ([`Counters`]) is split into [`THREAD_SHARDS`] shards
//! owned by one thread each plus one shared overflow shard. A thread claims a
//! shard slot (a small number, the same for every counter set) the first time
//! it counts and gives it back when it exits. The owner of a slot is its only
//! writer, so an increment is a relaxed load and a relaxed store on a cache
//! line no other thread writes: no locked read-modify-write, no cache-line
//! ping-pong. Threads beyond [`THREAD_SHARDS`] share the overflow shard with
//! atomic `fetch_add`. Readers sum the shards with relaxed loads; nothing is
//! ever lost because every shard has exactly one writer or is updated
//! atomically.
//!
//! Run time is measured with the CPU's time-stamp counter (`rdtsc`,
//! constant-rate on this machine's CPUs, but about 10 ns a read in this
//! virtual machine) only when the hook's [`StatsLevel`] asks for it: one
//! read per program plus one per packet, each program charged the ticks
//! since the previous read. [`StatsLevel::Timed`] times every packet;
//! [`StatsLevel::Sampled`] times one packet in [`SAMPLE_EVERY`] per thread,
//! which makes the average nearly free. Ticks are
//! converted to nanoseconds when the counters are read, with a rate
//! calibrated once per process against the monotonic clock. On other
//! architectures the monotonic clock is read instead.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;

/// Threads that count without atomic read-modify-writes; more share one
/// atomically updated shard.
pub const THREAD_SHARDS: usize = 16;

const ACTIONS: usize = 5;
const OTHER: usize = 5;
const ERRORS: usize = 6;
const TICKS: usize = 7;
const TIMED: usize = 8;
const NCOUNTERS: usize = 9;

/// What a hook counts while it runs packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StatsLevel {
    /// Nothing (the hook's packet totals are not kept either).
    Off,
    /// Packets, per-action counts and errors per program and per hook.
    #[default]
    Counters,
    /// [`StatsLevel::Counters`] plus run time per program and per packet,
    /// measured on one packet in [`SAMPLE_EVERY`] per thread (the others
    /// cost one thread-local increment more than `Counters`). The average
    /// ns per run is `run_ns / timed_runs`.
    Sampled,
    /// [`StatsLevel::Counters`] plus run time per program and per packet,
    /// measured on every packet (time-stamp counter reads: about 10 ns per
    /// program on this machine — not free; for profiling).
    Timed,
}

/// With [`StatsLevel::Sampled`], one packet in this many (per thread) is timed.
pub const SAMPLE_EVERY: u32 = 64;

impl StatsLevel {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            StatsLevel::Off => 0,
            StatsLevel::Counters => 1,
            StatsLevel::Timed => 2,
            StatsLevel::Sampled => 3,
        }
    }

    pub(crate) fn from_u8(v: u8) -> StatsLevel {
        match v {
            0 => StatsLevel::Off,
            1 => StatsLevel::Counters,
            2 => StatsLevel::Timed,
            _ => StatsLevel::Sampled,
        }
    }

    /// Lower-case name (`off`, `counters`, `timed`).
    pub fn name(self) -> &'static str {
        match self {
            StatsLevel::Off => "off",
            StatsLevel::Counters => "counters",
            StatsLevel::Timed => "timed",
            StatsLevel::Sampled => "sampled",
        }
    }
}

impl std::str::FromStr for StatsLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(StatsLevel::Off),
            "counters" => Ok(StatsLevel::Counters),
            "timed" => Ok(StatsLevel::Timed),
            "sampled" => Ok(StatsLevel::Sampled),
            other => Err(format!("unknown statistics level '{other}' (expected off, counters, sampled or timed)")),
        }
    }
}

/// An atomic holder of a [`StatsLevel`].
#[derive(Debug)]
pub(crate) struct LevelCell(AtomicU8);

impl LevelCell {
    pub(crate) fn new(level: StatsLevel) -> LevelCell {
        LevelCell(AtomicU8::new(level.to_u8()))
    }
    #[inline]
    pub(crate) fn get_raw(&self) -> u8 {
        self.0.load(Relaxed)
    }
    pub(crate) fn set(&self, level: StatsLevel) {
        self.0.store(level.to_u8(), Relaxed)
    }
}

#[repr(align(128))]
#[derive(Default)]
struct Shard([AtomicU64; NCOUNTERS]);

/// One set of counters: runs per return value, errors, time. Shared by the
/// snapshots a program appears in (see the module docs for the sharding).
pub struct Counters {
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.read().fmt(f)
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters::new()
    }
}

/// Where native chain code counts runs in a [`Counters`]: counter
/// `min(ret, OTHER)` of the thread's owned shard (threads on the shared
/// overflow shard take the Rust path, which updates it atomically).
pub(crate) const NATIVE_LAYOUT: uxdp_jit::CounterLayout =
    uxdp_jit::CounterLayout { shards: THREAD_SHARDS, shard_stride: core::mem::size_of::<Shard>(), other: OTHER as u32 };
const _: () = assert!(ACTIONS == OTHER, "native counting maps return values >= OTHER to OTHER");

impl Counters {
    /// Counter 0 of shard 0, where native chain code counts (see
    /// [`NATIVE_LAYOUT`]). The counters are `AtomicU64`s: native code
    /// updates a shard only from the thread that owns it, with one plain
    /// 8-byte add, exactly as [`Counters::add`] does for owned shards.
    pub(crate) fn native_base(&self) -> core::ptr::NonNull<u64> {
        core::ptr::NonNull::from(&self.shards[0].0[0]).cast::<u64>()
    }

    /// Zeroed counters.
    pub fn new() -> Counters {
        Counters { shards: (0..=THREAD_SHARDS).map(|_| Shard::default()).collect() }
    }

    #[inline(always)]
    fn add(&self, slot: usize, idx: usize, v: u64) {
        // `slot` comes from `thread_slot`: < THREAD_SHARDS for an owned
        // shard, THREAD_SHARDS for the shared one.
        let shard = &self.shards[slot.min(THREAD_SHARDS)];
        let c = &shard.0[idx];
        if slot < THREAD_SHARDS {
            c.store(c.load(Relaxed).wrapping_add(v), Relaxed);
        } else {
            c.fetch_add(v, Relaxed);
        }
    }

    /// Counts one run that returned `retval`.
    #[inline(always)]
    pub(crate) fn count(&self, slot: usize, retval: u32) {
        let idx = if (retval as usize) < ACTIONS { retval as usize } else { OTHER };
        self.add(slot, idx, 1);
    }

    /// Counts one failed run.
    #[inline(always)]
    pub(crate) fn count_error(&self, slot: usize) {
        self.add(slot, ERRORS, 1);
    }

    /// Adds measured time (clock ticks).
    #[inline(always)]
    pub(crate) fn add_ticks(&self, slot: usize, ticks: u64) {
        self.add(slot, TICKS, ticks);
        self.add(slot, TIMED, 1);
    }

    /// Sums the shards (relaxed reads: a run in progress on another thread
    /// may or may not be included).
    pub fn read(&self) -> StatsSnapshot {
        let mut sum = [0u64; NCOUNTERS];
        for s in self.shards.iter() {
            for (acc, c) in sum.iter_mut().zip(&s.0) {
                *acc = acc.wrapping_add(c.load(Relaxed));
            }
        }
        let mut actions = [0; ACTIONS];
        actions.copy_from_slice(&sum[..ACTIONS]);
        let packets = actions.iter().sum::<u64>() + sum[OTHER] + sum[ERRORS];
        StatsSnapshot {
            packets,
            actions,
            other: sum[OTHER],
            errors: sum[ERRORS],
            run_ns: ticks_to_ns(sum[TICKS]),
            timed_runs: sum[TIMED],
        }
    }
}

/// Counter values at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Runs (for a hook: packets), errors included.
    pub packets: u64,
    /// Runs that returned `XDP_ABORTED`, `XDP_DROP`, `XDP_PASS`, `XDP_TX`,
    /// `XDP_REDIRECT` (for a hook: the final verdicts).
    pub actions: [u64; 5],
    /// Runs that returned any other value.
    pub other: u64,
    /// Runs that failed (a program fault; for a hook also refused inputs).
    pub errors: u64,
    /// Total measured run time in nanoseconds, over `timed_runs` runs.
    pub run_ns: u64,
    /// Runs that were timed (those made while the level was
    /// [`StatsLevel::Timed`]).
    pub timed_runs: u64,
}

impl StatsSnapshot {
    /// Average ns per timed run, if any run was timed.
    pub fn avg_ns(&self) -> Option<f64> {
        (self.timed_runs > 0).then(|| self.run_ns as f64 / self.timed_runs as f64)
    }
}

// ---- thread slots ----------------------------------------------------------

static SLOTS_USED: AtomicU32 = AtomicU32::new(0);

struct SlotGuard(usize);

impl SlotGuard {
    fn claim() -> SlotGuard {
        let mut cur = SLOTS_USED.load(Relaxed);
        loop {
            let free = (!cur).trailing_zeros() as usize;
            if free >= THREAD_SHARDS {
                return SlotGuard(THREAD_SHARDS);
            }
            // Acquire: the previous owner's last counts happen before ours.
            match SLOTS_USED.compare_exchange_weak(cur, cur | (1 << free), std::sync::atomic::Ordering::AcqRel, Relaxed)
            {
                Ok(_) => return SlotGuard(free),
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if self.0 < THREAD_SHARDS {
            SLOTS_USED.fetch_and(!(1u32 << self.0), std::sync::atomic::Ordering::Release);
        }
    }
}

thread_local! {
    static SLOT: SlotGuard = SlotGuard::claim();
}

/// This thread's shard slot; the shared slot while the thread is being torn
/// down.
#[inline]
pub(crate) fn thread_slot() -> usize {
    SLOT.try_with(|s| s.0).unwrap_or(THREAD_SHARDS)
}

thread_local! {
    static SAMPLE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether this thread times its current packet under
/// [`StatsLevel::Sampled`] (every [`SAMPLE_EVERY`]th call is true).
#[inline(always)]
pub(crate) fn sample_now() -> bool {
    SAMPLE.with(|c| {
        let v = c.get().wrapping_add(1);
        c.set(v);
        v % SAMPLE_EVERY == 0
    })
}

// ---- clock -----------------------------------------------------------------

/// Reads the tick counter used for run times.
#[inline(always)]
pub(crate) fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86-64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
        EPOCH.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
    }
}

/// Nanoseconds per tick, calibrated once (2 ms against the monotonic clock).
fn ns_per_tick() -> f64 {
    static RATE: OnceLock<f64> = OnceLock::new();
    *RATE.get_or_init(|| {
        if !cfg!(target_arch = "x86_64") {
            return 1.0;
        }
        let (t0, c0) = (std::time::Instant::now(), ticks());
        while t0.elapsed() < std::time::Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let (ns, c1) = (t0.elapsed().as_nanos() as f64, ticks());
        let dt = c1.wrapping_sub(c0);
        if dt == 0 {
            1.0
        } else {
            ns / dt as f64
        }
    })
}

/// Converts ticks to nanoseconds.
pub(crate) fn ticks_to_ns(t: u64) -> u64 {
    if t == 0 {
        0
    } else {
        (t as f64 * ns_per_tick()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_sum_and_threads_never_lose_counts() {
        let c = std::sync::Arc::new(Counters::new());
        let threads: Vec<_> = (0..THREAD_SHARDS + 4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let slot = thread_slot();
                    for i in 0..1000u32 {
                        c.count(slot, (i + t as u32) % 7);
                    }
                    c.count_error(slot);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("counting thread");
        }
        let s = c.read();
        assert_eq!(s.packets, (THREAD_SHARDS as u64 + 4) * 1001);
        assert_eq!(s.errors, THREAD_SHARDS as u64 + 4);
        assert_eq!(s.actions.iter().sum::<u64>() + s.other + s.errors, s.packets);
    }

    #[test]
    fn ticks_convert_to_plausible_ns() {
        let t0 = ticks();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let ns = ticks_to_ns(ticks() - t0);
        assert!((4_000_000..500_000_000).contains(&ns), "{ns} ns for a 5 ms sleep");
        assert_eq!("timed".parse::<StatsLevel>(), Ok(StatsLevel::Timed));
        assert!("fast".parse::<StatsLevel>().is_err());
    }
}
