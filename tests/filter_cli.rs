//! `uxdp filter` as a user drives it: counts and matches over corpus
//! captures equal what `tcpdump -r FILE EXPR | wc -l` reports, computed
//! here with libpcap's own `pcap_offline_filter` (tcpdump is not needed).

use std::path::{Path, PathBuf};
use uxdp_cbpf::capture::{read_capture, CapturedPacket};
use uxdp_cbpf::libpcap::{compile, OfflineFilter};
use uxdp_cbpf::to_ddd;

mod common;
use common::uxdp_with_stdin as uxdp;

fn pcap(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/pcaps").join(name)
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("uxdp-filter-cli-{}-{name}", std::process::id()))
}

/// Indices (0-based) of the packets libpcap's filter accepts, as
/// `tcpdump -r` would print them.
fn libpcap_matches(path: &Path, expr: &str) -> Vec<usize> {
    libpcap_matches_with(path, expr, false)
}

/// With `caplen_as_len`, `len` is the captured length (the XDP engine's
/// `data_end - data`) instead of the original length.
fn libpcap_matches_with(path: &Path, expr: &str, caplen_as_len: bool) -> Vec<usize> {
    let pkts = read_capture(path).unwrap();
    let lt = pkts[0].linktype;
    let f = OfflineFilter::new(&compile(expr, lt, 262144).unwrap()).unwrap();
    pkts.iter()
        .enumerate()
        .filter(|(_, p)| f.run(&p.data, if caplen_as_len { p.data.len() as u32 } else { p.wire_len }) != 0)
        .map(|(i, _)| i)
        .collect()
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

const CASES: [(&str, &str); 10] = [
    ("zeek__wikipedia.pcap", "port 80"),
    ("zeek__wikipedia.pcap", "tcp port 80 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)"),
    ("zeek__wikipedia.pcap", "udp port 53 or icmp"),
    ("tcpreplay__test.pcap", "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0"),
    ("tcpreplay__test.pcap", "len > 200 and ip"),
    ("zeek__vlan-collisions.pcap", "vlan and ip"),
    ("zeek__mixed-vlan-mpls.pcap", "vlan or mpls"),
    ("zeek__ip6_esp.pcap", "ip6 and ip6[6] == 50"),
    ("pcpp__ipv4-options.pcap", "ip[0] & 0xf > 5"),
    ("tcpdump__dns_tcp.pcap", "tcp port 53 and greater 100"),
];

#[test]
fn counts_equal_libpcap_for_every_engine() {
    for (file, expr) in CASES {
        let path = pcap(file);
        let want = libpcap_matches(&path, expr);
        let want_xdp = libpcap_matches_with(&path, expr, true);
        let p = path.to_str().unwrap();
        for engine in ["uxdp", "xdp", "libpcap"] {
            let (ok, out, err) = uxdp(&["filter", expr, "--pcap", p, "--count", "--engine", engine], None);
            assert!(ok, "{file} {expr:?} {engine}: {err}");
            let n = if engine == "xdp" { want_xdp.len() } else { want.len() };
            assert_eq!(last_line(&out), n.to_string(), "{file} {expr:?} on {engine}");
        }
        println!("{file} {expr:?}: {} matches", want.len());
    }
    // The corpus cases are not trivial.
    let total: usize = CASES.iter().map(|(f, e)| libpcap_matches(&pcap(f), e).len()).sum();
    assert!(total > 50, "{total}");
}

#[test]
fn lists_each_matching_packet() {
    let path = pcap("zeek__wikipedia.pcap");
    let want = libpcap_matches(&path, "tcp port 80");
    let pkts = read_capture(&path).unwrap();
    let (ok, out, err) = uxdp(&["filter", "tcp port 80", "--pcap", path.to_str().unwrap()], None);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), want.len());
    for (line, &i) in lines.iter().zip(&want) {
        let p = &pkts[i];
        let expect = format!("{} {}.{:09} {}", i + 1, p.timestamp.as_secs(), p.timestamp.subsec_nanos(), p.wire_len);
        assert_eq!(*line, expect);
    }
}

#[test]
fn accepts_tcpdump_ddd_from_stdin_and_file() {
    let path = pcap("tcpreplay__test.pcap");
    let expr = "tcp and not port 80";
    let want = libpcap_matches(&path, expr).len().to_string();
    let ddd = to_ddd(&compile(expr, uxdp_cbpf::LinkType::ETHERNET, 262144).unwrap());
    let (ok, out, err) = uxdp(&["filter", "--ddd", "-", "--pcap", path.to_str().unwrap(), "--count"], Some(&ddd));
    assert!(ok, "{err}");
    assert_eq!(last_line(&out), want);
    let f = tmp("prog.ddd");
    std::fs::write(&f, &ddd).unwrap();
    let (ok, out, err) =
        uxdp(&["filter", "--ddd", f.to_str().unwrap(), "--pcap", path.to_str().unwrap(), "--count"], None);
    std::fs::remove_file(&f).ok();
    assert!(ok, "{err}");
    assert_eq!(last_line(&out), want);
}

#[test]
fn writes_matching_packets_with_link_type_and_timestamps() {
    let path = pcap("zeek__wikipedia.pcap");
    let expr = "udp";
    let want = libpcap_matches(&path, expr);
    let pkts = read_capture(&path).unwrap();
    let out_path = tmp("udp.pcap");
    let o = out_path.to_str().unwrap();
    let (ok, out, err) = uxdp(&["filter", expr, "--pcap", path.to_str().unwrap(), "--write", o, "--count"], None);
    assert!(ok, "{err}");
    assert_eq!(last_line(&out), want.len().to_string());
    let written = read_capture(&out_path).unwrap();
    let expected: Vec<CapturedPacket> = want.iter().map(|&i| pkts[i].clone()).collect();
    assert_eq!(written, expected);
    // Filtering the output again keeps everything.
    let (ok, out, _) = uxdp(&["filter", expr, "--pcap", o, "--count"], None);
    assert!(ok);
    assert_eq!(last_line(&out), want.len().to_string());
    // --write alone prints nothing.
    let (ok, out, err) = uxdp(&["filter", expr, "--pcap", path.to_str().unwrap(), "--write", o], None);
    std::fs::remove_file(&out_path).ok();
    assert!(ok, "{err}");
    assert_eq!(out, "");
}

#[test]
fn reads_pcapng() {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    let path = pcap("tcpreplay__test.pcap");
    let pkts = read_capture(&path).unwrap();
    let ng = tmp("test.pcapng");
    {
        let mut w = PcapNgWriter::new(std::fs::File::create(&ng).unwrap()).unwrap();
        let idb = InterfaceDescriptionBlock { linktype: pcap_file::DataLink::ETHERNET, snaplen: 0, options: vec![] };
        w.write_pcapng_block(idb).unwrap();
        for p in &pkts {
            let epb = EnhancedPacketBlock {
                interface_id: 0,
                timestamp: p.timestamp,
                original_len: p.wire_len,
                data: std::borrow::Cow::Borrowed(&p.data),
                options: vec![],
            };
            w.write_pcapng_block(epb).unwrap();
        }
    }
    let expr = "tcp port 80";
    let (ok, out, err) = uxdp(&["filter", expr, "--pcap", ng.to_str().unwrap(), "--count"], None);
    std::fs::remove_file(&ng).ok();
    assert!(ok, "{err}");
    assert_eq!(last_line(&out), libpcap_matches(&path, expr).len().to_string());
}

#[test]
fn errors_are_clean() {
    let p = pcap("tcpreplay__test.pcap");
    let p = p.to_str().unwrap();
    // Bad expression: libpcap's message.
    let (ok, out, err) = uxdp(&["filter", "tcp port", "--pcap", p], None);
    assert!(!ok && out.is_empty());
    assert!(err.starts_with("uxdp: libpcap: ") && err.contains("tcp port"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Bad -ddd: the line number.
    let (ok, _, err) = uxdp(&["filter", "--ddd", "-", "--pcap", p], Some("2\n40 0 0 12\n21 0 x 2048\n"));
    assert!(!ok);
    assert!(err.contains("standard input") && err.contains("line 3"), "{err}");
    // A -ddd program the kernel's checker refuses.
    let (ok, _, err) = uxdp(&["filter", "--ddd", "-", "--pcap", p], Some("1\n40 0 0 12\n"));
    assert!(!ok);
    assert!(err.contains("instruction 0"), "{err}");
    // Missing capture.
    let (ok, _, err) = uxdp(&["filter", "ip", "--pcap", "/nonexistent/x.pcap"], None);
    assert!(!ok && err.contains("/nonexistent/x.pcap"), "{err}");
    // Not a capture.
    let (ok, _, err) = uxdp(&["filter", "ip", "--pcap", file!()], None);
    assert!(!ok && err.starts_with("uxdp: "), "{err}");
    // Neither an expression nor --ddd, or both.
    let (ok, _, err) = uxdp(&["filter", "--pcap", p], None);
    assert!(!ok && err.contains("<EXPR>"), "{err}");
    let (ok, _, err) = uxdp(&["filter", "ip", "--ddd", "-", "--pcap", p], Some(""));
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    // Unknown link type.
    let (ok, _, err) = uxdp(&["filter", "ip", "--pcap", p, "--linktype", "TOKENRING"], None);
    assert!(!ok && err.contains("unknown link type"), "{err}");
}

#[test]
fn linktype_override_compiles_for_that_type() {
    // Read the Ethernet capture as raw IP: `ip[9] == 6` then looks at byte
    // 9 of the Ethernet header, which libpcap agrees with on the same view.
    let path = pcap("tcpreplay__test.pcap");
    let pkts = read_capture(&path).unwrap();
    let f = OfflineFilter::new(&compile("ip[9] == 6", uxdp_cbpf::LinkType::RAW, 262144).unwrap()).unwrap();
    let want = pkts.iter().filter(|p| f.run(&p.data, p.wire_len) != 0).count();
    assert_ne!(want, libpcap_matches(&path, "ip[9] == 6").len(), "the override must make a difference here");
    let (ok, out, err) =
        uxdp(&["filter", "ip[9] == 6", "--pcap", path.to_str().unwrap(), "--linktype", "RAW", "--count"], None);
    assert!(ok, "{err}");
    assert_eq!(last_line(&out), want.to_string());
}

#[test]
fn help_documents_the_output() {
    let (ok, out, _) = uxdp(&["filter", "--help"], None);
    assert!(ok);
    assert!(out.contains("<n> <timestamp> <length>") && out.contains("--count") && out.contains("--ddd"), "{out}");
}
