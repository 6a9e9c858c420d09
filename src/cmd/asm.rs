//! `uxdp asm` and `uxdp disasm`.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `uxdp asm`.
#[derive(clap::Args, Debug)]
pub struct AsmArgs {
    /// Assembly file (`-` for standard input).
    input: PathBuf,
    /// Write raw bytecode here (default: hex on standard output).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Arguments of `uxdp disasm`.
#[derive(clap::Args, Debug)]
pub struct DisasmArgs {
    /// Raw bytecode, hex text, an ELF object, or `-` for standard input.
    input: PathBuf,
    /// ELF section to disassemble (default: the first executable section).
    #[arg(long, short = 'j')]
    section: Option<String>,
    /// Prefix every line with its instruction index (not re-assemblable).
    #[arg(long)]
    listing: bool,
}

/// Runs `uxdp asm`.
pub fn assemble(a: AsmArgs) -> Result<()> {
    let text = if a.input.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(&a.input).with_context(|| format!("reading {}", a.input.display()))?
    };
    let insns = uxdp_asm::assemble(&text)?;
    let bytes = uxdp_isa::insn::to_bytes(&insns);
    match a.output {
        Some(p) => std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            for ins in &insns {
                let b = ins.to_bytes();
                writeln!(out, "{}", b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" "))?;
            }
        }
    }
    Ok(())
}

/// Runs `uxdp disasm`.
pub fn disassemble(a: DisasmArgs) -> Result<()> {
    let insns = if a.input.as_os_str() != "-" && super::is_elf(&std::fs::read(&a.input).unwrap_or_default()) {
        super::elf_section(&std::fs::read(&a.input)?, a.section.as_deref())?
    } else {
        super::read_program(&a.input)?
    };
    let text = if a.listing { uxdp_asm::disassemble_listing(&insns) } else { uxdp_asm::disassemble(&insns)? };
    print!("{text}");
    Ok(())
}
