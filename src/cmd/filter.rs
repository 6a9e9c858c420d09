//! `uxdp filter`: tcpdump filters (libpcap expressions or `tcpdump -ddd`
//! programs) converted to eBPF and run over a capture on uxdp's
//! interpreter.

use anyhow::{bail, Context, Result};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use uxdp_cbpf::capture::{read_capture, CapturedPacket};
use uxdp_cbpf::libpcap::{compile, OfflineFilter};
use uxdp_cbpf::{parse_ddd, Filter, LinkType, Packet, SockFilter, XdpFilter, XdpPacket};
use uxdp_vm::Stack;

/// The snapshot length the expression is compiled with (tcpdump's
/// default): the accepting `ret` returns it.
const SNAPLEN: u32 = 262144;

/// Which engine runs the filter.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The classic program converted to eBPF as the kernel does
    /// (socket-filter semantics), on uxdp's JIT (or interpreter).
    Uxdp,
    /// The XDP form of the program (direct packet access, bounds checks)
    /// on uxdp's JIT (or interpreter): `len` is the captured length and
    /// packets longer than 65535 bytes never match.
    Xdp,
    /// libpcap's own interpreter (`pcap_offline_filter`), for reference.
    Libpcap,
}

/// Arguments of `uxdp filter`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Output: without --count or --write, one line per matching packet: \
`<n> <timestamp> <length>` (n = 1-based packet number in the capture, timestamp = seconds.nanoseconds \
since the epoch, length = original length on the wire). --count prints only the number of matching \
packets, as the last line. --write writes the matching packets to a pcap file (the capture's link type, \
timestamps and lengths) and, without --count, prints nothing.\n\n\
Examples:\n  uxdp filter 'tcp port 22' --pcap in.pcap --count\n  \
tcpdump -ddd 'port 53' | uxdp filter --ddd - --pcap in.pcapng --write dns.pcap")]
pub struct Args {
    /// tcpdump filter expression, compiled with libpcap for the capture's
    /// link type (omit with --ddd).
    #[arg(required_unless_present = "ddd", conflicts_with = "ddd")]
    expr: Option<String>,
    /// Capture to filter (pcap or pcapng).
    #[arg(long)]
    pcap: PathBuf,
    /// Write the matching packets to this pcap file.
    #[arg(long, value_name = "OUT")]
    write: Option<PathBuf>,
    /// Print the number of matching packets (as the last line of output).
    #[arg(long)]
    count: bool,
    /// Link type to compile for and to read the packets as, instead of the
    /// capture's: a name (EN10MB/ETHERNET, RAW, NULL, LOOP, LINUX_SLL,
    /// LINUX_SLL2, IPV4, IPV6) or a LINKTYPE_ number.
    #[arg(long, value_name = "TYPE", value_parser = parse_linktype)]
    linktype: Option<LinkType>,
    /// Read a classic program in `tcpdump -ddd` form (count line, then
    /// `code jt jf k` lines) from FILE (`-` for standard input) instead of
    /// compiling an expression.
    #[arg(long, value_name = "FILE")]
    ddd: Option<PathBuf>,
    /// Run uxdp's engines on the interpreter instead of the x86-64 JIT.
    #[arg(long)]
    interpreter: bool,
    /// Engine that runs the filter.
    #[arg(long, value_enum, default_value = "uxdp")]
    engine: Engine,
}

fn parse_linktype(s: &str) -> Result<LinkType, String> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(LinkType(n));
    }
    Ok(match s.to_ascii_uppercase().as_str() {
        "EN10MB" | "ETHERNET" => LinkType::ETHERNET,
        "RAW" => LinkType::RAW,
        "NULL" => LinkType::NULL,
        "LOOP" => LinkType::LOOP,
        "LINUX_SLL" | "SLL" => LinkType::LINUX_SLL,
        "LINUX_SLL2" | "SLL2" => LinkType::LINUX_SLL2,
        "IPV4" => LinkType::IPV4,
        "IPV6" => LinkType::IPV6,
        _ => {
            return Err(format!(
                "unknown link type {s:?} (expected EN10MB/ETHERNET, RAW, NULL, LOOP, LINUX_SLL, LINUX_SLL2, IPV4, IPV6 or a number)"
            ))
        }
    })
}

/// One loaded filter.
enum Runner {
    Uxdp(Filter),
    Xdp(XdpFilter),
    Libpcap(OfflineFilter),
}

impl Runner {
    fn new(prog: &[SockFilter], engine: Engine, interpreter: bool) -> Result<Runner> {
        let jit = !interpreter && uxdp_jit::available();
        Ok(match engine {
            Engine::Uxdp => {
                let f = Filter::new(prog)?;
                if jit {
                    uxdp_jit::attach(f.program())?;
                }
                Runner::Uxdp(f)
            }
            Engine::Xdp => {
                let f = XdpFilter::new(prog, 1, 0)?;
                if jit {
                    f.jit()?;
                }
                Runner::Xdp(f)
            }
            Engine::Libpcap => Runner::Libpcap(OfflineFilter::new(prog)?),
        })
    }

    fn matches(
        &self,
        stack: &mut Stack,
        xdp_buf: &mut Option<XdpPacket>,
        lt: LinkType,
        p: &CapturedPacket,
    ) -> Result<bool> {
        Ok(match self {
            Runner::Uxdp(f) => f.run_packet(stack, &Packet::offline(lt, &p.data, p.wire_len))? != 0,
            Runner::Xdp(f) => {
                if p.data.len() > XdpPacket::MAX_LEN {
                    return Ok(false);
                }
                let buf = match xdp_buf {
                    Some(b) => b,
                    None => xdp_buf.insert(XdpPacket::new()?),
                };
                buf.set(&p.data)?;
                f.run(stack, buf)? != 0
            }
            Runner::Libpcap(f) => f.run(&p.data, p.wire_len) != 0,
        })
    }
}

fn read_ddd(path: &PathBuf) -> Result<Vec<SockFilter>> {
    let (name, text) = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading the -ddd program from standard input")?;
        ("standard input".to_string(), s)
    } else {
        let s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        (path.display().to_string(), s)
    };
    parse_ddd(&text).with_context(|| format!("{name} is not a valid tcpdump -ddd program"))
}

/// Runs `uxdp filter`.
pub fn run(a: Args) -> Result<()> {
    let ddd = a.ddd.as_ref().map(read_ddd).transpose()?;
    let packets = read_capture(&a.pcap)?;
    let lt_of = |p: &CapturedPacket| a.linktype.unwrap_or(p.linktype);
    // One program per link type (a pcapng file may mix them); an
    // expression is compiled even for an empty capture, to report errors.
    let mut runners: BTreeMap<LinkType, Runner> = BTreeMap::new();
    let load = |lt: LinkType| -> Result<Runner> {
        let prog = match (&ddd, &a.expr) {
            (Some(p), _) => p.clone(),
            (None, Some(e)) => compile(e, lt, SNAPLEN)?,
            (None, None) => bail!("give a filter expression or --ddd FILE"),
        };
        Runner::new(&prog, a.engine, a.interpreter)
    };
    if packets.is_empty() {
        load(a.linktype.unwrap_or(LinkType::ETHERNET))?;
    }
    let mut stack = Stack::new();
    let mut xdp_buf = None;
    let mut matching: Vec<usize> = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let lt = lt_of(p);
        let r = match runners.entry(lt) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(load(lt)?),
        };
        if r.matches(&mut stack, &mut xdp_buf, lt, p).with_context(|| format!("packet {}", i + 1))? {
            matching.push(i);
        }
    }
    if let Some(out) = &a.write {
        write_pcap(out, &packets, &matching, a.linktype)?;
    }
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    if a.count {
        writeln!(w, "{}", matching.len())?;
    } else if a.write.is_none() {
        for &i in &matching {
            let p = &packets[i];
            writeln!(w, "{} {}.{:09} {}", i + 1, p.timestamp.as_secs(), p.timestamp.subsec_nanos(), p.wire_len)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Writes `packets[matching]` to a pcap file with their link type,
/// timestamps (nanosecond resolution when any has sub-microsecond digits)
/// and original lengths.
fn write_pcap(
    path: &PathBuf,
    packets: &[CapturedPacket],
    matching: &[usize],
    linktype: Option<LinkType>,
) -> Result<()> {
    use pcap_file::pcap::{PcapHeader, PcapWriter, RawPcapPacket};
    use pcap_file::{DataLink, TsResolution};
    let types: std::collections::BTreeSet<LinkType> =
        matching.iter().map(|&i| linktype.unwrap_or(packets[i].linktype)).collect();
    if types.len() > 1 {
        let names: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        bail!(
            "cannot write {}: a pcap file has one link type, the matching packets have {}",
            path.display(),
            names.join(", ")
        );
    }
    let lt =
        types.into_iter().next().or(linktype).or(packets.first().map(|p| p.linktype)).unwrap_or(LinkType::ETHERNET);
    let nanos = matching.iter().any(|&i| packets[i].timestamp.subsec_nanos() % 1000 != 0);
    let snaplen = matching.iter().map(|&i| packets[i].data.len() as u32).max().unwrap_or(0).max(SNAPLEN);
    let header = PcapHeader {
        snaplen,
        datalink: DataLink::from(lt.0),
        ts_resolution: if nanos { TsResolution::NanoSecond } else { TsResolution::MicroSecond },
        endianness: pcap_file::Endianness::native(),
        ..PcapHeader::default()
    };
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = PcapWriter::with_header(BufWriter::new(file), header)
        .with_context(|| format!("writing the pcap header of {}", path.display()))?;
    for &i in matching {
        let p = &packets[i];
        let ts_sec = u32::try_from(p.timestamp.as_secs())
            .with_context(|| format!("packet {}: timestamp does not fit a pcap file", i + 1))?;
        let frac = p.timestamp.subsec_nanos();
        let raw = RawPcapPacket {
            ts_sec,
            ts_frac: if nanos { frac } else { frac / 1000 },
            incl_len: p.data.len() as u32,
            orig_len: p.wire_len,
            data: Cow::Borrowed(&p.data),
        };
        w.write_raw_packet(&raw).with_context(|| format!("writing packet {} to {}", i + 1, path.display()))?;
    }
    w.into_writer().flush().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
