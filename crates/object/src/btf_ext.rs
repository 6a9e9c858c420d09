//! `.BTF.ext`: per-section function info, line info and CO-RE relocation
//! records, exactly as stored in the object (instruction offsets in bytes).

use crate::btf::{read_u32, Btf, BTF_MAGIC};

/// A `bpf_func_info` record as stored in the ELF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuncInfoRecord {
    /// Byte offset of the function's first instruction in its section.
    pub insn_off: u32,
    /// BTF `FUNC` type id.
    pub type_id: u32,
}

/// A `bpf_line_info` record as stored in the ELF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineInfoRecord {
    /// Byte offset of the instruction in its section.
    pub insn_off: u32,
    /// BTF string offset of the file name.
    pub file_name_off: u32,
    /// BTF string offset of the source line text.
    pub line_off: u32,
    /// Line number (upper 22 bits) and column (lower 10 bits).
    pub line_col: u32,
}

/// A `bpf_core_relo` record as stored in the ELF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreReloRecord {
    /// Byte offset of the instruction in its section.
    pub insn_off: u32,
    /// Root BTF type id.
    pub type_id: u32,
    /// BTF string offset of the access string (`"0:1:2"`).
    pub access_str_off: u32,
    /// `bpf_core_relo_kind` number.
    pub kind: u32,
}

/// Records of one ELF section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionRecords<T> {
    /// ELF section name.
    pub section: String,
    /// Records, in file order.
    pub records: Vec<T>,
}

/// Parsed `.BTF.ext`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BtfExt {
    /// Function info per section.
    pub func_info: Vec<SectionRecords<FuncInfoRecord>>,
    /// Line info per section.
    pub line_info: Vec<SectionRecords<LineInfoRecord>>,
    /// CO-RE relocations per section.
    pub core_relos: Vec<SectionRecords<CoreReloRecord>>,
}

impl BtfExt {
    /// Parses `.BTF.ext`; section names are looked up in `btf`'s strings.
    pub fn parse(data: &[u8], btf: &Btf) -> Result<BtfExt, String> {
        if data.len() < 8 {
            return Err(format!("header needs 8 bytes, section has {}", data.len()));
        }
        let magic = u16::from_le_bytes([data[0], data[1]]);
        if magic != BTF_MAGIC {
            return Err(format!("magic {magic:#06x}, expected {BTF_MAGIC:#06x}"));
        }
        if data[2] != 1 {
            return Err(format!("unsupported version {}", data[2]));
        }
        let hdr_len = read_u32(data, 4).unwrap_or(0) as usize;
        if hdr_len < 24 || hdr_len > data.len() {
            return Err(format!("header length {hdr_len} is invalid"));
        }
        let body = &data[hdr_len..];
        let field = |i: usize| read_u32(data, 8 + 4 * i).unwrap_or(0) as usize;
        let mut ext = BtfExt {
            func_info: parse_info(body, field(0), field(1), 8, "func_info", btf, |d| FuncInfoRecord {
                insn_off: d[0],
                type_id: d[1],
            })?,
            line_info: parse_info(body, field(2), field(3), 16, "line_info", btf, |d| LineInfoRecord {
                insn_off: d[0],
                file_name_off: d[1],
                line_off: d[2],
                line_col: d[3],
            })?,
            core_relos: Vec::new(),
        };
        if hdr_len >= 32 {
            ext.core_relos = parse_info(body, field(4), field(5), 16, "core_relo", btf, |d| CoreReloRecord {
                insn_off: d[0],
                type_id: d[1],
                access_str_off: d[2],
                kind: d[3],
            })?;
        }
        Ok(ext)
    }
}

fn parse_info<T>(
    body: &[u8],
    off: usize,
    len: usize,
    min_rec: usize,
    what: &str,
    btf: &Btf,
    make: impl Fn(&[u32]) -> T,
) -> Result<Vec<SectionRecords<T>>, String> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let data = off
        .checked_add(len)
        .and_then(|end| body.get(off..end))
        .ok_or_else(|| format!("{what} ({off}+{len}) is outside the section"))?;
    let rec_size = read_u32(data, 0).ok_or_else(|| format!("{what}: missing record size"))? as usize;
    if rec_size < min_rec || rec_size % 4 != 0 {
        return Err(format!("{what}: invalid record size {rec_size}"));
    }
    let mut pos = 4;
    let mut out = Vec::new();
    while pos < data.len() {
        let name_off = read_u32(data, pos).ok_or_else(|| format!("{what}: truncated section header"))?;
        let num = read_u32(data, pos + 4).ok_or_else(|| format!("{what}: truncated section header"))? as usize;
        pos += 8;
        let section = btf
            .string_at(name_off)
            .ok_or_else(|| format!("{what}: section name offset {name_off} is not a valid string"))?
            .to_string();
        if num == 0 {
            return Err(format!("{what}: section '{section}' has no records"));
        }
        let total = num.checked_mul(rec_size).filter(|&t| t <= data.len() - pos).ok_or_else(|| {
            format!("{what}: section '{section}' declares {num} records of {rec_size} bytes past the end")
        })?;
        let mut records = Vec::with_capacity(num);
        for i in 0..num {
            let base = pos + i * rec_size;
            let words: Vec<u32> = (0..min_rec / 4).map(|w| read_u32(data, base + 4 * w).unwrap_or(0)).collect();
            records.push(make(&words));
        }
        pos += total;
        out.push(SectionRecords { section, records });
    }
    Ok(out)
}
