//! The network a uxdp test run sees, and the helpers that consult it.
//!
//! `BPF_PROG_TEST_RUN` runs XDP programs on the loopback device of the
//! caller's network namespace. uxdp models exactly that device and nothing
//! else: `lo`, ifindex 1, MTU 65536, a 14-byte hardware header, IPv4 and
//! IPv6 forwarding disabled (the default of a host that does not route),
//! no sockets. The helpers below give the kernel's answers for that
//! namespace: `bpf_check_mtu` compares against the loopback MTU,
//! `bpf_fib_lookup` reports forwarding disabled (or not forwarded for
//! link-local, multicast and loopback IPv6 addresses), and socket lookups
//! find nothing.

use crate::env::env;
use uxdp_vm::{Machine, VmError};

/// A network device of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetDevice {
    /// Interface index.
    pub ifindex: u32,
    /// Name.
    pub name: &'static str,
    /// MTU (L3 bytes).
    pub mtu: u32,
    /// Link-layer header length.
    pub hard_header_len: u32,
    /// Whether IPv4/IPv6 forwarding is enabled on it.
    pub forwarding: bool,
}

/// The loopback device test runs use.
pub const LOOPBACK: NetDevice =
    NetDevice { ifindex: 1, name: "lo", mtu: 65536, hard_header_len: 14, forwarding: false };

/// The device with index `ifindex`, if the model has one.
pub fn device(ifindex: u32) -> Option<NetDevice> {
    (ifindex == LOOPBACK.ifindex).then_some(LOOPBACK)
}

const EINVAL: i64 = -22;
const ENODEV: i64 = -19;
const EAFNOSUPPORT: i64 = -97;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

fn fault(m: &Machine<'_>, helper: &'static str, msg: String) -> VmError {
    VmError::Helper { pc: m.pc(), helper, msg }
}

/// `bpf_xdp_check_mtu(ctx, ifindex, *mtu_len, len_diff, flags)`.
pub(crate) fn check_mtu(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let mtu_ptr = a[2];
    let cur = m
        .mem
        .slice(mtu_ptr, 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .ok_or_else(|| fault(m, "check_mtu", format!("mtu_len {mtu_ptr:#x} is not 4 readable bytes")))?;
    let (ret, mtu) = if a[4] != 0 {
        (EINVAL, 0)
    } else {
        let ifindex = a[1] as u32;
        // One look at the environment (its downcast is not free).
        let e = env(m)?;
        let (ingress, linear) = (e.ctx.ingress_ifindex, e.buff.data_end as i64 - e.buff.data as i64);
        match device(if ifindex == 0 { ingress } else { ifindex }) {
            None => (ENODEV, 0),
            Some(dev) => {
                let dev_len = dev.mtu as i64 + dev.hard_header_len as i64;
                let mut len = if cur != 0 { cur as i64 + dev.hard_header_len as i64 } else { linear };
                // The kernel computes in `int`.
                len = (len as i32).wrapping_add(a[3] as i32) as i64;
                (if len > dev_len { 1 } else { 0 }, dev.mtu)
            }
        }
    };
    let out = m
        .mem
        .slice_mut(mtu_ptr, 4)
        .ok_or_else(|| fault(m, "check_mtu", format!("mtu_len {mtu_ptr:#x} is not writable")))?;
    out.copy_from_slice(&mtu.to_le_bytes());
    Ok(ret as u64)
}

/// Size of `struct bpf_fib_lookup`.
const FIB_PARAMS_SIZE: u64 = 64;
/// `BPF_FIB_LOOKUP_DIRECT | OUTPUT | SKIP_NEIGH | TBID | SRC | MARK`.
const FIB_FLAGS_MASK: u64 = 0x3f;
const FIB_RET_NOT_FWDED: u64 = 4;
const FIB_RET_FWD_DISABLED: u64 = 5;

/// `bpf_fib_lookup(ctx, params, plen, flags)` for XDP.
pub(crate) fn fib_lookup(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let plen = a[2] as i32;
    if (plen as i64) < FIB_PARAMS_SIZE as i64 {
        return Ok(EINVAL as u64);
    }
    if a[3] & !FIB_FLAGS_MASK != 0 {
        return Ok(EINVAL as u64);
    }
    let p = m
        .mem
        .slice(a[1], FIB_PARAMS_SIZE)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| fault(m, "fib_lookup", format!("params {:#x} are not 64 readable bytes", a[1])))?;
    let ifindex = u32::from_le_bytes(p[8..12].try_into().expect("4"));
    match p[0] {
        AF_INET => Ok(match device(ifindex) {
            None => ENODEV as u64,
            Some(d) if !d.forwarding => FIB_RET_FWD_DISABLED,
            Some(_) => FIB_RET_NOT_FWDED,
        }),
        AF_INET6 => {
            let strict = |addr: &[u8]| {
                let loopback = addr[..15].iter().all(|&b| b == 0) && addr[15] == 1;
                addr[0] == 0xff || (addr[0] == 0xfe && addr[1] & 0xc0 == 0x80) || loopback
            };
            // ipv6_src at 16, ipv6_dst at 32: link-local, multicast and
            // loopback addresses are never forwarded.
            if strict(&p[16..32]) || strict(&p[32..48]) {
                return Ok(FIB_RET_NOT_FWDED);
            }
            Ok(match device(ifindex) {
                None => ENODEV as u64,
                Some(d) if !d.forwarding => FIB_RET_FWD_DISABLED,
                Some(_) => FIB_RET_NOT_FWDED,
            })
        }
        _ => Ok(EAFNOSUPPORT as u64),
    }
}

/// `bpf_sk_lookup_tcp`, `bpf_sk_lookup_udp`, `bpf_skc_lookup_tcp`: the
/// model has no sockets, so every lookup returns NULL.
pub(crate) fn sk_lookup(_m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    Ok(0)
}

/// Helpers that take a socket (`bpf_tcp_check_syncookie`,
/// `bpf_tcp_gen_syncookie`, ...): the model has none to give, so a call is
/// a fault naming the argument.
pub(crate) fn needs_socket(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    Err(fault(m, "socket helper", format!("{:#x} is not a socket (uxdp's network has no sockets)", a[0])))
}

/// `bpf_sk_release(sk)`: never reached with a socket (lookups return NULL;
/// the verifier forbids releasing NULL).
pub(crate) fn sk_release(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    Err(fault(m, "sk_release", format!("{:#x} is not a socket this program acquired", a[0])))
}
