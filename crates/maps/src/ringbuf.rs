//! `BPF_MAP_TYPE_RINGBUF` (kernel/bpf/ringbuf.c): a multi-producer,
//! single-consumer byte ring with the kernel's record format.
//!
//! `max_entries` is the data size: a power of two and a multiple of the page
//! size (4096). Each record starts with an 8-byte header
//! `{ u32 len; u32 pg_off; }` at an 8-byte-aligned position; `len` carries
//! `BPF_RINGBUF_BUSY_BIT` while the record is reserved and
//! `BPF_RINGBUF_DISCARD_BIT` once discarded; records take
//! `round_up(len + 8, 8)` bytes. Positions grow without wrapping (`u64`)
//! and are masked into the ring.
//!
//! Like the kernel, whose data pages are mapped twice back to back, a
//! record is contiguous in memory even when it wraps past the end of the
//! ring: uxdp allocates the data area twice as large and lets records run
//! into the second half; the consumer reads them there. `pg_off` holds the
//! record's page offset within the data area (the kernel stores an offset
//! from its private header; nothing outside the kernel reads it).
//!
//! Reservation follows the kernel (6.10+): a record is refused when the
//! producer would get more than `size - 1` bytes ahead of the consumer or
//! of the oldest record still being written. Submitting and discarding are
//! atomic on the header; wakeups are adaptive (only when the consumer has
//! caught up with the record), forced or suppressed by the flags, and
//! observable through [`RingBuf::wait`] and [`RingBuf::wakeups`].

use std::any::Any;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{MapError, Result};
use crate::storage::Slab;
use crate::{
    check_flags, Map, MapSpec, MapType, BPF_F_NUMA_NODE, BPF_RB_AVAIL_DATA, BPF_RB_CONS_POS, BPF_RB_FORCE_WAKEUP,
    BPF_RB_NO_WAKEUP, BPF_RB_PROD_POS, BPF_RB_RING_SIZE, BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT,
    BPF_RINGBUF_HDR_SZ,
};

const PAGE_SIZE: u64 = 4096;
/// `RINGBUF_MAX_RECORD_SZ`.
const MAX_RECORD: u64 = u32::MAX as u64 / 4;
/// `RINGBUF_MAX_DATA_SZ` (64 GiB minus the metadata pages).
const MAX_DATA: u64 = ((1 << 24) - 3) * PAGE_SIZE;
/// `DYNPTR_MAX_SIZE`.
const DYNPTR_MAX_SIZE: u64 = (1 << 24) - 1;

/// A `ringbuf` map.
pub struct RingBuf {
    spec: MapSpec,
    mask: u64,
    data: Slab,
    consumer_pos: AtomicU64,
    producer_pos: AtomicU64,
    /// Producer lock; holds the position of the oldest record that may
    /// still be busy (`pending_pos`).
    producer: Mutex<u64>,
    /// Consumer lock and its copy buffer.
    consumer: Mutex<Vec<u8>>,
    wake_lock: Mutex<()>,
    wake_cv: Condvar,
    waiters: AtomicU32,
    wakeups: AtomicU64,
}

impl RingBuf {
    /// Creates the map (see [`crate::create`]).
    pub fn new(spec: MapSpec) -> Result<RingBuf> {
        if spec.kind() != Some(MapType::Ringbuf) {
            return Err(MapError::invalid(format!("{} is not a ringbuf", spec.describe())));
        }
        check_flags(&spec, BPF_F_NUMA_NODE)?;
        let size = spec.max_entries as u64;
        if spec.key_size != 0 || spec.value_size != 0 || !size.is_power_of_two() || size % PAGE_SIZE != 0 {
            return Err(MapError::invalid(format!(
                "{}: needs key_size 0, value_size 0 and max_entries a power of two multiple of {PAGE_SIZE} \
                 (got {}, {}, {})",
                spec.describe(),
                spec.key_size,
                spec.value_size,
                spec.max_entries
            )));
        }
        if size > MAX_DATA {
            return Err(MapError::TooBig(format!("{}: ring of {size} bytes too large", spec.describe()).into()));
        }
        let data = Slab::new(2 * size as usize, "ringbuf data")?;
        Ok(RingBuf {
            spec,
            mask: size - 1,
            data,
            consumer_pos: AtomicU64::new(0),
            producer_pos: AtomicU64::new(0),
            producer: Mutex::new(0),
            consumer: Mutex::new(Vec::new()),
            wake_lock: Mutex::new(()),
            wake_cv: Condvar::new(),
            waiters: AtomicU32::new(0),
            wakeups: AtomicU64::new(0),
        })
    }

    /// Ring size in bytes.
    pub fn size(&self) -> u64 {
        self.mask + 1
    }

    #[inline]
    fn hdr_len(&self, off: u64) -> &AtomicU32 {
        // SAFETY: off is 8-aligned and below the ring size, so the header is
        // inside the (8-aligned) data slab; header words are only accessed
        // atomically by the map.
        unsafe { &*(self.data.at(off as usize) as *const AtomicU32) }
    }

    #[inline]
    fn hdr_pgoff(&self, off: u64) -> &AtomicU32 {
        // SAFETY: as for hdr_len, 4 bytes further.
        unsafe { &*(self.data.at(off as usize + 4) as *const AtomicU32) }
    }

    /// `bpf_ringbuf_reserve`: a pointer to `size` writable bytes, or `None`
    /// (flags not 0, record too large, or no room).
    pub fn reserve(&self, size: u64, flags: u64) -> Option<*mut u8> {
        if flags != 0 || size > MAX_RECORD {
            return None;
        }
        let len = (size + BPF_RINGBUF_HDR_SZ as u64 + 7) & !7;
        if len > self.mask + 1 {
            return None;
        }
        let cons = self.consumer_pos.load(Ordering::Acquire);
        let mut pending = self.producer.lock();
        let prod = self.producer_pos.load(Ordering::Relaxed);
        // Advance past records that are no longer busy.
        let mut pend = *pending;
        while pend < prod {
            let l = self.hdr_len(pend & self.mask).load(Ordering::Acquire);
            if l & BPF_RINGBUF_BUSY_BIT != 0 {
                break;
            }
            let step = ((l & !BPF_RINGBUF_DISCARD_BIT) as u64 + BPF_RINGBUF_HDR_SZ as u64 + 7) & !7;
            if step > prod - pend {
                // A program overwrote a header; stop trusting the chain.
                break;
            }
            pend += step;
        }
        *pending = pend;
        let new_prod = prod + len;
        if new_prod - cons > self.mask || new_prod - pend > self.mask {
            return None;
        }
        let off = prod & self.mask;
        self.hdr_len(off).store(size as u32 | BPF_RINGBUF_BUSY_BIT, Ordering::Relaxed);
        self.hdr_pgoff(off).store((off / PAGE_SIZE) as u32, Ordering::Relaxed);
        self.producer_pos.store(new_prod, Ordering::Release);
        drop(pending);
        Some(self.data.at(off as usize + BPF_RINGBUF_HDR_SZ as usize))
    }

    /// `bpf_ringbuf_reserve_dynptr`: like [`RingBuf::reserve`] with the
    /// dynptr helper's errors (`EINVAL` for flags or no room, `E2BIG` above
    /// the dynptr size limit).
    pub fn reserve_dynptr(&self, size: u64, flags: u64) -> Result<*mut u8> {
        if flags != 0 {
            return Err(MapError::invalid(format!("{}: reserve flags must be 0", self.spec.describe())));
        }
        if size > DYNPTR_MAX_SIZE {
            return Err(MapError::TooBig(format!("{}: dynptr of {size} bytes too large", self.spec.describe()).into()));
        }
        self.reserve(size, 0)
            .ok_or_else(|| MapError::invalid(format!("{}: no room for {size} bytes", self.spec.describe())))
    }

    /// The header offset of a sample pointer, checked.
    fn record_of(&self, sample: *mut u8) -> Result<u64> {
        let base = self.data.base() as usize;
        let addr = sample as usize;
        let hdr = (BPF_RINGBUF_HDR_SZ) as usize;
        if addr < base + hdr || addr - hdr - base > self.mask as usize || (addr - hdr - base) % 8 != 0 {
            return Err(MapError::invalid(format!(
                "{}: {addr:#x} is not a record of this ring buffer",
                self.spec.describe()
            )));
        }
        Ok((addr - hdr - base) as u64)
    }

    fn commit(&self, sample: *mut u8, flags: u64, discard: bool) -> Result<()> {
        let off = self.record_of(sample)?;
        let hdr = self.hdr_len(off);
        let len = hdr.load(Ordering::Acquire);
        if len & BPF_RINGBUF_BUSY_BIT == 0 {
            return Err(MapError::invalid(format!(
                "{}: record at offset {off} is not reserved (already submitted or discarded)",
                self.spec.describe()
            )));
        }
        let mut new_len = len ^ BPF_RINGBUF_BUSY_BIT;
        if discard {
            new_len |= BPF_RINGBUF_DISCARD_BIT;
        }
        hdr.swap(new_len, Ordering::AcqRel);
        let cons = self.consumer_pos.load(Ordering::Acquire) & self.mask;
        if flags & BPF_RB_FORCE_WAKEUP != 0 || (cons == off && flags & BPF_RB_NO_WAKEUP == 0) {
            self.notify();
        }
        Ok(())
    }

    /// `bpf_ringbuf_submit` of a pointer from [`RingBuf::reserve`]. The
    /// pointer is checked to be a reserved record of this ring (an error
    /// otherwise; the kernel's verifier guarantees it there).
    pub fn submit(&self, sample: *mut u8, flags: u64) -> Result<()> {
        self.commit(sample, flags, false)
    }

    /// `bpf_ringbuf_discard`.
    pub fn discard(&self, sample: *mut u8, flags: u64) -> Result<()> {
        self.commit(sample, flags, true)
    }

    /// `bpf_ringbuf_output`: `EINVAL` for unknown flags, `EAGAIN` when full.
    pub fn output(&self, data: &[u8], flags: u64) -> Result<()> {
        if flags & !(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP) != 0 {
            return Err(MapError::invalid(format!("{}: unknown output flags {flags:#x}", self.spec.describe())));
        }
        let rec = self.reserve(data.len() as u64, 0).ok_or(MapError::Again)?;
        // SAFETY: the reservation is data.len() bytes of this ring's memory.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), rec, data.len()) };
        self.commit(rec, flags, false)
    }

    /// `bpf_ringbuf_query`; unknown flags give 0.
    pub fn query(&self, flags: u64) -> u64 {
        match flags {
            BPF_RB_AVAIL_DATA => self.available(),
            BPF_RB_RING_SIZE => self.size(),
            BPF_RB_CONS_POS => self.consumer_pos.load(Ordering::Acquire),
            BPF_RB_PROD_POS => self.producer_pos.load(Ordering::Acquire),
            _ => 0,
        }
    }

    /// Bytes reserved but not consumed (including busy records).
    pub fn available(&self) -> u64 {
        let cons = self.consumer_pos.load(Ordering::Acquire);
        self.producer_pos.load(Ordering::Acquire).wrapping_sub(cons)
    }

    /// Whether the next record is committed and can be consumed.
    pub fn readable(&self) -> bool {
        let cons = self.consumer_pos.load(Ordering::Acquire);
        if self.producer_pos.load(Ordering::Acquire) <= cons {
            return false;
        }
        self.hdr_len(cons & self.mask).load(Ordering::Acquire) & BPF_RINGBUF_BUSY_BIT == 0
    }

    /// Consumes committed records in order, calling `f` with each record's
    /// bytes (discarded records are skipped); stops at the first record
    /// still being written, at the end, or when `f` breaks (that record
    /// counts as consumed, as with libbpf). Returns the records delivered.
    /// An error means a program corrupted a record header; the records
    /// before it were consumed.
    pub fn consume(&self, f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) -> Result<usize> {
        let mut buf = self.consumer.lock();
        let mut cons = self.consumer_pos.load(Ordering::Relaxed);
        let mut n = 0;
        loop {
            let prod = self.producer_pos.load(Ordering::Acquire);
            if cons >= prod {
                break;
            }
            let off = cons & self.mask;
            let len = self.hdr_len(off).load(Ordering::Acquire);
            if len & BPF_RINGBUF_BUSY_BIT != 0 {
                break;
            }
            let sz = (len & !BPF_RINGBUF_DISCARD_BIT) as u64;
            let total = (sz + BPF_RINGBUF_HDR_SZ as u64 + 7) & !7;
            if total > prod - cons {
                return Err(MapError::invalid(format!(
                    "{}: corrupt record header at position {cons} (length {sz})",
                    self.spec.describe()
                )));
            }
            cons += total;
            let mut flow = ControlFlow::Continue(());
            if len & BPF_RINGBUF_DISCARD_BIT == 0 {
                buf.clear();
                buf.resize(sz as usize, 0);
                // SAFETY: the record lies in [off + 8, off + 8 + sz) with
                // off + 8 + sz <= 2 * size, inside the data slab.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.data.at(off as usize + BPF_RINGBUF_HDR_SZ as usize),
                        buf.as_mut_ptr(),
                        sz as usize,
                    )
                };
                n += 1;
                flow = f(&buf);
            }
            self.consumer_pos.store(cons, Ordering::Release);
            if flow.is_break() {
                break;
            }
        }
        Ok(n)
    }

    fn notify(&self) {
        self.wakeups.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.wake_lock.lock();
            self.wake_cv.notify_all();
        }
    }

    /// Number of wakeups producers have sent.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::SeqCst)
    }

    /// Waits until a record can be consumed or `timeout` passes; returns
    /// whether one can.
    pub fn wait(&self, timeout: Duration) -> bool {
        if self.readable() {
            return true;
        }
        let deadline = Instant::now() + timeout;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut g = self.wake_lock.lock();
        let r = loop {
            if self.readable() {
                break true;
            }
            if self.wake_cv.wait_until(&mut g, deadline).timed_out() {
                break self.readable();
            }
        };
        drop(g);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        r
    }

    fn not_supp(&self) -> MapError {
        MapError::NotSupported(format!("{}: ring buffers have no elements", self.spec.describe()).into())
    }
}

impl Map for RingBuf {
    fn spec(&self) -> &MapSpec {
        &self.spec
    }

    fn lookup(&self, _key: &[u8], _cpu: u32) -> Option<*mut u8> {
        None
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> Result<()> {
        Err(self.not_supp())
    }

    fn delete(&self, _key: &[u8]) -> Result<()> {
        Err(self.not_supp())
    }

    fn user_value_size(&self) -> usize {
        0
    }

    fn lookup_user_into(&self, _key: &[u8], _out: &mut [u8], _flags: u64) -> Result<()> {
        Err(self.not_supp())
    }

    fn update_user(&self, _key: &[u8], _value: &[u8], _flags: u64) -> Result<()> {
        Err(self.not_supp())
    }

    fn delete_user(&self, _key: &[u8]) -> Result<()> {
        Err(self.not_supp())
    }

    fn get_next_key_into(&self, _key: Option<&[u8]>, _next: &mut [u8]) -> Result<()> {
        Err(self.not_supp())
    }

    fn value_regions(&self) -> Vec<(usize, usize)> {
        vec![self.data.region()]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create;
    use crate::error::*;

    fn rb(size: u32) -> std::sync::Arc<dyn Map> {
        create(MapSpec::new(MapType::Ringbuf, 0, 0, size)).unwrap()
    }

    fn drain(r: &RingBuf) -> Vec<Vec<u8>> {
        let mut v = vec![];
        r.consume(&mut |d| {
            v.push(d.to_vec());
            ControlFlow::Continue(())
        })
        .unwrap();
        v
    }

    #[test]
    fn create_checks() {
        let e = |s: MapSpec| create(s).unwrap_err().errno();
        assert_eq!(e(MapSpec::new(MapType::Ringbuf, 0, 0, 4096 * 3)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Ringbuf, 0, 0, 2048)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Ringbuf, 4, 0, 4096)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Ringbuf, 0, 4, 4096)), -EINVAL);
        assert_eq!(e(MapSpec::new(MapType::Ringbuf, 0, 0, 4096).flags(crate::BPF_F_RDONLY)), -EINVAL);
        let m = rb(4096);
        assert_eq!(m.lookup_user(&[], 0).unwrap_err().errno(), -ENOTSUPP);
        assert_eq!(m.update_user(&[], &[], 0).unwrap_err().errno(), -ENOTSUPP);
        assert_eq!(m.delete_user(&[]).unwrap_err().errno(), -ENOTSUPP);
        assert_eq!(m.get_next_key(None).unwrap_err().errno(), -ENOTSUPP);
    }

    #[test]
    fn header_layout_submit_discard_order() {
        let m = rb(4096);
        let r = m.as_ringbuf().unwrap();
        let a = r.reserve(5, 0).unwrap();
        let b = r.reserve(16, 0).unwrap();
        let c = r.reserve(1, 0).unwrap();
        let base = m.value_regions()[0].0;
        assert_eq!(a as usize, base + 8);
        assert_eq!(b as usize, base + 8 + 16);
        assert_eq!(c as usize, base + 16 + 24 + 8);
        // Header: len with BUSY, then page offset.
        // SAFETY: headers in the ring.
        unsafe {
            assert_eq!(((a as usize - 8) as *const u32).read(), 5 | BPF_RINGBUF_BUSY_BIT);
            assert_eq!(((a as usize - 4) as *const u32).read(), 0);
            std::ptr::copy_nonoverlapping(b"hello".as_ptr(), a, 5);
            std::ptr::write_bytes(b, 0xbb, 16);
            *c = 0xcc;
        }
        assert_eq!(r.query(BPF_RB_AVAIL_DATA), 16 + 24 + 16);
        assert_eq!(r.query(BPF_RB_PROD_POS), 56);
        assert_eq!(r.query(BPF_RB_RING_SIZE), 4096);
        assert_eq!(r.query(99), 0);
        // Out-of-order commit: c and b done, a still busy -> nothing yet.
        r.submit(c, 0).unwrap();
        r.discard(b, 0).unwrap();
        assert!(!r.readable());
        assert!(drain(r).is_empty());
        // SAFETY: header of b.
        assert_eq!(unsafe { ((b as usize - 8) as *const u32).read() }, 16 | BPF_RINGBUF_DISCARD_BIT);
        r.submit(a, 0).unwrap();
        assert_eq!(drain(r), vec![b"hello".to_vec(), vec![0xcc]]);
        assert_eq!(r.query(BPF_RB_CONS_POS), 56);
        assert_eq!(r.query(BPF_RB_AVAIL_DATA), 0);
        // Double submit and foreign pointers are refused.
        assert_eq!(r.submit(a, 0).unwrap_err().errno(), -EINVAL);
        assert_eq!(r.submit((base + 3) as *mut u8, 0).unwrap_err().errno(), -EINVAL);
        assert_eq!(r.submit(std::ptr::null_mut(), 0).unwrap_err().errno(), -EINVAL);
    }

    #[test]
    fn limits_and_flags() {
        let m = rb(4096);
        let r = m.as_ringbuf().unwrap();
        assert!(r.reserve(8, 1).is_none());
        assert!(r.reserve(4096, 0).is_none());
        // At most size - 1 bytes ahead: 4088 + 8 = 4096 is too much.
        assert!(r.reserve(4088, 0).is_none());
        let big = r.reserve(4080, 0).unwrap();
        assert!(r.reserve(0, 0).is_none());
        assert_eq!(r.output(b"x", 0), Err(MapError::Again));
        assert_eq!(r.output(b"x", 4).unwrap_err().errno(), -EINVAL);
        r.discard(big, 0).unwrap();
        assert!(drain(r).is_empty());
        assert_eq!(r.reserve_dynptr(8, 1).unwrap_err().errno(), -EINVAL);
        assert_eq!(r.reserve_dynptr(1 << 24, 0).unwrap_err().errno(), -E2BIG);
        assert_eq!(r.reserve_dynptr(8000, 0).unwrap_err().errno(), -EINVAL);
        let p = r.reserve_dynptr(8, 0).unwrap();
        r.submit(p, 0).unwrap();
        assert_eq!(drain(r).len(), 1);
    }

    #[test]
    fn busy_record_blocks_space() {
        // A busy record holds its space; committed records after it cannot
        // be consumed before it.
        let m = rb(4096);
        let r = m.as_ringbuf().unwrap();
        let a = r.reserve(1000, 0).unwrap(); // 1008 bytes
        let b = r.reserve(1000, 0).unwrap();
        r.submit(b, 0).unwrap();
        // 2016 used; 2072 more would be 4088 ahead of a -> allowed.
        let c = r.reserve(2064, 0).unwrap();
        r.discard(c, 0).unwrap();
        assert!(r.reserve(0, 0).is_none());
        r.submit(a, 0).unwrap();
        assert_eq!(drain(r).len(), 2);
        assert!(r.reserve(100, 0).is_some());
    }

    #[test]
    fn wraparound_keeps_records_contiguous() {
        let m = rb(4096);
        let r = m.as_ringbuf().unwrap();
        let (start, len) = m.value_regions()[0];
        assert_eq!(len, 8192);
        let mut expected = std::collections::VecDeque::new();
        let check = |got: Vec<Vec<u8>>, expected: &mut std::collections::VecDeque<u32>| {
            for rec in got {
                let id = expected.pop_front().expect("unexpected record");
                assert_eq!(rec.len() as u32, 100 + (id * 37) % 900, "record {id}");
                assert_eq!(u32::from_ne_bytes(rec[..4].try_into().unwrap()), id);
                for (i, b) in rec.iter().enumerate().skip(4) {
                    assert_eq!(*b, (i as u32 ^ id) as u8, "record {id} byte {i}");
                }
            }
        };
        let mut wrapped = 0;
        for id in 0..300u32 {
            let size = 100 + (id * 37) % 900;
            let p = loop {
                match r.reserve(size as u64, 0) {
                    Some(p) => break p,
                    None => check(drain(r), &mut expected),
                }
            };
            assert!(p as usize >= start && p as usize + size as usize <= start + len);
            if p as usize + size as usize > start + 4096 {
                wrapped += 1;
            }
            let mut rec = vec![0u8; size as usize];
            rec[..4].copy_from_slice(&id.to_ne_bytes());
            for (i, b) in rec.iter_mut().enumerate().skip(4) {
                *b = (i as u32 ^ id) as u8;
            }
            // SAFETY: reserved bytes.
            unsafe { std::ptr::copy_nonoverlapping(rec.as_ptr(), p, rec.len()) };
            if id % 7 == 3 {
                r.discard(p, 0).unwrap();
            } else {
                r.submit(p, 0).unwrap();
                expected.push_back(id);
            }
        }
        check(drain(r), &mut expected);
        assert!(expected.is_empty());
        assert!(wrapped > 5, "records crossing the end of the ring: {wrapped}");
        assert!(r.query(BPF_RB_PROD_POS) > 4096 * 10, "the ring wrapped many times");
    }

    #[test]
    fn adaptive_and_forced_wakeups() {
        let m = rb(4096);
        let r = m.as_ringbuf().unwrap();
        let w0 = r.wakeups();
        r.output(b"a", 0).unwrap(); // consumer at this record: wakeup
        assert_eq!(r.wakeups(), w0 + 1);
        r.output(b"b", 0).unwrap(); // consumer behind: none
        assert_eq!(r.wakeups(), w0 + 1);
        r.output(b"c", BPF_RB_FORCE_WAKEUP).unwrap();
        assert_eq!(r.wakeups(), w0 + 2);
        drain(r);
        r.output(b"d", BPF_RB_NO_WAKEUP).unwrap();
        assert_eq!(r.wakeups(), w0 + 2);
        drain(r);
        // A waiting consumer is woken by a producer thread.
        let m2 = m.clone();
        let t = std::thread::spawn(move || m2.as_ringbuf().unwrap().wait(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        r.output(b"e", 0).unwrap();
        assert!(t.join().unwrap());
        assert!(!r.wait(Duration::from_millis(1)) || r.readable());
        let mut got = 0;
        r.consume(&mut |_| {
            got += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(got, 1);
    }

    #[test]
    fn corrupt_header_is_an_error_not_ub() {
        let m = rb(4096);
        let r = m.as_ringbuf().unwrap();
        let p = r.reserve(8, 0).unwrap();
        r.submit(p, 0).unwrap();
        // A buggy program scribbles over the header.
        // SAFETY: header inside the ring.
        unsafe { ((p as usize - 8) as *mut u32).write(3000) };
        assert_eq!(r.consume(&mut |_| ControlFlow::Continue(())).unwrap_err().errno(), -EINVAL);
    }
}
