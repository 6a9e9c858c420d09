//! `BPF_MAP_TYPE_LPM_TRIE` (kernel/bpf/lpm_trie.c).
//!
//! Keys are `struct bpf_lpm_trie_key { u32 prefixlen; u8 data[]; }` with
//! `prefixlen` in host byte order and `data` big-endian (most significant
//! byte first). The trie has the kernel's exact shape: a binary Patricia
//! trie whose "intermediate" nodes (no value) always have two children, so
//! `get_next_key` returns keys in the kernel's post-order (more specific
//! prefixes first) and lookups return the longest matching prefix. As in the
//! kernel, the lookup key's own `prefixlen` bounds the match.
//!
//! Kernel 6.13+ semantics: `BPF_NOEXIST` on an existing prefix is `EEXIST`,
//! `BPF_EXIST` on a missing one `ENOENT`, a full trie `ENOSPC`; a
//! `prefixlen` above `8 * (key_size - 4)` is `EINVAL` for update and delete
//! (and "not found" for lookup). Creation requires `BPF_F_NO_PREALLOC`, like
//! the kernel, although uxdp preallocates all nodes and values (pointers
//! handed to programs must stay valid).
//!
//! Concurrency: writers take a mutex; readers walk the trie lock-free under
//! a sequence counter and retry if a writer ran meanwhile.

use std::any::Any;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{MapError, Result};
use crate::storage::{backoff, copy_in, copy_out, round8, zeroed_slice, Slab, NIL};
use crate::{
    check_flags, check_key, check_lookup_flags, check_next_buf, check_prog_value, check_user_update, check_user_value,
    Map, MapSpec, BPF_EXIST, BPF_F_ACCESS_MASK, BPF_F_NO_PREALLOC, BPF_F_NUMA_NODE, BPF_NOEXIST,
};

const LPM_DATA_SIZE_MAX: u32 = 256;
const FLAG_IM: u32 = 1;

/// Where a node hangs: the root pointer or a child pointer of a node.
#[derive(Clone, Copy)]
enum Link {
    Root,
    Child(u32, usize),
}

/// Indices `0..capacity` handed out in order, freed ones reused first.
#[derive(Default)]
struct Pool {
    free: Vec<u32>,
    next: u32,
}

impl Pool {
    fn alloc(&mut self, capacity: u32) -> Option<u32> {
        if let Some(i) = self.free.pop() {
            return Some(i);
        }
        if self.next < capacity {
            self.next += 1;
            return Some(self.next - 1);
        }
        None
    }
}

struct Writer {
    nodes: Pool,
    values: Pool,
    n_entries: u32,
}

/// An LPM trie map.
pub struct LpmTrie {
    spec: MapSpec,
    data_size: usize,
    max_prefixlen: u32,
    dwords: usize,
    n_nodes: u32,
    seq: AtomicU64,
    root: AtomicU32,
    child: Box<[AtomicU32]>,
    prefixlen: Box<[AtomicU32]>,
    flags: Box<[AtomicU32]>,
    vslot: Box<[AtomicU32]>,
    data: Box<[AtomicU64]>,
    values: Slab,
    stride: usize,
    n_values: u32,
    writer: Mutex<Writer>,
}

/// A key: prefix length and its data as big-endian 64-bit words (the
/// last one zero-padded), converted once per operation.
struct Key {
    prefixlen: u32,
    words: [u64; 32],
}

impl Key {
    #[inline]
    fn word(&self, i: usize) -> u64 {
        self.words.get(i).copied().unwrap_or(0)
    }
}

impl LpmTrie {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<LpmTrie> {
        check_flags(&spec, BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK)?;
        if spec.max_entries == 0
            || spec.flags & BPF_F_NO_PREALLOC == 0
            || spec.key_size < 5
            || spec.key_size > 4 + LPM_DATA_SIZE_MAX
            || spec.value_size == 0
            || spec.value_size > (1 << 30) - 512
        {
            return Err(MapError::invalid(format!(
                "{}: LPM tries need max_entries > 0, BPF_F_NO_PREALLOC, key_size 5..=260 and value_size > 0 \
                 (got max_entries {}, flags {:#x}, key_size {}, value_size {})",
                spec.describe(),
                spec.max_entries,
                spec.flags,
                spec.key_size,
                spec.value_size
            )));
        }
        let data_size = spec.key_size as usize - 4;
        let dwords = data_size.div_ceil(8);
        // Real nodes <= max_entries, intermediate nodes < real nodes, plus
        // one node allocated before a replaced one is freed.
        let n_nodes64 = 2 * spec.max_entries as u64 + 1;
        if n_nodes64 >= u32::MAX as u64 {
            return Err(MapError::TooBig(format!("{}: max_entries too large", spec.describe()).into()));
        }
        let n_nodes = n_nodes64 as u32;
        let n_values = spec.max_entries + 1;
        let stride = round8(spec.value_size as usize);
        let nn = n_nodes as usize;
        let values = Slab::new(
            (n_values as usize)
                .checked_mul(stride)
                .ok_or_else(|| MapError::NoMemory(format!("{}: size overflows", spec.describe()).into()))?,
            "lpm values",
        )?;
        Ok(LpmTrie {
            data_size,
            max_prefixlen: (data_size * 8) as u32,
            dwords,
            n_nodes,
            seq: AtomicU64::new(0),
            root: AtomicU32::new(NIL),
            child: zeroed_slice(nn * 2, "lpm children")?,
            prefixlen: zeroed_slice(nn, "lpm prefix lengths")?,
            flags: zeroed_slice(nn, "lpm node flags")?,
            vslot: zeroed_slice(nn, "lpm value slots")?,
            data: zeroed_slice(nn * dwords, "lpm node data")?,
            values,
            stride,
            n_values,
            writer: Mutex::new(Writer { nodes: Pool::default(), values: Pool::default(), n_entries: 0 }),
            spec,
        })
    }

    /// Number of prefixes stored.
    pub fn len(&self) -> u32 {
        self.writer.lock().n_entries
    }

    /// Whether the trie is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A key of `key_size` bytes (checked by the callers).
    #[inline]
    fn parse(&self, key: &[u8]) -> Key {
        let mut k = Key { prefixlen: crate::key_u32(key), words: [0; 32] };
        for (w, chunk) in k.words.iter_mut().zip(key[4..].chunks(8)) {
            *w = match chunk.first_chunk::<8>() {
                Some(c) => u64::from_be_bytes(*c),
                None => chunk.iter().enumerate().fold(0, |acc, (j, &b)| acc | (b as u64) << (56 - 8 * j)),
            };
        }
        k
    }

    #[inline]
    fn node_word(&self, node: u32, i: usize) -> u64 {
        self.data[node as usize * self.dwords + i].load(Ordering::Relaxed)
    }

    #[inline]
    fn node_plen(&self, node: u32) -> u32 {
        self.prefixlen[node as usize].load(Ordering::Relaxed)
    }

    #[inline]
    fn is_im(&self, node: u32) -> bool {
        self.flags[node as usize].load(Ordering::Relaxed) & FLAG_IM != 0
    }

    #[inline]
    fn child_of(&self, node: u32, bit: usize) -> u32 {
        self.child[node as usize * 2 + bit].load(Ordering::Acquire)
    }

    /// Bits of `node` matching `key`, at most `min(prefixlens)`.
    fn match_len(&self, node: u32, key: &Key) -> u32 {
        let limit = self.node_plen(node).min(key.prefixlen);
        let mut n = 0u32;
        for i in 0..self.dwords {
            let diff = self.node_word(node, i) ^ key.word(i);
            if diff != 0 {
                n += diff.leading_zeros();
                break;
            }
            n += 64;
            if n >= limit {
                break;
            }
        }
        n.min(limit)
    }

    #[inline]
    fn key_bit(key: &Key, index: u32) -> usize {
        let w = key.word(index as usize / 64);
        ((w >> (63 - index % 64)) & 1) as usize
    }

    #[inline]
    fn node_bit(&self, node: u32, index: u32) -> usize {
        let i = index as usize / 64;
        if i >= self.dwords {
            return 0;
        }
        ((self.node_word(node, i) >> (63 - index % 64)) & 1) as usize
    }

    /// Read section under the trie's sequence counter.
    fn read<R>(&self, mut f: impl FnMut() -> R) -> R {
        let mut spins = 0;
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let r = f();
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return r;
                }
            }
            backoff(&mut spins);
        }
    }

    /// The kernel's `trie_lookup_elem` walk: the node of the longest match.
    fn find_longest(&self, key: &Key) -> Option<u32> {
        if key.prefixlen > self.max_prefixlen {
            return None;
        }
        let mut found = None;
        let mut link = self.root.load(Ordering::Acquire);
        let mut steps = 0;
        while link != NIL && steps <= self.max_prefixlen + 1 {
            let node = link - 1;
            if node >= self.n_nodes {
                return None;
            }
            let m = self.match_len(node, key);
            if m == self.max_prefixlen {
                // Exact match of a full-length prefix.
                return if self.is_im(node) { found } else { Some(node) };
            }
            if m < self.node_plen(node) {
                break;
            }
            if !self.is_im(node) {
                found = Some(node);
            }
            link = self.child_of(node, Self::key_bit(key, self.node_plen(node)));
            steps += 1;
        }
        found
    }

    fn value_ptr(&self, node: u32) -> *mut u8 {
        let v = self.vslot[node as usize].load(Ordering::Relaxed).min(self.n_values - 1);
        self.values.at(v as usize * self.stride)
    }

    // ----- writer side (trie mutex held, sequence counter odd) -----

    fn get_link(&self, l: Link) -> u32 {
        match l {
            Link::Root => self.root.load(Ordering::Relaxed),
            Link::Child(n, b) => self.child[n as usize * 2 + b].load(Ordering::Relaxed),
        }
    }

    fn set_link(&self, l: Link, v: u32) {
        match l {
            Link::Root => self.root.store(v, Ordering::Release),
            Link::Child(n, b) => self.child[n as usize * 2 + b].store(v, Ordering::Release),
        }
    }

    fn alloc_node(&self, w: &mut Writer) -> Result<u32> {
        w.nodes.alloc(self.n_nodes).ok_or_else(|| self.exhausted("node"))
    }

    fn alloc_value(&self, w: &mut Writer) -> Result<u32> {
        w.values.alloc(self.n_values).ok_or_else(|| self.exhausted("value"))
    }

    fn exhausted(&self, pool: &str) -> MapError {
        MapError::NoMemory(format!("{}: {pool} pool exhausted", self.spec.describe()).into())
    }

    fn free_node(&self, w: &mut Writer, node: u32) {
        if !self.is_im(node) {
            w.values.free.push(self.vslot[node as usize].load(Ordering::Relaxed));
        }
        w.nodes.free.push(node);
    }

    fn write_node(&self, node: u32, prefixlen: u32, word: impl Fn(usize) -> u64, flags: u32) {
        self.prefixlen[node as usize].store(prefixlen, Ordering::Relaxed);
        self.flags[node as usize].store(flags, Ordering::Relaxed);
        self.child[node as usize * 2].store(NIL, Ordering::Relaxed);
        self.child[node as usize * 2 + 1].store(NIL, Ordering::Relaxed);
        for i in 0..self.dwords {
            self.data[node as usize * self.dwords + i].store(word(i), Ordering::Relaxed);
        }
    }

    /// Runs `f` with the writer lock held and the sequence counter odd.
    fn write<R>(&self, f: impl FnOnce(&mut Writer) -> R) -> R {
        let mut w = self.writer.lock();
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let r = f(&mut w);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
        r
    }

    fn check_add(&self, w: &mut Writer, flags: u64) -> Result<()> {
        if flags == BPF_EXIST {
            return Err(MapError::NotFound);
        }
        if w.n_entries == self.spec.max_entries {
            return Err(MapError::NoSpace(format!("{} is full", self.spec.describe()).into()));
        }
        w.n_entries += 1;
        Ok(())
    }

    /// The key of an update or delete; a prefix longer than the data is
    /// `EINVAL`.
    fn parse_update_key(&self, key: &[u8]) -> Result<Key> {
        let k = self.parse(key);
        if k.prefixlen > self.max_prefixlen {
            return Err(MapError::invalid(format!(
                "{}: prefixlen {} exceeds {}",
                self.spec.describe(),
                k.prefixlen,
                self.max_prefixlen
            )));
        }
        Ok(k)
    }

    fn do_update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        check_key(&self.spec, key)?;
        if flags > BPF_EXIST {
            return Err(MapError::invalid(format!("{}: unknown update flags {flags:#x}", self.spec.describe())));
        }
        let k = self.parse_update_key(key)?;
        let vs = self.spec.value_size as usize;
        self.write(|w| {
            let new = self.alloc_node(w)?;
            let nv = match self.alloc_value(w) {
                Ok(v) => v,
                Err(e) => {
                    w.nodes.free.push(new);
                    return Err(e);
                }
            };
            let res = self.insert(w, new, nv, &k, flags);
            if res.is_err() {
                w.nodes.free.push(new);
                w.values.free.push(nv);
            } else {
                // SAFETY: value slot nv of this map.
                unsafe { copy_in(self.values.at(nv as usize * self.stride), &value[..vs], None) };
            }
            res
        })
    }

    /// The kernel's `trie_update_elem` placement logic.
    fn insert(&self, w: &mut Writer, new: u32, nv: u32, k: &Key, flags: u64) -> Result<()> {
        self.write_node(new, k.prefixlen, |i| k.word(i), 0);
        self.vslot[new as usize].store(nv, Ordering::Relaxed);
        let mut slot = Link::Root;
        let mut matchlen = 0;
        let mut node = NIL;
        loop {
            let link = self.get_link(slot);
            if link == NIL {
                break;
            }
            node = link;
            let n = link - 1;
            matchlen = self.match_len(n, k);
            if self.node_plen(n) != matchlen || self.node_plen(n) == k.prefixlen {
                break;
            }
            slot = Link::Child(n, Self::key_bit(k, self.node_plen(n)));
            node = NIL;
        }
        if node == NIL {
            self.check_add(w, flags)?;
            self.set_link(slot, new + 1);
            return Ok(());
        }
        let n = node - 1;
        if self.node_plen(n) == matchlen {
            // Same prefix: replace the node.
            if !self.is_im(n) {
                if flags == BPF_NOEXIST {
                    return Err(MapError::Exists);
                }
            } else {
                self.check_add(w, flags)?;
            }
            for b in 0..2 {
                self.child[new as usize * 2 + b].store(self.child_of(n, b), Ordering::Relaxed);
            }
            self.set_link(slot, new + 1);
            self.free_node(w, n);
            return Ok(());
        }
        self.check_add(w, flags)?;
        if matchlen == k.prefixlen {
            // The new prefix is an ancestor of the node.
            let bit = self.node_bit(n, matchlen);
            self.child[new as usize * 2 + bit].store(n + 1, Ordering::Relaxed);
            self.set_link(slot, new + 1);
            return Ok(());
        }
        let im = match self.alloc_node(w) {
            Ok(im) => im,
            Err(e) => {
                w.n_entries -= 1;
                return Err(e);
            }
        };
        self.write_node(im, matchlen, |i| self.node_word(n, i), FLAG_IM);
        if Self::key_bit(k, matchlen) == 1 {
            self.child[im as usize * 2].store(n + 1, Ordering::Relaxed);
            self.child[im as usize * 2 + 1].store(new + 1, Ordering::Relaxed);
        } else {
            self.child[im as usize * 2].store(new + 1, Ordering::Relaxed);
            self.child[im as usize * 2 + 1].store(n + 1, Ordering::Relaxed);
        }
        self.set_link(slot, im + 1);
        Ok(())
    }

    fn do_delete(&self, key: &[u8]) -> Result<()> {
        check_key(&self.spec, key)?;
        let k = self.parse_update_key(key)?;
        self.write(|w| {
            let mut trim = Link::Root;
            let mut trim2 = trim;
            let mut parent = NIL;
            let mut matchlen = 0;
            let node = loop {
                let link = self.get_link(trim);
                if link == NIL {
                    break NIL;
                }
                let n = link - 1;
                matchlen = self.match_len(n, &k);
                if self.node_plen(n) != matchlen || self.node_plen(n) == k.prefixlen {
                    break link;
                }
                parent = link;
                trim2 = trim;
                trim = Link::Child(n, Self::key_bit(&k, self.node_plen(n)));
            };
            if node == NIL {
                return Err(MapError::NotFound);
            }
            let n = node - 1;
            if self.node_plen(n) != k.prefixlen || self.node_plen(n) != matchlen || self.is_im(n) {
                return Err(MapError::NotFound);
            }
            w.n_entries -= 1;
            let c0 = self.child_of(n, 0);
            let c1 = self.child_of(n, 1);
            if c0 != NIL && c1 != NIL {
                // Two children: becomes an intermediate node.
                w.values.free.push(self.vslot[n as usize].load(Ordering::Relaxed));
                self.flags[n as usize].store(FLAG_IM, Ordering::Relaxed);
                return Ok(());
            }
            if parent != NIL && self.is_im(parent - 1) && c0 == NIL && c1 == NIL {
                let p = parent - 1;
                let sibling = if self.child_of(p, 0) == node { self.child_of(p, 1) } else { self.child_of(p, 0) };
                self.set_link(trim2, sibling);
                self.free_node(w, p);
                self.free_node(w, n);
                return Ok(());
            }
            self.set_link(trim, if c0 != NIL { c0 } else { c1 });
            self.free_node(w, n);
            Ok(())
        })
    }

    /// Writes `node`'s key into `out`.
    fn write_key(&self, node: u32, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.node_plen(node).to_ne_bytes());
        let mut bytes = [0u8; 256];
        for i in 0..self.dwords {
            let w = self.node_word(node, i).to_be_bytes();
            let end = (i * 8 + 8).min(256);
            bytes[i * 8..end].copy_from_slice(&w[..end - i * 8]);
        }
        out[4..4 + self.data_size].copy_from_slice(&bytes[..self.data_size]);
    }

    /// Leftmost non-intermediate node in post-order under `root` (link).
    fn leftmost(&self, root: u32) -> Option<u32> {
        let mut next = None;
        let mut link = root;
        let mut steps = 0;
        while link != NIL && steps <= self.max_prefixlen + 2 {
            let n = link - 1;
            if n >= self.n_nodes {
                return None;
            }
            if self.is_im(n) {
                link = self.child_of(n, 0);
            } else {
                next = Some(n);
                link = self.child_of(n, 0);
                if link == NIL {
                    link = self.child_of(n, 1);
                }
            }
            steps += 1;
        }
        next
    }

    /// The kernel's `trie_get_next_key` (post-order successor).
    fn next_key(&self, key: Option<&Key>) -> Option<u32> {
        let root = self.root.load(Ordering::Acquire);
        if root == NIL {
            return None;
        }
        let Some(k) = key.filter(|k| k.prefixlen <= self.max_prefixlen) else {
            return self.leftmost(root);
        };
        let mut stack: Vec<u32> = Vec::with_capacity(16);
        let mut link = root;
        let mut found = NIL;
        while link != NIL && stack.len() <= self.max_prefixlen as usize + 1 {
            let n = link - 1;
            if n >= self.n_nodes {
                return None;
            }
            stack.push(link);
            let m = self.match_len(n, k);
            if self.node_plen(n) != m || self.node_plen(n) == k.prefixlen {
                if self.node_plen(n) == m && !self.is_im(n) {
                    found = link;
                }
                break;
            }
            link = self.child_of(n, Self::key_bit(k, self.node_plen(n)));
        }
        if found == NIL {
            return self.leftmost(root);
        }
        let mut node = found;
        while stack.len() > 1 {
            let parent = stack[stack.len() - 2];
            let p = parent - 1;
            if self.child_of(p, 0) == node {
                let right = self.child_of(p, 1);
                if right != NIL {
                    return self.leftmost(right);
                }
            }
            if !self.is_im(p) {
                return Some(p);
            }
            node = parent;
            stack.pop();
        }
        None
    }
}

impl Map for LpmTrie {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    fn lookup(&self, key: &[u8], _cpu: u32) -> Option<*mut u8> {
        if key.len() != self.spec.key_size as usize {
            return None;
        }
        let k = self.parse(key);
        let node = self.read(|| self.find_longest(&k))?;
        Some(self.value_ptr(node))
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64, _cpu: u32) -> Result<()> {
        check_prog_value(&self.spec, value.len())?;
        self.do_update(key, value, flags)
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        self.do_delete(key)
    }

    fn lookup_user_into(&self, key: &[u8], out: &mut [u8], flags: u64) -> Result<()> {
        check_lookup_flags(&self.spec, flags)?;
        check_key(&self.spec, key)?;
        check_user_value(&self.spec, out.len(), self.spec.value_size as usize)?;
        let k = self.parse(key);
        // SAFETY: value memory of this map.
        let copied = self.read(|| self.find_longest(&k).map(|n| unsafe { copy_out(out, self.value_ptr(n), None) }));
        copied.ok_or(MapError::NotFound)
    }

    fn update_user(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        // No spin lock in a trie: BPF_F_LOCK is refused.
        check_user_update(&self.spec, flags, value.len(), self.spec.value_size as usize)?;
        self.do_update(key, value, flags)
    }

    fn delete_user(&self, key: &[u8]) -> Result<()> {
        self.do_delete(key)
    }

    fn get_next_key_into(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<()> {
        check_next_buf(&self.spec, next)?;
        let k = match key {
            Some(key) => {
                check_key(&self.spec, key)?;
                Some(self.parse(key))
            }
            None => None,
        };
        let written = self.read(|| self.next_key(k.as_ref()).map(|n| self.write_key(n, next)));
        written.ok_or(MapError::NotFound)
    }

    fn value_regions(&self) -> Vec<(usize, usize)> {
        vec![self.values.region()]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::*;
    use crate::{create, MapType, BPF_ANY};

    fn v4(a: [u8; 4], plen: u32) -> Vec<u8> {
        let mut k = plen.to_ne_bytes().to_vec();
        k.extend_from_slice(&a);
        k
    }

    fn v6(a: [u16; 8], plen: u32) -> Vec<u8> {
        let mut k = plen.to_ne_bytes().to_vec();
        for x in a {
            k.extend_from_slice(&x.to_be_bytes());
        }
        k
    }

    fn trie4(max: u32) -> std::sync::Arc<dyn Map> {
        create(MapSpec::new(MapType::LpmTrie, 8, 4, max).flags(BPF_F_NO_PREALLOC)).unwrap()
    }

    fn get(m: &dyn Map, key: &[u8]) -> Option<u32> {
        m.lookup_user(key, 0).ok().map(|v| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
    }

    fn walk(m: &dyn Map) -> Vec<Vec<u8>> {
        let mut out = vec![];
        let mut cur: Option<Vec<u8>> = None;
        while let Ok(n) = m.get_next_key(cur.as_deref()) {
            out.push(n.clone());
            cur = Some(n);
        }
        out
    }

    #[test]
    fn create_checks() {
        let e = |s: MapSpec| create(s).unwrap_err().errno();
        assert_eq!(e(MapSpec::new(MapType::LpmTrie, 8, 4, 4)), -EINVAL); // no BPF_F_NO_PREALLOC
        assert_eq!(e(MapSpec::new(MapType::LpmTrie, 4, 4, 4).flags(BPF_F_NO_PREALLOC)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::LpmTrie, 261, 4, 4).flags(BPF_F_NO_PREALLOC)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::LpmTrie, 8, 0, 4).flags(BPF_F_NO_PREALLOC)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::LpmTrie, 8, 4, 0).flags(BPF_F_NO_PREALLOC)), -EINVAL);
        assert!(create(MapSpec::new(MapType::LpmTrie, 260, 4, 4).flags(BPF_F_NO_PREALLOC)).is_ok());
    }

    #[test]
    fn ipv4_overlapping_prefixes() {
        let m = trie4(16);
        m.update_user(&v4([192, 168, 0, 0], 16), &1u32.to_ne_bytes(), BPF_ANY).unwrap();
        m.update_user(&v4([192, 168, 0, 0], 24), &2u32.to_ne_bytes(), BPF_ANY).unwrap();
        m.update_user(&v4([192, 168, 128, 0], 24), &3u32.to_ne_bytes(), BPF_ANY).unwrap();
        m.update_user(&v4([192, 168, 1, 0], 24), &5u32.to_ne_bytes(), BPF_ANY).unwrap();
        m.update_user(&v4([0, 0, 0, 0], 0), &9u32.to_ne_bytes(), BPF_ANY).unwrap();
        m.update_user(&v4([10, 1, 2, 3], 32), &7u32.to_ne_bytes(), BPF_ANY).unwrap();
        assert_eq!(get(&*m, &v4([192, 168, 0, 77], 32)), Some(2));
        assert_eq!(get(&*m, &v4([192, 168, 1, 1], 32)), Some(5));
        assert_eq!(get(&*m, &v4([192, 168, 128, 7], 32)), Some(3));
        assert_eq!(get(&*m, &v4([192, 168, 200, 1], 32)), Some(1));
        assert_eq!(get(&*m, &v4([192, 168, 2, 1], 32)), Some(1));
        assert_eq!(get(&*m, &v4([8, 8, 8, 8], 32)), Some(9));
        assert_eq!(get(&*m, &v4([10, 1, 2, 3], 32)), Some(7));
        assert_eq!(get(&*m, &v4([10, 1, 2, 4], 32)), Some(9));
        // The lookup key's prefixlen bounds the match.
        assert_eq!(get(&*m, &v4([192, 168, 1, 1], 20)), Some(1));
        assert_eq!(get(&*m, &v4([192, 168, 1, 1], 8)), Some(9));
        assert_eq!(get(&*m, &v4([192, 168, 1, 1], 33)), None);
        // Post-order: more specific first; the /0 root last.
        let keys = walk(&*m);
        let expect = vec![
            v4([10, 1, 2, 3], 32),
            v4([192, 168, 0, 0], 24),
            v4([192, 168, 1, 0], 24),
            v4([192, 168, 128, 0], 24),
            v4([192, 168, 0, 0], 16),
            v4([0, 0, 0, 0], 0),
        ];
        assert_eq!(keys, expect);
        // A key not in the trie restarts from the first.
        assert_eq!(m.get_next_key(Some(&v4([1, 2, 3, 4], 32))).unwrap(), expect[0]);
        assert_eq!(m.get_next_key(Some(&v4([1, 2, 3, 4], 40))).unwrap(), expect[0]);
        // Delete the /16: lookups fall back to /0.
        m.delete_user(&v4([192, 168, 0, 0], 16)).unwrap();
        assert_eq!(get(&*m, &v4([192, 168, 2, 1], 32)), Some(9));
        assert_eq!(get(&*m, &v4([192, 168, 0, 1], 32)), Some(2));
        assert_eq!(m.delete_user(&v4([192, 168, 0, 0], 16)), Err(MapError::NotFound));
        // Deleting needs the exact prefix.
        assert_eq!(m.delete_user(&v4([192, 168, 0, 0], 23)), Err(MapError::NotFound));
        assert_eq!(m.delete_user(&v4([192, 168, 0, 0], 33)).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.as_lpm().unwrap().len(), 5);
        for k in walk(&*m) {
            m.delete_user(&k).unwrap();
        }
        assert_eq!(m.get_next_key(None), Err(MapError::NotFound));
        assert_eq!(get(&*m, &v4([192, 168, 0, 1], 32)), None);
    }

    #[test]
    fn flags_and_capacity() {
        let m = trie4(2);
        let v = 1u32.to_ne_bytes();
        assert_eq!(m.update_user(&v4([1, 0, 0, 0], 8), &v, BPF_EXIST), Err(MapError::NotFound));
        assert_eq!(m.update_user(&v4([1, 0, 0, 0], 8), &v, BPF_NOEXIST), Ok(()));
        assert_eq!(m.update_user(&v4([1, 0, 0, 0], 8), &v, BPF_NOEXIST), Err(MapError::Exists));
        assert_eq!(m.update_user(&v4([1, 0, 0, 0], 8), &2u32.to_ne_bytes(), BPF_EXIST), Ok(()));
        assert_eq!(get(&*m, &v4([1, 2, 3, 4], 32)), Some(2));
        assert_eq!(m.update_user(&v4([1, 0, 0, 0], 33), &v, BPF_ANY).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&v4([1, 0, 0, 0], 8), &v, 3).unwrap_err().errno(), -EINVAL);
        assert_eq!(m.update_user(&v4([2, 0, 0, 0], 8), &v, BPF_ANY), Ok(()));
        assert_eq!(m.update_user(&v4([3, 0, 0, 0], 8), &v, BPF_ANY).unwrap_err().errno(), -ENOSPC);
        // Replacing works when full.
        assert_eq!(m.update_user(&v4([2, 0, 0, 0], 8), &v, BPF_ANY), Ok(()));
        // Intermediate node reused as a real node counts as an add.
        let m = trie4(3);
        m.update_user(&v4([10, 0, 0, 0], 24), &v, BPF_ANY).unwrap();
        m.update_user(&v4([10, 0, 1, 0], 24), &v, BPF_ANY).unwrap();
        // The intermediate node is 10.0.0.0/23.
        assert_eq!(m.update_user(&v4([10, 0, 0, 0], 23), &v, BPF_EXIST), Err(MapError::NotFound));
        assert_eq!(m.update_user(&v4([10, 0, 0, 0], 23), &v, BPF_NOEXIST), Ok(()));
        assert_eq!(m.update_user(&v4([10, 0, 2, 0], 23), &v, BPF_ANY).unwrap_err().errno(), -ENOSPC);
    }

    #[test]
    fn ipv6_overlapping_prefixes() {
        let m = create(MapSpec::new(MapType::LpmTrie, 20, 8, 64).flags(BPF_F_NO_PREALLOC)).unwrap();
        let put = |k: Vec<u8>, v: u64| m.update_user(&k, &v.to_ne_bytes(), BPF_ANY).unwrap();
        put(v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), 1);
        put(v6([0x2001, 0xdb8, 0xaaaa, 0, 0, 0, 0, 0], 48), 2);
        put(v6([0x2001, 0xdb8, 0xaaaa, 0xbbbb, 0, 0, 0, 0], 64), 3);
        put(v6([0x2001, 0xdb8, 0xaaaa, 0xbbbb, 0, 0, 0, 1], 128), 4);
        put(v6([0x2001, 0xdb8, 0xaaab, 0, 0, 0, 0, 0], 48), 5);
        put(v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), 6);
        let g = |a: [u16; 8]| m.lookup_user(&v6(a, 128), 0).ok().map(|v| u64::from_ne_bytes(v.try_into().unwrap()));
        assert_eq!(g([0x2001, 0xdb8, 0xaaaa, 0xbbbb, 0, 0, 0, 1]), Some(4));
        assert_eq!(g([0x2001, 0xdb8, 0xaaaa, 0xbbbb, 0, 0, 0, 2]), Some(3));
        assert_eq!(g([0x2001, 0xdb8, 0xaaaa, 0xcccc, 0, 0, 0, 2]), Some(2));
        assert_eq!(g([0x2001, 0xdb8, 0xaaab, 0xcccc, 0, 0, 0, 2]), Some(5));
        assert_eq!(g([0x2001, 0xdb8, 0xaaac, 0, 0, 0, 0, 0]), Some(1));
        assert_eq!(g([0xfebf, 0, 0, 0, 0, 0, 0, 1]), Some(6));
        assert_eq!(g([0xfec0, 0, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(g([0x2002, 0, 0, 0, 0, 0, 0, 0]), None);
        let keys = walk(&*m);
        assert_eq!(keys.len(), 6);
        assert_eq!(keys[0], v6([0x2001, 0xdb8, 0xaaaa, 0xbbbb, 0, 0, 0, 1], 128));
        assert_eq!(keys[5], v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10));
        // Program-side pointer is in the value region and sees the value.
        let p = m.lookup(&v6([0x2001, 0xdb8, 0xaaab, 1, 0, 0, 0, 0], 128), 0).unwrap();
        let (s, l) = m.value_regions()[0];
        assert!(p as usize >= s && p as usize + 8 <= s + l);
        // SAFETY: value pointer of this map.
        assert_eq!(unsafe { (p as *const u64).read_unaligned() }, 5);
    }

    #[test]
    fn trailing_bits_are_kept_in_keys() {
        let m = trie4(4);
        m.update_user(&v4([10, 1, 2, 3], 8), &[1; 4], BPF_ANY).unwrap();
        assert_eq!(m.get_next_key(None).unwrap(), v4([10, 1, 2, 3], 8));
        assert_eq!(get(&*m, &v4([10, 9, 9, 9], 32)), Some(0x01010101));
        // An update of the same prefix with other trailing bits replaces it.
        m.update_user(&v4([10, 7, 7, 7], 8), &[2; 4], BPF_NOEXIST).unwrap_err();
        m.update_user(&v4([10, 7, 7, 7], 8), &[2; 4], BPF_ANY).unwrap();
        assert_eq!(walk(&*m), vec![v4([10, 7, 7, 7], 8)]);
    }

    #[test]
    fn random_against_model() {
        // Model: longest prefix match over a plain list.
        let m = trie4(64);
        let mut model: std::collections::BTreeMap<(u32, u32), u32> = Default::default();
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mask = |plen: u32| if plen == 0 { 0 } else { u32::MAX << (32 - plen) };
        for step in 0..4000u32 {
            let r = next();
            let addr = (r as u32) & 0xff0f_0f00 | 0x0a00_0000;
            let plen = [0, 4, 8, 12, 16, 20, 24, 28, 32][(r >> 40) as usize % 9];
            let key = v4(addr.to_be_bytes(), plen);
            let id = (addr & mask(plen), plen);
            match (r >> 50) % 3 {
                0 | 1 => {
                    let res = m.update_user(&key, &step.to_ne_bytes(), BPF_ANY);
                    if model.contains_key(&id) || model.len() < 64 {
                        res.unwrap();
                        model.insert(id, step);
                    } else {
                        assert_eq!(res.unwrap_err().errno(), -ENOSPC);
                    }
                }
                _ => {
                    let res = m.delete_user(&key);
                    assert_eq!(res.is_ok(), model.remove(&id).is_some());
                }
            }
            let probe = (next() as u32) & 0xff0f_0f0f | 0x0a00_0000;
            let want =
                model.iter().filter(|((a, p), _)| probe & mask(*p) == *a).max_by_key(|((_, p), _)| *p).map(|(_, v)| *v);
            assert_eq!(get(&*m, &v4(probe.to_be_bytes(), 32)), want, "step {step}");
        }
        assert_eq!(walk(&*m).len(), model.len());
    }
}
