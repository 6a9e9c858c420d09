//! `BPF_MAP_TYPE_DEVMAP` and `BPF_MAP_TYPE_DEVMAP_HASH` (kernel/bpf/devmap.c).
//!
//! Values are `struct bpf_devmap_val { u32 ifindex; u32 bpf_prog; }`
//! (`value_size` 4 or 8). From user space the kernel takes a program fd in
//! the second word and returns the program id; uxdp stores the runtime's
//! program id directly (`> 0` as `i32`: a program, otherwise none, returned
//! as 0). uxdp does not check that `ifindex` names an existing device; the
//! runtime does, if it cares.
//!
//! Semantics: `devmap` is an array (an `ifindex` of 0 clears a slot, delete
//! of an index in range always succeeds, iteration visits every index);
//! `devmap_hash` is keyed by any `u32` with `E2BIG` when full, iterates in
//! the kernel's order (bucket `key & (n_buckets - 1)`, newest first), and,
//! like the kernel, accepts `BPF_EXIST` for a missing key. Programs may only
//! read values (the kernel forces `BPF_F_RDONLY_PROG`); they use
//! `bpf_redirect_map`, for which the runtime reads entries with `get`.

use std::any::Any;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::error::{MapError, Result};
use crate::hash_core::{HashCore, Hasher, Upsert};
use crate::storage::{zeroed_slice, Slab};
use crate::{
    array_next_key, check_flags, check_key, check_lookup_flags, check_next_buf, check_user_value, key_u32, Map,
    MapSpec, MapType, BPF_EXIST, BPF_F_NUMA_NODE, BPF_F_RDONLY, BPF_F_RDONLY_PROG, BPF_F_WRONLY, BPF_NOEXIST,
};

/// A devmap entry (`struct bpf_devmap_val`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevmapVal {
    /// Target interface.
    pub ifindex: u32,
    /// Program to run on the target (0 = none).
    pub prog_id: u32,
}

impl DevmapVal {
    fn parse(value: &[u8]) -> DevmapVal {
        let mut b = [0u8; 8];
        b[..value.len().min(8)].copy_from_slice(&value[..value.len().min(8)]);
        let prog = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        DevmapVal { ifindex: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), prog_id: prog.max(0) as u32 }
    }

    fn word(self) -> u64 {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.ifindex.to_ne_bytes());
        b[4..].copy_from_slice(&self.prog_id.to_ne_bytes());
        u64::from_ne_bytes(b)
    }

    fn from_word(w: u64) -> DevmapVal {
        let b = w.to_ne_bytes();
        DevmapVal {
            ifindex: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            prog_id: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Checks of `dev_map_init_map`; returns the spec with `BPF_F_RDONLY_PROG`.
fn devmap_check(mut spec: MapSpec, t: MapType) -> Result<MapSpec> {
    if spec.kind() != Some(t) {
        return Err(MapError::invalid(format!("{} is not a {}", spec.describe(), t.name())));
    }
    if spec.max_entries == 0 || spec.key_size != 4 || (spec.value_size != 4 && spec.value_size != 8) {
        return Err(MapError::invalid(format!(
            "{}: needs max_entries > 0, key_size 4 and value_size 4 or 8 (got {}, {}, {})",
            spec.describe(),
            spec.max_entries,
            spec.key_size,
            spec.value_size
        )));
    }
    check_flags(&spec, BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY)?;
    spec.flags |= BPF_F_RDONLY_PROG;
    Ok(spec)
}

/// Atomically stores a whole 8-byte value into value memory.
fn store_word(p: *mut u8, w: u64) {
    // SAFETY: p is an 8-aligned 8-byte value of a live slab; all writes by
    // the map are atomic (programs may only read these values).
    unsafe { (*(p as *const AtomicU64)).store(w, Ordering::Release) }
}

fn load_word(p: *mut u8) -> u64 {
    // SAFETY: as above.
    unsafe { (*(p as *const AtomicU64)).load(Ordering::Acquire) }
}

fn no_prog_write(spec: &MapSpec) -> MapError {
    MapError::OpNotSupported(format!("{}: programs may only look up and redirect", spec.describe()).into())
}

/// A `devmap`.
pub struct DevMap {
    spec: MapSpec,
    present: Box<[AtomicU8]>,
    values: Slab,
}

impl DevMap {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<DevMap> {
        let spec = devmap_check(spec, MapType::Devmap)?;
        let n = spec.max_entries as usize;
        Ok(DevMap { present: zeroed_slice(n, "devmap slots")?, values: Slab::new(n * 8, "devmap values")?, spec })
    }

    /// The entry at `index` (for `bpf_redirect_map`).
    #[inline]
    pub fn get(&self, index: u32) -> Option<DevmapVal> {
        let p = self.ptr(index)?;
        Some(DevmapVal::from_word(load_word(p)))
    }

    #[inline]
    fn ptr(&self, index: u32) -> Option<*mut u8> {
        if self.present.get(index as usize)?.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(self.values.at(index as usize * 8))
    }

    /// Every present entry in index order (for `BPF_F_BROADCAST`).
    pub fn entries(&self) -> Vec<(u32, DevmapVal)> {
        (0..self.spec.max_entries).filter_map(|i| self.get(i).map(|v| (i, v))).collect()
    }
}

impl Map for DevMap {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    fn lookup(&self, key: &[u8], _cpu: u32) -> Option<*mut u8> {
        if key.len() != 4 {
            return None;
        }
        self.ptr(key_u32(key))
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> Result<()> {
        Err(no_prog_write(&self.spec))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(no_prog_write(&self.spec))
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        check_lookup_flags(&self.spec, flags)?;
        check_key(&self.spec, key)?;
        check_user_value(&self.spec, out.len(), self.spec.value_size as usize)?;
        let v = self.get(key_u32(key)).ok_or(MapError::NotFound)?;
        let w = v.word().to_ne_bytes();
        out.copy_from_slice(&w[..out.len()]);
        Ok(())
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        check_key(&self.spec, key)?;
        check_user_value(&self.spec, value.len(), self.spec.value_size as usize)?;
        let i = key_u32(key);
        if flags > BPF_EXIST {
            return Err(MapError::invalid(format!("{}: unknown update flags {flags:#x}", self.spec.describe())));
        }
        if i >= self.spec.max_entries {
            return Err(MapError::IndexOutOfRange { index: i, max_entries: self.spec.max_entries });
        }
        if flags == BPF_NOEXIST {
            return Err(MapError::Exists);
        }
        let v = DevmapVal::parse(value);
        if v.ifindex == 0 {
            if v.prog_id != 0 {
                return Err(MapError::invalid(format!("{}: a program needs a non-zero ifindex", self.spec.describe())));
            }
            self.present[i as usize].store(0, Ordering::Release);
            return Ok(());
        }
        store_word(self.values.at(i as usize * 8), v.word());
        self.present[i as usize].store(1, Ordering::Release);
        Ok(())
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        check_key(&self.spec, key)?;
        let i = key_u32(key);
        if i >= self.spec.max_entries {
            return Err(MapError::invalid(format!(
                "{}: index {i} out of range (max_entries {})",
                self.spec.describe(),
                self.spec.max_entries
            )));
        }
        self.present[i as usize].store(0, Ordering::Release);
        Ok(())
    }

    fn get_next_key_into(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<()> {
        array_next_key(&self.spec, key, next)
    }

    fn value_regions(&self) -> Vec<(usize, usize)> {
        vec![self.values.region()]
    }

    fn program_writable(&self) -> bool {
        false
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A `devmap_hash`.
pub struct DevMapHash {
    spec: MapSpec,
    core: HashCore,
    values: Slab,
}

impl DevMapHash {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<DevMapHash> {
        let spec = devmap_check(spec, MapType::DevmapHash)?;
        let n_slots = spec.max_entries.saturating_add(spec.nr_cpus.max(4));
        let core = HashCore::new(4, spec.max_entries, n_slots, Hasher::IdentityU32, false)?;
        Ok(DevMapHash { core, values: Slab::new(n_slots as usize * 8, "devmap_hash values")?, spec })
    }

    /// The entry for `key` (for `bpf_redirect_map`).
    pub fn get(&self, key: u32) -> Option<DevmapVal> {
        let mut w = 0;
        self.core.lookup_copy(&key.to_ne_bytes(), |slot| w = load_word(self.values.at(slot as usize * 8))).ok()?;
        Some(DevmapVal::from_word(w))
    }

    /// Every entry in iteration order (for `BPF_F_BROADCAST`).
    pub fn entries(&self) -> Vec<(u32, DevmapVal)> {
        let mut v = Vec::new();
        self.core.for_each(&mut |key, slot| {
            v.push((key_u32(key), DevmapVal::from_word(load_word(self.values.at(slot as usize * 8)))));
            false
        });
        v
    }
}

impl Map for DevMapHash {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    fn lookup(&self, key: &[u8], _cpu: u32) -> Option<*mut u8> {
        if key.len() != 4 {
            return None;
        }
        let slot = self.core.lookup(key, false)?;
        Some(self.values.at(slot as usize * 8))
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> Result<()> {
        Err(no_prog_write(&self.spec))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(no_prog_write(&self.spec))
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        check_lookup_flags(&self.spec, flags)?;
        check_key(&self.spec, key)?;
        check_user_value(&self.spec, out.len(), self.spec.value_size as usize)?;
        let v = self.get(key_u32(key)).ok_or(MapError::NotFound)?;
        let w = v.word().to_ne_bytes();
        out.copy_from_slice(&w[..out.len()]);
        Ok(())
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        check_key(&self.spec, key)?;
        check_user_value(&self.spec, value.len(), self.spec.value_size as usize)?;
        let v = DevmapVal::parse(value);
        if flags > BPF_EXIST || v.ifindex == 0 {
            return Err(MapError::invalid(format!(
                "{}: unknown flags {flags:#x} or zero ifindex",
                self.spec.describe()
            )));
        }
        let u = Upsert { flags, check_exist: false, in_place: false };
        self.core.upsert(key, u, &mut |slot, _| store_word(self.values.at(slot as usize * 8), v.word()))?;
        Ok(())
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        check_key(&self.spec, key)?;
        self.core.delete(key, None)
    }

    fn get_next_key_into(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<()> {
        check_next_buf(&self.spec, next)?;
        if let Some(k) = key {
            check_key(&self.spec, k)?;
        }
        self.core.next_key(key, next)
    }

    fn value_regions(&self) -> Vec<(usize, usize)> {
        vec![self.values.region()]
    }

    fn program_writable(&self) -> bool {
        false
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::*;
    use crate::{create, BPF_ANY};

    fn k(i: u32) -> [u8; 4] {
        i.to_ne_bytes()
    }

    fn val(ifindex: u32, prog: i32) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&ifindex.to_ne_bytes());
        b[4..].copy_from_slice(&prog.to_ne_bytes());
        b
    }

    #[test]
    fn devmap_array() {
        let e = |s: MapSpec| create(s).unwrap_err().errno();
        assert_eq!(e(MapSpec::new(MapType::Devmap, 4, 6, 4)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Devmap, 4, 8, 4).flags(crate::BPF_F_NO_PREALLOC)), -EINVAL);
        let m = create(MapSpec::new(MapType::Devmap, 4, 8, 4)).unwrap();
        assert_eq!(m.spec().flags & BPF_F_RDONLY_PROG, BPF_F_RDONLY_PROG);
        assert!(!m.program_writable());
        assert_eq!(m.update_user(&k(1), &val(3, -1), BPF_ANY), Ok(()));
        assert_eq!(m.lookup_user(&k(1), 0).unwrap(), val(3, 0).to_vec());
        assert_eq!(m.update_user(&k(2), &val(4, 17), BPF_EXIST), Ok(()));
        assert_eq!(m.lookup_user(&k(2), 0).unwrap(), val(4, 17).to_vec());
        assert_eq!(m.update_user(&k(2), &val(4, 17), BPF_NOEXIST), Err(MapError::Exists));
        assert_eq!(m.update_user(&k(4), &val(4, 17), BPF_ANY).unwrap_err().errno(), -E2BIG);
        assert_eq!(m.update_user(&k(2), &val(0, 5), BPF_ANY).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&k(2), &val(4, 5), 4).unwrap_err().errno(), -EINVAL);
        let dm = m.as_devmap().unwrap();
        assert_eq!(dm.get(2), Some(DevmapVal { ifindex: 4, prog_id: 17 }));
        assert_eq!(dm.entries().len(), 2);
        let p = m.lookup(&k(2), 0).unwrap();
        // SAFETY: value memory.
        assert_eq!(unsafe { (p as *const u32).read() }, 4);
        // ifindex 0 clears.
        assert_eq!(m.update_user(&k(2), &val(0, -1), BPF_ANY), Ok(()));
        assert_eq!(m.lookup_user(&k(2), 0), Err(MapError::NotFound));
        assert!(m.lookup(&k(2), 0).is_none());
        assert_eq!(m.delete_user(&k(1)), Ok(()));
        assert_eq!(m.delete_user(&k(1)), Ok(()));
        assert_eq!(m.delete_user(&k(4)).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.get_next_key(Some(&k(0))).unwrap(), k(1).to_vec());
        assert_eq!(m.update(&k(0), &val(1, 0), 0, 0).unwrap_err().errno(), -EOPNOTSUPP);
        // 4-byte values.
        let m = create(MapSpec::new(MapType::Devmap, 4, 4, 4)).unwrap();
        m.update_user(&k(0), &k(9), BPF_ANY).unwrap();
        assert_eq!(m.lookup_user(&k(0), 0).unwrap(), k(9).to_vec());
    }

    #[test]
    fn devmap_hash() {
        let m = create(MapSpec::new(MapType::DevmapHash, 4, 8, 3)).unwrap();
        assert_eq!(m.update_user(&k(100), &val(0, 0), BPF_ANY).unwrap_err().errno(), -EINVAL);
        // BPF_EXIST on a missing key inserts, like the kernel.
        assert_eq!(m.update_user(&k(100), &val(5, 0), BPF_EXIST), Ok(()));
        assert_eq!(m.update_user(&k(100), &val(6, 0), BPF_NOEXIST), Err(MapError::Exists));
        assert_eq!(m.update_user(&k(100), &val(6, 0), BPF_ANY), Ok(()));
        m.update_user(&k(1), &val(7, 0), BPF_ANY).unwrap();
        m.update_user(&k(5), &val(8, 0), BPF_ANY).unwrap();
        assert_eq!(m.update_user(&k(6), &val(8, 0), BPF_ANY).unwrap_err().errno(), -E2BIG);
        // Kernel order: 4 buckets, key & 3: bucket 0 holds 100, bucket 1
        // holds 5 (newest) then 1.
        let mut order = vec![];
        let mut cur: Option<Vec<u8>> = None;
        while let Ok(n) = m.get_next_key(cur.as_deref()) {
            order.push(key_u32(&n));
            cur = Some(n);
        }
        assert_eq!(order, vec![100, 5, 1]);
        assert_eq!(m.as_devmap_hash().unwrap().get(100), Some(DevmapVal { ifindex: 6, prog_id: 0 }));
        assert_eq!(m.delete_user(&k(100)), Ok(()));
        assert_eq!(m.delete_user(&k(100)), Err(MapError::NotFound));
        assert!(m.lookup(&k(5), 0).is_some());
        assert_eq!(m.as_devmap_hash().unwrap().entries().len(), 2);
    }
}
