//! `BPF_MAP_TYPE_XSKMAP` (net/xdp/xskmap.c).
//!
//! Slots hold AF_XDP sockets. The kernel takes a socket fd; uxdp stores the
//! runtime's socket id (non-zero) and the socket's queue id. A program's
//! lookup returns a pointer to `struct bpf_xdp_sock { u32 queue_id; }`
//! (read-only), as the kernel does; user-space lookups are `EOPNOTSUPP`.

use std::any::Any;
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::Mutex;

use crate::error::{MapError, Result};
use crate::redirect::check_dims;
use crate::storage::{zeroed_slice, Slab};
use crate::{
    array_next_key, check_flags, check_key, check_user_value, delete_index, key_u32, prog_may_only, Map, MapSpec,
    MapType, BPF_EXIST, BPF_F_NUMA_NODE, BPF_F_RDONLY, BPF_F_WRONLY, BPF_NOEXIST,
};

/// An `xskmap`.
pub struct XskMap {
    spec: MapSpec,
    socks: Box<[AtomicU32]>,
    values: Slab,
    writer: Mutex<()>,
}

impl XskMap {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<XskMap> {
        check_dims(&spec, MapType::Xskmap, &[4], "4")?;
        check_flags(&spec, BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY)?;
        let n = spec.max_entries as usize;
        Ok(XskMap {
            socks: zeroed_slice(n, "xskmap slots")?,
            values: Slab::new(n * 8, "xskmap values")?,
            writer: Mutex::new(()),
            spec,
        })
    }

    /// Puts socket `sock_id` (non-zero) bound to `queue_id` at `index`, with
    /// the kernel's flag semantics (re-inserting the same socket always
    /// succeeds).
    pub fn set_socket(&self, index: u32, sock_id: u32, queue_id: u32, flags: u64) -> Result<()> {
        if flags > BPF_EXIST {
            return Err(MapError::invalid(format!("{}: unknown update flags {flags:#x}", self.spec.describe())));
        }
        if index >= self.spec.max_entries {
            return Err(MapError::IndexOutOfRange { index, max_entries: self.spec.max_entries });
        }
        if sock_id == 0 {
            return Err(MapError::BadFd(format!("{}: socket id 0 names no socket", self.spec.describe()).into()));
        }
        let _g = self.writer.lock();
        let slot = &self.socks[index as usize];
        let old = slot.load(Ordering::Acquire);
        if old != sock_id {
            if old != 0 && flags == BPF_NOEXIST {
                return Err(MapError::Exists);
            }
            if old == 0 && flags == BPF_EXIST {
                return Err(MapError::NotFound);
            }
        }
        let q = self.values.at(index as usize * 8);
        // SAFETY: 4-aligned word of this map's value memory, only written
        // atomically by the map (programs may only read it).
        unsafe { (*(q as *const AtomicU32)).store(queue_id, Ordering::Release) };
        slot.store(sock_id, Ordering::Release);
        Ok(())
    }

    /// The socket id at `index` (for `bpf_redirect_map`).
    #[inline]
    pub fn get(&self, index: u32) -> Option<u32> {
        match self.socks.get(index as usize)?.load(Ordering::Acquire) {
            0 => None,
            s => Some(s),
        }
    }
}

impl Map for XskMap {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    fn lookup(&self, key: &[u8], _cpu: u32) -> Option<*mut u8> {
        if key.len() != 4 {
            return None;
        }
        let i = key_u32(key);
        self.get(i)?;
        Some(self.values.at(i as usize * 8))
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> Result<()> {
        Err(prog_may_only(&self.spec, "look up and redirect"))
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(prog_may_only(&self.spec, "look up and redirect"))
    }

    fn lookup_user_into(&self, _key: &[u8], _out: &mut [u8], _flags: u64) -> Result<()> {
        Err(MapError::OpNotSupported(format!("{}: sockets cannot be read back", self.spec.describe()).into()))
    }

    /// The value is the socket id; the queue id is set to 0 (use
    /// [`XskMap::set_socket`] to give one).
    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        check_key(&self.spec, key)?;
        check_user_value(&self.spec, value.len(), 4)?;
        self.set_socket(key_u32(key), key_u32(value), 0, flags)
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        let i = delete_index(&self.spec, key)?;
        let _g = self.writer.lock();
        self.socks[i as usize].store(0, Ordering::Release);
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
    use crate::test_util::k;
    use crate::{create, BPF_ANY};

    #[test]
    fn xskmap() {
        assert_eq!(create(MapSpec::new(MapType::Xskmap, 4, 8, 4)).unwrap_err().errno(), -EINVAL);
        let m = create(MapSpec::new(MapType::Xskmap, 4, 4, 4)).unwrap();
        assert_eq!(m.update_user(&k(0), &k(11), BPF_EXIST), Err(MapError::NotFound));
        assert_eq!(m.update_user(&k(0), &k(11), BPF_NOEXIST), Ok(()));
        assert_eq!(m.update_user(&k(0), &k(12), BPF_NOEXIST), Err(MapError::Exists));
        // Same socket again: always fine.
        assert_eq!(m.update_user(&k(0), &k(11), BPF_NOEXIST), Ok(()));
        assert_eq!(m.update_user(&k(0), &k(0), BPF_ANY).unwrap_err().errno(), -EBADF);
        assert_eq!(m.update_user(&k(4), &k(1), BPF_ANY).unwrap_err().errno(), -E2BIG);
        assert_eq!(m.update_user(&k(1), &k(1), 4).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.lookup_user(&k(0), 0).unwrap_err().errno(), -EOPNOTSUPP);
        let x = m.as_xskmap().unwrap();
        x.set_socket(2, 13, 5, BPF_ANY).unwrap();
        assert_eq!(x.get(2), Some(13));
        let p = m.lookup(&k(2), 0).unwrap();
        // SAFETY: value memory.
        assert_eq!(unsafe { (p as *const u32).read() }, 5);
        assert!(m.lookup(&k(1), 0).is_none());
        assert_eq!(m.delete_user(&k(2)), Ok(()));
        assert_eq!(m.delete_user(&k(2)), Ok(()));
        assert_eq!(m.delete_user(&k(4)).unwrap_err().errno(), -EINVAL);
        assert!(m.lookup(&k(2), 0).is_none());
        assert_eq!(m.get_next_key(Some(&k(3))), Err(MapError::NotFound));
    }
}
