//! libpcap: compiling tcpdump expressions to classic BPF, and libpcap's
//! own filter interpreter (`pcap_offline_filter`) as a reference.
//!
//! Compilation goes through the `pcap` crate (`Capture::dead(..).compile`);
//! the reference interpreter calls libpcap's `bpf_validate` and
//! `pcap_offline_filter` directly, because it needs the original packet
//! length (`ld len`) separately from the captured bytes.

use crate::context::LinkType;
use crate::insn::{parse_ddd, SockFilter};
use crate::CbpfError;
use std::os::raw::{c_int, c_uint};

/// The snapshot length libpcap's dead handles in the `pcap` crate use; the
/// accepting `ret` of a compiled program returns it.
const DEAD_SNAPLEN: u32 = 65535;

/// Compiles a tcpdump filter expression for `linktype` with libpcap's
/// optimizer on, as `tcpdump -s snaplen -y <linktype> -ddd expr` would.
///
/// The accepting `ret` returns `snaplen` (libpcap refuses 0, and so does
/// this function). The result is libpcap's program; it uses no Linux
/// ancillary loads (VLAN tags are matched in the packet bytes, as for
/// offline captures).
pub fn compile(expr: &str, linktype: LinkType, snaplen: u32) -> Result<Vec<SockFilter>, CbpfError> {
    compile_with(expr, linktype, snaplen, true)
}

/// [`compile`] with the optimizer on or off (`tcpdump -O` turns it off).
pub fn compile_with(
    expr: &str,
    linktype: LinkType,
    snaplen: u32,
    optimize: bool,
) -> Result<Vec<SockFilter>, CbpfError> {
    if snaplen == 0 {
        return Err(CbpfError::Pcap("snaplen of 0 rejects all packets".into()));
    }
    let pcap_err = |e: pcap::Error| {
        let msg = match e {
            pcap::Error::PcapError(s) => s,
            other => other.to_string(),
        };
        CbpfError::Pcap(format!("{msg} (expression {expr:?}, link type {linktype})"))
    };
    let cap = pcap::Capture::dead(pcap::Linktype(linktype.to_dlt())).map_err(pcap_err)?;
    let bpf = cap.compile(expr, optimize).map_err(pcap_err)?;
    // The crate exposes the instructions through their `code jt jf k`
    // text form (its Display), which is exactly a `-ddd` line.
    let insns = bpf.get_instructions();
    let mut text = format!("{}\n", insns.len());
    for i in insns {
        text += &format!("{i}\n");
    }
    let mut prog = parse_ddd(&text)?;
    if snaplen != DEAD_SNAPLEN {
        // libpcap's accepting return is `ret #snaplen`; rejecting is `ret #0`.
        for f in prog.iter_mut() {
            if f.code == crate::insn::op::RET | crate::insn::op::K && f.k == DEAD_SNAPLEN {
                f.k = snaplen;
            }
        }
    }
    Ok(prog)
}

#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *const SockFilter,
}

#[repr(C)]
struct PcapPkthdr {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

#[link(name = "pcap")]
extern "C" {
    fn bpf_validate(f: *const SockFilter, len: c_int) -> c_int;
    fn pcap_offline_filter(fp: *const BpfProgram, h: *const PcapPkthdr, pkt: *const u8) -> c_int;
}

/// A program accepted by libpcap's `bpf_validate`, run with libpcap's own
/// interpreter (`pcap_offline_filter`).
#[derive(Clone, Debug)]
pub struct OfflineFilter {
    prog: Vec<SockFilter>,
}

impl OfflineFilter {
    /// Validates `prog` with libpcap's `bpf_validate` (libpcap's interpreter
    /// must not see a program that fails it).
    pub fn new(prog: &[SockFilter]) -> Result<Self, CbpfError> {
        let len = c_int::try_from(prog.len()).map_err(|_| CbpfError::TooLong { len: prog.len() })?;
        // SAFETY: SockFilter has the layout of `struct bpf_insn`; the
        // pointer and length describe `prog`.
        let ok = unsafe { bpf_validate(prog.as_ptr(), len) };
        if ok == 0 {
            return Err(CbpfError::Pcap("libpcap's bpf_validate rejects the program".into()));
        }
        Ok(OfflineFilter { prog: prog.to_vec() })
    }

    /// libpcap's verdict for a packet whose captured bytes are `data` and
    /// whose original length is `wire_len`: the return value of the
    /// program (0 = no match), as `pcap_offline_filter` returns it.
    pub fn run(&self, data: &[u8], wire_len: u32) -> u32 {
        let prog = BpfProgram { bf_len: self.prog.len() as c_uint, bf_insns: self.prog.as_ptr() };
        let hdr = PcapPkthdr {
            ts: libc::timeval { tv_sec: 0, tv_usec: 0 },
            caplen: u32::try_from(data.len()).unwrap_or(u32::MAX),
            len: wire_len,
        };
        // SAFETY: the program passed bpf_validate; `data` holds `caplen`
        // readable bytes (libpcap never reads past caplen).
        unsafe { pcap_offline_filter(&prog, &hdr, data.as_ptr()) as u32 }
    }
}

/// libpcap's `pcap_offline_filter` on one packet (validating the program
/// first); see [`OfflineFilter`].
pub fn offline_filter(prog: &[SockFilter], data: &[u8], wire_len: u32) -> Result<u32, CbpfError> {
    Ok(OfflineFilter::new(prog)?.run(data, wire_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_filters() {
        let p = compile("ip", LinkType::ETHERNET, 262144).unwrap();
        assert_eq!(crate::insn::to_ddd(&p), "4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n");
        let f = OfflineFilter::new(&p).unwrap();
        let mut pkt = [0u8; 34];
        pkt[12] = 8;
        assert_eq!(f.run(&pkt, 34), 262144);
        pkt[12] = 0x86;
        assert_eq!(f.run(&pkt, 34), 0);
        let e = compile("tcp port", LinkType::ETHERNET, 100).unwrap_err().to_string();
        assert!(e.starts_with("libpcap:") && e.contains("tcp port"), "{e}");
        assert!(compile("ip", LinkType::ETHERNET, 0).is_err());
        // libpcap's validator protects its interpreter.
        assert!(OfflineFilter::new(&[SockFilter::stmt(0xff, 0)]).is_err());
    }
}
