//! # uxdp-xdp: XDP programs outside the kernel
//!
//! Loads clang-compiled XDP objects ([`LoadedObject`]), runs their programs
//! on packets with the kernel's buffer geometry and helper semantics
//! ([`Runner`], `BPF_PROG_TEST_RUN`-compatible), and replays captures with
//! summaries in the same format as the kernel reference.

#![warn(missing_docs)]

pub mod buffer;
pub mod context;
pub mod dynptr;
pub mod env;
pub mod frame;
pub mod helpers;
pub mod loader;
pub mod netdev;
pub mod run;

pub use buffer::XdpBuff;
pub use context::XdpMd;
pub use env::ProgTable;
pub use env::{MapTable, Redirect, XdpEnv};
pub use loader::{LoadedObject, LoadedProgram, ObjectOptions, Verification};
pub use run::{per_packet_line, Fnv, ReplaySummary, RunError, RunOutput, Runner, TestInput, SUMMARY_DIGEST_SEED};

/// Errors of loading objects and setting up runs.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// Reading a file failed.
    #[error("{0}")]
    Io(String),
    /// The object could not be parsed.
    #[error("{0}")]
    Object(String),
    /// A map could not be created or initialised.
    #[error("{0}")]
    Map(String),
    /// The requested program does not exist or cannot run.
    #[error("{0}")]
    NoProgram(String),
    /// No low-memory frame could be mapped.
    #[error("cannot map a packet frame below 4 GiB: {0}")]
    FrameAlloc(String),
}
