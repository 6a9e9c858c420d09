//! Object loading details: verifier logs, kfuncs, section names, program
//! kinds, skb test runs of corpus programs.

mod common;

use common::{object, udp64};
use uxdp_kernel::raw::log_level;
use uxdp_kernel::{Errno, KernelError, KernelObject, ObjectOptions, ProgramKind, XdpAttach};

#[test]
fn refused_programs_carry_the_verifier_message_and_stats() {
    require_bpf!();
    let mut obj = KernelObject::load_file(object("linux-6.12/linux-selftests__verifier_meta_access.o")).expect("loads");
    let info = obj.load_program("meta_access_test1").expect("test1 is __success");
    assert!(info.verified_insns.is_some_and(|n| n > 0), "{info:?}");
    match obj.load_program("meta_access_test2") {
        Err(KernelError::Refused { errno, log, stats, .. }) => {
            assert_eq!(errno, Errno(libc::EACCES));
            assert!(log.contains("invalid access to packet"), "log: {log}");
            assert!(stats.processed_insns.is_some(), "stats parsed from: {log}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A refused program stays unloaded; loading an accepted one twice is a no-op.
    assert!(matches!(obj.program_fd("meta_access_test2"), Err(KernelError::NotLoaded(_))));
    obj.load_program("meta_access_test1").expect("second load is a no-op");
}

#[test]
fn level1_log_has_the_instruction_trace() {
    require_bpf!();
    let opts = ObjectOptions { log_level: log_level::LEVEL1 | log_level::STATS, ..Default::default() };
    let mut obj = KernelObject::load_file_with(object("linux-6.12/linux-selftests__verifier_meta_access.o"), &opts)
        .expect("loads");
    let e = obj.load_program("meta_access_test2").unwrap_err();
    let log = e.verifier_log().expect("refusal has a log");
    assert!(log.contains("R1=ctx()") && log.contains("invalid access to packet"), "log: {log}");
}

#[test]
fn loop_limit_reports_the_real_errno() {
    require_bpf!();
    // With a trace log this program overflows any log buffer (ENOSPC); the
    // default statistics log keeps the verifier's own errno.
    let mut obj = KernelObject::load_file(object("linux-6.12/linux-selftests__verifier_loops1.o")).expect("loads");
    let e = obj.load_program("loop_after_a_conditional_jump").unwrap_err();
    assert_eq!(e.errno(), Some(Errno(libc::E2BIG)), "{e}");
    assert!(e.verifier_log().unwrap_or("").contains("too large"), "{e}");
}

#[test]
fn kfuncs_resolve_against_kernel_btf() {
    require_bpf!();
    let mut obj = KernelObject::load_file(object("linux-6.12/linux-selftests__test_xdp_dynptr.o")).expect("loads");
    let names: Vec<&str> = obj.kfuncs().iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"bpf_dynptr_from_xdp"), "{names:?}");
    assert!(obj.kfuncs().iter().all(|(_, id)| id.is_some()), "{:?}", obj.kfuncs());
    obj.load_program("_xdp_tx_iptunnel").expect("program with kfunc calls loads");
    let run = obj.test_run_xdp("_xdp_tx_iptunnel", &udp64(), 1, None).expect("runs");
    assert!(run.retval <= 4, "an XDP action: {}", run.retval);
    // A kfunc this kernel lacks refuses the object, as libbpf does (ESRCH).
    let e = KernelObject::load_file(object("linux-6.12/linux-selftests__xdp_flowtable.o")).unwrap_err();
    assert_eq!(e.errno(), Some(Errno(libc::ESRCH)), "{e}");
    assert!(e.to_string().contains("bpf_xdp_flow_lookup"), "{e}");
}

#[test]
fn legacy_section_names_and_kinds() {
    require_bpf!();
    let mut obj = KernelObject::load_file(object("linux-6.12/linux-selftests__test_xdp_vlan.o")).expect("loads");
    let kinds: Vec<(String, String, ProgramKind)> =
        obj.programs().iter().map(|p| (p.name.clone(), p.section.clone(), p.kind.clone())).collect();
    let xdp = ProgramKind::Xdp { frags: false, attach: XdpAttach::Interface };
    assert!(kinds.contains(&("xdp_prognum0".into(), "xdp_drop_vlan_4011".into(), xdp.clone())), "{kinds:?}");
    assert!(kinds.contains(&("_tc_progA".into(), "tc_vlan_push".into(), ProgramKind::SchedClassifier)), "{kinds:?}");
    for name in obj.prog_names() {
        obj.load_program(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // tc classifiers test-run on socket buffers.
    let run = obj.test_run_skb("_tc_progA", &udp64(), 1, None).expect("tc test run");
    assert!(run.data_out.len() >= 64);
    // The XDP programs of the renamed sections run.
    for name in ["xdp_prognum0", "xdp_prognum1", "xdp_prognum2", "xdp_prognum3"] {
        obj.test_run_xdp(name, &udp64(), 1, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn socket_filters_from_objects() {
    require_bpf!();
    // verifier_bswap's programs declare their expected test-run results
    // (`__retval`); the selftests run them as socket filters.
    let mut obj = KernelObject::load_file(object("linux-6.12/linux-selftests-cpuv4__verifier_bswap.o")).expect("loads");
    for (name, expected) in [("bswap_16", 0x23ffu32), ("bswap_32", 0x23ff0000), ("bswap_64", 0x34ff12ff)] {
        assert_eq!(obj.program(name).expect("program").kind, ProgramKind::SocketFilter);
        obj.load_program(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let run = obj.test_run_skb(name, &udp64(), 1, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(run.retval, expected, "{name}");
    }
}

#[test]
fn unsupported_kinds_are_named() {
    require_bpf!();
    let mut obj = KernelObject::load_file(object("linux-6.12/linux-selftests__test_xdp_bpf2bpf.o")).expect("loads");
    match obj.load_program("trace_on_entry") {
        Err(KernelError::Unsupported(m)) => assert!(m.contains("trace_on_entry") && m.contains("fentry"), "{m}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert!(matches!(obj.load_program("no_such_prog"), Err(KernelError::NoSuchProgram(_))));
    match KernelObject::load_file(object("linux-6.12/linux-selftests__test_bpf_nf.o")) {
        Err(KernelError::Unsupported(m)) => assert!(m.contains("CONFIG_HZ"), "{m}"),
        other => panic!("expected Unsupported for __kconfig, got {:?}", other.map(|o| o.prog_names())),
    }
    let e = KernelObject::load_bytes(b"not an elf", "junk").unwrap_err();
    assert!(e.to_string().contains("junk") && e.to_string().contains("not an ELF"), "{e}");
}

#[test]
fn devmap_programs_load_but_do_not_test_run() {
    require_bpf!();
    let mut obj =
        KernelObject::load_file(object("linux-6.12/linux-selftests__test_xdp_with_devmap_helpers.o")).expect("loads");
    let dm =
        obj.programs().iter().find(|p| matches!(p.kind, ProgramKind::Xdp { attach: XdpAttach::DevMap, .. })).cloned();
    let dm = dm.expect("a devmap program");
    assert!(!dm.kind.packet_test_run());
    obj.load_program(&dm.name).expect("devmap program loads");
    let e = obj.test_run_xdp(&dm.name, &udp64(), 1, None).unwrap_err();
    assert!(e.errno().is_some(), "{e}");
}
