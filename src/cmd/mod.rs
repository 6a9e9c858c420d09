//! One module per subcommand.

pub mod asm;
pub mod demo;
pub mod exec;
pub mod filter;
pub mod hook;
pub mod map;
pub mod plugin;
pub mod prog;
pub mod replay;
pub mod verify;
pub mod xdp;

use anyhow::{bail, Context, Result};
use std::path::Path;
use uxdp_isa::Insn;

/// Parses hex bytes separated by whitespace (and optional `0x`/commas).
pub fn parse_hex_bytes(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut digits = String::new();
    for tok in text.split(|c: char| c.is_whitespace() || c == ',') {
        let tok = tok.trim_start_matches("0x");
        if tok.is_empty() {
            continue;
        }
        digits.clear();
        digits.push_str(tok);
        if digits.len() % 2 != 0 {
            bail!("hex token {tok:?} has an odd number of digits");
        }
        for i in (0..digits.len()).step_by(2) {
            let b = u8::from_str_radix(&digits[i..i + 2], 16).with_context(|| format!("bad hex byte in {tok:?}"))?;
            out.push(b);
        }
    }
    Ok(out)
}

/// The bytes of section `name` (or of the first non-empty executable
/// section when `None`) of an ELF object, as raw, unrelocated bytecode.
pub fn elf_section(bytes: &[u8], name: Option<&str>) -> Result<Vec<Insn>> {
    use object::{Object, ObjectSection, SectionKind};
    let file = object::File::parse(bytes).context("not a valid ELF object")?;
    let section = match name {
        Some(n) => file.section_by_name(n).with_context(|| {
            let names: Vec<String> = file.sections().filter_map(|s| s.name().ok().map(str::to_string)).collect();
            format!("no section {n:?} (sections: {})", names.join(", "))
        })?,
        None => file
            .sections()
            .find(|s| s.kind() == SectionKind::Text && s.size() > 0)
            .context("the object has no executable section")?,
    };
    let data = section.data().context("reading section data")?;
    Ok(uxdp_isa::insn::parse_bytes(data)?)
}

/// Whether `bytes` start with the ELF magic.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Reads a program from a file: assembly (`.s`/`.asm` or text that is not
/// hex), hex text, or raw little-endian bytecode.
pub fn read_program(path: &Path) -> Result<Vec<Insn>> {
    let bytes = if path.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
        v
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    program_from_bytes(&bytes)
}

/// Interprets file contents as assembly, hex text or raw bytecode.
pub fn program_from_bytes(bytes: &[u8]) -> Result<Vec<Insn>> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let is_hex = text.split_whitespace().all(|t| t.trim_start_matches("0x").chars().all(|c| c.is_ascii_hexdigit()));
        if is_hex && !text.trim().is_empty() {
            return Ok(uxdp_isa::insn::parse_bytes(&parse_hex_bytes(text)?)?);
        }
        if !text.trim().is_empty() {
            return Ok(uxdp_asm::assemble(text)?);
        }
    }
    Ok(uxdp_isa::insn::parse_bytes(bytes)?)
}
