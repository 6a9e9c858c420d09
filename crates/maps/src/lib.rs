//! # uxdp-maps: BPF maps with the kernel's semantics
//!
//! Every map type an XDP program commonly needs, implemented in user space
//! with the semantics of Linux's `kernel/bpf/*` (flags, errno values,
//! iteration order where the kernel defines one), safe for many threads
//! running programs at once.
//!
//! | type | struct |
//! |---|---|
//! | `array`, `percpu_array` | [`ArrayMap`] |
//! | `hash`, `percpu_hash`, `lru_hash`, `lru_percpu_hash` | [`HashMap`] |
//! | `lpm_trie` | [`LpmTrie`] |
//! | `prog_array` | [`ProgArray`] |
//! | `array_of_maps`, `hash_of_maps` | [`ArrayOfMaps`], [`HashOfMaps`] |
//! | `devmap`, `devmap_hash` | [`DevMap`], [`DevMapHash`] |
//! | `cpumap` | [`CpuMap`] |
//! | `xskmap` | [`XskMap`] |
//! | `ringbuf` | [`RingBuf`] |
//! | `perf_event_array` | [`PerfEventArray`] |
//! | `queue`, `stack` | [`QueueStack`] |
//!
//! Create maps with [`create`]; use them through the [`Map`] trait and,
//! for type-specific operations, downcast with the `as_*` methods of
//! `dyn Map` (e.g. [`Map::as_any`] then [`ArrayMap::layout`] for a JIT).
//!
//! ## Memory model
//!
//! Programs receive raw pointers to values ([`Map::lookup`]) and use them
//! later without locks, exactly like in the kernel. All value memory is
//! therefore preallocated when the map is created, in a few 8-byte-aligned
//! slabs that never move until the map is dropped ([`storage`] documents
//! the contract); [`Map::value_regions`] lists them so that a runtime can
//! bounds-check program memory accesses. Keys and all bookkeeping live
//! outside those regions. Deleted hash elements go to a free list and are
//! reused, as with the kernel's preallocated hash maps.
//!
//! ## Program side and user side
//!
//! Methods without suffix ([`Map::lookup`], [`Map::update`], ...) are what
//! the BPF helpers do; they take the `cpu` the calling thread acts as
//! (`0..nr_cpus`, chosen by the runtime). Methods with `_user` are the
//! `bpf(2)` syscall commands: per-CPU maps use the kernel's layout (each
//! CPU's value rounded up to 8 bytes, CPUs in order), fd-based maps take
//! and return the ids the runtime gave to programs, maps, sockets.
//!
//! ## Concurrency
//!
//! Lookups never take locks: hash buckets and the LPM trie are read under
//! sequence counters (retrying if a writer changed them) and arrays are
//! plain address arithmetic. Writers lock one bucket (hash), the trie, or
//! a small per-map mutex. Value bytes themselves are racy by design.

#![warn(missing_docs)]

use std::any::Any;
use std::sync::Arc;

pub mod array;
pub mod cpumap;
pub mod devmap;
pub mod error;
pub mod fd_array;
pub mod hash;
mod hash_core;
pub mod lpm;
pub mod perf;
pub mod queue_stack;
mod redirect;
pub mod ringbuf;
pub mod storage;
pub mod types;
pub mod xskmap;

pub use array::{ArrayLayout, ArrayMap};
pub use cpumap::{CpuMap, CpumapVal};
pub use devmap::{DevMap, DevMapHash, DevmapVal};
pub use error::{MapError, Result};
pub use fd_array::{ArrayOfMaps, HashOfMaps, ProgArray};
pub use hash::HashMap;
pub use lpm::LpmTrie;
pub use perf::{PerfEventArray, PerfRecord};
pub use queue_stack::QueueStack;
pub use ringbuf::RingBuf;
pub use storage::{spin_lock, spin_unlock};
pub use types::*;
pub use xskmap::XskMap;

/// Highest CPU count a map accepts (the kernel's usual `NR_CPUS`).
pub const MAX_CPUS: u32 = 8192;

/// Attributes of a map to create (`BPF_MAP_CREATE`, plus what uxdp needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapSpec {
    /// `BPF_MAP_TYPE_*` number.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity (ring buffer: data size in bytes).
    pub max_entries: u32,
    /// `BPF_F_*` creation flags.
    pub flags: u32,
    /// Number of CPUs the runtime runs programs on; per-CPU maps keep this
    /// many copies of each value. Must be at least 1.
    pub nr_cpus: u32,
    /// Offset of a `struct bpf_spin_lock` inside the value, as BTF says.
    pub spin_lock_off: Option<u32>,
    /// Map name (for messages).
    pub name: String,
}

impl MapSpec {
    /// A spec with no flags, one CPU, no spin lock and no name.
    pub fn new(map_type: MapType, key_size: u32, value_size: u32, max_entries: u32) -> MapSpec {
        MapSpec {
            map_type: map_type as u32,
            key_size,
            value_size,
            max_entries,
            flags: 0,
            nr_cpus: 1,
            spin_lock_off: None,
            name: String::new(),
        }
    }

    /// Sets the creation flags.
    pub fn flags(mut self, flags: u32) -> MapSpec {
        self.flags = flags;
        self
    }

    /// Sets the CPU count.
    pub fn cpus(mut self, nr_cpus: u32) -> MapSpec {
        self.nr_cpus = nr_cpus;
        self
    }

    /// Sets the spin lock offset.
    pub fn spin_lock(mut self, off: u32) -> MapSpec {
        self.spin_lock_off = Some(off);
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: &str) -> MapSpec {
        self.name = name.to_string();
        self
    }

    /// The type, if the number is known.
    pub fn kind(&self) -> Option<MapType> {
        MapType::from_u32(self.map_type)
    }

    /// `"'name' (hash (1))"` for messages.
    pub(crate) fn describe(&self) -> String {
        if self.name.is_empty() {
            types::type_text(self.map_type)
        } else {
            format!("'{}' ({})", self.name, types::type_text(self.map_type))
        }
    }
}

/// A callback of [`Map::for_each`]: receives a copy of the key and a
/// pointer to the value; returns `true` to stop.
pub type ForEachFn<'a> = dyn FnMut(&[u8], *mut u8) -> bool + 'a;

/// A BPF map. All methods may be called concurrently from any thread.
pub trait Map: Send + Sync + 'static {
    /// The attributes the map was created with (after the kernel's
    /// adjustments, e.g. per-CPU LRU rounding of `max_entries`).
    fn spec(&self) -> &MapSpec;

    // ----- program side (helpers) -----

    /// `bpf_map_lookup_elem`: pointer to the value for `key` as seen by
    /// `cpu`, or `None`. For map-in-map types the result is the inner map's
    /// handle (see [`ArrayOfMaps`]), as the kernel returns the inner map.
    fn lookup(&self, key: &[u8], cpu: u32) -> Option<*mut u8>;

    /// `bpf_map_lookup_percpu_elem`: the value of another CPU (per-CPU
    /// maps only; `None` elsewhere or when `target_cpu >= nr_cpus`).
    fn lookup_percpu(&self, _key: &[u8], _target_cpu: u32) -> Option<*mut u8> {
        None
    }

    /// `bpf_map_update_elem` from a program running on `cpu`. `value` must
    /// hold at least `value_size` bytes.
    fn update(&self, key: &[u8], value: &[u8], flags: u64, cpu: u32) -> Result<()>;

    /// `bpf_map_delete_elem`.
    fn delete(&self, key: &[u8]) -> Result<()>;

    /// `bpf_map_push_elem` (queue, stack).
    fn push(&self, _value: &[u8], _flags: u64) -> Result<()> {
        Err(MapError::invalid(format!("push is not supported on {}", self.spec().describe())))
    }

    /// `bpf_map_pop_elem` (queue, stack) into `out` (`value_size` bytes).
    fn pop(&self, _out: &mut [u8]) -> Result<()> {
        Err(MapError::invalid(format!("pop is not supported on {}", self.spec().describe())))
    }

    /// `bpf_map_peek_elem` (queue, stack) into `out`.
    fn peek(&self, _out: &mut [u8]) -> Result<()> {
        Err(MapError::invalid(format!("peek is not supported on {}", self.spec().describe())))
    }

    /// `bpf_for_each_map_elem` (flags must be 0): visits elements in the
    /// map's iteration order until the callback returns `true`; returns the
    /// number of elements visited. The key is a copy (the runtime must place
    /// it in memory the program may read); the value pointer is that of
    /// `cpu` for per-CPU maps. The callback may update or delete elements.
    fn for_each(&self, _cpu: u32, _flags: u64, _f: &mut ForEachFn<'_>) -> Result<u32> {
        Err(MapError::NotSupported(
            format!("bpf_for_each_map_elem is not supported on {}", self.spec().describe()).into(),
        ))
    }

    // ----- user side (bpf syscall) -----

    /// Bytes of a value as the syscalls exchange it: per-CPU maps
    /// `round_up(value_size, 8) * nr_cpus`, fd maps 4, others `value_size`.
    fn user_value_size(&self) -> usize {
        self.spec().value_size as usize
    }

    /// `BPF_MAP_LOOKUP_ELEM` into `out` (exactly [`Map::user_value_size`]
    /// bytes). Flags: 0 or `BPF_F_LOCK`.
    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()>;

    /// `BPF_MAP_LOOKUP_ELEM` returning the value bytes.
    fn lookup_user(&self, key: &[u8], flags: u64) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.user_value_size()];
        self.lookup_user_into(key, &mut v, flags)?;
        Ok(v)
    }

    /// `BPF_MAP_UPDATE_ELEM` (`value` exactly [`Map::user_value_size`] bytes).
    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()>;

    /// `BPF_MAP_DELETE_ELEM`.
    fn delete_user(&self, key: &[u8]) -> Result<()>;

    /// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (hash types, queue, stack).
    fn lookup_and_delete_user(&self, _key: &[u8], _flags: u64) -> Result<Vec<u8>> {
        Err(MapError::NotSupported(format!("lookup-and-delete is not supported on {}", self.spec().describe()).into()))
    }

    /// `BPF_MAP_GET_NEXT_KEY` into `next` (`key_size` bytes). `None` (or a
    /// key that is not in the map) starts from the first key.
    fn get_next_key_into(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<()>;

    /// `BPF_MAP_GET_NEXT_KEY` returning the key bytes.
    fn get_next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.spec().key_size as usize];
        self.get_next_key_into(key, &mut v)?;
        Ok(v)
    }

    // ----- runtime support -----

    /// All memory a program may reach through pointers from this map, as
    /// `(start address, length)`; fixed for the life of the map.
    fn value_regions(&self) -> Vec<(usize, usize)>;

    /// Whether programs may write the memory of [`Map::value_regions`]
    /// (false with `BPF_F_RDONLY_PROG`, and for devmap/cpumap/xskmap, whose
    /// values the kernel makes read-only to programs).
    fn program_writable(&self) -> bool {
        self.spec().flags & BPF_F_RDONLY_PROG == 0
    }

    /// For downcasting to the concrete type.
    fn as_any(&self) -> &dyn Any;
}

impl dyn Map {
    /// The map's type.
    pub fn map_type(&self) -> Option<MapType> {
        self.spec().kind()
    }

    /// Downcast to a concrete map type.
    pub fn downcast_ref<T: Map>(&self) -> Option<&T> {
        self.as_any().downcast_ref::<T>()
    }

    /// The array behind `array` / `percpu_array` maps.
    pub fn as_array(&self) -> Option<&ArrayMap> {
        self.downcast_ref()
    }

    /// The hash behind the four hash types.
    pub fn as_hash(&self) -> Option<&HashMap> {
        self.downcast_ref()
    }

    /// The LPM trie.
    pub fn as_lpm(&self) -> Option<&LpmTrie> {
        self.downcast_ref()
    }

    /// The program array.
    pub fn as_prog_array(&self) -> Option<&ProgArray> {
        self.downcast_ref()
    }

    /// The array of maps.
    pub fn as_array_of_maps(&self) -> Option<&ArrayOfMaps> {
        self.downcast_ref()
    }

    /// The hash of maps.
    pub fn as_hash_of_maps(&self) -> Option<&HashOfMaps> {
        self.downcast_ref()
    }

    /// The devmap.
    pub fn as_devmap(&self) -> Option<&DevMap> {
        self.downcast_ref()
    }

    /// The devmap_hash.
    pub fn as_devmap_hash(&self) -> Option<&DevMapHash> {
        self.downcast_ref()
    }

    /// The cpumap.
    pub fn as_cpumap(&self) -> Option<&CpuMap> {
        self.downcast_ref()
    }

    /// The xskmap.
    pub fn as_xskmap(&self) -> Option<&XskMap> {
        self.downcast_ref()
    }

    /// The ring buffer.
    pub fn as_ringbuf(&self) -> Option<&RingBuf> {
        self.downcast_ref()
    }

    /// The perf event array.
    pub fn as_perf_event_array(&self) -> Option<&PerfEventArray> {
        self.downcast_ref()
    }

    /// The queue or stack.
    pub fn as_queue_stack(&self) -> Option<&QueueStack> {
        self.downcast_ref()
    }
}

impl std::fmt::Debug for dyn Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Map({})", self.spec().describe())
    }
}

/// Creates a map, checking the attributes as the kernel's `map_alloc_check`
/// functions do (with the same errno).
pub fn create(spec: MapSpec) -> Result<Arc<dyn Map>> {
    check_common(&spec)?;
    let Some(kind) = MapType::from_u32(spec.map_type) else {
        return Err(MapError::UnsupportedMapType { type_num: spec.map_type, name: None });
    };
    Ok(match kind {
        MapType::Array | MapType::PercpuArray => Arc::new(ArrayMap::new(spec)?),
        MapType::Hash | MapType::PercpuHash | MapType::LruHash | MapType::LruPercpuHash => {
            Arc::new(HashMap::new(spec)?)
        }
        MapType::LpmTrie => Arc::new(LpmTrie::new(spec)?),
        MapType::ProgArray => Arc::new(ProgArray::new(spec)?),
        MapType::ArrayOfMaps => Arc::new(ArrayOfMaps::new(spec)?),
        MapType::HashOfMaps => Arc::new(HashOfMaps::new(spec)?),
        MapType::Devmap => Arc::new(DevMap::new(spec)?),
        MapType::DevmapHash => Arc::new(DevMapHash::new(spec)?),
        MapType::Cpumap => Arc::new(CpuMap::new(spec)?),
        MapType::Xskmap => Arc::new(XskMap::new(spec)?),
        MapType::Ringbuf => Arc::new(RingBuf::new(spec)?),
        MapType::PerfEventArray => Arc::new(PerfEventArray::new(spec)?),
        MapType::Queue | MapType::Stack => Arc::new(QueueStack::new(spec)?),
        other => return Err(MapError::UnsupportedMapType { type_num: other as u32, name: Some(other.name()) }),
    })
}

/// Checks shared by every type: CPU count, access flags, spin lock.
fn check_common(spec: &MapSpec) -> Result<()> {
    if spec.nr_cpus == 0 || spec.nr_cpus > MAX_CPUS {
        return Err(MapError::invalid(format!(
            "{}: nr_cpus {} is outside 1..={MAX_CPUS}",
            spec.describe(),
            spec.nr_cpus
        )));
    }
    if spec.flags & BPF_F_RDONLY != 0 && spec.flags & BPF_F_WRONLY != 0 {
        return Err(MapError::invalid(format!("{}: BPF_F_RDONLY and BPF_F_WRONLY together", spec.describe())));
    }
    if let Some(off) = spec.spin_lock_off {
        let kind = spec.kind();
        if !matches!(kind, Some(MapType::Hash) | Some(MapType::Array)) {
            return Err(MapError::OpNotSupported(
                format!("{}: bpf_spin_lock is only supported in hash and array maps", spec.describe()).into(),
            ));
        }
        if off % 4 != 0 || off as u64 + 4 > spec.value_size as u64 {
            return Err(MapError::invalid(format!(
                "{}: bpf_spin_lock at offset {off} does not fit aligned in a {}-byte value",
                spec.describe(),
                spec.value_size
            )));
        }
    }
    Ok(())
}

/// `bpf_map_flags_access_ok`: not both program-read-only and -write-only.
pub(crate) fn access_ok(flags: u32) -> bool {
    flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)
}

/// Checks that `spec` is of type `t` (the first check of a type's constructor).
pub(crate) fn expect_type(spec: &MapSpec, t: MapType) -> Result<()> {
    if spec.kind() != Some(t) {
        let name = t.name();
        let article = if name.starts_with(['a', 'e', 'i', 'o', 'u', 'x']) { "an" } else { "a" };
        return Err(MapError::invalid(format!("{} is not {article} {name}", spec.describe())));
    }
    Ok(())
}

/// The error of a program-side update or delete on maps that programs may
/// only use otherwise (`what`: "redirect", "output", ...).
pub(crate) fn prog_may_only(spec: &MapSpec, what: &str) -> MapError {
    MapError::OpNotSupported(format!("{}: programs may only {what}", spec.describe()).into())
}

/// Checks that `flags` has no bit outside `mask`.
pub(crate) fn check_flags(spec: &MapSpec, mask: u32) -> Result<()> {
    let bad = spec.flags & !mask;
    if bad != 0 {
        return Err(MapError::invalid(format!("{}: unsupported creation flags {bad:#x}", spec.describe())));
    }
    if !access_ok(spec.flags) {
        return Err(MapError::invalid(format!(
            "{}: BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG together",
            spec.describe()
        )));
    }
    Ok(())
}

/// Checks a key's length against `key_size`.
#[inline]
pub(crate) fn check_key(spec: &MapSpec, key: &[u8]) -> Result<()> {
    if key.len() != spec.key_size as usize {
        return Err(bad_key(spec, key.len()));
    }
    Ok(())
}

#[cold]
fn bad_key(spec: &MapSpec, len: usize) -> MapError {
    MapError::invalid(format!("{}: key is {len} bytes, key_size is {}", spec.describe(), spec.key_size))
}

/// Checks a user-side value buffer length.
#[inline]
pub(crate) fn check_user_value(spec: &MapSpec, len: usize, want: usize) -> Result<()> {
    if len != want {
        return Err(MapError::invalid(format!("{}: value buffer is {len} bytes, expected {want}", spec.describe())));
    }
    Ok(())
}

/// Checks a program-side value buffer (at least `value_size` bytes).
#[inline]
pub(crate) fn check_prog_value(spec: &MapSpec, len: usize) -> Result<()> {
    if len < spec.value_size as usize {
        return Err(MapError::invalid(format!(
            "{}: value is {len} bytes, value_size is {}",
            spec.describe(),
            spec.value_size
        )));
    }
    Ok(())
}

/// Checks the executing CPU number.
#[inline]
pub(crate) fn check_cpu(spec: &MapSpec, cpu: u32) -> Result<()> {
    if cpu >= spec.nr_cpus {
        return Err(MapError::invalid(format!("{}: cpu {cpu} is not below nr_cpus {}", spec.describe(), spec.nr_cpus)));
    }
    Ok(())
}

/// The `u32` index of a 4-byte key (native byte order, as the kernel reads it).
#[inline]
pub(crate) fn key_u32(key: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&key[..4]);
    u32::from_ne_bytes(b)
}

/// Array-style `get_next_key`: index order, a missing or out-of-range key
/// restarts at 0.
pub(crate) fn array_next_key(spec: &MapSpec, key: Option<&[u8]>, next: &mut [u8]) -> Result<()> {
    if next.len() != 4 {
        return Err(MapError::invalid(format!("{}: next-key buffer must be 4 bytes", spec.describe())));
    }
    let index = match key {
        Some(k) => {
            check_key(spec, k)?;
            key_u32(k)
        }
        None => u32::MAX,
    };
    let n = if index >= spec.max_entries {
        0
    } else if index == spec.max_entries - 1 {
        return Err(MapError::NotFound);
    } else {
        index + 1
    };
    next.copy_from_slice(&n.to_ne_bytes());
    Ok(())
}

/// Update flags of maps that take only `BPF_ANY` (fd arrays, perf event arrays).
pub(crate) fn check_any_flags(spec: &MapSpec, flags: u64) -> Result<()> {
    if flags != BPF_ANY {
        return Err(MapError::invalid(format!("{}: update flags must be BPF_ANY", spec.describe())));
    }
    Ok(())
}

/// The update checks of the kernel's arrays (per-CPU array, devmap, cpumap)
/// in their order: unknown flags `EINVAL`, index out of range `E2BIG`,
/// `BPF_NOEXIST` `EEXIST` (every index exists).
pub(crate) fn array_update_checks(spec: &MapSpec, index: u32, flags: u64) -> Result<()> {
    if flags > BPF_EXIST {
        return Err(MapError::invalid(format!("{}: unknown update flags {flags:#x}", spec.describe())));
    }
    if index >= spec.max_entries {
        return Err(MapError::IndexOutOfRange { index, max_entries: spec.max_entries });
    }
    if flags == BPF_NOEXIST {
        return Err(MapError::Exists);
    }
    Ok(())
}

/// The index of a user-side delete of a devmap, cpumap or xskmap: out of
/// range is `EINVAL` (fd arrays say `E2BIG` instead).
pub(crate) fn delete_index(spec: &MapSpec, key: &[u8]) -> Result<u32> {
    check_key(spec, key)?;
    let i = key_u32(key);
    if i >= spec.max_entries {
        return Err(MapError::invalid(format!(
            "{}: index {i} out of range (max_entries {})",
            spec.describe(),
            spec.max_entries
        )));
    }
    Ok(i)
}

/// The checks of `bpf_for_each_map_elem` on arrays and hashes: flags 0 and,
/// for per-CPU maps, a valid CPU.
pub(crate) fn check_for_each(spec: &MapSpec, percpu: bool, cpu: u32, flags: u64) -> Result<()> {
    if flags != 0 {
        return Err(MapError::invalid(format!("{}: for_each flags must be 0", spec.describe())));
    }
    if percpu {
        check_cpu(spec, cpu)?;
    }
    Ok(())
}

/// The checks of a user-side update of arrays and hashes: `BPF_F_LOCK`
/// needs a spin lock (the syscall checks this before the map sees it), and
/// the value buffer must be `want` bytes.
pub(crate) fn check_user_update(spec: &MapSpec, flags: u64, len: usize, want: usize) -> Result<()> {
    if flags & BPF_F_LOCK != 0 && spec.spin_lock_off.is_none() {
        return Err(no_lock(spec));
    }
    check_user_value(spec, len, want)
}

/// Bytes of a user-side value: per-CPU maps one `stride` per CPU, others
/// `value_size`.
pub(crate) fn percpu_user_size(spec: &MapSpec, percpu: bool, stride: usize) -> usize {
    if percpu {
        stride * spec.nr_cpus as usize
    } else {
        spec.value_size as usize
    }
}

/// Checks a `get_next_key` output buffer.
#[inline]
pub(crate) fn check_next_buf(spec: &MapSpec, next: &[u8]) -> Result<()> {
    if next.len() != spec.key_size as usize {
        return Err(MapError::invalid(format!(
            "{}: next-key buffer is {} bytes, key_size is {}",
            spec.describe(),
            next.len(),
            spec.key_size
        )));
    }
    Ok(())
}

/// Checks `lookup` syscall flags (0 or `BPF_F_LOCK` with a spin lock).
pub(crate) fn check_lookup_flags(spec: &MapSpec, flags: u64) -> Result<()> {
    if flags & !BPF_F_LOCK != 0 {
        return Err(MapError::invalid(format!("{}: lookup flags {flags:#x} are not 0 or BPF_F_LOCK", spec.describe())));
    }
    if flags & BPF_F_LOCK != 0 && spec.spin_lock_off.is_none() {
        return Err(no_lock(spec));
    }
    Ok(())
}

#[cold]
pub(crate) fn no_lock(spec: &MapSpec) -> MapError {
    MapError::invalid(format!("{}: BPF_F_LOCK on a map without bpf_spin_lock", spec.describe()))
}

/// Helpers shared by the unit tests.
#[cfg(test)]
mod test_util {
    /// A 4-byte key or value holding `i`.
    pub(crate) fn k(i: u32) -> [u8; 4] {
        i.to_ne_bytes()
    }

    /// A devmap or cpumap value: `first` (ifindex or qsize), then `prog`.
    pub(crate) fn val(first: u32, prog: i32) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&first.to_ne_bytes());
        b[4..].copy_from_slice(&prog.to_ne_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_unsupported_types_are_named() {
        let e = create(MapSpec::new(MapType::SkStorage, 4, 4, 0)).unwrap_err();
        assert_eq!(e.to_string(), "sk_storage (24) is not supported");
        assert_eq!(e.errno(), -error::EINVAL);
        let mut s = MapSpec::new(MapType::Hash, 4, 4, 1);
        s.map_type = 77;
        assert_eq!(create(s).unwrap_err().to_string(), "unknown map type 77");
        let e = create(MapSpec::new(MapType::BloomFilter, 0, 4, 8)).unwrap_err();
        assert_eq!(e.to_string(), "bloom_filter (30) is not supported");
    }

    #[test]
    fn common_checks() {
        let e = create(MapSpec::new(MapType::Array, 4, 4, 1).cpus(0)).unwrap_err();
        assert_eq!(e.errno(), -error::EINVAL);
        let e = create(MapSpec::new(MapType::Array, 4, 4, 1).flags(BPF_F_RDONLY | BPF_F_WRONLY)).unwrap_err();
        assert_eq!(e.errno(), -error::EINVAL);
        let e = create(MapSpec::new(MapType::Array, 4, 4, 1).flags(BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)).unwrap_err();
        assert_eq!(e.errno(), -error::EINVAL);
        // Spin lock: only hash and array, aligned and inside the value.
        let e = create(MapSpec::new(MapType::LruHash, 4, 8, 4).spin_lock(0)).unwrap_err();
        assert_eq!(e.errno(), -error::EOPNOTSUPP);
        assert!(e.to_string().contains("lru_hash"), "{e}");
        let e = create(MapSpec::new(MapType::Array, 4, 8, 4).spin_lock(6)).unwrap_err();
        assert_eq!(e.errno(), -error::EINVAL);
        let e = create(MapSpec::new(MapType::Array, 4, 8, 4).spin_lock(8)).unwrap_err();
        assert_eq!(e.errno(), -error::EINVAL);
        assert!(create(MapSpec::new(MapType::Array, 4, 8, 4).spin_lock(4)).is_ok());
    }

    #[test]
    fn downcasts() {
        let m = create(MapSpec::new(MapType::Array, 4, 8, 4)).unwrap();
        assert!(m.as_array().is_some());
        assert!(m.as_hash().is_none());
        assert_eq!(m.map_type(), Some(MapType::Array));
        assert_eq!(format!("{m:?}"), "Map(array (2))");
    }
}
