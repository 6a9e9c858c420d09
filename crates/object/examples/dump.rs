//! Prints what uxdp-object loads from BPF object files.
//!
//! `cargo run -p uxdp-object --example dump -- file.o...`

fn main() {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        match uxdp_object::Object::from_file(&path) {
            Ok(obj) => {
                println!("{path}: name '{}', license '{}'", obj.name, obj.license);
                for (i, m) in obj.maps.iter().enumerate() {
                    println!(
                        "  map {i} {} ({}) key {} value {} max {} flags {:#x} inner {:?} init {:?}",
                        m.name,
                        m.type_name(),
                        m.key_size,
                        m.value_size,
                        m.max_entries,
                        m.map_flags,
                        m.inner.as_ref().map(|i| &i.name),
                        m.init_values
                    );
                }
                for p in &obj.programs {
                    println!(
                        "  prog {} [{}] {} own {} total {} subprogs {:?} kfuncs {:?} run_config {:?} tags {:?}",
                        p.name,
                        p.section,
                        p.kind.type_name(),
                        p.own_insn_count,
                        p.insns.len(),
                        p.subprograms.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
                        p.kfuncs.iter().map(|k| (k.pc, k.name.as_str())).collect::<Vec<_>>(),
                        p.run_config,
                        p.decl_tags
                    );
                }
            }
            Err(e) => {
                failed = true;
                println!("{path}: ERROR {e}");
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
