//! The shared corpus (clang-compiled XDP objects from linux and xdp-tools)
//! under the JIT: every XDP program of every object runs on the first
//! packets of every capture, once interpreted and once native, each engine
//! with its own copy of the object (its own maps); outputs (verdict,
//! packet, context) or errors must be identical, run after run, so map
//! state evolves identically too.

use std::path::{Path, PathBuf};
use uxdp_xdp::{LoadedObject, ObjectOptions, RunError, Runner};

const PACKETS_PER_CAPTURE: usize = 4;

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

fn packets() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pcaps");
    let mut caps = Vec::new();
    files(&dir, "pcap", &mut caps);
    caps.sort();
    let mut out = Vec::new();
    for c in caps {
        let Ok(bytes) = std::fs::read(&c) else { continue };
        let Ok(mut r) = pcap_file::pcap::PcapReader::new(&bytes[..]) else { continue };
        for _ in 0..PACKETS_PER_CAPTURE {
            match r.next_packet() {
                Some(Ok(p)) => out.push(p.data.into_owned()),
                _ => break,
            }
        }
    }
    out
}

/// An error without addresses (each engine has its own packet frame).
fn describe(e: RunError) -> String {
    match e {
        RunError::Fault(v) => format!("fault {:?} at instruction {}", std::mem::discriminant(&v), v.pc()),
        other => other.to_string(),
    }
}

#[test]
fn corpus_programs_agree_under_the_jit() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/objects");
    let mut objs = Vec::new();
    files(&dir, "o", &mut objs);
    objs.sort();
    let pkts = packets();
    assert!(!objs.is_empty() && !pkts.is_empty(), "corpus missing");
    let (mut programs, mut runs, mut faults) = (0usize, 0usize, 0usize);
    for path in &objs {
        // `a` on the interpreter, `b` on the JIT (the loader's default).
        let Ok(bytes) = std::fs::read(path) else { continue };
        let Ok(obj) = uxdp_object::Object::parse(&bytes) else { continue };
        let interp = ObjectOptions { interpreter: true, ..ObjectOptions::default() };
        let (Ok(a), Ok(b)) = (LoadedObject::load_with(&obj, &interp), LoadedObject::load(&obj)) else { continue };
        for p in b.xdp_programs() {
            if let (Ok(_), Some(e)) = (&p.program, &p.jit_error) {
                panic!("{}: {}: not JIT-compiled: {e}", path.display(), p.name);
            }
            if let Ok(prog) = &p.program {
                assert!(prog.native().is_some(), "{}: {}: no native code", path.display(), p.name);
            }
        }
        let (Ok(mut ra), Ok(mut rb)) = (Runner::new(&a), Runner::new(&b)) else { continue };
        for (pa, pb) in a.xdp_programs().zip(b.xdp_programs()) {
            let (Ok(xa), Ok(xb)) = (&pa.program, &pb.program) else { continue };
            if pa.test_run_refusal().is_some() {
                continue;
            }
            assert!(xb.native().is_some() && xa.native().is_none());
            programs += 1;
            for (i, pkt) in pkts.iter().enumerate() {
                let oa = ra.run(xa, pkt, None).map_err(describe);
                let ob = rb.run(xb, pkt, None).map_err(describe);
                assert_eq!(oa, ob, "{}: {} packet {i}", path.display(), pa.name);
                runs += 1;
                faults += oa.is_err() as usize;
            }
        }
    }
    println!("corpus under the JIT: {programs} programs, {runs} runs agreed ({faults} refused or faulted in both)");
    assert!(programs > 0);
}
