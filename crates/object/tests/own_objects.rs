//! The checked-in test objects (sources and build script in tests/bpf/):
//! global data with offsets, bpf-to-bpf calls, a bpf_loop callback, kconfig
//! and kfunc externs, BTF maps of many shapes, legacy maps with and without
//! BTF, CO-RE relocations, and XDP_RUN_CONFIG.
//!
//! Expected relocations are re-derived independently from the ELF
//! relocation tables with the `object` crate's generic reader.

mod common;

use common::{check_relocated, test_obj};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use std::collections::HashMap;
use uxdp_isa::opcode::{pseudo, CALL, LDDW};
use uxdp_object::{
    BtfKind, InitTarget, KconfigType, MapOrigin, MapType, Object, ObjectError, Pinning, ProgramKind, RunConfig,
    XdpAttach,
};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(test_obj(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn load(name: &str) -> Object {
    let obj = Object::from_file(test_obj(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    for p in &obj.programs {
        let bad = check_relocated(&obj, p);
        assert!(bad.is_empty(), "{name}: {bad:?}");
    }
    obj
}

/// One relocation of an executable section, from the generic ELF reader.
struct ElfReloc {
    insn: usize,
    symbol: String,
    sym_value: u64,
    sym_section: String,
    orig_imm: i32,
}

fn elf_relocs(data: &[u8], section: &str) -> Vec<ElfReloc> {
    let file = object::File::parse(data).unwrap();
    let sec = file.section_by_name(section).unwrap();
    let code = sec.data().unwrap();
    let mut out = Vec::new();
    for (off, rel) in sec.relocations() {
        let object::RelocationTarget::Symbol(si) = rel.target() else { panic!("non-symbol relocation") };
        let sym = file.symbol_by_index(si).unwrap();
        let sym_section = match sym.section_index() {
            Some(i) => file.section_by_index(i).unwrap().name().unwrap().to_string(),
            None => String::new(),
        };
        let o = off as usize;
        out.push(ElfReloc {
            insn: o / 8,
            symbol: sym.name().unwrap().to_string(),
            sym_value: sym.address(),
            sym_section,
            orig_imm: i32::from_le_bytes(code[o + 4..o + 8].try_into().unwrap()),
        });
    }
    out
}

#[test]
fn global_data_calls_kconfig_kfuncs_and_run_config() {
    let data = read("globals_calls.o");
    let obj = load("globals_calls.o");
    assert_eq!(obj.name, "globals_calls");
    assert_eq!(obj.license, "Dual MIT/GPL");

    // Maps: data sections in section order, then .kconfig; libbpf's names.
    let names: Vec<&str> = obj.maps.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["globals_.data", "globals_.rodata", ".data.custom", "globals_.bss", "globals.kconfig"]);
    let unnamed = Object::parse(&data).unwrap();
    let names: Vec<&str> = unnamed.maps.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, [".data", ".rodata", ".data.custom", ".bss", ".kconfig"]);
    for m in &obj.maps {
        assert_eq!((m.kind(), m.key_size, m.max_entries), (Some(MapType::Array), 4, 1), "{}", m.name);
    }
    let rodata = obj.map("globals_.rodata").unwrap();
    assert_eq!(rodata.origin, MapOrigin::Rodata);
    assert_eq!(rodata.map_flags, 0x80 | 0x400, "BPF_F_RDONLY_PROG | BPF_F_MMAPABLE");
    assert!(rodata.is_read_only());
    let ro = rodata.initial_data.as_ref().unwrap();
    assert_eq!(u32::from_le_bytes(ro[0..4].try_into().unwrap()), 7, "cfg_a");
    assert_eq!(u64::from_le_bytes(ro[8..16].try_into().unwrap()), 0x1122334455667788, "cfg_b");
    let d = obj.map("globals_.data").unwrap();
    assert_eq!(d.map_flags, 0x400);
    let dv = d.initial_data.as_ref().unwrap();
    let words: Vec<u64> = (0..4).map(|i| u64::from_le_bytes(dv[8 * i..8 * i + 8].try_into().unwrap())).collect();
    assert_eq!(words, [11, 22, 33, 44]);
    let bss = obj.map("globals_.bss").unwrap();
    assert_eq!((bss.origin, bss.value_size), (MapOrigin::Bss, 32));
    assert_eq!(bss.initial_data.as_deref(), Some(&[0u8; 32][..]));
    let btf = obj.btf.as_ref().unwrap();
    assert!(matches!(btf.type_by_id(d.btf_value_type_id).unwrap().kind, BtfKind::Datasec { size: 40, .. }));

    // Kconfig: libbpf's layout (alignment descending, then size, then name).
    let kc = obj.kconfig_map.unwrap();
    assert_eq!(obj.maps[kc].value_size, 5);
    assert_eq!(obj.maps[kc].map_flags, 0x80 | 0x400);
    let k: Vec<(&str, u32, u32, KconfigType, bool)> =
        obj.kconfig.iter().map(|k| (k.name.as_str(), k.offset, k.size, k.ty, k.weak)).collect();
    assert_eq!(
        k,
        [
            ("LINUX_KERNEL_VERSION", 0, 4, KconfigType::Int { signed: true }, false),
            ("CONFIG_UXDP_TEST_OPTION", 4, 1, KconfigType::Bool, true)
        ]
    );

    // The XDP program: libbpf's subprogram order (first use, depth first).
    let p = obj.program("xdp_calls").unwrap();
    assert_eq!(p.kind, ProgramKind::Xdp { frags: false, attach: XdpAttach::Device });
    let subs: Vec<(&str, usize)> = p.subprograms.iter().map(|s| (s.name.as_str(), s.insn_off)).collect();
    let own = p.own_insn_count;
    assert_eq!(subs[0], ("loop_cb", own));
    assert_eq!(subs.iter().map(|s| s.0).collect::<Vec<_>>(), ["loop_cb", "add_idx", "mul3", "global_helper"]);
    let start = |n: &str| p.subprograms.iter().find(|s| s.name == n).unwrap().insn_off;
    assert_eq!(p.decl_tags, ["comment:test_expect_success", "comment:test_retval=2"]);
    assert_eq!(p.run_config, Some(RunConfig { priority: 5, chain_call_actions: (1 << 1) | (1 << 3) }));
    assert!(!p.effective_run_config().chains_on(2), "XDP_PASS explicitly disabled");

    // Every relocation of the xdp section, checked against the ELF tables.
    let map_of_section: HashMap<&str, usize> =
        obj.maps.iter().enumerate().map(|(i, m)| (m.section.as_str(), i)).collect();
    let relocs = elf_relocs(&data, "xdp");
    assert_eq!(relocs.len(), 10);
    for r in &relocs {
        let i = p.insns[r.insn];
        if i.code == CALL {
            assert_eq!((i.src(), r.symbol.as_str()), (1, "global_helper"));
            assert_eq!(r.insn as i64 + 1 + i.imm as i64, start("global_helper") as i64);
            continue;
        }
        let next = p.insns[r.insn + 1];
        assert_eq!(i.code, LDDW, "{}", r.symbol);
        match r.sym_section.as_str() {
            ".text" => {
                assert_eq!(i.src(), pseudo::FUNC);
                assert_eq!(r.insn as i64 + 1 + i.imm as i64, start("loop_cb") as i64);
            }
            "" => {
                // kconfig extern
                assert_eq!((i.src(), i.imm as usize), (pseudo::MAP_IDX_VALUE, kc), "{}", r.symbol);
                let slot = obj.kconfig.iter().find(|k| k.name == r.symbol).unwrap();
                assert_eq!(next.imm as u32, slot.offset);
            }
            sec => {
                assert_eq!(i.src(), pseudo::MAP_IDX_VALUE, "{}", r.symbol);
                assert_eq!(i.imm as usize, map_of_section[sec], "{}", r.symbol);
                assert_eq!(next.imm as i64, r.orig_imm as i64 + r.sym_value as i64, "{}", r.symbol);
            }
        }
    }
    // bss_pad lives after bss_tail and counter (clang's order).
    let bss_pad = relocs.iter().find(|r| r.symbol == "bss_pad").unwrap();
    assert_eq!(p.insns[bss_pad.insn + 1].imm, 8);
    // .text relocations inside appended functions: `static_val` (.data+36) in mul3.
    let mul3 = start("mul3");
    let text_relocs = elf_relocs(&data, ".text");
    let sv = text_relocs.iter().find(|r| r.symbol == ".data" || r.orig_imm == 36).unwrap();
    let text_funcs = [("global_helper", 0usize), ("loop_cb", 10), ("add_idx", 17), ("mul3", 30)];
    let (fname, fstart) = text_funcs.iter().rev().find(|(_, s)| *s <= sv.insn).unwrap();
    assert_eq!(*fname, "mul3");
    let pc = mul3 + sv.insn - fstart;
    assert_eq!((p.insns[pc].src(), p.insns[pc + 1].imm), (pseudo::MAP_IDX_VALUE, 36));

    // func_info and line_info follow the appended functions.
    let fi: Vec<usize> = p.func_info.iter().map(|f| f.insn_off).collect();
    let mut want = vec![0];
    want.extend(p.subprograms.iter().map(|s| s.insn_off));
    assert_eq!(fi, want);
    let names: Vec<&str> = p.func_info.iter().map(|f| btf.type_by_id(f.type_id).unwrap().name.as_str()).collect();
    assert_eq!(names, ["xdp_calls", "loop_cb", "add_idx", "mul3", "global_helper"]);
    let li = p.line_info.first().unwrap();
    assert!(btf.string_at(li.file_name_off).unwrap().ends_with("globals_calls.c"));
    assert!(li.line > 0);

    // The tc program: kfunc calls and the address of a weak kfunc.
    let t = obj.program("tc_kfunc").unwrap();
    let kf: Vec<(usize, &str, bool)> = t.kfuncs.iter().map(|k| (k.pc, k.name.as_str(), k.weak)).collect();
    assert_eq!(kf, [(1, "bpf_rcu_read_lock", false), (5, "bpf_rcu_read_unlock", true)]);
    for k in &t.kfuncs {
        assert_eq!(t.insns[k.pc], uxdp_isa::Insn::new(CALL, 0, 2, 0, k.btf_id as i32));
        assert_eq!(btf.type_by_id(k.btf_id).unwrap().name, k.name);
    }
    assert_eq!(t.ksyms.len(), 1);
    let ks = &t.ksyms[0];
    assert_eq!((ks.pc, ks.name.as_str(), ks.is_func, ks.weak), (2, "bpf_rcu_read_unlock", true, true));
    assert_eq!(t.insns[2].src(), pseudo::BTF_ID);
    assert_eq!(t.subprograms.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["add_idx", "mul3"]);
}

#[test]
fn btf_maps_prog_arrays_and_map_in_map() {
    let data = read("maps_btf.o");
    let obj = load("maps_btf.o");
    let btf = obj.btf.as_ref().unwrap();
    let flows = obj.map("flows").unwrap();
    assert_eq!(flows.kind(), Some(MapType::Hash));
    assert_eq!((flows.key_size, flows.value_size, flows.max_entries), (16, 16, 1024));
    assert_eq!((flows.map_flags, flows.pinning), (1, Pinning::ByName));
    assert_eq!(btf.type_by_id(flows.btf_key_type_id).unwrap().name, "flow_key");
    assert_eq!(btf.type_by_id(flows.btf_value_type_id).unwrap().name, "flow_stats");
    let counters = obj.map("counters").unwrap();
    assert_eq!(counters.kind(), Some(MapType::PercpuArray));
    assert_eq!((counters.key_size, counters.value_size, counters.max_entries), (4, 8, 4));
    assert_eq!((counters.btf_key_type_id, counters.pinning), (0, Pinning::None));
    let events = obj.map("events").unwrap();
    assert_eq!((events.kind(), events.max_entries), (Some(MapType::Ringbuf), 8192), "5000 rounded up to 2 pages");

    let outer = obj.map("outer").unwrap();
    assert_eq!(outer.kind(), Some(MapType::ArrayOfMaps));
    assert_eq!((outer.key_size, outer.value_size, outer.max_entries), (4, 4, 4));
    let inner = outer.inner.as_ref().unwrap();
    assert_eq!(inner.name, "outer.inner");
    assert_eq!((inner.kind(), inner.key_size, inner.value_size, inner.max_entries), (Some(MapType::Array), 4, 4, 8));
    assert_eq!(outer.init_values, [(0, InitTarget::Map("inner_a".into())), (3, InitTarget::Map("inner_b".into()))]);
    let jumps = obj.map("jumps").unwrap();
    assert_eq!(jumps.kind(), Some(MapType::ProgArray));
    assert_eq!((jumps.key_size, jumps.value_size, jumps.max_entries), (4, 4, 3));
    assert_eq!(
        jumps.init_values,
        [(1, InitTarget::Program("tail_a".into())), (2, InitTarget::Program("tail_b".into()))]
    );

    // Program types from section names.
    let kinds: Vec<(&str, &str, bool, ProgramKind)> =
        obj.programs.iter().map(|p| (p.name.as_str(), p.section.as_str(), p.autoload, p.kind.clone())).collect();
    let xdp = |frags, attach| ProgramKind::Xdp { frags, attach };
    assert!(kinds.contains(&("tail_b", "xdp.frags", true, xdp(true, XdpAttach::Device))));
    assert!(kinds.contains(&("xdp_devmap_prog", "xdp/devmap", true, xdp(false, XdpAttach::Devmap))));
    assert!(kinds.contains(&("tc_not_autoloaded", "tc", false, ProgramKind::Tc)));
    assert!(kinds.contains(&("sock_prog", "socket", true, ProgramKind::SocketFilter)));
    assert!(kinds.contains(&("legacy_named", "xdp_legacy_name", true, ProgramKind::Unspec)));
    assert_eq!(ProgramKind::from_legacy_section("xdp_legacy_name"), xdp(false, XdpAttach::Device));

    // Map references of xdp_maps against the ELF relocation table.
    let p = obj.program("xdp_maps").unwrap();
    let base = p.section_insn_offset;
    let mut seen = 0;
    for r in elf_relocs(&data, "xdp") {
        if r.insn < base || r.insn >= base + p.own_insn_count {
            continue;
        }
        let i = p.insns[r.insn - base];
        if r.sym_section == ".maps" {
            assert_eq!((i.code, i.src()), (LDDW, pseudo::MAP_IDX), "{}", r.symbol);
            assert_eq!(obj.maps[i.imm as usize].name, r.symbol);
            assert_eq!(p.insns[r.insn - base + 1].imm, 0);
            seen += 1;
        }
    }
    assert_eq!(seen, 5, "flows, counters, outer, events, jumps");
}

#[test]
fn legacy_maps_with_and_without_btf() {
    let with = load("legacy_maps.o");
    let without = load("legacy_maps_nobtf.o");
    assert!(with.btf.is_some() && with.btf_ext.is_some());
    assert!(without.btf.is_none() && without.btf_ext.is_none());
    for obj in [&with, &without] {
        type Row<'a> = (&'a str, MapOrigin, Option<MapType>, u32, u32, u32);
        let m: Vec<Row> = obj
            .maps
            .iter()
            .map(|m| (m.name.as_str(), m.origin, m.kind(), m.key_size, m.value_size, m.max_entries))
            .collect();
        assert_eq!(m[0], ("legacy_array", MapOrigin::Legacy, Some(MapType::Array), 4, 16, 2));
        assert_eq!(m[1], ("legacy_hash", MapOrigin::Legacy, Some(MapType::Hash), 4, 8, 16));
        assert_eq!(m[2].1, MapOrigin::Rodata);
        assert_eq!(m[3].1, MapOrigin::Bss);
        let p = obj.program("xdp_legacy").unwrap();
        assert_eq!(p.subprograms.len(), 1);
        assert_eq!(p.subprograms[0].name, "bump");
    }
    // Without BTF there is no DATASEC to prove the data is mmapable.
    assert_eq!(with.maps[2].map_flags, 0x80 | 0x400);
    assert_eq!(without.maps[2].map_flags, 0x80);
    // Same code, same relocations, with or without -g.
    assert_eq!(with.program("xdp_legacy").unwrap().insns, without.program("xdp_legacy").unwrap().insns);
    let p = without.program("xdp_legacy").unwrap();
    assert!(p.func_info.is_empty() && p.line_info.is_empty() && p.decl_tags.is_empty() && p.btf_func_id.is_none());
}

/// Instruction index → expected value of every CO-RE relocation in
/// core_relocs.o, computed by hand from the struct layout (see the source).
const CORE_EXPECT: [(usize, i64); 25] = [
    (0, 1),   // field_exists b
    (4, 8),   // byte_sz d
    (6, 16),  // byte_off d (anonymous struct at 8, d at +8)
    (8, 24),  // byte_off bits_lo: the 4-byte unit holding bit 192
    (12, 4),  // byte_sz bits_lo: libbpf loads the bitfield's own int (clang emitted 8)
    (27, 61), // lshift_u64 = 64 - (192 + 3 - 24 * 8)
    (28, 1),  // signed bits_lo (int)
    (30, 61), // rshift_u64 = 64 - 3
    (32, 61),
    (36, 24), // bits_hi
    (40, 4),
    (55, 52), // 64 - (195 + 9 - 192)
    (56, 0),  // unsigned
    (58, 55), // 64 - 9
    (60, 55),
    (64, 48), // type_size
    (66, 1),  // type_exists (typedef)
    (68, 1),  // enumval_exists (lddw)
    (71, 7),  // enumval_value MODE_ON
    (74, -2), // enumval_value MODE_NEG, sign-extended like libbpf
    (77, 8),  // local_type_id
    (80, 8),  // target_type_id (the local BTF is the target)
    (83, 36), // byte_off arr[2]
    (85, 0),  // byte_off a
    (95, 1),  // type_matches
];

#[test]
fn core_relocations_resolved_against_local_btf() {
    let obj = load("core_relocs.o");
    let p = obj.program("xdp_core").unwrap();
    let ext = obj.btf_ext.as_ref().unwrap();
    let recs = &ext.core_relos.iter().find(|s| s.section == "xdp").unwrap().records;
    assert_eq!(recs.len(), CORE_EXPECT.len() + 1, "one more: signed b at 97");
    for (pc, want) in CORE_EXPECT.into_iter().chain([(97, 1)]) {
        assert!(recs.iter().any(|r| r.insn_off as usize == pc * 8), "record at {pc}");
        let i = p.insns[pc];
        let got = if i.code == LDDW {
            ((i.imm as u32 as u64) | ((p.insns[pc + 1].imm as u32 as u64) << 32)) as i64
        } else {
            i.imm as i64
        };
        assert_eq!(got, want, "instruction {pc}");
    }
}

/// Finds `pattern` exactly once in `data`.
fn find_once(data: &[u8], pattern: &[u8]) -> usize {
    let hits: Vec<usize> =
        data.windows(pattern.len()).enumerate().filter(|(_, w)| *w == pattern).map(|(i, _)| i).collect();
    assert_eq!(hits.len(), 1, "pattern {pattern:x?} found {} times", hits.len());
    hits[0]
}

fn section_range(data: &[u8], name: &str) -> std::ops::Range<usize> {
    let file = object::File::parse(data).unwrap();
    let (off, size) = file.section_by_name(name).unwrap().file_range().unwrap();
    off as usize..(off + size) as usize
}

#[test]
fn core_errors_name_kind_and_instruction() {
    let data = read("core_relocs.o");
    // Change clang's value of a validated relocation: byte_sz of d at insn 4 (8 -> 9).
    let xdp = section_range(&data, "xdp");
    let mut bad = data.clone();
    assert_eq!(bad[xdp.start + 4 * 8 + 4], 8);
    bad[xdp.start + 4 * 8 + 4] = 9;
    match Object::parse(&bad) {
        Err(ObjectError::Core { section, insn, kind, reason }) => {
            assert_eq!((section.as_str(), insn, kind.name()), ("xdp", 4, "byte_sz"));
            assert!(reason.contains("9") && reason.contains("8"), "{reason}");
        }
        other => panic!("expected a CO-RE error, got {other:?}"),
    }
    // An unknown relocation kind (13) for the record of instruction 4.
    let ext = section_range(&data, ".BTF.ext");
    let hdr_len = u32::from_le_bytes(data[ext.start + 4..ext.start + 8].try_into().unwrap()) as usize;
    let core_off = u32::from_le_bytes(data[ext.start + 24..ext.start + 28].try_into().unwrap()) as usize;
    let recs = ext.start + hdr_len + core_off + 4 + 8; // record size, then section name and count
    let mut bad = data.clone();
    let rec4 = recs + 16; // second record: insn_off 32
    assert_eq!(u32::from_le_bytes(bad[rec4..rec4 + 4].try_into().unwrap()), 32);
    bad[rec4 + 12..rec4 + 16].copy_from_slice(&13u32.to_le_bytes());
    let e = Object::parse(&bad).unwrap_err();
    assert!(matches!(e, ObjectError::UnsupportedCoreKind { insn: 4, kind: 13, .. }), "{e:?}");
    assert!(e.to_string().contains("instruction 4") && e.to_string().contains("kind 13"), "{e}");
}

#[test]
fn run_config_unknown_member_is_refused() {
    let e = Object::from_file(test_obj("bad_run_config.o")).unwrap_err();
    match &e {
        ObjectError::UnknownRunConfigMember { program, member } => {
            assert_eq!((program.as_str(), member.as_str()), ("xdp_bad_config", "XDP_BOUNCE"));
        }
        other => panic!("expected UnknownRunConfigMember, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("xdp_bad_config") && msg.contains("XDP_BOUNCE"), "{msg}");
}

#[test]
fn errors_name_the_problem() {
    // Unknown relocation type in .relxdp (R_BPF_64_64 -> R_BPF_64_ABS32).
    let data = read("legacy_maps_nobtf.o");
    let rel = section_range(&data, ".relxdp");
    let mut bad = data.clone();
    assert_eq!(bad[rel.start + 8], 1, "type byte of the first Elf64_Rel");
    bad[rel.start + 8] = 3;
    let e = Object::parse(&bad).unwrap_err();
    assert!(matches!(&e, ObjectError::UnknownRelocationType { section, r_type: 3, .. } if section == "xdp"), "{e:?}");
    assert!(e.to_string().contains("R_BPF_64_ABS32"), "{e}");

    // A relocation against a symbol index past the symbol table.
    let mut bad = data.clone();
    bad[rel.start + 12..rel.start + 16].copy_from_slice(&9999u32.to_le_bytes());
    let e = Object::parse(&bad).unwrap_err();
    assert!(e.to_string().contains("missing symbol #9999"), "{e}");

    // A relocation against a symbol in a section that is no map, data or code: `_license`.
    let file = object::File::parse(&*data).unwrap();
    let lic = file.symbols().find(|s| s.name() == Ok("_license")).unwrap().index().0 as u32;
    let mut bad = data.clone();
    bad[rel.start + 12..rel.start + 16].copy_from_slice(&lic.to_le_bytes());
    let e = Object::parse(&bad).unwrap_err();
    assert!(
        matches!(&e, ObjectError::UnknownRelocationSection { target_section, symbol, .. }
            if target_section == "license" && symbol == "_license"),
        "{e:?}"
    );

    // Unknown and unsupported map types in a legacy definition.
    let maps = section_range(&data, "maps");
    let mut bad = data.clone();
    bad[maps.start..maps.start + 4].copy_from_slice(&99u32.to_le_bytes());
    let e = Object::parse(&bad).unwrap_err();
    // clang placed legacy_hash first in the section.
    assert!(matches!(&e, ObjectError::UnknownMapType { map, value: 99 } if map == "legacy_hash"), "{e:?}");
    bad[maps.start..maps.start + 4].copy_from_slice(&26u32.to_le_bytes());
    let e = Object::parse(&bad).unwrap_err();
    assert_eq!(e.to_string(), "map 'legacy_hash': unsupported map type BPF_MAP_TYPE_STRUCT_OPS (26)");

    // BTF-defined maps need BTF: rename .BTF so the object has none.
    let data = read("maps_btf.o");
    let mut bad = data.clone();
    // The section name string ".BTF" is the tail of ".rel.BTF" in .strtab.
    let at = find_once(&bad, b".rel.BTF\0");
    bad[at + 7] = b'X';
    let e = Object::parse(&bad).unwrap_err();
    assert!(matches!(&e, ObjectError::MissingBtf { .. }), "{e:?}");
    assert!(e.to_string().contains(".maps"), "{e}");

    // Not a BPF object at all.
    let e = Object::parse(b"\x7fELF").unwrap_err();
    assert!(matches!(e, ObjectError::Elf(_)), "{e:?}");
    let e = Object::from_file(test_obj("does-not-exist.o")).unwrap_err();
    assert!(matches!(e, ObjectError::Io { .. }) && e.to_string().contains("does-not-exist.o"), "{e}");
}
