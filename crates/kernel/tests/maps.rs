//! Map access after kernel runs, resets, pin-directory isolation.

mod common;

use common::{object, udp64};
use uxdp_kernel::{possible_cpus, Errno, KernelError, KernelObject};

/// Sum of `u64` field `field` (0 = packets, 1 = bytes) of a per-CPU
/// `struct { u64 packets; u64 bytes; }` value over all CPUs.
fn percpu_sum(value: &[u8], field: usize) -> u64 {
    value.chunks(16).map(|c| u64::from_le_bytes(c[field * 8..field * 8 + 8].try_into().unwrap())).sum()
}

fn stats(obj: &KernelObject, action: u32) -> (u64, u64) {
    let v = obj.map_lookup("xdp_stats_map", &action.to_le_bytes()).expect("lookup").expect("array entry exists");
    (percpu_sum(&v, 0), percpu_sum(&v, 1))
}

#[test]
fn per_cpu_counters_after_runs_and_reset() {
    require_bpf!();
    let cpus = possible_cpus().expect("cpus");
    let mut obj = KernelObject::load_file(object("xdp-tools-1.3.1/xdpfilt_alw_all.o")).expect("loads");
    obj.load_program("xdpfilt_alw_all").expect("program loads");
    let desc = obj.map("xdp_stats_map").expect("map");
    assert_eq!((desc.type_name(), desc.key_size, desc.value_size, desc.max_entries), ("percpu_array", 4, 16, 5));
    assert_eq!(desc.syscall_value_size, 16 * cpus);
    let names: Vec<String> = obj.maps().expect("maps").into_iter().map(|m| m.name).collect();
    assert!(names.contains(&"filter_ports".to_string()) && names.contains(&"xdp_stats_map".to_string()), "{names:?}");

    let run = obj.test_run_xdp("xdpfilt_alw_all", &udp64(), 1, None).expect("run");
    let action = run.retval;
    assert_eq!(stats(&obj, action), (1, 64));
    obj.test_run_xdp("xdpfilt_alw_all", &udp64(), 10, None).expect("run x10");
    assert_eq!(stats(&obj, action), (11, 11 * 64));
    let dump = obj.map_dump("xdp_stats_map").expect("dump");
    assert_eq!(dump.len(), 5, "array dumps every index");
    assert!(dump.iter().all(|(k, v)| k.len() == 4 && v.len() == 16 * cpus));
    let total: u64 = dump.iter().map(|(_, v)| percpu_sum(v, 0)).sum();
    assert_eq!(total, 11);

    // Reset: fresh maps, the program loaded again.
    let old_dir = obj.pin_dir().to_path_buf();
    obj.reset().expect("reset");
    assert!(!old_dir.exists(), "old pin dir removed on reset");
    assert_eq!(obj.loaded_programs(), vec!["xdpfilt_alw_all".to_string()]);
    assert_eq!(stats(&obj, action), (0, 0));
    obj.test_run_xdp("xdpfilt_alw_all", &udp64(), 1, None).expect("run after reset");
    assert_eq!(stats(&obj, action), (1, 64));
}

#[test]
fn update_lookup_delete_and_size_checks() {
    require_bpf!();
    let cpus = possible_cpus().expect("cpus");
    let obj = KernelObject::load_file(object("xdp-tools-1.3.1/xdpfilt_dny_ip.o")).expect("loads");
    let key = [10u8, 0, 0, 1];
    assert_eq!(obj.map_lookup("filter_ipv4", &key).expect("lookup"), None);
    let value: Vec<u8> = (0..cpus).flat_map(|c| (c as u64 + 7).to_le_bytes()).collect();
    obj.map_update("filter_ipv4", &key, &value, 0).expect("update");
    assert_eq!(obj.map_lookup("filter_ipv4", &key).expect("lookup").as_deref(), Some(&value[..]));
    assert_eq!(obj.map_dump("filter_ipv4").expect("dump"), vec![(key.to_vec(), value.clone())]);
    // BPF_NOEXIST on an existing key: EEXIST from the kernel.
    let e = obj.map_update("filter_ipv4", &key, &value, 1).unwrap_err();
    assert_eq!(e.errno(), Some(Errno(libc::EEXIST)), "{e}");
    assert!(obj.map_delete("filter_ipv4", &key).expect("delete"));
    assert!(!obj.map_delete("filter_ipv4", &key).expect("delete again"));
    assert!(obj.map_dump("filter_ipv4").expect("dump").is_empty());
    // Wrong sizes are refused before the kernel sees them, naming the map.
    match obj.map_update("filter_ipv4", &[1, 2, 3], &value, 0) {
        Err(KernelError::InvalidInput(m)) => assert!(m.contains("filter_ipv4") && m.contains("key"), "{m}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    match obj.map_update("filter_ipv4", &key, &[0u8; 8 * 64 + 1], 0) {
        Err(KernelError::InvalidInput(m)) => assert!(m.contains("per CPU"), "{m}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert!(matches!(obj.map("nope"), Err(KernelError::NoSuchMap(_))));
    assert!(matches!(obj.test_run_xdp("xdpfilt_dny_ip", &udp64(), 1, None), Err(KernelError::NotLoaded(_))));
    assert!(matches!(obj.program_fd("nope"), Err(KernelError::NoSuchProgram(_))));
}

#[test]
fn pinned_maps_are_private_and_removed() {
    require_bpf!();
    let a = KernelObject::load_file(object("xdp-tools-1.3.1/xdpfilt_dny_ip.o")).expect("a");
    let b = KernelObject::load_file(object("xdp-tools-1.3.1/xdpfilt_dny_ip.o")).expect("b");
    assert_ne!(a.pin_dir(), b.pin_dir());
    assert!(a.pin_dir().join("filter_ipv4").exists(), "LIBBPF_PIN_BY_NAME map pinned in the object's directory");
    let cpus = possible_cpus().expect("cpus");
    let key = [192u8, 168, 0, 1];
    a.map_update("filter_ipv4", &key, &vec![1u8; 8 * cpus], 0).expect("update a");
    assert!(b.map_lookup("filter_ipv4", &key).expect("lookup b").is_none(), "objects do not share pinned maps");
    let (da, db) = (a.pin_dir().to_path_buf(), b.pin_dir().to_path_buf());
    drop(a);
    assert!(!da.exists());
    assert!(db.exists());
    drop(b);
    assert!(!db.exists());
}

#[test]
fn global_data_maps() {
    require_bpf!();
    let obj = KernelObject::load_file(object("linux-6.12/linux-samples__xdp_adjust_tail_kern.o")).expect("loads");
    assert_eq!(obj.renamed_sections(), &[("xdp_icmp".to_string(), "xdp".to_string())]);
    let data = obj.map(".data").expect(".data map");
    assert_eq!((data.type_name(), data.max_entries), ("array", 1));
    let dump = obj.map_dump(".data").expect("dump");
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[0].1.len(), data.value_size as usize);
}
