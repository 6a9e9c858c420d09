//! Maps of object references: `BPF_MAP_TYPE_PROG_ARRAY`,
//! `BPF_MAP_TYPE_ARRAY_OF_MAPS` and `BPF_MAP_TYPE_HASH_OF_MAPS`.
//!
//! In the kernel these hold programs and maps, set from user space by file
//! descriptor and read back as ids. uxdp stores the runtime's ids directly
//! (the runtime translates fds before calling `update_user`); id 0 names
//! nothing and is refused with `EBADF`, like a bad fd. Map-in-map slots also
//! hold a 64-bit *handle*, what `bpf_map_lookup_elem` returns to a program
//! (the kernel returns the inner `struct bpf_map *`); `update_user` uses the
//! id as handle, [`ArrayOfMaps::set`] / [`HashOfMaps::set`] take both.

use std::any::Any;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::array::array_alloc_check;
use crate::error::{MapError, Result};
use crate::hash::{hash_alloc_check, seed};
use crate::hash_core::{HashCore, Hasher, Upsert};
use crate::storage::zeroed_slice;
use crate::{
    array_next_key, check_any_flags, check_key, check_lookup_flags, check_user_value, expect_type, key_u32, Map,
    MapSpec, MapType, BPF_EXIST, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG,
};

/// The value of every fd-based map is one fd (4 bytes).
fn fd_value_check(spec: &MapSpec) -> Result<()> {
    if spec.value_size != 4 {
        return Err(MapError::invalid(format!(
            "{}: value_size must be 4 (an fd), got {}",
            spec.describe(),
            spec.value_size
        )));
    }
    Ok(())
}

/// `fd_array_map_alloc_check` (fd arrays and perf event arrays).
pub(crate) fn fd_array_check(spec: &MapSpec) -> Result<()> {
    fd_value_check(spec)?;
    if spec.flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0 {
        return Err(MapError::invalid(format!(
            "{}: BPF_F_RDONLY_PROG/BPF_F_WRONLY_PROG are not supported",
            spec.describe()
        )));
    }
    array_alloc_check(spec)
}

fn id_of(spec: &MapSpec, value: &[u8]) -> Result<u32> {
    check_user_value(spec, value.len(), 4)?;
    let id = key_u32(value);
    if id == 0 {
        return Err(MapError::BadFd(format!("{}: id 0 names no object", spec.describe()).into()));
    }
    Ok(id)
}

fn no_prog_write(spec: &MapSpec, what: &str) -> MapError {
    MapError::OpNotSupported(format!("{}: {what} from a program is not supported", spec.describe()).into())
}

/// `BPF_MAP_LOOKUP_ELEM` of the fd maps: the id `get` finds for the key.
fn lookup_id_user(
    spec: &MapSpec,
    key: &[u8],
    out: &mut [u8],
    flags: u64,
    get: impl FnOnce(&[u8]) -> Option<u32>,
) -> Result<()> {
    check_lookup_flags(spec, flags)?;
    check_key(spec, key)?;
    check_user_value(spec, out.len(), 4)?;
    let id = get(key).ok_or(MapError::NotFound)?;
    out.copy_from_slice(&id.to_ne_bytes());
    Ok(())
}

/// An inner map needs a non-zero id and handle.
fn check_inner(spec: &MapSpec, id: u32, handle: u64) -> Result<()> {
    if id == 0 || handle == 0 {
        return Err(MapError::BadFd(format!("{}: inner map id and handle must be non-zero", spec.describe()).into()));
    }
    Ok(())
}

/// Index of an fd-array key: out of range is `E2BIG` for update and delete.
pub(crate) fn fd_index(spec: &MapSpec, key: &[u8]) -> Result<u32> {
    check_key(spec, key)?;
    let i = key_u32(key);
    if i >= spec.max_entries {
        return Err(MapError::IndexOutOfRange { index: i, max_entries: spec.max_entries });
    }
    Ok(i)
}

/// A `prog_array`: slots of program ids (0 = empty) for `bpf_tail_call`.
pub struct ProgArray {
    spec: MapSpec,
    slots: Box<[AtomicU32]>,
}

impl ProgArray {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<ProgArray> {
        expect_type(&spec, MapType::ProgArray)?;
        fd_array_check(&spec)?;
        Ok(ProgArray { slots: zeroed_slice(spec.max_entries as usize, "prog_array slots")?, spec })
    }

    /// The program id at `index` (what `bpf_tail_call` jumps to).
    #[inline]
    pub fn get(&self, index: u32) -> Option<u32> {
        match self.slots.get(index as usize)?.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    /// Address of slot 0 (`max_entries` consecutive `u32` ids, 0 = empty),
    /// for JIT-inlined tail calls; read with atomic 32-bit loads.
    pub fn slots_ptr(&self) -> *const u32 {
        self.slots.as_ptr() as *const u32
    }
}

impl Map for ProgArray {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    fn lookup(&self, _key: &[u8], _cpu: u32) -> Option<*mut u8> {
        None
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> Result<()> {
        Err(no_prog_write(&self.spec, "update"))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(no_prog_write(&self.spec, "delete"))
    }

    fn user_value_size(&self) -> usize {
        4
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        lookup_id_user(&self.spec, key, out, flags, |k| self.get(key_u32(k)))
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        check_any_flags(&self.spec, flags)?;
        let i = fd_index(&self.spec, key)?;
        let id = id_of(&self.spec, value)?;
        self.slots[i as usize].store(id, Ordering::Release);
        Ok(())
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        let i = fd_index(&self.spec, key)?;
        match self.slots[i as usize].swap(0, Ordering::AcqRel) {
            0 => Err(MapError::NotFound),
            _ => Ok(()),
        }
    }

    fn get_next_key_into(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<()> {
        array_next_key(&self.spec, key, next)
    }

    fn value_regions(&self) -> Vec<(usize, usize)> {
        Vec::new()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An `array_of_maps`: slots of (inner map id, handle).
pub struct ArrayOfMaps {
    spec: MapSpec,
    handles: Box<[AtomicU64]>,
    ids: Box<[AtomicU32]>,
    writer: Mutex<()>,
}

impl ArrayOfMaps {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<ArrayOfMaps> {
        expect_type(&spec, MapType::ArrayOfMaps)?;
        fd_array_check(&spec)?;
        let n = spec.max_entries as usize;
        Ok(ArrayOfMaps {
            handles: zeroed_slice(n, "array_of_maps handles")?,
            ids: zeroed_slice(n, "array_of_maps ids")?,
            writer: Mutex::new(()),
            spec,
        })
    }

    /// Sets slot `index` to inner map `id` with the runtime's `handle`
    /// (non-zero; what programs get from lookups). Flags must be `BPF_ANY`.
    pub fn set(&self, index: u32, id: u32, handle: u64, flags: u64) -> Result<()> {
        check_any_flags(&self.spec, flags)?;
        if index >= self.spec.max_entries {
            return Err(MapError::IndexOutOfRange { index, max_entries: self.spec.max_entries });
        }
        check_inner(&self.spec, id, handle)?;
        let _g = self.writer.lock();
        self.handles[index as usize].store(handle, Ordering::Release);
        self.ids[index as usize].store(id, Ordering::Release);
        Ok(())
    }

    /// The (id, handle) at `index`.
    pub fn get(&self, index: u32) -> Option<(u32, u64)> {
        let _g = self.writer.lock();
        let id = self.ids.get(index as usize)?.load(Ordering::Acquire);
        (id != 0).then(|| (id, self.handles[index as usize].load(Ordering::Acquire)))
    }

    /// Address of the handle of slot 0 (`max_entries` consecutive `u64`,
    /// 0 = empty), for JIT-inlined lookups; read with atomic 64-bit loads.
    pub fn handles_ptr(&self) -> *const u64 {
        self.handles.as_ptr() as *const u64
    }
}

impl Map for ArrayOfMaps {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    fn lookup(&self, key: &[u8], _cpu: u32) -> Option<*mut u8> {
        if key.len() != 4 {
            return None;
        }
        match self.handles.get(key_u32(key) as usize)?.load(Ordering::Acquire) {
            0 => None,
            h => Some(h as usize as *mut u8),
        }
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> Result<()> {
        Err(no_prog_write(&self.spec, "update"))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(no_prog_write(&self.spec, "delete"))
    }

    fn user_value_size(&self) -> usize {
        4
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        lookup_id_user(&self.spec, key, out, flags, |k| self.get(key_u32(k)).map(|(id, _)| id))
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        check_any_flags(&self.spec, flags)?;
        let i = fd_index(&self.spec, key)?;
        let id = id_of(&self.spec, value)?;
        self.set(i, id, id as u64, flags)
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        let i = fd_index(&self.spec, key)? as usize;
        let _g = self.writer.lock();
        let old = self.ids[i].swap(0, Ordering::AcqRel);
        self.handles[i].store(0, Ordering::Release);
        if old == 0 {
            Err(MapError::NotFound)
        } else {
            Ok(())
        }
    }

    fn get_next_key_into(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<()> {
        array_next_key(&self.spec, key, next)
    }

    fn value_regions(&self) -> Vec<(usize, usize)> {
        Vec::new()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A `hash_of_maps`: hash semantics (`BPF_NOEXIST`/`BPF_EXIST`, `E2BIG`
/// when full), elements updated in place, values (id, handle).
pub struct HashOfMaps {
    spec: MapSpec,
    core: HashCore,
    handles: Box<[AtomicU64]>,
    ids: Box<[AtomicU32]>,
}

impl HashOfMaps {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<HashOfMaps> {
        expect_type(&spec, MapType::HashOfMaps)?;
        fd_value_check(&spec)?;
        hash_alloc_check(&spec, false, false)?;
        let core =
            HashCore::new(spec.key_size, spec.max_entries, spec.max_entries, Hasher::Seeded(seed(spec.flags)), false)?;
        let n = spec.max_entries as usize;
        Ok(HashOfMaps {
            core,
            handles: zeroed_slice(n, "hash_of_maps handles")?,
            ids: zeroed_slice(n, "hash_of_maps ids")?,
            spec,
        })
    }

    /// Inserts or replaces `key` with inner map `id` and `handle` (both
    /// non-zero), with the hash flag semantics.
    pub fn set(&self, key: &[u8], id: u32, handle: u64, flags: u64) -> Result<()> {
        check_key(&self.spec, key)?;
        if flags > BPF_EXIST {
            return Err(MapError::invalid(format!("{}: unknown update flags {flags:#x}", self.spec.describe())));
        }
        check_inner(&self.spec, id, handle)?;
        self.core.upsert(key, Upsert { flags, check_exist: true, in_place: true }, &mut |slot, _| {
            self.handles[slot as usize].store(handle, Ordering::Release);
            self.ids[slot as usize].store(id, Ordering::Release);
        })?;
        Ok(())
    }

    /// The (id, handle) of `key`.
    pub fn get(&self, key: &[u8]) -> Option<(u32, u64)> {
        if key.len() != self.spec.key_size as usize {
            return None;
        }
        let mut r = (0, 0);
        self.core
            .lookup_copy(key, |slot| {
                r = (
                    self.ids[slot as usize].load(Ordering::Acquire),
                    self.handles[slot as usize].load(Ordering::Acquire),
                )
            })
            .ok()?;
        Some(r)
    }
}

impl Map for HashOfMaps {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    fn lookup(&self, key: &[u8], _cpu: u32) -> Option<*mut u8> {
        self.get(key).map(|(_, h)| h as usize as *mut u8)
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> Result<()> {
        Err(no_prog_write(&self.spec, "update"))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(no_prog_write(&self.spec, "delete"))
    }

    fn user_value_size(&self) -> usize {
        4
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        lookup_id_user(&self.spec, key, out, flags, |k| self.get(k).map(|(id, _)| id))
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        check_key(&self.spec, key)?;
        let id = id_of(&self.spec, value)?;
        self.set(key, id, id as u64, flags)
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        check_key(&self.spec, key)?;
        self.core.delete(key, None)
    }

    fn get_next_key_into(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<()> {
        self.core.next_key_user(&self.spec, key, next)
    }

    fn value_regions(&self) -> Vec<(usize, usize)> {
        Vec::new()
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

    #[test]
    fn prog_array() {
        let e = |s: MapSpec| create(s).unwrap_err().errno();
        assert_eq!(e(MapSpec::new(MapType::ProgArray, 4, 8, 4)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::ProgArray, 4, 4, 4).flags(BPF_F_RDONLY_PROG)), -EINVAL);
        let m = create(MapSpec::new(MapType::ProgArray, 4, 4, 4)).unwrap();
        assert_eq!(m.update_user(&k(1), &k(42), BPF_ANY), Ok(()));
        assert_eq!(m.update_user(&k(1), &k(42), BPF_NOEXIST).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&k(1), &k(42), BPF_EXIST).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&k(4), &k(42), BPF_ANY).unwrap_err().errno(), -E2BIG);
        assert_eq!(m.update_user(&k(1), &k(0), BPF_ANY).unwrap_err().errno(), -EBADF);
        assert_eq!(m.lookup_user(&k(1), 0).unwrap(), k(42).to_vec());
        assert_eq!(m.lookup_user(&k(0), 0), Err(MapError::NotFound));
        assert_eq!(m.lookup_user(&k(9), 0), Err(MapError::NotFound));
        let pa = m.as_prog_array().unwrap();
        assert_eq!(pa.get(1), Some(42));
        assert_eq!(pa.get(2), None);
        assert_eq!(pa.get(99), None);
        // SAFETY: slot 1 of the array.
        assert_eq!(unsafe { pa.slots_ptr().add(1).read() }, 42);
        assert!(m.lookup(&k(1), 0).is_none());
        assert_eq!(m.update(&k(1), &k(1), 0, 0).unwrap_err().errno(), -EOPNOTSUPP);
        assert_eq!(m.delete_user(&k(1)), Ok(()));
        assert_eq!(m.delete_user(&k(1)), Err(MapError::NotFound));
        assert_eq!(m.delete_user(&k(4)).unwrap_err().errno(), -E2BIG);
        assert_eq!(m.get_next_key(Some(&k(3))), Err(MapError::NotFound));
        assert!(m.value_regions().is_empty());
    }

    #[test]
    fn array_of_maps() {
        let m = create(MapSpec::new(MapType::ArrayOfMaps, 4, 4, 2)).unwrap();
        m.update_user(&k(0), &k(7), BPF_ANY).unwrap();
        assert_eq!(m.lookup(&k(0), 0), Some(7usize as *mut u8));
        assert_eq!(m.lookup(&k(1), 0), None);
        assert_eq!(m.lookup(&k(2), 0), None);
        let am = m.as_array_of_maps().unwrap();
        am.set(1, 8, 0xdead_0000, BPF_ANY).unwrap();
        assert_eq!(m.lookup(&k(1), 0), Some(0xdead_0000usize as *mut u8));
        assert_eq!(m.lookup_user(&k(1), 0).unwrap(), k(8).to_vec());
        assert_eq!(am.get(1), Some((8, 0xdead_0000)));
        assert_eq!(m.update_user(&k(1), &k(7), BPF_NOEXIST).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.delete_user(&k(1)), Ok(()));
        assert_eq!(m.lookup(&k(1), 0), None);
        assert_eq!(m.delete_user(&k(1)), Err(MapError::NotFound));
        assert_eq!(m.delete_user(&k(2)).unwrap_err().errno(), -E2BIG);
        // SAFETY: slot 0.
        assert_eq!(unsafe { am.handles_ptr().read() }, 7);
    }

    #[test]
    fn hash_of_maps() {
        let m = create(MapSpec::new(MapType::HashOfMaps, 8, 4, 2)).unwrap();
        let key = |i: u64| i.to_ne_bytes();
        assert_eq!(m.update_user(&key(1), &k(5), BPF_EXIST), Err(MapError::NotFound));
        m.update_user(&key(1), &k(5), BPF_NOEXIST).unwrap();
        assert_eq!(m.update_user(&key(1), &k(6), BPF_NOEXIST), Err(MapError::Exists));
        m.update_user(&key(1), &k(6), BPF_ANY).unwrap();
        m.update_user(&key(2), &k(7), BPF_ANY).unwrap();
        assert_eq!(m.update_user(&key(3), &k(7), BPF_ANY).unwrap_err().errno(), -E2BIG);
        assert_eq!(m.lookup_user(&key(1), 0).unwrap(), k(6).to_vec());
        assert_eq!(m.lookup(&key(2), 0), Some(7usize as *mut u8));
        m.as_hash_of_maps().unwrap().set(&key(2), 9, 0x1000, BPF_EXIST).unwrap();
        assert_eq!(m.lookup(&key(2), 0), Some(0x1000usize as *mut u8));
        assert_eq!(m.lookup_user(&key(2), 0).unwrap(), k(9).to_vec());
        assert_eq!(m.delete_user(&key(2)), Ok(()));
        assert_eq!(m.lookup(&key(2), 0), None);
        assert_eq!(m.get_next_key(None).unwrap(), key(1).to_vec());
        assert_eq!(m.lookup_and_delete_user(&key(1), 0).unwrap_err().errno(), -ENOTSUPP);
        assert_eq!(create(MapSpec::new(MapType::HashOfMaps, 8, 8, 2)).unwrap_err().errno(), -EINVAL);
    }
}
