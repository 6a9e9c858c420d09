//! Chain cost: ns per packet for chains of 1, 2, 10, 100, 1000 pass-through
//! programs (`r0 = XDP_PASS; exit`), the cost per additional program, the
//! single-program overhead against a bare `Runner::exec`, the cost of
//! statistics, and the kernel running a tail-call chain of the same length
//! (`TailCallChain`, up to its 32-program limit) in the same run.
//!
//! `cargo bench -p uxdp-chain --bench chain` (add `-- --quick` for a short
//! run, `-- --interpreter` to run the programs on the interpreter instead of
//! the JIT).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uxdp_chain::{AttachOptions, ChainProgram, Hook, StatsLevel, DISPATCHER_RETVAL};
use uxdp_isa::Insn;
use uxdp_object::RunConfig;
use uxdp_vm::{LoadOptions, Program};
use uxdp_xdp::{LoadedObject, MapTable, ProgTable, Runner, TestInput};

const LENGTHS: [usize; 6] = [1, 2, 10, 32, 100, 1000];

fn pass_insns() -> [Insn; 2] {
    [Insn::new(0xb7, 0, 0, 0, 2), Insn::new(0x95, 0, 0, 0, 0)]
}

/// Calls per timed batch so that one batch of `f` takes about `target`.
fn batch_for(target: Duration, f: &mut dyn FnMut()) -> u64 {
    let mut batch = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        if t.elapsed() >= target || batch >= 1 << 30 {
            return batch;
        }
        batch *= 2;
    }
}

/// Times the variants in alternation (round-robin, `rounds` rounds of one
/// batch each) and returns the best ns per call of each: interleaving keeps
/// a noisy machine from favouring one variant.
fn measure_interleaved(rounds: usize, per_batch: Duration, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    // Untimed warm-up: runs right after the kernel's test-run syscalls are
    // slower for a few milliseconds on this machine.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(20) {
        for f in fs.iter_mut() {
            f();
        }
    }
    let batches: Vec<u64> = fs.iter_mut().map(|f| batch_for(per_batch, &mut **f)).collect();
    let mut best = vec![f64::INFINITY; fs.len()];
    for _ in 0..rounds {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..batches[i] {
                f();
            }
            best[i] = best[i].min(t.elapsed().as_nanos() as f64 / batches[i] as f64);
        }
    }
    best
}

struct Kernel {
    prog: uxdp_kernel::LoadedProg,
}

fn kernel() -> Result<Kernel, String> {
    uxdp_kernel::availability()?;
    let prog = uxdp_kernel::load_raw(&pass_insns(), uxdp_kernel::ProgType::XDP, "GPL", 0)
        .map_err(|e| format!("loading the pass program: errno {}", e.errno))?;
    Ok(Kernel { prog })
}

impl Kernel {
    fn bare(&self, pkt: &[u8], repeat: u32) -> Result<f64, String> {
        uxdp_kernel::bench_xdp(self.prog.fd(), pkt, repeat).map(|ns| ns as f64).map_err(|e| e.to_string())
    }

    fn chain(&self, n: usize, pkt: &[u8], repeat: u32) -> Result<f64, String> {
        if n > uxdp_kernel::chain::MAX_CHAIN_PROGS {
            return Err("n/a".into());
        }
        let fds = vec![self.prog.fd(); n];
        let masks = vec![uxdp_kernel::DEFAULT_CHAIN_ACTIONS | (1 << DISPATCHER_RETVAL); n];
        let chain = uxdp_kernel::TailCallChain::new(&fds, &masks).map_err(|e| e.to_string())?;
        // best of 3
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let ns = uxdp_kernel::bench_xdp(chain.fd(), pkt, repeat).map_err(|e| e.to_string())?;
            best = best.min(ns as f64);
        }
        Ok(best)
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, per_batch, krepeat) =
        if quick { (30, Duration::from_millis(1), 200_000) } else { (300, Duration::from_millis(1), 2_000_000) };

    let helpers = Arc::new(uxdp_xdp::helpers::xdp_helpers());
    let program = Arc::new(Program::load(&pass_insns(), &LoadOptions::new(helpers)).expect("pass program"));
    // The JIT is the default engine; `--interpreter` measures the other.
    let interpreter = std::env::args().any(|a| a == "--interpreter");
    if !interpreter {
        uxdp_jit::attach(&program).expect("JIT");
    }
    let (maps, progs) = (Arc::new(MapTable::default()), Arc::new(ProgTable::default()));
    // `Runner::new` wants an object; any will do (a hook switches the runner
    // to each entry's tables, and the bare runs below use the same ones).
    let obj_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/objects/xdp-tools-1.3.1/xsk_def_xdp_prog.o");
    let obj = LoadedObject::from_file(&obj_path).expect("runner object");
    let pass = ChainProgram::new("pass", program.clone(), maps.clone(), progs.clone(), RunConfig::default());
    let mut runner = Runner::new(&obj).expect("runner");
    runner.use_tables(&maps, &progs);
    let pkt = [0u8; 64];
    let input = TestInput::new(&pkt, None).expect("input");

    // The packet is loaded once: pass-through programs leave it as it is,
    // so every run sees the same input and only the chain is timed.
    runner.load(&input).expect("load");
    let load_only =
        measure_interleaved(rounds, per_batch, &mut [&mut || runner.load(black_box(&input)).expect("load")])[0];

    let kernel = kernel();
    let kernel_bare = kernel.as_ref().map_err(|e| e.clone()).and_then(|k| k.bare(&pkt, krepeat));

    let engine = if interpreter { "interpreter" } else { "JIT" };
    println!(
        "uxdp-chain benchmark: pass-through programs on the {engine}, 64-byte packet, best of {rounds} interleaved rounds"
    );
    println!("uxdp: Runner::load (not in the figures below) {load_only:.1} ns per packet");
    match &kernel_bare {
        Ok(ns) => println!("kernel: one XDP_PASS program via BPF_PROG_TEST_RUN {ns:.0} ns/run (harness included)"),
        Err(e) => println!("kernel: n/a ({e})"),
    }
    println!();
    println!(
        "{:>5} | {:>9} | {:>9} {:>9} {:>9} {:>9} | {:>9} | {:>8} | {:>8} {:>8}",
        "progs", "bare", "off", "counters", "sampled", "timed", "Hook::exec", "+/prog", "kernel", "+/prog"
    );
    println!("{}", "-".repeat(108));
    const LEVELS: [StatsLevel; 4] = [StatsLevel::Off, StatsLevel::Counters, StatsLevel::Sampled, StatsLevel::Timed];
    let mut first: Option<Vec<f64>> = None;
    let mut last: Vec<f64> = Vec::new();
    let mut first_kernel = None;
    let mut aa: Option<f64> = None;
    for &n in &LENGTHS {
        let make = |level| {
            let h = Hook::with_max_programs("bench", n);
            h.update(None, |tx| {
                for _ in 0..n {
                    tx.attach(pass.clone(), AttachOptions::default())?;
                }
                Ok(())
            })
            .expect("chain");
            h.set_stats_level(level);
            Arc::new(h)
        };
        let hooks: Vec<Arc<Hook>> = LEVELS.iter().map(|&l| make(l)).collect();
        let mut readers: Vec<_> = hooks.iter().map(|h| h.reader()).collect();
        let plain = make(StatsLevel::Off);
        let r = std::cell::RefCell::new(&mut runner);
        let prog = &program;
        let mut fs: Vec<Box<dyn FnMut() + '_>> = Vec::new();
        // n bare Runner::exec calls: what the chain costs without a hook
        fs.push(Box::new(|| {
            let mut r = r.borrow_mut();
            for _ in 0..n {
                black_box(r.exec(black_box(prog)).expect("exec"));
            }
        }));
        for reader in readers.iter_mut() {
            let r = &r;
            fs.push(Box::new(move || {
                black_box(reader.exec(&mut r.borrow_mut()).expect("chain"));
            }));
        }
        fs.push(Box::new(|| {
            black_box(plain.exec(&mut r.borrow_mut()).expect("chain"));
        }));
        if n == 1 {
            // The bare run again: how far apart two identical loops measure
            // (the noise floor for the single-program overhead).
            fs.push(Box::new(|| {
                let mut r = r.borrow_mut();
                black_box(r.exec(black_box(prog)).expect("exec"));
            }));
        }
        let mut refs: Vec<&mut dyn FnMut()> = fs.iter_mut().map(|f| &mut **f as &mut dyn FnMut()).collect();
        let m = measure_interleaved(rounds, per_batch, &mut refs);
        drop(refs);
        drop(fs);
        let per = match &first {
            Some(f) => format!("{:.2}", (m[1] - f[1]) / (n - 1) as f64),
            None => "-".into(),
        };
        let k = kernel.as_ref().map_err(|e| e.clone()).and_then(|k| k.chain(n, &pkt, krepeat));
        let (kcol, kper) = match &k {
            Ok(ns) => {
                if n == 1 {
                    first_kernel = Some(*ns);
                }
                let per = match (n, first_kernel) {
                    (2.., Some(f)) => format!("{:.2}", (ns - f) / (n - 1) as f64),
                    _ => "-".into(),
                };
                (format!("{ns:.0}"), per)
            }
            Err(_) => ("n/a".into(), "n/a".into()),
        };
        println!(
            "{n:>5} | {:>9.1} | {:>9.1} {:>9.1} {:>9.1} {:>9.1} | {:>10.1} | {per:>8} | {kcol:>8} {kper:>8}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        if first.is_none() {
            aa = m.get(6).map(|again| again - m[0]);
            first = Some(m.clone());
        }
        last = m;
    }
    if let Err(e) = &kernel {
        println!("kernel columns n/a: {e}");
    }
    println!();
    println!("ns per packet, chain only (the packet is loaded once; pass-through programs leave it unchanged).");
    println!("bare: n x Runner::exec without a hook. off/counters/sampled/timed: HookReader::exec at that StatsLevel.");
    println!(
        "Hook::exec: stats off, snapshot loaded through arc-swap each packet. +/prog: (off(n) - off(1)) / (n - 1)."
    );
    println!(
        "kernel: BPF_PROG_TEST_RUN duration of a TailCallChain dispatcher (harness included), n/a beyond its {}-program limit.",
        uxdp_kernel::chain::MAX_CHAIN_PROGS
    );
    let f = first.expect("rows");
    println!();
    println!(
        "per additional program (1 -> 1000): bare {:.2} ns; hook: off {:.2}, counters {:.2}, sampled {:.2}, timed {:.2} ns",
        (last[0] - f[0]) / 999.0,
        (last[1] - f[1]) / 999.0,
        (last[2] - f[2]) / 999.0,
        (last[3] - f[3]) / 999.0,
        (last[4] - f[4]) / 999.0
    );
    println!(
        "single-program hook vs bare Runner::exec ({:.1} ns): reader off {:+.1} ns, counters {:+.1} ns, sampled {:+.1} ns, \
         timed {:+.1} ns; Hook::exec (arc-swap load) {:+.1} ns",
        f[0],
        f[1] - f[0],
        f[2] - f[0],
        f[3] - f[0],
        f[4] - f[0],
        f[5] - f[0]
    );
    if let Some(aa) = aa {
        println!(
            "noise floor: the same bare loop measured twice in the same rounds differs by {aa:+.1} ns \
             (single-program reader overhead {:+.1} ns)",
            f[1] - f[0]
        );
    }
}
