//! Context access rules: which offsets and sizes of `struct xdp_md` and
//! `struct __sk_buff` a program may read or write, and what a read yields
//! (the kernel's `xdp_is_valid_access` and `sk_filter_is_valid_access`).

use crate::{AttachType, ProgType};

/// What a valid context load produces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CtxField {
    /// A scalar of the access size.
    Scalar,
    /// `data`: start of the packet.
    Packet,
    /// `data_end`.
    PacketEnd,
    /// `data_meta`.
    PacketMeta,
    /// `__sk_buff.sk`: `sock_common` or NULL.
    SockCommonOrNull,
}

/// Size of `struct xdp_md`.
pub(crate) const XDP_MD_SIZE: i64 = 24;
/// Size of `struct __sk_buff`.
pub(crate) const SK_BUFF_SIZE: i64 = 192;

/// Checks a context access at byte offset `off` of `size` bytes; `Err`
/// explains why it is refused.
pub(crate) fn access(
    t: ProgType,
    attach: AttachType,
    off: i64,
    size: i64,
    write: bool,
) -> Result<CtxField, &'static str> {
    match t {
        ProgType::Xdp => xdp(attach, off, size, write),
        ProgType::SocketFilter => skb(off, size, write),
    }
}

fn xdp(attach: AttachType, off: i64, size: i64, write: bool) -> Result<CtxField, &'static str> {
    if !(0..XDP_MD_SIZE).contains(&off) {
        return Err("offset outside struct xdp_md");
    }
    if write {
        return Err("struct xdp_md is read-only");
    }
    if size != 4 || off % 4 != 0 {
        return Err("xdp_md fields are read as aligned 4-byte words");
    }
    match off {
        0 => Ok(CtxField::Packet),
        4 => Ok(CtxField::PacketEnd),
        8 => Ok(CtxField::PacketMeta),
        // egress_ifindex: only devmap programs know the egress device.
        20 if attach != AttachType::Devmap => Err("egress_ifindex is readable only by BPF_XDP_DEVMAP programs"),
        _ => Ok(CtxField::Scalar),
    }
}

fn skb(off: i64, size: i64, write: bool) -> Result<CtxField, &'static str> {
    let in_range = |lo: i64, hi: i64| off >= lo && off < hi;
    if !(0..SK_BUFF_SIZE).contains(&off) {
        return Err("offset outside struct __sk_buff");
    }
    // Fields socket filters may not touch at all.
    if in_range(72, 84) || in_range(88, 140) || in_range(140, 144) || in_range(152, 164) || in_range(184, 192) {
        return Err("field not accessible to socket filters (tc_classid, data, data_end, data_meta, family..local_port, tstamp, wire_len, hwtstamp)");
    }
    if write && !in_range(48, 68) {
        return Err("socket filters may write only cb[0..4]");
    }
    if off % size != 0 {
        return Err("misaligned context access");
    }
    if in_range(48, 68) {
        if off + size > 68 {
            return Err("access crosses the end of cb[]");
        }
        return Ok(CtxField::Scalar);
    }
    if in_range(144, 152) {
        return Err("flow_keys is not accessible");
    }
    if off == 168 {
        if write || size != 8 {
            return Err("sk is read as an 8-byte pointer");
        }
        return Ok(CtxField::SockCommonOrNull);
    }
    if in_range(168, 176) {
        return Err("narrow access to sk");
    }
    if in_range(180, 184) {
        return Err("tstamp_type and padding are not accessible");
    }
    if size > 4 {
        return Err("__sk_buff fields are at most 4 bytes wide");
    }
    Ok(CtxField::Scalar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_and_skb_rules() {
        use AttachType::*;
        let sk = ProgType::SocketFilter;
        assert_eq!(access(ProgType::Xdp, Default, 0, 4, false), Ok(CtxField::Packet));
        assert!(access(ProgType::Xdp, Default, 0, 8, false).is_err());
        assert!(access(ProgType::Xdp, Default, 12, 4, true).is_err());
        assert!(access(ProgType::Xdp, Default, 24, 4, false).is_err());
        assert!(access(ProgType::Xdp, Default, 20, 4, false).is_err());
        assert!(access(ProgType::Xdp, Cpumap, 20, 4, false).is_err());
        assert_eq!(access(ProgType::Xdp, Devmap, 20, 4, false), Ok(CtxField::Scalar));
        assert_eq!(access(ProgType::Xdp, Default, 16, 4, false), Ok(CtxField::Scalar));
        assert_eq!(access(sk, Default, 0, 4, false), Ok(CtxField::Scalar));
        assert_eq!(access(sk, Default, 0, 1, false), Ok(CtxField::Scalar));
        assert!(access(sk, Default, 76, 4, false).is_err());
        assert!(access(sk, Default, 0, 4, true).is_err());
        assert!(access(sk, Default, 48, 8, true).is_ok());
        assert!(access(sk, Default, 64, 8, true).is_err());
    }
}
