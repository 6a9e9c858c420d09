//! JIT behaviour beyond the conformance suite: tail calls (native and
//! mixed), helpers that move regions, shared (map value) regions, budgets,
//! callbacks, panics, options and errors. Every run is compared with the
//! interpreter on the same program.

use std::sync::{Arc, Mutex};
use uxdp_isa::Insn;
use uxdp_jit::{attach, attach_with, compile, JitError, JitOptions};
use uxdp_vm::{Helpers, LoadOptions, Machine, Program, Region, Stack, VmError};

fn asm(text: &str) -> Vec<Insn> {
    uxdp_asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn load_with(text: &str, h: Arc<Helpers>, shared: Vec<Region>) -> Program {
    let mut o = LoadOptions::new(h);
    o.entry_regs = None;
    o.shared_regions = shared;
    Program::load(&asm(text), &o).unwrap_or_else(|e| panic!("{e}"))
}

/// Per-run environment of these tests.
#[derive(Default)]
struct Env {
    target: Option<Arc<Program>>,
    moved: Vec<u8>,
    slot: usize,
}

fn env<'a>(m: &'a mut Machine<'_>) -> &'a mut Env {
    m.env.downcast_mut::<Env>().expect("test env")
}

fn tail_call(m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    let Some(t) = env(m).target.clone() else { return Ok(u64::MAX) };
    Ok(if m.request_tail_call(t) { 0 } else { 1 })
}

/// Moves per-run region `slot` to the env's buffer (like xdp_adjust_head).
fn move_region(m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    let e = env(m);
    let r = Region::of_mut_slice(&mut e.moved);
    let slot = e.slot;
    m.mem.set(slot, r);
    Ok(r.start)
}

fn callback(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    m.call_function(a[0], [a[1], a[2], 0, 0, 0])
}

fn boom(_m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    panic!("helper panicked on purpose")
}

fn helpers() -> Arc<Helpers> {
    let mut h = Helpers::new();
    h.register(12, "tail_call", tail_call)
        .register(44, "move_region", move_region)
        .register(181, "loop_cb", callback)
        .register(99, "boom", boom);
    Arc::new(h)
}

/// Memory reused by every run of a test, so that addresses in results and
/// faults are the same for both engines.
struct Bufs {
    buf: Vec<u8>,
    moved: Vec<u8>,
    stack: Stack,
}

thread_local! {
    // The 16-byte buffer sits at the start of a 4 KiB allocation, so reads
    // just past it land in memory no region covers (another region, such
    // as the stack, can never be adjacent), whatever the heap layout.
    static BUFS: std::cell::RefCell<Bufs> = std::cell::RefCell::new(Bufs {
        buf: {
            let mut v = Vec::with_capacity(4096);
            v.resize(16, 0);
            v
        },
        moved: vec![0; 32],
        stack: Stack::new(),
    });
}

/// Runs `p` with a 16-byte writable buffer (0..16) in r1 and returns
/// (result, buffer, budget left).
fn run(p: &Program, native: bool, target: Option<Arc<Program>>, budget: u64) -> (Result<u64, VmError>, Vec<u8>, u64) {
    BUFS.with(|b| {
        let b = &mut *b.borrow_mut();
        b.buf.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8);
        b.moved.fill(0xab);
        b.stack.clear();
        let mut e = Env { target, moved: std::mem::take(&mut b.moved), slot: 1 };
        let mut m = Machine::new(p, &mut b.stack, &mut e);
        m.native = native;
        m.budget = budget;
        let addr = b.buf.as_mut_ptr() as u64;
        m.mem.push(Region::of_mut_slice(&mut b.buf));
        let r = m.run(addr);
        let left = m.budget;
        drop(m);
        b.moved = e.moved;
        (r, b.buf.clone(), left)
    })
}

fn same(p: &Program, target: Option<Arc<Program>>, budget: u64) -> Result<u64, VmError> {
    let i = run(p, false, target.clone(), budget);
    if p.native().is_none() {
        attach(p).unwrap();
    }
    let j = run(p, true, target, budget);
    assert_eq!(i, j, "interpreter vs JIT");
    j.0
}

const TARGET: &str = "
    ldxb %r0, [%r1+3]
    add %r0, %r6
    add %r0, %r10
    sub %r0, %r10
    exit
";

#[test]
fn tail_calls_replace_the_current_function() {
    // main: r6 = 100; call f; r0 += 1000; exit
    // f: r6 = 7; tail call (target returns buf[3] + r6 = 10); unreached
    let main = "
        mov %r6, 100
        call local f
        add %r0, 1000
        add %r0, %r6
        exit
    f:
        mov %r6, 7
        call 12
        mov %r0, 55555
        exit
    ";
    for (native_main, native_target) in [(true, true), (true, false), (false, true)] {
        let t = Arc::new(load_with(TARGET, helpers(), vec![]));
        let p = load_with(main, helpers(), vec![]);
        if native_target {
            attach(&t).unwrap();
        }
        let i = run(&p, false, Some(t.clone()), 1000);
        if native_main {
            attach(&p).unwrap();
        }
        let j = run(&p, true, Some(t), 1000);
        assert_eq!(i, j, "main native {native_main}, target native {native_target}");
        assert_eq!(j.0, Ok(3 + 7 + 1000 + 100));
    }
}

#[test]
fn tail_call_chains_stop_at_the_limit() {
    // A program that tail-calls itself: after 33 tail calls the helper fails
    // (returns 1) and the program returns the count it kept in memory.
    let p = Arc::new(load_with(
        "
        ldxdw %r2, [%r1+8]
        add %r2, 1
        stxdw [%r1+8], %r2
        call 12
        ldxdw %r0, [%r1+8]
        exit
        ",
        helpers(),
        vec![],
    ));
    let i = run(&p, false, Some(p.clone()), 100_000);
    attach(&p).unwrap();
    let j = run(&p, true, Some(p.clone()), 100_000);
    assert_eq!(i, j);
    assert_eq!(j.0, Ok(u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]) + 34));
}

#[test]
fn helpers_that_move_regions_are_honoured() {
    // Region slot 1 (the buffer) moves to a 32-byte buffer of 0xab: the
    // old address now faults, the new one works.
    let p = load_with(
        "
        mov %r6, %r1
        call 44
        ldxb %r2, [%r0+31]
        ldxb %r3, [%r6+0]
        exit
        ",
        helpers(),
        vec![],
    );
    let e = same(&p, None, 1000).unwrap_err();
    assert!(matches!(e, VmError::Memory { pc: 3, len: 1, write: false, .. }), "{e}");
}

#[test]
fn helpers_declared_to_keep_regions_skip_only_their_own_reload() {
    // Helper 44 moves the buffer; with every other helper declared
    // region-keeping, the move is still seen.
    let text = "
        mov %r6, %r1
        call 44
        ldxb %r2, [%r0+31]
        ldxb %r3, [%r6+0]
        exit
        ";
    let keeps = |id: u32| id != 44;
    let opts = JitOptions { keeps_regions: Some(&keeps), ..Default::default() };
    let p = load_with(text, helpers(), vec![]);
    let i = run(&p, false, None, 1000);
    attach_with(&p, &opts).unwrap();
    assert_eq!(run(&p, true, None, 1000), i);
    assert!(matches!(i.0, Err(VmError::Memory { pc: 3, .. })), "{:?}", i.0);
    // A region-keeping helper (a tail call that finds no target returns
    // u64::MAX) is called as usual and faults the same.
    let keeps = |id: u32| id == 12;
    let opts = JitOptions { keeps_regions: Some(&keeps), ..Default::default() };
    let p = load_with(
        "call 12
ldxb %r1, [%r1+16]
exit",
        helpers(),
        vec![],
    );
    let i = run(&p, false, None, 1000);
    attach_with(&p, &opts).unwrap();
    assert_eq!(run(&p, true, None, 1000), i);
    assert!(matches!(i.0, Err(VmError::Memory { pc: 1, .. })), "{:?}", i.0);
    let p = load_with(
        "call 12
ldxb %r0, [%r1+15]
exit",
        helpers(),
        vec![],
    );
    let i = run(&p, false, None, 1000);
    attach_with(&p, &opts).unwrap();
    assert_eq!(run(&p, true, None, 1000), i);
    assert_eq!(i.0, Ok(15));
}

#[test]
fn shared_regions_are_checked_outside_the_inline_table() {
    let map = Box::leak(Box::new([5u8; 24]));
    let ro = Box::leak(Box::new([9u8; 8]));
    let (a, b) = (map.as_mut_ptr() as u64, ro.as_ptr() as u64);
    let shared = vec![Region::of_mut_slice(map), Region::of_slice(ro)];
    let ok = format!(
        "lddw %r2, {a:#x}\n mov %r3, 1\n lock add [%r2+16], %r3\n ldxdw %r0, [%r2+16]\n lddw %r4, {b:#x}\n ldxb %r5, [%r4+7]\n add %r0, %r5\n exit"
    );
    let p = load_with(&ok, helpers(), shared.clone());
    assert_eq!(run(&p, false, None, 100).0, Ok(0x0505_0505_0505_0506 + 9));
    attach(&p).unwrap();
    assert_eq!(run(&p, true, None, 100).0, Ok(0x0505_0505_0505_0507 + 9));
    // Stores into a read-only region and reads past a map value fault.
    let bad_store = format!("lddw %r4, {b:#x}\n stb [%r4+0], 1\n mov %r0, 0\n exit");
    let e = same(&load_with(&bad_store, helpers(), shared.clone()), None, 100).unwrap_err();
    assert!(matches!(e, VmError::Memory { pc: 2, write: true, len: 1, .. }), "{e}");
    let past = format!("lddw %r2, {a:#x}\n ldxw %r0, [%r2+21]\n exit");
    let e = same(&load_with(&past, helpers(), shared), None, 100).unwrap_err();
    assert!(matches!(e, VmError::Memory { pc: 2, len: 4, .. }), "{e}");
}

#[test]
fn budgets_end_loops_at_the_same_instruction() {
    let p = load_with("mov %r0, 0\nl:\nadd %r0, 1\njlt %r0, 1000000, l\nexit", helpers(), vec![]);
    assert_eq!(same(&p, None, 500), Err(VmError::Budget { pc: 2 }));
    let p = load_with("mov %r0, 0\nl:\nadd %r0, 1\nja l\nexit", helpers(), vec![]);
    assert_eq!(same(&p, None, 77), Err(VmError::Budget { pc: 2 }));
    // Enough budget: the loop ends and both engines leave the same budget.
    let p = load_with("mov %r0, 0\nl:\nadd %r0, 1\njlt %r0, 100, l\nexit", helpers(), vec![]);
    assert_eq!(same(&p, None, 1000), Ok(100));
}

#[test]
fn programs_known_to_terminate_are_not_charged_for_loops() {
    // 100 iterations with a budget of 10: the interpreter (and the JIT
    // without the option) stop at the backward jump; code compiled with
    // `terminates` runs the loop as the kernel's JIT would.
    let text = "mov %r0, 0\nl:\nadd %r0, 1\njlt %r0, 100, l\nexit";
    let p = load_with(text, helpers(), vec![]);
    assert_eq!(same(&p, None, 10), Err(VmError::Budget { pc: 2 }));
    let q = load_with(text, helpers(), vec![]);
    attach_with(&q, &JitOptions { terminates: true, ..Default::default() }).unwrap();
    assert_eq!(run(&q, true, None, 10).0, Ok(100));
}

#[test]
fn recursion_and_callbacks_match_the_interpreter() {
    let rec = load_with("mov %r0, 0\ncall local f\nexit\nf:\nadd %r0, 1\ncall local f\nexit", helpers(), vec![]);
    assert_eq!(same(&rec, None, 1000), Err(VmError::CallDepth { pc: 4 }));
    // Callback: r0 = cb(r1 = buf, r2 = 5) where cb reads buf[r2] and faults past it.
    let cb = "
        mov %r6, %r1
        lddw %r1, func cb
        mov %r2, %r6
        mov %r3, 5
        call 181
        mov %r7, %r0
        lddw %r1, func cb
        mov %r2, %r6
        mov %r3, 40
        call 181
        exit
    cb:
        add %r1, %r2
        ldxb %r0, [%r1+0]
        exit
    ";
    let p = load_with(cb, helpers(), vec![]);
    let e = same(&p, None, 1000).unwrap_err();
    assert!(matches!(e, VmError::BadCallback { pc: 4, .. } | VmError::Memory { .. }), "{e}");
}

#[test]
fn helper_panics_propagate_after_the_native_frames_are_gone() {
    let p = load_with("call 99\nexit", helpers(), vec![]);
    attach(&p).unwrap();
    let r = std::panic::catch_unwind(|| run(&p, true, None, 10));
    let msg = r.err().and_then(|e| e.downcast_ref::<&str>().map(|s| s.to_string()));
    assert_eq!(msg.as_deref(), Some("helper panicked on purpose"));
}

#[test]
fn atomic_fetch_into_r10_keeps_stack_accesses_checked() {
    // Validation accepts a fetch into r10; afterwards r10 is an arbitrary
    // value and stack accesses through it must be checked, not trusted.
    let p = load_with(
        "stdw [%r10-8], 0\nmov %r1, 0\nlock fetch add [%r10-8], %r10\nstdw [%r10-8], 1\nmov %r0, 0\nexit",
        helpers(),
        vec![],
    );
    let e = same(&p, None, 100).unwrap_err();
    assert!(matches!(e, VmError::Memory { pc: 3, len: 8, write: true, .. }), "{e}");
}

#[test]
fn options_and_errors() {
    let p = load_with("mov %r0, 1\nexit", helpers(), vec![]);
    let e = compile(&p, &JitOptions { proven: Some(&[true]), ..Default::default() }).unwrap_err();
    assert!(matches!(e, JitError::ProvenLength { got: 1, want: 2 }), "{e}");
    let jp = compile(&p, &JitOptions { proven: Some(&[false, false]), ..Default::default() }).unwrap();
    assert!(jp.code_size() > 0 && jp.insns() == 2);
    attach(&p).unwrap();
    assert!(matches!(attach(&p), Err(JitError::AlreadyAttached)));
    assert!(uxdp_jit::available());
}

#[test]
fn proven_accesses_skip_the_check() {
    // With the access marked proven the JIT trusts it: an in-bounds access
    // behaves the same; only the check is gone (not observable here).
    let p = load_with("ldxb %r0, [%r1+15]\nexit", helpers(), vec![]);
    let i = run(&p, false, None, 10);
    attach_with(&p, &JitOptions { proven: Some(&[true, false]), ..Default::default() }).unwrap();
    assert_eq!(run(&p, true, None, 10), i);
    assert_eq!(i.0, Ok(15));
}

#[test]
fn machines_can_force_the_interpreter() {
    static CALLS: Mutex<u32> = Mutex::new(0);
    struct Counting(uxdp_jit::JitProgram);
    impl uxdp_vm::NativeCode for Counting {
        fn run(&self, m: &mut Machine<'_>, e: usize, r: &[u64; 11], d: usize) -> Result<u64, VmError> {
            *CALLS.lock().unwrap() += 1;
            self.0.run(m, e, r, d)
        }
    }
    let p = load_with("mov %r0, 3\nexit", helpers(), vec![]);
    p.set_native(Arc::new(Counting(compile(&p, &JitOptions::default()).unwrap())));
    assert_eq!(run(&p, false, None, 10).0, Ok(3));
    assert_eq!(*CALLS.lock().unwrap(), 0);
    assert_eq!(run(&p, true, None, 10).0, Ok(3));
    assert_eq!(*CALLS.lock().unwrap(), 1);
}
