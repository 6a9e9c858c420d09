//! The command line as a user drives it.

mod common;
use common::uxdp_with_stdin as uxdp;

#[test]
fn demo_matches_what_tcpdump_reports_for_the_sample_capture() {
    // `tcpdump -r samples/sample.pcap 'port 22' | wc -l` = 6, and 2 for the second filter.
    let (ok, out, err) = uxdp(&["demo"], None);
    assert!(ok, "{err}");
    assert!(out.contains("port22: 6 of 13 packets match"), "{out}");
    assert!(out.contains("ssh_payload: 2 of 13 packets match"), "{out}");
    // the shipped clang-compiled XDP object over the same packets (the kernel
    // gives the same verdicts: tests/xdp_replay.rs)
    assert!(out.contains("PROG ssh_guard pkts=13 errors=0 ABORTED=0 DROP=5 PASS=8 TX=0 REDIRECT=0 other=0"), "{out}");
    assert!(out.contains("proto_count[6] = 6") && out.contains("dropped = 5"), "{out}");
}

#[test]
fn asm_then_disasm_round_trips_and_exec_runs() {
    let src = "mov %r0, 1\nloop:\nlsh %r0, 1\njlt %r0, 1024, loop\nexit\n";
    let (ok, hex, err) = uxdp(&["asm", "-"], Some(src));
    assert!(ok, "{err}");
    let (ok, text, err) = uxdp(&["disasm", "-"], Some(&hex));
    assert!(ok, "{err}");
    let (ok, hex2, _) = uxdp(&["asm", "-"], Some(&text));
    assert!(ok);
    assert_eq!(hex, hex2);
    let (ok, r0, err) = uxdp(&["exec", "-"], Some(src));
    assert!(ok, "{err}");
    assert_eq!(r0.trim(), "0x400");
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let (ok, _, err) = uxdp(&["exec", "-"], Some("mov %r0, 1\n"));
    assert!(!ok);
    assert!(err.contains("instruction 0: control falls off the end"), "{err}");
    let (ok, _, err) = uxdp(&["exec", "-"], Some("ldxw %r0, [%r1+0]\nexit\n"));
    assert!(!ok);
    assert!(err.contains("instruction 0: load of 4 bytes"), "{err}");
    let (ok, _, err) = uxdp(&["conformance-plugin"], Some("07 00 01 00 01 00 00 00 95 00 00 00 00 00 00 00"));
    assert!(!ok);
    assert!(err.contains("instruction 0") && err.contains("offset"), "{err}");
    let (ok, _, err) = uxdp(&["disasm", "-"], Some("ff ff ff ff ff ff ff ff"));
    assert!(!ok);
    assert!(err.contains("unknown opcode 0xff"), "{err}");
}

fn corpus(rel: &str) -> String {
    format!("{}/../shared/corpus/objects/{rel}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn disasm_reads_elf_sections_and_names_missing_ones() {
    let obj = corpus("linux-6.12/linux-selftests__xdp_dummy.o");
    let (ok, out, err) = uxdp(&["disasm", "--listing", "--section", "xdp", &obj], None);
    assert!(ok, "{err}");
    assert_eq!(out, "0000: mov32 %r0, 2\n0001: exit\n");
    let (ok, _, err) = uxdp(&["disasm", "--section", "nope", &obj], None);
    assert!(!ok);
    assert!(err.contains("no section \"nope\"") && err.contains("xdp"), "{err}");
}

#[test]
fn conformance_plugin_accepts_elf_input() {
    let bytes = std::fs::read(corpus("linux-6.12/linux-selftests__xdp_dummy.o")).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x} ")).collect();
    let (ok, out, err) = uxdp(&["conformance-plugin", "--elf"], Some(&hex));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "2");
}
