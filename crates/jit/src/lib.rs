//! # uxdp-jit: x86-64 native code for uxdp programs
//!
//! [`compile`] turns a loaded [`uxdp_vm::Program`] into x86-64 machine code
//! that produces exactly what the interpreter produces: the same r0, the
//! same memory effects and the same [`VmError`] (same variant, same
//! instruction index) for out-of-bounds accesses, misaligned atomics, call
//! depth, budget exhaustion and helper faults. [`attach`] compiles and
//! installs the code on the program ([`Program::set_native`]), after which
//! every [`uxdp_vm::Machine`] run of it (runs, callbacks, tail-call
//! continuations) is native unless the machine sets `native = false`.
//!
//! ## Memory safety
//!
//! Every load, store and atomic is either
//! - a stack access through r10 with a constant offset inside the current
//!   512-byte frame (`[r10 - 512, r10)`): always inside the machine's stack
//!   whatever the call depth, so it is emitted unchecked (unless the
//!   program can overwrite r10 with an atomic fetch, which validation lets
//!   through: then those accesses are checked too, and every native entry
//!   verifies that r10 points into the stack);
//! - proven by the verifier ([`JitOptions::proven`]) and emitted unchecked;
//! - or checked at run time: the generated code compares the address with
//!   the first three per-run regions of the machine's [`uxdp_vm::Memory`]
//!   (copied into a context block as `start` and per-size limits, so each
//!   region costs one `sub` and one `cmp`/`jb`), then with the program's
//!   shared map-value regions ([`Program::shared_regions`], fixed at load
//!   time): compared with constants when there are at most 6 (each costs a
//!   `mov`, `add` and `cmp`/`jb`), else through a one-entry cache of the last
//!   shared region used; it falls back to a call into Rust
//!   (`Memory::check`) for the other per-run regions (and to fill the
//!   cache). A failed check leaves the code with `VmError::Memory` for that
//!   instruction. The table is reloaded after every helper call, since
//!   helpers may move regions (`xdp_adjust_head`), except calls of helpers
//!   the embedder declares region-keeping ([`JitOptions::keeps_regions`]).
//!
//! Code pages are mapped read-write while code is written, then switched to
//! read-execute (dynasmrt's `ExecutableBuffer`, via `mprotect`): never
//! writable and executable at once.
//!
//! ## Execution model
//!
//! eBPF registers live in x86 registers (r0 = rax, r1-r5 = rsi, rdx, rcx,
//! r8, r9, r6-r9 = rbx, r13-r15, r10 = rbp; r12 points at the context
//! block). Local calls are native `call`s that push r6-r10; `exit` is `ret`.
//! Helpers are called through an `extern "sysv64"` trampoline that sets
//! the machine's pc, charges the budget, calls the [`uxdp_vm::HelperFn`]
//! (catching panics, which are resumed once the native frames are gone),
//! records errors and reloads the region table; r1-r5 are preserved across
//! the call as the interpreter does. For a program a verifier accepted with
//! the kernel's rules ([`JitOptions::terminates`],
//! [`JitOptions::kernel_calls`]) the call is charged to no budget and r1-r5
//! are not preserved (the verifier made sure the program never reads them
//! after a call), about 19 instructions less per call. A tail call requested by a helper is
//! run by the machine ([`uxdp_vm::Machine::run_pending_tail_call`]) in place
//! of the current function, natively if the target has native code.
//!
//! Inlined array lookups ([`JitOptions::array_lookup`]): a call of helper 1
//! whose r1 is a known array map becomes an inline read of the 4-byte key
//! from the stack (any other key goes through the helper, which checks it),
//! the budget charge of a helper call, and `base + cpu * cpu_stride +
//! index * elem_size` or NULL for an index (or per-CPU, a CPU) out of
//! range. The values lie in the shared regions, so later accesses through
//! the pointer are checked as before. Measured with `cargo bench --bench
//! xdp -- xdpfilt` (30 program-packet pairs): JIT/kernel geometric mean
//! 2.9-3.8 before the shared-region checks, the inlined lookups and the
//! region-keeping helper calls, 1.3-1.5 after (runs on a shared machine).
//!
//! The budget of backward jumps and calls (`Machine::budget`) is decremented
//! exactly where the interpreter decrements it (taken backward jumps,
//! helper calls, local calls), so non-terminating programs end with
//! `VmError::Budget` at the same instruction; programs known to terminate
//! ([`JitOptions::terminates`]) are not charged at all.
//!
//! Entry: a run of slot 0 loads only the registers the program may read
//! before writing them (r1, r10 and those `entry_reads` finds). Code that
//! never leaves native code (no helper call, no checked access, no budget,
//! no fault path) does not use the context block at all and runs from a
//! stub that only loads those registers: `xdp_dummy_prog` 16 -> 10 ns per
//! test run (the kernel: 25-33 ns).
//!
//! Code size: immediates and displacements that fit a byte use the short
//! forms, backward jumps within reach the 2-byte forms, and a small loop
//! (up to 12 slots) that would straddle a 64-byte line starts on the next
//! one (long NOPs, run once on entry). A 3-instruction loop spanning two
//! lines ran at 2 cycles per iteration on this machine (AMD EPYC), at 1
//! after: `crossing_64_bit_signed_boundary_2` 2579 -> 1303 ns per run, the
//! kernel's JIT 1346.
//!
//! ## Choice of emitter
//!
//! dynasm-rs. Its `dynasm!` macro assembles every instruction form at
//! build time into byte templates with holes for registers, displacements
//! and immediates, so emitting one x86 instruction at run time is a few
//! stores, labels are resolved in one pass, and encoding mistakes are
//! build errors rather than wrong bytes. (Licence: dynasm/dynasmrt are
//! MPL-2.0, a file-level copyleft that applies only to their own files,
//! used unmodified here; compatible with this crate's MIT OR Apache-2.0.)
//! Measured on this machine
//! (`cargo bench -p uxdp-jit --bench jit`, which prints these numbers):
//! compiling costs about 55 ns per eBPF instruction plus a fixed ~8 µs per
//! program that is almost all `mmap` + `mprotect` (51-instruction port-22
//! filter: 11 µs; 14-instruction loop: 9 µs); output is ~36 bytes of x86
//! per eBPF instruction including out-of-line fault paths.
//!
//! Alternatives considered (not measured here): a hand-written encoder
//! would be as fast to run but is where encoding bugs hide; iced-x86's code
//! assembler checks operands at run time and carries a large decoder/
//! encoder table for no gain in output; Cranelift builds SSA IR and runs a
//! register allocator per function, which costs far more per program than
//! the whole dynasm compile and gains little, because eBPF code arrives
//! already register-allocated by clang and maps 1:1 onto x86 registers.
//! Code quality with the fixed mapping: one x86 instruction per ALU
//! instruction in the common case, compare + branch per jump (the
//! xorshift loop runs at the same speed as rbpf's JIT), three inline
//! region compares per checked access (the byte-sum loop with a checked
//! load per byte runs at ~1.5x rbpf's unchecked JIT code), no check at all
//! for stack accesses.
//!
//! ## Limitations
//!
//! - Only `bpf_map_lookup_elem` on array and per-CPU array maps is inlined
//!   ([`JitOptions::array_lookup`]: r1 must come from an `lddw` in the same
//!   straight-line code and the key must be on the stack); lookups in other
//!   known maps call the map directly ([`JitOptions::map_lookup`]); every
//!   other helper goes through the trampoline.
//! - x86-64 Linux only ([`available`]); elsewhere [`compile`] returns
//!   [`JitError::Unavailable`] and callers use the interpreter.
//! - A program entered with a frame pointer that is not inside the machine's
//!   stack (only possible after an atomic fetch into r10, which the kernel
//!   verifier rejects but validation accepts, followed by a tail call) gets
//!   `VmError::Memory` at its entry instead of running.
//! - A legacy packet load (`ldabs`/`ldind`) that runs off the packet inside
//!   a tail-called program ends only that program (returning 0 to the
//!   caller's caller), not the whole run.

#![warn(missing_docs)]

use std::sync::Arc;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use uxdp_vm::STACK_PER_FRAME;
use uxdp_vm::{Machine, NativeCode, Program, VmError};

pub use chain::{ChainLink, ChainOutcome, CounterLayout, NativeChain};

mod chain;
mod entry;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod runtime;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod x64;

/// Why a program could not be compiled (the caller falls back to the interpreter).
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    /// The JIT only targets x86-64 Linux.
    #[error("the JIT needs x86-64 Linux")]
    Unavailable,
    /// An instruction the JIT does not translate.
    #[error("instruction {pc}: {what} is not supported by the JIT")]
    Unsupported {
        /// Slot index.
        pc: usize,
        /// What it is.
        what: String,
    },
    /// `JitOptions::proven` does not have one entry per instruction.
    #[error("the proven-access list has {got} entries but the program has {want} instructions")]
    ProvenLength {
        /// Entries given.
        got: usize,
        /// Instructions in the program.
        want: usize,
    },
    /// The assembler or the code mapping failed.
    #[error("code generation failed: {0}")]
    Codegen(String),
    /// [`attach`] on a program that already has native code.
    #[error("the program already has native code attached")]
    AlreadyAttached,
}

/// The layout of an array map's values, for inlined
/// `bpf_map_lookup_elem` calls: the value of `index` for CPU `cpu` is at
/// `base + cpu * cpu_stride + index * elem_size` when `index < max_entries`
/// and (per-CPU arrays only) `cpu < nr_cpus`; the lookup yields NULL
/// otherwise. All of
/// `[base, base + nr_cpus * cpu_stride)` (or `max_entries * elem_size` when
/// not per-CPU) must lie inside the program's shared regions
/// ([`Program::shared_regions`]), so accesses through the pointer stay
/// checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrayLookup {
    /// Address of value 0 (of CPU 0).
    pub base: u64,
    /// Distance between consecutive values.
    pub elem_size: u32,
    /// Number of values (per CPU).
    pub max_entries: u32,
    /// Distance between the value blocks of consecutive CPUs (0 if not per-CPU).
    pub cpu_stride: u64,
    /// Number of CPUs (1 if not per-CPU); the CPU is [`Machine::cpu`].
    pub nr_cpus: u32,
}

/// Resolves the value of r1 at a `bpf_map_lookup_elem` call (a map handle
/// loaded by `lddw`) to the layout of an array map, or `None` to call the
/// helper.
pub type ArrayResolver<'a> = &'a dyn Fn(u64) -> Option<ArrayLookup>;

/// A `bpf_map_lookup_elem` the generated code calls directly, without the
/// helper trampoline: `func(obj, key, cpu)` returns the value's address or
/// 0, exactly what the helper would return for a key of `key_size` bytes at
/// `key` on CPU `cpu` ([`Machine::cpu`]). Used for calls whose r1 is a
/// known map (an `lddw` in the same straight-line code) and whose key lies
/// on the stack or in the packet (per-run regions 0 and 2, checked inline;
/// other keys call the helper).
#[derive(Clone)]
pub struct DirectLookup {
    /// The lookup. It must not panic (a panic cannot unwind through
    /// generated code: make it catch its own and return 0).
    pub func: extern "sysv64" fn(*const (), *const u8, u64) -> u64,
    /// The data `func` receives as `obj` (`Arc::as_ptr` of it); the
    /// compiled code keeps it alive.
    pub obj: Arc<dyn core::any::Any + Send + Sync>,
    /// Bytes of key `func` reads.
    pub key_size: u32,
}

impl core::fmt::Debug for DirectLookup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DirectLookup").field("key_size", &self.key_size).finish_non_exhaustive()
    }
}

/// Resolves the value of r1 at a `bpf_map_lookup_elem` call to a
/// [`DirectLookup`], or `None` to call the helper.
pub type LookupResolver<'a> = &'a dyn Fn(u64) -> Option<DirectLookup>;

/// Compilation options.
#[derive(Clone, Copy, Default)]
pub struct JitOptions<'a> {
    /// Per instruction: true if the verifier proved that instruction's
    /// memory access in bounds (its `Facts::proven`), so no run-time check
    /// is emitted. Must have one entry per instruction slot.
    pub proven: Option<&'a [bool]>,
    /// Inlines calls of helper 1 (`bpf_map_lookup_elem`) whose r1 is a
    /// constant (an `lddw` in the same straight-line code) that this
    /// resolves: a key on the stack is read inline and the value pointer
    /// computed from the [`ArrayLookup`]; other keys call the helper. Only
    /// set it when the program's helper 1 is `bpf_map_lookup_elem` with the
    /// kernel's array semantics and the handles resolve to the maps the
    /// helper would use.
    pub array_lookup: Option<ArrayResolver<'a>>,
    /// Helper ids whose implementations never change the run's per-run
    /// regions ([`uxdp_vm::Memory::push`]/[`uxdp_vm::Memory::set`]) nor run
    /// program code (callbacks, tail calls): calls to them skip reloading
    /// the inline region table. Only for helpers the embedder knows;
    /// anything it is unsure of must answer false.
    pub keeps_regions: Option<&'a dyn Fn(u32) -> bool>,
    /// Calls of helper 1 (`bpf_map_lookup_elem`) not inlined by
    /// `array_lookup` whose r1 this resolves call the map's lookup directly
    /// ([`DirectLookup`]). Same conditions as `array_lookup`.
    pub map_lookup: Option<LookupResolver<'a>>,
    /// The program is known to terminate (a verifier accepted it, as the
    /// kernel's does): taken backward jumps, local calls and helper calls
    /// are not charged to [`Machine::budget`], as the kernel's JIT does not
    /// count them either. Without it a loop costs a budget update per
    /// iteration, and a non-terminating program ends with
    /// `VmError::Budget` like in the interpreter.
    pub terminates: bool,
    /// The program follows the kernel's calling convention, as a verifier
    /// checked (uxdp's in strict mode, like the kernel's, marks r1-r5
    /// unreadable after a call): it never reads r1-r5 after a helper call
    /// before writing them. The code then does not preserve them across
    /// helper calls (`bpf_tail_call`, which passes r1 on, and `callx`
    /// still do). Without it r1-r5 keep their values across calls, as in
    /// the interpreter.
    pub kernel_calls: bool,
}

impl core::fmt::Debug for JitOptions<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JitOptions")
            .field("proven", &self.proven)
            .field("array_lookup", &self.array_lookup.is_some())
            .field("keeps_regions", &self.keeps_regions.is_some())
            .field("map_lookup", &self.map_lookup.is_some())
            .field("terminates", &self.terminates)
            .field("kernel_calls", &self.kernel_calls)
            .finish()
    }
}

/// Whether the JIT can run on this host.
pub fn available() -> bool {
    cfg!(all(target_arch = "x86_64", target_os = "linux"))
}

/// Native code of one program; implements [`NativeCode`].
pub struct JitProgram {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    code: x64::Code,
    insns: usize,
    /// Registers the program may read before writing them.
    #[cfg_attr(not(all(target_arch = "x86_64", target_os = "linux")), allow(dead_code))]
    needs: u16,
    /// The proven accesses it was compiled with (to compile it again into
    /// chain code).
    #[cfg_attr(not(all(target_arch = "x86_64", target_os = "linux")), allow(dead_code))]
    proven: Option<Box<[bool]>>,
    /// What the code's direct map lookups point at (never touched, only
    /// kept alive: a panic cannot leave it half-updated).
    _keep: std::panic::AssertUnwindSafe<Vec<Arc<dyn core::any::Any + Send + Sync>>>,
    /// [`JitOptions::terminates`] as compiled.
    #[cfg_attr(not(all(target_arch = "x86_64", target_os = "linux")), allow(dead_code))]
    terminates: bool,
}

impl core::fmt::Debug for JitProgram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JitProgram").field("insns", &self.insns).field("code_bytes", &self.code_size()).finish()
    }
}

impl JitProgram {
    /// Size of the machine code in bytes.
    pub fn code_size(&self) -> usize {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        return self.code.buf.len();
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        0
    }

    /// The machine code, as installed (read-only), for disassembly.
    pub fn code(&self) -> &[u8] {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        return &self.code.buf;
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        &[]
    }

    /// Number of eBPF instruction slots compiled.
    pub fn insns(&self) -> usize {
        self.insns
    }
}

/// Compiles `prog` for this host.
pub fn compile(prog: &Program, opts: &JitOptions<'_>) -> Result<JitProgram, JitError> {
    if let Some(p) = opts.proven {
        if p.len() != prog.ops().len() {
            return Err(JitError::ProvenLength { got: p.len(), want: prog.ops().len() });
        }
    }
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let needs = entry::entry_reads(prog);
        let (code, keep) = x64::compile(prog, opts, needs)?;
        Ok(JitProgram {
            code,
            _keep: std::panic::AssertUnwindSafe(keep),
            insns: prog.ops().len(),
            needs,
            proven: opts.proven.map(Into::into),
            terminates: opts.terminates,
        })
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    Err(JitError::Unavailable)
}

/// Compiles `prog` and installs the code as its native code.
pub fn attach(prog: &Program) -> Result<(), JitError> {
    attach_with(prog, &JitOptions::default())
}

/// [`attach`] with options (e.g. the verifier's proven accesses).
pub fn attach_with(prog: &Program, opts: &JitOptions<'_>) -> Result<(), JitError> {
    if prog.native().is_some() {
        return Err(JitError::AlreadyAttached);
    }
    let jp = compile(prog, opts)?;
    if prog.set_native(Arc::new(jp)) {
        Ok(())
    } else {
        Err(JitError::AlreadyAttached)
    }
}

impl NativeCode for JitProgram {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn run(&self, m: &mut Machine<'_>, entry: usize, regs: &[u64; 11], depth: usize) -> Result<u64, VmError> {
        let code = &self.code;
        let target = if entry == 0 {
            code.main_addr as *const u8
        } else {
            let Ok(i) = code.entries.binary_search_by_key(&entry, |e| e.0) else {
                return Err(VmError::Unreachable { pc: entry });
            };
            code.buf.ptr(code.entries[i].1)
        };
        // Stack accesses through r10 inside the frame are emitted unchecked:
        // that is only sound if r10 points into the stack with a whole frame
        // below it. It always does unless some program overwrote r10 with an
        // atomic fetch (which validation allows) and then tail-called.
        let s = m.stack();
        let fp = regs[10];
        if fp < s.start + STACK_PER_FRAME as u64 || fp > s.start + s.len {
            return Err(VmError::Memory { pc: entry, addr: fp, len: STACK_PER_FRAME, write: true });
        }
        if code.pure_stub_addr != 0 && entry == 0 {
            return Ok(code.run_pure(regs));
        }
        with_ctx(m, depth, |ctx| code.enter(ctx, regs, target))
    }

    fn as_any(&self) -> Option<&dyn core::any::Any> {
        Some(self)
    }

    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    fn run(&self, _m: &mut Machine<'_>, entry: usize, _regs: &[u64; 11], _depth: usize) -> Result<u64, VmError> {
        Err(VmError::Unreachable { pc: entry })
    }
}

/// Runs `f` on a context block prepared for a run on `m` at `depth`: the
/// one kept in the stack's [`uxdp_vm::NativeScratch`] (only the region
/// slots that changed since the last run are recomputed), or a fresh one
/// for a nested run (a callback or tail call started by a helper while the
/// scratch block is in use).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[inline(always)]
fn with_ctx<R>(m: &mut Machine<'_>, depth: usize, f: impl FnOnce(&mut runtime::Ctx) -> R) -> R {
    use runtime::{Ctx, CTX_TAG};
    let sc: *mut uxdp_vm::NativeScratch = m.native_scratch();
    // SAFETY: `sc` points at the stack's scratch block, which outlives the
    // run and which nothing but native code touches; `busy` keeps nested
    // runs (callbacks, tail calls) out of it.
    unsafe {
        if (*sc).busy {
            let mut ctx = Ctx::new(m, depth);
            return f(&mut ctx);
        }
        let ctx = (*sc).block.as_mut_ptr().cast::<Ctx>();
        if (*sc).tag == CTX_TAG {
            (*ctx).reset(m, depth);
        } else {
            ctx.write(Ctx::new(m, depth));
            (*sc).tag = CTX_TAG;
        }
        (*sc).busy = true;
        /// Clears `busy` however the run ends (a helper's panic resumes
        /// through here).
        struct Busy(*mut uxdp_vm::NativeScratch);
        impl Drop for Busy {
            fn drop(&mut self) {
                // SAFETY: as above.
                unsafe { (*self.0).busy = false }
            }
        }
        let _busy = Busy(sc);
        f(&mut *ctx)
    }
}
