//! Facts of accepted programs and the permissive mode.

use uxdp_verifier::{verify, Facts, Mode, ProgType, Rejection, Rule, VerifyInput};

fn run(asm: &str, mode: Mode) -> Result<Facts, Rejection> {
    let insns = uxdp_asm::assemble(asm).expect("assemble");
    verify(&VerifyInput::new(&insns, ProgType::Xdp, &[]).mode(mode))
}

#[test]
fn ctx_register_per_instruction() {
    let f = run("mov %r6, %r1\nldxw %r2, [%r6+0]\nmov %r1, 0\nmov %r0, 2\nexit", Mode::Strict).expect("accepted");
    assert_eq!(f.ctx_reg, vec![0b10, 0b100_0010, 0b100_0010, 0b100_0000, 0b100_0000]);
    // The load through the context is proven (context accesses are checked statically).
    assert_eq!(f.proven, vec![false, true, false, false, false]);
    assert!(f.insns_processed >= 5);
}

#[test]
fn ctx_register_is_the_intersection_over_paths() {
    // On one path r2 is the context, on the other a scalar.
    let f = run("mov %r2, %r1\nldxw %r3, [%r1+12]\njeq %r3, 0, +1\nmov %r2, 0\nmov %r0, 2\nexit", Mode::Strict)
        .expect("accepted");
    assert_eq!(f.ctx_reg[4] & 0b100, 0, "r2 is not the context on every path into insn 4");
    assert_eq!(f.ctx_reg[4] & 0b10, 0b10);
    assert_eq!(f.ctx_reg[3] & 0b110, 0b110);
}

#[test]
fn permissive_mode_leaves_unproven_accesses_to_runtime_checks() {
    let unchecked = "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nldxb %r0, [%r2+0]\nexit";
    let e = run(unchecked, Mode::Strict).expect_err("strict rejects");
    assert_eq!((e.pc, e.rule), (2, Rule::PacketBounds));
    let f = run(unchecked, Mode::Permissive).expect("permissive accepts");
    assert!(!f.proven[2]);
    let checked = "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 1\njgt %r4, %r3, +2\nldxb %r0, [%r2+0]\nexit\nmov %r0, 1\nexit";
    let f = run(checked, Mode::Permissive).expect("accepted");
    assert!(f.proven[5]);
    // A read that is in bounds on one path and not on another is unproven.
    let mixed = "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 1\njgt %r4, %r3, +1\nja +0\nldxb %r0, [%r2+0]\nexit";
    let f = run(mixed, Mode::Permissive).expect("accepted");
    assert!(!f.proven[6]);
    assert!(run(mixed, Mode::Strict).is_err());
}

#[test]
fn permissive_mode_still_rejects_structural_and_type_errors() {
    for (asm, rule) in [
        ("mov %r0, %r5\nexit", Rule::UninitRegister),
        ("ldxw %r0, [%r1+64]\nexit", Rule::CtxAccess),
        ("mov %r0, 0\nexit\nmov %r0, 1\nexit", Rule::Unreachable),
        ("ldxw %r3, [%r1+4]\nadd %r3, 1\nmov %r0, 0\nexit", Rule::PointerArithmetic),
        ("call 10000\nexit", Rule::UnknownHelper),
    ] {
        let e = run(asm, Mode::Permissive).expect_err(asm);
        assert_eq!(e.rule, rule, "{asm}: {e}");
    }
}

#[test]
fn rejection_display_names_index_instruction_and_rule() {
    let e = run("ldxw %r2, [%r1+0]\nldxh %r0, [%r2+2]\nexit", Mode::Strict).expect_err("rejected");
    let text = e.to_string();
    assert!(text.starts_with("1: ldxh %r0, [%r2+2]: invalid access to packet"), "{text}");
    assert!(text.contains("[packet_bounds]"), "{text}");
    assert!(text.contains("\n  R2=pkt("), "{text}");
}
