//! Native chains: verdicts and masks, lazy switching of the machine to the
//! running program (its helpers, shared regions and the embedder's switch
//! callback), faults with the link that faulted, legacy loads ending a
//! program early, counting, and the same results as running each program
//! alone.

use std::ptr::NonNull;
use std::sync::Arc;
use uxdp_jit::{attach, ChainLink, ChainOutcome, CounterLayout, NativeChain};
use uxdp_vm::{Helpers, LoadOptions, Machine, Program, Region, Stack, VmError};

/// Helper 7 returns the id of the program the machine runs (its first
/// instruction's immediate), so a test sees which program the machine was
/// switched to.
fn whoami(m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    Ok(m.program().ops()[0].imm as u64)
}

fn prog(text: &str, shared: Vec<Region>) -> Arc<Program> {
    let mut h = Helpers::new();
    h.register(7, "whoami", whoami);
    let mut o = LoadOptions::new(Arc::new(h));
    o.shared_regions = shared;
    o.entry_regs = None;
    let insns = uxdp_asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let p = Arc::new(Program::load(&insns, &o).unwrap_or_else(|e| panic!("{e}")));
    attach(&p).unwrap();
    p
}

fn links(progs: &[(Arc<Program>, u32)]) -> Vec<ChainLink<'_>> {
    progs.iter().map(|(p, mask)| ChainLink { program: p, mask: *mask, counters: None }).collect()
}

const PASS_ONLY: u32 = 1 << 2 | 1 << 31;

/// Runs `chain` on a fresh machine for `progs[0]` with a 64-byte context
/// region; returns the outcome and the switches made.
fn run(chain: &NativeChain, first: &Program, slot: Option<usize>) -> (ChainOutcome, Vec<usize>) {
    let mut stack = Stack::new();
    let mut env = ();
    let mut ctx = [0u8; 64];
    let region = Region::of_mut_slice(&mut ctx);
    let mut m = Machine::new(first, &mut stack, &mut env);
    m.mem.push(region);
    let mut switches = Vec::new();
    let out = chain.run(&mut m, region.start, slot, &mut |_m, i| switches.push(i));
    assert!(std::ptr::eq(m.program(), first), "the machine runs its own program again afterwards");
    (out, switches)
}

#[test]
fn verdicts_follow_the_chain_call_masks() {
    let pass = prog("mov %r0, 2\nexit", vec![]);
    let drop = prog("mov %r0, 1\nexit", vec![]);
    let tx = prog("mov %r0, 3\nexit", vec![]);
    // All pass: completed.
    let ps = vec![(pass.clone(), PASS_ONLY), (pass.clone(), PASS_ONLY), (pass.clone(), PASS_ONLY)];
    let c = unsafe { NativeChain::new(&links(&ps), None) }.unwrap();
    assert!(matches!(run(&c, &pass, None).0, ChainOutcome::Completed));
    // The drop in the middle stops the chain.
    let ps = vec![(pass.clone(), PASS_ONLY), (drop.clone(), PASS_ONLY), (tx.clone(), PASS_ONLY)];
    let c = unsafe { NativeChain::new(&links(&ps), None) }.unwrap();
    assert!(matches!(run(&c, &pass, None).0, ChainOutcome::Stopped { at: 1, retval: 1 }));
    // ... unless DROP is a chain-call action of that link.
    let ps = vec![(pass.clone(), PASS_ONLY), (drop.clone(), PASS_ONLY | 1 << 1), (tx.clone(), PASS_ONLY)];
    let c = unsafe { NativeChain::new(&links(&ps), None) }.unwrap();
    assert!(matches!(run(&c, &pass, None).0, ChainOutcome::Stopped { at: 2, retval: 3 }));
    // The mask is tested with `ret % 32`, as the dispatcher's 32-bit shift.
    let r33 = prog("mov %r0, 33\nexit", vec![]);
    let ps = vec![(r33.clone(), 1 << 1), (tx.clone(), PASS_ONLY)];
    let c = unsafe { NativeChain::new(&links(&ps), None) }.unwrap();
    assert!(matches!(run(&c, &r33, None).0, ChainOutcome::Stopped { at: 1, retval: 3 }));
    // An empty chain completes.
    let c = unsafe { NativeChain::new(&[], None) }.unwrap();
    assert!(c.is_empty());
    assert!(matches!(run(&c, &pass, None).0, ChainOutcome::Completed));
}

#[test]
fn the_machine_is_switched_lazily_to_the_running_program() {
    // Programs 1 and 3 call a helper; 2 does not, so only 1 and 3 switch.
    let a = prog("mov %r0, 101\ncall 7\nmov %r0, 2\nexit", vec![]);
    let b = prog("mov %r0, 102\nmov %r0, 2\nexit", vec![]);
    let c3 = prog("mov %r0, 103\ncall 7\nexit", vec![]);
    let ps = vec![(a.clone(), PASS_ONLY), (b.clone(), PASS_ONLY), (c3.clone(), PASS_ONLY)];
    let c = unsafe { NativeChain::new(&links(&ps), None) }.unwrap();
    let (out, switches) = run(&c, &b, None);
    // The last program returns what `whoami` saw: its own id.
    assert!(matches!(out, ChainOutcome::Stopped { at: 2, retval: 103 }), "{out:?}");
    assert_eq!(switches, vec![0, 2]);
}

#[test]
fn registers_start_as_in_a_run_of_the_program_alone() {
    // The first program leaves garbage in r0-r9; the second returns r3 + r0
    // read before writing them, which a run alone sees as 0.
    let dirty =
        prog("mov %r0, 7\nmov %r2, 7\nmov %r3, 7\nmov %r4, 7\nmov %r6, 7\nmov %r9, 7\nmov %r0, 2\nexit", vec![]);
    let reader = prog("add %r0, %r3\nadd %r0, %r9\nadd %r0, 40\nexit", vec![]);
    let ps = vec![(dirty.clone(), PASS_ONLY), (reader.clone(), PASS_ONLY)];
    let c = unsafe { NativeChain::new(&links(&ps), None) }.unwrap();
    assert!(matches!(run(&c, &dirty, None).0, ChainOutcome::Stopped { at: 1, retval: 40 }));
}

#[test]
fn a_fault_names_the_link_and_the_instruction() {
    let pass = prog("mov %r0, 2\nexit", vec![]);
    // Reads 8 bytes past the 64-byte context.
    let bad = prog("mov %r0, 0\nldxdw %r0, [%r1+64]\nexit", vec![]);
    let ps = vec![(pass.clone(), PASS_ONLY), (bad.clone(), PASS_ONLY), (pass.clone(), PASS_ONLY)];
    let c = unsafe { NativeChain::new(&links(&ps), None) }.unwrap();
    match run(&c, &pass, None).0 {
        ChainOutcome::Fault { at: 1, error: VmError::Memory { pc: 1, len: 8, write: false, .. } } => {}
        o => panic!("unexpected {o:?}"),
    }
    // The stack's context block is usable for the next run.
    assert!(matches!(run(&c, &pass, None).0, ChainOutcome::Fault { at: 1, .. }));
}

#[test]
fn shared_regions_of_one_program_are_not_visible_to_the_next() {
    let mut value = vec![0u8; 4096];
    let v = Region::of_mut_slice(&mut value);
    // Seven shared regions: the program checks through the cache slot.
    let regions: Vec<Region> = (0..7).map(|i| Region { start: v.start + i * 512, len: 256, writable: true }).collect();
    let reads = format!("lddw %r2, {:#x}\nldxdw %r0, [%r2+0]\nmov %r0, 2\nexit", v.start);
    let owner = prog(&reads, regions);
    let stranger = prog(&format!("lddw %r2, {:#x}\nldxdw %r0, [%r2+0]\nmov %r0, 2\nexit", v.start), vec![]);
    let ps = vec![(owner.clone(), PASS_ONLY), (stranger.clone(), PASS_ONLY)];
    let c = unsafe { NativeChain::new(&links(&ps), None) }.unwrap();
    match run(&c, &owner, None).0 {
        ChainOutcome::Fault { at: 1, error: VmError::Memory { pc: 2, .. } } => {}
        o => panic!("unexpected {o:?}"),
    }
    let ps = vec![(owner.clone(), PASS_ONLY), (owner.clone(), PASS_ONLY)];
    let c = unsafe { NativeChain::new(&links(&ps), None) }.unwrap();
    assert!(matches!(run(&c, &owner, None).0, ChainOutcome::Completed));
}

#[test]
fn counting_adds_one_per_run_in_the_given_shard() {
    const SHARDS: usize = 3;
    const PER: usize = 6;
    let pass = prog("mov %r0, 2\nexit", vec![]);
    let big = prog("mov %r0, 77\nexit", vec![]);
    let mut tables = vec![[[0u64; PER]; SHARDS]; 2];
    let layout = CounterLayout { shards: SHARDS, shard_stride: PER * 8, other: 5 };
    let ptr = |t: &mut [[u64; PER]; SHARDS]| NonNull::new(t.as_mut_ptr().cast::<u64>());
    let (t0, t1) = tables.split_at_mut(1);
    let ls = vec![
        ChainLink { program: &pass, mask: PASS_ONLY, counters: ptr(&mut t0[0]) },
        ChainLink { program: &big, mask: PASS_ONLY, counters: ptr(&mut t1[0]) },
    ];
    let c = unsafe { NativeChain::new(&ls, Some(layout)) }.unwrap();
    for _ in 0..3 {
        assert!(matches!(run(&c, &pass, Some(2)).0, ChainOutcome::Stopped { at: 1, retval: 77 }));
    }
    // Not counted without a slot, nor with one out of range.
    run(&c, &pass, None);
    run(&c, &pass, Some(SHARDS));
    assert_eq!(tables[0][2][2], 3);
    assert_eq!(tables[1][2][5], 3);
    assert_eq!(tables.iter().flatten().flatten().sum::<u64>(), 6);
    // Counters without a layout are refused.
    let ls = vec![ChainLink { program: &pass, mask: PASS_ONLY, counters: Some(NonNull::dangling()) }];
    assert!(unsafe { NativeChain::new(&ls, None) }.is_err());
}

#[test]
fn programs_without_jit_code_are_refused() {
    let mut o = LoadOptions::new(Arc::new(Helpers::new()));
    o.entry_regs = None;
    let p = Arc::new(Program::load(&uxdp_asm::assemble("mov %r0, 2\nexit").unwrap(), &o).unwrap());
    let ls = vec![ChainLink { program: &p, mask: PASS_ONLY, counters: None }];
    let e = unsafe { NativeChain::new(&ls, None) }.unwrap_err();
    assert!(e.to_string().contains("without JIT code"), "{e}");
}

/// The target of [`tail`]'s tail calls.
static TAIL_TARGET: std::sync::OnceLock<Arc<Program>> = std::sync::OnceLock::new();

/// Helper 12: a tail call to [`TAIL_TARGET`].
fn tail(m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    let target = TAIL_TARGET.get().expect("target set").clone();
    Ok(if m.request_tail_call(target) { 0 } else { 1 })
}

#[test]
fn a_tail_call_from_a_link_that_never_touches_the_stack_gets_a_frame() {
    // The caller never reads r10, so its link does not need it loaded; the
    // tail call still hands the target a valid frame pointer.
    let mut h = Helpers::new();
    h.register(12, "tail_call", tail);
    let mut o = LoadOptions::new(Arc::new(h));
    o.entry_regs = None;
    let load = |text: &str| {
        let p = Arc::new(Program::load(&uxdp_asm::assemble(text).unwrap(), &o).unwrap());
        attach(&p).unwrap();
        p
    };
    let target = load("mov %r1, 7\nstxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit");
    TAIL_TARGET.set(target).ok();
    let caller = load("mov %r3, 0\ncall 12\nmov %r0, 1\nexit");
    let ps = vec![(caller.clone(), PASS_ONLY)];
    let c = unsafe { NativeChain::new(&links(&ps), None) }.unwrap();
    let (out, _) = run(&c, &caller, None);
    assert!(matches!(out, ChainOutcome::Stopped { at: 0, retval: 7 }), "{out:?}");
}
