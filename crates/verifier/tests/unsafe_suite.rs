//! uxdp's own suite of unsafe (and a few safe) programs. Each case states
//! the expected verdict — the rejected instruction index and rule, or
//! acceptance — and is also loaded into the running kernel with
//! `BPF_PROG_LOAD`: the kernel's accept/reject verdict must equal ours
//! (skipped with a printed reason when the kernel refuses BPF).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use uxdp_isa::{opcode, Insn};
use uxdp_verifier::{verify, AttachType, KfuncCall, MapInfo, ProgType, Rule, VerifyInput};

struct Map {
    map_type: u32,
    key: u32,
    value: u32,
    max: u32,
    flags: u32,
}

const HASH_8_8: Map = Map { map_type: 1, key: 8, value: 8, max: 16, flags: 0 };
const ARRAY_4_16: Map = Map { map_type: 2, key: 4, value: 16, max: 4, flags: 0 };
const ARRAY_RO: Map = Map { map_type: 2, key: 4, value: 16, max: 4, flags: 0x80 };
const RINGBUF: Map = Map { map_type: 27, key: 0, value: 0, max: 4096, flags: 0 };
const PROG_ARRAY: Map = Map { map_type: 3, key: 4, value: 4, max: 1, flags: 0 };

struct Case {
    name: &'static str,
    prog: ProgType,
    maps: &'static [Map],
    asm: &'static str,
    /// `None`: accepted. `Some((pc, rule))`: rejected at `pc` for `rule`.
    expect: Option<(usize, Rule)>,
    /// Expected attach type (libbpf's, from the section name).
    attach: AttachType,
}

/// kfuncs the cases call: `call kfunc N` calls `KFUNCS[N]` (resolved in
/// the kernel's BTF for `BPF_PROG_LOAD`).
const KFUNCS: &[&str] = &[
    "bpf_dynptr_from_xdp",
    "bpf_dynptr_slice",
    "bpf_dynptr_slice_rdwr",
    "bpf_xdp_ct_lookup",
    "bpf_ct_release",
    "bpf_xdp_ct_alloc",
    "bpf_ct_insert_entry",
    "bpf_ct_set_timeout",
    "bpf_xdp_metadata_rx_hash",
];

/// The kfunc call sites of `insns`, named from [`KFUNCS`].
fn kfunc_calls(insns: &[Insn]) -> Vec<KfuncCall> {
    insns
        .iter()
        .enumerate()
        .filter(|(_, i)| i.code == opcode::CALL && i.src() == 2)
        .map(|(pc, i)| KfuncCall {
            pc,
            name: KFUNCS.get(i.imm as usize).copied().unwrap_or("?").to_string(),
            weak: false,
            btf_id: 0,
        })
        .collect()
}

/// `BTF_KIND_FUNC` ids by name in the running kernel's BTF.
fn kernel_func_ids(names: &[&str]) -> Result<Vec<u32>, String> {
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").map_err(|e| format!("/sys/kernel/btf/vmlinux: {e}"))?;
    let u32_at = |o: usize| -> Result<u32, String> {
        btf.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or_else(|| "truncated BTF".into())
    };
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len, str_off) = (u32_at(8)? as usize, u32_at(12)? as usize, u32_at(16)? as usize);
    let (types, strings) = (hdr_len + type_off, hdr_len + str_off);
    let name_at = |o: usize| -> &[u8] {
        let rest = btf.get(strings + o..).unwrap_or(&[]);
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    };
    let mut found = vec![0u32; names.len()];
    let (mut at, mut id) = (types, 1u32);
    while at < types + type_len {
        let (name_off, info) = (u32_at(at)? as usize, u32_at(at + 4)?);
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        if kind == 12 {
            if let Some(i) = names.iter().position(|n| n.as_bytes() == name_at(name_off)) {
                found[i] = id;
            }
        }
        at += 12
            + match kind {
                1 | 14 | 17 => 4,
                3 => 12,
                4 | 5 | 15 | 19 => 12 * vlen,
                6 | 13 => 8 * vlen,
                _ => 0,
            };
        id += 1;
    }
    Ok(found)
}

/// Function starts: 0 and every local-call or `lddw func` target.
fn function_starts(insns: &[Insn]) -> Vec<u32> {
    let mut v = vec![0u32];
    for (pc, i) in insns.iter().enumerate() {
        let local_call = i.code == opcode::CALL && i.src() == 1;
        let func_addr = i.code == opcode::LDDW && i.src() == 4;
        if local_call || func_addr {
            v.push((pc as i64 + 1 + i.imm as i64) as u32);
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// A minimal BTF blob for `n` functions `int fN(void)` (type ids 3..3+n),
/// so that programs with subprograms can carry `func_info` (the kernel
/// refuses `lddw func` without it: "missing btf func_info").
fn btf_for_functions(n: usize) -> Vec<u8> {
    let mut strings = b"\0int\0".to_vec();
    let mut types: Vec<u32> = vec![
        1,
        1 << 24,
        4,
        0x0100_0020, // [1] int: signed, 32 bits
        0,
        13 << 24,
        1, // [2] func_proto: int (void)
    ];
    for i in 0..n {
        let name_off = strings.len() as u32;
        strings.extend_from_slice(format!("f{i}\0").as_bytes());
        types.extend_from_slice(&[name_off, 12 << 24, 2]); // FUNC, static linkage
    }
    let type_bytes: Vec<u8> = types.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut blob = Vec::new();
    blob.extend_from_slice(&0xeb9f_u16.to_le_bytes());
    blob.extend_from_slice(&[1, 0]);
    for v in [24u32, 0, type_bytes.len() as u32, type_bytes.len() as u32, strings.len() as u32] {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    blob.extend_from_slice(&type_bytes);
    blob.extend_from_slice(&strings);
    blob
}

const PKT: &str = "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\n";

macro_rules! case {
    ($name:literal, $prog:ident, $maps:expr, $asm:expr, accept) => {
        Case { name: $name, prog: ProgType::$prog, maps: $maps, asm: $asm, expect: None, attach: AttachType::Default }
    };
    ($name:literal, $prog:ident, $maps:expr, $asm:expr, $pc:literal, $rule:ident) => {
        Case {
            name: $name,
            prog: ProgType::$prog,
            maps: $maps,
            asm: $asm,
            expect: Some(($pc, Rule::$rule)),
            attach: AttachType::Default,
        }
    };
}

fn cases() -> Vec<Case> {
    // Programs are concatenated with the packet-pointer preamble where
    // useful: r2 = data, r3 = data_end (instructions 0 and 1).
    let p = |s: &'static str| -> &'static str { Box::leak(format!("{PKT}{s}").into_boxed_str()) };
    let lookup = "stdw [%r10-8], 0\nmov %r2, %r10\nadd %r2, -8\nlddw %r1, map_fd 0\ncall 1\n";
    let l = |s: &'static str| -> &'static str { Box::leak(format!("{lookup}{s}").into_boxed_str()) };
    // r6 = ctx; a dynptr over the packet at fp-16 (insns 0-5).
    let dynptr = "mov %r6, %r1\nmov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -16\ncall kfunc 0\n";
    let d = |s: &'static str| -> &'static str { Box::leak(format!("{dynptr}{s}").into_boxed_str()) };
    // ... and a 14-byte read-only slice of it at offset 0 in r0 (insns 6-11).
    let slice = "mov %r1, %r10\nadd %r1, -16\nmov %r2, 0\nmov %r3, 0\nmov %r4, 14\ncall kfunc 1\n";
    let ds = |s: &'static str| -> &'static str { Box::leak(format!("{dynptr}{slice}{s}").into_boxed_str()) };
    let ds_rw = |s: &'static str| -> &'static str {
        Box::leak(format!("{dynptr}{}{s}", slice.replace("kfunc 1", "kfunc 2")).into_boxed_str())
    };
    // r6 = ctx; conntrack lookup of the tuple at fp-16 with opts at fp-32, nf_conn or NULL in r0 (insns 0-8).
    let ct = "mov %r6, %r1\nmov %r1, %r6\nmov %r2, %r10\nadd %r2, -16\nmov %r3, 12\nmov %r4, %r10\nadd %r4, -32\nmov %r5, 12\ncall kfunc 3\n";
    let c = |s: &'static str| -> &'static str { Box::leak(format!("{ct}{s}").into_boxed_str()) };
    let alloc = ct.replace("kfunc 3", "kfunc 5");
    let a = move |s: &'static str| -> &'static str { Box::leak(format!("{alloc}{s}").into_boxed_str()) };
    let attach = |name: &'static str, attach: AttachType, expect: Option<(usize, Rule)>| Case {
        name,
        prog: ProgType::Xdp,
        maps: &[],
        asm: "ldxw %r0, [%r1+20]\nexit",
        expect,
        attach,
    };
    vec![
        // --- attach types ---
        attach("xdp_egress_ifindex_default", AttachType::Default, Some((0, Rule::CtxAccess))),
        attach("xdp_egress_ifindex_devmap", AttachType::Devmap, None),
        attach("xdp_egress_ifindex_cpumap", AttachType::Cpumap, Some((0, Rule::CtxAccess))),
        // --- kfuncs: dynptrs ---
        case!("dynptr_slice_checked", Xdp, &[], ds("jeq %r0, 0, +2\nldxb %r0, [%r0+13]\nexit\nmov %r0, 2\nexit"), accept),
        case!("dynptr_slice_without_null_check", Xdp, &[], ds("ldxb %r0, [%r0+0]\nexit"), 12, NullDeref),
        case!("dynptr_slice_out_of_bounds", Xdp, &[], ds("jeq %r0, 0, +2\nldxb %r0, [%r0+14]\nexit\nmov %r0, 2\nexit"), 13, MemBounds),
        case!("dynptr_slice_readonly_write", Xdp, &[], ds("jeq %r0, 0, +1\nstb [%r0+0], 1\nmov %r0, 2\nexit"), 13, ReadOnly),
        case!("dynptr_slice_rdwr_write", Xdp, &[], ds_rw("jeq %r0, 0, +1\nstb [%r0+0], 1\nmov %r0, 2\nexit"), accept),
        case!("dynptr_slice_into_buffer", Xdp, &[], d("stdw [%r10-24], 0\nmov %r1, %r10\nadd %r1, -16\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -24\nmov %r4, 8\ncall kfunc 1\njeq %r0, 0, +1\nldxdw %r0, [%r0+0]\nmov %r0, 2\nexit"), accept),
        case!("dynptr_slice_buffer_too_small", Xdp, &[], d("mov %r1, %r10\nadd %r1, -16\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -24\nmov %r4, 32\ncall kfunc 1\nmov %r0, 2\nexit"), 12, StackBounds),
        case!("dynptr_slice_of_uninit_dynptr", Xdp, &[], "mov %r1, %r10\nadd %r1, -16\nmov %r2, 0\nmov %r3, 0\nmov %r4, 14\ncall kfunc 1\nmov %r0, 2\nexit", 5, HelperArgType),
        case!("dynptr_slice_size_not_constant", Xdp, &[], d("call 7\nand %r0, 15\nmov %r4, %r0\nmov %r1, %r10\nadd %r1, -16\nmov %r2, 0\nmov %r3, 0\ncall kfunc 1\nmov %r0, 2\nexit"), 13, HelperArgSize),
        case!("dynptr_overwritten_then_sliced", Xdp, &[], d("stdw [%r10-16], 0\nmov %r1, %r10\nadd %r1, -16\nmov %r2, 0\nmov %r3, 0\nmov %r4, 14\ncall kfunc 1\nmov %r0, 2\nexit"), 12, HelperArgType),
        case!("dynptr_bytes_read", Xdp, &[], d("ldxdw %r0, [%r10-16]\nexit"), 6, InvalidMemAccess),
        case!("dynptr_misaligned", Xdp, &[], "mov %r2, 0\nmov %r3, %r10\nadd %r3, -20\ncall kfunc 0\nmov %r0, 2\nexit", 3, HelperArgType),
        case!("dynptr_slice_after_adjust_head", Xdp, &[], ds("jeq %r0, 0, +6\nmov %r7, %r0\nmov %r1, %r6\nmov %r2, 0\ncall 44\nldxb %r0, [%r7+0]\nexit\nmov %r0, 2\nexit"), 17, InvalidMemAccess),
        case!("dynptr_from_xdp_needs_ctx", Xdp, &[], "mov %r1, %r10\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -16\ncall kfunc 0\nmov %r0, 2\nexit", 4, HelperArgType),
        case!("dynptr_write_helper", Xdp, &[], d("stdw [%r10-24], 0\nmov %r1, %r10\nadd %r1, -16\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -24\nmov %r4, 8\nmov %r5, 0\ncall 202\nmov %r0, 2\nexit"), accept),
        case!("dynptr_write_helper_uninit_dynptr", Xdp, &[], "stdw [%r10-24], 0\nmov %r1, %r10\nadd %r1, -16\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -24\nmov %r4, 8\nmov %r5, 0\ncall 202\nmov %r0, 2\nexit", 8, HelperArgType),
        case!("dynptr_read_helper", Xdp, &[], d("mov %r1, %r10\nadd %r1, -32\nmov %r2, 8\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 0\nmov %r5, 0\ncall 201\nldxdw %r0, [%r10-32]\nmov %r0, 2\nexit"), accept),
        case!("dynptr_read_helper_over_dynptr", Xdp, &[], d("mov %r1, %r10\nadd %r1, -16\nmov %r2, 8\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 0\nmov %r5, 0\ncall 201\nmov %r0, 2\nexit"), 13, HelperArgType),
        // --- kfuncs: conntrack references ---
        case!("ct_lookup_released", Xdp, &[], c("jeq %r0, 0, +2\nmov %r1, %r0\ncall kfunc 4\nmov %r0, 2\nexit"), accept),
        case!("ct_lookup_unreleased", Xdp, &[], c("mov %r0, 2\nexit"), 10, ReferenceLeak),
        case!("ct_use_after_release", Xdp, &[], c("jeq %r0, 0, +4\nmov %r7, %r0\nmov %r1, %r0\ncall kfunc 4\nldxw %r0, [%r7+0]\nmov %r0, 2\nexit"), 13, InvalidMemAccess),
        case!("ct_release_without_null_check", Xdp, &[], c("mov %r1, %r0\ncall kfunc 4\nmov %r0, 2\nexit"), 10, NullDeref),
        case!("ct_double_release", Xdp, &[], c("jeq %r0, 0, +5\nmov %r7, %r0\nmov %r1, %r0\ncall kfunc 4\nmov %r1, %r7\ncall kfunc 4\nmov %r0, 2\nexit"), 14, HelperArgType),
        case!("ct_read_mark", Xdp, &[], c("jeq %r0, 0, +3\nldxw %r7, [%r0+168]\nmov %r1, %r0\ncall kfunc 4\nmov %r0, 2\nexit"), accept),
        case!("ct_write_mark", Xdp, &[], c("jeq %r0, 0, +3\nstw [%r0+168], 1\nmov %r1, %r0\ncall kfunc 4\nmov %r0, 2\nexit"), accept),
        case!("ct_write_status", Xdp, &[], c("jeq %r0, 0, +3\nstw [%r0+128], 1\nmov %r1, %r0\ncall kfunc 4\nmov %r0, 2\nexit"), 10, ReadOnly),
        case!("ct_read_past_struct", Xdp, &[], c("jeq %r0, 0, +3\nldxw %r7, [%r0+248]\nmov %r1, %r0\ncall kfunc 4\nmov %r0, 2\nexit"), 10, InvalidMemAccess),
        case!("ct_release_modified_pointer", Xdp, &[], c("jeq %r0, 0, +3\nmov %r1, %r0\nadd %r1, 8\ncall kfunc 4\nmov %r0, 2\nexit"), 12, HelperArgType),
        case!("ct_lookup_null_tuple_with_size", Xdp, &[], "mov %r2, 0\nmov %r3, 12\nmov %r4, %r10\nadd %r4, -32\nmov %r5, 12\ncall kfunc 3\nmov %r0, 2\nexit", 5, HelperArgType),
        case!("ct_alloc_insert_release", Xdp, &[], a("jeq %r0, 0, +9\nmov %r7, %r0\nmov %r1, %r0\nmov %r2, 1000\ncall kfunc 7\nmov %r1, %r7\ncall kfunc 6\njeq %r0, 0, +2\nmov %r1, %r0\ncall kfunc 4\nmov %r0, 2\nexit"), accept),
        case!("ct_alloc_released_as_nf_conn", Xdp, &[], a("jeq %r0, 0, +2\nmov %r1, %r0\ncall kfunc 4\nmov %r0, 2\nexit"), 11, HelperArgType),
        case!("ct_insert_of_lookup_result", Xdp, &[], c("jeq %r0, 0, +4\nmov %r1, %r0\ncall kfunc 6\njeq %r0, 0, +2\nmov %r1, %r0\ncall kfunc 4\nmov %r0, 2\nexit"), 11, HelperArgType),
        case!("ct_tail_call_holding_reference", Xdp, &[PROG_ARRAY], c("mov %r7, %r0\nmov %r1, %r6\nlddw %r2, map_fd 0\nmov %r3, 0\ncall 12\njeq %r7, 0, +2\nmov %r1, %r7\ncall kfunc 4\nmov %r0, 2\nexit"), 14, ReferenceLeak),
        case!("ct_lookup_from_socket_filter", SocketFilter, &[], "mov %r6, %r1\nmov %r2, %r10\nadd %r2, -16\nmov %r3, 12\nmov %r4, %r10\nadd %r4, -32\nmov %r5, 12\ncall kfunc 3\nmov %r0, 0\nexit", 7, UnknownKfunc),
        case!("xdp_metadata_kfunc_not_dev_bound", Xdp, &[], "mov %r2, %r10\nadd %r2, -4\nmov %r3, %r10\nadd %r3, -8\ncall kfunc 8\nmov %r0, 2\nexit", 4, UnknownKfunc),
        // --- packet access ---
        case!("pkt_read_without_check", Xdp, &[], p("ldxb %r0, [%r2+0]\nexit"), 2, PacketBounds),
        case!("pkt_off_by_one", Xdp, &[], p("mov %r4, %r2\nadd %r4, 14\njgt %r4, %r3, +2\nldxb %r0, [%r2+14]\nexit\nmov %r0, 1\nexit"), 5, PacketBounds),
        case!("pkt_checked_read", Xdp, &[], p("mov %r4, %r2\nadd %r4, 14\njgt %r4, %r3, +2\nldxb %r0, [%r2+13]\nexit\nmov %r0, 1\nexit"), accept),
        case!("pkt_check_wrong_direction", Xdp, &[], p("mov %r4, %r2\nadd %r4, 14\njle %r4, %r3, +2\nldxb %r0, [%r2+0]\nexit\nmov %r0, 1\nexit"), 5, PacketBounds),
        case!("pkt_read_past_checked_word", Xdp, &[], p("mov %r4, %r2\nadd %r4, 4\njgt %r4, %r3, +2\nldxw %r0, [%r2+1]\nexit\nmov %r0, 1\nexit"), 5, PacketBounds),
        case!("pkt_end_on_left", Xdp, &[], p("mov %r4, %r2\nadd %r4, 8\njlt %r3, %r4, +2\nldxdw %r0, [%r2+0]\nexit\nmov %r0, 1\nexit"), accept),
        case!("pkt_write_checked", Xdp, &[], p("mov %r4, %r2\nadd %r4, 1\njgt %r4, %r3, +1\nstb [%r2+0], 1\nmov %r0, 2\nexit"), accept),
        case!("pkt_write_unchecked", Xdp, &[], p("stb [%r2+0], 1\nmov %r0, 2\nexit"), 2, PacketBounds),
        case!("pkt_negative_offset", Xdp, &[], p("mov %r4, %r2\nadd %r4, 8\njgt %r4, %r3, +2\nldxb %r0, [%r2-1]\nexit\nmov %r0, 1\nexit"), 5, PacketBounds),
        case!("pkt_meta_unchecked", Xdp, &[], "ldxw %r2, [%r1+8]\nldxb %r0, [%r2+0]\nexit", 1, PacketBounds),
        case!("pkt_end_arithmetic", Xdp, &[], p("add %r3, 1\nmov %r0, 2\nexit"), 2, PointerArithmetic),
        case!("pkt_ptr_bitwise", Xdp, &[], p("and %r2, 255\nmov %r0, 2\nexit"), 2, PointerArithmetic),
        case!("pkt_ptr_alu32", Xdp, &[], p("add32 %r2, 4\nmov %r0, 2\nexit"), 2, PointerArithmetic),
        case!("pkt_ptr_plus_unbounded", Xdp, &[], p("mov %r6, %r2\ncall 7\nadd %r6, %r0\nmov %r0, 2\nexit"), 4, PointerArithmetic),
        case!("pkt_len_is_scalar", Xdp, &[], p("sub %r3, %r2\nmov %r0, %r3\nexit"), accept),
        // State pruning must not hide a different offset on another path.
        case!("prune_keeps_offsets_apart", Xdp, &[], "mov %r6, %r1\ncall 7\nldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\nmov %r5, 100\njne %r0, 0, +1\nmov %r5, 0\nmov %r4, %r2\nadd %r4, 8\njgt %r4, %r3, +3\nadd %r2, %r5\nldxb %r0, [%r2+0]\nexit\nmov %r0, 0\nexit", 11, PacketBounds),
        case!("prune_same_offset_ok", Xdp, &[], "mov %r6, %r1\ncall 7\nldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\nmov %r5, 4\njne %r0, 0, +1\nmov %r5, 0\nmov %r4, %r2\nadd %r4, 8\njgt %r4, %r3, +3\nadd %r2, %r5\nldxb %r0, [%r2+0]\nexit\nmov %r0, 0\nexit", accept),
        case!("prune_keeps_linked_bounds", Xdp, &[HASH_8_8], "stdw [%r10-8], 0\nmov %r2, %r10\nadd %r2, -8\nlddw %r1, map_fd 0\ncall 1\njeq %r0, 0, out\nldxdw %r6, [%r0+0]\nmov %r7, %r6\ncall 7\njne %r0, 0, unlink\nja join\nunlink: mov %r7, 0\njoin: jgt %r7, 7, out\nmov %r0, %r10\nadd %r0, -8\nadd %r0, %r6\nldxb %r0, [%r0+0]\nexit\nout: mov %r0, 0\nexit", 16, PointerArithmetic),
        // --- maps ---
        case!("map_value_null_deref", Xdp, &[HASH_8_8], l("ldxw %r0, [%r0+0]\nexit"), 6, NullDeref),
        case!("map_value_checked", Xdp, &[HASH_8_8], l("jeq %r0, 0, +2\nldxw %r0, [%r0+0]\nexit\nmov %r0, 0\nexit"), accept),
        case!("map_value_out_of_bounds", Xdp, &[HASH_8_8], l("jeq %r0, 0, +2\nldxdw %r0, [%r0+4]\nexit\nmov %r0, 0\nexit"), 7, MapValueBounds),
        case!("map_value_unbounded_index", Xdp, &[HASH_8_8], l("jeq %r0, 0, +4\nldxw %r1, [%r0+0]\nadd %r0, %r1\nldxb %r0, [%r0+0]\nexit\nmov %r0, 0\nexit"), 9, UnboundedAccess),
        case!("map_value_masked_index", Xdp, &[HASH_8_8], l("jeq %r0, 0, +5\nldxw %r1, [%r0+0]\nand %r1, 7\nadd %r0, %r1\nldxb %r0, [%r0+0]\nexit\nmov %r0, 0\nexit"), accept),
        case!("map_value_mask_too_wide", Xdp, &[HASH_8_8], l("jeq %r0, 0, +5\nldxw %r1, [%r0+0]\nand %r1, 15\nadd %r0, %r1\nldxb %r0, [%r0+0]\nexit\nmov %r0, 0\nexit"), 10, MapValueBounds),
        case!("map_value_negative_index", Xdp, &[HASH_8_8], l("jeq %r0, 0, +5\nldxw %r1, [%r0+0]\nadd %r1, -4\nadd %r0, %r1\nldxb %r0, [%r0+0]\nexit\nmov %r0, 0\nexit"), 10, UnboundedAccess),
        case!("map_value_arith_before_null_check", Xdp, &[HASH_8_8], l("add %r0, 4\nmov %r0, 0\nexit"), 6, PointerArithmetic),
        case!("map_pointer_leak_into_value", Xdp, &[HASH_8_8], l("jeq %r0, 0, +1\nstxdw [%r0+0], %r10\nmov %r0, 0\nexit"), accept),
        case!("map_readonly_write", Xdp, &[ARRAY_RO], "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd 0\ncall 1\njeq %r0, 0, +1\nstw [%r0+0], 1\nmov %r0, 0\nexit", 7, ReadOnly),
        case!("map_update_value_too_small", Xdp, &[ARRAY_4_16], "stw [%r10-4], 0\nstdw [%r10-16], 0\nmov %r2, %r10\nadd %r2, -4\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 0\nlddw %r1, map_fd 0\ncall 2\nmov %r0, 0\nexit", 9, StackBounds),
        case!("map_lookup_key_is_scalar", Xdp, &[HASH_8_8], "mov %r2, 0\nlddw %r1, map_fd 0\ncall 1\nmov %r0, 0\nexit", 3, HelperArgType),
        case!("map_lookup_ctx_as_map", Xdp, &[HASH_8_8], "stdw [%r10-8], 0\nmov %r2, %r10\nadd %r2, -8\ncall 1\nmov %r0, 0\nexit", 3, HelperArgType),
        case!("tail_call_with_hash_map", Xdp, &[HASH_8_8], "lddw %r2, map_fd 0\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit", 3, MapIncompatible),
        case!("redirect_map_with_hash_map", Xdp, &[HASH_8_8], "lddw %r1, map_fd 0\nmov %r2, 0\nmov %r3, 0\ncall 51\nexit", 4, MapIncompatible),
        case!("ringbuf_record_leaked", Xdp, &[RINGBUF], "lddw %r1, map_fd 0\nmov %r2, 8\nmov %r3, 0\ncall 131\nmov %r0, 0\nexit", 6, ReferenceLeak),
        case!("ringbuf_record_submitted", Xdp, &[RINGBUF], "lddw %r1, map_fd 0\nmov %r2, 8\nmov %r3, 0\ncall 131\njeq %r0, 0, +4\nstdw [%r0+0], 1\nmov %r1, %r0\nmov %r2, 0\ncall 132\nmov %r0, 0\nexit", accept),
        case!("ringbuf_record_overflow", Xdp, &[RINGBUF], "lddw %r1, map_fd 0\nmov %r2, 8\nmov %r3, 0\ncall 131\njeq %r0, 0, +4\nstdw [%r0+4], 1\nmov %r1, %r0\nmov %r2, 0\ncall 132\nmov %r0, 0\nexit", 6, MemBounds),
        // --- stack ---
        case!("stack_read_below_frame", Xdp, &[], "ldxdw %r0, [%r10-520]\nexit", 0, StackBounds),
        case!("stack_write_above_frame", Xdp, &[], "stdw [%r10+0], 0\nmov %r0, 0\nexit", 0, StackBounds),
        case!("stack_misaligned", Xdp, &[], "stw [%r10-6], 0\nmov %r0, 0\nexit", 0, StackBounds),
        case!("stack_uninit_read_as_root", Xdp, &[], "ldxdw %r0, [%r10-8]\nexit", accept),
        case!("stack_partial_pointer_spill", Xdp, &[], "stxw [%r10-8], %r1\nmov %r0, 0\nexit", 0, InvalidMemAccess),
        case!("stack_partial_pointer_fill", Xdp, &[], "stxdw [%r10-8], %r1\nldxw %r0, [%r10-8]\nexit", 1, InvalidMemAccess),
        case!("stack_spill_fill_ctx", Xdp, &[], "stxdw [%r10-8], %r1\nldxdw %r6, [%r10-8]\nldxw %r0, [%r6+16]\nexit", accept),
        case!("stack_helper_reads_past_top", Xdp, &[HASH_8_8], "mov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd 0\ncall 1\nmov %r0, 0\nexit", 4, StackBounds),
        // --- registers, ALU, control flow ---
        case!("uninit_register_read", Xdp, &[], "mov %r0, %r5\nexit", 0, UninitRegister),
        case!("exit_without_r0", Xdp, &[], "exit", 0, UninitRegister),
        case!("r1_clobbered_by_call", Xdp, &[], "call 7\nldxw %r0, [%r1+0]\nexit", 1, UninitRegister),
        case!("scalar_dereference", Xdp, &[], "mov %r1, 0\nldxw %r0, [%r1+0]\nexit", 1, InvalidMemAccess),
        case!("div_by_zero_constant", Xdp, &[], "mov %r0, 1\ndiv %r0, 0\nexit", 1, InvalidAluOperand),
        case!("div_by_zero_register_is_defined", Xdp, &[], "mov %r0, 1\nmov %r1, 0\ndiv %r0, %r1\nexit", accept),
        case!("shift_too_wide", Xdp, &[], "mov %r0, 1\nlsh %r0, 64\nexit", 1, InvalidAluOperand),
        case!("frame_pointer_write", Xdp, &[], "mov %r10, 0\nmov %r0, 0\nexit", 0, FramePointerWrite),
        case!("jump_out_of_range", Xdp, &[], "mov %r0, 0\nja +5\nexit", 1, JumpOutOfRange),
        case!("unreachable_code", Xdp, &[], "mov %r0, 0\nexit\nmov %r0, 1\nexit", 2, Unreachable),
        case!("falls_off_end", Xdp, &[], "mov %r0, 0", 0, FallsOffEnd),
        case!("infinite_loop", Xdp, &[], "mov %r0, 0\nja -1", 1, InfiniteLoop),
        case!("unbounded_loop_unknown_counter", Xdp, &[], "call 7\njeq %r0, 0, +2\nadd %r0, -1\nja -3\nexit", 1, InfiniteLoop),
        case!("bounded_loop", Xdp, &[], "mov %r0, 0\nmov %r1, 0\nadd %r1, 1\nadd %r0, 2\njlt %r1, 10, -3\nexit", accept),
        case!("dead_branch_pruned", Xdp, &[], "mov %r0, 0\njeq %r0, 0, +1\nldxdw %r0, [%r0+0]\nexit", accept),
        // --- helpers ---
        case!("helper_unknown_id", Xdp, &[], "call 10000\nexit", 0, UnknownHelper),
        case!("helper_not_for_xdp", Xdp, &[], "mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 8\ncall 26\nexit", 4, UnknownHelper),
        case!("helper_csum_diff_unbounded_size", Xdp, &[], "stdw [%r10-8], 0\ncall 7\nmov %r2, %r0\nmov %r1, %r10\nadd %r1, -8\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 28\nexit", 8, HelperArgSize),
        case!("helper_adjust_head_invalidates_pkt", Xdp, &[], "mov %r6, %r1\nldxw %r7, [%r6+0]\nldxw %r8, [%r6+4]\nmov %r4, %r7\nadd %r4, 1\njgt %r4, %r8, +5\nmov %r1, %r6\nmov %r2, 0\ncall 44\nldxb %r0, [%r7+0]\nexit\nmov %r0, 0\nexit", 9, InvalidMemAccess),
        case!("bpf_loop_callback_bad_return", Xdp, &[], "mov %r1, 4\nlddw %r2, func cb\nmov %r3, 0\nmov %r4, 0\ncall 181\nmov %r0, 2\nexit\ncb: mov %r0, 5\nexit", 9, ReturnValue),
        case!("bpf_loop_callback_ok", Xdp, &[], "mov %r1, 4\nlddw %r2, func cb\nmov %r3, 0\nmov %r4, 0\ncall 181\nmov %r0, 2\nexit\ncb: mov %r0, 0\nexit", accept),
        // --- context ---
        case!("xdp_ctx_bad_offset", Xdp, &[], "ldxw %r0, [%r1+24]\nexit", 0, CtxAccess),
        case!("xdp_ctx_write", Xdp, &[], "stw [%r1+12], 0\nmov %r0, 0\nexit", 0, CtxAccess),
        case!("xdp_ctx_narrow_read", Xdp, &[], "ldxb %r0, [%r1+0]\nexit", 0, CtxAccess),
        case!("xdp_ctx_modified_deref", Xdp, &[], "add %r1, 4\nldxw %r0, [%r1+0]\nexit", 1, CtxModified),
        case!("xdp_ld_abs", Xdp, &[], "mov %r6, %r1\nldabsb 12\nexit", 1, LdAbs),
        case!("xdp_return_pointer", Xdp, &[], "mov %r0, %r10\nexit", accept),
        case!("xdp_return_large_value", Xdp, &[], "mov %r0, 77\nexit", accept),
        case!("socket_len_read", SocketFilter, &[], "ldxw %r0, [%r1+0]\nexit", accept),
        case!("socket_write_mark", SocketFilter, &[], "stw [%r1+8], 0\nmov %r0, 0\nexit", 0, CtxAccess),
        case!("socket_read_data", SocketFilter, &[], "ldxw %r2, [%r1+76]\nmov %r0, 0\nexit", 0, CtxAccess),
        case!("socket_write_cb", SocketFilter, &[], "stw [%r1+48], 1\nmov %r0, 0\nexit", accept),
        case!("socket_ld_abs", SocketFilter, &[], "mov %r6, %r1\nldabsb 12\nexit", accept),
        case!("socket_ld_abs_without_ctx", SocketFilter, &[], "mov %r6, 0\nldabsb 12\nexit", 1, LdAbs),
        case!("socket_xdp_helper", SocketFilter, &[], "mov %r2, 0\ncall 44\nexit", 1, UnknownHelper),
        // --- calls ---
        case!("combined_stack_too_large", Xdp, &[], "stdw [%r10-512], 0\ncall local f\nmov %r0, 0\nexit\nf: stdw [%r10-8], 0\nmov %r0, 0\nexit", 1, StackDepth),
        case!("subprogram_call", Xdp, &[], "stdw [%r10-256], 0\ncall local f\nexit\nf: stdw [%r10-8], 0\nmov %r0, 2\nexit", accept),
        case!("call_stack_too_deep", Xdp, &[], "call local f1\nexit\nf1: call local f2\nexit\nf2: call local f3\nexit\nf3: call local f4\nexit\nf4: call local f5\nexit\nf5: call local f6\nexit\nf6: call local f7\nexit\nf7: call local f8\nexit\nf8: mov %r0, 0\nexit", 14, CallDepth),
        case!("return_stack_pointer", Xdp, &[], "call local f\nmov %r0, 0\nexit\nf: mov %r0, %r10\nexit", 4, ReturnValue),
    ]
}

fn map_create(m: &Map) -> Result<OwnedFd, String> {
    let mut attr = [0u8; 128];
    for (i, v) in [m.map_type, m.key, m.value, m.max, m.flags].iter().enumerate() {
        attr[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    // SAFETY: BPF_MAP_CREATE reads `attr` (no pointers inside) and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_mut_ptr(), attr.len() as u32) };
    if fd < 0 {
        return Err(format!("BPF_MAP_CREATE failed: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[test]
fn unsafe_suite_matches_expectations_and_kernel() {
    let kernel = uxdp_kernel::availability();
    if let Err(why) = &kernel {
        println!("kernel comparison skipped: {why}");
    }
    let all = cases();
    let kernel_ids = kernel_func_ids(KFUNCS);
    let (mut rejected, mut kernel_agree, mut kernel_checked) = (0, 0, 0);
    let mut failures = Vec::new();
    for c in &all {
        let insns = uxdp_asm::assemble(c.asm).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let maps: Vec<MapInfo> = c
            .maps
            .iter()
            .enumerate()
            .map(|(i, m)| MapInfo {
                name: format!("m{i}"),
                map_type: m.map_type,
                key_size: m.key,
                value_size: m.value,
                max_entries: m.max,
                flags: m.flags,
            })
            .collect();
        let kfuncs = kfunc_calls(&insns);
        let input = VerifyInput::new(&insns, c.prog, &maps).kfuncs(&kfuncs).attach(c.attach);
        let ours = verify(&input);
        match (&ours, c.expect) {
            (Ok(_), None) => {}
            (Err(r), Some((pc, rule))) => {
                rejected += 1;
                let text = r.to_string();
                if r.pc != pc || r.rule != rule || !text.starts_with(&format!("{pc}: ")) || !text.contains(rule.name())
                {
                    failures.push(format!("{}: expected {pc}/{rule}, got {text}", c.name));
                }
            }
            (Ok(_), Some((pc, rule))) => failures.push(format!("{}: expected rejection {pc}/{rule}, accepted", c.name)),
            (Err(r), None) => failures.push(format!("{}: expected acceptance, got {r}", c.name)),
        }
        if kernel.is_ok() {
            let fds: Vec<OwnedFd> = c.maps.iter().map(|m| map_create(m).expect("map create")).collect();
            let kinsns: Vec<Insn> = insns
                .iter()
                .map(|i| {
                    let mut i = *i;
                    if i.code == opcode::LDDW && i.src() == 1 {
                        i.imm = fds[i.imm as usize].as_raw_fd();
                    }
                    if i.code == opcode::CALL && i.src() == 2 {
                        i.imm = kernel_ids.as_ref().ok().and_then(|ids| ids.get(i.imm as usize)).copied().unwrap_or(0)
                            as i32;
                    }
                    i
                })
                .collect();
            let pt = match c.prog {
                ProgType::Xdp => uxdp_kernel::ProgType::XDP,
                ProgType::SocketFilter => uxdp_kernel::ProgType::SOCKET_FILTER,
            };
            let starts = function_starts(&kinsns);
            let btf = if starts.len() > 1 {
                Some(uxdp_kernel::load_btf(&btf_for_functions(starts.len())).expect("BTF load"))
            } else {
                None
            };
            let fi: Vec<uxdp_kernel::FuncInfo> = starts
                .iter()
                .enumerate()
                .map(|(i, &s)| uxdp_kernel::FuncInfo { insn_off: s, type_id: 3 + i as u32 })
                .collect();
            if !kfuncs.is_empty() && kinsns.iter().any(|i| i.code == opcode::CALL && i.src() == 2 && i.imm == 0) {
                println!(
                    "{}: kernel comparison skipped: a kfunc is missing from the kernel's BTF ({kernel_ids:?})",
                    c.name
                );
                continue;
            }
            let mut opts = uxdp_kernel::LoadOptions::new(pt);
            opts.log_level = uxdp_kernel::raw::log_level::NONE;
            opts.expected_attach_type = match c.attach {
                AttachType::Default => 0,
                AttachType::Devmap => 33,
                AttachType::Cpumap => 35,
            };
            if let Some(fd) = &btf {
                opts.btf_fd = Some(std::os::fd::AsFd::as_fd(fd));
                opts.func_info = &fi;
            }
            let k = uxdp_kernel::load_raw_with(&kinsns, &opts);
            kernel_checked += 1;
            let k_ok = k.is_ok();
            if k_ok == ours.is_ok() {
                kernel_agree += 1;
            } else {
                let log = k.err().map(|f| f.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(6).collect();
                failures.push(format!(
                    "{}: kernel {} but uxdp {}; kernel log tail: {:?}",
                    c.name,
                    if k_ok { "accepts" } else { "rejects" },
                    match &ours {
                        Ok(_) => "accepts".to_string(),
                        Err(r) => format!("rejects ({r})"),
                    },
                    tail
                ));
            }
        }
    }
    println!(
        "unsafe suite: {} cases ({rejected} rejected as expected), kernel verdict agreement {kernel_agree}/{kernel_checked}",
        all.len()
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{} failures", failures.len());
    assert!(rejected >= 40, "fewer than 40 unsafe programs");
}
