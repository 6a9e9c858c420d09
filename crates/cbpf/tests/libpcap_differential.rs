//! Differential test against libpcap: every capture of the shared corpus,
//! every expression of tests/data/expressions.txt, compiled by libpcap for
//! the capture's link type; the value the converted program returns on
//! uxdp's interpreter must equal libpcap's `pcap_offline_filter` and the
//! reference classic interpreter for every packet.

#![cfg(feature = "pcap")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use uxdp_cbpf::capture::{read_capture, CapturedPacket};
use uxdp_cbpf::classic::Interpreter;
use uxdp_cbpf::libpcap::{compile, OfflineFilter};
use uxdp_cbpf::{Filter, LinkType};
use uxdp_vm::Stack;

const SNAPLEN: u32 = 262144;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pcaps")
}

fn expressions() -> Vec<String> {
    let text = include_str!("data/expressions.txt");
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
}

/// Also checks uxdp's JIT against its interpreter on every evaluation.
#[test]
fn uxdp_agrees_with_libpcap_on_the_corpus() {
    let exprs = expressions();
    assert!(exprs.len() >= 50, "at least 50 expressions");
    // Every capture, grouped by link type (one compilation per type).
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus pcaps")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut by_type: BTreeMap<LinkType, Vec<CapturedPacket>> = BTreeMap::new();
    for f in &files {
        let pkts = read_capture(f).unwrap_or_else(|e| panic!("{e}"));
        assert!(!pkts.is_empty(), "{} has no packets", f.display());
        for p in pkts {
            by_type.entry(p.linktype).or_default().push(p);
        }
    }
    let mut stack = Stack::new();
    let (mut n_packets, mut agree, mut differ, mut evaluations) = (0usize, 0usize, 0usize, 0usize);
    let mut shown = 0;
    let mut matches: BTreeMap<&str, usize> = BTreeMap::new();
    for (lt, pkts) in &by_type {
        // A link type libpcap cannot compile for at all is skipped, by name.
        if let Err(e) = compile("len > 0", *lt, SNAPLEN) {
            println!("skipping {} packets of link type {lt}: {e}", pkts.len());
            continue;
        }
        n_packets += pkts.len();
        for expr in &exprs {
            let prog = match compile(expr, *lt, SNAPLEN) {
                Ok(p) => p,
                Err(e) => panic!("link type {lt}: {e}"),
            };
            let filter = Filter::new(&prog).unwrap_or_else(|e| panic!("{expr:?}: uxdp refuses libpcap's program: {e}"));
            let interp = Interpreter::new(&prog).expect("interpreter accepts what Filter accepts");
            // The same conversion on uxdp's JIT (inline legacy packet loads).
            let jit = Filter::new(&prog).expect("converts");
            let jit_ok = uxdp_jit::attach(jit.program()).is_ok();
            assert!(jit_ok || !uxdp_jit::available(), "{expr:?}: the JIT refuses the converted program");
            let pcap = OfflineFilter::new(&prog).expect("libpcap validates its own program");
            let mut expr_differ = 0;
            let mut matched = 0usize;
            for p in pkts {
                let pkt = p.packet();
                let want = pcap.run(&p.data, p.wire_len);
                let got = filter.run_packet(&mut stack, &pkt).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
                let reference = interp.run(&pkt).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
                if jit_ok {
                    let native = jit.run_packet(&mut stack, &pkt).unwrap_or_else(|e| panic!("{expr:?}: JIT: {e}"));
                    assert_eq!(native, got, "{expr:?}: JIT and interpreter differ on a {}-byte packet", p.data.len());
                }
                evaluations += 1;
                matched += usize::from(want != 0);
                if got == want && reference == want {
                    agree += 1;
                } else {
                    differ += 1;
                    expr_differ += 1;
                    if shown < 20 {
                        shown += 1;
                        println!(
                            "DIFFER {expr:?} on a {}-byte packet (wire {}): libpcap {want}, uxdp {got}, classic {reference}",
                            p.data.len(),
                            p.wire_len
                        );
                    }
                }
            }
            if expr_differ > 0 {
                println!("{expr:?}: {expr_differ} differences");
            }
            *matches.entry(expr.as_str()).or_default() += matched;
        }
    }
    for (e, m) in &matches {
        println!("{m:>6} matches  {e}");
    }
    // The corpus exercises both verdicts of most expressions.
    let selective = matches.values().filter(|&&m| m > 0 && m < n_packets).count();
    assert!(selective >= exprs.len() * 3 / 4, "only {selective} expressions both match and reject packets");
    println!("{} captures, link types {:?}", files.len(), by_type.keys().map(|l| l.0).collect::<Vec<_>>());
    println!("{n_packets} packets x {} expressions: {agree} agree, {differ} differ", exprs.len());
    assert_eq!(evaluations, n_packets * exprs.len());
    assert!(n_packets > 0);
    assert_eq!(differ, 0);
}

/// Re-encapsulates the corpus's untagged IPv4/IPv6 Ethernet frames as raw
/// IP, Linux cooked (SLL) and BSD loopback (NULL) packets, so that filters
/// compiled for those link types are compared too. Expressions libpcap
/// cannot compile for a link type (`ether ...` on raw IP) are skipped and
/// listed.
#[test]
fn uxdp_agrees_with_libpcap_on_other_link_types() {
    let exprs = expressions();
    let mut frames: Vec<CapturedPacket> = Vec::new();
    for name in ["zeek__wikipedia.pcap", "tcpreplay__test.pcap", "zeek__ip6_esp.pcap", "pcpp__IgmpPackets.pcap"] {
        frames.extend(read_capture(&corpus_dir().join(name)).unwrap_or_else(|e| panic!("{e}")));
    }
    let mut by_type: BTreeMap<LinkType, Vec<CapturedPacket>> = BTreeMap::new();
    for f in &frames {
        let Some(t) = f.data.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]])) else { continue };
        if t != 0x0800 && t != 0x86dd {
            continue;
        }
        let payload = &f.data[14..];
        let wire = f.wire_len - 14;
        let mut sll = vec![0, 0, 0, 1, 0, 6];
        sll.extend_from_slice(&f.data[6..12]);
        sll.extend_from_slice(&[0, 0]);
        sll.extend_from_slice(&t.to_be_bytes());
        let af: u32 = if t == 0x0800 { 2 } else { 24 };
        for (lt, header) in
            [(LinkType::RAW, vec![]), (LinkType::LINUX_SLL, sll), (LinkType::NULL, af.to_ne_bytes().to_vec())]
        {
            let mut data = header.clone();
            data.extend_from_slice(payload);
            by_type.entry(lt).or_default().push(CapturedPacket {
                linktype: lt,
                timestamp: f.timestamp,
                wire_len: wire + header.len() as u32,
                data,
            });
        }
    }
    let mut stack = Stack::new();
    let (mut evaluations, mut agree, mut differ) = (0usize, 0usize, 0usize);
    for (lt, pkts) in &by_type {
        let mut compiled = 0;
        for expr in &exprs {
            let prog = match compile(expr, *lt, SNAPLEN) {
                Ok(p) => p,
                Err(e) => {
                    println!("link type {lt}: skipping {expr:?}: {e}");
                    continue;
                }
            };
            compiled += 1;
            let filter = Filter::new(&prog).unwrap_or_else(|e| panic!("{expr:?} for {lt}: {e}"));
            let interp = Interpreter::new(&prog).unwrap();
            let pcap = OfflineFilter::new(&prog).unwrap();
            for p in pkts {
                let pkt = p.packet();
                let want = pcap.run(&p.data, p.wire_len);
                let got = filter.run_packet(&mut stack, &pkt).unwrap();
                let reference = interp.run(&pkt).unwrap();
                evaluations += 1;
                if got == want && reference == want {
                    agree += 1;
                } else {
                    differ += 1;
                    println!("DIFFER {lt} {expr:?}: libpcap {want}, uxdp {got}, classic {reference}");
                }
            }
        }
        println!("link type {lt}: {} packets x {compiled} expressions", pkts.len());
        assert!(compiled >= exprs.len() / 2, "{lt}: only {compiled} expressions compile");
    }
    println!("{evaluations} evaluations on RAW, LINUX_SLL and NULL: {agree} agree, {differ} differ");
    assert_eq!(by_type.len(), 3);
    assert!(evaluations > 0);
    assert_eq!(differ, 0);
}

/// The pure-Rust capture reader sees the same packets as libpcap.
#[test]
fn capture_reader_matches_libpcap() {
    let mut files = 0;
    for e in std::fs::read_dir(corpus_dir()).expect("corpus") {
        let path = e.expect("entry").path();
        let ours = read_capture(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut cap = pcap::Capture::from_file(&path).expect("libpcap opens the capture");
        let dlt = cap.get_datalink().0;
        let mut n = 0;
        while let Ok(p) = cap.next_packet() {
            let o = &ours[n];
            assert_eq!(o.data, p.data, "{} packet {n}", path.display());
            assert_eq!(o.wire_len, p.header.len, "{} packet {n}", path.display());
            assert_eq!(o.linktype.to_dlt(), dlt, "{}", path.display());
            n += 1;
        }
        assert_eq!(n, ours.len(), "{}", path.display());
        files += 1;
    }
    assert!(files >= 40);
}
