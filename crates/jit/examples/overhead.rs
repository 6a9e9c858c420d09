//! Fixed per-run cost of a trivial program (`mov r0, 0; exit`) on the
//! interpreter and the JIT: `cargo run --release -p uxdp-jit --example overhead`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use uxdp_vm::{Helpers, LoadOptions, Machine, Program, Region, Stack};

fn main() {
    let insns = uxdp_asm::assemble("mov %r0, 0\nexit").expect("assembles");
    let prog = Program::load(&insns, &LoadOptions::new(Arc::new(Helpers::new()))).expect("loads");
    uxdp_jit::attach(&prog).expect("attaches");
    let pkt = [0u8; 64];
    let ctx = [0u64; 2];
    let mut stack = Stack::new();
    for native in [false, true] {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..1_000_000 {
                let mut env = ();
                let mut m = Machine::new(&prog, &mut stack, &mut env);
                m.native = native;
                m.mem.push(Region { start: ctx.as_ptr() as u64, len: 16, writable: false });
                m.mem.push(Region::of_slice(&pkt));
                black_box(m.run(ctx.as_ptr() as u64).expect("runs"));
            }
            best = best.min(t.elapsed().as_nanos() as f64 / 1e6);
        }
        println!("{}: {best:.1} ns per run", if native { "JIT" } else { "interpreter" });
    }
}
