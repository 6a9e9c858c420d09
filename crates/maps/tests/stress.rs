//! Many threads hammering hash and LRU hash maps at once: no crash, no
//! torn or misdirected values in validated lookups, consistent counts.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uxdp_maps::{create, Map, MapError, MapSpec, MapType, BPF_ANY, BPF_EXIST, BPF_NOEXIST};

mod common;
use common::Rng;

const THREADS: u32 = 8;
const KEYS: u32 = 300;
const RUN: Duration = Duration::from_millis(500);

/// Value of `key`: the key repeated, then a generation counter; a reader
/// can tell a value that belongs to another key or is half-written.
fn value(key: u32, gen: u64) -> [u8; 24] {
    let mut v = [0u8; 24];
    v[..8].copy_from_slice(&(key as u64).to_ne_bytes());
    v[8..16].copy_from_slice(&(!(key as u64)).to_ne_bytes());
    v[16..].copy_from_slice(&gen.to_ne_bytes());
    v
}

fn check_value(key: u32, v: &[u8]) {
    assert_eq!(u64::from_ne_bytes(v[..8].try_into().unwrap()), key as u64, "value of another key");
    assert_eq!(u64::from_ne_bytes(v[8..16].try_into().unwrap()), !(key as u64), "torn value");
}

/// Checks a user-side value: per-CPU maps hold one 24-byte value per CPU,
/// each either zero (never written by that CPU) or the key's.
fn check_user_value(key: u32, v: &[u8]) {
    for cpu in v.chunks(24) {
        if v.len() == 24 || cpu.iter().any(|b| *b != 0) {
            check_value(key, cpu);
        }
    }
}

fn all_keys(m: &dyn Map) -> Vec<Vec<u8>> {
    let mut out = vec![];
    let mut cur: Option<Vec<u8>> = None;
    loop {
        match m.get_next_key(cur.as_deref()) {
            Ok(n) => {
                out.push(n.clone());
                cur = Some(n);
            }
            Err(MapError::NotFound) => return out,
            Err(e) => panic!("get_next_key: {e}"),
        }
    }
}

/// Runs the workload; returns (net inserts, operations done).
fn hammer(m: Arc<dyn Map>, lru: bool) -> (i64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let net = Arc::new(AtomicI64::new(0));
    let (start, len) = m.value_regions()[0];
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (m, stop, net) = (m.clone(), stop.clone(), net.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1234_5678));
                let mut ops = 0u64;
                let mut gen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = rng.next();
                    let key = (r % KEYS as u64) as u32;
                    let k = key.to_ne_bytes();
                    gen += 1;
                    match (r >> 32) % 8 {
                        0 => match m.update(&k, &value(key, gen), BPF_NOEXIST, t) {
                            Ok(()) => {
                                net.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(MapError::Exists) | Err(MapError::Full { .. }) => {}
                            Err(e) => panic!("insert: {e}"),
                        },
                        1 => match m.update(&k, &value(key, gen), BPF_EXIST, t) {
                            Ok(()) | Err(MapError::NotFound) => {}
                            Err(e) => panic!("update: {e}"),
                        },
                        2 => match m.delete(&k) {
                            Ok(()) => {
                                net.fetch_add(-1, Ordering::Relaxed);
                            }
                            Err(MapError::NotFound) => {}
                            Err(e) => panic!("delete: {e}"),
                        },
                        3 => match m.lookup_user(&k, 0) {
                            Ok(v) => check_user_value(key, &v),
                            Err(MapError::NotFound) => {}
                            Err(e) => panic!("lookup_user: {e}"),
                        },
                        4 if lru => {
                            // BPF_ANY on an LRU map may insert (evicting).
                            m.update(&k, &value(key, gen), BPF_ANY, t).unwrap();
                        }
                        5 => {
                            let mut next = [0u8; 4];
                            match m.get_next_key_into(Some(&k), &mut next) {
                                Ok(()) => assert!(u32::from_ne_bytes(next) < KEYS),
                                Err(MapError::NotFound) => {}
                                Err(e) => panic!("get_next_key: {e}"),
                            }
                        }
                        _ => {
                            if let Some(p) = m.lookup(&k, t) {
                                let a = p as usize;
                                assert!(a >= start && a + 24 <= start + len, "pointer outside the value region");
                                // Program-style racy read: must not crash.
                                // SAFETY: inside the map's value region.
                                let _ = unsafe { std::ptr::read_volatile(p as *const u64) };
                            }
                        }
                    }
                    ops += 1;
                }
                ops
            })
        })
        .collect();
    let t0 = Instant::now();
    while t0.elapsed() < RUN {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let ops = threads.into_iter().map(|t| t.join().expect("worker panicked")).sum();
    (net.load(Ordering::Relaxed), ops)
}

fn final_checks(m: &dyn Map, max: u32) -> usize {
    let keys = all_keys(m);
    let set: BTreeSet<_> = keys.iter().cloned().collect();
    assert_eq!(set.len(), keys.len(), "get_next_key visited a key twice");
    assert!(keys.len() <= max as usize);
    for k in &keys {
        let key = u32::from_ne_bytes(k[..4].try_into().unwrap());
        check_user_value(key, &m.lookup_user(k, 0).unwrap());
    }
    keys.len()
}

#[test]
fn hash_under_contention() {
    let m = create(MapSpec::new(MapType::Hash, 4, 24, 128).cpus(THREADS)).unwrap();
    let (net, ops) = hammer(m.clone(), false);
    assert!(ops > 10_000, "only {ops} operations");
    let n = final_checks(&*m, 128);
    assert_eq!(n as i64, net, "elements in the map vs successful inserts minus deletes");
    assert_eq!(m.as_hash().unwrap().len() as usize, n);
}

#[test]
fn lru_hash_under_contention() {
    let m = create(MapSpec::new(MapType::LruHash, 4, 24, 128).cpus(THREADS)).unwrap();
    let (_, ops) = hammer(m.clone(), true);
    assert!(ops > 10_000, "only {ops} operations");
    let n = final_checks(&*m, 128);
    assert_eq!(m.as_hash().unwrap().len() as usize, n);
    // The map still works normally after the storm.
    for k in 1000..1200u32 {
        m.update_user(&k.to_ne_bytes(), &value(k, 0), BPF_ANY).unwrap();
    }
    assert_eq!(final_checks(&*m, 128), 128);
}

#[test]
fn percpu_hash_under_contention() {
    let m = create(MapSpec::new(MapType::PercpuHash, 4, 24, 128).cpus(THREADS)).unwrap();
    let (net, _) = hammer(m.clone(), false);
    let n = final_checks(&*m, 128);
    assert_eq!(n as i64, net);
}

#[test]
fn lru_percpu_hash_under_contention() {
    let m = create(MapSpec::new(MapType::LruPercpuHash, 4, 24, 64).cpus(THREADS)).unwrap();
    hammer(m.clone(), true);
    let n = final_checks(&*m, 64);
    assert_eq!(m.as_hash().unwrap().len() as usize, n);
}

/// Writers churn prefixes while readers look addresses up: every answer
/// must be a prefix that contains the address (values encode their prefix).
#[test]
fn lpm_trie_under_contention() {
    let m = create(MapSpec::new(MapType::LpmTrie, 8, 8, 256).flags(uxdp_maps::BPF_F_NO_PREALLOC)).unwrap();
    let key = |addr: u32, plen: u32| {
        let mut k = plen.to_ne_bytes().to_vec();
        k.extend_from_slice(&addr.to_be_bytes());
        k
    };
    let mask = |plen: u32| if plen == 0 { 0 } else { u32::MAX << (32 - plen) };
    let val = |addr: u32, plen: u32| ((addr as u64) << 8 | plen as u64).to_ne_bytes();
    // 10.0.0.0/8 always matches.
    m.update_user(&key(0x0a00_0000, 8), &val(0x0a00_0000, 8), BPF_ANY).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..6u32)
        .map(|t| {
            let (m, stop) = (m.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x51_7e ^ ((t as u64 + 1) << 20));
                let mut lookups = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = rng.next();
                    let addr = 0x0a00_0000 | (r as u32 & 0x00ff_ff0f);
                    if t < 2 {
                        // Writer.
                        let plen = [12, 16, 20, 24, 28, 32][(r >> 40) as usize % 6];
                        let a = addr & mask(plen);
                        if (r >> 50) & 1 == 0 {
                            match m.update_user(&key(a, plen), &val(a, plen), BPF_ANY) {
                                Ok(()) | Err(MapError::NoSpace(_)) => {}
                                Err(e) => panic!("lpm update: {e}"),
                            }
                        } else {
                            match m.delete_user(&key(a, plen)) {
                                Ok(()) | Err(MapError::NotFound) => {}
                                Err(e) => panic!("lpm delete: {e}"),
                            }
                        }
                    } else {
                        let v = m.lookup_user(&key(addr, 32), 0).expect("10/8 always matches");
                        let enc = u64::from_ne_bytes(v.try_into().unwrap());
                        let (a, plen) = ((enc >> 8) as u32, (enc & 0xff) as u32);
                        assert!(plen >= 8 && addr & mask(plen) == a, "{addr:#x} matched {a:#x}/{plen}");
                        lookups += 1;
                    }
                }
                lookups
            })
        })
        .collect();
    std::thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    let lookups: u64 = threads.into_iter().map(|t| t.join().expect("worker panicked")).sum();
    assert!(lookups > 1000, "only {lookups} lookups");
    let lpm = m.as_lpm().unwrap();
    assert!(lpm.len() <= 256);
    let walked = all_keys(&*m).len();
    assert_eq!(walked as u32, lpm.len());
}
