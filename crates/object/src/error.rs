//! Errors of object loading. Every variant names what is wrong: the section,
//! the symbol, the map, the program and the instruction index it concerns.

use crate::btf::BtfError;
use crate::core_reloc::CoreRelocKind;

/// Why an object could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// Reading the file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that was read.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a well-formed ELF file.
    #[error("malformed ELF: {0}")]
    Elf(String),
    /// A well-formed ELF file that is not a little-endian 64-bit BPF object.
    #[error("not a BPF object: {0}")]
    NotBpf(String),
    /// A section is malformed or inconsistent.
    #[error("section '{section}': {reason}")]
    Section {
        /// Section name.
        section: String,
        /// What is wrong.
        reason: String,
    },
    /// A symbol is malformed or inconsistent.
    #[error("symbol '{symbol}': {reason}")]
    Symbol {
        /// Symbol name (or `#index` when it has none).
        symbol: String,
        /// What is wrong.
        reason: String,
    },
    /// `.BTF` is malformed or a type it describes is unusable.
    #[error(".BTF: {0}")]
    Btf(#[from] BtfError),
    /// `.BTF.ext` is malformed.
    #[error(".BTF.ext: {0}")]
    BtfExt(String),
    /// Something requires BTF but the object has none (compiled without `-g`).
    #[error("{what} requires BTF, but the object has no .BTF section (compile with -g)")]
    MissingBtf {
        /// What needed it.
        what: String,
    },
    /// A program symbol in a non-`.text` section is static (libbpf refuses these too).
    #[error("section '{section}': program '{name}' is static; entry programs must be global")]
    StaticProgram {
        /// Section name.
        section: String,
        /// Program name.
        name: String,
    },
    /// A relocation has a type this loader does not handle.
    #[error("section '{section}': relocation at byte offset {offset:#x} against '{symbol}' has unsupported type {r_type} ({type_name})")]
    UnknownRelocationType {
        /// Section the relocation applies to.
        section: String,
        /// Byte offset within that section.
        offset: u64,
        /// Symbol name.
        symbol: String,
        /// ELF relocation type number.
        r_type: u32,
        /// Its name, if it is a known BPF relocation type.
        type_name: &'static str,
    },
    /// A relocation cannot be applied to the instruction it targets.
    #[error("section '{section}', instruction {insn}: relocation against '{symbol}': {reason}")]
    BadRelocation {
        /// Section name.
        section: String,
        /// Instruction index within the section.
        insn: usize,
        /// Symbol name.
        symbol: String,
        /// What is wrong.
        reason: String,
    },
    /// A relocation refers to a section that holds neither maps, data nor code.
    #[error("section '{section}', instruction {insn}: relocation against '{symbol}' in section '{target_section}', which is not a map, data or code section")]
    UnknownRelocationSection {
        /// Section name.
        section: String,
        /// Instruction index within the section.
        insn: usize,
        /// Symbol name.
        symbol: String,
        /// Section of the symbol.
        target_section: String,
    },
    /// A call or function address refers to something that is not a subprogram.
    #[error("program '{program}', instruction {insn}: {reason}")]
    MissingSubprogram {
        /// Program being linked.
        program: String,
        /// Instruction index within the linked program.
        insn: usize,
        /// What is wrong.
        reason: String,
    },
    /// A map definition is invalid.
    #[error("map '{map}': {reason}")]
    Map {
        /// Map name.
        map: String,
        /// What is wrong.
        reason: String,
    },
    /// A map definition names a map type number that does not exist.
    #[error("map '{map}': unknown map type {value}")]
    UnknownMapType {
        /// Map name.
        map: String,
        /// The `BPF_MAP_TYPE_*` number.
        value: u32,
    },
    /// A map type exists but this loader cannot create it from an object file.
    #[error("map '{map}': unsupported map type {type_name} ({value})")]
    UnsupportedMapType {
        /// Map name.
        map: String,
        /// The `BPF_MAP_TYPE_*` name.
        type_name: &'static str,
        /// The `BPF_MAP_TYPE_*` number.
        value: u32,
    },
    /// A CO-RE relocation could not be resolved.
    #[error("section '{section}', instruction {insn}: CO-RE relocation {kind}: {reason}")]
    Core {
        /// Section name.
        section: String,
        /// Instruction index within the section.
        insn: usize,
        /// Relocation kind.
        kind: CoreRelocKind,
        /// What is wrong.
        reason: String,
    },
    /// A CO-RE relocation has a kind this loader does not know.
    #[error("section '{section}', instruction {insn}: unsupported CO-RE relocation kind {kind}")]
    UnsupportedCoreKind {
        /// Section name.
        section: String,
        /// Instruction index within the section.
        insn: usize,
        /// The raw `bpf_core_relo_kind` number.
        kind: u32,
    },
    /// An `extern` symbol cannot be handled.
    #[error("extern '{name}': {reason}")]
    Extern {
        /// Extern name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A libxdp `XDP_RUN_CONFIG` declaration is invalid.
    #[error("XDP_RUN_CONFIG of program '{program}': {reason}")]
    RunConfig {
        /// Program name.
        program: String,
        /// What is wrong.
        reason: String,
    },
    /// A libxdp `XDP_RUN_CONFIG` declaration has a member libxdp does not know
    /// (libxdp refuses such programs with `-ENOTSUP`).
    #[error("XDP_RUN_CONFIG of program '{program}': unknown member '{member}' (expected 'priority' or one of XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT)")]
    UnknownRunConfigMember {
        /// Program name.
        program: String,
        /// The member name.
        member: String,
    },
}

impl From<object::read::Error> for ObjectError {
    fn from(e: object::read::Error) -> Self {
        ObjectError::Elf(e.to_string())
    }
}
