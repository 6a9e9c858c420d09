//! Differential fuzzing of the JIT against the interpreter: the fuzz input
//! is the random stream a program and its memory are generated from (see
//! crates/jit/tests/common/diff.rs); r0 or the error, memory and the budget
//! left must be identical. Run with `cargo +nightly fuzz run jit_diff`.
#![no_main]

#[path = "../../crates/jit/tests/common/diff.rs"]
mod diff;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let diff::Case::Differ(d) = diff::case(&mut diff::Bytes(data)) {
        panic!("interpreter and JIT differ: {d}");
    }
});
