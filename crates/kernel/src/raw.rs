//! Raw `BPF_PROG_LOAD` of hand-written instruction sequences, with the
//! verifier log and its statistics on success and on failure.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use uxdp_isa::Insn;

use crate::error::Errno;
use crate::sys;

/// A BPF program type (`enum bpf_prog_type`), open to any number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProgType(pub u32);

impl ProgType {
    /// `BPF_PROG_TYPE_SOCKET_FILTER`.
    pub const SOCKET_FILTER: ProgType = ProgType(1);
    /// `BPF_PROG_TYPE_KPROBE`.
    pub const KPROBE: ProgType = ProgType(2);
    /// `BPF_PROG_TYPE_SCHED_CLS`.
    pub const SCHED_CLS: ProgType = ProgType(3);
    /// `BPF_PROG_TYPE_SCHED_ACT`.
    pub const SCHED_ACT: ProgType = ProgType(4);
    /// `BPF_PROG_TYPE_TRACEPOINT`.
    pub const TRACEPOINT: ProgType = ProgType(5);
    /// `BPF_PROG_TYPE_XDP`.
    pub const XDP: ProgType = ProgType(6);
    /// `BPF_PROG_TYPE_FLOW_DISSECTOR`.
    pub const FLOW_DISSECTOR: ProgType = ProgType(22);
    /// `BPF_PROG_TYPE_TRACING`.
    pub const TRACING: ProgType = ProgType(26);
    /// `BPF_PROG_TYPE_EXT`.
    pub const EXT: ProgType = ProgType(28);

    /// The kernel's lower-case name (`"xdp"`, `"socket_filter"`, as bpftool prints it).
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "unspec",
            1 => "socket_filter",
            2 => "kprobe",
            3 => "sched_cls",
            4 => "sched_act",
            5 => "tracepoint",
            6 => "xdp",
            7 => "perf_event",
            8 => "cgroup_skb",
            9 => "cgroup_sock",
            10 => "lwt_in",
            11 => "lwt_out",
            12 => "lwt_xmit",
            13 => "sock_ops",
            14 => "sk_skb",
            15 => "cgroup_device",
            16 => "sk_msg",
            17 => "raw_tracepoint",
            18 => "cgroup_sock_addr",
            19 => "lwt_seg6local",
            20 => "lirc_mode2",
            21 => "sk_reuseport",
            22 => "flow_dissector",
            23 => "cgroup_sysctl",
            24 => "raw_tracepoint_writable",
            25 => "cgroup_sockopt",
            26 => "tracing",
            27 => "struct_ops",
            28 => "ext",
            29 => "lsm",
            30 => "sk_lookup",
            31 => "syscall",
            32 => "netfilter",
            _ => return None,
        })
    }
}

/// Verifier log levels (`log_level` bits of BPF_PROG_LOAD).
pub mod log_level {
    /// No log (fastest). [`super::load_raw`] still fetches a log on failure.
    pub const NONE: u32 = 0;
    /// `BPF_LOG_LEVEL1`: the instructions of the paths that failed / branch states.
    pub const LEVEL1: u32 = 1;
    /// `BPF_LOG_LEVEL2`: every instruction with register state (large).
    pub const LEVEL2: u32 = 2;
    /// `BPF_LOG_STATS`: only the statistics lines (`verification time`, `processed N insns`).
    pub const STATS: u32 = 4;
}

/// Statistics the verifier prints at the end of its log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifierStats {
    /// `verification time N usec`.
    pub verification_time_usec: Option<u32>,
    /// `processed N insns (limit ...)`: instructions the verifier walked.
    pub processed_insns: Option<u32>,
    /// `total_states N`.
    pub total_states: Option<u32>,
    /// `peak_states N`.
    pub peak_states: Option<u32>,
    /// `stack depth N` (first frame; subprogram depths follow with `+`).
    pub stack_depth: Option<String>,
}

impl VerifierStats {
    /// Parses the statistics lines out of a verifier log; absent lines stay `None`.
    pub fn parse(log: &str) -> Self {
        let mut s = VerifierStats::default();
        for line in log.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("verification time ") {
                s.verification_time_usec = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            } else if let Some(rest) = line.strip_prefix("processed ") {
                let mut words = rest.split_whitespace();
                s.processed_insns = words.next().and_then(|n| n.parse().ok());
                let words: Vec<&str> = rest.split_whitespace().collect();
                for pair in words.windows(2) {
                    match pair[0] {
                        "total_states" => s.total_states = pair[1].parse().ok(),
                        "peak_states" => s.peak_states = pair[1].parse().ok(),
                        _ => {}
                    }
                }
            } else if let Some(rest) = line.strip_prefix("stack depth ") {
                s.stack_depth = Some(rest.trim().to_string());
            }
        }
        s
    }
}

/// Everything BPF_PROG_LOAD takes that this crate exposes.
#[derive(Clone, Debug)]
pub struct LoadOptions<'a> {
    /// Program type.
    pub prog_type: ProgType,
    /// License string (GPL-only helpers need a GPL-compatible one).
    pub license: &'a str,
    /// Verifier log level, see [`log_level`].
    pub log_level: u32,
    /// Program name (sanitised and cut to 15 bytes).
    pub name: &'a str,
    /// `expected_attach_type` (e.g. `BPF_XDP_DEVMAP` = 40); 0 for the default.
    pub expected_attach_type: u32,
    /// `prog_flags` (e.g. `BPF_F_XDP_HAS_FRAGS` = 1 << 5).
    pub prog_flags: u32,
    /// Program BTF (from [`load_btf`]); needed for `func_info`.
    pub btf_fd: Option<BorrowedFd<'a>>,
    /// `func_info` records: one per function, the first at instruction 0.
    /// The kernel requires them (with `btf_fd`) for global functions and for
    /// tail calls made from subprograms.
    pub func_info: &'a [FuncInfo],
}

/// One `struct bpf_func_info`: a function's first instruction and its
/// `BTF_KIND_FUNC` type id in the program BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuncInfo {
    /// Instruction index where the function starts.
    pub insn_off: u32,
    /// BTF type id of its `BTF_KIND_FUNC`.
    pub type_id: u32,
}

impl<'a> LoadOptions<'a> {
    /// GPL, statistics-only log, no name, default attach type, no flags.
    pub fn new(prog_type: ProgType) -> Self {
        LoadOptions {
            prog_type,
            license: "GPL",
            log_level: log_level::STATS,
            name: "",
            expected_attach_type: 0,
            prog_flags: 0,
            btf_fd: None,
            func_info: &[],
        }
    }
}

/// `BPF_F_XDP_HAS_FRAGS`: the program understands multi-buffer packets.
pub const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// A program the kernel accepted. Closing the descriptor (drop) unloads it.
#[derive(Debug)]
pub struct LoadedProg {
    fd: OwnedFd,
    /// Program type it was loaded as.
    pub prog_type: ProgType,
    /// The verifier log at the requested level (empty for [`log_level::NONE`]).
    pub log: String,
    /// Statistics parsed from `log`.
    pub stats: VerifierStats,
}

impl LoadedProg {
    /// The program's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Takes ownership of the descriptor.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for LoadedProg {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The kernel refused a program (or, with a log starting `uxdp-kernel:`,
/// this crate refused to pass the input on).
#[derive(Debug, Clone, thiserror::Error)]
#[error("BPF_PROG_LOAD failed: {errno}{}", if .log.trim().is_empty() { String::new() } else { format!("\nverifier log:\n{}", .log.trim_end()) })]
pub struct LoadFailure {
    /// The kernel's errno (`EACCES` for verifier rejections, `EINVAL` for bad
    /// arguments, `EPERM` without privileges, ...).
    pub errno: Errno,
    /// The verifier log.
    pub log: String,
    /// Statistics parsed from `log`.
    pub stats: VerifierStats,
}

fn local_failure(msg: String) -> LoadFailure {
    LoadFailure { errno: Errno(libc::EINVAL), log: format!("uxdp-kernel: {msg}"), stats: VerifierStats::default() }
}

/// Loads hand-written instructions with `BPF_PROG_LOAD`.
///
/// `log_level` as in [`log_level`]; with [`log_level::NONE`] a failing load is
/// repeated once with `LEVEL1 | STATS` so the failure still carries a log.
/// Include [`log_level::STATS`] to get [`VerifierStats`] on success.
pub fn load_raw(insns: &[Insn], prog_type: ProgType, license: &str, log_level: u32) -> Result<LoadedProg, LoadFailure> {
    load_raw_with(insns, &LoadOptions { license, log_level, ..LoadOptions::new(prog_type) })
}

/// [`load_raw`] for raw little-endian instruction bytes (a multiple of 8).
pub fn load_raw_bytes(bytes: &[u8], opts: &LoadOptions<'_>) -> Result<LoadedProg, LoadFailure> {
    let insns = uxdp_isa::insn::parse_bytes(bytes).map_err(|e| local_failure(e.to_string()))?;
    load_raw_with(&insns, opts)
}

/// [`load_raw`] with every option.
pub fn load_raw_with(insns: &[Insn], opts: &LoadOptions<'_>) -> Result<LoadedProg, LoadFailure> {
    let license = CString::new(opts.license)
        .map_err(|_| local_failure(format!("license string {:?} contains a NUL byte", opts.license)))?;
    let insn_cnt = u32::try_from(insns.len())
        .map_err(|_| local_failure(format!("{} instructions do not fit BPF_PROG_LOAD's u32 count", insns.len())))?;
    let attempt = |level: u32| -> Result<(OwnedFd, String), (Errno, String)> {
        let mut buf_len: usize = if level == 0 { 0 } else { 256 * 1024 };
        loop {
            let mut buf = vec![0u8; buf_len];
            let mut attr = sys::ProgLoadAttr {
                prog_type: opts.prog_type.0,
                insn_cnt,
                insns: insns.as_ptr() as u64,
                license: license.as_ptr() as u64,
                log_level: level,
                log_size: buf_len as u32,
                log_buf: if buf_len == 0 { 0 } else { buf.as_mut_ptr() as u64 },
                prog_flags: opts.prog_flags,
                prog_name: sys::obj_name(opts.name),
                expected_attach_type: opts.expected_attach_type,
                prog_btf_fd: opts.btf_fd.map_or(0, sys::fd_u32),
                func_info_rec_size: if opts.func_info.is_empty() { 0 } else { std::mem::size_of::<FuncInfo>() as u32 },
                func_info: if opts.func_info.is_empty() { 0 } else { opts.func_info.as_ptr() as u64 },
                func_info_cnt: opts.func_info.len() as u32,
                ..Default::default()
            };
            // SAFETY: `Insn` is `#[repr(C)]` 8 bytes = `struct bpf_insn`; the
            // instructions, license and log buffer outlive the call and the
            // log buffer is writable for `log_size` bytes.
            let ret = unsafe { sys::bpf(sys::BPF_PROG_LOAD, &mut attr) };
            let log = log_text(&buf);
            match ret {
                Ok(fd) => return Ok((sys::owned_fd(fd), log)),
                Err(e) if e.0 == libc::ENOSPC && buf_len != 0 && buf_len < MAX_LOG => {
                    // The log did not fit: the kernel (6.4+) says how much it needs.
                    let need = attr.log_true_size as usize + 1;
                    buf_len = if need > buf_len { need } else { buf_len * 8 }.min(MAX_LOG);
                }
                Err(e) => return Err((e, log)),
            }
        }
    };
    match attempt(opts.log_level) {
        Ok((fd, log)) => {
            let stats = VerifierStats::parse(&log);
            Ok(LoadedProg { fd, prog_type: opts.prog_type, log, stats })
        }
        Err((errno, log)) if opts.log_level == 0 => {
            // Repeat with a log so the failure explains itself.
            let log = match attempt(log_level::LEVEL1 | log_level::STATS) {
                Err((_, log)) => log,
                Ok(_) => log,
            };
            let stats = VerifierStats::parse(&log);
            Err(LoadFailure { errno, log, stats })
        }
        Err((errno, log)) => {
            let stats = VerifierStats::parse(&log);
            Err(LoadFailure { errno, log, stats })
        }
    }
}

/// Loads a BTF blob (`BPF_BTF_LOAD`) for [`LoadOptions::btf_fd`]; a refusal
/// carries the kernel's BTF log.
pub fn load_btf(blob: &[u8]) -> Result<OwnedFd, LoadFailure> {
    let size =
        u32::try_from(blob.len()).map_err(|_| local_failure(format!("BTF of {} bytes is too large", blob.len())))?;
    let attempt = |with_log: bool| -> Result<OwnedFd, (Errno, String)> {
        let mut buf = vec![0u8; if with_log { 64 * 1024 } else { 0 }];
        let mut attr = sys::BtfLoadAttr {
            btf: blob.as_ptr() as u64,
            btf_log_buf: if with_log { buf.as_mut_ptr() as u64 } else { 0 },
            btf_size: size,
            btf_log_size: buf.len() as u32,
            btf_log_level: u32::from(with_log),
        };
        // SAFETY: the blob is readable for `btf_size` bytes, the log buffer
        // writable for `btf_log_size` bytes.
        match unsafe { sys::bpf(sys::BPF_BTF_LOAD, &mut attr) } {
            Ok(fd) => Ok(sys::owned_fd(fd)),
            Err(e) => Err((e, log_text(&buf))),
        }
    };
    attempt(false).or_else(|(errno, _)| match attempt(true) {
        Ok(fd) => Ok(fd),
        Err((_, log)) => Err(LoadFailure { errno, log, stats: VerifierStats::default() }),
    })
}

/// Largest verifier log buffer we offer (the kernel accepts up to `u32::MAX >> 2`).
const MAX_LOG: usize = 256 * 1024 * 1024;

fn log_text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_verifier_stats() {
        let log = "func#0 @0\n0: R1=ctx() R10=fp0\n\
                   verification time 13 usec\nstack depth 8+0\n\
                   processed 27 insns (limit 1000000) max_states_per_insn 1 total_states 3 peak_states 3 mark_read 1\n";
        let s = VerifierStats::parse(log);
        assert_eq!(s.verification_time_usec, Some(13));
        assert_eq!(s.processed_insns, Some(27));
        assert_eq!(s.total_states, Some(3));
        assert_eq!(s.peak_states, Some(3));
        assert_eq!(s.stack_depth.as_deref(), Some("8+0"));
        assert_eq!(VerifierStats::parse("R0 !read_ok"), VerifierStats::default());
    }

    #[test]
    fn prog_type_names() {
        assert_eq!(ProgType::XDP.name(), Some("xdp"));
        assert_eq!(ProgType::SOCKET_FILTER.name(), Some("socket_filter"));
        assert_eq!(ProgType(999).name(), None);
    }

    #[test]
    fn bad_local_input_is_named() {
        let e = load_raw_bytes(&[0u8; 7], &LoadOptions::new(ProgType::XDP)).unwrap_err();
        assert_eq!(e.errno, Errno(libc::EINVAL));
        assert!(e.log.starts_with("uxdp-kernel:") && e.log.contains('7'), "{}", e.log);
        let e = load_raw(&[], ProgType::XDP, "G\0PL", 0).unwrap_err();
        assert!(e.log.contains("NUL"), "{}", e.log);
    }
}
