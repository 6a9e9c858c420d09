//! `BPF_MAP_TYPE_HASH`, `PERCPU_HASH`, `LRU_HASH`, `LRU_PERCPU_HASH`
//! (kernel/bpf/hashtab.c), always preallocated.
//!
//! Semantics follow the kernel's preallocated hash tables:
//! - `hash` updates of an existing key link a *new* element and free the old
//!   one (so concurrent lookups see the old or the new value, never a mix);
//!   `BPF_F_LOCK` updates copy in place under the value's spin lock;
//! - per-CPU hashes update existing elements in place; a new element created
//!   by a program gets the value on the program's CPU and zeros elsewhere;
//! - a full `hash`/`percpu_hash` fails with `E2BIG`; LRU maps evict instead
//!   (approximate LRU, see `hash_core`), and, like the kernel, replacing a
//!   key of a full LRU map may evict another element.
//!
//! `BPF_F_NO_PREALLOC` is accepted (memory is preallocated regardless: value
//! pointers must stay valid); `BPF_F_NO_COMMON_LRU` rounds `max_entries` to
//! a multiple of the CPU count as the kernel does, and otherwise behaves
//! like the common LRU.

use std::any::Any;

use crate::error::{MapError, Result};
use crate::hash_core::{HashCore, Hasher, Upsert};
use crate::storage::{
    copy_in, copy_in_locked, copy_in_value, copy_out_percpu, copy_out_value, round8, zero_value, Slab,
};
use crate::{
    check_cpu, check_flags, check_for_each, check_key, check_lookup_flags, check_prog_value, check_user_update,
    check_user_value, no_lock, percpu_user_size, ForEachFn, Map, MapSpec, MapType, BPF_EXIST, BPF_F_ACCESS_MASK,
    BPF_F_LOCK, BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC, BPF_F_NUMA_NODE, BPF_F_ZERO_SEED,
};

/// `HTAB_CREATE_FLAG_MASK`.
pub(crate) const HASH_FLAGS: u32 =
    BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK | BPF_F_ZERO_SEED;

/// The kernel's `htab_map_alloc_check`.
pub(crate) fn hash_alloc_check(spec: &MapSpec, lru: bool, percpu: bool) -> Result<()> {
    check_flags(spec, HASH_FLAGS)?;
    if !lru && spec.flags & BPF_F_NO_COMMON_LRU != 0 {
        return Err(MapError::invalid(format!("{}: BPF_F_NO_COMMON_LRU is only for LRU maps", spec.describe())));
    }
    if lru && spec.flags & BPF_F_NO_PREALLOC != 0 {
        return Err(MapError::NotSupported(
            format!("{}: LRU maps cannot be created with BPF_F_NO_PREALLOC", spec.describe()).into(),
        ));
    }
    if spec.flags & BPF_F_NUMA_NODE != 0 && (percpu || spec.flags & BPF_F_NO_COMMON_LRU != 0) {
        return Err(MapError::invalid(format!(
            "{}: a NUMA node cannot be given for per-CPU values or per-CPU LRU lists",
            spec.describe()
        )));
    }
    if spec.max_entries == 0 || spec.key_size == 0 || spec.value_size == 0 {
        return Err(MapError::invalid(format!(
            "{}: needs max_entries, key_size and value_size > 0 (got {}, {}, {})",
            spec.describe(),
            spec.max_entries,
            spec.key_size,
            spec.value_size
        )));
    }
    // KMALLOC_MAX_SIZE is 4 MiB << 8 on x86-64 with SLUB; the element header
    // is 48 bytes.
    if spec.key_size as u64 + spec.value_size as u64 >= (1u64 << 30) - 48 {
        return Err(MapError::TooBig(format!("{}: key_size + value_size too large", spec.describe()).into()));
    }
    if percpu && round8(spec.value_size as usize) > crate::array::PCPU_MAX_VALUE as usize {
        return Err(MapError::TooBig(
            format!("{}: per-CPU value_size {} too large", spec.describe(), spec.value_size).into(),
        ));
    }
    if spec.max_entries > 1 << 31 {
        return Err(MapError::TooBig(format!("{}: max_entries above 2^31", spec.describe()).into()));
    }
    Ok(())
}

/// A seed for keyed hashing (random unless `BPF_F_ZERO_SEED`).
pub(crate) fn seed(flags: u32) -> u64 {
    if flags & BPF_F_ZERO_SEED != 0 {
        return 0;
    }
    use std::hash::{BuildHasher, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

/// One of the four hash map types.
pub struct HashMap {
    spec: MapSpec,
    core: HashCore,
    values: Slab,
    stride: usize,
    percpu: bool,
    lru: bool,
}

impl HashMap {
    /// Creates the map (see [`crate::create`]).
    pub fn new(mut spec: MapSpec) -> Result<HashMap> {
        let (percpu, lru) = match spec.kind() {
            Some(MapType::Hash) => (false, false),
            Some(MapType::PercpuHash) => (true, false),
            Some(MapType::LruHash) => (false, true),
            Some(MapType::LruPercpuHash) => (true, true),
            _ => return Err(MapError::invalid(format!("{} is not a hash type", spec.describe()))),
        };
        hash_alloc_check(&spec, lru, percpu)?;
        if lru && spec.flags & BPF_F_NO_COMMON_LRU != 0 {
            // Each CPU's LRU list gets the same number of elements.
            let c = spec.nr_cpus;
            let up = spec.max_entries.div_ceil(c).checked_mul(c);
            spec.max_entries = match up {
                Some(v) => v,
                None => spec.max_entries / c * c,
            };
        }
        let max = spec.max_entries;
        // Spare slots let a replace link the new element before freeing the
        // old one (the kernel's per-CPU extra elements). LRU maps and
        // in-place per-CPU maps need none.
        let n_slots = if lru || percpu { max } else { max.saturating_add(spec.nr_cpus.max(4)) };
        let core = HashCore::new(spec.key_size, max, n_slots, Hasher::Seeded(seed(spec.flags)), lru)?;
        let stride = round8(spec.value_size as usize);
        let cpus = if percpu { spec.nr_cpus as usize } else { 1 };
        let bytes = (n_slots as usize)
            .checked_mul(stride)
            .and_then(|b| b.checked_mul(cpus))
            .ok_or_else(|| MapError::NoMemory(format!("{}: size overflows", spec.describe()).into()))?;
        let values = Slab::new(bytes, "hash values")?;
        Ok(HashMap { spec, core, values, stride, percpu, lru })
    }

    /// Number of elements.
    pub fn len(&self) -> u32 {
        self.core.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value address of `slot` for `cpu` (per-CPU layout: one block of all
    /// slots per CPU).
    #[inline]
    fn value_at(&self, slot: u32, cpu: u32) -> *mut u8 {
        let cpu = if self.percpu { cpu as usize } else { 0 };
        self.values.at((cpu * self.core.n_slots() as usize + slot as usize) * self.stride)
    }

    fn lock_off(&self) -> Option<u32> {
        self.spec.spin_lock_off
    }

    /// Shared update path. `src` is `value_size` bytes (program side, CPU
    /// `cpu`) or the per-CPU user layout (`all_cpus`).
    fn do_update(&self, key: &[u8], src: &[u8], flags: u64, cpu: u32, all_cpus: bool) -> Result<()> {
        check_key(&self.spec, key)?;
        let vs = self.spec.value_size as usize;
        if self.percpu {
            if flags > BPF_EXIST {
                return Err(MapError::invalid(format!("{}: unknown update flags {flags:#x}", self.spec.describe())));
            }
            if !all_cpus {
                check_cpu(&self.spec, cpu)?;
            }
            let u = Upsert { flags, check_exist: true, in_place: true };
            let nr = self.spec.nr_cpus;
            self.core.upsert(key, u, &mut |slot, existing| {
                for c in 0..nr {
                    let dst = self.value_at(slot, c);
                    // SAFETY: value memory of this map (stride >= vs).
                    unsafe {
                        if all_cpus {
                            let o = c as usize * self.stride;
                            copy_in(dst, &src[o..o + self.stride], None);
                        } else if c == cpu {
                            copy_in(dst, &src[..vs], None);
                        } else if !existing {
                            zero_value(dst, vs, None);
                        }
                    }
                }
            })?;
            return Ok(());
        }
        if self.lru {
            if flags > BPF_EXIST {
                return Err(MapError::invalid(format!("{}: unknown update flags {flags:#x}", self.spec.describe())));
            }
            let u = Upsert { flags, check_exist: true, in_place: false };
            self.core.upsert(key, u, &mut |slot, _| {
                // SAFETY: value memory of this map.
                unsafe { copy_in(self.value_at(slot, 0), &src[..vs], None) };
            })?;
            return Ok(());
        }
        if flags & !BPF_F_LOCK > BPF_EXIST {
            return Err(MapError::invalid(format!("{}: unknown update flags {flags:#x}", self.spec.describe())));
        }
        let locked = flags & BPF_F_LOCK != 0;
        let lock_off = self.lock_off();
        if locked {
            let Some(off) = lock_off else { return Err(no_lock(&self.spec)) };
            // Fast path: update an existing element in place without the
            // bucket lock.
            if let Some(slot) = self.core.lookup(key, false) {
                if flags & !BPF_F_LOCK == crate::BPF_NOEXIST {
                    return Err(MapError::Exists);
                }
                // SAFETY: value memory of this map; off is a valid lock.
                unsafe { copy_in_locked(self.value_at(slot, 0), &src[..vs], off) };
                return Ok(());
            }
        }
        let u = Upsert { flags, check_exist: true, in_place: locked };
        self.core.upsert(key, u, &mut |slot, existing| {
            let dst = self.value_at(slot, 0);
            // SAFETY: value memory of this map.
            unsafe { copy_in_value(dst, &src[..vs], existing && locked, lock_off) }
        })?;
        Ok(())
    }

    fn copy_user(&self, slot: u32, out: &mut [u8], locked: bool) {
        // SAFETY: value memory of this map (stride bytes per CPU).
        unsafe {
            if self.percpu {
                copy_out_percpu(out, self.spec.nr_cpus, self.stride, |c| self.value_at(slot, c));
            } else {
                copy_out_value(out, self.value_at(slot, 0), locked, self.lock_off());
            }
        }
    }
}

impl Map for HashMap {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    #[inline]
    fn lookup(&self, key: &[u8], cpu: u32) -> Option<*mut u8> {
        if key.len() != self.spec.key_size as usize || (self.percpu && cpu >= self.spec.nr_cpus) {
            return None;
        }
        let slot = self.core.lookup(key, true)?;
        Some(self.value_at(slot, cpu))
    }

    fn lookup_percpu(&self, key: &[u8], target_cpu: u32) -> Option<*mut u8> {
        if !self.percpu || target_cpu >= self.spec.nr_cpus || key.len() != self.spec.key_size as usize {
            return None;
        }
        let slot = self.core.lookup(key, true)?;
        Some(self.value_at(slot, target_cpu))
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64, cpu: u32) -> Result<()> {
        check_prog_value(&self.spec, value.len())?;
        self.do_update(key, value, flags, cpu, false)
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        check_key(&self.spec, key)?;
        self.core.delete(key, None)
    }

    fn for_each(&self, cpu: u32, flags: u64, f: &mut ForEachFn<'_>) -> Result<u32> {
        check_for_each(&self.spec, self.percpu, cpu, flags)?;
        Ok(self.core.for_each(&mut |key, slot| f(key, self.value_at(slot, cpu))))
    }

    fn user_value_size(&self) -> usize {
        percpu_user_size(&self.spec, self.percpu, self.stride)
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        check_lookup_flags(&self.spec, flags)?;
        check_key(&self.spec, key)?;
        check_user_value(&self.spec, out.len(), self.user_value_size())?;
        let locked = flags & BPF_F_LOCK != 0;
        self.core.lookup_copy(key, |slot| self.copy_user(slot, out, locked))
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        check_user_update(&self.spec, flags, value.len(), self.user_value_size())?;
        self.do_update(key, value, flags, 0, self.percpu)
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        self.delete(key)
    }

    fn lookup_and_delete_user(&self, key: &[u8], flags: u64) -> Result<Vec<u8>> {
        check_lookup_flags(&self.spec, flags)?;
        check_key(&self.spec, key)?;
        let locked = flags & BPF_F_LOCK != 0;
        let mut out = vec![0u8; self.user_value_size()];
        self.core.delete(key, Some(&mut |slot| self.copy_user(slot, &mut out, locked)))?;
        Ok(out)
    }

    fn get_next_key_into(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<()> {
        self.core.next_key_user(&self.spec, key, next)
    }

    fn value_regions(&self) -> Vec<(usize, usize)> {
        vec![self.values.region()]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::*;
    use crate::test_util::k;
    use crate::{create, BPF_ANY, BPF_NOEXIST};
    use std::collections::BTreeSet;

    fn all_keys(m: &dyn Map) -> Vec<Vec<u8>> {
        let mut out = vec![];
        let mut cur: Option<Vec<u8>> = None;
        loop {
            match m.get_next_key(cur.as_deref()) {
                Ok(n) => {
                    out.push(n.clone());
                    cur = Some(n);
                }
                Err(MapError::NotFound) => return out,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn create_checks() {
        let e = |s: MapSpec| create(s).unwrap_err().errno();
        assert_eq!(e(MapSpec::new(MapType::Hash, 0, 4, 1)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Hash, 4, 0, 1)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Hash, 4, 4, 0)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Hash, 4, 4, 1).flags(BPF_F_NO_COMMON_LRU)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Hash, 4, 4, 1).flags(crate::BPF_F_MMAPABLE)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::LruHash, 4, 4, 1).flags(BPF_F_NO_PREALLOC)), -ENOTSUPP);
        assert_eq!(e(MapSpec::new(MapType::PercpuHash, 4, 40000, 1)), -E2BIG);
        assert_eq!(e(MapSpec::new(MapType::PercpuHash, 4, 4, 1).flags(BPF_F_NUMA_NODE)), -EINVAL);
        assert!(create(MapSpec::new(MapType::Hash, 4, 4, 1).flags(BPF_F_NUMA_NODE)).is_ok());
        assert!(create(MapSpec::new(MapType::Hash, 4, 4, 1).flags(BPF_F_NO_PREALLOC)).is_ok());
        let m = create(MapSpec::new(MapType::LruHash, 4, 4, 10).flags(BPF_F_NO_COMMON_LRU).cpus(4)).unwrap();
        assert_eq!(m.spec().max_entries, 12);
    }

    #[test]
    fn hash_flags_and_errors() {
        let m = create(MapSpec::new(MapType::Hash, 4, 8, 2)).unwrap();
        let v = |x: u8| [x; 8];
        assert_eq!(m.update_user(&k(1), &v(1), BPF_EXIST), Err(MapError::NotFound));
        assert_eq!(m.update_user(&k(1), &v(1), BPF_NOEXIST), Ok(()));
        assert_eq!(m.update_user(&k(1), &v(2), BPF_NOEXIST), Err(MapError::Exists));
        assert_eq!(m.update_user(&k(1), &v(3), BPF_EXIST), Ok(()));
        assert_eq!(m.update_user(&k(2), &v(4), BPF_ANY), Ok(()));
        // Full: a new key fails with E2BIG, existing keys can still change.
        assert_eq!(m.update_user(&k(3), &v(5), BPF_ANY).unwrap_err().errno(), -E2BIG);
        assert_eq!(m.update_user(&k(2), &v(6), BPF_ANY), Ok(()));
        assert_eq!(m.update_user(&k(2), &v(6), 3).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&k(2), &v(6), BPF_F_LOCK).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.lookup_user(&k(1), 0).unwrap(), v(3).to_vec());
        assert_eq!(m.lookup_user(&k(2), 0).unwrap(), v(6).to_vec());
        assert_eq!(m.lookup_user(&k(3), 0), Err(MapError::NotFound));
        assert_eq!(m.delete_user(&k(3)), Err(MapError::NotFound));
        assert_eq!(m.lookup_and_delete_user(&k(1), 0).unwrap(), v(3).to_vec());
        assert_eq!(m.lookup_user(&k(1), 0), Err(MapError::NotFound));
        assert_eq!(m.update_user(&k(3), &v(7), BPF_ANY), Ok(()));
        assert_eq!(m.as_hash().unwrap().len(), 2);
        assert_eq!(m.get_next_key_into(Some(&k(1)), &mut [0; 3]).unwrap_err().errno(), -EINVAL);
    }

    #[test]
    fn replace_gives_new_element_and_old_pointer_stays_valid() {
        let m = create(MapSpec::new(MapType::Hash, 4, 8, 4)).unwrap();
        m.update_user(&k(1), &[1; 8], BPF_ANY).unwrap();
        let p1 = m.lookup(&k(1), 0).unwrap();
        m.update_user(&k(1), &[2; 8], BPF_ANY).unwrap();
        let p2 = m.lookup(&k(1), 0).unwrap();
        assert_ne!(p1, p2);
        // SAFETY: both pointers are in the map's value slab.
        unsafe {
            assert_eq!(*p1, 1);
            assert_eq!(*p2, 2);
        }
        let (start, len) = m.value_regions()[0];
        for p in [p1, p2] {
            assert!((p as usize) >= start && (p as usize) + 8 <= start + len);
        }
    }

    #[test]
    fn next_key_visits_every_element_once_and_restarts_on_missing_key() {
        let m = create(MapSpec::new(MapType::Hash, 4, 4, 100)).unwrap();
        assert_eq!(m.get_next_key(None), Err(MapError::NotFound));
        for i in 0..100 {
            m.update_user(&k(i * 3), &k(i), BPF_ANY).unwrap();
        }
        let keys = all_keys(&*m);
        assert_eq!(keys.len(), 100);
        let set: BTreeSet<_> = keys.iter().cloned().collect();
        assert_eq!(set.len(), 100);
        let first = m.get_next_key(None).unwrap();
        assert_eq!(m.get_next_key(Some(&k(1))).unwrap(), first);
    }

    #[test]
    fn spin_lock_hash() {
        let m = create(MapSpec::new(MapType::Hash, 4, 16, 4).spin_lock(8)).unwrap();
        let v = [9u8; 16];
        // BPF_F_LOCK on a missing key inserts (flags checks still apply).
        assert_eq!(m.update_user(&k(1), &v, BPF_F_LOCK | BPF_EXIST), Err(MapError::NotFound));
        assert_eq!(m.update_user(&k(1), &v, BPF_F_LOCK), Ok(()));
        let p = m.lookup(&k(1), 0).unwrap();
        assert_eq!(m.update_user(&k(1), &v, BPF_F_LOCK | BPF_NOEXIST), Err(MapError::Exists));
        assert_eq!(m.update_user(&k(1), &[3; 16], BPF_F_LOCK), Ok(()));
        // In place: same element.
        assert_eq!(m.lookup(&k(1), 0), Some(p));
        let got = m.lookup_user(&k(1), BPF_F_LOCK).unwrap();
        assert_eq!(&got[..8], &[3; 8]);
        assert_eq!(&got[8..12], &[0; 4]);
        assert_eq!(&got[12..], &[3; 4]);
    }

    #[test]
    fn percpu_hash_semantics() {
        let m = create(MapSpec::new(MapType::PercpuHash, 4, 4, 4).cpus(2)).unwrap();
        assert_eq!(m.user_value_size(), 16);
        // Program on CPU 1 creates the element: other CPUs get zeros.
        m.update(&k(5), &7u32.to_ne_bytes(), BPF_ANY, 1).unwrap();
        assert_eq!(m.lookup_user(&k(5), 0).unwrap(), [0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        // In-place program update on CPU 0 keeps CPU 1's value.
        let p0 = m.lookup(&k(5), 0).unwrap();
        m.update(&k(5), &3u32.to_ne_bytes(), BPF_EXIST, 0).unwrap();
        assert_eq!(m.lookup(&k(5), 0), Some(p0));
        assert_eq!(m.lookup_user(&k(5), 0).unwrap(), [3, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        // User update: all CPUs from the 8-byte-strided buffer.
        let buf = [1, 1, 1, 1, 9, 9, 9, 9, 2, 2, 2, 2, 8, 8, 8, 8];
        m.update_user(&k(6), &buf, BPF_NOEXIST).unwrap();
        assert_eq!(m.lookup_user(&k(6), 0).unwrap(), buf);
        assert_eq!(m.lookup_percpu(&k(6), 1).map(|p| unsafe { *p }), Some(2));
        assert!(m.lookup_percpu(&k(6), 2).is_none());
        assert!(m.lookup(&k(6), 2).is_none());
        assert_eq!(m.update(&k(6), &[0; 4], BPF_ANY, 2).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&k(6), &buf, BPF_F_LOCK).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&k(6), &buf[..8], BPF_ANY).unwrap_err().errno(), -EINVAL);
        for i in 7..9 {
            m.update_user(&k(i), &buf, BPF_ANY).unwrap();
        }
        assert_eq!(m.update_user(&k(10), &buf, BPF_ANY).unwrap_err().errno(), -E2BIG);
        assert_eq!(m.lookup_and_delete_user(&k(6), 0).unwrap(), buf);
    }

    #[test]
    fn lru_evicts_instead_of_failing() {
        let m = create(MapSpec::new(MapType::LruHash, 4, 4, 8)).unwrap();
        for i in 0..100u32 {
            m.update_user(&k(i), &k(i), BPF_ANY).unwrap();
            // Keep key 0 hot.
            assert!(m.lookup(&k(0), 0).is_some(), "hot key evicted at {i}");
        }
        let keys = all_keys(&*m);
        assert_eq!(keys.len(), 8);
        assert_eq!(m.as_hash().unwrap().len(), 8);
        assert!(keys.contains(&k(0).to_vec()));
        assert!(keys.contains(&k(99).to_vec()));
        for key in &keys {
            assert_eq!(m.lookup_user(key, 0).unwrap(), *key);
        }
        assert_eq!(m.update_user(&k(0), &k(0), BPF_F_LOCK).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update(&k(0), &k(0), 3, 0).unwrap_err().errno(), -EINVAL);
        // Like the kernel, the new element is taken (evicting when full)
        // before the flags are checked, so a failing update of a full LRU
        // map still evicts one element; the freed element then serves the
        // next update.
        assert_eq!(m.update_user(&k(0), &k(0), BPF_NOEXIST), Err(MapError::Exists));
        assert_eq!(all_keys(&*m).len(), 7);
        assert_eq!(m.update_user(&k(1000), &k(0), BPF_EXIST), Err(MapError::NotFound));
        assert_eq!(all_keys(&*m).len(), 7);
        assert!(m.lookup(&k(0), 0).is_some());
    }

    #[test]
    fn lru_percpu() {
        let m = create(MapSpec::new(MapType::LruPercpuHash, 4, 8, 4).cpus(2)).unwrap();
        for i in 0..10u32 {
            m.update(&k(i), &[i as u8; 8], BPF_ANY, i % 2).unwrap();
        }
        assert_eq!(all_keys(&*m).len(), 4);
        m.update(&k(9), &[1; 8], BPF_EXIST, 0).unwrap();
        let v = m.lookup_user(&k(9), 0).unwrap();
        assert_eq!(&v[..8], &[1; 8]);
        assert_eq!(&v[8..], &[9; 8]);
    }

    #[test]
    fn for_each_and_delete_inside() {
        let m = create(MapSpec::new(MapType::Hash, 4, 4, 16)).unwrap();
        for i in 0..10 {
            m.update_user(&k(i), &k(i * 10), BPF_ANY).unwrap();
        }
        let mut sum = 0;
        let n = m
            .for_each(0, 0, &mut |key, v| {
                // SAFETY: value pointer of this map.
                sum += unsafe { *(v as *const u32) };
                m.delete(key).unwrap();
                false
            })
            .unwrap();
        assert_eq!(n, 10);
        assert_eq!(sum, 450);
        assert_eq!(m.get_next_key(None), Err(MapError::NotFound));
        let mut count = 0;
        for i in 0..5 {
            m.update_user(&k(i), &k(i), BPF_ANY).unwrap();
        }
        assert_eq!(
            m.for_each(0, 0, &mut |_, _| {
                count += 1;
                count == 2
            }),
            Ok(2)
        );
    }

    #[test]
    fn big_keys() {
        let m = create(MapSpec::new(MapType::Hash, 600, 4, 8)).unwrap();
        let mut key = vec![0u8; 600];
        key[599] = 1;
        m.update_user(&key, &[1; 4], BPF_ANY).unwrap();
        let mut other = key.clone();
        other[599] = 2;
        assert_eq!(m.lookup_user(&other, 0), Err(MapError::NotFound));
        assert_eq!(m.lookup_user(&key, 0).unwrap(), vec![1; 4]);
        assert_eq!(m.get_next_key(None).unwrap(), key);
    }
}
