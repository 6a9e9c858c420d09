//! uxdp's JIT against uxdp's interpreter and the `rbpf` crate's JIT, on the
//! same bytecode: the tcpdump filters of `samples/` on a cache-hot packet,
//! a compute loop (xorshift x10,000) and a memory loop (byte sum over a
//! 1,500-byte packet, every load bounds-checked). Prints ns per run (best
//! of 5 rounds, including the per-run `Machine` setup for uxdp) and the
//! ratios, then the JIT's compile time per instruction.
//!
//! Run with `cargo bench -p uxdp-jit --bench jit`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use uxdp_vm::{Helpers, LoadOptions, Machine, Program, Region, Stack};

const PORT22: &str = include_str!("../../../samples/port22.s");
const SSH_PAYLOAD: &str = include_str!("../../../samples/ssh_payload.s");

/// xorshift64 for 10,000 rounds; r1 (the context) is ignored.
const COMPUTE: &str = include_str!("../../../samples/xorshift.s");

/// Sum of all packet bytes, one byte load per iteration, with a bounds check.
const MEMSUM: &str = include_str!("../../../samples/memsum.s");

#[repr(C)]
struct Ctx {
    data: u64,
    data_end: u64,
}

/// IPv4 TCP 40000 -> 22 with 21 bytes of payload (the first packet of samples/sample.pcap).
fn packet_ssh() -> Vec<u8> {
    let mut p = vec![0u8; 14 + 20 + 20 + 21];
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    p[14] = 0x45;
    let ip_len = p.len() as u16 - 14;
    p[16..18].copy_from_slice(&ip_len.to_be_bytes());
    p[23] = 6;
    p[34..36].copy_from_slice(&40000u16.to_be_bytes());
    p[36..38].copy_from_slice(&22u16.to_be_bytes());
    p[46] = 0x50;
    p[54..].copy_from_slice(b"SSH-2.0-OpenSSH_9.6\r\n");
    p
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

fn uxdp_run(prog: &Program, stack: &mut Stack, ctx_addr: u64, pkt: &[u8], native: bool) -> u64 {
    let mut env = ();
    let mut m = Machine::new(prog, stack, &mut env);
    m.native = native;
    m.mem.push(Region { start: ctx_addr, len: 16, writable: false });
    m.mem.push(Region::of_slice(pkt));
    m.run(ctx_addr).expect("runs")
}

fn main() {
    let ssh = packet_ssh();
    let big: Vec<u8> = (0..1500u32).map(|i| (i * 7 + 3) as u8).collect();
    let cases: [(&str, &str, &[u8], u32); 4] = [
        ("tcpdump 'port 22'", PORT22, &ssh, 2_000_000),
        ("tcpdump ssh payload filter", SSH_PAYLOAD, &ssh, 2_000_000),
        ("compute loop (xorshift x10k)", COMPUTE, &ssh, 500),
        ("memory loop (sum 1500 bytes)", MEMSUM, &big, 5_000),
    ];
    println!("uxdp JIT vs uxdp interpreter vs rbpf 0.4 JIT (ns per run, best of 5 rounds; lower is better)");
    println!(
        "{:<30} {:>11} {:>11} {:>11} {:>10} {:>10}",
        "program", "interp", "uxdp JIT", "rbpf JIT", "JIT/interp", "JIT/rbpf"
    );
    let mut compile_ns = 0f64;
    let mut compiled_insns = 0usize;
    let mut code_bytes = 0usize;
    for (name, src, pkt, iters) in cases {
        let insns = uxdp_asm::assemble(src).expect("assembles");
        let bytes = uxdp_isa::insn::to_bytes(&insns);
        let prog = Program::load(&insns, &LoadOptions::new(Arc::new(Helpers::new()))).expect("loads");
        let ctx = Ctx { data: pkt.as_ptr() as u64, data_end: pkt.as_ptr() as u64 + pkt.len() as u64 };
        let ctx_addr = &ctx as *const Ctx as u64;
        let mut stack = Stack::new();

        let (it, r_it) = time_per_run(|| uxdp_run(&prog, &mut stack, ctx_addr, pkt, false), iters);

        // Compile time: best of 200 compilations.
        let mut best = f64::MAX;
        for _ in 0..200 {
            let t = Instant::now();
            let jp = uxdp_jit::compile(&prog, &uxdp_jit::JitOptions::default()).expect("compiles");
            best = best.min(t.elapsed().as_nanos() as f64);
            code_bytes = code_bytes.max(black_box(jp.code_size()));
        }
        compile_ns += best;
        println!(
            "  ({name}: {} instructions -> {code_bytes} bytes of code, compiled in {:.1} us)",
            insns.len(),
            best / 1000.0
        );
        code_bytes = 0;
        compiled_insns += insns.len();
        uxdp_jit::attach(&prog).expect("attaches");
        let (jt, r_jt) = time_per_run(|| uxdp_run(&prog, &mut stack, ctx_addr, pkt, true), iters);

        let mut vm = rbpf::EbpfVmMbuff::new(Some(&bytes)).expect("rbpf accepts the program");
        vm.jit_compile().expect("rbpf JIT compiles");
        let mut mbuff = [0u8; 16];
        mbuff[..8].copy_from_slice(&ctx.data.to_le_bytes());
        mbuff[8..].copy_from_slice(&ctx.data_end.to_le_bytes());
        let mut pkt_copy = pkt.to_vec();
        // SAFETY: rbpf's JIT code reads the packet and metadata buffers it is given.
        let (rb, r_rb) =
            time_per_run(|| unsafe { vm.execute_program_jit(&mut pkt_copy, &mut mbuff) }.expect("rbpf runs"), iters);

        assert_eq!(r_it, r_jt, "{name}: interpreter and JIT disagree");
        assert_eq!(r_jt, r_rb, "{name}: uxdp and rbpf disagree");
        println!("{name:<30} {it:>11.1} {jt:>11.1} {rb:>11.1} {:>10.3} {:>10.3}", jt / it, jt / rb);
    }
    println!(
        "JIT compile time: {:.0} ns per instruction ({compiled_insns} instructions, including mmap/mprotect)",
        compile_ns / compiled_insns as f64
    );
}
