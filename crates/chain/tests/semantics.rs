//! Chain semantics: ordering, chain-call actions, end-of-chain verdict,
//! updates, revisions, statistics, status.

mod common;

use common::*;
use std::sync::Arc;
use uxdp_chain::{
    AttachOptions, ChainError, EntryId, Hook, Placement, StatsLevel, XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX,
};
use uxdp_object::RunConfig;
use uxdp_xdp::{RunError, TestInput};

const PKT: [u8; 64] = [0u8; 64];

fn prio(p: u32) -> AttachOptions {
    AttachOptions { priority: Some(p), ..Default::default() }
}

fn run_tags(hook: &Hook) -> (u32, Vec<u8>) {
    let mut r = runner();
    let run = hook.run(&mut r, &TestInput::new(&PKT, None).unwrap()).unwrap();
    assert_eq!(run.output.retval, run.verdict.retval);
    assert_eq!(run.steps.len(), run.verdict.ran);
    // The native chain (Hook::exec) agrees with the per-program path (not
    // counted, so that the callers' statistics see one run).
    let level = hook.stats_level();
    hook.set_stats_level(StatsLevel::Off);
    let mut n = runner();
    n.load(&TestInput::new(&PKT, None).unwrap()).unwrap();
    let v = hook.exec(&mut n).unwrap();
    hook.set_stats_level(level);
    assert_eq!(hook.runs_natively(), hook.len() >= uxdp_chain::NATIVE_MIN);
    assert_eq!((v.retval, v.ran, v.revision), (run.verdict.retval, run.verdict.ran, run.verdict.revision));
    assert_eq!(n.output(v.retval).data, run.output.data);
    (run.verdict.retval, tags(&run.output.data))
}

#[test]
fn empty_hook_passes_untouched() {
    let hook = Hook::new("h");
    let mut r = runner();
    let run = hook.run(&mut r, &TestInput::new(&PKT, None).unwrap()).unwrap();
    assert_eq!(run.verdict.retval, XDP_PASS);
    assert_eq!(run.verdict.ran, 0);
    assert_eq!(run.verdict.revision, 0);
    assert_eq!(run.output.data, PKT.to_vec());
    assert_eq!(hook.totals().actions[XDP_PASS as usize], 1);
}

#[test]
fn priority_then_name_then_attach_order() {
    let hook = Hook::new("h");
    let b = tag_program("b", 2, 2);
    let a = tag_program("a", 1, 2);
    let c = tag_program("c", 3, 2);
    hook.attach(b.clone(), prio(50), None).unwrap(); // tag 2
    hook.attach(c, prio(10), None).unwrap(); // tag 3, runs first
    hook.attach(a, prio(50), None).unwrap(); // tag 1: same priority as b, name sorts first
    hook.attach(b, prio(50), None).unwrap(); // second instance of b: after the first (attach order)
    let z = tag_program("a", 9, 2);
    hook.attach(z, prio(50), None).unwrap(); // another "a": after the first "a"
    assert_eq!(run_tags(&hook), (XDP_PASS, vec![3, 1, 9, 2, 2]));
    assert_eq!(hook.snapshot().names().collect::<Vec<_>>(), ["c", "a", "a", "b", "b"]);
    assert_eq!(hook.revision(), 5);
}

#[test]
fn run_config_defaults_and_overrides() {
    let hook = Hook::new("h");
    let cfg = RunConfig { priority: 7, chain_call_actions: (1 << XDP_PASS) | (1 << XDP_DROP) };
    let p = program("cfg", &tag_insns(1, XDP_DROP as i32), cfg);
    let id = hook.attach(p.clone(), AttachOptions::default(), None).unwrap().value;
    let e = hook.entry(id).unwrap();
    assert_eq!((e.priority, e.actions), (7, 0b110));
    // DROP is in the set: the chain goes on, and past the end returns PASS.
    assert_eq!(run_tags(&hook), (XDP_PASS, vec![1]));
    // Overridden: DROP ends the chain.
    let id2 =
        hook.attach(p, AttachOptions { priority: Some(1), actions: Some(1 << XDP_PASS), ..Default::default() }, None);
    let id2 = id2.unwrap().value;
    assert_eq!(hook.entries()[0].id, id2);
    assert_eq!(run_tags(&hook), (XDP_DROP, vec![1]));
}

#[test]
fn verdicts_follow_the_dispatcher() {
    // The last program's action is in its set: XDP_PASS, as xdp-dispatcher's `out:`.
    let hook = Hook::new("h");
    let tx = program("tx", &tag_insns(1, XDP_TX as i32), RunConfig { priority: 1, chain_call_actions: 1 << XDP_TX });
    hook.attach(tx, AttachOptions::default(), None).unwrap();
    assert_eq!(run_tags(&hook), (XDP_PASS, vec![1]));
    // An action outside the set stops the chain with it.
    hook.attach(tag_program("drop", 2, XDP_DROP as i32), prio(2), None).unwrap();
    hook.attach(tag_program("never", 3, XDP_PASS as i32), prio(3), None).unwrap();
    assert_eq!(run_tags(&hook), (XDP_DROP, vec![1, 2]));
    // Return values beyond 31 test bit ret % 32 (32-bit shift); bit 31 is
    // always chained (libxdp's XDP_DISPATCHER_RETVAL).
    let h2 = Hook::new("h2");
    h2.attach(program("r31", &tag_insns(1, 31), RunConfig::default()), prio(1), None).unwrap();
    h2.attach(program("r34", &tag_insns(2, 34), RunConfig::default()), prio(2), None).unwrap(); // 34 % 32 = PASS
    h2.attach(program("r33", &tag_insns(3, 33), RunConfig::default()), prio(3), None).unwrap(); // DROP bit: stop
    h2.attach(tag_program("never", 4, 2), prio(4), None).unwrap();
    assert_eq!(run_tags(&h2), (33, vec![1, 2, 3]));
    let s = h2.status();
    assert_eq!(s.entries[2].stats.other, 1);
    assert_eq!(s.entries[3].stats.packets, 0);
    assert_eq!(s.totals.other, 1);
    assert!(matches!(
        h2.set_actions(s.entries[0].info.id, 1 << 31, None),
        Err(ChainError::InvalidActions { mask: 0x8000_0000 })
    ));
}

#[test]
fn single_program_fast_path_has_the_same_semantics() {
    // Stats off and one entry take a separate code path.
    for (ret, actions, want) in [
        (XDP_DROP, 1 << XDP_PASS, XDP_DROP),
        (XDP_PASS, 1 << XDP_PASS, XDP_PASS),
        (XDP_TX, 1 << XDP_TX, XDP_PASS),
        (34, 1 << XDP_PASS, XDP_PASS),
        (33, 1 << XDP_PASS, 33),
    ] {
        let hook = Hook::new("one");
        hook.set_stats_level(StatsLevel::Off);
        let o = AttachOptions { actions: Some(actions), ..Default::default() };
        let id = hook.attach(tag_program("p", 1, ret as i32), o, None).unwrap().value;
        let mut r = runner();
        let run = hook.run(&mut r, &TestInput::new(&PKT, None).unwrap()).unwrap();
        assert_eq!((run.verdict.retval, run.verdict.ran, tags(&run.output.data)), (want, 1, vec![1]), "ret {ret}");
        assert_eq!(run.steps, vec![uxdp_chain::Step { id, retval: ret }]);
        assert_eq!(hook.totals().packets, 0, "stats off");
    }
    let hook = Hook::new("one");
    hook.set_stats_level(StatsLevel::Off);
    hook.attach(fault_program("bad"), AttachOptions::default(), None).unwrap();
    let mut r = runner();
    assert!(matches!(hook.run(&mut r, &TestInput::new(&PKT, None).unwrap()), Err(RunError::Fault(_))));
}

#[test]
fn a_fault_ends_the_chain_with_the_error() {
    let hook = Hook::new("h");
    hook.attach(tag_program("first", 1, 2), prio(1), None).unwrap();
    let bad = hook.attach(fault_program("bad"), prio(2), None).unwrap().value;
    let after = hook.attach(tag_program("after", 2, 2), prio(3), None).unwrap().value;
    let mut r = runner();
    let e = hook.run(&mut r, &TestInput::new(&PKT, None).unwrap()).unwrap_err();
    assert!(matches!(e, RunError::Fault(_)), "{e}");
    assert_eq!(hook.entry(bad).unwrap().stats.read().errors, 1);
    assert_eq!(hook.entry(after).unwrap().stats.read().packets, 0);
    assert_eq!(hook.totals().errors, 1);
    // A refused input (metadata offsets the kernel rejects) is a hook error too.
    let ctx = uxdp_xdp::XdpMd { data: 4, data_end: 3, ..Default::default() };
    assert!(TestInput::new(&PKT[..3], Some(&ctx)).is_err());
}

#[test]
fn native_chain_counts_like_the_per_program_path() {
    // Two hooks with the same chain: one driven per program (Hook::run),
    // one natively (Hook::exec), over packets that end the chain at
    // different entries (the first byte picks the verdict of "pick").
    let pick = program(
        "pick",
        &[
            // r2 = data; r3 = data_end; r0 = 2; if data + 1 <= data_end: r0 = *data
            uxdp_isa::Insn::new(0x61, 2, 1, 0, 0),
            uxdp_isa::Insn::new(0x61, 3, 1, 4, 0),
            uxdp_isa::Insn::new(0xb7, 0, 0, 0, 2),
            uxdp_isa::Insn::new(0xbf, 4, 2, 0, 0),
            uxdp_isa::Insn::new(0x07, 4, 0, 0, 1),
            uxdp_isa::Insn::new(0x2d, 4, 3, 1, 0),
            uxdp_isa::Insn::new(0x71, 0, 2, 0, 0),
            uxdp_isa::Insn::new(0x95, 0, 0, 0, 0),
        ],
        RunConfig::default(),
    );
    let build = || {
        let h = Hook::new("h");
        h.attach(tag_program("first", 1, 2), prio(1), None).unwrap();
        h.attach(
            pick.clone(),
            AttachOptions { priority: Some(2), actions: Some(1 << 2 | 1 << 3), ..Default::default() },
            None,
        )
        .unwrap();
        let tx_continues = AttachOptions { priority: Some(3), actions: Some(1 << XDP_TX), ..Default::default() };
        h.attach(tag_program("tx", 2, XDP_TX as i32), tx_continues, None).unwrap();
        h.attach(fault_program("bad"), prio(4), None).unwrap();
        h
    };
    let (per_program, native) = (build(), build());
    assert!(native.runs_natively());
    let (mut r1, mut r2) = (runner(), runner());
    for first in [2u8, 1, 3, 77, 0, 2, 3, 1] {
        let mut pkt = PKT;
        pkt[0] = first;
        let input = TestInput::new(&pkt, None).unwrap();
        let a = per_program.run(&mut r1, &input).map(|o| o.verdict);
        r2.load(&input).unwrap();
        let b = native.exec(&mut r2);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!((a.retval, a.ran), (b.retval, b.ran), "first byte {first}");
                assert_eq!(r1.output(a.retval).data, r2.output(b.retval).data);
            }
            (Err(RunError::Fault(a)), Err(RunError::Fault(b))) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("first byte {first}: per program {a:?}, native {b:?}"),
        }
    }
    let (s1, s2) = (per_program.status(), native.status());
    for (e1, e2) in s1.entries.iter().zip(&s2.entries) {
        let (a, b) = (&e1.stats, &e2.stats);
        assert_eq!((a.packets, a.actions, a.other, a.errors), (b.packets, b.actions, b.other, b.errors));
    }
    assert_eq!(s1.totals.actions, s2.totals.actions);
    assert_eq!((s1.totals.packets, s1.totals.errors), (s2.totals.packets, s2.totals.errors));
    // Bytes 2 and 3 continue past "pick" and "tx" into the fault; 77 is
    // an "other" return value.
    assert_eq!(s2.entries[3].stats.errors, 4);
    assert_eq!(s2.entries[1].stats.other, 1);
    assert_eq!(s2.totals.errors, 4);
}

#[test]
fn explicit_placement_and_priority_coexist() {
    let hook = Hook::new("h");
    let a = hook.attach(tag_program("a", 1, 2), prio(10), None).unwrap().value;
    let c = hook.attach(tag_program("c", 3, 2), prio(30), None).unwrap().value;
    let first = AttachOptions { priority: Some(99), placement: Placement::First, ..Default::default() };
    let z = hook.attach(tag_program("z", 9, 2), first, None).unwrap().value;
    let after_a = AttachOptions { placement: Placement::After(a), ..Default::default() };
    hook.attach(tag_program("y", 8, 2), after_a, None).unwrap();
    let last = AttachOptions { priority: Some(0), placement: Placement::Last, ..Default::default() };
    hook.attach(tag_program("x", 7, 2), last, None).unwrap();
    let before_c = AttachOptions { placement: Placement::Before(c), ..Default::default() };
    hook.attach(tag_program("w", 6, 2), before_c, None).unwrap();
    assert_eq!(run_tags(&hook).1, vec![9, 1, 8, 6, 3, 7]);
    // Priority-placed: before the first priority-placed entry that sorts
    // after it (c, prio 30); z (First, prio 99) is no anchor.
    hook.attach(tag_program("b", 2, 2), prio(20), None).unwrap();
    assert_eq!(run_tags(&hook).1, vec![9, 1, 8, 6, 2, 3, 7]);
    // set_priority re-places by priority; move_entry places explicitly.
    hook.set_priority(z, 25, None).unwrap();
    assert_eq!(run_tags(&hook).1, vec![1, 8, 6, 2, 9, 3, 7]);
    hook.move_entry(z, Placement::Last, None).unwrap();
    assert_eq!(run_tags(&hook).1, vec![1, 8, 6, 2, 3, 7, 9]);
    assert!(hook.entry(z).unwrap().explicit);
    assert!(matches!(hook.move_entry(z, Placement::Before(z), None), Err(ChainError::InvalidPlacement(_))));
    assert!(matches!(
        hook.move_entry(z, Placement::After(EntryId(999)), None),
        Err(ChainError::NoSuchEntry(EntryId(999)))
    ));
    let r = AttachOptions { placement: Placement::Before(EntryId(999)), ..Default::default() };
    assert!(hook.attach(tag_program("q", 1, 2), r, None).is_err());
    assert_eq!(run_tags(&hook).1, vec![1, 8, 6, 2, 3, 7, 9], "failed updates change nothing");
}

#[test]
fn replace_reorder_detach() {
    let hook = Hook::new("h");
    let ids: Vec<EntryId> = (0..4u8)
        .map(|i| hook.attach(tag_program(&format!("p{i}"), i + 1, 2), prio(i as u32), None).unwrap().value)
        .collect();
    assert_eq!(run_tags(&hook).1, vec![1, 2, 3, 4]);
    let old = hook.replace(ids[1], tag_program("new", 20, 2), None).unwrap();
    assert_eq!(old.value.name(), "p1");
    assert_eq!(run_tags(&hook).1, vec![1, 20, 3, 4]);
    let e = hook.entry(ids[1]).unwrap();
    assert_eq!((e.position, e.priority, e.program.name()), (1, 1, "new"));
    assert_eq!(e.stats.read().packets, 2, "replace keeps the entry's counters");
    hook.reorder(&[ids[3], ids[0], ids[2], ids[1]], None).unwrap();
    assert_eq!(run_tags(&hook).1, vec![4, 1, 3, 20]);
    assert!(matches!(hook.reorder(&[ids[3], ids[0], ids[2]], None), Err(ChainError::InvalidOrder(_))));
    assert!(matches!(hook.reorder(&[ids[3], ids[0], ids[2], ids[2]], None), Err(ChainError::InvalidOrder(_))));
    let d = hook.detach(ids[0], None).unwrap().value;
    assert_eq!((d.id, d.position), (ids[0], 1));
    assert_eq!(run_tags(&hook).1, vec![4, 3, 20]);
    assert_eq!(d.stats.read().packets, 3);
    assert!(matches!(hook.detach(ids[0], None), Err(ChainError::NoSuchEntry(_))));
    // A batch is one revision.
    let rev = hook.revision();
    let up = hook
        .update(Some(rev), |tx| {
            tx.clear();
            tx.attach(tag_program("only", 5, 1), AttachOptions::default())
        })
        .unwrap();
    assert_eq!(up.revision, rev + 1);
    assert_eq!(run_tags(&hook), (XDP_DROP, vec![5]));
}

#[test]
fn stale_revisions_are_refused() {
    let hook = Hook::new("h");
    let r1 = hook.attach(tag_program("a", 1, 2), AttachOptions::default(), Some(0)).unwrap();
    assert_eq!(r1.revision, 1);
    let e = hook.attach(tag_program("b", 2, 2), AttachOptions::default(), Some(0)).unwrap_err();
    assert_eq!(e, ChainError::StaleRevision { expected: 0, current: 1 });
    assert!(e.to_string().contains("stale revision"), "{e}");
    assert_eq!(hook.revision(), 1);
    assert_eq!(hook.len(), 1);
    for f in [
        hook.detach(r1.value, Some(5)).map(|_| ()),
        hook.set_priority(r1.value, 1, Some(2)).map(|_| ()),
        hook.set_actions(r1.value, 1, Some(0)).map(|_| ()),
        hook.reorder(&[r1.value], Some(9)).map(|_| ()),
        hook.replace(r1.value, tag_program("c", 3, 2), Some(3)).map(|_| ()),
    ] {
        assert!(matches!(f, Err(ChainError::StaleRevision { current: 1, .. })), "{f:?}");
    }
    // A failing transaction publishes nothing.
    let e = hook.update(Some(1), |tx| {
        tx.attach(tag_program("d", 4, 2), AttachOptions::default())?;
        tx.detach(EntryId(77))
    });
    assert!(e.is_err());
    assert_eq!((hook.revision(), hook.len()), (1, 1));
    hook.set_actions(r1.value, 0b11, Some(1)).unwrap();
    assert_eq!(hook.revision(), 2);
}

#[test]
fn a_thousand_and_twenty_four_programs() {
    let hook = Hook::with_max_programs("big", 1024);
    let p = program("pass", &ret_insns(2), RunConfig::default());
    hook.update(None, |tx| {
        for _ in 0..1024 {
            tx.attach(p.clone(), AttachOptions::default())?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(hook.len(), 1024);
    let e = hook.attach(p.clone(), AttachOptions::default(), None).unwrap_err();
    assert_eq!(e, ChainError::TooManyPrograms { limit: 1024 });
    let mut r = runner();
    for _ in 0..3 {
        let run = hook.run(&mut r, &TestInput::new(&PKT, None).unwrap()).unwrap();
        assert_eq!((run.verdict.retval, run.verdict.ran), (XDP_PASS, 1024));
    }
    let s = hook.status();
    let ids: std::collections::HashSet<_> = s.entries.iter().map(|e| e.info.id).collect();
    assert_eq!(ids.len(), 1024, "every attachment is its own entry");
    assert!(s.entries.iter().all(|e| e.stats.packets == 3 && e.stats.actions[2] == 3));
    // The same program twice: independent entries and counters.
    let h = Hook::new("twice");
    let a = h.attach(p.clone(), AttachOptions::default(), None).unwrap().value;
    let b = h.attach(p, AttachOptions { actions: Some(0), ..Default::default() }, None).unwrap().value;
    assert_ne!(a, b);
    h.detach(a, None).unwrap();
    let run = h.run(&mut r, &TestInput::new(&PKT, None).unwrap()).unwrap();
    assert_eq!((run.verdict.retval, run.steps.len()), (XDP_PASS, 1));
    assert_eq!(h.entry(b).unwrap().stats.read().packets, 1);
}

#[test]
fn old_snapshots_are_freed_after_their_last_reader() {
    let hook = Hook::new("h");
    hook.attach(tag_program("a", 1, 2), AttachOptions::default(), None).unwrap();
    let held = hook.snapshot();
    let weak = Arc::downgrade(&held);
    hook.attach(tag_program("b", 2, 2), AttachOptions::default(), None).unwrap();
    assert!(weak.upgrade().is_some(), "a reader still holds revision 1");
    assert_eq!(held.revision(), 1);
    assert_eq!(held.len(), 1);
    drop(held);
    assert!(weak.upgrade().is_none(), "revision 1 freed");
    assert_eq!(run_tags(&hook).1, vec![1, 2]);
}

#[test]
fn sampled_timing_and_cached_readers() {
    let hook = Arc::new(Hook::new("s"));
    let id = hook.attach(tag_program("a", 1, 2), AttachOptions::default(), None).unwrap().value;
    hook.set_stats_level(StatsLevel::Sampled);
    let h = hook.clone();
    // a fresh thread: its sampling counter starts at zero
    std::thread::spawn(move || {
        let mut r = runner();
        let mut reader = h.reader();
        for _ in 0..2 * uxdp_chain::SAMPLE_EVERY {
            let run = reader.run(&mut r, &TestInput::new(&PKT, None).unwrap()).unwrap();
            assert_eq!(tags(&run.output.data), vec![1]);
        }
        // the reader sees updates at its next packet
        h.attach(tag_program("b", 2, 2), AttachOptions::default(), None).unwrap();
        let run = reader.run(&mut r, &TestInput::new(&PKT, None).unwrap()).unwrap();
        assert_eq!((run.verdict.revision, tags(&run.output.data)), (2, vec![1, 2]));
    })
    .join()
    .unwrap();
    let s = hook.entry(id).unwrap().stats.read();
    assert_eq!((s.packets, s.timed_runs), (2 * uxdp_chain::SAMPLE_EVERY as u64 + 1, 2));
    assert_eq!(hook.totals().timed_runs, 2);
    assert!(s.run_ns > 0);
    assert_eq!("sampled".parse::<StatsLevel>(), Ok(StatsLevel::Sampled));
}

#[test]
fn stats_levels_and_status_table() {
    let hook = Hook::new("eth0");
    let a = hook.attach(tag_program("filter", 1, 2), prio(10), None).unwrap().value;
    let drop = AttachOptions { priority: Some(20), actions: Some(0b101), ..Default::default() };
    hook.attach(tag_program("dropper", 2, XDP_DROP as i32), drop, None).unwrap();
    let mut r = runner();
    let input = TestInput::new(&PKT, None).unwrap();
    for _ in 0..10 {
        hook.run(&mut r, &input).unwrap();
    }
    hook.set_stats_level(StatsLevel::Off);
    hook.run(&mut r, &input).unwrap();
    hook.set_stats_level(StatsLevel::Timed);
    assert_eq!(hook.stats_level(), StatsLevel::Timed);
    for _ in 0..5 {
        r.load(&input).unwrap();
        let v = hook.exec(&mut r).unwrap();
        assert_eq!((v.retval, v.ran), (XDP_DROP, 2));
    }
    let s = hook.status();
    assert_eq!(s.totals.packets, 15);
    assert_eq!(s.totals.actions[XDP_DROP as usize], 15);
    assert_eq!(s.totals.timed_runs, 5);
    let a_stats = hook.entry(a).unwrap().stats.read();
    assert_eq!((a_stats.packets, a_stats.actions[2], a_stats.timed_runs), (15, 15, 5));
    assert!(a_stats.avg_ns().is_some());
    let text = s.to_string();
    assert!(text.contains("hook eth0  revision 2  programs 2  stats timed"), "{text}");
    assert!(text.contains("XDP_ABORTED,XDP_PASS"), "{text}");
    assert!(text.lines().any(|l| l.contains("filter") && l.contains(" 10 ") && l.contains("XDP_PASS")), "{text}");
    assert_eq!(text.lines().count(), 5, "{text}");
    assert_eq!(XDP_ABORTED, 0);
}
