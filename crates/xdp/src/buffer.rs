//! The XDP buffer (`struct xdp_buff`) with the kernel's geometry: a
//! page-sized frame holding `struct xdp_frame`, headroom, metadata, packet
//! data and the reserved `skb_shared_info` tailroom, plus page-sized
//! fragments for multi-buffer packets. Head, metadata and tail adjustments
//! follow `net/core/filter.c`, limits and error codes included.

use crate::frame::{Frame, FRAME_SIZE};

/// `XDP_PACKET_HEADROOM`.
pub const XDP_PACKET_HEADROOM: usize = 256;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64.
pub const SKB_SHARED_INFO_SIZE: usize = 320;
/// `sizeof(struct xdp_frame)`, kept free at the start of the frame.
pub const XDP_FRAME_SIZE: usize = 40;
/// `MAX_SKB_FRAGS`.
pub const MAX_SKB_FRAGS: usize = 17;
/// `ETH_HLEN`.
pub const ETH_HLEN: usize = 14;
/// Largest metadata `bpf_xdp_adjust_meta` accepts (Linux 6.18: 255 bytes,
/// 4-byte multiples; older kernels allowed 32). The frame's headroom bounds
/// it first: metadata cannot reach into the `xdp_frame` (216 bytes at most).
pub const MAX_METALEN: usize = 255;
/// Size of one fragment page.
pub const FRAG_SIZE: usize = 4096;

const EINVAL: i64 = -22;
const EFAULT: i64 = -14;
const EACCES: i64 = -13;
const ENOMEM: i64 = -12;

/// A packet in an XDP frame. Offsets are relative to the frame start
/// (`data_hard_start`).
pub struct XdpBuff {
    frame: Frame,
    /// Start of metadata.
    pub meta: usize,
    /// Start of packet data.
    pub data: usize,
    /// End of linear packet data.
    pub data_end: usize,
    /// Fragments (multi-buffer): each a page with `len` valid bytes.
    pub frags: Vec<Vec<u8>>,
    /// Bytes of the frame the current packet may have changed: everything
    /// outside `dirty` is zero, so loading the next packet clears only this
    /// range instead of the whole 4 KiB frame (the kernel hands every test
    /// run a zeroed buffer; this keeps that invariant cheaply).
    dirty: (usize, usize),
}

impl XdpBuff {
    /// An empty buffer on a new frame.
    pub fn new() -> Result<XdpBuff, crate::XdpError> {
        Ok(XdpBuff { frame: Frame::new()?, meta: 0, data: 0, data_end: 0, frags: Vec::new(), dirty: (0, 0) })
    }

    /// Lays out `packet` as `BPF_PROG_TEST_RUN` does for XDP: `metalen`
    /// leading bytes become metadata, the linear part is capped at
    /// `4096 - headroom - tailroom` bytes and the rest goes to page-sized
    /// fragments (at most 17). Returns the kernel's errno on refusal
    /// (`EINVAL` below 14 bytes, `ENOMEM` for too many fragments).
    pub fn load_test_packet(&mut self, packet: &[u8], metalen: usize) -> Result<(), i64> {
        if packet.len() < ETH_HLEN
            || metalen > XDP_PACKET_HEADROOM - XDP_FRAME_SIZE
            || metalen % 4 != 0
            || metalen > packet.len()
        {
            return Err(EINVAL);
        }
        let headroom = XDP_PACKET_HEADROOM - metalen;
        let max_linear = FRAME_SIZE - headroom - SKB_SHARED_INFO_SIZE;
        let linear = packet.len().min(max_linear);
        let rest = packet.len() - linear;
        if rest.div_ceil(FRAG_SIZE) > MAX_SKB_FRAGS {
            return Err(ENOMEM);
        }
        let f = self.frame.bytes_mut();
        f[self.dirty.0..self.dirty.1].fill(0);
        f[headroom..headroom + linear].copy_from_slice(&packet[..linear]);
        self.dirty = (headroom, headroom + linear);
        self.meta = headroom;
        self.data = headroom + metalen;
        self.data_end = headroom + linear;
        self.frags.clear();
        for chunk in packet[linear..].chunks(FRAG_SIZE) {
            self.frags.push(chunk.to_vec());
        }
        Ok(())
    }

    /// Frame start address (`data_hard_start`).
    pub fn hard_start(&self) -> u64 {
        self.frame.addr()
    }

    /// Address of `data`.
    pub fn data_addr(&self) -> u64 {
        self.frame.addr() + self.data as u64
    }

    /// Address of `data_end`.
    pub fn data_end_addr(&self) -> u64 {
        self.frame.addr() + self.data_end as u64
    }

    /// Address of `data_meta`.
    pub fn meta_addr(&self) -> u64 {
        self.frame.addr() + self.meta as u64
    }

    /// Whether the packet has fragments.
    pub fn has_frags(&self) -> bool {
        !self.frags.is_empty()
    }

    /// Total bytes in fragments.
    pub fn frags_len(&self) -> usize {
        self.frags.iter().map(Vec::len).sum()
    }

    /// `bpf_xdp_get_buff_len`: linear plus fragment bytes.
    pub fn buff_len(&self) -> usize {
        self.data_end - self.data + self.frags_len()
    }

    /// The output of a test run: metadata, linear data, fragments.
    pub fn output(&self) -> Vec<u8> {
        let mut v = self.frame.bytes()[self.meta..self.data_end].to_vec();
        for f in &self.frags {
            v.extend_from_slice(f);
        }
        v
    }

    /// The readable/writable packet region (metadata through data_end).
    pub fn packet_region(&self) -> uxdp_vm::Region {
        uxdp_vm::Region { start: self.meta_addr(), len: (self.data_end - self.meta) as u64, writable: true }
    }

    /// `bpf_xdp_adjust_head`.
    pub fn adjust_head(&mut self, offset: i32) -> i64 {
        let metalen = self.data - self.meta;
        let data = self.data as i64 + offset as i64;
        if data < (XDP_FRAME_SIZE + metalen) as i64 || data > self.data_end as i64 - ETH_HLEN as i64 {
            return EINVAL;
        }
        let new_meta = (self.meta as i64 + offset as i64) as usize;
        if metalen > 0 {
            self.frame.bytes_mut().copy_within(self.meta..self.data, new_meta);
        }
        self.meta = new_meta;
        self.data = data as usize;
        self.dirty.0 = self.dirty.0.min(new_meta);
        0
    }

    /// `bpf_xdp_adjust_meta`.
    pub fn adjust_meta(&mut self, offset: i32) -> i64 {
        let meta = self.meta as i64 + offset as i64;
        if meta < XDP_FRAME_SIZE as i64 || meta > self.data as i64 {
            return EINVAL;
        }
        let metalen = self.data - meta as usize;
        if metalen > MAX_METALEN || metalen % 4 != 0 {
            return EACCES;
        }
        self.meta = meta as usize;
        self.dirty.0 = self.dirty.0.min(self.meta);
        0
    }

    /// `bpf_xdp_adjust_tail`, linear and multi-buffer.
    pub fn adjust_tail(&mut self, offset: i32) -> i64 {
        if self.has_frags() {
            return self.adjust_frags_tail(offset);
        }
        let hard_end = (FRAME_SIZE - SKB_SHARED_INFO_SIZE) as i64;
        let end = self.data_end as i64 + offset as i64;
        if end > hard_end || end < (self.data + ETH_HLEN) as i64 {
            return EINVAL;
        }
        if offset > 0 {
            self.frame.bytes_mut()[self.data_end..end as usize].fill(0);
        }
        self.data_end = end as usize;
        self.dirty.1 = self.dirty.1.max(self.data_end);
        0
    }

    fn adjust_frags_tail(&mut self, offset: i32) -> i64 {
        if offset >= 0 {
            // Grow into the last fragment's page.
            let last = self.frags.last_mut().expect("has frags");
            if last.len() + offset as usize > FRAG_SIZE {
                return EINVAL;
            }
            last.resize(last.len() + offset as usize, 0);
            return 0;
        }
        let mut shrink = (-(offset as i64)) as usize;
        if shrink >= self.buff_len() - ETH_HLEN {
            return EINVAL;
        }
        while shrink > 0 {
            let Some(last) = self.frags.last_mut() else { break };
            if last.len() > shrink {
                last.truncate(last.len() - shrink);
                shrink = 0;
            } else {
                shrink -= last.len();
                self.frags.pop();
            }
        }
        if shrink > 0 {
            self.data_end -= shrink;
        }
        0
    }

    /// Checks the `(offset, len)` of `bpf_xdp_load_bytes`/`store_bytes`.
    fn check_range(&self, offset: u32, len: u32) -> Result<(), i64> {
        if offset > 0xffff || len > 0xffff {
            return Err(EFAULT);
        }
        if offset as usize + len as usize > self.buff_len() {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// `bpf_xdp_load_bytes`: copies packet bytes (linear then fragments).
    pub fn load_bytes(&self, offset: u32, out: &mut [u8]) -> i64 {
        if let Err(e) = self.check_range(offset, out.len() as u32) {
            return e;
        }
        let mut pos = 0usize;
        let mut off = offset as usize;
        let linear = &self.frame.bytes()[self.data..self.data_end];
        for seg in std::iter::once(linear).chain(self.frags.iter().map(Vec::as_slice)) {
            if pos == out.len() {
                break;
            }
            if off >= seg.len() {
                off -= seg.len();
                continue;
            }
            let n = (seg.len() - off).min(out.len() - pos);
            out[pos..pos + n].copy_from_slice(&seg[off..off + n]);
            pos += n;
            off = 0;
        }
        0
    }

    /// `bpf_xdp_store_bytes`.
    pub fn store_bytes(&mut self, offset: u32, src: &[u8]) -> i64 {
        if let Err(e) = self.check_range(offset, src.len() as u32) {
            return e;
        }
        let mut pos = 0usize;
        let mut off = offset as usize;
        let (data, end) = (self.data, self.data_end);
        let frame = self.frame.bytes_mut();
        let linear = &mut frame[data..end];
        for seg in std::iter::once(linear).chain(self.frags.iter_mut().map(Vec::as_mut_slice)) {
            if pos == src.len() {
                break;
            }
            if off >= seg.len() {
                off -= seg.len();
                continue;
            }
            let n = (seg.len() - off).min(src.len() - pos);
            seg[off..off + n].copy_from_slice(&src[pos..pos + n]);
            pos += n;
            off = 0;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_run_geometry_matches_the_kernel() {
        let mut b = XdpBuff::new().unwrap();
        assert_eq!(b.load_test_packet(&[0; 13], 0), Err(EINVAL));
        b.load_test_packet(&[1; 64], 0).unwrap();
        assert_eq!((b.meta, b.data, b.data_end), (256, 256, 320));
        assert!(b.hard_start() + 4096 <= u32::MAX as u64, "frame below 4 GiB");
        // 3520 linear bytes at most, the rest in fragments
        b.load_test_packet(&vec![2; 9000], 0).unwrap();
        assert_eq!(b.data_end - b.data, 3520);
        assert_eq!(b.frags.iter().map(Vec::len).collect::<Vec<_>>(), vec![4096, 1384]);
        assert_eq!(b.output().len(), 9000);
        assert_eq!(b.load_test_packet(&vec![3; 80_000], 0), Err(ENOMEM));
    }

    #[test]
    fn head_meta_tail_limits() {
        let mut b = XdpBuff::new().unwrap();
        b.load_test_packet(&[7; 64], 0).unwrap();
        assert_eq!(b.adjust_head(-217), EINVAL, "below xdp_frame");
        assert_eq!(b.adjust_head(-216), 0);
        assert_eq!(b.adjust_head(216 + 64 - 14 + 1), EINVAL, "less than ETH_HLEN left");
        assert_eq!(b.adjust_head(216), 0);
        assert_eq!(b.adjust_meta(-217), EINVAL, "metadata into the xdp_frame");
        assert_eq!(b.adjust_meta(-216), 0, "216 bytes of metadata (Linux 6.18 allows up to 255)");
        assert_eq!(b.adjust_meta(216 - 8), 0);
        assert_eq!(b.adjust_meta(-6), EACCES, "metadata not a multiple of 4");
        assert_eq!(b.adjust_meta(12), EINVAL, "meta after data");
        assert_eq!(b.adjust_tail(-51), EINVAL);
        assert_eq!(b.adjust_tail(-50), 0);
        assert_eq!(b.adjust_tail(4096), EINVAL);
        let room = (FRAME_SIZE - SKB_SHARED_INFO_SIZE - b.data_end) as i32;
        assert_eq!(b.adjust_tail(room), 0);
        assert!(b.output()[8 + 14..].iter().all(|&x| x == 0), "grown tail is zeroed");
    }

    #[test]
    fn load_and_store_bytes_span_fragments() {
        let mut b = XdpBuff::new().unwrap();
        let pkt: Vec<u8> = (0..6000u32).map(|i| i as u8).collect();
        b.load_test_packet(&pkt, 0).unwrap();
        let mut out = [0u8; 100];
        assert_eq!(b.load_bytes(3480, &mut out), 0);
        assert_eq!(&out[..], &pkt[3480..3580]);
        assert_eq!(b.store_bytes(3510, &[0xaa; 20]), 0);
        assert_eq!(&b.output()[3510..3530], &[0xaa; 20]);
        assert_eq!(b.load_bytes(5990, &mut out), EINVAL);
        assert_eq!(b.load_bytes(0x10000, &mut out[..1]), EFAULT);
    }

    #[test]
    fn loading_a_packet_leaves_the_rest_of_the_frame_zero() {
        let mut b = XdpBuff::new().unwrap();
        b.load_test_packet(&[0xff; 1500], 0).unwrap();
        assert_eq!(b.adjust_head(-100), 0);
        assert_eq!(b.adjust_meta(-32), 0);
        assert_eq!(b.adjust_tail(100), 0);
        let (m, e) = (b.meta, b.data_end);
        b.frame.bytes_mut()[m..e].fill(0xee);
        b.load_test_packet(&[0x11; 64], 0).unwrap();
        let f = b.frame.bytes_mut();
        let (d, e) = (b.data, b.data_end);
        assert!(f[..d].iter().all(|&x| x == 0));
        assert!(f[d..e].iter().all(|&x| x == 0x11));
        assert!(f[e..].iter().all(|&x| x == 0));
    }
}
