//! # uxdp-object: BPF ELF objects, loaded the way libbpf loads them
//!
//! [`Object::parse`] reads a clang-compiled BPF object (`clang -target bpf
//! -c`) and produces self-contained programs and map definitions that a
//! runtime can execute without a kernel:
//!
//! - **Programs** ([`ProgramDef`]): every global function in an executable
//!   section other than `.text`, typed by libbpf's section-name table
//!   ([`ProgramKind`]). Used `.text` functions are appended to each program
//!   in libbpf's order and every bpf-to-bpf call and function address
//!   (`lddw src_reg=4`) is made pc-relative within the program.
//! - **Relocations** in libbpf's gen-loader form: map references become
//!   `lddw src_reg=5` (`BPF_PSEUDO_MAP_IDX`, `imm` = index into
//!   [`Object::maps`]), global-data references `lddw src_reg=6`
//!   (`BPF_PSEUDO_MAP_IDX_VALUE`, `imm` = map index, second `imm` = byte
//!   offset), kfunc calls `call src_reg=2` (see [`KfuncCall`]).
//! - **Maps** ([`MapDef`]): BTF-defined maps in `.maps` (including
//!   `__array(values, ...)` inner maps and `values` initialisers), legacy
//!   `struct bpf_map_def` maps in `maps`, libbpf's internal one-element
//!   array maps for `.data*`, `.rodata*` (read-only, `BPF_F_RDONLY_PROG`),
//!   `.bss*` and `.kconfig`, named like libbpf names them.
//! - **BTF** ([`Btf`]) and **`.BTF.ext`** ([`BtfExt`]): types, DATASECs,
//!   decl tags, func/line info, and CO-RE relocations, which are resolved
//!   against the object's own BTF (uxdp provides the kernel's UAPI layouts).
//! - **libxdp metadata**: `XDP_RUN_CONFIG` ([`RunConfig`]).
//!
//! Malformed input never panics: every problem is an [`ObjectError`] that
//! names the section, symbol, map, program or instruction concerned.
//!
//! ```no_run
//! let obj = uxdp_object::Object::from_file("prog.o")?;
//! for p in &obj.programs {
//!     println!("{} ({}): {} insns", p.name, p.kind.type_name(), p.insns.len());
//! }
//! # Ok::<(), uxdp_object::ObjectError>(())
//! ```

#![warn(missing_docs)]

pub mod btf;
pub mod btf_ext;
pub mod core_reloc;
mod elf;
mod error;
mod loader;
pub mod maps;
pub mod program;

pub use btf::{Btf, BtfError, BtfKind, BtfType};
pub use btf_ext::BtfExt;
pub use core_reloc::CoreRelocKind;
pub use error::ObjectError;
pub use maps::{InitTarget, MapDef, MapOrigin, MapType, Pinning};
pub use program::{
    FuncInfo, KfuncCall, KsymRef, LineInfo, ProgramDef, ProgramKind, RunConfig, SubprogramRef, XdpAttach,
};

use std::path::Path;

/// The value type of a `__kconfig` extern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KconfigType {
    /// `bool` (1 byte, 0 or 1).
    Bool,
    /// `char` (1 byte: `'y'`, `'m'`, `'n'` or a value).
    Char,
    /// `enum libbpf_tristate` (4 bytes: 0 no, 1 yes, 2 module).
    Tristate,
    /// An integer of 1, 2, 4 or 8 bytes.
    Int {
        /// Signed.
        signed: bool,
    },
    /// A `char` array (string value).
    CharArray,
}

/// A `__kconfig` extern: its slot in the `.kconfig` map's value.
///
/// libbpf fills these from the running kernel's configuration; the loader
/// leaves the map zeroed and the runtime decides the values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KconfigExtern {
    /// Name (`CONFIG_HZ`, `LINUX_KERNEL_VERSION`, ...).
    pub name: String,
    /// Byte offset in the `.kconfig` map value.
    pub offset: u32,
    /// Byte size.
    pub size: u32,
    /// Value type.
    pub ty: KconfigType,
    /// Declared `__weak` (may be left 0 when unknown).
    pub weak: bool,
}

/// An allocated data section libbpf does not turn into a map (for example
/// `.xdp_run_config`, xdp-filter's `features`, libxdp's `xdp_metadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraSection {
    /// Section name.
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// A loaded BPF object.
#[derive(Clone, Debug)]
pub struct Object {
    /// Object name: the file name up to its first `.`, limited to 15 bytes
    /// like libbpf; empty for [`Object::parse`].
    pub name: String,
    /// Contents of the `license` section (up to its NUL).
    pub license: String,
    /// Contents of the legacy `version` section.
    pub kern_version: Option<u32>,
    /// Entry programs in libbpf's order (section index, then offset).
    pub programs: Vec<ProgramDef>,
    /// Maps, in libbpf's order: legacy `maps`, `.maps`, global data
    /// sections in section order, `.kconfig`. Instructions refer to maps by
    /// index into this vector.
    pub maps: Vec<MapDef>,
    /// `__kconfig` externs, whose values live in the map `kconfig_map`.
    pub kconfig: Vec<KconfigExtern>,
    /// Index of the `.kconfig` map in `maps`, if there are kconfig externs.
    pub kconfig_map: Option<usize>,
    /// `.BTF`, with DATASEC sizes and offsets fixed up like libbpf does.
    pub btf: Option<Btf>,
    /// `.BTF.ext`, as stored (byte offsets per section).
    pub btf_ext: Option<BtfExt>,
    /// Allocated data sections that are not maps.
    pub extra_sections: Vec<ExtraSection>,
}

impl Object {
    /// Parses an object held in memory. Global-data maps get libbpf's names
    /// without an object-name prefix (`".rodata"`, `".bss"`).
    pub fn parse(bytes: &[u8]) -> Result<Object, ObjectError> {
        loader::load(bytes, "")
    }

    /// Parses an object held in memory under an object name, which prefixes
    /// the global-data map names exactly like libbpf (`"myprog.rodata"`,
    /// truncated to 15 characters).
    pub fn parse_named(bytes: &[u8], name: &str) -> Result<Object, ObjectError> {
        loader::load(bytes, name)
    }

    /// Reads and parses an object file; the object name is derived from the
    /// file name like libbpf does (first 15 bytes, cut at the first `.`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Object, ObjectError> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|source| ObjectError::Io { path: path.display().to_string(), source })?;
        let base = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        loader::load(&bytes, &object_name_from_file(&base))
    }

    /// The program with this name.
    pub fn program(&self, name: &str) -> Option<&ProgramDef> {
        self.programs.iter().find(|p| p.name == name)
    }

    /// The index of the map with this name.
    pub fn map_index(&self, name: &str) -> Option<usize> {
        self.maps.iter().position(|m| m.name == name)
    }

    /// The map with this name.
    pub fn map(&self, name: &str) -> Option<&MapDef> {
        self.maps.iter().find(|m| m.name == name)
    }
}

/// libbpf's object name: the base name copied into a 16-byte buffer, then
/// cut at the first `.`.
fn object_name_from_file(base: &str) -> String {
    let bytes: Vec<u8> = base.bytes().take(15).collect();
    let cut = bytes.iter().position(|&b| b == b'.').unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..cut]).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn object_names() {
        assert_eq!(super::object_name_from_file("xdp_prog.o"), "xdp_prog");
        assert_eq!(super::object_name_from_file("linux-samples__xdp_router_ipv4.linked.o"), "linux-samples__");
        assert_eq!(super::object_name_from_file("a.b.o"), "a");
    }
}
