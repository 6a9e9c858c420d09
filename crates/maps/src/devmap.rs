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

use crate::error::{MapError, Result};
use crate::hash_core::{HashCore, Hasher, Upsert};
use crate::redirect::{check_dims, load_word, lookup_word_user, pack, parse_update, store_word, unpack, WordSlots};
use crate::storage::Slab;
use crate::{
    array_next_key, array_update_checks, check_flags, check_key, delete_index, key_u32, prog_may_only, Map, MapSpec,
    MapType, BPF_EXIST, BPF_F_NUMA_NODE, BPF_F_RDONLY, BPF_F_RDONLY_PROG, BPF_F_WRONLY,
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
    fn word(self) -> u64 {
        pack(self.ifindex, self.prog_id)
    }

    fn from_word(w: u64) -> DevmapVal {
        let (ifindex, prog_id) = unpack(w);
        DevmapVal { ifindex, prog_id }
    }
}

/// Checks of `dev_map_init_map`; returns the spec with `BPF_F_RDONLY_PROG`.
fn devmap_check(mut spec: MapSpec, t: MapType) -> Result<MapSpec> {
    check_dims(&spec, t, &[4, 8], "4 or 8")?;
    check_flags(&spec, BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY)?;
    spec.flags |= BPF_F_RDONLY_PROG;
    Ok(spec)
}

const PROG_OPS: &str = "look up and redirect";

/// A `devmap`.
pub struct DevMap {
    spec: MapSpec,
    slots: WordSlots,
}

impl DevMap {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<DevMap> {
        let spec = devmap_check(spec, MapType::Devmap)?;
        let n = spec.max_entries as usize;
        Ok(DevMap { slots: WordSlots::new(n, "devmap slots", "devmap values")?, spec })
    }

    /// The entry at `index` (for `bpf_redirect_map`).
    #[inline]
    pub fn get(&self, index: u32) -> Option<DevmapVal> {
        self.slots.get(index).map(DevmapVal::from_word)
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
        self.slots.ptr(key_u32(key))
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> Result<()> {
        Err(prog_may_only(&self.spec, PROG_OPS))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(prog_may_only(&self.spec, PROG_OPS))
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        lookup_word_user(&self.spec, key, out, flags, |i| self.slots.get(i))
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        let (i, ifindex, prog_id) = parse_update(&self.spec, key, value)?;
        array_update_checks(&self.spec, i, flags)?;
        if ifindex == 0 {
            if prog_id != 0 {
                return Err(MapError::invalid(format!("{}: a program needs a non-zero ifindex", self.spec.describe())));
            }
            self.slots.clear(i);
            return Ok(());
        }
        self.slots.set(i, pack(ifindex, prog_id));
        Ok(())
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        self.slots.clear(delete_index(&self.spec, key)?);
        Ok(())
    }

    fn get_next_key_into(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<()> {
        array_next_key(&self.spec, key, next)
    }

    fn value_regions(&self) -> Vec<(usize, usize)> {
        vec![self.slots.region()]
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
        Err(prog_may_only(&self.spec, PROG_OPS))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(prog_may_only(&self.spec, PROG_OPS))
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        lookup_word_user(&self.spec, key, out, flags, |k| self.get(k).map(DevmapVal::word))
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        let (_, ifindex, prog_id) = parse_update(&self.spec, key, value)?;
        let v = DevmapVal { ifindex, prog_id };
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
        self.core.next_key_user(&self.spec, key, next)
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
    use crate::test_util::{k, val};
    use crate::{create, BPF_ANY, BPF_NOEXIST};

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
