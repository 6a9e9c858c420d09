//! The hash table shared by the hash map types, `hash_of_maps` and
//! `devmap_hash`.
//!
//! Layout: `n_slots` preallocated element slots. A slot's key (as 64-bit
//! words), hash, chain link and flags live in metadata arrays of atomics;
//! its value lives in the owner's [`crate::storage::Slab`] (the core only
//! hands out slot numbers). Buckets are singly linked chains (new elements
//! at the head, as the kernel's `hlist_nulls_add_head_rcu`).
//!
//! Concurrency: each bucket has a sequence counter that is odd while a
//! writer holds the bucket (it doubles as the bucket's spin lock). Readers
//! never lock: they walk the chain with atomic loads and retry if the
//! counter changed, so a reader can never return a slot that was not linked
//! in the bucket at some instant during its walk. Slots freed by a writer are
//! reused only through the free list; a stale reader that wanders into a
//! reused slot is caught by the counter check. Walks are bounded by the slot
//! count, so even a reader that follows links of reused slots terminates.
//!
//! LRU: approximate, CLOCK ("second chance") over the slots. Lookups from
//! programs set a reference bit; when no free slot is left the clock hand
//! evicts the first linked slot whose bit is clear, clearing bits as it
//! passes. Like the kernel's LRU this never fails with `E2BIG`; it evicts.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::error::{MapError, Result};
use crate::storage::{backoff, zeroed_slice, FreeList, Zeroable, NIL};
use crate::{check_key, check_next_buf, MapSpec, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST};

/// How keys are hashed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Hasher {
    /// Keyed mixing of the key words (kernel: jhash with a random seed).
    Seeded(u64),
    /// The key's first `u32` itself (devmap_hash: `idx & (n_buckets - 1)`).
    IdentityU32,
}

#[repr(C)]
pub(crate) struct Bucket {
    /// Odd while a writer holds the bucket.
    seq: AtomicU64,
    /// First slot + 1 ([`NIL`] = empty).
    head: AtomicU32,
}

// SAFETY: zero is an unlocked, empty bucket.
unsafe impl Zeroable for Bucket {}

/// RAII holder of a bucket's write lock.
struct BucketGuard<'a> {
    b: &'a Bucket,
    s: u64,
}

impl Drop for BucketGuard<'_> {
    fn drop(&mut self) {
        self.b.seq.store(self.s.wrapping_add(2), Ordering::Release);
    }
}

/// Options of [`HashCore::upsert`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Upsert {
    /// Update flags (`BPF_ANY`/`BPF_NOEXIST`/`BPF_EXIST`, maybe `BPF_F_LOCK`).
    pub flags: u64,
    /// `BPF_EXIST` on a missing key fails with `ENOENT` (not for devmap_hash).
    pub check_exist: bool,
    /// Existing elements are updated in place (per-CPU, map-in-map,
    /// `BPF_F_LOCK`) instead of being replaced by a new element.
    pub in_place: bool,
}

/// A key read as little-endian 64-bit words (the last one zero-padded),
/// computed on the fly so that lookups copy nothing.
#[derive(Clone, Copy)]
pub(crate) struct KeyRef<'a>(&'a [u8]);

impl<'a> KeyRef<'a> {
    #[inline]
    pub(crate) fn new(key: &'a [u8]) -> KeyRef<'a> {
        KeyRef(key)
    }

    #[inline]
    fn n_words(self) -> usize {
        self.0.len().div_ceil(8)
    }

    #[inline]
    fn word(self, i: usize) -> u64 {
        let s = &self.0[i * 8..];
        if let Some(c) = s.first_chunk::<8>() {
            return u64::from_le_bytes(*c);
        }
        // Tail of 1..=7 bytes, without a memcpy call.
        let (mut w, mut j) = match s.first_chunk::<4>() {
            Some(c) => (u32::from_le_bytes(*c) as u64, 4),
            None => (0, 0),
        };
        while j < s.len() {
            w |= (s[j] as u64) << (8 * j);
            j += 1;
        }
        w
    }
}

pub(crate) struct HashCore {
    key_size: usize,
    /// Words per slot: one `hash << 32 | next link` word, then the key.
    stride: usize,
    n_slots: u32,
    max_entries: u32,
    bucket_mask: u32,
    buckets: Box<[Bucket]>,
    slots: Box<[AtomicU64]>,
    linked: Box<[AtomicU8]>,
    refbit: Box<[AtomicU8]>,
    free: FreeList,
    count: AtomicU32,
    clock: AtomicU32,
    hasher: Hasher,
    lru: bool,
}

/// Outcome of an upsert, for the caller's bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upserted {
    /// A new element was linked.
    Inserted,
    /// An existing element was replaced or updated.
    Updated,
}

impl HashCore {
    /// `n_slots` element slots (>= `max_entries`), at most `max_entries`
    /// linked at a time.
    pub(crate) fn new(key_size: u32, max_entries: u32, n_slots: u32, hasher: Hasher, lru: bool) -> Result<HashCore> {
        let stride = 1 + (key_size as usize).div_ceil(8);
        let n_buckets = (max_entries as u64).next_power_of_two();
        if n_buckets > 1 << 31 {
            return Err(MapError::TooBig(format!("max_entries {max_entries} exceeds 2^31").into()));
        }
        let n = n_slots as usize;
        let words = n.checked_mul(stride).ok_or_else(|| MapError::NoMemory("hash slots: size overflows".into()))?;
        Ok(HashCore {
            key_size: key_size as usize,
            stride,
            n_slots,
            max_entries,
            bucket_mask: (n_buckets - 1) as u32,
            buckets: zeroed_slice(n_buckets as usize, "hash buckets")?,
            slots: zeroed_slice(words, "hash slots")?,
            linked: zeroed_slice(n, "hash slot states")?,
            refbit: if lru { zeroed_slice(n, "lru reference bits")? } else { zeroed_slice(1, "lru reference bits")? },
            free: FreeList::new(n_slots, "hash free list")?,
            count: AtomicU32::new(0),
            clock: AtomicU32::new(0),
            hasher,
            lru,
        })
    }

    /// Number of linked elements.
    pub(crate) fn len(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn n_slots(&self) -> u32 {
        self.n_slots
    }

    #[inline]
    pub(crate) fn hash(&self, key: &[u8], kw: KeyRef<'_>) -> u32 {
        match self.hasher {
            Hasher::IdentityU32 => {
                let mut b = [0u8; 4];
                let n = key.len().min(4);
                b[..n].copy_from_slice(&key[..n]);
                u32::from_ne_bytes(b)
            }
            Hasher::Seeded(seed) => {
                let mut h = seed ^ (self.key_size as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                for i in 0..kw.n_words() {
                    h = (h ^ kw.word(i)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    h ^= h >> 31;
                }
                h ^= h >> 33;
                h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
                h ^= h >> 33;
                h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
                h ^= h >> 33;
                h as u32
            }
        }
    }

    #[inline]
    fn bucket(&self, hash: u32) -> &Bucket {
        &self.buckets[(hash & self.bucket_mask) as usize]
    }

    /// The `hash << 32 | next` word of a slot.
    #[inline]
    fn head_word(&self, slot: u32) -> &AtomicU64 {
        &self.slots[slot as usize * self.stride]
    }

    #[inline]
    fn slot_hash(&self, slot: u32) -> u32 {
        (self.head_word(slot).load(Ordering::Relaxed) >> 32) as u32
    }

    #[inline]
    fn slot_next(&self, slot: u32) -> u32 {
        self.head_word(slot).load(Ordering::Acquire) as u32
    }

    fn set_next(&self, slot: u32, link: u32) {
        let w = self.head_word(slot);
        let hash = w.load(Ordering::Relaxed) >> 32;
        w.store(hash << 32 | link as u64, Ordering::Release);
    }

    #[inline]
    fn key_eq(&self, slot: u32, kw: KeyRef<'_>) -> bool {
        let base = slot as usize * self.stride + 1;
        (0..kw.n_words()).all(|i| self.slots[base + i].load(Ordering::Relaxed) == kw.word(i))
    }

    /// Copies a slot's key bytes into `out` (`key_size` bytes).
    pub(crate) fn read_key(&self, slot: u32, out: &mut [u8]) {
        let base = slot as usize * self.stride + 1;
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            let w = self.slots[base + i].load(Ordering::Relaxed).to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }

    /// Writes key and hash of an unlinked slot.
    fn write_key(&self, slot: u32, kw: KeyRef<'_>, hash: u32) {
        let base = slot as usize * self.stride;
        for i in 0..kw.n_words() {
            self.slots[base + 1 + i].store(kw.word(i), Ordering::Relaxed);
        }
        self.slots[base].store((hash as u64) << 32, Ordering::Relaxed);
    }

    /// Walks a chain for a key. Works both under the bucket lock and inside
    /// a read section (then the result must be validated).
    #[inline]
    fn find_in(&self, b: &Bucket, hash: u32, kw: KeyRef<'_>) -> Option<u32> {
        let mut link = b.head.load(Ordering::Acquire);
        let mut steps = 0u32;
        while link != NIL && steps <= self.n_slots {
            let s = link - 1;
            if s >= self.n_slots {
                return None;
            }
            let w = self.head_word(s).load(Ordering::Acquire);
            if (w >> 32) as u32 == hash && self.key_eq(s, kw) {
                return Some(s);
            }
            link = w as u32;
            steps += 1;
        }
        None
    }

    /// Runs `f` as a read section of `b`: retried until no writer changed
    /// the bucket meanwhile. `f` must only read.
    #[inline]
    fn read<R>(&self, b: &Bucket, mut f: impl FnMut() -> R) -> R {
        let mut spins = 0;
        loop {
            let s1 = b.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let r = f();
                fence(Ordering::Acquire);
                if b.seq.load(Ordering::Relaxed) == s1 {
                    return r;
                }
            }
            backoff(&mut spins);
        }
    }

    fn lock<'a>(&self, b: &'a Bucket) -> BucketGuard<'a> {
        let mut spins = 0;
        loop {
            let s = b.seq.load(Ordering::Relaxed);
            if s & 1 == 0
                && b.seq.compare_exchange_weak(s, s.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                fence(Ordering::Release);
                return BucketGuard { b, s };
            }
            backoff(&mut spins);
        }
    }

    /// Lock-free lookup: the slot holding `key`. `mark` sets the LRU
    /// reference bit (program-side lookups).
    #[inline]
    pub(crate) fn lookup(&self, key: &[u8], mark: bool) -> Option<u32> {
        let kw = KeyRef::new(key);
        let hash = self.hash(key, kw);
        let b = self.bucket(hash);
        let s = self.read(b, || self.find_in(b, hash, kw))?;
        if mark && self.lru {
            let r = &self.refbit[s as usize];
            if r.load(Ordering::Relaxed) == 0 {
                r.store(1, Ordering::Relaxed);
            }
        }
        Some(s)
    }

    /// Looks up `key` and runs `copy(slot)` inside the read section, so the
    /// copy is known to come from the element of `key` (retried otherwise).
    pub(crate) fn lookup_copy(&self, key: &[u8], mut copy: impl FnMut(u32)) -> Result<()> {
        let kw = KeyRef::new(key);
        let hash = self.hash(key, kw);
        let b = self.bucket(hash);
        let found = self.read(b, || {
            let s = self.find_in(b, hash, kw);
            if let Some(s) = s {
                copy(s);
            }
            s.is_some()
        });
        if found {
            Ok(())
        } else {
            Err(MapError::NotFound)
        }
    }

    fn link(&self, b: &Bucket, slot: u32) {
        self.set_next(slot, b.head.load(Ordering::Relaxed));
        self.linked[slot as usize].store(1, Ordering::Relaxed);
        b.head.store(slot + 1, Ordering::Release);
    }

    fn unlink(&self, b: &Bucket, slot: u32) {
        let after = self.slot_next(slot);
        let mut link = b.head.load(Ordering::Relaxed);
        if link == slot + 1 {
            b.head.store(after, Ordering::Release);
        } else {
            let mut steps = 0;
            while link != NIL && steps <= self.n_slots {
                let s = link - 1;
                let n = self.slot_next(s);
                if n == slot + 1 {
                    self.set_next(s, after);
                    break;
                }
                link = n;
                steps += 1;
            }
        }
        self.linked[slot as usize].store(0, Ordering::Relaxed);
    }

    /// A slot for a new LRU element: a free one, else an evicted one.
    fn lru_alloc(&self) -> Result<u32> {
        if let Some(s) = self.free.pop() {
            return Ok(s);
        }
        let n = self.n_slots;
        for _ in 0..(3 * n as u64 + 8) {
            let i = self.clock.fetch_add(1, Ordering::Relaxed) % n;
            if self.linked[i as usize].load(Ordering::Relaxed) == 0 {
                continue;
            }
            if self.refbit[i as usize].swap(0, Ordering::Relaxed) != 0 {
                continue;
            }
            let hash = self.slot_hash(i);
            let b = self.bucket(hash);
            let g = self.lock(b);
            // Still linked in this very bucket? (Its hash is only rewritten
            // while it is unlinked, under no bucket lock.)
            if self.linked[i as usize].load(Ordering::Relaxed) != 0
                && self.slot_hash(i) & self.bucket_mask == hash & self.bucket_mask
            {
                self.unlink(b, i);
                self.count.fetch_sub(1, Ordering::Relaxed);
                drop(g);
                return Ok(i);
            }
            drop(g);
            if let Some(s) = self.free.pop() {
                return Ok(s);
            }
        }
        Err(MapError::NoMemory("LRU map: no element could be evicted".into()))
    }

    /// A slot for a new non-LRU element; the count was already reserved.
    fn alloc_reserved(&self) -> Option<u32> {
        let mut spins = 0;
        // Free slots can only be missing transiently, while other threads
        // hold a spare slot during a replace; they return it at once.
        for _ in 0..100_000 {
            if let Some(s) = self.free.pop() {
                return Some(s);
            }
            backoff(&mut spins);
        }
        None
    }

    /// Insert or update `key` with the kernel's flag semantics.
    /// `write(slot, existing)` fills the value memory of `slot`: for new
    /// elements (`existing == false`, slot not yet visible) or, in place,
    /// for an existing one (`existing == true`, under the bucket lock).
    pub(crate) fn upsert(&self, key: &[u8], u: Upsert, write: &mut dyn FnMut(u32, bool)) -> Result<Upserted> {
        let kw = KeyRef::new(key);
        let hash = self.hash(key, kw);
        let mode = u.flags & !BPF_F_LOCK;
        // LRU: get the new slot before taking the bucket lock (eviction locks
        // other buckets). Per-CPU LRU with BPF_EXIST needs none.
        let mut pre = if self.lru && !(u.in_place && mode == BPF_EXIST) { Some(self.lru_alloc()?) } else { None };
        let b = self.bucket(hash);
        let g = self.lock(b);
        let old = self.find_in(b, hash, kw);
        let res = (|| {
            if old.is_some() && mode == BPF_NOEXIST {
                return Err(MapError::Exists);
            }
            if old.is_none() && mode == BPF_EXIST && u.check_exist {
                return Err(MapError::NotFound);
            }
            match old {
                Some(o) if u.in_place => {
                    write(o, true);
                    if self.lru {
                        self.refbit[o as usize].store(1, Ordering::Relaxed);
                    }
                    Ok(Upserted::Updated)
                }
                Some(o) => {
                    let n = match pre.take().or_else(|| self.free.pop()) {
                        Some(n) => n,
                        None => {
                            // No spare slot: update in place (still atomic
                            // for lookups of the key, only the bytes race).
                            write(o, true);
                            return Ok(Upserted::Updated);
                        }
                    };
                    self.write_key(n, kw, hash);
                    write(n, false);
                    self.link(b, n);
                    self.unlink(b, o);
                    if self.lru {
                        self.refbit[n as usize].store(1, Ordering::Relaxed);
                    }
                    self.free.push(o);
                    Ok(Upserted::Updated)
                }
                None => {
                    let n = match pre.take() {
                        Some(n) => {
                            // LRU: the slot is ours already; only count it.
                            self.count.fetch_add(1, Ordering::Relaxed);
                            n
                        }
                        None => {
                            if self.count.fetch_add(1, Ordering::Relaxed) >= self.max_entries {
                                self.count.fetch_sub(1, Ordering::Relaxed);
                                return Err(MapError::Full { max_entries: self.max_entries });
                            }
                            match self.alloc_reserved() {
                                Some(n) => n,
                                None => {
                                    self.count.fetch_sub(1, Ordering::Relaxed);
                                    return Err(MapError::Full { max_entries: self.max_entries });
                                }
                            }
                        }
                    };
                    if self.lru {
                        self.refbit[n as usize].store(0, Ordering::Relaxed);
                    }
                    self.write_key(n, kw, hash);
                    write(n, false);
                    self.link(b, n);
                    Ok(Upserted::Inserted)
                }
            }
        })();
        drop(g);
        if let Some(p) = pre {
            self.free.push(p);
        }
        res
    }

    /// Deletes `key`; `copy(slot)` runs before the slot is freed (for
    /// lookup-and-delete).
    pub(crate) fn delete(&self, key: &[u8], copy: Option<&mut dyn FnMut(u32)>) -> Result<()> {
        let kw = KeyRef::new(key);
        let hash = self.hash(key, kw);
        let b = self.bucket(hash);
        let g = self.lock(b);
        let Some(s) = self.find_in(b, hash, kw) else {
            return Err(MapError::NotFound);
        };
        if let Some(c) = copy {
            c(s);
        }
        self.unlink(b, s);
        self.count.fetch_sub(1, Ordering::Relaxed);
        drop(g);
        self.free.push(s);
        Ok(())
    }

    /// `BPF_MAP_GET_NEXT_KEY` of a hash-based map: checks the buffer and
    /// key sizes against `spec`, then [`HashCore::next_key`].
    pub(crate) fn next_key_user(&self, spec: &MapSpec, key: Option<&[u8]>, next: &mut [u8]) -> Result<()> {
        check_next_buf(spec, next)?;
        if let Some(k) = key {
            check_key(spec, k)?;
        }
        self.next_key(key, next)
    }

    /// The kernel's `htab_map_get_next_key`: next element in the key's
    /// chain, else the first element of the following buckets; a missing
    /// key restarts from bucket 0.
    pub(crate) fn next_key(&self, key: Option<&[u8]>, out: &mut [u8]) -> Result<()> {
        let mut start = 0usize;
        if let Some(key) = key {
            let kw = KeyRef::new(key);
            let hash = self.hash(key, kw);
            let b = self.bucket(hash);
            enum Step {
                Missing,
                Next,
                EndOfChain,
            }
            let step = self.read(b, || match self.find_in(b, hash, kw) {
                None => Step::Missing,
                Some(s) => {
                    let n = self.slot_next(s);
                    if n != NIL && n - 1 < self.n_slots {
                        self.read_key(n - 1, out);
                        Step::Next
                    } else {
                        Step::EndOfChain
                    }
                }
            });
            match step {
                Step::Next => return Ok(()),
                Step::EndOfChain => start = (hash & self.bucket_mask) as usize + 1,
                Step::Missing => start = 0,
            }
        }
        for b in &self.buckets[start.min(self.buckets.len())..] {
            let found = self.read(b, || {
                let h = b.head.load(Ordering::Acquire);
                if h != NIL && h - 1 < self.n_slots {
                    self.read_key(h - 1, out);
                    true
                } else {
                    false
                }
            });
            if found {
                return Ok(());
            }
        }
        Err(MapError::NotFound)
    }

    /// Visits elements bucket by bucket (`f(key, slot)` returns true to
    /// stop); returns how many were visited. No lock is held while `f`
    /// runs, so it may update or delete elements.
    pub(crate) fn for_each(&self, f: &mut dyn FnMut(&[u8], u32) -> bool) -> u32 {
        let mut snap: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut n = 0;
        for b in self.buckets.iter() {
            if b.head.load(Ordering::Acquire) == NIL {
                continue;
            }
            self.read(b, || {
                snap.clear();
                let mut link = b.head.load(Ordering::Acquire);
                let mut steps = 0;
                while link != NIL && steps <= self.n_slots && link - 1 < self.n_slots {
                    let s = link - 1;
                    let mut k = vec![0u8; self.key_size];
                    self.read_key(s, &mut k);
                    snap.push((s, k));
                    link = self.slot_next(s);
                    steps += 1;
                }
            });
            for (s, k) in snap.drain(..) {
                n += 1;
                if f(&k, s) {
                    return n;
                }
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(max: u32, lru: bool) -> HashCore {
        HashCore::new(8, max, if lru { max } else { max + 2 }, Hasher::Seeded(1), lru).unwrap()
    }

    fn up(c: &HashCore, k: u64, flags: u64) -> Result<Upserted> {
        c.upsert(&k.to_le_bytes(), Upsert { flags, check_exist: true, in_place: false }, &mut |_, _| {})
    }

    #[test]
    fn insert_find_delete_reuse() {
        let c = core(4, false);
        for k in 0..4 {
            assert_eq!(up(&c, k, BPF_NOEXIST), Ok(Upserted::Inserted));
        }
        assert_eq!(up(&c, 9, 0), Err(MapError::Full { max_entries: 4 }));
        assert_eq!(up(&c, 2, BPF_NOEXIST), Err(MapError::Exists));
        assert_eq!(up(&c, 9, BPF_EXIST), Err(MapError::NotFound));
        assert_eq!(up(&c, 2, BPF_EXIST), Ok(Upserted::Updated));
        assert_eq!(c.len(), 4);
        for k in 0..4u64 {
            assert!(c.lookup(&k.to_le_bytes(), false).is_some());
        }
        assert_eq!(c.delete(&3u64.to_le_bytes(), None), Ok(()));
        assert_eq!(c.delete(&3u64.to_le_bytes(), None), Err(MapError::NotFound));
        assert_eq!(up(&c, 9, 0), Ok(Upserted::Inserted));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn next_key_visits_all_once() {
        let c = core(64, false);
        for k in 0..50u64 {
            up(&c, k * 7, 0).unwrap();
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut cur: Option<Vec<u8>> = None;
        loop {
            let mut out = vec![0u8; 8];
            match c.next_key(cur.as_deref(), &mut out) {
                Ok(()) => {
                    assert!(seen.insert(out.clone()), "key visited twice");
                    cur = Some(out);
                }
                Err(MapError::NotFound) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(seen.len(), 50);
    }

    #[test]
    fn lru_evicts_unreferenced_first() {
        let c = core(4, true);
        for k in 0..4 {
            up(&c, k, 0).unwrap();
        }
        // Touch 0, 1, 3: 2 is the one without a reference bit.
        for k in [0u64, 1, 3] {
            c.lookup(&k.to_le_bytes(), true).unwrap();
        }
        assert_eq!(up(&c, 10, 0), Ok(Upserted::Inserted));
        assert_eq!(c.len(), 4);
        assert!(c.lookup(&2u64.to_le_bytes(), false).is_none());
        for k in [0u64, 1, 3, 10] {
            assert!(c.lookup(&k.to_le_bytes(), false).is_some(), "{k}");
        }
    }
}
