//! libxdp-style chains in the kernel: the tail-call dispatcher against the
//! sequential reference.

mod common;

use std::os::fd::BorrowedFd;

use common::{first_byte_is, object, ret, udp64, write_first_byte};
use uxdp_kernel::{
    load_raw, load_raw_with, run_chain_reference, KernelObject, LoadOptions, LoadedProg, ProgType, TailCallChain,
    DEFAULT_CHAIN_ACTIONS,
};

const ABORTED: u32 = 0;
const DROP: u32 = 1;
const PASS: u32 = 2;
const TX: u32 = 3;

fn xdp(insns: &[uxdp_isa::Insn]) -> LoadedProg {
    load_raw(insns, ProgType::XDP, "GPL", 0).unwrap_or_else(|f| panic!("test program refused: {f}"))
}

/// Runs both chain implementations and checks they agree; returns (retval, packet).
fn both(progs: &[&LoadedProg], actions: &[u32], packet: &[u8]) -> (u32, Vec<u8>) {
    let fds: Vec<BorrowedFd<'_>> = progs.iter().map(|p| p.fd()).collect();
    let chain = TailCallChain::new(&fds, actions).unwrap_or_else(|e| panic!("dispatcher: {e}"));
    assert_eq!(chain.len(), progs.len());
    let k = chain.test_run(packet).expect("dispatcher run");
    let r = run_chain_reference(&fds, actions, packet).expect("reference run");
    assert_eq!((k.retval, &k.data_out), (r.retval, &r.data_out), "dispatcher vs reference, steps {:?}", r.steps);
    (k.retval, k.data_out)
}

#[test]
fn chain_semantics_match_libxdp() {
    require_bpf!();
    let pass = xdp(&ret(PASS as i32));
    let drop = xdp(&ret(DROP as i32));
    let tx = xdp(&ret(TX as i32));
    let aborted = xdp(&ret(ABORTED as i32));
    let p = udp64();
    let d = DEFAULT_CHAIN_ACTIONS;
    assert_eq!(both(&[&pass], &[d], &p).0, PASS);
    assert_eq!(both(&[&pass, &drop], &[d, d], &p).0, DROP);
    assert_eq!(both(&[&tx, &drop], &[d, d], &p).0, TX);
    assert_eq!(both(&[&drop, &tx], &[1 << DROP, d], &p).0, TX);
    assert_eq!(both(&[&drop, &tx], &[d, d], &p).0, DROP);
    assert_eq!(both(&[&aborted, &tx], &[1 << ABORTED, d], &p).0, TX);
    assert_eq!(both(&[&aborted, &tx], &[d, d], &p).0, ABORTED);
    // Every program passes: the end of the chain is XDP_PASS.
    assert_eq!(both(&[&pass, &pass, &pass, &pass], &[d, d, d, d], &p).0, PASS);
    // A mask that continues on everything runs to the end.
    assert_eq!(both(&[&drop, &tx, &aborted], &[!0, !0, !0], &p).0, PASS);
    // Return values outside the actions: the mask bit is taken mod 32.
    let big = xdp(&ret(35));
    assert_eq!(both(&[&big, &tx], &[1 << 3, d], &p).0, TX);
    assert_eq!(both(&[&big, &tx], &[d, d], &p).0, 35);
}

#[test]
fn packet_changes_flow_through_the_chain() {
    require_bpf!();
    let write = xdp(&write_first_byte(0xab, PASS as i32));
    let check = xdp(&first_byte_is(0xab, TX as i32, DROP as i32));
    let d = DEFAULT_CHAIN_ACTIONS;
    let (ret, data) = both(&[&write, &check], &[d, d], &udp64());
    assert_eq!(ret, TX, "second program saw the first one's write");
    assert_eq!(data[0], 0xab);
    let (ret, _) = both(&[&check, &write], &[d, d], &udp64());
    assert_eq!(ret, DROP);
}

#[test]
fn corpus_programs_in_a_chain() {
    require_bpf!();
    let mut alw = KernelObject::load_file(object("xdp-tools-1.3.1/xdpfilt_alw_all.o")).expect("xdpfilt_alw_all");
    alw.load_program("xdpfilt_alw_all").expect("loads");
    let mut dny = KernelObject::load_file(object("xdp-tools-1.3.1/xdpfilt_dny_all.o")).expect("xdpfilt_dny_all");
    dny.load_program("xdpfilt_dny_all").expect("loads");
    // aya loads `xdp` sections with expected_attach_type BPF_XDP (37); the
    // kernel tail-calls only between programs that agree on it.
    let tx0 = xdp(&ret(TX as i32));
    let mixed = [alw.program_fd("xdpfilt_alw_all").unwrap(), tx0.fd()];
    let e = TailCallChain::new(&mixed, &[!0, !0]).unwrap_err();
    assert_eq!(e.errno().map(|e| e.0), Some(libc::EINVAL), "{e}");
    let tx =
        load_raw_with(&ret(TX as i32), &LoadOptions { expected_attach_type: 37, ..LoadOptions::new(ProgType::XDP) })
            .expect("tx with BPF_XDP");
    let fds = [alw.program_fd("xdpfilt_alw_all").unwrap(), dny.program_fd("xdpfilt_dny_all").unwrap(), tx.fd()];
    let d = DEFAULT_CHAIN_ACTIONS;
    let p = udp64();
    let single = [
        alw.test_run_xdp("xdpfilt_alw_all", &p, 1, None).unwrap().retval,
        dny.test_run_xdp("xdpfilt_dny_all", &p, 1, None).unwrap().retval,
    ];
    let chain = TailCallChain::new(&fds, &[!0, !0, d]).expect("dispatcher");
    assert_eq!(chain.expected_attach_type(), 37);
    assert!(!chain.frags());
    let k = chain.test_run(&p).unwrap();
    let r = run_chain_reference(&fds, &[!0, !0, d], &p).unwrap();
    assert_eq!(k.retval, TX, "every step continues, the last returns TX");
    assert_eq!(r.retval, TX);
    assert_eq!(r.steps[..2], single, "each program behaves as alone");
    // With libxdp's default masks the chain stops at the first non-PASS.
    let k = TailCallChain::new(&fds, &[d, d, d]).unwrap().test_run(&p).unwrap();
    let r = run_chain_reference(&fds, &[d, d, d], &p).unwrap();
    assert_eq!(k.retval, r.retval, "steps {:?}", r.steps);
}

#[test]
fn frags_programs_get_a_frags_dispatcher() {
    require_bpf!();
    let mut obj =
        KernelObject::load_file(object("linux-6.12/linux-selftests__test_xdp_update_frags.o")).expect("loads");
    obj.load_program("xdp_adjust_frags").expect("loads");
    let fd = obj.program_fd("xdp_adjust_frags").unwrap();
    let chain = TailCallChain::new(&[fd], &[DEFAULT_CHAIN_ACTIONS]).expect("dispatcher");
    assert!(chain.frags());
    let k = chain.test_run(&udp64()).expect("run");
    let r = run_chain_reference(&[fd], &[DEFAULT_CHAIN_ACTIONS], &udp64()).expect("reference");
    assert_eq!((k.retval, k.data_out), (r.retval, r.data_out));
}

#[test]
fn bad_chains_are_refused() {
    require_bpf!();
    let pass = xdp(&ret(2));
    assert!(TailCallChain::new(&[], &[]).is_err());
    assert!(TailCallChain::new(&[pass.fd()], &[1, 2]).is_err());
    assert!(run_chain_reference(&[pass.fd()], &[], &udp64()).is_err());
    // A socket filter cannot join an XDP program array.
    let sf = load_raw(&ret(0), ProgType::SOCKET_FILTER, "GPL", 0).expect("socket filter");
    let e = TailCallChain::new(&[sf.fd()], &[DEFAULT_CHAIN_ACTIONS]).unwrap_err();
    assert_eq!(e.errno().map(|e| e.0), Some(libc::EINVAL), "{e}");
}
