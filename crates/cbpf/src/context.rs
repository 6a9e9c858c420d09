//! What a classic filter sees besides the packet bytes: the socket-buffer
//! metadata read by `ld len` and the ancillary loads, and the link-layer
//! conventions used to derive it for offline packets.

/// A link-layer header type, as the `LINKTYPE_*` number stored in pcap and
/// pcapng files (<https://www.tcpdump.org/linktypes.html>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback (4-byte host-order address family).
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IPv4 or IPv6, version from the first nibble.
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback (4-byte network-order address family).
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// The link type of a pcap file header's `network` field: libpcap
    /// keeps the low 26 bits (the upper bits carry the FCS length).
    pub fn from_pcap_header(network: u32) -> LinkType {
        LinkType(network & 0x03ff_ffff)
    }

    /// The `DLT_*` value libpcap uses for this link type on Linux
    /// (`linktype_to_dlt`): equal except for a few historical numbers.
    pub fn to_dlt(self) -> i32 {
        match self.0 {
            100 => 11, // ATM_RFC1483
            101 => 12, // RAW
            102 => 15, // SLIP_BSDOS
            103 => 16, // PPP_BSDOS
            106 => 19, // ATM_CLIP
            n => n as i32,
        }
    }
}

impl core::fmt::Display for LinkType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self.0 {
            0 => "NULL",
            1 => "ETHERNET",
            101 => "RAW",
            108 => "LOOP",
            113 => "LINUX_SLL",
            228 => "IPV4",
            229 => "IPV6",
            276 => "LINUX_SLL2",
            _ => return write!(f, "LINKTYPE {}", self.0),
        };
        write!(f, "{name} ({})", self.0)
    }
}

/// `ETH_P_IP`.
pub const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_IPV6`.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// `ETH_P_802_3`: raw 802.3 frame (no 802.2 header).
pub const ETH_P_802_3: u16 = 0x0001;
/// `ETH_P_802_2`: 802.3 frame with an 802.2 LLC header.
pub const ETH_P_802_2: u16 = 0x0004;
/// `ARPHRD_ETHER`.
pub const ARPHRD_ETHER: u16 = 1;

/// `skb->pkt_type` values.
pub mod pkt_type {
    /// Addressed to this host.
    pub const HOST: u8 = 0;
    /// Link-layer broadcast.
    pub const BROADCAST: u8 = 1;
    /// Link-layer multicast.
    pub const MULTICAST: u8 = 2;
    /// Addressed to another host.
    pub const OTHERHOST: u8 = 3;
    /// Outgoing.
    pub const OUTGOING: u8 = 4;
}

/// The network device a packet arrived on (`skb->dev`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Device {
    /// `dev->ifindex` (`SKF_AD_IFINDEX`).
    pub ifindex: u32,
    /// `dev->type`, an `ARPHRD_*` value (`SKF_AD_HATYPE`).
    pub hatype: u16,
}

/// An out-of-band (hardware-accelerated) VLAN tag (`skb->vlan_proto`,
/// `skb->vlan_tci`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Vlan {
    /// Tag protocol identifier, host order (0x8100, 0x88a8).
    pub tpid: u16,
    /// Tag control information (priority, DEI, VLAN id).
    pub tci: u16,
}

/// A packet and its socket-buffer metadata: everything a classic filter
/// can read.
///
/// `data` is the readable packet (in kernel terms the linear part and the
/// fragments together, starting at `skb->data`); `len` is what `ld len`
/// returns (`skb->len`; for an offline packet the original wire length,
/// which libpcap also returns). Loads past `data` end the filter with 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The bytes loads read.
    pub data: &'a [u8],
    /// `skb->len` (`ld len`, `ldx len`).
    pub len: u32,
    /// `skb->protocol`, the EtherType in host order (`SKF_AD_PROTOCOL`).
    pub protocol: u16,
    /// `skb->pkt_type` (`SKF_AD_PKTTYPE`; only the low 3 bits are kept).
    pub pkt_type: u8,
    /// `skb->dev`; without one, `SKF_AD_IFINDEX` and `SKF_AD_HATYPE` end
    /// the filter returning the current A, as in the kernel.
    pub device: Option<Device>,
    /// `skb->mark` (`SKF_AD_MARK`).
    pub mark: u32,
    /// `skb->hash` (`SKF_AD_RXHASH`).
    pub hash: u32,
    /// `skb->queue_mapping` (`SKF_AD_QUEUE`).
    pub queue_mapping: u16,
    /// Out-of-band VLAN tag (`SKF_AD_VLAN_TAG`, `_TAG_PRESENT`, `_TPID`).
    /// As in the kernel a tag is present when TPID or TCI is non-zero.
    pub vlan: Option<Vlan>,
    /// Offset of the link-layer header in `data` (`SKF_LL_OFF` loads);
    /// `None` when there is none (those loads then end the filter with 0).
    pub mac_offset: Option<u32>,
    /// Offset of the network header in `data` (`SKF_NET_OFF` loads and
    /// `SKF_AD_PAY_OFFSET`).
    pub network_offset: u32,
}

impl<'a> Packet<'a> {
    /// A packet with no metadata: `len` is the data length, link-layer
    /// header at 0, network header at 0, everything else zero.
    pub fn bare(data: &'a [u8]) -> Self {
        Packet {
            data,
            len: data.len() as u32,
            protocol: 0,
            pkt_type: 0,
            device: None,
            mark: 0,
            hash: 0,
            queue_mapping: 0,
            vlan: None,
            mac_offset: Some(0),
            network_offset: 0,
        }
    }

    /// An Ethernet frame as a plain offline packet: `len` is the captured
    /// length, and the metadata is what the kernel's `eth_type_trans`
    /// derives from the header (see [`Packet::offline`]).
    pub fn ethernet(data: &'a [u8]) -> Self {
        Self::offline(LinkType::ETHERNET, data, data.len() as u32)
    }

    /// An offline packet of the given link type with its original length
    /// `wire_len` (what `ld len` returns, as libpcap does).
    ///
    /// Metadata is derived from the link-layer header the way the kernel
    /// would have set it on receive, as far as the header tells:
    ///
    /// * Ethernet: `protocol` as `eth_type_trans` (the type field when it
    ///   is at least 0x600, else `ETH_P_802_3` when the payload starts with
    ///   0xffff, else `ETH_P_802_2`); `pkt_type` broadcast or multicast from
    ///   the destination address, else `PACKET_HOST`; link-layer header at
    ///   0, network header at 14. In-band VLAN tags stay in the bytes (as in
    ///   the capture; no out-of-band tag is set).
    /// * Linux cooked v1/v2: protocol, packet type, `ARPHRD` type (and
    ///   ifindex for v2) from the cooked header; network header after it;
    ///   no link-layer header.
    /// * Raw IP (RAW, IPV4, IPV6), NULL and LOOP: protocol from the IP
    ///   version or address family; network header after the pseudo-header;
    ///   no link-layer header.
    /// * Other types: no protocol, both headers at 0.
    ///
    /// `device` is `None` except for Linux cooked v2 (which records the
    /// interface); mark, hash and queue are 0. Set fields afterwards to
    /// model a live socket. Filters compiled by libpcap for offline use
    /// read none of this metadata.
    pub fn offline(linktype: LinkType, data: &'a [u8], wire_len: u32) -> Self {
        let mut p = Packet::bare(data);
        p.len = wire_len;
        let be16 = |o: usize| data.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        match linktype {
            LinkType::ETHERNET => {
                p.device = None;
                p.network_offset = data.len().min(14) as u32;
                if let Some(dst) = data.get(0..6) {
                    if dst.iter().all(|&b| b == 0xff) {
                        p.pkt_type = pkt_type::BROADCAST;
                    } else if dst[0] & 1 != 0 {
                        p.pkt_type = pkt_type::MULTICAST;
                    }
                }
                if let Some(t) = be16(12) {
                    p.protocol = if t >= 0x600 {
                        t
                    } else if be16(14) == Some(0xffff) {
                        ETH_P_802_3
                    } else {
                        ETH_P_802_2
                    };
                }
            }
            LinkType::LINUX_SLL => {
                p.mac_offset = None;
                p.network_offset = data.len().min(16) as u32;
                p.pkt_type = be16(0).map_or(0, |t| t as u8);
                p.protocol = be16(14).unwrap_or(0);
                if let Some(h) = be16(2) {
                    p.device = Some(Device { ifindex: 0, hatype: h });
                }
            }
            LinkType::LINUX_SLL2 => {
                p.mac_offset = None;
                p.network_offset = data.len().min(20) as u32;
                p.protocol = be16(0).unwrap_or(0);
                if let (Some(i), Some(h)) = (data.get(4..8), be16(8)) {
                    p.device = Some(Device { ifindex: u32::from_be_bytes([i[0], i[1], i[2], i[3]]), hatype: h });
                }
                p.pkt_type = data.get(10).copied().unwrap_or(0);
            }
            LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => {
                p.mac_offset = None;
                p.protocol = match (linktype, data.first().map(|b| b >> 4)) {
                    (LinkType::IPV4, _) | (_, Some(4)) => ETH_P_IP,
                    (LinkType::IPV6, _) | (_, Some(6)) => ETH_P_IPV6,
                    _ => 0,
                };
            }
            LinkType::NULL | LinkType::LOOP => {
                p.mac_offset = None;
                p.network_offset = data.len().min(4) as u32;
                let af = data.get(0..4).map(|b| {
                    if linktype == LinkType::LOOP {
                        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
                    } else {
                        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                    }
                });
                p.protocol = match af {
                    Some(2) => ETH_P_IP,
                    Some(10 | 24 | 28 | 30) => ETH_P_IPV6,
                    _ => 0,
                };
            }
            _ => {}
        }
        p
    }
}

/// The context a converted filter receives in r1: a fixed-layout view of
/// [`Packet`] (the runtime's stand-in for `struct sk_buff`).
///
/// Field offsets are part of the converted code ([`SkbContext::OFF_LEN`]
/// etc.). Multi-byte fields are in host order except where noted; the
/// pointers are addresses in the running program's memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkbContext {
    /// Address of the first packet byte (`skb->data`).
    pub data: u64,
    /// Address of a [`NetDevice`], or 0 when the packet has no device (`skb->dev`).
    pub dev: u64,
    /// `skb->len`, returned by `ld len`.
    pub len: u32,
    /// Number of readable bytes at `data`.
    pub caplen: u32,
    /// `skb->mark`.
    pub mark: u32,
    /// `skb->hash`.
    pub hash: u32,
    /// `skb->protocol`, in network byte order (as the kernel keeps it).
    pub protocol_be: u16,
    /// `skb->queue_mapping`.
    pub queue_mapping: u16,
    /// `skb->vlan_proto`, in network byte order; with `vlan_tci` it forms
    /// the 32-bit `vlan_all` word, non-zero when a tag is present.
    pub vlan_proto_be: u16,
    /// `skb->vlan_tci`.
    pub vlan_tci: u16,
    /// `skb->pkt_type` (low 3 bits used).
    pub pkt_type: u8,
    /// 1 when `mac_offset` is valid (`skb_mac_header_was_set`).
    pub mac_header_set: u8,
    /// Padding, zero.
    pub _pad: u16,
    /// Offset of the link-layer header from `data`.
    pub mac_offset: u32,
    /// Offset of the network header from `data`.
    pub network_offset: u32,
    /// Padding, zero.
    pub _pad2: u32,
}

impl SkbContext {
    /// Offset of `data`.
    pub const OFF_DATA: i16 = 0;
    /// Offset of `dev`.
    pub const OFF_DEV: i16 = 8;
    /// Offset of `len`.
    pub const OFF_LEN: i16 = 16;
    /// Offset of `caplen`.
    pub const OFF_CAPLEN: i16 = 20;
    /// Offset of `mark`.
    pub const OFF_MARK: i16 = 24;
    /// Offset of `hash`.
    pub const OFF_HASH: i16 = 28;
    /// Offset of `protocol_be`.
    pub const OFF_PROTOCOL: i16 = 32;
    /// Offset of `queue_mapping`.
    pub const OFF_QUEUE: i16 = 34;
    /// Offset of `vlan_proto_be` (and of the 32-bit `vlan_all` word).
    pub const OFF_VLAN_PROTO: i16 = 36;
    /// Offset of `vlan_tci`.
    pub const OFF_VLAN_TCI: i16 = 38;
    /// Offset of `pkt_type`.
    pub const OFF_PKT_TYPE: i16 = 40;
    /// Size in bytes.
    pub const SIZE: usize = core::mem::size_of::<SkbContext>();

    /// The context for `p`, with `dev` pointing at `dev` when the packet
    /// has a device (the caller keeps `dev` alive and readable by the run).
    pub fn new(p: &Packet<'_>, dev: Option<&NetDevice>) -> Self {
        let (vp, vt) = p.vlan.map_or((0, 0), |v| (v.tpid, v.tci));
        SkbContext {
            data: p.data.as_ptr() as u64,
            dev: dev.map_or(0, |d| d as *const NetDevice as u64),
            len: p.len,
            caplen: p.data.len() as u32,
            mark: p.mark,
            hash: p.hash,
            protocol_be: u16::from_ne_bytes(p.protocol.to_be_bytes()),
            queue_mapping: p.queue_mapping,
            vlan_proto_be: u16::from_ne_bytes(vp.to_be_bytes()),
            vlan_tci: vt,
            pkt_type: p.pkt_type,
            mac_header_set: p.mac_offset.is_some() as u8,
            _pad: 0,
            mac_offset: p.mac_offset.unwrap_or(0),
            network_offset: p.network_offset,
            _pad2: 0,
        }
    }

    /// The context as bytes (for a memory region of the run).
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: repr(C), plain integers, no padding bytes (explicit
        // padding fields keep every byte initialised).
        unsafe { core::slice::from_raw_parts(self as *const Self as *const u8, Self::SIZE) }
    }

    /// Reads a context back from memory bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        // SAFETY: length checked; every bit pattern is a valid SkbContext.
        Some(unsafe { core::ptr::read_unaligned(b.as_ptr() as *const SkbContext) })
    }
}

/// The device record `SkbContext::dev` points to (`struct net_device`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetDevice {
    /// `dev->ifindex`.
    pub ifindex: u32,
    /// `dev->type` (`ARPHRD_*`).
    pub hatype: u16,
    /// Padding, zero.
    pub _pad: u16,
}

impl NetDevice {
    /// Offset of `ifindex`.
    pub const OFF_IFINDEX: i16 = 0;
    /// Offset of `hatype`.
    pub const OFF_HATYPE: i16 = 4;

    /// The record as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: repr(C), plain integers, explicit padding.
        unsafe { core::slice::from_raw_parts(self as *const Self as *const u8, core::mem::size_of::<Self>()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_fixed() {
        assert_eq!(SkbContext::SIZE, 56);
        assert_eq!(core::mem::size_of::<NetDevice>(), 8);
        let c = SkbContext { len: 0x11223344, vlan_tci: 0xabcd, pkt_type: 3, ..Default::default() };
        let b = c.as_bytes();
        assert_eq!(u32::from_ne_bytes(b[16..20].try_into().unwrap()), 0x11223344);
        assert_eq!(u16::from_ne_bytes(b[38..40].try_into().unwrap()), 0xabcd);
        assert_eq!(b[40], 3);
        assert_eq!(SkbContext::from_bytes(b), Some(c));
    }

    #[test]
    fn ethernet_metadata_follows_eth_type_trans() {
        let mut f = [0u8; 60];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let p = Packet::ethernet(&f);
        assert_eq!((p.protocol, p.pkt_type, p.network_offset, p.len), (ETH_P_IP, pkt_type::BROADCAST, 14, 60));
        f[0] = 0x01;
        f[12..16].copy_from_slice(&[0x00, 0x40, 0xff, 0xff]);
        let p = Packet::ethernet(&f);
        assert_eq!((p.protocol, p.pkt_type), (ETH_P_802_3, pkt_type::MULTICAST));
        f[0] = 0x02;
        f[14] = 0xaa;
        assert_eq!((Packet::ethernet(&f).protocol, Packet::ethernet(&f).pkt_type), (ETH_P_802_2, pkt_type::HOST));
        let p = Packet::offline(LinkType::RAW, &[0x60, 0, 0, 0], 40);
        assert_eq!((p.protocol, p.network_offset, p.mac_offset, p.len), (ETH_P_IPV6, 0, None, 40));
        assert_eq!(LinkType::from_pcap_header(0x3000_0001), LinkType::ETHERNET);
        assert_eq!(LinkType::RAW.to_dlt(), 12);
    }
}
