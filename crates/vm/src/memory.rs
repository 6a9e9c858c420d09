//! Memory regions a program may touch, and the checked accesses the
//! interpreter and helpers perform through them.
//!
//! A running program only ever dereferences addresses that fall entirely
//! inside one of its regions: its stack, its context, the packet, and the
//! value memory of the maps it uses. Anything else is a [`crate::VmError::Memory`]
//! fault naming the instruction, never undefined behaviour.

use core::mem::MaybeUninit;

/// One contiguous range of host memory a program may access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// Whether stores are allowed.
    pub writable: bool,
}

impl Region {
    /// A region covering `slice`, read-only.
    pub fn of_slice(slice: &[u8]) -> Region {
        Region { start: slice.as_ptr() as u64, len: slice.len() as u64, writable: false }
    }

    /// A region covering `slice`, writable.
    pub fn of_mut_slice(slice: &mut [u8]) -> Region {
        Region { start: slice.as_mut_ptr() as u64, len: slice.len() as u64, writable: true }
    }

    /// Whether `[addr, addr+len)` lies inside the region (and writes are allowed if `write`).
    #[inline(always)]
    pub fn contains(&self, addr: u64, len: u64, write: bool) -> bool {
        let off = addr.wrapping_sub(self.start);
        off < self.len && self.len - off >= len && (self.writable || !write)
    }
}

/// Maximum number of per-run regions (stack, context, packet, and a few more
/// that helpers may add, e.g. a dynptr's backing buffer).
pub const MAX_DYNAMIC_REGIONS: usize = 8;

/// The set of regions of one run: a small array of per-run regions (stack
/// first, the most frequent target) plus the program's shared, sorted list
/// of map-value regions.
///
/// Only the first `n` per-run slots are initialised: a machine is built per
/// packet, so the unused slots are not written at all.
#[derive(Clone)]
pub struct Memory<'a> {
    dynamic: [MaybeUninit<Region>; MAX_DYNAMIC_REGIONS],
    n: usize,
    shared: &'a [Region],
    /// Bumped by every [`Memory::push`] and [`Memory::set`].
    gen: u32,
}

impl core::fmt::Debug for Memory<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Memory").field("dynamic", &self.dynamic()).field("shared", &self.shared).finish()
    }
}

impl<'a> Memory<'a> {
    /// Per-run regions plus a shared list (usually the program's map values).
    #[inline]
    pub fn new(shared: &'a [Region]) -> Self {
        Memory { dynamic: [MaybeUninit::uninit(); MAX_DYNAMIC_REGIONS], n: 0, shared, gen: 0 }
    }

    /// Per-run regions starting with `first` (e.g. the stack), plus a
    /// shared list.
    #[inline]
    pub fn with_first(first: Region, shared: &'a [Region]) -> Self {
        let mut dynamic = [MaybeUninit::uninit(); MAX_DYNAMIC_REGIONS];
        dynamic[0] = MaybeUninit::new(first);
        Memory { dynamic, n: 1, shared, gen: 0 }
    }

    /// Adds a per-run region; returns its slot (for [`Memory::set`]), or
    /// `None` if all slots are in use.
    #[inline]
    pub fn push(&mut self, r: Region) -> Option<usize> {
        if self.n == MAX_DYNAMIC_REGIONS {
            return None;
        }
        self.dynamic[self.n] = MaybeUninit::new(r);
        self.n += 1;
        self.gen = self.gen.wrapping_add(1);
        Some(self.n - 1)
    }

    /// Replaces per-run region `slot` (e.g. the packet after `xdp_adjust_head`).
    pub fn set(&mut self, slot: usize, r: Region) {
        if slot < self.n {
            self.dynamic[slot] = MaybeUninit::new(r);
            self.gen = self.gen.wrapping_add(1);
        }
    }

    /// Changes whenever a per-run region is added or replaced (and is
    /// carried over by [`Memory::clone_with_shared`]): native code compares
    /// it to skip reloading its copy of the per-run regions after helper
    /// calls that left them alone.
    #[inline]
    pub fn generation(&self) -> u32 {
        self.gen
    }

    /// All per-run regions, in slot order.
    #[inline]
    pub fn dynamic(&self) -> &[Region] {
        let init = &self.dynamic[..self.n.min(MAX_DYNAMIC_REGIONS)];
        // SAFETY: slots below `n` are initialised (`push` writes a slot
        // before counting it), and `MaybeUninit<Region>` has the layout of
        // `Region`.
        unsafe { core::slice::from_raw_parts(init.as_ptr().cast::<Region>(), init.len()) }
    }

    /// The per-run region in `slot`.
    pub fn get(&self, slot: usize) -> Option<Region> {
        self.dynamic().get(slot).copied()
    }

    /// The same per-run regions with another shared list (after a tail call
    /// into a program with other maps).
    pub fn clone_with_shared<'b>(&self, shared: &'b [Region]) -> Memory<'b> {
        Memory { dynamic: self.dynamic, n: self.n, shared, gen: self.gen }
    }

    /// Checks `[addr, addr+len)` and returns it as a pointer if allowed.
    #[inline(always)]
    pub fn check(&self, addr: u64, len: u64, write: bool) -> Option<*mut u8> {
        for r in self.dynamic() {
            if r.contains(addr, len, write) {
                return Some(addr as *mut u8);
            }
        }
        self.check_shared(addr, len, write)
    }

    #[inline(never)]
    fn check_shared(&self, addr: u64, len: u64, write: bool) -> Option<*mut u8> {
        // Sorted by start: the candidate is the last region starting at or below addr.
        let i = self.shared.partition_point(|r| r.start <= addr);
        if i > 0 && self.shared[i - 1].contains(addr, len, write) {
            return Some(addr as *mut u8);
        }
        None
    }

    /// The shared (map-value) region that allows `[addr, addr+len)` (with
    /// writes if `write`), if one does: native code caches it to check
    /// later accesses to the same map value inline.
    pub fn shared_region(&self, addr: u64, len: u64, write: bool) -> Option<Region> {
        let i = self.shared.partition_point(|r| r.start <= addr);
        let r = *self.shared.get(i.checked_sub(1)?)?;
        r.contains(addr, len, write).then_some(r)
    }

    /// Borrows `[addr, addr+len)` as a byte slice, if readable.
    pub fn slice(&self, addr: u64, len: u64) -> Option<&[u8]> {
        if len == 0 {
            return Some(&[]);
        }
        let p = self.check(addr, len, false)?;
        // SAFETY: the range lies inside a region whose owner keeps it alive
        // and initialised for the duration of the run.
        Some(unsafe { core::slice::from_raw_parts(p, len as usize) })
    }

    /// Borrows `[addr, addr+len)` as a mutable byte slice, if writable.
    #[allow(clippy::mut_from_ref)]
    pub fn slice_mut(&self, addr: u64, len: u64) -> Option<&mut [u8]> {
        if len == 0 {
            return Some(&mut []);
        }
        let p = self.check(addr, len, true)?;
        // SAFETY: as for `slice`; the region is writable. Program memory is
        // shared with the running program by design (as in the kernel).
        Some(unsafe { core::slice::from_raw_parts_mut(p, len as usize) })
    }
}

/// Sorts and validates a list of shared regions (non-overlapping).
pub fn sort_regions(mut v: Vec<Region>) -> Vec<Region> {
    v.retain(|r| r.len > 0);
    v.sort_by_key(|r| r.start);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_cover_exact_bounds() {
        let mut buf = [0u8; 16];
        let map = [7u8; 8];
        let shared = sort_regions(vec![Region::of_slice(&map)]);
        let mut m = Memory::new(&shared);
        let b = buf.as_mut_ptr() as u64;
        m.push(Region::of_mut_slice(&mut buf)).unwrap();
        assert!(m.check(b, 16, true).is_some());
        assert!(m.check(b + 8, 8, true).is_some());
        assert!(m.check(b + 9, 8, false).is_none());
        assert!(m.check(b.wrapping_sub(1), 2, false).is_none());
        assert!(m.check(u64::MAX, 2, false).is_none());
        let mp = map.as_ptr() as u64;
        assert!(m.check(mp, 8, false).is_some());
        assert!(m.check(mp, 8, true).is_none(), "read-only");
        assert!(m.check(mp + 1, 8, false).is_none());
        assert_eq!(m.shared_region(mp + 2, 4, false), Some(shared[0]));
        assert_eq!(m.shared_region(mp + 2, 4, true), None, "read-only");
        assert_eq!(m.shared_region(mp + 5, 4, false), None);
        assert_eq!(m.shared_region(b, 4, false), None, "per-run regions are not shared");
    }

    #[test]
    fn only_pushed_slots_are_visible() {
        let a = [0u8; 4];
        let c = [0u8; 8];
        let mut m = Memory::with_first(Region::of_slice(&a), &[]);
        assert_eq!(m.dynamic(), &[Region::of_slice(&a)]);
        assert_eq!(m.get(1), None);
        assert_eq!(m.push(Region::of_slice(&c)), Some(1));
        assert_eq!(m.get(1), Some(Region::of_slice(&c)));
        m.set(5, Region::of_slice(&a));
        assert_eq!(m.dynamic().len(), 2, "set beyond the pushed slots is ignored");
        for _ in 2..MAX_DYNAMIC_REGIONS {
            assert!(m.push(Region::of_slice(&c)).is_some());
        }
        assert_eq!(m.push(Region::of_slice(&c)), None);
        assert_eq!(m.dynamic().len(), MAX_DYNAMIC_REGIONS);
        assert!(format!("{m:?}").contains("dynamic"));
        assert!(Memory::new(&[]).dynamic().is_empty());
    }
}
