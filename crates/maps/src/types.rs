//! `BPF_MAP_TYPE_*` numbers and the UAPI flag constants maps use.

/// Update flag: create or replace.
pub const BPF_ANY: u64 = 0;
/// Update flag: create only.
pub const BPF_NOEXIST: u64 = 1;
/// Update flag: replace only (queue/stack: overwrite the oldest when full).
pub const BPF_EXIST: u64 = 2;
/// Update/lookup flag: take the value's `bpf_spin_lock` while copying.
pub const BPF_F_LOCK: u64 = 4;

/// Creation flag: do not preallocate (required by LPM tries).
pub const BPF_F_NO_PREALLOC: u32 = 1 << 0;
/// Creation flag: per-CPU LRU lists.
pub const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;
/// Creation flag: NUMA node given.
pub const BPF_F_NUMA_NODE: u32 = 1 << 2;
/// Creation flag: read-only for syscalls.
pub const BPF_F_RDONLY: u32 = 1 << 3;
/// Creation flag: write-only for syscalls.
pub const BPF_F_WRONLY: u32 = 1 << 4;
/// Creation flag: stack trace build ids.
pub const BPF_F_STACK_BUILD_ID: u32 = 1 << 5;
/// Creation flag: hash seed zero (deterministic hashing).
pub const BPF_F_ZERO_SEED: u32 = 1 << 6;
/// Creation flag: read-only for programs.
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
/// Creation flag: write-only for programs.
pub const BPF_F_WRONLY_PROG: u32 = 1 << 8;
/// Creation flag: clone (sk storage).
pub const BPF_F_CLONE: u32 = 1 << 9;
/// Creation flag: the array can be mmap()ed.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// Creation flag: perf event array keeps its elements on close.
pub const BPF_F_PRESERVE_ELEMS: u32 = 1 << 11;
/// Creation flag: array used as an inner map of variable size.
pub const BPF_F_INNER_MAP: u32 = 1 << 12;
/// All access flags.
pub const BPF_F_ACCESS_MASK: u32 = BPF_F_RDONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY | BPF_F_WRONLY_PROG;

/// Ring buffer submit/output flag: no wakeup.
pub const BPF_RB_NO_WAKEUP: u64 = 1 << 0;
/// Ring buffer submit/output flag: always wake up.
pub const BPF_RB_FORCE_WAKEUP: u64 = 1 << 1;
/// `bpf_ringbuf_query`: bytes not yet consumed.
pub const BPF_RB_AVAIL_DATA: u64 = 0;
/// `bpf_ringbuf_query`: ring size.
pub const BPF_RB_RING_SIZE: u64 = 1;
/// `bpf_ringbuf_query`: consumer position.
pub const BPF_RB_CONS_POS: u64 = 2;
/// `bpf_ringbuf_query`: producer position.
pub const BPF_RB_PROD_POS: u64 = 3;
/// Ring buffer record header: record still being written.
pub const BPF_RINGBUF_BUSY_BIT: u32 = 1 << 31;
/// Ring buffer record header: record discarded.
pub const BPF_RINGBUF_DISCARD_BIT: u32 = 1 << 30;
/// Ring buffer record header size.
pub const BPF_RINGBUF_HDR_SZ: u32 = 8;

/// `bpf_perf_event_output` flags: index bits.
pub const BPF_F_INDEX_MASK: u64 = 0xffff_ffff;
/// `bpf_perf_event_output` flags: "the current CPU".
pub const BPF_F_CURRENT_CPU: u64 = BPF_F_INDEX_MASK;
/// `bpf_perf_event_output` flags: context bytes to append (XDP: packet bytes).
pub const BPF_F_CTXLEN_MASK: u64 = 0xfffff << 32;

macro_rules! map_types {
    ($( $variant:ident = $num:literal, $name:literal; )*) => {
        /// Every `BPF_MAP_TYPE_*` of the kernel UAPI (`enum bpf_map_type`),
        /// with its number. Only some are implemented; see [`crate::create`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum MapType {
            $(
                #[doc = concat!("`", $name, "` (", stringify!($num), ")")]
                $variant = $num,
            )*
        }

        impl MapType {
            /// The type of a `BPF_MAP_TYPE_*` number, if the number is known.
            pub fn from_u32(n: u32) -> Option<MapType> {
                match n {
                    $( $num => Some(MapType::$variant), )*
                    _ => None,
                }
            }

            /// The kernel's (bpftool's) name, e.g. `"lru_percpu_hash"`.
            pub fn name(self) -> &'static str {
                match self {
                    $( MapType::$variant => $name, )*
                }
            }
        }
    };
}

map_types! {
    Unspec = 0, "unspec";
    Hash = 1, "hash";
    Array = 2, "array";
    ProgArray = 3, "prog_array";
    PerfEventArray = 4, "perf_event_array";
    PercpuHash = 5, "percpu_hash";
    PercpuArray = 6, "percpu_array";
    StackTrace = 7, "stack_trace";
    CgroupArray = 8, "cgroup_array";
    LruHash = 9, "lru_hash";
    LruPercpuHash = 10, "lru_percpu_hash";
    LpmTrie = 11, "lpm_trie";
    ArrayOfMaps = 12, "array_of_maps";
    HashOfMaps = 13, "hash_of_maps";
    Devmap = 14, "devmap";
    Sockmap = 15, "sockmap";
    Cpumap = 16, "cpumap";
    Xskmap = 17, "xskmap";
    Sockhash = 18, "sockhash";
    CgroupStorage = 19, "cgroup_storage";
    ReuseportSockarray = 20, "reuseport_sockarray";
    PercpuCgroupStorage = 21, "percpu_cgroup_storage";
    Queue = 22, "queue";
    Stack = 23, "stack";
    SkStorage = 24, "sk_storage";
    DevmapHash = 25, "devmap_hash";
    StructOps = 26, "struct_ops";
    Ringbuf = 27, "ringbuf";
    InodeStorage = 28, "inode_storage";
    TaskStorage = 29, "task_storage";
    BloomFilter = 30, "bloom_filter";
    UserRingbuf = 31, "user_ringbuf";
    CgrpStorage = 32, "cgrp_storage";
    Arena = 33, "arena";
}

impl std::fmt::Display for MapType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), *self as u32)
    }
}

/// The name of a type number for messages: `"lru_hash (9)"` or `"map type 99"`.
pub fn type_text(n: u32) -> String {
    match MapType::from_u32(n) {
        Some(t) => t.to_string(),
        None => format!("map type {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_uapi() {
        assert_eq!(MapType::Hash as u32, 1);
        assert_eq!(MapType::LpmTrie as u32, 11);
        assert_eq!(MapType::Devmap as u32, 14);
        assert_eq!(MapType::Queue as u32, 22);
        assert_eq!(MapType::SkStorage as u32, 24);
        assert_eq!(MapType::DevmapHash as u32, 25);
        assert_eq!(MapType::Ringbuf as u32, 27);
        assert_eq!(MapType::Arena as u32, 33);
        assert_eq!(MapType::from_u32(24).map(MapType::name), Some("sk_storage"));
        assert_eq!(MapType::from_u32(34), None);
        assert_eq!(type_text(9), "lru_hash (9)");
        assert_eq!(type_text(99), "map type 99");
    }

    #[test]
    fn numbers_match_system_header_when_present() {
        // Cross-check against the installed UAPI header (its enum lists the
        // types in order starting at 0).
        let Ok(text) = std::fs::read_to_string("/usr/include/linux/bpf.h") else {
            eprintln!("skipping: /usr/include/linux/bpf.h not installed");
            return;
        };
        let Some(start) = text.find("enum bpf_map_type {") else {
            panic!("bpf.h has no enum bpf_map_type");
        };
        let body = &text[start..];
        let end = body.find("};").unwrap_or(body.len());
        let mut n = 0u32;
        let mut checked = 0;
        for line in body[..end].lines().skip(1) {
            let line = line.trim().trim_end_matches(',');
            let Some(name) = line.strip_prefix("BPF_MAP_TYPE_") else { continue };
            let name = name.split_whitespace().next().unwrap_or("");
            if name.contains('=') || line.contains('=') {
                // Aliases such as BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED = X.
                continue;
            }
            let t = MapType::from_u32(n).unwrap_or_else(|| panic!("type {n} ({name}) missing"));
            assert_eq!(t.name().to_ascii_uppercase(), name, "type number {n}");
            n += 1;
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} types parsed");
    }
}
