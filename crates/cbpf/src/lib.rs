//! # uxdp-cbpf: classic BPF on uxdp's eBPF engine
//!
//! Classic BPF is the filter language of tcpdump, libpcap and Linux socket
//! filters (`SO_ATTACH_FILTER`). This crate runs it the way the kernel
//! does since 3.15: check the program ([`check()`], the kernel's
//! `bpf_check_classic`), convert it to eBPF ([`convert()`], after
//! `bpf_convert_filter`) and run the result on uxdp's interpreter
//! ([`Filter`]).
//!
//! * [`SockFilter`] is `struct sock_filter`; programs are read from raw
//!   bytes ([`parse_bytes`]), `tcpdump -ddd` ([`parse_ddd`]) or
//!   `tcpdump -dd` ([`parse_dd`]) output, and disassembled like
//!   `tcpdump -d` ([`disassemble`]).
//! * [`Filter::run`] returns the classic return value (bytes to keep, 0 =
//!   no match) for an Ethernet frame; [`Filter::run_packet`] takes a
//!   [`Packet`] with explicit socket-buffer metadata (length, protocol,
//!   VLAN tag, device, ...), which the converted code reads through a
//!   [`SkbContext`].
//! * [`classic::Interpreter`] interprets classic BPF directly with the
//!   same semantics: an oracle for the conversion and a benchmark baseline.
//! * With the `pcap` feature (default), [`libpcap::compile`] turns a
//!   tcpdump expression into a program with libpcap, and
//!   [`libpcap::OfflineFilter`] runs libpcap's own interpreter.
//! * [`capture::read_capture`] reads pcap/pcapng files.
//! * [`to_xdp`] turns a classic filter into an XDP program (direct packet
//!   access with explicit bounds checks, match → a chosen action) that the
//!   kernel's verifier accepts and [`XdpFilter`] runs on uxdp's
//!   interpreter; [`to_socket_filter`] makes an eBPF socket filter for the
//!   kernel (`BPF_PROG_TYPE_SOCKET_FILTER`).
//!
//! ```
//! use uxdp_cbpf::{parse_ddd, Filter};
//! use uxdp_vm::Stack;
//! // tcpdump -ddd ip
//! let prog = parse_ddd("4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n")?;
//! let filter = Filter::new(&prog)?;
//! let mut frame = [0u8; 60];
//! frame[12] = 0x08; // EtherType IPv4
//! assert_eq!(filter.run(&mut Stack::new(), &frame)?, 262144);
//! # Ok::<(), uxdp_cbpf::CbpfError>(())
//! ```

#![warn(missing_docs)]

pub mod capture;
pub mod check;
pub mod classic;
pub mod context;
pub mod convert;
pub mod dissect;
pub mod insn;
#[cfg(feature = "pcap")]
pub mod libpcap;
mod lower;
pub mod runtime;
mod semantics;
pub mod xdp;

pub use check::{check, Rule};
pub use context::{Device, LinkType, NetDevice, Packet, SkbContext, Vlan};
pub use convert::convert;
pub use insn::{disassemble, parse_bytes, parse_dd, parse_ddd, parse_text, to_bytes, to_dd, to_ddd, SockFilter};
#[cfg(feature = "pcap")]
pub use libpcap::compile;
pub use runtime::Filter;
pub use xdp::{jit_xdp, to_socket_filter, to_xdp, XdpFilter, XdpPacket};

/// Everything that can go wrong, each naming what is wrong: the line of
/// a text program, the instruction index and the rule it breaks, the
/// ancillary load by name.
#[derive(Debug, thiserror::Error)]
pub enum CbpfError {
    /// A text program does not parse.
    #[error("line {line}: {msg}")]
    Parse {
        /// 1-based line (or comma-separated record) number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A binary program's length is not a multiple of 8 bytes.
    #[error("raw classic BPF program length {len} is not a multiple of 8 bytes")]
    RawLength {
        /// Length in bytes.
        len: usize,
    },
    /// The program has no instructions.
    #[error("program is empty (a classic BPF program has 1 to 4096 instructions)")]
    Empty,
    /// The program is longer than `BPF_MAXINSNS`.
    #[error("program has {len} instructions, more than BPF_MAXINSNS (4096)")]
    TooLong {
        /// Number of instructions.
        len: usize,
    },
    /// An instruction breaks one of the kernel's checker rules.
    #[error("instruction {pc}: {rule}")]
    Check {
        /// Instruction index.
        pc: usize,
        /// The rule.
        rule: Rule,
    },
    /// An ancillary load uxdp cannot provide.
    #[error("instruction {pc}: ancillary load {name} is not supported outside a socket")]
    UnsupportedAncillary {
        /// Instruction index.
        pc: usize,
        /// `SKF_AD_*` name.
        name: &'static str,
    },
    /// The kernel's converter would refuse the program: a jump's offset in
    /// the kernel's converted code exceeds the 16-bit eBPF offset.
    #[error("instruction {pc}: the jump to instruction {target} spans {offset} instructions once converted by the kernel, more than eBPF's 32767 (the kernel refuses the program)")]
    KernelJumpTooFar {
        /// Classic instruction index of the jump.
        pc: usize,
        /// Classic target index.
        target: usize,
        /// The kernel's converted offset.
        offset: i64,
    },
    /// A converted jump does not fit (never expected: uxdp's expansions are
    /// no longer than the kernel's, which were checked first).
    #[error("eBPF instruction {pc}: converted jump to classic instruction {target} spans {offset} instructions, more than 32767")]
    JumpTooFar {
        /// eBPF instruction index.
        pc: usize,
        /// Classic target index.
        target: usize,
        /// The offset.
        offset: i64,
    },
    /// `SKF_AD_PAY_OFFSET` met a protocol whose dissection is not implemented
    /// (reference interpreter; the converted code reports it as a helper
    /// fault).
    #[error("instruction {pc}: SKF_AD_PAY_OFFSET: flow dissection of {what} is not implemented")]
    PayOffset {
        /// Instruction index.
        pc: usize,
        /// The protocol.
        what: String,
    },
    /// The converted program failed to load (a bug if it happens).
    #[error("loading the converted program: {0}")]
    Load(#[from] uxdp_vm::LoadError),
    /// The converted program faulted.
    #[error("running the converted program: {0}")]
    Vm(#[from] uxdp_vm::VmError),
    /// libpcap refused an expression or program.
    #[error("libpcap: {0}")]
    Pcap(String),
    /// A load has no meaning in the program type converted to (XDP or the
    /// kernel's eBPF socket filter).
    #[error("instruction {pc}: {what} cannot be converted to a {target} program: {why}")]
    NotInTarget {
        /// Instruction index.
        pc: usize,
        /// The load, by name (`ancillary load SKF_AD_PROTOCOL`, ...).
        what: String,
        /// The program type.
        target: &'static str,
        /// Why.
        why: &'static str,
    },
    /// Setting up an XDP run failed.
    #[error("XDP: {0}")]
    Xdp(String),
    /// A capture file could not be read.
    #[error("{what}: {msg}")]
    Capture {
        /// File name or "capture".
        what: String,
        /// What is wrong.
        msg: String,
    },
}
