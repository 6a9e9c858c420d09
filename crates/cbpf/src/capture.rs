//! Reading packets from pcap and pcapng files (pure Rust, `pcap-file`),
//! with each packet's link type and original length, for running filters
//! over captures.

use crate::context::{LinkType, Packet};
use crate::CbpfError;
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::TsResolution;
use std::path::Path;
use std::time::Duration;

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedPacket {
    /// Link type of the interface it was captured on.
    pub linktype: LinkType,
    /// Capture timestamp (since the Unix epoch).
    pub timestamp: Duration,
    /// Original length on the wire (`ld len`).
    pub wire_len: u32,
    /// The captured bytes (possibly fewer than `wire_len`).
    pub data: Vec<u8>,
}

impl CapturedPacket {
    /// The packet as a filter input, with metadata derived from its
    /// link-layer header ([`Packet::offline`]).
    pub fn packet(&self) -> Packet<'_> {
        Packet::offline(self.linktype, &self.data, self.wire_len)
    }
}

fn err(what: impl Into<String>, msg: impl core::fmt::Display) -> CbpfError {
    CbpfError::Capture { what: what.into(), msg: msg.to_string() }
}

/// Reads every packet of a pcap or pcapng file.
pub fn read_capture(path: &Path) -> Result<Vec<CapturedPacket>, CbpfError> {
    let bytes = std::fs::read(path).map_err(|e| err(path.display().to_string(), e))?;
    parse_capture(&bytes).map_err(|e| match e {
        CbpfError::Capture { msg, .. } => err(path.display().to_string(), msg),
        other => other,
    })
}

/// Parses a pcap or pcapng file held in memory (the format is recognised
/// by its magic number). Packets whose captured length exceeds the
/// original length are kept as the file says; the link type of a pcap
/// file is taken as libpcap does (low 26 bits of the header field).
pub fn parse_capture(bytes: &[u8]) -> Result<Vec<CapturedPacket>, CbpfError> {
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        parse_pcapng(bytes)
    } else {
        parse_pcap(bytes)
    }
}

fn parse_pcap(bytes: &[u8]) -> Result<Vec<CapturedPacket>, CbpfError> {
    let (mut rest, parser) = PcapParser::new(bytes).map_err(|e| err("capture", format!("pcap header: {e}")))?;
    let header = parser.header();
    let linktype = LinkType::from_pcap_header(u32::from(header.datalink));
    let nanos = header.ts_resolution == TsResolution::NanoSecond;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (r, p) = parser.next_raw_packet(rest).map_err(|e| {
            err("capture", format!("packet {} (at byte {}): {e}", out.len() + 1, bytes.len() - rest.len()))
        })?;
        rest = r;
        let frac = if nanos { p.ts_frac as u64 } else { p.ts_frac as u64 * 1000 };
        out.push(CapturedPacket {
            linktype,
            timestamp: Duration::from_secs(p.ts_sec as u64) + Duration::from_nanos(frac),
            wire_len: p.orig_len,
            data: p.data.into_owned(),
        });
    }
    Ok(out)
}

fn parse_pcapng(bytes: &[u8]) -> Result<Vec<CapturedPacket>, CbpfError> {
    let (mut rest, mut parser) = PcapNgParser::new(bytes).map_err(|e| err("capture", format!("pcapng: {e}")))?;
    let mut interfaces: Vec<LinkType> = Vec::new();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (r, block) = parser
            .next_block(rest)
            .map_err(|e| err("capture", format!("pcapng block at byte {}: {e}", bytes.len() - rest.len())))?;
        rest = r;
        let iface = |id: u32| {
            interfaces
                .get(id as usize)
                .copied()
                .ok_or_else(|| err("capture", format!("packet {} names undeclared interface {id}", out.len() + 1)))
        };
        match block {
            Block::SectionHeader(_) => interfaces.clear(),
            Block::InterfaceDescription(i) => interfaces.push(LinkType(u32::from(i.linktype))),
            Block::EnhancedPacket(p) => out.push(CapturedPacket {
                linktype: iface(p.interface_id)?,
                timestamp: p.timestamp,
                wire_len: p.original_len,
                data: p.data.into_owned(),
            }),
            Block::SimplePacket(p) => out.push(CapturedPacket {
                linktype: iface(0)?,
                timestamp: Duration::ZERO,
                wire_len: p.original_len,
                data: p.data.into_owned(),
            }),
            _ => {}
        }
    }
    Ok(out)
}
