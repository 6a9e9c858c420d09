//! Verification time per instruction, uxdp next to the kernel, for the
//! xdp-tools objects of the corpus (or the objects named on the command
//! line).
//!
//! `cargo run --release -p uxdp-verifier --example verify_timing [OBJ...]`
//!
//! uxdp: best of `UXDP_TIMING_RUNS` (20) runs of `verify` (strict).
//! Kernel: best of `UXDP_TIMING_KERNEL_RUNS` (3; 0 skips the kernel)
//! `BPF_PROG_LOAD`s of the same relocated instructions with freshly created
//! maps and `log_level = BPF_LOG_STATS`, its `verification time N usec`
//! line. Per program: time, ns per instruction of the program and per
//! processed instruction, and the ratio uxdp/kernel; at the end the
//! geometric mean of the ratios (both measured in this run).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;
use uxdp_isa::{opcode, Insn};
use uxdp_object::{MapDef, Object, ProgramKind};
use uxdp_verifier::{verify, MapInfo, ProgType, VerifyInput};

fn map_create(m: &MapDef) -> Result<OwnedFd, String> {
    let mut attr = [0u8; 128];
    for (i, v) in [m.map_type, m.key_size, m.value_size, m.max_entries.max(1), m.map_flags].iter().enumerate() {
        attr[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    // SAFETY: BPF_MAP_CREATE reads `attr` (no pointers inside) and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_mut_ptr(), attr.len() as u32) };
    if fd < 0 {
        return Err(format!("map '{}': {}", m.name, std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel just returned this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn kernel_time(obj: &Object, insns: &[Insn], pt: ProgType) -> Result<(u32, u32), String> {
    uxdp_kernel::availability()?;
    let fds = obj.maps.iter().map(map_create).collect::<Result<Vec<_>, _>>()?;
    let mut k = insns.to_vec();
    for i in &mut k {
        if i.code == opcode::LDDW && (i.src() == 5 || i.src() == 6) {
            let fd = fds.get(i.imm as usize).ok_or("bad map index")?.as_raw_fd();
            let src = if i.src() == 5 { 1 } else { 2 };
            *i = Insn::new(i.code, i.dst(), src, i.off, fd);
        }
    }
    let mut opts = uxdp_kernel::LoadOptions::new(match pt {
        ProgType::Xdp => uxdp_kernel::ProgType::XDP,
        ProgType::SocketFilter => uxdp_kernel::ProgType::SOCKET_FILTER,
    });
    opts.log_level = uxdp_kernel::raw::log_level::STATS;
    match uxdp_kernel::load_raw_with(&k, &opts) {
        Ok(p) => Ok((p.stats.verification_time_usec.unwrap_or(0), p.stats.processed_insns.unwrap_or(0))),
        Err(f) => Err(format!(
            "rejected: {}",
            f.log
                .lines()
                .rev()
                .find(|l| !l.is_empty()
                    && !l.starts_with("processed")
                    && !l.starts_with("verification")
                    && !l.starts_with("stack"))
                .unwrap_or("")
        )),
    }
}

/// Best (lowest) kernel verification time of `runs` loads.
fn kernel_best(obj: &Object, insns: &[Insn], pt: ProgType, runs: usize) -> Result<(u32, u32), String> {
    let mut best: Option<(u32, u32)> = None;
    for _ in 0..runs.max(1) {
        let (us, procd) = kernel_time(obj, insns, pt)?;
        if best.is_none_or(|(b, _)| us < b) {
            best = Some((us, procd));
        }
    }
    best.ok_or_else(|| "no kernel run".into())
}

fn main() {
    let mut files: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/objects/xdp-tools-1.3.1");
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
        v.sort();
        files = v;
    }
    let env_num = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let runs = env_num("UXDP_TIMING_RUNS", 20);
    let kernel_runs = env_num("UXDP_TIMING_KERNEL_RUNS", 3);
    println!(
        "{:<24} {:<18} {:>5} {:>7} {:>10} {:>7} {:>7} {:>7} | {:>9} {:>7} {:>7} {:>7} | {:>6}",
        "object",
        "program",
        "insns",
        "uxdp",
        "uxdp_us",
        "ns/ins",
        "ns/proc",
        "u_procd",
        "kernel_us",
        "ns/ins",
        "ns/proc",
        "k_procd",
        "ratio"
    );
    let mut log_ratios = Vec::new();
    let (mut sum_ours, mut sum_kernel) = (0f64, 0f64);
    for f in &files {
        let obj = match Object::from_file(f) {
            Ok(o) => o,
            Err(e) => {
                println!("{}: not parsed by uxdp-object: {e}", f.display());
                continue;
            }
        };
        let maps = MapInfo::of_object(&obj);
        for p in &obj.programs {
            let pt = match p.kind {
                ProgramKind::Xdp { .. } | ProgramKind::Unspec => ProgType::Xdp,
                ProgramKind::SocketFilter => ProgType::SocketFilter,
                _ => continue,
            };
            let input = VerifyInput::for_program(p, pt, &maps);
            let mut best = Duration::MAX;
            let mut procd = 0;
            let mut verdict = String::from("OK");
            for _ in 0..runs {
                match verify(&input) {
                    Ok(facts) => {
                        best = best.min(facts.elapsed);
                        procd = facts.insns_processed;
                    }
                    Err(r) => {
                        verdict = format!("REJ@{}", r.pc);
                        best = Duration::ZERO;
                        break;
                    }
                }
            }
            let n = p.insns.len().max(1) as f64;
            let ours_us = best.as_secs_f64() * 1e6;
            let file = f.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let k = if kernel_runs == 0 {
                Err("not measured".to_string())
            } else {
                kernel_best(&obj, &p.insns, pt, kernel_runs)
            };
            let (kus, kns, kpns, kproc, ratio) = match &k {
                Ok((us, kp)) => {
                    let kus = *us as f64;
                    let ratio = if kus > 0.0 && verdict == "OK" { ours_us / kus } else { f64::NAN };
                    if ratio.is_finite() && ratio > 0.0 {
                        log_ratios.push(ratio.ln());
                        sum_ours += ours_us;
                        sum_kernel += kus;
                    }
                    (
                        format!("{us}"),
                        format!("{:.0}", kus * 1000.0 / n),
                        format!("{:.0}", kus * 1000.0 / (*kp).max(1) as f64),
                        format!("{kp}"),
                        format!("{ratio:.3}"),
                    )
                }
                Err(e) => ("-".into(), "-".into(), "-".into(), e.chars().take(40).collect(), "-".into()),
            };
            println!(
                "{:<24} {:<18} {:>5} {:>7} {:>10.1} {:>7.0} {:>7.0} {:>7} | {:>9} {:>7} {:>7} {:>7} | {:>6}",
                file,
                p.name,
                p.insns.len(),
                verdict,
                ours_us,
                ours_us * 1000.0 / n,
                ours_us * 1000.0 / procd.max(1) as f64,
                procd,
                kus,
                kns,
                kpns,
                kproc,
                ratio
            );
        }
    }
    if !log_ratios.is_empty() {
        let geomean = (log_ratios.iter().sum::<f64>() / log_ratios.len() as f64).exp();
        println!(
            "uxdp/kernel verification time over {} programs: geometric mean ratio {geomean:.3}, total {:.0} us / {:.0} us = {:.3}",
            log_ratios.len(),
            sum_ours,
            sum_kernel,
            sum_ours / sum_kernel
        );
    }
}
