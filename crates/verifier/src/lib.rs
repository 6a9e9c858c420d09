//! # uxdp-verifier: prove eBPF programs safe before they run
//!
//! [`verify`] checks an XDP or socket-filter program the way the Linux
//! verifier does (as root: `CAP_BPF` + `CAP_PERFMON` rules, so pointer
//! leaks into maps and reads of uninitialised stack are allowed) and
//! either returns [`Facts`] for the loader and JIT or a [`Rejection`] that
//! names the instruction index, the disassembled instruction, the [`Rule`]
//! broken and the register state involved.
//!
//! Two passes:
//!
//! 1. **Structure**: every slot decodes, jumps stay inside their
//!    subprogram and never land on the second half of `lddw`, every
//!    subprogram ends in `exit` or `ja`, every instruction is reachable
//!    (`unreachable insn N`, exactly where the kernel says so).
//! 2. **Abstract interpretation** over all paths, depth-first like the
//!    kernel, with state pruning at jump targets (an explored state that
//!    subsumes the current one ends the path; an identical in-progress
//!    state is an infinite loop) and the kernel's budget of 1,000,000
//!    processed instructions. As in the kernel, a state is stored only
//!    after at least 2 jumps and 8 instructions since the last one;
//!    candidates are looked up by a hash of what subsumption needs to be
//!    equal (type, nullness and fixed offset of each live register), and
//!    registers that are not live, or scalars whose value never reaches a
//!    safety decision (precision), are not compared. Registers carry types (scalar, ctx, packet,
//!    packet end, packet meta, stack, map pointer, map value (or null),
//!    map key, memory (ring buffer, or null), sockets, function pointers)
//!    and scalars carry signed/unsigned 64/32-bit bounds plus known bits.
//!
//! [`Mode::Permissive`] keeps every structural and type rule but does not
//! reject an access whose bounds it cannot prove; [`Facts::proven`] then
//! tells the runtime which accesses still need their checks.
//!
//! kfunc calls (`call` with `src_reg = 2`) are checked against the
//! prototypes of the kfuncs uxdp models (dynptrs over the XDP buffer and
//! netfilter conntrack lookups, with reference tracking); the callee's
//! name comes from [`VerifyInput::kfuncs`].
//!
//! `lddw` map references: `src_reg` 1 (`map_fd`) and 5 (`map_idx`) take
//! `imm` as an index into [`VerifyInput::maps`]; 2 and 6 (map value) take
//! the index in `imm` and the byte offset in the second `imm`; 4 is a
//! subprogram address.

#![warn(missing_docs)]

mod check;
mod ctx;
mod helpers;
mod kfuncs;
pub mod scalar;
mod structure;
pub mod tnum;

use std::fmt;
use std::time::Duration;
use uxdp_isa::Insn;

/// Program types the verifier knows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ProgType {
    /// `BPF_PROG_TYPE_XDP` (context `struct xdp_md`).
    Xdp,
    /// `BPF_PROG_TYPE_SOCKET_FILTER` (context `struct __sk_buff`).
    SocketFilter,
}

/// How strict the verifier is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Mode {
    /// Kernel-like: reject what the kernel rejects.
    Strict,
    /// Never reject for unproven memory safety (the runtime checks those
    /// accesses, see [`Facts::proven`]); structural and type errors are
    /// still rejected.
    Permissive,
}

/// What the verifier needs to know about a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapInfo {
    /// Name (for messages).
    pub name: String,
    /// `enum bpf_map_type` number.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Maximum number of entries.
    pub max_entries: u32,
    /// `map_flags` (`BPF_F_RDONLY_PROG` = 0x80 makes values read-only to programs).
    pub flags: u32,
}

impl MapInfo {
    /// The maps of a parsed object, by index (what its relocated `lddw`
    /// instructions refer to).
    pub fn of_object(obj: &uxdp_object::Object) -> Vec<MapInfo> {
        obj.maps.iter().map(MapInfo::from).collect()
    }
}

impl From<&uxdp_object::MapDef> for MapInfo {
    fn from(m: &uxdp_object::MapDef) -> MapInfo {
        MapInfo {
            name: m.name.clone(),
            map_type: m.map_type,
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries: m.max_entries,
            flags: m.map_flags,
        }
    }
}

/// The hook an XDP program is loaded for: the kernel's
/// `expected_attach_type`, which libbpf derives from the section name.
/// Only `BPF_XDP_DEVMAP` programs may read `xdp_md.egress_ifindex`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum AttachType {
    /// A network device (`BPF_XDP`, or unset): sections `xdp`, `xdp.frags`,
    /// and every non-XDP program.
    #[default]
    Default,
    /// A devmap entry's second-stage program (`BPF_XDP_DEVMAP`): sections
    /// `xdp/devmap`, `xdp.frags/devmap`.
    Devmap,
    /// A cpumap entry's second-stage program (`BPF_XDP_CPUMAP`): sections
    /// `xdp/cpumap`, `xdp.frags/cpumap`.
    Cpumap,
}

impl AttachType {
    /// The attach type libbpf gives a program in section `section`.
    pub fn from_section(section: &str) -> AttachType {
        match uxdp_object::ProgramKind::from_section(section) {
            uxdp_object::ProgramKind::Xdp { attach, .. } => AttachType::from(attach),
            _ => AttachType::Default,
        }
    }

    /// The attach type of a parsed program (from its section name).
    pub fn of_program(def: &uxdp_object::ProgramDef) -> AttachType {
        match &def.kind {
            uxdp_object::ProgramKind::Xdp { attach, .. } => AttachType::from(*attach),
            _ => AttachType::Default,
        }
    }
}

impl From<uxdp_object::XdpAttach> for AttachType {
    fn from(a: uxdp_object::XdpAttach) -> AttachType {
        match a {
            uxdp_object::XdpAttach::Device => AttachType::Default,
            uxdp_object::XdpAttach::Devmap => AttachType::Devmap,
            uxdp_object::XdpAttach::Cpumap => AttachType::Cpumap,
        }
    }
}

/// A kfunc call site: the `call` (`src_reg = 2`) at instruction `pc`
/// calls the kernel function `name` (what [`uxdp_object`] records for
/// every relocated kfunc call; `weak` and `btf_id` are not used here).
pub use uxdp_object::KfuncCall;

/// A program to verify.
///
/// Build it with [`VerifyInput::new`] (strict mode, no kfunc calls,
/// default attach type) and the setters, or [`VerifyInput::for_program`]
/// for a parsed program:
///
/// ```
/// use uxdp_verifier::{verify, AttachType, Mode, ProgType, VerifyInput};
/// let insns = uxdp_asm::assemble("ldxw %r0, [%r1+20]\nexit").unwrap(); // egress_ifindex
/// let strict = VerifyInput::new(&insns, ProgType::Xdp, &[]);
/// assert!(verify(&strict).is_err());
/// assert!(verify(&strict.attach(AttachType::Devmap)).is_ok());
/// assert!(verify(&strict.mode(Mode::Permissive)).is_err()); // a context rule, not memory safety
/// // For a parsed object: VerifyInput::for_program(def, ProgType::Xdp, &maps).
/// ```
#[derive(Clone, Copy, Debug)]
pub struct VerifyInput<'a> {
    /// Instruction slots (after relocation: `lddw` map references by index).
    pub insns: &'a [Insn],
    /// Program type.
    pub prog_type: ProgType,
    /// Maps the program refers to, by index.
    pub maps: &'a [MapInfo],
    /// Strictness.
    pub mode: Mode,
    /// The kfunc called at each kfunc call instruction (by `pc`); a kfunc
    /// call whose `pc` is not listed is rejected.
    pub kfuncs: &'a [KfuncCall],
    /// The program's expected attach type (XDP context access rules).
    pub attach: AttachType,
}

impl<'a> VerifyInput<'a> {
    /// A strict-mode input without kfunc calls, attach type
    /// [`AttachType::Default`].
    pub fn new(insns: &'a [Insn], prog_type: ProgType, maps: &'a [MapInfo]) -> VerifyInput<'a> {
        VerifyInput { insns, prog_type, maps, mode: Mode::Strict, kfuncs: &[], attach: AttachType::Default }
    }

    /// A parsed program: its instructions, kfunc call sites and attach type.
    pub fn for_program(def: &'a uxdp_object::ProgramDef, prog_type: ProgType, maps: &'a [MapInfo]) -> VerifyInput<'a> {
        VerifyInput::new(&def.insns, prog_type, maps).kfuncs(&def.kfuncs).attach(AttachType::of_program(def))
    }

    /// Sets the strictness.
    pub fn mode(mut self, mode: Mode) -> VerifyInput<'a> {
        self.mode = mode;
        self
    }

    /// Sets the kfunc call sites.
    pub fn kfuncs(mut self, kfuncs: &'a [KfuncCall]) -> VerifyInput<'a> {
        self.kfuncs = kfuncs;
        self
    }

    /// Sets the expected attach type.
    pub fn attach(mut self, attach: AttachType) -> VerifyInput<'a> {
        self.attach = attach;
        self
    }
}

/// What the verifier proved about an accepted program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Per instruction slot: bitmask (bit n = rn) of the registers that hold
    /// the unmodified context pointer before the instruction on every path
    /// reaching it, in the frame executing the instruction (0 for unvisited
    /// slots and the second half of `lddw`). Context loads are checked
    /// statically, so every load or store whose base register is in this
    /// mask is a context access with a constant offset.
    pub ctx_reg: Vec<u16>,
    /// Per instruction slot: true if it is a memory load, store or atomic
    /// operation whose access was proven in bounds on every path (false
    /// for other instructions, legacy packet loads and unproven accesses).
    pub proven: Vec<bool>,
    /// Instructions processed by the abstract interpreter (the kernel's
    /// `processed N insns`).
    pub insns_processed: u64,
    /// Wall-clock verification time.
    pub elapsed: Duration,
}

/// The rule a rejected program breaks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Rule {
    /// A slot does not decode (unknown opcode, bad register, reserved field).
    InvalidInstruction,
    /// A jump or call leaves the program or its subprogram.
    JumpOutOfRange,
    /// A jump lands on the second half of `lddw`.
    JumpIntoLddw,
    /// An instruction no path reaches.
    Unreachable,
    /// A subprogram's last instruction is not `exit` or `ja`.
    FallsOffEnd,
    /// More than 8 nested call frames.
    CallDepth,
    /// Combined stack of a call chain above 512 bytes.
    StackDepth,
    /// r10 written.
    FramePointerWrite,
    /// A register read before it is written.
    UninitRegister,
    /// A helper id unknown or not available to the program type.
    UnknownHelper,
    /// A kfunc unknown to uxdp, not available to the program type, or
    /// needing a load option uxdp does not model (device binding).
    UnknownKfunc,
    /// A feature the uxdp verifier does not model (some helpers, map-in-map inner lookups, ...).
    Unsupported,
    /// `lddw` map reference to a map that does not exist or cannot be used that way.
    InvalidMap,
    /// Memory access through something that is not a valid pointer for it.
    InvalidMemAccess,
    /// Access through a pointer that may be NULL.
    NullDeref,
    /// Packet access not proven within `data_end`.
    PacketBounds,
    /// Map value access out of `value_size`.
    MapValueBounds,
    /// Stack access outside the 512-byte frame, or misaligned.
    StackBounds,
    /// Access outside helper-returned memory (ring buffer records, map keys, sockets).
    MemBounds,
    /// Negative or unbounded variable offset.
    UnboundedAccess,
    /// Context field not accessible with this size / direction.
    CtxAccess,
    /// Context pointer modified before a dereference.
    CtxModified,
    /// Write into read-only memory (read-only map values).
    ReadOnly,
    /// Forbidden pointer arithmetic.
    PointerArithmetic,
    /// The same instruction dereferences different pointer types on different paths.
    PointerTypeMismatch,
    /// Helper or kfunc argument of the wrong type (including dynptr
    /// arguments that do not point to a suitable stack dynptr).
    HelperArgType,
    /// Helper or kfunc memory argument size invalid, unbounded, or not the
    /// known constant the kfunc needs.
    HelperArgSize,
    /// Map type not accepted by a helper.
    MapIncompatible,
    /// A reference (socket, ring-buffer record, conntrack entry) not released before exit, or an invalid release.
    ReferenceLeak,
    /// Return value outside the allowed range, or a stack pointer returned to the caller.
    ReturnValue,
    /// `div`/`mod` by the constant 0, or a shift by at least the operand width.
    InvalidAluOperand,
    /// Legacy packet loads (`ld_abs`/`ld_ind`) where they are not allowed.
    LdAbs,
    /// An atomic operation on memory that does not allow it.
    AtomicNotAllowed,
    /// The same state seen again on the same path.
    InfiniteLoop,
    /// More than 1,000,000 processed instructions or too many pending branches.
    TooComplex,
}

impl Rule {
    /// Short, stable name (`packet_bounds`, `uninit_register`, ...).
    pub fn name(self) -> &'static str {
        use Rule::*;
        match self {
            InvalidInstruction => "invalid_instruction",
            JumpOutOfRange => "jump_out_of_range",
            JumpIntoLddw => "jump_into_lddw",
            Unreachable => "unreachable",
            FallsOffEnd => "falls_off_end",
            CallDepth => "call_depth",
            StackDepth => "stack_depth",
            FramePointerWrite => "frame_pointer_write",
            UninitRegister => "uninit_register",
            UnknownHelper => "unknown_helper",
            UnknownKfunc => "unknown_kfunc",
            Unsupported => "unsupported",
            InvalidMap => "invalid_map",
            InvalidMemAccess => "invalid_mem_access",
            NullDeref => "null_deref",
            PacketBounds => "packet_bounds",
            MapValueBounds => "map_value_bounds",
            StackBounds => "stack_bounds",
            MemBounds => "mem_bounds",
            UnboundedAccess => "unbounded_access",
            CtxAccess => "ctx_access",
            CtxModified => "ctx_modified",
            ReadOnly => "read_only",
            PointerArithmetic => "pointer_arithmetic",
            PointerTypeMismatch => "pointer_type_mismatch",
            HelperArgType => "helper_arg_type",
            HelperArgSize => "helper_arg_size",
            MapIncompatible => "map_incompatible",
            ReferenceLeak => "reference_leak",
            ReturnValue => "return_value",
            InvalidAluOperand => "invalid_alu_operand",
            LdAbs => "ld_abs",
            AtomicNotAllowed => "atomic_not_allowed",
            InfiniteLoop => "infinite_loop",
            TooComplex => "too_complex",
        }
    }

    /// Memory-safety rules that [`Mode::Permissive`] leaves to runtime checks.
    pub fn is_memory_safety(self) -> bool {
        use Rule::*;
        matches!(
            self,
            NullDeref | PacketBounds | MapValueBounds | StackBounds | MemBounds | UnboundedAccess | InvalidMemAccess
        )
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a program was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Rejection {
    /// Instruction index (slot).
    pub pc: usize,
    /// The instruction, disassembled.
    pub insn: String,
    /// The rule broken.
    pub rule: Rule,
    /// What is wrong, in words.
    pub message: String,
    /// The register states involved.
    pub state: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {} [{}]\n  {}", self.pc, self.insn, self.message, self.rule, self.state)
    }
}

/// Verifies a program. See the crate documentation.
pub fn verify(input: &VerifyInput) -> Result<Facts, Rejection> {
    let start = std::time::Instant::now();
    let st = structure::analyse(input.insns)?;
    let mut facts = check::run(input, &st)?;
    facts.elapsed = start.elapsed();
    Ok(facts)
}

/// Disassembles slot `pc` (for messages).
pub(crate) fn disasm(insns: &[Insn], pc: usize) -> String {
    match insns.get(pc..) {
        Some(s) if !s.is_empty() => match uxdp_isa::Instruction::decode(s) {
            Ok(i) => i.to_string(),
            Err(_) => format!("{:?}", s[0]),
        },
        _ => String::new(),
    }
}
