//! Shared helpers of the chain tests: hand-assembled programs, runners,
//! corpus paths, clang builds.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use uxdp_chain::ChainProgram;
use uxdp_isa::Insn;
use uxdp_object::RunConfig;
use uxdp_vm::{LoadOptions, Program};
use uxdp_xdp::{LoadedObject, MapTable, ProgTable, Runner};

/// Loads hand-written instructions as an XDP program with the XDP helpers.
pub fn program(name: &str, insns: &[Insn], cfg: RunConfig) -> Arc<ChainProgram> {
    let opts = LoadOptions::new(Arc::new(uxdp_xdp::helpers::xdp_helpers()));
    let p = Program::load(insns, &opts).unwrap_or_else(|e| panic!("loading {name}: {e}"));
    // The JIT, as everywhere by default: chains then also run natively.
    uxdp_jit::attach(&p).unwrap_or_else(|e| panic!("compiling {name}: {e}"));
    ChainProgram::new(name, Arc::new(p), Arc::new(MapTable::default()), Arc::new(ProgTable::default()), cfg)
}

/// `r0 = ret; exit`.
pub fn ret_insns(ret: i32) -> Vec<Insn> {
    vec![Insn::new(0xb7, 0, 0, 0, ret), Insn::new(0x95, 0, 0, 0, 0)]
}

/// Appends `tag` to the packet's tag list and returns `ret`: byte 0 of the
/// packet counts the tags, bytes 1.. hold them (the count wraps at 32).
/// Packets shorter than 64 bytes return XDP_ABORTED untouched.
pub fn tag_insns(tag: u8, ret: i32) -> Vec<Insn> {
    vec![
        Insn::new(0x61, 2, 1, 0, 0),          // r2 = ctx->data
        Insn::new(0x61, 3, 1, 4, 0),          // r3 = ctx->data_end
        Insn::new(0xbf, 4, 2, 0, 0),          // r4 = r2
        Insn::new(0x07, 4, 0, 0, 64),         // r4 += 64
        Insn::new(0x2d, 4, 3, 9, 0),          // if r4 > r3 goto fail
        Insn::new(0x71, 5, 2, 0, 0),          // r5 = *(u8 *)(r2 + 0)
        Insn::new(0xbf, 6, 5, 0, 0),          // r6 = r5
        Insn::new(0x57, 6, 0, 0, 31),         // r6 &= 31
        Insn::new(0x0f, 6, 2, 0, 0),          // r6 += r2
        Insn::new(0x72, 6, 0, 1, tag as i32), // *(u8 *)(r6 + 1) = tag
        Insn::new(0x07, 5, 0, 0, 1),          // r5 += 1
        Insn::new(0x73, 2, 5, 0, 0),          // *(u8 *)(r2 + 0) = r5
        Insn::new(0xb7, 0, 0, 0, ret),        // r0 = ret
        Insn::new(0x95, 0, 0, 0, 0),          // exit
        Insn::new(0xb7, 0, 0, 0, 0),          // fail: r0 = XDP_ABORTED
        Insn::new(0x95, 0, 0, 0, 0),
    ]
}

/// A tagging program with libxdp's default run configuration.
pub fn tag_program(name: &str, tag: u8, ret: i32) -> Arc<ChainProgram> {
    program(name, &tag_insns(tag, ret), RunConfig::default())
}

/// A program that faults: it reads address 0.
pub fn fault_program(name: &str) -> Arc<ChainProgram> {
    program(
        name,
        &[Insn::new(0xb7, 1, 0, 0, 0), Insn::new(0x71, 0, 1, 0, 0), Insn::new(0x95, 0, 0, 0, 0)],
        RunConfig::default(),
    )
}

/// A runner for hand-made programs. `Runner::new` wants an object; any
/// will do, since a hook switches every runner to each entry's own tables.
pub fn runner() -> Runner {
    let path = corpus("objects/xdp-tools-1.3.1/xsk_def_xdp_prog.o");
    let obj = LoadedObject::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Runner::new(&obj).expect("runner")
}

/// The tags a packet collected.
pub fn tags(out: &[u8]) -> Vec<u8> {
    let n = (out[0] as usize).min(32);
    out[1..1 + n].to_vec()
}

/// `../../../shared/corpus/<rel>` from this crate.
pub fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus").join(rel)
}

/// Compiles `tests/bpf/<name>.c` with clang-19 into a temporary directory
/// (under the target dir) and returns the object path; `Err` carries the
/// reason to print when skipping (no clang-19).
pub fn build_bpf(name: &str) -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bpf").join(format!("{name}.c"));
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chain-bpf");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let out = out_dir.join(format!("{name}.o"));
    // Tests build in parallel: compile to a private name, then rename (atomic).
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = out_dir.join(format!("{name}.o.{}.{seq}.tmp", std::process::id()));
    let status = std::process::Command::new("clang-19")
        .args(["-O2", "-g", "-target", "bpf", "-c"])
        // <asm/types.h> lives in the multiarch include directory
        .arg(format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH))
        .arg(&src)
        .arg("-o")
        .arg(&tmp)
        .status();
    match status {
        Err(e) => Err(format!("clang-19 not runnable ({e}): skipping tests that compile BPF C")),
        Ok(s) if !s.success() => panic!("clang-19 failed on {}", src.display()),
        Ok(_) => {
            std::fs::rename(&tmp, &out).unwrap_or_else(|e| panic!("renaming {}: {e}", tmp.display()));
            Ok(out)
        }
    }
}
