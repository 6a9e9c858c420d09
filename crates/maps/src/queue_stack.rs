//! `BPF_MAP_TYPE_QUEUE` and `BPF_MAP_TYPE_STACK` (kernel/bpf/queue_stack_maps.c).
//!
//! Keyless (`key_size` 0). Push takes `BPF_ANY` or `BPF_EXIST`; with
//! `BPF_EXIST` a full map drops its *oldest* element to make room (for a
//! stack too, as in the kernel), otherwise a full map is `E2BIG`.
//! `BPF_NOEXIST` is `EINVAL`. Pop and peek of an empty map zero the output
//! and fail with `ENOENT`. From user space, update pushes, lookup peeks and
//! lookup-and-delete pops; delete and get-next-key are `EINVAL`.
//! Programs get copies, never pointers, so the map has no value regions.

use std::any::Any;

use parking_lot::Mutex;

use crate::error::{MapError, Result};
use crate::{
    check_flags, check_lookup_flags, check_user_value, Map, MapSpec, MapType, BPF_EXIST, BPF_F_ACCESS_MASK,
    BPF_F_NUMA_NODE, BPF_NOEXIST,
};

struct Ring {
    head: u32,
    tail: u32,
    /// `max_entries + 1` slots.
    size: u32,
    elems: Vec<u8>,
}

/// A `queue` or `stack` map.
pub struct QueueStack {
    spec: MapSpec,
    stack: bool,
    ring: Mutex<Ring>,
}

impl QueueStack {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<QueueStack> {
        let stack = match spec.kind() {
            Some(MapType::Queue) => false,
            Some(MapType::Stack) => true,
            _ => return Err(MapError::invalid(format!("{} is not a queue or stack", spec.describe()))),
        };
        if spec.max_entries == 0 || spec.key_size != 0 || spec.value_size == 0 {
            return Err(MapError::invalid(format!(
                "{}: needs max_entries > 0, key_size 0 and value_size > 0 (got {}, {}, {})",
                spec.describe(),
                spec.max_entries,
                spec.key_size,
                spec.value_size
            )));
        }
        check_flags(&spec, BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK)?;
        if spec.value_size > 1 << 30 {
            return Err(MapError::TooBig(
                format!("{}: value_size {} too large", spec.describe(), spec.value_size).into(),
            ));
        }
        if spec.max_entries == u32::MAX {
            return Err(MapError::NoMemory(format!("{}: max_entries too large", spec.describe()).into()));
        }
        let size = spec.max_entries as u64 + 1;
        let bytes = size
            .checked_mul(spec.value_size as u64)
            .filter(|b| *b <= isize::MAX as u64)
            .ok_or_else(|| MapError::NoMemory(format!("{}: size overflows", spec.describe()).into()))?;
        let mut elems = Vec::new();
        elems
            .try_reserve_exact(bytes as usize)
            .map_err(|_| MapError::NoMemory(format!("{}: cannot allocate {bytes} bytes", spec.describe()).into()))?;
        elems.resize(bytes as usize, 0);
        Ok(QueueStack { spec, stack, ring: Mutex::new(Ring { head: 0, tail: 0, size: size as u32, elems }) })
    }

    /// Number of elements held.
    pub fn len(&self) -> u32 {
        let r = self.ring.lock();
        ((r.head as u64 + r.size as u64 - r.tail as u64) % r.size as u64) as u32
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, out: &mut [u8], delete: bool) -> Result<()> {
        let vs = self.spec.value_size as usize;
        if out.len() < vs {
            return Err(MapError::invalid(format!(
                "{}: output is {} bytes, value_size is {vs}",
                self.spec.describe(),
                out.len()
            )));
        }
        let out = &mut out[..vs];
        let mut r = self.ring.lock();
        if r.head == r.tail {
            out.fill(0);
            return Err(MapError::NotFound);
        }
        let index = if self.stack {
            if r.head == 0 {
                r.size - 1
            } else {
                r.head - 1
            }
        } else {
            r.tail
        };
        let o = index as usize * vs;
        out.copy_from_slice(&r.elems[o..o + vs]);
        if delete {
            if self.stack {
                r.head = index;
            } else {
                r.tail = (r.tail + 1) % r.size;
            }
        }
        Ok(())
    }
}

impl Map for QueueStack {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    fn lookup(&self, _key: &[u8], _cpu: u32) -> Option<*mut u8> {
        None
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> Result<()> {
        Err(MapError::invalid(format!("{}: use push, not update", self.spec.describe())))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(MapError::invalid(format!("{}: use pop, not delete", self.spec.describe())))
    }

    fn push(&self, value: &[u8], flags: u64) -> Result<()> {
        let vs = self.spec.value_size as usize;
        if value.len() < vs {
            return Err(MapError::invalid(format!(
                "{}: value is {} bytes, value_size is {vs}",
                self.spec.describe(),
                value.len()
            )));
        }
        if flags & BPF_NOEXIST != 0 || flags > BPF_EXIST {
            return Err(MapError::invalid(format!(
                "{}: push flags must be BPF_ANY or BPF_EXIST",
                self.spec.describe()
            )));
        }
        let mut r = self.ring.lock();
        if (r.head + 1) % r.size == r.tail {
            if flags & BPF_EXIST == 0 {
                return Err(MapError::Full { max_entries: self.spec.max_entries });
            }
            // Overwrite the oldest element.
            r.tail = (r.tail + 1) % r.size;
        }
        let o = r.head as usize * vs;
        r.elems[o..o + vs].copy_from_slice(&value[..vs]);
        r.head = (r.head + 1) % r.size;
        Ok(())
    }

    fn pop(&self, out: &mut [u8]) -> Result<()> {
        self.get(out, true)
    }

    fn peek(&self, out: &mut [u8]) -> Result<()> {
        self.get(out, false)
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        check_lookup_flags(&self.spec, flags)?;
        no_key(&self.spec, key)?;
        check_user_value(&self.spec, out.len(), self.spec.value_size as usize)?;
        self.peek(out)
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        if flags & crate::BPF_F_LOCK != 0 {
            return Err(crate::no_lock(&self.spec));
        }
        no_key(&self.spec, key)?;
        check_user_value(&self.spec, value.len(), self.spec.value_size as usize)?;
        self.push(value, flags)
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        no_key(&self.spec, key)?;
        self.delete(key)
    }

    fn lookup_and_delete_user(&self, key: &[u8], flags: u64) -> Result<Vec<u8>> {
        if flags != 0 {
            return Err(MapError::invalid(format!("{}: lookup-and-delete flags must be 0", self.spec.describe())));
        }
        no_key(&self.spec, key)?;
        let mut out = vec![0u8; self.spec.value_size as usize];
        self.pop(&mut out)?;
        Ok(out)
    }

    fn get_next_key_into(&self, _key: Option<&[u8]>, _next: &mut [u8]) -> Result<()> {
        Err(MapError::invalid(format!("{}: has no keys to iterate", self.spec.describe())))
    }

    fn value_regions(&self) -> Vec<(usize, usize)> {
        Vec::new()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn no_key(spec: &MapSpec, key: &[u8]) -> Result<()> {
    if !key.is_empty() {
        return Err(MapError::invalid(format!("{}: takes no key (key_size 0)", spec.describe())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::*;
    use crate::{create, BPF_ANY};

    fn pop(m: &dyn Map) -> Result<u32> {
        let mut b = [0u8; 4];
        m.pop(&mut b).map(|_| u32::from_ne_bytes(b))
    }

    #[test]
    fn create_checks() {
        let e = |s: MapSpec| create(s).unwrap_err().errno();
        assert_eq!(e(MapSpec::new(MapType::Queue, 4, 4, 4)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Queue, 0, 0, 4)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Stack, 0, 4, 0)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Stack, 0, 4, 4).flags(crate::BPF_F_NO_PREALLOC)), -EINVAL);
    }

    #[test]
    fn queue_fifo_overflow() {
        let m = create(MapSpec::new(MapType::Queue, 0, 4, 3)).unwrap();
        for i in 1..=3u32 {
            m.push(&i.to_ne_bytes(), BPF_ANY).unwrap();
        }
        assert_eq!(m.push(&4u32.to_ne_bytes(), BPF_ANY).unwrap_err().errno(), -E2BIG);
        assert_eq!(m.push(&4u32.to_ne_bytes(), BPF_NOEXIST).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.push(&4u32.to_ne_bytes(), 3).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.push(&4u32.to_ne_bytes(), 4).unwrap_err().errno(), -EINVAL);
        // BPF_EXIST overwrites the oldest (1).
        m.push(&4u32.to_ne_bytes(), BPF_EXIST).unwrap();
        let mut b = [0u8; 4];
        m.peek(&mut b).unwrap();
        assert_eq!(u32::from_ne_bytes(b), 2);
        assert_eq!(m.as_queue_stack().unwrap().len(), 3);
        assert_eq!(pop(&*m), Ok(2));
        assert_eq!(pop(&*m), Ok(3));
        assert_eq!(pop(&*m), Ok(4));
        let mut b = [0xffu8; 4];
        assert_eq!(m.pop(&mut b), Err(MapError::NotFound));
        assert_eq!(b, [0; 4]);
        let mut b = [0xffu8; 4];
        assert_eq!(m.peek(&mut b), Err(MapError::NotFound));
        assert_eq!(b, [0; 4]);
        // BPF_EXIST on a non-full queue just pushes.
        m.push(&9u32.to_ne_bytes(), BPF_EXIST).unwrap();
        assert_eq!(pop(&*m), Ok(9));
    }

    #[test]
    fn stack_lifo_overflow_drops_oldest() {
        let m = create(MapSpec::new(MapType::Stack, 0, 4, 3)).unwrap();
        for i in 1..=3u32 {
            m.push(&i.to_ne_bytes(), BPF_ANY).unwrap();
        }
        assert_eq!(m.push(&4u32.to_ne_bytes(), BPF_ANY).unwrap_err().errno(), -E2BIG);
        m.push(&4u32.to_ne_bytes(), BPF_EXIST).unwrap();
        assert_eq!(pop(&*m), Ok(4));
        assert_eq!(pop(&*m), Ok(3));
        assert_eq!(pop(&*m), Ok(2));
        assert_eq!(pop(&*m), Err(MapError::NotFound));
        // Wrap around many times.
        for round in 0..10u32 {
            for i in 0..3 {
                m.push(&(round * 10 + i).to_ne_bytes(), BPF_ANY).unwrap();
            }
            assert_eq!(pop(&*m), Ok(round * 10 + 2));
            assert_eq!(pop(&*m), Ok(round * 10 + 1));
            assert_eq!(pop(&*m), Ok(round * 10));
        }
    }

    #[test]
    fn user_side() {
        let m = create(MapSpec::new(MapType::Queue, 0, 4, 2)).unwrap();
        m.update_user(&[], &7u32.to_ne_bytes(), BPF_ANY).unwrap();
        assert_eq!(m.lookup_user(&[], 0).unwrap(), 7u32.to_ne_bytes().to_vec());
        assert_eq!(m.lookup_user(&[], crate::BPF_F_LOCK).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.lookup_and_delete_user(&[], 1).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.lookup_and_delete_user(&[], 0).unwrap(), 7u32.to_ne_bytes().to_vec());
        assert_eq!(m.lookup_and_delete_user(&[], 0), Err(MapError::NotFound));
        assert_eq!(m.delete_user(&[]).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.get_next_key(None).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&[1], &7u32.to_ne_bytes(), BPF_ANY).unwrap_err().errno(), -EINVAL);
        assert!(m.lookup(&[], 0).is_none());
        assert_eq!(m.update(&[], &[0; 4], 0, 0).unwrap_err().errno(), -EINVAL);
    }
}
