//! The bpf_conformance suite against the verifier.
//!
//! * Every `negative/` case is rejected: either it does not parse or
//!   assemble (rejected before the verifier), or the verifier rejects it.
//! * The positive `tests/` run on raw memory passed in r1, which a typed
//!   verifier sees as the XDP context: every program must be accepted in
//!   permissive mode unless it touches r1 as memory (context rules), calls
//!   a helper XDP does not have, or otherwise breaks a rule listed in
//!   `ALLOWED_POSITIVE_REJECTIONS`; the counts are printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use uxdp_asm::TestFile;
use uxdp_verifier::{verify, Mode, ProgType, Rule, VerifyInput};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance").join(name)
}

fn files(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .expect("conformance directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    v.sort();
    v
}

#[test]
fn negative_cases_are_rejected() {
    let (mut before, mut by_verifier) = (0, 0);
    let all = files(&dir("negative"));
    for path in &all {
        let text = std::fs::read_to_string(path).expect("read");
        let prog =
            TestFile::parse(&text).map_err(|e| e.to_string()).and_then(|t| t.program().map_err(|e| e.to_string()));
        match prog {
            Err(_) => before += 1,
            Ok(insns) => {
                let input = VerifyInput::new(&insns, ProgType::Xdp, &[]);
                match verify(&input) {
                    Err(r) => {
                        by_verifier += 1;
                        println!(
                            "{}: {}",
                            path.file_name().unwrap_or_default().to_string_lossy(),
                            r.to_string().lines().next().unwrap_or("")
                        );
                    }
                    Ok(_) => panic!("negative case {} accepted", path.display()),
                }
            }
        }
    }
    println!("negative: {} cases, {before} rejected by parser/assembler, {by_verifier} by the verifier", all.len());
    assert_eq!(before + by_verifier, all.len());
    assert!(all.len() >= 60);
}

/// Why a positive ISA test may be refused by a typed verifier.
const ALLOWED_POSITIVE_REJECTIONS: &[Rule] = &[
    // r1 is raw memory in the suite, the XDP context here.
    Rule::CtxAccess,
    Rule::CtxModified,
    Rule::PointerArithmetic,
    Rule::InvalidMemAccess,
    // Helpers of the suite's own runtime, legacy packet loads.
    Rule::UnknownHelper,
    Rule::LdAbs,
    // Programs that read uninitialised registers (the ISA defines them as 0).
    Rule::UninitRegister,
    // Loops the suite runs to completion that the verifier cannot bound.
    Rule::TooComplex,
    Rule::InfiniteLoop,
    // Constant division by zero (defined behaviour at run time).
    Rule::InvalidAluOperand,
    // Structural rules the kernel also enforces (callx does not exist there).
    Rule::InvalidInstruction,
    Rule::Unreachable,
    Rule::StackDepth,
    Rule::CallDepth,
];

#[test]
fn positive_isa_tests_in_permissive_mode() {
    let all = files(&dir("tests"));
    let mut by_rule: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut accepted, mut skipped) = (0, 0);
    let mut unexpected = Vec::new();
    for path in &all {
        let text = std::fs::read_to_string(path).expect("read");
        let Ok(t) = TestFile::parse(&text) else {
            skipped += 1;
            continue;
        };
        if t.error.is_some() {
            skipped += 1;
            continue;
        }
        let Ok(insns) = t.program() else {
            skipped += 1;
            continue;
        };
        let input = VerifyInput::new(&insns, ProgType::Xdp, &[]).mode(Mode::Permissive);
        match verify(&input) {
            Ok(_) => accepted += 1,
            Err(r) => {
                *by_rule.entry(r.rule.name()).or_default() += 1;
                if !ALLOWED_POSITIVE_REJECTIONS.contains(&r.rule) {
                    unexpected.push(format!("{}: {r}", path.display()));
                }
            }
        }
    }
    println!("positive ISA tests: {} files, {accepted} accepted in permissive mode, {skipped} skipped (error tests), rejected by rule: {by_rule:?}", all.len());
    for u in &unexpected {
        println!("UNEXPECTED {u}");
    }
    assert!(unexpected.is_empty(), "{} unexpected rejections", unexpected.len());
    assert!(accepted > 0);
}
