//! A reference interpreter for classic BPF that follows the kernel's
//! semantics directly (no conversion): the oracle for differential tests of
//! the converted code, and a baseline for benchmarks.
//!
//! Semantics: A, X and the scratch words are 32-bit, A and X start at 0;
//! arithmetic wraps; `div`/`mod` by X = 0 returns 0 from the filter;
//! shifts by X use `X & 31` (the kernel's eBPF semantics — libpcap's own
//! interpreter gives 0 for shifts of 32 or more); packet loads are
//! big-endian, out of bounds returns 0, negative offsets follow
//! `SKF_NET_OFF` / `SKF_LL_OFF`; `ld len` is `skb->len`; ancillary loads read
//! the [`Packet`] metadata, exactly as the converted code does.

use crate::check::check;
use crate::context::Packet;
use crate::convert::unsupported_ancillary;
use crate::insn::{op, skf, SockFilter};
use crate::semantics::{current_cpu, random_u32, View};
use crate::CbpfError;

/// A checked classic program, ready to interpret.
#[derive(Clone, Debug)]
pub struct Interpreter {
    prog: Vec<SockFilter>,
}

impl Interpreter {
    /// Checks `prog` with the kernel's rules (including the converter's
    /// jump-distance limit) and rejects the ancillary loads uxdp does not
    /// provide: it accepts exactly what [`crate::Filter::new`] accepts.
    pub fn new(prog: &[SockFilter]) -> Result<Self, CbpfError> {
        check(prog)?;
        crate::convert::kernel_layout_check(prog)?;
        for (pc, f) in prog.iter().enumerate() {
            if f.code & 0xe7 == op::LD | op::ABS {
                if let Some(n) = skf::ancillary(f.k).filter(|&n| unsupported_ancillary(n)) {
                    return Err(CbpfError::UnsupportedAncillary { pc, name: skf::name(n).unwrap_or("SKF_AD_?") });
                }
            }
        }
        Ok(Interpreter { prog: prog.to_vec() })
    }

    /// The program.
    pub fn program(&self) -> &[SockFilter] {
        &self.prog
    }

    /// Runs the program on `p` and returns the classic return value.
    ///
    /// Fails only for `SKF_AD_PAY_OFFSET` on a protocol whose flow
    /// dissection is not implemented (see [`crate::dissect`](mod@crate::dissect)).
    pub fn run(&self, p: &Packet<'_>) -> Result<u32, CbpfError> {
        use op::*;
        let v = View::of_packet(p);
        let prog = &self.prog[..];
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; MEMWORDS as usize];
        let mut pc = 0usize;
        // A checked program only jumps forward and ends with `ret`, so pc
        // stays in range; `get` keeps that a checked fact, not an assumption.
        while let Some(f) = prog.get(pc) {
            pc += 1;
            let k = f.k;
            match f.code {
                c if c & 0x07 == ALU => {
                    let src = if c & X != 0 { x } else { k };
                    a = match c & 0xf0 {
                        ADD => a.wrapping_add(src),
                        SUB => a.wrapping_sub(src),
                        MUL => a.wrapping_mul(src),
                        DIV => match a.checked_div(src) {
                            Some(q) => q,
                            None => return Ok(0),
                        },
                        MOD => match a.checked_rem(src) {
                            Some(r) => r,
                            None => return Ok(0),
                        },
                        OR => a | src,
                        AND => a & src,
                        XOR => a ^ src,
                        LSH => a << (src & 31),
                        RSH => a >> (src & 31),
                        _ /* NEG */ => a.wrapping_neg(),
                    };
                }
                c if c & 0xe7 == LD | ABS => {
                    if let Some(n) = skf::ancillary(k) {
                        a = match n {
                            skf::AD_PROTOCOL => p.protocol as u32,
                            skf::AD_PKTTYPE => (p.pkt_type & 7) as u32,
                            skf::AD_IFINDEX => match p.device {
                                Some(d) => d.ifindex,
                                None => return Ok(a),
                            },
                            skf::AD_HATYPE => match p.device {
                                Some(d) => d.hatype as u32,
                                None => return Ok(a),
                            },
                            skf::AD_MARK => p.mark,
                            skf::AD_RXHASH => p.hash,
                            skf::AD_QUEUE => p.queue_mapping as u32,
                            skf::AD_VLAN_TAG => v.vlan.1 as u32,
                            skf::AD_VLAN_TAG_PRESENT => v.vlan_present() as u32,
                            skf::AD_VLAN_TPID => v.vlan.0 as u32,
                            skf::AD_CPU => current_cpu(),
                            skf::AD_RANDOM => random_u32(),
                            skf::AD_ALU_XOR_X => a ^ x,
                            _ /* PAY_OFFSET */ => crate::dissect::payload_offset(&v).map_err(|what| {
                                CbpfError::PayOffset { pc: pc - 1, what }
                            })?,
                        };
                    } else {
                        match v.load(k as i32, load_size(c)) {
                            Some(val) => a = val,
                            None => return Ok(0),
                        }
                    }
                }
                c if c & 0xe7 == LD | IND => match v.load(x.wrapping_add(k) as i32, load_size(c)) {
                    Some(val) => a = val,
                    None => return Ok(0),
                },
                c if c == LDX | B | MSH => match v.load(k as i32, 1) {
                    Some(b) => x = (b & 0xf) << 2,
                    None => return Ok(0),
                },
                c if c == LD | IMM => a = k,
                c if c == LDX | IMM => x = k,
                c if c == LD | W | LEN => a = p.len,
                c if c == LDX | W | LEN => x = p.len,
                c if c == LD | MEM => a = mem[(k & 15) as usize],
                c if c == LDX | MEM => x = mem[(k & 15) as usize],
                c if c == ST => mem[(k & 15) as usize] = a,
                c if c == STX => mem[(k & 15) as usize] = x,
                c if c == JMP | JA => pc += k as usize,
                c if c & 0x07 == JMP => {
                    let src = if c & X != 0 { x } else { k };
                    let taken = match c & 0xf0 {
                        JEQ => a == src,
                        JGT => a > src,
                        JGE => a >= src,
                        _ /* JSET */ => a & src != 0,
                    };
                    pc += if taken { f.jt } else { f.jf } as usize;
                }
                c if c == RET | K => return Ok(k),
                c if c == RET | A => return Ok(a),
                c if c == MISC | TAX => x = a,
                _ /* MISC | TXA */ => a = x,
            }
        }
        // Unreachable for a checked program (the last instruction returns).
        Err(CbpfError::Check { pc: prog.len() - 1, rule: crate::check::Rule::LastNotReturn })
    }
}

fn load_size(code: u16) -> usize {
    match code & 0x18 {
        op::W => 4,
        op::H => 2,
        _ => 1,
    }
}

/// Checks `prog` and runs it once on an Ethernet frame as a plain offline
/// packet ([`Packet::ethernet`]); returns the classic return value.
pub fn run(prog: &[SockFilter], packet: &[u8]) -> Result<u32, CbpfError> {
    Interpreter::new(prog)?.run(&Packet::ethernet(packet))
}
