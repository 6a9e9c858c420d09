//! kfunc prototypes: the kernel functions XDP programs call through
//! `call` with `src_reg = 2` that uxdp models, after their kernel
//! declarations and `BTF_ID_FLAGS` (kernel/bpf/helpers.c,
//! net/core/filter.c, net/netfilter/nf_conntrack_bpf.c, nf_nat_bpf.c).
//!
//! Arguments are classified the way the kernel's `check_kfunc_args` does
//! from the BTF prototype: the context, scalars, a dynptr on the stack, a
//! memory pointer with a following `__sz` (or constant `__szk`) size, a
//! fixed-size memory pointer, or a kernel object pointer (`PTR_TO_BTF_ID`).

use crate::ProgType;

/// Kernel objects kfuncs hand out (`PTR_TO_BTF_ID` of these structs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Obj {
    /// `struct nf_conn`.
    NfConn = 0,
    /// `struct nf_conn___init` (allocated, not yet inserted).
    NfConnInit = 1,
}

impl Obj {
    /// From the `aux` number of a register.
    pub(crate) fn from_aux(aux: u32) -> Obj {
        if aux == Obj::NfConnInit as u32 {
            Obj::NfConnInit
        } else {
            Obj::NfConn
        }
    }

    /// The struct's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Obj::NfConn => "nf_conn",
            Obj::NfConnInit => "nf_conn___init",
        }
    }

    /// `sizeof` the struct (Linux 6.12 x86-64 layout; `nf_conn___init`
    /// wraps an `nf_conn`).
    pub(crate) fn size(self) -> i64 {
        NF_CONN_SIZE
    }
}

/// `sizeof(struct nf_conn)`.
pub(crate) const NF_CONN_SIZE: i64 = 248;
/// `offsetof(struct nf_conn, mark)`: the one field programs may write.
pub(crate) const NF_CONN_MARK: i64 = 168;

/// Argument kinds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum KArg {
    /// The program context (`struct xdp_md *`), unmodified.
    Ctx,
    /// A scalar.
    Scalar,
    /// A stack slot pair that becomes an initialised `struct bpf_dynptr`.
    DynptrUninit,
    /// An initialised `struct bpf_dynptr` on the stack.
    Dynptr,
    /// Memory followed by its size argument (`__sz`; `konst`: `__szk`,
    /// a known constant); `optional` (`__opt`) accepts NULL.
    MemSize { optional: bool, konst: bool },
    /// Memory of a fixed size (a pointer to a scalar type or union).
    Mem(u32),
    /// A kernel object.
    Obj(Obj),
}

/// Return kinds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum KRet {
    /// An integer.
    Int,
    /// Nothing.
    Void,
    /// A slice of packet data of the constant `__szk` size (`rdwr`:
    /// writable).
    Slice { rdwr: bool },
    /// A kernel object.
    Obj(Obj),
}

/// A kfunc prototype.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KProto {
    pub args: &'static [KArg],
    pub ret: KRet,
    /// `KF_ACQUIRE`: the returned object is a reference to release.
    pub acquire: bool,
    /// `KF_RELEASE`: releases its object argument.
    pub release: bool,
    /// `KF_RET_NULL`: the result may be NULL.
    pub ret_null: bool,
    /// `KF_TRUSTED_ARGS`: object arguments must be trusted and non-NULL.
    pub trusted: bool,
    /// Callable from XDP programs only (registered for `BPF_PROG_TYPE_XDP`).
    pub xdp_only: bool,
}

/// What uxdp knows about a kfunc name.
pub(crate) enum Lookup {
    /// Modelled.
    Known(KProto),
    /// Known, but refused for the given reason.
    Refused(&'static str),
    /// Not known.
    Unknown,
}

use KArg::*;

const fn k(args: &'static [KArg], ret: KRet) -> KProto {
    KProto { args, ret, acquire: false, release: false, ret_null: false, trusted: false, xdp_only: false }
}

const CT_LOOKUP: &[KArg] = &[Ctx, MemSize { optional: false, konst: false }, MemSize { optional: false, konst: false }];
const SLICE: &[KArg] = &[Dynptr, Scalar, MemSize { optional: true, konst: true }];

/// The prototype of kfunc `name` as seen by a program of type `t`.
pub(crate) fn lookup(name: &str, t: ProgType) -> Lookup {
    let p = match name {
        "bpf_dynptr_from_xdp" => KProto { xdp_only: true, ..k(&[Ctx, Scalar, DynptrUninit], KRet::Int) },
        "bpf_dynptr_slice" => KProto { ret_null: true, ..k(SLICE, KRet::Slice { rdwr: false }) },
        "bpf_dynptr_slice_rdwr" => KProto { ret_null: true, ..k(SLICE, KRet::Slice { rdwr: true }) },
        "bpf_xdp_ct_lookup" => {
            KProto { acquire: true, ret_null: true, xdp_only: true, ..k(CT_LOOKUP, KRet::Obj(Obj::NfConn)) }
        }
        "bpf_xdp_ct_alloc" => {
            KProto { acquire: true, ret_null: true, xdp_only: true, ..k(CT_LOOKUP, KRet::Obj(Obj::NfConnInit)) }
        }
        "bpf_ct_insert_entry" => KProto {
            acquire: true,
            release: true,
            ret_null: true,
            xdp_only: true,
            ..k(&[Obj(Obj::NfConnInit)], KRet::Obj(Obj::NfConn))
        },
        "bpf_ct_release" => KProto { release: true, xdp_only: true, ..k(&[Obj(Obj::NfConn)], KRet::Void) },
        "bpf_ct_set_timeout" => {
            KProto { trusted: true, xdp_only: true, ..k(&[Obj(Obj::NfConnInit), Scalar], KRet::Void) }
        }
        "bpf_ct_change_timeout" | "bpf_ct_change_status" => {
            KProto { trusted: true, xdp_only: true, ..k(&[Obj(Obj::NfConn), Scalar], KRet::Int) }
        }
        "bpf_ct_set_status" => {
            KProto { trusted: true, xdp_only: true, ..k(&[Obj(Obj::NfConnInit), Scalar], KRet::Int) }
        }
        "bpf_ct_set_nat_info" => {
            KProto { trusted: true, xdp_only: true, ..k(&[Obj(Obj::NfConnInit), Mem(16), Scalar, Scalar], KRet::Int) }
        }
        "bpf_skb_ct_lookup" | "bpf_skb_ct_alloc" => {
            return Lookup::Refused("takes a struct __sk_buff context: callable from tc programs only")
        }
        "bpf_xdp_metadata_rx_hash" | "bpf_xdp_metadata_rx_timestamp" | "bpf_xdp_metadata_rx_vlan_tag" => {
            return Lookup::Refused(
                "is a device-bound XDP metadata kfunc: the kernel requires a device-bound program \
                 (prog_ifindex + BPF_F_XDP_DEV_BOUND_ONLY), which uxdp programs are not",
            )
        }
        _ => return Lookup::Unknown,
    };
    if p.xdp_only && t != ProgType::Xdp {
        return Lookup::Refused("is available to XDP programs only");
    }
    Lookup::Known(p)
}
