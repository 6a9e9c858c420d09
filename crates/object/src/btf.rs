//! A small reader for BTF (`.BTF`), the BPF Type Format.
//!
//! It parses every kind the kernel defines (1-19), validates that every
//! type reference points at an existing type and every name at the string
//! table, and answers the questions the loader asks: resolved sizes and
//! alignments, modifier skipping, lookups by name, DATASEC contents and
//! `btf_decl_tag`s.

use std::collections::HashMap;

/// The BTF magic number.
pub const BTF_MAGIC: u16 = 0xeb9f;
/// Type resolution depth limit (libbpf's `MAX_RESOLVE_DEPTH`).
const MAX_RESOLVE_DEPTH: usize = 32;
/// Pointer size of the BPF target.
const PTR_SIZE: u64 = 8;

/// BTF errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    /// The blob ends before a structure it declares.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The header is invalid.
    #[error("bad header: {0}")]
    BadHeader(String),
    /// A name offset is outside the string table or the string is unterminated.
    #[error("type [{id}]: name offset {offset} is not a valid string")]
    BadString {
        /// Type id.
        id: u32,
        /// String offset.
        offset: u32,
    },
    /// A kind number outside 1-19.
    #[error("type [{id}]: unknown kind {kind}")]
    UnknownKind {
        /// Type id.
        id: u32,
        /// Kind number.
        kind: u32,
    },
    /// A type refers to a type id that does not exist.
    #[error("type [{id}]: refers to missing type [{target}]")]
    BadTypeRef {
        /// Type id.
        id: u32,
        /// Referenced id.
        target: u32,
    },
    /// A lookup of a type id that does not exist.
    #[error("type [{0}] does not exist")]
    TypeNotFound(u32),
    /// The size of a type cannot be determined (function, forward declaration, void).
    #[error("type [{id}] ({kind}) has no size")]
    NoSize {
        /// Type id.
        id: u32,
        /// Kind name.
        kind: &'static str,
    },
    /// Type chains nest deeper than libbpf allows, or loop.
    #[error("type [{0}]: type chain too deep or cyclic")]
    TooDeep(u32),
    /// A type is structurally invalid.
    #[error("type [{id}]: {reason}")]
    Invalid {
        /// Type id.
        id: u32,
        /// What is wrong.
        reason: String,
    },
}

/// Linkage of a `FUNC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuncLinkage {
    /// `static`.
    Static,
    /// Global definition.
    Global,
    /// `extern` declaration (kfuncs).
    Extern,
    /// Another value.
    Other(u16),
}

/// Linkage of a `VAR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarLinkage {
    /// `static`.
    Static,
    /// Global definition.
    GlobalAllocated,
    /// `extern` declaration.
    GlobalExtern,
    /// Another value.
    Other(u32),
}

/// A struct or union member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfMember {
    /// Member name (empty for anonymous members).
    pub name: String,
    /// Member type.
    pub type_id: u32,
    /// Offset from the start of the aggregate, in bits.
    pub bit_offset: u32,
    /// Bitfield width in bits; 0 for a regular member.
    pub bitfield_size: u32,
}

/// An enumerator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfEnumValue {
    /// Enumerator name.
    pub name: String,
    /// Value: `ENUM` values are sign-extended from 32 bits like libbpf does,
    /// `ENUM64` values are the raw 64 bits.
    pub value: i64,
}

/// A function parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfParam {
    /// Parameter name (may be empty).
    pub name: String,
    /// Parameter type (0 for a trailing `...`).
    pub type_id: u32,
}

/// One variable of a `DATASEC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfVarSecinfo {
    /// The `VAR` (or `FUNC`, in `.ksyms`) type id.
    pub type_id: u32,
    /// Byte offset in the section.
    pub offset: u32,
    /// Byte size.
    pub size: u32,
}

/// The kind-specific part of a type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BtfKind {
    /// Type id 0.
    Void,
    /// `INT`.
    Int {
        /// Byte size.
        size: u32,
        /// Encoding bits: 1 signed, 2 char, 4 bool.
        encoding: u8,
        /// Bit offset (legacy bitfields).
        offset: u8,
        /// Number of value bits.
        bits: u8,
    },
    /// `PTR`.
    Ptr(u32),
    /// `ARRAY`.
    Array {
        /// Element type.
        elem: u32,
        /// Index type.
        index: u32,
        /// Number of elements.
        nelems: u32,
    },
    /// `STRUCT`.
    Struct {
        /// Byte size.
        size: u32,
        /// Members.
        members: Vec<BtfMember>,
    },
    /// `UNION`.
    Union {
        /// Byte size.
        size: u32,
        /// Members.
        members: Vec<BtfMember>,
    },
    /// `ENUM` (32-bit enumerators).
    Enum {
        /// Byte size.
        size: u32,
        /// Signed (kind flag).
        signed: bool,
        /// Enumerators.
        values: Vec<BtfEnumValue>,
    },
    /// `FWD`.
    Fwd {
        /// `union` rather than `struct`.
        is_union: bool,
    },
    /// `TYPEDEF`.
    Typedef(u32),
    /// `VOLATILE`.
    Volatile(u32),
    /// `CONST`.
    Const(u32),
    /// `RESTRICT`.
    Restrict(u32),
    /// `FUNC`.
    Func {
        /// The `FUNC_PROTO`.
        proto: u32,
        /// Linkage.
        linkage: FuncLinkage,
    },
    /// `FUNC_PROTO`.
    FuncProto {
        /// Return type.
        ret: u32,
        /// Parameters.
        params: Vec<BtfParam>,
    },
    /// `VAR`.
    Var {
        /// Variable type.
        type_id: u32,
        /// Linkage.
        linkage: VarLinkage,
    },
    /// `DATASEC`.
    Datasec {
        /// Byte size of the section.
        size: u32,
        /// Variables in it.
        vars: Vec<BtfVarSecinfo>,
    },
    /// `FLOAT`.
    Float {
        /// Byte size.
        size: u32,
    },
    /// `DECL_TAG`: a `btf_decl_tag` attribute; the tag text is the type's name.
    DeclTag {
        /// Tagged type.
        target: u32,
        /// -1 for the entity itself, else the member or parameter index.
        component_idx: i32,
    },
    /// `TYPE_TAG`.
    TypeTag(u32),
    /// `ENUM64`.
    Enum64 {
        /// Byte size.
        size: u32,
        /// Signed (kind flag).
        signed: bool,
        /// Enumerators.
        values: Vec<BtfEnumValue>,
    },
}

impl BtfKind {
    /// The kernel's name of the kind (`"struct"`, `"ptr"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            BtfKind::Void => "void",
            BtfKind::Int { .. } => "int",
            BtfKind::Ptr(_) => "ptr",
            BtfKind::Array { .. } => "array",
            BtfKind::Struct { .. } => "struct",
            BtfKind::Union { .. } => "union",
            BtfKind::Enum { .. } => "enum",
            BtfKind::Fwd { .. } => "fwd",
            BtfKind::Typedef(_) => "typedef",
            BtfKind::Volatile(_) => "volatile",
            BtfKind::Const(_) => "const",
            BtfKind::Restrict(_) => "restrict",
            BtfKind::Func { .. } => "func",
            BtfKind::FuncProto { .. } => "func_proto",
            BtfKind::Var { .. } => "var",
            BtfKind::Datasec { .. } => "datasec",
            BtfKind::Float { .. } => "float",
            BtfKind::DeclTag { .. } => "decl_tag",
            BtfKind::TypeTag(_) => "type_tag",
            BtfKind::Enum64 { .. } => "enum64",
        }
    }

    /// Members of a struct or union.
    pub fn members(&self) -> Option<&[BtfMember]> {
        match self {
            BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => Some(members),
            _ => None,
        }
    }

    /// Every type id this type refers to.
    fn refs(&self) -> Vec<u32> {
        match self {
            BtfKind::Ptr(t)
            | BtfKind::Typedef(t)
            | BtfKind::Volatile(t)
            | BtfKind::Const(t)
            | BtfKind::Restrict(t)
            | BtfKind::TypeTag(t) => vec![*t],
            BtfKind::Array { elem, index, .. } => vec![*elem, *index],
            BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => {
                members.iter().map(|m| m.type_id).collect()
            }
            BtfKind::Func { proto, .. } => vec![*proto],
            BtfKind::FuncProto { ret, params } => {
                std::iter::once(*ret).chain(params.iter().map(|p| p.type_id)).collect()
            }
            BtfKind::Var { type_id, .. } => vec![*type_id],
            BtfKind::Datasec { vars, .. } => vars.iter().map(|v| v.type_id).collect(),
            BtfKind::DeclTag { target, .. } => vec![*target],
            _ => Vec::new(),
        }
    }
}

/// One BTF type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfType {
    /// Its name (empty for anonymous types).
    pub name: String,
    /// Kind and kind-specific data.
    pub kind: BtfKind,
}

/// Parsed BTF: types indexed by id (id 0 is `void`) and the string table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Btf {
    types: Vec<BtfType>,
    strings: Vec<u8>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self, what: &str) -> Result<u32, BtfError> {
        let end = self.pos.checked_add(4).ok_or_else(|| BtfError::Truncated(what.to_string()))?;
        let b = self.data.get(self.pos..end).ok_or_else(|| BtfError::Truncated(what.to_string()))?;
        self.pos = end;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

pub(crate) fn read_u32(data: &[u8], off: usize) -> Option<u32> {
    let b = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a NUL-terminated string at `off` of a string table.
pub(crate) fn c_str(strings: &[u8], off: u32) -> Option<&str> {
    let tail = strings.get(off as usize..)?;
    let len = tail.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&tail[..len]).ok()
}

impl Btf {
    /// Parses a `.BTF` section.
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        if data.len() < 24 {
            return Err(BtfError::Truncated(format!("header needs 24 bytes, section has {}", data.len())));
        }
        let magic = u16::from_le_bytes([data[0], data[1]]);
        if magic == BTF_MAGIC.swap_bytes() {
            return Err(BtfError::BadHeader("big-endian BTF is not supported".into()));
        }
        if magic != BTF_MAGIC {
            return Err(BtfError::BadHeader(format!("magic {magic:#06x}, expected {BTF_MAGIC:#06x}")));
        }
        if data[2] != 1 {
            return Err(BtfError::BadHeader(format!("unsupported version {}", data[2])));
        }
        let hdr_len = read_u32(data, 4).unwrap_or(0) as usize;
        if hdr_len < 24 || hdr_len > data.len() {
            return Err(BtfError::BadHeader(format!("header length {hdr_len} is invalid")));
        }
        let field = |i: usize| read_u32(data, 8 + 4 * i).unwrap_or(0) as usize;
        let (type_off, type_len, str_off, str_len) = (field(0), field(1), field(2), field(3));
        let body = &data[hdr_len..];
        let slice = |off: usize, len: usize, what: &str| -> Result<&[u8], BtfError> {
            off.checked_add(len)
                .and_then(|end| body.get(off..end))
                .ok_or_else(|| BtfError::BadHeader(format!("{what} section ({off}+{len}) is outside the blob")))
        };
        let type_data = slice(type_off, type_len, "type")?;
        let strings = slice(str_off, str_len, "string")?.to_vec();
        if strings.first() != Some(&0) || strings.last() != Some(&0) {
            return Err(BtfError::BadHeader("string table must start and end with NUL".into()));
        }

        let mut types = vec![BtfType { name: String::new(), kind: BtfKind::Void }];
        let mut r = Reader { data: type_data, pos: 0 };
        while r.pos < type_data.len() {
            let id = u32::try_from(types.len()).map_err(|_| BtfError::Truncated("too many types".into()))?;
            let ctx = |what: &str| format!("type [{id}] {what}");
            let name_off = r.u32(&ctx("name"))?;
            let info = r.u32(&ctx("info"))?;
            let size_type = r.u32(&ctx("size/type"))?;
            let vlen = (info & 0xffff) as usize;
            let kind_num = (info >> 24) & 0x1f;
            let kflag = info >> 31 == 1;
            // Every variable-length record is at least 4 bytes: bound vlen by the data left.
            if vlen.saturating_mul(4) > type_data.len() - r.pos {
                return Err(BtfError::Truncated(ctx(&format!("with {vlen} entries"))));
            }
            let name_of = |off: u32| -> Result<String, BtfError> {
                c_str(&strings, off).map(str::to_string).ok_or(BtfError::BadString { id, offset: off })
            };
            let name = name_of(name_off)?;
            let members = |r: &mut Reader| -> Result<Vec<BtfMember>, BtfError> {
                let mut v = Vec::with_capacity(vlen);
                for _ in 0..vlen {
                    let mname = name_of(r.u32(&ctx("member"))?)?;
                    let type_id = r.u32(&ctx("member"))?;
                    let off = r.u32(&ctx("member"))?;
                    let (bit_offset, bitfield_size) = if kflag { (off & 0xff_ffff, off >> 24) } else { (off, 0) };
                    v.push(BtfMember { name: mname, type_id, bit_offset, bitfield_size });
                }
                Ok(v)
            };
            let kind = match kind_num {
                1 => {
                    let enc = r.u32(&ctx("int encoding"))?;
                    BtfKind::Int {
                        size: size_type,
                        encoding: ((enc >> 24) & 0x0f) as u8,
                        offset: ((enc >> 16) & 0xff) as u8,
                        bits: (enc & 0xff) as u8,
                    }
                }
                2 => BtfKind::Ptr(size_type),
                3 => {
                    let elem = r.u32(&ctx("array"))?;
                    let index = r.u32(&ctx("array"))?;
                    let nelems = r.u32(&ctx("array"))?;
                    BtfKind::Array { elem, index, nelems }
                }
                4 => BtfKind::Struct { size: size_type, members: members(&mut r)? },
                5 => BtfKind::Union { size: size_type, members: members(&mut r)? },
                6 => {
                    let mut values = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let n = name_of(r.u32(&ctx("enum"))?)?;
                        let v = r.u32(&ctx("enum"))? as i32;
                        values.push(BtfEnumValue { name: n, value: i64::from(v) });
                    }
                    BtfKind::Enum { size: size_type, signed: kflag, values }
                }
                7 => BtfKind::Fwd { is_union: kflag },
                8 => BtfKind::Typedef(size_type),
                9 => BtfKind::Volatile(size_type),
                10 => BtfKind::Const(size_type),
                11 => BtfKind::Restrict(size_type),
                12 => BtfKind::Func {
                    proto: size_type,
                    linkage: match vlen {
                        0 => FuncLinkage::Static,
                        1 => FuncLinkage::Global,
                        2 => FuncLinkage::Extern,
                        n => FuncLinkage::Other(n as u16),
                    },
                },
                13 => {
                    let mut params = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let n = name_of(r.u32(&ctx("param"))?)?;
                        let t = r.u32(&ctx("param"))?;
                        params.push(BtfParam { name: n, type_id: t });
                    }
                    BtfKind::FuncProto { ret: size_type, params }
                }
                14 => {
                    let l = r.u32(&ctx("var"))?;
                    BtfKind::Var {
                        type_id: size_type,
                        linkage: match l {
                            0 => VarLinkage::Static,
                            1 => VarLinkage::GlobalAllocated,
                            2 => VarLinkage::GlobalExtern,
                            n => VarLinkage::Other(n),
                        },
                    }
                }
                15 => {
                    let mut vars = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let type_id = r.u32(&ctx("datasec"))?;
                        let offset = r.u32(&ctx("datasec"))?;
                        let size = r.u32(&ctx("datasec"))?;
                        vars.push(BtfVarSecinfo { type_id, offset, size });
                    }
                    BtfKind::Datasec { size: size_type, vars }
                }
                16 => BtfKind::Float { size: size_type },
                17 => {
                    let c = r.u32(&ctx("decl_tag"))? as i32;
                    BtfKind::DeclTag { target: size_type, component_idx: c }
                }
                18 => BtfKind::TypeTag(size_type),
                19 => {
                    let mut values = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let n = name_of(r.u32(&ctx("enum64"))?)?;
                        let lo = r.u32(&ctx("enum64"))?;
                        let hi = r.u32(&ctx("enum64"))?;
                        values.push(BtfEnumValue { name: n, value: ((u64::from(hi) << 32) | u64::from(lo)) as i64 });
                    }
                    BtfKind::Enum64 { size: size_type, signed: kflag, values }
                }
                k => return Err(BtfError::UnknownKind { id, kind: k }),
            };
            types.push(BtfType { name, kind });
        }
        let btf = Btf { types, strings };
        btf.check_refs()?;
        Ok(btf)
    }

    fn check_refs(&self) -> Result<(), BtfError> {
        let n = self.types.len() as u64;
        for (id, t) in self.types.iter().enumerate() {
            for target in t.kind.refs() {
                if u64::from(target) >= n {
                    return Err(BtfError::BadTypeRef { id: id as u32, target });
                }
            }
            if let BtfKind::DeclTag { component_idx, target } = t.kind {
                if component_idx < -1 {
                    return Err(BtfError::Invalid {
                        id: id as u32,
                        reason: format!("decl tag on [{target}] has component index {component_idx}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// All types; the index is the type id (0 is `void`).
    pub fn types(&self) -> &[BtfType] {
        &self.types
    }

    /// Number of types including `void`.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True if there are no types besides `void`.
    pub fn is_empty(&self) -> bool {
        self.types.len() <= 1
    }

    /// A type by id.
    pub fn type_by_id(&self, id: u32) -> Result<&BtfType, BtfError> {
        self.types.get(id as usize).ok_or(BtfError::TypeNotFound(id))
    }

    /// The string at `offset` of the string table.
    pub fn string_at(&self, offset: u32) -> Option<&str> {
        c_str(&self.strings, offset)
    }

    /// The string table.
    pub fn strings(&self) -> &[u8] {
        &self.strings
    }

    /// Ids of all types with this name.
    pub fn find_by_name<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = (u32, &'s BtfType)> + use<'s, 'n> {
        self.types.iter().enumerate().filter(move |(_, t)| t.name == name).map(|(i, t)| (i as u32, t))
    }

    /// The `DATASEC` with this name.
    pub fn find_datasec(&self, name: &str) -> Option<(u32, &BtfType)> {
        self.find_by_name(name).find(|(_, t)| matches!(t.kind, BtfKind::Datasec { .. }))
    }

    /// The `FUNC` with this name.
    pub fn find_func(&self, name: &str) -> Option<(u32, &BtfType)> {
        self.find_by_name(name).find(|(_, t)| matches!(t.kind, BtfKind::Func { .. }))
    }

    /// Follows typedefs and modifiers (`const`, `volatile`, `restrict`,
    /// type tags) to the underlying type id.
    pub fn skip_mods_and_typedefs(&self, id: u32) -> Result<u32, BtfError> {
        let mut cur = id;
        for _ in 0..MAX_RESOLVE_DEPTH {
            match self.type_by_id(cur)?.kind {
                BtfKind::Typedef(t)
                | BtfKind::Volatile(t)
                | BtfKind::Const(t)
                | BtfKind::Restrict(t)
                | BtfKind::TypeTag(t) => cur = t,
                _ => return Ok(cur),
            }
        }
        Err(BtfError::TooDeep(id))
    }

    /// Byte size of a type, like libbpf's `btf__resolve_size`.
    pub fn resolve_size(&self, id: u32) -> Result<u64, BtfError> {
        let mut cur = id;
        let mut nelems: u64 = 1;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let t = self.type_by_id(cur)?;
            let size = match &t.kind {
                BtfKind::Int { size, .. }
                | BtfKind::Struct { size, .. }
                | BtfKind::Union { size, .. }
                | BtfKind::Enum { size, .. }
                | BtfKind::Enum64 { size, .. }
                | BtfKind::Datasec { size, .. }
                | BtfKind::Float { size } => u64::from(*size),
                BtfKind::Ptr(_) => PTR_SIZE,
                BtfKind::Typedef(t)
                | BtfKind::Volatile(t)
                | BtfKind::Const(t)
                | BtfKind::Restrict(t)
                | BtfKind::TypeTag(t) => {
                    cur = *t;
                    continue;
                }
                BtfKind::Var { type_id, .. } => {
                    cur = *type_id;
                    continue;
                }
                BtfKind::DeclTag { target, .. } => {
                    cur = *target;
                    continue;
                }
                BtfKind::Array { elem, nelems: n, .. } => {
                    nelems = nelems
                        .checked_mul(u64::from(*n))
                        .filter(|&v| v <= u64::from(u32::MAX))
                        .ok_or_else(|| BtfError::Invalid { id, reason: "array size overflows".into() })?;
                    cur = *elem;
                    continue;
                }
                other => return Err(BtfError::NoSize { id: cur, kind: other.name() }),
            };
            return nelems
                .checked_mul(size)
                .filter(|&v| v <= u64::from(u32::MAX))
                .ok_or_else(|| BtfError::Invalid { id, reason: "type size overflows".into() });
        }
        Err(BtfError::TooDeep(id))
    }

    /// Alignment of a type, like libbpf's `btf__align_of`.
    pub fn align_of(&self, id: u32) -> Result<u64, BtfError> {
        self.align_of_depth(id, 0)
    }

    fn align_of_depth(&self, id: u32, depth: usize) -> Result<u64, BtfError> {
        if depth > MAX_RESOLVE_DEPTH {
            return Err(BtfError::TooDeep(id));
        }
        let t = self.type_by_id(id)?;
        match &t.kind {
            BtfKind::Int { size, .. }
            | BtfKind::Enum { size, .. }
            | BtfKind::Enum64 { size, .. }
            | BtfKind::Float { size } => Ok(PTR_SIZE.min(u64::from(*size))),
            BtfKind::Ptr(_) => Ok(PTR_SIZE),
            BtfKind::Typedef(t)
            | BtfKind::Volatile(t)
            | BtfKind::Const(t)
            | BtfKind::Restrict(t)
            | BtfKind::TypeTag(t) => self.align_of_depth(*t, depth + 1),
            BtfKind::Array { elem, .. } => self.align_of_depth(*elem, depth + 1),
            BtfKind::Struct { size, members } | BtfKind::Union { size, members } => {
                let mut max_align = 1;
                for m in members {
                    let align = self.align_of_depth(m.type_id, depth + 1)?;
                    if align == 0 {
                        return Err(BtfError::Invalid { id, reason: "member has zero alignment".into() });
                    }
                    // A packed or bitfield-laid-out aggregate has alignment 1.
                    if u64::from(m.bit_offset) % (8 * align) != 0 {
                        return Ok(1);
                    }
                    max_align = max_align.max(align);
                }
                if u64::from(*size) % max_align != 0 {
                    return Ok(1);
                }
                Ok(max_align)
            }
            other => Err(BtfError::NoSize { id, kind: other.name() }),
        }
    }

    /// `btf_decl_tag`s attached to a type: `(component_idx, tag)`; the index
    /// is -1 for the type itself, else a member or parameter index.
    pub fn decl_tags(&self, target: u32) -> Vec<(i32, &str)> {
        self.types
            .iter()
            .filter_map(|t| match t.kind {
                BtfKind::DeclTag { target: tt, component_idx } if tt == target => {
                    Some((component_idx, t.name.as_str()))
                }
                _ => None,
            })
            .collect()
    }

    /// `btf_decl_tag`s on the function itself (component -1) of the `FUNC` named `name`.
    pub fn func_decl_tags(&self, name: &str) -> Vec<&str> {
        match self.find_func(name) {
            Some((id, _)) => self.decl_tags(id).into_iter().filter(|(c, _)| *c == -1).map(|(_, s)| s).collect(),
            None => Vec::new(),
        }
    }

    /// Name → id index of the `DATASEC`s.
    pub(crate) fn datasec_ids(&self) -> HashMap<String, u32> {
        self.types
            .iter()
            .enumerate()
            .filter(|(_, t)| matches!(t.kind, BtfKind::Datasec { .. }))
            .map(|(i, t)| (t.name.clone(), i as u32))
            .collect()
    }

    /// Mutable access to a type (for libbpf-style fix-ups).
    pub(crate) fn type_mut(&mut self, id: u32) -> Option<&mut BtfType> {
        self.types.get_mut(id as usize)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a BTF blob from raw type words and a string table.
    pub(crate) fn blob(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&24u32.to_le_bytes());
        let tl = (types.len() * 4) as u32;
        for w in [0, tl, tl, strings.len() as u32] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        for t in types {
            v.extend_from_slice(&t.to_le_bytes());
        }
        v.extend_from_slice(strings);
        v
    }

    fn info(kind: u32, vlen: u32, kflag: bool) -> u32 {
        (kind << 24) | vlen | if kflag { 1 << 31 } else { 0 }
    }

    #[test]
    fn parses_and_resolves() {
        // strings: "\0int\0s\0a\0b\0"
        let s = b"\0int\0s\0a\0b\0";
        let types = [
            1,
            info(1, 0, false),
            4,
            (1 << 24) | 32, // [1] int, signed 32
            0,
            info(3, 0, false),
            0,
            1,
            1,
            3, // [2] int[3]
            5,
            info(4, 2, true),
            16,
            7,
            1,
            0,
            9,
            2,
            (8 << 24) | 32, // [3] struct s { int a; int b:8 (at 32) }
            0,
            info(10, 0, false),
            3, // [4] const struct s
            0,
            info(2, 0, false),
            4, // [5] ptr
        ];
        let btf = Btf::parse(&blob(&types, s)).unwrap();
        assert_eq!(btf.len(), 6);
        assert_eq!(btf.resolve_size(2).unwrap(), 12);
        assert_eq!(btf.resolve_size(4).unwrap(), 16);
        assert_eq!(btf.resolve_size(5).unwrap(), 8);
        assert_eq!(btf.skip_mods_and_typedefs(4).unwrap(), 3);
        assert_eq!(btf.align_of(3).unwrap(), 4);
        let m = btf.type_by_id(3).unwrap().kind.members().unwrap();
        assert_eq!(m[1].name, "b");
        assert_eq!((m[1].bit_offset, m[1].bitfield_size), (32, 8));
        assert!(matches!(btf.resolve_size(0), Err(BtfError::NoSize { .. })));
    }

    #[test]
    fn rejects_bad_input() {
        let s = b"\0x\0";
        assert!(matches!(Btf::parse(&[0; 10]), Err(BtfError::Truncated(_))));
        // dangling reference
        let e = Btf::parse(&blob(&[0, info(2, 0, false), 7], s)).unwrap_err();
        assert_eq!(e, BtfError::BadTypeRef { id: 1, target: 7 });
        // unknown kind
        let e = Btf::parse(&blob(&[0, info(25, 0, false), 0], s)).unwrap_err();
        assert_eq!(e, BtfError::UnknownKind { id: 1, kind: 25 });
        // bad name offset
        let e = Btf::parse(&blob(&[100, info(2, 0, false), 0], s)).unwrap_err();
        assert_eq!(e, BtfError::BadString { id: 1, offset: 100 });
        // vlen past the end
        let e = Btf::parse(&blob(&[0, info(4, 1000, false), 4], s)).unwrap_err();
        assert!(matches!(e, BtfError::Truncated(_)));
        // typedef loop
        let btf = Btf::parse(&blob(&[0, info(8, 0, false), 2, 0, info(8, 0, false), 1], s)).unwrap();
        assert_eq!(btf.skip_mods_and_typedefs(1).unwrap_err(), BtfError::TooDeep(1));
        assert_eq!(btf.resolve_size(1).unwrap_err(), BtfError::TooDeep(1));
    }
}
