//! Classic filters as programs the real kernel loads: an XDP program
//! ([`to_xdp`], match → a chosen action) and a plain eBPF socket filter
//! ([`to_socket_filter`], `BPF_PROG_TYPE_SOCKET_FILTER`).
//!
//! Both share the register mapping of [`crate::convert`](mod@crate::convert) (A = r0,
//! X = r7, `M[k]` at `r10 - 4k - 4`, 32-bit ALU and `JMP32` comparisons);
//! they differ in how packet bytes are read.
//!
//! # XDP form ([`to_xdp`])
//!
//! The program takes `struct xdp_md *` in r1 and reads `data` (offset 0)
//! and `data_end` (offset 4) with 32-bit loads into r6 and r9; r8 keeps
//! the context. Every packet load is direct packet access behind an
//! explicit bounds check, in the shape the kernel's verifier accepts:
//!
//! ```text
//! ld{,h,b} [k]:    r2 = r6; r2 += k + n; if r2 > r9 goto nomatch;
//!                  r0 = *(u{8,16,32} *)(r2 - n); be{16,32} r0
//! ld{,h,b} [x+k]:  w2 = w7; w2 += k; if w2 s>= 0 goto +1; w2 += 0x200000;
//!                  if r2 > 0xffff - n goto nomatch; r3 = r6; r3 += r2;
//!                  r3 += n; if r3 > r9 goto nomatch; r0 = *(r3 - n); be r0
//! ldxb 4*([k]&0xf): like ld [k] into r7, then w7 &= 0xf; w7 <<= 2
//! ld len:          r0 = r9; r0 -= r6   (data_end - data)
//! ```
//!
//! The bounds check of a constant-offset load is left out when every path
//! to it has already proven `data + off + size <= data_end` (the verifier
//! keeps ranges proven on r6 the same way); the sign test and the
//! `0xffff - n` limit of an indirect load are left out when the bounds of
//! X on every path (exact after `ldx #k` and `ldxb msh`) make them
//! redundant, as the verifier also sees; unreachable classic
//! instructions are left out (the kernel refuses unreachable code).
//!
//! An out-of-bounds load returns `on_nomatch`, as the classic filter
//! returns 0; `ret` returns `on_match` when the classic value is non-zero
//! and `on_nomatch` when it is 0, as does `div x`/`mod x` with X = 0.
//!
//! The link-layer header of an XDP frame is at `data`, so `SKF_LL_OFF + n`
//! loads read byte `n` (constant and computed offsets). XDP buffers are at
//! most 64 KiB: loads reaching past byte 65535 never match (the verifier
//! only proves packet ranges up to `MAX_PACKET_OFF`), which is exact for
//! every packet of at most 65535 bytes. Differences from the socket-filter
//! conversion, by name: `SKF_NET_OFF` loads with a constant offset are
//! refused (XDP has no network-header offset), and computed offsets that
//! land in the `SKF_NET_OFF` range do not match.
//!
//! Ancillary loads with an XDP meaning: `SKF_AD_IFINDEX`
//! (`xdp_md.ingress_ifindex`), `SKF_AD_QUEUE` (`xdp_md.rx_queue_index`),
//! `SKF_AD_CPU` (`bpf_get_smp_processor_id`), `SKF_AD_RANDOM`
//! (`bpf_get_prandom_u32`) and `SKF_AD_ALU_XOR_X`; every other one is
//! refused by name ([`CbpfError::NotInTarget`]).
//!
//! Loading an XDP program needs `CAP_BPF` and `CAP_NET_ADMIN`; `ld len`
//! subtracts two packet pointers, which the verifier allows with
//! `CAP_PERFMON` (root has all three).
//!
//! # Kernel socket-filter form ([`to_socket_filter`])
//!
//! For `BPF_PROG_TYPE_SOCKET_FILTER` with `struct __sk_buff *` in r1
//! (kept in r6): packet loads are the legacy `ldabs`/`ldind`
//! instructions, which the kernel implements with the same helpers as its
//! own classic conversion (`bpf_skb_load_helper_*`, all offsets including
//! `SKF_NET_OFF`/`SKF_LL_OFF`); `ld len` reads `__sk_buff.len`. Ancillary
//! loads: `SKF_AD_PROTOCOL`, `SKF_AD_PKTTYPE`, `SKF_AD_MARK`,
//! `SKF_AD_QUEUE`, `SKF_AD_CPU`, `SKF_AD_RANDOM`, `SKF_AD_ALU_XOR_X`;
//! others are refused by name. User-loaded socket filters may not read
//! packets directly, so every load is a helper call in the kernel (its
//! own `SO_ATTACH_FILTER` path inlines a fast path instead).

use crate::check::check;
use crate::convert::{HELPER_CPU, HELPER_PRANDOM};
use crate::insn::{op, skf, SockFilter};
use crate::lower::{
    alu32, alu64, be, call, exit, jmp, ldx, load_scratch, lower_alu, lower_jump, lower_misc, mov32, mov64,
    store_scratch, Lowered, RA, RX,
};
use crate::runtime::helpers;
use crate::CbpfError;
use uxdp_isa::{AluOp, Cond, Insn, Instruction, Operand, PacketMode, Reg, Size, Width};
use uxdp_vm::{LoadOptions, Machine, Program, Region, Stack};

const DATA: Reg = Reg(6);
const CTX_SAVE: Reg = Reg(8);
const DATA_END: Reg = Reg(9);
const T2: Reg = Reg(2);
const T3: Reg = Reg(3);
/// The largest packet offset the verifier tracks (`MAX_PACKET_OFF`).
const MAX_PACKET_OFF: u32 = 0xffff;
/// `xdp_md.ingress_ifindex`.
const XDP_MD_INGRESS_IFINDEX: i16 = 12;
/// `xdp_md.rx_queue_index`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

/// Where a jump goes.
#[derive(Clone, Copy)]
enum Label {
    /// The first eBPF instruction of a classic instruction.
    Classic(usize),
    /// The shared "no match" exit at the end.
    NoMatch,
}

#[derive(Clone, Copy)]
enum Emit {
    I(Instruction),
    Ja(Label),
    Jcc { width: Width, cond: Cond, dst: Reg, src: Operand, target: Label },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Xdp { on_match: u32, on_nomatch: u32 },
    Socket,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Xdp { .. } => "XDP",
            Target::Socket => "kernel socket filter",
        }
    }
    fn nomatch(self) -> u32 {
        match self {
            Target::Xdp { on_nomatch, .. } => on_nomatch,
            Target::Socket => 0,
        }
    }
}

impl From<Instruction> for Emit {
    fn from(ins: Instruction) -> Emit {
        Emit::I(ins)
    }
}

impl Lowered for Emit {
    fn ja(target: usize) -> Emit {
        Emit::Ja(Label::Classic(target))
    }
    fn jcc(cond: Cond, src: Operand, target: usize) -> Emit {
        Emit::Jcc { width: Width::W32, cond, dst: RA, src, target: Label::Classic(target) }
    }
}

fn to_nomatch(width: Width, cond: Cond, dst: Reg, src: Operand) -> Emit {
    Emit::Jcc { width, cond, dst, src, target: Label::NoMatch }
}

fn size_of_code(code: u16) -> (Size, u32) {
    match code & 0x18 {
        op::W => (Size::W, 4),
        op::H => (Size::H, 2),
        _ => (Size::B, 1),
    }
}

/// `dst = be(load n bytes at r2 - n)`.
fn load_and_swap(out: &mut Vec<Emit>, base: Reg, size: Size, n: u32, dst: Reg) {
    out.push(ldx(size, dst, base, -(n as i16)));
    if n > 1 {
        out.push(be((n * 8) as u8, dst));
    }
}

/// XDP: `dst = load(n bytes at the packet offset held in r2)`, r2 a
/// zero-extended scalar; offsets past `MAX_PACKET_OFF - n` do not match.
fn xdp_load_var(out: &mut Vec<Emit>, size: Size, n: u32, dst: Reg, bounded: bool) {
    if !bounded {
        out.push(to_nomatch(Width::W64, Cond::Gt, T2, Operand::Imm((MAX_PACKET_OFF - n) as i32)));
    }
    out.push(mov64(T3, DATA));
    out.push(alu64(AluOp::Add, T3, Operand::Reg(T2)));
    out.push(alu64(AluOp::Add, T3, Operand::Imm(n as i32)));
    out.push(to_nomatch(Width::W64, Cond::Gt, T3, Operand::Reg(DATA_END)));
    load_and_swap(out, T3, size, n, dst);
}

/// XDP: the packet offset a constant classic offset `k` reads, `None`
/// when it never is in bounds (below `SKF_LL_OFF`), an error for
/// `SKF_NET_OFF` loads.
fn xdp_abs_offset(pc: usize, k: u32) -> Result<Option<u32>, CbpfError> {
    let sk = k as i32;
    if sk >= 0 {
        Ok(Some(k))
    } else if sk >= skf::NET_OFF {
        Err(CbpfError::NotInTarget {
            pc,
            what: format!("load at SKF_NET_OFF{:+}", sk - skf::NET_OFF),
            target: "XDP",
            why: "XDP has no network-header offset",
        })
    } else if sk >= skf::LL_OFF {
        Ok(Some((sk - skf::LL_OFF) as u32))
    } else {
        Ok(None) // fails in the kernel too
    }
}

/// XDP: `dst = load(n bytes at constant classic offset k)`, where every
/// path here has already proven `data + known <= data_end`.
fn xdp_load_abs(
    pc: usize,
    out: &mut Vec<Emit>,
    size: Size,
    n: u32,
    k: u32,
    dst: Reg,
    known: u32,
) -> Result<(), CbpfError> {
    match xdp_abs_offset(pc, k)? {
        // Already in bounds on every path: no check (the verifier keeps
        // the range proven on r6 through every earlier check).
        Some(o) if o + n <= known && o <= i16::MAX as u32 => {
            out.push(ldx(size, dst, DATA, o as i16));
            if n > 1 {
                out.push(be((n * 8) as u8, dst));
            }
        }
        Some(o) if o <= MAX_PACKET_OFF - n => {
            out.push(mov64(T2, DATA));
            out.push(alu64(AluOp::Add, T2, Operand::Imm((o + n) as i32)));
            out.push(to_nomatch(Width::W64, Cond::Gt, T2, Operand::Reg(DATA_END)));
            load_and_swap(out, T2, size, n, dst);
        }
        // Never in bounds of an XDP buffer: the variable-offset form with
        // a constant the verifier sees through (it follows only the
        // "no match" branch), so that the code after stays reachable.
        _ => {
            out.push(mov32(T2, u32::MAX));
            xdp_load_var(out, size, n, dst, false);
        }
    }
    Ok(())
}

/// What the XDP form knows on entry to a classic instruction, on every
/// path to it (the verifier knows at least as much on each path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Facts {
    /// `data + range <= data_end` has been proven.
    range: u32,
    /// Bounds of X (`min`, `max`).
    x: (u32, u32),
}

/// XDP: [`Facts`] on entry to each classic instruction, `None` for
/// unreachable instructions. Classic jumps only go forward, so one pass in
/// order suffices.
fn xdp_facts(prog: &[SockFilter]) -> Vec<Option<Facts>> {
    use op::*;
    let mut known: Vec<Option<Facts>> = vec![None; prog.len() + 1];
    known[0] = Some(Facts::default());
    for (pc, f) in prog.iter().enumerate() {
        let Some(facts_in) = known[pc] else { continue };
        let code = f.code;
        let proven = |size_code: u16| -> Option<u32> {
            let n = size_of_code(size_code).1;
            match xdp_abs_offset(pc, f.k) {
                Ok(Some(o)) if o <= MAX_PACKET_OFF - n => Some(o + n),
                _ => None,
            }
        };
        let range = match code & 0x07 {
            LD if code & 0xe0 == ABS && skf::ancillary(f.k).is_none() => proven(code),
            LDX if code & 0xe0 == MSH => proven(B),
            _ => None,
        }
        .map_or(facts_in.range, |r| r.max(facts_in.range));
        // X: exact after `ldx #k` and `ldxb msh` (a multiple of 4 up to 60);
        // anything else that writes X makes it unknown.
        let x = match code {
            _ if code == LDX | IMM => (f.k, f.k),
            _ if code == LDX | B | MSH => (0, 60),
            _ if code & 0x07 == LDX || code == MISC | TAX => (0, u32::MAX),
            _ => facts_in.x,
        };
        let out = Facts { range, x };
        let mut flow = |to: usize| {
            if let Some(slot) = known.get_mut(to) {
                *slot = Some(slot.map_or(out, |r| Facts {
                    range: r.range.min(out.range),
                    x: (r.x.0.min(out.x.0), r.x.1.max(out.x.1)),
                }));
            }
        };
        match code & 0x07 {
            RET => {}
            JMP if code == JMP | JA => flow(pc + 1 + f.k as usize),
            JMP => {
                flow(pc + 1 + f.jt as usize);
                flow(pc + 1 + f.jf as usize);
            }
            _ => flow(pc + 1),
        }
    }
    known.truncate(prog.len());
    known
}

fn not_in_target(pc: usize, n: i32, target: Target) -> CbpfError {
    CbpfError::NotInTarget {
        pc,
        what: format!("ancillary load {}", skf::name(n).unwrap_or("SKF_AD_?")),
        target: target.name(),
        why: "it has no meaning there",
    }
}

fn expand(pc: usize, f: &SockFilter, t: Target, known: Facts, out: &mut Vec<Emit>) -> Result<(), CbpfError> {
    use op::*;
    let code = f.code;
    let k = f.k;
    let class = code & 0x07;
    match class {
        ALU => lower_alu(f, out, |out| out.push(to_nomatch(Width::W32, Cond::Eq, RX, Operand::Imm(0)))),
        LD | LDX => {
            let dst = if class == LD { RA } else { RX };
            match code & 0xe0 {
                ABS if class == LD => {
                    if let Some(n) = skf::ancillary(k) {
                        return expand_ancillary(pc, n, t, out);
                    }
                    let (size, n) = size_of_code(code);
                    match t {
                        Target::Xdp { .. } => xdp_load_abs(pc, out, size, n, k, RA, known.range)?,
                        Target::Socket => out.push(
                            Instruction::LoadPacket { mode: PacketMode::Abs, size, src: Reg(0), imm: k as i32 }.into(),
                        ),
                    }
                }
                IND => {
                    let (size, n) = size_of_code(code);
                    match t {
                        Target::Xdp { .. } => {
                            out.push(alu32(AluOp::Mov, T2, Operand::Reg(RX)));
                            if k != 0 {
                                out.push(alu32(AluOp::Add, T2, Operand::Imm(k as i32)));
                            }
                            // The largest X + k on every path, when it
                            // cannot wrap: no sign test, and no upper
                            // bound test when it stays within range.
                            let hi = known.x.1 as u64 + k as u64;
                            if hi > i32::MAX as u64 {
                                // Negative: rebase SKF_LL_OFF + n to n; the
                                // SKF_NET_OFF range lands past MAX_PACKET_OFF.
                                out.push(jmp(Width::W32, Cond::Sge, T2, Operand::Imm(0), 1));
                                out.push(alu32(AluOp::Add, T2, Operand::Imm(-skf::LL_OFF)));
                            }
                            let bounded = hi <= (MAX_PACKET_OFF - n) as u64;
                            xdp_load_var(out, size, n, RA, bounded);
                        }
                        Target::Socket => {
                            out.push(Instruction::LoadPacket { mode: PacketMode::Ind, size, src: RX, imm: k as i32 }.into())
                        }
                    }
                }
                MSH => match t {
                    Target::Xdp { .. } => {
                        xdp_load_abs(pc, out, Size::B, 1, k, RX, known.range)?;
                        out.push(alu32(AluOp::And, RX, Operand::Imm(0xf)));
                        out.push(alu32(AluOp::Lsh, RX, Operand::Imm(2)));
                    }
                    Target::Socket => {
                        out.push(mov64(CTX_SAVE, RA));
                        out.push(Instruction::LoadPacket { mode: PacketMode::Abs, size: Size::B, src: Reg(0), imm: k as i32 }.into());
                        out.push(alu32(AluOp::And, RA, Operand::Imm(0xf)));
                        out.push(alu32(AluOp::Lsh, RA, Operand::Imm(2)));
                        out.push(mov64(RX, RA));
                        out.push(mov64(RA, CTX_SAVE));
                    }
                },
                MEM => out.push(load_scratch(dst, k)),
                LEN => match t {
                    Target::Xdp { .. } => {
                        out.push(mov64(dst, DATA_END));
                        out.push(alu64(AluOp::Sub, dst, Operand::Reg(DATA)));
                    }
                    // __sk_buff.len
                    Target::Socket => out.push(ldx(Size::W, dst, DATA, 0)),
                },
                _ /* IMM */ => out.push(mov32(dst, k)),
            }
        }
        ST | STX => out.push(store_scratch(class, k)),
        JMP => lower_jump(pc, f, out),
        RET => match t {
            Target::Xdp { on_match, .. } => {
                if code == RET | K {
                    if k == 0 {
                        out.push(Emit::Ja(Label::NoMatch));
                        return Ok(());
                    }
                } else {
                    out.push(to_nomatch(Width::W32, Cond::Eq, RA, Operand::Imm(0)));
                }
                out.push(mov32(RA, on_match));
                out.push(exit());
            }
            Target::Socket => {
                if code == RET | K {
                    out.push(mov32(RA, k));
                }
                out.push(exit());
            }
        },
        _ /* MISC */ => lower_misc(code, out),
    }
    Ok(())
}

fn expand_ancillary(pc: usize, n: i32, t: Target, out: &mut Vec<Emit>) -> Result<(), CbpfError> {
    match (n, t) {
        (skf::AD_ALU_XOR_X, _) => out.push(alu32(AluOp::Xor, RA, Operand::Reg(RX))),
        (skf::AD_CPU, _) => out.push(call(HELPER_CPU)),
        (skf::AD_RANDOM, _) => out.push(call(HELPER_PRANDOM)),
        (skf::AD_IFINDEX, Target::Xdp { .. }) => out.push(ldx(Size::W, RA, CTX_SAVE, XDP_MD_INGRESS_IFINDEX)),
        (skf::AD_QUEUE, Target::Xdp { .. }) => out.push(ldx(Size::W, RA, CTX_SAVE, XDP_MD_RX_QUEUE_INDEX)),
        // __sk_buff: pkt_type 4, mark 8, queue_mapping 12, protocol 16 (be16).
        (skf::AD_PKTTYPE, Target::Socket) => out.push(ldx(Size::W, RA, DATA, 4)),
        (skf::AD_MARK, Target::Socket) => out.push(ldx(Size::W, RA, DATA, 8)),
        (skf::AD_QUEUE, Target::Socket) => out.push(ldx(Size::W, RA, DATA, 12)),
        (skf::AD_PROTOCOL, Target::Socket) => {
            out.push(ldx(Size::W, RA, DATA, 16));
            out.push(be(16, RA));
        }
        _ => return Err(not_in_target(pc, n, t)),
    }
    Ok(())
}

/// Which classic instructions some path reaches.
fn reachable(prog: &[SockFilter]) -> Vec<bool> {
    xdp_facts(prog).into_iter().map(|r| r.is_some()).collect()
}

fn generate(prog: &[SockFilter], t: Target) -> Result<Vec<Insn>, CbpfError> {
    check(prog)?;
    let mut slots: Vec<Emit> = match t {
        Target::Xdp { .. } => vec![
            ldx(Size::W, DATA, Reg(1), 0),
            ldx(Size::W, DATA_END, Reg(1), 4),
            mov64(CTX_SAVE, Reg(1)),
            mov32(RA, 0),
            mov32(RX, 0),
        ],
        Target::Socket => vec![mov64(DATA, Reg(1)), mov32(RA, 0), mov32(RX, 0)],
    };
    // Unreachable classic instructions are left out (the kernel refuses
    // unreachable eBPF instructions); nothing jumps to them.
    let facts = match t {
        Target::Xdp { .. } => xdp_facts(prog),
        Target::Socket => reachable(prog).into_iter().map(|r| r.then(Facts::default)).collect(),
    };
    let mut addrs = Vec::with_capacity(prog.len());
    for (pc, f) in prog.iter().enumerate() {
        addrs.push(slots.len());
        if let Some(known) = facts[pc] {
            expand(pc, f, t, known, &mut slots)?;
        }
    }
    // The shared "no match" exit, only when something jumps there (the
    // kernel refuses unreachable instructions).
    let nomatch_at = slots.len();
    let used = slots.iter().any(|e| matches!(e, Emit::Ja(Label::NoMatch) | Emit::Jcc { target: Label::NoMatch, .. }));
    if used {
        slots.push(mov32(RA, t.nomatch()));
        slots.push(exit());
    }
    let mut out = Vec::with_capacity(slots.len());
    for (at, e) in slots.iter().enumerate() {
        let rel = |target: Label| -> Result<i16, CbpfError> {
            let (dest, classic) = match target {
                Label::Classic(c) => (addrs[c], c),
                Label::NoMatch => (nomatch_at, prog.len()),
            };
            let off = dest as i64 - at as i64 - 1;
            i16::try_from(off).map_err(|_| CbpfError::JumpTooFar { pc: at, target: classic, offset: off })
        };
        let ins = match *e {
            Emit::I(ins) => ins,
            Emit::Ja(target) => Instruction::Ja { off: rel(target)? as i32, long: false },
            Emit::Jcc { width, cond, dst, src, target } => {
                Instruction::Jump { width, cond, dst, src, off: rel(target)? }
            }
        };
        ins.encode_into(&mut out);
    }
    Ok(out)
}

/// Converts a classic filter to an XDP program returning `on_match` when
/// the filter accepts the packet (returns non-zero) and `on_nomatch`
/// otherwise (see the [module documentation](self) for the code shape and
/// the few differences from the socket-filter conversion). The program is
/// checked first ([`check`]); the result loads as `BPF_PROG_TYPE_XDP` in
/// the kernel and on uxdp's interpreter ([`XdpFilter`]).
pub fn to_xdp(prog: &[SockFilter], on_match: u32, on_nomatch: u32) -> Result<Vec<Insn>, CbpfError> {
    generate(prog, Target::Xdp { on_match, on_nomatch })
}

/// Converts a classic filter to an eBPF `BPF_PROG_TYPE_SOCKET_FILTER`
/// program for the kernel (`struct __sk_buff *` context, legacy packet
/// loads); it returns the classic return value.
pub fn to_socket_filter(prog: &[SockFilter]) -> Result<Vec<Insn>, CbpfError> {
    generate(prog, Target::Socket)
}

/// Size of the low-memory packet buffer: the largest packet offset an XDP
/// program can read, plus one page.
const LOW_BUF_SIZE: usize = (MAX_PACKET_OFF as usize + 1) + 4096;

/// A packet buffer mapped below 4 GiB, so that the 32-bit `xdp_md.data`
/// and `data_end` fields hold real addresses (the kernel's verifier
/// rewrites those loads to 64-bit pointer loads; uxdp keeps the packet low
/// instead). Holds packets of up to 65535 bytes.
pub struct XdpPacket {
    ptr: *mut u8,
    len: usize,
    /// `xdp_md.ingress_ifindex` seen by the program.
    pub ingress_ifindex: u32,
    /// `xdp_md.rx_queue_index` seen by the program.
    pub rx_queue_index: u32,
}

// SAFETY: the mapping is plain memory owned by the value.
unsafe impl Send for XdpPacket {}

impl core::fmt::Debug for XdpPacket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XdpPacket").field("addr", &self.ptr).field("len", &self.len).finish()
    }
}

impl XdpPacket {
    /// The largest packet it holds.
    pub const MAX_LEN: usize = MAX_PACKET_OFF as usize;

    /// Maps an empty buffer with `MAP_32BIT`.
    pub fn new() -> Result<XdpPacket, CbpfError> {
        // SAFETY: anonymous private mapping; the result is checked.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                LOW_BUF_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED || (p as u64) + LOW_BUF_SIZE as u64 > u32::MAX as u64 {
            return Err(CbpfError::Xdp(format!(
                "cannot map a packet buffer below 4 GiB: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(XdpPacket { ptr: p as *mut u8, len: 0, ingress_ifindex: 0, rx_queue_index: 0 })
    }

    /// Copies `data` in as the packet (`data_end - data` = its length).
    pub fn set(&mut self, data: &[u8]) -> Result<(), CbpfError> {
        if data.len() > Self::MAX_LEN {
            return Err(CbpfError::Xdp(format!(
                "packet of {} bytes is longer than an XDP buffer's 65535 bytes",
                data.len()
            )));
        }
        // SAFETY: the mapping holds LOW_BUF_SIZE > data.len() bytes.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr, data.len()) };
        self.len = data.len();
        Ok(())
    }

    /// The current packet.
    pub fn data(&self) -> &[u8] {
        // SAFETY: `len` bytes were written by `set`.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for XdpPacket {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, LOW_BUF_SIZE) };
    }
}

/// Compiles an XDP program converted with [`to_xdp`] (`insns`, loaded as
/// `prog`) with uxdp's JIT, after uxdp's verifier: what it proves (packet
/// accesses inside the conversion's own `data_end` checks, termination) is
/// compiled without run-time checks, as the loader does for XDP objects.
/// A program the verifier rejects (never expected for a conversion) is
/// compiled with every check. Returns whether the verifier accepted it, or
/// the JIT's error (the program then stays on the interpreter).
pub fn jit_xdp(prog: &Program, insns: &[Insn]) -> Result<bool, uxdp_jit::JitError> {
    let input = uxdp_verifier::VerifyInput::new(insns, uxdp_verifier::ProgType::Xdp, &[]);
    let facts = uxdp_verifier::verify(&input).ok().filter(|f| f.proven.len() == prog.ops().len());
    let opts = uxdp_jit::JitOptions {
        proven: facts.as_ref().map(|f| &f.proven[..]),
        terminates: facts.is_some(),
        kernel_calls: facts.is_some(),
        ..Default::default()
    };
    uxdp_jit::attach_with(prog, &opts)?;
    Ok(facts.is_some())
}

/// A classic filter converted with [`to_xdp`] and loaded on uxdp's
/// interpreter ([`XdpFilter::jit`] compiles it).
#[derive(Debug)]
pub struct XdpFilter {
    ebpf: Vec<Insn>,
    prog: Program,
}

impl XdpFilter {
    /// Checks, converts ([`to_xdp`]) and loads `prog`.
    pub fn new(prog: &[SockFilter], on_match: u32, on_nomatch: u32) -> Result<XdpFilter, CbpfError> {
        let ebpf = to_xdp(prog, on_match, on_nomatch)?;
        let loaded = Program::load(&ebpf, &LoadOptions::new(helpers()))?;
        Ok(XdpFilter { ebpf, prog: loaded })
    }

    /// The XDP program.
    pub fn ebpf(&self) -> &[Insn] {
        &self.ebpf
    }

    /// The loaded program.
    pub fn program(&self) -> &Program {
        &self.prog
    }

    /// Compiles the program with uxdp's JIT ([`jit_xdp`]); returns whether
    /// the verifier accepted it.
    pub fn jit(&self) -> Result<bool, uxdp_jit::JitError> {
        jit_xdp(&self.prog, &self.ebpf)
    }

    /// Runs the program on the packet in `pkt` with an `xdp_md` context
    /// (`data`, `data_end`, `ingress_ifindex`, `rx_queue_index`) and
    /// returns its return value (the action).
    pub fn run(&self, stack: &mut Stack, pkt: &XdpPacket) -> Result<u32, CbpfError> {
        let data = pkt.ptr as u64;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex.
        let md: [u32; 6] =
            [data as u32, (data + pkt.len as u64) as u32, data as u32, pkt.ingress_ifindex, pkt.rx_queue_index, 0];
        let md_addr = md.as_ptr() as u64;
        let mut env = ();
        let mut m = Machine::new(&self.prog, stack, &mut env);
        m.mem.push(Region { start: md_addr, len: core::mem::size_of_val(&md) as u64, writable: false });
        m.mem.push(Region::of_slice(pkt.data()));
        Ok(m.run(md_addr)? as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::op::*;

    fn bounds_checks(insns: &[Insn]) -> usize {
        insns
            .iter()
            .filter(|i| {
                matches!(
                    Instruction::decode(core::slice::from_ref(i)),
                    Ok(Instruction::Jump { cond: Cond::Gt, src: Operand::Reg(DATA_END), .. })
                )
            })
            .count()
    }

    #[test]
    fn proven_ranges_drop_checks() {
        let s = SockFilter::stmt;
        // [12..14) proves [5], [13]; [20] needs a new check.
        let p = [s(LD | H | ABS, 12), s(LD | B | ABS, 5), s(LD | B | ABS, 13), s(LD | B | ABS, 20), s(RET | A, 0)];
        assert_eq!(bounds_checks(&to_xdp(&p, 2, 1).unwrap()), 2);
        // At a join the smaller range holds.
        let p = [
            s(LD | B | ABS, 0),
            SockFilter::jump(JMP | JEQ | K, 1, 0, 2),
            s(LD | B | ABS, 30),
            SockFilter::jump(JMP | JA, 1, 0, 0),
            s(LD | B | ABS, 10),
            s(LD | B | ABS, 20),
            s(RET | A, 0),
        ];
        let r: Vec<Option<u32>> = xdp_facts(&p).iter().map(|f| f.map(|f| f.range)).collect();
        assert_eq!(r, vec![Some(0), Some(1), Some(1), Some(31), Some(1), Some(11), Some(21)]);
        assert_eq!(bounds_checks(&to_xdp(&p, 2, 1).unwrap()), 4);
        // Unreachable instructions get no range and no code.
        let p = [SockFilter::jump(JMP | JA, 1, 0, 0), s(LD | W | LEN, 0), s(RET | K, 1)];
        assert_eq!(xdp_facts(&p).iter().map(|f| f.map(|f| f.range)).collect::<Vec<_>>(), vec![Some(0), None, Some(0)]);
        assert_eq!(to_xdp(&p, 2, 1).unwrap().len(), 5 + 1 + 2);
    }

    fn count(insns: &[Insn], want: impl Fn(&Instruction) -> bool) -> usize {
        insns.iter().filter(|i| Instruction::decode(core::slice::from_ref(i)).is_ok_and(|d| want(&d))).count()
    }

    #[test]
    fn known_x_drops_index_tests() {
        let s = SockFilter::stmt;
        let sign_tests = |p: &[SockFilter]| {
            count(&to_xdp(p, 2, 1).unwrap(), |d| matches!(d, Instruction::Jump { cond: Cond::Sge, .. }))
        };
        let limit_tests = |p: &[SockFilter]| {
            count(&to_xdp(p, 2, 1).unwrap(), |d| {
                matches!(d, Instruction::Jump { cond: Cond::Gt, src: Operand::Imm(_), dst: T2, .. })
            })
        };
        // After msh, X <= 60: neither test.
        let p = [s(LDX | B | MSH, 14), s(LD | H | IND, 14), s(RET | A, 0)];
        assert_eq!((sign_tests(&p), limit_tests(&p)), (0, 0));
        // X from scratch memory is unknown: both.
        let p = [s(ST, 0), s(LDX | MEM, 0), s(LD | H | IND, 14), s(RET | A, 0)];
        assert_eq!((sign_tests(&p), limit_tests(&p)), (1, 1));
        // A large constant X: no sign test, but the limit test.
        let p = [s(LDX | IMM, 0x10000), s(LD | B | IND, 0), s(RET | A, 0)];
        assert_eq!((sign_tests(&p), limit_tests(&p)), (0, 1));
        // At a join X takes both bounds: tax on one path makes it unknown.
        let p = [
            s(LD | B | ABS, 0),
            SockFilter::jump(JMP | JEQ | K, 1, 0, 2),
            s(LDX | B | MSH, 14),
            SockFilter::jump(JMP | JA, 1, 0, 0),
            s(MISC | TAX, 0),
            s(LD | B | IND, 0),
            s(RET | A, 0),
        ];
        assert_eq!((sign_tests(&p), limit_tests(&p)), (1, 1));
    }
}
