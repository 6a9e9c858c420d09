//! uxdp's interpreter against the `rbpf` crate's interpreter, on the same
//! bytecode, in the same run.
//!
//! Programs: the two tcpdump filters of ../shared/seeds/004 converted to
//! eBPF (`samples/*.s`) on a cache-hot packet, a compute loop (xorshift over
//! 10,000 iterations) and a memory loop (byte-sum over a 1,500-byte packet).
//! Prints ns per run for both and the ratio uxdp / rbpf (target <= 0.5).
//!
//! Run with `cargo bench --bench interpreter`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use uxdp_vm::{Helpers, LoadOptions, Machine, Program, Region, Stack};

const PORT22: &str = include_str!("../samples/port22.s");
const SSH_PAYLOAD: &str = include_str!("../samples/ssh_payload.s");

/// xorshift64 for 10,000 rounds; r1 (the context) is ignored.
const COMPUTE: &str = include_str!("../samples/xorshift.s");

/// Sum of all packet bytes, one byte load per iteration, with a bounds check.
const MEMSUM: &str = include_str!("../samples/memsum.s");

#[repr(C)]
struct Ctx {
    data: u64,
    data_end: u64,
}

fn packet_ssh() -> Vec<u8> {
    // The first packet of samples/sample.pcap: IPv4 TCP 40000 -> 22 with 21 bytes of payload.
    let pcap = include_bytes!("../samples/sample.pcap");
    let mut r = pcap_file::pcap::PcapReader::new(&pcap[..]).unwrap();
    r.next_packet().unwrap().unwrap().data.into_owned()
}

fn time_per_run(mut f: impl FnMut() -> u64, iters: u32) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut r0 = 0;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..iters {
            r0 = black_box(f());
        }
        best = best.min(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    (best, r0)
}

fn main() {
    let ssh = packet_ssh();
    let big: Vec<u8> = (0..1500u32).map(|i| (i * 7 + 3) as u8).collect();
    let cases: [(&str, &str, &[u8], u32); 4] = [
        ("tcpdump 'port 22'", PORT22, &ssh, 2_000_000),
        ("tcpdump ssh payload filter", SSH_PAYLOAD, &ssh, 2_000_000),
        ("compute loop (xorshift x10k)", COMPUTE, &ssh, 200),
        ("memory loop (sum 1500 bytes)", MEMSUM, &big, 2_000),
    ];
    println!("uxdp interpreter vs rbpf 0.4 interpreter (best of 5 rounds; lower is better)");
    println!("{:<30} {:>14} {:>14} {:>10}", "program", "uxdp ns/run", "rbpf ns/run", "uxdp/rbpf");
    let mut worst: f64 = 0.0;
    for (name, src, pkt, iters) in cases {
        let insns = uxdp_asm::assemble(src).expect("assembles");
        let bytes = uxdp_isa::insn::to_bytes(&insns);

        // uxdp
        let prog = Program::load(&insns, &LoadOptions::new(Arc::new(Helpers::new()))).expect("loads");
        let mut stack = Stack::new();
        let ctx = Ctx { data: pkt.as_ptr() as u64, data_end: pkt.as_ptr() as u64 + pkt.len() as u64 };
        let ctx_addr = &ctx as *const Ctx as u64;
        let (ux, r_ux) = time_per_run(
            || {
                let mut env = ();
                let mut m = Machine::new(&prog, &mut stack, &mut env);
                m.mem.push(Region { start: ctx_addr, len: 16, writable: false });
                m.mem.push(Region::of_slice(pkt));
                m.run(ctx_addr).expect("runs")
            },
            iters,
        );

        // rbpf: the metadata buffer holds the same { data, data_end } pair.
        let vm = rbpf::EbpfVmMbuff::new(Some(&bytes)).expect("rbpf accepts the program");
        let mut mbuff = [0u8; 16];
        mbuff[..8].copy_from_slice(&ctx.data.to_le_bytes());
        mbuff[8..].copy_from_slice(&ctx.data_end.to_le_bytes());
        let (rb, r_rb) = time_per_run(|| vm.execute_program(pkt, &mbuff).expect("rbpf runs"), iters);

        assert_eq!(r_ux, r_rb, "{name}: uxdp and rbpf disagree");
        let ratio = ux / rb;
        worst = worst.max(ratio);
        println!("{name:<30} {ux:>14.1} {rb:>14.1} {ratio:>10.3}");
    }
    println!("worst uxdp/rbpf ratio: {worst:.3} (target <= 0.5)");
}
