//! The raw `bpf(2)` system call: our own `#[repr(C)]` subsets of `union bpf_attr`.
//!
//! Every attribute struct here is a prefix of the corresponding member of the
//! kernel's `union bpf_attr` (include/uapi/linux/bpf.h); the size passed to the
//! kernel is the size of that prefix, and the kernel zero-fills the rest.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::Errno;

/// `BPF_MAP_CREATE`.
pub(crate) const BPF_MAP_CREATE: u32 = 0;
/// `BPF_MAP_LOOKUP_ELEM`.
pub(crate) const BPF_MAP_LOOKUP_ELEM: u32 = 1;
/// `BPF_MAP_UPDATE_ELEM`.
pub(crate) const BPF_MAP_UPDATE_ELEM: u32 = 2;
/// `BPF_MAP_DELETE_ELEM`.
pub(crate) const BPF_MAP_DELETE_ELEM: u32 = 3;
/// `BPF_MAP_GET_NEXT_KEY`.
pub(crate) const BPF_MAP_GET_NEXT_KEY: u32 = 4;
/// `BPF_PROG_LOAD`.
pub(crate) const BPF_PROG_LOAD: u32 = 5;
/// `BPF_PROG_TEST_RUN`.
pub(crate) const BPF_PROG_TEST_RUN: u32 = 10;
/// `BPF_OBJ_GET_INFO_BY_FD`.
pub(crate) const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
/// `BPF_BTF_LOAD`.
pub(crate) const BPF_BTF_LOAD: u32 = 18;

/// `attr` for BPF_BTF_LOAD.
#[repr(C)]
#[derive(Default)]
pub(crate) struct BtfLoadAttr {
    pub btf: u64,
    pub btf_log_buf: u64,
    pub btf_size: u32,
    pub btf_log_size: u32,
    pub btf_log_level: u32,
}

/// `attr.prog_load` up to and including `log_true_size` (Linux 6.4+).
#[repr(C)]
#[derive(Default)]
pub(crate) struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    pub attach_btf_id: u32,
    pub attach_prog_fd: u32,
    pub core_relo_cnt: u32,
    pub fd_array: u64,
    pub core_relos: u64,
    pub core_relo_rec_size: u32,
    pub log_true_size: u32,
}

/// `attr.test` (BPF_PROG_TEST_RUN).
#[repr(C)]
#[derive(Default)]
pub(crate) struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    pub _pad: u32,
}

/// `attr` for BPF_MAP_CREATE, up to and including `map_name`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; 16],
}

/// `attr` for the map element commands.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    /// `value` or `next_key`.
    pub value: u64,
    pub flags: u64,
}

/// `attr.info` (BPF_OBJ_GET_INFO_BY_FD).
#[repr(C)]
#[derive(Default)]
pub(crate) struct InfoAttr {
    pub bpf_fd: u32,
    pub info_len: u32,
    pub info: u64,
}

/// Prefix of `struct bpf_map_info`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(crate) struct MapInfoRaw {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: [u8; 16],
}

/// Issues `bpf(cmd, attr, size_of::<T>())`; returns the non-negative result.
///
/// # Safety
/// Every pointer stored in `attr` must be valid for the access the kernel
/// makes for `cmd` (reads of inputs, writes of the declared output sizes).
pub(crate) unsafe fn bpf<T>(cmd: u32, attr: &mut T) -> Result<i64, Errno> {
    // SAFETY: `attr` is a valid, initialised, writable `#[repr(C)]` struct of
    // exactly the size we pass; the caller vouches for the pointers inside it.
    let ret = unsafe {
        libc::syscall(libc::SYS_bpf, cmd as libc::c_long, attr as *mut T as *mut libc::c_void, std::mem::size_of::<T>())
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret as i64)
    }
}

/// Wraps a file descriptor returned by the kernel.
pub(crate) fn owned_fd(ret: i64) -> OwnedFd {
    // SAFETY: the bpf syscall just returned this new descriptor to us and
    // nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
}

/// Raw value of a borrowed descriptor as the kernel's `u32`.
pub(crate) fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd() as u32
}

/// Copies a name into a kernel 16-byte name field (at most 15 bytes, only
/// the characters the kernel accepts in object names: alphanumerics, `_`, `.`).
pub(crate) fn obj_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (slot, b) in
        out.iter_mut().take(15).zip(name.bytes().filter(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.'))
    {
        *slot = b;
    }
    out
}

/// BPF_OBJ_GET_INFO_BY_FD for a map.
pub(crate) fn map_info(fd: BorrowedFd<'_>) -> Result<MapInfoRaw, Errno> {
    let mut info = MapInfoRaw::default();
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(fd),
        info_len: std::mem::size_of::<MapInfoRaw>() as u32,
        info: &mut info as *mut MapInfoRaw as u64,
    };
    // SAFETY: `info` is writable for `info_len` bytes.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info)
}

/// BPF_MAP_LOOKUP_ELEM; `Ok(false)` for ENOENT.
pub(crate) fn map_lookup(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> Result<bool, Errno> {
    let mut attr = MapElemAttr {
        map_fd: fd_u32(fd),
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: the caller sized `key` and `value` for this map.
    found(unsafe { bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) })
}

/// BPF_MAP_UPDATE_ELEM.
pub(crate) fn map_update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8], flags: u64) -> Result<(), Errno> {
    let mut attr = MapElemAttr {
        map_fd: fd_u32(fd),
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags,
        ..Default::default()
    };
    // SAFETY: the caller sized `key` and `value` for this map; the kernel only reads them.
    unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(|_| ())
}

/// BPF_MAP_DELETE_ELEM; `Ok(false)` for ENOENT.
pub(crate) fn map_delete(fd: BorrowedFd<'_>, key: &[u8]) -> Result<bool, Errno> {
    let mut attr = MapElemAttr { map_fd: fd_u32(fd), key: key.as_ptr() as u64, ..Default::default() };
    // SAFETY: the caller sized `key` for this map; the kernel only reads it.
    found(unsafe { bpf(BPF_MAP_DELETE_ELEM, &mut attr) })
}

/// BPF_MAP_GET_NEXT_KEY; `key = None` asks for the first key; `Ok(false)` at the end.
pub(crate) fn map_next_key(fd: BorrowedFd<'_>, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool, Errno> {
    let mut attr = MapElemAttr {
        map_fd: fd_u32(fd),
        key: key.map_or(0, |k| k.as_ptr() as u64),
        value: next.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: the caller sized `key` and `next` to the map's key size.
    found(unsafe { bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) })
}

/// `Ok(true)` for success, `Ok(false)` for ENOENT (no such element).
fn found<T>(r: Result<T, Errno>) -> Result<bool, Errno> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.0 == libc::ENOENT => Ok(false),
        Err(e) => Err(e),
    }
}

/// Number of possible CPUs (`/sys/devices/system/cpu/possible`), which sizes
/// the user-space view of per-CPU map values.
pub(crate) fn possible_cpus() -> Result<usize, String> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .map_err(|e| format!("reading /sys/devices/system/cpu/possible: {e}"))?;
    parse_cpu_list(text.trim())
        .ok_or_else(|| format!("cannot parse /sys/devices/system/cpu/possible: {:?}", text.trim()))
}

/// Parses a CPU list such as `0-3,5` into the highest CPU number + 1.
pub(crate) fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = None::<usize>;
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let hi = match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: usize = lo.trim().parse().ok()?;
                let hi: usize = hi.trim().parse().ok()?;
                if hi < lo {
                    return None;
                }
                hi
            }
            None => part.trim().parse().ok()?,
        };
        max = Some(max.map_or(hi, |m: usize| m.max(hi)));
    }
    max.map(|m| m + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_sizes_match_the_kernel_layout() {
        // Offsets from include/uapi/linux/bpf.h.
        assert_eq!(std::mem::size_of::<TestRunAttr>(), 80);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, attach_prog_fd), 112);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, fd_array), 120);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, log_true_size), 140);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 144);
        assert_eq!(std::mem::offset_of!(TestRunAttr, ctx_out), 56);
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(std::mem::size_of::<MapElemAttr>(), 32);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,8-11"), Some(12));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(parse_cpu_list(""), None);
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(&obj_name("a-b.c_d")[..6], b"ab.c_d");
        assert_eq!(obj_name("0123456789abcdefXYZ")[15], 0);
    }
}
