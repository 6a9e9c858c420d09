//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use uxdp_isa::Insn;

/// Returns early from the test, printing why, when the kernel refuses BPF.
#[macro_export]
macro_rules! require_bpf {
    () => {
        if let Err(why) = uxdp_kernel::availability() {
            eprintln!("SKIP: {why}");
            return;
        }
    };
}

/// The shared corpus.
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

/// A corpus object by relative path under `objects/`.
pub fn object(rel: &str) -> PathBuf {
    corpus().join("objects").join(rel)
}

/// Ethernet + IPv4 + UDP (10.0.0.1:1234 -> 10.0.0.2:5678), 64 bytes, valid IP checksum.
pub fn udp64() -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut p[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let mut sum: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut p[34..42];
    udp[0..2].copy_from_slice(&1234u16.to_be_bytes());
    udp[2..4].copy_from_slice(&5678u16.to_be_bytes());
    udp[4..6].copy_from_slice(&30u16.to_be_bytes());
    p
}

/// `r0 = imm; exit`.
pub fn ret(imm: i32) -> Vec<Insn> {
    vec![Insn::new(0xb7, 0, 0, 0, imm), Insn::new(0x95, 0, 0, 0, 0)]
}

/// XDP: if the packet has a first byte, store `byte` there; return `action`.
pub fn write_first_byte(byte: u8, action: i32) -> Vec<Insn> {
    vec![
        Insn::new(0x61, 2, 1, 0, 0),           // r2 = ctx->data
        Insn::new(0x61, 3, 1, 4, 0),           // r3 = ctx->data_end
        Insn::new(0xbf, 4, 2, 0, 0),           // r4 = r2
        Insn::new(0x07, 4, 0, 0, 1),           // r4 += 1
        Insn::new(0x2d, 4, 3, 1, 0),           // if r4 > r3 goto +1
        Insn::new(0x72, 2, 0, 0, byte as i32), // *(u8 *)(r2 + 0) = byte
        Insn::new(0xb7, 0, 0, 0, action),
        Insn::new(0x95, 0, 0, 0, 0),
    ]
}

/// XDP: return `hit` if the first byte is `byte`, else `miss`.
pub fn first_byte_is(byte: u8, hit: i32, miss: i32) -> Vec<Insn> {
    vec![
        Insn::new(0x61, 2, 1, 0, 0),
        Insn::new(0x61, 3, 1, 4, 0),
        Insn::new(0xbf, 4, 2, 0, 0),
        Insn::new(0x07, 4, 0, 0, 1),
        Insn::new(0xb7, 0, 0, 0, miss),
        Insn::new(0x2d, 4, 3, 3, 0),           // if r4 > r3 goto exit
        Insn::new(0x71, 5, 2, 0, 0),           // r5 = *(u8 *)(r2 + 0)
        Insn::new(0x55, 5, 0, 1, byte as i32), // if r5 != byte goto exit
        Insn::new(0xb7, 0, 0, 0, hit),
        Insn::new(0x95, 0, 0, 0, 0),
    ]
}
