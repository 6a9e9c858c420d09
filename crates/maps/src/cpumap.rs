//! `BPF_MAP_TYPE_CPUMAP` (kernel/bpf/cpumap.c).
//!
//! Values are `struct bpf_cpumap_val { u32 qsize; u32 bpf_prog; }`
//! (`value_size` 4 or 8). As for devmaps, the second word holds the
//! runtime's program id (`> 0` as `i32`; the kernel takes an fd and returns
//! the id). A `qsize` of 0 removes the entry; above 16384 is `EOVERFLOW`; a
//! key that is not below `nr_cpus` (not a possible CPU) is `ENODEV`. The
//! runtime implements the redirect itself and reads entries with
//! [`CpuMap::get`].

use std::any::Any;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::error::{MapError, Result};
use crate::storage::{zeroed_slice, Slab};
use crate::{
    array_next_key, check_flags, check_key, check_lookup_flags, check_user_value, key_u32, Map, MapSpec, MapType,
    BPF_EXIST, BPF_F_NUMA_NODE, BPF_NOEXIST, MAX_CPUS,
};

/// The kernel's sanity limit on a CPU queue.
pub const CPUMAP_MAX_QSIZE: u32 = 16384;

/// A cpumap entry (`struct bpf_cpumap_val`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpumapVal {
    /// Queue size of the target CPU.
    pub qsize: u32,
    /// Program to run on the target CPU (0 = none).
    pub prog_id: u32,
}

/// A `cpumap`.
pub struct CpuMap {
    spec: MapSpec,
    present: Box<[AtomicU8]>,
    values: Slab,
}

impl CpuMap {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<CpuMap> {
        if spec.kind() != Some(MapType::Cpumap) {
            return Err(MapError::invalid(format!("{} is not a cpumap", spec.describe())));
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
        // Only BPF_F_NUMA_NODE; no access flags.
        check_flags(&spec, BPF_F_NUMA_NODE)?;
        if spec.max_entries > MAX_CPUS {
            return Err(MapError::TooBig(
                format!("{}: max_entries {} exceeds NR_CPUS {MAX_CPUS}", spec.describe(), spec.max_entries).into(),
            ));
        }
        let n = spec.max_entries as usize;
        Ok(CpuMap { present: zeroed_slice(n, "cpumap slots")?, values: Slab::new(n * 8, "cpumap values")?, spec })
    }

    fn ptr(&self, index: u32) -> Option<*mut u8> {
        if self.present.get(index as usize)?.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(self.values.at(index as usize * 8))
    }

    /// The entry for CPU `index` (for `bpf_redirect_map`).
    pub fn get(&self, index: u32) -> Option<CpumapVal> {
        let p = self.ptr(index)?;
        // SAFETY: 8-aligned value word of this map, only written atomically.
        let w = unsafe { (*(p as *const AtomicU64)).load(Ordering::Acquire) }.to_ne_bytes();
        Some(CpumapVal {
            qsize: u32::from_ne_bytes([w[0], w[1], w[2], w[3]]),
            prog_id: u32::from_ne_bytes([w[4], w[5], w[6], w[7]]),
        })
    }
}

impl Map for CpuMap {
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
        Err(MapError::OpNotSupported(format!("{}: programs may only redirect", self.spec.describe()).into()))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(MapError::OpNotSupported(format!("{}: programs may only redirect", self.spec.describe()).into()))
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        check_lookup_flags(&self.spec, flags)?;
        check_key(&self.spec, key)?;
        check_user_value(&self.spec, out.len(), self.spec.value_size as usize)?;
        let v = self.get(key_u32(key)).ok_or(MapError::NotFound)?;
        let mut w = [0u8; 8];
        w[..4].copy_from_slice(&v.qsize.to_ne_bytes());
        w[4..].copy_from_slice(&v.prog_id.to_ne_bytes());
        out.copy_from_slice(&w[..out.len()]);
        Ok(())
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        check_key(&self.spec, key)?;
        check_user_value(&self.spec, value.len(), self.spec.value_size as usize)?;
        let cpu = key_u32(key);
        let mut b = [0u8; 8];
        b[..value.len()].copy_from_slice(value);
        let qsize = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let prog = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]).max(0) as u32;
        if flags > BPF_EXIST {
            return Err(MapError::invalid(format!("{}: unknown update flags {flags:#x}", self.spec.describe())));
        }
        if cpu >= self.spec.max_entries {
            return Err(MapError::IndexOutOfRange { index: cpu, max_entries: self.spec.max_entries });
        }
        if flags == BPF_NOEXIST {
            return Err(MapError::Exists);
        }
        if qsize > CPUMAP_MAX_QSIZE {
            return Err(MapError::Overflow(
                format!("{}: qsize {qsize} exceeds {CPUMAP_MAX_QSIZE}", self.spec.describe()).into(),
            ));
        }
        if cpu >= self.spec.nr_cpus {
            return Err(MapError::NoDevice(
                format!("{}: CPU {cpu} is not a possible CPU (nr_cpus {})", self.spec.describe(), self.spec.nr_cpus)
                    .into(),
            ));
        }
        if qsize == 0 {
            self.present[cpu as usize].store(0, Ordering::Release);
            return Ok(());
        }
        let mut w = [0u8; 8];
        w[..4].copy_from_slice(&qsize.to_ne_bytes());
        w[4..].copy_from_slice(&prog.to_ne_bytes());
        let p = self.values.at(cpu as usize * 8);
        // SAFETY: 8-aligned value word of this map.
        unsafe { (*(p as *const AtomicU64)).store(u64::from_ne_bytes(w), Ordering::Release) };
        self.present[cpu as usize].store(1, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::*;
    use crate::{create, BPF_ANY};

    fn k(i: u32) -> [u8; 4] {
        i.to_ne_bytes()
    }

    fn val(q: u32, prog: i32) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&q.to_ne_bytes());
        b[4..].copy_from_slice(&prog.to_ne_bytes());
        b
    }

    #[test]
    fn cpumap() {
        let e = |s: MapSpec| create(s).unwrap_err().errno();
        assert_eq!(e(MapSpec::new(MapType::Cpumap, 4, 8, 4).flags(crate::BPF_F_RDONLY)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Cpumap, 4, 12, 4)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Cpumap, 4, 8, MAX_CPUS + 1)), -E2BIG);
        let m = create(MapSpec::new(MapType::Cpumap, 4, 8, 4).cpus(2)).unwrap();
        assert_eq!(m.update_user(&k(0), &val(192, 0), BPF_ANY), Ok(()));
        assert_eq!(m.update_user(&k(1), &val(64, 12), BPF_EXIST), Ok(()));
        assert_eq!(m.update_user(&k(1), &val(64, 12), BPF_NOEXIST), Err(MapError::Exists));
        assert_eq!(m.update_user(&k(1), &val(20000, 0), BPF_ANY).unwrap_err().errno(), -EOVERFLOW);
        assert_eq!(m.update_user(&k(2), &val(64, 0), BPF_ANY).unwrap_err().errno(), -ENODEV);
        assert_eq!(m.update_user(&k(4), &val(64, 0), BPF_ANY).unwrap_err().errno(), -E2BIG);
        assert_eq!(m.update_user(&k(1), &val(64, 0), 3).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.lookup_user(&k(1), 0).unwrap(), val(64, 12).to_vec());
        assert_eq!(m.lookup_user(&k(2), 0), Err(MapError::NotFound));
        assert_eq!(m.as_cpumap().unwrap().get(0), Some(CpumapVal { qsize: 192, prog_id: 0 }));
        // qsize 0 deletes.
        assert_eq!(m.update_user(&k(0), &val(0, 0), BPF_ANY), Ok(()));
        assert_eq!(m.lookup_user(&k(0), 0), Err(MapError::NotFound));
        assert_eq!(m.delete_user(&k(1)), Ok(()));
        assert_eq!(m.delete_user(&k(1)), Ok(()));
        assert_eq!(m.delete_user(&k(4)).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.get_next_key(None).unwrap(), k(0).to_vec());
        assert!(!m.program_writable());
    }
}
