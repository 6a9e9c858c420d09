//! Soundness of the JIT's use of verifier facts: the fuzz input is the byte
//! stream an XDP program and its packets are generated from (see
//! crates/xdp/tests/common_verified/gen.rs); for every verifier mode that
//! accepts the program, the interpreter and the JIT compiled with that
//! mode's proven accesses must give the same return value or error and the
//! same output packet. Run with `cargo +nightly fuzz run verified_diff`.
#![no_main]

#[path = "../../crates/xdp/tests/common_verified/gen.rs"]
mod gen;

thread_local! {
    static CHECKER: std::cell::RefCell<gen::Checker> = std::cell::RefCell::new(gen::Checker::new());
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let case = gen::case(&mut data.iter().copied());
    CHECKER.with(|c| {
        let mut stats = gen::Stats::default();
        if let Err(d) = c.borrow_mut().check(&case, &mut stats) {
            panic!("interpreter and JIT with verifier facts differ: {d}\nprogram:\n{}", gen::listing(&case.insns));
        }
    });
});
