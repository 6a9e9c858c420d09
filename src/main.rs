//! `uxdp`: the command-line interface of the uxdp userspace eBPF/XDP runtime.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cmd;

/// uxdp runs clang-compiled eBPF/XDP programs in userspace, with the
/// kernel's semantics.
#[derive(Parser, Debug)]
#[command(name = "uxdp", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the shipped sample: tcpdump-style filters in eBPF over the shipped packets.
    Demo(cmd::demo::Args),
    /// Assemble eBPF text (conformance-suite syntax) into bytecode.
    Asm(cmd::asm::AsmArgs),
    /// Disassemble eBPF bytecode (raw file, hex, or an ELF section).
    Disasm(cmd::asm::DisasmArgs),
    /// Run raw eBPF bytecode or assembly on a memory buffer and print r0.
    Exec(cmd::exec::Args),
    /// Plugin for the upstream bpf_conformance runner: program as hex on
    /// stdin, memory as a hex argument, r0 printed as hex.
    ConformancePlugin(cmd::plugin::Args),
    /// Programs of clang-compiled objects: `uxdp prog run` (like `bpftool prog run`).
    #[command(subcommand)]
    Prog(cmd::prog::Cmd),
    /// Replay a capture through XDP programs; per-program summaries comparable with the kernel's.
    Replay(cmd::replay::Args),
    /// Verify the programs of an object like the kernel's verifier:
    /// `PROG <name> OK` or `PROG <name> REJECTED <insn>: <reason>`.
    Verify(cmd::verify::Args),
    /// Maps of clang-compiled objects: `uxdp map dump`.
    #[command(subcommand)]
    Map(cmd::map::Cmd),
    /// Run a tcpdump filter (libpcap expression or `tcpdump -ddd` program), converted to eBPF, over a capture.
    Filter(cmd::filter::Args),
}

fn main() {
    // Like other Unix filters, end quietly when the reader of stdout goes away.
    // SAFETY: restoring the default disposition of a signal before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Asm(a) => cmd::asm::assemble(a),
        Command::Disasm(a) => cmd::asm::disassemble(a),
        Command::Exec(a) => cmd::exec::run(a),
        Command::ConformancePlugin(a) => cmd::plugin::run(a),
        Command::Prog(c) => cmd::prog::run(c),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Map(c) => cmd::map::run(c),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Filter(a) => cmd::filter::run(a),
    };
    if let Err(e) = result {
        eprintln!("uxdp: {e:#}");
        std::process::exit(1);
    }
}
