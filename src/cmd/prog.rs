//! `uxdp prog run`: one test run, like `bpftool prog run` (`BPF_PROG_TEST_RUN`).

use super::map::{print_maps, DumpFormat};
use super::xdp::{runnable, LoadArgs, ObjectFile, ProgArg};
use anyhow::{bail, Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use uxdp_xdp::{Runner, XdpMd};

/// `uxdp prog ...`.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Test-run a program on one packet, printing `Return value: R, duration (average): Nns` as bpftool does.
    Run(RunArgs),
}

/// `uxdp prog run`.
#[derive(ClapArgs, Debug)]
pub struct RunArgs {
    /// The program: an object file, optionally `:PROG` (function or section name).
    #[arg(value_name = "OBJ[:PROG]")]
    programs: Vec<ProgArg>,
    /// Input packet (raw bytes, starting with the Ethernet header).
    #[arg(long, value_name = "FILE")]
    data_in: PathBuf,
    /// Where to write the output packet (`-`: hex dump to stdout, as bpftool).
    #[arg(long, value_name = "FILE")]
    data_out: Option<PathBuf>,
    /// Input `struct xdp_md` (24 bytes; data/data_end/data_meta as offsets), as `bpftool ... ctx_in`.
    #[arg(long, value_name = "FILE")]
    ctx_in: Option<PathBuf>,
    /// Where to write the output `struct xdp_md`.
    #[arg(long, value_name = "FILE")]
    ctx_out: Option<PathBuf>,
    /// Number of runs; the duration printed is the average.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Print the program's `bpf_trace_printk` output (to stderr).
    #[arg(long)]
    trace: bool,
    /// Print every map of the object after the run(s).
    #[arg(long)]
    dump_maps: bool,
    /// With --dump-maps: JSON output.
    #[arg(long)]
    json: bool,
    /// With several programs: run them in the order given instead of by
    /// priority (`XDP_RUN_CONFIG`).
    #[arg(long)]
    given_order: bool,
    /// With several programs: print the hook's status table (per-program counters).
    #[arg(long)]
    status: bool,
    #[command(flatten)]
    load: LoadArgs,
}

/// Runs `uxdp prog ...`.
pub fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Run(a) => prog_run(a),
    }
}

fn prog_run(a: RunArgs) -> Result<()> {
    if a.programs.is_empty() {
        bail!("give the program to run as OBJ[:PROG]");
    }
    if a.programs.len() > 1 || a.programs[0].filter.is_some() {
        return run_hook(&a);
    }
    let arg = &a.programs[0];
    let file = ObjectFile::open(&arg.object)?;
    let names = file.select(arg.program.as_deref())?;
    if names.len() > 1 {
        bail!("{} has several XDP programs ({}); choose one with OBJ:PROG", arg.object.display(), names.join(", "));
    }
    let obj = file.load(&a.load)?;
    let prog = runnable(&obj, &names[0])?;
    let packet = std::fs::read(&a.data_in).with_context(|| format!("reading {}", a.data_in.display()))?;
    let ctx_in = read_ctx(a.ctx_in.as_deref())?;
    if let Some(errno) = obj.program(Some(&names[0]))?.test_run_refusal() {
        bail!("{}: the kernel's test run refuses devmap/cpumap second-stage programs (errno {errno})", names[0]);
    }
    let mut runner = Runner::new(&obj)?;
    let result = runner.run_repeat(&prog, &packet, ctx_in.as_ref(), a.repeat);
    if a.trace {
        for line in &runner.env().trace {
            eprintln!("{line}");
        }
    }
    let (out, ns) = result.with_context(|| format!("running {}", names[0]))?;
    write_outputs(&a, &out)?;
    let avg = if a.repeat > 1 { " (average)" } else { "" };
    println!("Return value: {}, duration{avg}: {ns}ns", out.retval);
    if a.dump_maps {
        print_maps(&obj, None, if a.json { DumpFormat::Json } else { DumpFormat::Text })?;
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// Several programs as one chain on one hook, run like a single program.
fn run_hook(a: &RunArgs) -> Result<()> {
    let built = super::hook::build(&a.programs, &a.load, a.given_order)?;
    let packet = std::fs::read(&a.data_in).with_context(|| format!("reading {}", a.data_in.display()))?;
    let ctx_in = read_ctx(a.ctx_in.as_deref())?;
    let mut runner = match built.objects.first() {
        Some(o) => Runner::new(o)?,
        None => Runner::detached()?,
    };
    let input = uxdp_xdp::TestInput::new(&packet, ctx_in.as_ref())?;
    let mut reader = built.hook.reader();
    let repeat = a.repeat.max(1);
    runner.load(&input)?;
    let start = std::time::Instant::now();
    let mut retval = 0;
    for _ in 0..repeat {
        retval = reader.exec(&mut runner)?.retval;
    }
    let ns = start.elapsed().as_nanos() as u64 / repeat as u64;
    let out = runner.output(retval);
    write_outputs(a, &out)?;
    let avg = if a.repeat > 1 { " (average)" } else { "" };
    println!("Return value: {retval}, duration{avg}: {ns}ns");
    if a.status {
        print!("{}", built.hook.status());
    }
    if a.dump_maps {
        for o in &built.objects {
            print_maps(o, None, if a.json { DumpFormat::Json } else { DumpFormat::Text })?;
        }
    }
    Ok(())
}

fn read_ctx(path: Option<&std::path::Path>) -> Result<Option<XdpMd>> {
    let Some(p) = path else { return Ok(None) };
    let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(Some(XdpMd::from_bytes(&b).with_context(|| {
        format!("{}: a struct xdp_md is {} bytes, the file has {}", p.display(), XdpMd::SIZE, b.len())
    })?))
}

fn write_outputs(a: &RunArgs, out: &uxdp_xdp::RunOutput) -> Result<()> {
    if let Some(p) = &a.data_out {
        if p.as_os_str() == "-" {
            print!("{}", hexdump(&out.data));
        } else {
            std::fs::write(p, &out.data).with_context(|| format!("writing {}", p.display()))?;
        }
    }
    if let Some(p) = &a.ctx_out {
        std::fs::write(p, out.ctx.to_bytes()).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// bpftool's hex dump of `data_out -`: offset, eight 16-bit groups, ASCII.
fn hexdump(data: &[u8]) -> String {
    let mut s = String::new();
    for (i, line) in data.chunks(16).enumerate() {
        s += &format!("{:07x}\t", i * 16);
        for (j, pair) in line.chunks(2).enumerate() {
            if j > 0 {
                s.push(' ');
            }
            for b in pair {
                s += &format!("{b:02x}");
            }
        }
        s += " | ";
        for (j, &b) in line.iter().enumerate() {
            if j == 8 {
                s.push(' ');
            }
            s.push(if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' });
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn hexdump_matches_bpftool_layout() {
        let d: Vec<u8> = (0x40..0x53).collect();
        let h = super::hexdump(&d);
        assert_eq!(h, "0000000\t4041 4243 4445 4647 4849 4a4b 4c4d 4e4f | @ABCDEFG HIJKLMNO\n0000010\t5051 52 | PQR\n");
    }
}
