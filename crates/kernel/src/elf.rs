//! Pre-processing of clang-compiled objects before aya sees them.
//!
//! aya 0.14 (the loader we drive) lacks two things libbpf does, so we fix the
//! ELF bytes first:
//!
//! 1. **Section names aya cannot parse.** aya knows `classifier` but not
//!    libbpf's `tc`/`tcx/*`, and none of the legacy iproute2-style names
//!    (`xdp_mark`, `redirect_to_111`, `t`, `x`). We rename such executable
//!    sections following the corpus manifest's rule: names starting with `t`
//!    (`tc`, `tcx/ingress`, `tc_mark`, `t`) or `classifier`/`action` become
//!    `classifier/<old>`, `socket*`/`filter*` become `socket/<old>`, and
//!    everything else becomes `xdp` (`xdp.frags` when the old name starts with
//!    it). A section name also keys the BTF.ext records (func_info, line_info,
//!    CO-RE relocations), so the new names are appended to the `.BTF` string
//!    table and `.BTF.ext` is repointed. aya looks those records up by name, so
//!    when several sections end up named `xdp`, only the first keeps its
//!    records; the others load without func_info/line_info (the kernel does
//!    not require them for static subprograms).
//! 2. **kfunc calls.** clang emits `call -1` (src_reg 1) with a relocation
//!    against an undefined symbol; aya would link it as a call to itself. We
//!    resolve the name in the kernel's BTF (`/sys/kernel/btf/vmlinux`) and
//!    write `src_reg = BPF_PSEUDO_KFUNC_CALL`, `imm = btf_id` like libbpf. A
//!    missing *weak* kfunc becomes an invalid helper call (`imm` =
//!    2002000000 + n), which the verifier refuses only if reachable, as
//!    libbpf's poisoning does; a missing strong one refuses the object.
//!
//! Other undefined symbols (`__kconfig` variables, `__ksym` variables) are
//! refused by name.
//!
//! Every change rewrites tables by appending new copies at the end of the file
//! and repointing section headers; no existing offset moves.

use std::collections::HashMap;

/// The result of [`normalize`].
#[derive(Debug, Default)]
pub(crate) struct Normalized {
    /// The (possibly) rewritten object.
    pub bytes: Vec<u8>,
    /// Original name of every section, by index.
    pub section_names: HashMap<usize, String>,
    /// `(old, new)` section renames done.
    pub renamed: Vec<(String, String)>,
    /// kfunc calls patched: `(name, btf id or None when poisoned)`.
    pub kfuncs: Vec<(String, Option<u32>)>,
}

const SHT_SYMTAB: u32 = 2;
const SHT_REL: u32 = 9;
const SHF_EXECINSTR: u64 = 4;
const STB_WEAK: u8 = 2;
const SHN_UNDEF: u16 = 0;
const BTF_MAGIC: u16 = 0xeb9f;
const POISON_CALL_KFUNC_BASE: i32 = 2002000000;

#[derive(Clone, Debug)]
struct Shdr {
    name: u32,
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    /// File offset of this header.
    at: usize,
}

fn rd_u16(d: &[u8], at: usize) -> Result<u16, String> {
    d.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]])).ok_or_else(|| format!("ELF truncated at offset {at}"))
}

fn rd_u32(d: &[u8], at: usize) -> Result<u32, String> {
    d.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("ELF truncated at offset {at}"))
}

fn rd_u64(d: &[u8], at: usize) -> Result<u64, String> {
    d.get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .ok_or_else(|| format!("ELF truncated at offset {at}"))
}

fn wr_u32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn wr_u64(d: &mut [u8], at: usize, v: u64) {
    d[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn cstr_at(table: &[u8], off: usize) -> Result<String, String> {
    let rest = table.get(off..).ok_or_else(|| format!("string offset {off} outside its table"))?;
    let end = rest.iter().position(|&b| b == 0).ok_or_else(|| format!("unterminated string at offset {off}"))?;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn section_data<'d>(d: &'d [u8], s: &Shdr) -> Result<&'d [u8], String> {
    let start = usize::try_from(s.offset).map_err(|_| "section offset overflows".to_string())?;
    let len = usize::try_from(s.size).map_err(|_| "section size overflows".to_string())?;
    d.get(start..start.checked_add(len).ok_or("section end overflows")?)
        .ok_or_else(|| format!("section at offset {start} with size {len} lies outside the file"))
}

fn parse_headers(d: &[u8]) -> Result<(Vec<Shdr>, usize), String> {
    if d.get(0..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if d.get(4) != Some(&2) || d.get(5) != Some(&1) {
        return Err("only 64-bit little-endian ELF objects are supported".into());
    }
    let e_machine = rd_u16(d, 0x12)?;
    if e_machine != 247 {
        return Err(format!("ELF machine {e_machine} is not EM_BPF (247)"));
    }
    let shoff = usize::try_from(rd_u64(d, 0x28)?).map_err(|_| "e_shoff overflows")?;
    let shentsize = rd_u16(d, 0x3a)? as usize;
    let shnum = rd_u16(d, 0x3c)? as usize;
    let shstrndx = rd_u16(d, 0x3e)? as usize;
    if shentsize < 64 {
        return Err(format!("section header size {shentsize} is smaller than 64"));
    }
    let mut out = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let at = shoff + i * shentsize;
        out.push(Shdr {
            name: rd_u32(d, at)?,
            kind: rd_u32(d, at + 4)?,
            flags: rd_u64(d, at + 8)?,
            offset: rd_u64(d, at + 24)?,
            size: rd_u64(d, at + 32)?,
            link: rd_u32(d, at + 40)?,
            info: rd_u32(d, at + 44)?,
            at,
        });
    }
    if shstrndx >= out.len() {
        return Err(format!("section-name table index {shstrndx} out of range"));
    }
    Ok((out, shstrndx))
}

/// The name aya 0.14 can parse that a section of this name should get, or
/// `None` when the name is fine as it is.
pub(crate) fn aya_section_name(name: &str) -> Option<String> {
    use std::str::FromStr;
    if name.starts_with(".text") || aya_obj::ProgramSection::from_str(name).is_ok() {
        return None;
    }
    let new = if name.starts_with('t') || name.starts_with("classifier") || name.starts_with("action") {
        format!("classifier/{name}")
    } else if name.starts_with("socket") || name.starts_with("filter") {
        format!("socket/{name}")
    } else if name.starts_with("xdp.frags") {
        "xdp.frags".to_string()
    } else {
        "xdp".to_string()
    };
    Some(new)
}

fn align8(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
}

/// Resolves kfunc names to vmlinux BTF ids.
pub(crate) trait KfuncResolver {
    /// The BTF id of a `BTF_KIND_FUNC` named `name`, if any.
    fn func_id(&self, name: &str) -> Option<u32>;
}

impl KfuncResolver for aya::Btf {
    fn func_id(&self, name: &str) -> Option<u32> {
        self.id_by_type_name_kind(name, aya_obj::btf::BtfKind::Func).ok()
    }
}

/// Why [`normalize`] refused an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NormError {
    /// Malformed or non-BPF ELF.
    Invalid(String),
    /// Something libbpf supports that this loader does not (named).
    Unsupported(String),
    /// A kfunc the kernel does not have: libbpf refuses such objects too (ESRCH).
    MissingKfunc(String),
}

impl From<String> for NormError {
    fn from(s: String) -> Self {
        NormError::Invalid(s)
    }
}

impl From<&str> for NormError {
    fn from(s: &str) -> Self {
        NormError::Invalid(s.to_string())
    }
}

/// Rewrites `data` so aya 0.14 loads it the way libbpf would (see the module docs).
pub(crate) fn normalize(data: &[u8], kfuncs: Option<&dyn KfuncResolver>) -> Result<Normalized, NormError> {
    let (shdrs, shstrndx) = parse_headers(data)?;
    let shstr = section_data(data, &shdrs[shstrndx])?.to_vec();
    let mut names = HashMap::new();
    for (i, s) in shdrs.iter().enumerate() {
        names.insert(i, cstr_at(&shstr, s.name as usize)?);
    }
    let mut bytes = data.to_vec();
    let mut out = Normalized { section_names: names.clone(), ..Default::default() };

    // --- kfunc calls -----------------------------------------------------
    if let Some(symtab) = shdrs.iter().find(|s| s.kind == SHT_SYMTAB) {
        let syms = section_data(data, symtab)?;
        let strtab = shdrs.get(symtab.link as usize).ok_or("symbol table names a missing string table")?;
        let strs = section_data(data, strtab)?;
        let mut poison_n = 0i32;
        for rel in shdrs.iter().filter(|s| s.kind == SHT_REL) {
            let Some(target) = shdrs.get(rel.info as usize) else { continue };
            if target.flags & SHF_EXECINSTR == 0 {
                continue;
            }
            let target_name = &names[&(rel.info as usize)];
            let rels = section_data(data, rel)?;
            for r in rels.chunks_exact(16) {
                let r_offset = u64::from_le_bytes(r[0..8].try_into().unwrap_or([0; 8]));
                let r_info = u64::from_le_bytes(r[8..16].try_into().unwrap_or([0; 8]));
                let sym_idx = (r_info >> 32) as usize;
                let sym = syms.get(sym_idx * 24..sym_idx * 24 + 24).ok_or_else(|| {
                    format!("relocation in {target_name} names symbol {sym_idx} beyond the symbol table")
                })?;
                let shndx = u16::from_le_bytes([sym[6], sym[7]]);
                if shndx != SHN_UNDEF || sym_idx == 0 {
                    continue;
                }
                let sym_name = cstr_at(strs, u32::from_le_bytes([sym[0], sym[1], sym[2], sym[3]]) as usize)?;
                let weak = sym[4] >> 4 == STB_WEAK;
                let insn_at = usize::try_from(target.offset + r_offset).map_err(|_| "relocation offset overflows")?;
                let insn = bytes
                    .get(insn_at..insn_at + 8)
                    .ok_or_else(|| format!("relocation for `{sym_name}` points outside section {target_name}"))?;
                let (code, regs) = (insn[0], insn[1]);
                if code != uxdp_isa::opcode::CALL {
                    return Err(NormError::Unsupported(format!(
                        "extern variable `{sym_name}` (a __kconfig or __ksym variable, used in section \
                         {target_name}): uxdp-kernel's loader resolves only kfunc calls"
                    )));
                }
                let resolver = kfuncs.ok_or_else(|| {
                    NormError::Unsupported(format!(
                        "kfunc `{sym_name}` cannot be resolved: the kernel's BTF (/sys/kernel/btf/vmlinux) is unavailable"
                    ))
                })?;
                match resolver.func_id(&sym_name) {
                    Some(id) => {
                        bytes[insn_at + 1] = (regs & 0x0f) | (uxdp_isa::opcode::call::KFUNC << 4);
                        bytes[insn_at + 2..insn_at + 4].copy_from_slice(&0i16.to_le_bytes());
                        bytes[insn_at + 4..insn_at + 8].copy_from_slice(&(id as i32).to_le_bytes());
                        out.kfuncs.push((sym_name, Some(id)));
                    }
                    None if weak => {
                        bytes[insn_at + 1] = regs & 0x0f;
                        bytes[insn_at + 2..insn_at + 4].copy_from_slice(&0i16.to_le_bytes());
                        bytes[insn_at + 4..insn_at + 8]
                            .copy_from_slice(&(POISON_CALL_KFUNC_BASE + poison_n).to_le_bytes());
                        poison_n += 1;
                        out.kfuncs.push((sym_name, None));
                    }
                    None => {
                        return Err(NormError::MissingKfunc(format!(
                            "kfunc `{sym_name}` (called in section {target_name}) is not in the kernel's BTF \
                             (/sys/kernel/btf/vmlinux; module BTF is not searched)"
                        )))
                    }
                }
            }
        }
    }

    // --- section renames (ELF side) --------------------------------------
    let mut renames: Vec<(usize, String, String)> = Vec::new();
    for (i, s) in shdrs.iter().enumerate() {
        if s.flags & SHF_EXECINSTR == 0 || s.size == 0 {
            continue;
        }
        if let Some(new) = aya_section_name(&names[&i]) {
            renames.push((i, names[&i].clone(), new));
        }
    }
    // Which renamed sections keep their BTF.ext records: a new name must not
    // collide with an existing section or an earlier rename.
    let mut taken: HashMap<String, usize> = HashMap::new();
    for i in 0..shdrs.len() {
        if !renames.iter().any(|(r, _, _)| *r == i) {
            taken.insert(names[&i].clone(), i);
        }
    }
    let mut keeps_ext: HashMap<String, bool> = HashMap::new();
    for (i, old, new) in &renames {
        let keep = !taken.contains_key(new);
        if keep {
            taken.insert(new.clone(), *i);
        }
        keeps_ext.insert(old.clone(), keep);
    }
    if !renames.is_empty() {
        // New section-name table = old table + new names, appended to the file.
        let mut tab = StrTab::new(shstr.clone());
        let offs: Vec<u32> = renames.iter().map(|(_, _, new)| tab.add(new)).collect();
        align8(&mut bytes);
        let shstr_at = bytes.len();
        bytes.extend_from_slice(&tab.bytes);
        wr_u64(&mut bytes, shdrs[shstrndx].at + 24, shstr_at as u64);
        wr_u64(&mut bytes, shdrs[shstrndx].at + 32, tab.bytes.len() as u64);
        for ((i, _, _), off) in renames.iter().zip(offs) {
            wr_u32(&mut bytes, shdrs[*i].at, off);
        }
    }

    // --- BTF side ----------------------------------------------------------
    let btf_idx = names.iter().find(|(_, n)| n.as_str() == ".BTF").map(|(i, _)| *i);
    let ext_idx = names.iter().find(|(_, n)| n.as_str() == ".BTF.ext").map(|(i, _)| *i);
    if let Some(bi) = btf_idx {
        let btf = section_data(data, &shdrs[bi])?;
        if rd_u16(btf, 0)? != BTF_MAGIC {
            return Err(NormError::Unsupported(".BTF that is not little-endian".into()));
        }
        let hdr_len = rd_u32(btf, 4)? as usize;
        let (type_off, type_len) = (rd_u32(btf, 8)? as usize, rd_u32(btf, 12)? as usize);
        let (str_off, str_len) = (rd_u32(btf, 16)? as usize, rd_u32(btf, 20)? as usize);
        let types =
            btf.get(hdr_len + type_off..hdr_len + type_off + type_len).ok_or(".BTF type section out of range")?;
        let strings =
            btf.get(hdr_len + str_off..hdr_len + str_off + str_len).ok_or(".BTF string section out of range")?;
        let mut types = types.to_vec();
        let mut tab = StrTab::new(strings.to_vec());
        let mut btf_changed = fix_extern_btf(&mut types, &mut tab)?;

        // Records of the renamed sections, repointed in .BTF.ext (same size, in place).
        if let (Some(ei), false) = (ext_idx, renames.is_empty()) {
            let ext_hdr = shdrs[ei].clone();
            let ext = section_data(data, &ext_hdr)?.to_vec();
            let mut new_ext = ext.clone();
            let ext_hdr_len = rd_u32(&ext, 4)? as usize;
            let mut regions = vec![(rd_u32(&ext, 8)? as usize, rd_u32(&ext, 12)? as usize)];
            regions.push((rd_u32(&ext, 16)? as usize, rd_u32(&ext, 20)? as usize));
            if ext_hdr_len >= 32 {
                regions.push((rd_u32(&ext, 24)? as usize, rd_u32(&ext, 28)? as usize));
            }
            let by_old: HashMap<&str, &str> = renames.iter().map(|(_, o, n)| (o.as_str(), n.as_str())).collect();
            for (off, len) in regions {
                if len == 0 {
                    continue;
                }
                let start = ext_hdr_len + off;
                let end = start + len;
                if end > ext.len() {
                    return Err(".BTF.ext region out of range".into());
                }
                let rec_size = rd_u32(&ext, start)? as usize;
                let mut p = start + 4;
                while p + 8 <= end {
                    let sec_name_off = rd_u32(&ext, p)? as usize;
                    let num = rd_u32(&ext, p + 4)? as usize;
                    let sec_name = cstr_at(strings, sec_name_off)?;
                    if let Some(new) = by_old.get(sec_name.as_str()) {
                        let target = if keeps_ext.get(sec_name.as_str()).copied().unwrap_or(false) {
                            new.to_string()
                        } else {
                            // A name no section has: aya finds no records for it.
                            format!("uxdp.unused.{sec_name}")
                        };
                        wr_u32(&mut new_ext, p, tab.add(&target));
                        btf_changed = true;
                    }
                    p += 8 + num.checked_mul(rec_size).ok_or(".BTF.ext record count overflows")?;
                }
            }
            let ext_at = usize::try_from(ext_hdr.offset).map_err(|_| ".BTF.ext offset overflows")?;
            bytes[ext_at..ext_at + new_ext.len()].copy_from_slice(&new_ext);
        }
        if btf_changed {
            // New .BTF = header + types + strings, appended to the file.
            let mut new_btf = btf[..hdr_len].to_vec();
            wr_u32(&mut new_btf, 8, 0);
            wr_u32(&mut new_btf, 12, types.len() as u32);
            wr_u32(&mut new_btf, 16, types.len() as u32);
            wr_u32(&mut new_btf, 20, tab.bytes.len() as u32);
            new_btf.extend_from_slice(&types);
            new_btf.extend_from_slice(&tab.bytes);
            align8(&mut bytes);
            let btf_at = bytes.len();
            bytes.extend_from_slice(&new_btf);
            wr_u64(&mut bytes, shdrs[bi].at + 24, btf_at as u64);
            wr_u64(&mut bytes, shdrs[bi].at + 32, new_btf.len() as u64);
        }
    }
    out.renamed = renames.into_iter().map(|(_, o, n)| (o, n)).collect();
    out.bytes = bytes;
    Ok(out)
}

/// A string table being extended.
struct StrTab {
    bytes: Vec<u8>,
    added: HashMap<String, u32>,
}

impl StrTab {
    fn new(bytes: Vec<u8>) -> Self {
        StrTab { bytes, added: HashMap::new() }
    }

    /// Offset of `s`, appended once.
    fn add(&mut self, s: &str) -> u32 {
        if let Some(&o) = self.added.get(s) {
            return o;
        }
        let o = self.bytes.len() as u32;
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(0);
        self.added.insert(s.to_string(), o);
        o
    }
}

const BTF_KIND_INT: u32 = 1;
const BTF_KIND_FUNC: u32 = 12;
const BTF_KIND_VAR: u32 = 14;
const BTF_KIND_DATASEC: u32 = 15;
const BTF_FUNC_GLOBAL: u32 = 1;
const BTF_FUNC_EXTERN: u32 = 2;
const BTF_VAR_GLOBAL_ALLOCATED: u32 = 1;

/// `(byte offset, kind, vlen)` of every type in a BTF type section (type id = index + 1).
fn btf_walk(types: &[u8]) -> Result<Vec<(usize, u32, u32)>, NormError> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p < types.len() {
        let info = rd_u32(types, p + 4)?;
        let kind = (info >> 24) & 0x1f;
        let vlen = info & 0xffff;
        let extra = match kind {
            1 | 14 | 17 => 4,                            // INT, VAR, DECL_TAG
            3 => 12,                                     // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen as usize,       // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen as usize,                 // ENUM, FUNC_PROTO
            2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0, // PTR, FWD, modifiers, FUNC, FLOAT, TYPE_TAG
            k => return Err(NormError::Unsupported(format!("BTF type kind {k} at type #{}", out.len() + 1))),
        };
        out.push((p, kind, vlen));
        p += 12 + extra;
    }
    if p != types.len() {
        return Err(".BTF type section ends inside a type".into());
    }
    Ok(out)
}

/// What libbpf does to extern declarations before loading BTF into the
/// kernel, which rejects them: `extern` FUNC linkage becomes global, and the
/// `.ksyms` DATASEC (whose members are the kfunc FUNCs, and which has no ELF
/// section to size it) gets 4-byte placeholder `int` VARs. Returns whether
/// anything changed.
fn fix_extern_btf(types: &mut Vec<u8>, tab: &mut StrTab) -> Result<bool, NormError> {
    let walk = btf_walk(types)?;
    let mut changed = false;
    for &(o, kind, vlen) in &walk {
        if kind == BTF_KIND_FUNC && vlen == BTF_FUNC_EXTERN {
            let info = rd_u32(types, o + 4)?;
            wr_u32(types, o + 4, (info & !0xffff) | BTF_FUNC_GLOBAL);
            changed = true;
        }
    }
    let ksyms: Vec<(usize, u32)> = walk
        .iter()
        .filter(|(o, kind, _)| {
            *kind == BTF_KIND_DATASEC
                && rd_u32(types, *o).ok().and_then(|n| cstr_at(&tab.bytes, n as usize).ok()).as_deref()
                    == Some(".ksyms")
        })
        .map(|&(o, _, vlen)| (o, vlen))
        .collect();
    if ksyms.is_empty() {
        return Ok(changed);
    }
    let mut next_id = walk.len() as u32 + 1;
    let int_id =
        match walk.iter().position(|&(o, kind, _)| kind == BTF_KIND_INT && rd_u32(types, o + 8).ok() == Some(4)) {
            Some(i) => i as u32 + 1,
            None => {
                let name = tab.add("int");
                for v in [name, BTF_KIND_INT << 24, 4, (1 << 24) | 32] {
                    types.extend_from_slice(&v.to_le_bytes());
                }
                next_id += 1;
                next_id - 1
            }
        };
    let var_name = tab.add("dummy_ksym");
    for v in [var_name, BTF_KIND_VAR << 24, int_id, BTF_VAR_GLOBAL_ALLOCATED] {
        types.extend_from_slice(&v.to_le_bytes());
    }
    let var_id = next_id;
    for (o, vlen) in ksyms {
        for j in 0..vlen as usize {
            let e = o + 12 + 12 * j;
            wr_u32(types, e, var_id);
            wr_u32(types, e + 4, 4 * j as u32);
            wr_u32(types, e + 8, 4);
        }
        wr_u32(types, o + 8, 4 * vlen);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_name_mapping() {
        assert_eq!(aya_section_name("xdp"), None);
        assert_eq!(aya_section_name("xdp.frags/devmap"), None);
        assert_eq!(aya_section_name("socket"), None);
        assert_eq!(aya_section_name(".text"), None);
        assert_eq!(aya_section_name("tc").as_deref(), Some("classifier/tc"));
        assert_eq!(aya_section_name("tcx/ingress").as_deref(), Some("classifier/tcx/ingress"));
        assert_eq!(aya_section_name("t").as_deref(), Some("classifier/t"));
        assert_eq!(aya_section_name("xdp_mark").as_deref(), Some("xdp"));
        assert_eq!(aya_section_name("redirect_to_111").as_deref(), Some("xdp"));
        assert_eq!(aya_section_name("x").as_deref(), Some("xdp"));
        assert_eq!(aya_section_name("filter").as_deref(), Some("socket/filter"));
    }

    fn corpus(rel: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/objects").join(rel);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    struct FakeBtf;
    impl KfuncResolver for FakeBtf {
        fn func_id(&self, name: &str) -> Option<u32> {
            (name == "bpf_dynptr_from_xdp").then_some(4242)
        }
    }

    #[test]
    fn renamed_objects_parse_with_aya() {
        let data = corpus("linux-6.12/linux-selftests__test_xdp_vlan.o");
        let n = normalize(&data, None).expect("normalizes");
        let renamed: Vec<(&str, &str)> = n.renamed.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert!(renamed.contains(&("xdp_vlan_change", "xdp")), "{renamed:?}");
        assert!(renamed.contains(&("tc_vlan_push", "classifier/tc_vlan_push")), "{renamed:?}");
        assert!(aya_obj::Object::parse(&data).is_err(), "aya alone refuses the original");
        let obj = aya_obj::Object::parse(&n.bytes).expect("aya parses the normalized object");
        let mut names: Vec<&String> = obj.programs.keys().collect();
        names.sort();
        assert_eq!(names, ["_tc_progA", "xdp_prognum0", "xdp_prognum1", "xdp_prognum2", "xdp_prognum3"]);
        // Untouched objects come back byte for byte.
        let plain = corpus("xdp-tools-1.3.1/xdpfilt_alw_all.o");
        assert_eq!(normalize(&plain, None).expect("normalizes").bytes, plain);
    }

    #[test]
    fn kfunc_calls_are_patched_and_btf_externs_fixed() {
        let data = corpus("linux-6.12/linux-selftests__test_xdp_dynptr.o");
        // bpf_dynptr_slice(_rdwr) are weak: unknown to the fake BTF, they get poisoned.
        let n = normalize(&data, Some(&FakeBtf)).expect("normalizes");
        assert!(n.kfuncs.contains(&("bpf_dynptr_from_xdp".to_string(), Some(4242))), "{:?}", n.kfuncs);
        assert!(n.kfuncs.iter().any(|(name, id)| name == "bpf_dynptr_slice" && id.is_none()), "{:?}", n.kfuncs);
        let (shdrs, shstrndx) = parse_headers(&n.bytes).expect("headers");
        let mut patched = 0;
        for s in shdrs.iter().filter(|s| s.flags & SHF_EXECINSTR != 0) {
            for insn in section_data(&n.bytes, s).expect("data").chunks_exact(8) {
                if insn[0] == uxdp_isa::opcode::CALL && insn[1] >> 4 == uxdp_isa::opcode::call::KFUNC {
                    assert_eq!(i32::from_le_bytes(insn[4..8].try_into().unwrap()), 4242);
                    patched += 1;
                }
            }
        }
        assert!(patched > 0);
        // The .ksyms DATASEC now has a size and VAR members; no FUNC is extern.
        let obj = aya_obj::Object::parse(&n.bytes).expect("aya parses");
        assert!(obj.btf.is_some());
        let names = section_data(&n.bytes, &shdrs[shstrndx]).expect("section names");
        let btf_hdr = shdrs.iter().find(|s| cstr_at(names, s.name as usize).as_deref() == Ok(".BTF")).expect(".BTF");
        let btf = section_data(&n.bytes, btf_hdr).expect("btf");
        let hdr_len = rd_u32(btf, 4).unwrap() as usize;
        let types = &btf[hdr_len..hdr_len + rd_u32(btf, 12).unwrap() as usize];
        let strings = &btf[hdr_len + rd_u32(btf, 16).unwrap() as usize..];
        let walk = btf_walk(types).expect("walk");
        assert!(walk.iter().all(|&(_, kind, vlen)| !(kind == BTF_KIND_FUNC && vlen == BTF_FUNC_EXTERN)));
        let ksyms = walk
            .iter()
            .find(|&&(o, kind, _)| {
                kind == BTF_KIND_DATASEC
                    && cstr_at(strings, rd_u32(types, o).unwrap() as usize).as_deref() == Ok(".ksyms")
            })
            .expect(".ksyms");
        assert_eq!(rd_u32(types, ksyms.0 + 8).unwrap(), 4 * ksyms.2);
        // Without kernel BTF a kfunc cannot be resolved: a named refusal.
        assert!(matches!(normalize(&data, None), Err(NormError::Unsupported(m)) if m.contains("bpf_dynptr_from_xdp")));
    }

    #[test]
    fn rejects_non_bpf_elf() {
        assert_eq!(normalize(b"hello", None).unwrap_err(), NormError::Invalid("not an ELF file".into()));
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x12] = 62; // x86-64
        assert!(matches!(normalize(&elf, None).unwrap_err(), NormError::Invalid(m) if m.contains("EM_BPF")));
    }
}
