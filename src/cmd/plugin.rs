//! `uxdp conformance-plugin`: the bpf_conformance plugin protocol.
//!
//! The upstream runner starts the plugin once per test with the input
//! memory as one hex argument (absent when empty) and, with `--elf`, the
//! program as an ELF file; the program (or ELF) arrives as hex bytes on
//! standard input. The plugin prints r0 in hex; on failure it exits
//! non-zero with the error on standard error.

use anyhow::{bail, Context, Result};
use std::sync::Arc;
use uxdp_vm::{conformance_helpers, run_on_memory, LoadOptions, Program, Stack};

/// Arguments of `uxdp conformance-plugin`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input memory as hex bytes (r1 points to it, r2 holds its length).
    memory: Option<String>,
    /// The program on standard input is an ELF object (section `.text` or `xdp`).
    #[arg(long)]
    elf: bool,
    /// Print a disassembly of the program to standard error first.
    #[arg(long)]
    debug: bool,
}

/// Runs `uxdp conformance-plugin`.
pub fn run(a: Args) -> Result<()> {
    let input = std::io::read_to_string(std::io::stdin()).context("reading the program from standard input")?;
    let bytes = super::parse_hex_bytes(&input)?;
    let insns = if a.elf {
        // The runner writes one function `main` in section `.text` (or `xdp`).
        if !super::is_elf(&bytes) {
            bail!("--elf: standard input is not an ELF object");
        }
        let xdp = super::elf_section(&bytes, Some("xdp"));
        xdp.or_else(|_| super::elf_section(&bytes, Some(".text")))?
    } else {
        uxdp_isa::insn::parse_bytes(&bytes)?
    };
    if a.debug {
        eprint!("{}", uxdp_asm::disassemble_listing(&insns));
    }
    let mut mem = super::parse_hex_bytes(a.memory.as_deref().unwrap_or(""))?;
    let mut opts = LoadOptions::new(Arc::new(conformance_helpers()));
    opts.entry_regs = Some(0b110);
    let prog = Program::load(&insns, &opts)?;
    let r0 = run_on_memory(&prog, &mut mem, &mut Stack::new())?;
    println!("{r0:x}");
    Ok(())
}
