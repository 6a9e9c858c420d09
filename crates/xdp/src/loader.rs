//! Turning a parsed object into runnable programs: maps created with their
//! initial contents, `lddw` map references resolved, programs loaded with
//! the XDP helpers, prog arrays and map-in-map initialised.

use crate::env::{MapTable, ProgTable};
use crate::helpers::xdp_helpers;
use crate::XdpError;
use std::sync::Arc;
use uxdp_isa::LoadImmKind;
use uxdp_maps::{Map, MapSpec};
use uxdp_object::{InitTarget, Object, ProgramDef, ProgramKind, XdpAttach};
use uxdp_verifier::{Facts, MapInfo, Mode, ProgType, VerifyInput};
use uxdp_vm::{Helpers, LoadOptions, Program, Region};

const PERF_EVENT_ARRAY: u32 = 4;
const RINGBUF: u32 = 27;

/// What user space may change before an object's maps are created, as
/// libbpf's `bpf_map__set_max_entries` does.
#[derive(Clone, Debug, Default)]
pub struct ObjectOptions {
    /// `max_entries` overrides by map name.
    pub max_entries: Vec<(String, u32)>,
    /// Size for every map declared with `max_entries` 0 and not named in
    /// `max_entries` (perf event arrays excepted: they default to the number
    /// of CPUs).
    pub zero_max_entries: Option<u32>,
    /// Number of CPUs per-CPU maps hold values for (default: the threads
    /// this machine can run in parallel). Each [`crate::Runner`] runs as one
    /// of these CPUs.
    pub nr_cpus: Option<u32>,
    /// Run the programs on the interpreter even where the JIT is available
    /// (the JIT is the default on x86-64 Linux).
    pub interpreter: bool,
}

impl ObjectOptions {
    /// The number of CPUs the maps are created for.
    pub fn cpus(&self) -> u32 {
        self.nr_cpus.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32)).max(1)
    }
}

/// A program of a loaded object.
pub struct LoadedProgram {
    /// Function name.
    pub name: String,
    /// ELF section.
    pub section: String,
    /// Whether it is an XDP program.
    pub is_xdp: bool,
    /// The loaded program, or why it could not be loaded.
    pub program: Result<Arc<Program>, String>,
    /// The definition it came from.
    pub def: ProgramDef,
    /// Why the program runs on the interpreter although the JIT was asked
    /// for (`None` when it is JIT-compiled or the interpreter was chosen).
    pub jit_error: Option<String>,
    /// What uxdp's verifier said of an XDP program compiled by the JIT
    /// (`None` otherwise): see [`Verification`].
    pub verification: Option<Verification>,
}

/// The verifier's verdict on a JIT-compiled XDP program, and what the JIT
/// made of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Accepted in strict mode (as the kernel would): its proven memory
    /// accesses are compiled without run-time checks, its loops and helper
    /// calls without budget charges (a verified program terminates), and
    /// its helper calls with the kernel's convention (r1-r5 clobbered,
    /// which the verifier made sure it never reads).
    Strict,
    /// Rejected in strict mode (the message), accepted in permissive mode:
    /// its proven accesses are compiled unchecked, everything else checked
    /// at run time, loops charged to the budget.
    Permissive(String),
    /// Rejected in both modes (the message): every access is checked at
    /// run time.
    Rejected(String),
}

impl LoadedProgram {
    /// The errno with which the kernel's `BPF_PROG_TEST_RUN` refuses this
    /// program, if it does: devmap and cpumap second-stage programs
    /// (`xdp/devmap`, `xdp/cpumap`) only run after a redirect (`EINVAL`).
    pub fn test_run_refusal(&self) -> Option<i64> {
        match self.def.kind {
            ProgramKind::Xdp { attach: XdpAttach::Devmap | XdpAttach::Cpumap, .. } => Some(-22),
            _ => None,
        }
    }
}

/// An object loaded into uxdp: maps plus programs.
pub struct LoadedObject {
    /// The maps, by index (the object's map order).
    pub maps: Arc<MapTable>,
    /// Tail-call targets (program id = index in `programs`).
    pub prog_table: Arc<ProgTable>,
    /// Every program of the object.
    pub programs: Vec<LoadedProgram>,
    /// CPUs the per-CPU maps hold values for.
    pub nr_cpus: u32,
}

impl LoadedObject {
    /// Loads an object file.
    pub fn from_file(path: &std::path::Path) -> Result<LoadedObject, XdpError> {
        let bytes = std::fs::read(path).map_err(|e| XdpError::Io(format!("{}: {e}", path.display())))?;
        let obj = Object::parse(&bytes).map_err(|e| XdpError::Object(format!("{}: {e}", path.display())))?;
        LoadedObject::load(&obj)
    }

    /// Creates the maps and loads every program of `obj`.
    pub fn load(obj: &Object) -> Result<LoadedObject, XdpError> {
        LoadedObject::load_with(obj, &ObjectOptions::default())
    }

    /// [`LoadedObject::load`] with options (map sizes set by "user space").
    pub fn load_with(obj: &Object, opts: &ObjectOptions) -> Result<LoadedObject, XdpError> {
        let mut table = MapTable::default();
        let nr_cpus = opts.cpus();
        for def in &obj.maps {
            let max_entries = opts.max_entries.iter().find(|(n, _)| *n == def.name).map(|&(_, v)| v).or(
                match (def.max_entries, opts.zero_max_entries) {
                    (0, Some(n)) if !matches!(def.map_type, PERF_EVENT_ARRAY | RINGBUF) => Some(n),
                    _ => None,
                },
            );
            let max_entries = match max_entries.unwrap_or(def.max_entries) {
                // libbpf sizes perf event arrays to the number of CPUs.
                0 if def.map_type == PERF_EVENT_ARRAY => nr_cpus,
                n => n,
            };
            if max_entries == 0 {
                return Err(XdpError::Map(format!(
                    "map '{}' is declared with max_entries 0: its loader sizes it at run time; give it a size \
                     (--max-entries {}=N, or --zero-max-entries N for every such map)",
                    def.name, def.name
                )));
            }
            let mut spec = MapSpec::new(uxdp_maps::MapType::Array, def.key_size, def.value_size, max_entries);
            spec.map_type = def.map_type;
            spec.flags = def.map_flags;
            spec.nr_cpus = nr_cpus;
            spec.name = def.name.clone();
            let map = uxdp_maps::create(spec).map_err(|e| XdpError::Map(format!("map '{}': {e}", def.name)))?;
            if let Some(data) = &def.initial_data {
                if !data.is_empty() {
                    map.update_user(&0u32.to_le_bytes(), data, 0)
                        .map_err(|e| XdpError::Map(format!("initialising '{}': {e}", def.name)))?;
                }
            }
            table.maps.push(map);
            table.names.push(def.name.clone());
        }
        // map-in-map initialisers refer to other maps of the object by name
        for (i, def) in obj.maps.iter().enumerate() {
            for (idx, target) in &def.init_values {
                if let InitTarget::Map(name) = target {
                    let id = table.names.iter().position(|n| n == name).ok_or_else(|| {
                        XdpError::Map(format!("map '{}' initialises slot {idx} with unknown map '{name}'", def.name))
                    })?;
                    let outer = &table.maps[i];
                    let (id, handle) = (MapTable::id(id), MapTable::handle(id));
                    let r = if let Some(a) = outer.as_array_of_maps() {
                        a.set(*idx, id, handle, 0)
                    } else if let Some(h) = outer.as_hash_of_maps() {
                        h.set(&idx.to_le_bytes(), id, handle, 0)
                    } else {
                        return Err(XdpError::Map(format!(
                            "map '{}' is not a map-in-map but names map '{name}'",
                            def.name
                        )));
                    };
                    r.map_err(|e| XdpError::Map(format!("initialising '{}': {e}", def.name)))?;
                }
            }
        }
        let mut regions = Vec::new();
        for m in &table.maps {
            let writable = m.program_writable();
            regions.extend(m.value_regions().into_iter().map(|(start, len)| Region {
                start: start as u64,
                len: len as u64,
                writable,
            }));
        }
        let table = Arc::new(table);
        let helpers = Arc::new(xdp_helpers());
        let mut programs = Vec::new();
        let mut prog_table = ProgTable::default();
        // The verifier sees the maps as created (sizes set by the options).
        let map_info: Vec<MapInfo> = obj
            .maps
            .iter()
            .zip(&table.maps)
            .map(|(def, m)| MapInfo { max_entries: m.spec().max_entries, ..MapInfo::from(def) })
            .collect();
        for def in &obj.programs {
            let program = load_program(def, &table, &helpers, &regions).map(Arc::new);
            let (mut jit_error, mut verification) = (None, None);
            if let Ok(p) = &program {
                if !opts.interpreter && uxdp_jit::available() {
                    let (v, facts) = if def.runs_as_xdp() { verify(def, &map_info) } else { (None, None) };
                    let resolve = |handle: u64| array_lookup(&table, &regions, handle);
                    let direct = |handle: u64| direct_lookup(&table, handle);
                    let keeps = crate::helpers::keeps_regions;
                    let jit = uxdp_jit::JitOptions {
                        array_lookup: Some(&resolve),
                        map_lookup: Some(&direct),
                        keeps_regions: Some(&keeps),
                        proven: facts.as_ref().map(|f| &f.proven[..]),
                        terminates: v == Some(Verification::Strict),
                        kernel_calls: v == Some(Verification::Strict),
                    };
                    jit_error = uxdp_jit::attach_with(p, &jit).err().map(|e| e.to_string());
                    verification = v;
                }
            }
            prog_table.progs.push(program.as_ref().ok().cloned());
            programs.push(LoadedProgram {
                name: def.name.clone(),
                section: def.section.clone(),
                is_xdp: def.runs_as_xdp(),
                program,
                def: def.clone(),
                jit_error,
                verification,
            });
        }
        // prog arrays: `values` initialisers name entry programs
        for (i, def) in obj.maps.iter().enumerate() {
            for (idx, target) in &def.init_values {
                if let InitTarget::Program(name) = target {
                    let id = programs.iter().position(|p| &p.name == name).ok_or_else(|| {
                        XdpError::Map(format!("prog array '{}' slot {idx} names unknown program '{name}'", def.name))
                    })?;
                    table.maps[i]
                        .update_user(&idx.to_le_bytes(), &MapTable::id(id).to_le_bytes(), 0)
                        .map_err(|e| XdpError::Map(format!("initialising '{}': {e}", def.name)))?;
                }
            }
        }
        Ok(LoadedObject { maps: table, prog_table: Arc::new(prog_table), programs, nr_cpus })
    }

    /// Finds a program by name, or the first XDP program when `name` is `None`.
    pub fn program(&self, name: Option<&str>) -> Result<&LoadedProgram, XdpError> {
        match name {
            Some(n) => self.programs.iter().find(|p| p.name == n || p.section == n).ok_or_else(|| {
                XdpError::NoProgram(format!(
                    "no program '{n}' in the object (programs: {})",
                    self.programs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            }),
            None => self
                .programs
                .iter()
                .find(|p| p.is_xdp)
                .ok_or_else(|| XdpError::NoProgram("the object has no XDP program".into())),
        }
    }

    /// The XDP programs, in object order.
    pub fn xdp_programs(&self) -> impl Iterator<Item = &LoadedProgram> {
        self.programs.iter().filter(|p| p.is_xdp)
    }
}

/// The layout the JIT needs to inline `bpf_map_lookup_elem` on the map
/// behind `handle`: array and per-CPU array maps whose whole value memory
/// is one of the program's shared regions (so accesses through the
/// returned pointers stay checked).
fn array_lookup(maps: &MapTable, regions: &[Region], handle: u64) -> Option<uxdp_jit::ArrayLookup> {
    let l = maps.get(handle)?.as_array()?.layout();
    let per_cpu = l.elem_size as u64 * l.max_entries as u64;
    let len = if l.cpu_stride == 0 { per_cpu } else { l.cpu_stride as u64 * l.nr_cpus as u64 };
    let base = l.base as u64;
    let covered = regions.iter().any(|r| r.start <= base && base + len <= r.start + r.len);
    (covered && (l.cpu_stride == 0 || l.cpu_stride as u64 >= per_cpu)).then_some(uxdp_jit::ArrayLookup {
        base,
        elem_size: l.elem_size,
        max_entries: l.max_entries,
        cpu_stride: l.cpu_stride as u64,
        nr_cpus: l.nr_cpus,
    })
}

/// The direct form of `bpf_map_lookup_elem` on the map `handle` names:
/// what the helper does once it has found the map (the code knows it).
fn direct_lookup(maps: &MapTable, handle: u64) -> Option<uxdp_jit::DirectLookup> {
    let map: Arc<dyn Map> = maps.get(handle)?.clone();
    let key_size = map.spec().key_size;
    Some(uxdp_jit::DirectLookup { func: lookup_direct, obj: Arc::new(map), key_size })
}

extern "sysv64" fn lookup_direct(obj: *const (), key: *const u8, cpu: u64) -> u64 {
    // SAFETY: `obj` is the `Arc<dyn Map>` inside the `Arc` that
    // `direct_lookup` made, which the code calling this keeps alive.
    let map = unsafe { &*(obj as *const Arc<dyn Map>) };
    // SAFETY: the code checked that `key_size` bytes at `key` lie in the
    // run's stack.
    let key = unsafe { core::slice::from_raw_parts(key, map.spec().key_size as usize) };
    // A panic cannot unwind through generated code; maps do not panic on
    // lookups, and if one did, the program would see NULL.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map.lookup(key, cpu as u32)))
        .ok()
        .flatten()
        .map_or(0, |p| p as u64)
}

fn load_program(
    def: &ProgramDef,
    maps: &Arc<MapTable>,
    helpers: &Arc<Helpers>,
    regions: &[Region],
) -> Result<Program, String> {
    for k in &def.kfuncs {
        if crate::dynptr::kfunc(&k.name).is_none() {
            return Err(format!("instruction {}: kfunc {} is not supported", k.pc, k.name));
        }
    }
    let resolve_kfunc = |btf_id: i32, _off: i16| -> Result<uxdp_vm::Helper, String> {
        let k = def
            .kfuncs
            .iter()
            .find(|k| k.btf_id as i32 == btf_id)
            .ok_or_else(|| format!("kfunc with BTF id {btf_id}"))?;
        crate::dynptr::kfunc(&k.name).ok_or_else(|| format!("kfunc {} is not supported", k.name))
    };
    if let Some(k) = def.ksyms.first() {
        return Err(format!("instruction {}: kernel symbol {} is not available in uxdp", k.pc, k.name));
    }
    let resolve = |kind: LoadImmKind, imm: i32, next: i32| -> Result<u64, String> {
        let idx = imm as u32 as usize;
        let map: &Arc<dyn Map> = maps.maps.get(idx).ok_or_else(|| format!("map index {idx} out of range"))?;
        match kind {
            LoadImmKind::MapIdx => Ok(MapTable::handle(idx)),
            LoadImmKind::MapIdxValue => {
                let base = map
                    .lookup(&0u32.to_le_bytes(), 0)
                    .ok_or_else(|| format!("map '{}' has no value to point into", maps.names[idx]))?;
                if next < 0 || next as u32 >= map.spec().value_size {
                    return Err(format!("offset {next} is outside map '{}'", maps.names[idx]));
                }
                Ok(base as u64 + next as u64)
            }
            other => Err(format!("lddw kind {} is not supported", other.keyword())),
        }
    };
    let mut opts = LoadOptions::new(helpers.clone());
    opts.resolve_imm = Some(&resolve);
    opts.resolve_kfunc = Some(&resolve_kfunc);
    opts.shared_regions = regions.to_vec();
    Program::load(&def.insns, &opts).map_err(|e| e.to_string())
}

/// Verifies an XDP program for the JIT: strict mode first, then permissive
/// mode; the facts of the mode that accepted it (`None` if neither did, or
/// if the facts do not cover every instruction).
fn verify(def: &ProgramDef, maps: &[MapInfo]) -> (Option<Verification>, Option<Facts>) {
    let input = VerifyInput::for_program(def, ProgType::Xdp, maps);
    let (v, facts) = match uxdp_verifier::verify(&input.mode(Mode::Strict)) {
        Ok(f) => (Verification::Strict, Some(f)),
        Err(strict) => match uxdp_verifier::verify(&input.mode(Mode::Permissive)) {
            Ok(f) => (Verification::Permissive(strict.to_string()), Some(f)),
            Err(e) => (Verification::Rejected(e.to_string()), None),
        },
    };
    (Some(v), facts.filter(|f| f.proven.len() == def.insns.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uxdp_maps::MapType;

    /// The layout handed to the JIT addresses exactly the values `lookup`
    /// returns, for plain and per-CPU arrays, and nothing else is inlined.
    #[test]
    fn array_layouts_match_the_maps_lookups() {
        let mut table = MapTable::default();
        for (t, value_size) in [(MapType::Array, 12), (MapType::PercpuArray, 20), (MapType::Hash, 8)] {
            let spec = MapSpec::new(t, 4, value_size, 7).cpus(3);
            table.maps.push(uxdp_maps::create(spec).unwrap());
            table.names.push(format!("{t:?}"));
        }
        let regions: Vec<Region> = table
            .maps
            .iter()
            .flat_map(|m| m.value_regions())
            .map(|(start, len)| Region { start: start as u64, len: len as u64, writable: true })
            .collect();
        for (i, cpus) in [(0usize, 1u32), (1, 3)] {
            let l = array_lookup(&table, &regions, MapTable::handle(i)).expect("arrays are inlined");
            assert_eq!(l.nr_cpus, cpus);
            let map = &table.maps[i];
            for cpu in 0..cpus + 1 {
                for key in [0u32, 3, 6, 7, u32::MAX] {
                    let want = map.lookup(&key.to_le_bytes(), cpu).map_or(0, |p| p as u64);
                    // The JIT's formula: the CPU only counts for per-CPU arrays.
                    let got = if key < l.max_entries && (l.cpu_stride == 0 || cpu < l.nr_cpus) {
                        l.base + cpu as u64 * l.cpu_stride + key as u64 * l.elem_size as u64
                    } else {
                        0
                    };
                    assert_eq!(got, want, "map {i} cpu {cpu} key {key}");
                }
            }
        }
        assert_eq!(array_lookup(&table, &regions, MapTable::handle(2)), None, "hash maps are not inlined");
        assert_eq!(array_lookup(&table, &regions, MapTable::handle(3)), None, "no such map");
        assert_eq!(array_lookup(&table, &regions[1..], MapTable::handle(0)), None, "values outside the regions");
    }
}
