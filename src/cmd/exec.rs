//! `uxdp exec`: run a bare program on a memory buffer.

use anyhow::Result;
use std::path::PathBuf;
use std::sync::Arc;
use uxdp_vm::{run_on_memory, Helpers, LoadOptions, Program, Stack};

/// Arguments of `uxdp exec`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Program: assembly, hex text or raw bytecode (`-` for standard input).
    program: PathBuf,
    /// Memory r1 points to, as hex bytes (r2 holds its length).
    #[arg(long, default_value = "")]
    mem: String,
}

/// Runs `uxdp exec`.
pub fn run(a: Args) -> Result<()> {
    let insns = super::read_program(&a.program)?;
    let mut mem = super::parse_hex_bytes(&a.mem)?;
    let mut opts = LoadOptions::new(Arc::new(Helpers::new()));
    opts.entry_regs = Some(0b110);
    let prog = Program::load(&insns, &opts)?;
    let r0 = run_on_memory(&prog, &mut mem, &mut Stack::new())?;
    println!("{r0:#x}");
    Ok(())
}
