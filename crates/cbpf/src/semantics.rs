//! Kernel semantics shared by the converted code's helpers and the
//! reference interpreter: packet loads at any offset (including the
//! `SKF_NET_OFF` / `SKF_LL_OFF` bases), the CPU number and random numbers.

use crate::context::{Packet, SkbContext};
use crate::insn::skf;
use std::cell::Cell;

/// A read-only view of what the helpers and the interpreter need.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a> {
    pub data: &'a [u8],
    /// `skb->len`.
    pub len: u32,
    pub protocol: u16,
    /// `(tpid, tci)` of the out-of-band tag; "present" when non-zero.
    pub vlan: (u16, u16),
    pub mac_offset: Option<u32>,
    pub network_offset: u32,
}

impl<'a> View<'a> {
    pub fn of_packet(p: &Packet<'a>) -> Self {
        View {
            data: p.data,
            len: p.len,
            protocol: p.protocol,
            vlan: p.vlan.map_or((0, 0), |v| (v.tpid, v.tci)),
            mac_offset: p.mac_offset,
            network_offset: p.network_offset,
        }
    }

    pub fn of_context(c: &SkbContext, data: &'a [u8]) -> Self {
        View {
            data,
            len: c.len,
            protocol: u16::from_be_bytes(c.protocol_be.to_ne_bytes()),
            vlan: (u16::from_be_bytes(c.vlan_proto_be.to_ne_bytes()), c.vlan_tci),
            mac_offset: (c.mac_header_set != 0).then_some(c.mac_offset),
            network_offset: c.network_offset,
        }
    }

    pub fn vlan_present(&self) -> bool {
        self.vlan != (0, 0)
    }

    /// Reads `size` (1, 2 or 4) bytes big-endian at the classic offset
    /// `offset` (`k`, or `X + k` wrapped to 32 bits), with the kernel's
    /// rules (`bpf_skb_load_helper_*` since Linux 6.15): non-negative
    /// offsets are from the packet start; `SKF_NET_OFF + n` is `n` bytes
    /// after the network header; `SKF_LL_OFF + n` after the link-layer
    /// header (when there is one); anything else negative fails. `None`
    /// means the filter ends returning 0.
    pub fn load(&self, offset: i32, size: usize) -> Option<u32> {
        let off: i64 = if offset >= 0 {
            offset as i64
        } else if offset >= skf::NET_OFF {
            offset as i64 - skf::NET_OFF as i64 + self.network_offset as i64
        } else if offset >= skf::LL_OFF {
            offset as i64 - skf::LL_OFF as i64 + self.mac_offset? as i64
        } else {
            return None;
        };
        let off = usize::try_from(off).ok()?;
        let b = self.data.get(off..off.checked_add(size)?)?;
        Some(match size {
            1 => b[0] as u32,
            2 => u16::from_be_bytes([b[0], b[1]]) as u32,
            _ => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        })
    }
}

/// The CPU the calling thread runs on (`SKF_AD_CPU`,
/// `raw_smp_processor_id()`), from `sched_getcpu`; 0 if unavailable.
pub(crate) fn current_cpu() -> u32 {
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    u32::try_from(c).unwrap_or(0)
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A pseudo-random 32-bit number (`SKF_AD_RANDOM`, the kernel's
/// `bpf_user_rnd_u32`): a per-thread xorshift64* generator seeded from the
/// standard library's per-process random hash keys.
pub(crate) fn random_u32() -> u32 {
    RNG.with(|s| {
        let mut x = s.get();
        if x == 0 {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(s as *const Cell<u64> as usize);
            x = h.finish() | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_offsets_follow_the_kernel() {
        let data: Vec<u8> = (0..32).collect();
        let v = View { data: &data, len: 32, protocol: 0, vlan: (0, 0), mac_offset: Some(2), network_offset: 14 };
        assert_eq!(v.load(0, 4), Some(0x00010203));
        assert_eq!(v.load(30, 2), Some(0x1e1f));
        assert_eq!(v.load(31, 2), None);
        assert_eq!(v.load(skf::NET_OFF, 1), Some(14));
        assert_eq!(v.load(skf::NET_OFF + 17, 1), Some(31));
        assert_eq!(v.load(skf::NET_OFF + 18, 1), None);
        assert_eq!(v.load(skf::LL_OFF + 1, 2), Some(0x0304));
        assert_eq!(v.load(skf::LL_OFF - 1, 1), None);
        assert_eq!(v.load(-1, 1), None);
        let v = View { mac_offset: None, ..v };
        assert_eq!(v.load(skf::LL_OFF, 1), None);
    }

    #[test]
    fn random_numbers_vary() {
        let a: Vec<u32> = (0..8).map(|_| random_u32()).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]));
    }
}
