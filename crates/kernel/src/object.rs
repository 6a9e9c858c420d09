//! Whole clang-compiled objects loaded into the kernel through aya, each in
//! its own bpffs pin directory.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use aya::maps::{Map, MapData};
use aya::programs::{Program, ProgramError};

use crate::elf;
use crate::error::{Errno, KernelError};
use crate::raw::{ProgType, VerifierStats};
use crate::sys;
use crate::testrun::{self, TestRun};

/// Where XDP programs attach (from the section name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAttach {
    /// `xdp`: a network interface (the normal case; test-runnable).
    Interface,
    /// `xdp/cpumap`: second-stage program in a CPU map (not test-runnable).
    CpuMap,
    /// `xdp/devmap`: second-stage program in a device map (not test-runnable).
    DevMap,
}

/// Program type of a program in an object, as decided by its section name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgramKind {
    /// `BPF_PROG_TYPE_XDP`.
    Xdp {
        /// `xdp.frags`: loaded with `BPF_F_XDP_HAS_FRAGS`.
        frags: bool,
        /// Attach type.
        attach: XdpAttach,
    },
    /// `BPF_PROG_TYPE_SOCKET_FILTER` (`socket`).
    SocketFilter,
    /// `BPF_PROG_TYPE_SCHED_CLS` (`tc`, `tcx/*`, `classifier`).
    SchedClassifier,
    /// `BPF_PROG_TYPE_TRACEPOINT` (`tracepoint/*`, `tp/*`).
    TracePoint,
    /// `BPF_PROG_TYPE_TRACING` with `BPF_TRACE_RAW_TP` (`tp_btf/<name>`).
    BtfTracePoint,
    /// `BPF_PROG_TYPE_FLOW_DISSECTOR`.
    FlowDissector,
    /// Any other type, named as aya names it (`FEntry`, `Extension`, ...).
    /// [`KernelObject::load_program`] refuses these with [`KernelError::Unsupported`].
    Other(String),
}

impl ProgramKind {
    /// The kernel program type, when this crate can load the program.
    pub fn prog_type(&self) -> Option<ProgType> {
        Some(match self {
            ProgramKind::Xdp { .. } => ProgType::XDP,
            ProgramKind::SocketFilter => ProgType::SOCKET_FILTER,
            ProgramKind::SchedClassifier => ProgType::SCHED_CLS,
            ProgramKind::TracePoint => ProgType::TRACEPOINT,
            ProgramKind::BtfTracePoint => ProgType::TRACING,
            ProgramKind::FlowDissector => ProgType::FLOW_DISSECTOR,
            ProgramKind::Other(_) => return None,
        })
    }

    /// Whether `BPF_PROG_TEST_RUN` can run it on a packet: XDP programs
    /// attached to an interface ([`testrun::test_run_xdp`]), socket filters and
    /// tc classifiers ([`testrun::test_run_skb`]).
    pub fn packet_test_run(&self) -> bool {
        matches!(
            self,
            ProgramKind::Xdp { attach: XdpAttach::Interface, .. }
                | ProgramKind::SocketFilter
                | ProgramKind::SchedClassifier
        )
    }
}

/// One program of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramDesc {
    /// Function (program) name.
    pub name: String,
    /// ELF section name as written in the object (before any renaming).
    pub section: String,
    /// Type decided by the section name.
    pub kind: ProgramKind,
}

/// What a successful load tells. (aya does not hand back the verifier log
/// of a successful load, so its `verification time` is not available for
/// object programs; [`crate::load_raw`] gives it for raw instructions.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadInfo {
    /// Instructions the verifier processed (`verified_insns` of
    /// `bpf_prog_info`; the same number as the log's `processed N insns`).
    pub verified_insns: Option<u32>,
}

/// One map of an object, as the kernel reports it (`bpf_map_info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDesc {
    /// Name as the object names it (aya's key: the BTF/ELF symbol name, or
    /// the section name such as `.data` / `.rodata` / `.bss` for globals).
    pub name: String,
    /// Name the kernel stores (at most 15 bytes; libbpf-style prefix for globals is not applied).
    pub kernel_name: String,
    /// `enum bpf_map_type` number.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes as declared (per CPU for per-CPU maps).
    pub value_size: u32,
    /// Maximum number of entries.
    pub max_entries: u32,
    /// `map_flags`.
    pub flags: u32,
    /// Value size user space reads and writes: for per-CPU maps
    /// `round_up(value_size, 8) * possible CPUs`, else `value_size`.
    pub syscall_value_size: usize,
}

impl MapDesc {
    /// The kernel's name of the map type (`"array"`, `"percpu_hash"`, as bpftool prints it).
    pub fn type_name(&self) -> &'static str {
        map_type_name(self.map_type)
    }
}

/// One `(key, value)` of a map dump, raw bytes as the kernel's syscalls use them.
pub type MapEntry = (Vec<u8>, Vec<u8>);

/// bpftool's name of a map type number (`"unknown"` past the known ones).
pub fn map_type_name(t: u32) -> &'static str {
    const NAMES: [&str; 34] = [
        "unspec",
        "hash",
        "array",
        "prog_array",
        "perf_event_array",
        "percpu_hash",
        "percpu_array",
        "stack_trace",
        "cgroup_array",
        "lru_hash",
        "lru_percpu_hash",
        "lpm_trie",
        "array_of_maps",
        "hash_of_maps",
        "devmap",
        "sockmap",
        "cpumap",
        "xskmap",
        "sockhash",
        "cgroup_storage",
        "reuseport_sockarray",
        "percpu_cgroup_storage",
        "queue",
        "stack",
        "sk_storage",
        "devmap_hash",
        "struct_ops",
        "ringbuf",
        "inode_storage",
        "task_storage",
        "bloom_filter",
        "user_ringbuf",
        "cgrp_storage",
        "arena",
    ];
    NAMES.get(t as usize).copied().unwrap_or("unknown")
}

fn is_percpu(map_type: u32) -> bool {
    matches!(map_type, 5 | 6 | 10 | 21)
}

/// The kernel's BTF, parsed once per process (aya uses it for CO-RE and
/// `tp_btf` targets; we use it to resolve kfuncs).
fn kernel_btf() -> Option<&'static aya::Btf> {
    static BTF: OnceLock<Option<aya::Btf>> = OnceLock::new();
    BTF.get_or_init(|| aya::Btf::from_sys_fs().ok()).as_ref()
}

/// Root of the bpffs under which pin directories are made.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// Makes sure a bpffs is mounted at [`BPFFS_ROOT`] (mounts one if absent).
pub fn ensure_bpffs() -> Result<(), KernelError> {
    let is_bpffs = |p: &str| -> bool {
        let Ok(c) = std::ffi::CString::new(p) else { return false };
        // SAFETY: `st` is a plain struct the call fills in; `c` is a valid C string.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
        r == 0 && st.f_type as i64 == BPF_FS_MAGIC
    };
    if is_bpffs(BPFFS_ROOT) {
        return Ok(());
    }
    std::fs::create_dir_all(BPFFS_ROOT)
        .map_err(|source| KernelError::Io { what: format!("creating {BPFFS_ROOT}"), source })?;
    let (src, target, fstype) = (c"bpf", c"/sys/fs/bpf", c"bpf");
    // SAFETY: all arguments are valid C strings; no mount data.
    let r = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if r != 0 {
        return Err(KernelError::Io {
            what: format!("mounting bpffs at {BPFFS_ROOT} (mount -t bpf bpf {BPFFS_ROOT})"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// A fresh directory on bpffs, removed with everything in it on drop.
#[derive(Debug)]
struct PinDir(PathBuf);

impl PinDir {
    fn new() -> Result<Self, KernelError> {
        static N: AtomicU64 = AtomicU64::new(0);
        ensure_bpffs()?;
        loop {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = PathBuf::from(format!("{BPFFS_ROOT}/uxdp-test-{}-{n}", std::process::id()));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(PinDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(KernelError::Io { what: format!("creating pin directory {}", p.display()), source })
                }
            }
        }
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        // Unpinning deletes the maps once no descriptor holds them.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to load an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectOptions {
    /// Verifier log level of program loads (bits of [`crate::raw::log_level`]).
    /// The default, `STATS`, gives the verifier's error message(s) and its
    /// statistics: compact, and never too large for the log buffer.
    /// `LEVEL1 | STATS` adds the instruction trace, which for programs that
    /// hit the 1M-instruction limit overflows every buffer (aya then repeats
    /// the load with growing buffers, 10 times, and reports ENOSPC).
    pub log_level: u32,
    /// `max_entries` overrides by map name, applied before the maps are created.
    pub max_entries: Vec<(String, u32)>,
    /// Give maps declared with `max_entries` 0 this many entries (perf event
    /// arrays and ring buffers excepted: aya sizes those). User space sizes
    /// such maps at run time (samples/bpf's `xdp_sample` per-CPU counters);
    /// without a size the kernel refuses to create them (EINVAL).
    pub zero_max_entries: Option<u32>,
}

impl Default for ObjectOptions {
    fn default() -> Self {
        ObjectOptions { log_level: crate::raw::log_level::STATS, max_entries: Vec::new(), zero_max_entries: None }
    }
}

/// A clang-compiled object loaded into the kernel like libbpf does (maps
/// created, BTF loaded, relocations applied), programs loaded on demand.
///
/// Maps pinned by name (`LIBBPF_PIN_BY_NAME`) go to a private pin directory
/// under `/sys/fs/bpf/uxdp-test-<pid>-<n>`, so objects never share maps with
/// each other or with other processes; the directory is removed on drop.
///
/// To reset map state between runs, call [`KernelObject::reset`] (a reload
/// into a fresh pin directory).
#[derive(Debug)]
pub struct KernelObject {
    // Field order matters: `ebpf` (the descriptors) drops before `pin_dir`.
    ebpf: aya::Ebpf,
    pin_dir: PinDir,
    label: String,
    bytes: Vec<u8>,
    programs: Vec<ProgramDesc>,
    loaded: BTreeSet<String>,
    renamed: Vec<(String, String)>,
    kfuncs: Vec<(String, Option<u32>)>,
    log_level: u32,
    max_entries: Vec<(String, u32)>,
}

/// Flattens an error and its sources into one line, and finds the errno.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> (String, Option<Errno>) {
    let mut parts: Vec<String> = Vec::new();
    let mut errno = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            errno = errno.or(io.raw_os_error().map(Errno));
        }
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    (parts.join(": "), errno)
}

fn map_data(map: &Map) -> &MapData {
    match map {
        Map::Array(m)
        | Map::ArrayOfMaps(m)
        | Map::BloomFilter(m)
        | Map::CgroupArray(m)
        | Map::CgroupStorage(m)
        | Map::CgrpStorage(m)
        | Map::CpuMap(m)
        | Map::DevMap(m)
        | Map::DevMapHash(m)
        | Map::HashMap(m)
        | Map::HashOfMaps(m)
        | Map::InodeStorage(m)
        | Map::LpmTrie(m)
        | Map::LruHashMap(m)
        | Map::PerCpuArray(m)
        | Map::PerCpuCgroupStorage(m)
        | Map::PerCpuHashMap(m)
        | Map::PerCpuLruHashMap(m)
        | Map::PerfEventArray(m)
        | Map::ProgramArray(m)
        | Map::Queue(m)
        | Map::ReusePortSockArray(m)
        | Map::RingBuf(m)
        | Map::SockHash(m)
        | Map::SockMap(m)
        | Map::SkStorage(m)
        | Map::Stack(m)
        | Map::StackTraceMap(m)
        | Map::Unsupported(m)
        | Map::XskMap(m) => m,
    }
}

fn kind_of(section: &aya_obj::ProgramSection) -> ProgramKind {
    use aya_obj::programs::XdpAttachType;
    use aya_obj::ProgramSection as S;
    match section {
        S::Xdp { frags, attach_type } => ProgramKind::Xdp {
            frags: *frags,
            attach: match attach_type {
                XdpAttachType::Interface => XdpAttach::Interface,
                XdpAttachType::CpuMap => XdpAttach::CpuMap,
                XdpAttachType::DevMap => XdpAttach::DevMap,
            },
        },
        S::SocketFilter => ProgramKind::SocketFilter,
        S::SchedClassifier => ProgramKind::SchedClassifier,
        S::TracePoint => ProgramKind::TracePoint,
        S::BtfTracePoint => ProgramKind::BtfTracePoint,
        S::FlowDissector => ProgramKind::FlowDissector,
        other => ProgramKind::Other(format!("{other:?}")),
    }
}

impl KernelObject {
    /// Loads an object file: creates its maps (in a fresh pin directory),
    /// loads its BTF and applies relocations. Programs are not loaded yet:
    /// call [`KernelObject::load_program`].
    ///
    /// Fails as a whole when libbpf would too (a map the kernel refuses to
    /// create, a kfunc missing from the kernel, BTF the kernel rejects while
    /// needed) and where this crate's loader has a named limit (`__kconfig`
    /// variables, module kfuncs).
    pub fn load_file(path: impl AsRef<Path>) -> Result<KernelObject, KernelError> {
        Self::load_file_with(path, &ObjectOptions::default())
    }

    /// [`KernelObject::load_file`] with options.
    pub fn load_file_with(path: impl AsRef<Path>, opts: &ObjectOptions) -> Result<KernelObject, KernelError> {
        let path = path.as_ref();
        let data = std::fs::read(path)
            .map_err(|source| KernelError::Io { what: format!("reading object {}", path.display()), source })?;
        Self::load_bytes_with(&data, &path.display().to_string(), opts)
    }

    /// [`KernelObject::load_file`] for bytes in memory; `label` names the object in errors.
    pub fn load_bytes(data: &[u8], label: &str) -> Result<KernelObject, KernelError> {
        Self::load_bytes_with(data, label, &ObjectOptions::default())
    }

    /// [`KernelObject::load_bytes`] with options.
    pub fn load_bytes_with(data: &[u8], label: &str, opts: &ObjectOptions) -> Result<KernelObject, KernelError> {
        let object_err =
            |message: String, errno: Option<Errno>| KernelError::Object { object: label.to_string(), message, errno };
        let resolver = kernel_btf().map(|b| b as &dyn elf::KfuncResolver);
        let norm = elf::normalize(data, resolver).map_err(|e| match e {
            elf::NormError::Invalid(m) => object_err(m, None),
            elf::NormError::MissingKfunc(m) => object_err(m, Some(Errno(libc::ESRCH))),
            elf::NormError::Unsupported(m) => KernelError::Unsupported(format!("object {label}: {m}")),
        })?;
        let parsed = aya_obj::Object::parse(&norm.bytes).map_err(|e| {
            let (m, errno) = error_chain(&e);
            object_err(m, errno)
        })?;
        let mut programs: Vec<ProgramDesc> = parsed
            .programs
            .iter()
            .map(|(name, p)| ProgramDesc {
                name: name.clone(),
                section: norm.section_names.get(&p.section_index).cloned().unwrap_or_default(),
                kind: kind_of(&p.section),
            })
            .collect();
        programs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut max_entries = opts.max_entries.clone();
        if let Some(n) = opts.zero_max_entries {
            const PERF_EVENT_ARRAY: u32 = 4;
            const RINGBUF: u32 = 27;
            let mut zero: Vec<&String> = parsed
                .maps
                .iter()
                .filter(|(name, m)| {
                    m.max_entries() == 0
                        && !matches!(m.map_type(), PERF_EVENT_ARRAY | RINGBUF)
                        && !max_entries.iter().any(|(o, _)| o == *name)
                })
                .map(|(name, _)| name)
                .collect();
            zero.sort();
            max_entries.extend(zero.into_iter().map(|name| (name.clone(), n)));
        }
        let mut obj = Self::instantiate(norm.bytes, label, programs, opts.log_level, max_entries)?;
        obj.renamed = norm.renamed;
        obj.kfuncs = norm.kfuncs;
        Ok(obj)
    }

    fn instantiate(
        bytes: Vec<u8>,
        label: &str,
        programs: Vec<ProgramDesc>,
        log_level: u32,
        max_entries: Vec<(String, u32)>,
    ) -> Result<KernelObject, KernelError> {
        let pin_dir = PinDir::new()?;
        let mut loader = aya::EbpfLoader::new();
        loader
            .btf(kernel_btf())
            .default_map_pin_directory(&pin_dir.0)
            .verifier_log_level(aya::VerifierLogLevel::from_bits_retain(log_level));
        for (name, n) in &max_entries {
            loader.map_max_entries(name, *n);
        }
        let ebpf = loader.load(&bytes).map_err(|e| {
            let (message, errno) = error_chain(&e);
            KernelError::Object { object: label.to_string(), message, errno }
        })?;
        Ok(KernelObject {
            ebpf,
            pin_dir,
            label: label.to_string(),
            bytes,
            programs,
            loaded: BTreeSet::new(),
            renamed: Vec::new(),
            kfuncs: Vec::new(),
            log_level,
            max_entries,
        })
    }

    /// The label (path) the object was loaded from.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// This object's private pin directory (removed on drop).
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir.0
    }

    /// Program names, sorted.
    pub fn prog_names(&self) -> Vec<String> {
        self.programs.iter().map(|p| p.name.clone()).collect()
    }

    /// Every program with its section and type, sorted by name.
    pub fn programs(&self) -> &[ProgramDesc] {
        &self.programs
    }

    /// The description of one program.
    pub fn program(&self, name: &str) -> Result<&ProgramDesc, KernelError> {
        self.programs.iter().find(|p| p.name == name).ok_or_else(|| KernelError::NoSuchProgram(name.to_string()))
    }

    /// Sections renamed so aya could parse them: `(original, new)`.
    pub fn renamed_sections(&self) -> &[(String, String)] {
        &self.renamed
    }

    /// kfunc calls resolved against the kernel's BTF: `(name, btf id)`;
    /// `None` for a weak kfunc the kernel lacks (its calls are poisoned).
    pub fn kfuncs(&self) -> &[(String, Option<u32>)] {
        &self.kfuncs
    }

    /// Loads one program into the kernel (BPF_PROG_LOAD through aya).
    ///
    /// `Err(KernelError::Refused { errno, log, stats })` when the verifier
    /// says no, with its log at [`ObjectOptions::log_level`] (by default the
    /// error message and statistics). Loading an already
    /// loaded program is a no-op returning its info. Types without a packet
    /// or attach-free load path (fentry, freplace, kprobe, ...) give
    /// [`KernelError::Unsupported`].
    pub fn load_program(&mut self, name: &str) -> Result<LoadInfo, KernelError> {
        let desc = self.program(name)?.clone();
        let prog = self.ebpf.program_mut(name).ok_or_else(|| KernelError::NoSuchProgram(name.to_string()))?;
        if !self.loaded.contains(name) {
            let res = match prog {
                Program::Xdp(p) => p.load(),
                Program::SocketFilter(p) => p.load(),
                Program::SchedClassifier(p) => p.load(),
                Program::TracePoint(p) => p.load(),
                Program::FlowDissector(p) => p.load(),
                Program::BtfTracePoint(p) => {
                    let btf = kernel_btf().ok_or_else(|| {
                        KernelError::Unsupported(format!(
                            "program `{name}` (section {}): tp_btf needs the kernel's BTF, which is unavailable",
                            desc.section
                        ))
                    })?;
                    let target = desc.section.strip_prefix("tp_btf/").unwrap_or(&desc.section).to_string();
                    p.load(&target, btf)
                }
                _ => {
                    return Err(KernelError::Unsupported(format!(
                        "program `{name}` of kind {:?} (section {}): only XDP, socket filter, tc, tracepoint, tp_btf \
                         and flow dissector programs can be loaded (others need an attach target)",
                        desc.kind, desc.section
                    )))
                }
            };
            match res {
                Ok(()) => {
                    self.loaded.insert(name.to_string());
                }
                Err(ProgramError::LoadError { io_error, verifier_log }) => {
                    let log = verifier_log.to_string();
                    let stats = VerifierStats::parse(&log);
                    let errno = Errno(io_error.raw_os_error().unwrap_or(0));
                    return Err(KernelError::Refused { program: name.to_string(), errno, log, stats });
                }
                Err(e) => {
                    let (message, errno) = error_chain(&e);
                    match errno {
                        Some(errno) => {
                            return Err(KernelError::Refused {
                                program: name.to_string(),
                                errno,
                                log: message,
                                stats: VerifierStats::default(),
                            })
                        }
                        None => {
                            return Err(KernelError::Object {
                                object: self.label.clone(),
                                message: format!("program `{name}`: {message}"),
                                errno: None,
                            })
                        }
                    }
                }
            }
        }
        let prog = self.ebpf.program(name).ok_or_else(|| KernelError::NoSuchProgram(name.to_string()))?;
        let verified_insns = prog.info().ok().and_then(|i| i.verified_instruction_count());
        Ok(LoadInfo { verified_insns })
    }

    /// Names of the programs loaded so far.
    pub fn loaded_programs(&self) -> Vec<String> {
        self.loaded.iter().cloned().collect()
    }

    /// Descriptor of a loaded program (for test runs, prog arrays, chains).
    pub fn program_fd(&self, name: &str) -> Result<BorrowedFd<'_>, KernelError> {
        let prog = self.ebpf.program(name).ok_or_else(|| KernelError::NoSuchProgram(name.to_string()))?;
        if !self.loaded.contains(name) {
            return Err(KernelError::NotLoaded(name.to_string()));
        }
        prog.fd().map(|fd| fd.as_fd()).map_err(|_| KernelError::NotLoaded(name.to_string()))
    }

    /// [`testrun::test_run_xdp`] on a loaded program of this object.
    pub fn test_run_xdp(
        &self,
        name: &str,
        data_in: &[u8],
        repeat: u32,
        ctx_in: Option<&[u8]>,
    ) -> Result<TestRun, KernelError> {
        testrun::test_run_xdp(self.program_fd(name)?, data_in, repeat, ctx_in)
    }

    /// [`testrun::test_run_skb`] on a loaded program of this object.
    pub fn test_run_skb(
        &self,
        name: &str,
        data_in: &[u8],
        repeat: u32,
        ctx_in: Option<&[u8]>,
    ) -> Result<TestRun, KernelError> {
        testrun::test_run_skb(self.program_fd(name)?, data_in, repeat, ctx_in)
    }

    /// Reloads the object from its bytes into a fresh pin directory, with
    /// fresh maps (initial `.data`/`.bss` contents, empty hashes), and loads
    /// again every program that was loaded. Program and map descriptors
    /// obtained before are invalid afterwards.
    pub fn reset(&mut self) -> Result<(), KernelError> {
        let mut fresh = Self::instantiate(
            self.bytes.clone(),
            &self.label,
            self.programs.clone(),
            self.log_level,
            self.max_entries.clone(),
        )?;
        fresh.renamed = std::mem::take(&mut self.renamed);
        fresh.kfuncs = std::mem::take(&mut self.kfuncs);
        for name in self.loaded.clone() {
            fresh.load_program(&name)?;
        }
        *self = fresh;
        Ok(())
    }

    fn map_fd(&self, name: &str) -> Result<BorrowedFd<'_>, KernelError> {
        let map = self.ebpf.map(name).ok_or_else(|| KernelError::NoSuchMap(name.to_string()))?;
        Ok(map_data(map).fd().as_fd())
    }

    /// Descriptor of a map (for raw operations).
    pub fn map_raw_fd(&self, name: &str) -> Result<BorrowedFd<'_>, KernelError> {
        self.map_fd(name)
    }

    /// Describes one map.
    pub fn map(&self, name: &str) -> Result<MapDesc, KernelError> {
        let fd = self.map_fd(name)?;
        let info = sys::map_info(fd).map_err(|errno| KernelError::Map {
            map: name.to_string(),
            op: "BPF_OBJ_GET_INFO_BY_FD",
            errno,
        })?;
        let syscall_value_size = if is_percpu(info.map_type) {
            let cpus = sys::possible_cpus().map_err(KernelError::Unsupported)?;
            (info.value_size as usize).div_ceil(8) * 8 * cpus
        } else {
            info.value_size as usize
        };
        let end = info.name.iter().position(|&b| b == 0).unwrap_or(info.name.len());
        Ok(MapDesc {
            name: name.to_string(),
            kernel_name: String::from_utf8_lossy(&info.name[..end]).into_owned(),
            map_type: info.map_type,
            key_size: info.key_size,
            value_size: info.value_size,
            max_entries: info.max_entries,
            flags: info.map_flags,
            syscall_value_size,
        })
    }

    /// Every map of the object, sorted by name.
    pub fn maps(&self) -> Result<Vec<MapDesc>, KernelError> {
        let mut names: Vec<&str> = self.ebpf.maps().map(|(n, _)| n).collect();
        names.sort_unstable();
        names.into_iter().map(|n| self.map(n)).collect()
    }

    /// Every `(key, value)` of a map in the kernel's iteration order
    /// (`BPF_MAP_GET_NEXT_KEY`); per-CPU values in the kernel's layout
    /// ([`MapDesc::syscall_value_size`]). Map types without keys (queue,
    /// stack, ring buffer) and without user-space lookup give the kernel's errno.
    pub fn map_dump(&self, name: &str) -> Result<Vec<MapEntry>, KernelError> {
        let desc = self.map(name)?;
        let fd = self.map_fd(name)?;
        let merr = |op: &'static str| move |errno| KernelError::Map { map: name.to_string(), op, errno };
        let mut out = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        // A bound so a map changing under us cannot loop forever.
        let limit = desc.max_entries as usize * 2 + 16;
        for _ in 0..limit {
            let mut next = vec![0u8; desc.key_size as usize];
            if !sys::map_next_key(fd, key.as_deref(), &mut next).map_err(merr("BPF_MAP_GET_NEXT_KEY"))? {
                return Ok(out);
            }
            let mut value = vec![0u8; desc.syscall_value_size];
            if sys::map_lookup(fd, &next, &mut value).map_err(merr("BPF_MAP_LOOKUP_ELEM"))? {
                out.push((next.clone(), value));
            }
            key = Some(next);
        }
        Err(KernelError::Map {
            map: name.to_string(),
            op: "BPF_MAP_GET_NEXT_KEY (iteration did not end)",
            errno: Errno(libc::ELOOP),
        })
    }

    fn check_sizes(&self, desc: &MapDesc, key: &[u8], value: Option<&[u8]>) -> Result<(), KernelError> {
        if key.len() != desc.key_size as usize {
            return Err(KernelError::InvalidInput(format!(
                "map `{}`: key of {} bytes, the map's key size is {}",
                desc.name,
                key.len(),
                desc.key_size
            )));
        }
        if let Some(v) = value {
            if v.len() != desc.syscall_value_size {
                return Err(KernelError::InvalidInput(format!(
                    "map `{}`: value of {} bytes, the map takes {} (value size {}{})",
                    desc.name,
                    v.len(),
                    desc.syscall_value_size,
                    desc.value_size,
                    if is_percpu(desc.map_type) { ", per CPU, rounded to 8, times possible CPUs" } else { "" }
                )));
            }
        }
        Ok(())
    }

    /// Looks a key up; `Ok(None)` when absent.
    pub fn map_lookup(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KernelError> {
        let desc = self.map(name)?;
        self.check_sizes(&desc, key, None)?;
        let mut value = vec![0u8; desc.syscall_value_size];
        let found = sys::map_lookup(self.map_fd(name)?, key, &mut value).map_err(|errno| KernelError::Map {
            map: name.to_string(),
            op: "BPF_MAP_LOOKUP_ELEM",
            errno,
        })?;
        Ok(found.then_some(value))
    }

    /// Writes a key/value (`flags`: 0 = BPF_ANY, 1 = BPF_NOEXIST, 2 = BPF_EXIST).
    pub fn map_update(&self, name: &str, key: &[u8], value: &[u8], flags: u64) -> Result<(), KernelError> {
        let desc = self.map(name)?;
        self.check_sizes(&desc, key, Some(value))?;
        sys::map_update(self.map_fd(name)?, key, value, flags).map_err(|errno| KernelError::Map {
            map: name.to_string(),
            op: "BPF_MAP_UPDATE_ELEM",
            errno,
        })
    }

    /// Deletes a key; `Ok(false)` when it was absent.
    pub fn map_delete(&self, name: &str, key: &[u8]) -> Result<bool, KernelError> {
        let desc = self.map(name)?;
        self.check_sizes(&desc, key, None)?;
        sys::map_delete(self.map_fd(name)?, key).map_err(|errno| KernelError::Map {
            map: name.to_string(),
            op: "BPF_MAP_DELETE_ELEM",
            errno,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_type_names() {
        assert_eq!(map_type_name(2), "array");
        assert_eq!(map_type_name(6), "percpu_array");
        assert_eq!(map_type_name(27), "ringbuf");
        assert_eq!(map_type_name(999), "unknown");
        assert!(is_percpu(5) && is_percpu(6) && !is_percpu(1));
    }

    #[test]
    fn kinds_know_what_test_runs() {
        assert!(ProgramKind::Xdp { frags: false, attach: XdpAttach::Interface }.packet_test_run());
        assert!(!ProgramKind::Xdp { frags: false, attach: XdpAttach::DevMap }.packet_test_run());
        assert!(ProgramKind::SocketFilter.packet_test_run());
        assert_eq!(ProgramKind::Other("FEntry".into()).prog_type(), None);
    }
}
