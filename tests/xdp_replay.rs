//! Kernel-differential replay of real XDP objects (issue 3).
//!
//! 1. Against the recorded kernel: every XDP program of the corpus that has a
//!    `replay_smoke` entry in `../shared/corpus/manifest-linux-6.12.json` is
//!    replayed over the same three captures with fresh maps, and the summary
//!    line (return-code histogram and FNV-1a digest of every return code and
//!    output packet) must equal the kernel's, character for character.
//! 2. Against the live kernel (root only; skipped with the reason otherwise):
//!    per packet — return code, output bytes and, after the capture, map
//!    contents.

mod common;

use common::{fold_percpu, PERCPU_TYPES};
use std::path::{Path, PathBuf};
use std::process::Command;
use uxdp_xdp::env::MapEntry;
use uxdp_xdp::{per_packet_line, LoadedObject, ObjectOptions, Runner, XdpMd};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

fn packets(pcap: &str) -> Vec<Vec<u8>> {
    let caps = uxdp_cbpf::capture::read_capture(&corpus().join("pcaps").join(pcap)).expect("capture");
    caps.into_iter().map(|p| p.data).collect()
}

fn manifest() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(corpus().join("manifest-linux-6.12.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest json")
}

/// Replays `pcap` through program `name` of `obj` on fresh maps.
fn replay(obj: &uxdp_object::Object, name: &str, pkts: &[Vec<u8>]) -> Result<String, String> {
    // samples/bpf's loaders size their per-CPU counter arrays at run time.
    // The interpreter here; the live-kernel suite (xdp_kernel_corpus) runs
    // the JIT, so both engines meet the kernel.
    let opts = ObjectOptions { zero_max_entries: Some(64), interpreter: true, ..Default::default() };
    let loaded = LoadedObject::load_with(obj, &opts).map_err(|e| e.to_string())?;
    let prog = loaded.program(Some(name)).map_err(|e| e.to_string())?;
    let mut runner = Runner::new(&loaded).map_err(|e| e.to_string())?;
    let summary = runner.replay(prog, pkts.iter().map(Vec::as_slice), |_, _, _| {}).map_err(|e| e.to_string())?;
    Ok(summary.to_string())
}

/// Kfuncs of corpus programs that uxdp does not implement; loading names them.
const UNSUPPORTED_KFUNCS: &[&str] = &["kfunc bpf_xdp_ct_lookup is not supported"];

#[test]
fn replay_matches_recorded_kernel_summaries() {
    let mut pcaps: std::collections::HashMap<String, Vec<Vec<u8>>> = Default::default();
    let (mut agree, mut differ, mut failed) = (0, Vec::new(), Vec::new());
    for entry in manifest() {
        let Some(smoke) = entry.get("replay_smoke").and_then(|s| s.as_object()) else { continue };
        let path = corpus().join(entry["object"].as_str().expect("object path"));
        let obj = uxdp_object::Object::parse(&std::fs::read(&path).expect("object")).expect("parse");
        for (prog, runs) in smoke {
            for (pcap, expected) in runs.as_object().expect("runs") {
                let pkts = pcaps.entry(pcap.clone()).or_insert_with(|| packets(pcap));
                let label = format!("{}:{prog} {pcap}", path.file_name().unwrap().to_string_lossy());
                match replay(&obj, prog, pkts) {
                    Ok(got) if got == expected.as_str().unwrap() => agree += 1,
                    Ok(got) => {
                        differ.push(format!("{label}\n   kernel {}\n   uxdp   {got}", expected.as_str().unwrap()))
                    }
                    Err(e) => failed.push(format!("{label}: {e}")),
                }
            }
        }
    }
    println!("replay vs kernel summaries: {agree} agree, {} differ, {} not run", differ.len(), failed.len());
    for d in differ.iter().chain(&failed) {
        println!("  {d}");
    }
    // Programs calling kfuncs uxdp does not provide fail to load with the
    // kfunc's name; nothing else may fail.
    let unexpected: Vec<_> = failed.iter().filter(|f| !UNSUPPORTED_KFUNCS.iter().any(|k| f.contains(k))).collect();
    assert!(
        differ.is_empty() && unexpected.is_empty(),
        "{} differ, unexpected failures: {unexpected:#?}",
        differ.len()
    );
    assert!(agree >= 378, "agreement fell to {agree}");
}

/// Maps whose contents are not compared: object references (prog arrays,
/// map-in-map, devmaps, cpumaps, xskmaps, sockmaps), event channels
/// (perf event arrays, ring buffers), queues and stacks (dumping would
/// consume them), and read-only data.
fn not_compared(map_type: u32, name: &str) -> bool {
    matches!(map_type, 3 | 4 | 12 | 13 | 14 | 15 | 16 | 17 | 18 | 22 | 23 | 27) || name.contains(".rodata")
}

type Dump = std::collections::BTreeMap<String, Vec<MapEntry>>;

fn normalise(name: &str, map_type: u32, value_size: u32, mut entries: Vec<MapEntry>) -> (String, Vec<MapEntry>) {
    if PERCPU_TYPES.contains(&map_type) {
        for e in &mut entries {
            e.1 = fold_percpu(&e.1, value_size as usize);
        }
    }
    entries.sort();
    (name.to_string(), entries)
}

/// Per-packet lines and final map contents from the live kernel.
fn kernel_run(path: &Path, name: &str, pkts: &[Vec<u8>]) -> Result<(Vec<String>, Dump), String> {
    let opts = uxdp_kernel::ObjectOptions { zero_max_entries: Some(64), ..Default::default() };
    let mut k = uxdp_kernel::KernelObject::load_file_with(path, &opts).map_err(|e| e.to_string())?;
    k.load_program(name).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    for (i, p) in pkts.iter().enumerate() {
        let r = match k.test_run_xdp(name, p, 1, None) {
            Ok(t) => Ok(uxdp_xdp::RunOutput { retval: t.retval, data: t.data_out, ctx: Default::default() }),
            Err(e) => {
                Err(uxdp_xdp::RunError::Refused { errno: e.errno().map_or(-1, |n| n.negated() as i64), why: "kernel" })
            }
        };
        lines.push(per_packet_line(i, p.len(), &r));
    }
    let mut dump = Dump::new();
    for m in k.maps().map_err(|e| e.to_string())? {
        if not_compared(m.map_type, &m.name) {
            continue;
        }
        let entries = k.map_dump(&m.name).map_err(|e| format!("dump {}: {e}", m.name))?;
        let (n, e) = normalise(&m.name, m.map_type, m.value_size, entries);
        dump.insert(n, e);
    }
    Ok((lines, dump))
}

fn uxdp_run(obj: &uxdp_object::Object, name: &str, pkts: &[Vec<u8>]) -> Result<(Vec<String>, Dump), String> {
    let opts = ObjectOptions { zero_max_entries: Some(64), ..Default::default() };
    let loaded = LoadedObject::load_with(obj, &opts).map_err(|e| e.to_string())?;
    let prog = loaded.program(Some(name)).map_err(|e| e.to_string())?;
    let mut runner = Runner::new(&loaded).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    runner
        .replay(prog, pkts.iter().map(Vec::as_slice), |i, len, r| lines.push(per_packet_line(i, len, r)))
        .map_err(|e| e.to_string())?;
    let mut dump = Dump::new();
    for (i, m) in loaded.maps.maps.iter().enumerate() {
        let spec = m.spec();
        if not_compared(spec.map_type, &loaded.maps.names[i]) {
            continue;
        }
        let entries = loaded.maps.dump(i).map_err(|e| e.to_string())?;
        let (n, e) = normalise(&loaded.maps.names[i], spec.map_type, spec.value_size, entries);
        dump.insert(n, e);
    }
    Ok((lines, dump))
}

/// Every corpus XDP program with a kernel replay, over two captures, against
/// the live kernel: per-packet return code and output bytes, then every map
/// both sides can dump (per-CPU values summed over CPUs).
#[test]
fn per_packet_and_maps_agree_with_live_kernel() {
    if let Err(why) = uxdp_kernel::availability() {
        println!("skipped: the kernel cannot test-run BPF here: {why}");
        return;
    }
    let (mut programs, mut packets_compared, mut maps_compared) = (0, 0, 0);
    let mut problems = Vec::new();
    for pcap in ["zeek__vlan-collisions.pcap", "tcpreplay__test.pcap"] {
        let pkts = packets(pcap);
        for entry in manifest() {
            let Some(smoke) = entry.get("replay_smoke").and_then(|s| s.as_object()) else { continue };
            let path = corpus().join(entry["object"].as_str().unwrap());
            let obj = uxdp_object::Object::parse(&std::fs::read(&path).unwrap()).unwrap();
            for prog in smoke.keys() {
                let label = format!("{}:{prog} {pcap}", path.file_name().unwrap().to_string_lossy());
                let ours = match uxdp_run(&obj, prog, &pkts) {
                    Ok(o) => o,
                    Err(e) if UNSUPPORTED_KFUNCS.iter().any(|k| e.contains(k)) => continue,
                    Err(e) => {
                        problems.push(format!("{label}: uxdp: {e}"));
                        continue;
                    }
                };
                let theirs = match kernel_run(&path, prog, &pkts) {
                    Ok(t) => t,
                    Err(e) => {
                        println!("  {label}: kernel could not run it ({e}); not compared");
                        continue;
                    }
                };
                programs += 1;
                packets_compared += pkts.len();
                if let Some((a, b)) = theirs.0.iter().zip(&ours.0).find(|(a, b)| a != b) {
                    problems.push(format!("{label}: first differing packet: kernel `{a}`, uxdp `{b}`"));
                }
                for (name, kv) in &theirs.1 {
                    match ours.1.get(name) {
                        Some(ov) if ov == kv => maps_compared += 1,
                        Some(ov) => problems.push(format!(
                            "{label}: map {name}: kernel {} entries, uxdp {} entries; first difference {:?}",
                            kv.len(),
                            ov.len(),
                            kv.iter().zip(ov).find(|(a, b)| a != b)
                        )),
                        None => println!("  {label}: map {name} has no uxdp counterpart by name"),
                    }
                }
            }
        }
    }
    println!(
        "live kernel: {programs} program runs, {packets_compared} packets, {maps_compared} maps compared; {} problems",
        problems.len()
    );
    for p in &problems {
        println!("  {p}");
    }
    assert!(problems.is_empty(), "{} differences with the live kernel", problems.len());
    assert!(programs >= 100, "only {programs} program runs compared");
}

/// Several threads run one program instance (shared maps), each as its own
/// CPU: per-CPU counters add up to exactly what one thread counts, times
/// the number of threads — no update is lost.
#[test]
fn threads_share_maps_without_losing_updates() {
    let path = corpus().join("objects/xdp-tools-1.3.1/xdpfilt_alw_all.o");
    let obj = uxdp_object::Object::parse(&std::fs::read(&path).unwrap()).unwrap();
    let pkts = packets("tcpreplay__test.pcap");
    let stats = |loaded: &LoadedObject| -> Vec<u8> {
        let i = loaded.maps.names.iter().position(|n| n == "xdp_stats_map").unwrap();
        let spec = loaded.maps.maps[i].spec();
        let dump = loaded.maps.dump(i).unwrap();
        dump.iter().flat_map(|(_, v)| fold_percpu(v, spec.value_size as usize)).collect()
    };
    let words = |b: &[u8]| b.chunks(8).map(|w| u64::from_le_bytes(w.try_into().unwrap())).collect::<Vec<_>>();
    const THREADS: usize = 4;
    let opts = ObjectOptions { nr_cpus: Some(THREADS as u32), ..Default::default() };
    let one = LoadedObject::load_with(&obj, &opts).unwrap();
    let mut r = Runner::new(&one).unwrap();
    let p = one.program(Some("xdpfilt_alw_all")).unwrap();
    r.replay(p, pkts.iter().map(Vec::as_slice), |_, _, _| {}).unwrap();
    let single = words(&stats(&one));
    assert!(single.iter().any(|&w| w > 0), "the program counts packets");

    let shared = LoadedObject::load_with(&obj, &opts).unwrap();
    std::thread::scope(|s| {
        for cpu in 0..THREADS {
            let shared = &shared;
            let pkts = &pkts;
            s.spawn(move || {
                let mut r = Runner::new(shared).unwrap();
                r.set_cpu(cpu as u32);
                let p = shared.program(Some("xdpfilt_alw_all")).unwrap();
                for _ in 0..5 {
                    r.replay(p, pkts.iter().map(Vec::as_slice), |_, _, _| {}).unwrap();
                }
            });
        }
    });
    let many = words(&stats(&shared));
    let want: Vec<u64> = single.iter().map(|w| w * 5 * THREADS as u64).collect();
    assert_eq!(many, want);
}

fn sample(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(rel)
}

/// The demo's XDP object against the live kernel: per-packet verdicts and
/// output, then its counters.
#[test]
fn shipped_sample_object_agrees_with_live_kernel() {
    if let Err(why) = uxdp_kernel::availability() {
        println!("skipped: the kernel cannot test-run BPF here: {why}");
        return;
    }
    let path = sample("xdp_ssh_guard.o");
    let obj = uxdp_object::Object::parse(&std::fs::read(&path).unwrap()).unwrap();
    let caps = uxdp_cbpf::capture::read_capture(&sample("sample.pcap")).unwrap();
    let pkts: Vec<Vec<u8>> = caps.into_iter().map(|p| p.data).collect();
    let ours = uxdp_run(&obj, "ssh_guard", &pkts).unwrap();
    let theirs = kernel_run(&path, "ssh_guard", &pkts).unwrap();
    assert_eq!(ours.0, theirs.0);
    for (name, entries) in &theirs.1 {
        assert_eq!(ours.1.get(name), Some(entries), "map {name}");
    }
    assert!(theirs.1.len() >= 2, "maps compared: {:?}", theirs.1.keys());
}

/// The shipped object is what its shipped source compiles to.
#[test]
fn shipped_sample_object_is_built_from_its_source() {
    let clang = "clang-19";
    if Command::new(clang).arg("--version").output().is_err() {
        println!("skipped: {clang} is not installed");
        return;
    }
    let out = std::env::temp_dir().join(format!("uxdp-sample-{}.o", std::process::id()));
    let arch_include = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let st = Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf", "-I", &arch_include, "-c"])
        .arg(sample("xdp_ssh_guard.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let built = uxdp_object::Object::parse(&std::fs::read(&out).unwrap()).unwrap();
    let shipped = uxdp_object::Object::parse(&std::fs::read(sample("xdp_ssh_guard.o")).unwrap()).unwrap();
    assert_eq!(built.programs[0].insns, shipped.programs[0].insns);
    let _ = std::fs::remove_file(out);
}

/// `ctx_in` handling of a test run against the kernel: accepted layouts give
/// the same output, refused ones the same errno.
#[test]
fn ctx_in_rules_agree_with_live_kernel() {
    if let Err(why) = uxdp_kernel::availability() {
        println!("skipped: the kernel cannot test-run BPF here: {why}");
        return;
    }
    let path = corpus().join("objects/linux-6.12/linux-samples__xdp2skb_meta_kern.o");
    let name = "_xdp_mark";
    let mut k = uxdp_kernel::KernelObject::load_file(&path).unwrap();
    k.load_program(name).unwrap();
    let obj = uxdp_object::Object::parse(&std::fs::read(&path).unwrap()).unwrap();
    let loaded = LoadedObject::load(&obj).unwrap();
    let prog = loaded.program(Some(name)).unwrap().program.clone().unwrap();
    let mut runner = Runner::new(&loaded).unwrap();
    let pkt = &packets("zeek__vlan-collisions.pcap")[0];
    // (metadata length, data_end delta, ingress_ifindex, rx_queue_index, data_meta, packet length)
    let cases: &[(u32, i64, u32, u32, u32, usize)] = &[
        (0, 0, 0, 0, 0, pkt.len()),
        (0, 0, 1, 0, 0, pkt.len()),
        (4, 0, 0, 0, 0, pkt.len()),
        (32, 0, 0, 0, 0, pkt.len()),
        (212, 0, 0, 0, 0, pkt.len()),
        (216, 0, 0, 0, 0, pkt.len()),
        (220, 0, 0, 0, 0, pkt.len()),
        (2, 0, 0, 0, 0, pkt.len()),
        (0, -1, 0, 0, 0, pkt.len()),
        // uxdp models only lo; an index no host has is ENODEV in both
        (0, 0, 0x7fff_fff0, 0, 0, pkt.len()),
        (0, 0, 1, 1, 0, pkt.len()),
        (0, 0, 0, 0, 4, pkt.len()),
        (0, 0, 0, 0, 0, 13),
        (0, 0, 0, 0, 0, 14),
    ];
    for &(meta, end_delta, ifindex, queue, data_meta, len) in cases {
        let mut data = vec![0xa5u8; meta as usize];
        data.extend_from_slice(&pkt[..len.min(pkt.len())]);
        let ctx = XdpMd {
            data: meta,
            data_end: (data.len() as i64 + end_delta) as u32,
            data_meta,
            ingress_ifindex: ifindex,
            rx_queue_index: queue,
            egress_ifindex: 0,
        };
        let kernel = k.test_run_xdp(name, &data, 1, Some(&ctx.to_bytes())).map(|t| (t.retval, t.data_out));
        let ours = runner.run(&prog, &data, Some(&ctx)).map(|o| (o.retval, o.data));
        match (kernel, ours) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "case {ctx:?}"),
            (Err(a), Err(b)) => {
                assert_eq!(a.errno().map(|e| e.negated() as i64), Some(b.errno()), "case {ctx:?}: kernel {a}, uxdp {b}")
            }
            (a, b) => panic!("case {ctx:?}: kernel {a:?}, uxdp {b:?}"),
        }
    }
}
