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

use crate::error::{MapError, Result};
use crate::redirect::{check_dims, lookup_word_user, pack, parse_update, unpack, WordSlots};
use crate::{
    array_next_key, array_update_checks, check_flags, delete_index, key_u32, prog_may_only, Map, MapSpec, MapType,
    BPF_F_NUMA_NODE, MAX_CPUS,
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
    slots: WordSlots,
}

impl CpuMap {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<CpuMap> {
        check_dims(&spec, MapType::Cpumap, &[4, 8], "4 or 8")?;
        // Only BPF_F_NUMA_NODE; no access flags.
        check_flags(&spec, BPF_F_NUMA_NODE)?;
        if spec.max_entries > MAX_CPUS {
            return Err(MapError::TooBig(
                format!("{}: max_entries {} exceeds NR_CPUS {MAX_CPUS}", spec.describe(), spec.max_entries).into(),
            ));
        }
        let n = spec.max_entries as usize;
        Ok(CpuMap { slots: WordSlots::new(n, "cpumap slots", "cpumap values")?, spec })
    }

    /// The entry for CPU `index` (for `bpf_redirect_map`).
    pub fn get(&self, index: u32) -> Option<CpumapVal> {
        let (qsize, prog_id) = unpack(self.slots.get(index)?);
        Some(CpumapVal { qsize, prog_id })
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
        self.slots.ptr(key_u32(key))
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> Result<()> {
        Err(prog_may_only(&self.spec, "redirect"))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(prog_may_only(&self.spec, "redirect"))
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        lookup_word_user(&self.spec, key, out, flags, |i| self.slots.get(i))
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        let (cpu, qsize, prog) = parse_update(&self.spec, key, value)?;
        array_update_checks(&self.spec, cpu, flags)?;
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
            self.slots.clear(cpu);
        } else {
            self.slots.set(cpu, pack(qsize, prog));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::*;
    use crate::test_util::{k, val};
    use crate::{create, BPF_ANY, BPF_EXIST, BPF_NOEXIST};

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
