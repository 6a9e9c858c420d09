//! One module per subcommand.

pub mod asm;
pub mod demo;
pub mod exec;
pub mod plugin;

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
