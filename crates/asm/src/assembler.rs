//! Text to instruction slots. See the crate documentation for the syntax.

use crate::{AsmError, AsmErrorKind as K};
use std::collections::HashMap;
use uxdp_isa::opcode::{self, alu, atomic, jmp, mode, size};
use uxdp_isa::Insn;

type R<T> = Result<T, K>;

/// Assembles `text` into instruction slots (`lddw` yields two).
///
/// Errors carry the 1-based line number; see [`crate::AsmErrorKind`] for what
/// is rejected. Relative jump offsets are not checked against the program
/// length (that is [`uxdp_isa::validate()`]'s job), so single instructions
/// with any offset can be assembled.
pub fn assemble(text: &str) -> Result<Vec<Insn>, AsmError> {
    let mut out: Vec<Insn> = Vec::new();
    // Label name -> (slot index, line of definition).
    let mut labels: HashMap<String, (usize, usize)> = HashMap::new();
    let mut first_exit: Option<usize> = None;
    let mut fixups: Vec<Fixup> = Vec::new();

    for (idx, raw_line) in text.lines().enumerate() {
        let line = idx + 1;
        let code = match raw_line.find('#') {
            Some(p) => &raw_line[..p],
            None => raw_line,
        };
        let mut rest = code.trim();
        if rest.is_empty() {
            continue;
        }
        let (mut mnemonic, mut operands) = split_mnemonic(rest);
        if let Some(name) = mnemonic.strip_suffix(':') {
            if !valid_label(name) {
                return Err(AsmError::new(line, K::InvalidLabelName(name.to_string())));
            }
            if let Some(&(_, previous_line)) = labels.get(name) {
                return Err(AsmError::new(line, K::DuplicateLabel { name: name.to_string(), previous_line }));
            }
            labels.insert(name.to_string(), (out.len(), line));
            rest = operands.trim();
            if rest.is_empty() {
                continue;
            }
            (mnemonic, operands) = split_mnemonic(rest);
        }
        if mnemonic == "exit" && first_exit.is_none() {
            first_exit = Some(out.len());
        }
        let ops = split_operands(operands).map_err(|k| AsmError::new(line, k))?;
        let enc = encode(mnemonic, &ops).map_err(|k| AsmError::new(line, k))?;
        if let Some((label, kind)) = enc.fixup {
            fixups.push(Fixup { line, pc: out.len(), label, kind });
        }
        out.extend_from_slice(&enc.slots);
    }

    for f in fixups {
        let target = match labels.get(&f.label) {
            Some(&(pc, _)) => pc,
            None => match first_exit {
                Some(pc) if f.label == "exit" => pc,
                _ => return Err(AsmError::new(f.line, K::UnknownLabel(f.label))),
            },
        };
        let rel = target as i64 - f.pc as i64 - 1;
        let slot = &mut out[f.pc];
        match f.kind {
            FixKind::Off16 => {
                slot.off = i16::try_from(rel)
                    .map_err(|_| AsmError::new(f.line, K::JumpOutOfRange { label: f.label.clone(), offset: rel }))?;
            }
            FixKind::Imm32 => {
                // A program cannot have 2^31 slots, so this cannot fail in practice.
                slot.imm = i32::try_from(rel)
                    .map_err(|_| AsmError::new(f.line, K::JumpOutOfRange { label: f.label.clone(), offset: rel }))?;
            }
        }
    }
    Ok(out)
}

/// Where a label's relative offset goes.
#[derive(Clone, Copy, Debug)]
enum FixKind {
    /// The 16-bit `off` field (jumps).
    Off16,
    /// The 32-bit `imm` field (`ja32`, `call local`, `lddw func`).
    Imm32,
}

struct Fixup {
    line: usize,
    pc: usize,
    label: String,
    kind: FixKind,
}

/// One encoded instruction and its pending label reference.
struct Encoded {
    slots: Vec<Insn>,
    fixup: Option<(String, FixKind)>,
}

impl Encoded {
    fn one(i: Insn) -> Self {
        Encoded { slots: vec![i], fixup: None }
    }
}

fn split_mnemonic(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(p) => (&s[..p], &s[p..]),
        None => (s, ""),
    }
}

fn valid_label(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$'))
}

/// Splits the operand text on commas and whitespace. Whitespace inside
/// `[...]` is dropped so `[%r1 + 2]` is one operand.
fn split_operands(s: &str) -> R<Vec<String>> {
    let mut ops = Vec::new();
    let mut cur = String::new();
    let mut in_bracket = false;
    // Whether an operand has been seen since the last comma (or the start).
    let mut have_operand = false;
    let mut seen_comma = false;
    for c in s.chars() {
        if in_bracket {
            match c {
                ']' => {
                    in_bracket = false;
                    cur.push(c);
                }
                c if c.is_whitespace() => {}
                c => cur.push(c),
            }
            continue;
        }
        match c {
            ',' => {
                if !cur.is_empty() {
                    ops.push(std::mem::take(&mut cur));
                    have_operand = true;
                }
                if !have_operand {
                    return Err(K::EmptyOperand);
                }
                have_operand = false;
                seen_comma = true;
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    ops.push(std::mem::take(&mut cur));
                    have_operand = true;
                }
            }
            '[' => {
                in_bracket = true;
                cur.push(c);
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        ops.push(cur);
        have_operand = true;
    }
    if seen_comma && !have_operand {
        return Err(K::EmptyOperand);
    }
    Ok(ops)
}

fn count(mnemonic: &str, ops: &[String], n: usize, expected: &'static str) -> R<()> {
    if ops.len() != n {
        return Err(K::OperandCount { mnemonic: mnemonic.to_string(), expected, got: ops.len() });
    }
    Ok(())
}

fn size_from_suffix(s: &str) -> Option<u8> {
    Some(match s {
        "b" => size::B,
        "h" => size::H,
        "w" => size::W,
        "dw" => size::DW,
        _ => return None,
    })
}

fn alu_op(base: &str) -> Option<(u8, i16)> {
    Some(match base {
        "add" => (alu::ADD, 0),
        "sub" => (alu::SUB, 0),
        "mul" => (alu::MUL, 0),
        "div" => (alu::DIV, 0),
        "sdiv" => (alu::DIV, 1),
        "or" => (alu::OR, 0),
        "and" => (alu::AND, 0),
        "lsh" => (alu::LSH, 0),
        "rsh" => (alu::RSH, 0),
        "mod" => (alu::MOD, 0),
        "smod" => (alu::MOD, 1),
        "xor" => (alu::XOR, 0),
        "mov" => (alu::MOV, 0),
        "arsh" => (alu::ARSH, 0),
        _ => return None,
    })
}

fn jmp_op(base: &str) -> Option<u8> {
    Some(match base {
        "jeq" => jmp::JEQ,
        "jgt" => jmp::JGT,
        "jge" => jmp::JGE,
        "jset" => jmp::JSET,
        "jne" => jmp::JNE,
        "jsgt" => jmp::JSGT,
        "jsge" => jmp::JSGE,
        "jlt" => jmp::JLT,
        "jle" => jmp::JLE,
        "jslt" => jmp::JSLT,
        "jsle" => jmp::JSLE,
        _ => return None,
    })
}

/// Splits a `32` width suffix: (base, is_32).
fn width_suffix(m: &str) -> (&str, bool) {
    match m.strip_suffix("32") {
        Some(b) => (b, true),
        None => (m, false),
    }
}

fn encode(m: &str, ops: &[String]) -> R<Encoded> {
    use opcode::{
        CLASS_ALU, CLASS_ALU64, CLASS_JMP, CLASS_JMP32, CLASS_LD, CLASS_LDX, CLASS_ST, CLASS_STX, SRC_K, SRC_X,
    };
    let invalid = || K::InvalidMnemonic(m.to_string());

    match m {
        "exit" => {
            count(m, ops, 0, "0")?;
            return Ok(Encoded::one(Insn::new(opcode::EXIT, 0, 0, 0, 0)));
        }
        "ja" => {
            count(m, ops, 1, "1")?;
            let mut i = Insn::new(opcode::JA, 0, 0, 0, 0);
            let fixup = jump_target(&ops[0], FixKind::Off16, &mut i)?;
            return Ok(Encoded { slots: vec![i], fixup });
        }
        "ja32" | "gotol" => {
            count(m, ops, 1, "1")?;
            let mut i = Insn::new(opcode::GOTOL, 0, 0, 0, 0);
            let fixup = jump_target(&ops[0], FixKind::Imm32, &mut i)?;
            return Ok(Encoded { slots: vec![i], fixup });
        }
        "call" => return encode_call(ops),
        "callx" => {
            count(m, ops, 1, "1")?;
            return Ok(Encoded::one(Insn::new(opcode::CALLX, reg(&ops[0])?, 0, 0, 0)));
        }
        "lddw" => return encode_lddw(ops),
        "lock" => return encode_lock(ops),
        "neg" | "neg32" => {
            count(m, ops, 1, "1")?;
            let class = if m == "neg32" { CLASS_ALU } else { CLASS_ALU64 };
            return Ok(Encoded::one(Insn::new(class | SRC_K | alu::NEG, reg(&ops[0])?, 0, 0, 0)));
        }
        _ => {}
    }

    // Byte swaps: le16, be32, swap64, bswap16 ...
    for (prefix, code) in [
        ("le", CLASS_ALU | SRC_K | alu::END),
        ("be", CLASS_ALU | SRC_X | alu::END),
        ("swap", CLASS_ALU64 | SRC_K | alu::END),
        ("bswap", CLASS_ALU64 | SRC_K | alu::END),
    ] {
        if let Some(bits) = m.strip_prefix(prefix) {
            let bits = match bits {
                "16" => 16,
                "32" => 32,
                "64" => 64,
                _ => return Err(invalid()),
            };
            count(m, ops, 1, "1")?;
            return Ok(Encoded::one(Insn::new(code, reg(&ops[0])?, 0, 0, bits)));
        }
    }

    // Sign-extending moves.
    let movsx = match m {
        "movsx864" => Some((CLASS_ALU64, 8)),
        "movsx1664" => Some((CLASS_ALU64, 16)),
        "movsx3264" => Some((CLASS_ALU64, 32)),
        "movsx832" => Some((CLASS_ALU, 8)),
        "movsx1632" => Some((CLASS_ALU, 16)),
        _ => None,
    };
    if let Some((class, bits)) = movsx {
        count(m, ops, 2, "2")?;
        return Ok(Encoded::one(alu_insn(class | alu::MOV, bits, &ops[0], &ops[1])?));
    }

    // Two-operand ALU.
    let (base, is32) = width_suffix(m);
    if let Some((op, off)) = alu_op(base) {
        count(m, ops, 2, "2")?;
        let class = if is32 { CLASS_ALU } else { CLASS_ALU64 };
        return Ok(Encoded::one(alu_insn(class | op, off, &ops[0], &ops[1])?));
    }

    // Conditional jumps.
    if let Some(op) = jmp_op(base) {
        count(m, ops, 3, "3")?;
        let class = if is32 { CLASS_JMP32 } else { CLASS_JMP };
        let dst = reg(&ops[0])?;
        let mut i = if ops[1].starts_with('%') {
            Insn::new(class | SRC_X | op, dst, reg(&ops[1])?, 0, 0)
        } else {
            Insn::new(class | SRC_K | op, dst, 0, 0, imm32(&ops[1])?)
        };
        let fixup = jump_target(&ops[2], FixKind::Off16, &mut i)?;
        return Ok(Encoded { slots: vec![i], fixup });
    }

    // Loads and stores.
    if let Some(sfx) = m.strip_prefix("ldxs") {
        let sz = size_from_suffix(sfx).filter(|&s| s != size::DW).ok_or_else(invalid)?;
        count(m, ops, 2, "2")?;
        let (src, off) = mem(&ops[1])?;
        return Ok(Encoded::one(Insn::new(CLASS_LDX | mode::MEMSX | sz, reg(&ops[0])?, src, off, 0)));
    }
    if let Some(sfx) = m.strip_prefix("ldx") {
        let sz = size_from_suffix(sfx).ok_or_else(invalid)?;
        count(m, ops, 2, "2")?;
        let dst = reg(&ops[0])?;
        let (src, off) = mem(&ops[1])?;
        return Ok(Encoded::one(Insn::new(CLASS_LDX | mode::MEM | sz, dst, src, off, 0)));
    }
    if let Some(sfx) = m.strip_prefix("stx") {
        let sz = size_from_suffix(sfx).ok_or_else(invalid)?;
        count(m, ops, 2, "2")?;
        let (dst, off) = mem(&ops[0])?;
        return Ok(Encoded::one(Insn::new(CLASS_STX | mode::MEM | sz, dst, reg(&ops[1])?, off, 0)));
    }
    if let Some(sfx) = m.strip_prefix("st") {
        let sz = size_from_suffix(sfx).ok_or_else(invalid)?;
        count(m, ops, 2, "2")?;
        let (dst, off) = mem(&ops[0])?;
        return Ok(Encoded::one(Insn::new(CLASS_ST | mode::MEM | sz, dst, 0, off, imm32(&ops[1])?)));
    }
    if let Some(sfx) = m.strip_prefix("ldabs") {
        let sz = size_from_suffix(sfx).filter(|&s| s != size::DW).ok_or_else(invalid)?;
        count(m, ops, 1, "1")?;
        return Ok(Encoded::one(Insn::new(CLASS_LD | mode::ABS | sz, 0, 0, 0, imm32(&ops[0])?)));
    }
    if let Some(sfx) = m.strip_prefix("ldind") {
        let sz = size_from_suffix(sfx).filter(|&s| s != size::DW).ok_or_else(invalid)?;
        count(m, ops, 2, "2")?;
        return Ok(Encoded::one(Insn::new(CLASS_LD | mode::IND | sz, 0, reg(&ops[0])?, 0, imm32(&ops[1])?)));
    }
    Err(invalid())
}

/// ALU instruction with a register or immediate source.
fn alu_insn(code: u8, off: i16, dst: &str, src: &str) -> R<Insn> {
    let dst = reg(dst)?;
    Ok(if src.starts_with('%') {
        Insn::new(code | opcode::SRC_X, dst, reg(src)?, off, 0)
    } else {
        Insn::new(code | opcode::SRC_K, dst, 0, off, imm32(src)?)
    })
}

/// Fills a relative target into `i` (numeric) or returns the label to fix up.
fn jump_target(tok: &str, kind: FixKind, i: &mut Insn) -> R<Option<(String, FixKind)>> {
    if tok.starts_with('+') || tok.starts_with('-') {
        match kind {
            FixKind::Off16 => i.off = off16(tok)?,
            FixKind::Imm32 => i.imm = imm32(tok)?,
        }
        Ok(None)
    } else if valid_label(tok) {
        Ok(Some((tok.to_string(), kind)))
    } else {
        Err(K::UnknownLabel(tok.to_string()))
    }
}

fn encode_call(ops: &[String]) -> R<Encoded> {
    use opcode::call::{HELPER, KFUNC, LOCAL};
    let helper = |t: &str| -> R<Encoded> {
        if t.starts_with('%') {
            Ok(Encoded::one(Insn::new(opcode::CALLX, reg(t)?, 0, 0, 0)))
        } else {
            Ok(Encoded::one(Insn::new(opcode::CALL, 0, HELPER, 0, imm32(t)?)))
        }
    };
    let wrong = |expected| K::OperandCount { mnemonic: "call".into(), expected, got: ops.len() };
    match ops.first().map(String::as_str) {
        None => Err(wrong("1 to 3")),
        Some("helper") => match ops {
            [_, t] => helper(t),
            _ => Err(wrong("2 with helper")),
        },
        Some("local") => match ops {
            [_, t] => {
                let mut i = Insn::new(opcode::CALL, 0, LOCAL, 0, 0);
                let fixup = jump_target(t, FixKind::Imm32, &mut i)?;
                Ok(Encoded { slots: vec![i], fixup })
            }
            _ => Err(wrong("2 with local")),
        },
        Some("kfunc" | "runtime") => match ops {
            [_, id] => Ok(Encoded::one(Insn::new(opcode::CALL, 0, KFUNC, 0, imm32(id)?))),
            [_, id, off] => Ok(Encoded::one(Insn::new(opcode::CALL, 0, KFUNC, off16(off)?, imm32(id)?))),
            _ => Err(wrong("2 or 3 with kfunc")),
        },
        Some(t) if ops.len() == 1 => helper(t),
        Some(mode) => Err(K::InvalidCallMode(mode.to_string())),
    }
}

fn encode_lddw(ops: &[String]) -> R<Encoded> {
    use opcode::pseudo;
    let wrong = |expected| K::OperandCount { mnemonic: "lddw".into(), expected, got: ops.len() };
    if ops.len() < 2 {
        return Err(wrong("2 (or a pseudo kind and its values)"));
    }
    let dst = reg(&ops[0])?;
    let pair = |src: u8, lo: i32, hi: i32| [Insn::new(opcode::LDDW, dst, src, 0, lo), Insn::new(0, 0, 0, 0, hi)];
    let kind = ops[1].as_str();
    let simple = match kind {
        "map_fd" => Some(pseudo::MAP_FD),
        "map_idx" => Some(pseudo::MAP_IDX),
        "btf_id" => Some(pseudo::BTF_ID),
        _ => None,
    };
    if let Some(src) = simple {
        if ops.len() != 3 {
            return Err(wrong("3 with map_fd, map_idx or btf_id"));
        }
        return Ok(Encoded { slots: pair(src, imm32(&ops[2])?, 0).to_vec(), fixup: None });
    }
    let valued = match kind {
        "map_value" => Some(pseudo::MAP_VALUE),
        "map_idx_value" => Some(pseudo::MAP_IDX_VALUE),
        _ => None,
    };
    if let Some(src) = valued {
        if ops.len() != 4 {
            return Err(wrong("4 with map_value or map_idx_value"));
        }
        return Ok(Encoded { slots: pair(src, imm32(&ops[2])?, imm32(&ops[3])?).to_vec(), fixup: None });
    }
    if kind == "func" {
        if ops.len() != 3 {
            return Err(wrong("3 with func"));
        }
        let mut slots = pair(pseudo::FUNC, 0, 0);
        let fixup = jump_target(&ops[2], FixKind::Imm32, &mut slots[0])?;
        return Ok(Encoded { slots: slots.to_vec(), fixup });
    }
    if ops.len() != 2 {
        return Err(wrong("2"));
    }
    if kind.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err(K::InvalidLddwKind(kind.to_string()));
    }
    let v = imm64(kind)?;
    Ok(Encoded { slots: pair(pseudo::IMM64, v as u32 as i32, (v >> 32) as u32 as i32).to_vec(), fixup: None })
}

fn encode_lock(ops: &[String]) -> R<Encoded> {
    let (fetch, rest) = match ops.first().map(String::as_str) {
        Some("fetch") => (true, &ops[1..]),
        _ => (false, ops),
    };
    let [op, dst, src] = rest else {
        return Err(K::LockOperandCount);
    };
    let (base, is32) = width_suffix(op);
    let f = if fetch { atomic::FETCH } else { 0 };
    let imm = match base {
        "add" => atomic::ADD | f,
        "or" => atomic::OR | f,
        "and" => atomic::AND | f,
        "xor" => atomic::XOR | f,
        "xchg" => atomic::XCHG,
        "cmpxchg" => atomic::CMPXCHG,
        _ => return Err(K::InvalidMnemonic(format!("lock {op}"))),
    };
    let sz = if is32 { size::W } else { size::DW };
    let (dst, off) = mem(dst)?;
    Ok(Encoded::one(Insn::new(opcode::CLASS_STX | mode::ATOMIC | sz, dst, reg(src)?, off, imm)))
}

/// `%r0` … `%r15` (11-15 only encodable, for negative tests, as upstream).
fn reg(tok: &str) -> R<u8> {
    let bad = || K::InvalidRegister(tok.to_string());
    let digits = tok.strip_prefix("%r").ok_or_else(bad)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return Err(bad());
    }
    match digits.parse::<u8>() {
        Ok(n) if n <= 15 => Ok(n),
        _ => Err(bad()),
    }
}

/// `[%rN]`, `[%rN+OFF]`, `[%rN-OFF]`.
fn mem(tok: &str) -> R<(u8, i16)> {
    let bad = || K::InvalidMemoryOperand(tok.to_string());
    let inner = tok.strip_prefix('[').and_then(|t| t.strip_suffix(']')).ok_or_else(bad)?;
    match inner.find(['+', '-']) {
        Some(p) => Ok((reg(&inner[..p])?, off16(&inner[p..])?)),
        None => Ok((reg(inner)?, 0)),
    }
}

/// A parsed integer literal: sign, base and magnitude.
struct Num {
    neg: bool,
    hex: bool,
    mag: u64,
}

enum NumErr {
    Syntax,
    Overflow,
}

fn parse_num(tok: &str) -> Result<Num, NumErr> {
    let (neg, body) = match tok.as_bytes().first() {
        Some(b'-') => (true, &tok[1..]),
        Some(b'+') => (false, &tok[1..]),
        _ => (false, tok),
    };
    let (hex, digits) = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(d) => (true, d),
        None => (false, body),
    };
    if digits.is_empty() {
        return Err(NumErr::Syntax);
    }
    let radix = if hex { 16 } else { 10 };
    let mut mag: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix).ok_or(NumErr::Syntax)?;
        mag = mag.checked_mul(radix as u64).and_then(|m| m.checked_add(d as u64)).ok_or(NumErr::Overflow)?;
    }
    Ok(Num { neg, hex, mag })
}

/// A 32-bit immediate: decimal in `i32`, hex up to `0xffffffff` (bit pattern),
/// negative (decimal or hex) down to `i32::MIN`.
pub(crate) fn imm32(tok: &str) -> R<i32> {
    let range = || K::Imm32Range(tok.to_string());
    let n = parse_num(tok).map_err(|e| match e {
        NumErr::Syntax => K::InvalidNumber(tok.to_string()),
        NumErr::Overflow => range(),
    })?;
    if n.neg {
        if n.mag > 1 << 31 {
            return Err(range());
        }
        Ok((-(n.mag as i64)) as i32)
    } else if n.hex {
        u32::try_from(n.mag).map(|v| v as i32).map_err(|_| range())
    } else {
        i32::try_from(n.mag).map_err(|_| range())
    }
}

/// A 16-bit offset: decimal in `i16`, hex up to `0xffff` (bit pattern),
/// negative down to `i16::MIN`.
fn off16(tok: &str) -> R<i16> {
    let range = || K::OffsetRange(tok.to_string());
    let n = parse_num(tok).map_err(|e| match e {
        NumErr::Syntax => K::InvalidNumber(tok.to_string()),
        NumErr::Overflow => range(),
    })?;
    if n.neg {
        if n.mag > 1 << 15 {
            return Err(range());
        }
        Ok((-(n.mag as i64)) as i16)
    } else if n.hex {
        u16::try_from(n.mag).map(|v| v as i16).map_err(|_| range())
    } else {
        i16::try_from(n.mag).map_err(|_| range())
    }
}

/// A 64-bit immediate: any `u64`, or a negative value down to `i64::MIN`.
fn imm64(tok: &str) -> R<u64> {
    let range = || K::Imm64Range(tok.to_string());
    let n = parse_num(tok).map_err(|e| match e {
        NumErr::Syntax => K::InvalidNumber(tok.to_string()),
        NumErr::Overflow => range(),
    })?;
    if n.neg {
        if n.mag > 1 << 63 {
            return Err(range());
        }
        Ok((n.mag as i64).wrapping_neg() as u64)
    } else {
        Ok(n.mag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uxdp_isa::Instruction;

    fn one(s: &str) -> Vec<Insn> {
        assemble(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> AsmError {
        match assemble(s) {
            Ok(v) => panic!("{s} assembled to {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn basic_encodings() {
        assert_eq!(one("mov32 %r0, 1"), vec![Insn::new(0xb4, 0, 0, 0, 1)]);
        assert_eq!(one("mov %r0, %r1"), vec![Insn::new(0xbf, 0, 1, 0, 0)]);
        assert_eq!(one("sdiv32 %r2, -3"), vec![Insn::new(0x34, 2, 0, 1, -3)]);
        assert_eq!(one("smod %r2, %r3"), vec![Insn::new(0x9f, 2, 3, 1, 0)]);
        assert_eq!(one("movsx1632 %r0, %r1"), vec![Insn::new(0xbc, 0, 1, 16, 0)]);
        assert_eq!(one("movsx3264 %r0, %r1"), vec![Insn::new(0xbf, 0, 1, 32, 0)]);
        assert_eq!(one("neg32 %r4"), vec![Insn::new(0x84, 4, 0, 0, 0)]);
        assert_eq!(one("be16 %r3"), vec![Insn::new(0xdc, 3, 0, 0, 16)]);
        assert_eq!(one("le64 %r3"), vec![Insn::new(0xd4, 3, 0, 0, 64)]);
        assert_eq!(one("bswap32 %r3"), vec![Insn::new(0xd7, 3, 0, 0, 32)]);
        assert_eq!(one("ldxh %r0, [%r1+2]"), vec![Insn::new(0x69, 0, 1, 2, 0)]);
        assert_eq!(one("ldxsw %r0, [%r10-4]"), vec![Insn::new(0x81, 0, 10, -4, 0)]);
        assert_eq!(one("ldxdw %r0, [ %r1 + 8 ]"), vec![Insn::new(0x79, 0, 1, 8, 0)]);
        assert_eq!(one("ldxb %r0, [%r1]"), vec![Insn::new(0x71, 0, 1, 0, 0)]);
        assert_eq!(one("stw [%r1+4], 0x11223344"), vec![Insn::new(0x62, 1, 0, 4, 0x11223344)]);
        assert_eq!(one("stxdw [%r10-8], %r1"), vec![Insn::new(0x7b, 10, 1, -8, 0)]);
        assert_eq!(one("lock fetch add32 [%r10-8], %r1"), vec![Insn::new(0xc3, 10, 1, -8, 1)]);
        assert_eq!(one("lock xchg [%r10-8], %r1"), vec![Insn::new(0xdb, 10, 1, -8, 0xe1)]);
        assert_eq!(one("lock fetch cmpxchg32 [%r10-8], %r1"), vec![Insn::new(0xc3, 10, 1, -8, 0xf1)]);
        assert_eq!(one("call 5"), vec![Insn::new(0x85, 0, 0, 0, 5)]);
        assert_eq!(one("call helper 5"), vec![Insn::new(0x85, 0, 0, 0, 5)]);
        assert_eq!(one("call %r2"), vec![Insn::new(0x8d, 2, 0, 0, 0)]);
        assert_eq!(one("call helper %r3"), vec![Insn::new(0x8d, 3, 0, 0, 0)]);
        assert_eq!(one("callx %r4"), vec![Insn::new(0x8d, 4, 0, 0, 0)]);
        assert_eq!(one("call local +4"), vec![Insn::new(0x85, 0, 1, 0, 4)]);
        assert_eq!(one("call kfunc 12"), vec![Insn::new(0x85, 0, 2, 0, 12)]);
        assert_eq!(one("call runtime 12"), vec![Insn::new(0x85, 0, 2, 0, 12)]);
        assert_eq!(one("call kfunc 12, 3"), vec![Insn::new(0x85, 0, 2, 3, 12)]);
        assert_eq!(one("ldabsh 12"), vec![Insn::new(0x28, 0, 0, 0, 12)]);
        assert_eq!(one("ldindw %r1, 4"), vec![Insn::new(0x40, 0, 1, 0, 4)]);
        assert_eq!(one("ja32 -2"), vec![Insn::new(0x06, 0, 0, 0, -2)]);
        assert_eq!(one("jsle32 %r1, %r2, +7"), vec![Insn::new(0xde, 1, 2, 7, 0)]);
        assert_eq!(
            one("lddw %r1, 0x1122334455667788"),
            vec![Insn::new(0x18, 1, 0, 0, 0x55667788), Insn::new(0, 0, 0, 0, 0x11223344)]
        );
        assert_eq!(one("lddw %r1, -1"), vec![Insn::new(0x18, 1, 0, 0, -1), Insn::new(0, 0, 0, 0, -1)]);
        assert_eq!(one("lddw %r1, map_value 3, 8"), vec![Insn::new(0x18, 1, 2, 0, 3), Insn::new(0, 0, 0, 0, 8)]);
        assert_eq!(one("lddw %r1, map_fd 3"), vec![Insn::new(0x18, 1, 1, 0, 3), Insn::new(0, 0, 0, 0, 0)]);
        assert_eq!(one("lddw %r1, func -3"), vec![Insn::new(0x18, 1, 4, 0, -3), Insn::new(0, 0, 0, 0, 0)]);
        assert_eq!(one("exit"), vec![Insn::new(0x95, 0, 0, 0, 0)]);
    }

    #[test]
    fn labels_resolve_backwards_and_forwards() {
        let p = one(
            "start:\n  ja end # comment\nlddw %r0, 1\nloop: jne %r0, 0, start\ncall local f\nlddw %r1, func f\nend:\nexit\nf:\nja32 loop",
        );
        // slots: 0 ja, 1-2 lddw, 3 jne, 4 call, 5-6 lddw, 7 exit, 8 ja32
        assert_eq!(p[0].off, 6);
        assert_eq!(p[3].off, -4);
        assert_eq!(p[4].imm, 3);
        assert_eq!(p[5].imm, 2);
        assert_eq!(p[8].imm, -6);
    }

    #[test]
    fn implicit_exit_label() {
        let p = one("jeq %r1, 0, exit\nmov %r0, 1\nexit\nexit");
        assert_eq!(p[0].off, 1);
        // An explicit label named exit wins.
        let p = one("jeq %r1, 0, exit\nexit\nexit:\nexit");
        assert_eq!(p[0].off, 1);
    }

    #[test]
    fn range_checks_follow_upstream() {
        assert_eq!(one("mov32 %r0, 2147483647")[0].imm, i32::MAX);
        assert_eq!(one("mov32 %r0, -2147483648")[0].imm, i32::MIN);
        assert_eq!(one("mov32 %r0, 0xffffffff")[0].imm, -1);
        assert_eq!(err("mov32 %r0, 2147483648").kind, K::Imm32Range("2147483648".into()));
        assert_eq!(err("mov32 %r0, -2147483649").kind, K::Imm32Range("-2147483649".into()));
        assert_eq!(err("mov32 %r0, 0x100000000").kind, K::Imm32Range("0x100000000".into()));
        assert_eq!(err("mov %r0, 99999999999999999999999").kind, K::Imm32Range("99999999999999999999999".into()));
        assert_eq!(one("ldxb %r0, [%r1+0xffff]")[0].off, -1);
        assert_eq!(one("ldxb %r0, [%r1-32768]")[0].off, i16::MIN);
        assert_eq!(err("ldxb %r0, [%r1+0x10000]").kind, K::OffsetRange("+0x10000".into()));
        assert_eq!(err("ldxb %r0, [%r1+32768]").kind, K::OffsetRange("+32768".into()));
        assert_eq!(err("ja +32768").kind, K::OffsetRange("+32768".into()));
        assert_eq!(one("lddw %r0, 18446744073709551615")[1].imm, -1);
        assert_eq!(err("lddw %r0, 18446744073709551616").kind, K::Imm64Range("18446744073709551616".into()));
        assert_eq!(err("mov %r0, 12abc").kind, K::InvalidNumber("12abc".into()));
    }

    #[test]
    fn errors_name_the_line_and_problem() {
        let e = err("mov %r0, 1\n\n# c\nor %r0, %r50\nexit");
        assert_eq!(e.line, 4);
        assert_eq!(e.kind, K::InvalidRegister("%r50".into()));
        assert!(e.to_string().contains("Invalid register"), "{e}");
        assert_eq!(err("lock or [%r10-8]").kind, K::LockOperandCount);
        assert_eq!(err("lock").kind, K::LockOperandCount);
        assert_eq!(err("lock fetch").kind, K::LockOperandCount);
        assert_eq!(err("lock nand [%r10-8], %r1").kind, K::InvalidMnemonic("lock nand".into()));
        assert_eq!(err("ldxq %r0, %r1").kind, K::InvalidMnemonic("ldxq".into()));
        assert_eq!(err("ldxsdw %r0, [%r1]").kind, K::InvalidMnemonic("ldxsdw".into()));
        assert_eq!(err("ldxb %r0, %r1").kind, K::InvalidMemoryOperand("%r1".into()));
        assert_eq!(err("ldxb %r0, [%r1+2").kind, K::InvalidMemoryOperand("[%r1+2".into()));
        assert!(matches!(err("lddw %r0").kind, K::OperandCount { got: 1, .. }));
        assert!(matches!(err("exit %r0").kind, K::OperandCount { got: 1, .. }));
        assert!(matches!(err("add %r0, 1, 2").kind, K::OperandCount { got: 3, .. }));
        assert_eq!(err("ja NOT_A_LABEL\nexit").kind, K::UnknownLabel("NOT_A_LABEL".into()));
        assert_eq!(err("ja NOT_A_LABEL\nexit").line, 1);
        assert!(matches!(err("a:\na:\nexit").kind, K::DuplicateLabel { previous_line: 1, .. }));
        assert_eq!(err("mov %r0,, 1").kind, K::EmptyOperand);
        assert_eq!(err("mov %r0, 1,").kind, K::EmptyOperand);
        assert_eq!(err("mov %r11a, 1").kind, K::InvalidRegister("%r11a".into()));
        assert_eq!(err("mov %r01, 1").kind, K::InvalidRegister("%r01".into()));
        assert_eq!(err("mov r1, 1").kind, K::InvalidRegister("r1".into()));
        assert_eq!(err("call foo bar").kind, K::InvalidCallMode("foo".into()));
        assert_eq!(err("lddw %r0, map_foo 1").kind, K::OperandCount { mnemonic: "lddw".into(), expected: "2", got: 3 });
        assert_eq!(err("lddw %r0, map_foo").kind, K::InvalidLddwKind("map_foo".into()));
        assert_eq!(err("swap8 %r0").kind, K::InvalidMnemonic("swap8".into()));
        // Upstream's fake registers are encodable.
        assert_eq!(one("mov %r11, 1")[0].dst(), 11);
        let far = format!("ja end\n{}end:\nexit", "mov %r0, 0\n".repeat(40000));
        assert!(matches!(err(&far).kind, K::JumpOutOfRange { offset: 40000, .. }));
    }

    /// Every instruction that decodes from a spread of raw fields prints as
    /// text that assembles back to exactly the same slots.
    #[test]
    fn display_reassembles_exactly() {
        let offs = [0i16, 1, 8, 16, 32, -1, 7, i16::MIN, i16::MAX, -300];
        let imms = [0i32, 1, 16, 32, 64, -1, 0xe1, 0xf1, 0x41, 0x40, 0xa1, 0x51, 0xa0, 0x50, i32::MIN, i32::MAX, -77];
        let regs = [0x00u8, 0x21, 0x1a, 0xa1, 0x10, 0x20, 0x9a, 0x55];
        let nexts = [0i32, 7, -1, i32::MIN];
        let mut checked = 0;
        for code in 0..=255u8 {
            for &regs in &regs {
                for &off in &offs {
                    for &imm in &imms {
                        for &next in &nexts {
                            let slots = [Insn { code, regs, off, imm }, Insn::new(0, 0, 0, 0, next)];
                            let Ok(ins) = Instruction::decode(&slots) else {
                                continue;
                            };
                            if ins.slots() == 1 && next != 0 {
                                continue;
                            }
                            let text = ins.to_string();
                            let got = assemble(&text).unwrap_or_else(|e| panic!("{text:?} ({ins:?}): {e}"));
                            assert_eq!(got, slots[..ins.slots()].to_vec(), "{text:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 5_000, "only {checked} instructions checked");
    }
}
