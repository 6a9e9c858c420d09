//! The helpers XDP programs may call, with the kernel's semantics and
//! return codes. A program calling anything else fails to load with the
//! helper's name and number.

use crate::env::{env, Redirect};
use uxdp_maps::{Map, MapType};
use uxdp_vm::{Helpers, Machine, Region, VmError};

const EINVAL: u64 = (-22i64) as u64;
const ENOENT: u64 = (-2i64) as u64;
const XDP_ABORTED: u64 = 0;
const XDP_REDIRECT: u64 = 4;

fn fault(m: &Machine<'_>, helper: &'static str, msg: impl Into<String>) -> VmError {
    VmError::Helper { pc: m.pc(), helper, msg: msg.into() }
}

/// Resolves a map handle argument to a shared reference (for helpers that
/// need the map beyond a borrow of the machine).
fn map_arg(m: &mut Machine<'_>, helper: &'static str, handle: u64) -> Result<std::sync::Arc<dyn Map>, VmError> {
    let pc = m.pc();
    env(m)?.maps.get(handle).cloned().ok_or_else(|| VmError::Helper {
        pc,
        helper,
        msg: format!("{handle:#x} is not a map"),
    })
}

/// Resolves a map handle argument without touching its reference count
/// (the hot path of the map helpers).
#[inline]
fn map_ref<'t>(m: &mut Machine<'_>, helper: &'static str, handle: u64) -> Result<&'t dyn Map, VmError> {
    map_and_cpu(m, helper, handle).map(|(map, _)| map)
}

/// [`map_ref`] plus the run's CPU, with one look at the environment (its
/// downcast is a large part of a map helper's cost).
#[inline]
fn map_and_cpu<'t>(m: &mut Machine<'_>, helper: &'static str, handle: u64) -> Result<(&'t dyn Map, u32), VmError> {
    let pc = m.pc();
    let e = env(m)?;
    let cpu = e.cpu;
    let map: &dyn Map = &**e.maps.get(handle).ok_or_else(|| VmError::Helper {
        pc,
        helper,
        msg: format!("{handle:#x} is not a map"),
    })?;
    // SAFETY: the map lives in the run's `MapTable`, which the environment
    // holds through an `Arc` for the whole run; helpers never replace it
    // (`Runner::use_tables` only runs between programs), so the reference
    // outlives this helper call, which is all `'t` is used for.
    Ok((unsafe { &*(map as *const dyn Map) }, cpu))
}

/// Borrows `len` bytes of program memory at `addr` (no copy).
#[inline]
fn mem<'m>(m: &'m Machine<'_>, helper: &'static str, addr: u64, len: usize) -> Result<&'m [u8], VmError> {
    m.mem
        .slice(addr, len as u64)
        .ok_or_else(|| fault(m, helper, format!("{len} bytes at {addr:#x} are not readable program memory")))
}

/// Copies `len` bytes of program memory at `addr`.
fn read_mem(m: &Machine<'_>, helper: &'static str, addr: u64, len: usize) -> Result<Vec<u8>, VmError> {
    m.mem
        .slice(addr, len as u64)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| fault(m, helper, format!("{len} bytes at {addr:#x} are not readable program memory")))
}

fn map_lookup_elem(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let (map, cpu) = map_and_cpu(m, "map_lookup_elem", a[0])?;
    let key = mem(m, "map_lookup_elem", a[1], map.spec().key_size as usize)?;
    // Map-in-map lookups yield the inner map's handle (a MapTable handle).
    Ok(map.lookup(key, cpu).map_or(0, |p| p as u64))
}

fn map_update_elem(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let (map, cpu) = map_and_cpu(m, "map_update_elem", a[0])?;
    let key = mem(m, "map_update_elem", a[1], map.spec().key_size as usize)?;
    let value = mem(m, "map_update_elem", a[2], map.spec().value_size as usize)?;
    Ok(match map.update(key, value, a[3], cpu) {
        Ok(()) => 0,
        Err(e) => e.helper_ret(),
    })
}

fn map_delete_elem(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let map = map_ref(m, "map_delete_elem", a[0])?;
    let key = mem(m, "map_delete_elem", a[1], map.spec().key_size as usize)?;
    Ok(match map.delete(key) {
        Ok(()) => 0,
        Err(e) => e.helper_ret(),
    })
}

fn map_push_elem(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let map = map_arg(m, "map_push_elem", a[0])?;
    let value = read_mem(m, "map_push_elem", a[1], map.spec().value_size as usize)?;
    Ok(match map.push(&value, a[2]) {
        Ok(()) => 0,
        Err(e) => e.helper_ret(),
    })
}

fn pop_or_peek(m: &mut Machine<'_>, a: [u64; 5], helper: &'static str, pop: bool) -> Result<u64, VmError> {
    let map = map_arg(m, helper, a[0])?;
    let n = map.spec().value_size as usize;
    let mut out = vec![0u8; n];
    let r = if pop { map.pop(&mut out) } else { map.peek(&mut out) };
    match r {
        Ok(()) => {
            let dst =
                m.mem.slice_mut(a[1], n as u64).ok_or_else(|| fault(m, helper, "value buffer is not writable"))?;
            dst.copy_from_slice(&out);
            Ok(0)
        }
        Err(e) => Ok(e.helper_ret()),
    }
}

fn map_pop_elem(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    pop_or_peek(m, a, "map_pop_elem", true)
}

fn map_peek_elem(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    pop_or_peek(m, a, "map_peek_elem", false)
}

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn ktime_get_ns(_m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    Ok(clock(libc::CLOCK_MONOTONIC))
}

fn ktime_get_boot_ns(_m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    Ok(clock(libc::CLOCK_BOOTTIME))
}

fn ktime_get_coarse_ns(_m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    Ok(clock(libc::CLOCK_MONOTONIC_COARSE))
}

fn ktime_get_tai_ns(_m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    Ok(clock(libc::CLOCK_TAI))
}

/// The kernel's `jiffies_64` at CONFIG_HZ=250 (Debian's), counted from boot.
fn jiffies64(_m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    Ok(clock(libc::CLOCK_BOOTTIME) / 4_000_000)
}

fn get_prandom_u32(m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    Ok(env(m)?.next_random() as u64)
}

fn get_smp_processor_id(m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    Ok(env(m)?.cpu as u64)
}

fn get_numa_node_id(_m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    Ok(0)
}

/// `bpf_trace_printk(fmt, fmt_size, a, b, c)`: formats like the kernel
/// (`%d %i %u %x %X %ld %lu %lx %lld %llu %llx %p %c %%`) into the run's trace log.
fn trace_printk(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let fmt = read_mem(m, "trace_printk", a[0], a[1] as usize)?;
    let fmt = fmt.split(|&b| b == 0).next().unwrap_or(&[]);
    let Ok(fmt) = std::str::from_utf8(fmt) else { return Ok(EINVAL) };
    let args = [a[2], a[3], a[4]];
    let mut out = String::new();
    let mut n = 0;
    let mut it = fmt.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut longs = 0;
        while it.peek() == Some(&'l') {
            it.next();
            longs += 1;
        }
        let Some(conv) = it.next() else { return Ok(EINVAL) };
        if conv == '%' {
            out.push('%');
            continue;
        }
        if n == 3 {
            return Ok(EINVAL);
        }
        let v = args[n];
        n += 1;
        let v32 = longs == 0;
        match conv {
            'd' | 'i' => out += &if v32 { (v as i32).to_string() } else { (v as i64).to_string() },
            'u' => out += &if v32 { (v as u32).to_string() } else { v.to_string() },
            'x' => out += &if v32 { format!("{:x}", v as u32) } else { format!("{v:x}") },
            'X' => out += &if v32 { format!("{:X}", v as u32) } else { format!("{v:X}") },
            'p' => out += &format!("{v:#x}"),
            'c' => out.push(v as u8 as char),
            _ => return Ok(EINVAL),
        }
    }
    let len = out.len() as u64;
    env(m)?.trace.push(out.trim_end_matches('\n').to_string());
    Ok(len)
}

/// `bpf_tail_call(ctx, prog_array, index)`.
fn tail_call(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let map = map_arg(m, "tail_call", a[1])?;
    let Some(pa) = map.as_prog_array() else { return Err(fault(m, "tail_call", "map is not a prog_array")) };
    let Some(id) = pa.get(a[2] as u32) else { return Ok(ENOENT) };
    let target = env(m)?.progs.progs.get((id as usize).wrapping_sub(1)).cloned().flatten();
    match target {
        Some(p) => Ok(if m.request_tail_call(p) { 0 } else { ENOENT }),
        None => Ok(ENOENT),
    }
}

fn redirect(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    if a[1] != 0 {
        return Ok(XDP_ABORTED);
    }
    env(m)?.redirect = Some(Redirect::Ifindex(a[0] as u32));
    Ok(XDP_REDIRECT)
}

const BPF_F_BROADCAST: u64 = 1 << 3;
const BPF_F_EXCLUDE_INGRESS: u64 = 1 << 4;

fn redirect_map(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    // One look at the environment: its downcast is a large part of the cost.
    let pc = m.pc();
    let e = env(m)?;
    let Some(map) = e.maps.get(a[0]) else {
        return Err(VmError::Helper { pc, helper: "redirect_map", msg: format!("{:#x} is not a map", a[0]) });
    };
    let action_mask = 3u64;
    let t = map.spec().map_type;
    let devmap = t == MapType::Devmap as u32 || t == MapType::DevmapHash as u32;
    let flag_mask = if devmap { BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS } else { 0 };
    let flags = a[2];
    if flags & !(action_mask | flag_mask) != 0 {
        return Ok(XDP_ABORTED);
    }
    let key = a[1] as u32;
    // A broadcast redirects whatever the key (the kernel does not look it up).
    let found = flags & BPF_F_BROADCAST != 0 || map.lookup(&key.to_le_bytes(), e.cpu).is_some();
    if !found {
        e.redirect = None;
        return Ok(flags & action_mask);
    }
    let map = a[0].wrapping_sub(crate::env::MAP_HANDLE_BASE) as usize;
    e.redirect = Some(Redirect::Map { map, key });
    Ok(XDP_REDIRECT)
}

/// `bpf_csum_diff(from, from_size, to, to_size, seed)`: one's-complement
/// sum of `~from` words and `to` words, as `csum_partial` computes it.
fn csum_diff(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let (from_size, to_size) = (a[1] as u32 as usize, a[3] as u32 as usize);
    if (from_size | to_size) & 3 != 0 || from_size + to_size > 512 {
        return Ok(EINVAL);
    }
    let from = mem(m, "csum_diff", a[0], from_size)?;
    let to = mem(m, "csum_diff", a[2], to_size)?;
    let mut sum = a[4] as u32 as u64;
    for w in from.chunks_exact(4) {
        sum += !u32::from_le_bytes(w.try_into().expect("4")) as u64;
    }
    for w in to.chunks_exact(4) {
        sum += u32::from_le_bytes(w.try_into().expect("4")) as u64;
    }
    while sum >> 32 != 0 {
        sum = (sum & 0xffff_ffff) + (sum >> 32);
    }
    Ok(sum)
}

fn update_packet(m: &mut Machine<'_>, r: i64) -> Result<u64, VmError> {
    if r != 0 {
        // A refused adjustment moved nothing.
        return Ok(r as u64);
    }
    let e = env(m)?;
    e.sync_ctx();
    let (slot, region) = (e.packet_slot, e.buff.packet_region());
    m.mem.set(slot, region);
    Ok(r as u64)
}

fn xdp_adjust_head(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let r = env(m)?.buff.adjust_head(a[1] as i32);
    update_packet(m, r)
}

fn xdp_adjust_meta(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let r = env(m)?.buff.adjust_meta(a[1] as i32);
    update_packet(m, r)
}

fn xdp_adjust_tail(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let r = env(m)?.buff.adjust_tail(a[1] as i32);
    update_packet(m, r)
}

fn xdp_get_buff_len(m: &mut Machine<'_>, _a: [u64; 5]) -> Result<u64, VmError> {
    Ok(env(m)?.buff.buff_len() as u64)
}

/// Bytes the packet-copy helpers stage on the native stack (an eBPF stack
/// buffer never exceeds it); longer copies use the heap.
const STAGE: usize = 512;

/// A scratch buffer of `len` bytes for a copy between the packet and
/// program memory: on the native stack up to [`STAGE`] bytes, on the heap
/// beyond (no allocation per call for the usual sizes).
struct Stage {
    small: [u8; STAGE],
    big: Vec<u8>,
    len: usize,
}

impl Stage {
    fn new(len: usize) -> Stage {
        Stage { small: [0; STAGE], big: if len > STAGE { vec![0; len] } else { Vec::new() }, len }
    }

    fn bytes(&mut self) -> &mut [u8] {
        if self.len <= STAGE {
            &mut self.small[..self.len]
        } else {
            &mut self.big
        }
    }
}

/// Copies `len` bytes of the packet at `offset` ([`crate::XdpBuff::load_bytes`]'s
/// rules) into program memory at `dst`, and returns `load_bytes`'s result;
/// nothing is written unless it is 0. A `dst` that is not writable program
/// memory is a fault of `helper`.
pub(crate) fn load_bytes_into(
    m: &mut Machine<'_>,
    helper: &'static str,
    offset: u32,
    dst: u64,
    len: usize,
) -> Result<i64, VmError> {
    let mut stage = Stage::new(len);
    let tmp = stage.bytes();
    let r = env(m)?.buff.load_bytes(offset, tmp);
    if r == 0 {
        let out = m.mem.slice_mut(dst, len as u64).ok_or_else(|| {
            fault(m, helper, format!("buffer of {len} bytes at {dst:#x} is not writable program memory"))
        })?;
        out.copy_from_slice(tmp);
    }
    Ok(r)
}

fn xdp_load_bytes(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let len = a[3] as u32 as usize;
    if len > 0xffff {
        return Ok(EFAULT);
    }
    Ok(load_bytes_into(m, "xdp_load_bytes", a[1] as u32, a[2], len)? as u64)
}

fn xdp_store_bytes(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let len = a[3] as u32 as usize;
    if len > 0xffff {
        return Ok(EFAULT);
    }
    // A copy first: the source may lie in the packet itself.
    let mut stage = Stage::new(len);
    let src = stage.bytes();
    src.copy_from_slice(mem(m, "xdp_store_bytes", a[2], len)?);
    Ok(env(m)?.buff.store_bytes(a[1] as u32, src) as u64)
}

const E2BIG: u64 = (-7i64) as u64;
const EFAULT: u64 = (-14i64) as u64;

/// `bpf_loop(nr_loops, callback, ctx, flags)`.
fn bpf_loop(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    if a[3] != 0 {
        return Ok(EINVAL);
    }
    let n = a[0] as u32 as u64;
    if n > 1 << 23 {
        return Ok(E2BIG);
    }
    for i in 0..n {
        if m.call_function(a[1], [i, a[2], 0, 0, 0])? != 0 {
            return Ok(i + 1);
        }
    }
    Ok(n)
}

/// `bpf_for_each_map_elem(map, callback, ctx, flags)`: the callback gets
/// (map, &key, &value, ctx); the key is a copy in a read-only region.
fn for_each_map_elem(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    if a[3] != 0 {
        return Ok(EINVAL);
    }
    let map = map_arg(m, "for_each_map_elem", a[0])?;
    let cpu = env(m)?.cpu;
    let mut key_buf = vec![0u8; map.spec().key_size.max(1) as usize];
    let slot =
        m.mem.push(Region::of_slice(&key_buf)).ok_or_else(|| fault(m, "for_each_map_elem", "too many regions"))?;
    let mut err = None;
    let r = map.for_each(cpu, 0, &mut |key: &[u8], value: *mut u8| {
        key_buf[..key.len()].copy_from_slice(key);
        match m.call_function(a[1], [a[0], key_buf.as_ptr() as u64, value as u64, a[2], 0]) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => {
                err = Some(e);
                true
            }
        }
    });
    m.mem.set(slot, Region { start: 0, len: 0, writable: false });
    if let Some(e) = err {
        return Err(e);
    }
    Ok(match r {
        Ok(n) => n as u64,
        Err(e) => e.helper_ret(),
    })
}

/// `bpf_map_lookup_percpu_elem(map, key, cpu)`.
fn map_lookup_percpu_elem(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let map = map_arg(m, "map_lookup_percpu_elem", a[0])?;
    let key = mem(m, "map_lookup_percpu_elem", a[1], map.spec().key_size as usize)?;
    Ok(map.lookup_percpu(key, a[2] as u32).map_or(0, |p| p as u64))
}

/// `bpf_perf_event_output(ctx, map, flags, data, size)` with the XDP
/// context: the `BPF_F_CTXLEN_MASK` bits of `flags` append that many
/// packet bytes to the sample.
fn perf_event_output(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    const CTXLEN_MASK: u64 = 0xf_ffff << 32;
    const INDEX_MASK: u64 = 0xffff_ffff;
    let flags = a[2];
    if flags & !(CTXLEN_MASK | INDEX_MASK) != 0 {
        return Ok(EINVAL);
    }
    let map = map_arg(m, "perf_event_output", a[1])?;
    let Some(perf) = map.as_perf_event_array() else {
        return Err(fault(m, "perf_event_output", "map is not a perf_event_array"));
    };
    let pkt_len = (flags & CTXLEN_MASK) >> 32;
    let e = env(m)?;
    if pkt_len > (e.buff.data_end - e.buff.data) as u64 {
        return Ok(EFAULT);
    }
    let cpu = e.cpu;
    let meta = read_mem(m, "perf_event_output", a[3], a[4] as usize)?;
    let data = env(m)?.buff.data_addr();
    let pkt = read_mem(m, "perf_event_output", data, pkt_len as usize)?;
    Ok(match perf.output(flags & INDEX_MASK, cpu, &[&meta, &pkt]) {
        Ok(()) => 0,
        Err(e) => e.helper_ret(),
    })
}

fn ringbuf_arg<'m>(
    m: &Machine<'_>,
    map: &'m std::sync::Arc<dyn Map>,
    helper: &'static str,
) -> Result<&'m uxdp_maps::RingBuf, VmError> {
    map.as_ringbuf().ok_or_else(|| fault(m, helper, "map is not a ringbuf"))
}

/// `bpf_ringbuf_output(ringbuf, data, size, flags)`.
fn ringbuf_output(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let map = map_arg(m, "ringbuf_output", a[0])?;
    let rb = ringbuf_arg(m, &map, "ringbuf_output")?;
    let data = read_mem(m, "ringbuf_output", a[1], a[2] as usize)?;
    Ok(match rb.output(&data, a[3]) {
        Ok(()) => 0,
        Err(e) => e.helper_ret(),
    })
}

/// `bpf_ringbuf_reserve(ringbuf, size, flags)`: a pointer into the ring (a
/// map value region) or NULL.
fn ringbuf_reserve(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let map = map_arg(m, "ringbuf_reserve", a[0])?;
    let rb = ringbuf_arg(m, &map, "ringbuf_reserve")?;
    Ok(rb.reserve(a[1], a[2]).map_or(0, |p| p as u64))
}

/// The ring buffer of the object that holds the sample at `ptr`.
fn ringbuf_of_sample(m: &mut Machine<'_>, helper: &'static str, ptr: u64) -> Result<std::sync::Arc<dyn Map>, VmError> {
    let pc = m.pc();
    let e = env(m)?;
    e.maps
        .maps
        .iter()
        .find(|map| {
            map.as_ringbuf().is_some()
                && map.value_regions().iter().any(|&(s, l)| ptr >= s as u64 && ptr < s as u64 + l as u64)
        })
        .cloned()
        .ok_or_else(|| VmError::Helper { pc, helper, msg: format!("{ptr:#x} is not a reserved ring buffer sample") })
}

fn ringbuf_commit(m: &mut Machine<'_>, a: [u64; 5], helper: &'static str, submit: bool) -> Result<u64, VmError> {
    let map = ringbuf_of_sample(m, helper, a[0])?;
    let rb = ringbuf_arg(m, &map, helper)?;
    let r = if submit { rb.submit(a[0] as *mut u8, a[1]) } else { rb.discard(a[0] as *mut u8, a[1]) };
    r.map_err(|e| fault(m, helper, e.to_string()))?;
    Ok(0)
}

fn ringbuf_submit(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    ringbuf_commit(m, a, "ringbuf_submit", true)
}

fn ringbuf_discard(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    ringbuf_commit(m, a, "ringbuf_discard", false)
}

/// `bpf_ringbuf_query(ringbuf, flags)`.
fn ringbuf_query(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let map = map_arg(m, "ringbuf_query", a[0])?;
    Ok(ringbuf_arg(m, &map, "ringbuf_query")?.query(a[1]))
}

/// The `bpf_spin_lock` at `addr`, checked to be an aligned word of map
/// value memory the program may write.
fn lock_word(m: &Machine<'_>, helper: &'static str, addr: u64) -> Result<*mut u8, VmError> {
    if addr % 4 != 0 {
        return Err(fault(m, helper, format!("lock {addr:#x} is not 4-byte aligned")));
    }
    let p = m
        .mem
        .slice_mut(addr, 4)
        .ok_or_else(|| fault(m, helper, format!("lock {addr:#x} is not in writable map memory")))?;
    Ok(p.as_mut_ptr())
}

fn spin_lock(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let p = lock_word(m, "spin_lock", a[0])?;
    // SAFETY: an aligned word of live, writable program memory.
    unsafe { uxdp_maps::spin_lock(p) };
    Ok(0)
}

fn spin_unlock(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let p = lock_word(m, "spin_unlock", a[0])?;
    // SAFETY: as for spin_lock; the program holds the lock (the verifier's rule).
    unsafe { uxdp_maps::spin_unlock(p) };
    Ok(0)
}

/// Whether the helper with this id (in [`xdp_helpers`]) leaves the run's
/// per-run memory regions alone and runs no program code, so the JIT need
/// not reload its region table after calling it. Keep this in step with the
/// implementations: the packet-moving helpers (`xdp_adjust_*`), callbacks
/// (`bpf_loop`, `for_each_map_elem`, which also pushes a region) and tail
/// calls are not listed. Kfuncs count by their synthetic ids
/// ([`crate::dynptr::kfunc`]): the dynptr ones are listed.
pub fn keeps_regions(id: u32) -> bool {
    const KEEP: [u32; 40] = [
        1, 2, 3, 5, 6, 7, 8, 23, 25, 28, 42, 51, 69, 84, 85, 86, 87, 88, 89, 93, 94, 99, 100, 110, 118, 125, 130, 131,
        132, 133, 134, 160, 163, 188, 189, 190, 195, 201, 202, 208,
    ];
    KEEP.contains(&id) || crate::dynptr::kfunc_keeps_regions(id)
}

/// Registers every helper uxdp provides to XDP programs.
pub fn xdp_helpers() -> Helpers {
    let mut h = Helpers::new();
    h.register(1, "map_lookup_elem", map_lookup_elem)
        .register(2, "map_update_elem", map_update_elem)
        .register(3, "map_delete_elem", map_delete_elem)
        .register(5, "ktime_get_ns", ktime_get_ns)
        .register(6, "trace_printk", trace_printk)
        .register(7, "get_prandom_u32", get_prandom_u32)
        .register(8, "get_smp_processor_id", get_smp_processor_id)
        .register(12, "tail_call", tail_call)
        .register(23, "redirect", redirect)
        .register(28, "csum_diff", csum_diff)
        .register(42, "get_numa_node_id", get_numa_node_id)
        .register(44, "xdp_adjust_head", xdp_adjust_head)
        .register(51, "redirect_map", redirect_map)
        .register(54, "xdp_adjust_meta", xdp_adjust_meta)
        .register(65, "xdp_adjust_tail", xdp_adjust_tail)
        .register(87, "map_push_elem", map_push_elem)
        .register(88, "map_pop_elem", map_pop_elem)
        .register(89, "map_peek_elem", map_peek_elem)
        .register(118, "jiffies64", jiffies64)
        .register(125, "ktime_get_boot_ns", ktime_get_boot_ns)
        .register(160, "ktime_get_coarse_ns", ktime_get_coarse_ns)
        .register(188, "xdp_get_buff_len", xdp_get_buff_len)
        .register(189, "xdp_load_bytes", xdp_load_bytes)
        .register(190, "xdp_store_bytes", xdp_store_bytes)
        .register(208, "ktime_get_tai_ns", ktime_get_tai_ns)
        .register(25, "perf_event_output", perf_event_output)
        .register(69, "fib_lookup", crate::netdev::fib_lookup)
        .register(84, "sk_lookup_tcp", crate::netdev::sk_lookup)
        .register(85, "sk_lookup_udp", crate::netdev::sk_lookup)
        .register(86, "sk_release", crate::netdev::sk_release)
        .register(93, "spin_lock", spin_lock)
        .register(94, "spin_unlock", spin_unlock)
        .register(99, "skc_lookup_tcp", crate::netdev::sk_lookup)
        .register(100, "tcp_check_syncookie", crate::netdev::needs_socket)
        .register(110, "tcp_gen_syncookie", crate::netdev::needs_socket)
        .register(130, "ringbuf_output", ringbuf_output)
        .register(131, "ringbuf_reserve", ringbuf_reserve)
        .register(132, "ringbuf_submit", ringbuf_submit)
        .register(133, "ringbuf_discard", ringbuf_discard)
        .register(134, "ringbuf_query", ringbuf_query)
        .register(163, "check_mtu", crate::netdev::check_mtu)
        .register(164, "for_each_map_elem", for_each_map_elem)
        .register(181, "loop", bpf_loop)
        .register(195, "map_lookup_percpu_elem", map_lookup_percpu_elem);
    crate::dynptr::register_helpers(&mut h);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Helpers that move or add regions, run program code or tail-call are
    /// never declared region-keeping; every declared one exists.
    #[test]
    fn region_keeping_helpers_exclude_the_ones_that_move_regions() {
        let h = xdp_helpers();
        for id in [12, 44, 54, 65, 164, 181] {
            assert!(h.get(id).is_some(), "helper {id} is registered");
            assert!(!keeps_regions(id as u32), "helper {id} may change regions");
        }
        for id in 0..300u32 {
            if keeps_regions(id) {
                assert!(h.get(id as u64).is_some(), "helper {id} is declared but not registered");
            }
        }
    }
}
