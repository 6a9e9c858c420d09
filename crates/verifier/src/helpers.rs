//! Helper function prototypes (argument and return types) for the helpers
//! XDP and socket-filter programs may call, after the kernel's
//! `bpf_func_proto` tables (include/uapi/linux/bpf.h ids).

use crate::ProgType;

/// Argument kinds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Arg {
    /// Any initialised value.
    Anything,
    /// A map pointer (`CONST_PTR_TO_MAP`).
    MapPtr,
    /// A pointer to `key_size` readable bytes.
    MapKey,
    /// A pointer to `value_size` readable bytes.
    MapValue,
    /// A pointer to `value_size` writable bytes.
    UninitMapValue,
    /// The context, unmodified.
    Ctx,
    /// A pointer to readable memory sized by the next argument.
    Mem { nullable: bool },
    /// A pointer to writable memory sized by the next argument.
    UninitMem,
    /// A pointer to `n` readable bytes.
    FixedMem(u32),
    /// A pointer to `n` writable bytes.
    FixedUninitMem(u32),
    /// The size of the previous memory argument.
    Size { zero_ok: bool },
    /// A known-constant allocation size.
    AllocSize,
    /// A subprogram address (`lddw func`).
    Func,
    /// A stack pointer or NULL.
    StackOrNull,
    /// A socket (`struct sock_common` or more), not NULL.
    SockCommon,
    /// Ring-buffer memory to release.
    RingbufMem,
    /// An initialised `struct bpf_dynptr` on the stack, not modified.
    Dynptr,
}

/// Return kinds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ret {
    /// A scalar.
    Integer,
    /// Nothing (r0 is not readable afterwards).
    Void,
    /// A map value of the map in argument 1, or NULL.
    MapValueOrNull,
    /// A referenced socket, or NULL.
    SocketOrNull,
    /// A referenced `sock_common`, or NULL.
    SockCommonOrNull,
    /// Referenced ring-buffer memory of the constant size in argument 2, or NULL.
    RingbufMemOrNull,
}

/// Callback helpers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Callback {
    /// `bpf_loop(nr, cb(index, ctx), ctx, flags)`.
    Loop,
    /// `bpf_for_each_map_elem(map, cb(map, key, value, ctx), ctx, flags)`.
    ForEachMapElem,
}

/// A helper prototype.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Proto {
    pub name: &'static str,
    pub args: &'static [Arg],
    pub ret: Ret,
    /// Invalidates packet pointers.
    pub changes_pkt: bool,
    /// Releases the reference held by its socket / ring-buffer argument.
    pub release: bool,
    pub callback: Option<Callback>,
    /// Map types accepted for its map argument (None: any lookup-capable).
    pub map_types: Option<&'static [u32]>,
}

/// Map type numbers (enum bpf_map_type).
pub(crate) mod mt {
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PROG_ARRAY: u32 = 3;
    pub const PERF_EVENT_ARRAY: u32 = 4;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const LRU_HASH: u32 = 9;
    pub const LRU_PERCPU_HASH: u32 = 10;
    pub const ARRAY_OF_MAPS: u32 = 12;
    pub const HASH_OF_MAPS: u32 = 13;
    pub const DEVMAP: u32 = 14;
    pub const SOCKMAP: u32 = 15;
    pub const CPUMAP: u32 = 16;
    pub const XSKMAP: u32 = 17;
    pub const SOCKHASH: u32 = 18;
    pub const QUEUE: u32 = 22;
    pub const STACK: u32 = 23;
    pub const DEVMAP_HASH: u32 = 25;
    pub const RINGBUF: u32 = 27;
    pub const BLOOM_FILTER: u32 = 30;
}

use Arg::*;

const MEM: Arg = Mem { nullable: false };
const SIZE: Arg = Size { zero_ok: false };
const SIZE0: Arg = Size { zero_ok: true };

const fn p(name: &'static str, args: &'static [Arg], ret: Ret) -> Proto {
    Proto { name, args, ret, changes_pkt: false, release: false, callback: None, map_types: None }
}

const fn pkt(mut x: Proto) -> Proto {
    x.changes_pkt = true;
    x
}

const fn maps(mut x: Proto, m: &'static [u32]) -> Proto {
    x.map_types = Some(m);
    x
}

const fn rel(mut x: Proto) -> Proto {
    x.release = true;
    x
}

const fn cb(mut x: Proto, c: Callback) -> Proto {
    x.callback = Some(c);
    x
}

const SK_LOOKUP: &[Arg] = &[Ctx, Mem { nullable: false }, Size { zero_ok: false }, Anything, Anything];
const SYNCOOKIE: &[Arg] =
    &[SockCommon, Mem { nullable: false }, Size { zero_ok: false }, Mem { nullable: false }, Size { zero_ok: false }];
const REDIRECT_MAPS: &[u32] = &[mt::DEVMAP, mt::DEVMAP_HASH, mt::CPUMAP, mt::XSKMAP];
const QUEUE_MAPS: &[u32] = &[mt::QUEUE, mt::STACK];
const PERCPU_MAPS: &[u32] = &[mt::PERCPU_HASH, mt::PERCPU_ARRAY, mt::LRU_PERCPU_HASH];
const ITER_MAPS: &[u32] = &[mt::HASH, mt::ARRAY, mt::PERCPU_HASH, mt::PERCPU_ARRAY, mt::LRU_HASH, mt::LRU_PERCPU_HASH];

/// Helper names by id, for messages (`bpf_<name>#<id>`).
pub(crate) fn name(id: i32) -> &'static str {
    uxdp_isa::helper_names::helper_name(id as i64).unwrap_or("unknown")
}

/// Helpers every program type gets as root (`bpf_base_func_proto` with
/// CAP_BPF and CAP_PERFMON, plus `bpf_sk_base_func_proto`), modelled or not.
const BASE: &[i32] = &[
    1, 2, 3, 87, 88, 89, 195, 7, 8, 42, 12, 5, 125, 208, 160, 130, 131, 132, 133, 134, 164, 181, 182, 118, 6, 113, 115,
    112, 114, 165, 153, 154, 93, 94, 169, 170, 171, 172, 194, 35, 158, 197, 198, 199, 200, 201, 202, 203, 209, 177,
    136, 137, 138, 139, 140, 178, 196, 80, 123, 210, 211,
];
const XDP_ONLY: &[i32] =
    &[25, 28, 44, 54, 23, 51, 65, 69, 163, 188, 189, 190, 84, 85, 86, 99, 100, 110, 204, 205, 206, 207];
const SOCK_ONLY: &[i32] = &[26, 68, 46, 47, 25];

/// Whether a program of type `t` may call helper `id`.
pub(crate) fn allowed(t: ProgType, id: i32) -> bool {
    BASE.contains(&id)
        || match t {
            ProgType::Xdp => XDP_ONLY.contains(&id),
            ProgType::SocketFilter => SOCK_ONLY.contains(&id),
        }
}

/// The modelled prototype of helper `id`, if uxdp models it.
pub(crate) fn proto(id: i32) -> Option<Proto> {
    let nm = name(id);
    Some(match id {
        1 => p(nm, &[MapPtr, MapKey], Ret::MapValueOrNull),
        2 => p(nm, &[MapPtr, MapKey, MapValue, Anything], Ret::Integer),
        3 => p(nm, &[MapPtr, MapKey], Ret::Integer),
        87 => maps(p(nm, &[MapPtr, MapValue, Anything], Ret::Integer), &[mt::QUEUE, mt::STACK, mt::BLOOM_FILTER]),
        88 => maps(p(nm, &[MapPtr, UninitMapValue], Ret::Integer), QUEUE_MAPS),
        89 => maps(p(nm, &[MapPtr, UninitMapValue], Ret::Integer), &[mt::QUEUE, mt::STACK, mt::BLOOM_FILTER]),
        195 => maps(p(nm, &[MapPtr, MapKey, Anything], Ret::MapValueOrNull), PERCPU_MAPS),
        5 | 7 | 8 | 42 | 118 | 125 | 160 | 208 => p(nm, &[], Ret::Integer),
        6 => p(nm, &[MEM, SIZE], Ret::Integer),
        12 => maps(p(nm, &[Ctx, MapPtr, Anything], Ret::Void), &[mt::PROG_ARRAY]),
        23 => p(nm, &[Anything, Anything], Ret::Integer),
        25 => maps(p(nm, &[Ctx, MapPtr, Anything, MEM, SIZE0], Ret::Integer), &[mt::PERF_EVENT_ARRAY]),
        26 => p(nm, &[Ctx, Anything, UninitMem, SIZE], Ret::Integer),
        68 => p(nm, &[Ctx, Anything, UninitMem, SIZE, Anything], Ret::Integer),
        28 => p(nm, &[Mem { nullable: true }, SIZE0, Mem { nullable: true }, SIZE0, Anything], Ret::Integer),
        44 | 54 | 65 => pkt(p(nm, &[Ctx, Anything], Ret::Integer)),
        46 | 47 | 188 => p(nm, &[Ctx], Ret::Integer),
        51 => maps(p(nm, &[MapPtr, Anything, Anything], Ret::Integer), REDIRECT_MAPS),
        69 => p(nm, &[Ctx, MEM, SIZE, Anything], Ret::Integer),
        163 => p(nm, &[Ctx, Anything, FixedUninitMem(4), Anything, Anything], Ret::Integer),
        189 => p(nm, &[Ctx, Anything, UninitMem, SIZE], Ret::Integer),
        190 => p(nm, &[Ctx, Anything, MEM, SIZE], Ret::Integer),
        84 | 85 => p(nm, SK_LOOKUP, Ret::SocketOrNull),
        99 => p(nm, SK_LOOKUP, Ret::SockCommonOrNull),
        86 => rel(p(nm, &[SockCommon], Ret::Integer)),
        100 | 110 => p(nm, SYNCOOKIE, Ret::Integer),
        204 => p(nm, &[FixedMem(20), MEM, SIZE0], Ret::Integer),
        205 => p(nm, &[FixedMem(40), MEM, SIZE0], Ret::Integer),
        206 => p(nm, &[FixedMem(20), FixedMem(20)], Ret::Integer),
        207 => p(nm, &[FixedMem(40), FixedMem(20)], Ret::Integer),
        112..=115 => p(nm, &[UninitMem, SIZE0, Anything], Ret::Integer),
        130 => maps(p(nm, &[MapPtr, MEM, SIZE0, Anything], Ret::Integer), &[mt::RINGBUF]),
        131 => maps(p(nm, &[MapPtr, AllocSize, Anything], Ret::RingbufMemOrNull), &[mt::RINGBUF]),
        132 | 133 => rel(p(nm, &[RingbufMem, Anything], Ret::Void)),
        201 => p(nm, &[UninitMem, SIZE0, Dynptr, Anything, Anything], Ret::Integer),
        202 => p(nm, &[Dynptr, Anything, MEM, SIZE0, Anything], Ret::Integer),
        134 => maps(p(nm, &[MapPtr, Anything], Ret::Integer), &[mt::RINGBUF]),
        181 => cb(p(nm, &[Anything, Func, StackOrNull, Anything], Ret::Integer), Callback::Loop),
        164 => {
            maps(cb(p(nm, &[MapPtr, Func, StackOrNull, Anything], Ret::Integer), Callback::ForEachMapElem), ITER_MAPS)
        }
        _ => return None,
    })
}

/// Whether a map of type `map_type` may be passed to helper `id`
/// (the kernel's `check_map_func_compatibility`, the common cases).
pub(crate) fn map_compatible(id: i32, map_type: u32, proto: &Proto) -> bool {
    if let Some(list) = proto.map_types {
        if !list.contains(&map_type) {
            return false;
        }
    }
    match map_type {
        mt::PROG_ARRAY => id == 12,
        mt::PERF_EVENT_ARRAY => id == 25,
        mt::RINGBUF => matches!(id, 130..=134),
        mt::DEVMAP | mt::DEVMAP_HASH | mt::XSKMAP => matches!(id, 1 | 51),
        mt::CPUMAP => id == 51,
        mt::QUEUE | mt::STACK => matches!(id, 87..=89),
        mt::BLOOM_FILTER => matches!(id, 87 | 89),
        mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS => id == 1,
        mt::SOCKMAP | mt::SOCKHASH => matches!(id, 1..=3),
        _ => true,
    }
}

/// Map types whose lookups return an inner map pointer.
pub(crate) fn is_map_in_map(map_type: u32) -> bool {
    matches!(map_type, mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS)
}

/// Map types supporting direct value addresses (`lddw map_value`).
pub(crate) fn direct_value_ok(map_type: u32) -> bool {
    map_type == mt::ARRAY
}
