//! CO-RE (compile once, run everywhere) relocations.
//!
//! uxdp provides the same UAPI layouts as the kernel, so the object's own
//! (local) BTF is used as the target BTF: every relocation is evaluated on
//! the local type with libbpf's rules (`bpf_core_parse_spec`,
//! `bpf_core_calc_*_relo`) and the instruction is patched and validated
//! like `bpf_core_patch_insn` does.

use crate::btf::{Btf, BtfError, BtfKind};
use crate::btf_ext::CoreReloRecord;
use uxdp_isa::opcode::{self, LDDW};
use uxdp_isa::Insn;

/// `enum bpf_core_relo_kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoreRelocKind {
    /// Field byte offset.
    FieldByteOffset,
    /// Field byte size.
    FieldByteSize,
    /// Field existence.
    FieldExists,
    /// Field signedness.
    FieldSigned,
    /// Bitfield left shift for a u64 load.
    FieldLshiftU64,
    /// Bitfield right shift for a u64 load.
    FieldRshiftU64,
    /// Type id in the local BTF.
    TypeIdLocal,
    /// Type id in the target BTF.
    TypeIdTarget,
    /// Type existence.
    TypeExists,
    /// Type size.
    TypeSize,
    /// Enumerator existence.
    EnumvalExists,
    /// Enumerator value.
    EnumvalValue,
    /// Type layout match.
    TypeMatches,
}

impl CoreRelocKind {
    /// Kind from its number.
    pub fn from_u32(v: u32) -> Option<Self> {
        use CoreRelocKind::*;
        Some(match v {
            0 => FieldByteOffset,
            1 => FieldByteSize,
            2 => FieldExists,
            3 => FieldSigned,
            4 => FieldLshiftU64,
            5 => FieldRshiftU64,
            6 => TypeIdLocal,
            7 => TypeIdTarget,
            8 => TypeExists,
            9 => TypeSize,
            10 => EnumvalExists,
            11 => EnumvalValue,
            12 => TypeMatches,
            _ => return None,
        })
    }

    /// libbpf's name of the kind.
    pub fn name(self) -> &'static str {
        use CoreRelocKind::*;
        match self {
            FieldByteOffset => "byte_off",
            FieldByteSize => "byte_sz",
            FieldExists => "field_exists",
            FieldSigned => "signed",
            FieldLshiftU64 => "lshift_u64",
            FieldRshiftU64 => "rshift_u64",
            TypeIdLocal => "local_type_id",
            TypeIdTarget => "target_type_id",
            TypeExists => "type_exists",
            TypeSize => "type_size",
            EnumvalExists => "enumval_exists",
            EnumvalValue => "enumval_value",
            TypeMatches => "type_matches",
        }
    }

    fn is_field(self) -> bool {
        use CoreRelocKind::*;
        matches!(self, FieldByteOffset | FieldByteSize | FieldExists | FieldSigned | FieldLshiftU64 | FieldRshiftU64)
    }

    fn is_type(self) -> bool {
        use CoreRelocKind::*;
        matches!(self, TypeIdLocal | TypeIdTarget | TypeExists | TypeSize | TypeMatches)
    }
}

impl std::fmt::Display for CoreRelocKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a CO-RE relocation failed.
#[derive(Debug)]
pub(crate) enum CoreFailure {
    /// Unknown kind number.
    UnknownKind(u32),
    /// Known kind, but the relocation or the instruction is invalid.
    Invalid(CoreRelocKind, String),
}

impl From<(CoreRelocKind, BtfError)> for CoreFailure {
    fn from((k, e): (CoreRelocKind, BtfError)) -> Self {
        CoreFailure::Invalid(k, e.to_string())
    }
}

/// One high-level accessor of a spec.
#[derive(Clone, Debug)]
struct Accessor {
    type_id: u32,
    idx: u32,
    /// `None` for array accessors.
    named: bool,
}

struct Spec {
    root_type_id: u32,
    accessors: Vec<Accessor>,
    bit_offset: u64,
}

/// The result of evaluating a relocation.
struct RelocRes {
    value: u64,
    validate: bool,
}

const MAX_SPEC_LEN: usize = 64;

fn parse_spec(btf: &Btf, rec: &CoreReloRecord, kind: CoreRelocKind) -> Result<Spec, String> {
    let access = btf
        .string_at(rec.access_str_off)
        .ok_or_else(|| format!("access string offset {} is invalid", rec.access_str_off))?;
    if access.is_empty() || access.starts_with(':') {
        return Err(format!("invalid access string '{access}'"));
    }
    let mut spec = Spec { root_type_id: rec.type_id, accessors: Vec::new(), bit_offset: 0 };
    if kind.is_type() {
        if access != "0" {
            return Err(format!("type-based relocation with access string '{access}' (expected \"0\")"));
        }
        btf.type_by_id(rec.type_id).map_err(|e| e.to_string())?;
        return Ok(spec);
    }
    let mut raw = Vec::new();
    for part in access.split(':') {
        let v: u32 = part.parse().map_err(|_| format!("invalid access string '{access}'"))?;
        if v > i32::MAX as u32 {
            return Err(format!("invalid access string '{access}'"));
        }
        if raw.len() == MAX_SPEC_LEN {
            return Err(format!("access string '{access}' is too long"));
        }
        raw.push(v);
    }
    let e = |e: BtfError| e.to_string();
    let mut id = btf.skip_mods_and_typedefs(rec.type_id).map_err(e)?;
    let t = btf.type_by_id(id).map_err(e)?;
    spec.accessors.push(Accessor { type_id: id, idx: raw[0], named: false });

    if matches!(kind, CoreRelocKind::EnumvalExists | CoreRelocKind::EnumvalValue) {
        let n = match &t.kind {
            BtfKind::Enum { values, .. } | BtfKind::Enum64 { values, .. } => values.len(),
            other => return Err(format!("enum value relocation on a {} type", other.name())),
        };
        if raw.len() > 1 || raw[0] as usize >= n {
            return Err(format!("enumerator index '{access}' is out of range ({n} enumerators)"));
        }
        spec.accessors[0].named = true;
        return Ok(spec);
    }

    // libbpf keeps the bit offset in 32 bits; larger offsets are invalid.
    let add_bits = |acc: u64, idx: u32, size: u64| -> Result<u64, String> {
        u64::from(idx)
            .checked_mul(size)
            .and_then(|b| b.checked_mul(8))
            .and_then(|b| b.checked_add(acc))
            .filter(|&b| b <= u64::from(u32::MAX))
            .ok_or_else(|| format!("access string '{access}' overflows the 32-bit bit offset"))
    };
    let sz = btf.resolve_size(id).map_err(e)?;
    spec.bit_offset = add_bits(0, raw[0], sz)?;
    for &access_idx in &raw[1..] {
        id = btf.skip_mods_and_typedefs(id).map_err(e)?;
        let t = btf.type_by_id(id).map_err(e)?;
        match &t.kind {
            BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => {
                let m = members
                    .get(access_idx as usize)
                    .ok_or_else(|| format!("member index {access_idx} of [{id}] is out of range"))?;
                spec.bit_offset = spec
                    .bit_offset
                    .checked_add(u64::from(m.bit_offset))
                    .filter(|&b| b <= u64::from(u32::MAX))
                    .ok_or_else(|| format!("access string '{access}' overflows the 32-bit bit offset"))?;
                if !m.name.is_empty() {
                    spec.accessors.push(Accessor { type_id: id, idx: access_idx, named: true });
                }
                id = m.type_id;
            }
            BtfKind::Array { elem, nelems, .. } => {
                let prev = spec.accessors.last().cloned();
                id = btf.skip_mods_and_typedefs(*elem).map_err(e)?;
                // A flexible array is a zero-length array that is the last
                // member of its enclosing struct.
                let flex = *nelems == 0
                    && match prev {
                        Some(a) if a.named => btf
                            .type_by_id(a.type_id)
                            .ok()
                            .and_then(|p| p.kind.members().map(|m| a.idx as usize + 1 == m.len()))
                            .unwrap_or(false),
                        _ => false,
                    };
                if !flex && access_idx >= *nelems {
                    return Err(format!("array index {access_idx} is out of range ({nelems} elements)"));
                }
                spec.accessors.push(Accessor { type_id: id, idx: access_idx, named: false });
                let esz = btf.resolve_size(id).map_err(e)?;
                spec.bit_offset = add_bits(spec.bit_offset, access_idx, esz)?;
            }
            other => {
                return Err(format!("access string '{access}' steps into a {} type [{id}]", other.name()));
            }
        }
    }
    Ok(spec)
}

fn calc_field(btf: &Btf, kind: CoreRelocKind, spec: &Spec) -> Result<RelocRes, String> {
    let e = |e: BtfError| e.to_string();
    if kind == CoreRelocKind::FieldExists {
        return Ok(RelocRes { value: 1, validate: true });
    }
    let acc = spec.accessors.last().ok_or("empty spec")?;
    if !acc.named {
        let value = match kind {
            CoreRelocKind::FieldByteOffset => spec.bit_offset / 8,
            CoreRelocKind::FieldByteSize => btf.resolve_size(acc.type_id).map_err(e)?,
            _ => return Err(format!("{kind} cannot be applied to an array access")),
        };
        return Ok(RelocRes { value, validate: true });
    }
    let t = btf.type_by_id(acc.type_id).map_err(e)?;
    let m = t
        .kind
        .members()
        .and_then(|m| m.get(acc.idx as usize))
        .ok_or_else(|| format!("member {} of [{}] not found", acc.idx, acc.type_id))?;
    let field_type_id = btf.skip_mods_and_typedefs(m.type_id).map_err(e)?;
    let mt = btf.type_by_id(field_type_id).map_err(e)?;
    let bit_off = spec.bit_offset;
    let mut bit_sz = u64::from(m.bitfield_size);
    let bitfield = bit_sz > 0;
    let (byte_off, byte_sz);
    if bitfield {
        let mut sz = match mt.kind {
            BtfKind::Int { size, .. } | BtfKind::Enum { size, .. } | BtfKind::Enum64 { size, .. } => u64::from(size),
            _ => return Err(format!("bitfield member '{}' has a non-integer type", m.name)),
        };
        if sz == 0 {
            return Err(format!("bitfield member '{}' has size 0", m.name));
        }
        let mut off = bit_off / 8 / sz * sz;
        while bit_off + bit_sz - off * 8 > sz * 8 {
            if sz >= 8 {
                return Err(format!("bitfield '{}' cannot be read with a 64-bit load", m.name));
            }
            sz *= 2;
            off = bit_off / 8 / sz * sz;
        }
        byte_sz = sz;
        byte_off = off;
    } else {
        byte_sz = btf.resolve_size(field_type_id).map_err(e)?;
        byte_off = bit_off / 8;
        bit_sz = byte_sz * 8;
    }
    let mut validate = !bitfield;
    let value = match kind {
        CoreRelocKind::FieldByteOffset => byte_off,
        CoreRelocKind::FieldByteSize => byte_sz,
        CoreRelocKind::FieldSigned => {
            validate = true;
            let signed = match mt.kind {
                BtfKind::Enum { signed, .. } | BtfKind::Enum64 { signed, .. } => signed,
                BtfKind::Int { encoding, .. } => encoding & 1 != 0,
                _ => false,
            };
            u64::from(signed)
        }
        CoreRelocKind::FieldLshiftU64 => 64u64.wrapping_sub(bit_off + bit_sz - byte_off * 8),
        CoreRelocKind::FieldRshiftU64 => {
            validate = true;
            64u64.wrapping_sub(bit_sz)
        }
        _ => return Err(format!("{kind} is not a field relocation")),
    };
    Ok(RelocRes { value, validate })
}

fn calc(btf: &Btf, kind: CoreRelocKind, spec: &Spec) -> Result<RelocRes, String> {
    use CoreRelocKind::*;
    match kind {
        k if k.is_field() => calc_field(btf, k, spec),
        TypeIdLocal => Ok(RelocRes { value: u64::from(spec.root_type_id), validate: false }),
        // The local BTF is the target BTF.
        TypeIdTarget => Ok(RelocRes { value: u64::from(spec.root_type_id), validate: false }),
        TypeExists | TypeMatches => Ok(RelocRes { value: 1, validate: true }),
        TypeSize => {
            Ok(RelocRes { value: btf.resolve_size(spec.root_type_id).map_err(|e| e.to_string())?, validate: true })
        }
        EnumvalExists => Ok(RelocRes { value: 1, validate: true }),
        EnumvalValue => {
            let acc = &spec.accessors[0];
            let t = btf.type_by_id(acc.type_id).map_err(|e| e.to_string())?;
            let v = match &t.kind {
                BtfKind::Enum { values, .. } | BtfKind::Enum64 { values, .. } => values.get(acc.idx as usize),
                _ => None,
            }
            .ok_or("enumerator not found")?;
            Ok(RelocRes { value: v.value as u64, validate: true })
        }
        _ => Err(format!("{kind} is not supported")),
    }
}

/// Applies one CO-RE relocation to the instructions of its section;
/// `insns[idx]` is the relocated instruction.
pub(crate) fn apply(btf: &Btf, rec: &CoreReloRecord, insns: &mut [Insn], idx: usize) -> Result<(), CoreFailure> {
    let kind = CoreRelocKind::from_u32(rec.kind).ok_or(CoreFailure::UnknownKind(rec.kind))?;
    let inv = |s: String| CoreFailure::Invalid(kind, s);
    let spec = parse_spec(btf, rec, kind).map_err(inv)?;
    let res = calc(btf, kind, &spec).map_err(inv)?;
    let insn = *insns.get(idx).ok_or_else(|| inv("instruction index out of range".into()))?;
    let (orig, new) = (res.value, res.value);
    match insn.class() {
        opcode::CLASS_ALU | opcode::CLASS_ALU64 => {
            if insn.code & opcode::SRC_X != 0 {
                return Err(inv("ALU instruction with a register operand cannot be relocated".into()));
            }
            if res.validate && insn.imm as i64 as u64 != orig {
                return Err(inv(format!("instruction immediate is {}, expected {orig}", insn.imm)));
            }
            insns[idx].imm = new as i32;
        }
        opcode::CLASS_LDX | opcode::CLASS_ST | opcode::CLASS_STX => {
            if res.validate && insn.off as i64 as u64 != orig {
                return Err(inv(format!("instruction offset is {}, expected {orig}", insn.off)));
            }
            if new > i16::MAX as u64 {
                return Err(inv(format!("offset {new} does not fit the instruction")));
            }
            insns[idx].off = new as i16;
        }
        opcode::CLASS_LD => {
            let next = insns.get(idx + 1).copied();
            let ok = insn.code == LDDW
                && insn.src() == 0
                && insn.off == 0
                && matches!(next, Some(n) if n.code == 0 && n.regs == 0 && n.off == 0);
            let Some(next) = next.filter(|_| ok) else {
                return Err(inv("lddw instruction has an unexpected form".into()));
            };
            let imm = u64::from(insn.imm as u32) | (u64::from(next.imm as u32) << 32);
            if res.validate && imm != orig {
                return Err(inv(format!("lddw immediate is {imm}, expected {orig}")));
            }
            insns[idx].imm = new as u32 as i32;
            insns[idx + 1].imm = (new >> 32) as u32 as i32;
        }
        _ => {
            return Err(inv(format!("instruction with opcode {:#04x} cannot be relocated", insn.code)));
        }
    }
    Ok(())
}
