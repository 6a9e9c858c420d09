//! `uxdp prog run`, `uxdp replay` and `uxdp map dump` as a user drives them,
//! with `bpftool prog run` on the same object and packet as the reference.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus").join(rel).display().to_string()
}

fn run(cmd: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn uxdp(args: &[&str]) -> (bool, String, String) {
    run(env!("CARGO_BIN_EXE_uxdp"), args)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("uxdp-xdp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// The first packet of a corpus capture, written to a file.
fn packet_file(pcap: &str, index: usize) -> (PathBuf, Vec<u8>) {
    let pkts = uxdp_cbpf::capture::read_capture(Path::new(&corpus(&format!("pcaps/{pcap}")))).unwrap();
    let p = tmp(&format!("{pcap}.{index}"));
    std::fs::write(&p, &pkts[index].data).unwrap();
    (p, pkts[index].data.clone())
}

const META: &str = "objects/linux-6.12/linux-samples__xdp2skb_meta_kern.o";

#[test]
fn prog_run_prints_what_bpftool_prints_and_writes_the_output_packet() {
    let (pkt, bytes) = packet_file("zeek__vlan-collisions.pcap", 0);
    let out = tmp("out");
    let (ok, stdout, err) = uxdp(&[
        "prog",
        "run",
        &format!("{}:_xdp_mark", corpus(META)),
        "--data-in",
        pkt.to_str().unwrap(),
        "--data-out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let line = stdout.lines().last().unwrap();
    assert!(line.starts_with("Return value: 2, duration: ") && line.ends_with("ns"), "{line}");
    // bpf_xdp_adjust_meta(-4) and a mark of 42 in the metadata: output = meta + packet
    let mut want = 42u32.to_le_bytes().to_vec();
    want.extend_from_slice(&bytes);
    assert_eq!(std::fs::read(&out).unwrap(), want);
    // Repetitions run on the buffer the previous one left, as in the kernel:
    // the metadata grows by 4 bytes per run until it would reach the
    // xdp_frame (216 bytes), then the program returns XDP_ABORTED.
    let (ok, stdout, _) = uxdp(&[
        "prog",
        "run",
        &corpus(META),
        "--data-in",
        pkt.to_str().unwrap(),
        "--repeat",
        "1000",
        "--data-out",
        out.to_str().unwrap(),
    ]);
    assert!(ok);
    assert!(stdout.starts_with("Return value: 0, duration (average): "), "{stdout}");
    assert_eq!(std::fs::read(&out).unwrap().len(), bytes.len() + 216);
}

#[test]
fn prog_run_agrees_with_bpftool_on_the_live_kernel() {
    if let Err(why) = uxdp_kernel::availability() {
        println!("skipped: {why}");
        return;
    }
    if run("bpftool", &["version"]).0.not() {
        println!("skipped: bpftool is not installed");
        return;
    }
    let obj = corpus("objects/xdp-tools-1.3.1/xdpfilt_dny_tcp.o");
    let pin = format!("/sys/fs/bpf/uxdp-cli-{}", std::process::id());
    let (ok, _, err) = run("bpftool", &["prog", "loadall", &obj, &pin]);
    if !ok {
        println!("skipped: bpftool prog loadall failed: {err}");
        return;
    }
    let prog = std::fs::read_dir(&pin).unwrap().next().unwrap().unwrap().file_name().to_string_lossy().into_owned();
    let mut compared = 0;
    for i in 0..20 {
        let (pkt, _) = packet_file("pcpp__many-protocols.pcap", i * 37);
        let (kout, uout) = (tmp(&format!("k{i}")), tmp(&format!("u{i}")));
        let (ok, k, err) = run(
            "bpftool",
            &[
                "prog",
                "run",
                "pinned",
                &format!("{pin}/{prog}"),
                "data_in",
                pkt.to_str().unwrap(),
                "data_out",
                kout.to_str().unwrap(),
            ],
        );
        assert!(ok, "bpftool: {err}");
        let (ok, u, err) = uxdp(&[
            "prog",
            "run",
            &format!("{obj}:{prog}"),
            "--data-in",
            pkt.to_str().unwrap(),
            "--data-out",
            uout.to_str().unwrap(),
        ]);
        assert!(ok, "uxdp: {err}");
        let retval = |s: &str| {
            s.lines().find(|l| l.starts_with("Return value:")).unwrap().split(',').next().unwrap().to_string()
        };
        assert_eq!(retval(&k), retval(&u), "packet {}", i * 37);
        assert_eq!(std::fs::read(&kout).unwrap(), std::fs::read(&uout).unwrap(), "packet {}", i * 37);
        compared += 1;
    }
    let _ = std::fs::remove_dir_all(&pin);
    println!("uxdp prog run = bpftool prog run on {compared} packets");
}

trait Not {
    fn not(self) -> bool;
}
impl Not for bool {
    fn not(self) -> bool {
        !self
    }
}

#[test]
fn replay_prints_the_kernel_summary_line_and_per_packet_lines() {
    let pcap = corpus("pcaps/zeek__vlan-collisions.pcap");
    let (ok, out, err) = uxdp(&["replay", &corpus(META), "--pcap", &pcap]);
    assert!(ok, "{err}");
    // the kernel's line from the corpus manifest
    assert_eq!(
        out.trim(),
        "PROG _xdp_mark pkts=42 errors=0 ABORTED=0 DROP=0 PASS=42 TX=0 REDIRECT=0 other=0 digest=6498ee345d51c87b"
    );
    let (ok, out, _) = uxdp(&["replay", &format!("{}:_xdp_mark", corpus(META)), "--pcap", &pcap, "--per-packet"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 43);
    let first: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(&first[..4], &["0", "78", "2", "82"], "{}", lines[0]);
    assert_eq!(first[4].len(), 16);
    // packets the kernel's test run refuses (shorter than an Ethernet header) are ERR -22
    let (ok, out, _) = uxdp(&[
        "replay",
        &corpus("objects/linux-6.12/linux-selftests__xdp_dummy.o"),
        "--pcap",
        &corpus("pcaps/tcpdump__heapoverflow-tcp_print.pcap"),
        "--per-packet",
    ]);
    assert!(ok);
    assert!(out.lines().last().unwrap().starts_with("PROG xdp_dummy_prog pkts="), "{out}");
}

#[test]
fn map_dump_shows_global_data_and_json() {
    let obj = corpus("objects/xdp-tools-1.3.1/xdpfilt_alw_all.o");
    let (ok, out, err) = uxdp(&["map", "dump", &obj, "--map", "xdp_stats_map"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("map xdp_stats_map PercpuArray key 4B value 16B max_entries 5: 5 entries"), "{out}");
    let (ok, out, _) = uxdp(&["map", "dump", &obj, "--json", "--map", "xdp_stats_map"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["entries"].as_array().unwrap().len(), 5);
    assert_eq!(v[0]["entries"][0]["key"][0], "0x00");
}

#[test]
fn bad_input_gets_clear_errors() {
    let (pkt, _) = packet_file("zeek__vlan-collisions.pcap", 0);
    let p = pkt.to_str().unwrap();
    let (ok, _, err) = uxdp(&["prog", "run", &format!("{}:nope", corpus(META)), "--data-in", p]);
    assert!(!ok);
    assert!(err.contains("no program 'nope'") && err.contains("_xdp_mark"), "{err}");
    let kfunc = corpus("objects/linux-6.12/linux-selftests__xdp_synproxy_kern.o");
    let (ok, _, err) = uxdp(&["prog", "run", &format!("{kfunc}:syncookie_xdp"), "--data-in", p]);
    assert!(!ok);
    assert!(err.contains("kfunc bpf_xdp_ct_lookup is not supported"), "{err}");
    let ctx = tmp("ctx");
    // data_end beyond the packet: the kernel answers EINVAL
    let mut c = [0u8; 24];
    c[4..8].copy_from_slice(&9999u32.to_le_bytes());
    std::fs::write(&ctx, c).unwrap();
    let (ok, _, err) = uxdp(&["prog", "run", &corpus(META), "--data-in", p, "--ctx-in", ctx.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("errno 22") && err.contains("ctx_in"), "{err}");
    let notelf = tmp("notelf");
    std::fs::write(&notelf, b"hello").unwrap();
    let (ok, _, err) =
        uxdp(&["replay", notelf.to_str().unwrap(), "--pcap", &corpus("pcaps/zeek__vlan-collisions.pcap")]);
    assert!(!ok);
    assert!(!err.contains("panicked"), "{err}");
    let (ok, _, err) =
        uxdp(&["prog", "run", &corpus("objects/linux-6.12/linux-samples__xdp_router_ipv4.linked.o"), "--data-in", p]);
    assert!(!ok);
    assert!(err.contains("max_entries 0") && err.contains("--max-entries"), "{err}");
}

#[test]
fn several_programs_run_as_one_chain_in_priority_order() {
    let alw = corpus("objects/xdp-tools-1.3.1/xdpfilt_alw_all.o");
    let dny = corpus("objects/xdp-tools-1.3.1/xdpfilt_dny_all.o");
    let guard = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/xdp_ssh_guard.o").display().to_string();
    let pcap = corpus("pcaps/tcpreplay__test.pcap");
    // xdpfilt_* carry XDP_RUN_CONFIG priority 10: they run before ssh_guard (50)
    // even when given last; the deny-all filter drops everything, so ssh_guard sees nothing.
    let (ok, out, err) = uxdp(&["replay", &guard, &dny, "--pcap", &pcap]);
    assert!(ok, "{err}");
    assert!(out.starts_with("HOOK pkts=179 errors=0 ABORTED=0 DROP=179 PASS=0"), "{out}");
    let row = |name: &str| out.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{out}")).to_string();
    assert!(row("xdpfilt_dny_all").trim_start().starts_with("0 "), "{out}");
    assert!(row("ssh_guard").split_whitespace().nth(6) == Some("0"), "ssh_guard ran: {out}");
    // a classic filter in the chain: drop UDP, then the allow-all filter passes the rest
    let (ok, out, err) = uxdp(&["replay", &alw, "drop-if:udp", "--pcap", &pcap, "--per-packet"]);
    assert!(ok, "{err}");
    let hook = out.lines().find(|l| l.starts_with("HOOK ")).unwrap();
    let per_packet = out.lines().take_while(|l| !l.starts_with("HOOK ")).count();
    assert_eq!(per_packet, 179);
    let udp = uxdp_cbpf::libpcap::compile("udp", uxdp_cbpf::LinkType::ETHERNET, 262_144).unwrap();
    let udp = uxdp_cbpf::libpcap::OfflineFilter::new(&udp).unwrap();
    let caps = uxdp_cbpf::capture::read_capture(Path::new(&pcap)).unwrap();
    let dropped = caps.iter().filter(|p| udp.run(&p.data, p.wire_len) != 0).count();
    assert!(hook.contains(&format!("DROP={dropped} PASS={}", 179 - dropped)), "{hook} (libpcap: {dropped} UDP)");
    // several programs in prog run: the chain's verdict
    let (pkt, _) = packet_file("tcpreplay__test.pcap", 0);
    let (ok, out, err) = uxdp(&["prog", "run", &alw, &dny, "--data-in", pkt.to_str().unwrap(), "--status"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Return value: 1, duration: "), "{out}");
    assert!(out.contains("xdpfilt_dny_all"), "{out}");
    // an object with several XDP programs needs OBJ:PROG in a chain
    let (ok, _, err) =
        uxdp(&["replay", &alw, &corpus("objects/linux-6.12/linux-selftests__xdp_features.o"), "--pcap", &pcap]);
    assert!(!ok);
    assert!(err.contains("several XDP programs"), "{err}");
}

#[test]
fn verify_prints_one_line_per_program_with_the_kernels_verdict() {
    // All xdp-tools programs are accepted (the kernel loads them all).
    let (ok, out, err) = uxdp(&["verify", &corpus("objects/xdp-tools-1.3.1/xdpfilt_alw_all.o")]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "PROG xdpfilt_alw_all OK");
    // A kernel verifier selftest object: the verdict per program equals the
    // kernel's (manifest `perprog`), rejections name the instruction and rule.
    let obj = "objects/linux-6.12/linux-selftests__verifier_xdp_direct_packet_access.o";
    let (ok, out, _) = uxdp(&["verify", &corpus(obj)]);
    assert!(!ok, "rejections make the exit code non-zero");
    let manifest: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(corpus("manifest-linux-6.12.json")).unwrap()).unwrap();
    let entry = manifest.iter().find(|e| e["object"] == obj).unwrap();
    let mut compared = 0;
    for line in out.lines() {
        let mut w = line.split_whitespace();
        assert_eq!(w.next(), Some("PROG"), "{line}");
        let name = w.next().unwrap();
        let verdict = w.next().unwrap();
        let kernel = entry["perprog"][name].as_str().unwrap();
        assert_eq!(verdict == "OK", kernel == "OK", "{line} (kernel: {kernel})");
        if verdict == "REJECTED" {
            let pc = w.next().unwrap();
            assert!(pc.trim_end_matches(':').parse::<usize>().is_ok(), "{line}");
            assert!(line.ends_with(']'), "rule named: {line}");
        }
        compared += 1;
    }
    assert!(compared >= 10, "{out}");
    // A tc program is reported as a type uxdp does not run.
    let (ok, out, _) = uxdp(&["verify", &corpus(META)]);
    assert!(ok);
    assert!(out.contains("PROG _xdp_mark OK") && out.contains("PROG _tc_mark UNSUPPORTED sched_cls"), "{out}");
}
