//! One test per rule of the kernel's classic checker (and of the
//! converter), each checking the instruction index and the rule named.

use uxdp_cbpf::insn::{op::*, skf};
use uxdp_cbpf::{check, classic::Interpreter, convert, CbpfError, Filter, Rule, SockFilter};

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter::stmt(code, k)
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter::jump(code, k, jt, jf)
}
const RET0: SockFilter = SockFilter::stmt(RET | K, 0);

/// Asserts that `check`, `Filter::new` and the reference interpreter all
/// reject `prog` at instruction `pc` for `rule`, with a message naming both.
fn rejects(prog: &[SockFilter], pc: usize, rule: Rule) {
    let e = check(prog).unwrap_err();
    match &e {
        CbpfError::Check { pc: p, rule: r } => {
            assert_eq!((*p, *r), (pc, rule), "{e}");
        }
        other => panic!("expected a check error, got {other}"),
    }
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("instruction {pc}: ")), "{msg}");
    assert!(msg.contains(&rule.to_string()), "{msg}");
    assert!(Filter::new(prog).is_err());
    assert!(Interpreter::new(prog).is_err());
}

#[test]
fn length_must_be_1_to_4096() {
    assert!(matches!(check(&[]), Err(CbpfError::Empty)));
    let mut long = vec![stmt(LD | IMM, 1); 4096];
    *long.last_mut().unwrap() = RET0;
    assert!(check(&long).is_ok());
    long.insert(0, stmt(LD | IMM, 1));
    let e = check(&long).unwrap_err();
    assert!(matches!(e, CbpfError::TooLong { len: 4097 }), "{e}");
    assert!(e.to_string().contains("4097") && e.to_string().contains("BPF_MAXINSNS"));
}

#[test]
fn unknown_opcodes_are_rejected() {
    // ret x exists in BSD/libpcap but not in Linux socket filters.
    rejects(&[stmt(LD | IMM, 0), stmt(RET | X, 0)], 1, Rule::UnknownOpcode(RET | X));
    rejects(&[stmt(0xffff, 0), RET0], 0, Rule::UnknownOpcode(0xffff));
    // ld with a size bit on an immediate, ldx with an absolute offset
    rejects(&[stmt(LD | H | IMM, 0), RET0], 0, Rule::UnknownOpcode(LD | H | IMM));
    rejects(&[stmt(LDX | W | ABS, 0), RET0], 0, Rule::UnknownOpcode(LDX | W | ABS));
    // neg with the X bit, ja with the X bit
    rejects(&[stmt(ALU | NEG | X, 0), RET0], 0, Rule::UnknownOpcode(ALU | NEG | X));
    rejects(&[stmt(JMP | JA | X, 0), RET0], 0, Rule::UnknownOpcode(JMP | JA | X));
}

#[test]
fn division_by_constant_zero() {
    rejects(&[stmt(ALU | DIV | K, 0), RET0], 0, Rule::DivisionByZero);
    rejects(&[stmt(LD | IMM, 1), stmt(ALU | MOD | K, 0), RET0], 1, Rule::DivisionByZero);
    // by X is checked at run time (returns 0)
    assert!(check(&[stmt(ALU | DIV | X, 0), RET0]).is_ok());
}

#[test]
fn constant_shifts_must_be_below_32() {
    rejects(&[stmt(ALU | LSH | K, 32), RET0], 0, Rule::ShiftTooLarge(32));
    rejects(&[stmt(ALU | RSH | K, 0xffff_ffff), RET0], 0, Rule::ShiftTooLarge(0xffff_ffff));
    assert!(check(&[stmt(ALU | LSH | K, 31), RET0]).is_ok());
}

#[test]
fn scratch_index_in_range() {
    rejects(&[stmt(ST, 16), RET0], 0, Rule::ScratchIndex(16));
    rejects(&[stmt(STX, 0), stmt(LDX | MEM, 99), RET0], 1, Rule::ScratchIndex(99));
    rejects(&[stmt(LD | MEM, 1 << 31), RET0], 0, Rule::ScratchIndex(1 << 31));
}

#[test]
fn jumps_stay_inside_the_program() {
    // ja k: target pc + 1 + k must be before the end
    rejects(&[jump(JMP | JA, 1, 0, 0), RET0], 0, Rule::JumpOutOfRange { target: 2 });
    // a huge k (libpcap's protochain loops backwards this way) is out of range too
    rejects(&[jump(JMP | JA, u32::MAX, 0, 0), RET0], 0, Rule::JumpOutOfRange { target: 1 + u32::MAX as u64 });
    rejects(&[jump(JMP | JEQ | K, 0, 1, 0), RET0], 0, Rule::BranchOutOfRange { jt_target: 2, jf_target: 1 });
    rejects(&[RET0, jump(JMP | JSET | X, 0, 0, 7), RET0], 1, Rule::BranchOutOfRange { jt_target: 2, jf_target: 9 });
    assert!(check(&[jump(JMP | JGT | K, 0, 1, 0), RET0, RET0]).is_ok());
}

#[test]
fn last_instruction_must_return() {
    rejects(&[stmt(LD | IMM, 0)], 0, Rule::LastNotReturn);
    rejects(&[RET0, stmt(MISC | TAX, 0)], 1, Rule::LastNotReturn);
    assert!(check(&[stmt(RET | A, 0)]).is_ok());
}

#[test]
fn scratch_loads_need_a_store_on_every_path() {
    rejects(&[stmt(LD | MEM, 3), RET0], 0, Rule::LoadBeforeStore(3));
    // stored on the true branch only
    let prog = [jump(JMP | JEQ | K, 0, 0, 1), stmt(ST, 5), stmt(LDX | MEM, 5), RET0];
    rejects(&prog, 2, Rule::LoadBeforeStore(5));
    // stored on both branches
    let prog =
        [jump(JMP | JEQ | K, 0, 0, 2), stmt(ST, 5), jump(JMP | JA, 1, 0, 0), stmt(STX, 5), stmt(LDX | MEM, 5), RET0];
    assert!(check(&prog).is_ok());
    // a ja over the store
    let prog = [jump(JMP | JA, 1, 0, 0), stmt(ST, 0), stmt(LD | MEM, 0), RET0];
    rejects(&prog, 2, Rule::LoadBeforeStore(0));
}

#[test]
fn ancillary_loads_must_be_defined() {
    let k = (skf::AD_OFF + skf::AD_MAX) as u32;
    rejects(&[stmt(LD | W | ABS, k), RET0], 0, Rule::UnknownAncillary(k));
    let k = (skf::AD_OFF + 2) as u32;
    rejects(&[stmt(LD | B | ABS, k), RET0], 0, Rule::UnknownAncillary(k));
    let e = check(&[stmt(LD | H | ABS, 0xffff_ffff), RET0]).unwrap_err().to_string();
    assert!(e.contains("SKF_AD_OFF+4095"), "{e}");
    // just below the ancillary range is a (network-relative) packet load
    assert!(check(&[stmt(LD | W | ABS, (skf::AD_OFF - 1) as u32), RET0]).is_ok());
    // defined ones pass
    for n in (0..skf::AD_MAX).step_by(4) {
        assert!(check(&[stmt(LD | W | ABS, (skf::AD_OFF + n) as u32), RET0]).is_ok(), "{n}");
    }
}

#[test]
fn netlink_ancillary_loads_are_refused_by_name() {
    for (n, name) in [(skf::AD_NLATTR, "SKF_AD_NLATTR"), (skf::AD_NLATTR_NEST, "SKF_AD_NLATTR_NEST")] {
        let prog = [stmt(LD | IMM, 0), stmt(LD | W | ABS, (skf::AD_OFF + n) as u32), RET0];
        assert!(check(&prog).is_ok(), "the kernel accepts it");
        let e = Filter::new(&prog).unwrap_err();
        assert_eq!(e.to_string(), format!("instruction 1: ancillary load {name} is not supported outside a socket"));
        assert!(matches!(Interpreter::new(&prog), Err(CbpfError::UnsupportedAncillary { pc: 1, .. })));
    }
}

#[test]
fn the_kernels_converted_jump_limit_applies() {
    // ja over 4094 `ldxb 4*([0]&0xf)`: the kernel expands each to ~20
    // eBPF instructions, so the jump exceeds 32767 and is refused
    // (test_bpf "BPF_MAXINSNS: jump over MSH").
    let mut prog = vec![jump(JMP | JA, 4094, 0, 0)];
    prog.extend(std::iter::repeat_n(stmt(LDX | B | MSH, 0), 4094));
    prog.push(RET0);
    assert!(check(&prog).is_ok());
    let e = convert(&prog).unwrap_err();
    assert!(matches!(e, CbpfError::KernelJumpTooFar { pc: 0, target: 4095, .. }), "{e}");
    assert!(e.to_string().starts_with("instruction 0: the jump to instruction 4095"), "{e}");
    assert!(Interpreter::new(&prog).is_err());
    // The same jump over simple loads fits.
    let mut prog = vec![jump(JMP | JA, 4094, 0, 0)];
    prog.extend(std::iter::repeat_n(stmt(LD | IMM, 7), 4094));
    prog.push(RET0);
    assert!(Filter::new(&prog).is_ok());
}

#[cfg(feature = "pcap")]
#[test]
fn libpcap_protochain_loops_are_refused_like_the_kernel() {
    let prog = uxdp_cbpf::compile("ip6 protochain 6", uxdp_cbpf::LinkType::ETHERNET, 65535).unwrap();
    let e = Filter::new(&prog).unwrap_err();
    assert!(matches!(e, CbpfError::Check { rule: Rule::JumpOutOfRange { .. }, .. }), "{e}");
}
