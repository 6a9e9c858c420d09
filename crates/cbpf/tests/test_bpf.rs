//! The classic-BPF vectors of the kernel's lib/test_bpf.c, run through the
//! checker, the converter + uxdp interpreter, and the reference classic
//! interpreter, with the skb the kernel's harness builds.

use std::io::{BufRead, BufReader};
use uxdp_cbpf::classic::Interpreter;
use uxdp_cbpf::{parse_bytes, CbpfError, Device, Filter, Packet, Vlan};
use uxdp_vm::Stack;

const CORPUS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/linux-test_bpf/test_bpf_tests.jsonl.xz");

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

/// The skb of test_bpf.c's `populate_skb` (+ `skb_add_rx_frag` for
/// FLAG_SKB_FRAG): `size` bytes of test data, then the 128-byte fragment;
/// mac header at 0, network header at min(size, ETH_HLEN).
fn harness_packet<'a>(buf: &'a [u8], head: usize) -> Packet<'a> {
    Packet {
        data: buf,
        len: buf.len() as u32,
        protocol: 0x0800,
        pkt_type: 3,
        device: Some(Device { ifindex: 577, hatype: 588 }),
        mark: 0x1234aaaa,
        hash: 0x1234aaab,
        queue_mapping: 123,
        vlan: Some(Vlan { tpid: 0x0800, tci: 0xffff }),
        mac_offset: Some(0),
        network_offset: head.min(14) as u32,
    }
}

#[test]
fn kernel_test_bpf_classic_vectors() {
    let f = std::fs::File::open(CORPUS).expect("test_bpf corpus");
    let lines = BufReader::new(xz2::read::XzDecoder::new(f)).lines();
    let (mut passed, mut failed, mut skipped) = (0, Vec::new(), Vec::new());
    let mut stack = Stack::new();
    let mut total = 0;
    for line in lines {
        let line = line.expect("xz stream");
        // Only the classic tests are parsed (the eBPF ones are most of the 230 MB).
        if !line.contains("\"kind\":\"classic\"") {
            assert!(line.contains("\"kind\":\"ebpf\""), "unknown kind: {}", &line[..line.len().min(120)]);
            continue;
        }
        let t: serde_json::Value = serde_json::from_str(&line).expect("json");
        if t["kind"] != "classic" {
            continue;
        }
        total += 1;
        let descr = t["descr"].as_str().unwrap_or("?").to_string();
        let flags: Vec<&str> = t["flags"].as_array().unwrap().iter().filter_map(|f| f.as_str()).collect();
        let prog = parse_bytes(&hex(t["insns"].as_str().unwrap())).expect("insns");
        let expect_fail = flags.contains(&"EXPECTED_FAIL");
        let filter = Filter::new(&prog);
        let interp = Interpreter::new(&prog);
        if expect_fail {
            assert_eq!(t["expected_errcode"].as_i64(), Some(-22), "{descr}");
            match (&filter, &interp) {
                (Err(e), Err(_)) => {
                    println!("ok   {descr}: rejected: {e}");
                    passed += 1;
                }
                _ => failed.push(format!("{descr}: expected rejection, got filter {:?}", filter.as_ref().err())),
            }
            continue;
        }
        let (filter, interp) = match (filter, interp) {
            (Ok(f), Ok(i)) => (f, i),
            (Err(e @ CbpfError::UnsupportedAncillary { .. }), _) => {
                skipped.push(format!("{descr}: {e}"));
                continue;
            }
            (f, i) => {
                failed.push(format!("{descr}: refused: {:?} / {:?}", f.err(), i.err()));
                continue;
            }
        };
        let data = hex(t["data"].as_str().unwrap());
        let frag = hex(t["frag_data"].as_str().unwrap());
        let mut ok = true;
        for sub in t["subtests"].as_array().unwrap() {
            let size = sub[0].as_u64().unwrap() as usize;
            let expected = sub[1].as_u64().unwrap() as u32;
            let (buf, pkt_of): (Vec<u8>, bool) = if flags.contains(&"NO_DATA") {
                (Vec::new(), false)
            } else {
                let mut b = data[..size].to_vec();
                if flags.contains(&"SKB_FRAG") {
                    b.extend_from_slice(&frag);
                }
                (b, true)
            };
            let pkt = if pkt_of { harness_packet(&buf, size) } else { Packet::bare(&buf) };
            let got = filter.run_packet(&mut stack, &pkt);
            let reference = interp.run(&pkt);
            match (got, reference) {
                (Ok(g), Ok(r)) if g == expected && r == expected => {}
                (g, r) => {
                    ok = false;
                    failed.push(format!("{descr} [size {size}]: expected {expected:#x}, uxdp {g:?}, classic {r:?}"));
                }
            }
        }
        if ok {
            passed += 1;
        }
    }
    for s in &skipped {
        println!("skipped: {s}");
    }
    for f in &failed {
        println!("FAILED: {f}");
    }
    println!("test_bpf classic: {total} tests");
    println!("{passed} passed, {} failed, {} skipped", failed.len(), skipped.len());
    assert_eq!(total, 134, "the corpus has 134 classic tests");
    assert!(failed.is_empty(), "{} failures", failed.len());
    // The only skips are the netlink ancillary loads.
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped.iter().all(|s| s.contains("SKF_AD_NLATTR")), "{skipped:?}");
}
