//! `uxdp replay`: every packet of a capture through one program instance.

use super::xdp::{read_capture, LoadArgs, ObjectFile, ProgArg};
use anyhow::{bail, Result};
use clap::Args as ClapArgs;
use std::io::Write;
use std::path::PathBuf;
use uxdp_xdp::{per_packet_line, Runner};

/// `uxdp replay`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Programs: object files, optionally `:PROG`; without `:PROG` every XDP
    /// program of the object is replayed, each on fresh maps.
    #[arg(value_name = "OBJ[:PROG]", required = true)]
    programs: Vec<ProgArg>,
    /// The capture (pcap or pcapng).
    #[arg(long, value_name = "FILE")]
    pcap: PathBuf,
    /// Before the summary, one line per packet:
    /// `<idx> <len_in> <retval> <len_out> <fnv1a64 of output>` or `<idx> <len_in> ERR <-errno>`.
    #[arg(long)]
    per_packet: bool,
    /// Print the programs' `bpf_trace_printk` output (to stderr).
    #[arg(long)]
    trace: bool,
    /// With several programs: run them in the order given instead of by
    /// priority (`XDP_RUN_CONFIG`).
    #[arg(long)]
    given_order: bool,
    #[command(flatten)]
    load: LoadArgs,
}

/// Runs `uxdp replay`.
pub fn run(a: Args) -> Result<()> {
    let packets = read_capture(&a.pcap)?;
    if a.programs.len() > 1 || a.programs[0].filter.is_some() {
        return replay_hook(&a, &packets);
    }
    let arg = &a.programs[0];
    let file = ObjectFile::open(&arg.object)?;
    let mut failed = 0;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for name in file.select(arg.program.as_deref())? {
        let obj = file.load(&a.load)?;
        let prog = obj.program(Some(&name))?;
        let mut runner = Runner::new(&obj)?;
        let mut io_err = Ok(());
        let summary = runner.replay(prog, packets.iter().map(Vec::as_slice), |i, len, r| {
            if a.per_packet && io_err.is_ok() {
                io_err = writeln!(out, "{}", per_packet_line(i, len, r));
            }
        });
        io_err?;
        let summary = match summary {
            Ok(s) => s,
            Err(e) => {
                writeln!(out, "PROG {name} LOAD-ERROR {e}")?;
                failed += 1;
                continue;
            }
        };
        writeln!(out, "PROG {name} {summary}")?;
        if a.trace {
            for line in runner.env().trace.drain(..) {
                eprintln!("{line}");
            }
        }
    }
    out.flush()?;
    if failed > 0 {
        bail!("{failed} program(s) could not be loaded");
    }
    Ok(())
}

/// Several programs (or classic filters) as one chain on one hook: per-packet
/// lines carry the hook's verdict and output; then the hook's summary line
/// and the status table (per-program counters).
fn replay_hook(a: &Args, packets: &[Vec<u8>]) -> Result<()> {
    let built = super::hook::build(&a.programs, &a.load, a.given_order)?;
    let first = built.objects.first();
    let mut runner = match first {
        Some(o) => Runner::new(o)?,
        None => Runner::detached()?,
    };
    let mut reader = built.hook.reader();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut summary = uxdp_xdp::ReplaySummary::default();
    for (i, p) in packets.iter().enumerate() {
        let r = uxdp_xdp::TestInput::new(p, None).and_then(|input| reader.run(&mut runner, &input)).map(|c| c.output);
        if a.per_packet {
            writeln!(out, "{}", per_packet_line(i, p.len(), &r))?;
        }
        summary.add(&r);
    }
    writeln!(out, "HOOK {summary}")?;
    write!(out, "{}", built.hook.status())?;
    if a.trace {
        for line in runner.env().trace.drain(..) {
            eprintln!("{line}");
        }
    }
    out.flush()?;
    Ok(())
}
