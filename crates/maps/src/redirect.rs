//! Pieces shared by the redirect maps (`devmap`, `devmap_hash`, `cpumap`,
//! `xskmap`): their size checks, the two-word values of devmaps and
//! cpumaps (`{ u32; u32 bpf_prog; }`, stored as one atomic 8-byte word),
//! and the array of such words with a present flag per slot.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::error::{MapError, Result};
use crate::storage::{zeroed_slice, Slab};
use crate::{check_key, check_lookup_flags, check_user_value, expect_type, key_u32, MapSpec, MapType};

/// Checks the type and sizes: `max_entries > 0`, `key_size` 4 and a
/// `value_size` in `value_sizes` (spelled `sizes_text` in the message).
pub(crate) fn check_dims(spec: &MapSpec, t: MapType, value_sizes: &[u32], sizes_text: &str) -> Result<()> {
    expect_type(spec, t)?;
    if spec.max_entries == 0 || spec.key_size != 4 || !value_sizes.contains(&spec.value_size) {
        return Err(MapError::invalid(format!(
            "{}: needs max_entries > 0, key_size 4 and value_size {sizes_text} (got {}, {}, {})",
            spec.describe(),
            spec.max_entries,
            spec.key_size,
            spec.value_size
        )));
    }
    Ok(())
}

/// Packs a two-word value in memory order.
pub(crate) fn pack(first: u32, prog_id: u32) -> u64 {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&first.to_ne_bytes());
    b[4..].copy_from_slice(&prog_id.to_ne_bytes());
    u64::from_ne_bytes(b)
}

/// Unpacks a word written by [`pack`].
pub(crate) fn unpack(w: u64) -> (u32, u32) {
    let b = w.to_ne_bytes();
    (u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), u32::from_ne_bytes([b[4], b[5], b[6], b[7]]))
}

/// The common start of a user-side update of a devmap, devmap_hash or
/// cpumap: checks the key and value sizes; returns the key as `u32` and
/// the value's words. A value of 4 bytes has no program; a program id that
/// is not `> 0` as `i32` means none (0).
pub(crate) fn parse_update(spec: &MapSpec, key: &[u8], value: &[u8]) -> Result<(u32, u32, u32)> {
    check_key(spec, key)?;
    check_user_value(spec, value.len(), spec.value_size as usize)?;
    let mut b = [0u8; 8];
    let n = value.len().min(8);
    b[..n].copy_from_slice(&value[..n]);
    let prog = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]).max(0) as u32;
    Ok((key_u32(key), u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), prog))
}

/// `BPF_MAP_LOOKUP_ELEM` of a devmap, devmap_hash or cpumap: the first
/// `value_size` bytes of the word `get` finds for the key.
pub(crate) fn lookup_word_user(
    spec: &MapSpec,
    key: &[u8],
    out: &mut [u8],
    flags: u64,
    get: impl FnOnce(u32) -> Option<u64>,
) -> Result<()> {
    check_lookup_flags(spec, flags)?;
    check_key(spec, key)?;
    check_user_value(spec, out.len(), spec.value_size as usize)?;
    let w = get(key_u32(key)).ok_or(MapError::NotFound)?.to_ne_bytes();
    out.copy_from_slice(&w[..out.len()]);
    Ok(())
}

/// Atomically stores a whole 8-byte value into value memory.
pub(crate) fn store_word(p: *mut u8, w: u64) {
    // SAFETY: p is an 8-aligned 8-byte value of a live slab; all writes by
    // the map are atomic (programs may only read these values).
    unsafe { (*(p as *const AtomicU64)).store(w, Ordering::Release) }
}

/// Atomically loads a value written by [`store_word`].
pub(crate) fn load_word(p: *mut u8) -> u64 {
    // SAFETY: as for store_word.
    unsafe { (*(p as *const AtomicU64)).load(Ordering::Acquire) }
}

/// An array of 8-byte words, each present or not (devmap, cpumap).
pub(crate) struct WordSlots {
    present: Box<[AtomicU8]>,
    values: Slab,
}

impl WordSlots {
    /// `n` empty slots; `slots_what` / `values_what` name the allocations.
    pub(crate) fn new(n: usize, slots_what: &'static str, values_what: &'static str) -> Result<WordSlots> {
        Ok(WordSlots { present: zeroed_slice(n, slots_what)?, values: Slab::new(n * 8, values_what)? })
    }

    /// Address of the word at `index` if present.
    #[inline]
    pub(crate) fn ptr(&self, index: u32) -> Option<*mut u8> {
        if self.present.get(index as usize)?.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(self.values.at(index as usize * 8))
    }

    /// The word at `index` if present.
    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<u64> {
        self.ptr(index).map(load_word)
    }

    /// Stores `w` at `index` (in range) and marks it present.
    pub(crate) fn set(&self, index: u32, w: u64) {
        store_word(self.values.at(index as usize * 8), w);
        self.present[index as usize].store(1, Ordering::Release);
    }

    /// Marks `index` (in range) absent.
    pub(crate) fn clear(&self, index: u32) {
        self.present[index as usize].store(0, Ordering::Release);
    }

    /// The value memory region.
    pub(crate) fn region(&self) -> (usize, usize) {
        self.values.region()
    }
}
