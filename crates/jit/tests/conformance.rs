//! The bpf_conformance suite under the JIT: every positive test must give
//! the expected r0, and every test (positive and negative) must give
//! exactly what the interpreter gives (r0, memory, or the same error).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use uxdp_asm::testfile::TestFile;
use uxdp_vm::{LoadOptions, Machine, Program, Region, Stack, VmError};

fn data_files(sub: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance").join(sub);
    uxdp_asm::testfile::data_files(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Runs like `uxdp_vm::run_on_memory`, choosing the engine.
fn run(prog: &Program, mem: &mut [u8], native: bool) -> Result<u64, VmError> {
    let (addr, len) = (mem.as_mut_ptr() as u64, mem.len() as u64);
    let mut stack = Stack::new();
    let mut env = ();
    let mut m = Machine::new(prog, &mut stack, &mut env);
    m.native = native;
    if len > 0 {
        m.mem.push(Region::of_mut_slice(mem));
    }
    m.legacy_packet = (addr, len);
    m.run_with_args([if len > 0 { addr } else { 0 }, len, 0, 0, 0])
}

type Outcome = (Result<u64, VmError>, Vec<u8>);

/// (interpreter, JIT) outcomes, or None if the test does not load.
fn both(text: &str) -> Option<(TestFile, Outcome, Outcome)> {
    let tf = TestFile::parse(text).ok()?;
    let insns = tf.program().ok()?;
    let h = uxdp_vm::conformance_helpers();
    let mut opts = LoadOptions::new(Arc::new(h));
    opts.entry_regs = Some(0b110);
    let prog = Program::load(&insns, &opts).ok()?;
    let mut mem_i = tf.mem.clone();
    let interp = run(&prog, &mut mem_i, false);
    uxdp_jit::attach(&prog).unwrap_or_else(|e| panic!("JIT failed: {e}"));
    let mut mem_j = tf.mem.clone();
    let jit = run(&prog, &mut mem_j, true);
    Some((tf, (interp, mem_i), (jit, mem_j)))
}

#[test]
fn conformance_suite_passes_under_the_jit() {
    let files = data_files("tests");
    let mut failed = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let Some((tf, interp, jit)) = both(&text) else {
            failed.push(format!("{}: does not load", f.display()));
            continue;
        };
        if interp != jit {
            failed.push(format!("{}: interpreter {:?} != JIT {:?}", f.display(), interp.0, jit.0));
        } else if tf.error.is_none() && jit.0 != Ok(tf.result.unwrap_or(u64::MAX)) {
            failed.push(format!("{}: JIT gave {:?}, expected {:x?}", f.display(), jit.0, tf.result));
        }
    }
    println!("bpf_conformance under the JIT: {} passed, {} failed", files.len() - failed.len(), failed.len());
    assert!(files.len() >= 313, "suite has {} tests", files.len());
    assert!(failed.is_empty(), "failures:\n{}", failed.join("\n"));
}

#[test]
fn negative_tests_behave_as_in_the_interpreter() {
    let mut compared = 0;
    for f in data_files("negative") {
        let text = std::fs::read_to_string(&f).unwrap();
        if let Some((_, interp, jit)) = both(&text) {
            assert_eq!(interp, jit, "{}", f.display());
            compared += 1;
        }
    }
    println!("negative tests that load, compared: {compared}");
}
