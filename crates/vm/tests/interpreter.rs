//! Interpreter behaviour beyond the conformance suite: faults name the
//! instruction, call depth and budgets are enforced, callbacks and tail
//! calls work.

use std::sync::Arc;
use uxdp_isa::Insn;
use uxdp_vm::{run_on_memory, Helpers, LoadOptions, Machine, Program, Stack, VmError};

fn load(insns: &[Insn], helpers: Helpers) -> Program {
    Program::load(insns, &LoadOptions::new(Arc::new(helpers))).expect("loads")
}

const EXIT: Insn = Insn::new(0x95, 0, 0, 0, 0);

fn mov(dst: u8, imm: i32) -> Insn {
    Insn::new(0xb7, dst, 0, 0, imm)
}

#[test]
fn out_of_bounds_load_names_the_instruction() {
    // r0 = *(u64 *)(r1 + 6) on 8 bytes of memory
    let p = load(&[mov(0, 0), Insn::new(0x79, 0, 1, 6, 0), EXIT], Helpers::new());
    let e = run_on_memory(&p, &mut [0u8; 8], &mut Stack::new()).unwrap_err();
    assert!(matches!(e, VmError::Memory { pc: 1, len: 8, write: false, .. }), "{e}");
    assert!(e.to_string().starts_with("instruction 1: load of 8 bytes"), "{e}");
    // stack: below the last frame is outside
    let p = load(&[mov(0, 0), Insn::new(0x7a, 10, 0, 8, 1), EXIT], Helpers::new());
    let e = run_on_memory(&p, &mut [], &mut Stack::new()).unwrap_err();
    assert!(matches!(e, VmError::Memory { pc: 1, write: true, .. }), "{e}");
    // a null pointer
    let p = load(&[mov(1, 0), Insn::new(0x71, 0, 1, 0, 0), EXIT], Helpers::new());
    assert!(matches!(run_on_memory(&p, &mut [], &mut Stack::new()), Err(VmError::Memory { pc: 1, .. })));
}

#[test]
fn infinite_loop_is_stopped_by_the_budget() {
    let p = load(&[mov(0, 0), Insn::new(0x05, 0, 0, -1, 0), EXIT], Helpers::new());
    let mut stack = Stack::new();
    let mut env = ();
    let mut m = Machine::new(&p, &mut stack, &mut env);
    m.budget = 1000;
    assert_eq!(m.run(0), Err(VmError::Budget { pc: 1 }));
}

#[test]
fn recursion_is_limited_to_eight_frames() {
    // f: call f (never returns)
    let p = load(&[mov(0, 0), Insn::new(0x85, 0, 1, 0, -1), EXIT], Helpers::new());
    let e = run_on_memory(&p, &mut [], &mut Stack::new()).unwrap_err();
    assert_eq!(e, VmError::CallDepth { pc: 1 });
}

#[test]
fn local_calls_get_their_own_frame_and_restore_callee_saved() {
    // main: r6 = 7; *(u64*)(r10-8) = 5; call f; r0 += r6; r0 += *(r10-8); exit
    // f:    *(u64*)(r10-8) = 100; r6 = 1; r0 = *(r10-8); exit
    let prog = [
        mov(6, 7),
        Insn::new(0x7a, 10, 0, -8, 5),
        Insn::new(0x85, 0, 1, 0, 4),
        Insn::new(0x0f, 0, 6, 0, 0),
        Insn::new(0x79, 1, 10, -8, 0),
        Insn::new(0x0f, 0, 1, 0, 0),
        EXIT,
        Insn::new(0x7a, 10, 0, -8, 100),
        mov(6, 1),
        Insn::new(0x79, 0, 10, -8, 0),
        EXIT,
    ];
    let p = load(&prog, Helpers::new());
    assert_eq!(run_on_memory(&p, &mut [], &mut Stack::new()), Ok(112));
}

fn helper_loop(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    // bpf_loop(nr, callback, ctx, flags)
    let mut i = 0;
    while i < a[0] {
        i += 1;
        if m.call_function(a[1], [i - 1, a[2], 0, 0, 0])? != 0 {
            break;
        }
    }
    Ok(i)
}

#[test]
fn callbacks_run_program_functions() {
    // r6 = 0 accumulator on stack; bpf_loop(5, cb, r10-8): cb adds index to *(u64*)ctx
    let prog = [
        Insn::new(0x7a, 10, 0, -8, 0),
        mov(1, 5),
        Insn::new(0x18, 2, 4, 0, 6), // lddw r2, func +6 -> slot 9
        Insn::new(0, 0, 0, 0, 0),
        Insn::new(0xbf, 3, 10, 0, 0),
        Insn::new(0x07, 3, 0, 0, -8),
        Insn::new(0x85, 0, 0, 0, 181),
        Insn::new(0x79, 0, 10, -8, 0),
        EXIT,
        // cb(index r1, ctx r2): *(u64*)r2 += r1; return 0
        Insn::new(0x79, 3, 2, 0, 0),
        Insn::new(0x0f, 3, 1, 0, 0),
        Insn::new(0x7b, 2, 3, 0, 0),
        mov(0, 0),
        EXIT,
    ];
    let mut h = Helpers::new();
    h.register(181, "loop", helper_loop);
    let p = load(&prog, h);
    assert_eq!(run_on_memory(&p, &mut [], &mut Stack::new()), Ok(10));
}

thread_local! {
    static TARGET: std::cell::RefCell<Option<Arc<Program>>> = const { std::cell::RefCell::new(None) };
}

fn helper_tail_call(m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    let t = TARGET.with(|t| t.borrow().clone()).expect("target set");
    Ok(if m.request_tail_call(t) { 0 } else { (-2i64) as u64 })
}

#[test]
fn tail_calls_replace_the_program_and_stop_after_33() {
    // target: r0 = 42; exit
    let target = Arc::new(load(&[mov(0, 42), EXIT], Helpers::new()));
    TARGET.with(|t| *t.borrow_mut() = Some(target));
    let mut h = Helpers::new();
    h.register(12, "tail_call", helper_tail_call);
    // caller: tail_call(); r0 = 1; exit  (reached only if the tail call fails)
    let p = load(&[Insn::new(0x85, 0, 0, 0, 12), mov(0, 1), EXIT], h.clone());
    assert_eq!(run_on_memory(&p, &mut [], &mut Stack::new()), Ok(42));
    // a program tail-calling itself: stops after 33 and falls through
    let insns = [Insn::new(0x07, 6, 0, 0, 1), Insn::new(0x85, 0, 0, 0, 12), Insn::new(0xbf, 0, 6, 0, 0), EXIT];
    let mut opts = LoadOptions::new(Arc::new(h));
    opts.entry_regs = None;
    let selfp = Arc::new(Program::load(&insns, &opts).unwrap());
    TARGET.with(|t| *t.borrow_mut() = Some(selfp.clone()));
    let mut stack = Stack::new();
    let mut env = ();
    let mut m = Machine::new(&selfp, &mut stack, &mut env);
    // r6 is not reset by a tail call here, so it counts the 34 entries
    assert_eq!(m.run(0), Ok(34));
    // A re-armed machine starts over: the entry program, a fresh count of
    // tail calls and a fresh budget.
    m.budget = 1;
    m.rearm();
    assert_eq!(m.run(0), Ok(34));
    // The same with a different entry program than the tail-call target.
    let caller = load(&[Insn::new(0x85, 0, 0, 0, 12), mov(0, 1), EXIT], {
        let mut h = Helpers::new();
        h.register(12, "tail_call", helper_tail_call);
        h
    });
    let target = Arc::new(load(&[mov(0, 42), EXIT], Helpers::new()));
    TARGET.with(|t| *t.borrow_mut() = Some(target));
    let mut stack = Stack::new();
    let mut m = Machine::new(&caller, &mut stack, &mut env);
    for _ in 0..3 {
        assert_eq!(m.run(0), Ok(42));
        m.rearm();
        assert!(core::ptr::eq(m.program(), &caller), "re-armed on its entry program");
    }
}

#[test]
fn unknown_helpers_are_named_at_load() {
    let e =
        Program::load(&[Insn::new(0x85, 0, 0, 0, 44), mov(0, 0), EXIT], &LoadOptions::new(Arc::new(Helpers::new())))
            .unwrap_err();
    assert_eq!(e.to_string(), "instruction 0: helper xdp_adjust_head (#44) is not supported");
}

#[test]
fn atomics_must_be_aligned() {
    let prog = [mov(0, 0), mov(1, 1), Insn::new(0xdb, 10, 1, -12, 0), EXIT];
    let p = load(&prog, Helpers::new());
    assert!(matches!(run_on_memory(&p, &mut [], &mut Stack::new()), Err(VmError::Misaligned { pc: 2, .. })));
}
