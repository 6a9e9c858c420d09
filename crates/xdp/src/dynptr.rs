//! XDP dynptrs: `bpf_dynptr_from_xdp` and the dynptr helpers and kfuncs
//! that work on them (`bpf_dynptr_read`, `bpf_dynptr_write`,
//! `bpf_dynptr_slice`, `bpf_dynptr_slice_rdwr`).
//!
//! A `struct bpf_dynptr` is 16 opaque bytes on the program's stack. uxdp
//! lays it out as the kernel's `bpf_dynptr_kern` does — an 8-byte owner, a
//! 32-bit word holding the size (low 24 bits), the type (bits 28-30) and the
//! read-only bit (31), and a 32-bit offset — with the owner a tag naming the
//! run's packet. Offsets are relative to the packet's `data` at the time of
//! each call, as in the kernel, so `bpf_xdp_adjust_head` moves the window.

use crate::env::env;
use uxdp_vm::{Helper, Machine, VmError};

const EINVAL: i64 = -22;
const E2BIG: i64 = -7;
/// Owner tag of an XDP dynptr (never a valid address).
const XDP_OWNER: u64 = 0x5844_5044_594e_0001;
/// `BPF_DYNPTR_TYPE_XDP`.
const TYPE_XDP: u32 = 5;
const SIZE_MASK: u32 = (1 << 24) - 1;
const RDONLY: u32 = 1 << 31;
const DYNPTR_SIZE: u64 = 16;

fn fault(m: &Machine<'_>, helper: &'static str, msg: String) -> VmError {
    VmError::Helper { pc: m.pc(), helper, msg }
}

/// A decoded XDP dynptr: (offset, size, read-only), or `None` for a null one.
fn decode(m: &Machine<'_>, helper: &'static str, addr: u64) -> Result<Option<(u32, u32, bool)>, VmError> {
    let b = m
        .mem
        .slice(addr, DYNPTR_SIZE)
        .ok_or_else(|| fault(m, helper, format!("dynptr {addr:#x} is not 16 readable bytes")))?;
    let owner = u64::from_le_bytes(b[0..8].try_into().expect("8"));
    let word = u32::from_le_bytes(b[8..12].try_into().expect("4"));
    let offset = u32::from_le_bytes(b[12..16].try_into().expect("4"));
    match owner {
        0 => Ok(None),
        XDP_OWNER => Ok(Some((offset, word & SIZE_MASK, word & RDONLY != 0))),
        _ => Err(fault(m, helper, format!("{addr:#x} is not an initialised dynptr"))),
    }
}

/// `check_off_len`.
fn in_range(offset: u32, len: u32, size: u32) -> bool {
    len <= size && offset <= size - len
}

/// kfunc `bpf_dynptr_from_xdp(xdp_md *ctx, u64 flags, struct bpf_dynptr *ptr)`.
fn from_xdp(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let size = env(m)?.buff.buff_len() as u32;
    let out = m
        .mem
        .slice_mut(a[2], DYNPTR_SIZE)
        .ok_or_else(|| fault(m, "bpf_dynptr_from_xdp", format!("dynptr {:#x} is not 16 writable bytes", a[2])))?;
    if a[1] != 0 {
        out.fill(0);
        return Ok(EINVAL as u64);
    }
    out[0..8].copy_from_slice(&XDP_OWNER.to_le_bytes());
    out[8..12].copy_from_slice(&((size & SIZE_MASK) | (TYPE_XDP << 28)).to_le_bytes());
    out[12..16].copy_from_slice(&0u32.to_le_bytes());
    Ok(0)
}

/// Helper `bpf_dynptr_read(dst, len, src dynptr, offset, flags)`.
fn read(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let len = a[1] as u32;
    let Some((base, size, _)) = decode(m, "dynptr_read", a[2])? else { return Ok(EINVAL as u64) };
    if a[4] != 0 {
        return Ok(EINVAL as u64);
    }
    let off = a[3] as u32;
    if !in_range(off, len, size) {
        return Ok(E2BIG as u64);
    }
    let mut tmp = vec![0u8; len as usize];
    let r = env(m)?.buff.load_bytes(base + off, &mut tmp);
    if r != 0 {
        return Ok(r as u64);
    }
    let dst = m
        .mem
        .slice_mut(a[0], len as u64)
        .ok_or_else(|| fault(m, "dynptr_read", format!("{len} bytes at {:#x} are not writable", a[0])))?;
    dst.copy_from_slice(&tmp);
    Ok(0)
}

/// Helper `bpf_dynptr_write(dst dynptr, offset, src, len, flags)`.
fn write(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let Some((base, size, rdonly)) = decode(m, "dynptr_write", a[0])? else { return Ok(EINVAL as u64) };
    if rdonly {
        return Ok(EINVAL as u64);
    }
    let (off, len) = (a[1] as u32, a[3] as u32);
    if !in_range(off, len, size) {
        return Ok(E2BIG as u64);
    }
    if a[4] != 0 {
        return Ok(EINVAL as u64);
    }
    let src = m
        .mem
        .slice(a[2], len as u64)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| fault(m, "dynptr_write", format!("{len} bytes at {:#x} are not readable", a[2])))?;
    Ok(env(m)?.buff.store_bytes(base + off, &src) as u64)
}

/// kfuncs `bpf_dynptr_slice` / `bpf_dynptr_slice_rdwr(p, offset, buffer, buffer__szk)`:
/// a pointer into the packet when the range is in the linear part,
/// otherwise the bytes copied into `buffer` (NULL without one).
fn slice_common(m: &mut Machine<'_>, a: [u64; 5], helper: &'static str, rdwr: bool) -> Result<u64, VmError> {
    let Some((base, size, rdonly)) = decode(m, helper, a[0])? else { return Ok(0) };
    if rdwr && rdonly {
        return Ok(0);
    }
    let (off, len) = (a[1] as u32, a[3] as u32);
    if !in_range(off, len, size) {
        return Ok(0);
    }
    let e = env(m)?;
    let start = base as usize + off as usize;
    let linear = e.buff.data_end - e.buff.data;
    if start + len as usize <= linear {
        return Ok(e.buff.data_addr() + start as u64);
    }
    if a[2] == 0 {
        return Ok(0);
    }
    let r = crate::helpers::load_bytes_into(m, helper, start as u32, a[2], len as usize)?;
    Ok(if r == 0 { a[2] } else { 0 })
}

fn slice(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    slice_common(m, a, "bpf_dynptr_slice", false)
}

fn slice_rdwr(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    slice_common(m, a, "bpf_dynptr_slice_rdwr", true)
}

/// Registers the dynptr helpers.
pub(crate) fn register_helpers(h: &mut uxdp_vm::Helpers) {
    h.register(201, "dynptr_read", read).register(202, "dynptr_write", write);
}

/// Synthetic ids for kfuncs (outside the helper id range).
const KFUNC_BASE: u32 = 0x4000_0000;

/// Whether kfunc `id` ([`kfunc`]'s synthetic id) leaves the per-run regions
/// alone: all three dynptr kfuncs do (a slice points into the packet or
/// into the program's own buffer).
pub(crate) fn kfunc_keeps_regions(id: u32) -> bool {
    (KFUNC_BASE..KFUNC_BASE + 3).contains(&id)
}

/// The kfuncs uxdp provides to XDP programs, by kernel name.
pub fn kfunc(name: &str) -> Option<Helper> {
    let (i, name, func): (u32, &'static str, uxdp_vm::HelperFn) = match name {
        "bpf_dynptr_from_xdp" => (0, "bpf_dynptr_from_xdp", from_xdp),
        "bpf_dynptr_slice" => (1, "bpf_dynptr_slice", slice),
        "bpf_dynptr_slice_rdwr" => (2, "bpf_dynptr_slice_rdwr", slice_rdwr),
        _ => return None,
    };
    Some(Helper { id: KFUNC_BASE + i, name, func })
}
