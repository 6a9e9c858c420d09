//! Chains of real objects: order and actions from `XDP_RUN_CONFIG` (the
//! xdp-tools objects of the corpus and programs compiled here with
//! clang-19), and the same chains run by the kernel as a tail-call
//! dispatcher and program by program over a corpus capture.

mod common;

use common::*;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;
use uxdp_chain::{AttachOptions, ChainProgram, Hook, DISPATCHER_RETVAL, XDP_DROP, XDP_PASS, XDP_TX};
use uxdp_kernel::{run_chain_reference, KernelObject, TailCallChain};
use uxdp_xdp::{LoadedObject, TestInput};

const XDP_TOOLS: &str = "objects/xdp-tools-1.3.1";

fn load(path: &Path) -> LoadedObject {
    LoadedObject::from_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn xdp_tools_run_config_orders_the_chain() {
    let files = [
        "xsk_def_xdp_prog.o",
        "xdpfilt_dny_udp.o",
        "xdpfilt_alw_all.o",
        "xdpdump_xdp.o",
        "xdpfilt_dny_all.o",
        "xdpfilt_alw_tcp.o",
    ];
    let hook = Hook::new("xdp-tools");
    let mut objs = Vec::new();
    for f in files {
        let path = corpus(&format!("{XDP_TOOLS}/{f}"));
        let obj = load(&path);
        let prog = ChainProgram::from_object(&obj, None, f).unwrap();
        hook.attach(prog, AttachOptions::default(), None).unwrap();
        objs.push(obj);
    }
    let got: Vec<(String, u32, u32, bool)> = hook
        .entries()
        .iter()
        .map(|e| (e.program.name().to_string(), e.priority, e.actions, e.program.has_run_config()))
        .collect();
    // xdp-filter: `__uint(priority, 10); __uint(XDP_PASS, 1);`; xsk's default
    // program: priority 20, XDP_PASS; xdpdump's program has no run config.
    let want = [
        ("xdpfilt_alw_all", 10, 1 << XDP_PASS, true),
        ("xdpfilt_alw_tcp", 10, 1 << XDP_PASS, true),
        ("xdpfilt_dny_all", 10, 1 << XDP_PASS, true),
        ("xdpfilt_dny_udp", 10, 1 << XDP_PASS, true),
        ("xsk_def_prog", 20, 1 << XDP_PASS, true),
        ("xdpdump", 50, 1 << XDP_PASS, false),
    ];
    let want: Vec<(String, u32, u32, bool)> = want.iter().map(|&(n, p, a, h)| (n.to_string(), p, a, h)).collect();
    assert_eq!(got, want);
    println!("{}", hook.status());
}

struct Built {
    chain: LoadedObject,
    plain: LoadedObject,
    chain_path: std::path::PathBuf,
    plain_path: std::path::PathBuf,
}

fn build() -> Option<Built> {
    let chain_path = match build_bpf("chain_progs") {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: {why}");
            return None;
        }
    };
    let plain_path = build_bpf("plain").ok()?;
    let chain = load(&chain_path);
    // jmp_table[0] = tc_target (prog array values are program ids)
    let target = chain.programs.iter().position(|p| p.name == "tc_target").expect("tc_target");
    let jmp = chain.maps.by_name("jmp_table").expect("jmp_table");
    jmp.update_user(&0u32.to_le_bytes(), &uxdp_xdp::MapTable::id(target).to_le_bytes(), 0).expect("jmp_table[0]");
    Some(Built { chain, plain: load(&plain_path), chain_path, plain_path })
}

/// The chain under test: the compiled programs, the xdp-tools filter, and
/// the plain program, attached in an order unrelated to the run order.
const CHAIN_PROGS: [&str; 6] = ["last_drop", "tc_entry", "stamp", "ipv6_tx", "shrink", "classify"];
const RUN_ORDER: [&str; 8] =
    ["classify", "xdpfilt_alw_all", "shrink", "stamp", "tc_entry", "ipv6_tx", "last_drop", "plain_pass"];

fn hook_for(b: &Built, filt: &LoadedObject) -> Hook {
    let hook = Hook::new("test0");
    let mut progs: Vec<Arc<ChainProgram>> = vec![ChainProgram::from_object(&b.plain, None, "plain.o").unwrap()];
    for n in CHAIN_PROGS {
        progs.push(ChainProgram::from_object(&b.chain, Some(n), "chain_progs.o").unwrap());
    }
    progs.push(ChainProgram::from_object(filt, None, "xdpfilt_alw_all.o").unwrap());
    for p in progs {
        let rev = hook.revision();
        hook.attach(p, AttachOptions::default(), Some(rev)).unwrap();
    }
    hook
}

fn eth(ethertype: u16, ip_proto: u8, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len.max(64)];
    p[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    p[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    p[12..14].copy_from_slice(&ethertype.to_be_bytes());
    if ethertype == 0x0800 {
        p[14] = 0x45;
        p[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        p[22] = 64;
        p[23] = ip_proto;
        p[26..30].copy_from_slice(&[10, 0, 0, 1]);
        p[30..34].copy_from_slice(&[10, 0, 0, 2]);
        if len >= 54 {
            p[34..36].copy_from_slice(&1234u16.to_be_bytes());
            p[36..38].copy_from_slice(&80u16.to_be_bytes());
            match ip_proto {
                17 => p[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes()),
                6 => p[46] = 0x50,
                _ => {}
            }
        }
    }
    if ethertype == 0x86dd && len >= 62 {
        p[14] = 0x60;
        p[18..20].copy_from_slice(&((len - 54) as u16).to_be_bytes());
        p[20] = 17;
        p[21] = 64;
        p[54..56].copy_from_slice(&1234u16.to_be_bytes());
        p[56..58].copy_from_slice(&53u16.to_be_bytes());
        p[58..60].copy_from_slice(&((len - 54) as u16).to_be_bytes());
    }
    p.truncate(len);
    p
}

/// Frames that reach every kind of ending of the test chain.
fn synthetic() -> Vec<Vec<u8>> {
    vec![
        eth(0x0800, 17, 100),
        eth(0x0806, 0, 60),
        eth(0x86dd, 0, 80),
        eth(0x88cc, 0, 20),
        eth(0x0800, 6, 60),
        eth(0x0800, 6, 20),
    ]
}

#[test]
fn clang_objects_order_and_actions() {
    let Some(b) = build() else { return };
    let filt = load(&corpus(&format!("{XDP_TOOLS}/xdpfilt_alw_all.o")));
    let hook = hook_for(&b, &filt);
    let names: Vec<String> = hook.entries().iter().map(|e| e.program.name().to_string()).collect();
    assert_eq!(names, RUN_ORDER);
    let cfg: Vec<(u32, u32)> = hook.entries().iter().map(|e| (e.priority, e.actions)).collect();
    assert_eq!(
        cfg,
        [(10, 0b110), (10, 0b100), (20, 0b100), (20, 0b100), (30, 0b10100), (40, 0b100), (50, 0b010), (50, 0b100)]
    );
    let mut r = uxdp_xdp::Runner::new(&b.chain).unwrap();
    let mut run = |pkt: &[u8]| hook.run(&mut r, &TestInput::new(pkt, None).unwrap()).unwrap();
    let frames = synthetic();
    // UDP: classify drops (chained), ..., last_drop drops (chained, last of
    // its set) and plain_pass passes: the end of the chain is XDP_PASS.
    let udp = run(&frames[0]);
    assert_eq!((udp.verdict.retval, udp.verdict.ran), (XDP_PASS, 8));
    assert_eq!(udp.steps.iter().map(|s| s.retval).collect::<Vec<_>>(), [1, 2, 2, 2, 2, 2, 1, 2]);
    assert_eq!(udp.output.data.len(), 96, "shrink cut 4 bytes");
    assert_eq!(&udp.output.data[..5], &[3, 1, 0xaa, 0x55, 0xff], "every program's mark, tail call included");
    // ARP: classify's XDP_TX ends the chain at once.
    let arp = run(&frames[1]);
    assert_eq!((arp.verdict.retval, arp.verdict.ran), (XDP_TX, 1));
    // IPv6: ipv6_tx's XDP_TX ends it after six programs.
    let v6 = run(&frames[2]);
    assert_eq!((v6.verdict.retval, v6.verdict.ran), (XDP_TX, 6));
    // Short (LLDP) frame: stamp drops, DROP is not in its set.
    let short = run(&frames[3]);
    assert_eq!((short.verdict.retval, short.verdict.ran), (XDP_DROP, 4));
    let s = hook.status();
    assert_eq!(s.totals.packets, 4);
    assert_eq!(s.entries[0].stats.actions[XDP_DROP as usize], 1);
    assert_eq!(s.entries[4].stats.packets, 2, "tc_entry ran for UDP and IPv6");
}

#[test]
fn unknown_run_config_members_are_refused() {
    let path = match build_bpf("bad_config") {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let e = LoadedObject::from_file(&path).err().expect("an unknown XDP_RUN_CONFIG member must be refused");
    assert!(e.to_string().contains("XDP_FOO"), "{e}");
}

#[test]
fn kernel_runs_the_same_chain() {
    if let Err(why) = uxdp_kernel::availability() {
        println!("skipped: {why}");
        return;
    }
    let Some(b) = build() else { return };
    let filt_path = corpus(&format!("{XDP_TOOLS}/xdpfilt_alw_all.o"));
    let filt = load(&filt_path);
    let hook = hook_for(&b, &filt);

    // The kernel side: the same objects, the same programs, the same masks
    // (libxdp's: actions | 1 << XDP_DISPATCHER_RETVAL).
    let mut kchain = KernelObject::load_file(&b.chain_path).expect("kernel: chain_progs.o");
    let mut kplain = KernelObject::load_file(&b.plain_path).expect("kernel: plain.o");
    let mut kfilt = KernelObject::load_file(&filt_path).expect("kernel: xdpfilt_alw_all.o");
    for n in CHAIN_PROGS.iter().chain(&["tc_target"]) {
        kchain.load_program(n).unwrap_or_else(|e| panic!("kernel load {n}: {e}"));
    }
    kplain.load_program("plain_pass").expect("kernel load plain_pass");
    kfilt.load_program("xdpfilt_alw_all").expect("kernel load xdpfilt_alw_all");
    let target = kchain.program_fd("tc_target").unwrap().as_raw_fd() as u32;
    kchain.map_update("jmp_table", &0u32.to_le_bytes(), &target.to_le_bytes(), 0).expect("jmp_table");
    let fds: Vec<BorrowedFd<'_>> = RUN_ORDER
        .iter()
        .map(|n| match *n {
            "plain_pass" => kplain.program_fd(n),
            "xdpfilt_alw_all" => kfilt.program_fd(n),
            _ => kchain.program_fd(n),
        })
        .collect::<Result<_, _>>()
        .expect("program fds");
    let masks: Vec<u32> = hook.entries().iter().map(|e| e.actions | (1 << DISPATCHER_RETVAL)).collect();
    let dispatcher = TailCallChain::new(&fds, &masks).expect("tail-call dispatcher");

    let pcap = corpus("pcaps/pcpp__many-protocols.pcap");
    let packets = uxdp_cbpf::capture::read_capture(&pcap).expect("capture");
    let mut r = uxdp_xdp::Runner::new(&b.chain).unwrap();
    assert!(hook.runs_natively(), "every program has JIT code: the chain runs in one native entry");
    let (mut compared, mut verdicts) = (0, [0usize; 5]);
    let frames: Vec<Vec<u8>> = synthetic().into_iter().chain(packets.into_iter().take(300).map(|p| p.data)).collect();
    for (i, data) in frames.iter().enumerate() {
        let data: &[u8] = data;
        let ours = TestInput::new(data, None).and_then(|input| hook.run(&mut r, &input));
        let reference = run_chain_reference(&fds, &masks, data);
        let tail = dispatcher.test_run(data);
        match (&ours, &reference, &tail) {
            (Ok(o), Ok(k), Ok(t)) => {
                assert_eq!(o.verdict.retval, k.retval, "packet {i}: verdict");
                assert_eq!(o.output.data, k.data_out, "packet {i}: output bytes");
                assert_eq!(o.steps.iter().map(|s| s.retval).collect::<Vec<_>>(), k.steps, "packet {i}: steps");
                assert_eq!((o.verdict.retval, &o.output.data), (t.retval, &t.data_out), "packet {i}: dispatcher");
                // The native chain (Hook::exec) gives the same verdict,
                // after the same programs, with the same output.
                r.load(&TestInput::new(data, None).unwrap()).unwrap();
                let v = hook.exec(&mut r).unwrap_or_else(|e| panic!("packet {i}: native chain: {e}"));
                assert_eq!((v.retval, v.ran), (o.verdict.retval, o.steps.len()), "packet {i}: native chain verdict");
                assert_eq!(r.output(v.retval).data, o.output.data, "packet {i}: native chain output");
                compared += 1;
                verdicts[(o.verdict.retval as usize).min(4)] += 1;
            }
            (Err(_), Err(_), Err(_)) => {}
            _ => panic!(
                "packet {i} ({} bytes): uxdp {:?} / kernel reference {:?} / kernel dispatcher {:?}",
                data.len(),
                ours.as_ref().map(|o| o.verdict),
                reference.as_ref().map(|k| k.retval),
                tail.as_ref().map(|t| t.retval)
            ),
        }
    }
    println!("{compared} packets agree with the kernel; verdicts ABORTED/DROP/PASS/TX/REDIRECT {verdicts:?}");
    assert!(compared >= 100, "only {compared} packets compared");
    assert!(verdicts.iter().filter(|&&n| n > 0).count() >= 2, "the capture should exercise several verdicts");
}
