//! Parser for bpf_conformance test files (`*.data`).
//!
//! A file is a sequence of sections, each opened by a directive line:
//!
//! * `-- asm`: the program as text (see [`crate::assemble`]);
//! * `-- raw`: the program as raw slots, one per line, either eight hex bytes
//!   (`b7 00 00 00 01 00 00 00`) or one 64-bit little-endian word
//!   (`0x00000001000000b7`; a plain decimal word is accepted as upstream does);
//! * `-- mem`: the input memory as hex bytes separated by whitespace;
//! * `-- result`: the expected return value (`0x…` hex or decimal);
//! * `-- error`: the expected error string (may be empty: "some error");
//! * `-- c` and `-- no register offset`: ignored.
//!
//! `#` starts a comment in every section, as upstream. Lines before the first
//! directive are ignored. Unlike upstream, an unknown directive is an error
//! (upstream skips the whole file, which is what the negative test
//! `invalid_unknown_directive.data` checks), and a section may appear only
//! once.

use crate::{assemble, AsmError, AsmErrorKind};
use uxdp_isa::Insn;

/// Errors of [`TestFile::parse`]; every variant names the 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TestFileError {
    /// A `-- ` line that is not a known directive.
    #[error("line {line}: unknown directive `-- {directive}`")]
    UnknownDirective {
        /// Line number.
        line: usize,
        /// The text after `--`.
        directive: String,
    },
    /// A section appears twice.
    #[error("line {line}: duplicate `-- {section}` section")]
    DuplicateSection {
        /// Line number.
        line: usize,
        /// Section name.
        section: &'static str,
    },
    /// A `-- raw` line is neither eight hex bytes nor one 64-bit word.
    #[error("line {line}: raw instruction `{text}` is neither eight hex bytes nor one 64-bit word")]
    InvalidRaw {
        /// Line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A `-- mem` token is not a hex byte.
    #[error("line {line}: memory byte `{token}` is not a hex byte")]
    InvalidMem {
        /// Line number.
        line: usize,
        /// The token.
        token: String,
    },
    /// The `-- result` value is not a 64-bit number.
    #[error("line {line}: result `{text}` is not a 64-bit number")]
    InvalidResult {
        /// Line number.
        line: usize,
        /// The value text.
        text: String,
    },
    /// The `-- result` section has more than one value.
    #[error("line {line}: second value in the `-- result` section")]
    MultipleResults {
        /// Line number of the second value.
        line: usize,
    },
}

/// A parsed conformance test file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestFile {
    /// The `-- asm` section verbatim (comments and blank lines kept, so line
    /// numbers can be mapped back to the file).
    pub asm: Option<String>,
    /// 1-based file line of the first line of [`TestFile::asm`] (0 if none).
    pub asm_first_line: usize,
    /// The `-- raw` section, one entry per slot.
    pub raw: Option<Vec<Insn>>,
    /// The `-- mem` section (empty if absent).
    pub mem: Vec<u8>,
    /// The `-- result` value.
    pub result: Option<u64>,
    /// The `-- error` section: `Some` if present, holding its last non-empty
    /// line (empty if the section is empty).
    pub error: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Ignore,
    Asm,
    Raw,
    Mem,
    Result,
    Error,
}

impl TestFile {
    /// Parses the text of a `.data` file.
    pub fn parse(text: &str) -> Result<TestFile, TestFileError> {
        let mut tf = TestFile::default();
        let mut section = Section::Ignore;
        let mut seen: Vec<&'static str> = Vec::new();
        for (idx, raw_line) in text.lines().enumerate() {
            let line = idx + 1;
            let code = match raw_line.find('#') {
                Some(p) => &raw_line[..p],
                None => raw_line,
            };
            let t = code.trim();
            if let Some(directive) = t.strip_prefix("--") {
                let directive = directive.trim();
                let (next, name) = match directive {
                    "asm" => (Section::Asm, "asm"),
                    "raw" => (Section::Raw, "raw"),
                    "mem" => (Section::Mem, "mem"),
                    "result" => (Section::Result, "result"),
                    "error" => (Section::Error, "error"),
                    "c" => (Section::Ignore, "c"),
                    "no register offset" => (Section::Ignore, "no register offset"),
                    _ => return Err(TestFileError::UnknownDirective { line, directive: directive.to_string() }),
                };
                if seen.contains(&name) {
                    return Err(TestFileError::DuplicateSection { line, section: name });
                }
                seen.push(name);
                match next {
                    Section::Asm => {
                        tf.asm = Some(String::new());
                        tf.asm_first_line = line + 1;
                    }
                    Section::Raw => tf.raw = Some(Vec::new()),
                    Section::Error => tf.error = Some(String::new()),
                    _ => {}
                }
                section = next;
                continue;
            }
            match section {
                Section::Ignore => {}
                Section::Asm => {
                    if let Some(asm) = tf.asm.as_mut() {
                        asm.push_str(raw_line);
                        asm.push('\n');
                    }
                }
                _ if t.is_empty() => {}
                Section::Raw => {
                    let insn = parse_raw(t).ok_or_else(|| TestFileError::InvalidRaw { line, text: t.to_string() })?;
                    if let Some(raw) = tf.raw.as_mut() {
                        raw.push(insn);
                    }
                }
                Section::Mem => {
                    for token in t.split_whitespace() {
                        let b = parse_hex_byte(token)
                            .ok_or_else(|| TestFileError::InvalidMem { line, token: token.to_string() })?;
                        tf.mem.push(b);
                    }
                }
                Section::Result => {
                    if tf.result.is_some() {
                        return Err(TestFileError::MultipleResults { line });
                    }
                    let v = parse_u64(t).ok_or_else(|| TestFileError::InvalidResult { line, text: t.to_string() })?;
                    tf.result = Some(v);
                }
                Section::Error => tf.error = Some(t.to_string()),
            }
        }
        Ok(tf)
    }

    /// The program: the `-- raw` slots if present, else the assembled
    /// `-- asm` section (error lines are file line numbers).
    pub fn program(&self) -> Result<Vec<Insn>, AsmError> {
        if let Some(raw) = &self.raw {
            return Ok(raw.clone());
        }
        match &self.asm {
            Some(asm) => assemble(asm).map_err(|mut e| {
                e.line += self.asm_first_line.saturating_sub(1);
                e
            }),
            None => Err(AsmError::new(0, AsmErrorKind::NoProgram)),
        }
    }
}

fn parse_hex_byte(token: &str) -> Option<u8> {
    let digits = token.strip_prefix("0x").or_else(|| token.strip_prefix("0X")).unwrap_or(token);
    if digits.is_empty() || digits.len() > 2 {
        return None;
    }
    u8::from_str_radix(digits, 16).ok()
}

/// `0x…` hex or decimal; a leading `-` wraps (two's complement) as upstream's
/// `stoull` does.
fn parse_u64(text: &str) -> Option<u64> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let v = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) => u64::from_str_radix(h, 16).ok()?,
        Some(_) => return None,
        None if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) => body.parse().ok()?,
        None => return None,
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// One raw slot: eight hex bytes, or one little-endian 64-bit word.
fn parse_raw(t: &str) -> Option<Insn> {
    let tokens: Vec<&str> = t.split_whitespace().collect();
    match tokens.as_slice() {
        [word] => {
            if word.starts_with('-') {
                return None;
            }
            parse_u64(word).map(Insn::from_u64)
        }
        bytes if bytes.len() == 8 => {
            let mut b = [0u8; 8];
            for (dst, tok) in b.iter_mut().zip(bytes) {
                if tok.starts_with("0x") || tok.starts_with("0X") {
                    return None;
                }
                *dst = parse_hex_byte(tok)?;
            }
            Some(Insn::from_bytes(b))
        }
        _ => None,
    }
}

/// The `.data` test files of a bpf_conformance directory, sorted by name.
pub fn data_files(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "data") {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_sections() {
        let text = "# header\n-- c\nint main() { return 1; } # comment\n-- asm\nmov %r0, 1 # c\n\nexit\n-- mem\naa bb\n0xcc\n-- result\n0x1 # comment\n-- no register offset\ncall instruction\n";
        let tf = TestFile::parse(text).expect("parses");
        assert_eq!(tf.asm.as_deref(), Some("mov %r0, 1 # c\n\nexit\n"));
        assert_eq!(tf.asm_first_line, 5);
        assert_eq!(tf.mem, vec![0xaa, 0xbb, 0xcc]);
        assert_eq!(tf.result, Some(1));
        assert_eq!(tf.error, None);
        assert_eq!(tf.raw, None);
        assert_eq!(tf.program().expect("assembles"), vec![Insn::new(0xb7, 0, 0, 0, 1), Insn::new(0x95, 0, 0, 0, 0)]);
    }

    #[test]
    fn raw_forms() {
        let tf =
            TestFile::parse("-- raw\n07 00 01 00 01 00 00 00\n0x0000000000000095\n149\n-- error\n").expect("parses");
        assert_eq!(
            tf.raw,
            Some(vec![Insn::new(0x07, 0, 0, 1, 1), Insn::new(0x95, 0, 0, 0, 0), Insn::new(0x95, 0, 0, 0, 0)])
        );
        assert_eq!(tf.error.as_deref(), Some(""));
        assert_eq!(tf.program().expect("raw"), tf.raw.clone().unwrap_or_default());
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            TestFile::parse("-- asm\n-- Unknown directive\n"),
            Err(TestFileError::UnknownDirective { line: 2, directive: "Unknown directive".into() })
        );
        assert_eq!(
            TestFile::parse("-- raw\n07 00 01\n"),
            Err(TestFileError::InvalidRaw { line: 2, text: "07 00 01".into() })
        );
        assert_eq!(
            TestFile::parse("-- mem\n00 100\n"),
            Err(TestFileError::InvalidMem { line: 2, token: "100".into() })
        );
        assert_eq!(
            TestFile::parse("-- result\nfoo\n"),
            Err(TestFileError::InvalidResult { line: 2, text: "foo".into() })
        );
        assert_eq!(TestFile::parse("-- result\n1\n2\n"), Err(TestFileError::MultipleResults { line: 3 }));
        assert_eq!(
            TestFile::parse("-- asm\n-- asm\n"),
            Err(TestFileError::DuplicateSection { line: 2, section: "asm" })
        );
        let tf = TestFile::parse("# x\n-- asm\nmov %r0, 1\nor %r0, %r50\n").expect("parses");
        let e = tf.program().expect_err("bad register");
        assert_eq!(e.line, 4);
        assert_eq!(
            TestFile::parse("-- result\n0x1\n").expect("parses").program().map_err(|e| e.kind),
            Err(AsmErrorKind::NoProgram)
        );
    }

    #[test]
    fn results_parse_like_upstream() {
        assert_eq!(parse_u64("0xFFFFFFFFFFFFFFF6"), Some(u64::MAX - 9));
        assert_eq!(parse_u64("42"), Some(42));
        assert_eq!(parse_u64("-1"), Some(u64::MAX));
        assert_eq!(parse_u64("0x10000000000000000"), None);
        assert_eq!(parse_u64("0x"), None);
    }
}
