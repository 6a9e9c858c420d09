//! The per-run environment XDP helpers work on: the packet, the context,
//! the object's maps and programs, and what the run produced (redirect
//! target, trace output).

use crate::buffer::XdpBuff;
use crate::context::XdpMd;
use std::sync::Arc;
use uxdp_maps::Map;
use uxdp_vm::{Machine, Program, VmError};

/// Map pointers handed to programs are `MAP_HANDLE_BASE + index` into the
/// [`MapTable`]; they are opaque (no region covers them) and helpers check
/// them against the table.
pub const MAP_HANDLE_BASE: u64 = 0xffff_e000_0000_0000;

/// One (key, value) pair of a map dump, as user space sees them.
pub type MapEntry = (Vec<u8>, Vec<u8>);

/// The maps of a loaded object (and inner maps of map-in-map), by index.
#[derive(Default)]
pub struct MapTable {
    /// Maps; the index is the map's id.
    pub maps: Vec<Arc<dyn Map>>,
    /// Names, parallel to `maps`.
    pub names: Vec<String>,
}

impl MapTable {
    /// The map behind a handle, if it is one.
    #[inline]
    pub fn get(&self, handle: u64) -> Option<&Arc<dyn Map>> {
        self.maps.get(usize::try_from(handle.wrapping_sub(MAP_HANDLE_BASE)).ok()?)
    }

    /// The handle of map `index`.
    pub fn handle(index: usize) -> u64 {
        MAP_HANDLE_BASE + index as u64
    }

    /// The id user space sees for map (or program) `index`: ids start at 1
    /// because 0 names nothing in the kernel's fd maps.
    pub fn id(index: usize) -> u32 {
        index as u32 + 1
    }

    /// Every (key, value) of map `index` as user space sees them
    /// (`BPF_MAP_GET_NEXT_KEY` order); queue/stack maps and maps without
    /// keys list nothing.
    pub fn dump(&self, index: usize) -> Result<Vec<MapEntry>, uxdp_maps::MapError> {
        let map = &self.maps[index];
        let mut out = Vec::new();
        if map.spec().key_size == 0 {
            return Ok(out);
        }
        let mut key: Option<Vec<u8>> = None;
        loop {
            let next = match map.get_next_key(key.as_deref()) {
                Ok(k) => k,
                Err(uxdp_maps::MapError::NotFound) => break,
                Err(e) => return Err(e),
            };
            match map.lookup_user(&next, 0) {
                Ok(v) => out.push((next.clone(), v)),
                Err(uxdp_maps::MapError::NotFound) => {}
                Err(e) => return Err(e),
            }
            key = Some(next);
            if out.len() > map.spec().max_entries as usize {
                break;
            }
        }
        Ok(out)
    }

    /// Looks a map up by name.
    pub fn by_name(&self, name: &str) -> Option<&Arc<dyn Map>> {
        self.names.iter().position(|n| n == name).map(|i| &self.maps[i])
    }
}

/// Programs reachable by tail calls, by id (prog_array values).
#[derive(Default)]
pub struct ProgTable {
    /// Programs; id `i + 1` (see [`MapTable::id`]) is `progs[i]`.
    pub progs: Vec<Option<Arc<Program>>>,
}

/// Where `bpf_redirect*` sent the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// `bpf_redirect(ifindex)`.
    Ifindex(u32),
    /// `bpf_redirect_map` to a devmap/cpumap/xskmap entry.
    Map {
        /// Index of the map in the object's [`MapTable`].
        map: usize,
        /// Key.
        key: u32,
    },
}

/// Per-run state of an XDP program.
pub struct XdpEnv {
    /// The packet.
    pub buff: XdpBuff,
    /// The context the program sees (stable address: boxed).
    pub ctx: Box<XdpMd>,
    /// The memory-region slot holding the packet.
    pub packet_slot: usize,
    /// The object's maps.
    pub maps: Arc<MapTable>,
    /// Tail-call targets.
    pub progs: Arc<ProgTable>,
    /// The CPU number per-CPU maps use for this thread.
    pub cpu: u32,
    /// Redirect target recorded by the last redirect helper.
    pub redirect: Option<Redirect>,
    /// `bpf_trace_printk` output.
    pub trace: Vec<String>,
    pub(crate) rng: u64,
}

impl XdpEnv {
    /// Makes helpers see the maps and tail-call targets of another object
    /// (programs of a chain may come from different objects).
    #[inline]
    pub fn use_tables(&mut self, maps: &Arc<MapTable>, progs: &Arc<ProgTable>) {
        if !Arc::ptr_eq(&self.maps, maps) {
            self.maps = maps.clone();
        }
        if !Arc::ptr_eq(&self.progs, progs) {
            self.progs = progs.clone();
        }
    }

    /// A fresh environment around `buff`.
    pub fn new(buff: XdpBuff, maps: Arc<MapTable>, progs: Arc<ProgTable>) -> XdpEnv {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        XdpEnv {
            buff,
            ctx: Box::new(XdpMd { ingress_ifindex: 1, ..XdpMd::default() }),
            packet_slot: 0,
            maps,
            progs,
            cpu: 0,
            redirect: None,
            trace: Vec::new(),
            rng: seed | 1,
        }
    }

    /// Writes the buffer's pointers into the context.
    pub fn sync_ctx(&mut self) {
        self.ctx.data = self.buff.data_addr() as u32;
        self.ctx.data_end = self.buff.data_end_addr() as u32;
        self.ctx.data_meta = self.buff.meta_addr() as u32;
    }

    /// Address of the context.
    pub fn ctx_addr(&self) -> u64 {
        &*self.ctx as *const XdpMd as u64
    }

    /// xorshift64* state step (`bpf_get_prandom_u32`).
    pub fn next_random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

/// The [`XdpEnv`] of a run, or a fault if the embedder passed another type.
pub(crate) fn env<'m>(m: &'m mut Machine<'_>) -> Result<&'m mut XdpEnv, VmError> {
    let pc = m.pc();
    m.env.downcast_mut::<XdpEnv>().ok_or_else(|| VmError::Helper { pc, helper: "xdp", msg: "not an XDP run".into() })
}
