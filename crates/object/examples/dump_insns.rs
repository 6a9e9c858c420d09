//! Writes every relocated program of the given objects to
//! `<outdir>/<object file>__<program>.bin` (raw `struct bpf_insn` bytes).
//!
//! `cargo run -p uxdp-object --example dump_insns -- OUTDIR file.o...`

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: dump_insns OUTDIR file.o...");
        std::process::exit(2);
    };
    for path in args {
        let obj = match uxdp_object::Object::from_file(&path) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        let base = std::path::Path::new(&path).file_name().unwrap().to_string_lossy().into_owned();
        for p in &obj.programs {
            let bytes = uxdp_isa::insn::to_bytes(&p.insns);
            let file = format!("{out}/{base}__{}.bin", p.name);
            if let Err(e) = std::fs::write(&file, bytes) {
                eprintln!("{file}: {e}");
            }
        }
    }
}
