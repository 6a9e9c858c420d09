//! The XDP form of classic filters ([`to_xdp`]) and the kernel
//! socket-filter form ([`to_socket_filter`]): verdicts on uxdp's
//! interpreter and in the real kernel (`BPF_PROG_TEST_RUN`) against
//! libpcap's `pcap_offline_filter` and the socket-filter conversion.
//! Kernel parts print a reason and skip when the kernel refuses BPF.

#![cfg(feature = "pcap")]

use std::path::PathBuf;
use uxdp_cbpf::capture::{read_capture, CapturedPacket};
use uxdp_cbpf::classic::Interpreter;
use uxdp_cbpf::insn::{op, skf};
use uxdp_cbpf::libpcap::{compile, OfflineFilter};
use uxdp_cbpf::{parse_ddd, to_socket_filter, to_xdp, CbpfError, LinkType, Packet, SockFilter, XdpFilter, XdpPacket};
use uxdp_kernel::{load_raw, raw::log_level, test_run_skb, test_run_xdp, LoadedProg, ProgType};
use uxdp_vm::Stack;

const SNAPLEN: u32 = 262144;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

fn corpus() -> Vec<CapturedPacket> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pcaps");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).expect("corpus").map(|e| e.expect("entry").path()).collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(read_capture(&f).unwrap_or_else(|e| panic!("{e}")));
    }
    assert!(out.len() > 1000, "corpus has {} packets", out.len());
    out
}

/// Loads a converted program in the kernel, or panics with the verifier's
/// log: `what` refuses `form`.
fn load_or_log(insns: &[uxdp_isa::Insn], kind: ProgType, what: &str, form: &str) -> LoadedProg {
    load_raw(insns, kind, "GPL", log_level::NONE).unwrap_or_else(|f| {
        let log = load_raw(insns, kind, "GPL", log_level::LEVEL1).err().map(|f| f.log);
        panic!("{what}: the kernel refuses {form} ({}): {}", f.errno, log.unwrap_or_default())
    })
}

/// The corpus's Ethernet packets that fit the kernel's linear test-run
/// buffer (14 to 3000 bytes).
fn ethernet_test_run_packets() -> impl Iterator<Item = CapturedPacket> {
    corpus().into_iter().filter(|p| p.linktype == LinkType::ETHERNET && (14..=3000).contains(&p.data.len()))
}

fn expressions() -> Vec<String> {
    include_str!("data/expressions.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

fn kernel_skip() -> Option<String> {
    uxdp_kernel::availability().err()
}

/// Every expression, every corpus packet that fits an XDP buffer, compiled
/// for the packet's link type: the XDP form on uxdp's interpreter (and on
/// its JIT, after the verifier) returns
/// XDP_PASS exactly when libpcap matches (with `len` = captured length,
/// XDP's `data_end - data`; the socket-filter conversion is compared with
/// libpcap in libpcap_differential.rs).
#[test]
fn xdp_form_agrees_with_libpcap_on_the_interpreter() {
    let pkts = corpus();
    let exprs = expressions();
    let mut stack = Stack::new();
    let mut buf = XdpPacket::new().unwrap();
    let mut by_type: std::collections::BTreeMap<LinkType, Vec<&CapturedPacket>> = Default::default();
    let mut too_long = 0;
    for p in &pkts {
        if p.data.len() > XdpPacket::MAX_LEN {
            too_long += 1;
            continue;
        }
        by_type.entry(p.linktype).or_default().push(p);
    }
    let (mut evaluations, mut matched, mut jit_programs) = (0usize, 0usize, 0usize);
    for (lt, pkts) in &by_type {
        if compile("len > 0", *lt, SNAPLEN).is_err() {
            println!("skipping {} packets of link type {lt}: libpcap cannot compile for it", pkts.len());
            continue;
        }
        for expr in &exprs {
            let prog = compile(expr, *lt, SNAPLEN).unwrap_or_else(|e| panic!("{e}"));
            let xdp = XdpFilter::new(&prog, XDP_PASS, XDP_DROP).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
            // The same program on the JIT with what uxdp's verifier proves
            // (its packet accesses then run unchecked).
            let jit = XdpFilter::new(&prog, XDP_PASS, XDP_DROP).unwrap();
            if uxdp_jit::available() {
                let verified = jit.jit().unwrap_or_else(|e| panic!("{expr:?}: {e}"));
                assert!(verified, "{lt} {expr:?}: uxdp's verifier rejects the conversion");
                jit_programs += 1;
            }
            let pcap = OfflineFilter::new(&prog).unwrap();
            for p in pkts {
                let want = pcap.run(&p.data, p.data.len() as u32);
                buf.set(&p.data).unwrap();
                let got = xdp.run(&mut stack, &buf).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
                let expect = if want != 0 { XDP_PASS } else { XDP_DROP };
                assert_eq!(got, expect, "{lt} {expr:?} on a {}-byte packet", p.data.len());
                let native = jit.run(&mut stack, &buf).unwrap_or_else(|e| panic!("{expr:?}: JIT: {e}"));
                assert_eq!(native, expect, "{lt} {expr:?} on a {}-byte packet, JIT", p.data.len());
                evaluations += 1;
                matched += usize::from(want != 0);
            }
        }
    }
    println!(
        "{evaluations} evaluations ({matched} matches), {too_long} packets longer than 65535 bytes skipped; \
         {jit_programs} conversions verified and JIT-compiled, same verdicts"
    );
    assert!(evaluations > 50_000 && matched > 1000);
}

/// Hand-written programs for the corners: `ret a`, `ld len`, `div x` by
/// zero, far and `SKF_LL_OFF` loads, computed negative offsets, scratch
/// memory. The XDP form on the interpreter agrees with the classic
/// reference interpreter on Ethernet frames of every length 0..80.
fn corner_programs() -> Vec<(&'static str, Vec<SockFilter>)> {
    use op::*;
    let s = SockFilter::stmt;
    let j = SockFilter::jump;
    let ll = skf::LL_OFF as u32;
    vec![
        ("ret a of a word", vec![s(LD | W | ABS, 10), s(RET | A, 0)]),
        ("len", vec![s(LD | W | LEN, 0), s(ALU | SUB | K, 40), s(RET | A, 0)]),
        ("ldx len, txa", vec![s(LDX | W | LEN, 0), s(MISC | TXA, 0), s(RET | A, 0)]),
        (
            "div x by byte",
            vec![s(LD | B | ABS, 3), s(MISC | TAX, 0), s(LD | IMM, 1000), s(ALU | DIV | X, 0), s(RET | A, 0)],
        ),
        (
            "mod x by byte",
            vec![s(LD | B | ABS, 3), s(MISC | TAX, 0), s(LD | IMM, 1000), s(ALU | MOD | X, 0), s(RET | A, 0)],
        ),
        ("far load", vec![s(LD | B | ABS, 70000), s(RET | K, 5)]),
        ("load at 65535", vec![s(LD | B | ABS, 65535), s(RET | K, 5)]),
        ("SKF_LL_OFF load", vec![s(LD | H | ABS, ll + 12), s(RET | A, 0)]),
        ("below SKF_LL_OFF", vec![s(LD | B | ABS, ll - 1), s(RET | K, 1)]),
        ("msh + ind", vec![s(LDX | B | MSH, 14), s(LD | H | IND, 14), s(RET | A, 0)]),
        ("ind with X = 40", vec![s(LDX | IMM, 40), s(LD | W | IND, 2), s(RET | A, 0)]),
        ("ind wrapping to SKF_LL_OFF", vec![s(LDX | IMM, ll), s(LD | B | IND, 12), s(RET | A, 0)]),
        ("ind far", vec![s(LDX | IMM, 0xfff0), s(LD | B | IND, 0x20), s(RET | K, 9)]),
        ("ind below SKF_LL_OFF", vec![s(LDX | IMM, 0xffff_ffff), s(LD | B | IND, ll), s(RET | K, 9)]),
        (
            "scratch and jumps",
            vec![
                s(LD | B | ABS, 0),
                s(ST, 3),
                s(LD | B | ABS, 1),
                s(LDX | MEM, 3),
                s(ALU | ADD | X, 0),
                j(JMP | JGT | K, 100, 0, 1),
                s(RET | K, 0),
                s(RET | A, 0),
            ],
        ),
        ("ret 0", vec![s(RET | K, 0)]),
        (
            "unreachable code",
            vec![SockFilter::jump(JMP | JA, 1, 0, 0), s(LD | W | LEN, 0), s(LD | B | ABS, 3), s(RET | A, 0)],
        ),
        (
            "ranges meet at a join",
            vec![
                s(LD | B | ABS, 0),
                j(JMP | JEQ | K, 0x0b, 0, 2),
                s(LD | H | ABS, 30),
                SockFilter::jump(JMP | JA, 1, 0, 0),
                s(LD | B | ABS, 12),
                s(LD | B | ABS, 20),
                s(ST, 0),
                s(LD | W | ABS, 8),
                s(LDX | MEM, 0),
                s(ALU | ADD | X, 0),
                s(RET | A, 0),
            ],
        ),
        (
            "xor x",
            vec![
                s(LD | B | ABS, 1),
                s(MISC | TAX, 0),
                s(LD | B | ABS, 2),
                s(LD | W | ABS, (skf::AD_OFF + skf::AD_ALU_XOR_X) as u32),
                s(RET | A, 0),
            ],
        ),
    ]
}

fn frame(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(37).wrapping_add(11)).collect()
}

#[test]
fn xdp_form_corners_on_the_interpreter() {
    let mut stack = Stack::new();
    let mut buf = XdpPacket::new().unwrap();
    let mut checked = 0;
    for (name, prog) in corner_programs() {
        let xdp = XdpFilter::new(&prog, XDP_PASS, XDP_DROP).unwrap_or_else(|e| panic!("{name}: {e}"));
        let interp = Interpreter::new(&prog).unwrap();
        for len in 0..80 {
            let data = frame(len);
            let want = interp.run(&Packet::ethernet(&data)).unwrap();
            buf.set(&data).unwrap();
            let got = xdp.run(&mut stack, &buf).unwrap();
            assert_eq!(got, if want != 0 { XDP_PASS } else { XDP_DROP }, "{name} on {len} bytes (classic {want})");
            checked += 1;
        }
    }
    // A 65535-byte packet: the last byte is readable, beyond is not.
    let big = frame(65535);
    buf.set(&big).unwrap();
    let s = SockFilter::stmt;
    let last =
        XdpFilter::new(&[s(op::LD | op::B | op::ABS, 65534), s(op::RET | op::A, 0)], XDP_PASS, XDP_DROP).unwrap();
    assert_eq!(last.run(&mut stack, &buf).unwrap(), if big[65534] != 0 { XDP_PASS } else { XDP_DROP });
    let past =
        XdpFilter::new(&[s(op::LD | op::H | op::ABS, 65534), s(op::RET | op::K, 1)], XDP_PASS, XDP_DROP).unwrap();
    assert_eq!(past.run(&mut stack, &buf).unwrap(), XDP_DROP);
    assert!(buf.set(&frame(65536)).is_err());
    println!("{checked} corner runs");
}

#[test]
fn xdp_form_ancillary_loads() {
    use op::*;
    let s = SockFilter::stmt;
    let ad = |n: i32| (skf::AD_OFF + n) as u32;
    let mut stack = Stack::new();
    let mut buf = XdpPacket::new().unwrap();
    buf.set(&frame(60)).unwrap();
    buf.ingress_ifindex = 7;
    buf.rx_queue_index = 3;
    // ifindex == 7 and queue == 3 → match.
    let prog = vec![
        s(LD | W | ABS, ad(skf::AD_IFINDEX)),
        SockFilter::jump(JMP | JEQ | K, 7, 0, 2),
        s(LD | W | ABS, ad(skf::AD_QUEUE)),
        SockFilter::jump(JMP | JEQ | K, 3, 1, 0),
        s(RET | K, 0),
        s(RET | K, 1),
    ];
    let f = XdpFilter::new(&prog, XDP_PASS, XDP_DROP).unwrap();
    assert_eq!(f.run(&mut stack, &buf).unwrap(), XDP_PASS);
    buf.rx_queue_index = 4;
    assert_eq!(f.run(&mut stack, &buf).unwrap(), XDP_DROP);
    // CPU and random load and run.
    for n in [skf::AD_CPU, skf::AD_RANDOM] {
        let f = XdpFilter::new(&[s(LD | W | ABS, ad(n)), s(RET | K, 1)], XDP_PASS, XDP_DROP).unwrap();
        assert_eq!(f.run(&mut stack, &buf).unwrap(), XDP_PASS);
    }
    // Socket metadata has no XDP meaning: refused by name.
    for (n, name) in [
        (skf::AD_PROTOCOL, "SKF_AD_PROTOCOL"),
        (skf::AD_PKTTYPE, "SKF_AD_PKTTYPE"),
        (skf::AD_MARK, "SKF_AD_MARK"),
        (skf::AD_RXHASH, "SKF_AD_RXHASH"),
        (skf::AD_HATYPE, "SKF_AD_HATYPE"),
        (skf::AD_VLAN_TAG, "SKF_AD_VLAN_TAG"),
        (skf::AD_VLAN_TAG_PRESENT, "SKF_AD_VLAN_TAG_PRESENT"),
        (skf::AD_VLAN_TPID, "SKF_AD_VLAN_TPID"),
        (skf::AD_PAY_OFFSET, "SKF_AD_PAY_OFFSET"),
        (skf::AD_NLATTR, "SKF_AD_NLATTR"),
    ] {
        let prog = [s(RET | K, 0), s(LD | W | ABS, ad(n)), s(RET | A, 0)];
        let prog = [SockFilter::jump(JMP | JA, 0, 0, 0), prog[1], prog[2]];
        let e = to_xdp(&prog, XDP_PASS, XDP_DROP).unwrap_err();
        assert!(matches!(e, CbpfError::NotInTarget { pc: 1, .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(name) && msg.contains("XDP"), "{msg}");
    }
    let e = to_xdp(&[s(LD | B | ABS, skf::NET_OFF as u32 + 9), s(RET | A, 0)], 2, 1).unwrap_err().to_string();
    assert!(e.contains("SKF_NET_OFF+9") && e.contains("network-header"), "{e}");
    // The classic checker runs first.
    assert!(matches!(to_xdp(&[s(LD | B | ABS, 0)], 2, 1), Err(CbpfError::Check { .. })));
}

/// The XDP form loads as BPF_PROG_TYPE_XDP in the kernel for every
/// expression, and `BPF_PROG_TEST_RUN` returns the same action as libpcap
/// on the corpus's Ethernet packets (14 to 3000 bytes, the kernel's
/// linear test-run buffer).
#[test]
fn xdp_form_in_the_kernel() {
    if let Some(why) = kernel_skip() {
        println!("skipped: {why}");
        return;
    }
    let pkts: Vec<CapturedPacket> = ethernet_test_run_packets().collect();
    let exprs = expressions();
    let (mut runs, mut loaded) = (0usize, 0usize);
    for (n, expr) in exprs.iter().enumerate() {
        let prog = compile(expr, LinkType::ETHERNET, SNAPLEN).unwrap();
        let insns = to_xdp(&prog, XDP_PASS, XDP_DROP).unwrap();
        let fd = load_or_log(&insns, ProgType::XDP, &format!("{expr:?}"), "the XDP form");
        loaded += 1;
        let pcap = OfflineFilter::new(&prog).unwrap();
        // Every 2nd packet for a third of the expressions, every 13th for the rest.
        let step = if n % 3 == 0 { 2 } else { 13 };
        for p in pkts.iter().step_by(step) {
            let want = if pcap.run(&p.data, p.data.len() as u32) != 0 { XDP_PASS } else { XDP_DROP };
            let r = test_run_xdp(fd.fd(), &p.data, 1, None).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
            assert_eq!(r.retval, want, "{expr:?} on a {}-byte packet", p.data.len());
            runs += 1;
        }
    }
    println!("{loaded} XDP programs loaded by the kernel, {runs} test runs agree with libpcap");
    assert!(runs > 5_000);
}

/// The corner programs load in the kernel as XDP and agree with the
/// classic reference interpreter on frames of 14..80 bytes.
#[test]
fn xdp_form_corners_in_the_kernel() {
    if let Some(why) = kernel_skip() {
        println!("skipped: {why}");
        return;
    }
    for (name, prog) in corner_programs() {
        let insns = to_xdp(&prog, XDP_PASS, XDP_DROP).unwrap();
        let fd = load_or_log(&insns, ProgType::XDP, name, "the XDP form");
        let interp = Interpreter::new(&prog).unwrap();
        for len in 14..80 {
            let data = frame(len);
            let want = if interp.run(&Packet::ethernet(&data)).unwrap() != 0 { XDP_PASS } else { XDP_DROP };
            let r = test_run_xdp(fd.fd(), &data, 1, None).unwrap();
            assert_eq!(r.retval, want, "{name} on {len} bytes");
        }
    }
    // ifindex / queue / cpu / random load too.
    let s = SockFilter::stmt;
    for n in [skf::AD_IFINDEX, skf::AD_QUEUE, skf::AD_CPU, skf::AD_RANDOM] {
        let prog = [s(op::LD | op::W | op::ABS, (skf::AD_OFF + n) as u32), s(op::RET | op::K, 1)];
        let insns = to_xdp(&prog, XDP_PASS, XDP_DROP).unwrap();
        let fd = load_raw(&insns, ProgType::XDP, "GPL", log_level::NONE)
            .unwrap_or_else(|f| panic!("{}: {}", skf::name(n).unwrap(), f.errno));
        assert_eq!(test_run_xdp(fd.fd(), &frame(60), 1, None).unwrap().retval, XDP_PASS);
    }
}

/// The kernel socket-filter form: `BPF_PROG_TEST_RUN` of a socket filter
/// sees the packet after the Ethernet header (the kernel pulls it), so the
/// frame is sent behind a 14-byte dummy header; the return value equals
/// libpcap's on Ethernet corpus packets.
#[test]
fn socket_filter_form_in_the_kernel() {
    if let Some(why) = kernel_skip() {
        println!("skipped: {why}");
        return;
    }
    let pkts: Vec<CapturedPacket> = ethernet_test_run_packets().step_by(5).collect();
    let mut runs = 0;
    for expr in expressions().iter().step_by(3) {
        let prog = compile(expr, LinkType::ETHERNET, SNAPLEN).unwrap();
        let insns = to_socket_filter(&prog).unwrap();
        let fd = load_or_log(&insns, ProgType::SOCKET_FILTER, &format!("{expr:?}"), "the socket filter");
        let pcap = OfflineFilter::new(&prog).unwrap();
        for p in &pkts {
            let want = pcap.run(&p.data, p.data.len() as u32);
            let mut data = p.data[..14].to_vec();
            data.extend_from_slice(&p.data);
            let r = test_run_skb(fd.fd(), &data, 1, None).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
            assert_eq!(r.retval, want, "{expr:?} on a {}-byte packet", p.data.len());
            runs += 1;
        }
    }
    println!("{runs} socket-filter test runs agree with libpcap");
    assert!(runs > 5000);
}

#[test]
fn socket_filter_form_refuses_by_name() {
    let s = SockFilter::stmt;
    let prog = [s(op::LD | op::W | op::ABS, (skf::AD_OFF + skf::AD_VLAN_TAG) as u32), s(op::RET | op::A, 0)];
    let e = to_socket_filter(&prog).unwrap_err().to_string();
    assert!(e.contains("SKF_AD_VLAN_TAG") && e.contains("socket filter"), "{e}");
    // -ddd text goes through the same path.
    let prog = parse_ddd("4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n").unwrap();
    assert!(to_socket_filter(&prog).is_ok() && to_xdp(&prog, 2, 1).is_ok());
}
