//! Stable value memory and the small lock-free building blocks of the maps.
//!
//! # Safety contract of value memory
//!
//! Every byte a program can reach through a pointer returned by a map lives
//! in a [`Slab`]: one zero-initialised, 8-byte-aligned allocation made when
//! the map is created, never moved, resized or freed before the map itself is
//! dropped. The slab is a `Box<[UnsafeCell<u64>]>`; nothing in this crate
//! ever creates a Rust reference (`&`/`&mut`) into it, all accesses go through
//! raw pointers derived from the allocation, so programs (interpreted or
//! JIT-compiled) may read and write it at any time from any thread.
//!
//! Exactly like in the kernel, *values* are racy: a program that writes a
//! value while another thread copies it may be observed half-written. The
//! maps' own structure (keys, links, counters, positions) never lives in a
//! slab and is only touched through atomics or under locks, so a program
//! that scribbles over value memory cannot corrupt a map.

use std::alloc::{alloc_zeroed, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::error::{MapError, Result};

/// Types whose all-zero bit pattern is a valid value.
///
/// # Safety
/// Implementors must be valid when zero-initialised.
pub(crate) unsafe trait Zeroable {}
// SAFETY: atomics of integers and UnsafeCell<u64> are valid when zero.
unsafe impl Zeroable for AtomicU64 {}
// SAFETY: as above.
unsafe impl Zeroable for AtomicU32 {}
// SAFETY: as above.
unsafe impl Zeroable for AtomicU8 {}
// SAFETY: as above.
unsafe impl Zeroable for UnsafeCell<u64> {}

/// Allocates `n` (at least 1) zeroed `T`s, returning `ENOMEM` instead of
/// aborting when the allocation fails. Large allocations come from `calloc`
/// and are backed lazily by the OS, so untouched capacity costs no memory.
pub(crate) fn zeroed_slice<T: Zeroable>(n: usize, what: &'static str) -> Result<Box<[T]>> {
    let n = n.max(1);
    let layout = Layout::array::<T>(n)
        .map_err(|_| MapError::NoMemory(format!("{what}: {n} elements overflow the address space").into()))?;
    // SAFETY: layout has non-zero size (n >= 1 and T is not a ZST).
    let p = unsafe { alloc_zeroed(layout) } as *mut T;
    if p.is_null() {
        return Err(MapError::NoMemory(format!("{what}: cannot allocate {} bytes", layout.size()).into()));
    }
    // SAFETY: `p` was allocated by the global allocator with the layout of
    // `[T; n]`, and all-zero bytes are a valid `T` (Zeroable).
    Ok(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)) })
}

/// A contiguous, 8-byte-aligned, zero-initialised block of value memory that
/// never moves. See the module documentation for the safety contract.
pub struct Slab {
    cells: Box<[UnsafeCell<u64>]>,
    len: usize,
}

// SAFETY: the slab is plain memory shared with programs; all accesses are
// through raw pointers and its races are those of BPF value memory (see the
// module documentation). The allocation itself is owned and freed once.
unsafe impl Send for Slab {}
// SAFETY: as above.
unsafe impl Sync for Slab {}

impl Slab {
    /// A slab of `len` bytes (rounded up to 8).
    pub(crate) fn new(len: usize, what: &'static str) -> Result<Slab> {
        let words = len.div_ceil(8);
        let cells = zeroed_slice::<UnsafeCell<u64>>(words, what)?;
        Ok(Slab { cells, len })
    }

    /// Start address.
    pub fn base(&self) -> *mut u8 {
        UnsafeCell::raw_get(self.cells.as_ptr()) as *mut u8
    }

    /// Length in bytes as requested.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slab is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pointer `off` bytes into the slab. `off` must be within the slab.
    #[inline]
    pub(crate) fn at(&self, off: usize) -> *mut u8 {
        debug_assert!(off <= self.len);
        // SAFETY: in bounds of the allocation (caller contract, checked in
        // debug builds).
        unsafe { self.base().add(off) }
    }

    /// The region `(start, len)`.
    pub(crate) fn region(&self) -> (usize, usize) {
        (self.base() as usize, self.len)
    }
}

/// `x` rounded up to a multiple of 8.
#[inline]
pub(crate) const fn round8(x: usize) -> usize {
    (x + 7) & !7
}

/// Spin/yield backoff for short waits on locks held by other threads.
#[inline]
pub(crate) fn backoff(spins: &mut u32) {
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
    *spins = spins.saturating_add(1);
}

/// Copies `src` into value memory at `dst`, leaving the 4 bytes of a
/// `bpf_spin_lock` at `lock_off` untouched (the kernel's `copy_map_value`).
///
/// # Safety
/// `dst..dst+src.len()` must be value memory of a live map.
#[inline]
pub(crate) unsafe fn copy_in(dst: *mut u8, src: &[u8], lock_off: Option<u32>) {
    match lock_off {
        Some(off) if (off as usize) < src.len() => {
            let off = off as usize;
            let end = (off + 4).min(src.len());
            // SAFETY: both ranges are within dst/src (caller contract).
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr(), dst, off);
                std::ptr::copy_nonoverlapping(src.as_ptr().add(end), dst.add(end), src.len() - end);
            }
        }
        // SAFETY: caller contract.
        _ => unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) },
    }
}

/// Copies value memory at `src` into `dst`, zeroing the `bpf_spin_lock`
/// bytes in the copy (the kernel's `check_and_init_map_value`).
///
/// # Safety
/// `src..src+dst.len()` must be value memory of a live map.
#[inline]
pub(crate) unsafe fn copy_out(dst: &mut [u8], src: *const u8, lock_off: Option<u32>) {
    // SAFETY: caller contract.
    unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
    if let Some(off) = lock_off {
        let off = off as usize;
        if off < dst.len() {
            let end = (off + 4).min(dst.len());
            dst[off..end].fill(0);
        }
    }
}

/// Zeroes `len` bytes of value memory, except a spin lock.
///
/// # Safety
/// `dst..dst+len` must be value memory of a live map.
#[inline]
pub(crate) unsafe fn zero_value(dst: *mut u8, len: usize, lock_off: Option<u32>) {
    match lock_off {
        Some(off) if (off as usize) < len => {
            let off = off as usize;
            let end = (off + 4).min(len);
            // SAFETY: caller contract.
            unsafe {
                std::ptr::write_bytes(dst, 0, off);
                std::ptr::write_bytes(dst.add(end), 0, len - end);
            }
        }
        // SAFETY: caller contract.
        _ => unsafe { std::ptr::write_bytes(dst, 0, len) },
    }
}

/// Acquires the `bpf_spin_lock` (a 4-byte word, 0 = unlocked) at `lock`.
/// This is what the `bpf_spin_lock` helper does; it spins, then yields.
///
/// # Safety
/// `lock` must be 4-byte aligned and point into value memory of a live map.
pub unsafe fn spin_lock(lock: *mut u8) {
    // SAFETY: aligned, live memory (caller contract); all accesses to a lock
    // word go through atomics.
    let word = unsafe { &*(lock as *const AtomicU32) };
    let mut spins = 0;
    loop {
        if word.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            return;
        }
        while word.load(Ordering::Relaxed) != 0 {
            backoff(&mut spins);
        }
    }
}

/// Releases the `bpf_spin_lock` at `lock`.
///
/// # Safety
/// As for [`spin_lock`]; the lock must be held by the caller.
pub unsafe fn spin_unlock(lock: *mut u8) {
    // SAFETY: caller contract.
    let word = unsafe { &*(lock as *const AtomicU32) };
    word.store(0, Ordering::Release);
}

/// Copies `src` into the value at `dst` while holding the value's spin lock
/// at `lock_off` (the kernel's `copy_map_value_locked`, update direction).
///
/// # Safety
/// As for [`copy_in`]; `lock_off` must be a valid, aligned lock offset.
pub(crate) unsafe fn copy_in_locked(dst: *mut u8, src: &[u8], lock_off: u32) {
    // SAFETY: caller contract.
    unsafe {
        let lock = dst.add(lock_off as usize);
        spin_lock(lock);
        copy_in(dst, src, Some(lock_off));
        spin_unlock(lock);
    }
}

/// Copies the value at `src` out while holding its spin lock.
///
/// # Safety
/// As for [`copy_out`]; `lock_off` must be a valid, aligned lock offset.
pub(crate) unsafe fn copy_out_locked(dst: &mut [u8], src: *mut u8, lock_off: u32) {
    // SAFETY: caller contract.
    unsafe {
        let lock = src.add(lock_off as usize);
        spin_lock(lock);
        copy_out(dst, src, Some(lock_off));
        spin_unlock(lock);
    }
}

/// Copies `src` into a value: under its spin lock when `locked` and the map
/// has one ([`copy_in_locked`]), otherwise [`copy_in`].
///
/// # Safety
/// As for [`copy_in`]; `lock_off` must be a valid, aligned lock offset.
#[inline]
pub(crate) unsafe fn copy_in_value(dst: *mut u8, src: &[u8], locked: bool, lock_off: Option<u32>) {
    // SAFETY: caller contract.
    unsafe {
        match (locked, lock_off) {
            (true, Some(off)) => copy_in_locked(dst, src, off),
            _ => copy_in(dst, src, lock_off),
        }
    }
}

/// Copies a value out: under its spin lock when `locked` and the map has
/// one ([`copy_out_locked`]), otherwise [`copy_out`].
///
/// # Safety
/// As for [`copy_out`]; `lock_off` must be a valid, aligned lock offset.
#[inline]
pub(crate) unsafe fn copy_out_value(dst: &mut [u8], src: *mut u8, locked: bool, lock_off: Option<u32>) {
    // SAFETY: caller contract.
    unsafe {
        match (locked, lock_off) {
            (true, Some(off)) => copy_out_locked(dst, src, off),
            _ => copy_out(dst, src, lock_off),
        }
    }
}

/// Copies the values of every CPU out in the syscall's per-CPU layout:
/// CPU `c`'s `stride` bytes (value and padding) from `at(c)` go to
/// `dst[c * stride..]`.
///
/// # Safety
/// `at(c)..at(c)+stride` must be value memory of a live map for every
/// `c < nr_cpus`, and `dst` at least `nr_cpus * stride` bytes.
pub(crate) unsafe fn copy_out_percpu(dst: &mut [u8], nr_cpus: u32, stride: usize, at: impl Fn(u32) -> *mut u8) {
    for c in 0..nr_cpus {
        let o = c as usize * stride;
        // SAFETY: caller contract.
        unsafe { copy_out(&mut dst[o..o + stride], at(c), None) };
    }
}

/// Link value meaning "no element" in the `index + 1` encoding used by all
/// chains (so that zeroed memory is an empty structure).
pub(crate) const NIL: u32 = 0;

/// A lock-free stack of free slot indices (Treiber stack with an ABA tag)
/// plus a bump allocator for never-used slots, so that creating a large map
/// touches no per-slot memory.
pub(crate) struct FreeList {
    /// `tag << 32 | (index + 1)`; low half `NIL` = empty.
    head: AtomicU64,
    next: Box<[AtomicU32]>,
    bump: AtomicU32,
    capacity: u32,
}

impl FreeList {
    pub(crate) fn new(capacity: u32, what: &'static str) -> Result<FreeList> {
        Ok(FreeList {
            head: AtomicU64::new(0),
            next: zeroed_slice(capacity as usize, what)?,
            bump: AtomicU32::new(0),
            capacity,
        })
    }

    /// Takes a free slot.
    pub(crate) fn pop(&self) -> Option<u32> {
        loop {
            let mut h = self.head.load(Ordering::Acquire);
            loop {
                let link = h as u32;
                if link == NIL {
                    break;
                }
                let idx = link - 1;
                let next = self.next[idx as usize].load(Ordering::Relaxed);
                let new = ((h >> 32).wrapping_add(1) << 32) | next as u64;
                match self.head.compare_exchange_weak(h, new, Ordering::Acquire, Ordering::Acquire) {
                    Ok(_) => return Some(idx),
                    Err(cur) => h = cur,
                }
            }
            // Never-used slots.
            let mut b = self.bump.load(Ordering::Relaxed);
            while b < self.capacity {
                match self.bump.compare_exchange_weak(b, b + 1, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => return Some(b),
                    Err(cur) => b = cur,
                }
            }
            // Retry only if a slot was pushed meanwhile.
            if self.head.load(Ordering::Acquire) as u32 == NIL {
                return None;
            }
        }
    }

    /// Returns a slot.
    pub(crate) fn push(&self, idx: u32) {
        let mut h = self.head.load(Ordering::Relaxed);
        loop {
            self.next[idx as usize].store(h as u32, Ordering::Relaxed);
            let new = ((h >> 32).wrapping_add(1) << 32) | (idx as u64 + 1);
            match self.head.compare_exchange_weak(h, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(cur) => h = cur,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_is_aligned_and_zeroed() {
        let s = Slab::new(100, "test").unwrap();
        assert_eq!(s.base() as usize % 8, 0);
        assert_eq!(s.len(), 100);
        for i in 0..100 {
            // SAFETY: in bounds.
            assert_eq!(unsafe { *s.at(i) }, 0);
        }
    }

    #[test]
    fn copy_skips_spin_lock() {
        let s = Slab::new(16, "test").unwrap();
        let src: Vec<u8> = (1..=16).collect();
        // SAFETY: 16 bytes of slab.
        unsafe { copy_in(s.base(), &src, Some(4)) };
        let mut out = [0xffu8; 16];
        // SAFETY: 16 bytes of slab.
        unsafe { copy_out(&mut out, s.base(), None) };
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
        assert_eq!(&out[4..8], &[0, 0, 0, 0]);
        assert_eq!(&out[8..], &src[8..]);
        // SAFETY: 16 bytes of slab.
        unsafe { copy_out(&mut out, s.base(), Some(8)) };
        assert_eq!(&out[8..12], &[0, 0, 0, 0]);
    }

    #[test]
    fn spin_lock_excludes() {
        use std::sync::Arc;
        let s = Arc::new(Slab::new(16, "test").unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        // SAFETY: lock word at 0, counter at 8, in the slab.
                        unsafe {
                            spin_lock(s.base());
                            let c = s.at(8) as *mut u64;
                            c.write(c.read() + 1);
                            spin_unlock(s.base());
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: in bounds, no writers left.
        assert_eq!(unsafe { (s.at(8) as *const u64).read() }, 40_000);
    }

    #[test]
    fn free_list_hands_out_each_slot_once() {
        let f = FreeList::new(5, "test").unwrap();
        let mut got: Vec<u32> = std::iter::from_fn(|| f.pop()).collect();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        f.push(3);
        f.push(1);
        assert_eq!(f.pop(), Some(1));
        assert_eq!(f.pop(), Some(3));
        assert_eq!(f.pop(), None);
    }

    #[test]
    fn free_list_concurrent() {
        use std::sync::Arc;
        let f = Arc::new(FreeList::new(64, "test").unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if let Some(i) = f.pop() {
                            f.push(i);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut got: Vec<u32> = std::iter::from_fn(|| f.pop()).collect();
        got.sort();
        assert_eq!(got, (0..64).collect::<Vec<_>>());
    }
}
