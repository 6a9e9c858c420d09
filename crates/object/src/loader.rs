//! The loading pipeline, following libbpf's `bpf_object_open` and
//! `bpf_object__relocate`: collect sections and programs, parse BTF, collect
//! externs, fix up DATASECs, create map definitions, record relocations,
//! apply CO-RE relocations, link subprograms into every entry program, and
//! rewrite map/data/extern references into the index-based (gen-loader) form.

use crate::btf::{Btf, BtfKind, BtfType, FuncLinkage, VarLinkage};
use crate::btf_ext::BtfExt;
use crate::core_reloc::{self, CoreFailure};
use crate::elf::{self, ElfFile};
use crate::maps::{self, InitTarget, MapDef, MapOrigin, BPF_F_MMAPABLE, BPF_F_RDONLY_PROG};
use crate::program::{FuncInfo, KfuncCall, KsymRef, LineInfo, ProgramDef, ProgramKind, RunConfig, SubprogramRef};
use crate::{ExtraSection, KconfigExtern, KconfigType, Object, ObjectError};
use object::elf as E;
use std::collections::{BTreeMap, HashMap};
use uxdp_isa::opcode::{pseudo, CALL, LDDW};
use uxdp_isa::Insn;

/// Largest global-data section accepted (the kernel's own limit is far lower).
const MAX_DATA_SECTION: u64 = 256 << 20;
/// Longest linked program (the kernel's `BPF_COMPLEXITY_LIMIT_INSNS`).
const MAX_INSNS: usize = uxdp_isa::validate::MAX_INSNS;
/// `SHT_LLVM_ADDRSIG`.
const SHT_LLVM_ADDRSIG: u32 = 0x6fff_4c03;

/// A function symbol in an executable section.
#[derive(Clone, Debug)]
struct Func {
    name: String,
    sec: usize,
    /// Offset in the section, in instructions.
    off: usize,
    /// Length in instructions.
    len: usize,
}

#[derive(Clone, Copy, Debug)]
enum Reloc {
    /// bpf-to-bpf call (`RELO_CALL`), symbol value in bytes.
    Call { sym_off: u64 },
    /// Function address (`RELO_SUBPROG_ADDR`), symbol value in bytes.
    SubprogAddr { sym_off: u64 },
    /// Map reference (`RELO_LD64`).
    Map { map: usize },
    /// Global data reference (`RELO_DATA`).
    Data { map: usize, sym_off: u64 },
    /// kfunc call.
    ExternCall { ext: usize },
    /// `lddw` of an extern (kconfig value or ksym).
    ExternLd { ext: usize },
}

#[derive(Clone, Debug)]
struct RelocEntry {
    reloc: Reloc,
    symbol: String,
}

#[derive(Clone, Debug)]
enum ExternKind {
    Kconfig { offset: u32, size: u32, ty: KconfigType, align: u32 },
    Ksym { is_func: bool },
}

#[derive(Clone, Debug)]
struct Extern {
    name: String,
    btf_id: u32,
    weak: bool,
    kind: ExternKind,
}

/// How relocations find a map (libbpf: `libbpf_type`, `sec_idx`, `sec_offset`).
#[derive(Clone, Debug)]
enum MapKey {
    Legacy { sec: usize, offset: u64 },
    Btf { offset: u32, size: u32, values_bit_offset: Option<u32> },
    Data { sec: usize },
    Kconfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataKind {
    Data,
    Rodata,
    Bss,
}

struct Loader<'a> {
    elf: ElfFile<'a>,
    obj_name: String,
    btf: Option<Btf>,
    btf_ext: Option<BtfExt>,
    text_sec: Option<usize>,
    legacy_maps_sec: Option<usize>,
    btf_maps_sec: Option<usize>,
    data_secs: Vec<(usize, DataKind)>,
    /// Instructions per executable section.
    code: HashMap<usize, Vec<Insn>>,
    /// Relocations per executable section, by instruction index.
    relocs: HashMap<usize, BTreeMap<usize, RelocEntry>>,
    funcs: Vec<Func>,
    externs: Vec<Extern>,
    /// Symbol index → extern index.
    extern_by_sym: HashMap<usize, usize>,
    maps: Vec<MapDef>,
    map_keys: Vec<MapKey>,
    kconfig_map: Option<usize>,
}

fn sec_err(section: &str, reason: impl Into<String>) -> ObjectError {
    ObjectError::Section { section: section.to_string(), reason: reason.into() }
}

fn is_dwarf(name: &str) -> bool {
    name.starts_with(".debug_") || name.starts_with(".rel.debug_")
}

fn has_prefix_sec(name: &str, base: &str) -> bool {
    name == base || name.strip_prefix(base).is_some_and(|r| r.starts_with('.'))
}

pub(crate) fn load(data: &[u8], obj_name: &str) -> Result<Object, ObjectError> {
    let elf = ElfFile::parse(data)?;
    let mut l = Loader {
        elf,
        obj_name: obj_name.to_string(),
        btf: None,
        btf_ext: None,
        text_sec: None,
        legacy_maps_sec: None,
        btf_maps_sec: None,
        data_secs: Vec::new(),
        code: HashMap::new(),
        relocs: HashMap::new(),
        funcs: Vec::new(),
        externs: Vec::new(),
        extern_by_sym: HashMap::new(),
        maps: Vec::new(),
        map_keys: Vec::new(),
        kconfig_map: None,
    };
    let (license, kern_version, extra_sections) = l.collect_sections()?;
    l.collect_functions()?;
    l.collect_externs()?;
    l.fixup_datasecs()?;
    l.init_maps()?;
    l.collect_relocations()?;
    l.apply_core_relocations()?;
    let mut programs = Vec::new();
    let entries: Vec<usize> = (0..l.funcs.len()).filter(|&i| Some(l.funcs[i].sec) != l.text_sec).collect();
    for f in entries {
        programs.push(l.link_program(f)?);
    }
    l.init_map_values(&programs)?;
    let kconfig = l
        .externs
        .iter()
        .filter_map(|e| match e.kind {
            ExternKind::Kconfig { offset, size, ty, .. } => {
                Some(KconfigExtern { name: e.name.clone(), offset, size, ty, weak: e.weak })
            }
            ExternKind::Ksym { .. } => None,
        })
        .collect();
    Ok(Object {
        name: l.obj_name,
        license,
        kern_version,
        programs,
        maps: l.maps,
        kconfig,
        kconfig_map: l.kconfig_map,
        btf: l.btf,
        btf_ext: l.btf_ext,
        extra_sections,
    })
}

impl Loader<'_> {
    fn sec_name(&self, idx: usize) -> String {
        self.elf.section_name(idx)
    }

    /// libbpf's `bpf_object__elf_collect`.
    fn collect_sections(&mut self) -> Result<(String, Option<u32>, Vec<ExtraSection>), ObjectError> {
        let mut license = String::new();
        let mut kern_version = None;
        let mut extra = Vec::new();
        let mut btf_data = None;
        let mut btf_ext_data = None;
        for idx in 1..self.elf.sections.len() {
            let s = &self.elf.sections[idx];
            let name = s.name.as_str();
            if s.sh_type == E::SHT_STRTAB
                || s.sh_type == SHT_LLVM_ADDRSIG
                || (s.sh_type == E::SHT_PROGBITS && s.size == 0 && name == ".text")
                || is_dwarf(name)
            {
                continue;
            }
            match name {
                "license" => {
                    let end = s.data.iter().position(|&b| b == 0).unwrap_or(s.data.len());
                    license = String::from_utf8_lossy(&s.data[..end]).into_owned();
                }
                "version" => {
                    let b: [u8; 4] = s
                        .data
                        .try_into()
                        .map_err(|_| sec_err(name, format!("kernel version must be 4 bytes, is {}", s.data.len())))?;
                    kern_version = Some(u32::from_le_bytes(b));
                }
                "maps" => self.legacy_maps_sec = Some(idx),
                ".maps" => self.btf_maps_sec = Some(idx),
                ".BTF" | ".BTF.ext" => {
                    if s.sh_type != E::SHT_PROGBITS {
                        return Err(sec_err(name, "is not SHT_PROGBITS"));
                    }
                    if name == ".BTF" {
                        btf_data = Some(s.data);
                    } else {
                        btf_ext_data = Some(s.data);
                    }
                }
                _ if s.sh_type == E::SHT_SYMTAB || s.sh_type == E::SHT_REL => {}
                _ if s.sh_type == E::SHT_PROGBITS && s.size > 0 => {
                    if s.is_exec() {
                        if name == ".text" {
                            self.text_sec = Some(idx);
                        }
                        if s.data.len() % Insn::SIZE != 0 {
                            return Err(sec_err(name, format!("code size {} is not a multiple of 8", s.data.len())));
                        }
                        let insns = s
                            .data
                            .chunks_exact(Insn::SIZE)
                            .map(|c| Insn::from_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
                        self.code.insert(idx, insns.collect());
                    } else if has_prefix_sec(name, ".data") {
                        self.data_secs.push((idx, DataKind::Data));
                    } else if has_prefix_sec(name, ".rodata") {
                        self.data_secs.push((idx, DataKind::Rodata));
                    } else if matches!(name, ".struct_ops" | ".struct_ops.link" | "?.struct_ops" | "?.struct_ops.link")
                    {
                        return Err(sec_err(name, "struct_ops maps are not supported"));
                    } else if name == ".addr_space.1" {
                        return Err(sec_err(name, "arena global variables are not supported"));
                    } else if name == ".jumptables" {
                        return Err(sec_err(name, "jump tables (gotox) are not supported"));
                    } else if s.flags & u64::from(E::SHF_ALLOC) != 0 {
                        extra.push(ExtraSection { name: name.to_string(), data: s.data.to_vec() });
                    }
                }
                _ if s.sh_type == E::SHT_NOBITS && has_prefix_sec(name, ".bss") && s.size > 0 => {
                    self.data_secs.push((idx, DataKind::Bss));
                }
                _ => {}
            }
        }
        if let Some(d) = btf_data {
            let btf = Btf::parse(d)?;
            if let Some(e) = btf_ext_data {
                self.btf_ext = Some(BtfExt::parse(e, &btf).map_err(ObjectError::BtfExt)?);
            }
            self.btf = Some(btf);
        }
        Ok((license, kern_version, extra))
    }

    /// libbpf's `bpf_object__add_programs` for every executable section.
    fn collect_functions(&mut self) -> Result<(), ObjectError> {
        let mut funcs = Vec::new();
        for sym in &self.elf.symbols {
            let sec = sym.shndx as usize;
            if sym.typ != E::STT_FUNC || !self.code.contains_key(&sec) {
                continue;
            }
            let sec_name = self.sec_name(sec);
            let sec_size = self.elf.sections[sec].data.len() as u64;
            let bad = |reason: String| ObjectError::Symbol { symbol: sym.name.clone(), reason };
            if sym.value.checked_add(sym.size).is_none_or(|end| end > sec_size) {
                return Err(bad(format!(
                    "program at byte offset {} (size {}) crosses the end of section '{sec_name}'",
                    sym.value, sym.size
                )));
            }
            if sym.size == 0 || sym.size % 8 != 0 || sym.value % 8 != 0 {
                return Err(bad(format!(
                    "corrupted program in section '{sec_name}': offset {}, size {}",
                    sym.value, sym.size
                )));
            }
            if Some(sec) != self.text_sec && sym.bind == E::STB_LOCAL {
                return Err(ObjectError::StaticProgram { section: sec_name, name: sym.name.clone() });
            }
            if sym.name.is_empty() {
                return Err(bad(format!("unnamed function in section '{sec_name}'")));
            }
            funcs.push(Func {
                name: sym.name.clone(),
                sec,
                off: (sym.value / 8) as usize,
                len: (sym.size / 8) as usize,
            });
        }
        funcs.sort_by_key(|f| (f.sec, f.off));
        for w in funcs.windows(2) {
            if w[0].sec == w[1].sec && w[0].off + w[0].len > w[1].off {
                return Err(ObjectError::Symbol {
                    symbol: w[1].name.clone(),
                    reason: format!("overlaps function '{}' in section '{}'", w[0].name, self.sec_name(w[0].sec)),
                });
            }
        }
        self.funcs = funcs;
        Ok(())
    }

    /// libbpf's `bpf_object__collect_externs`, including the `.kconfig` layout.
    fn collect_externs(&mut self) -> Result<(), ObjectError> {
        for (sym_idx, sym) in self.elf.symbols.iter().enumerate() {
            if !sym.is_extern() || sym.name.is_empty() {
                continue;
            }
            let name = sym.name.clone();
            let err = |reason: String| ObjectError::Extern { name: name.clone(), reason };
            let Some(btf) = self.btf.as_ref() else {
                return Err(ObjectError::MissingBtf { what: format!("extern '{name}'") });
            };
            let Some((btf_id, t)) =
                btf.find_by_name(&name).find(|(_, t)| matches!(t.kind, BtfKind::Var { .. } | BtfKind::Func { .. }))
            else {
                return Err(err("no BTF VAR or FUNC describes it".into()));
            };
            match t.kind {
                BtfKind::Var { linkage, .. } if linkage != VarLinkage::GlobalExtern => {
                    return Err(err(format!("BTF variable has linkage {linkage:?}, expected extern")))
                }
                BtfKind::Func { linkage, .. } if linkage != FuncLinkage::Extern => {
                    return Err(err(format!("BTF function has linkage {linkage:?}, expected extern")))
                }
                _ => {}
            }
            let is_func = matches!(t.kind, BtfKind::Func { .. });
            let sec = btf
                .types()
                .iter()
                .find(|s| match &s.kind {
                    BtfKind::Datasec { vars, .. } => vars.iter().any(|v| v.type_id == btf_id),
                    _ => false,
                })
                .ok_or_else(|| err("not declared in any section (__kconfig or __ksym)".into()))?;
            let kind = match sec.name.as_str() {
                ".kconfig" => {
                    if is_func {
                        return Err(err("extern functions are not allowed in .kconfig".into()));
                    }
                    let BtfKind::Var { type_id, .. } = t.kind else { return Err(err("not a variable".into())) };
                    let size = btf.resolve_size(type_id)?;
                    let align = btf.align_of(type_id)?;
                    let ty = kconfig_type(btf, type_id).ok_or_else(|| {
                        err("type is not supported for __kconfig (bool, char, tristate, integer or char array)".into())
                    })?;
                    if size == 0 || align == 0 {
                        return Err(err("has size or alignment 0".into()));
                    }
                    ExternKind::Kconfig { offset: 0, size: size as u32, ty, align: align as u32 }
                }
                ".ksyms" => ExternKind::Ksym { is_func },
                other => return Err(err(format!("unrecognized extern section '{other}'"))),
            };
            self.extern_by_sym.insert(sym_idx, self.externs.len());
            self.externs.push(Extern { name, btf_id, weak: sym.bind == E::STB_WEAK, kind });
        }
        // Kconfig layout: descending alignment, ascending size, then name (libbpf's cmp_externs).
        let mut order: Vec<usize> =
            (0..self.externs.len()).filter(|&i| matches!(self.externs[i].kind, ExternKind::Kconfig { .. })).collect();
        let key = |e: &Extern| match e.kind {
            ExternKind::Kconfig { size, align, .. } => (std::cmp::Reverse(align), size),
            ExternKind::Ksym { .. } => (std::cmp::Reverse(0), 0),
        };
        order.sort_by(|&a, &b| {
            let (ea, eb) = (&self.externs[a], &self.externs[b]);
            key(ea).cmp(&key(eb)).then_with(|| ea.name.cmp(&eb.name))
        });
        let mut off: u64 = 0;
        for i in order {
            if let ExternKind::Kconfig { offset, size, align, .. } = &mut self.externs[i].kind {
                off = off.div_ceil(u64::from(*align)) * u64::from(*align);
                *offset = u32::try_from(off).map_err(|_| sec_err(".kconfig", "layout overflows"))?;
                off += u64::from(*size);
            }
        }
        if off > MAX_DATA_SECTION {
            return Err(sec_err(
                ".kconfig",
                format!("{off} bytes of kconfig values exceed the {MAX_DATA_SECTION}-byte limit"),
            ));
        }
        Ok(())
    }

    fn kconfig_size(&self) -> u32 {
        self.externs
            .iter()
            .filter_map(|e| match e.kind {
                ExternKind::Kconfig { offset, size, .. } => Some(offset + size),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// libbpf's `btf_fixup_datasec`: clang leaves DATASEC sizes and variable
    /// offsets zero; they come from the ELF sections and symbols.
    fn fixup_datasecs(&mut self) -> Result<(), ObjectError> {
        let kconfig_size = self.kconfig_size();
        let Some(btf) = self.btf.as_mut() else { return Ok(()) };
        let ids: Vec<u32> = btf.datasec_ids().into_values().collect();
        for id in ids {
            let Some(t) = btf.type_by_id(id).ok().cloned() else { continue };
            let BtfKind::Datasec { size, mut vars } = t.kind else { continue };
            let name = t.name.clone();
            let mut new_size = size;
            if name == ".kconfig" || name == ".ksyms" {
                for (i, v) in vars.iter_mut().enumerate() {
                    let vname = btf.type_by_id(v.type_id)?.name.clone();
                    let ext = self.externs.iter().find(|e| e.name == vname).ok_or_else(|| ObjectError::Extern {
                        name: vname.clone(),
                        reason: format!("declared in BTF section '{name}' but has no ELF symbol"),
                    })?;
                    match ext.kind {
                        ExternKind::Kconfig { offset, .. } => v.offset = offset,
                        ExternKind::Ksym { .. } => {
                            v.offset = (i as u32).saturating_mul(4);
                            v.size = 4;
                        }
                    }
                    if let Some(BtfType { kind: BtfKind::Var { linkage, .. }, .. }) = btf.type_mut(v.type_id) {
                        *linkage = VarLinkage::GlobalAllocated;
                    }
                }
                new_size = if name == ".kconfig" { kconfig_size } else { (vars.len() as u32).saturating_mul(4) };
            } else {
                let fixup_offsets = size == 0;
                if fixup_offsets {
                    let sz = self
                        .elf
                        .section_index(&name)
                        .map(|i| self.elf.sections[i].size)
                        .filter(|&s| s > 0)
                        .ok_or_else(|| sec_err(&name, "BTF DATASEC has no matching non-empty ELF section"))?;
                    new_size = u32::try_from(sz).map_err(|_| sec_err(&name, "section is larger than 4 GiB"))?;
                }
                for v in vars.iter_mut() {
                    let var = btf.type_by_id(v.type_id)?.clone();
                    let BtfKind::Var { linkage, .. } = var.kind else {
                        return Err(sec_err(
                            &name,
                            format!("DATASEC entry [{}] is a {}, not a variable", v.type_id, var.kind.name()),
                        ));
                    };
                    if matches!(linkage, VarLinkage::Static | VarLinkage::GlobalExtern) {
                        continue;
                    }
                    let sym = self
                        .elf
                        .symbols
                        .iter()
                        .find(|s| {
                            s.typ == E::STT_OBJECT
                                && (s.bind == E::STB_GLOBAL || s.bind == E::STB_WEAK)
                                && s.name == var.name
                        })
                        .ok_or_else(|| ObjectError::Symbol {
                            symbol: var.name.clone(),
                            reason: format!("BTF variable in '{name}' has no ELF symbol"),
                        })?;
                    if fixup_offsets {
                        v.offset = u32::try_from(sym.value).map_err(|_| ObjectError::Symbol {
                            symbol: var.name.clone(),
                            reason: "offset does not fit 32 bits".into(),
                        })?;
                    }
                    if sym.visibility == E::STV_HIDDEN || sym.visibility == E::STV_INTERNAL {
                        if let Some(BtfType { kind: BtfKind::Var { linkage, .. }, .. }) = btf.type_mut(v.type_id) {
                            *linkage = VarLinkage::Static;
                        }
                    }
                }
            }
            vars.sort_by_key(|v| v.offset);
            if let Some(t) = btf.type_mut(id) {
                t.kind = BtfKind::Datasec { size: new_size, vars };
            }
        }
        Ok(())
    }

    /// libbpf's `bpf_object__init_maps`: legacy maps (libbpf 0.x), BTF maps,
    /// global data maps in section order, then the kconfig map.
    fn init_maps(&mut self) -> Result<(), ObjectError> {
        if let Some(sec) = self.legacy_maps_sec {
            self.init_legacy_maps(sec)?;
        }
        if let Some(sec) = self.btf_maps_sec {
            let Some(btf) = self.btf.as_ref() else {
                return Err(ObjectError::MissingBtf { what: "BTF-defined maps (section '.maps')".into() });
            };
            let size = self.elf.sections[sec].size;
            for v in maps::parse_btf_maps(btf, size)? {
                self.maps.push(v.def);
                self.map_keys.push(MapKey::Btf {
                    offset: v.offset,
                    size: v.size,
                    values_bit_offset: v.values_bit_offset,
                });
            }
        }
        for (sec, kind) in self.data_secs.clone() {
            let s = &self.elf.sections[sec];
            if s.size > MAX_DATA_SECTION {
                return Err(sec_err(
                    &s.name,
                    format!("global data of {} bytes exceeds the {MAX_DATA_SECTION}-byte limit", s.size),
                ));
            }
            let (origin, flags) = match kind {
                DataKind::Data => (MapOrigin::Data, 0),
                DataKind::Rodata => (MapOrigin::Rodata, BPF_F_RDONLY_PROG),
                DataKind::Bss => (MapOrigin::Bss, 0),
            };
            let data = if kind == DataKind::Bss { vec![0; s.size as usize] } else { s.data.to_vec() };
            let def = self.internal_map(&s.name.clone(), origin, flags, data);
            self.maps.push(def);
            self.map_keys.push(MapKey::Data { sec });
        }
        let kc = self.kconfig_size();
        if self.externs.iter().any(|e| matches!(e.kind, ExternKind::Kconfig { .. })) {
            let def = self.internal_map(".kconfig", MapOrigin::Kconfig, BPF_F_RDONLY_PROG, vec![0; kc as usize]);
            self.kconfig_map = Some(self.maps.len());
            self.maps.push(def);
            self.map_keys.push(MapKey::Kconfig);
        }
        Ok(())
    }

    /// libbpf's `bpf_object__init_internal_map`.
    fn internal_map(&self, section: &str, origin: MapOrigin, flags: u32, data: Vec<u8>) -> MapDef {
        let mut def = MapDef::empty(maps::internal_map_name(&self.obj_name, section), section.to_string(), origin);
        def.map_type = maps::MapType::Array.number();
        def.key_size = 4;
        def.value_size = data.len() as u32;
        def.max_entries = 1;
        def.map_flags = flags;
        if let Some(btf) = &self.btf {
            if let Some((id, t)) = btf.find_by_name(section).next() {
                def.btf_value_type_id = id;
                if let BtfKind::Datasec { vars, .. } = &t.kind {
                    let mmapable = vars.iter().any(|v| {
                        matches!(btf.type_by_id(v.type_id).map(|t| &t.kind),
                            Ok(BtfKind::Var { linkage, .. }) if *linkage != VarLinkage::Static)
                    });
                    if mmapable {
                        def.map_flags |= BPF_F_MMAPABLE;
                    }
                }
            }
        }
        def.initial_data = Some(data);
        def
    }

    /// libbpf 0.x's `bpf_object__init_user_maps` for the legacy `maps` section.
    fn init_legacy_maps(&mut self, sec: usize) -> Result<(), ObjectError> {
        let s = &self.elf.sections[sec];
        let syms: Vec<&elf::Symbol> =
            self.elf.symbols.iter().filter(|y| y.shndx as usize == sec && y.typ != E::STT_SECTION).collect();
        let size = s.data.len();
        if size == 0 || syms.is_empty() || size % syms.len() != 0 {
            return Err(sec_err(
                "maps",
                format!("cannot determine the legacy map definition size: {} symbols in {size} bytes", syms.len()),
            ));
        }
        let def_size = size / syms.len();
        for y in syms {
            if y.name.is_empty() {
                return Err(sec_err("maps", "unnamed legacy map"));
            }
            if y.bind == E::STB_LOCAL {
                return Err(ObjectError::Map {
                    map: y.name.clone(),
                    reason: "static legacy maps are not supported".into(),
                });
            }
            let start = usize::try_from(y.value).ok().filter(|&v| v.checked_add(def_size).is_some_and(|e| e <= size));
            let Some(start) = start else {
                return Err(ObjectError::Map {
                    map: y.name.clone(),
                    reason: "definition is outside the maps section".into(),
                });
            };
            let def = maps::parse_legacy_def(&y.name, &s.data[start..start + def_size])?;
            self.maps.push(def);
            self.map_keys.push(MapKey::Legacy { sec, offset: y.value });
        }
        Ok(())
    }

    fn func_at(&self, sec: usize, insn: usize) -> Option<usize> {
        let i = self.funcs.partition_point(|f| (f.sec, f.off) <= (sec, insn));
        let f = self.funcs.get(i.checked_sub(1)?)?;
        (f.sec == sec && insn < f.off + f.len).then_some(i - 1)
    }

    /// libbpf's `bpf_object__collect_prog_relos` and `bpf_program__record_reloc`.
    fn collect_relocations(&mut self) -> Result<(), ObjectError> {
        let rel_sections = std::mem::take(&mut self.elf.rel_sections);
        for (_, rs) in &rel_sections {
            let Some(insns) = self.code.get(&rs.target) else { continue };
            let sec_name = self.sec_name(rs.target);
            let mut table = BTreeMap::new();
            for r in &rs.rels {
                let symbol = self.elf.symbol_display(r.sym as usize);
                let Some(sym) = self.elf.symbols.get(r.sym as usize) else {
                    return Err(sec_err(&sec_name, format!("relocation refers to missing symbol #{}", r.sym)));
                };
                if r.offset % 8 != 0 || r.offset >= insns.len() as u64 * 8 {
                    return Err(sec_err(
                        &sec_name,
                        format!("relocation against '{symbol}' at invalid offset {:#x}", r.offset),
                    ));
                }
                if !matches!(r.r_type, elf::R_BPF_64_64 | elf::R_BPF_64_32) {
                    return Err(ObjectError::UnknownRelocationType {
                        section: sec_name,
                        offset: r.offset,
                        symbol,
                        r_type: r.r_type,
                        type_name: elf::reloc_type_name(r.r_type),
                    });
                }
                let idx = (r.offset / 8) as usize;
                let Some(func) = self.func_at(rs.target, idx) else {
                    // libbpf: not inside any function (an overridden weak function); skip.
                    continue;
                };
                let func_end = self.funcs[func].off + self.funcs[func].len;
                let insn = insns[idx];
                let bad = |reason: String| ObjectError::BadRelocation {
                    section: sec_name.clone(),
                    insn: idx,
                    symbol: symbol.clone(),
                    reason,
                };
                let is_call = insn.code == CALL;
                let is_lddw = insn.code == LDDW;
                if !is_call && !is_lddw {
                    return Err(bad(format!("instruction with opcode {:#04x} cannot be relocated", insn.code)));
                }
                if is_lddw && idx + 1 >= func_end {
                    return Err(bad("lddw is missing its second slot".into()));
                }
                let reloc = if let Some(&ext) = self.extern_by_sym.get(&(r.sym as usize)) {
                    if is_call {
                        Reloc::ExternCall { ext }
                    } else {
                        Reloc::ExternLd { ext }
                    }
                } else if is_call {
                    if insn.src() != 1 {
                        return Err(bad("call relocation on a call that is not a bpf-to-bpf call".into()));
                    }
                    if self.text_sec.is_none() || sym.shndx as usize != self.text_sec.unwrap_or(0) {
                        return Err(bad(format!(
                            "call target is in section '{}', not .text",
                            self.sec_name(sym.shndx as usize)
                        )));
                    }
                    if sym.value % 8 != 0 {
                        return Err(bad(format!("call target offset {} is not instruction-aligned", sym.value)));
                    }
                    Reloc::Call { sym_off: sym.value }
                } else {
                    let shndx = sym.shndx as usize;
                    if shndx == 0 || shndx >= self.elf.sections.len() {
                        return Err(bad(format!(
                            "symbol is in special section {:#x} (forgot to initialise a global variable?)",
                            sym.shndx
                        )));
                    }
                    // libbpf's sym_is_subprog (section symbols of static functions,
                    // global functions), plus named static functions.
                    let is_subprog = Some(shndx) == self.text_sec
                        && ((sym.bind == E::STB_LOCAL && sym.typ == E::STT_SECTION) || sym.typ == E::STT_FUNC);
                    if is_subprog {
                        if sym.value % 8 != 0 || insn.imm % 8 != 0 {
                            return Err(bad(format!(
                                "function address {}+{} is not instruction-aligned",
                                sym.value, insn.imm
                            )));
                        }
                        Reloc::SubprogAddr { sym_off: sym.value }
                    } else if Some(shndx) == self.btf_maps_sec || Some(shndx) == self.legacy_maps_sec {
                        let map = self
                            .map_keys
                            .iter()
                            .position(|k| match *k {
                                MapKey::Btf { offset, .. } => {
                                    Some(shndx) == self.btf_maps_sec && u64::from(offset) == sym.value
                                }
                                MapKey::Legacy { sec, offset } => sec == shndx && offset == sym.value,
                                _ => false,
                            })
                            .ok_or_else(|| {
                                bad(format!("no map at offset {} of section '{}'", sym.value, self.sec_name(shndx)))
                            })?;
                        Reloc::Map { map }
                    } else if self.data_secs.iter().any(|&(s, _)| s == shndx) {
                        let map = self
                            .map_keys
                            .iter()
                            .position(|k| matches!(*k, MapKey::Data { sec } if sec == shndx))
                            .ok_or_else(|| bad(format!("no data map for section '{}'", self.sec_name(shndx))))?;
                        Reloc::Data { map, sym_off: sym.value }
                    } else {
                        return Err(ObjectError::UnknownRelocationSection {
                            section: sec_name,
                            insn: idx,
                            symbol,
                            target_section: self.sec_name(shndx),
                        });
                    }
                };
                if table.insert(idx, RelocEntry { reloc, symbol: symbol.clone() }).is_some() {
                    return Err(bad("more than one relocation for this instruction".into()));
                }
            }
            let entry = self.relocs.entry(rs.target).or_default();
            for (k, v) in table {
                if entry.insert(k, v).is_some() {
                    return Err(ObjectError::BadRelocation {
                        section: sec_name.clone(),
                        insn: k,
                        symbol: String::new(),
                        reason: "more than one relocation section relocates this instruction".into(),
                    });
                }
            }
        }
        self.elf.rel_sections = rel_sections;
        Ok(())
    }

    /// libbpf's `bpf_object__relocate_core`, with the local BTF as target.
    fn apply_core_relocations(&mut self) -> Result<(), ObjectError> {
        let (Some(btf), Some(ext)) = (self.btf.as_ref(), self.btf_ext.as_ref()) else { return Ok(()) };
        for sr in &ext.core_relos {
            let Some(sec) = self.code.keys().copied().find(|&s| self.elf.sections[s].name == sr.section) else {
                // No such code section: nothing to relocate (libbpf skips these too).
                continue;
            };
            for rec in &sr.records {
                if rec.insn_off % 8 != 0 {
                    return Err(sec_err(&sr.section, format!("CO-RE relocation at unaligned offset {}", rec.insn_off)));
                }
                let idx = (rec.insn_off / 8) as usize;
                if self.func_at(sec, idx).is_none() {
                    continue;
                }
                let insns = self.code.get_mut(&sec).ok_or_else(|| sec_err(&sr.section, "missing code"))?;
                core_reloc::apply(btf, rec, insns, idx).map_err(|f| match f {
                    CoreFailure::UnknownKind(kind) => {
                        ObjectError::UnsupportedCoreKind { section: sr.section.clone(), insn: idx, kind }
                    }
                    CoreFailure::Invalid(kind, reason) => {
                        ObjectError::Core { section: sr.section.clone(), insn: idx, kind, reason }
                    }
                })?;
            }
        }
        Ok(())
    }

    /// libbpf's `bpf_object__relocate_calls` + `bpf_object__relocate_data`
    /// for one entry program.
    fn link_program(&self, entry: usize) -> Result<ProgramDef, ObjectError> {
        let f0 = &self.funcs[entry];
        let code = |f: &Func| -> &[Insn] { &self.code[&f.sec][f.off..f.off + f.len] };
        let mut insns = code(f0).to_vec();
        // (function, offset in the linked program)
        let mut pieces: Vec<(usize, usize)> = vec![(entry, 0)];
        let mut placed: HashMap<usize, usize> = HashMap::new();
        let empty = BTreeMap::new();
        let relocs_of = |sec: usize| self.relocs.get(&sec).unwrap_or(&empty);
        let missing =
            |pc: usize, reason: String| ObjectError::MissingSubprogram { program: f0.name.clone(), insn: pc, reason };

        // Depth-first, in libbpf's order: a subprogram is appended at its first use
        // and processed before the caller continues.
        let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
        while let Some(frame) = stack.last_mut() {
            let (piece, i) = *frame;
            let (fi, base) = pieces[piece];
            let f = &self.funcs[fi];
            if i >= f.len {
                stack.pop();
                continue;
            }
            let sec_idx = f.off + i;
            let orig = self.code[&f.sec][sec_idx];
            let reloc = relocs_of(f.sec).get(&sec_idx).map(|r| r.reloc);
            let is_call = orig.code == CALL && orig.src() == 1;
            let is_func_addr =
                orig.code == LDDW && (orig.src() == pseudo::FUNC || matches!(reloc, Some(Reloc::SubprogAddr { .. })));
            if !(is_call || is_func_addr) || matches!(reloc, Some(Reloc::ExternCall { .. })) {
                frame.1 += 1;
                continue;
            }
            let pc = base + i;
            let target: i64 = match reloc {
                Some(Reloc::Call { sym_off }) => (sym_off / 8) as i64 + i64::from(orig.imm) + 1,
                Some(Reloc::SubprogAddr { sym_off }) => {
                    ((i128::from(sym_off) + i128::from(orig.imm)) / 8).try_into().unwrap_or(i64::MAX)
                }
                Some(_) => return Err(missing(pc, "unexpected relocation on a call or function address".into())),
                None if is_func_addr => return Err(missing(pc, "function address without relocation".into())),
                None => {
                    if Some(f.sec) != self.text_sec {
                        return Err(missing(
                            pc,
                            format!(
                                "bpf-to-bpf call without relocation in section '{}' (subprograms must be in .text)",
                                self.sec_name(f.sec)
                            ),
                        ));
                    }
                    sec_idx as i64 + i64::from(orig.imm) + 1
                }
            };
            let Some(text) = self.text_sec else {
                return Err(missing(pc, "call into .text, but the object has no .text section".into()));
            };
            let target_fn = usize::try_from(target)
                .ok()
                .and_then(|t| self.func_at(text, t).filter(|&g| self.funcs[g].off == t))
                .ok_or_else(|| missing(pc, format!("no .text function starts at instruction {target}")))?;
            match placed.get(&target_fn) {
                None => {
                    let off = insns.len();
                    if off + self.funcs[target_fn].len > MAX_INSNS {
                        return Err(missing(pc, format!("linked program exceeds {MAX_INSNS} instructions")));
                    }
                    insns.extend_from_slice(code(&self.funcs[target_fn]));
                    placed.insert(target_fn, off);
                    pieces.push((target_fn, off));
                    stack.push((pieces.len() - 1, 0));
                }
                Some(&off) => {
                    let rel = off as i64 - pc as i64 - 1;
                    insns[pc].imm = i32::try_from(rel).map_err(|_| missing(pc, "call offset overflows".into()))?;
                    if is_func_addr {
                        insns[pc].regs = (insns[pc].regs & 0x0f) | (pseudo::FUNC << 4);
                    }
                    if let Some(fr) = stack.last_mut() {
                        fr.1 += 1;
                    }
                }
            }
        }

        // Data, map and extern references.
        let mut kfuncs = Vec::new();
        let mut ksyms = Vec::new();
        for &(fi, base) in &pieces {
            let f = &self.funcs[fi];
            for (&k, entry) in relocs_of(f.sec).range(f.off..f.off + f.len) {
                let pc = base + (k - f.off);
                let bad = |reason: String| ObjectError::BadRelocation {
                    section: self.sec_name(f.sec),
                    insn: k,
                    symbol: entry.symbol.clone(),
                    reason,
                };
                match entry.reloc {
                    Reloc::Call { .. } | Reloc::SubprogAddr { .. } => {}
                    Reloc::Map { map } => {
                        set_lddw(&mut insns, pc, pseudo::MAP_IDX, map as i32, 0);
                    }
                    Reloc::Data { map, sym_off } => {
                        let off = i128::from(insns[pc].imm) + i128::from(sym_off);
                        let off = i32::try_from(off).map_err(|_| bad(format!("data offset {off} is out of range")))?;
                        set_lddw(&mut insns, pc, pseudo::MAP_IDX_VALUE, map as i32, off);
                    }
                    Reloc::ExternLd { ext } => {
                        let e = &self.externs[ext];
                        match e.kind {
                            ExternKind::Kconfig { offset, .. } => {
                                let map = self.kconfig_map.ok_or_else(|| bad("no .kconfig map".into()))?;
                                set_lddw(&mut insns, pc, pseudo::MAP_IDX_VALUE, map as i32, offset as i32);
                            }
                            ExternKind::Ksym { is_func } => {
                                set_lddw(&mut insns, pc, pseudo::BTF_ID, e.btf_id as i32, 0);
                                ksyms.push(KsymRef {
                                    pc,
                                    name: e.name.clone(),
                                    weak: e.weak,
                                    is_func,
                                    btf_id: e.btf_id,
                                });
                            }
                        }
                    }
                    Reloc::ExternCall { ext } => {
                        let e = &self.externs[ext];
                        if !matches!(e.kind, ExternKind::Ksym { is_func: true }) {
                            return Err(bad(format!("call of '{}', which is not an extern function (__ksym)", e.name)));
                        }
                        insns[pc] = Insn::new(CALL, 0, uxdp_isa::opcode::call::KFUNC, 0, e.btf_id as i32);
                        kfuncs.push(KfuncCall { pc, name: e.name.clone(), weak: e.weak, btf_id: e.btf_id });
                    }
                }
            }
        }
        kfuncs.sort_by_key(|k| k.pc);
        ksyms.sort_by_key(|k| k.pc);

        // .BTF.ext func_info / line_info for every piece.
        let mut func_info = Vec::new();
        let mut line_info = Vec::new();
        if let Some(ext) = &self.btf_ext {
            for &(fi, base) in &pieces {
                let f = &self.funcs[fi];
                let sname = &self.elf.sections[f.sec].name;
                let map_off = |byte_off: u32| -> Option<usize> {
                    let i = (byte_off / 8) as usize;
                    (byte_off % 8 == 0 && i >= f.off && i < f.off + f.len).then(|| base + i - f.off)
                };
                for sr in ext.func_info.iter().filter(|s| &s.section == sname) {
                    for r in &sr.records {
                        if let Some(insn_off) = map_off(r.insn_off) {
                            func_info.push(FuncInfo { insn_off, type_id: r.type_id });
                        }
                    }
                }
                for sr in ext.line_info.iter().filter(|s| &s.section == sname) {
                    for r in &sr.records {
                        if let Some(insn_off) = map_off(r.insn_off) {
                            line_info.push(LineInfo {
                                insn_off,
                                file_name_off: r.file_name_off,
                                line_off: r.line_off,
                                line: r.line_col >> 10,
                                column: r.line_col & 0x3ff,
                            });
                        }
                    }
                }
            }
        }

        let raw_section = self.sec_name(f0.sec);
        let (section, autoload) = match raw_section.strip_prefix('?') {
            Some(s) => (s.to_string(), false),
            None => (raw_section.clone(), true),
        };
        let (btf_func_id, decl_tags, run_config) = match &self.btf {
            Some(btf) => (
                btf.find_func(&f0.name).map(|(id, _)| id),
                btf.func_decl_tags(&f0.name).into_iter().map(str::to_string).collect(),
                parse_run_config(btf, &f0.name)?,
            ),
            None => (None, Vec::new(), None),
        };
        let subprograms = pieces[1..]
            .iter()
            .map(|&(fi, off)| SubprogramRef {
                name: self.funcs[fi].name.clone(),
                insn_off: off,
                len: self.funcs[fi].len,
            })
            .collect();
        Ok(ProgramDef {
            name: f0.name.clone(),
            kind: ProgramKind::from_section(&section),
            section,
            autoload,
            insns,
            own_insn_count: f0.len,
            section_insn_offset: f0.off,
            subprograms,
            run_config,
            kfuncs,
            ksyms,
            func_info,
            line_info,
            btf_func_id,
            decl_tags,
        })
    }

    /// libbpf's `bpf_object__collect_map_relos`: `values` initialisers of
    /// prog arrays and map-in-map maps.
    fn init_map_values(&mut self, programs: &[ProgramDef]) -> Result<(), ObjectError> {
        let Some(maps_sec) = self.btf_maps_sec else { return Ok(()) };
        let rel_sections = std::mem::take(&mut self.elf.rel_sections);
        for (rel_name, rs) in &rel_sections {
            if rs.target != maps_sec {
                continue;
            }
            for r in &rs.rels {
                let symbol = self.elf.symbol_display(r.sym as usize);
                let Some(sym) = self.elf.symbols.get(r.sym as usize) else {
                    return Err(sec_err(rel_name, format!("relocation refers to missing symbol #{}", r.sym)));
                };
                if r.r_type != elf::R_BPF_64_ABS64 {
                    return Err(ObjectError::UnknownRelocationType {
                        section: ".maps".into(),
                        offset: r.offset,
                        symbol,
                        r_type: r.r_type,
                        type_name: elf::reloc_type_name(r.r_type),
                    });
                }
                let found = self.map_keys.iter().enumerate().find_map(|(i, k)| match *k {
                    MapKey::Btf { offset, size, values_bit_offset }
                        if r.offset >= u64::from(offset) && r.offset < u64::from(offset) + u64::from(size) =>
                    {
                        Some((i, offset, values_bit_offset))
                    }
                    _ => None,
                });
                let Some((mi, var_off, values_bit_offset)) = found else {
                    return Err(sec_err(
                        ".maps",
                        format!("relocation against '{symbol}' at offset {} is not inside a map", r.offset),
                    ));
                };
                let map_name = self.maps[mi].name.clone();
                let merr = |reason: String| ObjectError::Map { map: map_name.clone(), reason };
                let kind = self.maps[mi].kind();
                let target = if kind.is_some_and(maps::MapType::is_map_in_map) {
                    if Some(sym.shndx as usize) != self.btf_maps_sec {
                        return Err(merr(format!("'values' entry '{symbol}' is not a BTF-defined map")));
                    }
                    if kind == Some(maps::MapType::HashOfMaps) && self.maps[mi].key_size != 4 {
                        return Err(merr("hash-of-maps with 'values' must have 4-byte keys".into()));
                    }
                    if !self.maps.iter().any(|m| m.name == sym.name) {
                        return Err(merr(format!("'values' entry '{symbol}' is not a valid map reference")));
                    }
                    InitTarget::Map(sym.name.clone())
                } else if kind == Some(maps::MapType::ProgArray) {
                    let p = programs
                        .iter()
                        .find(|p| p.name == sym.name)
                        .ok_or_else(|| merr(format!("'values' entry '{symbol}' is not a valid program reference")))?;
                    let psec = self.funcs.iter().find(|f| f.name == p.name).map(|f| f.sec);
                    if psec != Some(sym.shndx as usize) || (p.section_insn_offset as u64) * 8 != sym.value {
                        return Err(merr(format!("'values' entry '{symbol}' is not an entry-point program")));
                    }
                    InitTarget::Program(sym.name.clone())
                } else {
                    return Err(merr(format!(
                        "relocation against '{symbol}' in a map that is neither a prog array nor a map-in-map"
                    )));
                };
                let Some(vbits) = values_bit_offset else {
                    return Err(merr("relocation in a map without a 'values' member".into()));
                };
                let moff = u64::from(vbits / 8);
                let rel = r.offset - u64::from(var_off);
                if rel < moff || (rel - moff) % 8 != 0 {
                    return Err(merr(format!("relocation at offset {} is not a 'values' slot", r.offset)));
                }
                let slot = u32::try_from((rel - moff) / 8).map_err(|_| merr("'values' index overflows".into()))?;
                let vals = &mut self.maps[mi].init_values;
                vals.retain(|(i, _)| *i != slot);
                vals.push((slot, target));
                vals.sort_by_key(|(i, _)| *i);
            }
        }
        self.elf.rel_sections = rel_sections;
        Ok(())
    }
}

fn set_lddw(insns: &mut [Insn], pc: usize, src: u8, imm: i32, next_imm: i32) {
    insns[pc].regs = (insns[pc].regs & 0x0f) | (src << 4);
    insns[pc].imm = imm;
    insns[pc + 1].imm = next_imm;
}

fn kconfig_type(btf: &Btf, id: u32) -> Option<KconfigType> {
    let id = btf.skip_mods_and_typedefs(id).ok()?;
    let t = btf.type_by_id(id).ok()?;
    match &t.kind {
        BtfKind::Int { size, encoding, .. } => {
            if encoding & 4 != 0 {
                return (*size == 1).then_some(KconfigType::Bool);
            }
            if *size == 1 {
                return Some(KconfigType::Char);
            }
            (size.is_power_of_two() && *size <= 8).then_some(KconfigType::Int { signed: encoding & 1 != 0 })
        }
        BtfKind::Enum { size: 4, .. } | BtfKind::Enum64 { .. } if t.name == "libbpf_tristate" => {
            Some(KconfigType::Tristate)
        }
        BtfKind::Array { elem, nelems, .. } if *nelems > 0 => {
            (kconfig_type(btf, *elem) == Some(KconfigType::Char)).then_some(KconfigType::CharArray)
        }
        _ => None,
    }
}

const XDP_ACTIONS: [&str; 5] = ["XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"];

/// libxdp's `xdp_program__parse_btf`: the `_<program>` variable of the
/// `.xdp_run_config` DATASEC.
pub(crate) fn parse_run_config(btf: &Btf, program: &str) -> Result<Option<RunConfig>, ObjectError> {
    let Some((_, sec)) = btf.find_datasec(".xdp_run_config") else { return Ok(None) };
    let BtfKind::Datasec { vars, .. } = &sec.kind else { return Ok(None) };
    let want = format!("_{program}");
    let err = |reason: String| ObjectError::RunConfig { program: program.to_string(), reason };
    for v in vars {
        let var = btf.type_by_id(v.type_id)?;
        if var.name != want {
            continue;
        }
        let BtfKind::Var { type_id, linkage } = var.kind else {
            return Err(err(format!("'{want}' is a {}, not a variable", var.kind.name())));
        };
        if !matches!(linkage, VarLinkage::GlobalAllocated | VarLinkage::Static) {
            return Err(err(format!("'{want}' has unsupported linkage {linkage:?}")));
        }
        let def = btf.type_by_id(btf.skip_mods_and_typedefs(type_id)?)?;
        let BtfKind::Struct { members, .. } = &def.kind else {
            return Err(err(format!("'{want}' is a {}, not a struct", def.kind.name())));
        };
        let mut cfg = RunConfig::default();
        for (i, m) in members.iter().enumerate() {
            if m.name.is_empty() {
                return Err(err(format!("member #{i} has no name")));
            }
            let value = || -> Result<u32, ObjectError> {
                let mt = btf.type_by_id(btf.skip_mods_and_typedefs(m.type_id)?)?;
                let BtfKind::Ptr(arr) = mt.kind else {
                    return Err(err(format!(
                        "member '{}' must be declared with __uint (expected a pointer, got {})",
                        m.name,
                        mt.kind.name()
                    )));
                };
                match btf.type_by_id(arr)?.kind {
                    BtfKind::Array { nelems, .. } => Ok(nelems),
                    ref k => Err(err(format!(
                        "member '{}': expected a pointer to an array, got a pointer to {}",
                        m.name,
                        k.name()
                    ))),
                }
            };
            if m.name == "priority" {
                cfg.priority = value()?;
            } else if let Some(action) = XDP_ACTIONS.iter().position(|a| *a == m.name) {
                if value()? != 0 {
                    cfg.chain_call_actions |= 1 << action;
                } else {
                    cfg.chain_call_actions &= !(1 << action);
                }
            } else {
                return Err(ObjectError::UnknownRunConfigMember {
                    program: program.to_string(),
                    member: m.name.clone(),
                });
            }
        }
        return Ok(Some(cfg));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::tests::blob;

    /// BTF for `struct { <members> } _p SEC(".xdp_run_config");` where each
    /// member is `__uint(name, value)`, or a plain int when value is None.
    fn run_config_btf(members: &[(&str, Option<u32>)]) -> Btf {
        let mut strings = b"\0int\0_p\0.xdp_run_config\0".to_vec();
        let (int_name, var_name, sec_name) = (1, 5, 8);
        let info = |kind: u32, vlen: usize| (kind << 24) | vlen as u32;
        let mut t = vec![int_name, info(1, 0), 4, (1 << 24) | 32]; // [1] int
        let mut next_id = 2;
        let mut m = Vec::new();
        for (i, (name, value)) in members.iter().enumerate() {
            let off = strings.len() as u32;
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            let ty = match value {
                Some(v) => {
                    t.extend_from_slice(&[0, info(3, 0), 0, 1, 1, *v]); // array
                    t.extend_from_slice(&[0, info(2, 0), next_id]); // ptr to it
                    next_id += 2;
                    next_id - 1
                }
                None => 1,
            };
            m.extend_from_slice(&[off, ty, 64 * i as u32]);
        }
        let st = next_id;
        t.extend_from_slice(&[0, info(4, members.len()), 8 * members.len() as u32]);
        t.extend_from_slice(&m);
        t.extend_from_slice(&[var_name, info(14, 0), st, 1]); // VAR _p, global
        t.extend_from_slice(&[sec_name, info(15, 1), 8 * members.len() as u32, st + 1, 0, 8 * members.len() as u32]);
        Btf::parse(&blob(&t, &strings)).unwrap()
    }

    #[test]
    fn run_config_overrides_only_listed_members() {
        // No declaration for the program: no run config.
        let btf = run_config_btf(&[("priority", Some(7))]);
        assert_eq!(parse_run_config(&btf, "other").unwrap(), None);
        // Priority only: the default actions {XDP_PASS} stay.
        assert_eq!(parse_run_config(&btf, "p").unwrap(), Some(RunConfig { priority: 7, chain_call_actions: 1 << 2 }));
        // Listing XDP_DROP adds to the defaults (libxdp sets one bit per member).
        let btf = run_config_btf(&[("XDP_DROP", Some(1))]);
        assert_eq!(parse_run_config(&btf, "p").unwrap(), Some(RunConfig { priority: 50, chain_call_actions: 0b110 }));
        // A zero value clears the action, even the default one.
        let btf = run_config_btf(&[("XDP_PASS", Some(0)), ("XDP_REDIRECT", Some(3)), ("XDP_ABORTED", Some(1))]);
        assert_eq!(parse_run_config(&btf, "p").unwrap(), Some(RunConfig { priority: 50, chain_call_actions: 0b10001 }));
        // Unknown member: libxdp's -ENOTSUP.
        let btf = run_config_btf(&[("priority", Some(1)), ("XDP_FOO", Some(1))]);
        let e = parse_run_config(&btf, "p").unwrap_err();
        assert!(matches!(e, ObjectError::UnknownRunConfigMember { ref member, .. } if member == "XDP_FOO"), "{e}");
        // A member that is not declared with __uint.
        let btf = run_config_btf(&[("priority", None)]);
        let e = parse_run_config(&btf, "p").unwrap_err().to_string();
        assert!(e.contains("priority") && e.contains("__uint"), "{e}");
    }
}
