//! Map definitions: BTF-defined maps (`.maps`), legacy `struct bpf_map_def`
//! maps (`maps`), and libbpf's internal global-data maps.

use crate::btf::{Btf, BtfKind, BtfMember, VarLinkage};
use crate::ObjectError;

/// `BPF_F_RDONLY_PROG`: the program may only read the map.
pub const BPF_F_RDONLY_PROG: u32 = 0x80;
/// `BPF_F_MMAPABLE`: the array map can be memory-mapped.
pub const BPF_F_MMAPABLE: u32 = 0x400;
/// Page size libbpf rounds ring buffer sizes to.
pub const PAGE_SIZE: u32 = 4096;

macro_rules! map_types {
    ($($variant:ident = $num:literal, $name:literal, $uapi:literal;)*) => {
        /// `enum bpf_map_type`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum MapType {
            $(
                #[doc = concat!("`", $uapi, "` (", stringify!($num), ").")]
                $variant,
            )*
        }

        impl MapType {
            /// The type with this `BPF_MAP_TYPE_*` number.
            pub fn from_u32(v: u32) -> Option<MapType> {
                match v {
                    $($num => Some(MapType::$variant),)*
                    _ => None,
                }
            }

            /// The `BPF_MAP_TYPE_*` number.
            pub fn number(self) -> u32 {
                match self {
                    $(MapType::$variant => $num,)*
                }
            }

            /// bpftool's name (`"hash"`, `"percpu_array"`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $(MapType::$variant => $name,)*
                }
            }

            /// The UAPI constant name (`"BPF_MAP_TYPE_HASH"`, ...).
            pub fn uapi_name(self) -> &'static str {
                match self {
                    $(MapType::$variant => $uapi,)*
                }
            }
        }
    };
}

map_types! {
    Unspec = 0, "unspec", "BPF_MAP_TYPE_UNSPEC";
    Hash = 1, "hash", "BPF_MAP_TYPE_HASH";
    Array = 2, "array", "BPF_MAP_TYPE_ARRAY";
    ProgArray = 3, "prog_array", "BPF_MAP_TYPE_PROG_ARRAY";
    PerfEventArray = 4, "perf_event_array", "BPF_MAP_TYPE_PERF_EVENT_ARRAY";
    PercpuHash = 5, "percpu_hash", "BPF_MAP_TYPE_PERCPU_HASH";
    PercpuArray = 6, "percpu_array", "BPF_MAP_TYPE_PERCPU_ARRAY";
    StackTrace = 7, "stack_trace", "BPF_MAP_TYPE_STACK_TRACE";
    CgroupArray = 8, "cgroup_array", "BPF_MAP_TYPE_CGROUP_ARRAY";
    LruHash = 9, "lru_hash", "BPF_MAP_TYPE_LRU_HASH";
    LruPercpuHash = 10, "lru_percpu_hash", "BPF_MAP_TYPE_LRU_PERCPU_HASH";
    LpmTrie = 11, "lpm_trie", "BPF_MAP_TYPE_LPM_TRIE";
    ArrayOfMaps = 12, "array_of_maps", "BPF_MAP_TYPE_ARRAY_OF_MAPS";
    HashOfMaps = 13, "hash_of_maps", "BPF_MAP_TYPE_HASH_OF_MAPS";
    Devmap = 14, "devmap", "BPF_MAP_TYPE_DEVMAP";
    Sockmap = 15, "sockmap", "BPF_MAP_TYPE_SOCKMAP";
    Cpumap = 16, "cpumap", "BPF_MAP_TYPE_CPUMAP";
    Xskmap = 17, "xskmap", "BPF_MAP_TYPE_XSKMAP";
    Sockhash = 18, "sockhash", "BPF_MAP_TYPE_SOCKHASH";
    CgroupStorage = 19, "cgroup_storage", "BPF_MAP_TYPE_CGROUP_STORAGE";
    ReuseportSockarray = 20, "reuseport_sockarray", "BPF_MAP_TYPE_REUSEPORT_SOCKARRAY";
    PercpuCgroupStorage = 21, "percpu_cgroup_storage", "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE";
    Queue = 22, "queue", "BPF_MAP_TYPE_QUEUE";
    Stack = 23, "stack", "BPF_MAP_TYPE_STACK";
    SkStorage = 24, "sk_storage", "BPF_MAP_TYPE_SK_STORAGE";
    DevmapHash = 25, "devmap_hash", "BPF_MAP_TYPE_DEVMAP_HASH";
    StructOps = 26, "struct_ops", "BPF_MAP_TYPE_STRUCT_OPS";
    Ringbuf = 27, "ringbuf", "BPF_MAP_TYPE_RINGBUF";
    InodeStorage = 28, "inode_storage", "BPF_MAP_TYPE_INODE_STORAGE";
    TaskStorage = 29, "task_storage", "BPF_MAP_TYPE_TASK_STORAGE";
    BloomFilter = 30, "bloom_filter", "BPF_MAP_TYPE_BLOOM_FILTER";
    UserRingbuf = 31, "user_ringbuf", "BPF_MAP_TYPE_USER_RINGBUF";
    CgrpStorage = 32, "cgrp_storage", "BPF_MAP_TYPE_CGRP_STORAGE";
    Arena = 33, "arena", "BPF_MAP_TYPE_ARENA";
    InsnArray = 34, "insn_array", "BPF_MAP_TYPE_INSN_ARRAY";
}

impl std::fmt::Display for MapType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.uapi_name())
    }
}

impl MapType {
    /// `ARRAY_OF_MAPS` or `HASH_OF_MAPS`.
    pub fn is_map_in_map(self) -> bool {
        matches!(self, MapType::ArrayOfMaps | MapType::HashOfMaps)
    }
}

/// Map pinning (`LIBBPF_PIN_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pinning {
    /// Not pinned.
    #[default]
    None,
    /// Pinned by name under the pin root (`LIBBPF_PIN_BY_NAME`).
    ByName,
}

/// Where a map definition came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapOrigin {
    /// A BTF-defined map in `.maps`.
    Btf,
    /// A legacy `struct bpf_map_def` in `maps`.
    Legacy,
    /// `.data` / `.data.*`: a one-element array holding the initial bytes.
    Data,
    /// `.rodata` / `.rodata.*`: like `Data`, read-only to programs.
    Rodata,
    /// `.bss` / `.bss.*`: like `Data`, zero-initialised.
    Bss,
    /// `.kconfig`: the values of `__kconfig` externs (see [`crate::KconfigExtern`]).
    Kconfig,
    /// The inner map template of a map-in-map.
    Inner,
}

/// The target of a `values` initialiser of a prog array or map-in-map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitTarget {
    /// An entry program, by name (prog arrays).
    Program(String),
    /// A map, by name (map-in-map).
    Map(String),
}

/// A map definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    /// Map name as libbpf names it (variable name, or the internal name for
    /// global-data maps, e.g. `".rodata"` / `"<obj>.rodata"`).
    pub name: String,
    /// The ELF section it is defined in (`.maps`, `maps`, `.rodata`, ...).
    pub section: String,
    /// Where it came from.
    pub origin: MapOrigin,
    /// `BPF_MAP_TYPE_*` number; see [`MapDef::kind`].
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Maximum number of entries (ring buffers rounded like libbpf does).
    pub max_entries: u32,
    /// `BPF_F_*` flags.
    pub map_flags: u32,
    /// `map_extra` (bloom filter hash count, arena address).
    pub map_extra: u64,
    /// Pinning.
    pub pinning: Pinning,
    /// NUMA node.
    pub numa_node: u32,
    /// Inner map template of a map-in-map declared with `__array(values, ...)`.
    pub inner: Option<Box<MapDef>>,
    /// `values` initialisers: `(index, target)`, sorted by index.
    pub init_values: Vec<(u32, InitTarget)>,
    /// Initial contents of global-data maps (zeroes for `.bss` and `.kconfig`).
    pub initial_data: Option<Vec<u8>>,
    /// BTF type id of the key (0 if unknown).
    pub btf_key_type_id: u32,
    /// BTF type id of the value (0 if unknown; the `DATASEC` for data maps).
    pub btf_value_type_id: u32,
}

impl MapDef {
    /// The map type; always `Some` for maps produced by the loader, which
    /// rejects unknown numbers.
    pub fn kind(&self) -> Option<MapType> {
        MapType::from_u32(self.map_type)
    }

    /// Name of the map type for messages (`"hash"`, or `"type 99"`).
    pub fn type_name(&self) -> String {
        match self.kind() {
            Some(t) => t.name().to_string(),
            None => format!("type {}", self.map_type),
        }
    }

    /// True for `.rodata` maps and others marked `BPF_F_RDONLY_PROG`.
    pub fn is_read_only(&self) -> bool {
        self.map_flags & BPF_F_RDONLY_PROG != 0
    }

    pub(crate) fn empty(name: String, section: String, origin: MapOrigin) -> MapDef {
        MapDef {
            name,
            section,
            origin,
            map_type: 0,
            key_size: 0,
            value_size: 0,
            max_entries: 0,
            map_flags: 0,
            map_extra: 0,
            pinning: Pinning::None,
            numa_node: 0,
            inner: None,
            init_values: Vec::new(),
            initial_data: None,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
        }
    }
}

fn map_err(map: &str, reason: impl Into<String>) -> ObjectError {
    ObjectError::Map { map: map.to_string(), reason: reason.into() }
}

/// `__uint(name, val)` is `int (*name)[val]`: the value is the array's length.
fn field_int(btf: &Btf, map: &str, m: &BtfMember) -> Result<u32, ObjectError> {
    let id = btf.skip_mods_and_typedefs(m.type_id)?;
    let BtfKind::Ptr(arr) = btf.type_by_id(id)?.kind else {
        return Err(map_err(
            map,
            format!("attribute '{}' must be declared with __uint (a pointer to an array)", m.name),
        ));
    };
    match btf.type_by_id(arr)?.kind {
        BtfKind::Array { nelems, .. } => Ok(nelems),
        ref k => Err(map_err(
            map,
            format!("attribute '{}': expected a pointer to an array, got a pointer to {}", m.name, k.name()),
        )),
    }
}

/// `__ulong(name, val)` is an enum with one enumerator; `__uint` also works.
fn field_long(btf: &Btf, map: &str, m: &BtfMember) -> Result<u64, ObjectError> {
    let id = btf.skip_mods_and_typedefs(m.type_id)?;
    match &btf.type_by_id(id)?.kind {
        BtfKind::Ptr(_) => field_int(btf, map, m).map(u64::from),
        BtfKind::Enum { values, .. } | BtfKind::Enum64 { values, .. } if values.len() == 1 => {
            Ok(values[0].value as u64)
        }
        k => Err(map_err(map, format!("attribute '{}': expected __uint or __ulong, got {}", m.name, k.name()))),
    }
}

/// Parses the members of a BTF map definition struct (libbpf's
/// `parse_btf_map_def`). `outer` is true for top-level maps.
pub(crate) fn parse_btf_map_def(btf: &Btf, def: &mut MapDef, struct_id: u32, outer: bool) -> Result<(), ObjectError> {
    let name = def.name.clone();
    let members =
        btf.type_by_id(struct_id)?.kind.members().ok_or_else(|| map_err(&name, "definition is not a struct"))?.to_vec();
    let count = members.len();
    for (i, m) in members.iter().enumerate() {
        match m.name.as_str() {
            "type" => def.map_type = field_int(btf, &name, m)?,
            "max_entries" => def.max_entries = field_int(btf, &name, m)?,
            "map_flags" => def.map_flags = field_int(btf, &name, m)?,
            "numa_node" => def.numa_node = field_int(btf, &name, m)?,
            "key_size" | "value_size" => {
                let sz = field_int(btf, &name, m)?;
                let slot = if m.name == "key_size" { &mut def.key_size } else { &mut def.value_size };
                if *slot != 0 && *slot != sz {
                    return Err(map_err(&name, format!("conflicting {} {} != {sz}", m.name, *slot)));
                }
                *slot = sz;
            }
            "key" | "value" => {
                let BtfKind::Ptr(target) = btf.type_by_id(m.type_id)?.kind else {
                    return Err(map_err(&name, format!("'{}' must be declared with __type (a pointer)", m.name)));
                };
                let sz = btf
                    .resolve_size(target)
                    .map_err(|e| map_err(&name, format!("cannot determine {} size of type [{target}]: {e}", m.name)))?;
                let sz = u32::try_from(sz).map_err(|_| map_err(&name, format!("{} size {sz} is too large", m.name)))?;
                let (slot, id) = if m.name == "key" {
                    (&mut def.key_size, &mut def.btf_key_type_id)
                } else {
                    (&mut def.value_size, &mut def.btf_value_type_id)
                };
                if *slot != 0 && *slot != sz {
                    return Err(map_err(&name, format!("conflicting {} size {} != {sz}", m.name, *slot)));
                }
                *slot = sz;
                *id = target;
            }
            "values" => {
                let kind = MapType::from_u32(def.map_type);
                let mim = kind.is_some_and(MapType::is_map_in_map);
                let prog_array = kind == Some(MapType::ProgArray);
                if !outer {
                    return Err(map_err(&name, "multi-level inner maps are not supported"));
                }
                if i != count - 1 {
                    return Err(map_err(&name, "'values' must be the last member"));
                }
                if !mim && !prog_array {
                    return Err(map_err(
                        &name,
                        "'values' is only allowed in map-in-map and prog-array maps (declare 'type' first)",
                    ));
                }
                if def.value_size != 0 && def.value_size != 4 {
                    return Err(map_err(&name, format!("conflicting value size {} != 4", def.value_size)));
                }
                def.value_size = 4;
                let BtfKind::Array { elem, nelems: 0, .. } = btf.type_by_id(m.type_id)?.kind else {
                    return Err(map_err(&name, "'values' must be a zero-sized array (__array)"));
                };
                let ptr = btf.skip_mods_and_typedefs(elem)?;
                let BtfKind::Ptr(target) = btf.type_by_id(ptr)?.kind else {
                    return Err(map_err(&name, "'values' elements must be pointers"));
                };
                let target = btf.skip_mods_and_typedefs(target)?;
                let tk = &btf.type_by_id(target)?.kind;
                if prog_array {
                    if !matches!(tk, BtfKind::FuncProto { .. }) {
                        return Err(map_err(
                            &name,
                            format!("prog-array value must be a function prototype, got {}", tk.name()),
                        ));
                    }
                    continue;
                }
                if !matches!(tk, BtfKind::Struct { .. }) {
                    return Err(map_err(
                        &name,
                        format!("map-in-map inner definition must be a struct, got {}", tk.name()),
                    ));
                }
                let mut inner = MapDef::empty(format!("{name}.inner"), def.section.clone(), MapOrigin::Inner);
                parse_btf_map_def(btf, &mut inner, target, false)?;
                finish_def(&mut inner)?;
                def.inner = Some(Box::new(inner));
            }
            "pinning" => {
                if !outer {
                    return Err(map_err(&name, "an inner map cannot be pinned"));
                }
                def.pinning = match field_int(btf, &name, m)? {
                    0 => Pinning::None,
                    1 => Pinning::ByName,
                    v => return Err(map_err(&name, format!("invalid pinning value {v}"))),
                };
            }
            "map_extra" => def.map_extra = field_long(btf, &name, m)?,
            other => {
                // libbpf's default (strict) mode refuses unknown attributes.
                return Err(map_err(&name, format!("unknown attribute '{other}'")));
            }
        }
    }
    Ok(())
}

/// Final checks and libbpf's adjustments of a parsed definition.
pub(crate) fn finish_def(def: &mut MapDef) -> Result<(), ObjectError> {
    let Some(kind) = MapType::from_u32(def.map_type) else {
        return Err(ObjectError::UnknownMapType { map: def.name.clone(), value: def.map_type });
    };
    match kind {
        MapType::Unspec => return Err(map_err(&def.name, "map type is not specified")),
        MapType::StructOps | MapType::InsnArray => {
            return Err(ObjectError::UnsupportedMapType {
                map: def.name.clone(),
                type_name: kind.uapi_name(),
                value: def.map_type,
            })
        }
        MapType::Ringbuf | MapType::UserRingbuf => def.max_entries = adjust_ringbuf_size(def.max_entries),
        _ => {}
    }
    Ok(())
}

/// libbpf rounds ring buffer sizes up to a power-of-two multiple of the page size.
fn adjust_ringbuf_size(sz: u32) -> u32 {
    if sz == 0 {
        return 0;
    }
    if sz % PAGE_SIZE == 0 && (sz / PAGE_SIZE).is_power_of_two() {
        return sz;
    }
    let mut mul: u32 = 1;
    while mul <= u32::MAX / PAGE_SIZE {
        if mul * PAGE_SIZE > sz {
            return mul * PAGE_SIZE;
        }
        mul <<= 1;
    }
    sz
}

/// A BTF map variable found in `.maps`: its definition and location.
pub(crate) struct BtfMapVar {
    pub def: MapDef,
    pub offset: u32,
    pub size: u32,
    /// Bit offset of the `values` member inside the definition (last member).
    pub values_bit_offset: Option<u32>,
}

/// Parses every variable of the `.maps` DATASEC.
pub(crate) fn parse_btf_maps(btf: &Btf, section_size: u64) -> Result<Vec<BtfMapVar>, ObjectError> {
    let Some((_, sec)) = btf.find_datasec(".maps") else {
        return Err(ObjectError::Section {
            section: ".maps".into(),
            reason: "no DATASEC '.maps' in BTF describes the maps".into(),
        });
    };
    let BtfKind::Datasec { vars, .. } = &sec.kind else {
        return Err(ObjectError::Section { section: ".maps".into(), reason: "'.maps' is not a DATASEC".into() });
    };
    let mut out = Vec::with_capacity(vars.len());
    for (idx, vi) in vars.iter().enumerate() {
        let var = btf.type_by_id(vi.type_id)?;
        let name = var.name.clone();
        if name.is_empty() {
            return Err(map_err(&format!("#{idx}"), "empty name"));
        }
        if u64::from(vi.offset) + u64::from(vi.size) > section_size {
            return Err(map_err(&name, "BTF location is outside the .maps section"));
        }
        let BtfKind::Var { type_id, linkage } = var.kind else {
            return Err(map_err(&name, format!("unexpected {} in .maps", var.kind.name())));
        };
        if linkage != VarLinkage::GlobalAllocated {
            return Err(map_err(&name, format!("unsupported map linkage {linkage:?} (maps must be global)")));
        }
        let def_id = btf.skip_mods_and_typedefs(type_id)?;
        let def_t = btf.type_by_id(def_id)?;
        let BtfKind::Struct { size, members } = &def_t.kind else {
            return Err(map_err(&name, format!("definition is a {}, not a struct", def_t.kind.name())));
        };
        if *size > vi.size {
            return Err(map_err(&name, "invalid definition size"));
        }
        let values_bit_offset = members.last().filter(|m| m.name == "values").map(|m| m.bit_offset);
        let mut def = MapDef::empty(name, ".maps".into(), MapOrigin::Btf);
        parse_btf_map_def(btf, &mut def, def_id, true)?;
        finish_def(&mut def)?;
        out.push(BtfMapVar { def, offset: vi.offset, size: vi.size, values_bit_offset });
    }
    Ok(out)
}

/// Size of libbpf's legacy `struct bpf_map_def` (five `u32`s).
pub(crate) const LEGACY_DEF_SIZE: usize = 20;

/// Parses one legacy `struct bpf_map_def` of `def_size` bytes (libbpf 0.x rules:
/// shorter definitions are zero-extended, longer ones must have zero tails).
pub(crate) fn parse_legacy_def(name: &str, bytes: &[u8]) -> Result<MapDef, ObjectError> {
    let mut raw = [0u8; LEGACY_DEF_SIZE];
    let n = bytes.len().min(LEGACY_DEF_SIZE);
    raw[..n].copy_from_slice(&bytes[..n]);
    if bytes.len() > LEGACY_DEF_SIZE && bytes[LEGACY_DEF_SIZE..].iter().any(|&b| b != 0) {
        return Err(map_err(name, "legacy map definition has unrecognized, non-zero fields after map_flags"));
    }
    let w = |i: usize| u32::from_le_bytes([raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]]);
    let mut def = MapDef::empty(name.to_string(), "maps".into(), MapOrigin::Legacy);
    def.map_type = w(0);
    def.key_size = w(1);
    def.value_size = w(2);
    def.max_entries = w(3);
    def.map_flags = w(4);
    finish_def(&mut def)?;
    Ok(def)
}

/// libbpf's `internal_map_name`: `<obj prefix><section>` within 15 characters.
pub(crate) fn internal_map_name(obj_name: &str, section: &str) -> String {
    const OBJ_NAME_LEN: usize = 16;
    let sfx_len = section.len().clamp(7, OBJ_NAME_LEN - 1);
    let pfx_len = if section.len() > 1 && section[1..].contains('.') {
        0
    } else {
        (OBJ_NAME_LEN - sfx_len - 1).min(obj_name.len())
    };
    let prefix: String = obj_name.bytes().take(pfx_len).map(char::from).collect();
    let suffix: String = section.bytes().take(sfx_len).map(char::from).collect();
    format!("{prefix}{suffix}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_names_match_libbpf() {
        assert_eq!(internal_map_name("linux-samples__xdp_adjust_tail_kern", ".data"), "linux_sa.data");
        assert_eq!(internal_map_name("linux-selftests__test_bpf_nf", ".kconfig"), "linux_s.kconfig");
        assert_eq!(internal_map_name("linux-selftests__test_bpf_nf", ".rodata.cst16"), ".rodata.cst16");
        assert_eq!(internal_map_name("x", ".rodata.str1.1"), ".rodata.str1.1");
        assert_eq!(internal_map_name("", ".rodata"), ".rodata");
        assert_eq!(internal_map_name("obj", ".data.a_very_long_custom_name"), ".data.a_very_lo");
    }

    #[test]
    fn ringbuf_rounding() {
        assert_eq!(adjust_ringbuf_size(5000), 8192);
        assert_eq!(adjust_ringbuf_size(4096), 4096);
        assert_eq!(adjust_ringbuf_size(3 * 4096), 4 * 4096);
        assert_eq!(adjust_ringbuf_size(0), 0);
    }

    #[test]
    fn legacy_defs() {
        let mut b = vec![0u8; 28];
        b[0] = 1; // hash
        b[4] = 4;
        b[8] = 8;
        b[12] = 16;
        let d = parse_legacy_def("m", &b).unwrap();
        assert_eq!((d.map_type, d.key_size, d.value_size, d.max_entries), (1, 4, 8, 16));
        b[24] = 1;
        assert!(matches!(parse_legacy_def("m", &b), Err(ObjectError::Map { .. })));
        let mut u = vec![0u8; 20];
        u[0] = 99;
        assert!(matches!(parse_legacy_def("m", &u), Err(ObjectError::UnknownMapType { value: 99, .. })));
        u[0] = 26;
        let e = parse_legacy_def("m", &u).unwrap_err().to_string();
        assert!(e.contains("BPF_MAP_TYPE_STRUCT_OPS") && e.contains("26"), "{e}");
    }
}
