//! Programs: the relocated, self-contained instruction streams of an
//! object's entry points, their type (from the section name, by libbpf's
//! section table) and their metadata.

use uxdp_isa::Insn;

/// Which XDP hook an XDP program is for (libbpf's expected attach type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XdpAttach {
    /// A network device (`BPF_XDP`).
    Device,
    /// A devmap entry's second-stage program (`BPF_XDP_DEVMAP`).
    Devmap,
    /// A cpumap entry's second-stage program (`BPF_XDP_CPUMAP`).
    Cpumap,
}

/// Program type, derived from the section name like libbpf does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProgramKind {
    /// `BPF_PROG_TYPE_XDP`: `xdp`, `xdp.frags`, `xdp/devmap`, `xdp/cpumap`,
    /// `xdp.frags/devmap`, `xdp.frags/cpumap`.
    Xdp {
        /// Multi-buffer aware (`.frags`, `BPF_F_XDP_HAS_FRAGS`).
        frags: bool,
        /// The hook.
        attach: XdpAttach,
    },
    /// `BPF_PROG_TYPE_SOCKET_FILTER`: `socket`.
    SocketFilter,
    /// `BPF_PROG_TYPE_SCHED_CLS`: `tc`, `classifier`, `tc/ingress`,
    /// `tc/egress`, `tcx/ingress`, `tcx/egress`, `netkit/primary`, `netkit/peer`.
    Tc,
    /// Another program type libbpf knows; the string is its bpftool name
    /// (`"tracing"`, `"kprobe"`, `"flow_dissector"`, `"sched_act"`, ...).
    Other(String),
    /// A section name libbpf does not recognise (`BPF_PROG_TYPE_UNSPEC`),
    /// e.g. old iproute2-style names such as `xdp_mark`; see
    /// [`ProgramKind::from_legacy_section`].
    Unspec,
}

#[derive(Clone, Copy)]
enum Match {
    /// Exact name.
    Exact,
    /// `type+`: exact, or `type/extras`.
    Plus,
}

/// libbpf's section table (`section_defs` in libbpf.c), first match wins:
/// (section, match, bpftool program type name).
const SECTION_DEFS: &[(&str, Match, &str)] = {
    use Match::*;
    &[
        ("socket", Exact, "socket_filter"),
        ("sk_reuseport/migrate", Exact, "sk_reuseport"),
        ("sk_reuseport", Exact, "sk_reuseport"),
        ("kprobe", Plus, "kprobe"),
        ("uprobe", Plus, "kprobe"),
        ("uprobe.s", Plus, "kprobe"),
        ("kretprobe", Plus, "kprobe"),
        ("uretprobe", Plus, "kprobe"),
        ("uretprobe.s", Plus, "kprobe"),
        ("kprobe.multi", Plus, "kprobe"),
        ("kretprobe.multi", Plus, "kprobe"),
        ("kprobe.session", Plus, "kprobe"),
        ("uprobe.multi", Plus, "kprobe"),
        ("uretprobe.multi", Plus, "kprobe"),
        ("uprobe.session", Plus, "kprobe"),
        ("uprobe.multi.s", Plus, "kprobe"),
        ("uretprobe.multi.s", Plus, "kprobe"),
        ("uprobe.session.s", Plus, "kprobe"),
        ("ksyscall", Plus, "kprobe"),
        ("kretsyscall", Plus, "kprobe"),
        ("usdt", Plus, "kprobe"),
        ("usdt.s", Plus, "kprobe"),
        ("tc/ingress", Exact, "sched_cls"),
        ("tc/egress", Exact, "sched_cls"),
        ("tcx/ingress", Exact, "sched_cls"),
        ("tcx/egress", Exact, "sched_cls"),
        ("tc", Exact, "sched_cls"),
        ("classifier", Exact, "sched_cls"),
        ("action", Exact, "sched_act"),
        ("netkit/primary", Exact, "sched_cls"),
        ("netkit/peer", Exact, "sched_cls"),
        ("tracepoint", Plus, "tracepoint"),
        ("tp", Plus, "tracepoint"),
        ("tracepoint.s", Plus, "tracepoint"),
        ("tp.s", Plus, "tracepoint"),
        ("raw_tracepoint", Plus, "raw_tracepoint"),
        ("raw_tp", Plus, "raw_tracepoint"),
        ("raw_tracepoint.s", Plus, "raw_tracepoint"),
        ("raw_tp.s", Plus, "raw_tracepoint"),
        ("raw_tracepoint.w", Plus, "raw_tracepoint_writable"),
        ("raw_tp.w", Plus, "raw_tracepoint_writable"),
        ("tp_btf", Plus, "tracing"),
        ("tp_btf.s", Plus, "tracing"),
        ("fentry", Plus, "tracing"),
        ("fmod_ret", Plus, "tracing"),
        ("fexit", Plus, "tracing"),
        ("fentry.s", Plus, "tracing"),
        ("fmod_ret.s", Plus, "tracing"),
        ("fexit.s", Plus, "tracing"),
        ("fsession", Plus, "tracing"),
        ("fsession.s", Plus, "tracing"),
        ("fsession.multi", Plus, "tracing"),
        ("fsession.multi.s", Plus, "tracing"),
        ("fentry.multi", Plus, "tracing"),
        ("fexit.multi", Plus, "tracing"),
        ("fentry.multi.s", Plus, "tracing"),
        ("fexit.multi.s", Plus, "tracing"),
        ("freplace", Plus, "ext"),
        ("lsm", Plus, "lsm"),
        ("lsm.s", Plus, "lsm"),
        ("lsm_cgroup", Plus, "lsm"),
        ("iter", Plus, "tracing"),
        ("iter.s", Plus, "tracing"),
        ("syscall", Exact, "syscall"),
        ("xdp.frags/devmap", Exact, "xdp"),
        ("xdp/devmap", Exact, "xdp"),
        ("xdp.frags/cpumap", Exact, "xdp"),
        ("xdp/cpumap", Exact, "xdp"),
        ("xdp.frags", Exact, "xdp"),
        ("xdp", Exact, "xdp"),
        ("perf_event", Exact, "perf_event"),
        ("lwt_in", Exact, "lwt_in"),
        ("lwt_out", Exact, "lwt_out"),
        ("lwt_xmit", Exact, "lwt_xmit"),
        ("lwt_seg6local", Exact, "lwt_seg6local"),
        ("sockops", Exact, "sock_ops"),
        ("sk_skb/stream_parser", Exact, "sk_skb"),
        ("sk_skb/stream_verdict", Exact, "sk_skb"),
        ("sk_skb/verdict", Exact, "sk_skb"),
        ("sk_skb", Exact, "sk_skb"),
        ("sk_msg", Exact, "sk_msg"),
        ("lirc_mode2", Exact, "lirc_mode2"),
        ("flow_dissector", Exact, "flow_dissector"),
        ("cgroup_skb/ingress", Exact, "cgroup_skb"),
        ("cgroup_skb/egress", Exact, "cgroup_skb"),
        ("cgroup/skb", Exact, "cgroup_skb"),
        ("cgroup/sock_create", Exact, "cgroup_sock"),
        ("cgroup/sock_release", Exact, "cgroup_sock"),
        ("cgroup/sock", Exact, "cgroup_sock"),
        ("cgroup/post_bind4", Exact, "cgroup_sock"),
        ("cgroup/post_bind6", Exact, "cgroup_sock"),
        ("cgroup/bind4", Exact, "cgroup_sock_addr"),
        ("cgroup/bind6", Exact, "cgroup_sock_addr"),
        ("cgroup/connect4", Exact, "cgroup_sock_addr"),
        ("cgroup/connect6", Exact, "cgroup_sock_addr"),
        ("cgroup/connect_unix", Exact, "cgroup_sock_addr"),
        ("cgroup/sendmsg4", Exact, "cgroup_sock_addr"),
        ("cgroup/sendmsg6", Exact, "cgroup_sock_addr"),
        ("cgroup/sendmsg_unix", Exact, "cgroup_sock_addr"),
        ("cgroup/recvmsg4", Exact, "cgroup_sock_addr"),
        ("cgroup/recvmsg6", Exact, "cgroup_sock_addr"),
        ("cgroup/recvmsg_unix", Exact, "cgroup_sock_addr"),
        ("cgroup/getpeername4", Exact, "cgroup_sock_addr"),
        ("cgroup/getpeername6", Exact, "cgroup_sock_addr"),
        ("cgroup/getpeername_unix", Exact, "cgroup_sock_addr"),
        ("cgroup/getsockname4", Exact, "cgroup_sock_addr"),
        ("cgroup/getsockname6", Exact, "cgroup_sock_addr"),
        ("cgroup/getsockname_unix", Exact, "cgroup_sock_addr"),
        ("cgroup/sysctl", Exact, "cgroup_sysctl"),
        ("cgroup/getsockopt", Exact, "cgroup_sockopt"),
        ("cgroup/setsockopt", Exact, "cgroup_sockopt"),
        ("cgroup/dev", Exact, "cgroup_device"),
        ("struct_ops", Plus, "struct_ops"),
        ("struct_ops.s", Plus, "struct_ops"),
        ("sk_lookup", Exact, "sk_lookup"),
        ("netfilter", Exact, "netfilter"),
    ]
};

impl ProgramKind {
    /// The program type of a section name, by libbpf's section table (a
    /// leading `?`, libbpf's "do not autoload" marker, is ignored).
    pub fn from_section(section: &str) -> ProgramKind {
        let section = section.strip_prefix('?').unwrap_or(section);
        let def = SECTION_DEFS.iter().find(|(name, m, _)| match m {
            Match::Exact => section == *name,
            Match::Plus => section.strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        });
        let Some(&(name, _, ty)) = def else { return ProgramKind::Unspec };
        match ty {
            "xdp" => ProgramKind::Xdp {
                frags: name.starts_with("xdp.frags"),
                attach: if name.ends_with("/devmap") {
                    XdpAttach::Devmap
                } else if name.ends_with("/cpumap") {
                    XdpAttach::Cpumap
                } else {
                    XdpAttach::Device
                },
            },
            "socket_filter" => ProgramKind::SocketFilter,
            "sched_cls" => ProgramKind::Tc,
            other => ProgramKind::Other(other.to_string()),
        }
    }

    /// The iproute2/bpftool-era guess for section names libbpf does not
    /// know: `xdp*` is XDP, `tc*` and `classifier*` are tc classifiers,
    /// `socket*` and `filter*` are socket filters. Returns the libbpf type
    /// when the name is recognised, and `Unspec` when no rule matches.
    pub fn from_legacy_section(section: &str) -> ProgramKind {
        match ProgramKind::from_section(section) {
            ProgramKind::Unspec => {}
            k => return k,
        }
        let s = section.strip_prefix('?').unwrap_or(section);
        if s.starts_with("xdp") {
            ProgramKind::Xdp { frags: s.starts_with("xdp.frags"), attach: XdpAttach::Device }
        } else if s.starts_with("tc") || s.starts_with("classifier") {
            ProgramKind::Tc
        } else if s.starts_with("socket") || s.starts_with("filter") {
            ProgramKind::SocketFilter
        } else {
            ProgramKind::Unspec
        }
    }

    /// bpftool's name of the program type (`"xdp"`, `"sched_cls"`, `"unspec"`, ...).
    pub fn type_name(&self) -> &str {
        match self {
            ProgramKind::Xdp { .. } => "xdp",
            ProgramKind::SocketFilter => "socket_filter",
            ProgramKind::Tc => "sched_cls",
            ProgramKind::Other(s) => s,
            ProgramKind::Unspec => "unspec",
        }
    }

    /// True for every XDP variant.
    pub fn is_xdp(&self) -> bool {
        matches!(self, ProgramKind::Xdp { .. })
    }
}

/// libxdp's run configuration of an XDP program (`XDP_RUN_CONFIG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunConfig {
    /// Sort priority in the dispatcher; lower runs first.
    pub priority: u32,
    /// Bit `1 << action` set: the dispatcher continues to the next program
    /// when this program returns `action`.
    pub chain_call_actions: u32,
}

impl RunConfig {
    /// libxdp's default priority.
    pub const DEFAULT_PRIORITY: u32 = 50;
    /// libxdp's default chain-call actions: `{XDP_PASS}`.
    pub const DEFAULT_CHAIN_CALL_ACTIONS: u32 = 1 << 2;

    /// True if the dispatcher continues after `action`.
    pub fn chains_on(&self, action: u32) -> bool {
        action < 32 && self.chain_call_actions & (1 << action) != 0
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig { priority: Self::DEFAULT_PRIORITY, chain_call_actions: Self::DEFAULT_CHAIN_CALL_ACTIONS }
    }
}

/// A kfunc call in a relocated program.
///
/// The instruction at `pc` is `call` with `src_reg = 2` (`BPF_PSEUDO_KFUNC_CALL`),
/// `off = 0` and `imm` = the object's local BTF id of the extern `FUNC`
/// (0 without BTF); the runtime resolves it by `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KfuncCall {
    /// Instruction index in [`ProgramDef::insns`].
    pub pc: usize,
    /// Kernel function name.
    pub name: String,
    /// Declared `__weak` (may be absent at run time).
    pub weak: bool,
    /// Local BTF id of the extern `FUNC`.
    pub btf_id: u32,
}

/// A reference to a `__ksym` extern (a kernel variable, or a kfunc's
/// address) in a relocated program.
///
/// The instruction at `pc` is `lddw` with `src_reg = 3` (`BPF_PSEUDO_BTF_ID`),
/// `imm` = the local BTF id of the extern and a zero upper immediate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KsymRef {
    /// Instruction index in [`ProgramDef::insns`].
    pub pc: usize,
    /// Symbol name.
    pub name: String,
    /// Declared `__weak`.
    pub weak: bool,
    /// True if the extern is a function (its address is taken).
    pub is_func: bool,
    /// Local BTF id of the extern `VAR` or `FUNC`.
    pub btf_id: u32,
}

/// A function of a relocated program, from `.BTF.ext` func_info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuncInfo {
    /// First instruction of the function in [`ProgramDef::insns`].
    pub insn_off: usize,
    /// BTF `FUNC` type id.
    pub type_id: u32,
}

/// A source line of a relocated program, from `.BTF.ext` line_info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineInfo {
    /// Instruction index in [`ProgramDef::insns`].
    pub insn_off: usize,
    /// BTF string offset of the file name.
    pub file_name_off: u32,
    /// BTF string offset of the line's source text.
    pub line_off: u32,
    /// Line number.
    pub line: u32,
    /// Column.
    pub column: u32,
}

/// A function appended to a program (libbpf-style subprogram linking).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubprogramRef {
    /// Function name.
    pub name: String,
    /// Its first instruction in [`ProgramDef::insns`].
    pub insn_off: usize,
    /// Its length in instructions.
    pub len: usize,
}

/// An entry program: self-contained, fully relocated instructions plus metadata.
///
/// In [`ProgramDef::insns`] every map reference is `lddw` with `src_reg = 5`
/// (`BPF_PSEUDO_MAP_IDX`, `imm` = index into [`crate::Object::maps`]), every
/// global-data reference `lddw` with `src_reg = 6` (`BPF_PSEUDO_MAP_IDX_VALUE`,
/// `imm` = map index, second `imm` = byte offset), every bpf-to-bpf call and
/// `lddw src_reg = 4` function address is pc-relative within `insns`, and
/// used `.text` functions are appended after the program's own code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramDef {
    /// Function name.
    pub name: String,
    /// ELF section name (without libbpf's `?` prefix).
    pub section: String,
    /// Program type from the section name.
    pub kind: ProgramKind,
    /// False if the section name started with `?` (libbpf: not loaded by default).
    pub autoload: bool,
    /// Relocated instructions.
    pub insns: Vec<Insn>,
    /// Number of instructions of the function itself (before appended
    /// subprograms); this is what `bpftool`/libbpf report after open.
    pub own_insn_count: usize,
    /// Offset of the function in its section, in instructions.
    pub section_insn_offset: usize,
    /// Appended `.text` functions, in order.
    pub subprograms: Vec<SubprogramRef>,
    /// libxdp run configuration, if the object declares one for this program.
    pub run_config: Option<RunConfig>,
    /// kfunc calls.
    pub kfuncs: Vec<KfuncCall>,
    /// `__ksym` references.
    pub ksyms: Vec<KsymRef>,
    /// `.BTF.ext` function info, relocated.
    pub func_info: Vec<FuncInfo>,
    /// `.BTF.ext` line info, relocated.
    pub line_info: Vec<LineInfo>,
    /// BTF id of the program's `FUNC`, if the object has BTF.
    pub btf_func_id: Option<u32>,
    /// `btf_decl_tag` strings on the program's `FUNC` (e.g. the selftests'
    /// `comment:test_expect_success`, `comment:test_expect_msg=...`).
    pub decl_tags: Vec<String>,
}

impl ProgramDef {
    /// The run configuration libxdp would use: the declared one or the defaults.
    pub fn effective_run_config(&self) -> RunConfig {
        self.run_config.unwrap_or_default()
    }

    /// Whether the program runs on the XDP hook: its libbpf section says so,
    /// or the section is unknown to libbpf and the iproute2-era rule
    /// ([`ProgramKind::from_legacy_section`]) makes it XDP, as
    /// `bpftool prog load ... type xdp` and `ip link set ... xdp` do.
    pub fn runs_as_xdp(&self) -> bool {
        match self.kind {
            ProgramKind::Unspec => ProgramKind::from_legacy_section(&self.section).is_xdp(),
            ref k => k.is_xdp(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_names() {
        let xdp = |frags, attach| ProgramKind::Xdp { frags, attach };
        assert_eq!(ProgramKind::from_section("xdp"), xdp(false, XdpAttach::Device));
        assert_eq!(ProgramKind::from_section("xdp.frags"), xdp(true, XdpAttach::Device));
        assert_eq!(ProgramKind::from_section("xdp/devmap"), xdp(false, XdpAttach::Devmap));
        assert_eq!(ProgramKind::from_section("xdp.frags/cpumap"), xdp(true, XdpAttach::Cpumap));
        assert_eq!(ProgramKind::from_section("?xdp"), xdp(false, XdpAttach::Device));
        assert_eq!(ProgramKind::from_section("xdp_mark"), ProgramKind::Unspec);
        assert_eq!(ProgramKind::from_section("xdp/foo"), ProgramKind::Unspec);
        assert_eq!(ProgramKind::from_section("socket"), ProgramKind::SocketFilter);
        assert_eq!(ProgramKind::from_section("tc"), ProgramKind::Tc);
        assert_eq!(ProgramKind::from_section("classifier"), ProgramKind::Tc);
        assert_eq!(ProgramKind::from_section("tcx/ingress"), ProgramKind::Tc);
        assert_eq!(ProgramKind::from_section("tp_btf/xdp_exception").type_name(), "tracing");
        assert_eq!(ProgramKind::from_section("tp/xdp/x").type_name(), "tracepoint");
        assert_eq!(ProgramKind::from_section("tpx").type_name(), "unspec");
        assert_eq!(ProgramKind::from_section("freplace/rx").type_name(), "ext");
        assert_eq!(ProgramKind::from_legacy_section("xdp_mark"), xdp(false, XdpAttach::Device));
        assert_eq!(ProgramKind::from_legacy_section("tc_mark"), ProgramKind::Tc);
        assert_eq!(ProgramKind::from_legacy_section("filter"), ProgramKind::SocketFilter);
        assert_eq!(ProgramKind::from_legacy_section("t"), ProgramKind::Unspec);
    }

    #[test]
    fn run_config_defaults() {
        let d = RunConfig::default();
        assert_eq!(d.priority, 50);
        assert!(d.chains_on(2) && !d.chains_on(1) && !d.chains_on(40));
    }
}
