//! Atomic read-modify-write operations on program memory.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use uxdp_isa::opcode::atomic as a;

/// Where an atomic operation's old value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fetch {
    None,
    Src,
    R0,
}

macro_rules! rmw {
    ($name:ident, $atomic:ty, $t:ty) => {
        /// Applies the atomic operation `imm` with operand `src`; `r0` is
        /// the comparand of cmpxchg. Returns the old value and where it goes.
        #[inline(always)]
        pub(crate) fn $name(cell: &$atomic, imm: i64, src: $t, r0: $t) -> (u64, Fetch) {
            let imm = imm as i32;
            let fetch = if imm & a::FETCH != 0 { Fetch::Src } else { Fetch::None };
            let old = match imm {
                a::XCHG => cell.swap(src, SeqCst),
                a::CMPXCHG => {
                    let old = match cell.compare_exchange(r0, src, SeqCst, SeqCst) {
                        Ok(v) | Err(v) => v,
                    };
                    return (old as u64, Fetch::R0);
                }
                x => match x & !a::FETCH {
                    a::ADD => cell.fetch_add(src, SeqCst),
                    a::OR => cell.fetch_or(src, SeqCst),
                    a::AND => cell.fetch_and(src, SeqCst),
                    _ => cell.fetch_xor(src, SeqCst),
                },
            };
            (old as u64, fetch)
        }
    };
}

rmw!(rmw64, AtomicU64, u64);
rmw!(rmw32, AtomicU32, u32);
