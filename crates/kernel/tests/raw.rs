//! Raw BPF_PROG_LOAD and BPF_PROG_TEST_RUN against the running kernel.

mod common;

use common::{ret, udp64, write_first_byte};
use uxdp_isa::Insn;
use uxdp_kernel::raw::log_level;
use uxdp_kernel::{bench_xdp, load_raw, load_raw_bytes, test_run_skb, test_run_xdp, Errno, LoadOptions, ProgType};

#[test]
fn availability_is_ok_or_gives_a_reason() {
    match uxdp_kernel::availability() {
        Ok(()) => {}
        Err(why) => assert!(why.contains("unavailable") || why.contains("misbehaves"), "{why}"),
    }
}

#[test]
fn accepted_program_has_stats_and_runs() {
    require_bpf!();
    let p = load_raw(&ret(2), ProgType::XDP, "GPL", log_level::STATS).expect("r0 = 2; exit loads");
    assert_eq!(p.stats.processed_insns, Some(2), "log: {}", p.log);
    assert!(p.stats.verification_time_usec.is_some(), "log: {}", p.log);
    let run = test_run_xdp(p.fd(), &udp64(), 1, None).expect("test run");
    assert_eq!(run.retval, 2);
    assert_eq!(run.data_out, udp64());
    assert_eq!(run.ctx_out, None);
}

#[test]
fn no_log_level_gives_no_log_on_success() {
    require_bpf!();
    let p = load_raw(&ret(1), ProgType::XDP, "GPL", log_level::NONE).expect("loads");
    assert!(p.log.is_empty());
    assert_eq!(p.stats.processed_insns, None);
}

#[test]
fn refused_program_gives_errno_and_log() {
    require_bpf!();
    // exit without setting r0.
    let f = load_raw(&[Insn::new(0x95, 0, 0, 0, 0)], ProgType::XDP, "GPL", log_level::NONE).unwrap_err();
    assert_eq!(f.errno, Errno(libc::EACCES));
    assert!(f.log.contains("R0 !read_ok"), "log: {}", f.log);
    // Out-of-bounds packet read, level 1: the instruction trace is there.
    let oob = [Insn::new(0x61, 2, 1, 0, 0), Insn::new(0x61, 0, 2, 0, 0), Insn::new(0x95, 0, 0, 0, 0)];
    let f = load_raw(&oob, ProgType::XDP, "GPL", log_level::LEVEL1 | log_level::STATS).unwrap_err();
    assert_eq!(f.errno, Errno(libc::EACCES));
    assert!(f.log.contains("invalid access to packet"), "log: {}", f.log);
    assert!(f.log.contains("(61) r0 = *(u32 *)(r2 +0)"), "log: {}", f.log);
    assert_eq!(f.stats.processed_insns, Some(2));
    assert!(f.to_string().contains("EACCES"), "{f}");
    // Bad opcode: EINVAL.
    let f = load_raw(&[Insn::new(0xff, 0, 0, 0, 0), Insn::new(0x95, 0, 0, 0, 0)], ProgType::XDP, "GPL", 0).unwrap_err();
    assert_eq!(f.errno, Errno(libc::EINVAL), "log: {}", f.log);
    assert!(f.log.contains("unknown opcode ff"), "log: {}", f.log);
}

#[test]
fn gpl_only_helper_needs_gpl_license() {
    require_bpf!();
    // bpf_ktime_get_ns (5) is not GPL-only; bpf_trace_printk (6) is.
    let prog = [
        Insn::new(0xbf, 1, 10, 0, 0),
        Insn::new(0x07, 1, 0, 0, -8),
        Insn::new(0x7a, 10, 0, -8, 0),
        Insn::new(0xb7, 2, 0, 0, 8),
        Insn::new(0x85, 0, 0, 0, 6),
        Insn::new(0xb7, 0, 0, 0, 2),
        Insn::new(0x95, 0, 0, 0, 0),
    ];
    load_raw(&prog, ProgType::XDP, "GPL", 0).expect("GPL program may call trace_printk");
    let f = load_raw(&prog, ProgType::XDP, "Proprietary", 0).unwrap_err();
    assert_eq!(f.errno, Errno(libc::EINVAL));
    assert!(f.log.contains("GPL"), "log: {}", f.log);
}

#[test]
fn raw_bytes_and_options() {
    require_bpf!();
    let bytes = uxdp_isa::insn::to_bytes(&ret(3));
    let opts = LoadOptions { name: "uxdp-t.x", ..LoadOptions::new(ProgType::XDP) };
    let p = load_raw_bytes(&bytes, &opts).expect("loads");
    assert_eq!(test_run_xdp(p.fd(), &udp64(), 1, None).expect("run").retval, 3);
}

#[test]
fn xdp_test_run_changes_packet_and_reports_errno() {
    require_bpf!();
    let p = load_raw(&write_first_byte(0xab, 1), ProgType::XDP, "GPL", 0).expect("loads");
    let run = test_run_xdp(p.fd(), &udp64(), 1, None).expect("run");
    assert_eq!(run.retval, 1);
    assert_eq!(run.data_out[0], 0xab);
    assert_eq!(&run.data_out[1..], &udp64()[1..]);
    // The kernel refuses packets shorter than an Ethernet header.
    let e = test_run_xdp(p.fd(), &[0u8; 10], 1, None).unwrap_err();
    assert_eq!(e.errno(), Some(Errno(libc::EINVAL)), "{e}");
    // A context with a nonzero egress_ifindex is refused too.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&64u32.to_le_bytes());
    ctx[20..24].copy_from_slice(&1u32.to_le_bytes());
    let e = test_run_xdp(p.fd(), &udp64(), 1, Some(&ctx)).unwrap_err();
    assert_eq!(e.errno(), Some(Errno(libc::EINVAL)), "{e}");
    // A valid context comes back.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&64u32.to_le_bytes());
    let run = test_run_xdp(p.fd(), &udp64(), 1, Some(&ctx)).expect("run with ctx");
    let ctx_out = run.ctx_out.expect("ctx out");
    assert_eq!(ctx_out.len(), 24);
    assert_eq!(u32::from_le_bytes(ctx_out[4..8].try_into().unwrap()), 64, "data_end");
}

#[test]
fn socket_filter_test_run() {
    require_bpf!();
    let p = load_raw(&ret(42), ProgType::SOCKET_FILTER, "GPL", 0).expect("socket filter loads");
    let run = test_run_skb(p.fd(), &udp64(), 1, None).expect("run");
    assert_eq!(run.retval, 42);
    assert_eq!(run.data_out.len(), 64);
    let e = test_run_skb(p.fd(), &[0u8; 13], 1, None).unwrap_err();
    assert_eq!(e.errno(), Some(Errno(libc::EINVAL)), "{e}");
}

#[test]
fn bench_gives_a_duration() {
    require_bpf!();
    let p = load_raw(&ret(2), ProgType::XDP, "GPL", 0).expect("loads");
    let ns = bench_xdp(p.fd(), &udp64(), 200_000).expect("bench");
    assert!(ns > 0 && ns < 100_000, "{ns} ns per run");
    assert!(bench_xdp(p.fd(), &udp64(), 0).is_err());
}
