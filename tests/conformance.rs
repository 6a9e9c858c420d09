//! The bpf_conformance suite (`../shared/conformance/`), run on uxdp's
//! interpreter, both in-process and through the `conformance-plugin`
//! subcommand exactly as the upstream runner drives it.
//!
//! Positive tests must produce the expected r0; negative tests must be
//! rejected at assembly, validation or run time (or give a different r0).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use uxdp_asm::testfile::TestFile;
use uxdp_isa::Insn;
use uxdp_vm::{run_on_memory, LoadOptions, Program, Stack};

fn suite_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance").join(sub)
}

fn data_files(sub: &str) -> Vec<PathBuf> {
    let dir = suite_dir(sub);
    uxdp_asm::testfile::data_files(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Outcome of one test: Ok(r0) or Err(stage: message).
fn execute(text: &str) -> Result<(Option<u64>, u64), String> {
    let tf = TestFile::parse(text).map_err(|e| format!("parse: {e}"))?;
    let insns: Vec<Insn> = tf.program().map_err(|e| format!("assemble: {e}"))?;
    let h = uxdp_vm::conformance_helpers();
    let mut opts = LoadOptions::new(Arc::new(h));
    opts.entry_regs = Some(0b110);
    let prog = Program::load(&insns, &opts).map_err(|e| format!("load: {e}"))?;
    let mut mem = tf.mem.clone();
    let r0 = run_on_memory(&prog, &mut mem, &mut Stack::new()).map_err(|e| format!("run: {e}"))?;
    if tf.error.is_some() {
        return Err(format!("expected error {:?} but ran to r0={r0:#x}", tf.error));
    }
    Ok((tf.result, r0))
}

#[test]
fn conformance_suite_passes_in_process() {
    let mut failed = Vec::new();
    let files = data_files("tests");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        match execute(&text) {
            Ok((Some(want), got)) if want == got => {}
            Ok((want, got)) => failed.push(format!("{}: r0 {got:#x}, expected {want:x?}", f.display())),
            Err(e) => failed.push(format!("{}: {e}", f.display())),
        }
    }
    println!("bpf_conformance: {} passed, {} failed", files.len() - failed.len(), failed.len());
    assert!(files.len() >= 313, "suite has {} tests", files.len());
    assert!(failed.is_empty(), "failures:\n{}", failed.join("\n"));
}

#[test]
fn negative_conformance_tests_are_all_rejected() {
    let files = data_files("negative");
    let mut accepted = Vec::new();
    let mut reasons = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        match execute(&text) {
            Ok((Some(want), got)) if want == got => accepted.push(f.display().to_string()),
            Ok((want, got)) => reasons.push(format!("{}: r0 {got:#x} != expected {want:x?}", name(f))),
            Err(e) => reasons.push(format!("{}: {e}", name(f))),
        }
    }
    for r in &reasons {
        println!("  rejected {r}");
    }
    println!("bpf_conformance negative: {} rejected, {} accepted", reasons.len(), accepted.len());
    assert!(files.len() >= 60, "suite has {} negative tests", files.len());
    assert!(accepted.is_empty(), "negative tests that passed:\n{}", accepted.join("\n"));
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Drives `uxdp conformance-plugin` as the upstream runner does: memory as
/// a hex argument (omitted when empty), bytecode as hex on standard input,
/// r0 in hex on standard output, errors as a non-zero exit.
fn plugin(insns: &[Insn], mem: &[u8]) -> Result<u64, String> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}  ")).collect::<String>();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uxdp"));
    cmd.arg("conformance-plugin");
    if !mem.is_empty() {
        cmd.arg(hex(mem));
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(hex(&uxdp_isa::insn::to_bytes(insns)).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert!(!err.is_empty(), "plugin failed without a message");
        return Err(err);
    }
    let s = String::from_utf8(out.stdout).unwrap();
    u64::from_str_radix(s.trim(), 16).map_err(|e| format!("unparsable output {s:?}: {e}"))
}

#[test]
fn conformance_plugin_speaks_the_upstream_protocol() {
    let mut passed = 0;
    let mut failed = Vec::new();
    for f in data_files("tests") {
        let tf = TestFile::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let insns = tf.program().unwrap();
        match plugin(&insns, &tf.mem) {
            Ok(r0) if Some(r0) == tf.result => passed += 1,
            other => failed.push(format!("{}: {other:?} expected {:x?}", name(&f), tf.result)),
        }
    }
    // Negative tests that assemble must fail in the plugin or give another r0.
    let mut rejected = 0;
    for f in data_files("negative") {
        let Ok(tf) = TestFile::parse(&std::fs::read_to_string(&f).unwrap()) else { continue };
        let Ok(insns) = tf.program() else { continue };
        match plugin(&insns, &tf.mem) {
            Ok(r0) if Some(r0) == tf.result && tf.error.is_none() => {
                failed.push(format!("negative {} passed", name(&f)))
            }
            _ => rejected += 1,
        }
    }
    println!(
        "conformance-plugin: {passed} passed, {} failed; {rejected} assembled negative tests rejected",
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
