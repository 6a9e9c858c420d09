//! Arbitrary bytes never make the loader panic: truncated, garbage,
//! bit-flipped and byte-smashed versions of real objects either load or
//! fail with an error.

mod common;

use common::{corpus, test_obj};
use std::panic::{catch_unwind, AssertUnwindSafe};
use uxdp_object::Object;

/// Multiplier of the mutation counts (`UXDP_FUZZ_SCALE`, default 1) for
/// longer local runs.
static SCALE_ENV: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn scale() -> usize {
    *SCALE_ENV.get_or_init(|| std::env::var("UXDP_FUZZ_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1))
}

/// xorshift64*: deterministic, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn objects() -> Vec<(String, Vec<u8>)> {
    let mut paths: Vec<std::path::PathBuf> =
        ["globals_calls.o", "maps_btf.o", "legacy_maps.o", "legacy_maps_nobtf.o", "core_relocs.o", "bad_run_config.o"]
            .iter()
            .map(|n| test_obj(n))
            .collect();
    for n in [
        "linux-6.12/linux-selftests__test_l4lb_noinline.o",
        "linux-6.12/linux-selftests__test_map_in_map.o",
        "linux-6.12/linux-selftests__test_bpf_nf.o",
        "linux-6.12/linux-selftests__xdp_metadata.o",
        "linux-6.12/linux-samples__xdp_router_ipv4.linked.o",
        "linux-6.12/linux-selftests__verifier_meta_access.o",
        "xdp-tools-1.3.1/xdp-dispatcher.o",
        "xdp-tools-1.3.1/xdpfilt_alw_all.o",
        "xdp-tools-1.3.1/xsk_def_xdp_prog.o",
    ] {
        paths.push(corpus().join("objects").join(n));
    }
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, data)
        })
        .collect()
}

/// Parses `data`; returns whether it loaded, or the panic message.
fn try_parse(data: &[u8]) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| Object::parse(data).is_ok())).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn mutated_objects_never_panic() {
    let n = scale();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let (mut loaded, mut refused) = (0usize, 0usize);
    let mut panics = Vec::new();
    let mut run = |what: String, data: &[u8], panics: &mut Vec<String>| match try_parse(data) {
        Ok(true) => loaded += 1,
        Ok(false) => refused += 1,
        Err(msg) => panics.push(format!("{what}: {msg}")),
    };
    for (name, data) in objects() {
        assert!(Object::parse(&data).is_ok() || name == "bad_run_config.o", "{name} loads unmodified");
        let len = data.len();
        // Truncations.
        for k in 0..48 * n {
            let cut = len * k / (48 * n);
            run(format!("{name} truncated to {cut}"), &data[..cut], &mut panics);
        }
        run(format!("{name} truncated to {}", len - 1), &data[..len - 1], &mut panics);
        // Single bit flips anywhere.
        for _ in 0..120 * n {
            let (pos, bit) = (rng.below(len), rng.below(8));
            let mut m = data.clone();
            m[pos] ^= 1 << bit;
            run(format!("{name} bit {bit} of byte {pos} flipped"), &m, &mut panics);
        }
        // Several bytes smashed with extreme or random values.
        for _ in 0..60 * n {
            let mut m = data.clone();
            let mut what = format!("{name} bytes set:");
            for _ in 0..1 + rng.below(4) {
                let pos = rng.below(len);
                let v = match rng.below(3) {
                    0 => 0x00,
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
                m[pos] = v;
                what.push_str(&format!(" [{pos}]={v:#x}"));
            }
            run(what, &m, &mut panics);
        }
        // A random 4-byte word overwritten (sizes, offsets and counts are words).
        for _ in 0..60 * n {
            let mut m = data.clone();
            let pos = rng.below(len / 4) * 4;
            let v = rng.next() as u32;
            m[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
            run(format!("{name} word at {pos} set to {v:#x}"), &m, &mut panics);
        }
    }
    // Garbage, with and without a plausible ELF header.
    for i in 0..64 * n {
        let glen = rng.below(4096);
        let mut g: Vec<u8> = (0..glen).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && glen >= 20 {
            g[..20].copy_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x01\0\xf7\0");
        }
        run(format!("garbage #{i} ({glen} bytes)"), &g, &mut panics);
    }
    println!("{loaded} mutated inputs loaded, {refused} refused with an error, {} panicked", panics.len());
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
    assert!(refused > 1000, "most mutations must be refused");
}
