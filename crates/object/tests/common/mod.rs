//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use uxdp_isa::opcode::{pseudo, CALL, LDDW};
use uxdp_object::{Object, ProgramDef};

/// The shared corpus directory.
pub fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

/// The checked-in test objects.
pub fn test_obj(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bpf").join(name)
}

/// All `.o` files of a corpus directory, sorted.
pub fn corpus_objects(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus().join("objects").join(dir))
        .unwrap_or_else(|e| panic!("corpus directory {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    v.sort();
    v
}

/// Structural checks of a relocated program against its object; returns
/// a description of every problem found.
pub fn check_relocated(obj: &Object, p: &ProgramDef) -> Vec<String> {
    let mut bad = Vec::new();
    let n = p.insns.len();
    if let Err(e) = uxdp_isa::validate(&p.insns, uxdp_isa::ValidateOptions { entry_regs: None }) {
        bad.push(format!("{}: validate: {e}", p.name));
        return bad;
    }
    let starts: Vec<usize> = std::iter::once(0).chain(p.subprograms.iter().map(|s| s.insn_off)).collect();
    let mut pc = 0;
    while pc < n {
        let i = p.insns[pc];
        if i.code == LDDW {
            let next = p.insns[pc + 1];
            match i.src() {
                pseudo::MAP_IDX => {
                    if i.imm < 0 || i.imm as usize >= obj.maps.len() {
                        bad.push(format!("{} pc {pc}: map index {} out of range", p.name, i.imm));
                    }
                }
                pseudo::MAP_IDX_VALUE => match obj.maps.get(i.imm as usize) {
                    Some(m) if next.imm >= 0 && (next.imm as u32) <= m.value_size => {}
                    _ => bad.push(format!("{} pc {pc}: map value {} + {} out of range", p.name, i.imm, next.imm)),
                },
                pseudo::FUNC => {
                    let t = pc as i64 + 1 + i.imm as i64;
                    if !starts.contains(&(t as usize)) {
                        bad.push(format!("{} pc {pc}: function address {t} is not a function start", p.name));
                    }
                }
                pseudo::BTF_ID if !p.ksyms.iter().any(|k| k.pc == pc) => {
                    bad.push(format!("{} pc {pc}: BTF_ID lddw without a ksym record", p.name));
                }
                pseudo::BTF_ID | pseudo::IMM64 => {}
                s => bad.push(format!("{} pc {pc}: unexpected lddw src_reg {s}", p.name)),
            }
            pc += 2;
            continue;
        }
        if i.code == CALL {
            match i.src() {
                1 => {
                    let t = pc as i64 + 1 + i.imm as i64;
                    if !starts.contains(&(t as usize)) {
                        bad.push(format!("{} pc {pc}: call target {t} is not a function start", p.name));
                    }
                }
                2 if !p.kfuncs.iter().any(|k| k.pc == pc) => {
                    bad.push(format!("{} pc {pc}: kfunc call without a kfunc record", p.name));
                }
                _ => {}
            }
        }
        pc += 1;
    }
    for k in &p.kfuncs {
        let i = p.insns[k.pc];
        if i.code != CALL || i.src() != 2 {
            bad.push(format!("{}: kfunc '{}' record at pc {} is not a kfunc call", p.name, k.name, k.pc));
        }
    }
    let total: usize = p.own_insn_count + p.subprograms.iter().map(|s| s.len).sum::<usize>();
    if total != n {
        bad.push(format!("{}: {} own + subprogram instructions != {n}", p.name, total));
    }
    bad
}
