//! Loading: validation, resolution of `lddw` pseudo immediates, helper and
//! kfunc calls, and pre-decoding into the interpreter's compact form.

use crate::helpers::{Helper, Helpers};
use crate::interpreter::NativeCode;
use crate::memory::{sort_regions, Region};
use std::sync::{Arc, OnceLock};
use uxdp_isa::{CallTarget, Insn, Instruction, IsaError, LoadImmKind, ValidateOptions};

/// Internal opcode: bpf-to-bpf call, absolute target in `off`.
pub const OP_CALL_LOCAL: u8 = 0xf5;
/// Internal opcode: never executed (second slot of `lddw`).
pub const OP_NONE: u8 = 0x00;

/// Base of the values `lddw rX, func` loads: a function pointer is
/// `FUNC_PTR_BASE + slot index of the function`.
pub const FUNC_PTR_BASE: u64 = 0xffff_fff0_0000_0000;

/// One pre-decoded instruction: 16 bytes, fields widened and jump targets
/// made absolute so the interpreter never re-decodes. Native code
/// generators (uxdp-jit) read them through [`Program::ops`].
///
/// Differences from the raw slot: `ja`/`gotol` use opcode `JA` with the
/// absolute target in `off`; conditional jumps have the absolute target in
/// `off`; helper and kfunc calls have `code == CALL` and `imm` = index into
/// [`Program::called_helpers`]; local calls have `code ==`
/// [`OP_CALL_LOCAL`] and the absolute target in `off`; `lddw` has the
/// resolved 64-bit value in `imm` (and `src == 0`); slots that never
/// execute (second `lddw` slot) have `code ==` [`OP_NONE`].
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Op {
    /// Opcode byte (see above for the internal ones).
    pub code: u8,
    /// Destination register.
    pub dst: u8,
    /// Source register.
    pub src: u8,
    _pad: u8,
    /// Memory offset, or absolute jump/call target.
    pub off: i32,
    /// Immediate (sign-extended), full 64-bit value for `lddw`, helper index for calls.
    pub imm: i64,
}

/// Errors of loading a program.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Structural validation failed.
    #[error(transparent)]
    Isa(#[from] IsaError),
    /// The program calls a helper uxdp does not provide.
    #[error("instruction {pc}: helper {} (#{id}) is not supported", name.unwrap_or("<unknown>"))]
    UnknownHelper {
        /// Slot index.
        pc: usize,
        /// Helper id.
        id: i64,
        /// Kernel name of the helper, if it has one.
        name: Option<&'static str>,
    },
    /// A `lddw` pseudo immediate or kfunc could not be resolved.
    #[error("instruction {pc}: {what}")]
    Unresolved {
        /// Slot index.
        pc: usize,
        /// Explanation, naming the map/kfunc/kind.
        what: String,
    },
}

/// Resolves `lddw` pseudo immediates (maps, map values, BTF ids) to values.
pub type ImmResolver<'a> = &'a dyn Fn(LoadImmKind, i32, i32) -> Result<u64, String>;
/// Resolves a kfunc call (`btf_id`, module offset) to an implementation.
pub type KfuncResolver<'a> = &'a dyn Fn(i32, i16) -> Result<Helper, String>;

/// How to load a program.
#[derive(Clone)]
pub struct LoadOptions<'a> {
    /// Helpers the program may call.
    pub helpers: Arc<Helpers>,
    /// Registers initialised at entry (bit n = rn), for the uninitialised-read
    /// check; `None` skips that check (e.g. when the verifier ran).
    pub entry_regs: Option<u16>,
    /// Resolver for map and BTF `lddw` kinds; without it they are errors.
    pub resolve_imm: Option<ImmResolver<'a>>,
    /// Resolver for kfunc calls; without it they are errors.
    pub resolve_kfunc: Option<KfuncResolver<'a>>,
    /// Memory the program may access besides the per-run regions (map values).
    pub shared_regions: Vec<Region>,
}

impl<'a> LoadOptions<'a> {
    /// Options with the given helpers, the default entry registers (r1,
    /// r10) and no resolvers.
    pub fn new(helpers: Arc<Helpers>) -> Self {
        LoadOptions {
            helpers,
            entry_regs: ValidateOptions::default().entry_regs,
            resolve_imm: None,
            resolve_kfunc: None,
            shared_regions: Vec::new(),
        }
    }
}

/// A loaded, validated, pre-decoded program, shareable between threads.
pub struct Program {
    pub(crate) ops: Box<[Op]>,
    pub(crate) calls: Box<[Helper]>,
    pub(crate) helpers: Arc<Helpers>,
    pub(crate) regions: Vec<Region>,
    pub(crate) functions: Box<[usize]>,
    insns: Box<[Insn]>,
    pub(crate) native: OnceLock<Arc<dyn NativeCode>>,
}

impl core::fmt::Debug for Program {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Program")
            .field("insns", &self.insns.len())
            .field("calls", &self.calls)
            .field("native", &self.native.get().is_some())
            .finish()
    }
}

impl Program {
    /// Validates and pre-decodes `insns`.
    pub fn load(insns: &[Insn], opts: &LoadOptions<'_>) -> Result<Program, LoadError> {
        let v = uxdp_isa::validate(insns, ValidateOptions { entry_regs: opts.entry_regs })?;
        let mut ops = vec![Op::default(); insns.len()];
        let mut calls: Vec<Helper> = Vec::new();
        for (pc, ins) in v.decoded.iter().enumerate() {
            let Some(ins) = ins else { continue };
            let raw = insns[pc];
            let mut op = Op {
                code: raw.code,
                dst: raw.dst(),
                src: raw.src(),
                _pad: 0,
                off: raw.off as i32,
                imm: raw.imm as i64,
            };
            match *ins {
                Instruction::LoadImm64 { kind, imm, next_imm, .. } => {
                    op.src = 0;
                    op.imm = match kind {
                        LoadImmKind::Imm64 => (((next_imm as u32 as u64) << 32) | imm as u32 as u64) as i64,
                        LoadImmKind::Func => (FUNC_PTR_BASE + (pc as i64 + 1 + imm as i64) as u64) as i64,
                        other => {
                            let r = opts.resolve_imm.ok_or_else(|| LoadError::Unresolved {
                                pc,
                                what: format!("lddw of kind {} cannot be resolved here (no maps)", other.keyword()),
                            })?;
                            r(other, imm, next_imm).map_err(|what| LoadError::Unresolved { pc, what })? as i64
                        }
                    };
                }
                Instruction::Ja { off, .. } => {
                    op.code = uxdp_isa::opcode::JA;
                    op.off = (pc as i64 + 1 + off as i64) as i32;
                }
                Instruction::Jump { .. } => op.off = pc as i32 + 1 + raw.off as i32,
                Instruction::Call(CallTarget::Helper(id)) => {
                    let h = opts.helpers.get(id as u32 as u64).filter(|_| id >= 0).ok_or(LoadError::UnknownHelper {
                        pc,
                        id: id as i64,
                        name: uxdp_isa::helper_names::helper_name(id as i64),
                    })?;
                    op.imm = intern(&mut calls, h);
                }
                Instruction::Call(CallTarget::Kfunc { btf_id, off }) => {
                    let r = opts.resolve_kfunc.ok_or_else(|| LoadError::Unresolved {
                        pc,
                        what: format!("kfunc call (BTF id {btf_id}) is not supported here"),
                    })?;
                    let h = r(btf_id, off).map_err(|what| LoadError::Unresolved { pc, what })?;
                    op.code = uxdp_isa::opcode::CALL;
                    op.imm = intern(&mut calls, h);
                }
                Instruction::Call(CallTarget::Local(rel)) => {
                    op.code = OP_CALL_LOCAL;
                    op.off = (pc as i64 + 1 + rel as i64) as i32;
                }
                _ => {}
            }
            ops[pc] = op;
        }
        for (pc, ins) in v.decoded.iter().enumerate() {
            if ins.is_none() {
                ops[pc].code = OP_NONE;
            }
        }
        Ok(Program {
            ops: ops.into_boxed_slice(),
            calls: calls.into_boxed_slice(),
            helpers: opts.helpers.clone(),
            regions: sort_regions(opts.shared_regions.clone()),
            functions: v.functions.into_boxed_slice(),
            insns: insns.into(),
            native: OnceLock::new(),
        })
    }

    /// The original instructions.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Slot indices where functions start (0 and every local-call target).
    pub fn functions(&self) -> &[usize] {
        &self.functions
    }

    /// The shared regions (map values) the program may access.
    pub fn shared_regions(&self) -> &[Region] {
        &self.regions
    }

    /// Helpers referenced by direct calls, in first-use order.
    pub fn called_helpers(&self) -> &[Helper] {
        &self.calls
    }

    /// Helper table (used for `callx`).
    pub fn helpers(&self) -> &Helpers {
        &self.helpers
    }

    /// The pre-decoded instructions, one per slot (see [`Op`]).
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Attaches native code (e.g. from uxdp-jit) that [`crate::Machine`]
    /// runs instead of interpreting, unless the machine disables it. Only
    /// the first attachment takes effect; returns false if code was
    /// already attached.
    pub fn set_native(&self, code: Arc<dyn NativeCode>) -> bool {
        self.native.set(code).is_ok()
    }

    /// The attached native code, if any.
    pub fn native(&self) -> Option<&Arc<dyn NativeCode>> {
        self.native.get()
    }
}

fn intern(calls: &mut Vec<Helper>, h: Helper) -> i64 {
    if let Some(i) = calls.iter().position(|c| c.id == h.id && c.func as usize == h.func as usize) {
        i as i64
    } else {
        calls.push(h);
        (calls.len() - 1) as i64
    }
}
