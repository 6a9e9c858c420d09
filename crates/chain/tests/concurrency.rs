//! 8 packet threads (half on the per-program path, half on the native
//! chain) against a thread updating the chain 10,000 times: every packet is
//! processed by exactly one chain version, no count is lost; and
//! two writers racing with compare-and-swap.

mod common;

use common::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use uxdp_chain::{AttachOptions, ChainError, Counters, EntryId, Hook, Placement};
use uxdp_xdp::TestInput;

const UPDATES: usize = 10_000;
const THREADS: usize = 8;
const TAGS: u8 = 16;
const MAX_LEN: usize = 8;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the chain at one revision must do to a packet.
type Version = Vec<(EntryId, u8)>;

#[test]
fn packets_see_exactly_one_chain_version() {
    let progs: Vec<_> = (1..=TAGS).map(|t| tag_program(&format!("t{t:02}"), t, 2)).collect();
    let hook = Arc::new(Hook::new("port0"));
    let mut versions: HashMap<u64, Version> = HashMap::new();
    let mut counters: HashMap<EntryId, Arc<Counters>> = HashMap::new();
    let tag_of = |name: &str| name[1..].parse::<u8>().expect("tag name");
    let mut record = |revision: u64, entries: Vec<uxdp_chain::EntryInfo>| {
        for e in &entries {
            counters.entry(e.id).or_insert_with(|| e.stats.clone());
        }
        versions.insert(revision, entries.iter().map(|e| (e.id, tag_of(e.program.name()))).collect());
    };
    record(0, vec![]);
    let start = hook
        .update(Some(0), |tx| {
            for p in &progs[..3] {
                tx.attach(p.clone(), AttachOptions::default())?;
            }
            Ok(tx.entries())
        })
        .unwrap();
    record(start.revision, start.value);

    let done = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (hook, done, barrier) = (hook.clone(), done.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut r = runner();
                // half the threads load the snapshot per packet, half through a cached reader
                let mut reader = (t % 2 == 1).then(|| hook.reader());
                let pkt = [0u8; 64];
                let input = TestInput::new(&pkt, None).unwrap();
                let mut seen: Vec<(u64, u32, Vec<u8>)> = Vec::new();
                barrier.wait();
                while !done.load(Ordering::Relaxed) || seen.len() < 100 {
                    // Threads 4-7 take the fast path: the native chain.
                    if t >= THREADS / 2 {
                        r.load(&input).expect("load");
                        let v = match reader.as_mut() {
                            Some(reader) => reader.exec(&mut r),
                            None => hook.exec(&mut r),
                        };
                        let v = v.expect("chain exec");
                        seen.push((v.revision, v.retval, tags(&r.output(v.retval).data)));
                        continue;
                    }
                    let run = match reader.as_mut() {
                        Some(reader) => reader.run(&mut r, &input),
                        None => hook.run(&mut r, &input),
                    };
                    let run = run.expect("chain run");
                    seen.push((run.verdict.revision, run.verdict.retval, tags(&run.output.data)));
                }
                seen
            })
        })
        .collect();

    barrier.wait();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut revision = start.revision;
    for i in 0..UPDATES {
        let prog = progs[rng.below(progs.len())].clone();
        let (pick, op) = (rng.next(), rng.below(7));
        let up = hook
            .update(Some(revision), |tx| {
                let ids: Vec<EntryId> = tx.entries().iter().map(|e| e.id).collect();
                let any = ids.get(pick as usize % ids.len().max(1)).copied();
                match (op, any) {
                    (0 | 1, _) if ids.len() < MAX_LEN => {
                        let o = AttachOptions { priority: Some((pick % 100) as u32), ..Default::default() };
                        tx.attach(prog, o)?;
                    }
                    (2, Some(id)) if ids.len() > 1 => {
                        tx.detach(id)?;
                    }
                    (3, Some(id)) => {
                        tx.replace(id, prog)?;
                    }
                    (4, Some(id)) => tx.set_priority(id, (pick >> 8) as u32 % 100)?,
                    (5, Some(id)) => {
                        tx.move_entry(id, if pick & 1 == 0 { Placement::First } else { Placement::Last })?
                    }
                    (_, _) if ids.len() > 1 => {
                        let mut rev = ids.clone();
                        rev.reverse();
                        tx.reorder(&rev)?;
                    }
                    _ => {
                        tx.attach(prog, AttachOptions::default())?;
                    }
                }
                Ok(tx.entries())
            })
            .expect("update");
        assert_eq!(up.revision, revision + 1);
        revision = up.revision;
        record(revision, up.value);
        if i % 64 == 0 {
            std::thread::yield_now();
        }
    }
    done.store(true, Ordering::Relaxed);
    let seen: Vec<Vec<(u64, u32, Vec<u8>)>> = workers.into_iter().map(|w| w.join().expect("worker")).collect();

    let total: usize = seen.iter().map(|s| s.len()).sum();
    let mut per_entry: HashMap<EntryId, u64> = HashMap::new();
    let mut revisions_seen = std::collections::HashSet::new();
    for (rev, retval, got) in seen.iter().flatten() {
        let v = versions.get(rev).unwrap_or_else(|| panic!("packet ran unknown revision {rev}"));
        let want: Vec<u8> = v.iter().map(|&(_, t)| t).collect();
        assert_eq!(got, &want, "packet of revision {rev}: tags are not one chain version's");
        assert_eq!(*retval, 2);
        for (id, _) in v {
            *per_entry.entry(*id).or_default() += 1;
        }
        revisions_seen.insert(*rev);
    }
    println!("{total} packets over {} distinct revisions of {}", revisions_seen.len(), revision + 1);
    assert!(revisions_seen.len() > 10, "packets should overlap updates");
    assert_eq!(hook.totals().packets, total as u64, "hook total = packets pushed");
    for (id, c) in &counters {
        let s = c.read();
        assert_eq!(s.packets, per_entry.get(id).copied().unwrap_or(0), "entry {id}: runs counted");
        assert_eq!(s.actions[2], s.packets);
    }
    assert_eq!(hook.revision(), (UPDATES + 1) as u64);
}

#[test]
fn racing_writers_retry_on_stale_revisions() {
    let hook = Arc::new(Hook::new("race"));
    let prog = tag_program("t", 1, 2);
    const EACH: usize = 500;
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (hook, prog) = (hook.clone(), prog.clone());
            std::thread::spawn(move || {
                let (mut stale, mut trims) = (0, 0u64);
                for _ in 0..EACH {
                    loop {
                        let rev = hook.revision();
                        std::thread::yield_now();
                        match hook.attach(prog.clone(), AttachOptions::default(), Some(rev)) {
                            Ok(_) => break,
                            Err(ChainError::StaleRevision { expected, current }) => {
                                assert!(current > expected);
                                stale += 1;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    // keep the chain short; a stale revision skips the trim
                    let rev = hook.revision();
                    let trimmed = hook.update(Some(rev), |tx| {
                        if tx.len() > 4 {
                            let first = tx.entries()[0].id;
                            tx.detach(first)?;
                        }
                        Ok(())
                    });
                    match trimmed {
                        Ok(_) => trims += 1,
                        Err(ChainError::StaleRevision { .. }) => stale += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (stale, trims)
            })
        })
        .collect();
    let results: Vec<(usize, u64)> = writers.into_iter().map(|w| w.join().expect("writer")).collect();
    let stale: usize = results.iter().map(|r| r.0).sum();
    let trims: u64 = results.iter().map(|r| r.1).sum();
    println!("{stale} stale-revision refusals");
    // Every successful update is exactly one revision; no update was lost.
    assert_eq!(hook.revision(), (2 * EACH) as u64 + trims);
    let attached = hook.entries().iter().map(|e| e.id.0).max().unwrap_or(0);
    assert_eq!(attached, (2 * EACH) as u64, "ids are handed out once per successful attach");
}
