//! Differential tests against the running kernel: the same random sequence
//! of `bpf(2)` map commands goes to a kernel map and to a uxdp map; every
//! result code, every returned value and the final contents must agree.
//!
//! Skipped (with a printed reason) when the kernel refuses to create maps
//! (`EPERM`, no BPF). Maps are small: RLIMIT_MEMLOCK may be 8 MiB.

use std::collections::BTreeMap;

use uxdp_maps::{create, Map, MapError, MapSpec, MapType, BPF_F_NO_PREALLOC};

mod common;
use common::Rng;

const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_MAP_DELETE_ELEM: i32 = 3;
const BPF_MAP_GET_NEXT_KEY: i32 = 4;
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: i32 = 21;

/// `union bpf_attr`, as a zeroed buffer the commands fill in.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

fn sys_bpf(cmd: i32, attr: &mut Attr) -> Result<i32, i32> {
    // SAFETY: attr is a valid, writable 128-byte bpf_attr; the pointers in
    // it point to live buffers of the sizes the kernel will use.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut Attr, std::mem::size_of::<Attr>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r as i32)
    }
}

/// A kernel map.
struct KMap {
    fd: i32,
    key_size: usize,
    value_size: usize,
}

impl Drop for KMap {
    fn drop(&mut self) {
        // SAFETY: closing our own fd.
        unsafe { libc::close(self.fd) };
    }
}

enum Created {
    Map(KMap),
    Skip(String),
}

impl KMap {
    fn create(t: MapType, key_size: u32, value_size: u32, max_entries: u32, flags: u32) -> Created {
        let mut a = Attr::new();
        a.u32(0, t as u32).u32(4, key_size).u32(8, value_size).u32(12, max_entries).u32(16, flags);
        match sys_bpf(BPF_MAP_CREATE, &mut a) {
            Ok(fd) => Created::Map(KMap { fd, key_size: key_size as usize, value_size: value_size as usize }),
            Err(e) if e == libc::EPERM || e == libc::ENOSYS => {
                Created::Skip(format!("BPF_MAP_CREATE of {} failed with errno {e} (no privilege or BPF)", t.name()))
            }
            Err(e) => panic!("BPF_MAP_CREATE of {} failed with errno {e}", t.name()),
        }
    }

    fn elem(&self, cmd: i32, key: Option<&[u8]>, value: Option<&mut [u8]>, flags: u64) -> Result<(), i32> {
        let mut a = Attr::new();
        a.u32(0, self.fd as u32);
        a.u64(8, key.map_or(0, |k| k.as_ptr() as u64));
        a.u64(16, value.map_or(0, |v| v.as_mut_ptr() as u64));
        a.u64(24, flags);
        sys_bpf(cmd, &mut a).map(|_| ())
    }

    fn key<'a>(&self, k: &'a [u8]) -> Option<&'a [u8]> {
        (self.key_size > 0).then_some(k)
    }

    fn lookup(&self, k: &[u8], flags: u64) -> Result<Vec<u8>, i32> {
        let mut v = vec![0u8; self.value_size];
        self.elem(BPF_MAP_LOOKUP_ELEM, self.key(k), Some(&mut v), flags)?;
        Ok(v)
    }

    fn update(&self, k: &[u8], v: &[u8], flags: u64) -> Result<(), i32> {
        let mut v = v.to_vec();
        self.elem(BPF_MAP_UPDATE_ELEM, self.key(k), Some(&mut v), flags)
    }

    fn delete(&self, k: &[u8]) -> Result<(), i32> {
        self.elem(BPF_MAP_DELETE_ELEM, self.key(k), None, 0)
    }

    fn lookup_and_delete(&self, k: &[u8], flags: u64) -> Result<Vec<u8>, i32> {
        let mut v = vec![0u8; self.value_size];
        self.elem(BPF_MAP_LOOKUP_AND_DELETE_ELEM, self.key(k), Some(&mut v), flags)?;
        Ok(v)
    }

    fn next_key(&self, k: Option<&[u8]>) -> Result<Vec<u8>, i32> {
        let mut next = vec![0u8; self.key_size.max(1)];
        self.elem(BPF_MAP_GET_NEXT_KEY, k.and_then(|k| self.key(k)), Some(&mut next), 0)?;
        next.truncate(self.key_size);
        Ok(next)
    }

    fn contents(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        walk_contents(&|c| self.next_key(c), &|k| self.lookup(k, 0))
    }
}

fn ours<T>(r: Result<T, MapError>) -> Result<T, i32> {
    r.map_err(|e| -e.errno())
}

fn contents(m: &dyn Map) -> BTreeMap<Vec<u8>, Vec<u8>> {
    walk_contents(&|c| ours(m.get_next_key(c)), &|k| ours(m.lookup_user(k, 0)))
}

type NextKeyFn<'a> = dyn Fn(Option<&[u8]>) -> Result<Vec<u8>, i32> + 'a;
type LookupFn<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, i32> + 'a;

/// The keys `next_key` gives from the start until it fails, in order.
fn walk_keys(next_key: &NextKeyFn) -> Vec<Vec<u8>> {
    let mut v = vec![];
    let mut cur: Option<Vec<u8>> = None;
    while let Ok(n) = next_key(cur.as_deref()) {
        v.push(n.clone());
        cur = Some(n);
        assert!(v.len() <= 100_000);
    }
    v
}

/// The walked keys with the values `lookup` finds for them.
fn walk_contents(next_key: &NextKeyFn, lookup: &LookupFn) -> BTreeMap<Vec<u8>, Vec<u8>> {
    walk_keys(next_key).into_iter().filter_map(|k| lookup(&k).ok().map(|v| (k, v))).collect()
}

const FLAGS: [u64; 6] = [0, 1, 2, 3, 4, 8];

/// Creates the pair or prints why the test is skipped.
fn pair(t: MapType, key: u32, value: u32, max: u32, flags: u32) -> Option<(KMap, std::sync::Arc<dyn Map>)> {
    match KMap::create(t, key, value, max, flags) {
        Created::Map(k) => Some((k, create(MapSpec::new(t, key, value, max).flags(flags)).unwrap())),
        Created::Skip(why) => {
            eprintln!("skipping kernel differential test: {why}");
            None
        }
    }
}

#[test]
fn array_matches_kernel() {
    let Some((k, m)) = pair(MapType::Array, 4, 12, 8, 0) else { return };
    let mut rng = Rng(0xa11a7);
    for step in 0..3000 {
        let key = (rng.below(12) as u32).to_ne_bytes();
        let flags = FLAGS[rng.below(6) as usize];
        let val: Vec<u8> = (0..12).map(|_| rng.next() as u8).collect();
        match rng.below(6) {
            0 | 1 => assert_eq!(ours(m.update_user(&key, &val, flags)), k.update(&key, &val, flags), "step {step}"),
            2 => assert_eq!(ours(m.lookup_user(&key, flags & 4)), k.lookup(&key, flags & 4), "step {step}"),
            3 => assert_eq!(ours(m.delete_user(&key)), k.delete(&key), "step {step}"),
            4 => {
                let from = (rng.below(2) == 0).then_some(&key[..]);
                assert_eq!(ours(m.get_next_key(from)), k.next_key(from), "step {step}");
            }
            _ => assert_eq!(ours(m.lookup_and_delete_user(&key, 0)), k.lookup_and_delete(&key, 0), "step {step}"),
        }
    }
    assert_eq!(contents(&*m), k.contents());
}

#[test]
fn hash_matches_kernel() {
    let Some((k, m)) = pair(MapType::Hash, 4, 8, 16, 0) else { return };
    let mut rng = Rng(0x4a54);
    for step in 0..5000 {
        let key = (rng.below(40) as u32).to_ne_bytes();
        let flags = FLAGS[rng.below(6) as usize];
        let val = rng.next().to_ne_bytes();
        match rng.below(7) {
            0..=2 => assert_eq!(ours(m.update_user(&key, &val, flags)), k.update(&key, &val, flags), "step {step}"),
            3 => assert_eq!(ours(m.lookup_user(&key, flags & 5)), k.lookup(&key, flags & 5), "step {step}"),
            4 => assert_eq!(ours(m.delete_user(&key)), k.delete(&key), "step {step}"),
            5 => assert_eq!(
                ours(m.lookup_and_delete_user(&key, flags & 4)),
                k.lookup_and_delete(&key, flags & 4),
                "step {step}"
            ),
            _ => {
                // Orders differ (different hash functions). From no key or
                // a missing key both restart at their first element, so
                // both succeed iff the map is not empty; from a present key
                // only the returned keys can be checked.
                let from = (rng.below(2) == 0).then_some(&key[..]);
                let (a, b) = (ours(m.get_next_key(from)), k.next_key(from));
                if from.is_none() || k.lookup(&key, 0).is_err() {
                    assert_eq!(a.is_ok(), b.is_ok(), "step {step}: {a:?} vs {b:?}");
                }
                if let Ok(a) = a {
                    assert!(k.lookup(&a, 0).is_ok() && Some(&a[..]) != from, "step {step}");
                }
                if let Ok(b) = b {
                    assert!(m.lookup_user(&b, 0).is_ok(), "step {step}");
                }
            }
        }
        if step % 500 == 0 {
            assert_eq!(contents(&*m), k.contents(), "step {step}");
        }
    }
    let c = contents(&*m);
    assert_eq!(c, k.contents());
    assert!(!c.is_empty());
}

fn lpm_key(rng: &mut Rng) -> Vec<u8> {
    let plen = [0u32, 8, 12, 16, 20, 24, 28, 32, 33][rng.below(9) as usize];
    let addr: u32 = (rng.below(4) as u32) << 28 | (rng.below(4) as u32) << 20 | (rng.below(3) as u32) << 8;
    let mut k = plen.to_ne_bytes().to_vec();
    k.extend_from_slice(&addr.to_be_bytes());
    k
}

#[test]
fn lpm_trie_matches_kernel() {
    let Some((k, m)) = pair(MapType::LpmTrie, 8, 8, 24, BPF_F_NO_PREALLOC) else { return };
    let mut rng = Rng(0x1b3);
    for step in 0..6000 {
        let key = lpm_key(&mut rng);
        let flags = FLAGS[rng.below(5) as usize];
        let val = rng.next().to_ne_bytes();
        match rng.below(6) {
            0 | 1 => assert_eq!(ours(m.update_user(&key, &val, flags)), k.update(&key, &val, flags), "step {step}"),
            2 => assert_eq!(ours(m.lookup_user(&key, 0)), k.lookup(&key, 0), "step {step} {key:?}"),
            3 => assert_eq!(ours(m.delete_user(&key)), k.delete(&key), "step {step}"),
            _ => {
                // Same trie shape: get_next_key must agree exactly.
                let from = (rng.below(3) != 0).then_some(&key[..]);
                assert_eq!(ours(m.get_next_key(from)), k.next_key(from), "step {step}");
            }
        }
    }
    // Full post-order walk, in order.
    let ours_walk = walk_keys(&|c| ours(m.get_next_key(c)));
    assert_eq!(ours_walk, walk_keys(&|c| k.next_key(c)));
    assert!(ours_walk.len() > 5);
    assert_eq!(contents(&*m), k.contents());
}

fn queue_stack_matches_kernel(t: MapType, seed: u64) {
    let Some((k, m)) = pair(t, 0, 4, 8, 0) else { return };
    let mut rng = Rng(seed);
    for step in 0..4000 {
        let val = (rng.next() as u32).to_ne_bytes();
        let flags = FLAGS[rng.below(6) as usize];
        match rng.below(7) {
            0..=2 => assert_eq!(ours(m.update_user(&[], &val, flags)), k.update(&[], &val, flags), "step {step}"),
            3 => assert_eq!(ours(m.lookup_user(&[], flags & 4)), k.lookup(&[], flags & 4), "step {step}"),
            4 | 5 => assert_eq!(
                ours(m.lookup_and_delete_user(&[], flags & 1)),
                k.lookup_and_delete(&[], flags & 1),
                "step {step}"
            ),
            _ => {
                assert_eq!(ours(m.delete_user(&[])), k.delete(&[]), "step {step}");
                assert_eq!(ours(m.get_next_key(None)), k.next_key(None), "step {step}");
            }
        }
    }
    // Drain both.
    loop {
        let (a, b) = (ours(m.lookup_and_delete_user(&[], 0)), k.lookup_and_delete(&[], 0));
        assert_eq!(a, b);
        if a.is_err() {
            break;
        }
    }
}

#[test]
fn queue_matches_kernel() {
    queue_stack_matches_kernel(MapType::Queue, 0x9e3);
}

#[test]
fn stack_matches_kernel() {
    queue_stack_matches_kernel(MapType::Stack, 0x57ac);
}

#[test]
fn percpu_array_user_layout_matches_kernel() {
    // The kernel's value layout covers every possible CPU; use its count.
    let Some((ncpu, mut k, m)) = percpu_pair(MapType::PercpuArray, 4, 12, |_| 4) else { return };
    k.value_size = 16 * ncpu as usize;
    assert_eq!(m.user_value_size(), k.value_size);
    let val: Vec<u8> = (0..k.value_size).map(|i| i as u8).collect();
    for (i, flags) in [(0u32, 0u64), (1, 2), (2, 1), (4, 0), (1, 4)] {
        let key = i.to_ne_bytes();
        assert_eq!(ours(m.update_user(&key, &val, flags)), k.update(&key, &val, flags), "index {i} flags {flags}");
        assert_eq!(ours(m.lookup_user(&key, 0)), k.lookup(&key, 0), "index {i}");
    }
}

fn possible_cpus() -> Option<u32> {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| s.trim().rsplit('-').next().and_then(|x| x.parse::<u32>().ok()))
        .map(|last| last + 1)
}

/// For maps sized by the CPU count: the number of possible CPUs, the kernel
/// map and ours (`max_entries` computed from that number, ours running on
/// as many CPUs), or `None` after printing why the test is skipped.
fn percpu_pair(
    t: MapType,
    key: u32,
    value: u32,
    max: impl FnOnce(u32) -> u32,
) -> Option<(u32, KMap, std::sync::Arc<dyn Map>)> {
    let Some(ncpu) = possible_cpus() else {
        eprintln!("skipping: cannot read /sys/devices/system/cpu/possible");
        return None;
    };
    let max = max(ncpu);
    let Created::Map(k) = KMap::create(t, key, value, max, 0) else {
        eprintln!("skipping kernel differential test: cannot create maps");
        return None;
    };
    Some((ncpu, k, create(MapSpec::new(t, key, value, max).cpus(ncpu)).unwrap()))
}

/// A devmap value: ifindex 1 (loopback, always present) or 0, no program.
fn devmap_val(rng: &mut Rng) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[0] = [0u8, 1, 1, 1][rng.below(4) as usize];
    v
}

/// Random commands on a devmap or devmap_hash; `key_of` draws the keys.
/// The devmap_hash has the kernel's bucket function and insertion order, so
/// `get_next_key` must agree exactly for both.
fn devmap_matches_kernel_as(t: MapType, seed: u64, steps: u32, key_of: fn(&mut Rng) -> u32) {
    let Some((k, m)) = pair(t, 4, 8, 6, 0) else { return };
    let mut rng = Rng(seed);
    for step in 0..steps {
        let key = key_of(&mut rng).to_ne_bytes();
        let flags = FLAGS[rng.below(6) as usize];
        let val = devmap_val(&mut rng);
        match rng.below(5) {
            0 | 1 => assert_eq!(ours(m.update_user(&key, &val, flags)), k.update(&key, &val, flags), "step {step}"),
            2 => assert_eq!(ours(m.lookup_user(&key, 0)), k.lookup(&key, 0), "step {step}"),
            3 => assert_eq!(ours(m.delete_user(&key)), k.delete(&key), "step {step}"),
            _ => {
                let from = (rng.below(2) == 0).then_some(&key[..]);
                assert_eq!(ours(m.get_next_key(from)), k.next_key(from), "step {step}");
            }
        }
    }
    assert_eq!(contents(&*m), k.contents());
}

#[test]
fn devmap_matches_kernel() {
    devmap_matches_kernel_as(MapType::Devmap, 0xde7, 2000, |rng| rng.below(8) as u32);
}

#[test]
fn devmap_hash_matches_kernel_including_order() {
    devmap_matches_kernel_as(MapType::DevmapHash, 0xde77, 3000, |rng| rng.below(20) as u32 * 3);
}

#[test]
fn cpumap_matches_kernel() {
    let Some((ncpu, k, m)) = percpu_pair(MapType::Cpumap, 4, 8, |ncpu| ncpu + 2) else { return };
    let max = ncpu + 2;
    let mut rng = Rng(0xc9);
    for step in 0..300 {
        let key = (rng.below(max as u64 + 1) as u32).to_ne_bytes();
        let flags = FLAGS[rng.below(6) as usize];
        let mut val = [0u8; 8];
        val[..4].copy_from_slice(&[0u32, 1, 64, 16384, 16385][rng.below(5) as usize].to_ne_bytes());
        match rng.below(4) {
            0 | 1 => assert_eq!(ours(m.update_user(&key, &val, flags)), k.update(&key, &val, flags), "step {step}"),
            2 => assert_eq!(ours(m.lookup_user(&key, 0)), k.lookup(&key, 0), "step {step}"),
            _ => assert_eq!(ours(m.delete_user(&key)), k.delete(&key), "step {step}"),
        }
    }
    assert_eq!(contents(&*m), k.contents());
}

#[test]
fn percpu_hash_matches_kernel() {
    let Some((ncpu, mut k, m)) = percpu_pair(MapType::PercpuHash, 4, 4, |_| 8) else { return };
    k.value_size = 8 * ncpu as usize;
    let mut rng = Rng(0x9c);
    for step in 0..2000 {
        let key = (rng.below(12) as u32).to_ne_bytes();
        let flags = FLAGS[rng.below(6) as usize];
        let val: Vec<u8> = (0..k.value_size).map(|_| rng.next() as u8).collect();
        match rng.below(5) {
            0 | 1 => assert_eq!(ours(m.update_user(&key, &val, flags)), k.update(&key, &val, flags), "step {step}"),
            2 => assert_eq!(ours(m.lookup_user(&key, 0)), k.lookup(&key, 0), "step {step}"),
            3 => assert_eq!(ours(m.delete_user(&key)), k.delete(&key), "step {step}"),
            _ => assert_eq!(ours(m.lookup_and_delete_user(&key, 0)), k.lookup_and_delete(&key, 0), "step {step}"),
        }
    }
    assert_eq!(contents(&*m), k.contents());
}
