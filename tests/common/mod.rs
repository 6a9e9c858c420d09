//! Helpers shared by the workspace's integration tests (each test file
//! includes this module with `mod common;` and uses what it needs).
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs the `uxdp` binary with `args` and optional stdin; returns (success,
/// stdout, stderr).
pub fn uxdp_with_stdin(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_uxdp"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn uxdp");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Per-CPU map types: user space sees one value per CPU.
pub const PERCPU_TYPES: &[u32] = &[5, 6, 10]; // percpu_hash, percpu_array, lru_percpu_hash

/// Folds a per-CPU value (one `round_up(value_size, 8)` chunk per CPU) into
/// one value by adding the chunks as u64 words, so counters compare across
/// CPU counts (the kernel dumps every possible CPU; uxdp its own count).
pub fn fold_percpu(v: &[u8], value_size: usize) -> Vec<u8> {
    let chunk = value_size.div_ceil(8) * 8;
    let mut out = vec![0u64; chunk / 8];
    for c in v.chunks(chunk) {
        for (i, w) in c.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..w.len()].copy_from_slice(w);
            out[i] = out[i].wrapping_add(u64::from_le_bytes(b));
        }
    }
    out.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// [`fold_percpu`] for per-CPU map types; other values unchanged.
pub fn fold_if_percpu(map_type: u32, value_size: u32, v: Vec<u8>) -> Vec<u8> {
    if PERCPU_TYPES.contains(&map_type) {
        fold_percpu(&v, value_size as usize)
    } else {
        v
    }
}
