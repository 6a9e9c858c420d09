//! `BPF_MAP_TYPE_ARRAY` and `BPF_MAP_TYPE_PERCPU_ARRAY` (kernel/bpf/arraymap.c).
//!
//! Values are `round_up(value_size, 8)` bytes apart in one slab. A per-CPU
//! array keeps one block of `max_entries` values per CPU, blocks
//! `cpu_stride` bytes apart, so CPUs never share cache lines of a value.
//! [`ArrayMap::layout`] exposes the numbers a JIT needs to inline lookups:
//! `base + cpu * cpu_stride + index * elem_size` when `index < max_entries`.

use std::any::Any;

use crate::error::{MapError, Result};
use crate::storage::{copy_in, copy_in_value, copy_out_percpu, copy_out_value, round8, Slab};
use crate::{
    array_next_key, array_update_checks, check_cpu, check_flags, check_for_each, check_key, check_lookup_flags,
    check_prog_value, check_user_update, check_user_value, key_u32, no_lock, percpu_user_size, ForEachFn, Map, MapSpec,
    MapType, BPF_EXIST, BPF_F_ACCESS_MASK, BPF_F_INNER_MAP, BPF_F_LOCK, BPF_F_MMAPABLE, BPF_F_NUMA_NODE,
    BPF_F_PRESERVE_ELEMS, BPF_NOEXIST,
};

/// Largest per-CPU value (`PCPU_MIN_UNIT_SIZE`).
pub(crate) const PCPU_MAX_VALUE: u32 = 32768;

/// Creation flags arrays accept (`ARRAY_CREATE_FLAG_MASK`).
pub(crate) const ARRAY_FLAGS: u32 =
    BPF_F_NUMA_NODE | BPF_F_MMAPABLE | BPF_F_ACCESS_MASK | BPF_F_PRESERVE_ELEMS | BPF_F_INNER_MAP;

/// The kernel's `array_map_alloc_check` (shared with the fd arrays).
pub(crate) fn array_alloc_check(spec: &MapSpec) -> Result<()> {
    let percpu = spec.kind() == Some(MapType::PercpuArray);
    if spec.max_entries == 0 || spec.key_size != 4 || spec.value_size == 0 {
        return Err(MapError::invalid(format!(
            "{}: needs max_entries > 0, key_size 4 and value_size > 0 (got {}, {}, {})",
            spec.describe(),
            spec.max_entries,
            spec.key_size,
            spec.value_size
        )));
    }
    check_flags(spec, ARRAY_FLAGS)?;
    if percpu && spec.flags & BPF_F_NUMA_NODE != 0 {
        return Err(MapError::invalid(format!("{}: per-CPU arrays take no NUMA node", spec.describe())));
    }
    if spec.kind() != Some(MapType::Array) && spec.flags & (BPF_F_MMAPABLE | BPF_F_INNER_MAP) != 0 {
        return Err(MapError::invalid(format!(
            "{}: BPF_F_MMAPABLE and BPF_F_INNER_MAP are only for plain arrays",
            spec.describe()
        )));
    }
    if spec.kind() != Some(MapType::PerfEventArray) && spec.flags & BPF_F_PRESERVE_ELEMS != 0 {
        return Err(MapError::invalid(format!(
            "{}: BPF_F_PRESERVE_ELEMS is only for perf event arrays",
            spec.describe()
        )));
    }
    if spec.value_size > i32::MAX as u32 {
        return Err(MapError::TooBig(format!("{}: value_size {} too large", spec.describe(), spec.value_size).into()));
    }
    if percpu && spec.value_size > PCPU_MAX_VALUE {
        return Err(MapError::TooBig(
            format!("{}: per-CPU value_size {} exceeds {PCPU_MAX_VALUE}", spec.describe(), spec.value_size).into(),
        ));
    }
    Ok(())
}

/// Raw layout of an array's values, for JIT-inlined lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrayLayout {
    /// Address of value 0 of CPU 0.
    pub base: usize,
    /// Distance between consecutive values (`round_up(value_size, 8)`).
    pub elem_size: u32,
    /// Number of values (per CPU).
    pub max_entries: u32,
    /// Declared value size.
    pub value_size: u32,
    /// Distance between the blocks of consecutive CPUs (0 if not per-CPU).
    pub cpu_stride: usize,
    /// Number of CPUs (1 if not per-CPU).
    pub nr_cpus: u32,
}

/// An `array` or `percpu_array` map.
pub struct ArrayMap {
    spec: MapSpec,
    percpu: bool,
    elem_size: usize,
    cpu_stride: usize,
    values: Slab,
}

impl ArrayMap {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<ArrayMap> {
        let percpu = match spec.kind() {
            Some(MapType::Array) => false,
            Some(MapType::PercpuArray) => true,
            _ => return Err(MapError::invalid(format!("{} is not an array type", spec.describe()))),
        };
        array_alloc_check(&spec)?;
        let elem_size = round8(spec.value_size as usize);
        let cpus = if percpu { spec.nr_cpus as usize } else { 1 };
        let per_cpu = elem_size
            .checked_mul(spec.max_entries as usize)
            .ok_or_else(|| MapError::NoMemory(format!("{}: size overflows", spec.describe()).into()))?;
        let total = per_cpu
            .checked_mul(cpus)
            .ok_or_else(|| MapError::NoMemory(format!("{}: size overflows", spec.describe()).into()))?;
        let values = Slab::new(total, "array values")?;
        Ok(ArrayMap { percpu, elem_size, cpu_stride: if percpu { per_cpu } else { 0 }, values, spec })
    }

    /// The raw layout for inlined lookups.
    pub fn layout(&self) -> ArrayLayout {
        ArrayLayout {
            base: self.values.base() as usize,
            elem_size: self.elem_size as u32,
            max_entries: self.spec.max_entries,
            value_size: self.spec.value_size,
            cpu_stride: self.cpu_stride,
            nr_cpus: if self.percpu { self.spec.nr_cpus } else { 1 },
        }
    }

    /// Pointer to the value at `index` for `cpu` (`cpu` is ignored unless
    /// per-CPU), or `None` when out of range.
    #[inline]
    pub fn value_ptr(&self, index: u32, cpu: u32) -> Option<*mut u8> {
        if index >= self.spec.max_entries {
            return None;
        }
        let cpu_off = if self.percpu {
            if cpu >= self.spec.nr_cpus {
                return None;
            }
            cpu as usize * self.cpu_stride
        } else {
            0
        };
        Some(self.values.at(cpu_off + index as usize * self.elem_size))
    }

    fn index_of(&self, key: &[u8]) -> Result<u32> {
        check_key(&self.spec, key)?;
        Ok(key_u32(key))
    }

    /// The checks of `array_map_update_elem` in its order; returns the index.
    fn update_checks(&self, key: &[u8], flags: u64) -> Result<u32> {
        let index = self.index_of(key)?;
        if flags & !BPF_F_LOCK > BPF_EXIST {
            return Err(MapError::invalid(format!("{}: unknown update flags {flags:#x}", self.spec.describe())));
        }
        if index >= self.spec.max_entries {
            return Err(MapError::IndexOutOfRange { index, max_entries: self.spec.max_entries });
        }
        if flags & BPF_NOEXIST != 0 {
            return Err(MapError::Exists);
        }
        if flags & BPF_F_LOCK != 0 && self.spec.spin_lock_off.is_none() {
            return Err(no_lock(&self.spec));
        }
        Ok(index)
    }
}

impl Map for ArrayMap {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    #[inline]
    fn lookup(&self, key: &[u8], cpu: u32) -> Option<*mut u8> {
        if key.len() != 4 {
            return None;
        }
        self.value_ptr(key_u32(key), cpu)
    }

    fn lookup_percpu(&self, key: &[u8], target_cpu: u32) -> Option<*mut u8> {
        if !self.percpu || key.len() != 4 {
            return None;
        }
        self.value_ptr(key_u32(key), target_cpu)
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64, cpu: u32) -> Result<()> {
        check_prog_value(&self.spec, value.len())?;
        let index = self.update_checks(key, flags)?;
        let vs = self.spec.value_size as usize;
        if self.percpu {
            check_cpu(&self.spec, cpu)?;
        }
        let Some(dst) = self.value_ptr(index, cpu) else {
            return Err(MapError::IndexOutOfRange { index, max_entries: self.spec.max_entries });
        };
        // SAFETY: dst is a value of this map, vs bytes long.
        unsafe { copy_in_value(dst, &value[..vs], flags & BPF_F_LOCK != 0, self.spec.spin_lock_off) };
        Ok(())
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(MapError::invalid(format!("{}: array elements cannot be deleted", self.spec.describe())))
    }

    fn for_each(&self, cpu: u32, flags: u64, f: &mut ForEachFn<'_>) -> Result<u32> {
        check_for_each(&self.spec, self.percpu, cpu, flags)?;
        let mut n = 0;
        for i in 0..self.spec.max_entries {
            let Some(v) = self.value_ptr(i, cpu) else { break };
            n += 1;
            if f(&i.to_ne_bytes(), v) {
                break;
            }
        }
        Ok(n)
    }

    fn user_value_size(&self) -> usize {
        percpu_user_size(&self.spec, self.percpu, self.elem_size)
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        check_lookup_flags(&self.spec, flags)?;
        check_user_value(&self.spec, out.len(), self.user_value_size())?;
        let index = self.index_of(key)?;
        if index >= self.spec.max_entries {
            return Err(MapError::NotFound);
        }
        if self.percpu {
            let at = |cpu: u32| self.values.at(cpu as usize * self.cpu_stride + index as usize * self.elem_size);
            // SAFETY: index < max_entries: elem_size bytes of this map's
            // value memory for every CPU.
            unsafe { copy_out_percpu(out, self.spec.nr_cpus, self.elem_size, at) };
        } else {
            let src = self.value_ptr(index, 0).ok_or(MapError::NotFound)?;
            // SAFETY: value_size bytes of this map's value memory.
            unsafe { copy_out_value(out, src, flags & BPF_F_LOCK != 0, self.spec.spin_lock_off) };
        }
        Ok(())
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        check_user_update(&self.spec, flags, value.len(), self.user_value_size())?;
        if !self.percpu {
            return self.update(key, value, flags, 0);
        }
        // bpf_percpu_array_update
        let index = self.index_of(key)?;
        array_update_checks(&self.spec, index, flags)?;
        for cpu in 0..self.spec.nr_cpus {
            let dst = self.value_ptr(index, cpu).ok_or(MapError::NotFound)?;
            let o = cpu as usize * self.elem_size;
            // SAFETY: elem_size bytes of this map's value memory.
            unsafe { copy_in(dst, &value[o..o + self.elem_size], None) };
        }
        Ok(())
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        self.delete(key)
    }

    fn get_next_key_into(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<()> {
        array_next_key(&self.spec, key, next)
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
    use crate::{create, BPF_ANY};

    #[test]
    fn create_checks() {
        let e = |s: MapSpec| create(s).unwrap_err().errno();
        assert_eq!(e(MapSpec::new(MapType::Array, 4, 4, 0)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Array, 8, 4, 1)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Array, 4, 0, 1)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Array, 4, 4, 1).flags(crate::BPF_F_NO_PREALLOC)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::PercpuArray, 4, 4, 1).flags(BPF_F_MMAPABLE)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Array, 4, 4, 1).flags(BPF_F_PRESERVE_ELEMS)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::PercpuArray, 4, 40000, 1)), -E2BIG);
        assert_eq!(e(MapSpec::new(MapType::PercpuArray, 4, 4, 1).flags(BPF_F_NUMA_NODE)), -EINVAL);
        assert!(create(MapSpec::new(MapType::Array, 4, 4, 1).flags(BPF_F_MMAPABLE)).is_ok());
    }

    #[test]
    fn update_lookup_flags_and_errors() {
        let m = create(MapSpec::new(MapType::Array, 4, 12, 4)).unwrap();
        let v = [7u8; 12];
        assert_eq!(m.update_user(&k(1), &v, BPF_ANY), Ok(()));
        assert_eq!(m.update_user(&k(1), &v, BPF_EXIST), Ok(()));
        assert_eq!(m.update_user(&k(1), &v, BPF_NOEXIST), Err(MapError::Exists));
        assert_eq!(m.update_user(&k(4), &v, BPF_ANY).unwrap_err().errno(), -E2BIG);
        assert_eq!(m.update_user(&k(1), &v, 3).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&k(1), &v, 8).unwrap_err().errno(), -EINVAL);
        // BPF_F_LOCK without a spin lock.
        assert_eq!(m.update_user(&k(1), &v, BPF_F_LOCK).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.lookup_user(&k(1), BPF_F_LOCK).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.lookup_user(&k(1), 1).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.lookup_user(&k(1), 0).unwrap(), v.to_vec());
        assert_eq!(m.lookup_user(&k(0), 0).unwrap(), vec![0; 12]);
        assert_eq!(m.lookup_user(&k(4), 0), Err(MapError::NotFound));
        assert_eq!(m.delete_user(&k(1)).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.delete(&k(9)).unwrap_err().errno(), -EINVAL);
        // Wrong sizes.
        assert_eq!(m.update_user(&[0; 3], &v, 0).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&k(0), &v[..11], 0).unwrap_err().errno(), -EINVAL);
        // Program side.
        let p = m.lookup(&k(1), 0).unwrap();
        // SAFETY: value memory of m.
        unsafe { *p = 42 };
        assert_eq!(m.lookup_user(&k(1), 0).unwrap()[0], 42);
        assert!(m.lookup(&k(4), 0).is_none());
        assert_eq!(m.update(&k(2), &[1; 16], BPF_ANY, 0), Ok(()));
        assert_eq!(m.lookup_user(&k(2), 0).unwrap(), vec![1; 12]);
        assert_eq!(m.update(&k(2), &[1; 11], BPF_ANY, 0).unwrap_err().errno(), -EINVAL);
    }

    #[test]
    fn next_key_order() {
        let m = create(MapSpec::new(MapType::Array, 4, 4, 3)).unwrap();
        assert_eq!(m.get_next_key(None).unwrap(), k(0).to_vec());
        assert_eq!(m.get_next_key(Some(&k(0))).unwrap(), k(1).to_vec());
        assert_eq!(m.get_next_key(Some(&k(1))).unwrap(), k(2).to_vec());
        assert_eq!(m.get_next_key(Some(&k(2))), Err(MapError::NotFound));
        assert_eq!(m.get_next_key(Some(&k(77))).unwrap(), k(0).to_vec());
    }

    #[test]
    fn percpu_layout_and_user_format() {
        let m = create(MapSpec::new(MapType::PercpuArray, 4, 4, 3).cpus(3)).unwrap();
        assert_eq!(m.user_value_size(), 24);
        // Program on CPU 1 writes its own copy only.
        m.update(&k(2), &5u32.to_ne_bytes(), BPF_ANY, 1).unwrap();
        let v = m.lookup_user(&k(2), 0).unwrap();
        assert_eq!(v, [0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        // User update writes every CPU, including the padding bytes.
        let mut buf = vec![0u8; 24];
        for cpu in 0..3 {
            buf[cpu * 8] = cpu as u8 + 10;
            buf[cpu * 8 + 5] = 0xee;
        }
        m.update_user(&k(0), &buf, BPF_ANY).unwrap();
        assert_eq!(m.lookup_user(&k(0), 0).unwrap(), buf);
        for cpu in 0..3 {
            let p = m.lookup(&k(0), cpu).unwrap();
            // SAFETY: value memory.
            assert_eq!(unsafe { *p }, cpu as u8 + 10);
            assert_eq!(m.lookup_percpu(&k(0), cpu), Some(p));
        }
        assert!(m.lookup(&k(0), 3).is_none());
        assert!(m.lookup_percpu(&k(0), 3).is_none());
        assert_eq!(m.update_user(&k(0), &buf, BPF_F_LOCK).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&k(0), &buf, BPF_NOEXIST), Err(MapError::Exists));
        assert_eq!(m.update_user(&k(3), &buf, BPF_ANY).unwrap_err().errno(), -E2BIG);
        let layout = m.as_array().unwrap().layout();
        assert_eq!(layout.cpu_stride, 24);
        assert_eq!(layout.elem_size, 8);
        assert_eq!(m.lookup(&k(1), 2), Some((layout.base + 2 * 24 + 8) as *mut u8));
        // Per-CPU values of different CPUs never share a slot.
        assert_eq!(m.value_regions(), vec![(layout.base, 72)]);
    }

    #[test]
    fn spin_lock_updates() {
        let m = create(MapSpec::new(MapType::Array, 4, 16, 2).spin_lock(0)).unwrap();
        let mut v = [0xabu8; 16];
        m.update_user(&k(0), &v, BPF_F_LOCK).unwrap();
        let got = m.lookup_user(&k(0), BPF_F_LOCK).unwrap();
        // The lock word is never written and reads back as zero.
        assert_eq!(&got[..4], &[0, 0, 0, 0]);
        assert_eq!(&got[4..], &v[4..]);
        // While a program holds the lock, a BPF_F_LOCK update waits for it.
        let p = m.lookup(&k(0), 0).unwrap();
        // SAFETY: lock word at offset 0 of the value.
        unsafe { crate::spin_lock(p) };
        let m2 = m.clone();
        v[8] = 1;
        let t = std::thread::spawn(move || m2.update_user(&k(0), &v, BPF_F_LOCK));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!t.is_finished());
        // SAFETY: as above.
        unsafe { crate::spin_unlock(p) };
        assert_eq!(t.join().unwrap(), Ok(()));
        assert_eq!(m.lookup_user(&k(0), 0).unwrap()[8], 1);
    }

    #[test]
    fn for_each_visits_in_order_and_stops() {
        let m = create(MapSpec::new(MapType::Array, 4, 4, 5)).unwrap();
        let mut seen = vec![];
        let n = m
            .for_each(0, 0, &mut |key, _v| {
                seen.push(key_u32(key));
                seen.len() == 3
            })
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(seen, vec![0, 1, 2]);
        assert_eq!(m.for_each(0, 1, &mut |_, _| false).unwrap_err().errno(), -EINVAL);
    }
}
