//! Classic BPF benchmark (issue 7), reproducing the table of
//! ../shared/seeds/004 (the eBPF interpreter's original announcement):
//! nanoseconds per packet on one cache-hot packet for the two libpcap
//! filters it names, on every engine at hand.
//!
//! `cargo bench --bench classic`
//!
//! Rows:
//! * libpcap: libpcap's classic interpreter (`pcap_offline_filter`).
//! * kernel socket filter: the classic program as an eBPF socket filter
//!   (`uxdp_cbpf::to_socket_filter`), JIT-compiled by the kernel when
//!   `net.core.bpf_jit_enable` is 1, timed by `BPF_PROG_TEST_RUN` with
//!   `repeat` (the kernel's own average, which includes its test-run loop;
//!   the first line under the table gives that overhead for an empty
//!   program). Every packet load is a helper call there.
//! * kernel XDP form: `uxdp_cbpf::to_xdp` loaded as an XDP program (direct
//!   packet access), same timing method.
//! * uxdp interpreter: the kernel-style conversion (`uxdp_cbpf::Filter`,
//!   socket-filter semantics, context built per packet).
//! * uxdp interpreter, XDP form: `uxdp_cbpf::XdpFilter`.
//! * uxdp JIT / uxdp JIT, XDP form: the same two programs on uxdp's x86-64
//!   JIT (`uxdp_jit`); the XDP form after uxdp's verifier
//!   (`XdpFilter::jit`), as filters attached to a hook are compiled.
//!
//! Each in-process figure is the best of `ROUNDS` rounds of `ITERS` runs,
//! each kernel figure the best of `KERNEL_ROUNDS` test runs of `KERNEL_REPEAT`
//! repetitions (the machine is shared: the load average is printed).

use std::hint::black_box;
use std::time::Instant;
use uxdp_cbpf::libpcap::{compile, OfflineFilter};
use uxdp_cbpf::{to_socket_filter, to_xdp, Filter, LinkType, SockFilter, XdpFilter, XdpPacket};
use uxdp_kernel::{bench_xdp, load_raw, raw::log_level, test_run_skb, ProgType};
use uxdp_vm::Stack;

const FILTERS: [(&str, &str); 2] = [
    ("fprog #1", "port 22"),
    ("fprog #2", "tcp port 22 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)"),
];
/// Short rounds, many of them: on a shared machine the best round is the
/// one no other process preempted.
const ITERS: u32 = 10_000;
const ROUNDS: usize = 300;
const KERNEL_REPEAT: u32 = 300_000;
const KERNEL_ROUNDS: usize = 25;

/// An Ethernet/IPv4/TCP segment from port 40000 to port 22 with 48 bytes
/// of payload: both filters accept it, on their longest path.
fn ssh_packet() -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]);
    let total: u16 = 20 + 20 + 48;
    p.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
    p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&22u16.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend((0..48).map(|i| i as u8));
    p
}

fn best_ns(mut f: impl FnMut() -> u32) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let mut acc = 0u32;
        for _ in 0..ITERS {
            acc = acc.wrapping_add(f());
        }
        black_box(acc);
        best = best.min(t.elapsed().as_nanos() as f64 / ITERS as f64);
    }
    best
}

/// A cell: a time or why there is none.
enum Cell {
    Ns(f64),
    Na(String),
}

impl Cell {
    fn show(&self) -> String {
        match self {
            Cell::Ns(v) => format!("{v:.1}"),
            Cell::Na(s) => s.clone(),
        }
    }
    fn ns(&self) -> Option<f64> {
        match self {
            Cell::Ns(v) => Some(*v),
            Cell::Na(_) => None,
        }
    }
}

fn kernel_skb(prog: &[SockFilter], pkt: &[u8], want: u32) -> Result<f64, String> {
    uxdp_kernel::availability()?;
    let insns = to_socket_filter(prog).map_err(|e| e.to_string())?;
    let fd = load_raw(&insns, ProgType::SOCKET_FILTER, "GPL", log_level::NONE)
        .map_err(|f| format!("the kernel refuses the socket filter: {}", f.errno))?;
    // BPF_PROG_TEST_RUN pulls the Ethernet header before running a socket
    // filter; a dummy one in front makes the filter see the whole frame.
    let mut data = pkt[..14].to_vec();
    data.extend_from_slice(pkt);
    let mut best = f64::INFINITY;
    for _ in 0..KERNEL_ROUNDS {
        let r = test_run_skb(fd.fd(), &data, KERNEL_REPEAT, None).map_err(|e| e.to_string())?;
        if r.retval != want {
            return Err(format!("kernel socket filter returned {} instead of {want}", r.retval));
        }
        best = best.min(r.duration_ns as f64);
    }
    Ok(best)
}

fn kernel_xdp(insns: &[uxdp_isa::Insn], pkt: &[u8]) -> Result<f64, String> {
    uxdp_kernel::availability()?;
    let fd = load_raw(insns, ProgType::XDP, "GPL", log_level::NONE)
        .map_err(|f| format!("the kernel refuses the XDP form: {}", f.errno))?;
    let mut best = f64::INFINITY;
    for _ in 0..KERNEL_ROUNDS {
        best = best.min(bench_xdp(fd.fd(), pkt, KERNEL_REPEAT).map_err(|e| e.to_string())? as f64);
    }
    Ok(best)
}

/// The kernel's per-run test-run overhead: an empty socket filter and an
/// empty XDP program.
fn kernel_overhead(pkt: &[u8]) -> Result<(f64, f64), String> {
    uxdp_kernel::availability()?;
    let empty = [SockFilter::stmt(uxdp_cbpf::insn::op::RET | uxdp_cbpf::insn::op::K, 1)];
    let skb = kernel_skb(&empty, pkt, 1)?;
    let xdp = kernel_xdp(&to_xdp(&empty, 2, 1).map_err(|e| e.to_string())?, pkt)?;
    Ok((skb, xdp))
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is configurable.
    let pkt = ssh_packet();
    let mut stack = Stack::new();
    let mut xdp_buf = XdpPacket::new().expect("low packet buffer");
    xdp_buf.set(&pkt).expect("packet fits");
    let names = [
        "libpcap (pcap_offline_filter)",
        "kernel socket filter (TEST_RUN)",
        "kernel XDP form (TEST_RUN)",
        "uxdp interpreter",
        "uxdp interpreter, XDP form",
        "uxdp JIT",
        "uxdp JIT, XDP form",
    ];
    let mut table: Vec<Vec<Cell>> = (0..names.len()).map(|_| Vec::new()).collect();
    let mut sizes = Vec::new();
    for (label, expr) in FILTERS {
        let prog = compile(expr, LinkType::ETHERNET, 262144).expect("libpcap compiles the filter");
        let pcap = OfflineFilter::new(&prog).expect("libpcap validates");
        let filter = Filter::new(&prog).expect("uxdp converts");
        let xdp = XdpFilter::new(&prog, 2, 1).expect("uxdp converts to XDP");
        // The engines agree on the packet before anyone is timed.
        let want = pcap.run(&pkt, pkt.len() as u32);
        assert_ne!(want, 0, "{label} must accept the benchmark packet");
        assert_eq!(filter.run(&mut stack, &pkt).expect("run"), want);
        assert_eq!(xdp.run(&mut stack, &xdp_buf).expect("run"), 2);
        sizes.push(format!(
            "{label} = '{expr}': {} classic insns -> {} eBPF (socket conversion), {} eBPF (XDP form)",
            prog.len(),
            filter.ebpf().len(),
            xdp.ebpf().len()
        ));
        table[0].push(Cell::Ns(best_ns(|| pcap.run(black_box(&pkt), pkt.len() as u32))));
        table[1].push(match kernel_skb(&prog, &pkt, want) {
            Ok(v) => Cell::Ns(v),
            Err(e) => Cell::Na(format!("skipped: {e}")),
        });
        table[2].push(match kernel_xdp(xdp.ebpf(), &pkt) {
            Ok(v) => Cell::Ns(v),
            Err(e) => Cell::Na(format!("skipped: {e}")),
        });
        table[3].push(Cell::Ns(best_ns(|| filter.run(&mut stack, black_box(&pkt)).expect("run"))));
        table[4].push(Cell::Ns(best_ns(|| xdp.run(&mut stack, black_box(&xdp_buf)).expect("run"))));
        let jit_filter = Filter::new(&prog).expect("uxdp converts");
        let jit_xdp = XdpFilter::new(&prog, 2, 1).expect("uxdp converts to XDP");
        match uxdp_jit::attach(jit_filter.program()).and_then(|()| jit_xdp.jit()) {
            Ok(verified) => {
                assert!(verified, "uxdp's verifier accepts the XDP form (its packet accesses run unchecked)");
                assert_eq!(jit_filter.run(&mut stack, &pkt).expect("run"), want);
                assert_eq!(jit_xdp.run(&mut stack, &xdp_buf).expect("run"), 2);
                table[5].push(Cell::Ns(best_ns(|| jit_filter.run(&mut stack, black_box(&pkt)).expect("run"))));
                table[6].push(Cell::Ns(best_ns(|| jit_xdp.run(&mut stack, black_box(&xdp_buf)).expect("run"))));
            }
            Err(e) => {
                table[5].push(Cell::Na(format!("n/a: {e}")));
                table[6].push(Cell::Na(format!("n/a: {e}")));
            }
        }
    }
    println!("Classic BPF, ns per packet, one cache-hot {}-byte packet (smaller is better)", pkt.len());
    for s in &sizes {
        println!("  {s}");
    }
    println!();
    println!("| engine | {} | {} |", FILTERS[0].0, FILTERS[1].0);
    println!("|---|---:|---:|");
    for (name, row) in names.iter().zip(&table) {
        println!("| {name} | {} | {} |", row[0].show(), row[1].show());
    }
    println!();
    match kernel_overhead(&pkt) {
        Ok((skb, xdp)) => println!(
            "kernel TEST_RUN overhead (program returning at once): socket filter {skb:.1} ns, XDP {xdp:.1} ns; \
             bpf_jit_enable = {}",
            std::fs::read_to_string("/proc/sys/net/core/bpf_jit_enable").map_or("?".into(), |s| s.trim().to_string())
        ),
        Err(e) => println!("kernel TEST_RUN overhead: skipped: {e}"),
    }
    let empty = [SockFilter::stmt(uxdp_cbpf::insn::op::RET | uxdp_cbpf::insn::op::K, 1)];
    let f = Filter::new(&empty).expect("load");
    let x = XdpFilter::new(&empty, 2, 1).expect("load");
    println!(
        "uxdp per-run overhead (program returning at once): interpreter {:.1} ns, XDP form {:.1} ns",
        best_ns(|| f.run(&mut stack, black_box(&pkt)).expect("run")),
        best_ns(|| x.run(&mut stack, black_box(&xdp_buf)).expect("run"))
    );
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg").map_or("?".into(), |s| s
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "))
    );
    let ratio = |a: &Cell, b: &Cell| match (a.ns(), b.ns()) {
        (Some(x), Some(y)) => format!("{:.2}", x / y),
        _ => "n/a".into(),
    };
    println!();
    println!("ratios (< 1: uxdp faster) | {} | {} |", FILTERS[0].0, FILTERS[1].0);
    for (uname, u) in
        [("uxdp interpreter", 3), ("uxdp interpreter, XDP form", 4), ("uxdp JIT", 5), ("uxdp JIT, XDP form", 6)]
    {
        for (bname, b) in [("libpcap", 0), ("kernel socket filter", 1), ("kernel XDP form", 2)] {
            println!(
                "{uname} / {bname} | {} | {} |",
                ratio(&table[u][0], &table[b][0]),
                ratio(&table[u][1], &table[b][1])
            );
        }
    }
}
