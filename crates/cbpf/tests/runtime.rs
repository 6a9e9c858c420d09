//! Semantics of the converted code on uxdp's interpreter, checked against
//! expected values and against the reference classic interpreter:
//! ancillary loads, negative offsets, division by zero, shifts, the
//! payload offset, and randomly generated programs.

use uxdp_cbpf::classic::{self, Interpreter};
use uxdp_cbpf::insn::{op::*, skf};
use uxdp_cbpf::{CbpfError, Device, Filter, Packet, SockFilter, Vlan};
use uxdp_vm::Stack;

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter::stmt(code, k)
}
fn anc(n: i32) -> SockFilter {
    stmt(LD | W | ABS, (skf::AD_OFF + n) as u32)
}
const RET_A: SockFilter = SockFilter::stmt(RET | A, 0);

/// Runs `prog` on `p` through both engines, asserts they agree, returns the value.
fn both(prog: &[SockFilter], p: &Packet<'_>) -> u32 {
    let f = Filter::new(prog).unwrap_or_else(|e| panic!("{e}"));
    let got = f.run_packet(&mut Stack::new(), p).unwrap_or_else(|e| panic!("{e}"));
    let reference = Interpreter::new(prog).unwrap().run(p).unwrap();
    assert_eq!(got, reference, "uxdp vs classic on {prog:?}");
    got
}

fn meta_packet(data: &[u8]) -> Packet<'_> {
    Packet {
        data,
        len: 1500,
        protocol: 0x86dd,
        pkt_type: 0xfb, // only the low 3 bits are visible
        device: Some(Device { ifindex: 7, hatype: 772 }),
        mark: 0xdead_beef,
        hash: 0x1234_5678,
        queue_mapping: 3,
        vlan: Some(Vlan { tpid: 0x88a8, tci: 0x2064 }),
        mac_offset: Some(2),
        network_offset: 16,
    }
}

#[test]
fn ancillary_loads_read_the_metadata() {
    let data: Vec<u8> = (0..64).collect();
    let p = meta_packet(&data);
    let cases = [
        (skf::AD_PROTOCOL, 0x86dd),
        (skf::AD_PKTTYPE, 3),
        (skf::AD_IFINDEX, 7),
        (skf::AD_HATYPE, 772),
        (skf::AD_MARK, 0xdead_beef),
        (skf::AD_QUEUE, 3),
        (skf::AD_RXHASH, 0x1234_5678),
        (skf::AD_VLAN_TAG, 0x2064),
        (skf::AD_VLAN_TAG_PRESENT, 1),
        (skf::AD_VLAN_TPID, 0x88a8),
    ];
    for (n, want) in cases {
        assert_eq!(both(&[anc(n), RET_A], &p), want, "{}", skf::name(n).unwrap());
        // same through the byte and half-word forms of the load
        let b = [stmt(LD | B | ABS, (skf::AD_OFF + n) as u32), RET_A];
        assert_eq!(both(&b, &p), want, "ldb {}", skf::name(n).unwrap());
    }
    // ld len is skb->len, not the readable length
    assert_eq!(both(&[stmt(LD | W | LEN, 0), RET_A], &p), 1500);
    assert_eq!(both(&[stmt(LDX | W | LEN, 0), stmt(MISC | TXA, 0), RET_A], &p), 1500);
    // A ^= X
    let prog = [stmt(LD | IMM, 10), stmt(LDX | IMM, 300), anc(skf::AD_ALU_XOR_X), RET_A];
    assert_eq!(both(&prog, &p), 10 ^ 300);
    // no VLAN tag: present 0, tci 0
    let p = Packet { vlan: None, ..meta_packet(&data) };
    assert_eq!(both(&[anc(skf::AD_VLAN_TAG_PRESENT), RET_A], &p), 0);
    // a tag with TCI 0 is still present (vlan_all != 0)
    let p = Packet { vlan: Some(Vlan { tpid: 0x8100, tci: 0 }), ..meta_packet(&data) };
    assert_eq!(both(&[anc(skf::AD_VLAN_TAG_PRESENT), RET_A], &p), 1);
}

#[test]
fn device_loads_without_a_device_return_a() {
    let data = [0u8; 20];
    let p = Packet { device: None, ..meta_packet(&data) };
    for n in [skf::AD_IFINDEX, skf::AD_HATYPE] {
        let prog = [stmt(LD | IMM, 42), anc(n), stmt(RET | K, 1)];
        assert_eq!(both(&prog, &p), 42);
    }
}

#[test]
fn cpu_and_random() {
    let data = [0u8; 4];
    let p = Packet::bare(&data);
    let f = Filter::new(&[anc(skf::AD_CPU), RET_A]).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1024, |n| n.get() as u32 * 64);
    assert!(f.run_packet(&mut Stack::new(), &p).unwrap() < cpus);
    let f = Filter::new(&[anc(skf::AD_RANDOM), RET_A]).unwrap();
    let mut s = Stack::new();
    let v: Vec<u32> = (0..16).map(|_| f.run_packet(&mut s, &p).unwrap()).collect();
    assert!(v.windows(2).any(|w| w[0] != w[1]), "{v:?}");
    let r: Vec<u32> = (0..16).map(|_| classic::run(&[anc(skf::AD_RANDOM), RET_A], &data).unwrap()).collect();
    assert!(r.windows(2).any(|w| w[0] != w[1]), "{r:?}");
}

#[test]
fn negative_offsets_are_header_relative() {
    let data: Vec<u8> = (0..64).collect();
    let p = meta_packet(&data); // mac at 2, network at 16
    let ld = |size: u16, k: i32| [stmt(LD | size | ABS, k as u32), RET_A];
    assert_eq!(both(&ld(B, skf::NET_OFF), &p), 16);
    assert_eq!(both(&ld(H, skf::NET_OFF + 4), &p), 0x1415);
    assert_eq!(both(&ld(W, skf::LL_OFF + 1), &p), 0x03040506);
    assert_eq!(both(&ld(B, skf::NET_OFF + 48), &p), 0, "past the end");
    assert_eq!(both(&ld(B, skf::LL_OFF - 1), &p), 0, "below SKF_LL_OFF");
    assert_eq!(both(&ld(B, skf::AD_OFF - 1), &p), 0, "network-relative, far past the end");
    let no_mac = Packet { mac_offset: None, ..meta_packet(&data) };
    assert_eq!(both(&ld(B, skf::LL_OFF), &no_mac), 0);
    // indirect: X + k wraps in 32 bits and may land in the network range
    let prog = [stmt(LDX | IMM, skf::NET_OFF as u32), stmt(LD | H | IND, 2), RET_A];
    assert_eq!(both(&prog, &p), 0x1213);
    let prog = [stmt(LDX | IMM, 0xffff_fff0), stmt(LD | B | IND, 0x14), RET_A];
    assert_eq!(both(&prog, &p), 4);
    // ldxb msh at a network-relative offset preserves A
    let prog = [stmt(LD | IMM, 9), stmt(LDX | B | MSH, (skf::NET_OFF + 1) as u32), stmt(ALU | ADD | X, 0), RET_A];
    assert_eq!(both(&prog, &p), 9 + 4, "byte 17 at network + 1: 4 * (17 & 0xf)");
    // out of bounds msh ends the filter with 0
    let prog = [stmt(LD | IMM, 9), stmt(LDX | B | MSH, 64), RET_A];
    assert_eq!(both(&prog, &p), 0);
}

#[test]
fn division_by_x_zero_returns_zero_and_shifts_mask() {
    let data = [0u8; 4];
    let p = Packet::bare(&data);
    for op in [DIV, MOD] {
        let prog = [stmt(LD | IMM, 100), stmt(LDX | IMM, 0), stmt(ALU | op | X, 0), stmt(RET | K, 7)];
        assert_eq!(both(&prog, &p), 0);
        let prog = [stmt(LD | IMM, 100), stmt(LDX | IMM, 7), stmt(ALU | op | X, 0), RET_A];
        assert_eq!(both(&prog, &p), if op == DIV { 14 } else { 2 });
    }
    // Shifts by X use X & 31 (the kernel's eBPF semantics). libpcap's own
    // interpreter returns 0 for shifts of 32 or more: a known difference.
    let prog = [stmt(LD | IMM, 1), stmt(LDX | IMM, 33), stmt(ALU | LSH | X, 0), RET_A];
    assert_eq!(both(&prog, &p), 2);
    #[cfg(feature = "pcap")]
    assert_eq!(uxdp_cbpf::libpcap::offline_filter(&prog, &data, 4).unwrap(), 0);
    let prog = [stmt(LD | IMM, 0x8000_0000), stmt(LDX | IMM, 63), stmt(ALU | RSH | X, 0), RET_A];
    assert_eq!(both(&prog, &p), 1);
    // neg, and arithmetic wraps in 32 bits
    let prog = [stmt(LD | IMM, 3), stmt(ALU | NEG, 0), stmt(ALU | ADD | K, 1), stmt(ALU | MUL | K, 0x8000_0001), RET_A];
    assert_eq!(both(&prog, &p), 0xfffffffe_u32.wrapping_mul(0x8000_0001));
}

#[test]
fn jumps_compare_unsigned_32_bit() {
    let data = [0u8; 4];
    let p = Packet::bare(&data);
    for (a, k, gt, ge, eq, set) in [
        (0xffff_ffffu32, 0x8000_0000u32, true, true, false, true),
        (5, 5, false, true, true, true),
        (4, 0xffff_fffe, false, false, false, true),
        (0, 0, false, true, true, false),
    ] {
        for (op, want) in [(JGT, gt), (JGE, ge), (JEQ, eq), (JSET, set)] {
            for (jt, jf) in [(0u8, 1u8), (1, 0), (1, 2)] {
                let mut prog = vec![stmt(LD | IMM, a), SockFilter::jump(JMP | op | K, k, jt, jf)];
                // pad so both targets exist: slots 2, 3, 4 return 2, 3, 4
                prog.extend([stmt(RET | K, 2), stmt(RET | K, 3), stmt(RET | K, 4)]);
                let target = 2 + if want { jt } else { jf } as u32;
                assert_eq!(both(&prog, &p), target, "{a:#x} op {op:#x} {k:#x} jt {jt} jf {jf}");
                // the X form
                let mut prog = vec![stmt(LDX | IMM, k), stmt(LD | IMM, a), SockFilter::jump(JMP | op | X, 0, jt, jf)];
                prog.extend([stmt(RET | K, 2), stmt(RET | K, 3), stmt(RET | K, 4)]);
                assert_eq!(both(&prog, &p), target - 2 + 2, "X form");
            }
        }
    }
}

fn ipv4_tcp_frame() -> Vec<u8> {
    let mut f = vec![0u8; 74];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x46; // IHL 6: 4 bytes of options
    f[23] = 6;
    f[38 + 12] = 0x50; // TCP doff 5
    f
}

#[test]
fn payload_offset_dissects_like_the_kernel() {
    let f = ipv4_tcp_frame();
    let prog = [anc(skf::AD_PAY_OFFSET), RET_A];
    assert_eq!(both(&prog, &Packet::ethernet(&f)), 14 + 24 + 20);
    // not IP at all: the kernel's dissector fails and reports 0
    let mut g = f.clone();
    g[12..14].copy_from_slice(&[0x12, 0x34]);
    assert_eq!(both(&prog, &Packet::ethernet(&g)), 0);
    // PPPoE is dissected further by the kernel; uxdp says so by name
    g[12..14].copy_from_slice(&[0x88, 0x64]);
    let e = Filter::new(&prog).unwrap().run(&mut Stack::new(), &g).unwrap_err();
    assert!(e.to_string().contains("PPPoE") && e.to_string().contains("SKF_AD_PAY_OFFSET"), "{e}");
    let e = classic::run(&prog, &g).unwrap_err();
    assert!(matches!(e, CbpfError::PayOffset { pc: 0, .. }), "{e}");
}

#[test]
fn plain_run_uses_the_captured_length_and_ethernet_type() {
    let f = ipv4_tcp_frame();
    let prog = [stmt(LD | W | LEN, 0), stmt(MISC | TAX, 0), anc(skf::AD_PROTOCOL), stmt(ALU | ADD | X, 0), RET_A];
    let filter = Filter::new(&prog).unwrap();
    assert_eq!(filter.run(&mut Stack::new(), &f).unwrap(), 74 + 0x0800);
    assert_eq!(classic::run(&prog, &f).unwrap(), 74 + 0x0800);
    assert!(filter.matches(&mut Stack::new(), &f).unwrap());
    // an empty packet: loads fail, len is 0
    assert_eq!(filter.run(&mut Stack::new(), &[]).unwrap(), 0);
    let ld = Filter::new(&[stmt(LD | B | ABS, 0), stmt(RET | K, 1)]).unwrap();
    assert!(!ld.matches(&mut Stack::new(), &[]).unwrap());
}

#[test]
fn filters_are_shareable_between_threads() {
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<Filter>();
    let filter = std::sync::Arc::new(Filter::new(&[stmt(LD | B | ABS, 23), RET_A]).unwrap());
    let f = ipv4_tcp_frame();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (filter, f) = (filter.clone(), f.clone());
            std::thread::spawn(move || filter.run(&mut Stack::new(), &f).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 6);
    }
}

/// xorshift64*, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_insn(r: &mut Rng, pc: usize, len: usize) -> SockFilter {
    let interesting = [0u32, 1, 2, 12, 14, 23, 31, 32, 63, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];
    let mut k = match r.below(3) {
        0 => interesting[r.below(interesting.len() as u64) as usize],
        1 => r.below(80) as u32,
        _ => r.next() as u32,
    };
    let room = (len - pc - 2) as u64; // instructions between here and the final ret
    let code = match r.below(16) {
        0..=2 => {
            let ops = [ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR];
            let o = ops[r.below(ops.len() as u64) as usize];
            if o == NEG {
                ALU | NEG
            } else {
                let x = if r.below(2) == 0 { X } else { K };
                if x == K && matches!(o, DIV | MOD) && k == 0 {
                    k = 3;
                }
                if x == K && matches!(o, LSH | RSH) {
                    k &= 31;
                }
                ALU | o | x
            }
        }
        3..=5 => {
            let size = [W, H, B][r.below(3) as usize];
            match r.below(6) {
                0 => {
                    k = (skf::NET_OFF + r.below(70) as i32) as u32;
                    LD | size | ABS
                }
                1 => {
                    k = (skf::LL_OFF + r.below(70) as i32) as u32;
                    LD | size | ABS
                }
                2 => {
                    let mut n = 4 * r.below(16) as i32;
                    if n == skf::AD_NLATTR || n == skf::AD_NLATTR_NEST || n == skf::AD_CPU || n == skf::AD_RANDOM {
                        n = skf::AD_PROTOCOL;
                    }
                    k = (skf::AD_OFF + n) as u32;
                    LD | size | ABS
                }
                3 => {
                    k = r.below(70) as u32;
                    LD | size | ABS
                }
                _ => {
                    k = k.wrapping_sub(r.below(2) as u32 * 0x10_0000);
                    LD | size | IND
                }
            }
        }
        6 => {
            k = if r.below(3) == 0 { (skf::NET_OFF + r.below(40) as i32) as u32 } else { r.below(70) as u32 };
            LDX | B | MSH
        }
        7 => [LD | IMM, LDX | IMM, LD | W | LEN, LDX | W | LEN][r.below(4) as usize],
        8 => {
            k = r.below(16) as u32;
            [ST, STX][r.below(2) as usize]
        }
        9 => [MISC | TAX, MISC | TXA][r.below(2) as usize],
        10 if room > 0 => {
            k = r.below(room) as u32;
            JMP | JA
        }
        11..=13 if room > 0 => {
            let ops = [JEQ, JGT, JGE, JSET];
            let x = if r.below(3) == 0 { X } else { K };
            return SockFilter::jump(
                JMP | ops[r.below(4) as usize] | x,
                k,
                r.below(room.min(255) + 1) as u8,
                r.below(room.min(255) + 1) as u8,
            );
        }
        14 => {
            k = r.below(16) as u32;
            // only loads of stored cells pass the checker; store first
            return SockFilter::stmt([LD | MEM, LDX | MEM][r.below(2) as usize], k);
        }
        _ => [RET | K, RET | A][r.below(2) as usize],
    };
    SockFilter::stmt(code, k)
}

#[test]
fn random_programs_agree_with_the_reference_interpreter() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut packets: Vec<Vec<u8>> = vec![ipv4_tcp_frame(), vec![], vec![0x45; 3]];
    for _ in 0..5 {
        let n = r.below(90) as usize;
        packets.push((0..n).map(|_| r.next() as u8).collect());
    }
    let (mut programs, mut runs, mut rejected) = (0, 0, 0);
    let mut stack = Stack::new();
    while programs < 400 {
        let len = 2 + r.below(30) as usize;
        let mut prog: Vec<SockFilter> = (0..len - 1).map(|pc| random_insn(&mut r, pc, len)).collect();
        prog.push(SockFilter::stmt(RET | A, 0));
        let (f, i) = match (Filter::new(&prog), Interpreter::new(&prog)) {
            (Ok(f), Ok(i)) => (f, i),
            (Err(_), Err(_)) => {
                rejected += 1;
                continue;
            }
            (f, i) => panic!("acceptance differs on {prog:?}: {:?} vs {:?}", f.err(), i.err()),
        };
        programs += 1;
        for (n, data) in packets.iter().enumerate() {
            let mut p = meta_packet(data);
            p.network_offset = (n as u32 * 7) % 30;
            if n % 3 == 0 {
                p.device = None;
                p.mac_offset = None;
            }
            let got = f.run_packet(&mut stack, &p);
            let want = i.run(&p);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{prog:?} on packet {n}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{prog:?} on packet {n}: {got:?} vs {want:?}"),
            }
            runs += 1;
        }
    }
    println!("{programs} random programs ({rejected} rejected by the checker), {runs} runs agree");
}
