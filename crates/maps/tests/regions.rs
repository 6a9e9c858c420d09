//! Every pointer a program can get from a map lies, with its whole value,
//! inside the map's `value_regions`, and regions never move.

use uxdp_maps::{create, Map, MapSpec, MapType, BPF_ANY, BPF_F_NO_PREALLOC};

fn inside(m: &dyn Map, p: *mut u8, len: usize) -> bool {
    let a = p as usize;
    m.value_regions().iter().any(|&(s, l)| a >= s && a + len <= s + l)
}

fn k(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

#[test]
fn array_and_percpu_array() {
    for (t, cpus) in [(MapType::Array, 1), (MapType::PercpuArray, 4)] {
        let m = create(MapSpec::new(t, 4, 13, 50).cpus(cpus)).unwrap();
        let regions = m.value_regions();
        for i in 0..50 {
            for cpu in 0..cpus {
                let p = m.lookup(&k(i), cpu).unwrap();
                assert!(inside(&*m, p, 13), "{t:?} index {i} cpu {cpu}");
                assert_eq!(p as usize % 8, 0, "values are 8-byte aligned");
                if t == MapType::PercpuArray {
                    assert_eq!(m.lookup_percpu(&k(i), cpu), Some(p));
                }
            }
        }
        assert_eq!(m.value_regions(), regions);
    }
}

#[test]
fn hash_types_through_churn() {
    for t in [MapType::Hash, MapType::PercpuHash, MapType::LruHash, MapType::LruPercpuHash] {
        let m = create(MapSpec::new(t, 8, 20, 32).cpus(3)).unwrap();
        let regions = m.value_regions();
        let v = vec![1u8; m.user_value_size()];
        for round in 0..20u64 {
            for i in 0..40u64 {
                let key = (i * 31 + round).to_ne_bytes();
                let _ = m.update_user(&key, &v, BPF_ANY);
                if i % 3 == 0 {
                    let _ = m.delete_user(&((i + 5) * 31 + round).to_ne_bytes());
                }
                for cpu in 0..3 {
                    if let Some(p) = m.lookup(&key, cpu) {
                        assert!(inside(&*m, p, 20), "{t:?}");
                        assert_eq!(p as usize % 8, 0);
                    }
                    if let Some(p) = m.lookup_percpu(&key, cpu) {
                        assert!(inside(&*m, p, 20), "{t:?}");
                    }
                }
            }
        }
        let mut n = 0;
        m.for_each(1, 0, &mut |_, p| {
            assert!(inside(&*m, p, 20));
            n += 1;
            false
        })
        .unwrap();
        assert!(n > 0);
        assert_eq!(m.value_regions(), regions);
    }
}

#[test]
fn lpm_devmap_cpumap_xskmap_ringbuf() {
    let m = create(MapSpec::new(MapType::LpmTrie, 8, 12, 16).flags(BPF_F_NO_PREALLOC)).unwrap();
    for i in 0..40u32 {
        let mut key = (8 + i % 25).to_ne_bytes().to_vec();
        key.extend_from_slice(&(i * 0x0101_0101).to_be_bytes());
        let _ = m.update_user(&key, &[2; 12], BPF_ANY);
        if i % 4 == 0 {
            let _ = m.delete_user(&key);
        }
        let mut probe = 32u32.to_ne_bytes().to_vec();
        probe.extend_from_slice(&(i * 0x0101_0101).to_be_bytes());
        if let Some(p) = m.lookup(&probe, 0) {
            assert!(inside(&*m, p, 12));
        }
    }

    let m = create(MapSpec::new(MapType::Devmap, 4, 8, 4)).unwrap();
    m.update_user(&k(3), &[1, 0, 0, 0, 0, 0, 0, 0], BPF_ANY).unwrap();
    assert!(inside(&*m, m.lookup(&k(3), 0).unwrap(), 8));
    assert!(!m.program_writable());

    let m = create(MapSpec::new(MapType::DevmapHash, 4, 8, 4)).unwrap();
    m.update_user(&k(77), &[1, 0, 0, 0, 0, 0, 0, 0], BPF_ANY).unwrap();
    assert!(inside(&*m, m.lookup(&k(77), 0).unwrap(), 8));

    let m = create(MapSpec::new(MapType::Cpumap, 4, 8, 2).cpus(2)).unwrap();
    m.update_user(&k(1), &[64, 0, 0, 0, 0, 0, 0, 0], BPF_ANY).unwrap();
    assert!(inside(&*m, m.lookup(&k(1), 0).unwrap(), 8));

    let m = create(MapSpec::new(MapType::Xskmap, 4, 4, 2)).unwrap();
    m.update_user(&k(1), &k(5), BPF_ANY).unwrap();
    assert!(inside(&*m, m.lookup(&k(1), 0).unwrap(), 4));

    let m = create(MapSpec::new(MapType::Ringbuf, 0, 0, 4096)).unwrap();
    let r = m.as_ringbuf().unwrap();
    for i in 0..100u64 {
        let size = 1 + (i * 97) % 1500;
        match r.reserve(size, 0) {
            Some(p) => {
                assert!(inside(&*m, p, size as usize));
                r.submit(p, 0).unwrap();
            }
            None => {
                r.consume(&mut |_| std::ops::ControlFlow::Continue(())).unwrap();
            }
        }
    }
}

#[test]
fn maps_handing_out_no_pointers_have_no_regions() {
    for s in [
        MapSpec::new(MapType::ProgArray, 4, 4, 4),
        MapSpec::new(MapType::ArrayOfMaps, 4, 4, 4),
        MapSpec::new(MapType::HashOfMaps, 4, 4, 4),
        MapSpec::new(MapType::Queue, 0, 4, 4),
        MapSpec::new(MapType::Stack, 0, 4, 4),
        MapSpec::new(MapType::PerfEventArray, 4, 4, 4),
    ] {
        let m = create(s).unwrap();
        assert!(m.value_regions().is_empty(), "{m:?}");
    }
}
