//! `struct xdp_md`, exactly as the kernel's UAPI lays it out.

/// The XDP program context (`struct xdp_md`). Pointer fields hold the low
/// 32 bits of packet addresses, which are the whole address because frames
/// live below 4 GiB (see [`crate::frame`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpMd {
    /// Start of packet data.
    pub data: u32,
    /// End of linear packet data.
    pub data_end: u32,
    /// Start of metadata.
    pub data_meta: u32,
    /// Receiving interface (the loopback device, 1, in test runs).
    pub ingress_ifindex: u32,
    /// Receive queue.
    pub rx_queue_index: u32,
    /// Egress interface (devmap programs only; 0 otherwise).
    pub egress_ifindex: u32,
}

impl XdpMd {
    /// Size of the structure in bytes.
    pub const SIZE: usize = 24;

    /// Parses a `--ctx-in` buffer (up to 24 bytes, little-endian fields).
    pub fn from_bytes(b: &[u8]) -> Option<XdpMd> {
        if b.len() > Self::SIZE {
            return None;
        }
        let mut full = [0u8; Self::SIZE];
        full[..b.len()].copy_from_slice(b);
        let f = |i: usize| u32::from_le_bytes(full[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        Some(XdpMd {
            data: f(0),
            data_end: f(1),
            data_meta: f(2),
            ingress_ifindex: f(3),
            rx_queue_index: f(4),
            egress_ifindex: f(5),
        })
    }

    /// The 24 bytes of the structure.
    pub fn to_bytes(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        for (i, v) in
            [self.data, self.data_end, self.data_meta, self.ingress_ifindex, self.rx_queue_index, self.egress_ifindex]
                .iter()
                .enumerate()
        {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        out
    }
}
