//! Verification time per instruction, uxdp next to the kernel, for the
//! xdp-tools objects of the corpus (or the objects named on the command
//! line).
//!
//! `cargo run --release -p uxdp-verifier --example verify_timing [OBJ...]`
//!
//! uxdp: best of 20 runs of `verify` (strict). Kernel: `BPF_PROG_LOAD` of
//! the same relocated instructions with freshly created maps and
//! `log_level = BPF_LOG_STATS`, its `verification time N usec` line.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;
use uxdp_isa::{opcode, Insn};
use uxdp_object::{MapDef, Object, ProgramKind};
use uxdp_verifier::{verify, MapInfo, Mode, ProgType, VerifyInput};

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

fn main() {
    let mut files: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/objects/xdp-tools-1.3.1");
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
        v.sort();
        files = v;
    }
    println!(
        "{:<28} {:<26} {:>6} {:>9} {:>10} {:>9} {:>9} | {:>10} {:>9} {:>9}",
        "object", "program", "insns", "uxdp", "uxdp_us", "ns/insn", "u_procd", "kernel_us", "ns/insn", "k_procd"
    );
    let runs: usize = std::env::var("UXDP_TIMING_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    for f in &files {
        let Ok(obj) = Object::from_file(f) else {
            println!("{}: not parsed by uxdp-object", f.display());
            continue;
        };
        let maps = MapInfo::of_object(&obj);
        for p in &obj.programs {
            let pt = match p.kind {
                ProgramKind::Xdp { .. } | ProgramKind::Unspec => ProgType::Xdp,
                ProgramKind::SocketFilter => ProgType::SocketFilter,
                _ => continue,
            };
            let input = VerifyInput { insns: &p.insns, prog_type: pt, maps: &maps, mode: Mode::Strict };
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
            let k = kernel_time(&obj, &p.insns, pt);
            let (kus, kns, kproc) = match &k {
                Ok((us, procd)) => (format!("{us}"), format!("{:.0}", *us as f64 * 1000.0 / n), format!("{procd}")),
                Err(e) => ("-".into(), "-".into(), e.chars().take(60).collect()),
            };
            println!(
                "{:<28} {:<26} {:>6} {:>9} {:>10.1} {:>9.0} {:>9} | {:>10} {:>9} {:>9}",
                file,
                p.name,
                p.insns.len(),
                verdict,
                ours_us,
                ours_us * 1000.0 / n,
                procd,
                kus,
                kns,
                kproc
            );
        }
    }
}
