//! `uxdp verify`: prove the programs of an object safe, kernel-style.

use super::xdp::ObjectFile;
use anyhow::{bail, Result};
use clap::Args as ClapArgs;
use std::path::PathBuf;
use uxdp_object::ProgramKind;
use uxdp_verifier::{MapInfo, Mode, ProgType, VerifyInput};

/// `uxdp verify`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The object file.
    object: PathBuf,
    /// Only this program (function or section name).
    #[arg(long)]
    prog: Option<String>,
    /// Permissive mode: accept what only lacks proofs of memory safety (the
    /// runtime checks those accesses); strict (kernel-like) is the default.
    #[arg(long)]
    permissive: bool,
    /// After a rejection, print the register states involved; after an
    /// acceptance, instructions processed and time.
    #[arg(long, short)]
    verbose: bool,
}

/// Runs `uxdp verify`; fails if any program is rejected.
pub fn run(a: Args) -> Result<()> {
    let file = ObjectFile::open(&a.object)?;
    let obj = &file.object;
    let maps = MapInfo::of_object(obj);
    let mode = if a.permissive { Mode::Permissive } else { Mode::Strict };
    let mut rejected = 0;
    let mut seen = 0;
    for def in &obj.programs {
        if a.prog.as_ref().is_some_and(|p| *p != def.name && *p != def.section) {
            continue;
        }
        seen += 1;
        let prog_type = if def.runs_as_xdp() {
            ProgType::Xdp
        } else if matches!(def.kind, ProgramKind::SocketFilter)
            || matches!(def.kind, ProgramKind::Unspec)
                && ProgramKind::from_legacy_section(&def.section) == ProgramKind::SocketFilter
        {
            ProgType::SocketFilter
        } else {
            let kind = match def.kind {
                ProgramKind::Unspec => ProgramKind::from_legacy_section(&def.section),
                ref k => k.clone(),
            };
            println!("PROG {} UNSUPPORTED {}", def.name, kind.type_name());
            continue;
        };
        match uxdp_verifier::verify(&VerifyInput::for_program(def, prog_type, &maps).mode(mode)) {
            Ok(f) => {
                if a.verbose {
                    println!(
                        "PROG {} OK ({} instructions processed, {} us)",
                        def.name,
                        f.insns_processed,
                        f.elapsed.as_micros()
                    );
                } else {
                    println!("PROG {} OK", def.name);
                }
            }
            Err(r) => {
                rejected += 1;
                println!("PROG {} REJECTED {}: {}: {} [{}]", def.name, r.pc, r.insn, r.message, r.rule);
                if a.verbose {
                    println!("  {}", r.state);
                }
            }
        }
    }
    if seen == 0 {
        bail!(
            "{}: no program {} (programs: {})",
            a.object.display(),
            a.prog.as_deref().unwrap_or(""),
            obj.programs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    if rejected > 0 {
        bail!("{rejected} program(s) rejected");
    }
    Ok(())
}
