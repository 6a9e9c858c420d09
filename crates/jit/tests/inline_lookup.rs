//! Inlined `bpf_map_lookup_elem` on array maps ([`JitOptions::array_lookup`]):
//! every case is compared with the interpreter calling the helper, and the
//! helper's call count shows which calls were inlined.

use std::sync::{Arc, OnceLock};
use uxdp_isa::Insn;
use uxdp_jit::{attach_with, ArrayLookup, JitOptions};
use uxdp_vm::{Helpers, LoadOptions, Machine, Program, Region, Stack, VmError};

const HANDLE: u64 = 0xffff_e000_0000_0000;
const PERCPU: u64 = HANDLE + 1;
const MAX: u32 = 5;
const ELEM: u32 = 16;
const CPUS: u32 = 3;

/// Value memory of the two arrays: a plain one (`MAX` values) and a per-CPU
/// one (`CPUS` blocks of `MAX` values), leaked so addresses are stable.
fn values() -> (u64, u64) {
    static V: OnceLock<(u64, u64)> = OnceLock::new();
    *V.get_or_init(|| {
        let a: &'static mut [u8] = Box::leak(vec![0u8; (MAX * ELEM) as usize].into_boxed_slice());
        let b: &'static mut [u8] = Box::leak(vec![0u8; (MAX * ELEM * CPUS) as usize].into_boxed_slice());
        (a.as_mut_ptr() as u64, b.as_mut_ptr() as u64)
    })
}

fn layout(handle: u64) -> Option<ArrayLookup> {
    let (a, b) = values();
    match handle {
        HANDLE => Some(ArrayLookup { base: a, elem_size: ELEM, max_entries: MAX, cpu_stride: 0, nr_cpus: 1 }),
        PERCPU => Some(ArrayLookup {
            base: b,
            elem_size: ELEM,
            max_entries: MAX,
            cpu_stride: (MAX * ELEM) as u64,
            nr_cpus: CPUS,
        }),
        _ => None,
    }
}

/// The helper: the same semantics the inline code must have.
fn lookup(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    *m.env.downcast_mut::<u32>().expect("test env") += 1;
    let pc = m.pc();
    let key =
        m.mem.slice(a[1], 4).ok_or_else(|| VmError::Helper { pc, helper: "map_lookup_elem", msg: "bad key".into() })?;
    let index = u32::from_le_bytes([key[0], key[1], key[2], key[3]]);
    let l = layout(a[0]).ok_or_else(|| VmError::Helper { pc, helper: "map_lookup_elem", msg: "not a map".into() })?;
    if index >= l.max_entries || (l.cpu_stride != 0 && m.cpu >= l.nr_cpus) {
        return Ok(0);
    }
    Ok(l.base + m.cpu as u64 * l.cpu_stride + index as u64 * l.elem_size as u64)
}

fn load(text: &str) -> Program {
    let mut h = Helpers::new();
    h.register(1, "map_lookup_elem", lookup);
    let (a, b) = values();
    let mut o = LoadOptions::new(Arc::new(h));
    o.entry_regs = None;
    o.shared_regions = vec![
        Region { start: a, len: (MAX * ELEM) as u64, writable: true },
        Region { start: b, len: (MAX * ELEM * CPUS) as u64, writable: true },
    ];
    let insns: Vec<Insn> = uxdp_asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Program::load(&insns, &o).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs with a 16-byte buffer in r1; returns (result, helper calls, budget left).
fn run(p: &Program, native: bool, cpu: u32, budget: u64) -> (Result<u64, VmError>, u32, u64) {
    let mut buf = [0u8; 16];
    buf[4] = 2;
    let mut stack = Stack::new();
    let mut calls = 0u32;
    let mut m = Machine::new(p, &mut stack, &mut calls);
    m.native = native;
    m.cpu = cpu;
    m.budget = budget;
    let addr = buf.as_mut_ptr() as u64;
    m.mem.push(Region::of_mut_slice(&mut buf));
    let r = m.run(addr);
    let left = m.budget;
    drop(m);
    (r, calls, left)
}

/// Compares both engines; returns the result and the JIT's helper calls.
fn same(p: &Program, cpu: u32, budget: u64) -> (Result<u64, VmError>, u32) {
    let i = run(p, false, cpu, budget);
    let j = run(p, true, cpu, budget);
    assert_eq!((&i.0, i.2), (&j.0, j.2), "interpreter vs JIT");
    (j.0, j.1)
}

fn jit(text: &str) -> Program {
    let p = load(text);
    attach_with(&p, &JitOptions { array_lookup: Some(&layout), ..Default::default() }).unwrap();
    p
}

/// Looks up `key` (stored on the stack) in the map `handle` and touches the
/// value; returns the pointer, or 1 << 40 for NULL.
fn lookup_prog(handle: u64, key: u32) -> String {
    format!(
        "stw [%r10-4], {}\n mov %r2, %r10\n add %r2, -4\n lddw %r1, {handle:#x}\n call 1\n \
         jne %r0, 0, found\n lddw %r0, 0x10000000000\n exit\n found:\n ldxdw %r3, [%r0+8]\n stxdw [%r0+8], %r3\n exit",
        key as i32
    )
}

#[test]
fn array_lookups_are_inlined_and_match_the_helper() {
    let (a, b) = values();
    for key in [0u32, 1, MAX - 1, MAX, MAX + 1, u32::MAX, 0x8000_0000] {
        let p = jit(&lookup_prog(HANDLE, key));
        let (r, calls) = same(&p, 0, 100);
        assert_eq!(calls, 0, "key {key}: inlined");
        let want = if key < MAX { a + (key * ELEM) as u64 } else { 1 << 40 };
        assert_eq!(r, Ok(want), "key {key}");
        // Plain arrays ignore the CPU.
        assert_eq!(same(&p, 7, 100), (Ok(want), 0), "key {key} on cpu 7");
        for cpu in [0u32, 1, CPUS - 1, CPUS, 7] {
            let p = jit(&lookup_prog(PERCPU, key));
            let (r, calls) = same(&p, cpu, 100);
            assert_eq!(calls, 0, "per-CPU key {key} cpu {cpu}: inlined");
            let want = if key < MAX && cpu < CPUS { b + (cpu * MAX * ELEM + key * ELEM) as u64 } else { 1 << 40 };
            assert_eq!(r, Ok(want), "per-CPU key {key} cpu {cpu}");
        }
    }
}

#[test]
fn lookups_the_jit_cannot_inline_call_the_helper() {
    let (a, _) = values();
    // A key outside the stack (in the buffer: buf[4..8] = 2): the helper.
    let p = jit(&format!("mov %r2, %r1\n add %r2, 4\n lddw %r1, {HANDLE:#x}\n call 1\n exit"));
    assert_eq!(same(&p, 0, 100), (Ok(a + 2 * ELEM as u64), 1));
    // An unreadable key faults in the helper, as without inlining.
    let p = jit(&format!("mov %r2, 8\n lddw %r1, {HANDLE:#x}\n call 1\n exit"));
    let (r, calls) = same(&p, 0, 100);
    assert!(matches!(r, Err(VmError::Helper { pc: 3, .. })), "{r:?}");
    assert_eq!(calls, 1);
    // A map the resolver does not know.
    let p =
        jit(&format!("stw [%r10-4], 0\n mov %r2, %r10\n add %r2, -4\n lddw %r1, {:#x}\n call 1\n exit", HANDLE + 9));
    let (r, calls) = same(&p, 0, 100);
    assert!(matches!(r, Err(VmError::Helper { pc: 5, .. })), "{r:?}");
    assert_eq!(calls, 1);
    // r1 is not a constant at the call: reached by a jump, or changed.
    let joined = format!(
        "stw [%r10-4], 1\n mov %r2, %r10\n add %r2, -4\n lddw %r1, {HANDLE:#x}\n jeq %r2, 0, l\n l:\n call 1\n exit"
    );
    assert_eq!(same(&jit(&joined), 0, 100), (Ok(a + ELEM as u64), 1));
    let changed =
        format!("stw [%r10-4], 1\n mov %r2, %r10\n add %r2, -4\n lddw %r1, {HANDLE:#x}\n add %r1, 0\n call 1\n exit");
    assert_eq!(same(&jit(&changed), 0, 100), (Ok(a + ELEM as u64), 1));
    // Without the option nothing is inlined.
    let p = load(&lookup_prog(HANDLE, 1));
    attach_with(&p, &JitOptions::default()).unwrap();
    assert_eq!(same(&p, 0, 100).1, 1);
}

#[test]
fn inlined_lookups_charge_the_budget_and_keep_r1_to_r5() {
    // A loop of lookups runs out of budget at the same instruction.
    let looped = format!(
        "stw [%r10-4], 1\n mov %r2, %r10\n add %r2, -4\n mov %r6, 0\n l:\n lddw %r1, {HANDLE:#x}\n call 1\n \
         add %r6, 1\n jlt %r6, 1000, l\n exit"
    );
    let p = jit(&looped);
    assert_eq!(same(&p, 0, 9), (Err(VmError::Budget { pc: 6 }), 0));
    assert_eq!(same(&p, 0, 10_000).1, 0);
    // r1-r5 are unchanged by the call.
    let keep = format!(
        "stw [%r10-4], 3\n mov %r2, %r10\n add %r2, -4\n mov %r3, 33\n mov %r4, 44\n mov %r5, 55\n \
         lddw %r1, {HANDLE:#x}\n call 1\n mov %r0, %r1\n add %r0, %r3\n add %r0, %r4\n add %r0, %r5\n \
         sub %r0, %r2\n add %r0, %r10\n exit"
    );
    let (r, calls) = same(&jit(&keep), 0, 100);
    assert_eq!(calls, 0);
    assert_eq!(r, Ok(HANDLE + 33 + 44 + 55 + 4));
}

/// Calls of the direct lookup below.
static DIRECT_CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The direct form of the helper: `obj` is the map handle (in an `Arc`).
extern "sysv64" fn direct(obj: *const (), key: *const u8, cpu: u64) -> u64 {
    DIRECT_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: `obj` points at the u64 inside the Arc made by `resolver`;
    // the generated code checked that 4 key bytes are readable.
    let (handle, index) = unsafe { (*(obj as *const u64), core::ptr::read_unaligned(key as *const u32)) };
    match layout(handle) {
        Some(l) if index < l.max_entries && (l.cpu_stride == 0 || (cpu as u32) < l.nr_cpus) => {
            l.base + cpu * l.cpu_stride + index as u64 * l.elem_size as u64
        }
        _ => 0,
    }
}

fn resolver(handle: u64) -> Option<uxdp_jit::DirectLookup> {
    layout(handle).map(|_| uxdp_jit::DirectLookup { func: direct, obj: Arc::new(handle), key_size: 4 })
}

#[test]
fn direct_lookups_skip_the_helper_for_keys_on_the_stack() {
    let (a, _) = values();
    let direct_calls = || DIRECT_CALLS.load(std::sync::atomic::Ordering::Relaxed);
    for (key, handle) in [(1u32, HANDLE), (MAX, HANDLE), (2, PERCPU)] {
        let p = load(&lookup_prog(handle, key));
        attach_with(&p, &JitOptions { map_lookup: Some(&resolver), ..Default::default() }).unwrap();
        let before = direct_calls();
        let (r, calls) = same(&p, 1, 100);
        assert_eq!((calls, direct_calls() - before), (0, 1), "key {key}: direct call, no helper");
        if handle == HANDLE {
            assert_eq!(r, Ok(if key < MAX { a + (key * ELEM) as u64 } else { 1 << 40 }));
        }
    }
    // A key in another region (the buffer in r1) takes the helper.
    let p = load(&format!(
        "mov %r2, %r1\n add %r2, 4\n lddw %r1, {HANDLE:#x}\n call 1\n jne %r0, 0, found\n mov %r0, 7\n exit\n found:\n \
         ldxdw %r0, [%r0+0]\n exit"
    ));
    attach_with(&p, &JitOptions { map_lookup: Some(&resolver), ..Default::default() }).unwrap();
    let before = direct_calls();
    let (r, calls) = same(&p, 0, 100);
    assert_eq!((calls, direct_calls() - before), (1, 0), "helper, no direct call");
    assert_eq!(r, Ok(0));
    // A key running off the top of the stack: the helper faults as in the interpreter.
    let p = load(&format!("mov %r2, %r10\n add %r2, -2\n lddw %r1, {HANDLE:#x}\n call 1\n exit"));
    attach_with(&p, &JitOptions { map_lookup: Some(&resolver), ..Default::default() }).unwrap();
    let (r, _) = same(&p, 0, 100);
    assert!(matches!(r, Err(VmError::Helper { pc: 4, .. })), "{r:?}");
}
