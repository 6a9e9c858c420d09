//! Map errors and their kernel errno values.

use std::borrow::Cow;

/// `ENOENT`.
pub const ENOENT: i32 = 2;
/// `E2BIG`.
pub const E2BIG: i32 = 7;
/// `EBADF`.
pub const EBADF: i32 = 9;
/// `EAGAIN`.
pub const EAGAIN: i32 = 11;
/// `ENOMEM`.
pub const ENOMEM: i32 = 12;
/// `EBUSY`.
pub const EBUSY: i32 = 16;
/// `EEXIST`.
pub const EEXIST: i32 = 17;
/// `ENODEV`.
pub const ENODEV: i32 = 19;
/// `EINVAL`.
pub const EINVAL: i32 = 22;
/// `ENOSPC`.
pub const ENOSPC: i32 = 28;
/// `EOVERFLOW`.
pub const EOVERFLOW: i32 = 75;
/// `EOPNOTSUPP` (the user-visible "operation not supported").
pub const EOPNOTSUPP: i32 = 95;
/// `ENOTSUPP`, the kernel-internal errno 524 that BPF nevertheless returns to
/// user space for some operations (ring buffer lookups, LRU without
/// preallocation, ...).
pub const ENOTSUPP: i32 = 524;

/// An error of a map operation. Each variant corresponds to exactly one
/// kernel errno; [`MapError::errno`] gives it negated (`-ENOENT`, ...), the
/// value helpers return to programs.
///
/// The variants used on hot paths (`NotFound`, `Exists`, `Full`) carry no
/// allocation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// `ENOENT`: no element with this key (or an empty queue/stack).
    #[error("no such element")]
    NotFound,
    /// `EEXIST`: the element exists and `BPF_NOEXIST` was given.
    #[error("element already exists (BPF_NOEXIST)")]
    Exists,
    /// `E2BIG`: every preallocated element is in use.
    #[error("map is full (max_entries {max_entries})")]
    Full {
        /// The map's capacity.
        max_entries: u32,
    },
    /// `E2BIG`: an array index at or past `max_entries`.
    #[error("index {index} is out of range (max_entries {max_entries})")]
    IndexOutOfRange {
        /// The index given.
        index: u32,
        /// The map's capacity.
        max_entries: u32,
    },
    /// `E2BIG` for other size limits (creation attributes, record sizes).
    #[error("{0}")]
    TooBig(Cow<'static, str>),
    /// `EINVAL`: bad flags, sizes or arguments.
    #[error("{0}")]
    Invalid(Cow<'static, str>),
    /// `ENOTSUPP` (524): the operation does not exist for this map type.
    #[error("{0}")]
    NotSupported(Cow<'static, str>),
    /// `EOPNOTSUPP` (95).
    #[error("{0}")]
    OpNotSupported(Cow<'static, str>),
    /// `EINVAL` at creation: a map type uxdp does not implement, or an
    /// unknown type number.
    #[error("{}", unsupported_type_text(*.type_num, *.name))]
    UnsupportedMapType {
        /// `BPF_MAP_TYPE_*` number.
        type_num: u32,
        /// Its kernel name, when the number is known.
        name: Option<&'static str>,
    },
    /// `ENOMEM`: the preallocation failed, or no element could be freed.
    #[error("out of memory: {0}")]
    NoMemory(Cow<'static, str>),
    /// `ENOSPC`: an LPM trie is full, or a perf buffer has no room.
    #[error("no space left: {0}")]
    NoSpace(Cow<'static, str>),
    /// `EAGAIN`: the ring buffer has no room for the record.
    #[error("ring buffer has no room for the record")]
    Again,
    /// `ENODEV`: e.g. a cpumap key that is not a possible CPU.
    #[error("{0}")]
    NoDevice(Cow<'static, str>),
    /// `EOVERFLOW`: e.g. a cpumap queue size above the kernel's limit.
    #[error("{0}")]
    Overflow(Cow<'static, str>),
    /// `EBADF`: an object id (program, socket, map) that names nothing.
    #[error("{0}")]
    BadFd(Cow<'static, str>),
    /// `EBUSY`.
    #[error("{0}")]
    Busy(Cow<'static, str>),
}

fn unsupported_type_text(type_num: u32, name: Option<&'static str>) -> String {
    match name {
        Some(n) => format!("{n} ({type_num}) is not supported"),
        None => format!("unknown map type {type_num}"),
    }
}

impl MapError {
    /// The negative kernel errno of this error (`-ENOENT`, `-E2BIG`, ...),
    /// as helpers return it and as `bpf(2)` reports it (negated).
    pub fn errno(&self) -> i32 {
        -self.code()
    }

    /// The positive errno value.
    pub fn code(&self) -> i32 {
        match self {
            MapError::NotFound => ENOENT,
            MapError::Exists => EEXIST,
            MapError::Full { .. } | MapError::IndexOutOfRange { .. } | MapError::TooBig(_) => E2BIG,
            MapError::Invalid(_) | MapError::UnsupportedMapType { .. } => EINVAL,
            MapError::NotSupported(_) => ENOTSUPP,
            MapError::OpNotSupported(_) => EOPNOTSUPP,
            MapError::NoMemory(_) => ENOMEM,
            MapError::NoSpace(_) => ENOSPC,
            MapError::Again => EAGAIN,
            MapError::NoDevice(_) => ENODEV,
            MapError::Overflow(_) => EOVERFLOW,
            MapError::BadFd(_) => EBADF,
            MapError::Busy(_) => EBUSY,
        }
    }

    /// The helper return value: `errno()` sign-extended to 64 bits.
    pub fn helper_ret(&self) -> u64 {
        self.errno() as i64 as u64
    }

    pub(crate) fn invalid(s: impl Into<Cow<'static, str>>) -> Self {
        MapError::Invalid(s.into())
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, MapError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_values() {
        assert_eq!(MapError::NotFound.errno(), -ENOENT);
        assert_eq!(MapError::NotFound.code(), 2);
        assert_eq!(MapError::NotFound.helper_ret(), (-2i64) as u64);
        assert_eq!(MapError::Full { max_entries: 1 }.errno(), -7);
        assert_eq!(MapError::Exists.errno(), -17);
        assert_eq!(MapError::invalid("x").errno(), -22);
        assert_eq!(MapError::NoSpace("x".into()).errno(), -28);
        assert_eq!(MapError::NotSupported("x".into()).errno(), -524);
        assert_eq!(MapError::OpNotSupported("x".into()).errno(), -95);
        assert_eq!(MapError::Again.errno(), -11);
        assert_eq!(MapError::UnsupportedMapType { type_num: 24, name: Some("sk_storage") }.errno(), -22);
        assert_eq!(MapError::Full { max_entries: 16 }.to_string(), "map is full (max_entries 16)");
    }
}
