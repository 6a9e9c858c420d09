//! The JIT's use of verifier facts is sound: random XDP programs the
//! verifier accepts (strict or permissive) give the same return value or
//! error and the same output packet on the interpreter, which checks every
//! access, and on the JIT compiled with the verifier's `Facts::proven`
//! (accesses emitted without run-time checks) and, for strict acceptance,
//! `terminates`. The generator and the comparison live in
//! `common_verified/gen.rs`, shared with the `verified_diff` fuzz target.

#[path = "common_verified/gen.rs"]
mod gen;

use gen::{alu, alux, ldx, st, stx, ADD, ALU64, CTX, EXIT, FP, JGT, JMP, MOV, X};
use uxdp_isa::Insn;
use uxdp_verifier::{Mode, ProgType, VerifyInput};

/// Seeded cases (fast enough for a debug build on 2 cores).
const CASES: u64 = 4000;

#[test]
fn jit_with_verifier_facts_matches_the_interpreter() {
    if !uxdp_jit::available() {
        return;
    }
    let mut checker = gen::Checker::new();
    let mut stats = gen::Stats::default();
    // VDIFF_SEEDS=first..end overrides the seeds (for longer runs);
    // VDIFF_TRACE=1 prints each seed before running it.
    let seeds = std::env::var("VDIFF_SEEDS")
        .ok()
        .and_then(|s| s.split_once("..").and_then(|(a, b)| Some(a.parse::<u64>().ok()?..b.parse::<u64>().ok()?)))
        .unwrap_or(0..CASES);
    let trace = std::env::var_os("VDIFF_TRACE").is_some();
    let mut slowest = (0, std::time::Duration::ZERO);
    for seed in seeds {
        if trace {
            eprintln!("seed {seed}");
        }
        let started = std::time::Instant::now();
        let case = gen::case(&mut gen::XorShift::new(seed));
        if trace {
            eprintln!("sloppy: {}\n{}", case.sloppy, gen::listing(&case.insns));
            for mode in [Mode::Strict, Mode::Permissive] {
                let input = VerifyInput::new(&case.insns, ProgType::Xdp, &[]).mode(mode);
                match uxdp_verifier::verify(&input) {
                    Ok(f) => eprintln!(
                        "{mode:?}: accepted, proven {:?}",
                        f.proven.iter().enumerate().filter(|p| *p.1).map(|p| p.0).collect::<Vec<_>>()
                    ),
                    Err(e) => eprintln!("{mode:?}: {e}"),
                }
            }
        }
        if let Err(d) = checker.check(&case, &mut stats) {
            panic!("seed {seed}: {d}\nprogram:\n{}", gen::listing(&case.insns));
        }
        let took = started.elapsed();
        if took > slowest.1 {
            slowest = (seed, took);
        }
    }
    println!("verified_diff: {stats:?}; slowest case: seed {} ({:?})", slowest.0, slowest.1);
    // The generator must keep producing programs the verifier accepts, and
    // accesses it proves.
    assert!(stats.strict * 5 >= stats.generated, "strict acceptance too low: {stats:?}");
    assert!(stats.compared > 0 && stats.runs > 0 && stats.proven > 0, "{stats:?}");
}

/// `r6 = ctx`, `r7 = data`, `r8 = data_end`, `r0 = XDP_PASS`, `r5 = data +
/// 9` and a jump over `skip` instructions when `r5 > data_end` (slots 0-6).
fn checked_data_plus_9(skip: i16) -> Vec<Insn> {
    vec![
        alux(ALU64, MOV, CTX, 1),
        ldx(4, 7, CTX, 0),
        ldx(4, 8, CTX, 4),
        alu(ALU64, MOV, 0, 2),
        alux(ALU64, MOV, 5, 7),
        alu(ALU64, ADD, 5, 9),
        Insn::new(JMP | JGT | X, 5, 8, skip, 0),
    ]
}

/// `r5 = data + 9` checked against `data_end`, spilled to `r10 + slot`;
/// then `clobber`, a fill into r3 and a 4-byte store at `r3 - 5` (in
/// bounds only if r3 still is the checked pointer). Returns the program
/// and the index of that store.
fn spill_clobber_fill(slot: i32, clobber: &[Insn]) -> (Vec<Insn>, usize) {
    let mut p = checked_data_plus_9(0);
    p.push(stx(8, FP, 5, slot));
    p.extend_from_slice(clobber);
    p.push(ldx(8, 3, FP, slot));
    let store = p.len();
    p.push(st(4, 3, -5, 0));
    p[6].off = (p.len() - 7) as i16;
    p.push(Insn::new(EXIT, 0, 0, 0, 0));
    (p, store)
}

/// `xdp_load_bytes(ctx, 0, r10 + at, len)` (writes `len` packet bytes to
/// the stack; r1-r5 are clobbered, r6 keeps the context).
fn load_bytes_to(at: i32, len: i32) -> Vec<Insn> {
    vec![
        alux(ALU64, MOV, 1, CTX),
        alu(ALU64, MOV, 2, 0),
        alux(ALU64, MOV, 3, FP),
        alu(ALU64, ADD, 3, at),
        alu(ALU64, MOV, 4, len),
        Insn::new(gen::CALL, 0, 0, 0, 189),
    ]
}

/// Found by this test's generator (seed 1035 before the generator learnt
/// to avoid it): in permissive mode, a stack write the verifier cannot
/// prove (misaligned, partly outside the frame, unbounded or partly
/// out-of-frame variable offset, misaligned atomic, a helper writing a
/// stack buffer that sticks out of the frame) is left to the run-time
/// check but its effect on the abstract stack is dropped
/// (crates/verifier/src/check.rs, the stack access function returns right
/// after `mem_fail` without clobbering the slots the write may touch). At
/// run time the write lands in the stack (the run-time check only confines
/// it to the whole stack memory), so the spilled pointer is corrupted while
/// the verifier still trusts the fill, and the JIT emits the store through
/// it unchecked: a write to a wild address (SIGSEGV in the seeded run).
/// Every variant below must leave the store through the filled register
/// unproven (or be rejected).
#[test]
fn permissive_unproven_stack_writes_clobber_spills() {
    let ifindex = ldx(4, 1, CTX, 16);
    let variants: Vec<(&str, i32, Vec<Insn>)> = vec![
        ("misaligned 4-byte store into the spill", -32, vec![st(4, FP, -31, 1)]),
        ("misaligned 2-byte store into the spill", -32, vec![st(2, FP, -27, 1)]),
        ("8-byte store straddling the spill from below", -32, vec![st(8, FP, -33, 1)]),
        ("store partly above the frame", -8, vec![st(8, FP, -4, 1)]),
        ("store partly below the frame", -512, vec![st(8, FP, -516, 1)]),
        (
            "unbounded variable-offset store",
            -32,
            vec![ifindex, alux(ALU64, MOV, 2, FP), alux(ALU64, ADD, 2, 1), st(8, 2, -32, 1)],
        ),
        (
            "variable-offset store partly above the frame",
            -32,
            vec![
                ifindex,
                alu(ALU64, gen::AND, 1, 0x3f),
                alux(ALU64, MOV, 2, FP),
                alux(ALU64, ADD, 2, 1),
                st(1, 2, -32, 1),
            ],
        ),
        ("misaligned atomic add", -32, vec![alu(ALU64, MOV, 1, 1), Insn::new(0xc3, FP, 1, -30, 0)]),
        ("xdp_load_bytes into the spill, misaligned", -32, load_bytes_to(-31, 4)),
        ("xdp_load_bytes partly below the frame", -512, load_bytes_to(-520, 16)),
        ("xdp_load_bytes partly above the frame", -8, load_bytes_to(-4, 8)),
    ];
    let mut wrong = Vec::new();
    for (name, slot, clobber) in &variants {
        let (p, store) = spill_clobber_fill(*slot, clobber);
        for mode in [Mode::Strict, Mode::Permissive] {
            if let Ok(f) = uxdp_verifier::verify(&VerifyInput::new(&p, ProgType::Xdp, &[]).mode(mode)) {
                if f.proven[store] {
                    wrong.push(format!("{mode:?}: {name}: instruction {store} proven\n{}", gen::listing(&p)));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "stores through a clobbered spill proven in bounds:\n{}", wrong.join("\n"));
}

/// The same bug observed end to end without a wild write: a constant 0
/// spilled to the stack, 0x0001 stored over its bytes 1-2 by a misaligned
/// store, the fill (0x100 at run time, 0 for the verifier) added to
/// `data`, and a byte loaded there. The interpreter faults (256 bytes past
/// `data` is outside a 64-byte packet); the JIT, told the load is proven,
/// reads the frame's tailroom and returns 0.
#[test]
fn permissive_misaligned_store_over_spilled_constant_matches_the_interpreter() {
    if !uxdp_jit::available() {
        return;
    }
    let p = vec![
        alux(ALU64, MOV, CTX, 1),
        ldx(4, 7, CTX, 0),
        ldx(4, 8, CTX, 4),
        alu(ALU64, MOV, 0, 2),
        alux(ALU64, MOV, 4, 7),
        alu(ALU64, ADD, 4, 8),
        Insn::new(JMP | JGT | X, 4, 8, 7, 0), // -> exit
        alu(ALU64, MOV, 3, 0),
        stx(8, FP, 3, -32),
        st(2, FP, -31, 1), // misaligned: unproven, but runs
        ldx(8, 3, FP, -32),
        alux(ALU64, MOV, 5, 7),
        alux(ALU64, ADD, 5, 3),
        ldx(1, 0, 5, 0), // 13: wrongly proven
        Insn::new(EXIT, 0, 0, 0, 0),
    ];
    // Permissive mode now forgets the spill after the misaligned store, so
    // the fill is an unknown scalar and adding it to a packet pointer is
    // refused. Were it accepted, the JIT would have to agree with the
    // interpreter, with instruction 13 not proven.
    let Ok(facts) = uxdp_verifier::verify(&VerifyInput::new(&p, ProgType::Xdp, &[]).mode(Mode::Permissive)) else {
        return;
    };
    assert!(!facts.proven[13], "instruction 13 proven:\n{}", gen::listing(&p));
    let case = gen::Case { insns: p.clone(), packets: vec![(vec![0xab; 64], 0)], sloppy: true };
    let mut checker = gen::Checker::new();
    let mut stats = gen::Stats::default();
    let r = checker.check(&case, &mut stats);
    assert!(r.is_ok(), "{}\nprogram:\n{}", r.unwrap_err(), gen::listing(&p));
}

/// The same bug across frames: a subprogram's store at `r10 + 8` (above
/// its frame, unproven in permissive mode) lands at run time in its
/// caller's frame (frames are adjacent: the callee's r10 is the caller's
/// minus 512), here over the caller's spilled packet pointer at -504, which
/// the caller then fills and stores through with the store proven.
#[test]
fn permissive_callee_write_above_its_frame_clobbers_caller_spill() {
    let mut p = checked_data_plus_9(6); // -> 13
    p.extend([
        stx(8, FP, 5, -504),
        Insn::new(gen::CALL, 0, 1, 0, 5), // -> 14
        ldx(8, 3, FP, -504),
        st(4, 3, -5, 0), // 10: must not be proven
        alu(ALU64, MOV, 0, 2),
        Insn::new(EXIT, 0, 0, 0, 0),
        Insn::new(EXIT, 0, 0, 0, 0),
        // Subprogram.
        st(8, FP, 8, 1),
        alu(ALU64, MOV, 0, 0),
        Insn::new(EXIT, 0, 0, 0, 0),
    ]);
    for mode in [Mode::Strict, Mode::Permissive] {
        if let Ok(f) = uxdp_verifier::verify(&VerifyInput::new(&p, ProgType::Xdp, &[]).mode(mode)) {
            assert!(!f.proven[10], "{mode:?}: instruction 10 proven through a clobbered spill\n{}", gen::listing(&p));
        }
    }
}
