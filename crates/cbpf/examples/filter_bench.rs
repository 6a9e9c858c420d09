//! Times the three classic-BPF engines over the shared pcap corpus:
//! uxdp (converted eBPF on uxdp-vm), the reference classic interpreter and
//! libpcap's `pcap_offline_filter`.
//!
//! `cargo run --release -p uxdp-cbpf --example filter_bench [-- EXPR [-d]]`
//! (`-d` prints the classic program and its eBPF conversion first).

use std::time::Instant;
use uxdp_cbpf::capture::read_capture;
use uxdp_cbpf::classic::Interpreter;
use uxdp_cbpf::libpcap::{compile, OfflineFilter};
use uxdp_cbpf::{disassemble, Filter, LinkType};
use uxdp_vm::Stack;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let expr = args
        .first()
        .map_or("tcp port 80 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)", String::as_str);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pcaps");
    let mut pkts = Vec::new();
    for e in std::fs::read_dir(dir)? {
        pkts.extend(read_capture(&e?.path())?.into_iter().filter(|p| p.linktype == LinkType::ETHERNET));
    }
    let prog = compile(expr, LinkType::ETHERNET, 262144)?;
    let filter = Filter::new(&prog)?;
    if args.iter().any(|a| a == "-d") {
        print!("{}", disassemble(&prog));
        for i in filter.ebpf() {
            println!("  {}", uxdp_isa::Instruction::decode(core::slice::from_ref(i))?);
        }
    }
    let interp = Interpreter::new(&prog)?;
    let pcap = OfflineFilter::new(&prog)?;
    let mut stack = Stack::new();
    let rounds = 20;
    println!(
        "{expr:?}: {} classic -> {} eBPF instructions, {} packets x {rounds}",
        prog.len(),
        filter.ebpf().len(),
        pkts.len()
    );
    let time = |name: &str, f: &mut dyn FnMut(&uxdp_cbpf::capture::CapturedPacket) -> u32| {
        let t = Instant::now();
        let mut matched = 0u64;
        for _ in 0..rounds {
            for p in &pkts {
                matched += u64::from(f(p) != 0);
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / (rounds * pkts.len()) as f64;
        println!("{name:>10}: {ns:6.1} ns/packet ({} matches per round)", matched / rounds as u64);
    };
    time("uxdp", &mut |p| filter.run_packet(&mut stack, &p.packet()).expect("run"));
    time("classic", &mut |p| interp.run(&p.packet()).expect("run"));
    time("libpcap", &mut |p| pcap.run(&p.data, p.wire_len));
    Ok(())
}
