//! The ELF layer: sections, symbols and relocations of a BPF object, read
//! with the `object` crate into plain owned records so that the loader
//! never indexes raw ELF data itself.

use crate::ObjectError;
use object::elf;
use object::read::elf::{FileHeader, Rel as _, SectionHeader as _, Sym as _};
use object::Endianness;

/// `EM_BPF`.
pub(crate) const EM_BPF: u16 = 247;
/// `R_BPF_64_64`: `lddw` immediate.
pub(crate) const R_BPF_64_64: u32 = 1;
/// `R_BPF_64_ABS64`: 64-bit data.
pub(crate) const R_BPF_64_ABS64: u32 = 2;
/// `R_BPF_64_32`: call immediate.
pub(crate) const R_BPF_64_32: u32 = 10;

/// Name of a BPF relocation type, for errors.
pub(crate) fn reloc_type_name(t: u32) -> &'static str {
    match t {
        0 => "R_BPF_NONE",
        1 => "R_BPF_64_64",
        2 => "R_BPF_64_ABS64",
        3 => "R_BPF_64_ABS32",
        4 => "R_BPF_64_NODYLD32",
        10 => "R_BPF_64_32",
        _ => "unknown",
    }
}

/// One section.
#[derive(Clone, Debug)]
pub(crate) struct Section<'a> {
    pub name: String,
    pub sh_type: u32,
    pub flags: u64,
    /// `sh_size` (also for `SHT_NOBITS`).
    pub size: u64,
    /// File contents (empty for `SHT_NOBITS`).
    pub data: &'a [u8],
}

impl Section<'_> {
    pub fn is_exec(&self) -> bool {
        self.sh_type == elf::SHT_PROGBITS && self.flags & u64::from(elf::SHF_EXECINSTR) != 0
    }
}

/// One symbol.
#[derive(Clone, Debug)]
pub(crate) struct Symbol {
    pub name: String,
    pub value: u64,
    pub size: u64,
    pub shndx: u16,
    pub bind: u8,
    pub typ: u8,
    pub visibility: u8,
}

impl Symbol {
    /// libbpf's `sym_is_extern`.
    pub fn is_extern(&self) -> bool {
        self.shndx == elf::SHN_UNDEF
            && (self.bind == elf::STB_GLOBAL || self.bind == elf::STB_WEAK)
            && self.typ == elf::STT_NOTYPE
    }
}

/// One `Elf64_Rel`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rel {
    pub offset: u64,
    pub sym: u32,
    pub r_type: u32,
}

/// A relocation section and the section it applies to.
#[derive(Clone, Debug)]
pub(crate) struct RelSection {
    pub target: usize,
    pub rels: Vec<Rel>,
}

/// The parsed file.
#[derive(Debug)]
pub(crate) struct ElfFile<'a> {
    /// All sections, indexed by section number (0 is the null section).
    pub sections: Vec<Section<'a>>,
    /// All symbols, indexed by symbol number (0 is the null symbol).
    pub symbols: Vec<Symbol>,
    /// Relocation sections.
    pub rel_sections: Vec<(String, RelSection)>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl<'a> ElfFile<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, ObjectError> {
        let header = elf::FileHeader64::<Endianness>::parse(data)?;
        let endian = header.endian()?;
        if endian != Endianness::Little {
            return Err(ObjectError::NotBpf("big-endian objects are not supported".into()));
        }
        let machine = header.e_machine(endian);
        if machine != EM_BPF {
            return Err(ObjectError::NotBpf(format!("e_machine is {machine}, not EM_BPF ({EM_BPF})")));
        }
        let e_type = header.e_type(endian);
        if e_type != elf::ET_REL {
            return Err(ObjectError::NotBpf(format!("ELF type {e_type} is not a relocatable object (ET_REL)")));
        }
        let table = header.sections(endian, data)?;
        let mut sections = Vec::with_capacity(table.len());
        for (index, sh) in table.enumerate() {
            let name = if index.0 == 0 {
                String::new()
            } else {
                lossy(
                    table
                        .section_name(endian, sh)
                        .map_err(|e| ObjectError::Elf(format!("section #{}: bad name: {e}", index.0)))?,
                )
            };
            let sh_type = sh.sh_type(endian);
            let data = if sh_type == elf::SHT_NOBITS || sh_type == elf::SHT_NULL {
                &[][..]
            } else {
                sh.data(endian, data)
                    .map_err(|e| ObjectError::Section { section: name.clone(), reason: e.to_string() })?
            };
            sections.push(Section { name, sh_type, flags: sh.sh_flags(endian), size: sh.sh_size(endian), data });
        }

        let symtab_count = sections.iter().filter(|s| s.sh_type == elf::SHT_SYMTAB).count();
        if symtab_count == 0 {
            return Err(ObjectError::Elf("no symbol table (stripped object?)".into()));
        }
        if symtab_count > 1 {
            return Err(ObjectError::Elf("multiple symbol tables".into()));
        }
        let symtab = table.symbols(endian, data, elf::SHT_SYMTAB)?;
        let mut symbols = Vec::with_capacity(symtab.len());
        for (index, sym) in symtab.enumerate() {
            let name = symtab
                .symbol_name(endian, sym)
                .map_err(|e| ObjectError::Elf(format!("symbol #{}: bad name: {e}", index.0)))?;
            symbols.push(Symbol {
                name: lossy(name),
                value: sym.st_value(endian),
                size: sym.st_size(endian),
                shndx: sym.st_shndx(endian),
                bind: sym.st_bind(),
                typ: sym.st_type(),
                visibility: sym.st_visibility(),
            });
        }

        let mut rel_sections = Vec::new();
        for (index, sh) in table.enumerate() {
            if sh.sh_type(endian) != elf::SHT_REL {
                continue;
            }
            let name = sections[index.0].name.clone();
            let target = sh.sh_info(endian) as usize;
            if target == 0 || target >= sections.len() {
                return Err(ObjectError::Section {
                    section: name,
                    reason: format!("relocations apply to invalid section #{target}"),
                });
            }
            if sh.sh_entsize(endian) != 16 {
                return Err(ObjectError::Section {
                    section: name,
                    reason: format!("relocation entry size {} is not 16", sh.sh_entsize(endian)),
                });
            }
            let raw: &[elf::Rel64<Endianness>] = sh
                .data_as_array(endian, data)
                .map_err(|e| ObjectError::Section { section: name.clone(), reason: e.to_string() })?;
            let rels = raw
                .iter()
                .map(|r| Rel { offset: r.r_offset(endian), sym: r.r_sym(endian), r_type: r.r_type(endian) })
                .collect();
            rel_sections.push((name, RelSection { target, rels }));
        }
        Ok(ElfFile { sections, symbols, rel_sections })
    }

    /// Index of the first section with this name.
    pub fn section_index(&self, name: &str) -> Option<usize> {
        self.sections.iter().position(|s| s.name == name)
    }

    /// Name of the section a symbol lives in, for messages.
    pub fn section_name(&self, shndx: usize) -> String {
        match self.sections.get(shndx) {
            Some(s) => s.name.clone(),
            None => format!("#{shndx}"),
        }
    }

    /// Display name of a symbol (section symbols are named after their section).
    pub fn symbol_display(&self, index: usize) -> String {
        match self.symbols.get(index) {
            Some(s) if s.typ == elf::STT_SECTION && s.name.is_empty() => self.section_name(s.shndx as usize),
            Some(s) if !s.name.is_empty() => s.name.clone(),
            _ => format!("#{index}"),
        }
    }
}
