//! kfunc calls uxdp cannot check are rejected with the kfunc's name (the
//! kernel-differential kfunc cases live in the unsafe suite).

use uxdp_verifier::{verify, KfuncCall, ProgType, Rule, VerifyInput};

fn call(name: &str) -> KfuncCall {
    KfuncCall { pc: 0, name: name.to_string(), weak: false, btf_id: 7 }
}

#[test]
fn unknown_kfunc_is_named() {
    let insns = uxdp_asm::assemble("call kfunc 7\nmov %r0, 2\nexit").expect("assemble");
    let kf = [call("bpf_rcu_read_lock")];
    let r = verify(&VerifyInput::new(&insns, ProgType::Xdp, &[]).kfuncs(&kf)).expect_err("rejected");
    assert_eq!((r.pc, r.rule), (0, Rule::UnknownKfunc));
    assert!(r.message.contains("kfunc bpf_rcu_read_lock is not known to uxdp's verifier"), "{r}");
}

#[test]
fn kfunc_call_without_a_name_is_rejected() {
    let insns = uxdp_asm::assemble("call kfunc 7\nmov %r0, 2\nexit").expect("assemble");
    let r = verify(&VerifyInput::new(&insns, ProgType::Xdp, &[])).expect_err("rejected");
    assert_eq!((r.pc, r.rule), (0, Rule::UnknownKfunc));
    assert!(r.message.contains("without a name"), "{r}");
}

#[test]
fn tc_only_and_device_bound_kfuncs_are_refused_by_name() {
    let insns = uxdp_asm::assemble("call kfunc 7\nmov %r0, 2\nexit").expect("assemble");
    for (name, why) in [("bpf_skb_ct_lookup", "tc programs only"), ("bpf_xdp_metadata_rx_timestamp", "device-bound")] {
        let kf = [call(name)];
        let r = verify(&VerifyInput::new(&insns, ProgType::Xdp, &[]).kfuncs(&kf)).expect_err("rejected");
        assert_eq!((r.pc, r.rule), (0, Rule::UnknownKfunc));
        assert!(r.message.contains(name) && r.message.contains(why), "{r}");
    }
}

#[test]
fn attach_type_from_section() {
    use uxdp_verifier::AttachType;
    assert_eq!(AttachType::from_section("xdp"), AttachType::Default);
    assert_eq!(AttachType::from_section("xdp.frags"), AttachType::Default);
    assert_eq!(AttachType::from_section("xdp/devmap"), AttachType::Devmap);
    assert_eq!(AttachType::from_section("xdp.frags/devmap"), AttachType::Devmap);
    assert_eq!(AttachType::from_section("xdp/cpumap"), AttachType::Cpumap);
    assert_eq!(AttachType::from_section("xdp.frags/cpumap"), AttachType::Cpumap);
    assert_eq!(AttachType::from_section("socket"), AttachType::Default);
}
