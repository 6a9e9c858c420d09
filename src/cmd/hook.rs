//! Several programs on one hook (`uxdp prog run a.o b.o`, `uxdp replay a.o b.o`):
//! the chain is built like `xdp-loader load` builds libxdp's dispatcher.

use super::xdp::{FilterRule, LoadArgs, ObjectFile, ProgArg};
use anyhow::{bail, Context, Result};
use std::sync::Arc;
use uxdp_chain::{AttachOptions, ChainProgram, Hook, Placement};
use uxdp_object::RunConfig;
use uxdp_vm::{Helpers, LoadOptions, Program};
use uxdp_xdp::{LoadedObject, MapTable, ProgTable};

/// A hook built from command-line programs, with what keeps them alive.
pub struct BuiltHook {
    /// The hook.
    pub hook: Arc<Hook>,
    /// The objects, one instance per argument (the same file given twice is
    /// two instances with their own maps).
    pub objects: Vec<LoadedObject>,
}

/// Builds a hook from `args`, in priority order (`XDP_RUN_CONFIG`, libxdp's
/// rules) or, with `given_order`, in the order given.
pub fn build(args: &[ProgArg], load: &LoadArgs, given_order: bool) -> Result<BuiltHook> {
    let hook = Arc::new(Hook::new("cli"));
    let mut objects = Vec::new();
    for arg in args {
        let prog = match &arg.filter {
            Some(rule) => filter_program(rule, load.interpreter)?,
            None => {
                let file = ObjectFile::open(&arg.object)?;
                let names = file.select(arg.program.as_deref())?;
                if names.len() > 1 {
                    bail!(
                        "{} has several XDP programs ({}); name one with OBJ:PROG",
                        arg.object.display(),
                        names.join(", ")
                    );
                }
                let obj = file.load(load)?;
                let p = ChainProgram::from_object(&obj, Some(&names[0]), arg.object.display().to_string())
                    .with_context(|| arg.to_string())?;
                objects.push(obj);
                p
            }
        };
        let placement = if given_order { Placement::Last } else { Placement::Priority };
        hook.attach(prog, AttachOptions { placement, ..AttachOptions::default() }, None)
            .with_context(|| format!("attaching {arg}"))?;
    }
    Ok(BuiltHook { hook, objects })
}

/// A classic filter as a chain program: the libpcap expression compiled for
/// Ethernet, converted to an XDP program that returns the rule's verdicts.
fn filter_program(rule: &FilterRule, interpreter: bool) -> Result<Arc<ChainProgram>> {
    let classic = uxdp_cbpf::libpcap::compile(&rule.expr, uxdp_cbpf::LinkType::ETHERNET, 262_144)
        .with_context(|| format!("filter '{}'", rule.expr))?;
    let (on_match, on_nomatch) = rule.verdicts();
    let insns = uxdp_cbpf::to_xdp(&classic, on_match, on_nomatch).with_context(|| format!("filter '{}'", rule.expr))?;
    let program = Program::load(&insns, &LoadOptions::new(Arc::new(Helpers::new())))?;
    if !interpreter && uxdp_jit::available() {
        uxdp_cbpf::jit_xdp(&program, &insns)?;
    }
    let name = format!("{}", ProgArg { object: Default::default(), program: None, filter: Some(rule.clone()) });
    Ok(ChainProgram::new(
        name,
        Arc::new(program),
        Arc::new(MapTable::default()),
        Arc::new(ProgTable::default()),
        RunConfig::default(),
    ))
}
