//! Random programs on the interpreter and the JIT: r0 (or the error, with
//! its instruction index), memory and remaining budget must be identical.

mod common;
use common::diff::{case, Case, XorShift};

#[test]
fn random_programs_agree() {
    let n: u64 = std::env::var("UXDP_JIT_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 5_000 } else { 50_000 });
    let (mut same, mut invalid) = (0u64, 0u64);
    let mut kinds = std::collections::BTreeMap::new();
    let trace = std::env::var_os("UXDP_JIT_DIFF_TRACE").is_some();
    for seed in 0..n {
        let mut r = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234_5678);
        if trace {
            let p = common::diff::program(&mut r.clone());
            eprintln!("seed {seed}:");
            for (i, x) in p.iter().enumerate() {
                eprintln!("  {i:3}: {x:?}");
            }
        }
        match case(&mut r) {
            Case::Same(k) => {
                same += 1;
                *kinds.entry(k).or_insert(0u64) += 1;
            }
            Case::Invalid => invalid += 1,
            Case::Differ(d) => panic!("seed {seed}: {d}"),
        }
    }
    println!("differential: {same} programs agreed, {invalid} rejected by validation; outcomes: {kinds:?}");
    // Every outcome kind the generator aims at must actually occur.
    for k in ["ok", "memory fault", "misaligned", "call depth", "budget", "bad callx", "helper error"] {
        assert!(kinds.contains_key(k), "no case ended with {k}: {kinds:?}");
    }
    assert!(same > n * 9 / 10, "too many invalid programs: {invalid} of {n}");
}
