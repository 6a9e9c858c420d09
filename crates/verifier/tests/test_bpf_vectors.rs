//! Differential test against the kernel on the eBPF programs of the
//! kernel's `lib/test_bpf.c` (shared/conformance/linux-test_bpf): each is
//! verified as a socket filter by uxdp (strict) and loaded with
//! `BPF_PROG_LOAD`; the accept/reject verdicts must agree.
//!
//! Skipped with a printed reason when `xz` is missing or the kernel
//! refuses BPF.

use std::path::Path;
use std::process::Command;
use uxdp_isa::Insn;
use uxdp_verifier::{verify, ProgType, VerifyInput};

/// Largest program verified by unoptimised (debug) test builds.
const MAX_INSNS_IN_DEBUG: usize = 4_096;

fn hex_bytes(h: &str) -> Option<Vec<u8>> {
    (0..h.len() / 2).map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

#[test]
fn test_bpf_ebpf_programs_agree_with_kernel() {
    if let Err(why) = uxdp_kernel::availability() {
        println!("skipped: {why}");
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/linux-test_bpf/test_bpf_tests.jsonl.xz");
    let out = match Command::new("xz").arg("-dc").arg(&path).output() {
        Ok(o) if o.status.success() => o.stdout,
        Ok(o) => {
            println!("skipped: xz failed: {}", String::from_utf8_lossy(&o.stderr));
            return;
        }
        Err(e) => {
            println!("skipped: cannot run xz: {e}");
            return;
        }
    };
    let text = String::from_utf8(out).expect("utf-8 jsonl");
    let (mut total, mut agree, mut accepted, mut skipped) = (0, 0, 0, 0);
    let mut disagreements = Vec::new();
    for line in text.lines() {
        // Skip the huge generated programs before parsing their JSON (slow
        // in unoptimised builds).
        let count = line
            .split("\"insn_count\":")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        if cfg!(debug_assertions) && count > MAX_INSNS_IN_DEBUG {
            skipped += 1;
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        if v["kind"] != "ebpf" {
            continue;
        }
        let Some(bytes) = v["insns"].as_str().and_then(hex_bytes) else { continue };
        if bytes.is_empty() || bytes.len() % 8 != 0 {
            continue;
        }
        let insns: Vec<Insn> =
            bytes.chunks_exact(8).map(|c| Insn::from_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect();
        // The generated "all value magnitudes" programs have 100k-200k
        // instructions; unoptimised builds verify them too slowly for a unit
        // test run, so they are covered by `cargo test --release` only.
        total += 1;
        let input = VerifyInput::new(&insns, ProgType::SocketFilter, &[]);
        let ours = verify(&input);
        let kernel = uxdp_kernel::load_raw(&insns, uxdp_kernel::ProgType::SOCKET_FILTER, "GPL", 0);
        if ours.is_ok() {
            accepted += 1;
        }
        if ours.is_ok() == kernel.is_ok() {
            agree += 1;
        } else {
            disagreements.push(format!(
                "{} {}: uxdp {} / kernel {}",
                v["id"],
                v["descr"],
                ours.map(|_| "accepts".to_string()).unwrap_or_else(|r| format!("rejects: {r}")),
                if kernel.is_ok() { "accepts" } else { "rejects" }
            ));
        }
    }
    for d in &disagreements {
        println!("DISAGREE {d}");
    }
    println!(
        "test_bpf eBPF programs: {agree}/{total} verdicts agree ({accepted} accepted by uxdp; {skipped} programs over {MAX_INSNS_IN_DEBUG} instructions skipped in this unoptimised build)"
    );
    assert!(total + skipped > 700);
    assert!(disagreements.is_empty(), "{} disagreements", disagreements.len());
}
