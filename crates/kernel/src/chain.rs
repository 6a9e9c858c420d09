//! Multi-program XDP chains with libxdp's dispatcher semantics, in the kernel.
//!
//! libxdp's dispatcher runs `ret = prog_i(ctx); if (!((1U << ret) &
//! chain_call_actions[i])) return ret;` for each program in order and returns
//! `XDP_PASS` at the end of the chain. It swaps real programs into stub
//! global functions with freplace (`BPF_PROG_TYPE_EXT`), which this machine
//! refuses. Two equivalents are provided:
//!
//! - [`TailCallChain`]: a dispatcher built from tail calls only. A tail call
//!   never returns to the instruction after it, but a tail call made *inside
//!   a bpf-to-bpf subprogram* replaces only that subprogram's frame: the
//!   target program's return value comes back to the subprogram's caller
//!   (supported by the x86-64 JIT since Linux 5.10). So the dispatcher's main
//!   function calls, for each step `i`, a subprogram `step(ctx, i)` that does
//!   `bpf_tail_call(ctx, &prog_array, i)`; the value the real program returns
//!   lands in the main function, which applies the chain-call mask. If the
//!   tail call fails (empty slot, tail-call limit of 33 reached), `step`
//!   returns the value in a one-element fallback array, `XDP_ABORTED` (0);
//!   reading it from a map keeps the verifier from treating the step's
//!   return value as a known constant and pruning the mask test.
//! - [`run_chain_reference`]: each program test-run in turn, the output packet
//!   of one fed to the next. Equivalent for programs that pass nothing but
//!   packet bytes between each other (no `data_meta`, no context fields).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use uxdp_isa::opcode::{self as op, alu, jmp, mode, size};
use uxdp_isa::Insn;

use crate::error::KernelError;
use crate::raw::{self, FuncInfo, LoadOptions, LoadedProg, ProgType};
use crate::sys;
use crate::testrun::{self, TestRun};

/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;
/// libxdp's default chain-call actions: continue only on `XDP_PASS`.
pub const DEFAULT_CHAIN_ACTIONS: u32 = 1 << XDP_PASS;
/// Most programs in one chain (each step is one tail call; the kernel allows 33 in a row).
pub const MAX_CHAIN_PROGS: usize = 32;

const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_FUNC_TAIL_CALL: i32 = 12;
/// `BPF_XDP` attach type.
const BPF_XDP: u32 = 37;

fn check_chain(n: usize, actions: usize) -> Result<(), KernelError> {
    if n == 0 {
        return Err(KernelError::InvalidInput("a chain needs at least one program".into()));
    }
    if n > MAX_CHAIN_PROGS {
        return Err(KernelError::InvalidInput(format!(
            "a chain of {n} programs exceeds the limit of {MAX_CHAIN_PROGS}"
        )));
    }
    if actions != n {
        return Err(KernelError::InvalidInput(format!("{n} programs but {actions} chain-call action masks")));
    }
    Ok(())
}

fn map_create(map_type: u32, max_entries: u32, name: &str) -> Result<OwnedFd, KernelError> {
    let mut attr = sys::MapCreateAttr {
        map_type,
        key_size: 4,
        value_size: 4,
        max_entries,
        map_name: sys::obj_name(name),
        ..Default::default()
    };
    // SAFETY: the attribute holds no pointers.
    let fd = unsafe { sys::bpf(sys::BPF_MAP_CREATE, &mut attr) }.map_err(KernelError::syscall("BPF_MAP_CREATE"))?;
    Ok(sys::owned_fd(fd))
}

/// Minimal program BTF: `int`, `int (void)` and two static FUNCs,
/// `uxdp_dispatch` (type 3) and `uxdp_step` (type 4). The kernel accepts tail
/// calls in subprograms only with BTF func_info.
fn dispatcher_btf() -> Vec<u8> {
    const STRINGS: &[u8] = b"\0int\0uxdp_dispatch\0uxdp_step\0";
    let words: [u32; 4 * 3 + 1] = [
        // [1] INT "int": size 4, signed, 32 bits
        1,
        1 << 24,
        4,
        (1 << 24) | 32,
        // [2] FUNC_PROTO int (void)
        0,
        13 << 24,
        1,
        // [3] FUNC uxdp_dispatch, static
        5,
        12 << 24,
        2,
        // [4] FUNC uxdp_step, static
        19,
        12 << 24,
        2,
    ];
    let types: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut blob = Vec::new();
    blob.extend_from_slice(&0xeb9fu16.to_le_bytes());
    blob.push(1); // version
    blob.push(0); // flags
    for w in [24u32, 0, types.len() as u32, types.len() as u32, STRINGS.len() as u32] {
        blob.extend_from_slice(&w.to_le_bytes());
    }
    blob.extend_from_slice(&types);
    blob.extend_from_slice(STRINGS);
    blob
}

fn lddw_map(dst: u8, fd: i32) -> [Insn; 2] {
    [Insn::new(op::LDDW, dst, op::pseudo::MAP_FD, 0, fd), Insn::new(0, 0, 0, 0, 0)]
}

/// The dispatcher's instructions (see the module docs).
fn dispatcher_insns(actions: &[u32], prog_array: i32, fallback: i32) -> Vec<Insn> {
    let alu64 = |o: u8, src: u8| op::CLASS_ALU64 | o | src;
    let alu32 = |o: u8, src: u8| op::CLASS_ALU | o | src;
    let n = actions.len();
    let end = 1 + 7 * n; // `r0 = XDP_PASS; exit`
    let ret = end + 2; // `exit` with the step's r0
    let step = ret + 1; // the subprogram
    let mut v = vec![Insn::new(alu64(alu::MOV, op::SRC_X), 6, 1, 0, 0)];
    for (i, &mask) in actions.iter().enumerate() {
        let base = v.len();
        v.push(Insn::new(alu64(alu::MOV, op::SRC_X), 1, 6, 0, 0));
        v.push(Insn::new(alu64(alu::MOV, op::SRC_K), 2, 0, 0, i as i32));
        v.push(Insn::new(op::CALL, 0, op::call::LOCAL, 0, (step - (base + 2) - 1) as i32));
        v.push(Insn::new(alu32(alu::MOV, op::SRC_K), 1, 0, 0, 1));
        v.push(Insn::new(alu32(alu::LSH, op::SRC_X), 1, 0, 0, 0));
        v.push(Insn::new(alu32(alu::AND, op::SRC_K), 1, 0, 0, mask as i32));
        v.push(Insn::new(op::CLASS_JMP | jmp::JEQ | op::SRC_K, 1, 0, (ret - (base + 6) - 1) as i16, 0));
    }
    debug_assert_eq!(v.len(), end);
    v.push(Insn::new(alu64(alu::MOV, op::SRC_K), 0, 0, 0, XDP_PASS as i32));
    v.push(Insn::new(op::EXIT, 0, 0, 0, 0));
    v.push(Insn::new(op::EXIT, 0, 0, 0, 0));
    debug_assert_eq!(v.len(), step);
    // step(ctx = r1, index = r2)
    v.push(Insn::new(alu64(alu::MOV, op::SRC_X), 3, 2, 0, 0));
    v.extend(lddw_map(2, prog_array));
    v.push(Insn::new(op::CALL, 0, op::call::HELPER, 0, BPF_FUNC_TAIL_CALL));
    // Tail call failed: return fallback[0].
    v.push(Insn::new(op::CLASS_ST | mode::MEM | size::W, 10, 0, -4, 0));
    v.push(Insn::new(alu64(alu::MOV, op::SRC_X), 2, 10, 0, 0));
    v.push(Insn::new(alu64(alu::ADD, op::SRC_K), 2, 0, 0, -4));
    v.extend(lddw_map(1, fallback));
    v.push(Insn::new(op::CALL, 0, op::call::HELPER, 0, BPF_FUNC_MAP_LOOKUP_ELEM));
    v.push(Insn::new(op::CLASS_JMP | jmp::JEQ | op::SRC_K, 0, 0, 2, 0));
    v.push(Insn::new(op::CLASS_LDX | mode::MEM | size::W, 0, 0, 0, 0));
    v.push(Insn::new(op::EXIT, 0, 0, 0, 0));
    v.push(Insn::new(alu64(alu::MOV, op::SRC_K), 0, 0, 0, 0));
    v.push(Insn::new(op::EXIT, 0, 0, 0, 0));
    v
}

/// A kernel XDP dispatcher running loaded programs in order with libxdp's
/// chain-call semantics, built from tail calls (see the module docs).
/// Test-run it like any XDP program through [`TailCallChain::fd`].
#[derive(Debug)]
pub struct TailCallChain {
    dispatcher: LoadedProg,
    _prog_array: OwnedFd,
    _fallback: OwnedFd,
    len: usize,
    expected_attach_type: u32,
    frags: bool,
}

impl TailCallChain {
    /// Builds the dispatcher for `progs` (loaded XDP programs) with one
    /// chain-call mask per program (bit `1 << action` set = continue with the
    /// next program on that action; [`DEFAULT_CHAIN_ACTIONS`] is libxdp's
    /// default).
    ///
    /// The kernel tail-calls only between programs that agree on
    /// `expected_attach_type` (0 for programs loaded without one, `BPF_XDP` =
    /// 37 for libbpf/aya-loaded `xdp` sections) and on `BPF_F_XDP_HAS_FRAGS`;
    /// neither is visible from a program descriptor, so the dispatcher is
    /// built for each of the four combinations until the first program is
    /// accepted into the program array. A program that does not match the
    /// first fails with the kernel's EINVAL.
    pub fn new(progs: &[BorrowedFd<'_>], chain_actions: &[u32]) -> Result<TailCallChain, KernelError> {
        check_chain(progs.len(), chain_actions.len())?;
        let combos = [(0, false), (BPF_XDP, false), (0, true), (BPF_XDP, true)];
        let mut last = None;
        for (attach, frags) in combos {
            match Self::build(progs, chain_actions, attach, frags) {
                Ok(chain) => return Ok(chain),
                Err((0, e)) if e.errno() == Some(crate::error::Errno(libc::EINVAL)) => last = Some(e),
                Err((_, e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| KernelError::InvalidInput("no dispatcher variant was tried".into())))
    }

    /// One attempt; the error says which program (index) the kernel refused.
    fn build(
        progs: &[BorrowedFd<'_>],
        chain_actions: &[u32],
        expected_attach_type: u32,
        frags: bool,
    ) -> Result<TailCallChain, (usize, KernelError)> {
        let setup = |e: KernelError| (usize::MAX, e);
        let prog_array = map_create(BPF_MAP_TYPE_PROG_ARRAY, progs.len() as u32, "uxdp_chain").map_err(setup)?;
        let fallback = map_create(BPF_MAP_TYPE_ARRAY, 1, "uxdp_chain_fb").map_err(setup)?;
        let insns = dispatcher_insns(
            chain_actions,
            sys::fd_u32(prog_array.as_fd()) as i32,
            sys::fd_u32(fallback.as_fd()) as i32,
        );
        let refused = |f: raw::LoadFailure| {
            (
                usize::MAX,
                KernelError::Refused { program: "uxdp_dispatch".into(), errno: f.errno, log: f.log, stats: f.stats },
            )
        };
        let btf = raw::load_btf(&dispatcher_btf()).map_err(refused)?;
        let step = (1 + 7 * chain_actions.len() + 3) as u32;
        let func_info = [FuncInfo { insn_off: 0, type_id: 3 }, FuncInfo { insn_off: step, type_id: 4 }];
        let opts = LoadOptions {
            name: "uxdp_dispatch",
            prog_flags: if frags { raw::BPF_F_XDP_HAS_FRAGS } else { 0 },
            expected_attach_type,
            btf_fd: Some(btf.as_fd()),
            func_info: &func_info,
            ..LoadOptions::new(ProgType::XDP)
        };
        let dispatcher = raw::load_raw_with(&insns, &opts).map_err(refused)?;
        for (i, p) in progs.iter().enumerate() {
            let key = (i as u32).to_le_bytes();
            let value = sys::fd_u32(*p).to_le_bytes();
            sys::map_update(prog_array.as_fd(), &key, &value, 0).map_err(|errno| {
                (i, KernelError::Map { map: format!("uxdp_chain (program {i})"), op: "BPF_MAP_UPDATE_ELEM", errno })
            })?;
        }
        Ok(TailCallChain {
            dispatcher,
            _prog_array: prog_array,
            _fallback: fallback,
            len: progs.len(),
            expected_attach_type,
            frags,
        })
    }

    /// `expected_attach_type` the dispatcher (and so every program) has.
    pub fn expected_attach_type(&self) -> u32 {
        self.expected_attach_type
    }

    /// Whether the dispatcher (and so every program) is frags-aware.
    pub fn frags(&self) -> bool {
        self.frags
    }

    /// The dispatcher program.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.dispatcher.fd()
    }

    /// Number of programs in the chain.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a chain has at least one program.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Runs the chain on one packet ([`testrun::test_run_xdp`] on the dispatcher).
    pub fn test_run(&self, data_in: &[u8]) -> Result<TestRun, KernelError> {
        testrun::test_run_xdp(self.fd(), data_in, 1, None)
    }
}

impl AsFd for TailCallChain {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

/// The outcome of [`run_chain_reference`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainRun {
    /// What the chain returns.
    pub retval: u32,
    /// The packet after the last program that ran.
    pub data_out: Vec<u8>,
    /// Return value of each program that ran, in order.
    pub steps: Vec<u32>,
}

/// Reference chain: test-runs `progs` in order on `packet`, feeding each
/// output packet to the next program, stopping at the first return value
/// whose bit (`1 << (ret & 31)`, as the dispatcher's 32-bit shift) is not in
/// that program's mask; `XDP_PASS` after the last. A kernel error of any
/// step (e.g. EINVAL) is returned as is.
pub fn run_chain_reference(
    progs: &[BorrowedFd<'_>],
    chain_actions: &[u32],
    packet: &[u8],
) -> Result<ChainRun, KernelError> {
    check_chain(progs.len(), chain_actions.len())?;
    let mut data = packet.to_vec();
    let mut steps = Vec::with_capacity(progs.len());
    for (p, &mask) in progs.iter().zip(chain_actions) {
        let run = testrun::test_run_xdp(*p, &data, 1, None)?;
        steps.push(run.retval);
        data = run.data_out;
        if (1u32 << (run.retval & 31)) & mask == 0 {
            return Ok(ChainRun { retval: run.retval, data_out: data, steps });
        }
    }
    Ok(ChainRun { retval: XDP_PASS, data_out: data, steps })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatcher_shape() {
        let v = dispatcher_insns(&[DEFAULT_CHAIN_ACTIONS, 0b11], 7, 8);
        // main: 1 + 7 per step + 3; step: 15 slots.
        assert_eq!(v.len(), 1 + 14 + 3 + 15);
        // Each step's call lands on the subprogram.
        for i in 0..2 {
            let call_pc = 1 + 7 * i + 2;
            assert_eq!(v[call_pc].code, op::CALL);
            assert_eq!(call_pc as i64 + 1 + v[call_pc].imm as i64, 18);
        }
        assert_eq!(v[18 + 1].imm, 7);
        assert_eq!(v[18 + 7].imm, 8);
        assert!(check_chain(0, 0).is_err());
        assert!(check_chain(2, 1).is_err());
        assert!(check_chain(33, 33).is_err());
    }
}
