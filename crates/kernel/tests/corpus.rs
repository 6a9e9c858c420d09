//! Every corpus object through the kernel: load, verdict per program,
//! test-run of every accepted XDP program on a 64-byte UDP packet, and
//! agreement with the verdicts recorded in the corpus manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod common;
use common::{corpus, object, udp64};
use uxdp_kernel::{availability, possible_cpus, KernelError, KernelObject, ObjectOptions, ProgramKind, XdpAttach};

fn objects(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(object(dir))
        .unwrap_or_else(|e| panic!("reading corpus dir {dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    v.sort();
    v
}

/// Manifest verdicts: object file name -> program -> "OK"/"FAIL".
fn manifest() -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(corpus().join("manifest-linux-6.12.json")).expect("manifest");
    let v: serde_json::Value = serde_json::from_str(&text).expect("manifest JSON");
    let mut out = BTreeMap::new();
    for o in v.as_array().expect("manifest is a list") {
        let file = o["object"].as_str().expect("object").rsplit('/').next().expect("file").to_string();
        let per: BTreeMap<String, String> = o["perprog"]
            .as_object()
            .expect("perprog")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("verdict").to_string()))
            .collect();
        out.insert(file, per);
    }
    out
}

#[derive(Default)]
struct Tally {
    loaded: usize,
    refused: Vec<String>,
    not_compared: Vec<String>,
    test_runs: usize,
    test_run_errors: Vec<String>,
    retvals: BTreeMap<u32, usize>,
    agree: usize,
    disagree: Vec<String>,
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(160).collect()
}

/// Verdict of the log's last meaningful line (where the verifier says why).
fn reason(e: &KernelError) -> String {
    match e {
        KernelError::Refused { errno, log, .. } => {
            let why = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with("processed ") && !l.starts_with("verification time"))
                .unwrap_or("")
                .chars()
                .take(120)
                .collect::<String>();
            format!("{errno}: {why}")
        }
        other => first_line(&other.to_string()),
    }
}

fn run_object(path: &Path, verdicts: Option<&BTreeMap<String, String>>, packet: &[u8], t: &mut Tally) {
    let file = path.file_name().expect("name").to_string_lossy().to_string();
    // Like the programs' user space: size the maps declared without max_entries.
    let opts =
        ObjectOptions { zero_max_entries: Some(possible_cpus().expect("possible CPUs") as u32), ..Default::default() };
    let mut obj = match KernelObject::load_file_with(path, &opts) {
        Ok(o) => o,
        Err(e) => {
            let unsupported = matches!(e, KernelError::Unsupported(_));
            let expected: Vec<(String, String)> =
                verdicts.map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
            if unsupported {
                t.not_compared.push(format!("{file}: whole object: {}", first_line(&e.to_string())));
            } else {
                t.refused.push(format!("{file}: whole object: {}", reason(&e)));
                for (prog, v) in expected {
                    if v == "FAIL" {
                        t.agree += 1;
                    } else {
                        t.disagree
                            .push(format!("{file}/{prog}: manifest {v}, kernel refused the object: {}", reason(&e)));
                    }
                }
            }
            return;
        }
    };
    let pin_dir = obj.pin_dir().to_path_buf();
    assert!(pin_dir.is_dir(), "pin dir {} exists while loaded", pin_dir.display());
    for desc in obj.programs().to_vec() {
        let name = desc.name.clone();
        let verdict = match obj.load_program(&name) {
            Ok(_) => {
                t.loaded += 1;
                Some("OK")
            }
            Err(KernelError::Unsupported(m)) => {
                t.not_compared.push(format!("{file}/{name}: {}", first_line(&m)));
                None
            }
            Err(e) => {
                t.refused.push(format!("{file}/{name}: {}", reason(&e)));
                Some("FAIL")
            }
        };
        if let (Some(v), Some(expected)) = (verdict, verdicts.and_then(|m| m.get(&name))) {
            if v == expected {
                t.agree += 1;
            } else {
                t.disagree.push(format!("{file}/{name}: manifest {expected}, kernel now {v}"));
            }
        }
        if verdict == Some("OK") && matches!(desc.kind, ProgramKind::Xdp { attach: XdpAttach::Interface, .. }) {
            match obj.test_run_xdp(&name, packet, 1, None) {
                Ok(run) => {
                    t.test_runs += 1;
                    *t.retvals.entry(run.retval).or_default() += 1;
                }
                Err(e) => t.test_run_errors.push(format!("{file}/{name}: {e}")),
            }
        }
    }
    drop(obj);
    assert!(!pin_dir.exists(), "pin dir {} left behind after drop", pin_dir.display());
}

#[test]
fn corpus_objects_through_the_kernel() {
    if let Err(why) = availability() {
        eprintln!("SKIP corpus_objects_through_the_kernel: {why}");
        return;
    }
    let started = std::time::Instant::now();
    let manifest = manifest();
    let packet = udp64();
    let mut t = Tally::default();
    for path in objects("xdp-tools-1.3.1") {
        run_object(&path, None, &packet, &mut t);
    }
    for path in objects("linux-6.12") {
        let file = path.file_name().expect("name").to_string_lossy().to_string();
        run_object(&path, manifest.get(&file), &packet, &mut t);
    }
    println!(
        "{} programs loaded, {} refused, {} not loadable by uxdp-kernel, {} test-runs ({} test-run errors) in {:.1?}",
        t.loaded,
        t.refused.len(),
        t.not_compared.len(),
        t.test_runs,
        t.test_run_errors.len(),
        started.elapsed()
    );
    println!("retvals: {:?}", t.retvals);
    println!("refused (with reasons):");
    for r in &t.refused {
        println!("  {r}");
    }
    println!("not loadable by uxdp-kernel (not compared):");
    for r in &t.not_compared {
        println!("  {r}");
    }
    println!("test-run errors:");
    for r in &t.test_run_errors {
        println!("  {r}");
    }
    println!("manifest agreement: {} agree, {} disagree", t.agree, t.disagree.len());
    for d in &t.disagree {
        println!("  DISAGREE {d}");
    }
    assert!(t.disagree.is_empty(), "{} verdicts disagree with the manifest (listed above)", t.disagree.len());
    assert!(t.loaded > 200, "only {} programs loaded", t.loaded);
    assert!(t.test_runs > 80, "only {} test runs", t.test_runs);
}
