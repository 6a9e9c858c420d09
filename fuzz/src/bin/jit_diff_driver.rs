//! Runs the `jit_diff` fuzz target's check on N pseudo-random inputs
//! without libFuzzer: `cargo run --release --bin jit_diff_driver -- N [first_seed]`.
//! Prints the number of executions and the outcome kinds; exits non-zero
//! on the first divergence.

#[path = "../../../crates/jit/tests/common/diff.rs"]
mod diff;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let first: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let mut kinds = std::collections::BTreeMap::new();
    let t = std::time::Instant::now();
    for seed in first..first + n {
        let mut r = diff::XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xfeed_f00d);
        match diff::case(&mut r) {
            diff::Case::Same(k) => *kinds.entry(k).or_insert(0u64) += 1,
            diff::Case::Invalid => *kinds.entry("invalid").or_insert(0u64) += 1,
            diff::Case::Differ(d) => {
                eprintln!("seed {seed}: {d}");
                std::process::exit(1);
            }
        }
        if (seed - first + 1) % 1_000_000 == 0 {
            eprintln!("{} cases, {:.0?}", seed - first + 1, t.elapsed());
        }
    }
    println!(
        "jit_diff_driver: {n} executions (seeds {first}..{}), no divergence, {:.1?}; outcomes: {kinds:?}",
        first + n,
        t.elapsed()
    );
}
