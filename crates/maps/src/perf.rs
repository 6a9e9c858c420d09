//! `BPF_MAP_TYPE_PERF_EVENT_ARRAY` (kernel/bpf/arraymap.c and
//! `bpf_perf_event_output` in kernel/trace/bpf_trace.c).
//!
//! Each slot holds a perf event; in the kernel user space opens one per CPU
//! (`PERF_COUNT_SW_BPF_OUTPUT`) and stores its fd at index = CPU. uxdp
//! models the event as a bounded byte buffer bound to a CPU (or to any CPU),
//! opened with [`PerfEventArray::open`] or by `update_user` (which binds the
//! event to CPU = index, libbpf's convention). Output follows the kernel:
//! index `BPF_F_CURRENT_CPU` means the calling CPU, an index past
//! `max_entries` is `E2BIG`, an empty slot `ENOENT`, an event bound to
//! another CPU `EOPNOTSUPP`, a full buffer `ENOSPC` (the sample is counted
//! as lost). Samples are delivered as perf's `PERF_SAMPLE_RAW` does: the
//! data padded with zeros to `round_up(size + 4, 8) - 4` bytes.
//!
//! Buffer accounting per sample: 8 (perf header) + 4 (raw size) + padded
//! data, against the slot's capacity.

use std::any::Any;

use parking_lot::Mutex;

use crate::error::{MapError, Result};
use crate::fd_array::{fd_array_check, fd_index};
use crate::{
    array_next_key, check_any_flags, check_key, check_lookup_flags, expect_type, key_u32, prog_may_only, Map, MapSpec,
    MapType, BPF_F_CTXLEN_MASK, BPF_F_CURRENT_CPU, BPF_F_INDEX_MASK,
};

/// Capacity of a slot opened by `update_user`: 64 KiB (16 pages).
pub const DEFAULT_PERF_CAPACITY: usize = 64 * 1024;

/// What a consumer receives from [`PerfEventArray::drain`].
#[derive(Debug, PartialEq, Eq)]
pub enum PerfRecord<'a> {
    /// A sample's raw data (padded as perf pads it).
    Sample(&'a [u8]),
    /// Samples lost because the buffer was full since the last drain.
    Lost(u64),
}

struct Event {
    id: u32,
    cpu: Option<u32>,
    capacity: usize,
    used: usize,
    lost: u64,
    records: std::collections::VecDeque<Vec<u8>>,
}

/// A `perf_event_array`.
pub struct PerfEventArray {
    spec: MapSpec,
    slots: Box<[Mutex<Option<Event>>]>,
}

impl PerfEventArray {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<PerfEventArray> {
        expect_type(&spec, MapType::PerfEventArray)?;
        fd_array_check(&spec)?;
        let n = spec.max_entries as usize;
        let mut slots = Vec::new();
        slots
            .try_reserve_exact(n)
            .map_err(|_| MapError::NoMemory(format!("{}: cannot allocate {n} slots", spec.describe()).into()))?;
        slots.resize_with(n, || Mutex::new(None));
        Ok(PerfEventArray { spec, slots: slots.into_boxed_slice() })
    }

    /// Opens an event at `index` with id `id` (non-zero), bound to `cpu`
    /// (`None`: any CPU), holding up to `capacity` bytes. Replaces (and
    /// drops the samples of) any event already there.
    pub fn open(&self, index: u32, id: u32, cpu: Option<u32>, capacity: usize) -> Result<()> {
        let slot = self.slot(index)?;
        if id == 0 {
            return Err(MapError::BadFd(format!("{}: event id 0 names no event", self.spec.describe()).into()));
        }
        *slot.lock() = Some(Event { id, cpu, capacity, used: 0, lost: 0, records: std::collections::VecDeque::new() });
        Ok(())
    }

    /// `bpf_perf_event_output` from a program on `cpu`: appends `parts`
    /// concatenated as one sample. The `BPF_F_CTXLEN_MASK` bits are allowed;
    /// the runtime passes the context bytes they ask for as a part.
    pub fn output(&self, flags: u64, cpu: u32, parts: &[&[u8]]) -> Result<()> {
        if flags & !(BPF_F_INDEX_MASK | BPF_F_CTXLEN_MASK) != 0 {
            return Err(MapError::invalid(format!("{}: unknown output flags {flags:#x}", self.spec.describe())));
        }
        let mut index = flags & BPF_F_INDEX_MASK;
        if index == BPF_F_CURRENT_CPU {
            index = cpu as u64;
        }
        if index >= self.spec.max_entries as u64 {
            return Err(MapError::IndexOutOfRange { index: index as u32, max_entries: self.spec.max_entries });
        }
        let mut slot = self.slots[index as usize].lock();
        let ev = slot.as_mut().ok_or(MapError::NotFound)?;
        if let Some(c) = ev.cpu {
            if c != cpu {
                return Err(MapError::OpNotSupported(
                    format!("{}: event {index} is bound to CPU {c}, output came from CPU {cpu}", self.spec.describe())
                        .into(),
                ));
            }
        }
        let sum: usize = parts.iter().map(|p| p.len()).sum();
        let raw = (sum + 4).div_ceil(8) * 8 - 4;
        let footprint = 8 + 4 + raw;
        if ev.used + footprint > ev.capacity {
            ev.lost += 1;
            return Err(MapError::NoSpace(format!("{}: perf buffer {index} is full", self.spec.describe()).into()));
        }
        let mut rec = Vec::with_capacity(raw);
        for p in parts {
            rec.extend_from_slice(p);
        }
        rec.resize(raw, 0);
        ev.used += footprint;
        ev.records.push_back(rec);
        Ok(())
    }

    /// Delivers and removes the buffered samples of slot `index` (a
    /// [`PerfRecord::Lost`] first if samples were lost). Returns how many
    /// samples were delivered.
    pub fn drain(&self, index: u32, f: &mut dyn FnMut(PerfRecord<'_>)) -> Result<usize> {
        let slot = self.slot(index)?;
        // Take the samples out so that `f` runs without the lock.
        let (records, lost) = {
            let mut g = slot.lock();
            let ev = g.as_mut().ok_or(MapError::NotFound)?;
            ev.used = 0;
            (std::mem::take(&mut ev.records), std::mem::take(&mut ev.lost))
        };
        if lost > 0 {
            f(PerfRecord::Lost(lost));
        }
        let n = records.len();
        for r in &records {
            f(PerfRecord::Sample(r));
        }
        Ok(n)
    }

    /// Slot `index`; out of range is `E2BIG`.
    fn slot(&self, index: u32) -> Result<&Mutex<Option<Event>>> {
        self.slots.get(index as usize).ok_or(MapError::IndexOutOfRange { index, max_entries: self.spec.max_entries })
    }

    /// The id of the event at `index`.
    pub fn event_id(&self, index: u32) -> Option<u32> {
        self.slots.get(index as usize)?.lock().as_ref().map(|e| e.id)
    }
}

impl Map for PerfEventArray {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    fn lookup(&self, _key: &[u8], _cpu: u32) -> Option<*mut u8> {
        None
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> Result<()> {
        Err(prog_may_only(&self.spec, "output"))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(prog_may_only(&self.spec, "output"))
    }

    fn user_value_size(&self) -> usize {
        4
    }

    fn lookup_user_into(&self, _key: &[u8], _out: &mut [u8], flags: u64) -> Result<()> {
        check_lookup_flags(&self.spec, flags)?;
        Err(MapError::NotSupported(format!("{}: events cannot be read back", self.spec.describe()).into()))
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        check_any_flags(&self.spec, flags)?;
        check_key(&self.spec, key)?;
        crate::check_user_value(&self.spec, value.len(), 4)?;
        let index = key_u32(key);
        if index >= self.spec.max_entries {
            return Err(MapError::IndexOutOfRange { index, max_entries: self.spec.max_entries });
        }
        self.open(index, key_u32(value), Some(index), DEFAULT_PERF_CAPACITY)
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        let index = fd_index(&self.spec, key)?;
        match self.slot(index)?.lock().take() {
            Some(_) => Ok(()),
            None => Err(MapError::NotFound),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::*;
    use crate::test_util::k;
    use crate::{create, BPF_ANY};

    fn samples(p: &PerfEventArray, i: u32) -> (Vec<Vec<u8>>, u64) {
        let mut s = vec![];
        let mut lost = 0;
        p.drain(i, &mut |r| match r {
            PerfRecord::Sample(d) => s.push(d.to_vec()),
            PerfRecord::Lost(n) => lost += n,
        })
        .unwrap();
        (s, lost)
    }

    #[test]
    fn output_semantics() {
        assert_eq!(create(MapSpec::new(MapType::PerfEventArray, 4, 8, 2)).unwrap_err().errno(), -EINVAL);
        let m = create(MapSpec::new(MapType::PerfEventArray, 4, 4, 2).cpus(2)).unwrap();
        let p = m.as_perf_event_array().unwrap();
        assert_eq!(p.output(BPF_F_CURRENT_CPU, 0, &[b"x"]), Err(MapError::NotFound));
        m.update_user(&k(0), &k(100), BPF_ANY).unwrap();
        m.update_user(&k(1), &k(101), BPF_ANY).unwrap();
        assert_eq!(m.update_user(&k(1), &k(101), crate::BPF_NOEXIST).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&k(2), &k(101), BPF_ANY).unwrap_err().errno(), -E2BIG);
        assert_eq!(p.event_id(1), Some(101));
        p.output(BPF_F_CURRENT_CPU, 1, &[b"hello"]).unwrap();
        p.output(1, 1, &[b"abc", b"defg"]).unwrap();
        // Event 0 is bound to CPU 0.
        assert_eq!(p.output(0, 1, &[b"x"]).unwrap_err().errno(), -EOPNOTSUPP);
        assert_eq!(p.output(2, 1, &[b"x"]).unwrap_err().errno(), -E2BIG);
        assert_eq!(p.output(1 << 60, 1, &[b"x"]).unwrap_err().errno(), -EINVAL);
        // CTXLEN bits are accepted.
        p.output((14u64 << 32) | 1, 1, &[b"meta", &[7u8; 14]]).unwrap();
        let (s, lost) = samples(p, 1);
        assert_eq!(lost, 0);
        assert_eq!(s[0], b"hello\0\0\0\0\0\0\0".to_vec()); // round_up(5+4, 8) - 4 = 12
        assert_eq!(s[1], b"abcdefg\0\0\0\0\0".to_vec());
        assert_eq!(s[2].len(), 20);
        assert!(samples(p, 1).0.is_empty());
        assert_eq!(m.lookup_user(&k(0), 0).unwrap_err().errno(), -ENOTSUPP);
        assert_eq!(m.delete_user(&k(0)), Ok(()));
        assert_eq!(m.delete_user(&k(0)), Err(MapError::NotFound));
        assert_eq!(m.delete_user(&k(5)).unwrap_err().errno(), -E2BIG);
    }

    #[test]
    fn full_buffer_counts_lost() {
        let m = create(MapSpec::new(MapType::PerfEventArray, 4, 4, 1)).unwrap();
        let p = m.as_perf_event_array().unwrap();
        p.open(0, 1, None, 64).unwrap();
        // Each 20-byte sample takes 8 + 4 + 20 = 32 bytes.
        p.output(0, 0, &[&[1; 20]]).unwrap();
        p.output(0, 3, &[&[2; 20]]).unwrap();
        assert_eq!(p.output(0, 0, &[&[3; 20]]).unwrap_err().errno(), -ENOSPC);
        assert_eq!(p.output(0, 0, &[&[3; 20]]).unwrap_err().errno(), -ENOSPC);
        let (s, lost) = samples(p, 0);
        assert_eq!(lost, 2);
        assert_eq!(s, vec![vec![1; 20], vec![2; 20]]);
        p.output(0, 0, &[&[4; 20]]).unwrap();
        assert_eq!(samples(p, 0), (vec![vec![4; 20]], 0));
    }
}
