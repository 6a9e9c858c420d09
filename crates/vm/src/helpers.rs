//! The helper-function ABI: how programs call into the runtime.
//!
//! A helper receives the running [`Machine`] (memory regions, the caller's
//! environment, callback support) and r1-r5, and returns r0 or a fault that
//! ends the run. Helpers are registered by id in a [`Helpers`] table; a
//! program calling an id missing from the table fails to load with the
//! helper's kernel name.

use crate::{Machine, VmError};
use std::sync::Arc;

/// Signature of a helper implementation.
pub type HelperFn = fn(&mut Machine<'_>, [u64; 5]) -> Result<u64, VmError>;

/// A registered helper.
#[derive(Clone, Copy)]
pub struct Helper {
    /// Helper id (`BPF_FUNC_*`), or a synthetic id for kfuncs.
    pub id: u32,
    /// Name shown in errors and traces.
    pub name: &'static str,
    /// Implementation.
    pub func: HelperFn,
}

impl core::fmt::Debug for Helper {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}#{}", self.name, self.id)
    }
}

/// A table of helpers by id.
#[derive(Clone, Default, Debug)]
pub struct Helpers {
    by_id: Vec<Option<Helper>>,
}

impl Helpers {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a helper.
    pub fn register(&mut self, id: u32, name: &'static str, func: HelperFn) -> &mut Self {
        let i = id as usize;
        if self.by_id.len() <= i {
            self.by_id.resize(i + 1, None);
        }
        self.by_id[i] = Some(Helper { id, name, func });
        self
    }

    /// Looks a helper up by id.
    #[inline]
    pub fn get(&self, id: u64) -> Option<Helper> {
        usize::try_from(id).ok().and_then(|i| self.by_id.get(i).copied().flatten())
    }

    /// All registered helpers.
    pub fn iter(&self) -> impl Iterator<Item = Helper> + '_ {
        self.by_id.iter().flatten().copied()
    }

    /// Freezes the table for sharing between programs.
    pub fn into_shared(self) -> Arc<Helpers> {
        Arc::new(self)
    }
}

/// The bpf_conformance suite's helper 5, "unwind" (ubpf's test helper, used
/// by `call_unwind_fail` and `callx`): returns its first argument.
fn unwind(_m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    Ok(a[0])
}

/// The helpers the bpf_conformance suite's programs may call.
pub fn conformance_helpers() -> Helpers {
    let mut h = Helpers::new();
    h.register(5, "unwind", unwind);
    h
}
