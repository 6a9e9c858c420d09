//! The abstract interpreter: depth-first path exploration over typed
//! register and stack states with state pruning, after the kernel's
//! `do_check`.

use crate::ctx::{self, CtxField};
use crate::helpers::{self, Arg, Callback, Ret};
use crate::kfuncs::{self, KArg, KRet, Lookup, Obj};
use crate::scalar::{Cmp, Op, Scalar};
use crate::structure::{use_def, value_sources, Structure};
use crate::{Facts, MapInfo, Mode, ProgType, Rejection, Rule, VerifyInput};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;
use uxdp_isa::{AluOp, AtomicOp, CallTarget, Cond, Instruction, LoadImmKind, Operand, Width};

const MAX_STACK: i64 = 512;
const MAX_FRAMES: usize = 8;
const BUDGET: u64 = 1_000_000;
const MAX_PENDING: usize = 8192;
const MAX_VAR_OFF: i64 = 1 << 29;
const MAX_PACKET_OFF: u64 = 0xffff;
const INNER_MAP: u32 = u32::MAX;
const MAX_STATES_PER_INSN: usize = 4096;
const BPF_F_RDONLY_PROG: u32 = 0x80;
const SOCK_SIZE: i64 = 80;
/// `bpf_tail_call`.
const TAIL_CALL: i32 = 12;
/// Dynptr kind recorded in a dynptr slot (`BPF_DYNPTR_TYPE_XDP`).
const DYNPTR_XDP: i32 = 5;

/// Register types.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Ty {
    NotInit,
    Scalar,
    Ctx,
    Pkt,
    PktEnd,
    PktMeta,
    Stack,
    MapPtr,
    MapValue,
    MapKey,
    Mem,
    Sock,
    SockCommon,
    Func,
    /// A kernel object (`PTR_TO_BTF_ID`); `aux` is its [`Obj`] number.
    Obj,
}

/// An abstract register. For pointers `val` is the variable offset and
/// `off` the fixed one; `aux` is the packet range, the map index, the
/// memory size, the stack frame, the subprogram start or the kernel object
/// kind. `rdonly` marks read-only memory (`bpf_dynptr_slice`), `slice` the
/// id of the packet dynptr a memory slice comes from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Reg {
    ty: Ty,
    nullable: bool,
    ringbuf: bool,
    rdonly: bool,
    slice: u32,
    off: i32,
    val: Scalar,
    id: u32,
    ref_id: u32,
    aux: u32,
}

impl Reg {
    const NOT_INIT: Reg = Reg {
        ty: Ty::NotInit,
        nullable: false,
        ringbuf: false,
        rdonly: false,
        slice: 0,
        off: 0,
        val: Scalar::UNKNOWN,
        id: 0,
        ref_id: 0,
        aux: 0,
    };

    fn scalar(val: Scalar) -> Reg {
        Reg { ty: Ty::Scalar, val, ..Reg::NOT_INIT }
    }

    fn unknown() -> Reg {
        Reg::scalar(Scalar::UNKNOWN)
    }

    fn ptr(ty: Ty, aux: u32) -> Reg {
        Reg { ty, val: Scalar::konst(0), aux, ..Reg::NOT_INIT }
    }

    fn is_ptr(&self) -> bool {
        !matches!(self.ty, Ty::Scalar | Ty::NotInit)
    }

    fn is_const_zero(&self) -> bool {
        self.ty == Ty::Scalar && self.val.const_value() == Some(0)
    }

    fn is_const_zero32(&self) -> bool {
        self.ty == Ty::Scalar && self.val.is_const32() && self.val.var.value as u32 == 0
    }

    fn type_name(&self) -> String {
        let base = match self.ty {
            Ty::NotInit => "?",
            Ty::Scalar => "scalar",
            Ty::Ctx => "ctx",
            Ty::Pkt => "pkt",
            Ty::PktEnd => "pkt_end",
            Ty::PktMeta => "pkt_meta",
            Ty::Stack => "fp",
            Ty::MapPtr => "map_ptr",
            Ty::MapValue => "map_value",
            Ty::MapKey => "map_key",
            Ty::Mem if self.ringbuf => "ringbuf_mem",
            Ty::Mem if self.rdonly => "rdonly_mem",
            Ty::Mem => "mem",
            Ty::Obj => match Obj::from_aux(self.aux) {
                Obj::NfConn => "ptr_nf_conn",
                Obj::NfConnInit => "ptr_nf_conn___init",
            },
            Ty::Sock => "sock",
            Ty::SockCommon => "sock_common",
            Ty::Func => "func",
        };
        if self.nullable {
            format!("{base}_or_null")
        } else {
            base.to_string()
        }
    }

    /// Pointer types the kernel knows are never NULL.
    fn not_null(&self) -> bool {
        !self.nullable && matches!(self.ty, Ty::MapValue | Ty::MapKey | Ty::Sock | Ty::SockCommon | Ty::Mem | Ty::Obj)
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ty {
            Ty::NotInit => write!(f, "?"),
            Ty::Scalar => write!(f, "scalar({})", self.val),
            _ => {
                write!(f, "{}(off={}", self.type_name(), self.off)?;
                if !self.val.is_const() || self.val.const_value() != Some(0) {
                    write!(f, ",var={}", self.val)?;
                }
                if self.id != 0 {
                    write!(f, ",id={}", self.id)?;
                }
                if self.ref_id != 0 {
                    write!(f, ",ref={}", self.ref_id)?;
                }
                match self.ty {
                    Ty::Pkt | Ty::PktMeta => write!(f, ",r={}", self.aux)?,
                    Ty::MapPtr | Ty::MapValue | Ty::MapKey if self.aux != INNER_MAP => write!(f, ",map={}", self.aux)?,
                    Ty::Mem => write!(f, ",size={}", self.aux)?,
                    Ty::Stack => write!(f, ",frame={}", self.aux)?,
                    Ty::Func => write!(f, ",pc={}", self.aux)?,
                    _ => {}
                }
                write!(f, ")")
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum SlotKind {
    Invalid,
    Misc,
    Zero,
    Spill,
    /// Part of a `struct bpf_dynptr` (two whole slots; the slot's `spill`
    /// holds its id in `id`, its kind in `off`, and `aux` 1 for the
    /// lower-addressed first slot).
    Dynptr,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Slot {
    kind: [SlotKind; 8],
    spill: Reg,
}

impl Slot {
    const EMPTY: Slot = Slot { kind: [SlotKind::Invalid; 8], spill: Reg::NOT_INIT };
    /// A register is spilled here (starting at the slot's lowest byte).
    fn is_spill(&self) -> bool {
        self.kind[0] == SlotKind::Spill
    }
    /// Bytes of the spill.
    fn spill_size(&self) -> usize {
        self.kind.iter().take_while(|k| **k == SlotKind::Spill).count()
    }
    /// Holds part of a dynptr.
    fn is_dynptr(&self) -> bool {
        self.kind[0] == SlotKind::Dynptr
    }
    /// Turns a spill into unknown bytes.
    fn scrub(&mut self) {
        if self.is_spill() {
            for k in &mut self.kind {
                if *k == SlotKind::Spill {
                    *k = SlotKind::Misc;
                }
            }
            self.spill = Reg::NOT_INIT;
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Frame {
    regs: [Reg; 11],
    /// Slot i covers fp-8(i+1) .. fp-8i.
    stack: Vec<Slot>,
    callsite: usize,
    subprog: u32,
    callback: Option<Callback>,
}

impl Frame {
    fn new(frameno: usize, callsite: usize, subprog: u32) -> Frame {
        let mut regs = [Reg::NOT_INIT; 11];
        regs[10] = Reg::ptr(Ty::Stack, frameno as u32);
        Frame { regs, stack: Vec::new(), callsite, subprog, callback: None }
    }

    fn slot_mut(&mut self, i: usize) -> &mut Slot {
        if self.stack.len() <= i {
            self.stack.resize(i + 1, Slot::EMPTY);
        }
        &mut self.stack[i]
    }

    /// Marks bytes `[lo, hi)` (negative fp offsets) as written with
    /// unknown data.
    fn clobber(&mut self, lo: i64, hi: i64, kind: SlotKind) {
        let mut o = lo;
        while o < hi {
            let i = ((-o - 1) / 8) as usize;
            let b = (o + 8 * (i as i64 + 1)) as usize;
            let slot = self.slot_mut(i);
            slot.scrub();
            slot.kind[b] = kind;
            o += 1;
        }
    }
}

#[derive(Clone, Debug)]
struct State {
    frames: Vec<Frame>,
    refs: Vec<(u32, usize)>,
    parent: Option<u32>,
}

impl State {
    fn cur(&mut self) -> &mut Frame {
        let n = self.frames.len() - 1;
        &mut self.frames[n]
    }
    fn top(&self) -> &Frame {
        &self.frames[self.frames.len() - 1]
    }
    /// Whether any byte of `[lo, hi)` (negative offsets) of frame `fi`
    /// belongs to a dynptr.
    fn dynptr_in(&self, fi: usize, lo: i64, hi: i64) -> bool {
        let fr = &self.frames[fi];
        lo < hi && slots_of(lo, hi).any(|i| fr.stack.get(i).is_some_and(Slot::is_dynptr))
    }

    /// After a write the checks could not place: every byte of every
    /// frame's stack that was written before may now hold anything
    /// (spilled pointers and constants become unknown data, dynptrs are
    /// destroyed).
    fn havoc_stacks(&mut self) {
        for fi in 0..self.frames.len() {
            let used = self.frames[fi].stack.len() as i64 * 8;
            if used > 0 {
                self.destroy_dynptrs(fi, -used, 0);
                self.frames[fi].clobber(-used, 0, SlotKind::Misc);
            }
        }
    }

    /// A write to bytes `[lo, hi)` of frame `fi` destroys the dynptrs
    /// there: both their slots become invalid and the slices taken from
    /// them unusable.
    fn destroy_dynptrs(&mut self, fi: usize, lo: i64, hi: i64) {
        if !self.dynptr_in(fi, lo, hi) {
            return;
        }
        let mut ids = Vec::new();
        let fr = &mut self.frames[fi];
        for i in slots_of(lo, hi) {
            if fr.stack.get(i).is_some_and(Slot::is_dynptr) {
                let first = fr.stack[i].spill.aux == 1;
                ids.push(fr.stack[i].spill.id);
                let partner = if first { i.checked_sub(1) } else { Some(i + 1) };
                fr.stack[i] = Slot::EMPTY;
                if let Some(p) = partner {
                    if fr.stack.get(p).is_some_and(Slot::is_dynptr) {
                        fr.stack[p] = Slot::EMPTY;
                    }
                }
            }
        }
        for id in ids {
            self.for_each_reg(|r| {
                if r.ty == Ty::Mem && r.slice == id {
                    *r = Reg::unknown();
                }
            });
        }
    }

    fn for_each_reg(&mut self, mut f: impl FnMut(&mut Reg)) {
        for fr in &mut self.frames {
            for r in &mut fr.regs {
                f(r);
            }
            for s in &mut fr.stack {
                if s.is_spill() {
                    f(&mut s.spill);
                }
            }
        }
    }
}

/// Stack slot indices covering bytes `[lo, hi)` (negative offsets, `lo < hi <= 0`).
fn slots_of(lo: i64, hi: i64) -> std::ops::RangeInclusive<usize> {
    ((-hi) / 8) as usize..=((-lo - 1) / 8) as usize
}

struct Checkpoint {
    frames: Vec<Frame>,
    refs: Vec<(u32, usize)>,
    parent: Option<u32>,
    live: u32,
}

/// The exact-match part of a state at a prune point (see `Env::key`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Key {
    frames: u32,
    regs: [u64; 10],
}

impl Key {
    /// Registers the key pins down (initialised and live); the others are
    /// wildcards in an old state.
    fn mask(&self) -> u16 {
        (0..10).filter(|&r| self.regs[r] != 0).fold(0, |m, r| m | 1 << r)
    }

    /// A hash of the frame count and the registers in `mask`. An old state
    /// subsumes a new one only if the new key hashes, under the old key's
    /// mask, to the old key's hash (collisions only cost a full compare).
    fn hash(&self, mask: u16) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ self.frames as u64;
        for r in 0..10 {
            if mask & (1 << r) != 0 {
                h = (h ^ self.regs[r] ^ (r as u64) << 60).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
            }
        }
        h
    }
}

/// Hasher for checkpoint bucket keys, which already carry a hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u16(&mut self, v: u16) {
        self.0 = (self.0 ^ v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 ^ v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).rotate_left(17).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Type, nullness, flags and fixed offset of an initialised register.
#[inline]
fn reg_key(r: &Reg) -> u64 {
    if r.ty == Ty::Scalar {
        return (Ty::Scalar as u64) << 40;
    }
    (r.ty as u64) << 40
        | (r.nullable as u64) << 39
        | (r.ringbuf as u64) << 38
        | (r.rdonly as u64) << 37
        | r.off as u32 as u64
}

enum Flow {
    Next(usize),
    Done,
}

struct Env<'a> {
    input: &'a VerifyInput<'a>,
    st: &'a Structure,
    pending: Vec<(usize, State)>,
    ckpts: Vec<Checkpoint>,
    /// Per instruction: the distinct key masks of its checkpoints.
    masks: Vec<Vec<u16>>,
    /// Checkpoints by (instruction, key mask, key hash under the mask).
    buckets: HashMap<(u32, u16, u64), Vec<u32>, BuildHasherDefault<KeyHasher>>,
    /// Per instruction: checkpoints stored.
    nstates: Vec<u32>,
    /// Scratch id map of `subsumes` (reused to avoid an allocation per comparison).
    idmap: RefCell<Vec<(u32, u32)>>,
    processed: u64,
    last_ckpt_at: u64,
    /// Jumps, calls and exits processed, and their count at the last checkpoint.
    jumps: u64,
    last_ckpt_jumps: u64,
    ctx_mask: Vec<Option<u16>>,
    mem_state: Vec<u8>,
    ptr_kind: Vec<Option<Ty>>,
    depth: Vec<i64>,
    id_gen: u32,
    cur_fail: bool,
    /// Per instruction: registers whose scalar value may matter for safety
    /// from here on (the kernel's precision marks, propagated backwards
    /// over the control-flow graph from the uses seen so far).
    precise: Vec<u16>,
}

type Res<T> = Result<T, Rejection>;

pub(crate) fn run(input: &VerifyInput, st: &Structure) -> Res<Facts> {
    let n = input.insns.len();
    let mut env = Env {
        input,
        st,
        pending: Vec::new(),
        ckpts: Vec::new(),
        masks: vec![Vec::new(); n],
        buckets: HashMap::default(),
        nstates: vec![0; n],
        idmap: RefCell::new(Vec::new()),
        processed: 0,
        last_ckpt_at: 0,
        jumps: 0,
        last_ckpt_jumps: 0,
        ctx_mask: vec![None; n],
        mem_state: vec![0; n],
        ptr_kind: vec![None; n],
        depth: vec![0; st.subprogs.len()],
        id_gen: 0,
        cur_fail: false,
        precise: vec![0; n],
    };
    // A subprogram's return value may matter to its caller.
    for (pc, d) in st.decoded.iter().enumerate() {
        if matches!(d, Some(d) if matches!(d.ins, Instruction::Exit)) && st.subprog_of[pc] != 0 {
            env.seed(pc, 1);
        }
    }
    let mut f0 = Frame::new(0, usize::MAX, 0);
    f0.regs[1] = Reg::ptr(Ty::Ctx, 0);
    env.pending.push((0, State { frames: vec![f0], refs: Vec::new(), parent: None }));
    while let Some((pc, s)) = env.pending.pop() {
        env.explore(pc, s)?;
    }
    env.check_stack_depth()?;
    Ok(Facts {
        ctx_reg: env.ctx_mask.iter().map(|m| m.unwrap_or(0)).collect(),
        proven: env.mem_state.iter().map(|&m| m == 1).collect(),
        insns_processed: env.processed,
        elapsed: Duration::ZERO,
    })
}

fn width_bits(w: Width) -> u32 {
    if w == Width::W32 {
        32
    } else {
        64
    }
}

fn cmp_of(c: Cond) -> Cmp {
    match c {
        Cond::Eq => Cmp::Eq,
        Cond::Ne => Cmp::Ne,
        Cond::Gt => Cmp::Gt,
        Cond::Ge => Cmp::Ge,
        Cond::Lt => Cmp::Lt,
        Cond::Le => Cmp::Le,
        Cond::Sgt => Cmp::Sgt,
        Cond::Sge => Cmp::Sge,
        Cond::Slt => Cmp::Slt,
        Cond::Sle => Cmp::Sle,
        Cond::Set => Cmp::Set,
    }
}

fn op_sym(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div | AluOp::SDiv => "/=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Neg => "neg",
        AluOp::Mod | AluOp::SMod => "%=",
        AluOp::Xor => "^=",
        AluOp::Mov | AluOp::MovSx(_) => "=",
        AluOp::Arsh => "s>>=",
    }
}

/// Types for which the kernel refuses "same insn, different pointers".
fn mismatch_sensitive(t: Ty) -> bool {
    matches!(t, Ty::Ctx | Ty::Sock | Ty::SockCommon | Ty::Obj)
}

impl<'a> Env<'a> {
    fn maps(&self) -> &'a [MapInfo] {
        self.input.maps
    }

    fn new_id(&mut self) -> u32 {
        self.id_gen += 1;
        self.id_gen
    }

    fn reject(&self, pc: usize, rule: Rule, message: String, s: &State) -> Rejection {
        let mut regs = 0u16;
        if let Some(d) = self.st.decoded.get(pc).copied().flatten() {
            regs = use_def(&d.ins).0;
        }
        let fr = s.top();
        let mut parts = Vec::new();
        for (i, r) in fr.regs.iter().enumerate() {
            if r.ty != Ty::NotInit && (regs == 0 || regs & (1 << i) != 0) && i != 10 {
                parts.push(format!("R{i}={r}"));
            }
        }
        if s.frames.len() > 1 {
            parts.push(format!("frame={}", s.frames.len() - 1));
        }
        Rejection { pc, insn: crate::disasm(self.input.insns, pc), rule, message, state: parts.join(" ") }
    }

    /// A memory-safety failure: fatal in strict mode, recorded in permissive mode.
    /// The size of the memory a map-value, map-key or sized-memory pointer
    /// points into, and what to call it in messages; inner map-in-map
    /// values are refused with `inner_map` as the message.
    fn region_limit(&self, pc: usize, s: &State, r: &Reg, inner_map: &str) -> Res<(i64, &'static str)> {
        Ok(match r.ty {
            Ty::Mem => (r.aux as i64, "memory"),
            _ if r.aux == INNER_MAP => return Err(self.reject(pc, Rule::Unsupported, inner_map.into(), s)),
            Ty::MapKey => (self.maps()[r.aux as usize].key_size as i64, "map key"),
            _ => (self.maps()[r.aux as usize].value_size as i64, "map value"),
        })
    }

    fn mem_fail(&mut self, pc: usize, rule: Rule, message: String, s: &State) -> Res<()> {
        if self.input.mode == Mode::Permissive && rule.is_memory_safety() {
            self.cur_fail = true;
            Ok(())
        } else {
            Err(self.reject(pc, rule, message, s))
        }
    }

    fn read(&self, pc: usize, s: &State, r: u8) -> Res<Reg> {
        let reg = s.top().regs[r as usize];
        if reg.ty == Ty::NotInit {
            return Err(self.reject(pc, Rule::UninitRegister, format!("R{r} !read_ok"), s));
        }
        Ok(reg)
    }

    /// Marks registers `mask` as precise before instruction `pc` and
    /// propagates backwards.
    fn seed(&mut self, pc: usize, mask: u16) {
        let mut work = vec![(pc, mask & 0x3ff)];
        while let Some((pc, bits)) = work.pop() {
            let new = bits & !self.precise[pc];
            if new == 0 {
                continue;
            }
            self.precise[pc] |= new;
            for &p in &self.st.preds[pc] {
                let p = p as usize;
                let Some(d) = self.st.decoded[p] else { continue };
                let (_, defs) = use_def(&d.ins);
                let mut before = new & !defs;
                if new & defs != 0 {
                    before |= value_sources(&d.ins);
                }
                if before != 0 {
                    work.push((p, before));
                }
            }
        }
    }

    fn seed_operand(&mut self, pc: usize, r: Option<u8>) {
        if let Some(r) = r {
            self.seed(pc, 1 << r);
        }
    }

    fn done(&mut self, mut parent: Option<u32>) {
        while let Some(p) = parent {
            let c = &mut self.ckpts[p as usize];
            c.live -= 1;
            if c.live > 0 {
                break;
            }
            parent = c.parent;
        }
    }

    fn fork(&mut self, pc: usize, s: State) -> Res<()> {
        if let Some(p) = s.parent {
            self.ckpts[p as usize].live += 1;
        }
        self.pending.push((pc, s));
        if self.pending.len() > MAX_PENDING {
            let s = &self.pending[self.pending.len() - 1].1;
            return Err(self.reject(
                pc,
                Rule::TooComplex,
                format!("The sequence of {} jumps is too complex.", MAX_PENDING + 1),
                s,
            ));
        }
        Ok(())
    }

    fn explore(&mut self, mut pc: usize, mut s: State) -> Res<()> {
        loop {
            if self.st.prune_point[pc] && self.visit(pc, &mut s)? {
                self.done(s.parent);
                return Ok(());
            }
            self.processed += 1;
            if self.processed > BUDGET {
                return Err(self.reject(
                    pc,
                    Rule::TooComplex,
                    format!("BPF program is too large. Processed {} insn", self.processed),
                    &s,
                ));
            }
            let fr = s.top();
            let mut mask = 0u16;
            for (i, r) in fr.regs.iter().enumerate() {
                if r.ty == Ty::Ctx && r.off == 0 && r.val.const_value() == Some(0) {
                    mask |= 1 << i;
                }
            }
            self.ctx_mask[pc] = Some(self.ctx_mask[pc].map_or(mask, |m| m & mask));
            let Some(d) = self.st.decoded[pc] else {
                return Err(self.reject(pc, Rule::JumpIntoLddw, "jump into the middle of ldimm64".into(), &s));
            };
            if d.fp_write {
                return Err(self.reject(pc, Rule::FramePointerWrite, "frame pointer is read only".into(), &s));
            }
            self.cur_fail = false;
            if matches!(
                d.ins,
                Instruction::Ja { .. } | Instruction::Jump { .. } | Instruction::Call(_) | Instruction::Exit
            ) {
                self.jumps += 1;
            }
            let flow = self.step(pc, d.ins, &mut s)?;
            if self.cur_fail
                && matches!(d.ins, Instruction::Store { .. } | Instruction::Atomic { .. } | Instruction::Call(_))
            {
                // Permissive mode let an access through that the checks
                // could not prove: it still happens at run time (checked
                // there), and if it writes it may land anywhere in the
                // stack (misaligned, out of its frame into the caller's,
                // at an unbounded offset). Forget what every frame held.
                s.havoc_stacks();
            }
            if matches!(d.ins, Instruction::Load { .. } | Instruction::Store { .. } | Instruction::Atomic { .. }) {
                let m = &mut self.mem_state[pc];
                if self.cur_fail {
                    *m = 2;
                } else if *m == 0 {
                    *m = 1;
                }
            }
            match flow {
                Flow::Next(n) => pc = n,
                Flow::Done => {
                    self.done(s.parent);
                    return Ok(());
                }
            }
        }
    }

    /// A cheap summary of the state for pruning: per live register of the
    /// top frame, its type, nullness, flags and fixed offset (what
    /// `regsafe` requires to be equal), 0 for registers that are not live
    /// or not initialised (an old state's uninitialised register subsumes
    /// anything), plus the frame count. Comparing keys rejects most
    /// candidate checkpoints without touching their frames.
    fn key(&self, s: &State, pc: usize) -> Key {
        let live = self.st.live_in[pc];
        let fr = s.top();
        let mut regs = [0u64; 10];
        for (r, k) in regs.iter_mut().enumerate() {
            let reg = &fr.regs[r];
            if live & (1 << r) != 0 && reg.ty != Ty::NotInit {
                *k = reg_key(reg);
            }
        }
        Key { frames: s.frames.len() as u32, regs }
    }

    /// State pruning at a prune point. Returns true if the path is pruned.
    fn visit(&mut self, pc: usize, s: &mut State) -> Res<bool> {
        let mut in_progress = false;
        let key = self.key(s, pc);
        // Candidates: the checkpoints whose key, under their own mask,
        // hashes like the new state's key under that mask.
        for mi in 0..self.masks[pc].len() {
            let mask = self.masks[pc][mi];
            let Some(bucket) = self.buckets.get(&(pc as u32, mask, key.hash(mask))) else { continue };
            for &ci in bucket {
                let c = &self.ckpts[ci as usize];
                if c.live > 0 {
                    if c.frames.len() == s.frames.len()
                        && c.frames[c.frames.len() - 1].regs == s.top().regs
                        && c.frames == s.frames
                        && c.refs.len() == s.refs.len()
                    {
                        return Err(self.reject(
                            pc,
                            Rule::InfiniteLoop,
                            format!("infinite loop detected at insn {pc}"),
                            s,
                        ));
                    }
                    in_progress = true;
                    continue;
                }
                if self.subsumes(c, s, pc) {
                    return Ok(true);
                }
            }
        }
        // Like the kernel, checkpoint only after a few jumps and
        // instructions since the last one (cheaper, same verdicts).
        let sparse = self.jumps - self.last_ckpt_jumps < 2 || self.processed - self.last_ckpt_at < 8;
        if sparse
            || (in_progress && self.processed - self.last_ckpt_at < 100)
            || self.nstates[pc] as usize >= MAX_STATES_PER_INSN
        {
            return Ok(false);
        }
        let idx = self.ckpts.len() as u32;
        self.ckpts.push(Checkpoint { frames: s.frames.clone(), refs: s.refs.clone(), parent: s.parent, live: 1 });
        s.parent = Some(idx);
        let mask = key.mask();
        if !self.masks[pc].contains(&mask) {
            self.masks[pc].push(mask);
        }
        self.buckets.entry((pc as u32, mask, key.hash(mask))).or_default().push(idx);
        self.nstates[pc] += 1;
        self.last_ckpt_at = self.processed;
        self.last_ckpt_jumps = self.jumps;
        Ok(false)
    }

    fn subsumes(&self, c: &Checkpoint, s: &State, pc: usize) -> bool {
        let mut idmap = self.idmap.borrow_mut();
        idmap.clear();
        let idmap = &mut *idmap;
        if c.frames.len() != s.frames.len() || c.refs.len() != s.refs.len() {
            return false;
        }
        let nf = s.frames.len();
        for fi in 0..nf {
            let (of, cf) = (&c.frames[fi], &s.frames[fi]);
            if of.callsite != cf.callsite || of.callback != cf.callback {
                return false;
            }
            let live = if fi == nf - 1 {
                self.st.live_in[pc]
            } else {
                let ret = s.frames[fi + 1].callsite + 1;
                self.st.live_in.get(ret).copied().unwrap_or(0x3c0) & 0x3c0
            };
            let at = if fi == nf - 1 { pc } else { s.frames[fi + 1].callsite + 1 };
            let precise = self.precise.get(at).copied().unwrap_or(0x3ff);
            for r in 0..10 {
                if live & (1 << r) == 0 {
                    continue;
                }
                let (o, c) = (&of.regs[r], &cf.regs[r]);
                if precise & (1 << r) == 0 && o.ty == Ty::Scalar && c.ty == Ty::Scalar {
                    continue;
                }
                if !regsafe(o, c, idmap) {
                    return false;
                }
            }
            if !stacksafe(&of.stack, &cf.stack, idmap) {
                return false;
            }
        }
        c.refs.iter().zip(&s.refs).all(|(a, b)| check_id(a.0, b.0, idmap))
    }

    fn step(&mut self, pc: usize, ins: Instruction, s: &mut State) -> Res<Flow> {
        match ins {
            Instruction::Alu { width, op, dst, src } => {
                self.alu(pc, width_bits(width), op, dst.0, src, s)?;
                Ok(Flow::Next(pc + 1))
            }
            Instruction::Endian { dst, .. } => {
                self.read(pc, s, dst.0)?;
                s.cur().regs[dst.0 as usize] = Reg::unknown();
                Ok(Flow::Next(pc + 1))
            }
            Instruction::LoadImm64 { dst, kind, imm, next_imm } => {
                let r = self.ld_imm64(pc, kind, imm, next_imm, s)?;
                s.cur().regs[dst.0 as usize] = r;
                Ok(Flow::Next(pc + 2))
            }
            Instruction::Load { size, signed, dst, src, off } => {
                let base = self.read(pc, s, src.0)?;
                self.note_ptr_kind(pc, base.ty, s)?;
                let v = self.access(pc, s, src.0, base, off, size.bytes() as u32, None, signed)?;
                s.cur().regs[dst.0 as usize] = v.unwrap_or_else(Reg::unknown);
                Ok(Flow::Next(pc + 1))
            }
            Instruction::Store { size, dst, off, src } => {
                let base = self.read(pc, s, dst.0)?;
                let value = match src {
                    Operand::Reg(r) => {
                        self.seed(pc, 1 << r.0);
                        self.read(pc, s, r.0)?
                    }
                    Operand::Imm(i) => Reg::scalar(Scalar::konst(i as i64 as u64)),
                };
                self.note_ptr_kind(pc, base.ty, s)?;
                self.access(pc, s, dst.0, base, off, size.bytes() as u32, Some(value), false)?;
                Ok(Flow::Next(pc + 1))
            }
            Instruction::Atomic { size, op, fetch, dst, src, off } => {
                let base = self.read(pc, s, dst.0)?;
                self.read(pc, s, src.0)?;
                self.seed(pc, 1 << src.0 | 1);
                if op == AtomicOp::CmpXchg {
                    self.read(pc, s, 0)?;
                }
                if matches!(base.ty, Ty::Ctx | Ty::Pkt | Ty::PktMeta | Ty::Sock | Ty::SockCommon | Ty::MapKey) {
                    return Err(self.reject(
                        pc,
                        Rule::AtomicNotAllowed,
                        format!("BPF_ATOMIC stores into R{} {} is not allowed", dst.0, base.type_name()),
                        s,
                    ));
                }
                let load_reg = if op == AtomicOp::CmpXchg {
                    Some(0)
                } else if fetch {
                    Some(src.0)
                } else {
                    None
                };
                if load_reg == Some(dst.0) {
                    // The kernel checks the write through the register after
                    // the fetch has overwritten it.
                    return Err(self.reject(
                        pc,
                        Rule::AtomicNotAllowed,
                        format!("BPF_ATOMIC fetches into its own base register R{}", dst.0),
                        s,
                    ));
                }
                let bytes = size.bytes() as u32;
                self.access(pc, s, dst.0, base, off, bytes, None, false)?;
                self.access(pc, s, dst.0, base, off, bytes, Some(Reg::unknown()), false)?;
                let mut v = Scalar::UNKNOWN;
                v.coerce(bytes);
                if op == AtomicOp::CmpXchg {
                    s.cur().regs[0] = Reg::scalar(v);
                } else if fetch {
                    s.cur().regs[src.0 as usize] = Reg::scalar(v);
                }
                Ok(Flow::Next(pc + 1))
            }
            Instruction::LoadPacket { mode, src, .. } => {
                if self.input.prog_type != ProgType::SocketFilter {
                    return Err(self.reject(
                        pc,
                        Rule::LdAbs,
                        "BPF_LD_[ABS|IND] instructions not allowed for this program type".into(),
                        s,
                    ));
                }
                let r6 = self.read(pc, s, 6)?;
                if r6.ty != Ty::Ctx || r6.off != 0 {
                    return Err(self.reject(
                        pc,
                        Rule::LdAbs,
                        format!("BPF_LD_[ABS|IND] needs the context in R6 (R6 is {})", r6.type_name()),
                        s,
                    ));
                }
                if mode == uxdp_isa::PacketMode::Ind {
                    self.read(pc, s, src.0)?;
                }
                if !s.refs.is_empty() {
                    return Err(self.reject(
                        pc,
                        Rule::ReferenceLeak,
                        "BPF_LD_[ABS|IND] would lead to reference leak".into(),
                        s,
                    ));
                }
                let fr = s.cur();
                for r in 1..=5 {
                    fr.regs[r] = Reg::NOT_INIT;
                }
                fr.regs[0] = Reg::unknown();
                Ok(Flow::Next(pc + 1))
            }
            Instruction::Ja { .. } => Ok(Flow::Next(ins.jump_target(pc).unwrap_or(0) as usize)),
            Instruction::Jump { width, cond, dst, src, off } => {
                self.cond_jump(pc, width_bits(width), cmp_of(cond), dst.0, src, off, s)
            }
            Instruction::Call(CallTarget::Helper(id)) => self.call_helper(pc, id, s),
            Instruction::Call(CallTarget::Local(rel)) => {
                let target = (pc as i64 + 1 + rel as i64) as usize;
                if s.frames.len() >= MAX_FRAMES {
                    return Err(self.reject(
                        pc,
                        Rule::CallDepth,
                        format!("the call stack of {} frames is too deep", s.frames.len() + 1),
                        s,
                    ));
                }
                self.seed(pc, 0b11_1110);
                let caller = s.top().regs;
                let mut f = Frame::new(s.frames.len(), pc, self.st.subprog_of[target]);
                f.regs[1..6].copy_from_slice(&caller[1..6]);
                s.frames.push(f);
                Ok(Flow::Next(target))
            }
            Instruction::Call(CallTarget::Kfunc { btf_id, off }) => self.call_kfunc(pc, btf_id, off, s),
            Instruction::Callx { .. } => {
                Err(self.reject(pc, Rule::InvalidInstruction, "callx is not supported".into(), s))
            }
            Instruction::Exit => self.exit(pc, s),
        }
    }

    fn note_ptr_kind(&mut self, pc: usize, t: Ty, s: &State) -> Res<()> {
        match self.ptr_kind[pc] {
            None => self.ptr_kind[pc] = Some(t),
            Some(prev) if prev != t && (mismatch_sensitive(prev) || mismatch_sensitive(t)) => {
                return Err(self.reject(
                    pc,
                    Rule::PointerTypeMismatch,
                    "same insn cannot be used with different pointers".into(),
                    s,
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn exit(&mut self, pc: usize, s: &mut State) -> Res<Flow> {
        // A static subprogram may return nothing: R0 is checked when the
        // caller reads it.
        let r0 = if s.frames.len() > 1 && s.top().callback.is_none() { s.top().regs[0] } else { self.read(pc, s, 0)? };
        if s.frames.len() > 1 {
            let callee_no = (s.frames.len() - 1) as u32;
            if r0.ty == Ty::Stack && r0.aux == callee_no {
                return Err(self.reject(pc, Rule::ReturnValue, "cannot return stack pointer to the caller".into(), s));
            }
            let callee = s.frames.pop().unwrap_or_else(|| Frame::new(0, 0, 0));
            let ret = if callee.callback.is_some() {
                if r0.ty != Ty::Scalar {
                    return Err(self.reject(
                        pc,
                        Rule::ReturnValue,
                        format!("At callback return the register R0 is not a known value ({})", r0.type_name()),
                        s,
                    ));
                }
                if r0.val.smin < 0 || r0.val.smax > 1 {
                    return Err(self.reject(
                        pc,
                        Rule::ReturnValue,
                        format!(
                            "At callback return the register R0 has smin={} smax={} should have been in [0, 1]",
                            r0.val.smin, r0.val.smax
                        ),
                        s,
                    ));
                }
                Reg::unknown()
            } else {
                r0
            };
            let fr = s.cur();
            fr.regs[0] = ret;
            for r in 1..=5 {
                fr.regs[r] = Reg::NOT_INIT;
            }
            return Ok(Flow::Next(callee.callsite + 1));
        }
        if let Some(&(id, at)) = s.refs.first() {
            return Err(self.reject(
                pc,
                Rule::ReferenceLeak,
                format!("Unreleased reference id={id} alloc_insn={at}"),
                s,
            ));
        }
        Ok(Flow::Done)
    }

    fn ld_imm64(&mut self, pc: usize, kind: LoadImmKind, imm: i32, next_imm: i32, s: &State) -> Res<Reg> {
        let map_at = |env: &Self| -> Res<usize> {
            let i = imm as u32 as usize;
            if i >= env.maps().len() {
                return Err(env.reject(
                    pc,
                    Rule::InvalidMap,
                    format!("fd {imm} is not pointing to valid bpf_map ({} maps)", env.maps().len()),
                    s,
                ));
            }
            Ok(i)
        };
        Ok(match kind {
            LoadImmKind::Imm64 => Reg::scalar(Scalar::konst((imm as u32 as u64) | ((next_imm as u32 as u64) << 32))),
            LoadImmKind::MapFd | LoadImmKind::MapIdx => Reg::ptr(Ty::MapPtr, map_at(self)? as u32),
            LoadImmKind::MapValue | LoadImmKind::MapIdxValue => {
                let i = map_at(self)?;
                let m = &self.maps()[i];
                if !helpers::direct_value_ok(m.map_type) {
                    return Err(self.reject(
                        pc,
                        Rule::InvalidMap,
                        format!("map '{}' (type {}) does not support direct value access", m.name, m.map_type),
                        s,
                    ));
                }
                if next_imm as u32 >= m.value_size {
                    return Err(self.reject(
                        pc,
                        Rule::InvalidMap,
                        format!(
                            "invalid access to map value pointer, value_size={} off={}",
                            m.value_size, next_imm as u32
                        ),
                        s,
                    ));
                }
                let mut r = Reg::ptr(Ty::MapValue, i as u32);
                r.off = next_imm;
                r
            }
            LoadImmKind::Func => Reg::ptr(Ty::Func, (pc as i64 + 1 + imm as i64) as u32),
            LoadImmKind::BtfId => {
                return Err(self.reject(pc, Rule::Unsupported, "lddw of a BTF id is not supported".into(), s))
            }
        })
    }

    fn alu(&mut self, pc: usize, bits: u32, op: AluOp, dst: u8, src: Operand, s: &mut State) -> Res<()> {
        let imm_val = |i: i32| {
            if bits == 64 {
                Scalar::konst(i as i64 as u64)
            } else {
                Scalar::konst(i as u32 as u64)
            }
        };
        let sv = match src {
            Operand::Reg(r) if op != AluOp::Neg => self.read(pc, s, r.0)?,
            Operand::Imm(i) => Reg::scalar(imm_val(i)),
            Operand::Reg(_) => Reg::scalar(Scalar::konst(0)),
        };
        match op {
            AluOp::Mov => {
                let mut out = sv;
                if bits == 64 {
                    if let Operand::Reg(r) = src {
                        if sv.ty == Ty::Scalar && !sv.val.is_const() && sv.id == 0 {
                            // Link the copies so that bounds learnt on one apply to both.
                            let id = self.new_id();
                            s.cur().regs[r.0 as usize].id = id;
                            out.id = id;
                        }
                    }
                } else if sv.ty == Ty::Scalar {
                    let keep = sv.val.umax <= u32::MAX as u64;
                    let mut v = sv.val;
                    v.zext32();
                    out = Reg::scalar(v);
                    if keep && !v.is_const() && matches!(src, Operand::Reg(_)) {
                        let id = if sv.id == 0 { self.new_id() } else { sv.id };
                        if let Operand::Reg(r) = src {
                            s.cur().regs[r.0 as usize].id = id;
                        }
                        out.id = id;
                    }
                } else {
                    out = Reg::scalar(Scalar::unknown_of_size(4));
                }
                s.cur().regs[dst as usize] = out;
                return Ok(());
            }
            AluOp::MovSx(n) => {
                let mut v = if sv.ty == Ty::Scalar { sv.val } else { Scalar::UNKNOWN };
                v.sign_extend(n as u32 / 8);
                if bits == 32 {
                    v.zext32();
                }
                s.cur().regs[dst as usize] = Reg::scalar(v);
                return Ok(());
            }
            _ => {}
        }
        let dv = self.read(pc, s, dst)?;
        if let (AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod, Operand::Imm(0)) = (op, src) {
            return Err(self.reject(pc, Rule::InvalidAluOperand, "div by zero".into(), s));
        }
        if let (AluOp::Lsh | AluOp::Rsh | AluOp::Arsh, Operand::Imm(k)) = (op, src) {
            if k < 0 || k as u32 >= bits {
                return Err(self.reject(pc, Rule::InvalidAluOperand, format!("invalid shift {k}"), s));
            }
        }
        if dv.is_ptr() || sv.is_ptr() {
            let out = self.ptr_alu(pc, bits, op, dst, src, dv, sv, s)?;
            s.cur().regs[dst as usize] = out;
            return Ok(());
        }
        let (a, b) = (dv.val, sv.val);
        let shift_ok = |b: &Scalar| {
            let c = if bits == 32 { b.is_const32().then_some(b.var.value as u32 as u64) } else { b.const_value() };
            matches!(c, Some(k) if k < bits as u64)
        };
        let unknown = || {
            if bits == 32 {
                Scalar::unknown_of_size(4)
            } else {
                Scalar::UNKNOWN
            }
        };
        let v = match op {
            AluOp::Add => a.alu(Op::Add, bits, &b),
            AluOp::Sub => a.alu(Op::Sub, bits, &b),
            AluOp::Mul => a.alu(Op::Mul, bits, &b),
            AluOp::And => a.alu(Op::And, bits, &b),
            AluOp::Or => a.alu(Op::Or, bits, &b),
            AluOp::Xor => a.alu(Op::Xor, bits, &b),
            AluOp::Lsh if shift_ok(&b) => a.alu(Op::Lsh, bits, &b),
            AluOp::Rsh if shift_ok(&b) => a.alu(Op::Rsh, bits, &b),
            AluOp::Arsh if shift_ok(&b) => a.alu(Op::Arsh, bits, &b),
            AluOp::Neg => Scalar::konst(0).alu(Op::Sub, bits, &a),
            _ => unknown(),
        };
        let v = if v.is_consistent() { v } else { unknown() };
        s.cur().regs[dst as usize] = Reg::scalar(v);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn ptr_alu(
        &mut self,
        pc: usize,
        bits: u32,
        op: AluOp,
        dst: u8,
        src: Operand,
        dv: Reg,
        sv: Reg,
        s: &State,
    ) -> Res<Reg> {
        if dv.is_ptr() && sv.is_ptr() {
            if op == AluOp::Sub {
                return Ok(Reg::unknown());
            }
            return Err(self.reject(
                pc,
                Rule::PointerArithmetic,
                format!("R{dst} pointer {} pointer prohibited", op_sym(op)),
                s,
            ));
        }
        if bits == 32 {
            if op == AluOp::Sub {
                return Ok(Reg::unknown());
            }
            return Err(self.reject(
                pc,
                Rule::PointerArithmetic,
                format!("R{dst} 32-bit pointer arithmetic prohibited"),
                s,
            ));
        }
        let ptr_is_dst = dv.is_ptr();
        let (ptr, offr) = if ptr_is_dst { (dv, sv) } else { (sv, dv) };
        match (ptr_is_dst, src) {
            (true, Operand::Reg(r)) => self.seed(pc, 1 << r.0),
            (false, _) => self.seed(pc, 1 << dst),
            _ => {}
        }
        let tn = ptr.type_name();
        match op {
            AluOp::Add => {}
            AluOp::Sub if ptr_is_dst => {}
            AluOp::Sub => {
                return Err(self.reject(
                    pc,
                    Rule::PointerArithmetic,
                    format!("R{dst} tried to subtract pointer from scalar"),
                    s,
                ))
            }
            AluOp::And | AluOp::Or | AluOp::Xor => {
                return Err(self.reject(
                    pc,
                    Rule::PointerArithmetic,
                    format!("R{dst} bitwise operator {} on pointer prohibited", op_sym(op)),
                    s,
                ))
            }
            _ => {
                return Err(self.reject(
                    pc,
                    Rule::PointerArithmetic,
                    format!("R{dst} pointer arithmetic with {} operator prohibited", op_sym(op)),
                    s,
                ))
            }
        }
        if ptr.nullable {
            return Err(self.reject(
                pc,
                Rule::PointerArithmetic,
                format!("R{dst} pointer arithmetic on {tn} prohibited, null-check it first"),
                s,
            ));
        }
        let known_zero = offr.val.const_value() == Some(0);
        match ptr.ty {
            Ty::Ctx | Ty::MapValue | Ty::MapKey | Ty::Stack | Ty::PktMeta | Ty::Pkt | Ty::Mem | Ty::Func | Ty::Obj => {}
            Ty::MapPtr if known_zero && op == AluOp::Add => {}
            _ => {
                return Err(self.reject(
                    pc,
                    Rule::PointerArithmetic,
                    format!("R{dst} pointer arithmetic on {tn} prohibited"),
                    s,
                ))
            }
        }
        self.sane_offset(pc, &offr.val, &tn, s)?;
        let mut out = ptr;
        out.id = ptr.id;
        if let Some(k) = offr.val.const_value() {
            let k = k as i64;
            let new = if op == AluOp::Add { ptr.off as i64 + k } else { ptr.off as i64 - k };
            if new.abs() >= MAX_VAR_OFF {
                return Err(self.reject(
                    pc,
                    Rule::PointerArithmetic,
                    format!("{tn} pointer offset {new} is not allowed"),
                    s,
                ));
            }
            out.off = new as i32;
        } else {
            let o = if op == AluOp::Add { Op::Add } else { Op::Sub };
            out.val = ptr.val.alu(o, 64, &offr.val);
            if matches!(ptr.ty, Ty::Pkt | Ty::PktMeta) {
                out.id = self.new_id();
                out.aux = 0;
            }
        }
        self.sane_offset(pc, &out.val, &tn, s)?;
        Ok(out)
    }

    fn sane_offset(&self, pc: usize, v: &Scalar, tn: &str, s: &State) -> Res<()> {
        if let Some(k) = v.const_value() {
            let k = k as i64;
            if k >= MAX_VAR_OFF || k <= -MAX_VAR_OFF {
                return Err(self.reject(
                    pc,
                    Rule::PointerArithmetic,
                    format!("math between {tn} pointer and {k} is not allowed"),
                    s,
                ));
            }
            return Ok(());
        }
        if v.smin == i64::MIN {
            return Err(self.reject(
                pc,
                Rule::PointerArithmetic,
                format!("math between {tn} pointer and register with unbounded min value is not allowed"),
                s,
            ));
        }
        if v.smin >= MAX_VAR_OFF || v.smin <= -MAX_VAR_OFF {
            return Err(self.reject(
                pc,
                Rule::PointerArithmetic,
                format!("value {} makes {tn} pointer be out of bounds", v.smin),
                s,
            ));
        }
        Ok(())
    }

    /// Load (`value` None) or store through `base`; returns the loaded value.
    #[allow(clippy::too_many_arguments)]
    fn access(
        &mut self,
        pc: usize,
        s: &mut State,
        regno: u8,
        base: Reg,
        insn_off: i16,
        size: u32,
        value: Option<Reg>,
        signed: bool,
    ) -> Res<Option<Reg>> {
        let write = value.is_some();
        let sz = size as i64;
        let dir = if write { "write" } else { "read" };
        let load = |mut v: Scalar| {
            if size < 8 {
                if signed {
                    v.sign_extend(size);
                } else {
                    v.coerce(size);
                }
            }
            Some(Reg::scalar(v))
        };
        if base.nullable {
            self.mem_fail(pc, Rule::NullDeref, format!("R{regno} invalid mem access '{}'", base.type_name()), s)?;
            return Ok(if write { None } else { load(Scalar::UNKNOWN) });
        }
        let off = base.off as i64 + insn_off as i64;
        match base.ty {
            Ty::Ctx => {
                if base.off != 0 {
                    return Err(self.reject(
                        pc,
                        Rule::CtxModified,
                        format!("dereference of modified ctx ptr R{regno} off={} disallowed", base.off),
                        s,
                    ));
                }
                if base.val.const_value() != Some(0) {
                    return Err(self.reject(
                        pc,
                        Rule::CtxModified,
                        format!("variable ctx access var_off={} disallowed", base.val.var),
                        s,
                    ));
                }
                match ctx::access(self.input.prog_type, self.input.attach, off, sz, write) {
                    Err(why) => Err(self.reject(
                        pc,
                        Rule::CtxAccess,
                        format!("invalid bpf_context access off={off} size={size} ({why})"),
                        s,
                    )),
                    Ok(_) if write => Ok(None),
                    Ok(_) if signed => Err(self.reject(
                        pc,
                        Rule::CtxAccess,
                        format!("invalid bpf_context access off={off} size={size} (sign-extending load)"),
                        s,
                    )),
                    Ok(CtxField::Packet) => Ok(Some(Reg::ptr(Ty::Pkt, 0))),
                    Ok(CtxField::PacketEnd) => Ok(Some(Reg::ptr(Ty::PktEnd, 0))),
                    Ok(CtxField::PacketMeta) => Ok(Some(Reg::ptr(Ty::PktMeta, 0))),
                    Ok(CtxField::SockCommonOrNull) => {
                        let mut r = Reg::ptr(Ty::SockCommon, 0);
                        r.nullable = true;
                        r.id = self.new_id();
                        Ok(Some(r))
                    }
                    Ok(CtxField::Scalar) => Ok(load(Scalar::UNKNOWN)),
                }
            }
            Ty::Stack => self.stack_access(pc, s, regno, base, off, size, value, signed, dir),
            Ty::Pkt | Ty::PktMeta => {
                if base.val.smin < 0 {
                    self.mem_fail(
                        pc,
                        Rule::UnboundedAccess,
                        format!(
                            "R{regno} min value is negative, either use unsigned index or do a if (index >=0) check."
                        ),
                        s,
                    )?;
                } else if off < 0 || off + sz > base.aux as i64 {
                    self.mem_fail(
                        pc,
                        Rule::PacketBounds,
                        format!(
                            "invalid access to packet, off={off} size={size}, R{regno}(id={},off={},r={})",
                            base.id, base.off, base.aux
                        ),
                        s,
                    )?;
                }
                Ok(if write { None } else { load(Scalar::UNKNOWN) })
            }
            Ty::MapValue | Ty::MapKey | Ty::Mem => {
                let (limit, what) =
                    self.region_limit(pc, s, &base, "values of inner maps of map-in-map are not modelled")?;
                if write && base.ty == Ty::Mem && base.rdonly {
                    return Err(self.reject(
                        pc,
                        Rule::ReadOnly,
                        format!("R{regno} cannot write into {}", base.type_name()),
                        s,
                    ));
                }
                if write && base.ty == Ty::MapKey {
                    return Err(self.reject(
                        pc,
                        Rule::ReadOnly,
                        format!("write to change key R{regno} not allowed"),
                        s,
                    ));
                }
                if write && base.ty == Ty::MapValue && self.maps()[base.aux as usize].flags & BPF_F_RDONLY_PROG != 0 {
                    return Err(self.reject(
                        pc,
                        Rule::ReadOnly,
                        format!("write into map forbidden, value_size={limit} off={off} size={size}"),
                        s,
                    ));
                }
                self.region_check(pc, s, regno, &base, off, sz, limit, what)?;
                Ok(if write { None } else { load(Scalar::UNKNOWN) })
            }
            Ty::Obj => {
                let obj = Obj::from_aux(base.aux);
                let tn = base.type_name();
                if !base.val.is_const() {
                    return Err(self.reject(
                        pc,
                        Rule::InvalidMemAccess,
                        format!("R{regno} is {tn} invalid variable offset: off={off}, var_off={}", base.val.var),
                        s,
                    ));
                }
                let off = off + base.val.var.value as i64;
                if off < 0 {
                    return Err(self.reject(
                        pc,
                        Rule::InvalidMemAccess,
                        format!("R{regno} is {tn} invalid negative access: off={off}"),
                        s,
                    ));
                }
                if off + sz > obj.size() {
                    return Err(self.reject(
                        pc,
                        Rule::InvalidMemAccess,
                        format!("access beyond struct {} at off {off} size {size}", obj.name()),
                        s,
                    ));
                }
                if write && (off != kfuncs::NF_CONN_MARK || size != 4) {
                    return Err(self.reject(
                        pc,
                        Rule::ReadOnly,
                        format!("no write support to {} at off {off} size {size} (only the 4-byte mark)", obj.name()),
                        s,
                    ));
                }
                Ok(if write { None } else { load(Scalar::UNKNOWN) })
            }
            Ty::Sock | Ty::SockCommon => {
                if write {
                    return Err(self.reject(
                        pc,
                        Rule::InvalidMemAccess,
                        format!("cannot write into {}", base.type_name()),
                        s,
                    ));
                }
                if !base.val.is_const() || off < 0 || off + sz > SOCK_SIZE || size > 4 || off % sz != 0 {
                    return Err(self.reject(
                        pc,
                        Rule::InvalidMemAccess,
                        format!("invalid {} access off={off} size={size}", base.type_name()),
                        s,
                    ));
                }
                Ok(load(Scalar::UNKNOWN))
            }
            _ => {
                self.mem_fail(
                    pc,
                    Rule::InvalidMemAccess,
                    format!("R{regno} invalid mem access '{}'", base.type_name()),
                    s,
                )?;
                Ok(if write { None } else { load(Scalar::UNKNOWN) })
            }
        }
    }

    /// Bounds of a map value, map key or memory region of `limit` bytes.
    #[allow(clippy::too_many_arguments)]
    fn region_check(
        &mut self,
        pc: usize,
        s: &State,
        regno: u8,
        base: &Reg,
        off: i64,
        sz: i64,
        limit: i64,
        what: &str,
    ) -> Res<()> {
        let rule = if base.ty == Ty::MapValue { Rule::MapValueBounds } else { Rule::MemBounds };
        let smin = base.val.smin;
        if smin < 0 && (smin == i64::MIN || off + smin < 0) {
            return self.mem_fail(
                pc,
                Rule::UnboundedAccess,
                format!("R{regno} min value is negative, either use unsigned index or do a if (index >=0) check."),
                s,
            );
        }
        if off + smin < 0 || off + smin + sz > limit {
            return self.mem_fail(
                pc,
                rule,
                format!("invalid access to {what}, size={limit} off={} size={sz}", off + smin),
                s,
            );
        }
        if base.val.umax >= MAX_VAR_OFF as u64 {
            return self.mem_fail(
                pc,
                Rule::UnboundedAccess,
                format!("R{regno} unbounded memory access, make sure to bounds check any such access"),
                s,
            );
        }
        if off + base.val.umax as i64 + sz > limit {
            return self.mem_fail(
                pc,
                rule,
                format!(
                    "invalid access to {what}, size={limit} off={} size={sz} (R{regno} max value is {})",
                    off + base.val.umax as i64,
                    base.val.umax
                ),
                s,
            );
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn stack_access(
        &mut self,
        pc: usize,
        s: &mut State,
        regno: u8,
        base: Reg,
        off: i64,
        size: u32,
        value: Option<Reg>,
        signed: bool,
        dir: &str,
    ) -> Res<Option<Reg>> {
        let sz = size as i64;
        let fi = base.aux as usize;
        let load = |mut v: Scalar| {
            if size < 8 {
                if signed {
                    v.sign_extend(size);
                } else {
                    v.coerce(size);
                }
            }
            Some(Reg::scalar(v))
        };
        if !base.val.is_const() {
            let (smin, smax) = (base.val.smin, base.val.smax);
            if smin == i64::MIN || smax == i64::MAX || off + smin < -MAX_STACK || off + smax + sz > 0 {
                self.mem_fail(
                    pc,
                    Rule::StackBounds,
                    format!(
                        "invalid variable-offset {dir} of stack R{regno} var_off={} off={off} size={size}",
                        base.val.var
                    ),
                    s,
                )?;
                return Ok(if value.is_some() { None } else { load(Scalar::UNKNOWN) });
            }
            let (lo, hi) = (off + smin, off + smax + sz);
            self.note_depth(s, fi, lo);
            if value.is_some() {
                s.destroy_dynptrs(fi, lo, hi);
                s.frames[fi].clobber(lo, hi, SlotKind::Misc);
                return Ok(None);
            }
            if s.dynptr_in(fi, lo, hi) {
                self.mem_fail(
                    pc,
                    Rule::InvalidMemAccess,
                    format!(
                        "invalid read from stack R{regno} var_off={} off={off} size={size}: it holds a dynptr",
                        base.val.var
                    ),
                    s,
                )?;
            }
            return Ok(load(Scalar::UNKNOWN));
        }
        let o = off + base.val.var.value as i64;
        if o < -MAX_STACK || o + sz > 0 {
            self.mem_fail(pc, Rule::StackBounds, format!("invalid {dir} stack R{regno} off={o} size={size}"), s)?;
            return Ok(if value.is_some() { None } else { load(Scalar::UNKNOWN) });
        }
        if o % sz != 0 {
            self.mem_fail(pc, Rule::StackBounds, format!("misaligned stack access off {o} size {size}"), s)?;
            return Ok(if value.is_some() { None } else { load(Scalar::UNKNOWN) });
        }
        self.note_depth(s, fi, o);
        let i = ((-o - 1) / 8) as usize;
        let b = (o + 8 * (i as i64 + 1)) as usize;
        if let Some(v) = value {
            s.destroy_dynptrs(fi, o, o + sz);
            if v.is_ptr() && size != 8 {
                self.mem_fail(pc, Rule::InvalidMemAccess, "invalid size of register spill".into(), s)?;
                s.frames[fi].clobber(o, o + sz, SlotKind::Misc);
                return Ok(None);
            }
            let frame = &mut s.frames[fi];
            if size == 8 || (b == 0 && v.ty == Ty::Scalar) {
                let slot = frame.slot_mut(i);
                slot.scrub();
                for (j, k) in slot.kind.iter_mut().enumerate() {
                    if j < size as usize {
                        *k = SlotKind::Spill;
                    }
                }
                slot.spill = v;
                if size < 8 && v.val.umax >> (size * 8) != 0 {
                    slot.spill.id = 0;
                }
            } else {
                let kind = if v.is_const_zero() { SlotKind::Zero } else { SlotKind::Misc };
                frame.clobber(o, o + sz, kind);
            }
            return Ok(None);
        }
        let slot = s.frames[fi].stack.get(i).cloned().unwrap_or(Slot::EMPTY);
        if slot.is_dynptr() {
            self.mem_fail(
                pc,
                Rule::InvalidMemAccess,
                format!("invalid read from stack off {o} size {size}: it holds a dynptr"),
                s,
            )?;
            return Ok(load(Scalar::UNKNOWN));
        }
        if slot.is_spill() {
            let sp = slot.spill;
            let spill_size = slot.spill_size();
            if size == 8 {
                return Ok(Some(if spill_size == 8 { sp } else { Reg::unknown() }));
            }
            if sp.ty != Ty::Scalar {
                self.mem_fail(pc, Rule::InvalidMemAccess, "invalid size of register fill".into(), s)?;
                return Ok(load(Scalar::UNKNOWN));
            }
            if b == 0 && size as usize <= spill_size {
                let mut r = load(sp.val).unwrap_or_else(Reg::unknown);
                r.id = 0;
                return Ok(Some(r));
            }
            return Ok(load(Scalar::UNKNOWN));
        }
        if slot.kind[b..b + size as usize].iter().all(|k| *k == SlotKind::Zero) {
            return Ok(Some(Reg::scalar(Scalar::konst(0))));
        }
        Ok(load(Scalar::UNKNOWN))
    }

    fn note_depth(&mut self, s: &State, fi: usize, lowest: i64) {
        let sp = s.frames[fi].subprog as usize;
        if -lowest > self.depth[sp] {
            self.depth[sp] = -lowest;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn cond_jump(
        &mut self,
        pc: usize,
        bits: u32,
        cmp: Cmp,
        dst: u8,
        src: Operand,
        off: i16,
        s: &mut State,
    ) -> Res<Flow> {
        let a = self.read(pc, s, dst)?;
        let (b, src_reg) = match src {
            Operand::Reg(r) => (self.read(pc, s, r.0)?, Some(r.0)),
            Operand::Imm(i) => {
                let v = if bits == 64 { i as i64 as u64 } else { i as u32 as u64 };
                (Reg::scalar(Scalar::konst(v)), None)
            }
        };
        let target = (pc as i64 + 1 + off as i64) as usize;
        let zero = |r: &Reg| if bits == 64 { r.is_const_zero() } else { r.is_const_zero32() };
        let taken = if a.ty == Ty::Scalar && b.ty == Ty::Scalar {
            a.val.branch_taken(cmp, bits, &b.val)
        } else if (a.not_null() && zero(&b)) || (b.not_null() && zero(&a)) {
            match cmp {
                Cmp::Eq => Some(false),
                Cmp::Ne => Some(true),
                _ => None,
            }
        } else {
            None
        };
        let scalar_ops = |env: &mut Self| {
            if a.ty == Ty::Scalar {
                env.seed(pc, 1 << dst);
            }
            if b.ty == Ty::Scalar {
                env.seed_operand(pc, src_reg);
            }
        };
        match taken {
            Some(true) => {
                scalar_ops(self);
                return Ok(Flow::Next(target));
            }
            Some(false) => {
                scalar_ops(self);
                return Ok(Flow::Next(pc + 1));
            }
            None => {}
        }
        let mut other = s.clone();
        let ok_t = self.refine(&mut other, bits, cmp, dst, src_reg, a, b);
        let ok_f = self.refine(s, bits, cmp.negate(), dst, src_reg, a, b);
        let linked = (a.ty == Ty::Scalar && a.id != 0) || (b.ty == Ty::Scalar && b.id != 0);
        let null_check = matches!(cmp, Cmp::Eq | Cmp::Ne) && (a.nullable || b.nullable);
        if !ok_t || !ok_f || linked || null_check {
            scalar_ops(self);
        }
        if ok_t {
            self.fork(target, other)?;
        }
        Ok(if ok_f { Flow::Next(pc + 1) } else { Flow::Done })
    }

    #[allow(clippy::too_many_arguments)]
    fn refine(&mut self, s: &mut State, bits: u32, cmp: Cmp, dst: u8, src: Option<u8>, a: Reg, b: Reg) -> bool {
        if a.ty == Ty::Scalar && b.ty == Ty::Scalar {
            let (mut va, mut vb) = (a.val, b.val);
            if !va.refine(cmp, bits, &mut vb) {
                return false;
            }
            s.cur().regs[dst as usize].val = va;
            if let Some(r) = src {
                s.cur().regs[r as usize].val = vb;
            }
            for (id, v) in [(a.id, va), (if src.is_some() { b.id } else { 0 }, vb)] {
                if id != 0 {
                    s.for_each_reg(|r| {
                        if r.ty == Ty::Scalar && r.id == id {
                            r.val = v;
                        }
                    });
                }
            }
            return true;
        }
        if matches!(cmp, Cmp::Eq | Cmp::Ne) && bits == 64 {
            let (p, other) = if a.is_ptr() { (a, b) } else { (b, a) };
            if p.nullable && other.is_const_zero() {
                self.mark_null(s, p.id, cmp == Cmp::Eq);
                return true;
            }
        }
        if bits == 64 {
            let pair = |x: Ty, y: Ty| (a.ty == x && b.ty == y) || (a.ty == y && b.ty == x);
            let init_pkt = |r: &Reg| r.ty == Ty::Pkt && r.off == 0 && r.val.const_value() == Some(0);
            let meta_ok = (a.ty == Ty::PktMeta && init_pkt(&b)) || (b.ty == Ty::PktMeta && init_pkt(&a));
            if pair(Ty::Pkt, Ty::PktEnd) || (pair(Ty::PktMeta, Ty::Pkt) && meta_ok) {
                let p_is_a = a.ty == Ty::PktMeta || (a.ty == Ty::Pkt && b.ty == Ty::PktEnd);
                let (p, c) = if p_is_a { (a, cmp) } else { (b, cmp.swap()) };
                let open = match c {
                    Cmp::Le => false,
                    Cmp::Lt => true,
                    _ => return true,
                };
                if p.off < 0 || (p.off == 0 && open) {
                    return true;
                }
                if p.val.umax > MAX_PACKET_OFF || p.val.umax + p.off as u64 > MAX_PACKET_OFF {
                    return true;
                }
                let new_range = p.off as u32 + open as u32;
                s.for_each_reg(|r| {
                    if r.ty == p.ty && r.id == p.id && r.aux < new_range {
                        r.aux = new_range;
                    }
                });
            }
        }
        true
    }

    fn mark_null(&mut self, s: &mut State, id: u32, is_null: bool) {
        let mut released = 0;
        s.for_each_reg(|r| {
            if r.nullable && r.id == id {
                if is_null {
                    if r.ref_id != 0 {
                        released = r.ref_id;
                    }
                    *r = Reg::scalar(Scalar::konst(0));
                } else {
                    r.nullable = false;
                }
            }
        });
        if released != 0 {
            s.refs.retain(|(i, _)| *i != released);
        }
    }

    fn type_err(&self, pc: usize, s: &State, regno: usize, r: &Reg, expected: &str) -> Rejection {
        let rule = if r.nullable { Rule::NullDeref } else { Rule::HelperArgType };
        let msg = if r.nullable {
            format!("Possibly NULL pointer passed to helper arg{regno} (R{regno} type={})", r.type_name())
        } else {
            format!("R{regno} type={} expected={expected}", r.type_name())
        };
        self.reject(pc, rule, msg, s)
    }

    /// A helper's memory argument: `size` bytes at `r`.
    fn mem_arg(&mut self, pc: usize, s: &mut State, regno: usize, r: Reg, size: u64, write: bool) -> Res<()> {
        if size == 0 {
            return Ok(());
        }
        let sz = size as i64;
        match r.ty {
            Ty::Stack => {
                let (lo, hi) = if r.val.is_const() {
                    let o = r.off as i64 + r.val.var.value as i64;
                    (o, o + sz)
                } else {
                    if r.val.smin == i64::MIN || r.val.smax == i64::MAX {
                        return self.mem_fail(
                            pc,
                            Rule::StackBounds,
                            format!("R{regno} variable offset stack access with unbounded offset"),
                            s,
                        );
                    }
                    (r.off as i64 + r.val.smin, r.off as i64 + r.val.smax + sz)
                };
                if lo < -MAX_STACK || hi > 0 {
                    return self.mem_fail(
                        pc,
                        Rule::StackBounds,
                        format!("invalid indirect access to stack R{regno} off={lo} size={size}"),
                        s,
                    );
                }
                let fi = r.aux as usize;
                self.note_depth(s, fi, lo);
                if s.dynptr_in(fi, lo, hi) {
                    let what = if write { "potential write to" } else { "invalid indirect read from" };
                    return Err(self.reject(
                        pc,
                        Rule::HelperArgType,
                        format!("R{regno} {what} a dynptr on the stack (off={lo} size={size})"),
                        s,
                    ));
                }
                if write {
                    s.frames[fi].clobber(lo, hi, SlotKind::Misc);
                }
                Ok(())
            }
            Ty::Pkt | Ty::PktMeta => {
                if r.val.smin < 0 {
                    return self.mem_fail(pc, Rule::UnboundedAccess, format!("R{regno} min value is negative"), s);
                }
                if r.off < 0 || r.off as i64 + sz > r.aux as i64 {
                    return self.mem_fail(
                        pc,
                        Rule::PacketBounds,
                        format!(
                            "invalid access to packet, off={} size={size}, R{regno}(id={},off={},r={})",
                            r.off, r.id, r.off, r.aux
                        ),
                        s,
                    );
                }
                Ok(())
            }
            Ty::MapValue | Ty::MapKey | Ty::Mem => {
                if r.nullable {
                    return Err(self.type_err(pc, s, regno, &r, "mem"));
                }
                let (limit, what) = self.region_limit(pc, s, &r, "inner maps of map-in-map are not modelled")?;
                if write && r.ty == Ty::MapValue && self.maps()[r.aux as usize].flags & BPF_F_RDONLY_PROG != 0 {
                    return Err(self.reject(
                        pc,
                        Rule::ReadOnly,
                        format!("R{regno} points to a read-only map value"),
                        s,
                    ));
                }
                self.region_check(pc, s, regno as u8, &r, r.off as i64, sz, limit, what)
            }
            _ => Err(self.type_err(pc, s, regno, &r, "fp, pkt, pkt_meta, map_key, map_value, mem")),
        }
    }

    fn call_helper(&mut self, pc: usize, id: i32, s: &mut State) -> Res<Flow> {
        let name = helpers::name(id);
        if name == "unknown" || id == 0 {
            return Err(self.reject(pc, Rule::UnknownHelper, format!("invalid func unknown#{id}"), s));
        }
        if !helpers::allowed(self.input.prog_type, id) {
            return Err(self.reject(
                pc,
                Rule::UnknownHelper,
                format!("program of this type cannot call helper bpf_{name}#{id}"),
                s,
            ));
        }
        let Some(proto) = helpers::proto(id) else {
            return Err(self.reject(
                pc,
                Rule::Unsupported,
                format!("helper bpf_{name}#{id} is not modelled by the uxdp verifier"),
                s,
            ));
        };
        if id == TAIL_CALL {
            if let Some(&(rid, at)) = s.refs.first() {
                return Err(self.reject(
                    pc,
                    Rule::ReferenceLeak,
                    format!("tail_call would lead to reference leak (id={rid} alloc_insn={at})"),
                    s,
                ));
            }
        }
        let mut map: Option<usize> = None;
        let mut last_mem: Option<(usize, Reg, bool)> = None;
        let mut func: Option<u32> = None;
        let mut release: Option<u32> = None;
        let mut alloc: u64 = 0;
        for (i, arg) in proto.args.iter().enumerate() {
            let regno = i + 1;
            let r = self.read(pc, s, regno as u8)?;
            match *arg {
                Arg::Anything => {}
                Arg::Dynptr => {
                    self.dynptr_arg(pc, s, &format!("bpf_{name}#{id}"), i, regno, &r)?;
                }
                Arg::MapPtr => {
                    if r.ty != Ty::MapPtr || r.nullable {
                        return Err(self.type_err(pc, s, regno, &r, "map_ptr"));
                    }
                    if r.aux == INNER_MAP {
                        return Err(self.reject(
                            pc,
                            Rule::Unsupported,
                            "inner maps of map-in-map are not modelled by the uxdp verifier".into(),
                            s,
                        ));
                    }
                    let m = &self.maps()[r.aux as usize];
                    if !helpers::map_compatible(id, m.map_type, &proto) {
                        return Err(self.reject(
                            pc,
                            Rule::MapIncompatible,
                            format!(
                                "cannot pass map_type {} ('{}') into func bpf_{}#{id}",
                                m.map_type, m.name, proto.name
                            ),
                            s,
                        ));
                    }
                    map = Some(r.aux as usize);
                }
                Arg::MapKey | Arg::MapValue | Arg::UninitMapValue => {
                    let Some(mi) = map else {
                        return Err(self.reject(pc, Rule::HelperArgType, format!("R{regno} map argument missing"), s));
                    };
                    if !matches!(r.ty, Ty::Stack | Ty::Pkt | Ty::PktMeta | Ty::MapKey | Ty::MapValue) || r.nullable {
                        return Err(self.type_err(pc, s, regno, &r, "fp, pkt, pkt_meta, map_key, map_value"));
                    }
                    let m = &self.maps()[mi];
                    let size = if *arg == Arg::MapKey { m.key_size } else { m.value_size };
                    self.mem_arg(pc, s, regno, r, size as u64, *arg == Arg::UninitMapValue)?;
                }
                Arg::Ctx => {
                    if r.ty != Ty::Ctx {
                        return Err(self.type_err(pc, s, regno, &r, "ctx"));
                    }
                    if r.off != 0 || r.val.const_value() != Some(0) {
                        return Err(self.reject(
                            pc,
                            Rule::CtxModified,
                            format!("dereference of modified ctx ptr R{regno} off={} disallowed", r.off),
                            s,
                        ));
                    }
                }
                Arg::Mem { nullable } => {
                    if nullable && r.ty == Ty::Scalar {
                        self.seed(pc, 1 << regno);
                    }
                    if nullable && r.is_const_zero() {
                        last_mem = None;
                    } else if matches!(r.ty, Ty::Stack | Ty::Pkt | Ty::PktMeta | Ty::MapKey | Ty::MapValue | Ty::Mem) {
                        last_mem = Some((regno, r, false));
                    } else {
                        return Err(self.type_err(pc, s, regno, &r, "fp, pkt, pkt_meta, map_key, map_value, mem"));
                    }
                }
                Arg::UninitMem => {
                    if matches!(r.ty, Ty::Stack | Ty::Pkt | Ty::PktMeta | Ty::MapValue | Ty::Mem) {
                        last_mem = Some((regno, r, true));
                    } else {
                        return Err(self.type_err(pc, s, regno, &r, "fp, pkt, pkt_meta, map_value, mem"));
                    }
                }
                Arg::FixedMem(n) | Arg::FixedUninitMem(n) => {
                    if !matches!(r.ty, Ty::Stack | Ty::Pkt | Ty::PktMeta | Ty::MapKey | Ty::MapValue | Ty::Mem) {
                        return Err(self.type_err(pc, s, regno, &r, "fp, pkt, pkt_meta, map_key, map_value, mem"));
                    }
                    self.mem_arg(pc, s, regno, r, n as u64, matches!(arg, Arg::FixedUninitMem(_)))?;
                }
                Arg::Size { zero_ok } => {
                    self.seed(pc, 1 << regno);
                    if r.ty != Ty::Scalar {
                        return Err(self.type_err(pc, s, regno, &r, "scalar"));
                    }
                    if r.val.smin < 0 {
                        return Err(self.reject(
                            pc,
                            Rule::HelperArgSize,
                            format!("R{regno} min value is negative, either use unsigned or 'var &= const'"),
                            s,
                        ));
                    }
                    if r.val.umin == 0 && !zero_ok {
                        return Err(self.reject(
                            pc,
                            Rule::HelperArgSize,
                            format!("R{regno} invalid zero-sized read: u64=[{},{}]", r.val.umin, r.val.umax),
                            s,
                        ));
                    }
                    if r.val.umax >= MAX_VAR_OFF as u64 {
                        return Err(self.reject(
                            pc,
                            Rule::HelperArgSize,
                            format!("R{regno} unbounded memory access, use 'var &= const' or 'if (var < const)'"),
                            s,
                        ));
                    }
                    if let Some((mr, m, w)) = last_mem.take() {
                        self.mem_arg(pc, s, mr, m, r.val.umax, w)?;
                    }
                }
                Arg::AllocSize => {
                    self.seed(pc, 1 << regno);
                    let Some(v) = (r.ty == Ty::Scalar).then(|| r.val.const_value()).flatten() else {
                        return Err(self.reject(
                            pc,
                            Rule::HelperArgSize,
                            format!("R{regno} is not a known constant"),
                            s,
                        ));
                    };
                    alloc = v;
                }
                Arg::Func => {
                    if r.ty != Ty::Func {
                        return Err(self.type_err(pc, s, regno, &r, "func"));
                    }
                    func = Some(r.aux);
                }
                Arg::StackOrNull => {
                    if r.ty == Ty::Scalar {
                        self.seed(pc, 1 << regno);
                    }
                    if !(r.ty == Ty::Stack || r.is_const_zero()) {
                        return Err(self.type_err(pc, s, regno, &r, "fp or null"));
                    }
                }
                Arg::SockCommon => {
                    if !matches!(r.ty, Ty::Sock | Ty::SockCommon) || r.nullable {
                        return Err(self.type_err(pc, s, regno, &r, "sock_common"));
                    }
                    if proto.release {
                        if r.ref_id == 0 {
                            return Err(self.reject(
                                pc,
                                Rule::ReferenceLeak,
                                format!("R{regno} must be referenced when passed to release function"),
                                s,
                            ));
                        }
                        release = Some(r.ref_id);
                    }
                }
                Arg::RingbufMem => {
                    if r.ty != Ty::Mem || !r.ringbuf || r.nullable || r.ref_id == 0 {
                        return Err(self.type_err(pc, s, regno, &r, "ringbuf_mem"));
                    }
                    if r.off != 0 || r.val.const_value() != Some(0) {
                        return Err(self.reject(
                            pc,
                            Rule::HelperArgType,
                            format!("R{regno} must have zero offset when passed to release func"),
                            s,
                        ));
                    }
                    release = Some(r.ref_id);
                }
            }
        }
        if let Some(rid) = release {
            if !s.refs.iter().any(|(i, _)| *i == rid) {
                return Err(self.reject(pc, Rule::ReferenceLeak, format!("release of unreferenced id={rid}"), s));
            }
            s.refs.retain(|(i, _)| *i != rid);
            s.for_each_reg(|r| {
                if r.ref_id == rid {
                    *r = Reg::unknown();
                }
            });
        }
        // Callback frame, built from the caller's arguments.
        let mut callback_state: Option<(usize, State)> = None;
        if let (Some(kind), Some(target)) = (proto.callback, func) {
            self.seed(pc, 1 << 3);
            if s.frames.len() >= MAX_FRAMES {
                return Err(self.reject(
                    pc,
                    Rule::CallDepth,
                    format!("the call stack of {} frames is too deep", s.frames.len() + 1),
                    s,
                ));
            }
            let caller = s.top().regs;
            let mut f = Frame::new(s.frames.len(), pc, self.st.subprog_of[target as usize]);
            f.callback = Some(kind);
            match kind {
                Callback::Loop => {
                    f.regs[1] = Reg::scalar(Scalar::unknown_of_size(4));
                    f.regs[2] = caller[3];
                }
                Callback::ForEachMapElem => {
                    let mi = map.unwrap_or(0) as u32;
                    f.regs[1] = Reg::ptr(Ty::MapPtr, mi);
                    f.regs[2] = Reg::ptr(Ty::MapKey, mi);
                    f.regs[3] = Reg::ptr(Ty::MapValue, mi);
                    f.regs[4] = caller[3];
                }
            }
            let mut cs = s.clone();
            cs.frames.push(f);
            callback_state = Some((target as usize, cs));
        }
        let fr = s.cur();
        for r in 1..=5 {
            fr.regs[r] = Reg::NOT_INIT;
        }
        if proto.changes_pkt {
            s.for_each_reg(|r| {
                if matches!(r.ty, Ty::Pkt | Ty::PktEnd | Ty::PktMeta) || (r.ty == Ty::Mem && r.slice != 0) {
                    *r = Reg::unknown();
                }
            });
        }
        let r0 = match proto.ret {
            Ret::Integer => Reg::unknown(),
            Ret::Void => Reg::NOT_INIT,
            Ret::MapValueOrNull => {
                let mi = map.unwrap_or(0);
                let mut r = if helpers::is_map_in_map(self.maps()[mi].map_type) {
                    Reg::ptr(Ty::MapPtr, INNER_MAP)
                } else {
                    Reg::ptr(Ty::MapValue, mi as u32)
                };
                r.nullable = true;
                r.id = self.new_id();
                r
            }
            Ret::SocketOrNull | Ret::SockCommonOrNull | Ret::RingbufMemOrNull => {
                let (ty, aux) = match proto.ret {
                    Ret::SocketOrNull => (Ty::Sock, 0),
                    Ret::SockCommonOrNull => (Ty::SockCommon, 0),
                    _ => (Ty::Mem, alloc as u32),
                };
                let mut r = Reg::ptr(ty, aux);
                r.ringbuf = proto.ret == Ret::RingbufMemOrNull;
                r.nullable = true;
                r.id = self.new_id();
                r.ref_id = r.id;
                s.refs.push((r.id, pc));
                r
            }
        };
        s.cur().regs[0] = r0;
        if let Some((target, cs)) = callback_state {
            self.fork(target, cs)?;
        }
        Ok(Flow::Next(pc + 1))
    }

    /// A kfunc call: arguments per the kfunc's prototype, dynptr creation,
    /// reference acquisition and release, and the result in R0.
    fn call_kfunc(&mut self, pc: usize, btf_id: i32, module: i16, s: &mut State) -> Res<Flow> {
        let Some(call) = self.input.kfuncs.iter().find(|k| k.pc == pc) else {
            return Err(self.reject(
                pc,
                Rule::UnknownKfunc,
                format!("kfunc call (BTF id {btf_id}, module {module}) without a name: VerifyInput::kfuncs lists none for instruction {pc}"),
                s,
            ));
        };
        let name = call.name.as_str();
        let proto = match kfuncs::lookup(name, self.input.prog_type) {
            Lookup::Known(p) => p,
            Lookup::Refused(why) => {
                return Err(self.reject(pc, Rule::UnknownKfunc, format!("kfunc {name} {why}"), s));
            }
            Lookup::Unknown => {
                return Err(self.reject(
                    pc,
                    Rule::UnknownKfunc,
                    format!("kfunc {name} is not known to uxdp's verifier"),
                    s,
                ));
            }
        };
        let mut release: Option<u32> = None;
        let mut konst: Option<u64> = None;
        let mut dynptr: Option<(u32, u32)> = None;
        let mut new_dynptr: Option<(usize, i64)> = None;
        let mut i = 0;
        while i < proto.args.len() {
            let regno = i + 1;
            let r = self.read(pc, s, regno as u8)?;
            match proto.args[i] {
                KArg::Scalar => {
                    if r.ty != Ty::Scalar {
                        return Err(self.kfunc_type_err(pc, s, name, regno, &r, "scalar"));
                    }
                }
                KArg::Ctx => {
                    if r.ty != Ty::Ctx {
                        return Err(self.reject(
                            pc,
                            Rule::HelperArgType,
                            format!("{name}: arg#{i} expected pointer to ctx, but got {}", r.type_name()),
                            s,
                        ));
                    }
                    if r.off != 0 || r.val.const_value() != Some(0) {
                        return Err(self.reject(
                            pc,
                            Rule::CtxModified,
                            format!("dereference of modified ctx ptr R{regno} off={} disallowed", r.off),
                            s,
                        ));
                    }
                }
                KArg::DynptrUninit => {
                    let (fi, off) = self.dynptr_location(pc, s, name, i, regno, &r)?;
                    if off < -MAX_STACK {
                        return Err(self.reject(
                            pc,
                            Rule::StackBounds,
                            format!("invalid write to stack R{regno} off={off} size=16 (dynptr)"),
                            s,
                        ));
                    }
                    new_dynptr = Some((fi, off));
                }
                KArg::Dynptr => dynptr = Some(self.dynptr_arg(pc, s, name, i, regno, &r)?),
                KArg::MemSize { optional, konst: is_konst } => {
                    let size_regno = regno + 1;
                    let size = self.read(pc, s, size_regno as u8)?;
                    self.seed(pc, 1 << size_regno);
                    if r.ty == Ty::Scalar {
                        self.seed(pc, 1 << regno);
                    }
                    if size.ty != Ty::Scalar {
                        return Err(self.kfunc_type_err(pc, s, name, size_regno, &size, "scalar"));
                    }
                    if !(optional && r.is_const_zero()) {
                        self.kfunc_mem(pc, s, name, regno, r, &size)?;
                    }
                    if is_konst {
                        let Some(k) = size.val.const_value() else {
                            return Err(self.reject(
                                pc,
                                Rule::HelperArgSize,
                                format!("{name}: R{size_regno} must be a known constant"),
                                s,
                            ));
                        };
                        konst = Some(k);
                    }
                    i += 1;
                }
                KArg::Mem(n) => {
                    if proto.trusted && (r.nullable || r.is_const_zero()) {
                        return Err(self.reject(
                            pc,
                            Rule::NullDeref,
                            format!("{name}: Possibly NULL pointer passed to trusted arg{i}"),
                            s,
                        ));
                    }
                    let size = Reg::scalar(Scalar::konst(n as u64));
                    self.kfunc_mem(pc, s, name, regno, r, &size)?;
                }
                KArg::Obj(want) => {
                    if (proto.trusted || proto.release) && (r.nullable || r.is_const_zero()) {
                        return Err(self.reject(
                            pc,
                            Rule::NullDeref,
                            format!(
                                "{name}: Possibly NULL pointer passed to trusted arg{i} (R{regno} type={})",
                                r.type_name()
                            ),
                            s,
                        ));
                    }
                    if r.ty != Ty::Obj || r.nullable {
                        return Err(self.kfunc_type_err(pc, s, name, regno, &r, &format!("ptr_{}", want.name())));
                    }
                    if r.off != 0 || r.val.const_value() != Some(0) {
                        return Err(self.reject(
                            pc,
                            Rule::HelperArgType,
                            format!(
                                "R{regno} must have zero offset when passed to release func or trusted arg to kfunc"
                            ),
                            s,
                        ));
                    }
                    let have = Obj::from_aux(r.aux);
                    if have != want {
                        return Err(self.reject(
                            pc,
                            Rule::HelperArgType,
                            format!(
                                "kernel function {name} args#{i} expected pointer to STRUCT {} but R{regno} has a pointer to STRUCT {}",
                                want.name(),
                                have.name()
                            ),
                            s,
                        ));
                    }
                    if proto.release {
                        if r.ref_id == 0 || !s.refs.iter().any(|(id, _)| *id == r.ref_id) {
                            return Err(self.reject(
                                pc,
                                Rule::ReferenceLeak,
                                format!("release kernel function {name} expects refcounted PTR_TO_BTF_ID (R{regno})"),
                                s,
                            ));
                        }
                        release = Some(r.ref_id);
                    }
                }
            }
            i += 1;
        }
        if let Some((fi, off)) = new_dynptr {
            // Two 8-byte writes, destroying whatever dynptr was there.
            self.note_depth(s, fi, off);
            s.destroy_dynptrs(fi, off, off + 16);
            let id = self.new_id();
            let first = ((-off - 1) / 8) as usize;
            let fr = &mut s.frames[fi];
            for (slot, aux) in [(first, 1), (first - 1, 0)] {
                let sl = fr.slot_mut(slot);
                sl.kind = [SlotKind::Dynptr; 8];
                sl.spill = Reg { id, aux, off: DYNPTR_XDP, ..Reg::NOT_INIT };
            }
        }
        if let Some(rid) = release {
            s.refs.retain(|(i, _)| *i != rid);
            s.for_each_reg(|r| {
                if r.ref_id == rid {
                    *r = Reg::unknown();
                }
            });
        }
        let fr = s.cur();
        for r in 1..=5 {
            fr.regs[r] = Reg::NOT_INIT;
        }
        let r0 = match proto.ret {
            KRet::Int => Reg::unknown(),
            KRet::Void => Reg::NOT_INIT,
            KRet::Slice { rdwr } => {
                let (id, kind) = dynptr.unwrap_or((0, 0));
                let mut r = Reg::ptr(Ty::Mem, konst.unwrap_or(0) as u32);
                r.rdonly = !rdwr;
                if kind == DYNPTR_XDP as u32 {
                    r.slice = id;
                }
                r
            }
            KRet::Obj(o) => Reg::ptr(Ty::Obj, o as u32),
        };
        let mut r0 = r0;
        if proto.ret_null {
            r0.nullable = true;
            r0.id = self.new_id();
        }
        if proto.acquire {
            if r0.id == 0 {
                r0.id = self.new_id();
            }
            r0.ref_id = r0.id;
            s.refs.push((r0.id, pc));
        }
        s.cur().regs[0] = r0;
        Ok(Flow::Next(pc + 1))
    }

    /// Where a dynptr argument points: (frame, fp offset), a constant
    /// 8-byte aligned offset leaving room for both slots.
    #[allow(clippy::too_many_arguments)]
    fn dynptr_location(
        &self,
        pc: usize,
        s: &State,
        who: &str,
        argno: usize,
        regno: usize,
        r: &Reg,
    ) -> Res<(usize, i64)> {
        if r.ty != Ty::Stack {
            return Err(self.reject(
                pc,
                Rule::HelperArgType,
                format!(
                    "{who}: arg#{argno} expected pointer to stack or const struct bpf_dynptr, got R{regno} {}",
                    r.type_name()
                ),
                s,
            ));
        }
        let Some(v) = r.val.const_value() else {
            return Err(self.reject(pc, Rule::HelperArgType, "dynptr has to be at a constant offset".into(), s));
        };
        let off = r.off as i64 + v as i64;
        if off % 8 != 0 || off > -16 {
            return Err(self.reject(pc, Rule::HelperArgType, format!("cannot pass in dynptr at an offset={off}"), s));
        }
        Ok((r.aux as usize, off))
    }

    /// An initialised dynptr argument: its (id, kind).
    #[allow(clippy::too_many_arguments)]
    fn dynptr_arg(&self, pc: usize, s: &State, who: &str, argno: usize, regno: usize, r: &Reg) -> Res<(u32, u32)> {
        let (fi, off) = self.dynptr_location(pc, s, who, argno, regno, r)?;
        let first = ((-off - 1) / 8) as usize;
        let fr = &s.frames[fi];
        match (fr.stack.get(first), fr.stack.get(first - 1)) {
            (Some(a), Some(b))
                if a.is_dynptr()
                    && b.is_dynptr()
                    && a.spill.aux == 1
                    && b.spill.aux == 0
                    && a.spill.id == b.spill.id =>
            {
                Ok((a.spill.id, a.spill.off as u32))
            }
            _ => Err(self.reject(
                pc,
                Rule::HelperArgType,
                format!("{who}: Expected an initialized dynptr as arg #{regno} (fp{off})"),
                s,
            )),
        }
    }

    /// A kfunc memory argument of `size` bytes (read and written by the
    /// kfunc): NULL only with a zero size.
    fn kfunc_mem(&mut self, pc: usize, s: &mut State, name: &str, regno: usize, r: Reg, size: &Reg) -> Res<()> {
        if size.val.smin < 0 {
            return Err(self.reject(
                pc,
                Rule::HelperArgSize,
                format!("{name}: R{} min value is negative, either use unsigned or 'var &= const'", regno + 1),
                s,
            ));
        }
        if size.val.umax >= MAX_VAR_OFF as u64 {
            return Err(self.reject(
                pc,
                Rule::HelperArgSize,
                format!("{name}: R{} unbounded memory access, use 'var &= const' or 'if (var < const)'", regno + 1),
                s,
            ));
        }
        if r.ty == Ty::Scalar {
            if r.is_const_zero() && size.val.umax == 0 {
                return Ok(());
            }
            return Err(self.kfunc_type_err(pc, s, name, regno, &r, "fp, pkt, pkt_meta, map_key, map_value, mem"));
        }
        if r.nullable {
            return Err(self.kfunc_type_err(pc, s, name, regno, &r, "fp, pkt, pkt_meta, map_key, map_value, mem"));
        }
        if !matches!(r.ty, Ty::Stack | Ty::Pkt | Ty::PktMeta | Ty::MapKey | Ty::MapValue | Ty::Mem) {
            return Err(self.kfunc_type_err(pc, s, name, regno, &r, "fp, pkt, pkt_meta, map_key, map_value, mem"));
        }
        let n = size.val.umax;
        if r.ty == Ty::Stack && n > 0 {
            // Read by the kfunc: dynptr bytes are not memory.
            let fi = r.aux as usize;
            if r.val.is_const() {
                let lo = r.off as i64 + r.val.var.value as i64;
                if lo >= -MAX_STACK && lo + n as i64 <= 0 && s.dynptr_in(fi, lo, lo + n as i64) {
                    return Err(self.reject(
                        pc,
                        Rule::HelperArgType,
                        format!("{name}: R{regno} invalid indirect read from stack: it holds a dynptr"),
                        s,
                    ));
                }
            }
        }
        self.mem_arg(pc, s, regno, r, n, false)?;
        let ro = match r.ty {
            Ty::MapValue => r.aux != INNER_MAP && self.maps()[r.aux as usize].flags & BPF_F_RDONLY_PROG != 0,
            Ty::Mem => r.rdonly,
            _ => false,
        };
        if ro && n > 0 {
            return Err(self.reject(
                pc,
                Rule::ReadOnly,
                format!("{name}: R{regno} points to read-only memory ({}), the kfunc may write it", r.type_name()),
                s,
            ));
        }
        Ok(())
    }

    fn kfunc_type_err(&self, pc: usize, s: &State, name: &str, regno: usize, r: &Reg, expected: &str) -> Rejection {
        let rule = if r.nullable { Rule::NullDeref } else { Rule::HelperArgType };
        let msg = if r.nullable {
            format!("{name}: Possibly NULL pointer passed to arg{} (R{regno} type={})", regno - 1, r.type_name())
        } else {
            format!("{name}: R{regno} type={} expected={expected}", r.type_name())
        };
        self.reject(pc, rule, msg, s)
    }

    /// The kernel's `check_max_stack_depth`: every call chain's frames,
    /// each rounded up to 16 bytes (JIT), fit in 512 bytes.
    fn check_stack_depth(&self) -> Res<()> {
        let round = |d: i64| (d + 15) / 16 * 16;
        let dummy = State { frames: vec![Frame::new(0, 0, 0)], refs: Vec::new(), parent: None };
        // (subprog, depth so far, frames) depth-first over call sites.
        let mut work = vec![(0usize, round(self.depth[0]), 1usize)];
        let mut seen = 0usize;
        while let Some((sp, depth, frames)) = work.pop() {
            seen += 1;
            if seen > 100_000 {
                break;
            }
            let sub = self.st.subprogs[sp];
            for pc in sub.start..sub.end {
                let Some(d) = self.st.decoded[pc] else { continue };
                let target = match d.ins {
                    Instruction::Call(CallTarget::Local(rel)) => (pc as i64 + 1 + rel as i64) as usize,
                    Instruction::LoadImm64 { kind: LoadImmKind::Func, imm, .. } => {
                        (pc as i64 + 1 + imm as i64) as usize
                    }
                    _ => continue,
                };
                if self.ctx_mask[pc].is_none() {
                    continue;
                }
                let callee = self.st.subprog_of[target] as usize;
                let nd = depth + round(self.depth[callee]);
                if frames + 1 > MAX_FRAMES {
                    return Err(self.reject(
                        pc,
                        Rule::CallDepth,
                        format!("the call stack of {} frames is too deep !", frames + 1),
                        &dummy,
                    ));
                }
                if nd > MAX_STACK {
                    return Err(self.reject(
                        pc,
                        Rule::StackDepth,
                        format!("combined stack size of {} calls is {nd}. Too large", frames + 1),
                        &dummy,
                    ));
                }
                work.push((callee, nd, frames + 1));
            }
        }
        Ok(())
    }
}

fn check_id(old: u32, cur: u32, map: &mut Vec<(u32, u32)>) -> bool {
    if old == 0 && cur == 0 {
        return true;
    }
    if old == 0 || cur == 0 {
        return false;
    }
    for &(o, c) in map.iter() {
        if o == old {
            return c == cur;
        }
        if c == cur {
            return false;
        }
    }
    map.push((old, cur));
    true
}

fn regsafe(old: &Reg, cur: &Reg, idmap: &mut Vec<(u32, u32)>) -> bool {
    if old.ty == Ty::NotInit {
        return true;
    }
    if cur.ty != old.ty {
        return false;
    }
    if old.ty == Ty::Scalar {
        return old.val.contains(&cur.val) && (old.id == 0 || check_id(old.id, cur.id, idmap));
    }
    if old.nullable != cur.nullable
        || old.off != cur.off
        || old.ringbuf != cur.ringbuf
        || old.rdonly != cur.rdonly
        || !old.val.contains(&cur.val)
    {
        return false;
    }
    if (old.slice != 0 || cur.slice != 0) && !check_id(old.slice, cur.slice, idmap) {
        return false;
    }
    let aux_ok = match old.ty {
        Ty::Pkt | Ty::PktMeta => old.aux <= cur.aux,
        _ => old.aux == cur.aux,
    };
    aux_ok && check_id(old.id, cur.id, idmap) && check_id(old.ref_id, cur.ref_id, idmap)
}

fn stacksafe(old: &[Slot], cur: &[Slot], idmap: &mut Vec<(u32, u32)>) -> bool {
    for (i, os) in old.iter().enumerate() {
        let cs = cur.get(i).cloned().unwrap_or(Slot::EMPTY);
        if os.is_dynptr() {
            if !cs.is_dynptr()
                || cs.spill.aux != os.spill.aux
                || cs.spill.off != os.spill.off
                || !check_id(os.spill.id, cs.spill.id, idmap)
            {
                return false;
            }
            continue;
        }
        if os.is_spill() {
            if !cs.is_spill() || cs.spill_size() != os.spill_size() {
                // A spilled scalar that nothing relies on precisely still
                // needs the bytes initialised.
                if os.spill.ty == Ty::Scalar
                    && os.spill.val == Scalar::UNKNOWN
                    && cs.kind.iter().all(|k| matches!(k, SlotKind::Misc | SlotKind::Zero))
                {
                    continue;
                }
                return false;
            }
            if !regsafe(&os.spill, &cs.spill, idmap) {
                return false;
            }
        }
        for b in 0..8 {
            let ok = match os.kind[b] {
                SlotKind::Invalid => true,
                SlotKind::Misc => match cs.kind[b] {
                    SlotKind::Misc | SlotKind::Zero => true,
                    SlotKind::Spill => cs.spill.ty == Ty::Scalar,
                    SlotKind::Invalid | SlotKind::Dynptr => false,
                },
                SlotKind::Zero => match cs.kind[b] {
                    SlotKind::Zero => true,
                    SlotKind::Spill => cs.spill.is_const_zero(),
                    _ => false,
                },
                SlotKind::Spill => cs.kind[b] == SlotKind::Spill,
                SlotKind::Dynptr => cs.kind[b] == SlotKind::Dynptr,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}
