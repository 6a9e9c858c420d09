//! Issue 3's differential suite (run on the JIT, uxdp's default engine;
//! `tests/xdp_replay.rs` covers the interpreter): every XDP program of the corpus that the
//! running kernel accepts, over every packet of every corpus capture plus
//! crafted edge cases, in the kernel (`BPF_PROG_TEST_RUN`) and in uxdp —
//! return code and output bytes per packet, then the maps. Prints
//! `N identical, M different` and fails on any difference. Skips with the
//! reason where the kernel refuses BPF.

mod common;

use common::fold_if_percpu;
use std::path::{Path, PathBuf};
use uxdp_xdp::{per_packet_line, LoadedObject, ObjectOptions, RunError, RunOutput, Runner};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// Every packet of every corpus capture, then crafted edge cases.
fn all_packets() -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> =
        std::fs::read_dir(corpus().join("pcaps")).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let mut out = Vec::new();
    for n in &names {
        out.extend(uxdp_cbpf::capture::read_capture(n).unwrap().into_iter().map(|p| p.data));
    }
    out.extend(crafted(&out));
    out
}

/// Edge cases: every truncation of a TCP/IPv4, a VLAN and an IPv6 packet
/// (truncated headers, including below the Ethernet header), minimal
/// frames, a 9000-byte jumbo frame and a multi-fragment 20 KB frame.
fn crafted(real: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let pick = |ethertype: [u8; 2]| real.iter().find(|p| p.len() > 60 && p[12..14] == ethertype).cloned();
    for p in [pick([0x08, 0x00]), pick([0x81, 0x00]), pick([0x86, 0xdd])].into_iter().flatten() {
        for len in 0..=p.len().min(96) {
            out.push(p[..len].to_vec());
        }
    }
    let base = pick([0x08, 0x00]).expect("an IPv4 packet");
    for size in [3520, 3521, 9000, 20_000] {
        let mut j = base.clone();
        j.resize(size, 0x5a);
        out.push(j);
    }
    out
}

/// Objects whose programs are compared: the kernel's samples and selftests
/// and the xdp-tools objects.
fn objects() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in ["objects/linux-6.12", "objects/xdp-tools-1.3.1"] {
        for e in std::fs::read_dir(corpus().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "o") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// What uxdp may refuse, by the name in its error: kernel state it cannot have.
const ALLOWED_REFUSALS: &[&str] = &["kfunc bpf_xdp_ct_lookup", "kfunc bpf_skb_ct_lookup", "kfunc bpf_xdp_ct_alloc"];

/// Map types not compared: object references, event channels, queues.
fn compared_map(map_type: u32, name: &str) -> bool {
    !matches!(map_type, 3 | 4 | 12 | 13 | 14 | 15 | 16 | 17 | 18 | 22 | 23 | 27) && !name.contains(".rodata")
}

#[test]
fn every_accepted_corpus_program_runs_identically_to_the_kernel() {
    if let Err(why) = uxdp_kernel::availability() {
        println!("skipped: the kernel cannot test-run BPF here: {why}");
        return;
    }
    let packets = all_packets();
    let opts = ObjectOptions { zero_max_entries: Some(64), ..Default::default() };
    let kopts = uxdp_kernel::ObjectOptions { zero_max_entries: Some(64), ..Default::default() };
    let (mut identical, mut different, mut programs, mut maps_same) = (0usize, 0usize, 0usize, 0usize);
    let (mut refused_by_kernel, mut refused_by_uxdp) = (Vec::new(), Vec::new());
    let mut problems = Vec::new();
    for path in objects() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let object = uxdp_object::Object::parse(&std::fs::read(&path).unwrap()).unwrap();
        let mut kernel = match uxdp_kernel::KernelObject::load_file_with(&path, &kopts) {
            Ok(k) => k,
            Err(e) => {
                refused_by_kernel.push(format!("{file}: {e}"));
                continue;
            }
        };
        for def in object.programs.iter().filter(|d| d.runs_as_xdp()) {
            let name = &def.name;
            if kernel.reset().is_err() || kernel.load_program(name).is_err() {
                refused_by_kernel.push(format!("{file}:{name}"));
                continue;
            }
            let loaded = LoadedObject::load_with(&object, &opts).unwrap();
            let prog = loaded.program(Some(name)).unwrap();
            if let Err(e) = &prog.program {
                if ALLOWED_REFUSALS.iter().any(|a| e.contains(a)) {
                    refused_by_uxdp.push(format!("{file}:{name}: {e}"));
                } else {
                    problems.push(format!("{file}:{name}: the kernel accepts it, uxdp does not: {e}"));
                }
                continue;
            }
            if uxdp_jit::available() {
                if let Some(e) = &prog.jit_error {
                    problems.push(format!("{file}:{name}: not JIT-compiled: {e}"));
                }
            }
            programs += 1;
            let mut runner = Runner::new(&loaded).unwrap();
            let mut first_diff = None;
            let mut i = 0;
            runner
                .replay(prog, packets.iter().map(Vec::as_slice), |idx, len, ours| {
                    let theirs: Result<RunOutput, RunError> = match kernel.test_run_xdp(name, &packets[idx], 1, None) {
                        Ok(t) => Ok(RunOutput { retval: t.retval, data: t.data_out, ctx: Default::default() }),
                        Err(e) => Err(RunError::Refused {
                            errno: e.errno().map_or(-1, |n| n.negated() as i64),
                            why: "kernel",
                        }),
                    };
                    let (a, b) = (per_packet_line(idx, len, &theirs), per_packet_line(idx, len, ours));
                    if a == b {
                        identical += 1;
                    } else {
                        different += 1;
                        first_diff.get_or_insert((a, b));
                    }
                    i += 1;
                })
                .unwrap();
            if let Some((a, b)) = first_diff {
                problems.push(format!("{file}:{name}: first difference: kernel `{a}`, uxdp `{b}`"));
            }
            // maps after the whole run
            for m in kernel.maps().unwrap() {
                if !compared_map(m.map_type, &m.name) {
                    continue;
                }
                let Some(idx) = loaded.maps.names.iter().position(|n| *n == m.name) else { continue };
                let norm = |v: Vec<(Vec<u8>, Vec<u8>)>| {
                    let mut v: Vec<_> =
                        v.into_iter().map(|(k, val)| (k, fold_if_percpu(m.map_type, m.value_size, val))).collect();
                    v.sort();
                    v
                };
                let theirs = norm(kernel.map_dump(&m.name).unwrap());
                let ours = norm(loaded.maps.dump(idx).unwrap());
                if theirs == ours {
                    maps_same += 1;
                } else {
                    problems.push(format!(
                        "{file}:{name}: map {} differs after the run ({} kernel entries, {} uxdp entries)",
                        m.name,
                        theirs.len(),
                        ours.len()
                    ));
                }
            }
        }
    }
    println!(
        "corpus XDP programs vs kernel: {programs} programs x {} packets: {identical} identical, {different} different; {maps_same} maps identical",
        packets.len()
    );
    println!("refused by the kernel (not compared): {}", refused_by_kernel.len());
    for r in &refused_by_uxdp {
        println!("refused by uxdp (kernel state it cannot have): {r}");
    }
    for p in &problems {
        println!("  {p}");
    }
    assert!(problems.is_empty(), "{} problems", problems.len());
}
