//! Classic BPF to eBPF, after the kernel's `bpf_convert_filter`.
//!
//! # Register mapping (as in the kernel)
//!
//! | classic | eBPF | notes |
//! |---|---|---|
//! | A | r0 | so `ret a` is a bare `exit` |
//! | X | r7 | callee-saved: survives helper calls |
//! | context | r6 | r1 (a [`SkbContext`]) copied at entry |
//! | `M[k]` | `*(u32 *)(r10 - (4k + 4))` | 64 bytes of stack |
//! | temporaries | r2 (within one instruction), r8 (A across a helper call in `ldxb msh`) | |
//!
//! All arithmetic is 32-bit (`ALU` class), so A and X always hold
//! zero-extended 32-bit values; comparisons use the 32-bit `JMP32` class
//! with the constant as is (the kernel uses 64-bit jumps and a temporary for
//! constants with the sign bit set; the result is the same).
//!
//! # Packet loads
//!
//! * `ld{,h,b} [k]` with `k >= 0` is the eBPF legacy load `ldabs{w,h,b} k`
//!   (`BPF_LD | BPF_ABS`): big-endian load into r0 from the packet the run
//!   declares; out of bounds ends the program returning 0 — the kernel's
//!   semantics for a linear packet, in one instruction.
//! * `ld{,h,b} [x + k]` computes `X + k` in 32 bits; when the sum is
//!   non-negative it is the legacy `ldind{w,h,b} r7, k`; when negative it
//!   calls the load helper (below).
//! * `ld{,h,b} [k]` with negative `k` (`SKF_NET_OFF`, `SKF_LL_OFF`
//!   relative loads) calls the load helper.
//! * The load helpers ([`HELPER_LOAD_B`], [`HELPER_LOAD_H`],
//!   [`HELPER_LOAD_W`]; `r1` = context, `r2` = 32-bit offset) implement
//!   the kernel's `bpf_skb_load_helper_{8,16,32}` (Linux 6.15+ offset
//!   rules); they return the value, or `-EFAULT` after which the program
//!   returns 0.
//! * `ldxb 4*([k]&0xf)` saves A in r8, loads the byte as above, masks,
//!   shifts, moves to X and restores A.
//!
//! # Ancillary loads
//!
//! Loads from [`SkbContext`] fields (protocol with a `be16` swap, pkt_type
//! masked to 3 bits, mark, hash, queue, VLAN TCI, `vlan_all != 0` for the
//! tag-present flag, VLAN TPID swapped), `skb->dev` checked for NULL before
//! `ifindex`/`type` (a packet without a device ends the filter returning
//! A, as in the kernel), helper calls for the CPU number
//! (`bpf_get_smp_processor_id`, id 8), a random number
//! (`bpf_get_prandom_u32`, id 7) and the payload offset
//! ([`HELPER_PAY_OFFSET`]). `SKF_AD_NLATTR` and `SKF_AD_NLATTR_NEST`
//! (netlink messages) are rejected by name.
//!
//! # Division, return, jumps
//!
//! `div x` / `mod x` test X first and return 0 when it is zero (classic
//! semantics); `ret #k` is `mov32 r0, k; exit`; jumps are laid out as the
//! kernel does (a single jump when the false branch falls through, an
//! inverted single jump when the true branch does, else a conditional jump
//! and a `ja`) with offsets rebased onto the eBPF instruction indices.
//!
//! # Kernel acceptance
//!
//! The kernel also refuses a program whose converted jumps do not fit the
//! 16-bit eBPF offset. [`convert`] computes the kernel's own converted
//! layout (its instruction counts per classic instruction on x86-64) and
//! refuses the same programs. Every expansion here is no longer than the
//! kernel's, so every accepted program also fits here.

use crate::check::{check, is_cond_jump};
use crate::context::{NetDevice, SkbContext};
use crate::insn::{op, skf, SockFilter};
use crate::lower::{
    alu32, be, call, exit, jmp, ldx, load_scratch, lower_alu, lower_jump, lower_misc, mov32, mov64, store_scratch,
    Lowered, RA, RX,
};
use crate::CbpfError;
use uxdp_isa::{AluOp, Cond, Insn, Instruction, Operand, PacketMode, Reg, Size, Width};

/// Helper id of the 1-byte packet load (`bpf_skb_load_helper_8`).
pub const HELPER_LOAD_B: u32 = 1000;
/// Helper id of the 2-byte packet load (`bpf_skb_load_helper_16`).
pub const HELPER_LOAD_H: u32 = 1001;
/// Helper id of the 4-byte packet load (`bpf_skb_load_helper_32`).
pub const HELPER_LOAD_W: u32 = 1002;
/// Helper id of the payload offset (`bpf_skb_get_pay_offset`).
pub const HELPER_PAY_OFFSET: u32 = 1003;
/// Helper id of `bpf_get_prandom_u32` (the kernel's id).
pub const HELPER_PRANDOM: u32 = 7;
/// Helper id of `bpf_get_smp_processor_id` (the kernel's id).
pub const HELPER_CPU: u32 = 8;

const CTX: Reg = Reg(6);
const TMP: Reg = Reg(2);
const SAVE: Reg = Reg(8);

/// One converted slot: an instruction, or a jump to a classic instruction
/// whose eBPF address is known only after layout.
#[derive(Clone, Copy)]
enum Emit {
    I(Instruction),
    Ja { target: usize },
    Jcc { cond: Cond, src: Operand, target: usize },
}

impl From<Instruction> for Emit {
    fn from(ins: Instruction) -> Emit {
        Emit::I(ins)
    }
}

impl Lowered for Emit {
    fn ja(target: usize) -> Emit {
        Emit::Ja { target }
    }
    fn jcc(cond: Cond, src: Operand, target: usize) -> Emit {
        Emit::Jcc { cond, src, target }
    }
}

fn size_of_code(code: u16) -> (Size, u32) {
    match code & 0x18 {
        op::W => (Size::W, HELPER_LOAD_W),
        op::H => (Size::H, HELPER_LOAD_H),
        _ => (Size::B, HELPER_LOAD_B),
    }
}

/// `A = load(k)` for a constant offset: the legacy load when `k >= 0`, the
/// helper otherwise.
fn emit_ld_abs(out: &mut Vec<Emit>, size: Size, helper: u32, k: u32) {
    if (k as i32) >= 0 {
        out.push(Instruction::LoadPacket { mode: PacketMode::Abs, size, src: Reg(0), imm: k as i32 }.into());
    } else {
        out.push(mov64(Reg(1), CTX));
        out.push(mov32(TMP, k));
        emit_helper_load_tail(out, helper);
    }
}

/// `call helper; if (r0 s< 0) return 0;`
fn emit_helper_load_tail(out: &mut Vec<Emit>, helper: u32) {
    out.push(call(helper));
    out.push(jmp(Width::W64, Cond::Sge, RA, Operand::Imm(0), 2));
    out.push(mov32(RA, 0));
    out.push(exit());
}

/// The eBPF expansion of classic instruction `pc`.
fn expand(pc: usize, f: &SockFilter, out: &mut Vec<Emit>) -> Result<(), CbpfError> {
    use op::*;
    let code = f.code;
    let k = f.k;
    let class = code & 0x07;
    match class {
        ALU => lower_alu(f, out, |out| {
            // if (X == 0) return 0;
            out.push(jmp(Width::W32, Cond::Ne, RX, Operand::Imm(0), 2));
            out.push(mov32(RA, 0));
            out.push(exit());
        }),
        LD | LDX => {
            let dst = if class == LD { RA } else { RX };
            match code & 0xe0 {
                ABS if class == LD => {
                    if let Some(n) = skf::ancillary(k) {
                        return expand_ancillary(pc, n, out);
                    }
                    let (size, helper) = size_of_code(code);
                    emit_ld_abs(out, size, helper, k);
                }
                IND => {
                    let (size, helper) = size_of_code(code);
                    // r2 = X + k (32-bit); negative offsets go to the helper.
                    out.push(alu32(AluOp::Mov, TMP, Operand::Reg(RX)));
                    if k != 0 {
                        out.push(alu32(AluOp::Add, TMP, Operand::Imm(k as i32)));
                    }
                    out.push(jmp(Width::W32, Cond::Sge, TMP, Operand::Imm(0), 5));
                    out.push(mov64(Reg(1), CTX));
                    out.push(call(helper));
                    out.push(jmp(Width::W64, Cond::Sge, RA, Operand::Imm(0), 3));
                    out.push(mov32(RA, 0));
                    out.push(exit());
                    out.push(Instruction::LoadPacket { mode: PacketMode::Ind, size, src: RX, imm: k as i32 }.into());
                }
                MSH => {
                    out.push(mov64(SAVE, RA));
                    emit_ld_abs(out, Size::B, HELPER_LOAD_B, k);
                    out.push(alu32(AluOp::And, RA, Operand::Imm(0xf)));
                    out.push(alu32(AluOp::Lsh, RA, Operand::Imm(2)));
                    out.push(mov64(RX, RA));
                    out.push(mov64(RA, SAVE));
                }
                MEM => out.push(load_scratch(dst, k)),
                LEN => out.push(ldx(Size::W, dst, CTX, SkbContext::OFF_LEN)),
                _ /* IMM */ => out.push(mov32(dst, k)),
            }
        }
        ST | STX => out.push(store_scratch(class, k)),
        JMP => lower_jump(pc, f, out),
        RET => {
            if code == RET | K {
                out.push(mov32(RA, k));
            }
            out.push(exit());
        }
        _ /* MISC */ => lower_misc(code, out),
    }
    Ok(())
}

fn expand_ancillary(pc: usize, n: i32, out: &mut Vec<Emit>) -> Result<(), CbpfError> {
    match n {
        skf::AD_PROTOCOL => {
            out.push(ldx(Size::H, RA, CTX, SkbContext::OFF_PROTOCOL));
            out.push(be(16, RA));
        }
        skf::AD_PKTTYPE => {
            out.push(ldx(Size::B, RA, CTX, SkbContext::OFF_PKT_TYPE));
            out.push(alu32(AluOp::And, RA, Operand::Imm(7)));
        }
        skf::AD_IFINDEX | skf::AD_HATYPE => {
            out.push(ldx(Size::DW, TMP, CTX, SkbContext::OFF_DEV));
            out.push(jmp(Width::W64, Cond::Ne, TMP, Operand::Imm(0), 1));
            out.push(exit());
            if n == skf::AD_IFINDEX {
                out.push(ldx(Size::W, RA, TMP, NetDevice::OFF_IFINDEX));
            } else {
                out.push(ldx(Size::H, RA, TMP, NetDevice::OFF_HATYPE));
            }
        }
        skf::AD_MARK => out.push(ldx(Size::W, RA, CTX, SkbContext::OFF_MARK)),
        skf::AD_RXHASH => out.push(ldx(Size::W, RA, CTX, SkbContext::OFF_HASH)),
        skf::AD_QUEUE => out.push(ldx(Size::H, RA, CTX, SkbContext::OFF_QUEUE)),
        skf::AD_VLAN_TAG => out.push(ldx(Size::H, RA, CTX, SkbContext::OFF_VLAN_TCI)),
        skf::AD_VLAN_TAG_PRESENT => {
            out.push(ldx(Size::W, RA, CTX, SkbContext::OFF_VLAN_PROTO));
            out.push(jmp(Width::W64, Cond::Eq, RA, Operand::Imm(0), 1));
            out.push(mov32(RA, 1));
        }
        skf::AD_VLAN_TPID => {
            out.push(ldx(Size::H, RA, CTX, SkbContext::OFF_VLAN_PROTO));
            out.push(be(16, RA));
        }
        skf::AD_PAY_OFFSET => {
            out.push(mov64(Reg(1), CTX));
            out.push(call(HELPER_PAY_OFFSET));
        }
        skf::AD_CPU => out.push(call(HELPER_CPU)),
        skf::AD_RANDOM => out.push(call(HELPER_PRANDOM)),
        skf::AD_ALU_XOR_X => out.push(alu32(AluOp::Xor, RA, Operand::Reg(RX))),
        other => return Err(CbpfError::UnsupportedAncillary { pc, name: skf::name(other).unwrap_or("SKF_AD_?") }),
    }
    Ok(())
}

/// The ancillary loads uxdp does not provide, by `SKF_AD_*` offset.
pub(crate) fn unsupported_ancillary(n: i32) -> bool {
    matches!(n, skf::AD_NLATTR | skf::AD_NLATTR_NEST)
}

/// Converts a classic program to eBPF (see the module documentation for
/// the mapping). The program is checked first ([`check`]); the result
/// passes uxdp-isa validation and expects r1 to point at a
/// [`SkbContext`] and the run's legacy packet to be the context's data.
pub fn convert(prog: &[SockFilter]) -> Result<Vec<Insn>, CbpfError> {
    check(prog)?;
    kernel_layout_check(prog)?;
    let mut slots: Vec<Emit> = vec![mov32(RA, 0), mov32(RX, 0), mov64(CTX, Reg(1))];
    let mut addrs = Vec::with_capacity(prog.len());
    for (pc, f) in prog.iter().enumerate() {
        addrs.push(slots.len());
        expand(pc, f, &mut slots)?;
    }
    let mut out = Vec::with_capacity(slots.len());
    for (at, e) in slots.iter().enumerate() {
        let rel = |target: usize| -> Result<i16, CbpfError> {
            let off = addrs[target] as i64 - at as i64 - 1;
            i16::try_from(off).map_err(|_| CbpfError::JumpTooFar { pc: at, target, offset: off })
        };
        let ins = match *e {
            Emit::I(ins) => ins,
            Emit::Ja { target } => Instruction::Ja { off: rel(target)? as i32, long: false },
            Emit::Jcc { cond, src, target } => {
                Instruction::Jump { width: Width::W32, cond, dst: RA, src, off: rel(target)? }
            }
        };
        ins.encode_into(&mut out);
    }
    Ok(out)
}

/// Length of the kernel's expansion of a packet load (`convert_bpf_ld_abs`
/// on x86-64, where unaligned access is efficient).
fn kernel_ld_abs_len(code: u16, k: u32) -> usize {
    let indirect = code & 0xe0 == op::IND;
    let endian = code & 0x18 != op::B;
    let offset = k as i32;
    let mut n = 0;
    if !indirect && offset >= 0 {
        n += 1 + usize::from(offset != 0) + 1 + if offset <= i16::MAX as i32 { 1 } else { 3 } + usize::from(endian) + 1;
    }
    n += 3 + if indirect { 1 + usize::from(k != 0) } else { 1 } + 1 + 3;
    n
}

/// Length of the kernel's expansion of one classic instruction, and the
/// positions of its jumps inside the expansion.
fn kernel_len(f: &SockFilter) -> usize {
    use op::*;
    let code = f.code;
    match code & 0x07 {
        ALU if code == ALU | DIV | X || code == ALU | MOD | X => 5,
        ALU => 1,
        LD if matches!(code & 0xe0, ABS | IND) => {
            if code & 0xe0 == ABS {
                if let Some(n) = skf::ancillary(f.k) {
                    return match n {
                        skf::AD_PROTOCOL | skf::AD_PKTTYPE | skf::AD_VLAN_TPID => 2,
                        skf::AD_IFINDEX | skf::AD_HATYPE => 4,
                        skf::AD_VLAN_TAG_PRESENT => 3,
                        skf::AD_PAY_OFFSET | skf::AD_NLATTR | skf::AD_NLATTR_NEST | skf::AD_CPU | skf::AD_RANDOM => 4,
                        _ => 1,
                    };
                }
            }
            kernel_ld_abs_len(code, f.k)
        }
        LDX if code == LDX | B | MSH => 1 + kernel_ld_abs_len(LD | ABS | B, f.k) + 5,
        JMP if code == JMP | JA => 1,
        JMP => {
            let tmp = usize::from(code & X == 0 && (f.k as i32) < 0);
            let invertible = matches!(code & 0xf0, JEQ | JGT | JGE);
            tmp + if f.jf == 0 || (f.jt == 0 && invertible) { 1 } else { 2 }
        }
        RET if code == RET | K => 2,
        _ => 1,
    }
}

/// Rejects what the kernel's converter rejects: a jump whose offset in the
/// kernel's converted program does not fit 16 bits.
pub(crate) fn kernel_layout_check(prog: &[SockFilter]) -> Result<(), CbpfError> {
    let mut addrs = Vec::with_capacity(prog.len() + 1);
    let mut at = 0usize;
    for f in prog {
        addrs.push(at);
        at += kernel_len(f);
    }
    let fits = |pc: usize, target: usize, pos: usize| -> Result<(), CbpfError> {
        let off = addrs[target] as i64 - addrs[pc] as i64 - 1 - pos as i64;
        if off < i16::MIN as i64 || off > i16::MAX as i64 {
            return Err(CbpfError::KernelJumpTooFar { pc, target, offset: off });
        }
        Ok(())
    };
    for (pc, f) in prog.iter().enumerate() {
        if f.code == op::JMP | op::JA {
            fits(pc, pc + 1 + f.k as usize, 0)?;
        } else if is_cond_jump(f.code) {
            let tmp = usize::from(f.code & op::X == 0 && (f.k as i32) < 0);
            let (t, e) = (pc + 1 + f.jt as usize, pc + 1 + f.jf as usize);
            let invertible = matches!(f.code & 0xf0, op::JEQ | op::JGT | op::JGE);
            if f.jf == 0 {
                fits(pc, t, tmp)?;
            } else if f.jt == 0 && invertible {
                fits(pc, e, tmp)?;
            } else {
                fits(pc, t, tmp)?;
                fits(pc, e, tmp + 1)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::parse_ddd;

    #[test]
    fn port22_converts_to_valid_ebpf() {
        // tcpdump -ddd 'ip' on Ethernet
        let p = parse_ddd("4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n").unwrap();
        let e = convert(&p).unwrap();
        let text: Vec<String> =
            e.iter().map(|s| format!("{}", Instruction::decode(core::slice::from_ref(s)).unwrap())).collect();
        // prologue, ldabsh, jne32 (inverted, jt == 0), mov32+exit, mov32+exit
        assert_eq!(e.len(), 3 + 1 + 1 + 2 + 2, "{text:?}");
        assert!(uxdp_isa::validate(&e, Default::default()).is_ok());
    }

    #[test]
    fn every_expansion_is_no_longer_than_the_kernels() {
        use op::*;
        let mut codes = vec![];
        for c in 0..=0xffu16 {
            if crate::check::opcode_allowed(c) {
                codes.push(c);
            }
        }
        let ks = [0u32, 1, 14, 40000, 0x8000_0000, skf::NET_OFF as u32, skf::LL_OFF as u32 + 3, 0xffff_fff0];
        let mut anc: Vec<u32> = (0..skf::AD_MAX).step_by(4).map(|n| (skf::AD_OFF + n) as u32).collect();
        anc.retain(|&k| !unsupported_ancillary(k.wrapping_sub(skf::AD_OFF as u32) as i32));
        for &code in &codes {
            for &k in ks.iter().chain(if code & 0xe7 == LD | ABS { &anc[..] } else { &[][..] }) {
                for (jt, jf) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let f = SockFilter { code, jt, jf, k };
                    if skf::ancillary(k).is_some_and(|n| skf::name(n).is_none()) && code & 0xe7 == LD | ABS {
                        continue;
                    }
                    let mut out = vec![];
                    expand(0, &f, &mut out).unwrap();
                    assert!(out.len() <= kernel_len(&f), "{f:?}: {} > {}", out.len(), kernel_len(&f));
                }
            }
        }
    }
}
